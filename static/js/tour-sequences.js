// Talk mode's melodies and series: the panels a melody model (roll) and a series model (forecast) fill, either on
// the scene's own cursor (a melody or series scene) or, beside another model (the sequences scene), as guests
// that run their own model on its first example: the melody plays in its own time (sound from the first key or
// click, and again on a click on the roll), the series is traced and forecast.

import { generate } from "./api.js";
import { sharedSynth } from "./audio.js";
import { frequency, parseNote } from "./notes.js";
import { Session } from "./session.js";
import { PianoRollView } from "./views/pianoroll.js";
import { SeriesPlotView } from "./views/seriesplot.js";

export const TEMPO = 120; // quarter notes a minute
const perf = (window.__unrolled = window.__unrolled ?? {});


/** A sound indicator for a panel's tools. */
export function soundButton(tools) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "sound";
  tools.prepend(b);
  return sharedSynth(b);
}

/** Sound note t of a trace (a rest is silent); returns the note. */
export function soundNote(synth, trace, t, tempo = TEMPO) {
  const n = parseNote(trace.tokens[t]) ?? { midi: null, dur: 1 };
  if (n.midi !== null) synth.note(frequency(n.midi), (60 / tempo) * n.dur * 0.92);
  return n;
}

/** A melody model on its first example, played in its own time beside the scene's model. */
export class MelodyGuest {
  constructor(panel, card, { height = 170 } = {}) {
    this.card = card;
    this.synth = soundButton(panel.tools);
    this.roll = new PianoRollView(panel.body, { height, readout: panel.info });
    this.trace = null;
    this.timer = null;
    this.closed = false;
    this.session = new Session(card.id, { card, onTrace: (tr) => (this.trace = tr), onData: () => {}, onDone: (tr) => this.begin(tr), expose: false });
    let done;
    this.ready = new Promise((resolve) => (done = resolve));
    this.done = done;
    // the first gesture starts the sound: the tune starts again, now heard
    this.wake = () => setTimeout(() => this.synth.running && !this.heard && this.playFrom(0), 30);
    window.addEventListener("keydown", this.wake);
    window.addEventListener("pointerdown", this.wake);
    panel.body.addEventListener("click", () => this.playFrom(0));
  }

  /** Runs once: an input the audience types is the scene's model's, not the guest's. */
  start() {
    if (this.started) return;
    this.started = true;
    const text = this.card.examples?.[0]?.text ?? "C4:1 E4:1 G4:1 C5:2";
    this.session.start({ text, top_k: 5, precision: 4 }).catch(() => this.done());
  }

  begin(tr) {
    this.trace = tr;
    this.done();
    this.playFrom(0);
  }

  playFrom(t) {
    if (this.closed || !this.trace) return;
    clearTimeout(this.timer);
    if (this.synth.running) this.heard = true;
    const tr = this.trace;
    const step = (k) => {
      if (this.closed) return;
      this.at = k;
      this.roll.update({ trace: tr, cursor: { phase: "forward", t: k } });
      const n = soundNote(this.synth, tr, k);
      perf.tourMelody = { model: tr.model, t: k, T: tr.T, playing: k < tr.T - 1, sounded: (perf.tourMelody?.sounded ?? 0) + 1 };
      if (k + 1 < tr.T) this.timer = setTimeout(() => step(k + 1), (60000 / TEMPO) * n.dur);
    };
    step(t);
  }

  /** The stage was zoomed: draw the roll again at its new width. */
  relayout() {
    if (this.trace && this.at !== undefined) this.roll.update({ trace: this.trace, cursor: { phase: "forward", t: this.at }, relayout: true });
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    window.removeEventListener("keydown", this.wake);
    window.removeEventListener("pointerdown", this.wake);
    this.session.close();
  }
}

/** A series model on its first example: traced (one-step predictions) and forecast, beside the scene's model. */
export class SeriesGuest {
  constructor(panel, card, { height = 170, length = 20 } = {}) {
    this.card = card;
    this.example = card.examples?.[0] ?? { values: [1, 2, 3] };
    this.length = length;
    this.forecast = null;
    this.trace = null;
    this.closed = false;
    const first = this.example.first ?? null;
    this.plot = new SeriesPlotView(panel.body, { first: () => first, forecast: () => this.forecast, readout: panel.info, height, name: "tour-series" });
    this.session = new Session(card.id, { card, onTrace: (tr) => (this.trace = tr), onData: () => {}, onDone: () => {}, expose: false });
  }

  start() {
    if (this.ready) return;
    const values = this.example.values;
    this.ready = (async () => {
      try {
        const tr = await this.session.start({ values, loss: "last", precision: 4 });
        const reply = await generate(this.card.id, { values, length: this.length, precision: 6 });
        if (this.closed || !tr) return;
        this.forecast = reply.forecast;
        this.plot.update({ trace: tr, cursor: { phase: "forward", t: tr.T - 1 } });
        perf.tourSeries = { model: tr.model, steps: tr.T, forecast: reply.forecast.map((v) => v[0]) };
      } catch {
        // the session said it in the status line
      }
    })();
  }

  relayout() {
    this.plot.update({ relayout: true });
  }

  close() {
    this.closed = true;
    this.session.close();
  }
}
