// The piano roll: one bar per note (time across, in quarter notes; pitch up), the note at the cursor lit, the
// notes not yet read (forward sweep) faint, and the model's top predictions for the next note drawn where it
// comes, each as opaque as its probability (outlined in green: the note that came). Generated notes are green.

import { ACCENT } from "../colors.js";
import { isPresenter, isTalk } from "../plots.js";
import { midiName, parseNote, timeline } from "../notes.js";
import { View } from "./base.js";

const NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, parent = null) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.append(e);
  return e;
}

export class PianoRollView extends View {
  constructor(root, { height = 300, readout = null } = {}) {
    super(root);
    this.height = height;
    this.readout = readout;
    this.svg = el("svg", { class: "pianoroll-svg", role: "img", "aria-label": "the melody as a piano roll" });
    root.classList.add("pianoroll");
    root.append(this.svg);
  }

  /** The roll is one SVG drawn whole: again when the trace grows, the cursor moves or the width changes. */
  drawKey() {
    const tr = this.trace;
    return [tr, tr.version, tr.steps, this.cursor.phase, this.cursor.t, this.width()];
  }

  width() {
    return Math.max(320, Math.round(this.root.clientWidth || 800));
  }

  prepare() {
    this.draw(this.width());
  }

  draw(width) {
    const tr = this.trace;
    const T = tr.steps;
    const { notes, length } = timeline(tr.tokens, T);
    const { phase, t } = this.cursor;
    const cur = Math.min(t, T - 1);
    const preds = phase === "forward" && cur >= 0 ? (tr.predictions[cur] ?? []) : [];
    const guesses = preds.map((p) => ({ ...p, note: parseNote(p.token) })).filter((p) => p.note && p.note.midi !== null);
    const pitches = [...notes.filter((n) => n.midi !== null).map((n) => n.midi), ...guesses.map((g) => g.note.midi)];
    const lo = (pitches.length ? Math.min(...pitches) : 60) - 1;
    const hi = (pitches.length ? Math.max(...pitches) : 72) + 1;
    const next = cur >= 0 && cur < T ? notes[cur].onset + notes[cur].dur : 0;
    const span = Math.max(length, next + Math.max(1, ...guesses.map((g) => g.note.dur)), 4);
    const left = 56;
    const right = 12;
    const top = 8;
    const bottom = 30;
    const H = this.height;
    const rowH = (H - top - bottom) / (hi - lo + 1);
    // a row's name as tall as the row (at 15 px every other row of a wide range went unnamed), never under what
    // can be read: 15 px in the tour (its stage may be zoomed to 0.94), 14 px projected, 11 px on a laptop
    const font = Math.max(isTalk() ? 15 : isPresenter() ? 14 : 11, Math.min(15, rowH));
    const xq = (q) => left + ((width - left - right) * q) / span;
    const yp = (m) => top + (hi - m) * rowH;
    this.svg.setAttribute("viewBox", `0 0 ${width} ${H}`);
    this.svg.setAttribute("width", String(width));
    this.svg.setAttribute("height", String(H));
    const parts = [];
    const g = el("g");
    // rows: black keys shaded, C's and the notes played labelled
    const used = new Set(pitches);
    let lastLabel = -Infinity;
    for (let m = hi; m >= lo; m--) {
      const black = [1, 3, 6, 8, 10].includes(((m % 12) + 12) % 12);
      el("rect", { x: left, y: yp(m), width: width - left - right, height: rowH, fill: black ? "#f1f5f9" : "#ffffff" }, g);
      if (m % 12 === 0) el("line", { x1: left, x2: width - right, y1: yp(m) + rowH, y2: yp(m) + rowH, stroke: "#cbd5e1" }, g);
      // the notes played (and each C) named, none closer than a line of text to the one above
      if ((used.has(m) || m % 12 === 0) && yp(m) - lastLabel >= font) {
        lastLabel = yp(m);
        const label = el("text", { x: left - 6, y: yp(m) + rowH / 2, "text-anchor": "end", "dominant-baseline": "central", "font-size": font, class: "roll-label" }, g);
        label.textContent = midiName(m);
      }
    }
    // beats: a line every quarter, stronger every bar of 4
    for (let q = 0; q <= span; q++) {
      el("line", { x1: xq(q), x2: xq(q), y1: top, y2: H - bottom, stroke: q % 4 === 0 ? "#94a3b8" : "#e2e8f0", "stroke-width": 1 }, g);
      if (q % 4 === 0 && q + 2 <= span) {
        const lab = el("text", { x: xq(q) + 3, y: H - bottom + font + 2, "font-size": font, class: "roll-label" }, g);
        lab.textContent = `bar ${q / 4 + 1}`;
      }
    }
    notes.forEach((n, s) => {
      const revealed = phase === "backward" || s <= cur;
      if (n.midi === null) {
        if (revealed) el("rect", { x: xq(n.onset), y: H - bottom - 6, width: Math.max(2, xq(n.onset + n.dur) - xq(n.onset) - 2), height: 4, fill: "#94a3b8", "data-t": s, class: "rest" }, g);
        return;
      }
      const here = s === cur;
      const fill = here ? ACCENT : tr.sampled[s] ? "#16a34a" : "#1e3a8a";
      el("rect", {
        x: xq(n.onset) + 1,
        y: yp(n.midi) + 1,
        width: Math.max(3, xq(n.onset + n.dur) - xq(n.onset) - 2),
        height: Math.max(3, rowH - 2),
        rx: 3,
        fill,
        "fill-opacity": revealed ? 1 : 0.15,
        class: here ? "note current" : "note",
        "data-t": s,
      }, g); // prettier-ignore
    });
    const came = tr.tokens[cur + 1];
    for (const p of guesses) {
      const hit = p.token === came;
      el("rect", {
        x: xq(next) + 1,
        y: yp(p.note.midi) + 1,
        width: Math.max(3, xq(next + p.note.dur) - xq(next) - 2),
        height: Math.max(3, rowH - 2),
        rx: 3,
        fill: ACCENT,
        "fill-opacity": Math.max(0.12, Math.min(0.85, p.p)),
        stroke: hit ? "#16a34a" : ACCENT,
        "stroke-width": hit ? 3 : 1,
        "stroke-dasharray": hit ? "" : "4 3",
        class: "guess",
      }, g); // prettier-ignore
    }
    if (cur >= 0 && cur < T) {
      const x = xq(notes[cur].onset);
      el("line", { x1: x, x2: x, y1: top, y2: H - bottom, stroke: ACCENT, "stroke-width": 3, class: "roll-cursor", "data-x": x.toFixed(1) }, g);
    }
    parts.push(g);
    this.svg.replaceChildren(...parts);
    this.cursorX = cur >= 0 && cur < T ? xq(notes[cur].onset) : null;
    if (this.readout) {
      const n = notes[cur];
      let text = "";
      if (n) {
        const what = n.midi === null ? `a rest of ${n.dur}` : `${midiName(n.midi)} for ${n.dur} beat${n.dur === 1 ? "" : "s"}`;
        text = `Note ${cur + 1} of ${tr.T}: ${what}.`;
        const top = (k) => preds.slice(0, k).map((p) => `${p.token} (${p.p.toFixed(2)})`).join(", ");
        if (phase === "forward" && guesses.length && isTalk()) text += ` Next: ${top(2)}.`;
        else if (phase === "forward" && guesses.length) text += ` Next, the model expects ${top(3)}${came ? `; then came ${came}` : ""}.`;
      }
      if (this.readout.textContent !== text) this.readout.textContent = text;
    }
  }
}
