// BPTT gradient norms over time on a log axis: ‖∂L/∂h_t‖ per layer, ‖∂L/∂c_t‖ (LSTM), ‖∂L/∂x_t‖ and each
// step's term of ‖∂L/∂W_hh‖. Drawn once the sweep's frames are in; the BPTT sweep uncovers it right to left.
// A bidirectional layer's two directions are two lines each, named: the reverse direction's BPTT runs first step to
// last, so for it there is nothing to uncover right to left (no mask in the BPTT sweep; the cursor still shows).

import { GRAD_LINES, fmtNorm } from "../colors.js";
import { Overlay, Plotly, baseLayout, isTalk, makePlot, plotConfig, sized, timeTicks } from "../plots.js";
import { View } from "./base.js";

const REVERSE_LINES = ["#1d4ed8", "#1e3a8a", "#60a5fa", "#1e40af"]; // a reverse direction's norms

const positive = (a) => Array.from(a, (v) => (v > 0 ? v : null));

export function gradientSeries(tr) {
  const out = [];
  const sup = (l) => (tr.bidirectional ? ` (${tr.layerName(l)})` : tr.L > 1 ? ` (layer ${l + 1})` : "");
  const rev = (l) => tr.isReverse(l);
  tr.grad.hidden.forEach((a, l) => out.push({ name: `‖∂L/∂h_t‖${sup(l)}`, a, dash: "solid", width: 3, reverse: rev(l) }));
  (tr.grad.cell ?? []).forEach((a, l) => out.push({ name: `‖∂L/∂c_t‖${sup(l)}`, a, dash: "dash", width: 2.5, reverse: rev(l) }));
  out.push({ name: "‖∂L/∂x_t‖", a: tr.grad.input, dash: "dot", width: 2, reverse: false });
  // (two directions: the W_hh step terms are left out, or the lines of ‖∂L/∂h_t‖ and ‖∂L/∂c_t‖ would drown)
  if (!tr.bidirectional) tr.grad.weightHH.forEach((a, l) => out.push({ name: `‖∂L/∂W_hh‖ step term${sup(l)}`, a, dash: "dashdot", width: 1.5, reverse: rev(l) }));
  return out;
}

export class GradientView extends View {
  constructor(root, { readout, name = "gradient-norms" }) {
    super(root, { name, onScreen: true });
    this.readout = readout;
    this.gd = makePlot(root, name, "plot-grad");
    this.overlay = new Overlay(this.gd);
  }

  /** Drawn once the BPTT sweep is all in. */
  drawKey() {
    const tr = this.trace;
    return tr.gradFrom === 0 && tr.steps === tr.T ? [tr, tr.T] : null;
  }

  clear() {
    Plotly.purge(this.gd);
    this.overlay.measure();
  }

  prepare() {
    const tr = this.trace;
    const width = this.root.clientWidth || 800;
    const series = gradientSeries(tr);
    const x = [...Array(tr.T).keys()].map((t) => t + 1);
    // the reverse direction's lines in blues beside the forward's oranges
    const seen = { true: 0, false: 0 };
    const color = (s) => (s.reverse ? REVERSE_LINES : GRAD_LINES)[seen[s.reverse]++ % 4];
    const data = series.map((s) => ({
      type: "scatter",
      mode: tr.T > 60 ? "lines" : "lines+markers",
      x,
      y: positive(s.a),
      name: s.name,
      line: { color: color(s), dash: s.dash, width: s.width },
      marker: { size: 5 },
      hovertemplate: `${s.name}<br>step %{x}<br>%{y:.3e}<extra></extra>`,
    }));
    const layout = baseLayout({
      height: sized(320, 150),
      showlegend: true,
      // talk mode: the legend beside the plot, not above it (above, it left the 150 px plot ~30 px to draw in)
      ...(isTalk() ? { legend: { orientation: "v", x: 1.01, xanchor: "left", y: 1, yanchor: "top", font: { size: 15 } } } : {}),
      margin: { l: 70, r: 16, t: sized(40, 8), b: sized(44, 30) },
      xaxis: { range: [0.5, tr.T + 0.5], ...timeTicks(tr.tokens, tr.T, width - 100) },
      // the tick font is plots.js logTickFont's; talk mode: the panel's title says what the axis is (its own title,
      // longer than the short plot, overlapped the tick labels)
      yaxis: { type: "log", title: { text: isTalk() ? "" : "norm (log scale)" }, exponentformat: "power", ...(isTalk() ? { nticks: 4 } : {}) },
    });
    this.gd.style.height = `${sized(320, 150)}px`;
    Plotly.react(this.gd, data, layout, plotConfig(this.name));
    this.overlay.measure();
  }

  render() {
    const tr = this.trace;
    if (!tr) return;
    const { phase, t } = this.cursor;
    if (this.drawn) {
      this.overlay.setCursor(phase === "backward" && t >= 0 ? t + 1 : null);
      const sweep = tr.bidirectional ? "the BPTT sweeps reveal these (forward: right to left; reverse: left to right)" : "the BPTT sweep reveals these, right to left";
      this.overlay.setMask(
        phase === "forward" ? [0.5, tr.T + 0.5] : t > 0 && !tr.bidirectional ? [0.5, t + 0.5] : null,
        phase === "forward" ? sweep : "not reached yet",
      );
    }
    if (this.readout) {
      let text;
      if (phase === "forward" || t < tr.gradFrom) {
        text = "Forward sweep: the gradients appear when BPTT runs (press B, or play to the end).";
      } else {
        const parts = gradientSeries(tr).map((s) => `${s.name} ${fmtNorm(s.a[t])}`);
        text = `step ${t + 1}: ${parts.join(" · ")}`;
      }
      if (this.readout.textContent !== text) this.readout.textContent = text;
    }
  }
}
