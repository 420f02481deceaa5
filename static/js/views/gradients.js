// BPTT gradient norms over time on a log axis: ‖∂L/∂h_t‖ per layer, ‖∂L/∂c_t‖ (LSTM), ‖∂L/∂x_t‖ and each
// step's term of ‖∂L/∂W_hh‖. Drawn once the sweep's frames are in; the BPTT sweep uncovers it right to left.

import { GRAD_LINES, fmtNorm } from "../colors.js";
import { Plotly, baseLayout, isTalk, plotConfig, sized, startPlotView, takeUpdate, timeTicks, visibility } from "../plots.js";

const positive = (a) => Array.from(a, (v) => (v > 0 ? v : null));

export function gradientSeries(tr) {
  const out = [];
  const sup = (l) => (tr.L > 1 ? ` (layer ${l + 1})` : "");
  tr.grad.hidden.forEach((a, l) => out.push({ name: `‖∂L/∂h_t‖${sup(l)}`, a, dash: "solid", width: 3 }));
  (tr.grad.cell ?? []).forEach((a, l) => out.push({ name: `‖∂L/∂c_t‖${sup(l)}`, a, dash: "dash", width: 2.5 }));
  out.push({ name: "‖∂L/∂x_t‖", a: tr.grad.input, dash: "dot", width: 2 });
  tr.grad.weightHH.forEach((a, l) => out.push({ name: `‖∂L/∂W_hh‖ step term${sup(l)}`, a, dash: "dashdot", width: 1.5 }));
  return out;
}

export class GradientView {
  constructor(root, { readout, name = "gradient-norms" }) {
    this.root = root;
    this.readout = readout;
    this.name = name;
    startPlotView(this, root, name, "plot-grad");
    this.view = visibility(root, () => this.update({}));
  }

  update(data) {
    const tr = takeUpdate(this, data);
    if (!tr) return;
    const ready = tr.gradFrom === 0 && tr.steps === tr.T && this.view.visible;
    if (ready && (!this.built || this.built.trace !== tr || this.built.T !== tr.T || data.relayout)) this.build();
    if (!ready && this.built && this.built.trace !== tr) {
      Plotly.purge(this.gd);
      this.built = null;
      this.overlay.measure();
    }
    this.render();
  }

  build() {
    const tr = this.trace;
    const width = this.root.clientWidth || 800;
    const series = gradientSeries(tr);
    const x = [...Array(tr.T).keys()].map((t) => t + 1);
    const data = series.map((s, i) => ({
      type: "scatter",
      mode: tr.T > 60 ? "lines" : "lines+markers",
      x,
      y: positive(s.a),
      name: s.name,
      line: { color: GRAD_LINES[i % GRAD_LINES.length], dash: s.dash, width: s.width },
      marker: { size: 5 },
      hovertemplate: `${s.name}<br>step %{x}<br>%{y:.3e}<extra></extra>`,
    }));
    const layout = baseLayout({
      height: sized(320, 150),
      showlegend: true,
      ...(isTalk() ? { legend: { orientation: "h", xref: "container", x: 0, y: 1, yref: "container", yanchor: "top", font: { size: 15 } } } : {}),
      margin: { l: 70, r: 16, t: sized(40, 30), b: sized(44, 30) },
      xaxis: { range: [0.5, tr.T + 0.5], ...timeTicks(tr.tokens, tr.T, width - 100) },
      yaxis: { type: "log", title: { text: "norm (log scale)" }, exponentformat: "power", ...(isTalk() ? { tickfont: { size: 17.5 }, nticks: 4 } : {}) },
    });
    this.gd.style.height = `${sized(320, 150)}px`;
    Plotly.react(this.gd, data, layout, plotConfig(this.name));
    this.built = { trace: tr, T: tr.T };
    this.overlay.measure();
  }

  render() {
    const tr = this.trace;
    if (!tr) return;
    const { phase, t } = this.cursor;
    if (this.built) {
      this.overlay.setCursor(phase === "backward" && t >= 0 ? t + 1 : null);
      this.overlay.setMask(
        phase === "forward" ? [0.5, tr.T + 0.5] : t > 0 ? [0.5, t + 0.5] : null,
        phase === "forward" ? "the BPTT sweep reveals these, right to left" : "not reached yet",
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
