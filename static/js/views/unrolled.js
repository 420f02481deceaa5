// The unrolled network: one copy of the cell per time step, the input token under it, the prediction over
// it, h_t passed along as an arrow, and the same W_xh, W_hh, W_hy labelled at every step (the arrow h_t → h_{t+1}
// with what the cell multiplies its state by, its description's: W_hh, or minGRU's (1−z_t)⊙, S6's Ā_t). During the BPTT
// sweep each step is coloured by ‖∂L/∂h_t‖ on a log scale. Only a window of steps around the cursor is drawn
// (a pool of cell groups that are re-filled as they scroll in), with an overview strip of the whole input.
// A bidirectional layer is two rows, each labelled: the reverse row's h_t passes right to left, it reads the input
// from the last step as the forward row reads it from the first, and its BPTT sweep runs first step to last.

import { bus } from "../bus.js";
import { cellOf } from "../cells.js";
import { ACCENT, diverging, fmtNorm, gradColor, inkOn, packRgb, packed, sub } from "../colors.js";
import { exportSvg, exportSvgAsPng } from "../export.js";
import { isPresenter, isTalk } from "../plots.js";
import { showToken } from "../trace.js";
import { View } from "./base.js";

const NS = "http://www.w3.org/2000/svg";
const STRIP = 16; // units shown inside each cell
const SUP = ["¹", "²", "³", "⁴"];
const SLATE = packRgb(148, 163, 184);
const LIGHT = packRgb(226, 232, 240);
const REBASE = 8; // the SVG is re-anchored every REBASE steps; between, it moves as a composited layer

const STYLE = `
  text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, "Liberation Sans", sans-serif; fill: #111827; }
  .tok { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-weight: 700; }
  .pred { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-weight: 600; }
  .w { font-style: italic; fill: #4b5563; }
  .tlabel { fill: #6b7280; }
  .arrow { stroke: #374151; stroke-width: 1.6; fill: none; }
  .back { stroke: #d95f0e; stroke-width: 2.4; fill: none; }
  .box { stroke: #1f2937; stroke-width: 1.5; }
  .ghost .box { stroke: #cbd5e1; stroke-dasharray: 4 3; fill: #f8fafc; }
  .ghost .arrow { stroke: #cbd5e1; }
  .ghost text.w, .ghost .pred, .ghost .p { fill: #cbd5e1; }
  .box.unread { stroke: #cbd5e1; stroke-dasharray: 4 3; }
  .box.cur { stroke: ${ACCENT}; stroke-width: 4; }
  .current .tok { fill: ${ACCENT}; }
  .hit { fill: transparent; cursor: pointer; }
`;

function el(name, attrs = {}, parent = null) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.append(e);
  return e;
}

export class UnrolledView extends View {
  /** root: the panel body; options: {compact, showPredictions} */
  constructor(root, { compact = false, name = "unrolled-network", range = null } = {}) {
    super(root, { name });
    this.rangeOf = range; // a shared log10 range for the gradient colours (compare page)
    this.compact = compact;
    this.svg = el("svg", { class: "unrolled-svg", role: "img", "aria-label": "the network unrolled in time" });
    el("style", {}, this.svg).textContent = STYLE;
    const defs = el("defs", {}, this.svg);
    for (const [id, color] of [
      ["ah", "#374151"],
      ["ah-ghost", "#cbd5e1"],
      ["ah-back", "#d95f0e"],
    ]) {
      const m = el("marker", { id: `${name}-${id}`, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
      el("path", { d: "M0,0 L10,5 L0,10 z", fill: color }, m);
    }
    this.viewport = el("g", { class: "viewport" }, this.svg);
    this.box = document.createElement("div");
    this.box.className = "unrolled-box";
    this.rowLabels = document.createElement("div"); // a bidirectional model's row names, over the left edge
    this.rowLabels.className = "unrolled-rows";
    Object.assign(this.rowLabels.style, { position: "absolute", left: "0", top: "0", pointerEvents: "none" });
    this.box.append(this.svg, this.rowLabels);
    this.root.append(this.box);
    this.overview = document.createElement("canvas");
    this.overview.className = "overview";
    this.overview.title = "The whole input: click to jump";
    if (!compact) this.root.append(this.overview);
    this.overview.addEventListener("click", (e) => this.onOverviewClick(e));
    this.svg.addEventListener("click", (e) => {
      const hit = e.target.closest("[data-t]");
      if (hit) bus.emit("seek", { t: Number(hit.dataset.t) });
    });
    this.slots = [];
    this.geometry();
    new ResizeObserver(() => {
      if (this.root.clientWidth !== this.width) this.resize();
    }).observe(this.root);
  }

  geometry() {
    const talk = isTalk();
    const big = (isPresenter() || talk) && !this.compact;
    const L = this.trace ? this.trace.L : 1;
    const g = {
      pitch: big ? 136 : this.compact ? (talk ? 96 : 78) : 112,
      bw: big ? 76 : this.compact ? (talk ? 74 : 50) : 60,
      bh: big ? (talk ? 48 : 54) : this.compact ? (talk ? 31 : 34) : 46,
      gap: big ? (talk ? 24 : 40) : this.compact ? 22 : 34,
      font: big ? (talk ? 16 : 17) : this.compact ? (talk ? 15 : isPresenter() ? 14 : 12) : 13,
      tok: big ? (talk ? 22 : 24) : this.compact ? (talk ? 17 : 15) : 19,
    };
    // the size of each kind of label; in talk mode none is below 15 px (read from the back of a room), in
    // presenter mode none below 14 px (projected: the compact rows of /compare too), on a laptop none below 11 px
    const min = talk ? 15 : isPresenter() ? 14 : 11;
    g.size = {
      pred: Math.max(min, g.tok * 0.8),
      p: Math.max(min, g.font * 0.85),
      hh: Math.max(min, g.font * 0.9),
      carry: Math.max(min, g.font * 0.8),
      t: Math.max(min, g.font * 0.85),
    };
    // talk mode's compact rows (several networks on one screen): the boxes and the tokens only; each row's
    // prediction is written beside it
    g.bare = talk && this.compact;
    g.predY = talk && !this.compact ? 20 : g.tok + 4;
    g.top = g.bare ? 3 : talk ? 62 : this.compact ? g.tok + 30 : g.tok + 44; // top of the highest box
    g.boxTop = (l) => g.top + (L - 1 - l) * (g.bh + g.gap);
    g.bottom = g.boxTop(0) + g.bh;
    g.tokY = g.bare ? g.bottom + 3 + g.tok * 0.85 : g.bottom + g.gap + g.tok * 0.9;
    g.tY = g.tokY + (talk ? g.size.t + 2 : g.font + 4);
    g.height = g.bare ? g.tokY + 5 : g.tY + 5;
    this.g = g;
    this.labelRows();
  }

  /** With two directions each row is named ("layer 1 →", "layer 1 ← reverse") just above its boxes, at the left. */
  labelRows() {
    const tr = this.trace;
    const g = this.g;
    if (!tr?.bidirectional || g.bare) {
      this.rowLabels.replaceChildren();
      return;
    }
    const size = Math.max(g.size.t, 12);
    this.rowLabels.replaceChildren(
      ...Array.from({ length: tr.L }, (_, l) => {
        const span = document.createElement("span");
        span.className = "unrolled-row";
        span.dataset.direction = tr.directions[l];
        span.textContent = tr.layerName(l);
        Object.assign(span.style, {
          position: "absolute",
          left: "2px",
          top: `${g.boxTop(l) - size - 6}px`,
          whiteSpace: "nowrap",
          fontSize: `${size}px`,
          fontWeight: "700",
          lineHeight: "1.1",
          padding: "1px 5px",
          borderRadius: "4px",
          background: "rgba(255, 255, 255, 0.88)",
          color: tr.isReverse(l) ? "#7c2d12" : "#1e3a8a",
        });
        return span;
      }),
    );
  }

  /**
   * How far each row's sweeps have gone at the cursor: a forward row has read steps 0…t and its BPTT reached t…T−1;
   * a reverse row reads from the last step, so at the same moment it has read T−1−t…T−1 and its BPTT (first step
   * to last) reached 0…T−1−t. {revealed, grad, front}: read, coloured by its gradient, the sweep's front.
   */
  rowAt(l, t) {
    const tr = this.trace;
    const { phase, t: ct } = this.cursor;
    const back = phase === "backward";
    const arrived = t < tr.steps;
    if (tr.isReverse(l)) {
      const m = tr.T - 1 - ct;
      return { revealed: arrived && (back || t >= m), grad: back && t <= m && t >= tr.gradFrom, front: t === m };
    }
    return { revealed: arrived && (back || t <= ct), grad: back && t >= ct && t >= tr.gradFrom, front: t === ct };
  }

  resize() {
    this.width = this.root.clientWidth || 800;
    this.geometry();
    this.rebuildPool();
    // wide enough for the pool of cells plus REBASE steps of slack
    this.svgWidth = (this.slots.length + REBASE) * this.g.pitch;
    this.svg.setAttribute("width", String(this.svgWidth));
    this.svg.setAttribute("height", String(this.g.height));
    this.svg.setAttribute("viewBox", `0 0 ${this.svgWidth} ${this.g.height}`);
    this.box.style.height = `${this.g.height}px`;
    this.base = null;
    this.render(true);
  }

  rebuildPool() {
    this.viewport.replaceChildren();
    const n = Math.ceil(this.width / this.g.pitch) + 3;
    this.slots = Array.from({ length: n }, () => this.makeSlot());
  }

  makeSlot() {
    const g = this.g;
    const L = this.trace ? this.trace.L : 1;
    const root = el("g", { class: "step ghost" }, this.viewport);
    const cx = g.pitch / 2;
    const s = { root, t: -1, key: "", layers: [] };
    s.hit = el("rect", { class: "hit", x: 0, y: 0, width: g.pitch, height: g.height }, root);
    s.pred = el("text", { class: "pred", x: cx, y: g.predY - g.font * 0.2, "text-anchor": "middle", "font-size": g.size.pred }, root);
    s.p = el("text", { class: "p", x: cx, y: g.predY + g.size.p + 1, "text-anchor": "middle", "font-size": g.size.p, fill: "#4b5563" }, root);
    const topBox = g.boxTop(L - 1);
    s.hy = el("line", { class: "arrow", x1: cx, y1: topBox - 2, x2: cx, y2: g.predY + g.size.p + 6 }, root);
    s.hyLabel = el("text", { class: "w", x: cx + 5, y: (topBox + g.predY + g.size.p + 6) / 2 + g.font * 0.35, "font-size": g.font }, root);
    s.hyLabel.textContent = "W_hy";
    const tr = this.trace;
    const two = Boolean(tr?.bidirectional);
    let k = -1; // the layer's own number (a bidirectional layer is two rows)
    for (let l = 0; l < L; l++) {
      const y = g.boxTop(l);
      const reverse = two && tr.isReverse(l);
      if (!reverse) k++;
      const lay = { reverse };
      const sup = two ? `${L > 2 ? SUP[k] : ""}${reverse ? "ʳ" : ""}` : L > 1 ? SUP[l] : "";
      lay.box = el("rect", { class: "box", x: cx - g.bw / 2, y, width: g.bw, height: g.bh, rx: 7, fill: "#ffffff" }, root);
      lay.label = el("text", { x: cx, y: g.bare ? y + g.bh / 2 + g.font * 0.36 : y + g.bh * 0.42, "text-anchor": "middle", "font-size": g.font, "data-row": l, "data-direction": reverse ? "reverse" : "forward" }, root);
      lay.strip = [];
      if (!this.compact) {
        const sw = (g.bw - 10) / STRIP;
        for (let i = 0; i < STRIP; i++) {
          lay.strip.push(el("rect", { x: cx - g.bw / 2 + 5 + i * sw, y: y + g.bh * 0.6, width: Math.max(1, sw - 0.5), height: g.bh * 0.28, fill: "#f1f5f9" }, root));
        }
      }
      // h_t → next step, labelled with the shared recurrent weights; under it, the gradient flowing back
      const ay = y + g.bh / 2;
      const x0 = cx + g.bw / 2 + 2;
      const x1 = g.pitch + cx - g.bw / 2 - 3;
      // the reverse row passes h_t the other way: from step t+1 into step t, and its gradient from t into t+1
      const [hFrom, hTo] = reverse ? [x1, x0] : [x0, x1];
      lay.hh = el("line", { class: "arrow", x1: hFrom, y1: ay - 5, x2: hTo, y2: ay - 5, "data-row": l }, root);
      // beside a reverse twin's input path (which passes this row on the right), the label moves right to clear it
      const twinned = two && !reverse;
      lay.hhLabel = el("text", { class: "w", x: g.pitch + (twinned ? 8 : 0), y: ay - 10, "text-anchor": "middle", "font-size": g.size.hh }, root);
      lay.sup = sup;
      lay.hhLabel.textContent = `${cellOf(tr).recurrence}${sup}`;
      lay.back = el("line", { class: "back", x1: hTo, y1: ay + 6, x2: hFrom + (reverse ? -1 : 1), y2: ay + 6 }, root);
      lay.back.setAttribute("marker-end", `url(#${this.name}-ah-back)`);
      lay.hhCarry = el("text", { x: g.pitch, y: ay + g.size.carry + 4, "text-anchor": "middle", "font-size": g.size.carry, fill: "#6b7280" }, root);
      // input from below: the token (layer 0) or the layer underneath
      // input from below: the token (layer 0) or the layer underneath; a reverse row reads what its forward twin
      // reads, so its arrow leaves the same source and passes the twin on its right
      const twin = reverse ? l - 1 : l;
      const below = twin === 0 ? g.tokY - g.tok : g.boxTop(twin - 1) - 2;
      if (reverse) {
        const y1 = below - 6; // it branches off just above the source, clear of the twin's W_xh label
        const xr = cx + g.bw / 2 + 6;
        const y2 = (y + g.bh + g.boxTop(twin)) / 2;
        const xi = cx - g.bw / 4;
        lay.xh = el("path", { class: "arrow", d: `M${cx},${below} L${cx},${y1} L${xr},${y1} L${xr},${y2} L${xi},${y2} L${xi},${y + g.bh + 2}` }, root);
      } else {
        lay.xh = el("line", { class: "arrow", x1: cx, y1: below, x2: cx, y2: y + g.bh + 2 }, root);
      }
      lay.xhLabel = el("text", { class: "w", x: cx + 5, y: (below + y + g.bh) / 2 + 4, "font-size": g.font }, root);
      lay.xhLabel.textContent = `W_xh${sup}`;
      if (reverse) lay.xhLabel.style.display = "none"; // its row's label names it; its path has no straight run
      if (g.bare) lay.xh.style.display = "none";
      s.layers.push(lay);
    }
    s.tok = el("text", { class: "tok", x: cx, y: g.tokY, "text-anchor": "middle", "font-size": g.tok }, root);
    s.tLabel = el("text", { class: "tlabel", x: cx, y: g.tY, "text-anchor": "middle", "font-size": g.size.t }, root);
    if (g.bare) for (const e of [s.pred, s.p, s.hy, s.hyLabel, s.tLabel]) e.style.display = "none";
    return s;
  }

  /** What an update brings, with the version of the traces drawn (a page's, when several rows share a scale). */
  take(data) {
    super.take(data);
    if (data.version !== undefined) this.version = data.version;
  }

  /** Every cell is filled again for another trace, unit or version; the cursor alone refills what it changed. */
  drawKey() {
    return [this.trace, this.unit, this.version];
  }

  /** The pool is laid out again when the rows change (another number of layers or directions). */
  prepare(last) {
    const was = last?.[0];
    const tr = this.trace;
    if (!was || was.L !== tr.L || String(was.directions) !== String(tr.directions)) {
      this.geometry();
      this.resize(); // which fills every cell
    } else this.stale = true;
  }

  clear() {
    this.geometry();
    this.resize();
  }

  offset() {
    const T = this.trace ? this.trace.T : 0;
    const span = T * this.g.pitch;
    const margin = 8;
    if (span + 2 * margin <= this.width) return (this.width - span) / 2;
    const ideal = this.width / 2 - (this.cursor.t + 0.5) * this.g.pitch;
    return Math.min(margin, Math.max(this.width - span - margin, ideal));
  }

  render(full = false) {
    const tr = this.trace;
    if (!tr || !this.slots.length) return;
    full ||= this.stale;
    this.stale = false;
    const { t: ct } = this.cursor;
    const off = this.offset();
    const first = Math.max(0, Math.floor(-off / this.g.pitch) - 1);
    // Scrolling moves the whole SVG (a composited layer: no repaint); its contents shift only on a rebase.
    const base = first - (first % REBASE);
    if (base !== this.base) {
      this.base = base;
      this.viewport.setAttribute("transform", `translate(${-base * this.g.pitch},0)`);
    }
    this.shift = off + base * this.g.pitch;
    this.svg.style.transform = `translateX(${this.shift.toFixed(1)}px)`;
    const last = Math.min(tr.T - 1, first + this.slots.length - 1);
    this.range = this.gradRange(full);
    const n = this.slots.length;
    const used = new Set();
    for (let t = first; t <= last; t++) {
      const s = this.slots[t % n];
      used.add(t % n);
      const rows = Array.from({ length: tr.L }, (_, l) => this.rowAt(l, t));
      const rowsAfter = t + 1 < tr.T ? Array.from({ length: tr.L }, (_, l) => this.rowAt(l, t + 1)) : null;
      const code = (r) => `${+r.revealed}${+r.grad}${+r.front}`;
      const key = `${t}|${rows.map(code).join("")}|${rowsAfter ? rowsAfter.map(code).join("") : ""}|${t === ct}|${rows.some((r) => r.grad) ? this.rangeKey : ""}`;
      if (s.t !== t || s.key !== key || full) {
        s.t = t;
        s.key = key;
        this.fill(s, t, rows, rowsAfter, t === ct);
      }
      s.root.style.display = "";
    }
    for (let i = 0; i < n; i++) if (!used.has(i)) this.slots[i].root.style.display = "none";
    this.drawOverview(first, last);
  }

  gradRange(full) {
    const tr = this.trace;
    if (full || this.rangeVersion !== tr.version) {
      this.rangeVersion = tr.version;
      this.logRange = this.rangeOf ? this.rangeOf() : tr.gradLogRange();
      this.rangeKey = this.logRange.map((v) => v.toFixed(2)).join(",");
    }
    return this.logRange;
  }

  /** rows: each row's rowAt(l, t); after: the same at t+1 (null at the last step); current: the cursor's step. */
  fill(s, t, rows, after, current) {
    const tr = this.trace;
    const g = this.g;
    const T = tr.T;
    // the column is read once a row has read it; its prediction (from the top layer) once every row has
    const revealed = rows.some((r) => r.revealed);
    const complete = rows.every((r) => r.revealed);
    s.root.setAttribute("transform", `translate(${t * g.pitch},0)`);
    s.root.setAttribute("class", `step${revealed ? "" : " ghost"}${current ? " current" : ""}`);
    s.hit.dataset.t = String(t);
    // generated text is not shown before the cursor has written it; a traced input is known in advance
    const unwritten = tr.mode === "generate" && !revealed && t >= tr.promptSteps;
    s.tok.textContent = unwritten ? "" : showToken(tr.tokens[t] ?? "");
    // a token not in the vocabulary: red and struck through (unknown.js names it beside the input)
    s.tok.setAttribute("fill", tr.unknown.has(t) ? "#b91c1c" : "");
    s.tok.setAttribute("text-decoration", tr.unknown.has(t) ? "line-through" : "none");
    s.tLabel.textContent = `t=${t + 1}`;
    const top = complete ? tr.topPrediction(t) : null;
    s.pred.textContent = top ? showToken(top.token) : "";
    s.p.textContent = top ? `p ${top.p.toFixed(2)}` : "";
    const last = t === T - 1;
    s.layers.forEach((lay, l) => {
      const { revealed, grad, front } = rows[l];
      let fill = "#ffffff";
      let label = tr.cell.toUpperCase();
      if (grad) {
        const v = tr.grad.hidden[l][t];
        fill = gradColor(v, this.range);
        label = fmtNorm(v);
      } else if (!revealed) {
        fill = "#f8fafc";
        label = "";
      }
      lay.box.setAttribute("fill", fill);
      lay.box.setAttribute("class", `box${revealed || grad ? "" : " unread"}${front ? " cur" : ""}`);
      lay.label.textContent = label;
      lay.label.setAttribute("fill", grad ? inkOn(fill) : revealed ? "#111827" : "#cbd5e1");
      lay.label.setAttribute("font-weight", grad ? "700" : "600");
      if (lay.strip.length) {
        const H = tr.H;
        const h = tr.layers[l].hidden;
        const k = Math.max(1, Math.floor(H / STRIP));
        lay.strip.forEach((r, i) => {
          const u = i * k;
          r.setAttribute("fill", revealed && u < H ? diverging(h[t * H + u]) : "#f1f5f9");
          r.style.display = u < H && !grad ? "" : "none";
        });
      }
      const nextRevealed = revealed && Boolean(after?.[l].revealed);
      lay.hh.style.display = last ? "none" : "";
      lay.hh.setAttribute("class", nextRevealed ? "arrow" : "arrow ghost-arrow");
      lay.hh.setAttribute("stroke", nextRevealed ? "#374151" : "#cbd5e1");
      lay.hh.setAttribute("marker-end", `url(#${this.name}-${nextRevealed ? "ah" : "ah-ghost"})`);
      lay.hhLabel.style.display = last || this.compact ? "none" : "";
      const recurrence = `${cellOf(tr).recurrence}${lay.sup}`; // a pool laid out before its trace came
      if (lay.hhLabel.textContent !== recurrence) lay.hhLabel.textContent = recurrence;
      // the state carried: h_t forward, h_{t+1} back from the next step in a reverse row
      const carried = lay.reverse ? t + 2 : t + 1;
      const i = carried < 100 ? sub(carried) : ""; // long inputs: the step's number is under the token
      lay.hhCarry.textContent = last || this.compact ? "" : tr.cell === "lstm" ? `h${i} c${i}` : `h${i}`;
      lay.hhCarry.style.display = grad ? "none" : "";
      // the gradient flows from step t+1 back into step t (in a reverse row, from t into t+1)
      const backOn = grad && !last && Boolean(after?.[l].grad);
      lay.back.style.display = backOn ? "" : "none";
      lay.xh.setAttribute("stroke", revealed ? "#374151" : "#cbd5e1");
      lay.xh.setAttribute("marker-end", `url(#${this.name}-${revealed ? "ah" : "ah-ghost"})`);
      lay.xhLabel.style.display = this.compact || lay.reverse ? "none" : "";
    });
    s.hy.setAttribute("stroke", complete ? "#374151" : "#cbd5e1");
    s.hy.setAttribute("marker-end", `url(#${this.name}-${complete ? "ah" : "ah-ghost"})`);
    s.hyLabel.style.display = this.compact ? "none" : "";
  }

  /**
   * The overview strip: every step binned to pixels (read: slate; not yet: light; BPTT reached: its gradient
   * colour), the window of cells shown above, and the cursor. Pixels are written as integers, once per change.
   */
  drawOverview(first, last) {
    if (this.compact) return;
    const tr = this.trace;
    const c = this.overview;
    const w = Math.max(1, Math.floor(this.width || 800));
    const h = isPresenter() && !isTalk() ? 22 : 16; // the tour is laid out to fit: P keeps its strip
    const dpr = window.devicePixelRatio || 1;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
      c.style.width = `${w}px`;
      c.style.height = `${h}px`;
      this.strip = null;
    }
    const T = tr.T;
    const { phase, t: ct } = this.cursor;
    const key = `${tr.version}|${phase}|${Math.floor((ct * w) / T)}|${w}|${this.rangeKey}`;
    if (!this.strip || this.strip.key !== key) {
      const img = this.strip?.img && this.strip.img.width === w ? this.strip.img : new ImageData(w, 1);
      const px = new Uint32Array(img.data.buffer);
      const [lo, hi] = this.range;
      const g = tr.grad.hidden[0];
      for (let x = 0; x < w; x++) {
        const t0 = Math.floor((x * T) / w);
        const t1 = Math.max(t0 + 1, Math.floor(((x + 1) * T) / w));
        if (phase === "backward" && t1 - 1 >= ct && t0 >= tr.gradFrom) {
          let m = 0;
          for (let t = Math.max(t0, ct); t < t1; t++) if (g[t] > m) m = g[t];
          px[x] = m > 0 ? packed("grad", (Math.log10(m) - lo) / (hi - lo)) : packed("grad", 0);
        } else if (t0 < tr.steps && (phase === "backward" || t0 <= ct)) {
          px[x] = SLATE;
        } else {
          px[x] = LIGHT;
        }
      }
      this.strip = { key, img };
      this.stripCanvas = this.stripCanvas ?? document.createElement("canvas");
      this.stripCanvas.width = w;
      this.stripCanvas.height = 1;
      this.stripCanvas.getContext("2d").putImageData(img, 0, 0);
    }
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.stripCanvas, 0, 0, w, 1, 0, 3, w, h - 6);
    ctx.strokeStyle = "#111827";
    ctx.lineWidth = 1.5;
    const x0 = (first / T) * w;
    const x1 = ((last + 1) / T) * w;
    ctx.strokeRect(x0 + 0.75, 0.75, Math.max(3, x1 - x0 - 1.5), h - 1.5);
    ctx.fillStyle = ACCENT;
    ctx.fillRect(((ct + 0.5) / T) * w - 1.5, 0, 3, h);
  }

  onOverviewClick(e) {
    if (!this.trace) return;
    const r = this.overview.getBoundingClientRect();
    const t = Math.floor(((e.clientX - r.left) / r.width) * this.trace.T);
    bus.emit("seek", { t: Math.max(0, Math.min(this.trace.T - 1, t)) });
  }

  /** What is on screen, in the SVG's coordinates. */
  visibleBox() {
    return { x: -this.shift, width: this.width, height: this.g.height };
  }

  exportPng() {
    this.withRowNames(() => exportSvgAsPng(this.svg, this.name, 2, this.visibleBox()));
  }

  exportSvg() {
    this.withRowNames(() => exportSvg(this.svg, this.name, this.visibleBox()));
  }

  /** The rows' names (HTML over the picture on the page) written into the SVG while `fn` serialises it. */
  withRowNames(fn) {
    const tr = this.trace;
    if (!tr?.bidirectional || this.g.bare) {
      fn();
      return;
    }
    const g = el("g", { class: "row-names" }, this.svg);
    const size = Math.max(this.g.size.t, 12);
    for (let l = 0; l < tr.L; l++) {
      const t = el("text", { x: -this.shift + 4, y: this.g.boxTop(l) - 6, "font-size": size, "font-weight": 700, fill: tr.isReverse(l) ? "#7c2d12" : "#1e3a8a", stroke: "#ffffff", "stroke-width": 4, "paint-order": "stroke" }, g);
      t.textContent = tr.layerName(l);
    }
    try {
      fn();
    } finally {
      g.remove();
    }
  }
}
