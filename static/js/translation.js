// A translation's trace, filled from the stream's frames (or a REST body), and the session that runs it.
//
// One time line for the player, as the stream sends it: the encoder's J steps, then the decoder's T steps
// (position k < J is encoder step k, k ≥ J is decoder step k − J). Played backwards it is the BPTT sweep in the
// order the stream sends the gradients: the decoder's last step first, then the encoder's last step first.
// `steps` counts the positions whose step frames have arrived; `gradFrom` is the first position whose
// gradient norms have.

import { familyOf } from "./families.js";
import { translate as translateRest } from "./api.js";
import { StreamSession } from "./session.js";
import { showToken } from "./trace.js";

export const EOS = "</s>";

/** A written token as shown: the end of the output is ⏹. */
export const showLetter = (tok) => (tok === EOS ? "∎" : tok === "<unk>" ? "�" : tok);

export class TranslationTrace {
  /** meta: the stream's meta frame (or a REST body's header fields). */
  constructor(meta) {
    this.model = meta.model;
    this.cell = meta.cell;
    this.kind = "translate";
    this.family = familyOf(this);
    this.checkpoint = meta.checkpoint ?? null;
    this.attentionUsed = Boolean(meta.attention_used);
    this.source = [...meta.source_tokens];
    this.written = [...meta.target_tokens]; // what decoder step t writes (</s> last if it ended)
    this.output = meta.output ?? "";
    this.finished = meta.finished ?? true;
    this.unknown = new Set(meta.unknown ?? []);
    this.beams = meta.beams ?? null;
    this.totalLoss = meta.total_loss ?? null;
    this.J = meta.source_steps;
    this.Tout = meta.target_steps;
    this.T = this.J + this.Tout; // the player's time line
    this.L = meta.num_layers;
    this.H = meta.hidden_size;
    this.tokens = [...this.source, ...this.written];
    const side = (n) => ({
      hidden: Array.from({ length: this.L }, () => new Float32Array(n * this.H)),
      grad: Array.from({ length: this.L }, () => new Float64Array(n)),
    });
    this.encoder = side(this.J);
    this.decoder = side(this.Tout);
    this.via = this.attentionUsed ? new Float64Array(this.J) : null; // ‖the part of ∂L/∂h_j that came through attention‖
    this.attention = this.attentionUsed ? new Float32Array(this.Tout * this.J) : null; // (T, J)
    this.predictions = new Array(this.Tout).fill(null);
    this.loss = new Float64Array(this.Tout).fill(Number.NaN);
    this.encSteps = 0;
    this.decSteps = 0;
    this.gradFrom = this.T;
    this.done = false;
    this.version = 0;
  }

  get steps() {
    return this.encSteps + this.decSteps;
  }

  /** The top layer: the one attention reads and the head writes from (its gradients are the ones coloured). */
  get top() {
    return this.L - 1;
  }

  /** Where position k of the time line is: {side: "encoder" | "decoder", i}. */
  at(k) {
    return k < this.J ? { side: "encoder", i: k } : { side: "decoder", i: k - this.J };
  }

  /** Where position k is, in the words of the two rows: "encoder 3 / 6  “and”", "decoder 5 / 25  writes “h”". */
  where(k) {
    const { side, i } = this.at(k);
    return side === "encoder"
      ? `encoder ${i + 1} / ${this.J}  “${showToken(this.source[i])}”`
      : `decoder ${i + 1} / ${this.Tout}  writes “${showLetter(this.written[i])}”`;
  }

  setLayers(side, i, layers) {
    layers.forEach((lf, l) => side.hidden[l].set(lf.hidden, i * this.H));
  }

  addEncoderStep(f) {
    if (f.t >= this.J) return;
    this.setLayers(this.encoder, f.t, f.layers);
    this.encSteps = Math.max(this.encSteps, f.t + 1);
    this.version++;
  }

  addDecoderStep(f) {
    if (f.t >= this.Tout) return;
    this.setLayers(this.decoder, f.t, f.layers);
    if (this.attention && f.attention) this.attention.set(f.attention, f.t * this.J);
    this.predictions[f.t] = f.prediction ?? null;
    this.loss[f.t] = f.loss ?? Number.NaN;
    this.encSteps = this.J; // the decoder starts after the encoder
    this.decSteps = Math.max(this.decSteps, f.t + 1);
    this.version++;
  }

  /** A decoder_grad or encoder_grad frame (each side from its last step back). */
  addGrad(f) {
    const enc = f.type === "encoder_grad";
    const side = enc ? this.encoder : this.decoder;
    f.hidden.forEach((v, l) => (side.grad[l][f.t] = v ?? 0));
    if (enc && this.via) this.via[f.t] = f.via_attention ?? 0;
    this.gradFrom = Math.min(this.gradFrom, enc ? f.t : this.J + f.t);
    this.version++;
  }

  finish(frame = {}) {
    if (frame.beams) this.beams = frame.beams;
    if (frame.total_loss !== undefined) this.totalLoss = frame.total_loss;
    this.done = true;
    this.version++;
  }

  /** α of decoder step t over the source (a view of J values), or null. */
  alpha(t) {
    return this.attention && t >= 0 && t < this.decSteps ? this.attention.subarray(t * this.J, (t + 1) * this.J) : null;
  }

  /** ‖∂L/∂h‖ at position k of the time line (the top layer). */
  gradAt(k) {
    const { side, i } = this.at(k);
    return (side === "encoder" ? this.encoder : this.decoder).grad[this.top][i];
  }

  /** The log10 range of every gradient norm received, both sides and via attention (one colour scale). */
  gradLogRange() {
    let lo = Infinity;
    let hi = -Infinity;
    const see = (v) => {
      if (v > 0) {
        const lv = Math.log10(v);
        lo = Math.min(lo, lv);
        hi = Math.max(hi, lv);
      }
    };
    for (let k = this.gradFrom; k < this.T; k++) {
      see(this.gradAt(k));
      if (k < this.J && this.via) see(this.via[k]);
    }
    if (!Number.isFinite(lo)) return [-8, 0];
    if (hi - lo < 1) return [hi - 1, hi];
    return [lo, hi];
  }

  /** The REST answer of /translate ({output, beams, trace}) as a whole trace. */
  static fromBody(reply) {
    const body = reply.trace;
    const tr = new TranslationTrace({ ...body, beams: reply.beams ?? body.beams, num_layers: body.encoder.layers.length, hidden_size: body.encoder.layers[0].hidden[0]?.length ?? 0 });
    const layersAt = (layers, t) => layers.map((l) => ({ hidden: l.hidden[t] }));
    for (let j = 0; j < tr.J; j++) tr.addEncoderStep({ t: j, layers: layersAt(body.encoder.layers, j) });
    for (let t = 0; t < tr.Tout; t++) {
      tr.addDecoderStep({ t, layers: layersAt(body.decoder.layers, t), attention: body.attention?.[t], prediction: body.decoder.predictions[t], loss: body.loss[t] });
    }
    const g = body.grad_norms;
    for (let t = tr.Tout - 1; t >= 0; t--) tr.addGrad({ type: "decoder_grad", t, hidden: g.decoder.hidden.map((a) => a[t]) });
    for (let j = tr.J - 1; j >= 0; j--) tr.addGrad({ type: "encoder_grad", t: j, hidden: g.encoder.hidden.map((a) => a[j]), via_attention: g.encoder.via_attention?.[j] });
    tr.finish({ total_loss: body.total_loss });
    return tr;
  }
}

/**
 * One translation at a time: opens the stream (JSON frames: a translation is tens of steps), fills a
 * TranslationTrace and tells the page, at most once per animation frame, that more has arrived. If the stream
 * cannot be opened (a proxy without WebSockets), the same translation over REST.
 */
export class TranslateSession extends StreamSession {
  constructor(modelId, { onTrace, onData, onDone = () => {}, besideInput = false }) {
    super(modelId, { onTrace, onData, onDone, besideInput });
  }

  /** request: {text, beam, top_k, …} (a translate body). Resolves with the finished trace (null if replaced). */
  async start(request) {
    const read = (f) => {
      const tr = this.trace;
      if (f.type === "meta") {
        this.trace = new TranslationTrace(f);
        window.__unrolled.trace = this.trace;
        this.onTrace(this.trace);
      } else if (f.type === "encoder_step") tr.addEncoderStep(f);
      else if (f.type === "decoder_step") tr.addDecoderStep(f);
      else if (f.type === "decoder_grad" || f.type === "encoder_grad") tr.addGrad(f);
      else if (f.type === "done") tr.finish(f);
      if (f.type !== "meta") this.flush();
    };
    return this.open(request, { mode: "translate", ...request }, read);
  }

  async rest(request, run) {
    const reply = await translateRest(this.modelId, request);
    if (run !== this.run) return null;
    this.trace = TranslationTrace.fromBody(reply);
    window.__unrolled.trace = this.trace;
    this.onTrace(this.trace);
    this.onData(this.trace);
    this.onDone(this.trace);
    window.__unrolled.transport = "rest";
    return this.trace;
  }
}
