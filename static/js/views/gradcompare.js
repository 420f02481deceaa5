// Several models' ‖∂L/∂h_t‖ (first layer) on one log axis: the vanishing-gradient lesson in one picture.

import { CELL_COLORS, fmtNorm } from "../colors.js";
import { Overlay, Plotly, baseLayout, isTalk, makePlot, plotConfig, sized, timeTicks } from "../plots.js";
import { View } from "./base.js";

export class GradCompareView extends View {
  /** talkHeight: the plot's height in talk mode */
  constructor(root, { table, name = "gradient-norms-compared", talkHeight = 200 }) {
    super(root, { name });
    this.talkHeight = talkHeight;
    this.table = table;
    this.gd = makePlot(root, name, "plot-grad");
    this.overlay = new Overlay(this.gd);
    this.traces = [];
  }

  /** Several traces (data.traces), not one. */
  update(data) {
    if (data.traces) this.traces = data.traces;
    this.take(data);
    this.refresh(data);
  }

  /** Drawn once every trace is done, again when one of them is new. */
  drawKey() {
    const trs = this.traces;
    return trs.length > 0 && trs.every((tr) => tr && tr.done && tr.gradFrom === 0) ? [trs.map((tr) => tr.version).join(",")] : null;
  }

  prepare() {
    const trs = this.traces;
    const T = Math.min(...trs.map((tr) => tr.T));
    const width = this.root.clientWidth || 900;
    const x = [...Array(T).keys()].map((t) => t + 1);
    const data = trs.map((tr) => ({
      type: "scatter",
      mode: T > 60 ? "lines" : "lines+markers",
      x,
      y: Array.from(tr.grad.hidden[0].subarray(0, T), (v) => (v > 0 ? v : null)),
      name: `${tr.cell.toUpperCase()} ‖∂L/∂h_t‖ (${tr.model})`,
      line: { color: CELL_COLORS[tr.cell] ?? "#444", width: 3.5 },
      marker: { size: 6 },
      hovertemplate: `${tr.cell.toUpperCase()}<br>step %{x}<br>‖∂L/∂h_t‖ %{y:.3e}<extra></extra>`,
    }));
    for (const tr of trs) {
      if (tr.grad.cell) {
        data.push({
          type: "scatter",
          mode: "lines",
          x,
          y: Array.from(tr.grad.cell[0].subarray(0, T), (v) => (v > 0 ? v : null)),
          name: `${tr.cell.toUpperCase()} ‖∂L/∂c_t‖`,
          line: { color: CELL_COLORS[tr.cell] ?? "#444", width: 2, dash: "dash" },
          visible: "legendonly",
          hovertemplate: `${tr.cell.toUpperCase()}<br>step %{x}<br>‖∂L/∂c_t‖ %{y:.3e}<extra></extra>`,
        });
      }
    }
    const layout = baseLayout({
      height: sized(380, this.talkHeight),
      showlegend: !isTalk(), // talk mode: the table's cells are written in their lines' colours
      margin: { l: 76, r: 16, t: sized(46, 10), b: sized(44, 30) },
      xaxis: { range: [0.5, T + 0.5], ...timeTicks(trs[0].tokens, T, width - 100) },
      // talk mode: the panel's title says "log" (the whole title, longer than the plot is tall, was clipped)
      yaxis: { type: "log", title: { text: isTalk() ? "‖∂L/∂h_t‖" : "‖∂L/∂h_t‖ (log scale)" }, exponentformat: "power", ...(isTalk() ? { nticks: 3 } : {}) },
    });
    this.gd.style.height = `${sized(380, this.talkHeight)}px`;
    Plotly.react(this.gd, data, layout, plotConfig(this.name));
    this.overlay.measure();
    this.fillTable(T);
  }

  fillTable(T) {
    if (!this.table) return;
    const body = this.table.tBodies[0];
    body.replaceChildren(
      ...this.traces.map((tr) => {
        const g = tr.grad.hidden[0];
        let end = T - 1;
        while (end > 0 && !(g[end] > 0)) end--; // the last step the loss reaches (next-token: T−1 has no target)
        const first = g[0];
        const last = g[end];
        const ratio = last > 0 ? first / last : Number.NaN;
        const row = document.createElement("tr");
        const orders = ratio > 0 ? Math.log10(ratio) : Number.NaN;
        for (const v of [tr.cell.toUpperCase(), fmtNorm(first), fmtNorm(last), ratio > 0 ? ratio.toExponential(1) : "–", Number.isFinite(orders) ? (-orders).toFixed(1) : "–"]) {
          const td = document.createElement("td");
          td.textContent = v;
          row.append(td);
        }
        const name = row.firstElementChild;
        if (name) {
          name.style.color = CELL_COLORS[tr.cell] ?? "";
          name.style.fontWeight = "700";
        }
        return row;
      }),
    );
  }

  render() {
    if (!this.drawn) return;
    const T = Math.min(...this.traces.map((tr) => tr.T));
    const { phase, t } = this.cursor;
    this.overlay.setCursor(phase === "backward" ? t + 1 : null);
    this.overlay.setMask(phase === "forward" ? [0.5, T + 0.5] : t > 0 ? [0.5, t + 0.5] : null, phase === "forward" ? "the BPTT sweep reveals these, right to left" : "not reached yet");
  }
}
