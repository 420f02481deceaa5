// The speech family's views (the panel registry's "sound", "listening", "posteriors", "collapse", "ctcBeams" and
// "ctcSweep"), fed the trace as static/js/speech.js's readTrace gives it and the page's cursor (t: a step of the
// network, S frames of the spectrogram). Drawings are canvases (hundreds of frames, redrawn at every cursor move
// only where the cursor is); their words are HTML beside them, at the page's type sizes.

import { ACCENT, CELL_COLORS, GRAD_LINES, color, fmtNorm, gradColor, packed, pow10 } from "../colors.js";
import { linkStyles, node, paintColumn } from "../dom.js";
import { sized } from "../plots.js";
import { View } from "./base.js";
import { TextBeamsView } from "./beams.js";

/** The speech views' own styles (static/css/speech.css), linked once by the first of them on a page or a stage. */
const styled = () => linkStyles("speech");

/** A canvas filling its parent's width at `height` CSS px, sharp on any screen; its 2D context in CSS px. */
function canvas(parent, height, label) {
  const c = node("canvas", "speech-canvas");
  c.setAttribute("role", "img");
  c.setAttribute("aria-label", label);
  parent.append(c);
  return {
    el: c,
    size() {
      const w = Math.max(200, Math.floor(parent.clientWidth || 600));
      const h = typeof height === "function" ? height() : height;
      const dpr = window.devicePixelRatio || 1;
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
      c.style.width = `${w}px`;
      c.style.height = `${h}px`;
      const ctx = c.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      return { ctx, w, h };
    },
  };
}

/** The page's small type size in px (presenter mode's is larger), for the words a canvas has to draw. */
const typePx = () => Math.max(14, parseFloat(getComputedStyle(document.documentElement).getPropertyValue("--fs-small")) || 14);

/** A copy of a canvas' pixels, to put back under the cursor at every move. */
function snapshot(c) {
  const copy = document.createElement("canvas");
  copy.width = c.width;
  copy.height = c.height;
  copy.getContext("2d").drawImage(c, 0, 0);
  return copy;
}

/** The snapshot drawn back (in device pixels), the context left in CSS px. */
function restore(c, copy) {
  const ctx = c.getContext("2d");
  const dpr = c.width / (c.clientWidth || c.width);
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.drawImage(copy, 0, 0);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return ctx;
}

const presenter = () => document.documentElement.classList.contains("presenter");

/** The steps a cursor at t covers in seconds: [start, end). */
const stepTime = (tr, t) => [t * tr.stepSeconds, (t + 1) * tr.stepSeconds];

/** The character a class writes, as the page shows it ("·" the blank, "␣" the space). */
export const shownClass = (tr, k) => (k === 0 ? "·" : tr.classes[k] === " " ? "␣" : (tr.classes[k] ?? "?"));

/**
 * The sound on the time cursor: the waveform (the samples the page has) over the log-mel spectrogram (the server's
 * front end: the frames the network hears), the step under the cursor marked on both, and the seconds.
 */
export class SoundView extends View {
  constructor(root, { info = null } = {}) {
    super(root);
    styled();
    this.info = info;
    this.sound = null;
    root.classList.add("speech-sound");
    // a tour stage is fitted to the room's height: shorter there, so that the scene's words stay large
    this.wave = canvas(root, () => sized(presenter() ? 110 : 90, 64), "The waveform");
    this.spec = canvas(root, () => sized(presenter() ? 170 : 140, 110), "The log-mel spectrogram");
    this.base = null;
  }

  take(data) {
    super.take(data);
    if (data.sound !== undefined) this.sound = data.sound;
  }

  drawKey() {
    return this.trace ? [this.trace, this.sound, this.root.clientWidth, presenter()] : null;
  }

  prepare() {
    const tr = this.trace;
    const wave = this.wave.size();
    const spec = this.spec.size();
    this.base = { wave: this.drawWave(wave), spec: this.drawSpec(spec, tr) };
  }

  drawWave({ ctx, w, h }) {
    const samples = this.sound?.samples;
    const seconds = this.trace.duration || (samples ? samples.length / this.sound.rate : 1);
    ctx.fillStyle = "#f8fafc";
    ctx.fillRect(0, 0, w, h);
    if (samples?.length) {
      const shown = this.sound.rate * seconds;
      let peak = 1e-6;
      for (let i = 0; i < samples.length; i++) peak = Math.max(peak, Math.abs(samples[i]));
      ctx.fillStyle = "#334155";
      for (let x = 0; x < w; x++) {
        const a = Math.floor((x / w) * shown);
        const b = Math.min(samples.length, Math.floor(((x + 1) / w) * shown));
        let lo = 0;
        let hi = 0;
        for (let i = a; i < b; i++) {
          lo = Math.min(lo, samples[i]);
          hi = Math.max(hi, samples[i]);
        }
        const y0 = h / 2 - (hi / peak) * (h / 2 - 4);
        const y1 = h / 2 - (lo / peak) * (h / 2 - 4);
        ctx.fillRect(x, y0, 1, Math.max(1, y1 - y0));
      }
    }
    return snapshot(ctx.canvas);
  }

  drawSpec({ ctx, w, h }, tr) {
    const F = tr.frames.length;
    const B = tr.bands;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, w, h);
    if (F && B) {
      let lo = Infinity;
      let hi = -Infinity;
      for (const row of tr.frames) for (const v of row) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
      const img = ctx.createImageData(ctx.canvas.width, ctx.canvas.height);
      const px = new Uint32Array(img.data.buffer); // little-endian: 0xAABBGGRR, as packed() gives
      const W = ctx.canvas.width;
      const Hc = ctx.canvas.height;
      for (let y = 0; y < Hc; y++) {
        const band = Math.min(B - 1, Math.floor(((Hc - 1 - y) / Hc) * B)); // low bands at the bottom
        for (let x = 0; x < W; x++) {
          const f = Math.min(F - 1, Math.floor((x / W) * F));
          px[y * W + x] = packed("gate", (tr.frames[f][band] - lo) / (hi - lo || 1));
        }
      }
      ctx.putImageData(img, 0, 0);
    }
    return snapshot(ctx.canvas);
  }

  render() {
    const tr = this.trace;
    if (!tr || !this.base) return;
    const t = Math.min(this.cursor.t, tr.T - 1);
    const [a, b] = stepTime(tr, t);
    const seconds = tr.duration || tr.T * tr.stepSeconds;
    for (const [c, base] of [[this.wave, this.base.wave], [this.spec, this.base.spec]]) {
      const ctx = restore(c.el, base);
      const w = c.el.clientWidth;
      const h = c.el.clientHeight;
      const x0 = (a / seconds) * w;
      const x1 = Math.max(x0 + 2, (b / seconds) * w);
      ctx.fillStyle = "rgba(124, 58, 237, 0.25)";
      ctx.fillRect(x0, 0, x1 - x0, h);
      ctx.fillStyle = ACCENT;
      ctx.fillRect(x0, 0, 2, h);
    }
    if (this.info) {
      const s = (x) => x.toFixed(2);
      this.info.textContent = `Step ${t + 1} of ${tr.T}: ${s(a)}–${s(b)} s of ${s(seconds)} s · frames ${t * tr.stack + 1}–${(t + 1) * tr.stack} of ${tr.frames.length} (${tr.bands} mel bands, ${Math.round(tr.hop * 1000)} ms apart; low pitches at the bottom)`;
    }
  }
}

/**
 * The unrolled network over frames, around the cursor: the steps are too many to draw one by one, so it shows
 * `span` copies of the cell either side of the cursor, each with what it hears (its slice of the spectrogram),
 * its hidden state (the top layer, unit by unit) and what the collapse writes there; in the BPTT sweep each
 * copy takes the colour of ‖∂L/∂h_t‖. A strip above says where the window lies in the whole clip.
 */
export class ListeningView extends View {
  constructor(root, { span = 4 } = {}) {
    super(root);
    styled();
    this.span = span;
    this.where = node("div", "listen-where");
    this.minimap = node("div", "listen-minimap");
    this.window = node("span", "listen-window");
    this.minimap.append(this.window);
    this.row = node("div", "listen-row");
    root.append(this.where, this.minimap, this.row);
  }

  resize() {
    this.refresh({ relayout: true });
  }

  drawKey() {
    return this.trace ? [this.trace] : null;
  }

  prepare() {
    const tr = this.trace;
    let lo = Infinity;
    let hi = -Infinity;
    for (const g of tr.grad) if (g > 0) [lo, hi] = [Math.min(lo, Math.log10(g)), Math.max(hi, Math.log10(g))];
    this.gradRange = lo <= hi ? [lo, hi] : null;
    let f0 = Infinity;
    let f1 = -Infinity;
    for (const row of tr.frames) for (const v of row) [f0, f1] = [Math.min(f0, v), Math.max(f1, v)];
    this.frameRange = [f0, f1];
    this.cells = [];
    this.row.replaceChildren();
    for (let i = -this.span; i <= this.span; i++) {
      const arrow = i > -this.span ? node("span", "listen-arrow", "→") : null; // from the cell before
      if (arrow) this.row.append(arrow);
      const cell = node("div", `listen-cell${i === 0 ? " now" : ""}`);
      const out = node("div", "listen-out");
      const box = node("div", "listen-box");
      box.style.borderColor = CELL_COLORS[tr.cell] ?? "#334155";
      const units = node("canvas", "listen-units");
      const hear = node("canvas", "listen-hear");
      const label = node("div", "listen-t");
      box.append(units);
      cell.append(out, box, hear, label);
      this.row.append(cell);
      this.cells.push({ i, cell, out, box, units, hear, label, arrow });
    }
  }

  render() {
    const tr = this.trace;
    if (!tr?.T || !this.cells) return;
    const t = Math.min(this.cursor.t, tr.T - 1);
    const backward = this.cursor.phase === "backward";
    const top = tr.top;
    for (const c of this.cells) {
      const s = t + c.i;
      const inside = s >= 0 && s < tr.T;
      c.cell.classList.toggle("outside", !inside);
      c.arrow?.classList.toggle("outside", !inside || s === 0);
      if (!inside) {
        c.out.textContent = "";
        c.label.textContent = "";
        c.box.style.background = "";
        continue;
      }
      const k = tr.greedy[s];
      const writes = tr.emitted[s] >= 0;
      c.out.textContent = shownClass(tr, k);
      c.out.classList.toggle("writes", writes);
      c.out.title = writes ? `writes “${tr.classes[k]}”` : k === 0 ? "blank: writes nothing" : "a repeat: merged, writes nothing";
      c.label.textContent = `t=${s + 1}`;
      const g = tr.grad[s];
      c.box.style.background = backward && s >= t && g > 0 && this.gradRange ? gradColor(g, this.gradRange) : "";
      paintColumn(c.units, top?.h?.[s] ?? [], (v) => color("diverging", 0.5 + v / 2));
      const [f0, f1] = this.frameRange;
      paintFrames(c.hear, tr.frames.slice(s * tr.stack, (s + 1) * tr.stack), (v) => color("gate", (v - f0) / (f1 - f0 || 1)));
    }
    const a = Math.max(0, t - this.span);
    const b = Math.min(tr.T - 1, t + this.span);
    this.window.style.left = `${(a / tr.T) * 100}%`;
    this.window.style.width = `${Math.max(0.5, ((b - a + 1) / tr.T) * 100)}%`;
    this.where.textContent = `Steps ${a + 1}–${b + 1} of ${tr.T} (each hears ${tr.stack} frames, ${Math.round(tr.stepSeconds * 1000)} ms; h_t of the top layer${tr.directions > 1 ? ", left to right" : ""})${backward ? " · BPTT: coloured by ‖∂L/∂h_t‖" : ""}`;
  }
}

/** Frames (a few columns of bands) as a small spectrogram, low bands at the bottom. */
function paintFrames(c, frames, colorOf) {
  const B = frames[0]?.length ?? 1;
  c.width = Math.max(1, frames.length);
  c.height = B;
  const ctx = c.getContext("2d");
  frames.forEach((f, x) =>
    f.forEach((v, b) => {
      ctx.fillStyle = colorOf(v);
      ctx.fillRect(x, B - 1 - b, 1, 1);
    }),
  );
}

/**
 * CTC's posteriors y_t(k): one row per class (the blank first), one column per step, darker where likelier; the
 * best alignment of the transcript L is measured against drawn through it, and the cursor's column outlined.
 */
export class PosteriorView extends View {
  constructor(root, { info = null } = {}) {
    super(root);
    styled();
    this.info = info;
    this.wrap = node("div", "posterior-wrap");
    this.labels = node("div", "posterior-labels");
    this.plot = node("div", "posterior-plot");
    this.wrap.append(this.labels, this.plot);
    root.append(this.wrap);
    this.c = canvas(this.plot, () => this.rowsHeight(), "CTC posteriors and the alignment");
    this.base = null;
  }

  rowPx() {
    return Math.round(typePx() * 1.15);
  }

  /** The classes shown: the blank and every class the clip gives some probability, in the alphabet's order. */
  rows() {
    const tr = this.trace;
    const C = tr.probs[0]?.length ?? 0;
    const keep = [];
    for (let k = 0; k < C; k++) if (k === 0 || tr.probs.some((row) => row[k] > 0.02) || tr.alignment.includes(k)) keep.push(k);
    return keep;
  }

  rowsHeight() {
    return this.trace ? this.rows().length * this.rowPx() : 100;
  }

  drawKey() {
    return this.trace ? [this.trace, this.plot.clientWidth, presenter()] : null;
  }

  prepare() {
    const tr = this.trace;
    this.keep = this.rows();
    const rowOf = new Map(this.keep.map((k, i) => [k, i]));
    this.labels.replaceChildren(...this.keep.map((k) => node("span", "posterior-label", k === 0 ? "blank" : shownClass(tr, k))));
    for (const l of this.labels.children) l.style.height = `${this.rowPx()}px`;
    const { ctx, w, h } = this.c.size();
    const rh = this.rowPx();
    const cw = w / Math.max(1, tr.T);
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, w, h);
    tr.probs.forEach((row, t) =>
      this.keep.forEach((k, i) => {
        const p = row[k];
        const v = Math.round(255 * (1 - p));
        ctx.fillStyle = `rgb(${v},${v},${Math.round(255 - 0.6 * (255 - v))})`;
        ctx.fillRect(t * cw, i * rh, Math.ceil(cw), rh);
      }),
    );
    ctx.strokeStyle = "#e5e7eb";
    for (let i = 1; i < this.keep.length; i++) ctx.fillRect(0, i * rh, 0, 0);
    if (tr.alignment.length) {
      ctx.strokeStyle = "#dc2626";
      ctx.lineWidth = 2.5;
      ctx.beginPath();
      tr.alignment.forEach((k, t) => {
        const y = ((rowOf.get(k) ?? 0) + 0.5) * rh;
        if (t === 0) ctx.moveTo(t * cw, y);
        else ctx.lineTo(t * cw, y);
        ctx.lineTo((t + 1) * cw, y);
      });
      ctx.stroke();
    }
    this.base = snapshot(ctx.canvas);
  }

  render() {
    const tr = this.trace;
    if (!tr || !this.base) return;
    const ctx = restore(this.c.el, this.base);
    const w = this.c.el.clientWidth;
    const h = this.c.el.clientHeight;
    const t = Math.min(this.cursor.t, tr.T - 1);
    const cw = w / Math.max(1, tr.T);
    ctx.strokeStyle = ACCENT;
    ctx.lineWidth = 2;
    ctx.strokeRect(t * cw, 1, Math.max(cw, 3), h - 2);
    if (this.info) {
      const row = tr.probs[t] ?? [];
      const best = [...row.keys()].sort((a, b) => row[b] - row[a]).slice(0, 3);
      const al = tr.alignment[t];
      this.info.textContent = `Step ${t + 1}: ${best.map((k) => `${k === 0 ? "blank" : `“${shownClass(tr, k)}”`} ${(row[k] * 100).toFixed(0)} %`).join(", ")}${al !== undefined ? ` · the alignment of “${tr.target}” is at ${al === 0 ? "blank" : `“${shownClass(tr, al)}”`}` : ""}${tr.loss !== null ? ` · L = −log p = ${tr.loss.toFixed(3)}` : ""}`;
    }
  }
}

/**
 * The collapse rule reading the greedy path up to the cursor: the likeliest class at every step so far, then the
 * text it makes (repeats merged, blanks dropped), growing as the cursor moves.
 */
export class CollapseView extends View {
  constructor(root) {
    super(root);
    styled();
    this.path = node("div", "collapse-path");
    this.text = node("div", "collapse-text");
    this.text.setAttribute("aria-live", "polite");
    root.append(this.path, this.text);
  }

  render() {
    const tr = this.trace;
    if (!tr) return;
    const end = this.cursor.phase === "backward" ? tr.T - 1 : Math.min(this.cursor.t, tr.T - 1);
    const from = Math.max(0, end - 29);
    const marks = [];
    if (from > 0) marks.push(node("span", "collapse-more", "…"));
    for (let s = from; s <= end; s++) {
      const k = tr.greedy[s];
      const m = node("span", `collapse-mark${tr.emitted[s] >= 0 ? " writes" : k === 0 ? " blank" : " repeat"}${s === end ? " now" : ""}`, shownClass(tr, k));
      marks.push(m);
    }
    this.path.replaceChildren(...marks);
    let text = "";
    for (let s = 0; s <= end; s++) if (tr.emitted[s] >= 0) text += tr.classes[tr.emitted[s]];
    const done = end === tr.T - 1;
    this.text.replaceChildren(node("span", "collapse-so-far", text || "(nothing yet)"));
    this.text.classList.toggle("done", done);
    this.text.dataset.text = text;
  }
}

/** The prefix beam search's texts, best first, with log p(text | audio). */
export class CtcBeamsView extends TextBeamsView {
  constructor(root) {
    super(root, "log p");
    styled();
  }
}

/**
 * BPTT over the frames: ‖∂L/∂h_t‖ (the top layer) at every step on a log axis, filled in from the last step back to
 * the cursor in the BPTT sweep (all of it in the forward sweep, faint), the cursor marked.
 */
export class CtcSweepView extends View {
  constructor(root, { readout = null } = {}) {
    super(root);
    styled();
    this.readout = readout;
    this.axis = node("div", "sweep-axis");
    this.hi = node("span", "sweep-tick");
    this.lo = node("span", "sweep-tick");
    this.axis.append(this.hi, this.lo);
    this.plot = node("div", "sweep-plot");
    const wrap = node("div", "sweep-wrap");
    wrap.append(this.axis, this.plot);
    root.append(wrap);
    this.c = canvas(this.plot, () => sized(presenter() ? 190 : 150, 120), "‖∂L/∂h_t‖ over the steps, log scale");
  }

  drawKey() {
    return this.trace ? [this.trace, this.plot.clientWidth, presenter()] : null;
  }

  prepare() {
    const g = this.trace.layerGrads.flat().filter((x) => x > 0);
    const lo = Math.floor(Math.log10(Math.min(...g, 1)));
    const hi = Math.ceil(Math.log10(Math.max(...g, 1e-12)));
    this.range = [lo, Math.max(hi, lo + 1)];
    this.hi.textContent = pow10(this.range[1]);
    this.lo.textContent = pow10(this.range[0]);
    this.size = this.c.size();
  }

  render() {
    const tr = this.trace;
    if (!tr || !this.size) return;
    const { ctx, w, h } = this.c.size();
    const [lo, hi] = this.range;
    const y = (v) => h - 4 - ((Math.log10(v) - lo) / (hi - lo)) * (h - 8);
    const t = Math.min(this.cursor.t, tr.T - 1);
    const backward = this.cursor.phase === "backward";
    const x = (s) => ((s + 0.5) / tr.T) * w;
    ctx.clearRect(0, 0, w, h);
    ctx.strokeStyle = "#e5e7eb";
    for (let e = lo; e <= hi; e++) {
      ctx.beginPath();
      ctx.moveTo(0, y(10 ** e));
      ctx.lineTo(w, y(10 ** e));
      ctx.stroke();
    }
    const line = (values, from, to, style, width) => {
      ctx.strokeStyle = style;
      ctx.lineWidth = width;
      ctx.beginPath();
      let started = false;
      for (let s = from; s <= to; s++) {
        const v = values[s];
        if (!(v > 0)) continue;
        if (started) ctx.lineTo(x(s), y(v));
        else ctx.moveTo(x(s), y(v));
        started = true;
      }
      ctx.stroke();
    };
    // the lower layers thin and paler, the top layer's bold; in the BPTT sweep, bright from the end back to the cursor
    tr.layerGrads.forEach((values, l) => {
      const top = l === tr.layerGrads.length - 1;
      const colour = GRAD_LINES[(tr.layerGrads.length - 1 - l) % GRAD_LINES.length];
      line(values, 0, tr.T - 1, backward ? "#fdd0a2" : colour, top ? 2.5 : 1.5);
      if (backward) line(values, t, tr.T - 1, colour, top ? 3 : 2);
    });
    ctx.fillStyle = ACCENT;
    ctx.fillRect(x(t) - 1, 0, 2, h);
    if (this.readout) {
      const v = tr.grad[t];
      const top = tr.grad.reduce((a, b, i) => (b > (tr.grad[a] ?? 0) ? i : a), 0);
      const below = v > 0 && tr.grad[top] > 0 ? Math.log10(tr.grad[top]) - Math.log10(v) : null;
      const layers = tr.layerGrads.length > 1 ? ` · layer by layer (1 = the bottom): ${tr.layerGrads.map((g, l) => `${l + 1}: ${fmtNorm(g[t])}`).join(", ")}` : "";
      this.readout.textContent = v > 0 ? `‖∂L/∂h_${t + 1}‖ (the top layer) = ${fmtNorm(v)}: ${below.toFixed(1)} orders of magnitude under its largest (step ${top + 1}, ${fmtNorm(tr.grad[top])})${layers}` : "";
    }
  }
}
