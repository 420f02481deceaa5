// The attention weights α_tj as a heatmap: one column per written letter (the decoder's steps, left to right as
// in the row above), one row per source word. A column appears as its decoder step arrives and is uncovered as
// the cursor reaches it; the cursor's column (or, in the BPTT sweep on a word, its row) is marked.

import { Overlay, Plotly, baseLayout, exportPlot, isTalk, makePlot, plotConfig, timeTicks } from "../plots.js";
import { exportButtons } from "../export.js";
import { showToken } from "../trace.js";
import { showLetter } from "../translation.js";
import { View } from "./base.js";

/** A token, safe inside Plotly's pseudo-HTML (axis labels, hover). */
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export const ALPHA_SCALE = [
  [0, "#ffffff"],
  [0.15, "#dbe7f3"],
  [0.4, "#86b4d9"],
  [0.7, "#2f74b5"],
  [1, "#0b2f66"],
];

export class AttentionView extends View {
  constructor(root, { info = null, tools = null, name = "attention" } = {}) {
    super(root, { name, onScreen: true });
    this.info = info;
    this.gd = makePlot(root, name, "plot-attention");
    this.overlay = new Overlay(this.gd);
    this.empty = document.createElement("p");
    this.empty.className = "caption attention-none";
    this.empty.hidden = true;
    root.append(this.empty);
    if (tools) exportButtons(tools, () => this.export("png"), () => this.export("svg"));
  }

  update(data) {
    this.take(data);
    const tr = this.trace;
    if (!tr) return;
    const none = !tr.attention;
    this.empty.hidden = !none;
    this.gd.parentElement.hidden = none;
    if (none) {
      this.empty.textContent = `${tr.model} has no attention: every letter is written from the encoder's last state alone (the bottleneck). Switch attention on (A) to see where each letter looks.`;
      if (this.info) this.info.textContent = "";
      return;
    }
    this.refresh(data);
  }

  /** Drawn again as each decoder step arrives. */
  drawKey() {
    const tr = this.trace;
    return tr.decSteps > 0 ? [tr, tr.decSteps] : null;
  }

  prepare() {
    const tr = this.trace;
    const talk = isTalk();
    const width = this.root.clientWidth || 600;
    const z = Array.from({ length: tr.J }, (_, j) => Array.from({ length: tr.Tout }, (_, t) => (t < tr.decSteps ? tr.attention[t * tr.J + j] : null)));
    const letters = tr.written.map(showLetter);
    const words = tr.source.map((w) => esc(showToken(w)));
    const custom = Array.from({ length: tr.J }, (_, j) => Array.from({ length: tr.Tout }, (_, t) => [esc(letters[t]), words[j]]));
    // a row per word: as tall as the room the scene has (talk), or beside the beams and the top 5 (the page)
    const height = talk ? Math.max(130, tr.J * 20 + 46) : Math.max(300, tr.J * 28 + 62);
    const ticks = timeTicks(letters.map(esc), tr.Tout, width - 150);
    const data = [
      {
        type: "heatmap",
        z,
        x: [...Array(tr.Tout).keys()].map((t) => t + 1),
        y: [...Array(tr.J).keys()],
        zmin: 0,
        zmax: 1,
        colorscale: ALPHA_SCALE,
        xgap: 1,
        ygap: 1,
        customdata: custom,
        hovertemplate: "“%{customdata[0]}” looks at “%{customdata[1]}”: α = %{z:.3f}<extra></extra>",
        colorbar: { thickness: 10, len: 1, outlinewidth: 0, tickvals: [0, 0.5, 1], title: { text: "α", side: "top" } },
      },
    ];
    const layout = baseLayout({
      height,
      margin: { l: 10, r: 10, t: 4, b: talk ? 26 : 40 },
      xaxis: { range: [0.5, tr.Tout + 0.5], ...ticks, ticks: "", showgrid: false, zeroline: false, tickfont: { family: 'ui-monospace, "DejaVu Sans Mono", monospace' } },
      yaxis: { tickvals: [...Array(tr.J).keys()], ticktext: words, autorange: "reversed", ticks: "", showgrid: false, zeroline: false },
    });
    this.gd.style.height = `${height}px`;
    Plotly.react(this.gd, data, layout, plotConfig(this.name));
    if (!this.bound) {
      this.bound = true;
      this.gd.on("plotly_hover", (e) => {
        const p = e.points?.[0];
        if (!p || !this.info || !this.trace?.attention) return;
        const [letter, word] = p.customdata ?? ["", ""];
        this.info.textContent = `letter ${p.x} “${unesc(letter)}” looks at word ${p.y + 1} “${unesc(word)}”: α = ${Number(p.z).toFixed(3)}`;
      });
    }
    this.overlay.measure();
  }

  render() {
    const tr = this.trace;
    if (!tr || !this.drawn) return;
    const { phase, t: k } = this.cursor;
    const { side, i } = tr.at(k);
    const back = phase === "backward";
    // forward: the letters written so far; the BPTT sweep: all of them
    const upTo = back ? tr.Tout : side === "decoder" ? i + 1 : 0;
    this.overlay.setMask(upTo < tr.Tout ? [upTo + 0.5, tr.Tout + 0.5] : null, upTo === 0 ? "the decoder has not written yet" : "not written yet");
    this.overlay.setCursor(side === "decoder" ? i + 1 : null);
    this.overlay.setRow(back && side === "encoder" ? i : null);
    if (this.info) {
      let text = "";
      if (side === "decoder" && i < tr.decSteps) {
        const a = tr.alpha(i);
        let best = 0;
        for (let j = 1; j < a.length; j++) if (a[j] > a[best]) best = j;
        text = `“${showLetter(tr.written[i])}” (letter ${i + 1}) looks most at “${showToken(tr.source[best])}”: α = ${a[best].toFixed(2)}`;
      } else if (side === "encoder") {
        text = back ? `BPTT on “${showToken(tr.source[i])}”: its row is what every letter took from it` : "The encoder is reading; the columns appear as the decoder writes.";
      }
      if (this.info.textContent !== text) this.info.textContent = text;
    }
  }

  export(format) {
    if (this.drawn) exportPlot(this.gd, format);
  }
}

function unesc(s) {
  return String(s).replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}
