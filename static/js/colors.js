// Colour scales, shared by canvas/SVG views and Plotly so both read the same.
//   diverging: states and candidate values in [−1, 1] (blue negative, white 0, red positive)
//   gate: sigmoid gates in [0, 1] (viridis: closed dark, open bright)
//   grad: log10 of a gradient norm (pale = vanished, dark red = large)

export const DIVERGING = [
  [0, "#0571b0"],
  [0.25, "#92c5de"],
  [0.5, "#f7f7f7"],
  [0.75, "#f4a582"],
  [1, "#ca0020"],
];
export const GATE = [
  [0, "#440154"],
  [0.25, "#3b528b"],
  [0.5, "#21918c"],
  [0.75, "#5ec962"],
  [1, "#fde725"],
];
export const GRAD = [
  [0, "#fff7bc"],
  [0.25, "#fec44f"],
  [0.5, "#fe9929"],
  [0.75, "#d95f0e"],
  [1, "#7f2704"],
];
// One palette, one meaning per colour, on every page: orange is a gradient (and nothing else), green is the
// target (the class, or the next token, that the loss L is measured against), purple is the time cursor; a class
// keeps its own colour in the bars and in the lines; each cell type keeps its colour in every chart.
export const ACCENT = "#7c3aed"; // the time cursor
export const TARGET = "#15803d"; // = --good in the CSS
export const GRAD_LINES = ["#d95f0e", "#7f2704", "#fe9929", "#a63603"]; // gradient norms: shades of the GRAD ramp
export const CELL_COLORS = { rnn: "#c2185b", lstm: "#0e7490", gru: "#3730a3", mingru: "#b45309", minlstm: "#4d7c0f", s6: "#44403c" }; // = .cell-* in the CSS
export const CLASS_COLORS = ["#1f6fb4", "#9d174d", "#6a51a3", "#8c510a", "#0e7490", "#525252", "#737000", "#1e3a8a"];
export const LINE_COLORS = ["#1f6fb4", "#c2185b", "#6a51a3", "#8c510a", "#0e7490", "#525252", "#737000", "#1e3a8a"];
export const classColor = (i) => CLASS_COLORS[i % CLASS_COLORS.length];

function hex(c) {
  return [1, 3, 5].map((i) => Number.parseInt(c.slice(i, i + 2), 16));
}

function lut(stops, n = 256) {
  const rgb = stops.map(([, c]) => hex(c));
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    const x = i / (n - 1);
    let k = 0;
    while (k < stops.length - 2 && x > stops[k + 1][0]) k++;
    const f = (x - stops[k][0]) / (stops[k + 1][0] - stops[k][0]);
    const c = rgb[k].map((v, j) => Math.round(v + f * (rgb[k + 1][j] - v)));
    out[i] = `rgb(${c[0]},${c[1]},${c[2]})`;
  }
  return out;
}

const LUTS = { diverging: lut(DIVERGING), gate: lut(GATE), grad: lut(GRAD) };

/** The same scales as packed 0xAABBGGRR integers, for writing pixels (ImageData) without colour strings. */
const PACKED = Object.fromEntries(
  Object.entries(LUTS).map(([k, l]) => [
    k,
    Uint32Array.from(l, (c) => {
      const [r, g, b] = c.match(/\d+/g).map(Number);
      return (0xff << 24) | (b << 16) | (g << 8) | r;
    }),
  ]),
);

export function packed(scale, x) {
  const l = PACKED[scale];
  return l[Math.round((Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0) * (l.length - 1))];
}

export const packRgb = (r, g, b) => ((0xff << 24) | (b << 16) | (g << 8) | r) >>> 0;

/** Colour of x in [0, 1] on a scale. */
export function color(scale, x) {
  const l = LUTS[scale];
  const i = Math.round((Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0) * (l.length - 1));
  return l[i];
}

/** v in [−max, max] on the diverging scale. */
export const diverging = (v, max = 1) => color("diverging", 0.5 + v / (2 * max));

/** A gradient norm on the log scale [lo, hi] (log10). */
export function gradColor(v, [lo, hi]) {
  if (!(v > 0)) return LUTS.grad[0];
  return color("grad", (Math.log10(v) - lo) / (hi - lo));
}

/** Black or white text, whichever reads on an rgb(...) background. */
export function inkOn(rgb) {
  const [r, g, b] = rgb.match(/\d+/g).map(Number);
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#111" : "#fff";
}

/** Gates that are tanh (candidate values) use the diverging scale; sigmoid gates the gate scale. */
export const isTanhGate = (name) => name === "candidate";

export function fmtNorm(v) {
  if (!(v > 0)) return "0";
  return v >= 0.01 && v < 1000 ? v.toPrecision(3) : v.toExponential(1).replace("e", "e");
}

const SUPERSCRIPT = { "-": "⁻", 0: "⁰", 1: "¹", 2: "²", 3: "³", 4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷", 8: "⁸", 9: "⁹" };
const SUBSCRIPT = ["₀", "₁", "₂", "₃", "₄", "₅", "₆", "₇", "₈", "₉"];

/** 10 to a (rounded) power, written 10⁻⁵. */
export const pow10 = (e) => `10${String(Math.round(e) || 0).replace(/./g, (c) => SUPERSCRIPT[c] ?? c)}`;

/** n in subscript digits: h₁₂ */
export const sub = (n) => String(n).replace(/\d/g, (d) => SUBSCRIPT[d]);
