// Units × time heatmaps of one layer, stacked with a shared time axis: the hidden state h_t and the LSTM's
// cell state c_t, or one row per gate. The plot is drawn once per trace (again only when more steps arrive);
// the time cursor, the mask over steps not yet read and the chosen unit are an overlay moved per frame.

import { bus } from "../bus.js";
import { DIVERGING, GATE, isTanhGate } from "../colors.js";
import { Overlay, Plotly, baseLayout, heatColumns, isTalk, makePlot, plotConfig, scale, timeTicks } from "../plots.js";
import { showToken } from "../trace.js";
import { View } from "./base.js";

/** The series a panel can show: {label, title, array(trace, layer), scale, zmax(trace)} */
export const STATE_SERIES = (trace) => {
  const out = [{ key: "hidden", label: "h_t", title: "hidden state h_t", array: (tr, l) => tr.layers[l].hidden, scale: "diverging", zmax: () => 1 }];
  if (trace.cell === "lstm") {
    out.push({
      key: "cell",
      label: "c_t",
      title: "cell state c_t",
      array: (tr, l) => tr.layers[l].cell,
      scale: "diverging",
      zmax: (tr) => Math.min(tr.cellAbsMax, 5),
    });
  }
  return out;
};

export const GATE_SERIES = (trace) =>
  trace.gateNames.map((g) => ({
    key: g,
    label: g,
    title: `${g} gate`,
    array: (tr, l) => tr.layers[l].gates[g],
    scale: isTanhGate(g) ? "diverging" : "gate",
    zmax: () => 1,
  }));

const REBUILD_MS = 400;

// A quantity lit in the cell's drawing (the bus's "part" event: a gate by its name, "h", "c") → its series here.
const SERIES_KEY = { h: "hidden", c: "cell" };

export class TimeHeatmap extends View {
  /** talk: {area, axis} in talk mode, the height (px) all the series share and whether the time axis is labelled */
  constructor(root, { series, name, info, talk = {} }) {
    super(root, { name, onScreen: true });
    this.talk = { area: 110, axis: true, ...talk };
    this.seriesOf = series;
    this.info = info; // an element for the hovered value, the unit and the token
    this.gd = makePlot(root, name, "plot-heat");
    this.overlay = new Overlay(this.gd);
    this.built = null; // what the plot is drawn from: {trace, layer, steps, T}
    this.timer = null;
    this.lastBuild = 0;
    this.litQ = null; // the quantity lit in the cell's drawing: its series is framed here
    bus.on("part", ({ q, model }) => {
      if (model && this.trace && model !== this.trace.model) return; // another cell's drawing (a compare scene)
      this.litQ = q;
      this.light();
    });
  }

  /** Frame the series of the quantity lit in the drawing (none: nothing framed); the root says which. */
  light() {
    const key = this.litQ ? (SERIES_KEY[this.litQ] ?? this.litQ) : null;
    const i = this.series && key ? this.series.findIndex((s) => s.key === key) : -1;
    this.overlay.setBand(i < 0 ? null : i === 0 ? "yaxis" : `yaxis${i + 1}`);
    this.root.dataset.lit = i < 0 ? "" : key;
  }

  /** Drawn as the steps arrive (at most every REBUILD_MS while they stream), at once for a new trace or layer. */
  drawKey() {
    const tr = this.trace;
    return tr.steps > 0 && tr.drawable ? [tr, this.layer, tr.steps, tr.T] : null;
  }

  prepare(last, data) {
    const tr = this.trace;
    this.scheduleBuild(!last || last[0] !== tr || last[1] !== this.layer || tr.steps === tr.T || data.relayout);
  }

  scheduleBuild(now) {
    const wait = now ? 0 : Math.max(0, REBUILD_MS - (performance.now() - this.lastBuild));
    if (wait === 0) {
      clearTimeout(this.timer);
      this.timer = null;
      this.build();
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.build();
        this.render();
      }, wait);
    }
  }

  build() {
    const tr = this.trace;
    const l = this.layer;
    const series = this.seriesOf(tr);
    const width = this.root.clientWidth || 800;
    const maxCols = Math.max(50, Math.floor(width - 120));
    const n = series.length;
    const talk = isTalk();
    const gap = n > 1 ? 0.06 : 0;
    const data = [];
    const layout = baseLayout({
      margin: { l: 64, r: 64, t: 6, b: talk && !this.talk.axis ? 4 : 36 },
      xaxis: {
        range: [0.5, tr.T + 0.5],
        ...timeTicks(tr.tokens, tr.T, width - 130),
        ...(talk && !this.talk.axis ? { showticklabels: false, title: { text: "" } } : {}),
        showgrid: false,
        zeroline: false,
        anchor: n > 1 ? `y${n}` : "y",
      },
    });
    // the token under the pointer, in the tooltip itself while every column is one step
    const tokenRow = tr.T <= maxCols ? tr.tokens.slice(0, tr.T).map(showToken) : null;
    series.forEach((s, i) => {
      const cols = heatColumns(s.array(tr, l), tr.T, tr.H, maxCols, tr.steps);
      const zmax = s.zmax(tr);
      const yname = i === 0 ? "yaxis" : `yaxis${i + 1}`;
      const top = 1 - i / n;
      const bottom = 1 - (i + 1) / n + gap / 2;
      layout[yname] = {
        domain: [Math.max(0, bottom), top - (i > 0 ? gap / 2 : 0)],
        autorange: "reversed",
        title: { text: s.label, standoff: 2 },
        showgrid: false,
        zeroline: false,
        ticks: "",
        nticks: talk ? 3 : 4,
        linecolor: "#374151",
        automargin: true,
      };
      const dom = layout[yname].domain;
      data.push({
        type: "heatmap",
        z: cols.z,
        x0: cols.x0 + 1, // steps are numbered from 1 on every axis
        dx: cols.dx,
        y0: 0,
        dy: 1,
        xaxis: "x",
        yaxis: i === 0 ? "y" : `y${i + 1}`,
        colorscale: scale(s.scale === "gate" ? GATE : DIVERGING),
        zmin: s.scale === "gate" ? 0 : -zmax,
        zmax,
        zsmooth: false,
        name: tr.bidirectional ? `${s.title}, ${tr.layerName(l)}` : s.title,
        ...(tokenRow && cols.k === 1 ? { text: Array.from({ length: tr.H }, () => tokenRow) } : {}),
        hovertemplate: tokenRow
          ? `${s.title}<br>unit %{y}<br>step %{x} “%{text}”<br>value %{z:.3f}<extra></extra>`
          : `${s.title}<br>unit %{y}<br>around step %{x:.0f}<br>value %{z:.3f}<extra></extra>`,
        showscale: i === 0 || series[i - 1].scale !== s.scale || s.key === "cell",
        colorbar: { thickness: 10, len: dom[1] - dom[0], y: (dom[0] + dom[1]) / 2, yanchor: "middle", outlinewidth: 0, x: 1.005, xpad: 4 },
      });
      s.k = cols.k;
    });
    this.series = series;
    const height = talk
      ? this.talk.area + (this.talk.axis ? 40 : 10)
      : Math.max(160, Math.min(n * Math.max(90, Math.min(tr.H * 1.6, 220)), 520)) + 40;
    layout.height = height;
    this.gd.style.height = `${height}px`;
    const fresh = !this.gd.data;
    Plotly.react(this.gd, data, layout, plotConfig(this.name));
    if (fresh) this.bindEvents();
    this.built = { trace: tr, layer: l, steps: tr.steps, T: tr.T };
    this.lastBuild = performance.now();
    this.overlay.measure();
    this.light();
  }

  bindEvents() {
    this.gd.on("plotly_click", (ev) => {
      const pt = ev.points?.[0];
      if (pt && Number.isFinite(pt.y)) bus.emit("unit", { unit: Math.round(pt.y), layer: this.layer });
    });
    this.gd.on("plotly_hover", (ev) => {
      const pt = ev.points?.[0];
      if (!pt || !this.info || !this.trace) return;
      const t = Math.max(0, Math.round(pt.x) - 1);
      const tok = this.trace.tokens[t] ?? "";
      this.info.textContent = `${pt.data.name} · unit ${Math.round(pt.y)} · step ${t + 1} “${showToken(tok)}” · ${Number(pt.z).toFixed(3)}`;
    });
  }

  render() {
    const tr = this.trace;
    if (!tr || !this.built) return;
    const { phase, t } = this.cursor;
    this.overlay.setCursor(t >= 0 ? t + 1 : null);
    // a reverse direction reads from the last step: at the cursor it has read steps T−t…T (numbered from 1)
    const reverse = tr.isReverse(this.layer);
    const unread = reverse ? [0.5, tr.T - t - 0.5] : [t + 1.5, tr.T + 0.5];
    this.overlay.setMask(phase === "forward" && t < tr.T - 1 ? unread : null, reverse ? "not read yet (this direction reads right to left)" : "not read yet");
    this.overlay.setRow(this.unit);
  }
}
