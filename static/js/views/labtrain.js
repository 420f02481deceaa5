// Train it yourself: each cell's loss, batch accuracy and ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ per training step, live. Step
// frames are queued and drawn once per animation frame with Plotly.extendTraces (the plots are never rebuilt
// while a run streams); the done frame brings links to the trained models and their held-out accuracies.
//
// One batch in ten has a short gap (1–3 digits, named by the step frame's `gap`): every cell, the plain RNN too,
// gets those right, so drawn they would make its accuracy and gradient ratio jump to ~1. The curves show the
// long-gap batches only, each cell's raw values faint and their moving average (EMA) bold. A line above the
// plots gives the steps per second and, where the lesson cannot be reached in the run's time on this machine,
// says so and offers the run recorded on the server (`unrolled lab-record`), played through this same view at
// the pace it was recorded.
//
// Trainer runs one training from a page: a live run, retried by itself while another client's run holds the
// server (never sooner than the busy frame's retry_after, longer each time), or the recorded one.

import { ApiError, labRecording, labTrain } from "../api.js";
import { CELL_COLORS } from "../colors.js";
import { Plotly, baseLayout, fontSize, isPresenter, makePlot, plotConfig, sized } from "../plots.js";

const PLOTS = [
  { key: "loss", title: "loss (cross-entropy)", log: false },
  { key: "accuracy", title: "batch accuracy", log: false, range: [0, 1.02] },
  { key: "grad_ratio", title: "‖∂L/∂h_1‖ ÷ ‖∂L/∂h_T‖ (log)", log: true },
];
const EMA = 0.05; // the moving average's weight of each new long-gap batch: it follows ~20 steps
const RATE_AFTER = 2; // seconds of a run before its steps per second are taken as its pace
const BACKOFF = [1, 2, 4, 8]; // seconds between retries while busy, at least the server's retry_after

const isLong = (f, n) => f.gap === undefined || f.gap === n;

export class TrainView {
  constructor(root, { done, message, onReplay = null }) {
    this.root = root;
    this.doneEl = done;
    this.message = message;
    this.onReplay = onReplay;
    this.rate = document.createElement("p");
    this.rate.className = "lab-message train-rate";
    this.rate.hidden = true;
    root.before(this.rate);
    this.plots = PLOTS.map((p) => {
      const box = document.createElement("div");
      box.className = "lab-cell-plot";
      root.append(box);
      return { ...p, gd: makePlot(box, `training-${p.key}`, "plot-train") };
    });
    this.cells = [];
    this.queue = [];
    this.pending = false;
    this.points = 0; // step frames drawn
  }

  /** data: {start} a run began (its start frame); {step} one step frame; {done}; {error}; {message}. */
  update(data) {
    if (data.start) this.begin(data.start);
    if (data.step) {
      this.queue.push(data.step);
      if (!this.pending) {
        this.pending = true;
        requestAnimationFrame(() => this.render());
      }
    }
    if (data.done) {
      this.render();
      this.finish(data.done);
    }
    if (data.error) this.say(data.error, "error");
    if (data.message !== undefined) this.say(data.message, "info");
  }

  say(text, kind) {
    this.message.textContent = text;
    this.message.dataset.kind = kind;
  }

  begin(start) {
    this.start = start;
    this.cells = start.cells;
    this.queue = [];
    this.points = 0;
    this.long = 0; // long-gap batches drawn (of the first cell)
    this.short = 0;
    this.last = {}; // cell → its newest step frame
    this.ema = this.cells.map(() => ({ loss: null, accuracy: null, grad_ratio: null, k: 0 }));
    this.stepsPerSecond = null;
    this.slow = false;
    window.__unrolled.labTrain = { ...(window.__unrolled.labTrain ?? {}), run: start.run, points: 0, long: 0, short: 0, rate: null, slow: false };
    this.doneEl.hidden = true;
    this.doneEl.replaceChildren();
    this.rate.hidden = false;
    this.rate.dataset.kind = "info";
    this.rate.textContent = start.recorded ? `The recorded run (${start.recorded.where}), played at the pace it was recorded.` : "Measuring the steps per second…";
    const height = sized(isPresenter() ? 300 : 260, 250);
    for (const p of this.plots) {
      const data = this.cells.flatMap((cell) => {
        const color = CELL_COLORS[cell] ?? "#111827";
        const name = cell.toUpperCase();
        return [
          { type: "scatter", mode: "lines", x: [], y: [], name, showlegend: false, opacity: 0.3, line: { color, width: 1 },
            hovertemplate: `${name}<br>training step %{x}<br>${p.key} %{y:.3g}<extra></extra>` },
          { type: "scatter", mode: "lines", x: [], y: [], name, line: { color, width: 3 },
            hovertemplate: `${name}, moving average<br>training step %{x}<br>${p.key} %{y:.3g}<extra></extra>` },
        ];
      });
      p.gd.style.height = `${height}px`;
      const layout = baseLayout({
        height,
        showlegend: true,
        margin: { l: p.log ? 96 : 64, r: 12, t: 64, b: 48 }, // room for 10⁻²⁵: automargin is not redone as traces extend
        title: { text: p.title, x: 0, xanchor: "left", y: 0.98, yanchor: "top", font: { size: fontSize() } },
        legend: { orientation: "h", y: 1.0, yanchor: "bottom", x: 0 },
        xaxis: { title: { text: "training step" }, rangemode: "tozero" },
        yaxis: p.log ? { type: "log", exponentformat: "power" } : { rangemode: "tozero", ...(p.range ? { range: p.range } : {}) },
      });
      Plotly.react(p.gd, data, layout, plotConfig(`training-${p.key}`));
    }
  }

  /** The plots to their boxes' widths again (the tour's zoom changed: the done table came or went). */
  relayout() {
    for (const p of this.plots) if (p.gd.data) Plotly.Plots.resize(p.gd);
  }

  /** The queued step frames, drawn at once: one extendTraces per plot, the long-gap batches only. */
  render() {
    this.pending = false;
    if (!this.queue.length || !this.cells.length) return;
    const frames = this.queue;
    this.queue = [];
    const n = this.start.n;
    const xs = this.cells.map(() => []);
    const ys = Object.fromEntries(PLOTS.map((p) => [p.key, this.cells.map(() => ({ raw: [], ema: [] }))]));
    for (const f of frames) {
      const i = this.cells.indexOf(f.cell);
      if (i < 0) continue;
      this.last[f.cell] = f;
      if (!isLong(f, n)) {
        if (i === 0) this.short++;
        continue;
      }
      if (i === 0) this.long++;
      const e = this.ema[i];
      e.k++;
      const unbias = 1 - (1 - EMA) ** e.k; // the first batches' average is not pulled towards 0
      xs[i].push(f.step);
      for (const p of PLOTS) {
        let v = f[p.key];
        if (p.log) v = v > 0 && Number.isFinite(v) ? Math.log10(v) : null; // averaged in orders of magnitude
        if (v !== null) e[p.key] = (e[p.key] ?? 0) * (1 - EMA) + EMA * v;
        e[`${p.key}Unbiased`] = e[p.key] === null ? null : e[p.key] / unbias;
        const avg = e[`${p.key}Unbiased`];
        ys[p.key][i].raw.push(p.log ? (v === null ? null : 10 ** v) : v);
        ys[p.key][i].ema.push(p.log ? (avg === null ? null : 10 ** avg) : avg);
      }
    }
    for (const p of this.plots) {
      const idx = this.cells.map((_, i) => i).filter((i) => xs[i].length);
      if (!idx.length) continue;
      const traces = idx.flatMap((i) => [2 * i, 2 * i + 1]);
      const x = idx.flatMap((i) => [xs[i], xs[i]]);
      const y = idx.flatMap((i) => [ys[p.key][i].raw, ys[p.key][i].ema]);
      Plotly.extendTraces(p.gd, { x, y }, traces);
    }
    this.points += frames.length;
    this.showRate();
    window.__unrolled.labTrain = { ...(window.__unrolled.labTrain ?? {}), points: this.points, long: this.long, short: this.short, rate: this.stepsPerSecond };
  }

  /** Steps per second per cell (the slowest cell's), and whether the lesson can be reached in the run's time. */
  showRate() {
    const frames = Object.values(this.last);
    if (!frames.length) return;
    const elapsed = Math.max(...frames.map((f) => f.elapsed));
    const steps = Math.min(...frames.map((f) => f.step));
    const skipped = `${this.short} with a short gap (1–3, which every cell gets right) left out`;
    if (elapsed < RATE_AFTER) return;
    this.stepsPerSecond = steps / elapsed;
    const rate = `${this.stepsPerSecond.toFixed(1)} steps/s per cell · step ${steps}`;
    const start = this.start;
    const lesson = start.lesson_steps;
    const reach = Math.round(this.stepsPerSecond * start.seconds);
    if (!start.recorded && lesson && reach < lesson) {
      this.rate.dataset.kind = "error";
      this.rate.textContent = `${rate}: about ${reach} steps in ${start.seconds} s, too few for the lesson (it takes some ${lesson} steps per cell at N = ${start.n}). `;
      if (start.recording && this.onReplay) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "btn btn-accent train-replay";
        b.textContent = "Play the recorded run (V)";
        b.addEventListener("click", () => this.onReplay());
        this.rate.append(b);
      }
      this.slow = true;
      window.__unrolled.labTrain = { ...(window.__unrolled.labTrain ?? {}), slow: true, reach };
      return;
    }
    this.rate.dataset.kind = "info";
    this.rate.textContent = `${start.recorded ? "Recorded: " : ""}${rate} · curves: the batches with gap ${start.n}, bold their moving average; ${skipped}`;
  }

  finish(done) {
    const why = done.reason === "stopped" ? "Stopped" : "Time is up";
    const what = this.start?.recorded ? "The recorded run: each model trained" : "Each model trained";
    this.say(`${why}. ${what} ${Object.entries(done.steps ?? {}).map(([c, k]) => `${c.toUpperCase()} ${k} steps`).join(", ")}.`, "info");
    const table = document.createElement("table");
    table.className = "metrics-table train-table";
    const head = table.createTHead().insertRow();
    for (const h of ["cell", "held-out accuracy", "training steps", "the trained model"]) {
      const th = document.createElement("th");
      th.textContent = h;
      head.append(th);
    }
    const body = table.createTBody();
    for (const cell of this.cells) {
      const id = done.models?.[cell];
      if (!id && !done.recorded) continue;
      const row = body.insertRow();
      const name = row.insertCell();
      name.textContent = cell.toUpperCase();
      name.style.color = CELL_COLORS[cell] ?? "";
      name.style.fontWeight = "700";
      const acc = done.accuracy?.[cell];
      row.insertCell().textContent = typeof acc === "number" ? `${(100 * acc).toFixed(1)} %` : "–";
      row.insertCell().textContent = String(done.steps?.[cell] ?? "–");
      if (!id) {
        row.insertCell().textContent = `recorded ${done.recorded}: not kept on this server`;
        continue;
      }
      const a = document.createElement("a");
      a.href = `/models/${encodeURIComponent(id)}`;
      a.className = "model-link";
      a.textContent = `open ${id} in the model view`;
      row.insertCell().append(a);
    }
    this.doneEl.replaceChildren(table);
    this.doneEl.hidden = false;
  }
}

/** The recorded run (GET /api/lab/recording) as the frames a live run sends: start, steps, done. */
export function recordedFrames(rec) {
  const start = { ...rec.start, recorded: { where: rec.recorded.machine, when: rec.recorded.date } };
  const col = Object.fromEntries(rec.columns.map((c, i) => [c, i]));
  const steps = rec.rows.map((r) => ({
    type: "step",
    cell: rec.start.cells[r[col.cell]],
    step: r[col.step],
    gap: r[col.gap],
    loss: r[col.loss],
    accuracy: r[col.accuracy],
    grad_ratio: r[col.grad_ratio],
    elapsed: r[col.elapsed],
  }));
  return { start, steps, done: { ...rec.done, recorded: rec.recorded.date } };
}

/** Play frames at the pace their `elapsed` says; {done, stop(), close()} like a live run's handle. */
function play({ start, steps, done }, onFrame) {
  let stopped = false;
  let timer = null;
  let resolveDone;
  const finished = new Promise((resolve) => (resolveDone = resolve));
  const t0 = performance.now();
  let k = 0;
  onFrame(start);
  const tick = () => {
    timer = null;
    const now = (performance.now() - t0) / 1000;
    while (k < steps.length && steps[k].elapsed <= now) onFrame(steps[k++]);
    if (k >= steps.length || stopped) {
      const last = {};
      for (const f of steps.slice(0, k)) last[f.cell] = f.step;
      const end = stopped ? { ...done, reason: "stopped", steps: last, accuracy: {} } : done;
      onFrame({ type: "done", ...end });
      resolveDone(end);
      return;
    }
    timer = setTimeout(tick, Math.min(100, 1000 * (steps[k].elapsed - now)));
  };
  tick();
  return {
    done: finished,
    stop() {
      stopped = true;
      if (timer !== null) {
        clearTimeout(timer);
        tick();
      }
    },
    close() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      timer = null;
    },
  };
}

/**
 * One training at a time from a page, drawn by `view`. report(state) hears "running", "retrying", "replaying",
 * "done", "error" (with {error}) as they happen. start() trains live; while the server is busy with another
 * client's run it waits and tries again (never sooner than the busy frame's retry_after, longer each time)
 * until stopped or closed. replay() plays the recorded run instead. Starting one ends the other.
 */
export class Trainer {
  constructor(view, { report = () => {} } = {}) {
    this.view = view;
    this.report = report;
    this.handle = null;
    this.waiting = null; // {timer, resolve} while waiting to retry
    this.current = 0; // the newest start or replay: what an older one's late callbacks are told apart by
    this.closed = false;
  }

  get active() {
    return Boolean(this.handle || this.waiting);
  }

  isCurrent(id) {
    return !this.closed && id === this.current;
  }

  frames(id) {
    return (f) => {
      if (!this.isCurrent(id)) return;
      if (f.type === "start") this.view.update({ start: f });
      else if (f.type === "step") this.view.update({ step: f });
      else if (f.type === "done") this.view.update({ done: f });
    };
  }

  /** A live run of body; resolves once it is over (done, stopped, failed or left). */
  async start(body, runningText) {
    this.abort();
    const id = ++this.current;
    for (let attempt = 0; this.isCurrent(id); attempt++) {
      this.view.update({ message: runningText });
      this.report({ state: "running" });
      const handle = labTrain(body, this.frames(id));
      this.handle = handle;
      try {
        const done = await handle.done;
        if (!this.isCurrent(id)) return;
        this.handle = null;
        this.report({ state: "done", done });
        return;
      } catch (e) {
        if (!this.isCurrent(id)) return;
        this.handle = null;
        if (e instanceof ApiError && e.status === 503) {
          const wait = Math.max(e.retryAfter ?? 1, BACKOFF[Math.min(attempt, BACKOFF.length - 1)]);
          this.report({ state: "retrying", attempt: attempt + 1, wait });
          if (!(await this.pause(wait, attempt + 1))) {
            if (!this.isCurrent(id)) return;
            this.view.update({ message: "Not retrying: stopped while another run was going." });
            this.report({ state: "error", error: "stopped while another run was going" });
            return;
          }
          continue;
        }
        const why = e instanceof ApiError && e.status ? `${e.status}: ${e.message}` : e.message;
        this.view.update({ error: `The training run failed — ${why}` });
        this.report({ state: "error", error: e.message, status: e.status });
        return;
      }
    }
  }

  /** Wait `seconds` before retrying, saying so each second; false if stopped or left meanwhile. */
  pause(seconds, attempt) {
    return new Promise((resolve) => {
      let left = seconds;
      const say = () => this.view.update({ message: `Another run is going on the server; retrying in ${left} s… (attempt ${attempt}; T stops)` });
      say();
      const tick = () => {
        left--;
        if (left <= 0) {
          this.waiting = null;
          resolve(true);
          return;
        }
        say();
        this.waiting.timer = setTimeout(tick, 1000);
      };
      this.waiting = { timer: setTimeout(tick, 1000), resolve };
    });
  }

  /** The recorded run through the same view, at its pace. */
  async replay() {
    this.abort();
    const id = ++this.current;
    this.view.update({ message: "Loading the recorded run…" });
    let rec;
    try {
      rec = await labRecording();
    } catch (e) {
      if (this.isCurrent(id)) this.view.update({ error: `No recorded run — ${e.message}` });
      return;
    }
    if (!this.isCurrent(id)) return;
    this.view.update({ message: "Playing the recorded run… (T stops it)" });
    this.report({ state: "replaying" });
    const handle = play(recordedFrames(rec), this.frames(id));
    this.handle = handle;
    const done = await handle.done;
    if (!this.isCurrent(id)) return;
    this.handle = null;
    this.report({ state: "done", done, recorded: true });
  }

  /** Stop what is going: the live run stops (its done frame follows), a wait or a replay ends. */
  stop() {
    if (this.waiting) {
      clearTimeout(this.waiting.timer);
      const { resolve } = this.waiting;
      this.waiting = null;
      resolve(false);
    } else this.handle?.stop();
  }

  /** Whatever is going ends with no word: a live run's socket closes (the server ends the run at once). */
  abort() {
    this.current++;
    if (this.waiting) {
      clearTimeout(this.waiting.timer);
      this.waiting.resolve(false);
      this.waiting = null;
    }
    this.handle?.close();
    this.handle = null;
  }

  /** The page or scene is left. */
  close() {
    this.closed = true;
    this.abort();
  }
}
