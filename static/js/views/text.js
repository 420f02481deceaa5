// The input as text, each token coloured by the chosen unit's activation h_t[u] once the forward sweep has
// read it, with the top predictions under each token (next-token models) or the leading class (classifiers).
// A strip of the current step's units lets the presenter click a unit; clicking a token jumps to its step.

import { bus } from "../bus.js";
import { ACCENT, diverging, inkOn } from "../colors.js";
import { isPresenter } from "../plots.js";
import { showToken } from "../trace.js";
import { View } from "./base.js";

const SHOW_K = 3;
const CHUNK = 40; // tokens per chunk, ended at the next space

export class TextView extends View {
  constructor(root, { strip, name = "text" }) {
    super(root, { name });
    this.box = document.createElement("div");
    this.box.className = "textview";
    root.append(this.box);
    this.strip = strip ? new UnitStrip(strip) : null;
    this.items = [];
    this.colored = new Uint8Array(0);
    this.current = -1;
    this.box.addEventListener("click", (e) => {
      const tok = e.target.closest(".tk");
      if (tok) bus.emit("seek", { t: Number(tok.dataset.t) });
    });
  }

  /** Another unit or layer: every token is coloured again. */
  take(data) {
    const recolor = (data.layer !== undefined && data.layer !== this.layer) || (data.unit !== undefined && data.unit !== this.unit);
    super.take(data);
    if (recolor) this.colored.fill(2);
  }

  /** One element per token, its predictions filled as their steps arrive. */
  drawKey() {
    return [this.trace, this.trace.T, this.trace.steps];
  }

  prepare(last) {
    this.build(!last || last[0] !== this.trace);
  }

  /** The unit strip follows the same update. */
  update(data) {
    super.update(data);
    if (this.trace) this.strip?.update({ trace: this.trace, layer: this.layer, unit: this.unit, cursor: this.cursor });
  }

  /** Token elements for every step; predictions are filled as their steps arrive. */
  build(fresh) {
    const tr = this.trace;
    if (fresh || this.items.length !== tr.T) {
      // Tokens go into chunks of about a line or two; each chunk is laid out and painted on its own, and
      // chunks off screen are skipped (content-visibility), so a 2,000-step text costs what a screenful does.
      const frag = document.createDocumentFragment();
      this.items = [];
      let chunk = null;
      let inChunk = 0;
      for (let t = 0; t < tr.T; t++) {
        if (!chunk || (inChunk >= CHUNK && /^\s$/.test(tr.tokens[t - 1] ?? " ")) || inChunk >= 2 * CHUNK) {
          chunk = document.createElement("div");
          chunk.className = "tk-chunk";
          frag.append(chunk);
          inChunk = 0;
        }
        const item = document.createElement("span");
        item.className = "tk";
        item.dataset.t = String(t);
        const tok = document.createElement("span");
        tok.className = "tk-tok";
        const preds = document.createElement("span");
        preds.className = "tk-preds";
        item.append(tok, preds);
        chunk.append(item);
        inChunk++;
        if (tr.tokens[t] === "\n") {
          chunk = null; // a new line of the text starts a new chunk
        }
        this.items.push({ el: item, tok, preds, filled: false });
      }
      this.box.replaceChildren(frag);
      this.colored = new Uint8Array(tr.T).fill(2); // 2: not drawn yet
      this.current = -1;
      this.chunk = null;
      this.box.classList.toggle("word-level", tr.tokens.some((x) => x.length > 1 && x !== "<unk>"));
    }
    for (let t = 0; t < tr.steps; t++) {
      const it = this.items[t];
      if (it.filled) continue;
      it.filled = true;
      it.tok.textContent = showToken(tr.tokens[t]);
      if (tr.unknown.has(t)) {
        it.el.classList.add("unknown");
        it.el.title = "not in the vocabulary";
      }
      if (tr.sampled[t]) it.el.classList.add("sampled");
      it.preds.replaceChildren(...this.predictionEls(t));
    }
    this.builtSteps = tr.steps;
  }

  predictionEls(t) {
    const tr = this.trace;
    const out = [];
    if (tr.family.head === "classes") {
      const top = tr.topPrediction(t);
      const s = document.createElement("span");
      s.className = "pr";
      s.textContent = `${top.token} ${Math.round(top.p * 100)}`;
      out.push(s);
      return out;
    }
    const next = tr.tokens[t + 1];
    for (const { token, p } of (tr.predictions[t] ?? []).slice(0, SHOW_K)) {
      const s = document.createElement("span");
      s.className = token === next ? "pr hit" : "pr";
      s.textContent = `${showToken(token)} ${Math.round(p * 100)}`;
      out.push(s);
    }
    return out;
  }

  render() {
    const tr = this.trace;
    const { phase, t } = this.cursor;
    // a reverse direction (a bidirectional layer's second entry) reads from the last step: at the cursor it has
    // read steps T−1−t…T−1
    const reverse = tr.directions?.[this.layer] === "reverse" && phase !== "backward";
    const from = reverse ? Math.max(0, tr.T - 1 - t) : 0;
    const upTo = Math.min(tr.steps - 1, phase === "backward" || reverse ? tr.T - 1 : t);
    const H = tr.H;
    const h = tr.layers[this.layer].hidden;
    const u = Math.min(this.unit, H - 1);
    for (let i = 0; i < this.items.length; i++) {
      const want = i >= from && i <= upTo ? 1 : 0;
      if (this.colored[i] === want) continue;
      this.colored[i] = want;
      const it = this.items[i];
      if (want) {
        const bg = diverging(h[i * H + u]);
        it.tok.style.background = bg;
        it.tok.style.color = inkOn(bg);
        it.el.classList.remove("unread");
      } else {
        it.tok.style.background = "";
        it.tok.style.color = "";
        it.el.classList.add("unread");
      }
    }
    if (this.current !== t) {
      this.items[this.current]?.el.classList.remove("current");
      this.current = t;
      const it = this.items[t];
      if (it) {
        it.el.classList.add("current");
        this.scrollTo(it.el);
      }
    }
  }

  /**
   * Keep the current token in view. Layout is read only when the cursor enters another chunk (a line or
   * two of text), not on every frame: reading offsetTop forces a layout of the whole page.
   */
  scrollTo(el) {
    const chunk = el.parentElement;
    if (chunk === this.chunk) return;
    this.chunk = chunk;
    const box = this.box;
    if (box.scrollHeight <= box.clientHeight) return;
    const top = chunk.offsetTop;
    if (top < box.scrollTop || top + chunk.offsetHeight > box.scrollTop + box.clientHeight) {
      box.scrollTop = Math.max(0, top - box.clientHeight / 3);
    }
  }
}

/** The current step's hidden units as one clickable row: the quickest way to choose a unit to follow. */
class UnitStrip {
  constructor(root) {
    this.root = root;
    this.canvas = document.createElement("canvas");
    this.canvas.className = "unitstrip";
    this.canvas.title = "h_t at this step, one cell per unit: click one to colour the text by it";
    root.append(this.canvas);
    this.width = root.clientWidth || 400;
    new ResizeObserver(() => {
      this.width = root.clientWidth || 400;
    }).observe(root);
    this.canvas.addEventListener("click", (e) => {
      if (!this.trace) return;
      const r = this.canvas.getBoundingClientRect();
      const u = Math.floor(((e.clientX - r.left) / r.width) * this.trace.H);
      bus.emit("unit", { unit: Math.max(0, Math.min(this.trace.H - 1, u)), layer: this.layer });
    });
  }

  update({ trace, layer, unit, cursor }) {
    this.trace = trace;
    this.layer = layer;
    if (!trace.steps) return;
    const t = Math.max(0, Math.min(cursor.t, trace.steps - 1));
    const w = this.width;
    const hgt = isPresenter() ? 26 : 18;
    const dpr = window.devicePixelRatio || 1;
    const c = this.canvas;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(hgt * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(hgt * dpr);
      c.style.width = `${w}px`;
      c.style.height = `${hgt}px`;
    }
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const H = trace.H;
    const cw = w / H;
    const h = trace.layers[layer].hidden;
    for (let u = 0; u < H; u++) {
      ctx.fillStyle = diverging(h[t * H + u]);
      ctx.fillRect(u * cw, 2, Math.ceil(cw), hgt - 4);
    }
    ctx.strokeStyle = ACCENT;
    ctx.lineWidth = 2.5;
    ctx.strokeRect(unit * cw, 1, Math.max(cw, 3), hgt - 2);
  }
}
