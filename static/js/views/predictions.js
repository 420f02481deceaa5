// What the model predicts at the current step: the top-k next tokens (bars), or, for classifiers, the class
// probabilities as bars and as lines over time (evolving step by step as the words are read).

import { TARGET, classColor } from "../colors.js";
import { exportButtons } from "../export.js";
import { Overlay, Plotly, baseLayout, exportFigure, isTalk, makePlot, plotConfig, sized, timeTicks } from "../plots.js";
import { showToken } from "../trace.js";
import { View } from "./base.js";

/** A card's label, safe inside Plotly's pseudo-HTML (legend, hover). */
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export class PredictionsView extends View {
  constructor(root, { tools, name = "predictions" }) {
    super(root, { name });
    this.legend = document.createElement("p");
    this.legend.className = "bar-legend";
    this.bars = document.createElement("div");
    this.bars.className = "bars";
    root.append(this.legend, this.bars);
    this.rows = [];
    this.gd = null;
    if (tools) exportButtons(tools, () => this.export("png"), () => this.export("svg"));
  }

  /** A new input's bars replace the last one's (never stack above them), and its legend says what green is. */
  take(data) {
    const fresh = data.trace !== undefined && data.trace !== this.trace;
    super.take(data);
    if (!fresh) return;
    this.rows = [];
    this.bars.replaceChildren();
    this.drawn = null;
    this.writeLegend();
  }

  update(data) {
    this.take(data);
    if (this.trace?.steps) this.refresh(data);
  }

  /** A classifier's p(class) lines over time, drawn again as steps arrive; the bars are render()'s. */
  drawKey() {
    const tr = this.trace;
    return tr.family.head === "classes" && tr.drawable ? [tr, tr.steps] : null;
  }

  prepare() {
    this.buildLines();
  }

  /** What green means here: the target L is measured against (a class), or the token that came next. */
  writeLegend() {
    const tr = this.trace;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    const text = tr?.family.target ?? "";
    this.legend.replaceChildren(...(tr ? [swatch, text] : []));
  }

  /** [{label, p, hit, color}] at step t: a class keeps its colour (the same as its line); tokens are grey. */
  items(t) {
    const tr = this.trace;
    if (tr.family.head === "classes") {
      const p = tr.probsAt(t);
      return Array.from(p, (v, i) => ({ label: String(tr.labels[i]), p: v, hit: tr.label !== null && String(tr.labels[i]) === String(tr.label), color: classColor(i) }));
    }
    const next = tr.tokens[t + 1];
    return (tr.predictions[t] ?? []).map(({ token, p }) => ({ label: showToken(token), p, hit: token === next, color: "#64748b" }));
  }

  render() {
    const tr = this.trace;
    const t = Math.min(this.cursor.t, tr.steps - 1);
    const items = this.items(t);
    while (this.rows.length < items.length) {
      const row = document.createElement("div");
      row.className = "bar";
      const label = document.createElement("span");
      label.className = "bar-label";
      const track = document.createElement("span");
      track.className = "bar-track";
      const fill = document.createElement("span");
      fill.className = "bar-fill";
      track.append(fill);
      const value = document.createElement("span");
      value.className = "bar-value";
      row.append(label, track, value);
      this.bars.append(row);
      this.rows.push({ row, label, fill, value });
    }
    this.rows.forEach((r, i) => {
      const it = items[i];
      r.row.hidden = !it;
      if (!it) return;
      if (r.label.textContent !== it.label) r.label.textContent = it.label;
      r.fill.style.width = `${(it.p * 100).toFixed(1)}%`;
      r.fill.style.setProperty("--bar", it.color);
      r.value.textContent = it.p.toFixed(2);
      r.row.classList.toggle("hit", it.hit);
    });
    if (this.overlay && this.drawn) {
      const { phase, t: ct } = this.cursor;
      this.overlay.setCursor(ct + 1);
      this.overlay.setMask(phase === "forward" && ct < tr.T - 1 ? [ct + 1.5, tr.T + 0.5] : null, "not read yet");
    }
  }

  buildLines() {
    const tr = this.trace;
    if (!this.gd) {
      this.gd = makePlot(this.root, `${this.name}-over-time`, "plot-probs");
      this.overlay = new Overlay(this.gd);
    }
    const width = this.root.clientWidth || 600;
    const steps = [...Array(tr.T).keys()];
    const n = tr.labels.length;
    const data = tr.labels.map((label, i) => ({
      type: "scatter",
      mode: tr.T > 60 ? "lines" : "lines+markers",
      x: steps.map((t) => t + 1),
      y: steps.map((t) => (t < tr.steps ? tr.probs[t * n + i] : null)),
      name: String(label) === String(tr.label) ? `${esc(label)} (target)` : esc(label),
      line: { color: classColor(i), width: String(label) === String(tr.label) ? 4.5 : 2.5 },
      hovertemplate: `p(${esc(label)})<br>step %{x}<br>%{y:.3f}<extra></extra>`,
    }));
    const layout = baseLayout({
      height: sized(230, 120),
      showlegend: !isTalk(), // talk mode: the bars above name the classes in their lines' colours
      margin: { l: 56, r: 12, t: sized(30, 8), b: sized(40, 30) },
      xaxis: { range: [0.5, tr.T + 0.5], ...timeTicks(tr.tokens, tr.T, width - 80) },
      yaxis: { range: [0, 1], title: { text: "p(class)" } },
    });
    this.gd.style.height = `${sized(230, 120)}px`;
    Plotly.react(this.gd, data, layout, plotConfig(`${this.name}-over-time`));
    this.overlay.measure();
  }

  export(format) {
    const tr = this.trace;
    if (!tr) return;
    const t = Math.min(this.cursor.t, tr.steps - 1);
    const items = this.items(t);
    const figure = {
      data: [{ type: "bar", orientation: "h", x: items.map((i) => i.p), y: items.map((i) => i.label), marker: { color: items.map((i) => i.color), line: { color: items.map((i) => (i.hit ? TARGET : i.color)), width: 3 } } }],
      layout: { title: { text: `${tr.model} · step ${t + 1} “${showToken(tr.tokens[t])}”` }, xaxis: { range: [0, 1], title: { text: "p" } }, yaxis: { autorange: "reversed", type: "category" }, margin: { l: 90, r: 20, t: 50, b: 50 } },
    };
    exportFigure(figure, format, this.name, { width: 700, height: 120 + items.length * 36 });
  }
}
