// The cell, drawn: one step of the cell as the module draws it (the state line along the top, the gates as valves,
// each equation beside its part), lit by the trace at the cursor. Forward sweep: each valve opens with its gate's
// activation (the wide slot: the mean over the units; the narrow purple one: the selected unit), each arrow is as
// wide as what it carries (the mean |value|; the purple line inside it: the selected unit's), and the numbers stand
// beside the equations. BPTT sweep: the gradient instead, along the line that carries memory back (the LSTM's c, the
// GRU's, the RNN's and the minGRU's h, S6's state): ‖∂L/∂·‖ at both ends, and how much the gate on the way passes back.
//
// A cell is a description (CELLS below): its quantities, the nodes and arrows of its drawing, its equations and its
// memory line, made with a few builders (gate, box, op, line, memoryLine, gateBus) on the drawing's rows. A new cell is
// one more entry; the code draws any of them. With several traces (a compare
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
    ...(mem.passing ? [{ part: mem.gate, passing: mem.passing }] : []),
    { part: mem.part, text: `‖∂L/∂${mem.before}‖`, grad: -1 },
    { part: mem.part, text: `‖∂L/∂${mem.before}‖ ÷ ‖∂L/∂${mem.now}‖`, ratio: true },
    ...(mem.grad !== "hidden" ? [{ part: "hidden", text: "‖∂L/∂hₜ‖", grad: 0, of: "hidden" }] : []),
  ];
}

// The drawing's rows (user units): the memory line along the top, the ops between it and the gates, the gates,
// the bus under them that carries what the gates read.
const TOP = 40;
const MID = 95;
const GATE_Y = 150;
const BUS_Y = 225;

/** A gate at x: a valve opened by the trace's gate `id` (its torch name), `label` beside it; more: part, open. */
const gate = (x, id, label, more = {}) => ({ id, kind: "valve", x, y: GATE_Y, q: id, label, ...more });
/** A box (a tanh, a linear map, exp(ΔA)) at x carrying q: q null, a quantity the trace does not have (drawn blank). */
const box = (x, id, label, { y = GATE_Y, w = 46, h = 46, q = id, ...more } = {}) => ({ id, kind: "squash", x, y, w, h, label, q, ...more });
/** An operation on the lines (×, +, 1−); part: the equation it belongs to. */
const op = (id, sym, x, y, part) => ({ id, kind: "op", op: sym, x, y, part });
/** An arrow through pts in part, carrying q (none: nothing of its own); more: memory ("before" / "now"), head. */
const line = (pts, part, q = null, more = {}) => ({ pts, part, ...(q ? { q } : {}), ...more });
/** A vertical arrow at x from y0 to y1. */
const up = (x, y0, y1, part, q = null, more = {}) => line([[x, y0], [x, y1]], part, q, more);

/** The memory line along the top: `before` into the keep × at keepX, what is kept on to the + at addX, the new
 * state out to the right; qs: [before, kept, now] (null: not in the trace). The gradient of the BPTT sweep runs
 * along it. */
function memoryLine(keepX, addX, [before, kept, now], part) {
  return [
    line([[20, TOP], [keepX - 13, TOP]], part, before, { memory: "before" }),
    line([[keepX + 13, TOP], [addX - 13, TOP]], part, kept, { memory: "now" }),
    line([[addX + 13, TOP], [580, TOP]], part, now, { memory: "now" }),
  ];
}

/** The bus under the gates, to x = `to`: [hₜ₋₁, xₜ] (reads "h_prev": it carries hₜ₋₁'s values), or xₜ alone (reads
 * null: the gates have no hₜ₋₁ and no U to read it with); a stub up to each gate at xs, xₜ coming in at x = 70. */
function gateBus(xs, { reads = "h_prev", to = Math.max(...xs) } = {}) {
  return [
    line([[reads ? 20 : 70, BUS_Y], [to, BUS_Y]], "bus", reads, { head: false }),
    ...xs.map((x) => up(x, BUS_Y, GATE_Y + 23, "bus")),
    up(70, 262, BUS_Y, "bus"),
  ];
}

/** The labels at the memory line's two ends, the bus's hₜ₋₁ (if it carries it) and xₜ. */
const ends = (before, now, reads = true) => [
  [before, 20, TOP - 12, "start"],
  [now, 580, TOP - 12, "end"],
  ...(reads ? [["hₜ₋₁", 20, BUS_Y - 12, "start"]] : []),
  ["xₜ", 80, 262, "start"],
];

// Δ is no fraction: its valve opens 1 − e^(−Δ), what one step of exp(ΔA) takes from a state number whose A is −1.
const stepOpening = (x) => 1 - Math.exp(-x);

// minGRU's and minLSTM's state: what the gate keeps of hₜ₋₁ and what it writes (hₜ minus what it kept; the trace has
// hₜ and the gates, not h̃ₜ, so the write is read off hₜ rather than z ⊙ h̃ recomputed).
const keepAndWrite = (v, retain) => {
  const keep = mul(retain, v.h_prev);
  return { keep, write: v.h.map((h, i) => h - keep[i]) };
};

/**
 * Each cell: `derive(v)` adds the products the drawing carries to v (hₜ, hₜ₋₁, cₜ, cₜ₋₁ and each gate by its torch
 * name, per unit); nodes (valve: a gate; squash: a box; op: × or +), arrows (pts in user units, q: what they carry),
 * labels, equations (q: the quantity whose mean and unit value stand beside it; none: the trace does not have it) and
 * the memory line: its part, the gradient it carries back (the trace's grad.cell or grad.hidden), the gate on it
 * (kept lit in the BPTT sweep) and what that gate passes back (passing: its quantity and its name).
 */
export const CELLS = {
  rnn: {
    name: "RNN",
    derive: () => ({}),
    nodes: [box(300, "tanh", "tanh", { w: 70, q: "h", part: "hidden", memory: true })],
    arrows: [
      line([[20, BUS_Y], [300, BUS_Y], [300, GATE_Y + 23]], "carry", "h_prev", { memory: "before" }),
      line([[300, GATE_Y - 23], [300, TOP], [580, TOP]], "hidden", "h", { memory: "now" }),
      up(90, 262, BUS_Y, "bus"),
    ],
    labels: [
      ["hₜ₋₁", 20, BUS_Y - 12, "start"],
      ["hₜ", 580, TOP - 12, "end"],
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
      gate(160, "forget", "fₜ"),
      gate(240, "input", "iₜ"),
      box(320, "candidate", "tanh", { under: "c̃ₜ" }),
      gate(410, "output", "oₜ"),
      box(490, "tanh_c", "tanh", { y: MID, w: 56, h: 30, part: "hidden" }),
      op("keep", "×", 160, TOP, "forget"),
      op("write", "×", 320, MID, "cell"),
      op("add", "+", 320, TOP, "cell"),
      op("emit", "×", 490, GATE_Y, "hidden"),
    ],
    arrows: [
      ...memoryLine(160, 320, ["c_prev", "fc", "c"], "cell"),
      up(160, 127, 53, "forget", "forget"),
      line([[240, 127], [240, MID], [307, MID]], "input", "input"),
      up(320, 127, 108, "candidate", "candidate"),
      up(320, 82, 53, "cell", "ig"),
      up(490, TOP, 80, "hidden", "c"),
      up(490, 110, 137, "hidden", "tanh_c"),
      line([[433, GATE_Y], [477, GATE_Y]], "output", "output"),
      line([[490, 163], [490, BUS_Y], [580, BUS_Y]], "hidden", "h"),
      ...gateBus([160, 240, 320, 410]),
    ],
    labels: [...ends("cₜ₋₁", "cₜ"), ["hₜ", 580, BUS_Y - 12, "end"]],
    equations: [
      { part: "forget", text: "fₜ = σ(W_f xₜ + U_f hₜ₋₁ + b_f)", q: "forget" },
      { part: "input", text: "iₜ = σ(W_i xₜ + U_i hₜ₋₁ + b_i)", q: "input" },
      { part: "candidate", text: "c̃ₜ = tanh(W_c xₜ + U_c hₜ₋₁ + b_c)", q: "candidate" },
      { part: "output", text: "oₜ = σ(W_o xₜ + U_o hₜ₋₁ + b_o)", q: "output" },
      { part: "cell", text: "cₜ = fₜ ⊙ cₜ₋₁ + iₜ ⊙ c̃ₜ", q: "c" },
      { part: "hidden", text: "hₜ = oₜ ⊙ tanh(cₜ)", q: "h" },
    ],
    memory: { part: "cell", grad: "cell", now: "cₜ", before: "cₜ₋₁", gate: "forget", passing: { q: "forget", label: "fₜ" }, passes: "∂L/∂cₜ₋₁ = fₜ ⊙ ∂L/∂cₜ + …", op: "×" },
  },
  gru: {
    name: "GRU",
    derive: (v) => ({ zh: mul(v.update, v.h_prev), one_minus_z: oneMinus(v.update), zn: mul(oneMinus(v.update), v.candidate) }),
    nodes: [
      gate(150, "update", "zₜ"),
      box(300, "candidate", "tanh", { under: "h̃ₜ" }),
      gate(410, "reset", "rₜ"),
      op("keep", "×", 150, TOP, "update"),
      op("flip", "1−", 225, MID, "update"),
      op("write", "×", 300, MID, "hidden"),
      op("add", "+", 300, TOP, "hidden"),
    ],
    arrows: [
      ...memoryLine(150, 300, ["h_prev", "zh", "h"], "hidden"),
      up(150, 127, 53, "update", "update"),
      line([[150, MID], [211, MID]], "update", "update", { head: false }),
      line([[239, MID], [287, MID]], "update", "one_minus_z"),
      up(300, 127, 108, "candidate", "candidate"),
      up(300, 82, 53, "hidden", "zn"),
      line([[387, GATE_Y], [323, GATE_Y]], "reset", "reset"),
      ...gateBus([150, 300, 410]),
    ],
    labels: [...ends("hₜ₋₁", "hₜ"), ["rₜ ⊙ hₜ₋₁", 330, 138, "start"]],
    equations: [
      { part: "reset", text: "rₜ = σ(W_r xₜ + U_r hₜ₋₁ + b_r)", q: "reset" },
      { part: "update", text: "zₜ = σ(W_z xₜ + U_z hₜ₋₁ + b_z)", q: "update" },
      { part: "candidate", text: "h̃ₜ = tanh(W xₜ + U(rₜ ⊙ hₜ₋₁) + b)", q: "candidate" },
      { part: "hidden", text: "hₜ = (1 − zₜ) ⊙ h̃ₜ + zₜ ⊙ hₜ₋₁", q: "h" },
    ],
    memory: { part: "hidden", grad: "hidden", now: "hₜ", before: "hₜ₋₁", gate: "update", passing: { q: "update", label: "zₜ" }, passes: "∂L/∂hₜ₋₁ = zₜ ⊙ ∂L/∂hₜ + …", op: "×" },
  },
  // The linear recurrences (issue 28): gates that read xₜ alone, so hₜ = aₜ ⊙ hₜ₋₁ + bₜ and the gradient back is
  // aₜ ⊙ ∂L/∂hₜ, nothing else: no U, no tanh′. Their h̃ₜ is linear (no tanh) and not in the trace (drawn blank).
  mingru: {
    name: "minGRU",
    derive: (v) => ({ one_minus_z: oneMinus(v.update), ...keepAndWrite(v, oneMinus(v.update)) }),
    nodes: [
      gate(150, "update", "zₜ"),
      box(300, "candidate", "linear", { w: 66, q: null, under: "h̃ₜ" }),
      op("keep", "×", 150, TOP, "update"),
      op("flip", "1−", 150, MID, "update"),
      op("write", "×", 300, MID, "write"),
      op("add", "+", 300, TOP, "hidden"),
    ],
    arrows: [
      ...memoryLine(150, 300, ["h_prev", "keep", "h"], "hidden"),
      up(150, 127, 108, "update", "update"),
      up(150, 82, 53, "update", "one_minus_z"),
      line([[173, GATE_Y], [225, GATE_Y], [225, MID], [287, MID]], "update", "update"),
      up(300, 127, 108, "candidate"),
      up(300, 82, 53, "write", "write"),
      ...gateBus([150, 300], { reads: null }),
    ],
    labels: [...ends("hₜ₋₁", "hₜ", false), ["gates read xₜ only: no U", 330, 236, "start"]],
    equations: [
      { part: "update", text: "zₜ = σ(W_z xₜ + b_z)", q: "update" },
      { part: "candidate", text: "h̃ₜ = W_h xₜ + b_h" },
      { part: "write", text: "zₜ ⊙ h̃ₜ = hₜ − (1 − zₜ) ⊙ hₜ₋₁", q: "write" },
      { part: "hidden", text: "hₜ = (1 − zₜ) ⊙ hₜ₋₁ + zₜ ⊙ h̃ₜ", q: "h" },
    ],
    memory: { part: "hidden", grad: "hidden", now: "hₜ", before: "hₜ₋₁", gate: "update", passing: { q: "one_minus_z", label: "1 − zₜ" }, passes: "∂L/∂hₜ₋₁ = (1 − zₜ) ⊙ ∂L/∂hₜ + …", op: "×" },
  },
  minlstm: {
    name: "minLSTM",
    derive: (v) => keepAndWrite(v, v.forget),
    nodes: [
      gate(150, "forget", "f′ₜ"),
      gate(225, "input", "i′ₜ"),
      box(300, "candidate", "linear", { w: 66, q: null, under: "h̃ₜ" }),
      op("keep", "×", 150, TOP, "forget"),
      op("write", "×", 300, MID, "write"),
      op("add", "+", 300, TOP, "hidden"),
    ],
    arrows: [
      ...memoryLine(150, 300, ["h_prev", "keep", "h"], "hidden"),
      up(150, 127, 53, "forget", "forget"),
      line([[225, 127], [225, MID], [287, MID]], "input", "input"),
      up(300, 127, 108, "candidate"),
      up(300, 82, 53, "write", "write"),
      ...gateBus([150, 225, 300], { reads: null }),
    ],
    labels: [...ends("hₜ₋₁", "hₜ", false), ["gates read xₜ only: no U", 330, 236, "start"]],
    equations: [
      { part: "forget", text: "f′ₜ = fₜ ÷ (fₜ + iₜ), fₜ = σ(W_f xₜ + b_f)", q: "forget" },
      { part: "input", text: "i′ₜ = iₜ ÷ (fₜ + iₜ), iₜ = σ(W_i xₜ + b_i)", q: "input" },
      { part: "candidate", text: "h̃ₜ = W_h xₜ + b_h" },
      { part: "write", text: "i′ₜ ⊙ h̃ₜ = hₜ − f′ₜ ⊙ hₜ₋₁", q: "write" },
      { part: "hidden", text: "hₜ = f′ₜ ⊙ hₜ₋₁ + i′ₜ ⊙ h̃ₜ", q: "h" },
    ],
    memory: { part: "hidden", grad: "hidden", now: "hₜ", before: "hₜ₋₁", gate: "forget", passing: { q: "forget", label: "f′ₜ" }, passes: "∂L/∂hₜ₋₁ = f′ₜ ⊙ ∂L/∂hₜ + …", op: "×" },
  },
  // S6: per channel a state of N numbers (hₜ is D × N), read out by Cₜ. The trace has Δₜ and yₜ (its "h"); Ā, B̄,
  // C and the state itself are not in it (A and D are weights): their boxes are drawn blank, their equations bare.
  s6: {
    name: "S6",
    derive: () => ({}),
    nodes: [
      gate(150, "step", "Δₜ", { open: stepOpening }),
      box(150, "retain", "exp(ΔA)", { y: MID, w: 84, h: 30, q: null, memory: true }),
      box(300, "write_in", "Δ Bₜ", { w: 60, q: null, part: "write", under: "B̄ₜ" }),
      box(490, "readout", "Cₜ", { y: MID, w: 46, h: 30, q: null, part: "hidden" }),
      op("keep", "×", 150, TOP, "retain"),
      op("write", "×", 300, MID, "write"),
      op("add", "+", 300, TOP, "state"),
      op("out", "+", 490, GATE_Y, "hidden"),
    ],
    arrows: [
      ...memoryLine(150, 300, [null, null, null], "state"),
      up(150, 127, 110, "step", "step"),
      up(150, 80, 53, "retain"),
      line([[173, GATE_Y], [270, GATE_Y]], "step", "step"),
      up(300, 127, 108, "write"),
      line([[380, BUS_Y], [380, MID], [313, MID]], "write"),
      up(300, 82, 53, "write"),
      up(490, TOP, 80, "hidden"),
      up(490, 110, 137, "hidden"),
      line([[440, BUS_Y], [440, GATE_Y], [477, GATE_Y]], "hidden"),
      line([[503, GATE_Y], [580, GATE_Y]], "hidden", "h"),
      ...gateBus([150], { reads: null, to: 440 }),
    ],
    labels: [
      ...ends("hₜ₋₁", "hₜ (D × N)", false),
      ["Āₜ", 100, 101, "end"],
      ["yₜ", 580, GATE_Y - 12, "end"],
      ["D xₜ", 448, 200, "start"],
    ],
    equations: [
      { part: "step", text: "Δₜ = softplus(W_Δ xₜ + b_Δ)", q: "step" },
      { part: "retain", text: "Āₜ = exp(Δₜ A), A < 0" },
      { part: "write", text: "B̄ₜ = Δₜ Bₜ, Bₜ = W_B xₜ" },
      { part: "state", text: "hₜ = Āₜ ⊙ hₜ₋₁ + B̄ₜ xₜ" },
      { part: "hidden", text: "yₜ = Cₜ hₜ + D ⊙ xₜ", q: "h" },
    ],
    memory: { part: "state", grad: "hidden", now: "hₜ", before: "hₜ₋₁", gate: "step", passing: { q: "step", label: "Δₜ", says: "Āₜ = e^(ΔₜA), Δ:" }, passes: "∂L/∂hₜ₋₁ = Āₜ ⊙ ∂L/∂hₜ + …", op: "×" },
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
      const opening = n.open ?? ((x) => x); // a gate's value is its opening; S6's Δ is mapped to one
      el("rect", { class: "frame", x: n.x - 23, y: n.y - 23, width: 46, height: 46, rx: 4 }, ng);
      const open = SLOT * opening(mean);
      const unitOpen = SLOT * opening(a[u]);
      el("rect", { class: "slot", x: n.x - 18, y: (n.y - open / 2).toFixed(3), width: 26, height: open.toFixed(3), fill: color("gate", opening(mean)), "data-gate": n.q, "data-mean": mean, "data-full": SLOT }, ng);
      el("rect", { class: "slot-unit", x: n.x + 11, y: (n.y - unitOpen / 2).toFixed(3), width: 7, height: unitOpen.toFixed(3), fill: ACCENT, "data-gate": n.q, "data-unit": a[u], "data-full": SLOT }, ng);
      text(ng, n.x + 27, n.y + 45, n.label, { class: "glabel" });
    } else if (n.kind === "squash") {
      // a box whose quantity the trace has is coloured by its mean; one it has not (S6's Ā, a minGRU's h̃) stays blank
      const mean = n.q ? meanOf(v[n.q]) : null;
      el("rect", { class: "squash", x: n.x - n.w / 2, y: n.y - n.h / 2, width: n.w, height: n.h, rx: 6, fill: mean === null ? "#f3f4f6" : diverging(mean), ...(mean === null ? {} : { "data-mean": mean }) }, ng);
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
        const { q, label, says = `${label} passes back:` } = r.passing;
        const a = v[q];
        Object.assign(row.dataset, { q, mean: String(meanOf(a)), unit: String(a[u]) });
        text(row, EQ_X + 24, y, `${says} mean ${fmt(meanOf(a))}, unit ${u} ${fmt(a[u])}`, { class: "num num-passing" });
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
      this.node(g, { ...desc.nodes.find((n) => n.id === mem.gate), x: opX, y: y + 48, label: "" }, v, u, false);
      el("path", { d: `M${opX} ${y + 25} L${opX} ${y + 13}`, class: "arrow", "stroke-width": 2, "data-part": mem.gate }, g);
      const { q, label: name } = mem.passing;
      const a = v[q];
      const line = el("g", { class: "eq", "data-part": mem.gate, "data-q": q, "data-mean": meanOf(a), "data-unit": a[u] }, g);
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
