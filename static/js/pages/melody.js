// The melody page: a next-note model on PITCH:DUR notes. The piano roll, the unrolled network and the model's
// views share one time cursor; in the forward sweep the cursor keeps the melody's own time (each note lasts its
// length at the chosen tempo) and every note sounds as the cursor reaches it (Web Audio, synthesised here).
// Write (W) lets the model continue the notes: each note plays as it is written, at the chosen temperature.

import { Synth } from "../audio.js";
import { bus } from "../bus.js";
import { fillExamples } from "../examples.js";
import { showInputError } from "../inputerror.js";
import { onKeys, playerKeys } from "../keys.js";
import { frequency, parseNote } from "../notes.js";
import { mountPage } from "../panels.js";
import { arrived, bindUnitBox, exposePage, followCursor, followLayout, followUnit, loadCard, pusher, submitOnEnter } from "../pagekit.js";
import { Player, speedFor } from "../player.js";
import { Session } from "../session.js";
import { keepLinks, readParams, writeParams } from "../url.js";
import { Controls } from "../views/controls.js";

const $ = (id) => document.getElementById(id);
const modelId = document.body.dataset.model;
const perf = window.__unrolled;

const P = readParams({
  text: { default: "" },
  step: { type: "int", default: 0 },
  phase: { default: "forward", values: ["forward", "backward"] },
  tempo: { type: "int", default: 120 },
  temperature: { type: "float", default: 0.8 },
  seed: { type: "int", default: -1 },
  play: { type: "bool", default: false },
  write: { type: "bool", default: document.body.dataset.writing === "1" },
});

const state = { unit: 0, layer: 0, trace: null, cursor: null, sounded: -1, writing: false };
const synth = new Synth($("sound"));
const player = new Player({ speed: 2 });
const controls = new Controls($("player"), player);
// the panels (panels.js): a melody model's, from what the page knows before the card arrives
const panels = mountPage({ card: { id: modelId, cell: document.body.dataset.cell, kind: document.body.dataset.kind, vocab_level: "note" } });
const { unrolled } = panels;
const views = [controls, ...Object.values(panels)];

const push = pusher(views);

const tempo = () => Number($("tempo").value) || 120;
const noteAt = (t) => parseNote(state.trace?.tokens[t]) ?? { midi: null, dur: 1 };
/** Steps a second that hold note t for its length at the tempo. */
const noteSpeed = (t) => tempo() / 60 / Math.max(0.125, noteAt(t).dur);

function sound(t) {
  const n = noteAt(t);
  if (n.midi !== null) synth.note(frequency(n.midi), (60 / tempo()) * n.dur * 0.92);
  perf.sounded = { t, midi: n.midi, count: (perf.sounded?.count ?? 0) + 1 };
}

followCursor(state, push, {
  also(cursor) {
    if (cursor.phase === "forward" && state.trace && cursor.t !== state.sounded && cursor.t < state.trace.steps) {
      state.sounded = cursor.t;
      sound(cursor.t);
      // the melody's own time: the cursor stays on each note for its length
      if (cursor.playing) player.setSpeed(noteSpeed(cursor.t));
    } else if (cursor.phase === "backward") {
      state.sounded = -1;
      if (state.trace && cursor.playing && Math.abs(cursor.speed - speedFor(state.trace.T)) > 1e-9) player.setSpeed(speedFor(state.trace.T));
    }
  },
});

followUnit(state, push);
followLayout(state, push, unrolled);

const session = new Session(modelId, {
  besideInput: true, // a bad note is named under the notes, not in a toast over the roll's readout
  onTrace(trace) {
    state.trace = trace;
    state.sounded = -1;
    state.unit = Math.min(state.unit, trace.H - 1);
    const t = state.writing ? Math.max(0, trace.promptSteps - 1) : P.step ? P.step - 1 : 0;
    player.reset(trace.T, { phase: state.writing ? "forward" : P.phase, t, sweeps: "forward" });
    push({ trace, unit: state.unit, layer: state.layer, version: trace.version });
    if (state.writing || P.play) {
      P.play = false;
      player.play();
    }
  },
  onData(trace) {
    arrived(trace, state, player, push);
    perf.state = { ...perf.state, steps: trace.steps, gradFrom: trace.gradFrom, T: trace.T, done: trace.done };
  },
  onDone(trace) {
    perf.loaded = (perf.loaded ?? 0) + 1;
    perf.totalLoss = trace.totalLoss;
    perf.text = trace.tokens.join(" ");
  },
});

/** Trace the notes typed (play: from the first note, sounding). */
async function run(text, { play = false } = {}) {
  state.writing = false;
  P.play = play;
  writeParams({ text, write: null }, { now: true });
  keepLinks({ text });
  document.title = `${modelId}: ${text.slice(0, 40)} · Unrolled`;
  try {
    await session.start({ text, top_k: 5, precision: 4 });
  } catch {
    // shown beside the input by the session
  }
}

/** The model continues the notes typed; each note plays as it is written. */
async function write() {
  const prompt = $("text-input").value.trim();
  if (!prompt) return;
  const temperature = Number($("temperature").value);
  const seed = P.seed >= 0 ? P.seed : Math.floor(Math.random() * 1e9);
  P.seed = -1; // a seed from the URL replays once; the next Write draws anew
  state.writing = true;
  writeParams({ text: prompt, temperature, seed, write: 1 }, { now: true });
  try {
    await session.start({ mode: "generate", prompt, length: 24, temperature, seed, top_k: 5, precision: 4 });
  } catch {
    // shown beside the input by the session
  }
}

async function main() {
  const card = await loadCard(modelId);
  if (!card) return;
  session.card = card;
  const input = $("text-input");
  fillExamples($("examples"), card.examples);
  input.value = P.text || card.examples[0]?.text || "C4:1 D4:1 E4:1 F4:1 G4:2";
  $("tempo").value = String([60, 90, 120, 160, 200].includes(P.tempo) ? P.tempo : 120);
  $("temperature").value = String(Math.max(0.1, Math.min(2, P.temperature)));
  $("temperature-value").textContent = Number($("temperature").value).toFixed(1);
  $("temperature").addEventListener("input", () => ($("temperature-value").textContent = Number($("temperature").value).toFixed(1)));
  $("tempo").addEventListener("change", () => {
    writeParams({ tempo: tempo() === 120 ? null : tempo() });
    if (player.playing && player.phase === "forward") player.setSpeed(noteSpeed(player.t));
  });
  $("examples").addEventListener("change", () => {
    const o = $("examples").selectedOptions[0];
    if (!o?.value) return;
    input.value = o.value;
    $("examples").value = "";
    run(o.value, { play: true });
  });
  $("run-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (input.value.trim()) run(input.value.trim(), { play: true });
    else showInputError("No notes: type PITCH:DUR notes, e.g. C4:1 D4:0.5, then Enter.");
  });
  submitOnEnter(input);
  $("write").addEventListener("click", write);
  bindUnitBox(state);
  onKeys([
    ...playerKeys(player, { " ": "play / pause: the melody sounds as the cursor reads it", ArrowLeft: "one note back / forward (each note sounds)" }),
    { keys: ["w"], does: "the model writes: it continues the notes, and each note plays as it is written", act: write },
    { keys: ["m"], does: "sound on / off", act: () => synth.setMuted(!synth.muted) },
    { keys: ["[", "]"], does: "previous / next unit", act: (e) => bus.emit("unit", { unit: state.unit + (e.key === "]" ? 1 : -1) }) },
    { keys: ["/"], does: "edit the notes", act: () => input.focus() },
  ]);
  if (P.write) await write();
  else await run(input.value.trim(), { play: P.play });
}

exposePage("melody");
main();
