// Several models on one input, a row each: the unrolled network around the shared cursor and the top prediction at
// it. Every row colours its gradients on one log scale (the range over all the rows), so the colours compare across
// cells. The compare page's rows and a compare scene's (talk mode) are both these.

import { node } from "../dom.js";
import { exportButtons } from "../export.js";
import { showToken } from "../trace.js";
import { UnrolledView } from "./unrolled.js";

export class CompareRowsView {
  /**
   * cards: the models, a row each. page: the page's rows: each model's name a link that keeps the input, its
   * network's PNG / SVG buttons, and ‖∂L/∂h_t‖ beside the prediction in the BPTT sweep (a scene's show it in the boxes).
   */
  constructor(root, { cards, page = false, name = (id) => `unrolled-${id}` }) {
    this.page = page;
    this.traces = cards.map(() => null);
    this.rows = cards.map((card) => {
      const row = node("div", "compare-row");
      row.dataset.model = card.id;
      const head = node("div", "compare-name");
      const badge = node("span", `cell-badge cell-${card.cell}`, card.cell.toUpperCase());
      const pred = node("span", "compare-pred");
      if (page) {
        const a = node("a", "", card.id);
        a.href = `/models/${card.id}`;
        a.dataset.keep = "text label";
        const tools = node("span", "panel-tools");
        head.append(node("span", "", ""), a, pred, tools);
        head.firstChild.append(badge);
        row.tools = tools;
      } else {
        head.append(badge, node("strong", "", card.id), pred);
      }
      const host = node("div", "compare-net");
      row.append(head, host);
      root.append(row);
      const net = new UnrolledView(host, { compact: true, name: name(card.id), range: () => this.sharedRange() });
      if (page) exportButtons(row.tools, () => net.exportPng(), () => net.exportSvg());
      return { pred, net };
    });
  }

  /** One log range for every row. */
  sharedRange() {
    let lo = Infinity;
    let hi = -Infinity;
    for (const tr of this.traces) {
      if (!tr || tr.gradFrom >= tr.T) continue;
      const [a, b] = tr.gradLogRange();
      lo = Math.min(lo, a);
      hi = Math.max(hi, b);
    }
    return Number.isFinite(lo) ? [lo, hi] : [-8, 0];
  }

  /** data: {traces (a row each, null where not yet come), version, cursor} (any subset). */
  update(data) {
    if (data.traces) this.traces = data.traces;
    this.rows.forEach((r, i) => {
      const mine = data.traces ? { trace: this.traces[i], version: data.version } : {};
      r.net.update({ ...mine, ...(data.cursor ? { cursor: data.cursor } : {}) });
    });
    if (data.cursor) this.predictions(data.cursor);
  }

  predictions(c) {
    this.rows.forEach((r, i) => {
      const tr = this.traces[i];
      if (!tr || c.t < 0 || c.t >= tr.steps) return;
      const top = tr.topPrediction(c.t);
      if (!this.page) {
        r.pred.textContent = top ? `→ ${top.token} ${top.p.toFixed(2)}` : ""; // ‖∂L/∂h_t‖: in the cell's box
        return;
      }
      const g = c.phase === "backward" && c.t >= tr.gradFrom ? `  ‖∂L/∂h‖ ${tr.grad.hidden[0][c.t].toExponential(1)}` : "";
      r.pred.textContent = top ? `→ ${showToken(top.token)} ${top.p.toFixed(2)}${g}` : "";
    });
  }

  resize() {
    for (const r of this.rows) r.net.resize();
  }
}
