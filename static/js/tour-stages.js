// Talk mode's stages: what a scene shows, built from the same views as the pages (views/*.js) and the tour's
// own plots (tour-plots.js), all on the page's one Player. A stage runs its scene's input through a Session
// (the stream) or, for the extra runs of a certainty scene, the REST API; it fills its panels, and calls
// ctx.onReady() once every trace has arrived and been handed to the views.
//
//   ModelStage     model, sequences, bptt: one model on one input, any of the model panels
//   CertaintyStage a model stage plus p(the next token) for several models × inputs
//   LearningStage  a model stage at a checkpoint of training, with a slider over the checkpoints
//   CompareStage   several models on one input: gradient norms on one axis, their gates, their unrolled rows
//   GenerateStage  a next-token model writing, streamed
//   TranslateStage an encoder–decoder translating, its attention drawn; a switch runs the model without it
//   MelodyStage    a melody model: its piano roll on the cursor, each note sounding as the cursor reaches it
//   SeriesStage    a series model: the series, its one-step predictions and forecast, ∂L/∂x_t
//   TranscribeStage a speech model listening to an example clip: its sound on the cursor (L plays it), CTC's
//                  posteriors and the collapse, BPTT over the frames
//   CaptionStage   a caption model looking at the scene its input describes (drawn by the training's rules): the
//                  attention over the picture, the caption word by word, the decoder, BPTT into the picture
//   KnobsStage, TrainStage  the lab's (tour-lab.js): the gradient knobs, cells trained live; no model, no cursor
// A model stage's roll and forecast panels, in a scene of another model, are guests (tour-sequences.js).

import { caption, captionScenes, generate, speechExample, speechExamples, transcribe, trace as traceRest } from "./api.js";
import { bus } from "./bus.js";
import { ACCENT } from "./colors.js";
import { COMPARE_PANELS, PANELS, makePanel, node, panelSection } from "./panels.js";
import { speedFor } from "./player.js";
import { Plotly, baseLayout, makePlot, plotConfig } from "./plots.js";
import { Session } from "./session.js";
import { showRead } from "./unknown.js";
import { Trace } from "./trace.js";
import { GATE_SERIES, TimeHeatmap } from "./views/heatmap.js";
import { TranslateSession, showLetter } from "./translation.js";
import { sharedSynth } from "./audio.js";
import { parseNumbers } from "./numbers.js";
import { TEMPO, soundNote } from "./tour-sequences.js";
import { parseNote } from "./notes.js";
import { KnobsStage, LAB_VIEWS, TrainStage } from "./tour-lab.js";
import { Listener, clipsOf, readTrace, soundOf } from "./speech.js";
import { paint, pngOf, readTrace as readCaption, sceneOfWords } from "./caption.js";

// The gate that keeps memory, per cell: the one to watch open and close.
const KEY_GATES = {
  lstm: { gates: ["forget"], says: "forget gate f (1: keep c_{t−1})" },
  gru: { gates: ["update"], says: "update gate z (1: copy h_{t−1})" },
  mingru: { gates: ["update"], says: "update gate z (0: keep h_{t−1}; it reads x_t only)" },
  minlstm: { gates: ["forget"], says: "forget gate f′ (1: keep h_{t−1}; it reads x_t only)" },
  s6: { gates: ["step"], says: "step Δ (0: keep h_{t−1}, write nothing)" },
};

/**
 * The request body of a traced input. The scene's label is the target of the scene's own input only: an input
 * the audience typed is scored against its own target (the memory task's first symbol, or the model's answer).
 */
function traceBody(scene, text, own, extra = {}) {
  return {
    text,
    top_k: 5,
    precision: 4,
    ...(scene.label && own ? { label: scene.label } : {}),
    ...(scene.loss ? { loss: scene.loss } : {}),
    ...(scene.checkpoint ? { checkpoint: scene.checkpoint } : {}),
    ...extra,
  };
}

class Stage {
  /** ctx: {root, scene, player, cards, onReady, start: {step?, phase?, play}} */
  constructor(ctx) {
    this.ctx = ctx;
    this.root = ctx.root;
    this.scene = ctx.scene;
    this.player = ctx.player;
    this.cards = ctx.cards;
    this.card = ctx.cards[0];
    this.views = [];
    this.unrolledViews = [];
    this.sessions = [];
    this.trace = null; // the trace the time cursor runs over
    this.cursor = null;
    this.unit = 0;
    this.layer = 0;
    this.closed = false;
    this.ready = false;
    this.guests = []; // a melody or series run beside the scene's model (tour-sequences.js)
  }

  /** A panel of the stage's own (not in the registry): {section, body, tools, info}. */
  panel(key, title, { info = false, size = "full" } = {}) {
    const p = panelSection(key, title, { info, size });
    this.root.append(p.section);
    return p;
  }

  /** A panel of the registry (panels.js): its view joins the stage's views. */
  addPanel(key, extra = {}) {
    if (this.addOwnPanel?.(key)) return;
    const { view, entry } = makePanel(this.root, key, { card: this.card, cards: this.cards, scene: this.scene, on: "tour", stage: this, ...extra });
    if (!view) return;
    this.views.push(view);
    if (entry.resizes) this.unrolledViews.push(view);
  }

  /** Half-width panels pair up in the order given; one left without a partner takes the whole row. */
  balance() {
    let alone = null;
    for (const el of this.root.querySelectorAll(".tour-panel")) {
      const half = el.classList.contains("size-half");
      if (half && !alone) alone = el;
      else {
        if (!half) alone?.classList.replace("size-half", "size-full");
        alone = null;
      }
    }
    alone?.classList.replace("size-half", "size-full");
  }

  push(data) {
    for (const v of this.views) v.update(data);
  }

  /** Where the cursor starts in a trace of T steps: the URL's moment on a first load, else the scene's. */
  startAt(T) {
    const s = this.ctx.start;
    const step = s.step || this.scene.step || 1;
    const t = step > 0 ? step - 1 : T + step;
    return { phase: s.phase || this.scene.phase || "forward", t: Math.max(0, Math.min(T - 1, t)) };
  }

  speed(T) {
    return this.ctx.start.speed || this.scene.speed || speedFor(T);
  }

  /** Where the cursor starts and what play runs, for player.reset. */
  startOf(T) {
    return { ...this.startAt(T), sweeps: this.scene.sweeps ?? "both" };
  }

  /** Is the stage running the scene's own input (so that the scene's label applies)? */
  get own() {
    return !this.ctx.edited;
  }

  markReady() {
    if (this.ready || this.closed) return;
    this.ready = true;
    this.ctx.onReady(this);
    if (this.ctx.start.play) this.player.play();
  }

  fail(e) {
    if (this.closed) return;
    bus.emit("status", { kind: "error", message: e?.message ?? String(e) });
    this.ctx.onError?.(this, e);
  }

  onCursor(cursor) {
    if (!this.trace) return;
    this.cursor = cursor;
    this.push({ cursor, trace: this.trace });
  }

  onUnit({ unit, layer }) {
    if (!this.trace) return;
    this.unit = Math.max(0, Math.min(this.trace.H - 1, unit));
    if (layer !== undefined) this.layer = Math.max(0, Math.min(this.trace.L - 1, layer));
    this.push({ unit: this.unit, layer: this.layer });
  }

  onLayout() {
    for (const v of this.unrolledViews) v.resize();
    this.push({ relayout: true, trace: this.trace ?? undefined, cursor: this.cursor ?? undefined });
    for (const g of this.guests) g.relayout();
  }

  close() {
    this.closed = true;
    for (const s of this.sessions) s.close();
    for (const g of this.guests) g.close();
  }
}

/** One model on one input (model, sequences and bptt scenes): any of the model page's panels. */
export class ModelStage extends Stage {
  constructor(ctx) {
    super(ctx);
    this.session = new Session(this.card.id, {
      card: this.card,
      onTrace: (tr) => this.onTrace(tr),
      onData: (tr) => this.onData(tr),
      onDone: (tr) => this.onDone(tr),
    });
    this.sessions.push(this.session);
    for (const key of this.scene.panels) this.addPanel(key);
    this.balance();
  }

  body(text) {
    return traceBody(this.scene, text, this.own);
  }

  start(inputs) {
    this.inputs = inputs;
    for (const g of this.guests) g.start();
    return this.session.start(this.body(inputs[0])).catch((e) => this.fail(e));
  }

  onTrace(tr) {
    if (this.closed) return;
    this.trace = tr;
    this.unit = Math.min(this.unit, tr.H - 1);
    this.layer = Math.min(this.layer, tr.L - 1);
    this.player.setSpeed(this.speed(tr.T));
    this.player.reset(tr.T, this.startOf(tr.T));
    this.push({ trace: tr, unit: this.unit, layer: this.layer, version: tr.version });
    this.ctx.onTarget?.([tr]);
  }

  onData(tr) {
    if (this.closed) return;
    this.player.setAvailable(tr.steps, tr.gradFrom, tr.T);
    this.push({ trace: tr, version: tr.version });
  }

  onDone() {
    Promise.all(this.guests.map((g) => g.ready)).then(() => this.markReady());
  }
}

/** A melody model on the scene's cursor: in the forward sweep each note lasts its length and sounds. */
export class MelodyStage extends ModelStage {
  constructor(ctx) {
    super(ctx);
    this.synth = this.synth ?? sharedSynth(null);
    this.sounded = -1;
  }

  onCursor(cursor) {
    super.onCursor(cursor);
    const tr = this.trace;
    if (!tr) return;
    if (cursor.phase !== "forward") {
      this.sounded = -1;
      return;
    }
    if (cursor.t === this.sounded || cursor.t >= tr.steps) return;
    this.sounded = cursor.t;
    soundNote(this.synth, tr, cursor.t);
    if (cursor.playing) this.player.setSpeed(TEMPO / 60 / Math.max(0.125, (parseNote(tr.tokens[cursor.t]) ?? { dur: 1 }).dur));
  }
}

/** A series model: its input is numbers; after the trace, the forecast from them (the generate endpoint). */
export class SeriesStage extends ModelStage {
  constructor(ctx) {
    super(ctx);
    this.forecast = null;
  }

  /** The first year of the scene's own input (its model's example), else steps are counted. */
  first() {
    return this.own ? (this.card.examples?.[0]?.first ?? null) : null;
  }

  body(text) {
    return {
      values: parseNumbers(text),
      loss: this.scene.loss ?? "last",
      precision: 4,
      ...(this.scene.checkpoint ? { checkpoint: this.scene.checkpoint } : {}),
    };
  }

  start(inputs) {
    this.inputs = inputs;
    this.forecast = null;
    const body = this.body(inputs[0]);
    return this.session
      .start(body)
      .then(async (tr) => {
        if (!tr || this.closed) return;
        const reply = await generate(this.card.id, { values: body.values, length: Math.min(this.scene.length, 40), precision: 6 });
        if (this.closed) return;
        this.forecast = reply.forecast;
        this.push({ trace: tr, version: tr.version, relayout: true });
      })
      .catch((e) => this.fail(e));
  }
}

/**
 * Sequential memory: p(the next token that came) per step, for each model × input, from each step's own loss
 * (−log p of the next token). The unrolled view and the cursor follow the first model on the first input.
 */
export class CertaintyStage extends ModelStage {
  start(inputs) {
    this.inputs = inputs;
    this.runs = inputs.map((input) => ({ input, lines: this.cards.map((c) => ({ model: c.id, trace: null })) }));
    this.pending = 1;
    const id = (this.runId = (this.runId ?? 0) + 1);
    const primary = this.session.start(this.body(inputs[0])).catch((e) => this.fail(e));
    this.runs.forEach((run, i) =>
      run.lines.forEach((line, j) => {
        if (i === 0 && j === 0) return;
        this.pending++;
        traceRest(line.model, { text: run.input, top_k: 1, precision: 4 })
          .then((body) => {
            if (this.closed || id !== this.runId) return;
            line.trace = Trace.fromBody(body, this.cards[j]);
            showRead(line.trace, this.cards[j]);
            this.arrived();
          })
          .catch((e) => id === this.runId && this.fail(e));
      }),
    );
    return primary;
  }

  onTrace(tr) {
    super.onTrace(tr);
    if (this.runs) this.runs[0].lines[0].trace = tr;
  }

  onDone() {
    this.arrived();
  }

  arrived() {
    if (this.closed) return;
    this.pending--;
    this.certainty?.update({ runs: this.runs, cursor: this.cursor ?? undefined });
    if (this.pending === 0) this.markReady();
  }
}

/** A model at a checkpoint of its training; the slider runs the same input at another checkpoint. */
export class LearningStage extends ModelStage {
  constructor(ctx) {
    const names = ctx.cards[0].checkpoints.map((c) => c.name);
    super(ctx);
    this.checkpoint = names.includes(this.scene.checkpoint) ? this.scene.checkpoint : names[names.length - 1] ?? null;
    this.showCheckpoint();
  }

  addOwnPanel(key) {
    if (key !== "checkpoints") return false;
    const p = this.panel(key, "Training: the same input at a checkpoint", { size: "half" });
    const cks = this.card.checkpoints;
    const bar = node("div", "ckpt-box");
    this.slider = node("input");
    Object.assign(this.slider, { type: "range", min: "0", max: String(Math.max(0, cks.length - 1)), step: "1" });
    this.slider.setAttribute("aria-label", "Checkpoint");
    this.ckptLabel = node("span", "ckpt-value");
    bar.append(node("span", "runbar-label", "training"), this.slider, this.ckptLabel);
    p.body.append(bar);
    this.curve = makePlot(p.body, "tour-training-curve", "plot-curve");
    this.slider.addEventListener("input", () => {
      this.checkpoint = cks[Number(this.slider.value)]?.name ?? null;
      this.showCheckpoint();
      this.rerun();
    });
    return true;
  }

  showCheckpoint() {
    if (!this.slider) return;
    const cks = this.card.checkpoints;
    const i = Math.max(0, cks.findIndex((c) => c.name === this.checkpoint));
    this.slider.value = String(i);
    const ck = cks[i];
    this.ckptLabel.textContent = ck ? `${ck.name} % of training · step ${ck.step}` : "no checkpoints";
    const curve = this.card.curve ?? [];
    const layout = baseLayout({
      height: 200,
      margin: { l: 56, r: 12, t: 8, b: 40 },
      xaxis: { title: { text: "training step" } },
      yaxis: { title: { text: "loss" }, rangemode: "tozero" },
      shapes: ck ? [{ type: "line", xref: "x", yref: "paper", x0: ck.step, x1: ck.step, y0: 0, y1: 1, line: { color: ACCENT, width: 3 } }] : [],
    });
    const data = [{ type: "scatter", mode: "lines", x: curve.map((c) => c.step), y: curve.map((c) => c.loss), line: { color: "#64748b", width: 2 }, name: "training loss" }];
    this.curve.style.height = "200px";
    Plotly.react(this.curve, data, layout, plotConfig("training-curve"));
  }

  body(text) {
    return traceBody(this.scene, text, this.own, this.checkpoint ? { checkpoint: this.checkpoint } : {});
  }

  /** Another checkpoint, the same input and the same moment. */
  rerun() {
    if (this.cursor) this.ctx.start = { ...this.ctx.start, step: this.cursor.t + 1, phase: this.cursor.phase, play: false };
    this.start(this.inputs);
  }
}

/** Several models on the same input, one cursor: the compare page's views, with the gates that keep memory. */
export class CompareStage extends Stage {
  constructor(ctx) {
    super(ctx);
    this.traces = this.cards.map(() => null);
    this.sessions = this.cards.map(
      (card, i) =>
        new Session(card.id, {
          card,
          onTrace: (tr) => {
            this.traces[i] = tr;
            this.sync();
          },
          onData: () => this.sync(),
          onDone: () => {
            this.sync();
            if (this.traces.every((tr) => tr?.done)) this.markReady();
          },
        }),
    );
    const panels = this.scene.panels;
    // the curves beside the gates (or the cells drawn) when both are shown: one screen for the lesson
    const beside = panels.includes("diagram") ? "diagram" : "gates";
    const pair = panels.includes("norms") && panels.includes(beside) && (beside === "diagram" || this.cards.some((c) => KEY_GATES[c.cell]));
    for (const key of panels) this.addPanel(key, pair && (key === "norms" || key === beside) ? "half" : "full");
    this.balance();
  }

  addPanel(key, size) {
    if (COMPARE_PANELS[key]) {
      const entry = PANELS[COMPARE_PANELS[key]];
      const at = { card: this.card, cards: this.cards, scene: this.scene, on: "tour", stage: this, compared: true };
      const view = entry.make(this.panel(key, entry.title(at), key === "cells" ? {} : { size }), at);
      if (key === "norms") this.norms = view;
      else if (key === "cells") {
        this.rows = view;
        this.unrolledViews.push(view);
      } else this.drawn = view; // the cells drawn side by side at the cursor (update({traces}))
    } else if (key === "gates") {
      const p = this.panel(key, "The gates that keep memory, over time", { size }); // the values: hover the map
      this.gates = [];
      this.cards.forEach((card, i) => {
        const keep = KEY_GATES[card.cell];
        if (!keep) return;
        p.body.append(node("h3", "sub", `${card.cell.toUpperCase()} ${keep.says}, units × time`));
        const host = node("div");
        p.body.append(host);
        const series = (tr) => GATE_SERIES(tr).filter((s) => keep.gates.includes(s.key));
        this.gates.push({ i, view: new TimeHeatmap(host, { series, name: `tour-gates-${card.id}`, info: p.info, talk: { area: 54, axis: false } }) });
      });
      if (!this.gates.length) p.body.append(node("p", "caption", "None of these cells has gates."));
    } else {
      throw new Error(`a compare scene has no ${key} panel`);
    }
  }

  start(inputs) {
    this.traces.fill(null);
    this.started = false;
    // L is the last step's loss by default: BPTT then starts at one step, and the fall of ‖∂L/∂h_t‖ is plain.
    const body = traceBody(this.scene, inputs[0], this.own, { loss: this.scene.loss ?? "last", top_k: 3 });
    return Promise.all(this.sessions.map((s) => s.start(body).catch((e) => this.fail(e))));
  }

  sync() {
    if (this.closed) return;
    const ready = this.traces.filter(Boolean);
    if (ready.length < this.traces.length) return;
    const T = Math.min(...ready.map((tr) => tr.T));
    const steps = Math.min(...ready.map((tr) => tr.steps));
    const gradFrom = Math.max(...ready.map((tr) => tr.gradFrom));
    if (!this.started) {
      this.started = true;
      this.trace = ready[0];
      this.player.setSpeed(this.speed(T));
      this.player.reset(T, this.startOf(T));
      this.ctx.onTarget?.(ready);
    }
    this.player.setAvailable(Math.min(steps, T), Math.min(gradFrom, T), T);
    const version = ready.map((tr) => tr.version).join(",");
    this.rows?.update({ traces: [...this.traces], version });
    this.norms?.update({ traces: ready });
    this.drawn?.update({ traces: ready });
    this.gates?.forEach((g) => g.view.update({ trace: this.traces[g.i] }));
  }

  onCursor(c) {
    if (!this.trace) return;
    this.cursor = c;
    this.rows?.update({ cursor: c });
    this.norms?.update({ cursor: c });
    this.drawn?.update({ cursor: c });
    this.gates?.forEach((g) => g.view.update({ cursor: c }));
  }

  onUnit({ unit }) {
    if (!this.trace) return;
    this.unit = Math.max(0, Math.min(this.trace.H - 1, unit));
    this.drawn?.update({ unit: this.unit });
    this.gates?.forEach((g) => g.view.update({ unit: this.unit }));
  }

  onLayout() {
    for (const v of this.unrolledViews) v.resize();
    this.norms?.update({ relayout: true });
    this.drawn?.update({ relayout: true });
    this.gates?.forEach((g) => g.view.update({ relayout: true }));
  }
}

/** A next-token model writes: the prompt, then one sampled token per step, the cursor following them. */
export class GenerateStage extends Stage {
  constructor(ctx) {
    super(ctx);
    this.session = new Session(this.card.id, {
      card: this.card,
      // The scene's text is written by its seed, the same on every screen of a room: one REST body, computed and
      // compressed once by the server for all of them (a stream sent each student 1.1 MB of JSON frames). The
      // cursor still writes it a step at a time, at the scene's speed.
      transport: "rest",
      onTrace: (tr) => {
        if (this.closed) return;
        this.trace = tr;
        this.player.setSpeed(this.ctx.start.speed || this.scene.speed || 15);
        this.player.reset(tr.T, { sweeps: this.scene.sweeps ?? "both" });
        this.push({ trace: tr, version: tr.version });
        this.player.play(); // the cursor follows the tokens as they are sampled
      },
      onData: (tr) => {
        if (this.closed) return;
        this.player.setAvailable(tr.steps, tr.gradFrom, tr.T);
        this.push({ trace: tr, version: tr.version });
      },
      onDone: (tr) => {
        this.push({ trace: tr, version: tr.version });
        this.ctx.start = { ...this.ctx.start, play: false };
        this.markReady();
      },
    });
    this.sessions.push(this.session);
    for (const key of this.scene.panels) this.addPanel(key, { writing: true });
    this.balance();
  }

  /**
   * Every run samples afresh: a new seed each time, unless the URL's (ctx.seed, a link that replays a text) or the
   * scene file's names one for the first run. The seed is shown, and S samples again.
   */
  start(inputs) {
    const s = this.scene;
    const seed = this.ctx.seed ?? (this.runs ? null : s.seed) ?? Math.floor(Math.random() * 2 ** 31);
    this.ctx.seed = undefined;
    this.runs = (this.runs ?? 0) + 1;
    if (this.seedNote) this.seedNote.textContent = `seed ${seed} · S samples again`;
    this.ctx.onSeed?.(seed);
    window.__unrolled.tourSeed = seed;
    // 3 digits: what the colours and the readouts show; the room's body is a fifth smaller than at 4
    const body = { mode: "generate", prompt: inputs[0], length: s.length, temperature: s.temperature, seed, top_k: 5, precision: 3 };
    return this.session.start(body).catch((e) => this.fail(e));
  }

  /** S runs the stage again on its input (tour.js): a writing scene samples afresh. */
  get samples() {
    return true;
  }
}

/**
 * An encoder–decoder on one input: its two rows unrolled with the attention between them, the attention
 * heatmap, the beam's candidates, the decoder's top-k, both BPTT sweeps. With a second model (the scene's
 * `models`: the same task with attention switched), a switch (or A) runs the same input on it.
 */
export class TranslateStage extends Stage {
  constructor(ctx) {
    super(ctx);
    this.index = 0; // which of the scene's models runs
    this.session = new TranslateSession(this.card.id, {
      onTrace: (tr) => this.onTrace(tr),
      onData: (tr) => this.onData(tr),
      onDone: (tr) => {
        this.onData(tr);
        this.markReady();
      },
    });
    this.sessions.push(this.session);
    for (const key of this.scene.panels) this.addPanel(key);
    this.balance();
  }

  /** The encoder–decoder's panel (panels.js) carries the German written so far and the attention switch. */
  decorateEncDec(p) {
    this.output = node("span", "translation-now");
    p.section.querySelector(".panel-head h2").after(this.output);
    if (this.cards.length < 2) return;
    this.switch = node("button", "switch");
    Object.assign(this.switch, { type: "button", title: "The same input with / without attention (A)" });
    this.switch.setAttribute("role", "switch");
    const track = node("span", "switch-track");
    track.append(node("span", "switch-knob"));
    const kbd = node("kbd", "", "A");
    this.switch.append(track, " attention ", kbd);
    this.switch.addEventListener("click", () => this.toggleAttention());
    p.tools.append(this.switch);
  }

  get model() {
    return this.cards[this.index];
  }

  start(inputs) {
    this.inputs = inputs;
    this.showSwitch();
    this.session.modelId = this.model.id;
    const body = { text: inputs[0], beam: this.scene.beam ?? 1, top_k: 5, precision: 4 };
    return this.session.start(body).catch((e) => this.fail(e));
  }

  /** The scene's other model (attention switched), on the same input, from the first step. */
  toggleAttention() {
    if (this.cards.length < 2 || !this.inputs) return;
    this.index = 1 - this.index;
    this.ctx.start = { ...this.ctx.start, step: 1, phase: "forward", play: true };
    this.ready = false;
    this.start(this.inputs);
  }

  showSwitch() {
    if (!this.switch) return;
    this.switch.setAttribute("aria-checked", String(Boolean(this.model.attention)));
    this.switch.title = `Now ${this.model.id}: press A for ${this.cards[1 - this.index].id} (${this.model.attention ? "without" : "with"} attention)`;
  }

  onKey(key) {
    if (key === "a" || key === "A") this.toggleAttention();
  }

  onTrace(tr) {
    if (this.closed) return;
    this.trace = tr;
    this.player.setSpeed(this.speed(tr.T));
    this.player.reset(tr.T, this.startOf(tr.T));
    this.push({ trace: tr, version: tr.version });
  }

  onData(tr) {
    if (this.closed) return;
    this.player.setAvailable(tr.steps, tr.gradFrom, tr.T);
    this.push({ trace: tr, version: tr.version });
    this.showOutput();
  }

  onCursor(cursor) {
    super.onCursor(cursor);
    this.showOutput();
  }

  /** The German written so far (by the cursor), the rest to come in grey. */
  showOutput() {
    const tr = this.trace;
    if (!this.output || !tr) return;
    const letters = tr.written.filter((w) => w !== "</s>");
    const c = this.cursor ?? { phase: "forward", t: 0 };
    const { side, i } = tr.at(c.t);
    const n = c.phase === "backward" ? letters.length : side === "decoder" ? Math.min(letters.length, i + 1) : 0;
    const key = `${tr.model}|${tr.version}|${n}`;
    if (this.output.dataset.key === key) return;
    this.output.dataset.key = key;
    const arrow = node("span", "out-arrow", "→");
    this.output.replaceChildren(arrow, node("span", "out-written", letters.slice(0, n).join("")), node("span", "out-ahead", letters.slice(n).join("")));
    this.output.title = `${tr.model}: ${tr.output}${tr.finished ? "" : "…"} ${showLetter("</s>")}`;
  }
}

/**
 * A speech model listening: the example clip whose words are the scene's input (the zoo's models/speech-examples),
 * transcribed on the server; the sound on the cursor, the network over frames, CTC's posteriors and the collapse,
 * the beams, BPTT (panels.js: the transcribe family's). L plays the clip from the cursor, the cursor following.
 */
export class TranscribeStage extends Stage {
  constructor(ctx) {
    super(ctx);
    this.listener = new Listener();
    this.run = 0;
    for (const key of this.scene.panels) this.addPanel(key);
    this.balance();
  }

  async start(inputs) {
    this.inputs = inputs;
    this.listener.stop();
    const run = ++this.run;
    try {
      const clips = clipsOf((await speechExamples()).examples, this.card);
      const said = inputs[0].trim().toLowerCase();
      const clip = clips.find((c) => c.words === said || c.name === said);
      if (!clip) throw new Error(`no example clip says “${inputs[0]}”: the clips say ${clips.map((c) => `“${c.words}”`).join(", ") || "nothing (models/speech-examples is empty)"}`);
      const bytes = await speechExample(clip.name);
      const reply = await transcribe(this.card.id, bytes);
      const sound = await soundOf(bytes);
      if (this.closed || run !== this.run) return;
      const tr = readTrace(reply);
      this.trace = tr;
      this.sound = sound;
      window.__unrolled.transcript = tr.text;
      this.player.setSpeed(this.speed(tr.T));
      this.player.reset(tr.T, this.startOf(tr.T));
      this.push({ trace: tr, sound });
      this.player.setAvailable(tr.T, 0, tr.T);
      this.markReady();
    } catch (e) {
      this.fail(e);
    }
  }

  onKey(key) {
    if ((key === "l" || key === "L") && this.trace && this.sound) {
      this.player.pause();
      this.listener.toggle(this.trace, this.sound, this.cursor?.t ?? null);
    }
  }

  close() {
    this.listener.stop();
    super.close();
  }
}

/**
 * A caption model looking at a picture: the scene the input's words describe ("a small red circle left of a big blue
 * square"), drawn here by the training's rules and sent as a PNG; the picture with the attention of the cursor's
 * word, the caption written word by word, the decoder unrolled, the beams, BPTT into the picture's regions
 * (panels.js: the caption family's). An audience's words draw their own scene.
 */
export class CaptionStage extends Stage {
  constructor(ctx) {
    super(ctx);
    this.run = 0;
    for (const key of this.scene.panels) this.addPanel(key);
    this.balance();
  }

  async start(inputs) {
    this.inputs = inputs;
    const run = ++this.run;
    try {
      const rules = await captionScenes();
      const shapes = sceneOfWords(rules, inputs[0]);
      const reply = await caption(this.card.id, await pngOf(rules, shapes), 3);
      if (this.closed || run !== this.run) return;
      const tr = readCaption(reply, paint(rules, shapes));
      this.trace = tr;
      window.__unrolled.caption = tr.caption;
      this.player.setSpeed(this.speed(tr.T));
      this.player.reset(tr.T, this.startOf(tr.T));
      this.push({ trace: tr });
      this.player.setAvailable(tr.T, 0, tr.T);
      this.markReady();
    } catch (e) {
      this.fail(e);
    }
  }
}

const STAGES = {
  model: ModelStage,
  sequences: ModelStage,
  bptt: ModelStage,
  certainty: CertaintyStage,
  learning: LearningStage,
  compare: CompareStage,
  generate: GenerateStage,
  translate: TranslateStage,
  melody: MelodyStage,
  series: SeriesStage,
  transcribe: TranscribeStage,
  caption: CaptionStage,
  knobs: KnobsStage,
  train: TrainStage,
};

export function makeStage(ctx) {
  const Kind = STAGES[ctx.scene.view] ?? ModelStage;
  return new Kind(ctx);
}

/** How many input boxes a scene has: a certainty scene one per input, every other scene one. */
export const inputCount = (scene) => (scene.view === "certainty" ? Math.max(1, scene.inputs.length) : LAB_VIEWS.has(scene.view) ? 0 : 1);
