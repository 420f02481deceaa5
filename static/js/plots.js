// Plotly helpers: one look for every plot, an overlay that moves the time cursor without redrawing the
// plot, reduced detail where the screen has fewer pixels than the data, and PNG / SVG export.

import { bus } from "./bus.js";
import { ACCENT } from "./colors.js";
import { count, download } from "./export.js";
import { showToken } from "./trace.js";

export const Plotly = window.Plotly;

export const isPresenter = () => document.documentElement.classList.contains("presenter");
const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Liberation Sans", sans-serif';

/** Talk mode (/tour): type sized to be read from the back of a room, whatever the page's zoom. */
export const isTalk = () => document.body?.dataset.page === "tour";

/** A plot's height: the pages' own, or talk mode's (each scene fits a 1280×720 screen whole). */
export const sized = (normal, talk) => (isTalk() ? talk : normal);

/** The translation, melody and series pages are made for a projector too: no plot text below 14 px there. */
const PROJECTED = new Set(["translate", "melody", "series"]);
export function fontSize() {
  return isTalk() ? 15 : isPresenter() ? 17 : PROJECTED.has(document.body?.dataset.page) ? 14 : 13; // the tour is already talk-sized: P keeps it
}

/** The smallest a plot's text may be drawn: 14 px projected (presenter mode, the tour, whose stage may be zoomed
 * down to 0.94: tour.js MIN_ZOOM), 11 px on a laptop. */
const smallest = () => (isTalk() ? 14 / 0.94 : isPresenter() ? 14 : 11);

/** A log axis's tick font: Plotly writes the minor labels (2, 5) of a short range at 75 % of it and the exponent
 * of 10⁻² at 70 % (85 % here: unrolled.css), which must still be read (they were 9–12 px). */
const logTickFont = (font) => ({ ...font, size: Math.max(font?.size ?? fontSize(), Math.ceil(smallest() / 0.75)) });

/** The common layout; `extra` is merged in (one level deep for axes). */
export function baseLayout(extra = {}) {
  const size = fontSize();
  const axis = { gridcolor: "#e5e7eb", zerolinecolor: "#9ca3af", linecolor: "#374151", ticks: "outside", automargin: true };
  const out = {
    font: { family: FONT, size, color: "#111827" },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "#ffffff",
    margin: { l: 56, r: 16, t: 8, b: 40 },
    // white on the dark box: unset, Plotly takes the layout's dark font colour for some traces (heatmaps)
    hoverlabel: { font: { family: FONT, size: size + 1, color: "#ffffff" }, bgcolor: "#111827", bordercolor: "#111827" },
    legend: { orientation: "h", y: 1.02, yanchor: "bottom", x: 0, font: { size } },
    showlegend: false,
    dragmode: false,
    xaxis: { ...axis },
    yaxis: { ...axis },
  };
  for (const [k, v] of Object.entries(extra)) {
    out[k] = k.match(/^[xy]axis/) && out[k] ? { ...out[k], ...v } : k.match(/^[xy]axis/) ? { ...axis, ...v } : v;
    if (k.match(/^[xy]axis/) && v?.type === "log") {
      out[k].tickfont = logTickFont(v.tickfont);
      // talk mode's plots are short: a decade's minor labels (2, 5) crowded its ticks into each other
      if (isTalk()) out[k].minorloglabels = "none";
    }
  }
  return out;
}

/** Tick labels for a time axis (steps t = 1 … T): every token when they fit, else step numbers. */
export function timeTicks(tokens, T, widthPx) {
  const per = widthPx / Math.max(1, T);
  // in talk mode a token is written whole or not at all: no label may run into the next one
  const longest = isTalk() ? Math.max(1, ...tokens.slice(0, T).map((t) => showToken(t).length)) : 1;
  const need = isTalk() ? Math.max(11, 0.6 * fontSize() * longest + 6) : 11;
  if (per >= need && T <= 120) {
    return { tickmode: "array", tickvals: [...Array(T).keys()].map((t) => t + 1), ticktext: tokens.slice(0, T).map(showToken), tickangle: 0 };
  }
  // talk mode: the steps' numbers say what the axis is (the room is the scene's)
  return { tickmode: "auto", title: { text: isTalk() ? "" : "time step t", standoff: 4 } };
}

/** Export a figure (or a live plot, with its cursor overlay drawn as shapes) as PNG or SVG. */
export async function exportFigure(figure, format, name, size = {}) {
  const width = Math.max(400, Math.round(size.width ?? 1000));
  const height = Math.max(200, Math.round(size.height ?? 500));
  const layout = { ...figure.layout, paper_bgcolor: "#ffffff" };
  const url = await Plotly.toImage({ data: figure.data, layout }, { format, width, height, scale: format === "png" ? 2 : 1 });
  download(url, `${name}.${format}`);
  count();
}

export function exportPlot(gd, format) {
  const extra = gd.__overlay ? gd.__overlay.shapes() : [];
  const figure = { data: gd.data, layout: { ...gd.layout, shapes: [...(gd.layout.shapes ?? []), ...extra] } };
  return exportFigure(figure, format, gd.dataset.name ?? "unrolled-plot", { width: gd.clientWidth, height: gd.clientHeight });
}

const ICON_SVG = {
  width: 1000,
  height: 1000,
  path: "M150 100h500l200 200v600h-700z M250 550h500v80h-500z M250 700h500v80h-500z M250 400h300v80h-300z",
};

// The mode bar's own buttons, made once: Plotly.react compares a plot's config with its last one, and a click made
// afresh on each call makes every config look new. A new config makes react plot anew (Plotly.newPlot) and then
// react again with the config it was given; two reacts in flight on one plot (a run's last frames, then a layout
// in the same task) each found the other's config and plotted anew, for ever: the page hung, its memory climbing.
const EXPORT_BUTTONS = [
  { name: "png", title: "Download PNG", icon: Plotly.Icons.camera, click: (gd) => exportPlot(gd, "png") },
  { name: "svg", title: "Download SVG", icon: ICON_SVG, click: (gd) => exportPlot(gd, "svg") },
];

/** A plot's config: equal (to Plotly) on every call with the same name, so that a react redraws and never replots. */
export function plotConfig(name) {
  return {
    displaylogo: false,
    responsive: true,
    scrollZoom: false,
    modeBarButtons: [EXPORT_BUTTONS.map((b) => ({ ...b })), ["zoom2d", "pan2d", "resetScale2d"]],
    toImageButtonOptions: { filename: name },
  };
}

/** A plot container: <div class="plot-wrap"><div class="plot"></div><div class="overlay"/></div>. */
export function makePlot(parent, name, className = "") {
  const wrap = document.createElement("div");
  wrap.className = `plot-wrap ${className}`;
  const gd = document.createElement("div");
  gd.className = "plot";
  gd.dataset.name = name;
  wrap.append(gd);
  parent.append(wrap);
  return gd;
}

/**
 * A layer over a Plotly plot's drawing area, in the plot's own x coordinates: the time cursor (a line),
 * the part not yet revealed (a mask) and an optional marked row (y). Moving them costs a style write, not
 * a redraw of the plot.
 */
export class Overlay {
  constructor(gd) {
    this.gd = gd;
    gd.__overlay = this;
    this.el = document.createElement("div");
    this.el.className = "overlay";
    this.mask = document.createElement("div");
    this.mask.className = "overlay-mask";
    this.maskLabel = document.createElement("span");
    this.mask.append(this.maskLabel);
    this.line = document.createElement("div");
    this.line.className = "overlay-cursor";
    this.rows = [];
    this.el.append(this.mask, this.line);
    gd.parentElement.append(this.el);
    this.state = { cursor: null, mask: null, row: null, maskText: "", band: null };
    this.geom = null;
  }

  /** Re-read the axes after Plotly drew (also binds afterplot once the plot exists). */
  measure() {
    const fl = this.gd._fullLayout;
    if (!fl || !fl.xaxis || !fl._size) return;
    if (!this.bound && this.gd.on) {
      this.gd.on("plotly_afterplot", () => this.measure());
      this.bound = true;
    }
    const xa = fl.xaxis;
    const ya = fl.yaxis;
    const s = fl._size;
    this.geom = {
      left: s.l,
      top: s.t,
      width: s.w,
      height: s.h,
      x: (v) => xa._offset + xa.l2p(v),
      y: (v) => ya._offset + ya.l2p(v),
      xRange: xa.range.slice(),
      yAxes: Object.keys(fl)
        .filter((k) => /^yaxis\d*$/.test(k))
        .map((k) => fl[k]),
    };
    this.el.style.left = "0px";
    this.el.style.top = "0px";
    this.apply();
  }

  setCursor(x) {
    if (this.state.cursor === x) return;
    this.state.cursor = x;
    this.applyCursor();
  }

  /** Hide [from, to] in x; null: nothing hidden. */
  setMask(range, text = "") {
    const s = this.state;
    if (s.mask && range && s.mask[0] === range[0] && s.mask[1] === range[1] && s.maskText === text) return;
    if (!s.mask && !range) return;
    s.mask = range;
    s.maskText = text;
    this.applyMask();
  }

  setRow(y) {
    if (this.state.row === y) return;
    this.state.row = y;
    this.applyRow();
  }

  /** Frame one y-axis's whole band (its name in the layout, "yaxis2"; null: none): the series lit elsewhere. */
  setBand(axis) {
    if (this.state.band === axis) return;
    this.state.band = axis;
    this.applyBand();
  }

  apply() {
    this.applyCursor();
    this.applyMask();
    this.applyRow();
    this.applyBand();
  }

  applyBand() {
    const ya = this.state.band ? this.gd._fullLayout?.[this.state.band] : null;
    if (!this.band) {
      if (!ya) return;
      this.band = document.createElement("div");
      this.band.className = "overlay-band";
      Object.assign(this.band.style, { position: "absolute", left: "0", top: "0", border: `3px solid ${ACCENT}`, borderRadius: "4px", boxSizing: "border-box" });
      this.el.append(this.band);
    }
    const g = this.geom;
    if (!g || !ya) {
      this.band.style.display = "none";
      return;
    }
    this.band.style.display = "block";
    this.band.style.transform = `translate(${g.left - 4}px, ${ya._offset - 4}px)`;
    this.band.style.width = `${g.width + 8}px`;
    this.band.style.height = `${ya._length + 8}px`;
  }

  applyCursor() {
    const g = this.geom;
    const x = this.state.cursor;
    if (!g || x === null) {
      this.line.style.display = "none";
      return;
    }
    const px = g.x(x);
    const inside = px >= g.left - 1 && px <= g.left + g.width + 1;
    this.line.style.display = inside ? "block" : "none";
    this.line.style.transform = `translate(${px - 1}px, ${g.top}px)`;
    this.line.style.height = `${g.height}px`;
  }

  applyMask() {
    const g = this.geom;
    const m = this.state.mask;
    if (!g || !m) {
      this.mask.style.display = "none";
      return;
    }
    const a = Math.max(g.left, Math.min(g.left + g.width, g.x(m[0])));
    const b = Math.max(g.left, Math.min(g.left + g.width, g.x(m[1])));
    const lo = Math.min(a, b);
    const w = Math.abs(b - a);
    if (w < 0.5) {
      this.mask.style.display = "none";
      return;
    }
    this.mask.style.display = "flex";
    this.mask.style.transform = `translate(${lo}px, ${g.top}px)`;
    this.mask.style.width = `${w}px`;
    this.mask.style.height = `${g.height}px`;
    if (this.maskLabel.textContent !== this.state.maskText) this.maskLabel.textContent = this.state.maskText;
    this.maskLabel.style.visibility = w > 160 ? "visible" : "hidden";
  }

  applyRow() {
    const g = this.geom;
    const y = this.state.row;
    const axes = g ? g.yAxes : [];
    while (this.rows.length < axes.length) {
      const r = document.createElement("div");
      r.className = "overlay-row";
      this.el.insertBefore(r, this.line);
      this.rows.push(r);
    }
    this.rows.forEach((r, i) => {
      const ya = axes[i];
      if (!g || y === null || !ya) {
        r.style.display = "none";
        return;
      }
      r.style.display = "block";
      r.style.transform = `translate(${g.left}px, ${ya._offset + ya.l2p(y) - 1}px)`;
      r.style.width = `${g.width}px`;
    });
  }

  /** The overlay as Plotly shapes, for export. */
  shapes() {
    const out = [];
    const { cursor, mask, row } = this.state;
    if (mask) {
      out.push({ type: "rect", xref: "x", yref: "paper", x0: mask[0], x1: mask[1], y0: 0, y1: 1,
        fillcolor: "rgba(255,255,255,0.92)", line: { width: 0 } }); // prettier-ignore
    }
    if (cursor !== null) {
      out.push({ type: "line", xref: "x", yref: "paper", x0: cursor, x1: cursor, y0: 0, y1: 1, line: { color: ACCENT, width: 2 } });
    }
    if (row !== null && this.geom) {
      this.geom.yAxes.forEach((ya) => {
        const yref = ya._id;
        out.push({ type: "line", xref: "paper", yref, x0: 0, x1: 1, y0: row, y1: row, line: { color: "#111827", width: 1.5, dash: "dot" } });
      });
    }
    return out;
  }
}

/**
 * Columns of a T×H array (row-major, step t at t*H) for a heatmap of units × time, averaged over bins of
 * steps when there are more steps than pixels. Only steps < upTo are filled (the rest are null).
 */
export function heatColumns(a, T, H, maxCols, upTo = T) {
  const k = Math.max(1, Math.ceil(T / Math.max(1, maxCols)));
  const cols = Math.ceil(T / k);
  const z = Array.from({ length: H }, () => new Array(cols).fill(null));
  for (let c = 0; c < cols; c++) {
    const t0 = c * k;
    const t1 = Math.min(T, t0 + k, upTo);
    if (t1 <= t0) continue;
    for (let u = 0; u < H; u++) {
      let s = 0;
      for (let t = t0; t < t1; t++) s += a[t * H + u];
      z[u][c] = s / (t1 - t0);
    }
  }
  return { z, x0: (k - 1) / 2, dx: k, k, cols };
}

/** Plotly colorscale from [[x, colour], …] stops. */
export const scale = (stops) => stops.map(([x, c]) => [x, c]);

/** Resize every plot on the page (presenter mode, window size). */
export function resizeAll() {
  for (const gd of document.querySelectorAll(".js-plotly-plot")) Plotly.Plots.resize(gd);
}

/**
 * Tracks whether an element is on (or near) the screen; `onShow(data)` runs each time it comes into view. Plots
 * off screen wait to be drawn until the presenter scrolls to them; one that missed a new layout while away (P's
 * type sizes, a resize) gets {relayout: true}, or it would come back in the old sizes.
 */
export function visibility(el, onShow) {
  const v = { visible: false, stale: false };
  bus.on("layout", () => {
    if (!v.visible) v.stale = true;
  });
  new IntersectionObserver(
    (entries) => {
      const now = entries[entries.length - 1].isIntersecting;
      const was = v.visible;
      v.visible = now;
      if (now && !was) {
        const data = v.stale ? { relayout: true } : {};
        v.stale = false;
        onShow(data);
      }
    },
    { rootMargin: "400px 0px" },
  ).observe(el);
  return v;
}
