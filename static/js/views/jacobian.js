// Every step's influence on every later step: ‖∂h_t/∂h_s‖ as a triangle per cell (s on x, t on y, nothing
// above the diagonal), one log colour scale for all of them; hovering a cell marks s and t in an unrolled view
// of that model's trace. Each triangle can take the keyboard's focus: the arrow keys move a cell outlined on it
// (the readout and the unrolled view follow, as for the mouse), Enter selects it.

import { CELL_COLORS, GRAD, fmtNorm, pow10 } from "../colors.js";
import { onKeysIn } from "../keys.js";
import { Plotly, baseLayout, isPresenter, makePlot, plotConfig } from "../plots.js";
import { showToken } from "../trace.js";
import { UnrolledView } from "./unrolled.js";

const S_COLOR = "#d95f0e"; // s: where the influence starts (a gradient's colour: orange)

/**
 * The unrolled network with two steps marked: t is the cursor (purple, the steps after it not read yet) and s is
 * outlined in orange; the window centres between them when both fit, else on s; the overview strip marks both.
 */
export class LinkedUnrolled extends UnrolledView {
  mark(s, t) {
    this.marks = { s, t };
    this.cursor = { phase: "forward", t };
    this.render(true);
  }

  offset() {
    if (!this.marks || !this.trace) return super.offset();
    const { s, t } = this.marks;
    const span = this.trace.T * this.g.pitch;
    const margin = 8;
    if (span + 2 * margin <= this.width) return (this.width - span) / 2;
    const fits = (t - s + 1) * this.g.pitch <= this.width - 2 * margin;
    const centre = fits ? (s + t) / 2 : s;
    const ideal = this.width / 2 - (centre + 0.5) * this.g.pitch;
    return Math.min(margin, Math.max(this.width - span - margin, ideal));
  }

  fill(slot, t, revealed, grad, current) {
    super.fill(slot, t, revealed, grad, current);
    slot.root.classList.toggle("mark-s", this.marks?.s === t);
    slot.root.classList.toggle("mark-t", this.marks?.t === t);
  }

  drawOverview(first, last) {
    super.drawOverview(first, last);
    if (this.compact || !this.marks || !this.trace) return;
    const ctx = this.overview.getContext("2d");
    const w = Math.max(1, Math.floor(this.width || 800));
    ctx.fillStyle = S_COLOR;
    ctx.fillRect(((this.marks.s + 0.5) / this.trace.T) * w - 2, 0, 4, this.overview.height);
  }
}

/** log10 of every positive, finite norm: [lo, hi] over all the replies (one colour scale for all). */
function logRange(replies) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const r of replies) {
    for (const row of r.norms) {
      for (const v of row) {
        if (v > 0 && Number.isFinite(v)) {
          const l = Math.log10(v);
          if (l < lo) lo = l;
          if (l > hi) hi = l;
        }
      }
    }
  }
  if (!Number.isFinite(lo)) return [-8, 0];
  return hi - lo < 1 ? [hi - 1, hi] : [lo, hi];
}

export class JacobianView {
  /** onHover({model, cell, s, t, value}): a cell of a triangle is under the mouse. */
  constructor(root, { unrolledRoot, readout, legend }) {
    this.root = root;
    this.readout = readout;
    this.legend = legend;
    this.unrolled = new LinkedUnrolled(unrolledRoot, { name: "jacobian-unrolled" });
    this.models = [];
    this.replies = [];
    this.traces = {};
    this.plots = [];
    this.hovered = null;
    this.picks = []; // per triangle: the cell {s, t} the keyboard is on
    const move = (ds, dt) => (e) => this.pick(e.target.closest(".lab-cell-plot"), ds, dt);
    onKeysIn(root, "on a Jacobian triangle (J)", [
      { keys: ["ArrowLeft", "ArrowRight"], does: "step s back / on", act: (e) => move(e.key === "ArrowRight" ? 1 : -1, 0)(e) },
      { keys: ["ArrowUp", "ArrowDown"], does: "step t back / on", act: (e) => move(0, e.key === "ArrowDown" ? 1 : -1)(e) },
      { keys: ["Enter"], does: "select the cell (the readout and the unrolled view keep it)", act: (e) => this.select(e.target.closest(".lab-cell-plot")) },
    ]);
  }

  /** The keyboard's focus on the first triangle drawn. */
  focus() {
    const p = this.plots.find((x) => !x.box.hidden && !x.gd.hidden);
    p?.box.focus();
  }

  /** Move triangle box's keyboard cell by (ds, dt), kept in the triangle s ≤ t; the readout follows. */
  pick(box, ds, dt) {
    const p = this.plots.find((x) => x.box === box);
    const reply = p && this.replies[p.index];
    if (!reply || reply.error) return;
    const T = reply.norms.length;
    const was = this.picks[p.index] ?? { s: 0, t: T - 1 };
    const t = Math.max(0, Math.min(T - 1, was.t + dt));
    const s = Math.max(0, Math.min(t, was.s + ds));
    this.picks[p.index] = { s, t };
    this.outline(p);
    this.hover(p.index, { x: s + 1, y: t + 1 });
  }

  /** Enter on a triangle: its keyboard cell is the selection. */
  select(box) {
    const p = this.plots.find((x) => x.box === box);
    if (!p) return;
    if (!this.picks[p.index]) this.pick(box, 0, 0);
    const at = this.picks[p.index];
    if (!at) return;
    this.hover(p.index, { x: at.s + 1, y: at.t + 1 });
    this.selected = this.hovered;
    this.readout.textContent = `Selected — ${this.readout.textContent}`;
    window.__unrolled.labSelected = this.selected;
  }

  /** The keyboard's cell outlined on triangle p. */
  outline(p) {
    const at = this.picks[p.index];
    if (!at || p.gd.hidden) return;
    const shape = { type: "rect", x0: at.s + 0.5, x1: at.s + 1.5, y0: at.t + 0.5, y1: at.t + 1.5, line: { color: "#7c3aed", width: 3 } };
    Plotly.relayout(p.gd, { shapes: [shape] });
  }

  /** data: {models: [{id, cell}], replies: [reply|{error}]} a new input; {traces: {id: Trace}}; {relayout}. */
  update(data) {
    if (data.models) {
      this.models = data.models;
      this.replies = data.replies;
    }
    if (data.traces) this.traces = data.traces;
    if (data.models || data.relayout) this.render();
  }

  ensurePlots(n) {
    while (this.plots.length < n) {
      const box = document.createElement("div");
      box.className = "lab-cell-plot";
      box.tabIndex = 0;
      box.setAttribute("aria-label", "a Jacobian triangle: arrow keys move the cell, Enter selects it");
      this.root.append(box);
      const title = document.createElement("h3");
      title.className = "sub lab-plot-title";
      box.append(title);
      const gd = makePlot(box, "jacobian", "plot-jacobian");
      const i = this.plots.length;
      this.plots.push({ box, title, gd, bound: false, index: i });
    }
  }

  render() {
    const ok = this.replies.filter((r) => r && !r.error);
    const [lo, hi] = logRange(ok);
    this.ensurePlots(this.models.length);
    const height = isPresenter() ? 420 : 360;
    this.models.forEach((m, i) => {
      const p = this.plots[i];
      const reply = this.replies[i];
      p.title.replaceChildren();
      const badge = document.createElement("span");
      badge.className = `cell-badge cell-${m.cell}`;
      badge.textContent = m.cell.toUpperCase();
      p.title.append(badge, ` ${m.id}`);
      if (!reply || reply.error) {
        p.gd.hidden = true;
        const note = p.box.querySelector(".lab-message") ?? document.createElement("p");
        note.className = "lab-message";
        note.dataset.kind = "error";
        note.textContent = reply?.error ?? "not computed";
        p.box.append(note);
        return;
      }
      p.box.querySelector(".lab-message")?.remove();
      p.gd.hidden = false;
      const T = reply.norms.length;
      const steps = Array.from({ length: T }, (_, k) => k + 1);
      // null above the diagonal stays a gap; an exact zero below it is the scale's floor, not a gap
      const z = reply.norms.map((row) => row.map((v) => (v === null ? null : v > 0 ? Math.log10(v) : lo)));
      const text = reply.norms.map((row) => row.map((v) => (v === null ? "" : fmtNorm(v))));
      const last = i === this.models.length - 1;
      const ticks = [];
      for (let e = Math.ceil(lo); e <= Math.floor(hi); e += Math.max(1, Math.ceil((hi - lo) / 6))) ticks.push(e);
      const trace = {
        type: "heatmap",
        x: steps,
        y: steps,
        z,
        text,
        zmin: lo,
        zmax: hi,
        colorscale: GRAD,
        hoverongaps: false,
        showscale: last,
        colorbar: { tickvals: ticks, ticktext: ticks.map(pow10), thickness: 14, len: 0.9, title: { text: "‖∂h_t/∂h_s‖", side: "right" } },
        hovertemplate: `${m.cell.toUpperCase()}<br>s %{x} → t %{y}<br>‖∂h_t/∂h_s‖ %{text}<extra></extra>`,
      };
      p.gd.style.height = `${height}px`;
      const layout = baseLayout({
        height,
        margin: { l: 56, r: last ? 16 : 10, t: 8, b: 48 },
        xaxis: { title: { text: "step s" }, range: [0.5, T + 0.5] },
        yaxis: { title: { text: "step t" }, range: [T + 0.5, 0.5] }, // t grows downwards, as a matrix's rows
      });
      const at = this.picks[i];
      if (at && at.t >= T) this.picks[i] = null; // a shorter input: the keyboard's cell starts again
      Plotly.react(p.gd, [trace], layout, plotConfig(`jacobian-${m.id}`));
      this.outline(p);
      if (!p.bound) {
        p.bound = true;
        p.gd.on("plotly_hover", (ev) => this.hover(p.index, ev.points[0]));
      }
    });
    for (const p of this.plots.slice(this.models.length)) p.box.hidden = true;
    this.legend.textContent = ok.length ? `one colour scale: ${pow10(lo)} … ${pow10(hi)}` : "";
    window.__unrolled.labJacobian = { models: this.models.map((m) => m.id), range: [lo, hi], drawn: (window.__unrolled.labJacobian?.drawn ?? 0) + 1 };
    const first = this.models.find((m) => this.traces[m.id]);
    // before any hover: the first model's trace, read to its end
    if (first && !Object.values(this.traces).includes(this.unrolled.trace)) {
      const trace = this.traces[first.id];
      this.unrolled.marks = null;
      this.unrolled.update({ trace, cursor: { phase: "forward", t: trace.T - 1 } });
    }
  }

  /** A cell of triangle i under the mouse: the readout names it, the unrolled view marks s and t. */
  hover(i, point) {
    const m = this.models[i];
    const reply = this.replies[i];
    if (!m || !reply || reply.error || !point) return;
    const s = point.x - 1;
    const t = point.y - 1;
    const v = reply.norms[t]?.[s];
    if (v === null || v === undefined) return;
    const trace = this.traces[m.id];
    if (trace && this.unrolled.trace !== trace) this.unrolled.update({ trace });
    if (trace) this.unrolled.mark(s, t);
    const tok = (k) => showToken(reply.tokens[k] ?? "");
    this.readout.textContent = `${m.cell.toUpperCase()}: the state after “${tok(s)}” (s = ${s + 1}) still moves the state after “${tok(t)}” (t = ${t + 1}) by ‖∂h_t/∂h_s‖ = ${fmtNorm(v)}`;
    this.readout.style.color = CELL_COLORS[m.cell] ?? "";
    this.hovered = { model: m.id, s, t, value: v };
    window.__unrolled.labHover = this.hovered;
  }
}
