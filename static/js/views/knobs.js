// The knobs of the vanishing gradient: ‖∂L/∂h_t‖ of a fresh network on a log axis, with the textbook bound
// dashed, redrawn with Plotly.react (never a new plot) each time a knob moves; kept curves stay for comparison.

import { CELL_COLORS, fmtNorm } from "../colors.js";
import { Plotly, baseLayout, fontSize, isPresenter, makePlot, plotConfig, sized } from "../plots.js";

const KEPT_COLORS = ["#6b7280", "#1f6fb4", "#8c510a", "#737000", "#6a51a3", "#525252"];

/** A norm for a log axis: zeros and non-finite values (sent as null) are gaps. */
const positive = (v) => (v > 0 && Number.isFinite(v) ? v : null);

/** What a curve is called: its settings, the ones that apply to its cell. */
export function settingsLabel(s) {
  const parts = [s.cell.toUpperCase()];
  if (s.cell === "rnn") parts.push(s.nonlinearity);
  if (s.cell === "mingru") parts.push(`gate bias ${s.gate_bias.toFixed(2)}`);
  else if (s.cell === "s6") parts.push(`Δ ${s.step.toPrecision(2)}`);
  else parts.push(`radius ${s.radius.toFixed(2)}`);
  if (s.cell === "lstm") parts.push(`forget bias ${s.forget_bias.toFixed(2)}`);
  parts.push(`H ${s.hidden_size}`, `T ${s.steps}`);
  if (s.clip !== null) parts.push(`clip ${s.clip}`);
  if (s.seed) parts.push(`seed ${s.seed}`);
  return parts.join(" · ");
}

export class KnobsView {
  constructor(root, { readout }) {
    this.root = root;
    this.readout = readout;
    this.gd = makePlot(root, "gradient-knobs", "plot-knobs");
    this.current = null; // {settings, reply}
    this.kept = [];
  }

  /** data: {result: {settings, reply}} a new curve; {keep: true} pin it; {clear: true}; {relayout}. */
  update(data) {
    if (data.result) this.current = data.result;
    if (data.keep && this.current && !this.kept.some((k) => k.label === settingsLabel(this.current.settings))) {
      this.kept.push({ label: settingsLabel(this.current.settings), reply: this.current.reply });
    }
    if (data.clear) this.kept = [];
    return this.render();
  }

  /** Resolves once Plotly has drawn. */
  render() {
    if (!this.current) return Promise.resolve();
    const { settings, reply } = this.current;
    const x = (T) => Array.from({ length: T }, (_, t) => t + 1);
    const data = this.kept.map((k, i) => ({
      type: "scatter",
      mode: "lines",
      x: x(k.reply.grad_norms.length),
      y: k.reply.grad_norms.map(positive),
      name: `kept: ${k.label}`,
      line: { color: KEPT_COLORS[i % KEPT_COLORS.length], width: 2 },
      opacity: 0.75,
      hovertemplate: `${k.label}<br>step %{x}<br>‖∂L/∂h_t‖ %{y:.3e}<extra></extra>`,
    }));
    const color = CELL_COLORS[settings.cell] ?? "#111827";
    const label = settingsLabel(settings);
    data.push({
      type: "scatter",
      mode: "lines",
      x: x(reply.bound.length),
      y: reply.bound.map(positive),
      name: "the bound",
      line: { color, width: 1.5, dash: "dash" },
      hovertemplate: "bound<br>step %{x}<br>%{y:.3e}<extra></extra>",
    });
    data.push({
      type: "scatter",
      mode: "lines",
      x: x(reply.grad_norms.length),
      y: reply.grad_norms.map(positive),
      name: label,
      line: { color, width: 3.5 },
      hovertemplate: `${label}<br>step %{x}<br>‖∂L/∂h_t‖ %{y:.3e}<extra></extra>`,
    });
    const height = sized(isPresenter() ? 380 : 340, 330);
    this.gd.style.height = `${height}px`;
    const layout = baseLayout({
      height,
      showlegend: true,
      margin: { l: isPresenter() ? 112 : 98, r: 16, t: 40 + 22 * Math.ceil((this.kept.length + 2) / 2), b: 56 },
      // fixed margins (no automargin): a slider's redraw is one pass, not a pass and a relayout
      xaxis: { title: { text: "step t (the loss is at the last step)" }, range: [0.5, reply.grad_norms.length + 0.5], automargin: false },
      yaxis: { type: "log", exponentformat: "power", automargin: false },
      // the y title as an annotation at the margin's edge: without automargin Plotly's own may overlap the ticks
      annotations: [{ text: "‖∂L/∂h_t‖ (log scale)", xref: "paper", yref: "paper", x: 0, y: 0.5, xshift: -(isPresenter() ? 100 : 86), textangle: -90, showarrow: false, font: { size: fontSize() + 2 } }],
      uirevision: "knobs",
    });
    this.describe(settings, reply);
    return Plotly.react(this.gd, data, layout, plotConfig("gradient-knobs"));
  }

  describe(settings, reply) {
    const g = reply.grad_norms;
    const first = g[0];
    const last = g[g.length - 1];
    const ratio = first > 0 && last > 0 ? Math.log10(first / last) : null;
    // read from the loss back: a first step's norm below the last's is a gradient that vanished on the way
    const change = ratio === null ? "" : ratio < 0 ? `falls ${(-ratio).toFixed(1)} orders of magnitude` : `grows ${ratio.toFixed(1)} orders of magnitude`;
    const clipped = (reply.clipped ?? []).filter(Boolean).length;
    this.readout.textContent =
      `${reply.radius_measured > 0 ? `radius set ${reply.radius_measured.toFixed(3)}` : "no W_hh: every factor ≤ 1"} · ‖∂L/∂h_T‖ ${fmtNorm(last)} → ‖∂L/∂h_1‖ ${fmtNorm(first)}` +
      (change ? `: ${change} over ${g.length - 1} steps back` : "") +
      (clipped ? ` · clipped at ${clipped} steps` : "") +
      (this.kept.length ? ` · ${this.kept.length} kept` : "");
  }
}
