// The cell, drawn: one step of the cell as the module draws it (the state line along the top, the gates as valves,
// each equation beside its part), lit by the trace at the cursor. Forward sweep: each valve opens with its gate's
// activation (the wide slot: the mean over the units; the narrow purple one: the selected unit), each arrow is as
// wide as what it carries (the mean |value|; the purple line inside it: the selected unit's), and the numbers stand
// beside the equations. BPTT sweep: the gradient instead, along the line that carries memory back (the LSTM's c, the
// GRU's and the RNN's h): ‖∂L/∂·‖ at both ends, and how much the gate on the way passes back.
//
// A cell is a description (CELLS below): its quantities, the nodes and arrows of its drawing, its equations and its
// memory line. A new cell (a minGRU) is one more entry; the code draws any of them. With several traces (a compare
// scene) the cells' whole drawings stand side by side, each lit by its own trace at the same step (their equations
// left out, each named above its drawing), scaled to fit; `compact` draws each as its memory line only.
//
// What is drawn is written on the drawing for a reader (and a test): a valve's slot heights, data-mean / data-unit on
// each valve and equation, data-norm on the gradient labels.

import { bus } from "../bus.js";
import { ACCENT, CELL_COLORS, color, diverging, gradColor } from "../colors.js";
import { exportButtons, exportSvg, exportSvgAsPng } from "../export.js";
import { onKeysIn } from "../keys.js";
import { isTalk } from "../plots.js";
import { showToken } from "../trace.js";
import { View } from "./base.js";

const NS = "http://www.w3.org/2000/svg";
const FONT = 16; // user units; the drawing is never shown below 0.95 of them on a projector (scale below)
const SLOT = 42; // a valve's slot when fully open
const GREY = "#475569";

const STYLE = `
  text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, "Liberation Sans", sans-serif; fill: #111827; font-size: ${FONT}px; }
  .eqtext { font-family: "DejaVu Serif", Georgia, "Times New Roman", serif; }
  .num { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: ${FONT}px; }
  .head { fill: #4b5563; }
  .name { font-weight: 700; }
  .arrow { fill: none; stroke: ${GREY}; stroke-linecap: round; stroke-linejoin: round; }
  .unit-path { fill: none; stroke: ${ACCENT}; stroke-linecap: round; stroke-linejoin: round; opacity: 0.85; }
  .frame { fill: #1f2937; stroke: #111827; stroke-width: 1.5; }
  .squash { stroke: #1f2937; stroke-width: 1.5; }
  .op { fill: #ffffff; stroke: #1f2937; stroke-width: 1.8; }
  .optext { font-size: 20px; font-weight: 700; }
  .eq .bg { fill: transparent; }
  .eq.lit .bg { fill: #ede9fe; }
  .lit .frame, .lit .squash, .lit .op { stroke: ${ACCENT}; stroke-width: 3.5; }
  .lit.arrow { stroke: ${ACCENT}; }
  .faded { opacity: 0.3; }
  .grad { fill: #9a3412; font-weight: 700; }
  [data-part] { cursor: pointer; }
  svg:focus { outline: none; }
`;

function el(name, attrs = {}, parent = null) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (parent) parent.append(e);
  return e;
}

function text(parent, x, y, s, attrs = {}) {
  const t = el("text", { x, y, ...attrs }, parent);
  t.textContent = s;
  return t;
}

const mul = (a, b) => a.map((v, i) => v * b[i]);
const oneMinus = (a) => a.map((v) => 1 - v);
const meanOf = (a) => a.reduce((s, v) => s + v, 0) / Math.max(1, a.length);
const meanAbs = (a) => a.reduce((s, v) => s + Math.abs(v), 0) / Math.max(1, a.length);

/** A value beside an equation: three decimals, a real minus. */
export const fmt = (v) => (Number.isFinite(v) ? v.toFixed(3).replace("-", "−") : "—");
/** A gradient norm: three significant digits (1.23e-9 below 0.01). */
export const fmtGrad = (v) => (!(v > 0) ? "0" : v >= 0.01 && v < 1000 ? v.toPrecision(3) : v.toExponential(2).replace("-", "−"));

// The gradient's rows in the BPTT sweep, the same for every cell: from its memory line (mem).
function backwardRows(mem) {
  return [
    { part: mem.part, text: `‖∂L/∂${mem.now}‖`, grad: 0 },
    { part: mem.gate ?? mem.part, text: mem.passes },
    ...(mem.gate ? [{ part: mem.gate, passing: mem.gate }] : []),
    { part: mem.part, text: `‖∂L/∂${mem.before}‖`, grad: -1 },
    { part: mem.part, text: `‖∂L/∂${mem.before}‖ ÷ ‖∂L/∂${mem.now}‖`, ratio: true },
    ...(mem.grad !== "hidden" ? [{ part: "hidden", text: "‖∂L/∂hₜ‖", grad: 0, of: "hidden" }] : []),
  ];
}

// The bus under the gates carries [hₜ₋₁, xₜ]; its stubs up to each gate carry the same (no value of their own).
const stub = (x, top = 173) => ({ pts: [[x, 225], [x, top]], part: "bus" });

/**
 * Each cell: `derive(v)` adds the products the drawing carries to v (hₜ, hₜ₋₁, cₜ, cₜ₋₁ and each gate by its torch
 * name, per unit); nodes (valve: a sigmoid gate; squash: a tanh; op: × or +), arrows (pts in user units, q: what they
 * carry), labels, equations (q: the quantity whose mean and unit value stand beside it) and the memory line:
 * its arrows, the gradient it carries back (the trace's grad.cell or grad.hidden) and the gate it passes.
 */
export const CELLS = {
  rnn: {
    name: "RNN",
    derive: () => ({}),
    nodes: [{ id: "tanh", kind: "squash", x: 300, y: 150, w: 70, h: 46, label: "tanh", q: "h", part: "hidden", memory: true }],
    arrows: [
      { pts: [[20, 225], [300, 225], [300, 173]], q: "h_prev", part: "carry", memory: "before" },
      { pts: [[300, 127], [300, 40], [580, 40]], q: "h", part: "hidden", memory: "now" },
      { pts: [[90, 262], [90, 225]], part: "bus" },
    ],
    labels: [
      ["hₜ₋₁", 20, 213, "start"],
      ["hₜ", 580, 28, "end"],
      ["xₜ", 100, 262, "start"],
      ["W xₜ + U hₜ₋₁ + b", 320, 200, "start"],
    ],
    equations: [
      { part: "hidden", text: "hₜ = tanh(W xₜ + U hₜ₋₁ + b)", q: "h" },
      { part: "carry", text: "hₜ₋₁, carried in", q: "h_prev" },
    ],
    memory: { part: "hidden", grad: "hidden", now: "hₜ", before: "hₜ₋₁", gate: null, passes: "∂L/∂hₜ₋₁ = Uᵀ(tanh′ ⊙ ∂L/∂hₜ)", op: "tanh", at: { before: [20, 190] } },
  },
  lstm: {
    name: "LSTM",
    derive: (v) => ({ fc: mul(v.forget, v.c_prev), ig: mul(v.input, v.candidate), tanh_c: v.c.map(Math.tanh) }),
    nodes: [
      { id: "forget", kind: "valve", x: 160, y: 150, q: "forget", label: "fₜ" },
      { id: "input", kind: "valve", x: 240, y: 150, q: "input", label: "iₜ" },
      { id: "candidate", kind: "squash", x: 320, y: 150, w: 46, h: 46, label: "tanh", q: "candidate", under: "c̃ₜ" },
      { id: "output", kind: "valve", x: 410, y: 150, q: "output", label: "oₜ" },
      { id: "tanh_c", kind: "squash", x: 490, y: 95, w: 56, h: 30, label: "tanh", q: "tanh_c", part: "hidden" },
      { id: "keep", kind: "op", op: "×", x: 160, y: 40, part: "forget" },
      { id: "write", kind: "op", op: "×", x: 320, y: 95, part: "cell" },
      { id: "add", kind: "op", op: "+", x: 320, y: 40, part: "cell" },
      { id: "emit", kind: "op", op: "×", x: 490, y: 150, part: "hidden" },
    ],
    arrows: [
      { pts: [[20, 40], [147, 40]], q: "c_prev", part: "cell", memory: "before" },
      { pts: [[173, 40], [307, 40]], q: "fc", part: "cell", memory: "now" },
      { pts: [[333, 40], [580, 40]], q: "c", part: "cell", memory: "now" },
      { pts: [[160, 127], [160, 53]], q: "forget", part: "forget" },
      { pts: [[240, 127], [240, 95], [307, 95]], q: "input", part: "input" },
      { pts: [[320, 127], [320, 108]], q: "candidate", part: "candidate" },
      { pts: [[320, 82], [320, 53]], q: "ig", part: "cell" },
      { pts: [[490, 40], [490, 80]], q: "c", part: "hidden" },
      { pts: [[490, 110], [490, 137]], q: "tanh_c", part: "hidden" },
      { pts: [[433, 150], [477, 150]], q: "output", part: "output" },
      { pts: [[490, 163], [490, 225], [580, 225]], q: "h", part: "hidden" },
      { pts: [[20, 225], [410, 225]], q: "h_prev", part: "bus", head: false },
      stub(160),
      stub(240),
      stub(320),
      stub(410),
      { pts: [[70, 262], [70, 225]], part: "bus" },
    ],
    labels: [
      ["cₜ₋₁", 20, 28, "start"],
      ["cₜ", 580, 28, "end"],
      ["hₜ₋₁", 20, 213, "start"],
      ["hₜ", 580, 213, "end"],
      ["xₜ", 80, 262, "start"],
    ],
    equations: [
      { part: "forget", text: "fₜ = σ(W_f xₜ + U_f hₜ₋₁ + b_f)", q: "forget" },
      { part: "input", text: "iₜ = σ(W_i xₜ + U_i hₜ₋₁ + b_i)", q: "input" },
      { part: "candidate", text: "c̃ₜ = tanh(W_c xₜ + U_c hₜ₋₁ + b_c)", q: "candidate" },
      { part: "output", text: "oₜ = σ(W_o xₜ + U_o hₜ₋₁ + b_o)", q: "output" },
      { part: "cell", text: "cₜ = fₜ ⊙ cₜ₋₁ + iₜ ⊙ c̃ₜ", q: "c" },
      { part: "hidden", text: "hₜ = oₜ ⊙ tanh(cₜ)", q: "h" },
    ],
    memory: { part: "cell", grad: "cell", now: "cₜ", before: "cₜ₋₁", gate: "forget", passes: "∂L/∂cₜ₋₁ = fₜ ⊙ ∂L/∂cₜ + …", op: "×" },
  },
  gru: {
    name: "GRU",
    derive: (v) => ({ zh: mul(v.update, v.h_prev), one_minus_z: oneMinus(v.update), zn: mul(oneMinus(v.update), v.candidate) }),
    nodes: [
      { id: "update", kind: "valve", x: 150, y: 150, q: "update", label: "zₜ" },
      { id: "candidate", kind: "squash", x: 300, y: 150, w: 46, h: 46, label: "tanh", q: "candidate", under: "h̃ₜ" },
      { id: "reset", kind: "valve", x: 410, y: 150, q: "reset", label: "rₜ" },
      { id: "keep", kind: "op", op: "×", x: 150, y: 40, part: "update" },
      { id: "flip", kind: "op", op: "1−", x: 225, y: 95, part: "update" },
      { id: "write", kind: "op", op: "×", x: 300, y: 95, part: "hidden" },
      { id: "add", kind: "op", op: "+", x: 300, y: 40, part: "hidden" },
    ],
    arrows: [
      { pts: [[20, 40], [137, 40]], q: "h_prev", part: "hidden", memory: "before" },
      { pts: [[163, 40], [287, 40]], q: "zh", part: "hidden", memory: "now" },
      { pts: [[313, 40], [580, 40]], q: "h", part: "hidden", memory: "now" },
      { pts: [[150, 127], [150, 53]], q: "update", part: "update" },
      { pts: [[150, 95], [211, 95]], q: "update", part: "update", head: false },
      { pts: [[239, 95], [287, 95]], q: "one_minus_z", part: "update" },
      { pts: [[300, 127], [300, 108]], q: "candidate", part: "candidate" },
      { pts: [[300, 82], [300, 53]], q: "zn", part: "hidden" },
      { pts: [[387, 150], [323, 150]], q: "reset", part: "reset" },
      { pts: [[20, 225], [410, 225]], q: "h_prev", part: "bus", head: false },
      stub(150),
      stub(300),
      stub(410),
      { pts: [[70, 262], [70, 225]], part: "bus" },
    ],
    labels: [
      ["hₜ₋₁", 20, 28, "start"],
      ["hₜ", 580, 28, "end"],
      ["hₜ₋₁", 20, 213, "start"],
      ["xₜ", 80, 262, "start"],
      ["rₜ ⊙ hₜ₋₁", 330, 138, "start"],
    ],
    equations: [
      { part: "reset", text: "rₜ = σ(W_r xₜ + U_r hₜ₋₁ + b_r)", q: "reset" },
      { part: "update", text: "zₜ = σ(W_z xₜ + U_z hₜ₋₁ + b_z)", q: "update" },
      { part: "candidate", text: "h̃ₜ = tanh(W xₜ + U(rₜ ⊙ hₜ₋₁) + b)", q: "candidate" },
      { part: "hidden", text: "hₜ = (1 − zₜ) ⊙ h̃ₜ + zₜ ⊙ hₜ₋₁", q: "h" },
    ],
    memory: { part: "hidden", grad: "hidden", now: "hₜ", before: "hₜ₋₁", gate: "update", passes: "∂L/∂hₜ₋₁ = zₜ ⊙ ∂L/∂hₜ + …", op: "×" },
  },
};

const DRAW_W = 600; // the drawing; the equations stand to its right
const EQ_X = 615;
const NUM_MEAN = 985; // right edges of the two number columns
const NUM_UNIT = 1090;
const FULL_W = 1100;
const FULL_H = 275;
const ROW = 31;
const COMPACT_W = 290;
const COMPACT_H = 158;
const SIDE_HEAD = 30; // side by side: each drawing's name above it
const SIDE_GAP = 24;

/** The unit's values at step t of layer l and what the cell's description derives from them. */
function valuesAt(tr, l, t, desc) {
  const H = tr.H;
  const layer = tr.layers[l];
  const prevT = tr.isReverse(l) ? t + 1 : t - 1; // the state the step started from (zeros before the first)
  const at = (a, s) => (a && s >= 0 && s < tr.steps ? Array.from(a.subarray(s * H, (s + 1) * H)) : new Array(H).fill(0));
  const v = { h: at(layer.hidden, t), h_prev: at(layer.hidden, prevT), c: at(layer.cell, t), c_prev: at(layer.cell, prevT) };
  for (const g of tr.gateNames) v[g] = at(layer.gates[g], t);
  return { ...v, ...desc.derive(v), prevT };
}

// Each trace's own number: a new input's trace counts its versions from 0 again, as the last one did.
const SERIALS = new WeakMap();
let serials = 0;
function serial(tr) {
  if (!SERIALS.has(tr)) SERIALS.set(tr, ++serials);
  return SERIALS.get(tr);
}

function arrowPath(pts) {
  return pts.map(([x, y], i) => `${i ? "L" : "M"}${x} ${y}`).join(" ");
}

export class CellDiagramView extends View {
  /** root: the panel body; tools: where its PNG / SVG buttons go; compact: each cell as its memory line only. */
  constructor(root, { tools = null, name = "cell-drawn", compact = false } = {}) {
    super(root, { name, onScreen: true }); // drawn while near the screen (a page scrolled away skips its redraws)
    this.compact = compact;
    this.traces = null; // several cells side by side (a compare scene)
    this.lit = null; // the part highlighted (hovered or stepped to)
    this.svg = el("svg", { class: "cell-diagram", role: "img", tabindex: 0, "aria-label": "the cell at this step, drawn" });
    this.svg.style.display = "block";
    this.svg.style.maxWidth = "100%";
    root.append(this.svg);
    VIEWS.set(this.svg, this);
    bindPartKeys(this.svg);
    this.svg.addEventListener("mouseover", (e) => {
      const part = e.target.closest?.("[data-part]")?.dataset.part;
      if (part && part !== this.lit) this.light(part);
    });
    this.svg.addEventListener("mouseleave", () => this.light(null));
    if (tools) exportButtons(tools, () => this.exportPng(), () => this.exportSvg());
    this.width = root.clientWidth || 900;
    new ResizeObserver(() => {
      const w = root.clientWidth || 900;
      if (Math.abs(w - this.width) < 1) return;
      this.width = w;
      this.render();
    }).observe(root);
  }

  take(data) {
    super.take(data);
    if (data.traces) {
      // a compare scene: its first two cells side by side (the RNN and the LSTM of one task), on one cursor
      this.traces = data.traces.filter(Boolean).slice(0, 2);
      this.trace = this.traces[0] ?? null;
    }
  }

  update(data) {
    this.take(data);
    this.render();
  }

  /** The traces drawn: one, or those of a compare scene. */
  shown() {
    return (this.traces ?? [this.trace]).filter((tr) => tr && tr.steps > 0 && CELLS[tr.cell]);
  }

  /** The parts of the drawing in the order ↑ / ↓ step through them: its equations'. */
  parts() {
    const tr = this.shown()[0];
    if (!tr) return [];
    const desc = CELLS[tr.cell];
    return [...new Set(desc.equations.map((e) => e.part))];
  }

  stepPart(d) {
    const parts = this.parts();
    if (!parts.length) return;
    const i = parts.indexOf(this.lit);
    this.light(parts[(i + d + parts.length) % parts.length] ?? parts[0]);
  }

  /** Highlight a part: its nodes, arrows and equations; and, through the bus, the same quantity in the tables (the
   * gates at this step light its row). */
  light(part) {
    const changed = part !== this.lit;
    this.lit = part;
    for (const e of this.svg.querySelectorAll("[data-part]")) e.classList.toggle("lit", e.dataset.part === part);
    this.svg.dataset.lit = part ?? "";
    const tr = this.shown()[0];
    if (!changed || !tr) return;
    // the quantity the part's equation carries (the LSTM's "cell": c, "hidden": h; a gate: itself)
    const q = part ? (CELLS[tr.cell].equations.find((e) => e.part === part)?.q ?? null) : null;
    bus.emit("part", { part, q, model: tr.model });
  }

  render() {
    const traces = this.shown();
    if (!traces.length || (this.view && !this.view.visible)) return;
    const { phase } = this.cursor;
    const t = Math.max(0, Math.min(this.cursor.t, traces[0].steps - 1));
    const compact = this.compact;
    const side = !compact && traces.length > 1;
    // the key: what is drawn (re-drawn only when it changes; a cursor move within a sweep changes it)
    const key = [phase, t, this.unit, this.layer, compact, this.width, ...traces.map((tr) => `${serial(tr)}:${tr.version}`)].join("|");
    if (key === this.key) return;
    this.key = key;
    const natW = compact ? traces.length * COMPACT_W + (traces.length - 1) * 16 : side ? traces.length * DRAW_W + (traces.length - 1) * SIDE_GAP : FULL_W;
    const natH = compact ? COMPACT_H : side ? FULL_H + SIDE_HEAD : FULL_H;
    // a projector reads it at no less than 0.95 of its 16 units; wider rooms grow it a little
    // (a tour's stage is zoomed to the room as a whole: there the drawing keeps its own size)
    const scale = Math.max(isTalk() ? 0.95 : 0.6, Math.min(isTalk() ? 1 : 1.35, this.width / natW));
    this.svg.replaceChildren();
    el("style", {}, this.svg).textContent = STYLE;
    const defs = el("defs", {}, this.svg);
    // one head for every arrow, whatever its width (a head scaled with a wide arrow covered the node it points at)
    const head = el("marker", { id: "cd-head", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 11, markerHeight: 11, orient: "auto-start-reverse", markerUnits: "userSpaceOnUse" }, defs);
    el("path", { d: "M0 0 L10 5 L0 10 z", fill: GREY }, head);
    el("rect", { x: 0, y: 0, width: natW, height: natH, fill: "#ffffff" }, this.svg);
    this.svg.setAttribute("viewBox", `0 0 ${natW} ${natH}`);
    this.svg.setAttribute("width", String(Math.round(natW * scale)));
    this.svg.setAttribute("height", String(Math.round(natH * scale)));
    this.svg.dataset.phase = phase;
    this.svg.dataset.step = String(t);
    this.svg.dataset.unit = String(this.unit);
    // one log scale for the gradients of every cell drawn: the RNN's and the LSTM's side by side read alike
    const ranges = traces.map((tr) => tr.gradLogRange("all"));
    this.range = [Math.min(...ranges.map((r) => r[0])), Math.max(...ranges.map((r) => r[1]))];
    traces.forEach((tr, i) => {
      const x = compact ? i * (COMPACT_W + 16) : side ? i * (DRAW_W + SIDE_GAP) : 0;
      const g = el("g", { class: "cell", "data-cell": tr.cell, "data-model": tr.model, transform: `translate(${x} 0)` }, this.svg);
      const l = Math.min(this.layer, tr.L - 1);
      const u = Math.min(this.unit, tr.H - 1);
      const tt = Math.min(t, tr.steps - 1);
      const backward = phase === "backward" && tt >= tr.gradFrom;
      if (compact) this.drawCompact(g, tr, l, tt, u, backward);
      else if (side) {
        text(g, 4, 20, `${CELLS[tr.cell].name} · ${tr.model}`, { class: "name", style: `fill:${CELL_COLORS[tr.cell] ?? "#111827"}` });
        this.drawFull(el("g", { transform: `translate(0 ${SIDE_HEAD})` }, g), tr, l, tt, u, backward, false);
      } else this.drawFull(g, tr, l, tt, u, backward);
    });
    if (this.lit) this.light(this.lit);
  }

  /** The whole cell: nodes, arrows, labels; its equations and numbers to the right (withEquations). */
  drawFull(g, tr, l, t, u, backward, withEquations = true) {
    const desc = CELLS[tr.cell];
    const v = valuesAt(tr, l, t, desc);
    const mem = desc.memory;
    const grad = gradAt(tr, l, t, mem.grad);
    const range = this.range;
    const gradWidth = (x) => (x > 0 ? 3 + 8 * Math.max(0, Math.min(1, (Math.log10(x) - range[0]) / (range[1] - range[0]))) : 1);
    for (const a of desc.arrows) {
      const d = arrowPath(a.pts);
      const carried = a.q ? v[a.q] : null;
      let width = carried ? 1.5 + 6 * Math.min(1, meanAbs(carried)) : 2;
      let stroke = GREY;
      const attrs = { d, class: "arrow", "data-part": a.part };
      if (a.q) attrs["data-carries"] = a.q;
      if (backward) {
        if (a.memory) {
          // the gradient along the memory line: ‖∂L/∂cₜ‖ (hₜ) back to the gate, then the step before's
          const x = a.memory === "before" ? grad.before : grad.now;
          width = gradWidth(x);
          stroke = gradColor(x, range);
          attrs["data-norm"] = String(x ?? "");
        } else attrs.class += " faded";
      }
      const p = el("path", { ...attrs, "stroke-width": width.toFixed(2), stroke }, g);
      if (a.head !== false) p.setAttribute("marker-end", "url(#cd-head)");
      if (!backward && carried) {
        const w = 0.8 + 3.5 * Math.min(1, Math.abs(carried[u]));
        el("path", { d, class: "unit-path", "stroke-width": w.toFixed(2), "data-part": a.part }, g);
      }
    }
    for (const n of desc.nodes) this.node(g, n, v, u, backward && n.kind !== "op" && n.id !== mem.gate && !n.memory);
    for (const [s, x, y, anchor] of desc.labels) text(g, x, y, s, { "text-anchor": anchor, class: "label" });
    if (backward) {
      const [nx, ny] = mem.at?.now ?? [580, 68];
      const [bx, by] = mem.at?.before ?? [20, 68];
      text(g, nx, ny, `‖∂L/∂${mem.now}‖ ${fmtGrad(grad.now)}`, { "text-anchor": "end", class: "grad grad-now", "data-norm": grad.now, "data-part": mem.part });
      text(g, bx, by, `‖∂L/∂${mem.before}‖ ${grad.before === null ? "—" : fmtGrad(grad.before)}`, { class: "grad grad-before", "data-norm": grad.before ?? "", "data-part": mem.part });
    }
    if (withEquations) this.equations(g, tr, l, desc, v, u, t, backward, grad);
  }

  /** A node: a valve (its slot open by the gate's mean, the narrow purple slot by the unit's), a tanh, or an op. */
  node(g, n, v, u, faded = false) {
    const part = n.part ?? n.id;
    const ng = el("g", { class: `node node-${n.kind}${faded ? " faded" : ""}`, "data-part": part, "data-node": n.id }, g);
    if (n.kind === "valve") {
      const a = v[n.q];
      const mean = meanOf(a);
      el("rect", { class: "frame", x: n.x - 23, y: n.y - 23, width: 46, height: 46, rx: 4 }, ng);
      const open = SLOT * mean;
      const unitOpen = SLOT * a[u];
      el("rect", { class: "slot", x: n.x - 18, y: (n.y - open / 2).toFixed(3), width: 26, height: open.toFixed(3), fill: color("gate", mean), "data-gate": n.q, "data-mean": mean, "data-full": SLOT }, ng);
      el("rect", { class: "slot-unit", x: n.x + 11, y: (n.y - unitOpen / 2).toFixed(3), width: 7, height: unitOpen.toFixed(3), fill: ACCENT, "data-gate": n.q, "data-unit": a[u], "data-full": SLOT }, ng);
      text(ng, n.x + 27, n.y + 45, n.label, { class: "glabel" });
    } else if (n.kind === "squash") {
      const mean = meanOf(v[n.q]);
      el("rect", { class: "squash", x: n.x - n.w / 2, y: n.y - n.h / 2, width: n.w, height: n.h, rx: 6, fill: diverging(mean), "data-mean": mean }, ng);
      text(ng, n.x, n.y + 6, n.label, { "text-anchor": "middle" });
      if (n.under) text(ng, n.x + 8, n.y + 45, n.under, { class: "glabel" });
    } else {
      el("circle", { class: "op", cx: n.x, cy: n.y, r: 13 }, ng);
      text(ng, n.x, n.y + 6.5, n.op, { "text-anchor": "middle", class: "optext", ...(n.op.length > 1 ? { style: "font-size:16px" } : {}) });
    }
  }

  /** The equations beside the drawing, each with its mean over the units and the unit's value (the BPTT sweep: the
   * gradient's rows). */
  equations(g, tr, l, desc, v, u, t, backward, grad) {
    const where = `step ${t + 1} “${showToken(tr.tokens[t] ?? "")}”${tr.L > 1 ? `, ${tr.layerName(l)}` : ""}`;
    text(g, EQ_X, 22, backward ? `BPTT at ${where}` : `${desc.name} at ${where}`, { class: "head name" });
    if (!backward) {
      text(g, NUM_MEAN, 22, "mean", { "text-anchor": "end", class: "head" });
      text(g, NUM_UNIT, 22, `unit ${u}`, { "text-anchor": "end", class: "head" });
    }
    const rows = backward ? backwardRows(desc.memory) : desc.equations;
    rows.forEach((r, i) => {
      const y = 56 + i * ROW;
      const row = el("g", { class: "eq", "data-part": r.part, "data-row": i }, g);
      el("rect", { class: "bg", x: EQ_X - 6, y: y - 21, width: FULL_W - EQ_X + 2, height: ROW - 2, rx: 4 }, row);
      if (r.text) text(row, EQ_X, y, r.text, { class: "eqtext" });
      if (r.passing) {
        // what the gate on the memory line multiplies the gradient by on its way back
        const a = v[r.passing];
        const name = desc.nodes.find((n) => n.id === r.passing)?.label ?? r.passing;
        Object.assign(row.dataset, { q: r.passing, mean: String(meanOf(a)), unit: String(a[u]) });
        text(row, EQ_X + 24, y, `${name} passes back: mean ${fmt(meanOf(a))}, unit ${u} ${fmt(a[u])}`, { class: "num num-passing" });
      } else if (r.q) {
        const a = v[r.q];
        const mean = meanOf(a);
        Object.assign(row.dataset, { q: r.q, mean: String(mean), unit: String(a[u]) });
        text(row, NUM_MEAN, y, fmt(mean), { "text-anchor": "end", class: "num num-mean" });
        text(row, NUM_UNIT, y, fmt(a[u]), { "text-anchor": "end", class: "num num-unit" });
      } else if (r.grad !== undefined) {
        const x = r.of === "hidden" ? gradAt(tr, l, t, "hidden").now : r.grad === 0 ? grad.now : grad.before;
        row.dataset.norm = String(x ?? "");
        text(row, NUM_UNIT, y, x === null ? "—" : fmtGrad(x), { "text-anchor": "end", class: "num num-grad" });
      } else if (r.ratio) {
        const x = grad.before !== null && grad.now > 0 ? grad.before / grad.now : null;
        row.dataset.norm = String(x ?? "");
        text(row, NUM_UNIT, y, x === null ? "—" : fmtGrad(x), { "text-anchor": "end", class: "num num-grad" });
      }
    });
  }

  /** A cell as its memory line: the state from the step before to this one through its gate (or its tanh); forward,
   * the gate's opening and numbers; BPTT, the gradient at both ends and what the gate passes back. */
  drawCompact(g, tr, l, t, u, backward) {
    const desc = CELLS[tr.cell];
    const mem = desc.memory;
    const v = valuesAt(tr, l, t, desc);
    const grad = gradAt(tr, l, t, mem.grad);
    const range = this.range;
    const W = COMPACT_W;
    const y = 78;
    text(g, 4, 20, `${desc.name} · ${tr.model}`, { class: "name", style: `fill:${CELL_COLORS[tr.cell] ?? "#111827"}` });
    const opX = 110;
    const widthOf = (x) => (x > 0 ? 3 + 8 * Math.max(0, Math.min(1, (Math.log10(x) - range[0]) / (range[1] - range[0]))) : 1);
    const [before, now] = mem.grad === "cell" ? ["c_prev", "c"] : ["h_prev", "h"];
    const seg = (x0, x1, which, part, head = false) => {
      const attrs = { d: `M${x0} ${y} L${x1} ${y}`, class: "arrow", "data-part": part, "data-carries": which === "before" ? before : now };
      let w = 1.5 + 6 * Math.min(1, meanAbs(v[which === "before" ? before : now]));
      let stroke = GREY;
      if (backward) {
        const x = which === "before" ? grad.before : grad.now;
        w = widthOf(x);
        stroke = gradColor(x, range);
        attrs["data-norm"] = String(x ?? "");
      }
      const p = el("path", { ...attrs, "stroke-width": w.toFixed(2), stroke }, g);
      if (head) p.setAttribute("marker-end", "url(#cd-head)");
    };
    if (mem.gate) {
      seg(8, opX - 13, "before", mem.part);
      seg(opX + 13, W - 8, "now", mem.part, true);
      const ng = el("g", { class: "node node-op", "data-part": mem.gate }, g);
      el("circle", { class: "op", cx: opX, cy: y, r: 13 }, ng);
      text(ng, opX, y + 6.5, mem.op, { "text-anchor": "middle", class: "optext" });
      this.node(g, { id: mem.gate, kind: "valve", x: opX, y: y + 48, q: mem.gate, label: "" }, v, u, false);
      el("path", { d: `M${opX} ${y + 25} L${opX} ${y + 13}`, class: "arrow", "stroke-width": 2, "data-part": mem.gate }, g);
      const a = v[mem.gate];
      const name = desc.nodes.find((n) => n.id === mem.gate)?.label ?? mem.gate;
      const line = el("g", { class: "eq", "data-part": mem.gate, "data-q": mem.gate, "data-mean": meanOf(a), "data-unit": a[u] }, g);
      text(line, opX + 32, y + 42, `${name} mean ${fmt(meanOf(a))}`, { class: "num num-mean" });
      text(line, opX + 32, y + 64, `unit ${u}: ${fmt(a[u])}`, { class: "num num-unit" });
    } else {
      seg(8, 110, "before", mem.part);
      seg(180, W - 8, "now", mem.part, true);
      const ng = el("g", { class: "node node-squash", "data-part": "hidden" }, g);
      el("rect", { class: "squash", x: 110, y: y - 17, width: 70, height: 34, rx: 6, fill: diverging(meanOf(v.h)) }, ng);
      text(ng, 145, y + 6, "tanh", { "text-anchor": "middle" });
      text(g, 110, y + 44, backward ? "× Uᵀ, tanh′ each step" : `hₜ mean ${fmt(meanOf(v.h))}`, { class: "num" });
      if (!backward) text(g, 110, y + 66, `unit ${u}: ${fmt(v.h[u])}`, { class: "num" });
    }
    text(g, 8, y - 12, mem.before, { class: "label" });
    text(g, W - 8, y - 12, mem.now, { class: "label", "text-anchor": "end" });
    if (backward) {
      text(g, W - 8, y + 26, fmtGrad(grad.now), { "text-anchor": "end", class: "grad grad-now", "data-norm": grad.now, "data-part": mem.part });
      text(g, 8, y + 26, grad.before === null ? "—" : fmtGrad(grad.before), { class: "grad grad-before", "data-norm": grad.before ?? "", "data-part": mem.part });
      text(g, W - 8, 20, `‖∂L/∂${mem.now[0]}‖`, { "text-anchor": "end", class: "grad" });
    }
  }

  exportPng() {
    if (this.key) exportSvgAsPng(this.svg, this.exportName(), 2);
  }

  exportSvg() {
    if (this.key) exportSvg(this.svg, this.exportName());
  }

  exportName() {
    const { phase, t } = this.cursor;
    return `${this.name}-${phase === "backward" ? "bptt" : "forward"}-step-${t + 1}`;
  }
}

/** ‖∂L/∂·‖ of the memory line at step t (now) and at the step before it (before: null before the first step). */
function gradAt(tr, l, t, which) {
  const a = (which === "cell" ? tr.grad.cell : tr.grad.hidden)?.[l];
  if (!a) return { now: 0, before: null };
  const prev = tr.isReverse(l) ? t + 1 : t - 1;
  return { now: a[t], before: prev >= 0 && prev < tr.T && prev >= tr.gradFrom ? a[prev] : null };
}

// ↑ / ↓ on a drawing with the keyboard's focus step through its parts; listed once in the Keys panel.
const VIEWS = new WeakMap();
const PART_KEYS = [{ keys: ["ArrowUp", "ArrowDown"], does: "the part before / after, its equation lit", act: (e) => VIEWS.get(e.currentTarget ?? e.target.closest("svg"))?.stepPart(e.key === "ArrowDown" ? 1 : -1) }];
let listed = false;
function bindPartKeys(svg) {
  if (!listed) {
    listed = true;
    onKeysIn(svg, "on the cell drawing (click it first)", PART_KEYS);
    return;
  }
  svg.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || !["ArrowUp", "ArrowDown"].includes(e.key)) return;
    e.preventDefault();
    e.stopPropagation();
    PART_KEYS[0].act(e);
  });
}
