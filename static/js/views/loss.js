// The loss, step by step: each step's −log p(its target) as a bar, coloured where it is a term of L (every
// step's, or the last alone: L = last step only) and grey where L leaves it out: BPTT starts from the coloured
// ones, so a grey step's ‖∂L/∂h_t‖ comes only from the steps after it. The forward sweep uncovers the bars.

import { Overlay, Plotly, baseLayout, isTalk, makePlot, plotConfig, sized, timeTicks } from "../plots.js";
import { showToken } from "../trace.js";
import { View } from "./base.js";

const IN_L = "#d95f0e";
const LEFT_OUT = "#cbd5e1";

/** Is step t's loss a term of L? (L = last step only: the last step that has one.) */
function inL(tr, t) {
  if (!Number.isFinite(tr.loss[t])) return false;
  if (tr.lossMode !== "last") return true;
  for (let k = t + 1; k < tr.steps; k++) if (Number.isFinite(tr.loss[k])) return false;
  return true;
}

export class LossView extends View {
  constructor(root, { readout = null, name = "loss-per-step" } = {}) {
    super(root, { name, onScreen: true });
    this.readout = readout;
    this.gd = makePlot(root, name, "plot-loss");
    this.overlay = new Overlay(this.gd);
  }

  /** Drawn again as steps arrive, when the trace may be drawn. */
  drawKey() {
    const tr = this.trace;
    return tr.steps > 0 && tr.drawable ? [tr, tr.steps, tr.T] : null;
  }

  prepare() {
    const tr = this.trace;
    const x = [...Array(tr.T).keys()].map((t) => t + 1);
    const y = x.map((_, t) => (t < tr.steps && Number.isFinite(tr.loss[t]) ? tr.loss[t] : null));
    const height = sized(220, 150);
    const layout = baseLayout({
      height,
      margin: { l: 64, r: 16, t: 8, b: sized(44, 30) },
      bargap: 0.15,
      xaxis: { range: [0.5, tr.T + 0.5], ...timeTicks(tr.tokens, tr.T, (this.root.clientWidth || 600) - 90) },
      yaxis: { title: { text: isTalk() ? "" : "−log p" }, rangemode: "tozero", nticks: 4 },
    });
    const color = x.map((_, t) => (inL(tr, t) ? IN_L : LEFT_OUT));
    const bars = { type: "bar", x, y, marker: { color }, hovertemplate: "step %{x}: −log p = %{y:.3f}<extra></extra>" };
    this.gd.style.height = `${height}px`;
    Plotly.react(this.gd, [bars], layout, plotConfig(this.name));
    this.overlay.measure();
  }

  render() {
    const tr = this.trace;
    const { phase, t } = this.cursor;
    if (this.drawn) {
      this.overlay.setCursor(t >= 0 ? t + 1 : null);
      this.overlay.setMask(phase === "forward" && t + 1 < tr.T ? [t + 1.5, tr.T + 0.5] : null, "not read yet");
    }
    if (!this.readout) return;
    const l = tr.loss[t];
    const where = inL(tr, t) ? "a term of L" : "left out of L (L = last step only)";
    const text = Number.isFinite(l)
      ? `step ${t + 1} “${showToken(tr.tokens[t] ?? "")}”: −log p = ${l.toFixed(3)} (p = ${Math.exp(-l).toFixed(2)}), ${where} · L = ${tr.totalLoss?.toFixed(3) ?? "–"}`
      : `step ${t + 1}: no target here, nothing to add to L`;
    if (this.readout.textContent !== text) this.readout.textContent = text;
  }
}
