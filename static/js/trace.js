// The trace of one input, as typed arrays filled frame by frame (stream) or at once (REST body).
// Views read it; only the page controller writes it. `steps` counts the step frames received (0…T),
// `gradFrom` is the first step whose gradient norms have arrived (T until the BPTT sweep begins).

import { familyOf } from "./families.js";

export const showToken = (tok) =>
  tok === " " ? "␣" : tok === "\n" ? "⏎" : tok === "\t" ? "⇥" : tok === "<unk>" ? "�" : tok;

/** A number as the unrolled view writes it under a cell: three significant digits at most. */
export const showValue = (v) => (v === null || v === undefined ? "" : Math.abs(v) >= 100 ? v.toFixed(0) : Number(v.toPrecision(3)).toString());

export class Trace {
  /** meta: {model, cell, kind, steps, num_layers, hidden_size, gates, labels, tokens?, checkpoint?, mode?} */
  constructor(meta) {
    this.model = meta.model;
    this.cell = meta.cell;
    this.kind = meta.kind ?? "next_token";
    this.family = familyOf(meta); // what its head predicts, how its target reads (families.js)
    this.mode = meta.mode ?? "trace";
    this.checkpoint = meta.checkpoint ?? null;
    this.T = meta.steps;
    this.L = meta.num_layers;
    this.H = meta.hidden_size;
    this.gateNames = meta.gates ?? [];
    this.labels = meta.labels ?? null;
    this.label = meta.label ?? null;
    this.labelSource = meta.label_source ?? null; // "given", "input" (the memory task's symbol) or "predicted"
    this.promptSteps = meta.prompt_steps ?? 0;
    this.totalLoss = meta.total_loss ?? null;
    this.lossMode = meta.loss_mode ?? "sum"; // L: the sum of every step's term, or the last step's alone
    this.unknown = new Set(meta.unknown ?? []);
    this.tokens = meta.tokens ? [...meta.tokens] : new Array(this.T).fill("");
    const T = this.T;
    const H = this.H;
    const layer = () => ({
      hidden: new Float32Array(T * H),
      cell: this.cell === "lstm" ? new Float32Array(T * H) : null,
      gates: Object.fromEntries(this.gateNames.map((g) => [g, new Float32Array(T * H)])),
    });
    this.layers = Array.from({ length: this.L }, layer);
    // Each layer entry's direction, in torch's order (l0, l0_reverse, l1, …): a bidirectional layer is two entries.
    this.directions = meta.directions ?? new Array(this.L).fill("forward");
    this.bidirectional = this.directions.includes("reverse");
    this.predictions = new Array(T).fill(null); // next_token: [{token, p}] per step
    this.probs = this.labels ? new Float32Array(T * this.labels.length) : null; // classify: T × labels
    this.sampled = new Uint8Array(T); // generated: a sampled token, or a forecast value fed back (series)
    // series models: each step's numbers in the data's units, the prediction made there for the next step,
    // and ∂L/∂value_t (signed); `givenSteps`: a forecast's values given before it runs free
    this.features = meta.features ?? null;
    this.units = meta.units ?? "";
    this.givenSteps = meta.given_steps ?? 0;
    this.outliers = meta.outliers ?? null; // given values far outside what the model was trained on (the API's)
    this.values = new Array(T).fill(null);
    this.predicted = new Array(T).fill(null);
    this.gradValues = new Array(T).fill(null);
    this.loss = new Float64Array(T).fill(Number.NaN);
    this.grad = {
      hidden: Array.from({ length: this.L }, () => new Float64Array(T)),
      cell: this.cell === "lstm" ? Array.from({ length: this.L }, () => new Float64Array(T)) : null,
      input: new Float64Array(T),
      weightHH: Array.from({ length: this.L }, () => new Float64Array(T)),
    };
    // an S6 model's hidden attention ᾱ_{t,s}, per layer its lower triangle (row t: s = 0 … t) or null; it comes
    // with the done frame (or the REST body's layers)
    this.hiddenAttention = null;
    this.steps = 0;
    this.gradFrom = T;
    this.done = false;
    this.cellAbsMax = 1e-6;
    this.version = 0; // bumped on every change: views compare it to skip work
  }

  /** One {"type": "step"} frame. */
  addStep(f) {
    const t = f.t;
    const H = this.H;
    if (t >= this.T) return;
    this.tokens[t] = f.token;
    f.layers.forEach((lf, l) => {
      const layer = this.layers[l];
      layer.hidden.set(lf.hidden, t * H);
      if (layer.cell && lf.cell_state) {
        layer.cell.set(lf.cell_state, t * H);
        for (const v of lf.cell_state) if (Math.abs(v) > this.cellAbsMax) this.cellAbsMax = Math.abs(v);
      }
      for (const g of this.gateNames) layer.gates[g].set(lf.gates[g], t * H);
    });
    if (f.prediction) this.predictions[t] = f.prediction;
    if (f.probs && this.probs) this.probs.set(f.probs, t * this.labels.length);
    if (f.sampled) this.sampled[t] = 1;
    if (f.value !== undefined) {
      this.values[t] = f.value;
      this.predicted[t] = f.predicted;
      this.tokens[t] = showValue(f.value[0]);
      if (f.forecast) this.sampled[t] = 1;
    }
    this.loss[t] = f.loss ?? Number.NaN;
    this.steps = Math.max(this.steps, t + 1);
    this.version++;
  }

  /**
   * One binary step record at `offset` in `buffer`: a little-endian uint32 t, then the float32 fields of the meta
   * frame's `layout`, then uint32 token ids (the top predictions). `vocab` turns ids into tokens.
   */
  addBinaryStep(buffer, offset, layout, vocab) {
    const t = new DataView(buffer, offset).getUint32(0, true);
    if (t >= this.T) return;
    const floats = layout.filter((f) => f.dtype === "float32").reduce((n, f) => n + f.size, 0);
    const f32 = new Float32Array(buffer, offset + 4, floats);
    const H = this.H;
    let off = 0;
    let ps = null;
    for (const f of layout) {
      if (f.dtype !== "float32") continue;
      const v = f32.subarray(off, off + f.size);
      off += f.size;
      const [head, k, what, gate] = f.name.split(".");
      if (head === "layers") {
        const layer = this.layers[Number(k)];
        if (what === "hidden") layer.hidden.set(v, t * H);
        else if (what === "cell_state" && layer.cell) {
          layer.cell.set(v, t * H);
          for (const x of v) if (Math.abs(x) > this.cellAbsMax) this.cellAbsMax = Math.abs(x);
        } else if (what === "gates") layer.gates[gate].set(v, t * H);
      } else if (head === "loss") this.loss[t] = v[0];
      else if (head === "probs" && this.probs) this.probs.set(v, t * this.labels.length);
      else if (f.name === "prediction.p") ps = v;
    }
    if (ps) {
      const ids = new Uint32Array(buffer, offset + 4 + 4 * floats, ps.length);
      this.predictions[t] = Array.from(ps, (p, i) => ({ token: vocab[ids[i]] ?? "?", p }));
    }
    this.steps = Math.max(this.steps, t + 1);
    this.version++;
  }

  /** One binary grad record at `offset`: float64 t, then the float64 fields of the meta frame's `grad_layout`. */
  addBinaryGrad(buffer, offset, gradLayout) {
    const v = new Float64Array(buffer, offset, 1 + gradLayout.length);
    const frame = { t: v[0], hidden: [], cell_state: this.grad.cell ? [] : null, input: 0, weight_hh: [] };
    gradLayout.forEach((f, i) => {
      const [name, k] = f.name.split(".");
      if (name === "input") frame.input = v[1 + i];
      else if (name === "cell_state") frame.cell_state[Number(k)] = v[1 + i];
      else frame[name][Number(k)] = v[1 + i];
    });
    this.addGrad(frame);
  }

  /** One {"type": "grad"} frame (they arrive from the last step back to the first). */
  addGrad(f) {
    const t = f.t;
    if (t >= this.T) return;
    f.hidden.forEach((v, l) => (this.grad.hidden[l][t] = v ?? 0));
    if (this.grad.cell && f.cell_state) f.cell_state.forEach((v, l) => (this.grad.cell[l][t] = v ?? 0));
    this.grad.input[t] = f.input ?? 0;
    f.weight_hh.forEach((v, l) => (this.grad.weightHH[l][t] = v ?? 0));
    if (f.values) this.gradValues[t] = f.values;
    this.gradFrom = Math.min(this.gradFrom, t);
    this.version++;
  }

  /** Generation may stop early: keep the steps that came. */
  finish(frame = {}) {
    if (this.steps < this.T) this.truncate(this.steps);
    if (frame.total_loss !== undefined) this.totalLoss = frame.total_loss;
    if (frame.attention) this.hiddenAttention = frame.attention;
    this.done = true;
    this.version++;
  }

  truncate(T) {
    const H = this.H;
    this.T = T;
    this.tokens.length = T;
    this.predictions.length = T;
    for (const layer of this.layers) {
      layer.hidden = layer.hidden.subarray(0, T * H);
      if (layer.cell) layer.cell = layer.cell.subarray(0, T * H);
      for (const g of this.gateNames) layer.gates[g] = layer.gates[g].subarray(0, T * H);
    }
    if (this.probs) this.probs = this.probs.subarray(0, T * this.labels.length);
    this.loss = this.loss.subarray(0, T);
    this.sampled = this.sampled.subarray(0, T);
    for (const a of [this.values, this.predicted, this.gradValues]) a.length = T;
    this.gradFrom = Math.min(this.gradFrom, T);
  }

  /** A whole REST trace body at once. */
  static fromBody(body, card = null) {
    const first = body.layers[0];
    const tr = new Trace({
      ...body,
      num_layers: body.layers.length,
      hidden_size: first.hidden[0].length,
      gates: Object.keys(first.gates),
      directions: body.layers.map((l) => l.direction ?? "forward"),
      labels: body.step_probs ? (card?.labels ?? body.step_probs[0].map((_, i) => String(i))) : null,
    });
    for (let t = 0; t < body.steps; t++) {
      tr.addStep({
        t,
        token: body.tokens[t],
        layers: body.layers.map((l) => ({
          hidden: l.hidden[t],
          cell_state: l.cell_state ? l.cell_state[t] : null,
          gates: Object.fromEntries(Object.entries(l.gates).map(([g, a]) => [g, a[t]])),
        })),
        prediction: body.predictions ? body.predictions[t] : undefined,
        ...(familyOf(body).head === "values" ? { value: body.values[t], predicted: body.predicted?.[t] ?? null } : {}),
        probs: body.step_probs ? body.step_probs[t] : undefined,
        loss: body.loss[t],
      });
    }
    const g = body.grad_norms;
    for (let t = body.steps - 1; t >= 0; t--) {
      tr.addGrad({
        t,
        hidden: g.hidden.map((a) => a[t]),
        cell_state: g.cell_state ? g.cell_state.map((a) => a[t]) : null,
        input: g.input[t],
        weight_hh: g.weight_hh.map((a) => a[t]),
        values: g.values ? g.values[t] : undefined,
      });
    }
    const attention = body.layers.map((l) => l.attention ?? null);
    tr.finish({ total_loss: body.total_loss, attention: attention.some(Boolean) ? attention : undefined });
    return tr;
  }

  /**
   * Whether plots of the whole sequence should be drawn now: a traced input's frames all arrive within
   * moments (the server computed them at once), so they wait for the last; generated text arrives token
   * by token, so it is drawn as it grows.
   */
  get drawable() {
    return this.mode !== "trace" || this.steps === this.T;
  }

  probsAt(t) {
    const n = this.labels.length;
    return this.probs.subarray(t * n, (t + 1) * n);
  }

  /** The log10 range of every gradient norm received (for the log colour scale). */
  gradLogRange(which = "hidden") {
    let lo = Infinity;
    let hi = -Infinity;
    const arrays = which === "all" ? [...this.grad.hidden, ...(this.grad.cell ?? [])] : this.grad.hidden;
    for (const a of arrays) {
      for (let t = this.gradFrom; t < this.T; t++) {
        const v = a[t];
        if (v > 0) {
          const lv = Math.log10(v);
          if (lv < lo) lo = lv;
          if (lv > hi) hi = lv;
        }
      }
    }
    if (!Number.isFinite(lo)) return [-8, 0];
    if (hi - lo < 1) return [hi - 1, hi];
    return [lo, hi];
  }

  /** Whether layer entry l reads the input last step to first (its BPTT runs first step to last). */
  isReverse(l) {
    return this.directions[l] === "reverse";
  }

  /** Layer entry l's name: "layer 2", or with two directions "layer 1 →" / "layer 1 ← reverse". */
  layerName(l) {
    if (!this.bidirectional) return `layer ${l + 1}`;
    let k = 0; // the layer's own number: entries before l that read forward
    for (let j = 0; j < l; j++) if (this.directions[j] === "forward") k++;
    return this.isReverse(l) ? `layer ${k} ← reverse` : `layer ${k + 1} →`;
  }

  /** Short label of step t's top prediction: a token or a class. */
  topPrediction(t) {
    // a classifier's, or any trace with label probabilities (a series classifier: frames in, a label out)
    if (this.family.head === "classes" || this.probs) {
      const p = this.probsAt(t);
      let best = 0;
      for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
      return { token: String(this.labels[best]), p: p[best] };
    }
    const pred = this.predictions[t];
    return pred && pred.length ? pred[0] : null;
  }
}
