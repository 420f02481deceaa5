// A series model's numbers: the series itself, the one-step predictions (each made at step t for step t + 1,
// drawn at t + 1), the free-running forecast after the last value, and the time cursor; and ∂L/∂x_t as bars,
// "which past years mattered" for the loss L, uncovered right to left by the BPTT sweep.

import { Overlay, Plotly, baseLayout, isTalk, makePlot, plotConfig, sized } from "../plots.js";
import { View } from "./base.js";

const ACTUAL = "#111827";
const PREDICTED = "#1f6fb4";
const FORECAST = "#15803d";

const FAR = "#b91c1c"; // a value far outside what the model was trained on

/**
 * The y range that keeps the data readable when some values lie far outside the training range (the API's
 * `outliers`): every drawn value inside the plausible range fits, padded; the far ones are marked at its edges.
 */
export function readableRange(outliers, ...series) {
  const [lo, hi] = outliers.plausible[0];
  const inside = series.flat().filter((v) => v !== null && Number.isFinite(v) && v >= lo && v <= hi);
  const top = inside.length ? Math.max(...inside) : hi;
  const bottom = inside.length ? Math.min(0, ...inside) : lo;
  const pad = 0.08 * (top - bottom || 1);
  return [bottom - (bottom < 0 ? pad : 0), top + pad];
}

const fmt = (v) => (v === null || v === undefined || !Number.isFinite(v) ? "–" : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1));

/** The x of step t: a year (first + t) when the first year is known, else the step t + 1. */
export const xOf = (first, t) => (first === null ? t + 1 : first + t);

export class SeriesPlotView extends View {
  /** opts: {first: () => first year or null, forecast: () => [[v]…] or null, readout, height} */
  constructor(root, { first, forecast, readout = null, height = 340, name = "series" }) {
    super(root, { name });
    this.first = first;
    this.forecast = forecast;
    this.readout = readout;
    this.height = height;
    this.gd = makePlot(root, name, "plot-series");
    this.overlay = new Overlay(this.gd);
  }

  update(data) {
    this.take(data);
    if (this.trace?.steps) this.refresh(data);
  }

  /** Drawn again as steps arrive (when the trace may be drawn) and when the forecast comes. */
  drawKey() {
    const tr = this.trace;
    const fc = this.forecast();
    return tr.drawable ? [tr, tr.version, tr.steps, fc ? fc.length : 0, this.first()] : null;
  }

  render() {
    const t = Math.min(this.cursor.t, this.trace.steps - 1);
    this.overlay.setCursor(xOf(this.first(), t));
    this.say(t);
  }

  prepare() {
    const tr = this.trace;
    const first = this.first();
    const T = tr.steps;
    const xs = [...Array(T).keys()].map((t) => xOf(first, t));
    const given = tr.givenSteps || T;
    const unit = tr.features?.[0] ?? "value";
    const actual = { type: "scatter", mode: T > 80 ? "lines" : "lines+markers", name: isTalk() ? "the data" : `${unit} (the data)`, x: xs.slice(0, given), y: tr.values.slice(0, given).map((v) => v?.[0] ?? null),
      line: { color: ACTUAL, width: 2.5 }, marker: { size: 6, color: ACTUAL }, hovertemplate: `%{x}: %{y:.1f}<extra>the data</extra>` }; // prettier-ignore
    const px = [...Array(Math.min(T, given)).keys()].map((t) => xOf(first, t + 1));
    const py = tr.predicted.slice(0, given).map((v) => v?.[0] ?? null);
    const predicted = { type: "scatter", mode: "lines+markers", name: isTalk() ? "one step ahead" : "one step ahead: predicted from the years before", x: px, y: py,
      line: { color: PREDICTED, width: 2, dash: "dot" }, marker: { size: 7, symbol: "circle-open", color: PREDICTED }, hovertemplate: `%{x}: %{y:.1f}<extra>predicted the year before</extra>` }; // prettier-ignore
    const data = [actual, predicted];
    const fc = this.forecast();
    if (fc && fc.length) {
      const fx = [xOf(first, given - 1), ...fc.map((_, i) => xOf(first, given + i))];
      const fy = [tr.values[given - 1]?.[0] ?? null, ...fc.map((v) => v[0])];
      data.push({ type: "scatter", mode: "lines+markers", name: isTalk() ? "forecast" : `forecast: ${fc.length} steps, each prediction fed back`, x: fx, y: fy,
        line: { color: FORECAST, width: 3 }, marker: { size: 6, color: FORECAST }, hovertemplate: `%{x}: %{y:.1f}<extra>forecast</extra>` }); // prettier-ignore
    }
    const yaxis = { title: { text: unit, standoff: 6 }, rangemode: "tozero" };
    const far = tr.outliers?.values?.filter((o) => o.feature === 0 && o.t < given) ?? [];
    if (far.length) {
      // one far value would stretch the axis until the rest looks flat at 0: the axis keeps the plausible data,
      // and each far value is a marker at the edge it lies beyond, labelled with its value
      const range = readableRange(tr.outliers, actual.y, py, data[2]?.y ?? []);
      Object.assign(yaxis, { range, autorange: false });
      const above = (o) => o.value > range[1];
      data.push({ type: "scatter", mode: "markers+text", name: isTalk() ? "far outside" : "far outside the training range", cliponaxis: false,
        x: far.map((o) => xOf(first, o.t)), y: far.map((o) => (above(o) ? range[1] : range[0])),
        text: far.map((o) => `${fmt(o.value)} ${above(o) ? "↑" : "↓"}`), textposition: far.map((o) => (above(o) ? "bottom center" : "top center")),
        textfont: { color: FAR }, customdata: far.map((o) => o.value),
        marker: { symbol: far.map((o) => (above(o) ? "triangle-up" : "triangle-down")), size: 14, color: FAR },
        hovertemplate: `%{x}: %{customdata}<extra>far outside the training range</extra>` }); // prettier-ignore
    }
    const layout = baseLayout({
      height: sized(this.height, this.height),
      showlegend: true,
      margin: { l: 64, r: 16, t: 8, b: 44 },
      xaxis: { title: { text: isTalk() ? "" : first === null ? "step" : "year", standoff: 6 } },
      yaxis,
    });
    Plotly.react(this.gd, data, layout, plotConfig("series")).then(() => this.overlay.measure());
  }

  say(t) {
    if (!this.readout) return;
    const tr = this.trace;
    const first = this.first();
    const v = tr.values[t]?.[0];
    const p = tr.predicted[t]?.[0];
    const next = tr.values[t + 1]?.[0];
    const name = (k) => (first === null ? `step ${k + 1}` : String(first + k));
    let text = `${name(t)}: ${fmt(v)}${tr.sampled[t] ? " (a forecast fed back)" : ""}. From it and every value before, the model predicts ${name(t + 1)}: ${fmt(p)}`;
    if (next !== undefined && next !== null && t + 1 < (tr.givenSteps || tr.steps)) text += `; it was ${fmt(next)} (error ${fmt(p - next)}).`;
    else text += ".";
    if (this.readout.textContent !== text) this.readout.textContent = text;
  }
}

export class InputGradView extends View {
  constructor(root, { first, readout = null, height = 260, name = "input-gradient" }) {
    super(root, { name });
    this.first = first;
    this.readout = readout;
    this.height = height;
    this.gd = makePlot(root, name, "plot-input-grad");
    this.overlay = new Overlay(this.gd);
  }

  /** Drawn once the BPTT sweep is all in. */
  drawKey() {
    const tr = this.trace;
    return tr.gradFrom === 0 && tr.steps === tr.T ? [tr, tr.version, this.first()] : null;
  }

  render() {
    const tr = this.trace;
    if (!this.drawKey()) return;
    const first = this.first();
    const { phase, t } = this.cursor;
    this.overlay.setCursor(xOf(first, t));
    if (phase === "forward") this.overlay.setMask([xOf(first, 0) - 0.5, xOf(first, tr.T - 1) + 0.5], "∂L/∂x_t arrives with the BPTT sweep (B)");
    else this.overlay.setMask(t > 0 ? [xOf(first, 0) - 0.5, xOf(first, t) - 0.5] : null, "BPTT has not reached these yet");
    if (this.readout) {
      const row = tr.gradValues[t];
      const several = (row?.length ?? 1) > 1;
      const g = several ? Math.hypot(...row) : row?.[0];
      const at = first === null ? `step ${t + 1}` : first + t;
      const what = several ? `‖∂L/∂x‖ at ${at}: ${g?.toPrecision(3)} — how strongly L depends on that step's ${row?.length} numbers.` : `∂L/∂x at ${at}: ${g?.toPrecision(3)} — raising that value by 1 would change L by about this much.`;
      const text = phase === "backward" && g !== undefined && g !== null ? what : "";
      if (this.readout.textContent !== text) this.readout.textContent = text;
    }
  }

  prepare() {
    const tr = this.trace;
    const first = this.first();
    const xs = [...Array(tr.T).keys()].map((t) => xOf(first, t));
    // several numbers a step (a classifier's 13 MFCCs): the size of the step's gradient, ‖∂L/∂x_t‖, in the data's units
    const several = (tr.features?.length ?? 1) > 1;
    const ys = tr.gradValues.map((g) => (several ? Math.hypot(...(g ?? [0])) : g?.[0] ?? 0));
    const label = several ? "‖∂L/∂x_t‖" : "∂L/∂x_t";
    const bars = { type: "bar", x: xs, y: ys, marker: { color: ys.map((v) => (v >= 0 ? "#d95f0e" : "#1f6fb4")) }, hovertemplate: `%{x}: ${label} = %{y:.3g}<extra></extra>` };
    const layout = baseLayout({
      height: sized(this.height, this.height),
      bargap: 0.15,
      margin: { l: 64, r: 16, t: 8, b: 44 },
      xaxis: { title: { text: first === null ? "step" : "year", standoff: 6 } },
      yaxis: { title: { text: label, standoff: 6 }, exponentformat: "power" },
    });
    Plotly.react(this.gd, [bars], layout, plotConfig("input-gradient")).then(() => this.overlay.measure());
  }
}
