// Talk mode's lab stages (the lab page's views, /lab, on a tour's scene): the knobs of the vanishing gradient and
// cells trained live. They run no model of the zoo and have no time cursor: keys drive them ([ and ] turn the live
// curve's radius, K keeps it; T starts or stops the training, V plays the run recorded on the server).
//
//   KnobsStage  a fresh network's ‖∂L/∂h_t‖ on a log axis for each of the scene's knob settings, the first live
//   TrainStage  the memory task trained live, each cell's loss, accuracy and ‖∂L/∂h_1‖ ÷ ‖∂L/∂h_T‖ per step

import { ApiError, labGradients } from "./api.js";
import { bus } from "./bus.js";
import { node } from "./dom.js";
import { panelSection } from "./panels.js";
import { KnobsView } from "./views/knobs.js";
import { TrainView, Trainer } from "./views/labtrain.js";

export const LAB_VIEWS = new Set(["knobs", "train"]);
const RADIUS_STEP = 0.05;

/** What the tour page asks of a stage, for a scene without a model, a trace or a cursor. */
class LabStage {
  constructor(ctx) {
    this.ctx = ctx;
    this.root = ctx.root;
    this.scene = ctx.scene;
    this.trace = null; // no time cursor
    this.ready = false;
    this.closed = false;
  }

  panel(key, title) {
    const p = panelSection(key, title, { info: true });
    p.tools.classList.add("lab-tools");
    p.info.classList.add("lab-info");
    this.root.append(p.section);
    return p;
  }

  markReady() {
    if (this.ready || this.closed) return;
    this.ready = true;
    this.ctx.onReady(this);
  }

  fail(e) {
    if (this.closed) return;
    bus.emit("status", { kind: "error", message: e?.message ?? String(e) });
    this.ctx.onError?.(this, e);
  }

  onCursor() {}

  onUnit() {}

  onLayout() {}

  onKey() {}

  close() {
    this.closed = true;
  }
}

/** The scene's knob settings as a request body (clip is not a knob of the tour: the lab page has it). */
const body = (k) => ({ ...k, clip: null });

export class KnobsStage extends LabStage {
  constructor(ctx) {
    super(ctx);
    const p = this.panel("knobs", "‖∂L/∂h_t‖ of a fresh network, the loss at the last step");
    this.radiusEl = node("span", "lab-radius");
    p.tools.append(this.radiusEl);
    this.view = new KnobsView(p.body, { readout: p.info });
    this.live = { ...this.scene.knobs[0] };
    this.busy = false;
    this.queued = false;
    window.__unrolled.tourKnobs = { draws: 0, radius: this.live.radius };
  }

  async start() {
    try {
      // the kept curves first (each pinned as it is drawn), then the live one on top
      for (const k of this.scene.knobs.slice(1)) {
        const reply = await labGradients(body(k));
        if (this.closed) return;
        await this.view.update({ result: { settings: body(k), reply } });
        await this.view.update({ keep: true });
      }
      await this.draw();
      this.markReady();
    } catch (e) {
      this.fail(e instanceof ApiError && e.status === 404 ? new Error("the gradient knobs are not available on this server") : e);
    }
  }

  /** The live curve at its radius: one request at a time, the latest radius wins. */
  async draw() {
    if (this.busy) {
      this.queued = true;
      return;
    }
    this.busy = true;
    this.radiusEl.textContent = `radius ${this.live.radius.toFixed(2)}  ·  [ ] turn it  ·  K keep`;
    const settings = body(this.live);
    try {
      const reply = await labGradients(settings);
      if (this.closed) return;
      await this.view.update({ result: { settings, reply } });
      const t = window.__unrolled.tourKnobs;
      window.__unrolled.tourKnobs = { ...t, draws: t.draws + 1, radius: settings.radius, drawn: settings.radius };
    } finally {
      this.busy = false;
    }
    if (this.queued) {
      this.queued = false;
      await this.draw();
    }
  }

  onKey(key) {
    if (key === "[" || key === "]") {
      const r = this.live.radius + (key === "]" ? RADIUS_STEP : -RADIUS_STEP);
      this.live.radius = Math.round(Math.min(2, Math.max(0.05, r)) * 100) / 100;
      window.__unrolled.tourKnobs.radius = this.live.radius;
      this.draw().catch((e) => this.fail(e));
    } else if (key === "k" || key === "K") {
      this.view.update({ keep: true });
    }
  }

  onLayout() {
    this.view.render();
  }
}

export class TrainStage extends LabStage {
  constructor(ctx) {
    super(ctx);
    const t = this.scene.training;
    const p = this.panel("training", `The memory task, gap N = ${t.n}: ${t.cells.map((c) => c.toUpperCase()).join(", ")} trained live for ${t.steps ? `${t.steps} steps each (${t.seconds} s at most)` : `${t.seconds} s`}`);
    this.button = node("button", "btn btn-accent", "Start (T)");
    this.button.type = "button";
    this.button.addEventListener("click", () => this.toggle());
    p.tools.append(this.button);
    const plots = node("div", "lab-row-3");
    p.body.append(plots);
    const done = node("div", "train-done");
    done.hidden = true;
    p.body.append(done);
    this.view = new TrainView(plots, { done, message: p.info, onReplay: () => this.replay() });
    this.trainer = new Trainer(this.view, {
      report: (r) => {
        if (this.closed) return;
        const running = r.state === "running" || r.state === "retrying" || r.state === "replaying";
        this.button.textContent = running ? "Stop (T)" : "Start (T)";
        const points = r.state === "done" ? { points: this.view.points } : {};
        window.__unrolled.tourTrain = { ...window.__unrolled.tourTrain, ...points, ...r, error: r.error };
      },
    });
    window.__unrolled.tourTrain = { state: "idle", points: 0 };
  }

  start() {
    this.view.update({ message: "Press T (or Start) to train." });
    this.markReady();
    if (this.scene.play) this.toggle();
  }

  toggle() {
    if (this.trainer.active) {
      this.view.update({ message: "Stopping…" }); // first: a playback or a wait ends at once, saying so
      this.trainer.stop();
      return;
    }
    const t = this.scene.training;
    window.__unrolled.tourTrain = { state: "running", points: 0 };
    const request = { task: "memory", n: t.n, cells: t.cells, seconds: t.seconds, ...(t.steps ? { steps: t.steps } : {}) };
    this.trainer.start(request, `Training for ${t.steps ? `${t.steps} steps each, ` : ""}${t.seconds} s at most… (T stops it)`);
  }

  /** The run recorded on the server, instead of a live one that this machine is too slow for. */
  replay() {
    this.trainer.replay();
  }

  onKey(key) {
    if (key === "t" || key === "T") this.toggle();
    else if (key === "v" || key === "V") this.replay();
  }

  onLayout() {
    this.view.relayout();
  }

  /** Leaving the scene leaves the run: the server stops it the moment its client goes. */
  close() {
    super.close();
    this.trainer.close();
  }
}
