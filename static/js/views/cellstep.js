// The cell at the current step: one row per gate (then c_t and h_t), one column per unit, redrawn on a
// canvas per frame (a few hundred rectangles). Hovering shows the value, the unit and the token; clicking
// chooses the unit. Exported as PNG / SVG through a Plotly figure built on demand.

import { bus } from "../bus.js";
import { ACCENT, DIVERGING, GATE, isTanhGate, packed } from "../colors.js";
import { exportButtons } from "../export.js";
import { exportFigure, isPresenter, isTalk, scale } from "../plots.js";
import { showToken } from "../trace.js";
import { View } from "./base.js";

// A value as the cell's drawing writes it beside its equation: three decimals, a real minus (the lit row's number
// here is the drawing's, character for character).
const fmt = (v) => (Number.isFinite(v) ? v.toFixed(3).replace("-", "−") : "—");

export class CellStepView extends View {
  constructor(root, { tools, readout, name = "cell-at-step" }) {
    super(root, { name });
    this.readout = readout;
    this.canvas = document.createElement("canvas");
    this.canvas.className = "cellstep";
    this.tip = document.createElement("div");
    this.tip.className = "tip";
    this.tip.hidden = true;
    root.append(this.canvas, this.tip);
    this.canvas.addEventListener("mousemove", (e) => this.hover(e));
    this.canvas.addEventListener("mouseleave", () => (this.tip.hidden = true));
    this.canvas.addEventListener("click", (e) => {
      const hit = this.hit(e);
      if (hit) bus.emit("unit", { unit: hit.u, layer: this.layer });
    });
    if (tools) exportButtons(tools, () => this.export("png"), () => this.export("svg"));
    this.width = root.clientWidth || 600;
    new ResizeObserver(() => {
      this.width = root.clientWidth || 600;
      this.render();
    }).observe(root);
    this.cells = document.createElement("canvas"); // one pixel per (row, unit), scaled up when drawn
    this.lit = null; // the quantity lit in the cell's drawing (a gate, c or h): its row here is lit too
    bus.on("part", ({ q, model }) => {
      if (model && this.trace && model !== this.trace.model) return; // another cell's drawing (a compare scene)
      this.lit = q;
      this.render();
    });
  }

  rows() {
    const tr = this.trace;
    const l = this.layer;
    const out = tr.gateNames.map((g) => ({ label: g, q: g, a: tr.layers[l].gates[g], scale: isTanhGate(g) ? "diverging" : "gate" }));
    if (tr.cell === "lstm") out.push({ label: "c_t", q: "c", a: tr.layers[l].cell, scale: "diverging", max: Math.min(tr.cellAbsMax, 5) });
    out.push({ label: "h_t", q: "h", a: tr.layers[l].hidden, scale: "diverging" });
    return out;
  }

  /** Drawn whole at every update (a canvas of H units × a few rows): nothing to prepare, all is render(). */
  update(data) {
    this.take(data);
    this.render();
  }

  geometry() {
    const big = isPresenter();
    const talk = isTalk() && !big;
    const w = this.width;
    const labelW = big ? 110 : talk ? 96 : 84;
    const rowH = big ? 30 : talk ? 24 : 22;
    const n = this.rows().length;
    return { w, labelW, rowH, h: n * rowH + 4, cw: (w - labelW - 4) / this.trace.H, font: big ? 16 : talk ? 15 : 12 };
  }

  render() {
    const tr = this.trace;
    if (!tr || tr.steps === 0) return;
    const t = Math.max(0, Math.min(this.cursor.t, tr.steps - 1));
    const g = this.geometry();
    this.g = g;
    const dpr = window.devicePixelRatio || 1;
    const c = this.canvas;
    if (c.width !== Math.round(g.w * dpr) || c.height !== Math.round(g.h * dpr)) {
      c.width = Math.round(g.w * dpr);
      c.height = Math.round(g.h * dpr);
      c.style.width = `${g.w}px`;
      c.style.height = `${g.h}px`;
    }
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, g.w, g.h);
    ctx.font = `600 ${g.font}px system-ui, sans-serif`;
    ctx.textBaseline = "middle";
    const H = tr.H;
    const rows = this.rows();
    const values = [];
    if (this.cells.width !== H || this.cells.height !== rows.length) {
      this.cells.width = H;
      this.cells.height = rows.length;
      this.img = new ImageData(H, rows.length);
    }
    const px = new Uint32Array(this.img.data.buffer);
    rows.forEach((r, i) => {
      const y = 2 + i * g.rowH;
      ctx.fillStyle = "#111827";
      ctx.textAlign = "right";
      ctx.fillText(r.label, g.labelW - 8, y + g.rowH / 2);
      const max = r.max ?? 1;
      const gate = r.scale === "gate";
      for (let u = 0; u < H; u++) {
        const v = r.a[t * H + u];
        px[i * H + u] = gate ? packed("gate", v) : packed("diverging", 0.5 + v / (2 * max));
      }
      values.push({ r, v: r.a[t * H + this.unit] });
    });
    this.cells.getContext("2d").putImageData(this.img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    // each row's cells, with a 1 px white gap between rows
    rows.forEach((_, i) => {
      ctx.drawImage(this.cells, 0, i, H, 1, g.labelW, 2 + i * g.rowH + 1, H * g.cw, g.rowH - 2);
    });
    if (this.unit < H) {
      ctx.strokeStyle = ACCENT;
      ctx.lineWidth = 2.5;
      ctx.strokeRect(g.labelW + this.unit * g.cw - 1, 1, g.cw + 2, rows.length * g.rowH + 2);
    }
    // the row of the part lit in the cell's drawing: framed, its label on a tint, and its number in the readout
    const lit = rows.findIndex((r) => r.q === this.lit);
    if (lit >= 0) {
      const y = 2 + lit * g.rowH;
      ctx.strokeStyle = "#111827";
      ctx.lineWidth = 2;
      ctx.strokeRect(1, y, g.w - 2, g.rowH);
    }
    const litValue = lit >= 0 ? values[lit].v : null;
    Object.assign(this.canvas.dataset, { lit: lit >= 0 ? rows[lit].q : "", litValue: litValue === null ? "" : fmt(litValue) });
    if (this.readout) {
      const where = tr.bidirectional ? `${tr.layerName(this.layer)}, ` : "";
      const head = `${where}unit ${this.unit} at step ${t + 1} “${showToken(tr.tokens[t] ?? "")}”: `;
      // the lit one with the drawing's three decimals (the same number as beside its equation), the others with two
      const parts = values.map(({ r, v }, i) => (i === lit ? `${r.label} ${fmt(v)}` : `${r.label} ${v.toFixed(2)}`));
      const key = `${head}${parts.join(" · ")}|${lit}`;
      if (this.readoutKey !== key) {
        this.readoutKey = key;
        this.readout.replaceChildren(head);
        parts.forEach((s, i) => {
          if (i) this.readout.append(" · ");
          if (i !== lit) return this.readout.append(s);
          const mark = document.createElement("mark");
          mark.className = "lit";
          mark.dataset.q = rows[i].q;
          mark.textContent = s;
          this.readout.append(mark);
        });
      }
    }
  }

  hit(e) {
    if (!this.trace || !this.g) return null;
    const r = this.canvas.getBoundingClientRect();
    const x = e.clientX - r.left;
    const y = e.clientY - r.top;
    const u = Math.floor((x - this.g.labelW) / this.g.cw);
    const i = Math.floor((y - 2) / this.g.rowH);
    const rows = this.rows();
    if (u < 0 || u >= this.trace.H || i < 0 || i >= rows.length) return null;
    return { u, row: rows[i], x, y };
  }

  hover(e) {
    const hit = this.hit(e);
    if (!hit) {
      this.tip.hidden = true;
      return;
    }
    const tr = this.trace;
    const t = Math.min(this.cursor.t, tr.steps - 1);
    const v = hit.row.a[t * tr.H + hit.u];
    this.tip.textContent = `${hit.row.label} · unit ${hit.u} · step ${t + 1} “${showToken(tr.tokens[t] ?? "")}” · ${v.toFixed(3)}`;
    this.tip.hidden = false;
    this.tip.style.transform = `translate(${Math.min(hit.x + 12, this.g.w - 260)}px, ${hit.y + 14}px)`;
  }

  export(format) {
    const tr = this.trace;
    if (!tr) return;
    const t = Math.min(this.cursor.t, tr.steps - 1);
    const rows = this.rows();
    const data = rows.map((r, i) => ({
      type: "heatmap",
      z: [Array.from(r.a.subarray(t * tr.H, (t + 1) * tr.H))],
      y: [r.label],
      yaxis: i === 0 ? "y" : `y${i + 1}`,
      colorscale: scale(r.scale === "gate" ? GATE : DIVERGING),
      zmin: r.scale === "gate" ? 0 : -(r.max ?? 1),
      zmax: r.max ?? 1,
      showscale: false,
    }));
    const layout = { title: { text: `${tr.model} · ${tr.layerName(this.layer)} · step ${t + 1} “${showToken(tr.tokens[t])}”` }, margin: { l: 90, r: 20, t: 50, b: 40 }, xaxis: { title: { text: "unit" } } };
    rows.forEach((_, i) => {
      layout[i === 0 ? "yaxis" : `yaxis${i + 1}`] = { domain: [1 - (i + 1) / rows.length, 1 - i / rows.length - 0.02] };
    });
    exportFigure({ data, layout }, format, this.name, { width: 1000, height: 80 + rows.length * 50 });
  }
}
