// The hidden-state trajectory h_1 … h_T projected onto its first two principal components (computed here,
// by power iteration on the H × H covariance). The path is drawn once; the current step and its recent
// tail are an SVG overlay moved per frame.

import { ACCENT } from "../colors.js";
import { Plotly, baseLayout, isPresenter, makePlot, plotConfig } from "../plots.js";
import { showToken } from "../trace.js";
import { View } from "./base.js";

const TAIL = 12;
const NS = "http://www.w3.org/2000/svg";

/** Top two principal components of the rows of X (n × H, row-major): {points: Float64Array(2n), explained}. */
export function pca2(X, n, H) {
  const stride = Math.max(1, Math.ceil(n / 3000));
  const mean = new Float64Array(H);
  let m = 0;
  for (let i = 0; i < n; i += stride, m++) for (let u = 0; u < H; u++) mean[u] += X[i * H + u];
  for (let u = 0; u < H; u++) mean[u] /= Math.max(1, m);
  const C = new Float64Array(H * H);
  const row = new Float64Array(H);
  for (let i = 0; i < n; i += stride) {
    for (let u = 0; u < H; u++) row[u] = X[i * H + u] - mean[u];
    for (let a = 0; a < H; a++) {
      const ra = row[a];
      if (ra === 0) continue;
      const off = a * H;
      for (let b = a; b < H; b++) C[off + b] += ra * row[b];
    }
  }
  for (let a = 0; a < H; a++) for (let b = 0; b < a; b++) C[a * H + b] = C[b * H + a];
  let total = 0;
  for (let a = 0; a < H; a++) total += C[a * H + a];
  const vecs = [];
  const vals = [];
  for (let k = 0; k < 2; k++) {
    let v = new Float64Array(H).map((_, i) => Math.sin(i * 12.9898 + k * 78.233) + 1.5);
    let lambda = 0;
    for (let it = 0; it < 100; it++) {
      const w = new Float64Array(H);
      for (let a = 0; a < H; a++) {
        let s = 0;
        const off = a * H;
        for (let b = 0; b < H; b++) s += C[off + b] * v[b];
        w[a] = s;
      }
      for (const p of vecs) {
        let d = 0;
        for (let a = 0; a < H; a++) d += w[a] * p[a];
        for (let a = 0; a < H; a++) w[a] -= d * p[a];
      }
      let norm = 0;
      for (let a = 0; a < H; a++) norm += w[a] * w[a];
      norm = Math.sqrt(norm);
      if (norm < 1e-12) break;
      lambda = norm;
      for (let a = 0; a < H; a++) w[a] /= norm;
      v = w;
    }
    vecs.push(v);
    vals.push(lambda);
  }
  const points = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < 2; k++) {
      let s = 0;
      for (let u = 0; u < H; u++) s += (X[i * H + u] - mean[u]) * vecs[k][u];
      points[2 * i + k] = s;
    }
  }
  return { points, explained: vals.map((l) => (total > 0 ? l / total : 0)) };
}

export class PcaView extends View {
  constructor(root, { name = "hidden-trajectory-pca", caption }) {
    super(root, { name, onScreen: true });
    this.caption = caption;
    this.gd = makePlot(root, name, "plot-pca");
    this.svg = document.createElementNS(NS, "svg");
    this.svg.setAttribute("class", "overlay-svg");
    this.tail = document.createElementNS(NS, "polyline");
    this.tail.setAttribute("fill", "none");
    this.tail.setAttribute("stroke", ACCENT);
    this.tail.setAttribute("stroke-width", "3");
    this.tail.setAttribute("stroke-linejoin", "round");
    this.dot = document.createElementNS(NS, "circle");
    this.dot.setAttribute("r", "8");
    this.dot.setAttribute("fill", ACCENT);
    this.dot.setAttribute("stroke", "#fff");
    this.dot.setAttribute("stroke-width", "2");
    this.label = document.createElementNS(NS, "text");
    this.label.setAttribute("class", "pca-label");
    this.svg.append(this.tail, this.dot, this.label);
    this.svg.style.display = "none"; // until the plot is drawn
    this.gd.parentElement.append(this.svg);
    this.gd.__overlay = { shapes: () => this.shapes() };
    this.built = null; // what the path is drawn from: {trace, layer, steps}
    this.timer = null;
  }

  /** Drawn once two steps are in, again as more arrive (at most every half second) and for another layer. */
  drawKey() {
    const tr = this.trace;
    return tr.steps >= 2 && tr.drawable ? [tr, this.layer, tr.steps] : null;
  }

  prepare(last, data) {
    const tr = this.trace;
    const more = last && last[0] === tr && last[1] === this.layer && !data.relayout;
    if (!more) return this.build();
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.build();
      this.render();
    }, tr.steps === tr.T ? 0 : 500);
  }

  build() {
    const tr = this.trace;
    const n = tr.steps;
    const { points, explained } = pca2(tr.layers[this.layer].hidden, n, tr.H);
    this.points = points;
    const x = new Array(n);
    const y = new Array(n);
    for (let i = 0; i < n; i++) {
      x[i] = points[2 * i];
      y[i] = points[2 * i + 1];
    }
    const text = tr.tokens.slice(0, n).map((tok, i) => `step ${i + 1} “${showToken(tok)}”`);
    const data = [
      {
        type: "scatter",
        mode: n > 400 ? "lines" : "lines+markers",
        x,
        y,
        text,
        line: { color: "rgba(100,116,139,0.45)", width: 1.5 },
        marker: { size: isPresenter() ? 8 : 6, color: [...Array(n).keys()], colorscale: [[0, "#cbd5e1"], [1, "#1e3a8a"]], showscale: false },
        hovertemplate: "%{text}<extra></extra>",
      },
    ];
    const pct = (v) => `${(100 * v).toFixed(0)} %`;
    const layout = baseLayout({
      height: 340,
      margin: { l: 56, r: 16, t: 10, b: 46 },
      xaxis: { title: { text: `PC 1 (${pct(explained[0])} of variance)` }, zeroline: false },
      yaxis: { title: { text: `PC 2 (${pct(explained[1])})` }, zeroline: false, scaleanchor: undefined },
    });
    this.gd.style.height = "340px";
    Plotly.react(this.gd, data, layout, plotConfig(this.name));
    if (!this.bound) {
      this.gd.on("plotly_afterplot", () => this.measure());
      this.bound = true;
    }
    this.built = { trace: tr, layer: this.layer, steps: n };
    if (this.caption) this.caption.textContent = `${tr.bidirectional ? tr.layerName(this.layer) : `Layer ${this.layer + 1}`}: the two principal directions hold ${pct(explained[0] + explained[1])} of the variance of h_t over this input.`;
    this.measure();
  }

  measure() {
    const fl = this.gd._fullLayout;
    if (!fl?.xaxis) return;
    const xa = fl.xaxis;
    const ya = fl.yaxis;
    this.px = (v) => xa._offset + xa.l2p(v);
    this.py = (v) => ya._offset + ya.l2p(v);
    this.svg.style.display = "";
    this.svg.setAttribute("width", String(fl.width));
    this.svg.setAttribute("height", String(fl.height));
    this.lastKey = null;
    this.render();
  }

  render() {
    const tr = this.trace;
    if (!this.built || !this.px || !tr || this.built.trace !== tr) return;
    const n = this.built.steps;
    const t = Math.min(this.cursor.t, n - 1);
    const key = `${t}|${n}`;
    if (key === this.lastKey) return;
    this.lastKey = key;
    const P = this.points;
    const pts = [];
    for (let i = Math.max(0, t - TAIL); i <= t; i++) pts.push(`${this.px(P[2 * i]).toFixed(1)},${this.py(P[2 * i + 1]).toFixed(1)}`);
    this.tail.setAttribute("points", pts.join(" "));
    const cx = this.px(P[2 * t]);
    const cy = this.py(P[2 * t + 1]);
    this.dot.setAttribute("cx", cx.toFixed(1));
    this.dot.setAttribute("cy", cy.toFixed(1));
    this.label.setAttribute("x", (cx + 12).toFixed(1));
    this.label.setAttribute("y", (cy - 10).toFixed(1));
    this.label.textContent = `${t + 1} “${showToken(tr.tokens[t] ?? "")}”`;
  }

  shapes() {
    if (!this.built) return [];
    const t = Math.min(this.cursor.t, this.built.steps - 1);
    const P = this.points;
    const x = P[2 * t];
    const y = P[2 * t + 1];
    const out = [];
    for (let i = Math.max(0, t - TAIL); i < t; i++) {
      out.push({ type: "line", x0: P[2 * i], y0: P[2 * i + 1], x1: P[2 * i + 2], y1: P[2 * i + 3], line: { color: ACCENT, width: 3 } });
    }
    const fl = this.gd._fullLayout;
    const rx = (fl.xaxis.range[1] - fl.xaxis.range[0]) / 90;
    const ry = (fl.yaxis.range[1] - fl.yaxis.range[0]) / 60;
    out.push({ type: "circle", x0: x - rx, x1: x + rx, y0: y - ry, y1: y + ry, fillcolor: ACCENT, line: { color: "#fff", width: 2 } });
    return out;
  }
}
