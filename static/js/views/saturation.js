// Gate saturation (Karpathy, Johnson & Fei-Fei 2015, fig. 3), from the ordinary trace of the input on screen: for
// every unit of every sigmoid gate, the share of steps it is nearly shut (< 0.1, x) against nearly open (> 0.9,
// y). Clicking a point follows that unit everywhere (the bus's "unit" event); the followed unit is ringed, and
// its gates over time are drawn beside the scatter. With the keyboard's focus on the scatter, the arrow keys move
// a dashed ring from unit to unit (the readout says where it is) and Enter follows that unit.

import { bus } from "../bus.js";
import { isTanhGate } from "../colors.js";
import { onKeysIn } from "../keys.js";
import { Plotly, baseLayout, isPresenter, makePlot, plotConfig } from "../plots.js";

export const LOW = 0.1;
export const HIGH = 0.9;
const GATE_COLORS = { input: "#1f6fb4", forget: "#15803d", output: "#8c510a", reset: "#9d174d", update: "#6a51a3" };

/** {gate: {left: [H], right: [H]}} of a trace's first layer, sigmoid gates only. */
export function saturation(trace, layer = 0) {
  const { T, H } = trace;
  const out = {};
  for (const g of trace.gateNames) {
    if (isTanhGate(g)) continue;
    const a = trace.layers[layer].gates[g];
    const left = new Array(H).fill(0);
    const right = new Array(H).fill(0);
    for (let t = 0; t < T; t++) {
      for (let u = 0; u < H; u++) {
        const v = a[t * H + u];
        if (v < LOW) left[u]++;
        else if (v > HIGH) right[u]++;
      }
    }
    out[g] = { left: left.map((n) => n / T), right: right.map((n) => n / T) };
  }
  return out;
}

export class SaturationView {
  constructor(root, { unitRoot, readout }) {
    this.root = root;
    this.readout = readout;
    this.gd = makePlot(root, "gate-saturation", "plot-saturation");
    this.unitGd = makePlot(unitRoot, "unit-gates", "plot-saturation");
    this.trace = null;
    this.unit = 0;
    this.picked = null; // the unit the keyboard is on, until Enter follows it
    this.bound = false;
    root.tabIndex = 0;
    root.setAttribute("aria-label", "gate saturation: arrow keys move between units, Enter follows one");
    const move = (d) => () => this.pick(d);
    onKeysIn(root, "on the gate saturation plot (U)", [
      { keys: ["ArrowLeft", "ArrowRight"], does: "previous / next unit", act: (e) => move(e.key === "ArrowRight" ? 1 : -1)() },
      { keys: ["ArrowDown", "ArrowUp"], does: "8 units back / on", act: (e) => move(e.key === "ArrowUp" ? 8 : -8)() },
      { keys: ["Enter"], does: "follow the unit everywhere", act: () => this.follow() },
    ]);
    root.addEventListener("blur", () => {
      if (this.picked === null) return;
      this.picked = null;
      this.render();
    });
  }

  focus() {
    this.root.focus();
  }

  /** Move the keyboard's unit by d (wrapping around); the ring and the readout follow. */
  pick(d) {
    const H = this.trace?.H;
    if (!H) return;
    this.picked = (((this.picked ?? this.unit) + d) % H + H) % H;
    this.render();
  }

  follow() {
    const u = this.picked ?? this.unit;
    this.picked = null;
    bus.emit("unit", { unit: u, layer: 0 });
  }

  /** data: {trace} the model's trace (null clears); {unit}; {relayout}. */
  update(data) {
    if (data.trace !== undefined) this.trace = data.trace;
    if (data.unit !== undefined) this.unit = data.unit;
    this.render();
  }

  render() {
    const tr = this.trace;
    const big = isPresenter();
    const height = big ? 420 : 360;
    if (!tr) return;
    const sat = saturation(tr);
    const gates = Object.keys(sat);
    if (!gates.length) {
      Plotly.purge(this.gd);
      Plotly.purge(this.unitGd);
      this.gd.parentElement.hidden = true;
      this.unitGd.parentElement.hidden = true;
      this.readout.textContent = `${tr.model} is a plain RNN: it has no gates to saturate. Choose the LSTM or the GRU.`;
      window.__unrolled.labSaturation = { model: tr.model, points: 0, unit: this.unit };
      return;
    }
    this.gd.parentElement.hidden = false;
    this.unitGd.parentElement.hidden = false;
    const units = Array.from({ length: tr.H }, (_, u) => u);
    const data = gates.map((g) => ({
      type: "scatter",
      mode: "markers",
      x: sat[g].left,
      y: sat[g].right,
      customdata: units,
      name: `${g} gate`,
      marker: { color: GATE_COLORS[g] ?? "#111827", size: big ? 11 : 9, opacity: 0.8, line: { color: "#fff", width: 0.5 } },
      hovertemplate: `${g} gate, unit %{customdata}<br>shut (< ${LOW}) %{x:.0%} of the steps<br>open (> ${HIGH}) %{y:.0%}<extra></extra>`,
    }));
    // the followed unit: a ring around each of its gates' points
    data.push({
      type: "scatter",
      mode: "markers",
      x: gates.map((g) => sat[g].left[this.unit]),
      y: gates.map((g) => sat[g].right[this.unit]),
      customdata: gates.map(() => this.unit),
      name: `unit ${this.unit}`,
      marker: { color: "rgba(0,0,0,0)", size: big ? 24 : 20, line: { color: "#7c3aed", width: 3.5 } },
      hovertemplate: `unit %{customdata} (followed)<extra></extra>`,
    });
    const picked = this.picked ?? this.unit;
    if (picked !== this.unit) {
      data.push({
        type: "scatter",
        mode: "markers",
        x: gates.map((g) => sat[g].left[picked]),
        y: gates.map((g) => sat[g].right[picked]),
        customdata: gates.map(() => picked),
        name: `unit ${picked} (Enter follows it)`,
        marker: { color: "rgba(0,0,0,0)", size: big ? 28 : 24, line: { color: "#d95f0e", width: 3, dash: "dot" } },
        hovertemplate: `unit %{customdata} (the keyboard's)<extra></extra>`,
      });
    }
    this.gd.style.height = `${height}px`;
    Plotly.react(
      this.gd,
      data,
      baseLayout({
        height,
        showlegend: true,
        margin: { l: 64, r: 16, t: 40, b: 52 },
        xaxis: { range: [-0.04, 1.04], title: { text: `share of steps shut (< ${LOW})` }, tickformat: ".0%" },
        yaxis: { range: [-0.04, 1.04], title: { text: `share of steps open (> ${HIGH})` }, tickformat: ".0%" },
        shapes: [{ type: "line", x0: 1, y0: 0, x1: 0, y1: 1, line: { color: "#9ca3af", dash: "dot", width: 1 } }],
        hovermode: "closest",
        uirevision: tr.model,
      }),
      plotConfig("gate-saturation"),
    );
    if (!this.bound) {
      this.bound = true;
      this.gd.on("plotly_click", (ev) => {
        const p = ev.points[0];
        if (p && p.customdata !== undefined) bus.emit("unit", { unit: Number(p.customdata), layer: 0 });
      });
    }
    this.renderUnit(gates);
    const sel = gates.map((g) => `${g} ${Math.round(100 * sat[g].left[picked])} % shut, ${Math.round(100 * sat[g].right[picked])} % open`);
    const which = picked === this.unit ? `Unit ${picked}` : `Unit ${picked} (Enter follows it; followed: ${this.unit})`;
    this.readout.textContent = `${tr.model}, ${tr.H} units × ${gates.length} gates over ${tr.T} steps. ${which}: ${sel.join(" · ")}.`;
    const points = data.slice(0, gates.length).reduce((n, d) => n + d.x.length, 0);
    window.__unrolled.labSaturation = { model: tr.model, points, gates, unit: this.unit, picked, steps: tr.T };
  }

  /** The followed unit's gates at every step, with the two thresholds. */
  renderUnit(gates) {
    const tr = this.trace;
    const { T, H } = tr;
    const x = Array.from({ length: T }, (_, t) => t + 1);
    const data = gates.map((g) => ({
      type: "scatter",
      mode: "lines",
      x,
      y: Array.from({ length: T }, (_, t) => tr.layers[0].gates[g][t * H + this.unit]),
      name: g,
      line: { color: GATE_COLORS[g] ?? "#111827", width: 2.5 },
      hovertemplate: `${g}, unit ${this.unit}<br>step %{x}<br>%{y:.3f}<extra></extra>`,
    }));
    const height = isPresenter() ? 420 : 360;
    this.unitGd.style.height = `${height}px`;
    Plotly.react(
      this.unitGd,
      data,
      baseLayout({
        height,
        showlegend: true,
        margin: { l: 56, r: 16, t: 40, b: 52 },
        xaxis: { title: { text: `step t · unit ${this.unit}` }, range: [0.5, T + 0.5] },
        yaxis: { range: [-0.02, 1.02], title: { text: "gate value" } },
        shapes: [LOW, HIGH].map((y) => ({ type: "line", xref: "paper", x0: 0, x1: 1, y0: y, y1: y, line: { color: "#9ca3af", dash: "dot", width: 1 } })),
      }),
      plotConfig("unit-gates"),
    );
  }
}
