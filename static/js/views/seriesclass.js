// A series classifier's page (a series card with `target: "classify"`, the spoken digits): the frames it reads as
// a heatmap (one row per feature, e.g. 13 MFCCs, one column per frame) and its label probabilities after every
// frame (one row per label), both under the time cursor; the readout says what it would answer at the cursor.

import { Overlay, Plotly, baseLayout, fontSize, isTalk, makePlot, plotConfig, sized } from "../plots.js";
import { View } from "./base.js";

/** A colour bar whose title and ticks are the plot's own size (Plotly draws a colour bar's title smaller). */
const bar = (title, side = "right") => ({ thickness: 12, title: { text: title, side, font: { size: fontSize() } }, tickfont: { size: fontSize() } });

const pct = (p) => `${(100 * p).toFixed(p >= 0.995 || p < 0.005 ? 0 : 1)} %`;

/** A (T × n) list of rows → n rows of T (a heatmap's z: one row per feature or label). */
const columns = (rows, n) => [...Array(n).keys()].map((k) => rows.map((r) => r?.[k] ?? null));

/** The label probabilities after step t, as an array (the trace's flat T × labels). */
export const probsAt = (tr, t) => (tr.probs ? Array.from(tr.probsAt(t)) : []);

/** The most likely label after step t and its probability. */
export function answerAt(tr, t) {
  const p = probsAt(tr, t);
  let best = 0;
  for (let k = 1; k < p.length; k++) if (p[k] > p[best]) best = k;
  return { label: tr.labels?.[best] ?? String(best), p: p[best] ?? 0 };
}

class ClassHeat extends View {
  constructor(root, { name, readout = null, height, className }) {
    super(root, { name });
    this.readout = readout;
    this.height = height;
    this.gd = makePlot(root, name, className);
    this.overlay = new Overlay(this.gd);
  }

  drawKey() {
    const tr = this.trace;
    return tr.steps > 0 && tr.drawable ? [tr, tr.version, tr.steps] : null;
  }

  render() {
    const t = Math.min(this.cursor.t, this.trace.steps - 1);
    this.overlay.setCursor(t + 1);
    this.say(t);
  }

  say() {}

  draw(trace, yaxis, left) {
    const layout = baseLayout({
      height: sized(this.height, this.height),
      margin: { l: left, r: 16, t: 8, b: 44 },
      xaxis: { title: { text: isTalk() ? "" : "frame", standoff: 6 } },
      yaxis,
    });
    Plotly.react(this.gd, [trace], layout, plotConfig(this.name)).then(() => this.overlay.measure());
  }
}

/** The numbers read: one row per feature, one column per frame. */
export class FramesView extends ClassHeat {
  constructor(root, { readout = null, height = 300, name = "frames" } = {}) {
    super(root, { name, readout, height, className: "plot-frames" });
  }

  prepare() {
    const tr = this.trace;
    const T = tr.steps;
    const names = tr.features ?? [];
    const z = columns(tr.values.slice(0, T), names.length);
    const heat = { type: "heatmap", z, x: [...Array(T).keys()].map((t) => t + 1), y: names, colorscale: "Viridis",
      colorbar: bar(tr.units || ""),
      hovertemplate: "frame %{x}, %{y}: %{z:.2f}<extra></extra>" }; // prettier-ignore
    this.draw(heat, { autorange: "reversed", title: { text: "", standoff: 4 } }, 72);
  }

  say(t) {
    if (!this.readout) return;
    const v = this.trace.values[t];
    const names = this.trace.features ?? [];
    const text = v ? `Frame ${t + 1}: ${names.slice(0, 3).map((n, k) => `${n} ${v[k].toFixed(1)}`).join(", ")}, … (${v.length} numbers)` : "";
    if (this.readout.textContent !== text) this.readout.textContent = text;
  }
}

/** The label probabilities after every frame: one row per label. */
export class ClassProbsView extends ClassHeat {
  constructor(root, { readout = null, height = 300, name = "class-probs" } = {}) {
    super(root, { name, readout, height, className: "plot-class-probs" });
  }

  prepare() {
    const tr = this.trace;
    const T = tr.steps;
    const labels = tr.labels ?? [];
    const rows = [...Array(T).keys()].map((t) => probsAt(tr, t));
    const heat = { type: "heatmap", z: columns(rows, labels.length), x: [...Array(T).keys()].map((t) => t + 1), y: labels, zmin: 0, zmax: 1,
      colorscale: "Blues", reversescale: true, colorbar: bar("p", "top"), // white: unlikely, dark blue: sure
      hovertemplate: "after frame %{x}: p(%{y}) = %{z:.3f}<extra></extra>" }; // prettier-ignore
    this.draw(heat, { autorange: "reversed", type: "category", title: { text: isTalk() ? "" : "label", standoff: 4 } }, 56);
  }

  say(t) {
    if (!this.readout) return;
    const tr = this.trace;
    const { label, p } = answerAt(tr, t);
    const against = tr.label === null ? "" : ` L is measured against ${tr.label}${tr.labelSource === "predicted" ? " (its own answer)" : ""}.`;
    const text = `After frame ${t + 1} of ${tr.T}: most likely ${label} (${pct(p)}).${against}`;
    if (this.readout.textContent !== text) this.readout.textContent = text;
  }
}

export { pct };
