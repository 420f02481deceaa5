// An attention matrix as a heatmap, read from a trace by a `reading`: the translation models' α_tj (TRANSLATION,
// the default: one column per written letter, the decoder's steps left to right as in the row above, one row per
// source word; a column appears as its decoder step arrives and is uncovered as the cursor reaches it; the cursor's
// column or, in the BPTT sweep on a word, its row is marked) and an S6 model's hidden attention ᾱ_{t,s} (HIDDEN:
// one row per output step t, one column per input step s, lower-triangular; the cursor's row lit in the forward
// sweep, its column in the BPTT sweep). A reading says what the matrix is; the view draws any of them the same way.

import { DIVERGING } from "../colors.js";
import { Overlay, Plotly, baseLayout, exportPlot, isTalk, makePlot, plotConfig, scale, timeTicks } from "../plots.js";
import { exportButtons } from "../export.js";
import { showToken } from "../trace.js";
import { showLetter } from "../translation.js";
import { View } from "./base.js";

/** A token, safe inside Plotly's pseudo-HTML (axis labels, hover). */
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const MONO = { family: 'ui-monospace, "DejaVu Sans Mono", monospace' };

export const ALPHA_SCALE = [
  [0, "#ffffff"],
  [0.15, "#dbe7f3"],
  [0.4, "#86b4d9"],
  [0.7, "#2f74b5"],
  [1, "#0b2f66"],
];

/**
 * How the view reads a trace. none(tr, view): a sentence when there is no matrix to draw (null: there is, or it has
 * not come yet); key(tr, view): what the drawing is made from (null: nothing yet); grid(tr, view, talk, width): the
 * heatmap {z, x, y, custom, hover, zmin, zmax, colorscale, bar, height, xaxis, yaxis, bottom}; place(tr, view): where
 * the cursor is {mask, maskText, column, row, info}; hovered(p): the readout of a cell hovered.
 */
export const TRANSLATION = {
  none: (tr) => (tr.attention ? null : `${tr.model} has no attention: every letter is written from the encoder's last state alone (the bottleneck). Switch attention on (A) to see where each letter looks.`),
  key: (tr) => (tr.decSteps > 0 ? [tr, tr.decSteps] : null),
  grid(tr, view, talk, width) {
    const z = Array.from({ length: tr.J }, (_, j) => Array.from({ length: tr.Tout }, (_, t) => (t < tr.decSteps ? tr.attention[t * tr.J + j] : null)));
    const letters = tr.written.map(showLetter);
    const words = tr.source.map((w) => esc(showToken(w)));
    return {
      z,
      x: [...Array(tr.Tout).keys()].map((t) => t + 1),
      y: [...Array(tr.J).keys()],
      custom: Array.from({ length: tr.J }, (_, j) => Array.from({ length: tr.Tout }, (_, t) => [esc(letters[t]), words[j]])),
      hover: "“%{customdata[0]}” looks at “%{customdata[1]}”: α = %{z:.3f}<extra></extra>",
      zmin: 0,
      zmax: 1,
      colorscale: ALPHA_SCALE,
      bar: { tickvals: [0, 0.5, 1], title: "α" },
      // a row per word: as tall as the room the scene has (talk), or beside the beams and the top 5 (the page)
      height: talk ? Math.max(130, tr.J * 20 + 46) : Math.max(300, tr.J * 28 + 62),
      bottom: talk ? 26 : 40,
      xaxis: { range: [0.5, tr.Tout + 0.5], ...timeTicks(letters.map(esc), tr.Tout, width - 150), tickfont: MONO },
      yaxis: { tickvals: [...Array(tr.J).keys()], ticktext: words },
    };
  },
  place(tr, view) {
    const { phase, t: k } = view.cursor;
    const { side, i } = tr.at(k);
    const back = phase === "backward";
    // forward: the letters written so far; the BPTT sweep: all of them
    const upTo = back ? tr.Tout : side === "decoder" ? i + 1 : 0;
    let info = "";
    if (side === "decoder" && i < tr.decSteps) {
      const a = tr.alpha(i);
      let best = 0;
      for (let j = 1; j < a.length; j++) if (a[j] > a[best]) best = j;
      info = `“${showLetter(tr.written[i])}” (letter ${i + 1}) looks most at “${showToken(tr.source[best])}”: α = ${a[best].toFixed(2)}`;
    } else if (side === "encoder") {
      info = back ? `BPTT on “${showToken(tr.source[i])}”: its row is what every letter took from it` : "The encoder is reading; the columns appear as the decoder writes.";
    }
    return {
      mask: upTo < tr.Tout ? [upTo + 0.5, tr.Tout + 0.5] : null,
      maskText: upTo === 0 ? "the decoder has not written yet" : "not written yet",
      column: side === "decoder" ? i + 1 : null,
      row: back && side === "encoder" ? i : null,
      info,
    };
  },
  hovered(p) {
    const [letter, word] = p.customdata ?? ["", ""];
    return `letter ${p.x} “${unesc(letter)}” looks at word ${p.y + 1} “${unesc(word)}”: α = ${Number(p.z).toFixed(3)}`;
  },
};

/** The largest |value| of a hidden attention's rows (its colour scale's end, either sign). */
function largest(rows) {
  let m = 1e-12;
  for (const row of rows) for (const v of row) if (Math.abs(v) > m) m = Math.abs(v);
  return m;
}

/**
 * An S6 model's hidden attention (Ali, Zimerman & Wolf): y_t = Σ_{s≤t} α_{t,s} u_s + D u_t, exact, per channel;
 * drawn is the layer's mean over its channels ᾱ_{t,s}, as the trace carries it (trace.hiddenAttention[layer]: row t
 * holds s = 0 … t). It may be of either sign: a diverging scale, white at 0.
 */
export const HIDDEN = {
  none(tr, view) {
    if (!tr.done || tr.hiddenAttention?.[view.layer]) return null;
    return tr.T > 300
      ? `The hidden attention is sent for inputs up to 300 steps (T² numbers a layer); this one has ${tr.T}.`
      : `${tr.layerName(view.layer)} of ${tr.model} has no hidden attention.`;
  },
  key: (tr, view) => (tr.hiddenAttention?.[view.layer] ? [tr, view.layer, tr.hiddenAttention] : null),
  grid(tr, view, talk, width) {
    const rows = tr.hiddenAttention[view.layer];
    const T = rows.length;
    const tokens = tr.tokens.slice(0, T).map((w) => esc(showToken(w)));
    const m = largest(rows);
    const size = Math.min(talk ? 260 : 460, Math.max(220, width - 120));
    return {
      z: rows.map((row) => Array.from({ length: T }, (_, s) => (s < row.length ? row[s] : null))),
      x: [...Array(T).keys()].map((s) => s + 1),
      y: [...Array(T).keys()],
      custom: Array.from({ length: T }, (_, t) => Array.from({ length: T }, (_, s) => [tokens[t], tokens[s], t + 1])),
      hover: "step %{customdata[2]} “%{customdata[0]}” reads step %{x} “%{customdata[1]}”: ᾱ = %{z:.3g}<extra></extra>",
      zmin: -m,
      zmax: m,
      colorscale: scale(DIVERGING),
      bar: { tickvals: [-m, 0, m], ticktext: [(-m).toPrecision(2), "0", m.toPrecision(2)], title: "ᾱ" },
      height: size + 60,
      bottom: 50,
      xaxis: { range: [0.5, T + 0.5], ...timeTicks(tokens, T, width - 150), title: { text: "input step s", standoff: 4 }, tickfont: MONO },
      yaxis: { title: { text: "output step t", standoff: 4 }, ...(T <= 30 ? { tickvals: [...Array(T).keys()], ticktext: tokens, tickfont: MONO } : { tickvals: [0, ...[...Array(T).keys()].filter((t) => (t + 1) % 10 === 0)], ticktext: [1, ...[...Array(T).keys()].filter((t) => (t + 1) % 10 === 0).map((t) => t + 1)] }) },
    };
  },
  place(tr, view) {
    const { phase, t } = view.cursor;
    const rows = tr.hiddenAttention?.[view.layer];
    if (!rows) return { mask: null, maskText: "", column: null, row: null, info: "" }; // the last input's, until it comes
    const T = rows.length;
    const tok = (k) => showToken(tr.tokens[k] ?? "");
    if (phase === "backward") {
      return { mask: null, maskText: "", column: t + 1, row: null, info: `BPTT at step ${t + 1} “${tok(t)}”: its column is what every later step read from it` };
    }
    const row = rows[t] ?? [];
    let best = 0;
    for (let s = 1; s < row.length; s++) if (Math.abs(row[s]) > Math.abs(row[best])) best = s;
    return {
      mask: t < T - 1 ? [t + 1.5, T + 0.5] : null,
      maskText: "not read yet",
      column: null,
      row: t,
      info: row.length ? `step ${t + 1} “${tok(t)}” reads most from step ${best + 1} “${tok(best)}”: ᾱ = ${Number(row[best]).toPrecision(3)}` : "",
    };
  },
  hovered(p) {
    const [out, input, t] = p.customdata ?? ["", "", 0];
    return `step ${t} “${unesc(out)}” reads step ${p.x} “${unesc(input)}”: ᾱ = ${Number(p.z).toPrecision(3)}`;
  },
};

export class AttentionView extends View {
  constructor(root, { info = null, tools = null, name = "attention", reading = TRANSLATION } = {}) {
    super(root, { name, onScreen: true });
    this.info = info;
    this.reading = reading;
    this.gd = makePlot(root, name, "plot-attention");
    this.overlay = new Overlay(this.gd);
    this.empty = document.createElement("p");
    this.empty.className = "caption attention-none";
    this.empty.hidden = true;
    root.append(this.empty);
    if (tools) exportButtons(tools, () => this.export("png"), () => this.export("svg"));
  }

  update(data) {
    this.take(data);
    const tr = this.trace;
    if (!tr) return;
    const none = this.reading.none(tr, this);
    this.empty.hidden = !none;
    this.gd.parentElement.hidden = Boolean(none);
    if (none) {
      this.empty.textContent = none;
      if (this.info) this.info.textContent = "";
      return;
    }
    this.refresh(data);
  }

  /** Drawn again as the matrix grows (a translation's decoder steps) or another arrives. */
  drawKey() {
    return this.reading.key(this.trace, this);
  }

  prepare() {
    const talk = isTalk();
    const width = this.root.clientWidth || 600;
    const g = this.reading.grid(this.trace, this, talk, width);
    const data = [
      {
        type: "heatmap",
        z: g.z,
        x: g.x,
        y: g.y,
        zmin: g.zmin,
        zmax: g.zmax,
        colorscale: g.colorscale,
        xgap: 1,
        ygap: 1,
        customdata: g.custom,
        hovertemplate: g.hover,
        colorbar: { thickness: 10, len: 1, outlinewidth: 0, tickvals: g.bar.tickvals, ...(g.bar.ticktext ? { ticktext: g.bar.ticktext } : {}), title: { text: g.bar.title, side: "top" } },
      },
    ];
    const layout = baseLayout({
      height: g.height,
      margin: { l: 10, r: 10, t: 4, b: g.bottom },
      xaxis: { ticks: "", showgrid: false, zeroline: false, ...g.xaxis },
      yaxis: { autorange: "reversed", ticks: "", showgrid: false, zeroline: false, ...g.yaxis },
    });
    this.gd.style.height = `${g.height}px`;
    Plotly.react(this.gd, data, layout, plotConfig(this.name));
    if (!this.bound) {
      this.bound = true;
      this.gd.on("plotly_hover", (e) => {
        const p = e.points?.[0];
        if (!p || !this.info || !this.drawn) return;
        this.info.textContent = this.reading.hovered(p);
      });
    }
    this.overlay.measure();
  }

  render() {
    if (!this.trace || !this.drawn) return;
    const at = this.reading.place(this.trace, this);
    this.overlay.setMask(at.mask, at.maskText);
    this.overlay.setCursor(at.column);
    this.overlay.setRow(at.row);
    if (this.info && this.info.textContent !== at.info) this.info.textContent = at.info;
  }

  export(format) {
    if (this.drawn) exportPlot(this.gd, format);
  }
}

function unesc(s) {
  return String(s).replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}
