// Train it yourself: each cell's loss, batch accuracy and ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ per training step, live. Step
// frames are queued and drawn once per animation frame with Plotly.extendTraces (the plots are never rebuilt
// while a run streams); the done frame brings links to the trained models and their held-out accuracies.

import { CELL_COLORS } from "../colors.js";
import { Plotly, baseLayout, fontSize, isPresenter, makePlot, plotConfig, sized } from "../plots.js";

const PLOTS = [
  { key: "loss", title: "loss (cross-entropy)", log: false },
  { key: "accuracy", title: "batch accuracy", log: false, range: [0, 1.02] },
  { key: "grad_ratio", title: "‖∂L/∂h_1‖ ÷ ‖∂L/∂h_T‖ (log)", log: true },
];

export class TrainView {
  constructor(root, { done, message }) {
    this.root = root;
    this.doneEl = done;
    this.message = message;
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
    this.cells = start.cells;
    this.queue = [];
    this.points = 0;
    this.doneEl.hidden = true;
    this.doneEl.replaceChildren();
    const height = sized(isPresenter() ? 300 : 260, 250);
    for (const p of this.plots) {
      const data = this.cells.map((cell) => ({
        type: "scatter",
        mode: "lines",
        x: [],
        y: [],
        name: cell.toUpperCase(),
        line: { color: CELL_COLORS[cell] ?? "#111827", width: 2.5 },
        hovertemplate: `${cell.toUpperCase()}<br>training step %{x}<br>${p.key} %{y:.3g}<extra></extra>`,
      }));
      p.gd.style.height = `${height}px`;
      const layout = baseLayout({
        height,
        showlegend: true,
        margin: { l: 64, r: 12, t: 64, b: 48 },
        title: { text: p.title, x: 0, xanchor: "left", y: 0.98, yanchor: "top", font: { size: fontSize() } },
        legend: { orientation: "h", y: 1.0, yanchor: "bottom", x: 0 },
        xaxis: { title: { text: "training step" }, rangemode: "tozero" },
        yaxis: p.log ? { type: "log", exponentformat: "power" } : { rangemode: "tozero", ...(p.range ? { range: p.range } : {}) },
      });
      Plotly.react(p.gd, data, layout, plotConfig(`training-${p.key}`));
    }
  }

  /** The queued step frames, drawn at once: one extendTraces per plot. */
  render() {
    this.pending = false;
    if (!this.queue.length || !this.cells.length) return;
    const frames = this.queue;
    this.queue = [];
    for (const p of this.plots) {
      const xs = this.cells.map(() => []);
      const ys = this.cells.map(() => []);
      for (const f of frames) {
        const i = this.cells.indexOf(f.cell);
        if (i < 0) continue;
        const v = f[p.key];
        xs[i].push(f.step);
        ys[i].push(p.log ? (v > 0 && Number.isFinite(v) ? v : null) : v);
      }
      const idx = this.cells.map((_, i) => i).filter((i) => xs[i].length);
      if (idx.length) Plotly.extendTraces(p.gd, { x: idx.map((i) => xs[i]), y: idx.map((i) => ys[i]) }, idx);
    }
    this.points += frames.length;
    window.__unrolled.labTrain = { ...(window.__unrolled.labTrain ?? {}), points: this.points };
  }

  finish(done) {
    const why = done.reason === "stopped" ? "Stopped" : "Time is up";
    this.say(`${why}. Each model trained ${Object.entries(done.steps ?? {}).map(([c, k]) => `${c.toUpperCase()} ${k} steps`).join(", ")}.`, "info");
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
      if (!id) continue;
      const row = body.insertRow();
      const name = row.insertCell();
      name.textContent = cell.toUpperCase();
      name.style.color = CELL_COLORS[cell] ?? "";
      name.style.fontWeight = "700";
      const acc = done.accuracy?.[cell];
      row.insertCell().textContent = typeof acc === "number" ? `${(100 * acc).toFixed(1)} %` : "–";
      row.insertCell().textContent = String(done.steps?.[cell] ?? "–");
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
