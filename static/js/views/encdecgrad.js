// BPTT through an encoder–decoder on one log axis: ‖∂L/∂h_j‖ of the encoder's steps, then ‖∂L/∂s_t‖ of the
// decoder's, in the time line's order (the words, then the letters), and beside the encoder's total the part
// that arrived through attention (via_attention). Drawn once the sweep's frames are in; the BPTT sweep uncovers
// it from the right (the decoder's last letter) to the left (the first word).

import { GRAD_LINES, fmtNorm } from "../colors.js";
import { Overlay, Plotly, baseLayout, fontSize, isTalk, makePlot, plotConfig, sized } from "../plots.js";
import { showToken } from "../trace.js";
import { showLetter } from "../translation.js";
import { View } from "./base.js";

const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const positive = (a) => Array.from(a, (v) => (v > 0 ? v : null));

export class EncDecGradView extends View {
  constructor(root, { readout = null, name = "encoder-decoder-gradients", talkHeight = 170 } = {}) {
    super(root, { name, onScreen: true });
    this.readout = readout;
    this.talkHeight = talkHeight;
    this.gd = makePlot(root, name, "plot-grad");
    this.overlay = new Overlay(this.gd);
  }

  /** Drawn once both BPTT sweeps are in. */
  drawKey() {
    const tr = this.trace;
    return tr.gradFrom === 0 && tr.steps === tr.T ? [tr] : null;
  }

  clear() {
    Plotly.purge(this.gd);
    this.overlay.measure();
  }

  prepare() {
    const tr = this.trace;
    const talk = isTalk();
    const l = tr.top;
    const enc = [...Array(tr.J).keys()].map((j) => j + 1);
    const dec = [...Array(tr.Tout).keys()].map((t) => tr.J + t + 1);
    const words = tr.source.map((w) => esc(showToken(w)));
    const letters = tr.written.map((w) => esc(showLetter(w)));
    const mode = tr.T > 70 ? "lines" : "lines+markers";
    const data = [
      { x: enc, y: positive(tr.encoder.grad[l]), name: "encoder ‖∂L/∂h_j‖ (the words)", color: GRAD_LINES[1], dash: "solid", width: 3.5, labels: words },
      ...(tr.via ? [{ x: enc, y: positive(tr.via), name: "the part via attention", color: GRAD_LINES[2], dash: "dash", width: 3, labels: words }] : []),
      { x: dec, y: positive(tr.decoder.grad[l]), name: "decoder ‖∂L/∂s_t‖ (the letters)", color: GRAD_LINES[0], dash: "solid", width: 3, labels: letters },
    ].map((s) => ({
      type: "scatter",
      mode,
      x: s.x,
      y: s.y,
      name: s.name,
      customdata: s.labels,
      line: { color: s.color, dash: s.dash, width: s.width },
      marker: { size: talk ? 7 : 6 },
      hovertemplate: `${s.name}<br>“%{customdata}”: %{y:.3e}<extra></extra>`,
    }));
    // words and letters under their steps, every few when they do not all fit
    const width = (this.root.clientWidth || 800) - 90;
    const per = width / Math.max(1, tr.T);
    const charW = 0.62 * fontSize();
    const longest = Math.max(1, ...tr.source.map((w) => showToken(w).length));
    const everyWord = Math.ceil((charW * longest + 8) / per);
    const everyLetter = Math.ceil((charW + 5) / per);
    const keep = (every) => (_, n) => n % every === 0;
    // then left to right, a label only where it clears the one before: the last word and the first letters meet at
    // the divider (a short output's letters ran into "zero")
    const tickvals = [];
    const ticktext = [];
    let right = -Infinity;
    const wanted = [...enc.filter(keep(everyWord)).map((x, n) => [x, words.filter(keep(everyWord))[n]]), ...dec.filter(keep(everyLetter)).map((x, n) => [x, letters.filter(keep(everyLetter))[n]])];
    for (const [x, text] of wanted) {
      const half = (charW * text.length + 6) / 2;
      if ((x - 0.5) * per - half < right) continue;
      tickvals.push(x);
      ticktext.push(text);
      right = (x - 0.5) * per + half;
    }
    const height = sized(300, this.talkHeight);
    const divider = tr.J + 0.5;
    const layout = baseLayout({
      height,
      showlegend: true,
      legend: { orientation: "h", x: 0, y: 1, yanchor: "bottom", font: { size: talk ? 15 : Math.max(13, fontSize()) } },
      margin: { l: 64, r: 12, t: talk ? 26 : 30, b: talk ? 30 : 50 },
      xaxis: { range: [0.5, tr.T + 0.5], tickmode: "array", tickvals, ticktext, tickangle: 0, showgrid: false },
      yaxis: { type: "log", exponentformat: "power", title: { text: talk ? "" : "norm (log)" }, nticks: talk ? 4 : 5 }, // a short output's narrow range labelled every 0.002 otherwise
      shapes: [{ type: "line", xref: "x", yref: "paper", x0: divider, x1: divider, y0: 0, y1: 1, line: { color: "#6b7280", width: 2, dash: "dot" } }],
    });
    this.gd.style.height = `${height}px`;
    Plotly.react(this.gd, data, layout, plotConfig(this.name));
    this.overlay.measure();
  }

  render() {
    const tr = this.trace;
    if (!tr) return;
    const { phase, t: k } = this.cursor;
    if (this.drawn) {
      this.overlay.setCursor(phase === "backward" ? k + 1 : null);
      this.overlay.setMask(
        phase === "forward" ? [0.5, tr.T + 0.5] : k > 0 ? [0.5, k + 0.5] : null,
        phase === "forward" ? "the BPTT sweep reveals these: the decoder's, then the encoder's" : "not reached yet",
      );
    }
    if (!this.readout) return;
    let text;
    if (phase === "forward" || k < tr.gradFrom) {
      text = "Forward sweep: the gradients appear when BPTT runs (press B, or play to the end).";
    } else {
      const { side, i } = tr.at(k);
      if (side === "decoder") {
        text = `decoder step ${i + 1} “${showLetter(tr.written[i])}”: ‖∂L/∂s_t‖ = ${fmtNorm(tr.decoder.grad[tr.top][i])}`;
      } else {
        const via = tr.via ? `; the part that came through attention: ${fmtNorm(tr.via[i])}` : " (no attention: all of it through the recurrence)";
        text = `encoder step ${i + 1} “${showToken(tr.source[i])}”: ‖∂L/∂h_j‖ = ${fmtNorm(tr.encoder.grad[tr.top][i])}${via}`;
      }
    }
    if (this.readout.textContent !== text) this.readout.textContent = text;
  }
}
