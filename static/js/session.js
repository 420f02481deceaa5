// One run of a model on one input: opens the stream (REST if the stream cannot be opened), fills a Trace
// frame by frame and tells the page, at most once per animation frame, that more has arrived.

import { ApiError, generate, stream, trace as traceRest } from "./api.js";
import { bus } from "./bus.js";
import { familyOf } from "./families.js";
import { clearInputError, reportRunError } from "./inputerror.js";
import { Trace } from "./trace.js";
import { clearUnknown, showRead } from "./unknown.js";

/**
 * What a model's run and a translation's share: one stream at a time (a new start closes the last), the page told
 * at most once per animation frame that more has arrived, and REST (the subclass's rest) if the stream cannot be
 * opened.
 */
export class StreamSession {
  /**
   * onTrace(trace): a new trace began; onData(trace): more frames (coalesced); onDone(trace, frame). expose: the
   * trace is the page's (window.__unrolled.trace); false for a run beside it (a tour scene's guest melody).
   * besideInput: a bad input's error is shown beside the page's input (inputerror.js) until a run is accepted,
   * not in the status toast.
   */
  constructor(modelId, { onTrace, onData, onDone = () => {}, expose = true, besideInput = false, transport = "stream" }) {
    this.expose = expose;
    this.transport = transport; // "rest": the whole run in one REST body (whole), never the stream
    this.besideInput = besideInput;
    this.modelId = modelId;
    this.onTrace = (trace) => {
      if (besideInput) clearInputError(); // the server took the input: the last one's error goes
      onTrace(trace);
    };
    this.onData = onData;
    this.onDone = onDone;
    this.handle = null;
    this.trace = null;
    this.pending = false;
    this.run = 0;
  }

  flush() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      if (this.trace) this.onData(this.trace);
    });
  }

  close() {
    this.handle?.close();
    this.handle = null;
  }

  /**
   * Streams `body`, each frame of this run to `read(f)` (which fills this.trace); resolves with the finished
   * trace, or null if closed or replaced by a newer run. If the stream cannot be opened, this.rest(request, run).
   */
  async open(request, body, read) {
    this.close();
    const run = ++this.run;
    this.trace = null;
    let gotMeta = false;
    const onFrame = (f) => {
      if (run !== this.run) return;
      if (f.type === "meta") gotMeta = true;
      read(f);
    };
    bus.emit("status", { message: "" });
    if (this.expose) clearUnknown();
    try {
      this.handle = stream(this.modelId, body, onFrame);
      const done = await this.handle.done;
      if (done.closed || run !== this.run) return null;
      this.onData(this.trace); // everything in before the page hears it is done
      if (this.expose) showRead(this.trace, this.card);
      this.onDone(this.trace, done);
      if (this.expose) window.__unrolled.transport = "stream";
      return this.trace;
    } catch (e) {
      if (run !== this.run) return null;
      if (!gotMeta && e instanceof ApiError && e.status === 0) {
        try {
          return await this.rest(request, run);
        } catch (restError) {
          if (run === this.run) this.fail(restError); // over REST, a bad input is named as over the stream
          throw restError;
        }
      }
      this.fail(e);
      throw e;
    }
  }

  /**
   * The whole run in one REST body (the subclass's rest): for a run a room asks all at once with the same request,
   * which the server computes once and compresses once for everyone (a stream's frames travel uncompressed).
   */
  async whole(request) {
    this.close();
    const run = ++this.run;
    this.trace = null;
    bus.emit("status", { message: "" });
    if (this.expose) clearUnknown();
    try {
      return await this.rest(request, run);
    } catch (e) {
      if (run === this.run) this.fail(e);
      throw e;
    }
  }

  /** Tell the presenter why a run failed: beside the input (besideInput), or in the status toast. */
  fail(e) {
    if (this.besideInput) reportRunError(e);
    else bus.emit("status", { kind: "error", message: `${e.message}` });
  }
}

export class Session extends StreamSession {
  /** As StreamSession; card: the model's card (its vocabulary and labels), or set later as session.card. */
  constructor(modelId, { card = null, ...rest }) {
    super(modelId, rest);
    this.card = card;
  }

  /** request: a trace body, or {mode: "generate", …}. Resolves with the finished Trace. */
  async start(request) {
    if (this.transport === "rest") return this.whole(request);
    const read = (f) => {
      if (f.type === "meta") {
        this.meta = f;
        this.stepRecords = 0;
        this.trace = new Trace({ ...f, labels: f.labels ?? this.card?.labels ?? null });
        if (this.expose) {
          window.__unrolled.trace = this.trace;
          window.__unrolled.encoding = f.encoding ?? "json";
        }
        this.onTrace(this.trace);
      } else if (f.type === "binary") {
        // Binary messages carry whole records: the trace's T step records first, then its grad records.
        const m = this.meta;
        const stepSize = m.step_record_bytes;
        const gradSize = m.grad_record_bytes;
        for (let off = 0; off < f.buffer.byteLength; ) {
          if (this.stepRecords < m.steps) {
            this.trace.addBinaryStep(f.buffer, off, m.layout, this.card.vocab ?? []);
            this.stepRecords++;
            off += stepSize;
          } else {
            this.trace.addBinaryGrad(f.buffer, off, m.grad_layout);
            off += gradSize;
          }
        }
        this.flush();
      } else if (f.type === "step") {
        this.trace.addStep(f);
        this.flush();
      } else if (f.type === "grad") {
        this.trace.addGrad(f);
        this.flush();
      } else if (f.type === "done") {
        this.trace.finish(f);
        this.flush();
      }
    };
    // A traced input's steps travel as float32 arrays (half the bytes of JSON, and nothing to parse) when the
    // card's vocabulary can name the predicted tokens; generation streams JSON as each token is sampled.
    // (A series model's steps travel as JSON: a few numbers beside the states.)
    const family = familyOf(this.card);
    const binary = request.mode !== "generate" && family.binary(this.card);
    // Binary records carry float32 and float64 whole, never rounded: a precision is for JSON (the REST fallback).
    const { precision, ...exact } = request;
    // A traced input in JSON: its frames `batch` to a message where its family says so (arrays, api.js stream)
    const batch = request.mode === undefined ? (family.batch ?? 1) : 1;
    const body = binary ? { ...exact, encoding: "binary", batch: 64 } : batch > 1 ? { ...request, batch } : request;
    return this.open(request, body, read);
  }

  /** The stream could not be opened (a proxy without WebSockets): the same trace over REST. */
  async rest(request, run) {
    const { mode, encoding, ...body } = request;
    const reply = mode === "generate" ? (await generate(this.modelId, body)).trace : await traceRest(this.modelId, body);
    if (run !== this.run) return null;
    this.trace = Trace.fromBody(reply, this.card);
    if (this.expose) window.__unrolled.trace = this.trace; // as the stream's meta frame makes it the page's
    this.onTrace(this.trace);
    this.onData(this.trace);
    if (this.expose) showRead(this.trace, this.card);
    this.onDone(this.trace, {});
    if (this.expose) window.__unrolled.transport = "rest";
    return this.trace;
  }
}
