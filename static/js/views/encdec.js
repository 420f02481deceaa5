// The encoder–decoder unrolled: two rows of cells, the encoder's (one per source word, the words under it) and
// the decoder's (one per written letter, the letters over it), the encoder's last state handed to the decoder,
// and at the time cursor the attention between them: a line from the decoder's step to every encoder step,
// as thick and as dark as its weight α_tj. In the BPTT sweep every cell takes the colour of ‖∂L/∂h‖ (one log
// scale for both rows), and under each source word, the part of its gradient that came through attention.

import { bus } from "../bus.js";
import { ACCENT, diverging, fmtNorm, gradColor, inkOn } from "../colors.js";
import { exportSvg, exportSvgAsPng } from "../export.js";
import { isPresenter, isTalk } from "../plots.js";
import { showToken } from "../trace.js";
import { showLetter } from "../translation.js";
import { View } from "./base.js";

const NS = "http://www.w3.org/2000/svg";
const STRIP = 12; // units shown inside a cell wide enough for them
const BACK = "#d95f0e"; // the gradient (colors.js GRAD_LINES[0])

const STYLE = `
  text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, "Liberation Sans", sans-serif; fill: #111827; }
  .letter { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-weight: 700; }
  .word { font-weight: 700; }
  .rowlabel { font-weight: 700; fill: #4b5563; }
  .box { stroke: #1f2937; stroke-width: 1.4; }
  .ghost .box { stroke: #cbd5e1; stroke-dasharray: 4 3; fill: #f8fafc; }
  .current .box { stroke: ${ACCENT}; stroke-width: 3.5; }
  .current .word, .current .letter { fill: ${ACCENT}; }
  .spine { stroke: #94a3b8; stroke-width: 2; }
  .handoff { fill: none; stroke: #94a3b8; stroke-width: 1.8; stroke-dasharray: 6 4; }
  .handoff.back { stroke: ${BACK}; stroke-width: 3; stroke-dasharray: none; }
  .alpha { font-weight: 700; }
  .hit { fill: transparent; cursor: pointer; }
`;

function el(name, attrs = {}, parent = null) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (parent) parent.append(e);
  return e;
}

export class EncDecView extends View {
  constructor(root, { name = "encoder-decoder", legend = null } = {}) {
    super(root, { name });
    this.legend = legend;
    this.svg = el("svg", { class: "encdec-svg", role: "img", "aria-label": "the encoder and the decoder unrolled, with attention" });
    el("style", {}, this.svg).textContent = STYLE;
    const defs = el("defs", {}, this.svg);
    for (const [id, color] of [["ah", "#475569"], ["ah-back", BACK]]) {
      const m = el("marker", { id: `${name}-${id}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" }, defs);
      el("path", { d: "M0,0 L10,5 L0,10 z", fill: color }, m);
    }
    this.cells = el("g", {}, this.svg);
    root.append(this.svg);
    this.svg.addEventListener("click", (e) => {
      const hit = e.target.closest("[data-k]");
      if (hit) bus.emit("seek", { t: Number(hit.dataset.k) });
    });
    this.width = 0;
    new ResizeObserver(() => {
      if (this.root.clientWidth && this.root.clientWidth !== this.width) this.build();
    }).observe(root);
  }

  /** Both rows are built again for another trace or a relayout; render() repaints them as the cursor moves. */
  drawKey() {
    return [this.trace];
  }

  prepare() {
    this.build();
  }

  clear() {
    this.build();
  }

  geometry() {
    const tr = this.trace;
    const talk = isTalk();
    const big = talk || isPresenter();
    const W = this.root.clientWidth || 1000;
    const min = talk ? 15 : 14;
    const labelW = big ? 104 : 92;
    const D = W - labelW - 6; // the rows' width
    const pd = Math.min(big ? 48 : 42, D / Math.max(1, tr.Tout));
    const pe = Math.min(150, D / Math.max(1, tr.J));
    const g = {
      W,
      min,
      labelW,
      pd,
      pe,
      bwd: Math.max(6, pd - Math.max(2, Math.min(8, pd * 0.18))),
      bwe: Math.max(10, pe - Math.min(18, pe * 0.16)),
      letter: Math.max(min, Math.min(talk ? 22 : big ? 26 : 22, pd * 0.95)),
      word: Math.max(min, Math.min(talk ? 18 : big ? 21 : 18, (pe * 0.9) / 6)),
      small: min,
    };
    // talk mode: a scene fits a 1280×720 screen whole, so the rows sit closer
    g.decX0 = labelW + (D - pd * tr.Tout) / 2;
    g.encX0 = labelW + (D - pe * tr.J) / 2;
    g.letterY = g.letter + 2;
    g.decTop = g.letterY + (talk ? 6 : 8);
    g.decH = talk ? 30 : big ? 36 : 32;
    g.band = talk ? 72 : big ? 128 : 112;
    g.encTop = g.decTop + g.decH + g.band;
    g.encH = talk ? 34 : big ? 44 : 40;
    g.wordY = g.encTop + g.encH + g.word + (talk ? 4 : 6);
    g.viaTop = g.wordY + (talk ? 6 : 8);
    g.viaH = Math.max(22, g.small + 8);
    g.height = g.viaTop + g.viaH + 4;
    g.dec = (i) => g.decX0 + (i + 0.5) * pd; // centre x of decoder step i
    g.enc = (j) => g.encX0 + (j + 0.5) * pe;
    return g;
  }

  build() {
    const tr = this.trace;
    this.cells.replaceChildren();
    this.width = this.root.clientWidth;
    if (!tr) return;
    const g = (this.g = this.geometry());
    this.svg.setAttribute("width", String(g.W));
    this.svg.setAttribute("height", String(g.height));
    this.svg.setAttribute("viewBox", `0 0 ${g.W} ${g.height}`);
    const L = this.cells;
    // row labels
    const label = (y, text, size = g.small) => {
      const t = el("text", { class: "rowlabel", x: 4, y, "font-size": size }, L);
      t.textContent = text;
      return t;
    };
    label(g.decTop + g.decH / 2 + 5, "decoder", g.small + 1);
    label(g.letterY, "writes", g.small);
    label(g.encTop + g.encH / 2 + 5, "encoder", g.small + 1);
    label(g.wordY, "reads", g.small);
    this.viaLabel = label(g.viaTop + g.viaH / 2 + 5, "via α", g.small);
    // the recurrences: a spine through each row
    if (tr.Tout) el("line", { class: "spine", x1: g.dec(0), x2: g.dec(tr.Tout - 1), y1: g.decTop + g.decH / 2, y2: g.decTop + g.decH / 2 }, L);
    if (tr.J) el("line", { class: "spine", x1: g.enc(0), x2: g.enc(tr.J - 1), y1: g.encTop + g.encH / 2, y2: g.encTop + g.encH / 2 }, L);
    // the encoder's last state starts the decoder
    const x0 = g.enc(tr.J - 1) + g.bwe / 2;
    const y0 = g.encTop + g.encH * 0.3;
    const x1 = g.dec(0) - g.bwd / 2 - 2;
    const y1 = g.decTop + g.decH * 0.7;
    this.handoff = el("path", { class: "handoff", d: `M${x0},${y0} C${x0 + 70},${y0 - g.band * 0.6} ${x1 - 60},${y1 + g.band * 0.5} ${x1},${y1}` }, L);
    this.handoff.setAttribute("marker-end", `url(#${this.name}-ah)`);
    this.lines = el("g", { class: "attention-lines" }, L);
    this.alphas = Array.from({ length: tr.J }, (_, j) => el("text", { class: "alpha", x: g.enc(j), y: g.encTop - 6, "text-anchor": "middle", "font-size": g.small }, L));
    this.dec = Array.from({ length: tr.Tout }, (_, i) => this.cell(g.dec(i), g.decTop, g.bwd, g.decH, tr.J + i, "decoder"));
    this.enc = Array.from({ length: tr.J }, (_, j) => this.cell(g.enc(j), g.encTop, g.bwe, g.encH, j, "encoder"));
    this.dec.forEach((c, i) => {
      c.tok = el("text", { class: "letter", x: g.dec(i), y: g.letterY, "text-anchor": "middle", "font-size": g.letter }, c.root);
    });
    this.enc.forEach((c, j) => {
      c.tok = el("text", { class: "word", x: g.enc(j), y: g.wordY, "text-anchor": "middle", "font-size": g.word }, c.root);
      c.tok.textContent = showToken(tr.source[j]);
      if (tr.unknown.has(j)) {
        c.tok.setAttribute("fill", "#b91c1c"); // not in the vocabulary: struck through (unknown.js names it)
        c.tok.setAttribute("text-decoration", "line-through");
      }
      c.via = el("rect", { class: "via", x: g.enc(j) - g.bwe / 2, y: g.viaTop, width: g.bwe, height: g.viaH, rx: g.viaH / 2 }, c.root);
      c.viaText = el("text", { x: g.enc(j), y: g.viaTop + g.viaH / 2 + g.small * 0.36, "text-anchor": "middle", "font-size": g.small, "font-weight": 700 }, c.root);
    });
    this.lastKey = null;
    this.render();
  }

  cell(cx, top, w, h, k, side) {
    const g = this.g;
    const root = el("g", { class: "cell ghost", "data-k": k, "data-side": side }, this.cells);
    const c = { root, k };
    el("rect", { class: "hit", x: cx - Math.max(w, 12) / 2, y: side === "decoder" ? 0 : top, width: Math.max(w, 12), height: side === "decoder" ? top + h : g.height - top }, root);
    c.box = el("rect", { class: "box", x: cx - w / 2, y: top, width: w, height: h, rx: Math.min(6, w / 4) }, root);
    c.strip = [];
    if (w >= 36) {
      const sw = (w - 8) / STRIP;
      for (let u = 0; u < STRIP; u++) c.strip.push(el("rect", { x: cx - w / 2 + 4 + u * sw, y: top + h * 0.58, width: Math.max(1, sw - 0.5), height: h * 0.28 }, root));
    }
    c.label = el("text", { x: cx, y: c.strip.length ? top + h * 0.45 : top + h / 2 + g.small * 0.36, "text-anchor": "middle", "font-size": g.small, "font-weight": 700 }, root);
    return c;
  }

  render() {
    const tr = this.trace;
    if (!tr || !this.g) return;
    const { phase, t: k } = this.cursor;
    const key = `${tr.version}|${phase}|${k}`;
    if (key === this.lastKey) return;
    this.lastKey = key;
    const g = this.g;
    const back = phase === "backward";
    const range = tr.gradLogRange();
    const topL = tr.top;
    const H = tr.H;
    const unitStep = Math.max(1, Math.floor(H / STRIP));
    const paint = (c, side, i, pos) => {
      const arrived = pos < tr.steps;
      const revealed = arrived && (back || pos <= k);
      const grad = back && pos >= k && pos >= tr.gradFrom;
      c.root.setAttribute("class", `cell${revealed ? "" : " ghost"}${pos === k ? " current" : ""}`);
      let fill = revealed ? "#ffffff" : "#f8fafc";
      let text = "";
      if (grad) {
        const v = side.grad[topL][i];
        fill = gradColor(v, range);
        text = c.strip.length || g.bwd >= 40 ? fmtNorm(v) : "";
      } else if (revealed && !c.strip.length && side === tr.decoder) {
        fill = "#e2e8f0";
      }
      c.box.setAttribute("fill", fill);
      c.label.textContent = text;
      c.label.setAttribute("fill", grad ? inkOn(fill) : "#111827");
      const h = side.hidden[topL];
      c.strip.forEach((r, u) => {
        r.setAttribute("fill", revealed ? diverging(h[i * H + u * unitStep]) : "#f1f5f9");
        r.style.display = grad ? "none" : "";
      });
      return { revealed, grad };
    };
    this.enc.forEach((c, j) => {
      const { grad } = paint(c, tr.encoder, j, j);
      const via = grad && tr.via ? tr.via[j] : null;
      c.via.style.display = via === null ? "none" : "";
      c.viaText.style.display = via === null ? "none" : "";
      if (via !== null) {
        const fill = gradColor(via, range);
        c.via.setAttribute("fill", fill);
        c.viaText.setAttribute("fill", inkOn(fill));
        c.viaText.textContent = g.bwe >= 44 ? fmtNorm(via) : "";
      }
    });
    this.viaLabel.style.display = back && tr.via && tr.gradFrom < tr.J && k < tr.J ? "" : "none";
    this.dec.forEach((c, i) => {
      const { revealed } = paint(c, tr.decoder, i, tr.J + i);
      c.tok.textContent = revealed ? showLetter(tr.written[i]) : "";
    });
    // the handoff: the decoder starts from the encoder's last state; BPTT sends the error back along it
    const handBack = back && k < tr.J && tr.gradFrom < tr.J;
    this.handoff.setAttribute("class", handBack ? "handoff back" : "handoff");
    this.handoff.setAttribute(handBack ? "marker-start" : "marker-end", `url(#${this.name}-${handBack ? "ah-back" : "ah"})`);
    this.handoff.removeAttribute(handBack ? "marker-end" : "marker-start");
    this.handoff.style.opacity = k >= tr.J - 1 || back ? "1" : "0.35";
    this.drawAttention(k, back);
    this.writeLegend(back, range);
  }

  /** Lines between the rows at position k: from decoder step i to every word (forward: α_i·, in the cursor's
   * colour; BPTT: the gradient's path back through attention), or, in BPTT on a word j, from every letter. */
  drawAttention(k, back) {
    const tr = this.trace;
    const g = this.g;
    const pairs = []; // [i, j, α]
    const { side, i: at } = tr.at(k);
    if (tr.attention && side === "decoder" && at < tr.decSteps && (!back || k >= tr.gradFrom)) {
      const a = tr.alpha(at);
      for (let j = 0; j < tr.J; j++) pairs.push([at, j, a[j]]);
    } else if (tr.attention && back && side === "encoder" && k >= tr.gradFrom) {
      for (let i = 0; i < tr.decSteps; i++) pairs.push([i, at, tr.attention[i * tr.J + at]]);
    }
    const color = back ? BACK : ACCENT;
    const shown = pairs.filter(([, , a]) => a >= 0.01);
    const lines = this.lines;
    while (lines.childElementCount < shown.length) el("line", { "stroke-linecap": "round" }, lines);
    [...lines.children].forEach((ln, n) => {
      const p = shown[n];
      if (!p) {
        ln.style.display = "none";
        return;
      }
      const [i, j, a] = p;
      ln.style.display = "";
      ln.setAttribute("x1", g.dec(i));
      ln.setAttribute("y1", g.decTop + g.decH + 1);
      ln.setAttribute("x2", g.enc(j));
      ln.setAttribute("y2", g.encTop - g.small - 10);
      ln.setAttribute("stroke", color);
      ln.setAttribute("stroke-width", (1 + 11 * a).toFixed(2));
      ln.setAttribute("stroke-opacity", (0.18 + 0.82 * a).toFixed(3));
    });
    // α over each word, for the decoder step at the cursor
    const a = side === "decoder" ? tr.alpha(at) : null;
    this.alphas.forEach((t, j) => {
      const v = a ? a[j] : null;
      t.textContent = v !== null && v >= 0.02 ? v.toFixed(2) : "";
      t.setAttribute("fill", back ? BACK : ACCENT);
    });
  }

  writeLegend(back, [lo, hi]) {
    const el = this.legend;
    if (!el) return;
    const tr = this.trace;
    const on = back && tr.gradFrom < tr.T;
    el.hidden = !on;
    const key = on ? `${lo.toFixed(2)}|${hi.toFixed(2)}` : "";
    if (!on || el.dataset.key === key) return;
    el.dataset.key = key;
    const bar = document.createElement("span");
    bar.className = "legend-bar";
    bar.style.background = `linear-gradient(to right, ${[0, 0.25, 0.5, 0.75, 1].map((x) => gradColor(10 ** (lo + x * (hi - lo)), [lo, hi])).join(", ")})`;
    const a = document.createElement("span");
    a.textContent = `‖∂L/∂h‖ ${fmtNorm(10 ** lo)}`;
    const b = document.createElement("span");
    b.textContent = fmtNorm(10 ** hi);
    el.replaceChildren(a, bar, b);
  }

  exportPng() {
    exportSvgAsPng(this.svg, this.name, 2);
  }

  exportSvg() {
    exportSvg(this.svg, this.name);
  }
}
