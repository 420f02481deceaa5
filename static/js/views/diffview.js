// Change one token: the input and its edited copy as two token rows (the changed steps marked), then for each
// cell ‖h_t − h′_t‖ per step (first layer, log scale) and the total variation distance between the two
// predictions: how far, and for how long, one changed token travels.

import { CELL_COLORS, fmtNorm } from "../colors.js";
import { Plotly, baseLayout, isPresenter, makePlot, plotConfig } from "../plots.js";
import { showToken } from "../trace.js";

const positive = (v) => (v > 0 && Number.isFinite(v) ? v : null);

export class DiffView {
  /** onToken(i): the presenter clicked the original input's token i (to change it). */
  constructor(root, { tokens, readout, onToken }) {
    this.root = root;
    this.tokensEl = tokens;
    this.readout = readout;
    this.onToken = onToken;
    this.state = makePlot(root, "state-change", "plot-diff");
    this.pred = makePlot(root, "prediction-change", "plot-diff");
    this.models = [];
    this.replies = [];
    tokens.addEventListener("click", (e) => {
      const b = e.target.closest("[data-i]");
      if (b && b.closest(".diff-row-original")) this.onToken(Number(b.dataset.i));
    });
  }

  /** data: {models: [{id, cell}], replies: [reply|{error}]}; {relayout}. */
  update(data) {
    if (data.models) {
      this.models = data.models;
      this.replies = data.replies;
    }
    if (data.models || data.relayout) this.render();
  }

  render() {
    const ok = this.models.map((m, i) => ({ m, r: this.replies[i] })).filter(({ r }) => r && !r.error);
    const failed = this.models.map((m, i) => ({ m, r: this.replies[i] })).filter(({ r }) => !r || r.error);
    if (!ok.length) {
      this.tokensEl.replaceChildren();
      this.readout.textContent = failed.map(({ m, r }) => `${m.id}: ${r?.error ?? "not computed"}`).join(" · ");
      this.readout.dataset.kind = "error";
      return;
    }
    const first = ok[0].r;
    this.drawTokens(first);
    const T = first.tokens.length;
    const x = Array.from({ length: T }, (_, t) => t + 1);
    const shapes = first.changed.map((c) => ({
      type: "rect", xref: "x", yref: "paper", x0: c + 0.5, x1: c + 1.5, y0: 0, y1: 1,
      fillcolor: "rgba(124,58,237,0.14)", line: { width: 0 },
    })); // prettier-ignore
    const stateData = ok.map(({ m, r }) => ({
      type: "scatter",
      mode: T > 60 ? "lines" : "lines+markers",
      x,
      y: r.state_change[0].map(positive),
      name: `${m.cell.toUpperCase()} ‖h_t − h′_t‖`,
      line: { color: CELL_COLORS[m.cell] ?? "#111827", width: 3 },
      hovertemplate: `${m.cell.toUpperCase()}<br>step %{x}<br>‖h_t − h′_t‖ %{y:.3e}<extra></extra>`,
    }));
    const predData = ok.map(({ m, r }) => ({
      type: "scatter",
      mode: T > 60 ? "lines" : "lines+markers",
      x,
      y: r.prediction_change,
      name: `${m.cell.toUpperCase()} prediction change`,
      line: { color: CELL_COLORS[m.cell] ?? "#111827", width: 2.5 },
      hovertemplate: `${m.cell.toUpperCase()}<br>step %{x}<br>TV distance %{y:.3f}<extra></extra>`,
    }));
    const big = isPresenter();
    const h1 = big ? 320 : 280;
    const h2 = big ? 240 : 200;
    this.state.style.height = `${h1}px`;
    this.pred.style.height = `${h2}px`;
    const xaxis = { range: [0.5, T + 0.5], title: { text: "step t" } };
    Plotly.react(
      this.state,
      stateData,
      baseLayout({
        height: h1,
        showlegend: true,
        shapes,
        margin: { l: 76, r: 16, t: 40, b: 44 },
        xaxis,
        yaxis: { type: "log", title: { text: "‖h_t − h′_t‖ (log)" }, exponentformat: "power" },
      }),
      plotConfig("state-change"),
    );
    Plotly.react(
      this.pred,
      predData,
      baseLayout({
        height: h2,
        showlegend: true,
        shapes,
        margin: { l: 76, r: 16, t: 40, b: 44 },
        xaxis,
        yaxis: { range: [0, 1.02], title: { text: "prediction change" } },
      }),
      plotConfig("prediction-change"),
    );
    const after = (r) => {
      const c = r.changed.length ? r.changed[r.changed.length - 1] : 0;
      const at = r.state_change[0][c];
      const end = r.state_change[0][T - 1];
      return `${fmtNorm(at)} at the change → ${fmtNorm(end)} at the end`;
    };
    this.readout.dataset.kind = failed.length ? "error" : "info";
    this.readout.textContent =
      (first.changed.length ? `step ${first.changed.map((c) => c + 1).join(", ")} changed. ` : "Nothing changed: the two inputs are the same. ") +
      ok.map(({ m, r }) => `${m.cell.toUpperCase()}: ${after(r)}`).join(" · ") +
      failed.map(({ m, r }) => ` · ${m.id}: ${r?.error ?? "not computed"}`).join("");
    window.__unrolled.labDiff = { models: ok.map(({ m }) => m.id), changed: first.changed, drawn: (window.__unrolled.labDiff?.drawn ?? 0) + 1 };
  }

  /** The input above, its edited copy below, token under token; a changed step is marked in both. */
  drawTokens(reply) {
    const changed = new Set(reply.changed);
    const row = (tokens, cls, label) => {
      const el = document.createElement("div");
      el.className = `diff-row ${cls}`;
      const name = document.createElement("span");
      name.className = "diff-row-name";
      name.textContent = label;
      el.append(name);
      tokens.forEach((tok, i) => {
        const b = document.createElement(cls === "diff-row-original" ? "button" : "span");
        if (b.tagName === "BUTTON") {
          b.type = "button";
          b.title = `step ${i + 1}: click to change this token`;
        }
        b.className = `diff-tok${changed.has(i) ? " changed" : ""}`;
        b.dataset.i = String(i);
        b.textContent = showToken(tok);
        el.append(b);
      });
      return el;
    };
    this.tokensEl.replaceChildren(row(reply.tokens, "diff-row-original", "input"), row(reply.edited_tokens, "diff-row-edited", "changed"));
  }
}
