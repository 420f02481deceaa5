// The plots only talk mode needs, as views with the same lifecycle as views/*.js (views/base.js):
//   SeriesView       sequences that are not text (a time series, a melody), a marker at the cursor's step
//   CertaintyView    p(the token that actually comes next) per step, one line per model, one plot per input
//   WeightShareView  each step's term of ∂L/∂W_hh as a share of them all, uncovered by the BPTT sweep

import { CELL_COLORS, LINE_COLORS } from "./colors.js";
import { Overlay, Plotly, baseLayout, fontSize, makePlot, plotConfig, timeTicks } from "./plots.js";
import { showToken } from "./trace.js";
import { View } from "./views/base.js";

const range = (n) => [...Array(n).keys()];
// The plots' heights: these plots are talk mode's only, sized so that a scene fits a 1280×720 screen whole.
const SERIES_HEIGHT = 180;
const CERTAINTY_HEIGHT = 190;
const SHARES_HEIGHT = 150;
/** Text from a scene file or the input box, safe inside Plotly's pseudo-HTML labels. */
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Side-by-side axes: the layout keys of n plots in a row, with a small gap between them. */
function row(n, gap = 0.07) {
  const w = (1 - gap * (n - 1)) / n;
  return range(n).map((i) => ({
    x: i === 0 ? "x" : `x${i + 1}`,
    y: i === 0 ? "y" : `y${i + 1}`,
    xaxis: i === 0 ? "xaxis" : `xaxis${i + 1}`,
    yaxis: i === 0 ? "yaxis" : `yaxis${i + 1}`,
    domain: [i * (w + gap), i * (w + gap) + w],
  }));
}

export class SeriesView extends View {
  /** series: [{name, values, kind: "line" | "notes", labels?}] from the scene file */
  constructor(root, { series, name = "sequences" }) {
    super(root, { name });
    this.series = series;
    this.gd = makePlot(root, name, "plot-series");
    this.t = null;
  }

  /** The scene's series, drawn with or without a trace; the marker follows a cursor once one has come. */
  update(data) {
    this.take(data);
    this.cursorCame = this.cursorCame || Boolean(data.cursor);
    this.refresh(data);
  }

  drawKey() {
    return [this.series];
  }

  render() {
    if (this.cursorCame) this.mark(this.cursor.t);
  }

  prepare() {
    const axes = row(this.series.length);
    const data = [];
    const layout = baseLayout({ height: SERIES_HEIGHT, margin: { l: 50, r: 12, t: fontSize() + 14, b: 36 } });
    const { xaxis, yaxis } = baseLayout();
    layout.annotations = [];
    this.series.forEach((s, i) => {
      const a = axes[i];
      const notes = s.kind === "notes";
      const x = s.values.map((_, k) => k + 1);
      data.push({
        type: "scatter",
        mode: notes && s.labels ? "lines+markers+text" : "lines+markers",
        x,
        y: s.values,
        text: s.labels?.map(esc),
        textposition: "top center",
        textfont: { size: fontSize() },
        cliponaxis: false, // a note's name over the highest note is drawn whole, above the axis if it must
        line: { color: LINE_COLORS[i % LINE_COLORS.length], width: 2.5, shape: notes ? "hv" : "linear" },
        marker: { size: notes ? 9 : 6 },
        xaxis: a.x,
        yaxis: a.y,
        name: s.name,
        hovertemplate: `${esc(s.name)}<br>step %{x}: %{y}<extra></extra>`,
      });
      const ticks = !notes && s.labels ? { tickmode: "array", tickvals: x, ticktext: s.labels.map(esc) } : {};
      layout[a.xaxis] = { ...xaxis, ...ticks, domain: a.domain, anchor: a.y, title: { text: "step", standoff: 2 } };
      // room over the highest point for its label
      const lo = Math.min(...s.values);
      const hi = Math.max(...s.values);
      const pad = notes && s.labels ? { range: [lo - 0.08 * (hi - lo + 1), hi + 0.3 * (hi - lo + 1)] } : {};
      layout[a.yaxis] = { ...yaxis, anchor: a.x, title: { text: notes ? "pitch" : "value", standoff: 2 }, ...(notes ? { dtick: 2 } : {}), ...pad };
      layout.annotations.push({ text: `<b>${esc(s.name)}</b>`, xref: "paper", yref: "paper", x: a.domain[0], y: 1, yshift: 4, xanchor: "left", yanchor: "bottom", showarrow: false });
    });
    // one marker per series at the cursor's step (moved with restyle, not a redraw)
    this.series.forEach((s, i) => {
      data.push({ type: "scatter", mode: "markers", x: [], y: [], xaxis: axes[i].x, yaxis: axes[i].y, marker: { size: 16, color: "rgba(124,58,237,0.55)", line: { color: "#7c3aed", width: 2 } }, hoverinfo: "skip" });
    });
    this.gd.style.height = `${SERIES_HEIGHT}px`;
    Plotly.react(this.gd, data, layout, plotConfig(this.name));
    this.t = null;
  }

  mark(t) {
    if (t === this.t || !this.drawn) return;
    this.t = t;
    const n = this.series.length;
    const xs = this.series.map((s) => (t >= 0 ? [(t % s.values.length) + 1] : []));
    const ys = this.series.map((s) => (t >= 0 ? [s.values[t % s.values.length]] : []));
    Plotly.restyle(this.gd, { x: xs, y: ys }, range(n).map((i) => n + i));
  }
}

/**
 * p(the token that comes next | the tokens so far) at every step: exp(−loss_t), each step's own loss being
 * −log p of the next token. runs: [{input, lines: [{model, cell, trace}]}]. The cursor is drawn on the first plot.
 */
export class CertaintyView extends View {
  constructor(root, { name = "p-next-token" }) {
    super(root, { name });
    this.gd = makePlot(root, name, "plot-certainty");
    this.overlay = new Overlay(this.gd);
    this.runs = [];
  }

  /** Several runs (data.runs), not one trace. */
  update(data) {
    if (data.runs) this.runs = data.runs;
    this.take(data);
    this.refresh(data);
  }

  /** Drawn once every run's traces are done, again when one of them is new. */
  drawKey() {
    const ready = this.runs.length > 0 && this.runs.every((r) => r.lines.every((l) => l.trace?.done));
    return ready ? [this.runs.map((r) => r.lines.map((l) => l.trace.version).join(",")).join("|")] : null;
  }

  prepare() {
    const axes = row(this.runs.length, 0.06);
    const width = this.root.clientWidth || 900;
    const data = [];
    const layout = baseLayout({ height: CERTAINTY_HEIGHT, showlegend: true, margin: { l: 60, r: 12, t: fontSize() + 16, b: 30 } });
    const { xaxis, yaxis } = baseLayout();
    layout.annotations = [];
    this.runs.forEach((run, i) => {
      const a = axes[i];
      const tr0 = run.lines[0].trace;
      const T = tr0.T;
      const ticks = timeTicks(tr0.tokens, T, width * (a.domain[1] - a.domain[0]) - 40);
      run.lines.forEach((line) => {
        const tr = line.trace;
        const y = range(T).map((t) => (t < T - 1 && Number.isFinite(tr.loss[t]) ? Math.exp(-tr.loss[t]) : null));
        data.push({
          type: "scatter",
          mode: "lines+markers",
          x: range(T).map((t) => t + 1),
          y,
          xaxis: a.x,
          yaxis: a.y,
          name: tr.cell.toUpperCase(), // the model: in the hover
          legendgroup: tr.model,
          showlegend: i === 0,
          line: { color: CELL_COLORS[tr.cell] ?? "#444", width: 3.5 },
          marker: { size: 8 },
          customdata: range(T).map((t) => [showToken(tr.tokens[t] ?? ""), showToken(tr.tokens[t + 1] ?? "")]),
          hovertemplate: `${tr.cell.toUpperCase()} (${esc(tr.model)}): after “%{customdata[0]}”, p(“%{customdata[1]}”) = %{y:.3f}<extra></extra>`,
        });
      });
      layout[a.xaxis] = { ...xaxis, ...ticks, domain: a.domain, anchor: a.y, range: [0.5, T + 0.5] };
      layout[a.yaxis] = { ...yaxis, anchor: a.x, range: [0, 1.05], ...(i === 0 ? { title: { text: "p(next)" } } : {}) };
      layout.annotations.push({ text: `<b>${esc(run.input)}</b>`, xref: "paper", yref: "paper", x: (a.domain[0] + a.domain[1]) / 2, y: 1.0, xanchor: "center", yanchor: "bottom", showarrow: false, font: { size: layout.font.size + 2 } });
    });
    layout.legend = { ...layout.legend, yref: "container", y: 1, yanchor: "top" };
    this.gd.style.height = `${CERTAINTY_HEIGHT}px`;
    Plotly.react(this.gd, data, layout, plotConfig(this.name));
    this.builtT = this.runs[0].lines[0].trace.T;
    this.overlay.measure();
  }

  /** The cursor on the plot that is drawn: while a new input's traces arrive, that is still the last one's. */
  render() {
    if (!this.drawn) return;
    const { phase, t } = this.cursor;
    const T = this.builtT;
    this.overlay.setCursor(t >= 0 ? t + 1 : null);
    this.overlay.setMask(phase === "forward" && t < T - 1 ? [t + 1.5, T + 0.5] : null, "not read yet");
  }
}

/**
 * W_hh is the same at every step, so ∂L/∂W_hh is a sum of one term per step; the bar of step t is its term's
 * norm ‖∂L_t/∂W_hh‖ as a share of all the terms' norms. The BPTT sweep uncovers them from the last step back.
 */
export class WeightShareView extends View {
  constructor(root, { readout, name = "weight-update-shares" }) {
    super(root, { name });
    this.readout = readout;
    this.gd = makePlot(root, name, "plot-shares");
    this.overlay = new Overlay(this.gd);
  }

  /** Drawn once the BPTT sweep is all in. */
  drawKey() {
    const tr = this.trace;
    return tr.gradFrom === 0 && tr.steps === tr.T ? [tr] : null;
  }

  shares() {
    const tr = this.trace;
    const a = tr.grad.weightHH[0];
    let sum = 0;
    for (let t = 0; t < tr.T; t++) sum += a[t] > 0 ? a[t] : 0;
    return range(tr.T).map((t) => (sum > 0 && a[t] > 0 ? (100 * a[t]) / sum : 0));
  }

  prepare() {
    const tr = this.trace;
    const width = this.root.clientWidth || 600;
    const shares = this.shares();
    const data = [
      {
        type: "bar",
        x: range(tr.T).map((t) => t + 1),
        y: shares,
        marker: { color: "#d95f0e" },
        customdata: range(tr.T).map((t) => [showToken(tr.tokens[t] ?? ""), tr.grad.weightHH[0][t]]),
        hovertemplate: `step %{x} “%{customdata[0]}”<br>%{y:.1f} % of the update<br>‖∂L_t/∂W_hh‖ %{customdata[1]:.3e}<extra></extra>`,
      },
    ];
    const layout = baseLayout({
      height: SHARES_HEIGHT,
      margin: { l: 60, r: 12, t: 12, b: 44 },
      bargap: 0.15,
      xaxis: { range: [0.5, tr.T + 0.5], ...timeTicks(tr.tokens, tr.T, width - 90) },
      yaxis: { title: { text: "share (%)" }, rangemode: "tozero" }, // of ∂L/∂W_hh: the panel's title
    });
    this.gd.style.height = `${SHARES_HEIGHT}px`;
    Plotly.react(this.gd, data, layout, plotConfig(this.name));
    this.drawnShares = shares;
    this.overlay.measure();
  }

  render() {
    const tr = this.trace;
    if (!tr || !this.drawn) return;
    const { phase, t } = this.cursor;
    this.overlay.setCursor(phase === "backward" && t >= 0 ? t + 1 : null);
    this.overlay.setMask(
      phase === "forward" ? [0.5, tr.T + 0.5] : t > 0 ? [0.5, t + 0.5] : null,
      phase === "forward" ? "the BPTT sweep fills these in, right to left" : "not reached yet",
    );
    if (this.readout) {
      const s = this.drawnShares;
      let text;
      if (phase === "forward") text = "Forward sweep: no error yet. BPTT starts at the loss.";
      else {
        let done = 0;
        for (let k = Math.max(0, t); k < tr.T; k++) done += s[k];
        text = `step ${t + 1} “${showToken(tr.tokens[t] ?? "")}”: ${s[t].toFixed(1)} % of the W_hh update; steps ${t + 1}–${tr.T} together ${done.toFixed(1)} %`;
      }
      if (this.readout.textContent !== text) this.readout.textContent = text;
    }
  }
}
