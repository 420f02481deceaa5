// The caption family's views (the panel registry's "picture", "captionWords", "decoder", "regions" and
// "captionBeams"), fed the trace as static/js/caption.js's readTrace gives it and the page's cursor (t: a word).
// The picture is drawn big, its 64 × 64 pixels as squares (no smoothing), the encoder's n × n grid over it; the
// words are HTML beside the canvases, at the page's type sizes.

import { ACCENT, CELL_COLORS, color, fmtNorm, gradColor, isTanhGate, pow10 } from "../colors.js";
import { node } from "../dom.js";
import { isPresenter, sized } from "../plots.js";
import { View } from "./base.js";

/** The caption views' own styles (static/css/caption.css), linked once by the first of them on a page or a stage. */
function styled() {
  if (document.querySelector("link[data-caption-css]")) return;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = "/static/css/caption.css";
  link.dataset.captionCss = "";
  document.head.append(link);
}

/** A word as the page shows it. */
export const shownWord = (w) => (w === "</s>" ? "⟨end⟩" : w === "<s>" ? "⟨start⟩" : w);

const pct = (p) => `${(p * 100).toFixed(p < 0.1 ? 1 : 0)} %`;

/** A picture's side on a page, CSS px: big, with the screen's height (a stage fits itself: 250 there). */
export const bigSide = () => Math.round(Math.min(460, Math.max(280, window.innerHeight * 0.44)));

/** A square canvas of `side` CSS px, sharp on any screen; its 2D context in CSS px, smoothing off. */
function square(c, side) {
  const dpr = window.devicePixelRatio || 1;
  c.width = c.height = Math.round(side * dpr);
  c.style.width = c.style.height = `${side}px`;
  const ctx = c.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.imageSmoothingEnabled = false;
  return ctx;
}

/** The picture's pixels as a canvas of its own size (to be drawn scaled up, pixel by pixel). */
function pictureCanvas(picture) {
  const c = document.createElement("canvas");
  c.width = picture.width;
  c.height = picture.height;
  c.getContext("2d").putImageData(picture, 0, 0);
  return c;
}

/** The orders of magnitude the regions' colour scale spans, down from the largest gradient. */
const DECADES = 4;

/** The largest entry's index. */
const argmax = (xs) => xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);

/**
 * The picture under the grid, each cell washed with a colour (cellColour(j) → [css colour, opacity]); the cells the
 * caller names outlined. The side follows the panel's width, large on a projector.
 */
class GridPicture extends View {
  constructor(root, { info = null, label = "" } = {}) {
    super(root);
    styled();
    this.info = info;
    root.classList.add("caption-picture");
    this.c = node("canvas", "caption-canvas");
    this.c.setAttribute("role", "img");
    this.c.setAttribute("aria-label", label);
    root.append(this.c);
    this.pixels = null;
  }

  side() {
    const room = Math.max(160, Math.floor(this.root.clientWidth || 320));
    return Math.min(room, sized(bigSide(), 250));
  }

  drawKey() {
    return this.trace ? [this.trace, this.root.clientWidth, isPresenter()] : null;
  }

  prepare() {
    this.pixels = this.trace.picture ? pictureCanvas(this.trace.picture) : null;
    this.px = this.side();
  }

  /** Draws the picture, the wash and the grid; returns the context and the cell's side in CSS px. */
  paint(cellColour, outlined = []) {
    const tr = this.trace;
    const side = this.px;
    const ctx = square(this.c, side);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, side, side);
    if (this.pixels) ctx.drawImage(this.pixels, 0, 0, side, side);
    const cw = side / tr.n;
    for (let j = 0; j < tr.G; j++) {
      const [fill, alpha] = cellColour(j);
      if (!(alpha > 0)) continue;
      ctx.globalAlpha = Math.min(1, alpha);
      ctx.fillStyle = fill;
      ctx.fillRect((j % tr.n) * cw, Math.floor(j / tr.n) * cw, cw, cw);
    }
    ctx.globalAlpha = 1;
    ctx.strokeStyle = "rgba(100, 116, 139, 0.45)";
    ctx.lineWidth = 1;
    for (let i = 1; i < tr.n; i++) {
      ctx.beginPath();
      ctx.moveTo(i * cw, 0);
      ctx.lineTo(i * cw, side);
      ctx.moveTo(0, i * cw);
      ctx.lineTo(side, i * cw);
      ctx.stroke();
    }
    ctx.strokeStyle = ACCENT;
    ctx.lineWidth = 3;
    for (const j of outlined) ctx.strokeRect((j % tr.n) * cw + 1.5, Math.floor(j / tr.n) * cw + 1.5, cw - 3, cw - 3);
    ctx.strokeStyle = "#94a3b8";
    ctx.lineWidth = 1;
    ctx.strokeRect(0.5, 0.5, side - 1, side - 1);
    this.c.dataset.drawn = ""; // a trace's picture is on it (the tour's tests ask)
  }

  /** "row r, column c" of grid cell j, and the pixels it covers. */
  where(j) {
    const tr = this.trace;
    const [r, c] = [Math.floor(j / tr.n), j % tr.n];
    return `row ${r + 1}, column ${c + 1} (pixels ${c * tr.cellPx}–${(c + 1) * tr.cellPx - 1} across, ${r * tr.cellPx}–${(r + 1) * tr.cellPx - 1} down)`;
  }
}

/** The picture with the attention α_tj of the word under the cursor over it (purple, opaque where α is largest). */
export class AttentionPictureView extends GridPicture {
  constructor(root, opts = {}) {
    super(root, { ...opts, label: "The picture and where the decoder looks" });
  }

  render() {
    const tr = this.trace;
    if (!tr || !this.px) return;
    const t = Math.min(this.cursor.t, tr.T - 1);
    const a = tr.attention[t] ?? [];
    const top = Math.max(...a, 1e-9);
    const best = argmax(a);
    this.paint((j) => [ACCENT, 0.72 * (a[j] / top)], [best]);
    this.c.dataset.word = tr.words[t];
    if (this.info) {
      const sorted = [...a].sort((x, y) => y - x);
      this.info.textContent = `Writing “${shownWord(tr.words[t])}” (word ${t + 1} of ${tr.T}): α is largest at ${this.where(best)}, ${pct(a[best])}; the 4 largest cells hold ${pct(sorted.slice(0, 4).reduce((s, x) => s + x, 0))} of it.`;
    }
  }
}

/**
 * The BPTT sweep coloured into the picture's regions: the gradient reaching each grid cell of the encoder's output,
 * ‖∂L_t/∂m_j‖ of the word under the cursor in the BPTT sweep, the caption's total ‖∂L/∂m_j‖ in the forward sweep,
 * on one log scale for the trace.
 */
export class RegionsView extends GridPicture {
  constructor(root, opts = {}) {
    super(root, { ...opts, label: "The gradient reaching each region of the picture" });
    this.scale = node("div", "regions-scale");
    root.append(this.scale);
  }

  prepare() {
    super.prepare();
    // the top DECADES orders of magnitude: a region a millionth of the largest is as good as none to the eye
    const all = [...this.trace.gradGrid, ...this.trace.gridWords.flat()].filter((v) => v > 0);
    const hi = Math.ceil(Math.log10(Math.max(...all, 1e-12)));
    const lo = Math.max(Math.floor(Math.log10(Math.min(...all, 1))), hi - DECADES);
    this.range = [Math.min(lo, hi - 1), hi];
    const bar = node("span", "legend-bar");
    bar.style.background = `linear-gradient(to right, ${color("grad", 0)}, ${color("grad", 0.5)}, ${color("grad", 1)})`;
    this.scale.replaceChildren(node("span", "", `‖∂L/∂m_j‖ ${pow10(this.range[0])}`), bar, node("span", "", pow10(this.range[1])));
  }

  render() {
    const tr = this.trace;
    if (!tr || !this.px) return;
    const t = Math.min(this.cursor.t, tr.T - 1);
    const backward = this.cursor.phase === "backward";
    const g = backward ? tr.gridWords[t] : tr.gradGrid;
    const best = argmax(g);
    const [lo, hi] = this.range;
    const level = (v) => (v > 0 ? (Math.log10(v) - lo) / (hi - lo) : 0);
    this.paint((j) => [gradColor(g[j], this.range), level(g[j]) > 0 ? 0.15 + 0.7 * Math.min(1, level(g[j])) : 0], [best]);
    if (this.info) {
      const what = backward ? `Word ${t + 1}’s loss L_${t + 1} (writing “${shownWord(tr.words[t])}”)` : "The whole caption’s loss L";
      this.info.textContent = `${what} reaches ${this.where(best)} most: ‖∂/∂m_j‖ = ${fmtNorm(g[best])}${backward ? "" : " · B: word by word, from the last"}.`;
    }
  }
}

/**
 * The caption written word by word up to the cursor (bold; the cursor's word underlined), the words ahead faint; the
 * decoder's top 5 for the cursor's word and its loss.
 */
export class CaptionWordsView extends View {
  constructor(root) {
    super(root);
    styled();
    this.line = node("div", "caption-line");
    this.line.setAttribute("aria-live", "polite");
    this.top = node("ol", "caption-top5");
    root.append(this.line, this.top);
  }

  render() {
    const tr = this.trace;
    if (!tr) return;
    const t = Math.min(this.cursor.t, tr.T - 1);
    const upTo = this.cursor.phase === "backward" ? tr.T - 1 : t;
    this.line.replaceChildren(
      ...tr.words.map((w, i) => node("span", `caption-word${i <= upTo ? " written" : " ahead"}${i === t ? " now" : ""}`, shownWord(w))),
    );
    this.line.dataset.text = tr.words.slice(0, upTo + 1).filter((w) => w !== "</s>").join(" ");
    const row = tr.predictions[t] ?? [];
    this.top.replaceChildren(
      node("li", "caption-top5-head", `after “${shownWord(tr.inputs[t])}”, p(next word):`),
      ...row.map((p) => node("li", `caption-top5-item${p.token === tr.words[t] ? " chosen" : ""}`, `${shownWord(p.token)} ${pct(p.p)}`)),
      node("li", "caption-top5-loss", `L_${t + 1} = −log p(“${shownWord(tr.words[t])}”) = ${tr.loss[t].toFixed(3)} · L = ${tr.totalLoss.toFixed(3)}`),
    );
  }
}

/** A column of squares, one per value, top to bottom. */
function paintColumn(c, values, colourOf) {
  c.width = 1;
  c.height = Math.max(1, values.length);
  const ctx = c.getContext("2d");
  values.forEach((v, i) => {
    ctx.fillStyle = colourOf(v);
    ctx.fillRect(0, i, 1, 1);
  });
}

/**
 * The decoder unrolled over the words, around the cursor: `span` copies of the cell either side, each reading the
 * word before (below), its h_t and gates (columns, unit by unit) in the box, the word it writes above; in the BPTT
 * sweep each copy takes the colour of ‖∂L/∂h_t‖.
 */
export class DecoderView extends View {
  constructor(root, { span = 4 } = {}) {
    super(root);
    styled();
    this.span = span;
    this.where = node("div", "decoder-where");
    this.row = node("div", "decoder-row");
    root.append(this.where, this.row);
  }

  resize() {
    this.refresh({ relayout: true });
  }

  drawKey() {
    return this.trace ? [this.trace] : null;
  }

  prepare() {
    const tr = this.trace;
    this.gradRange = tr.gradLogRange();
    this.cells = [];
    this.row.replaceChildren();
    for (let i = -this.span; i <= this.span; i++) {
      const arrow = i > -this.span ? node("span", "decoder-arrow", "→") : null;
      if (arrow) this.row.append(arrow);
      const cell = node("div", `decoder-cell${i === 0 ? " now" : ""}`);
      const out = node("div", "decoder-out");
      const box = node("div", "decoder-box");
      box.style.borderColor = CELL_COLORS[tr.cell] ?? "#334155";
      const columns = [node("canvas", "decoder-units"), ...tr.gateNames.map(() => node("canvas", "decoder-gate"))];
      box.append(...columns);
      const input = node("div", "decoder-in");
      const label = node("div", "decoder-t");
      cell.append(out, box, input, label);
      this.row.append(cell);
      this.cells.push({ i, cell, out, box, columns, input, label, arrow });
    }
  }

  render() {
    const tr = this.trace;
    if (!tr?.T || !this.cells) return;
    const t = Math.min(this.cursor.t, tr.T - 1);
    const backward = this.cursor.phase === "backward";
    for (const c of this.cells) {
      const s = t + c.i;
      const inside = s >= 0 && s < tr.T;
      c.cell.classList.toggle("outside", !inside);
      c.arrow?.classList.toggle("outside", !inside || s === 0);
      if (!inside) continue;
      c.out.textContent = shownWord(tr.words[s]);
      c.input.textContent = shownWord(tr.inputs[s]);
      c.label.textContent = `t=${s + 1}`;
      const g = tr.grad[s];
      c.box.style.background = backward && s >= t && g > 0 ? gradColor(g, this.gradRange) : "";
      c.box.title = `h_${s + 1}${tr.gateNames.length ? ` and its gates (${tr.gateNames.join(", ")})` : ""} · ‖∂L/∂h_${s + 1}‖ = ${fmtNorm(g)}`;
      paintColumn(c.columns[0], tr.h[s] ?? [], (v) => color("diverging", 0.5 + v / 2));
      tr.gateNames.forEach((name, k) =>
        paintColumn(c.columns[k + 1], tr.gates[name][s] ?? [], (v) => (isTanhGate(name) ? color("diverging", 0.5 + v / 2) : color("gate", v))),
      );
    }
    const a = Math.max(0, t - this.span);
    const b = Math.min(tr.T - 1, t + this.span);
    const gates = tr.gateNames.length ? `, then its gates: ${tr.gateNames.join(", ")}` : "";
    this.where.textContent = `Words ${a + 1}–${b + 1} of ${tr.T}: in each box h_t (${tr.H} units)${gates}${backward ? ` · BPTT: coloured by ‖∂L/∂h_t‖, here ${fmtNorm(tr.grad[t])}` : ""}`;
  }
}

/** The beam search's captions, best first, with Σ log p. */
export class CaptionBeamsView extends View {
  constructor(root) {
    super(root);
    styled();
  }

  update(data) {
    if (data.trace === undefined) return;
    this.take(data);
    this.refresh(data);
  }

  drawKey() {
    return [this.trace];
  }

  prepare() {
    const beams = this.trace?.beams ?? [];
    this.root.replaceChildren(
      ...beams.map((b, i) => {
        const li = node("li", `beam${i === 0 ? " best" : ""}`);
        li.append(node("span", "beam-output", b.text || "(nothing)"));
        li.append(node("span", "beam-score", `Σ log p = ${b.logProb.toFixed(2)} (p = ${Math.exp(b.logProb).toPrecision(2)})${b.finished ? "" : " · unfinished"}`));
        return li;
      }),
    );
  }
}
