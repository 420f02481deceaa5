// The speech page: a speech model listening. A WAV (a bundled clip, an upload, or the microphone recorded here and
// encoded as a WAV in the browser) goes to POST /api/models/{id}/transcribe and nowhere else; the trace comes back
// and the panels (panels.js: sound, listening, posteriors, collapse, ctcBeams, ctcSweep) follow one time cursor,
// the sound playing in sync (L). G sends the transcript to the translation model: speech to German.

import { speechExample, speechExamples, transcribe, translate } from "../api.js";
import { clearInputError, reportRunError, showInputError } from "../inputerror.js";
import { bindKeys } from "../keys.js";
import { mountMediaPage } from "../mediapage.js";
import { exposePage, loadCard } from "../pagekit.js";
import { speedFor } from "../player.js";
import { Listener, MAX_RECORD_SECONDS, Recorder, clipsOf, onFirstGesture, readTrace, soundOf, withCommas } from "../speech.js";
import { link, readParams, writeParams } from "../url.js";

const $ = (id) => document.getElementById(id);
const modelId = document.body.dataset.model;
const germanId = document.body.dataset.german ?? null;
const perf = window.__unrolled;

const P = readParams({
  example: { default: "" }, // a clip's file name
  text: { default: "" }, // or its words (the zoo's page links a card's examples by their text)
  step: { type: "int", default: 0 },
  phase: { default: "forward", values: ["forward", "backward"] },
});

const state = { trace: null, cursor: null, sound: null, run: 0, card: null, examples: [], unit: 0, layer: 0 };
const { player, push } = mountMediaPage(state, { speed: 15 });
onFirstGesture();

/** Where the WAV came from, beside the inputs. */
function showSource(text) {
  $("source").textContent = text;
}

function showTranscript(text) {
  const el = $("transcript");
  el.replaceChildren();
  if (text === null) return;
  const label = document.createElement("span");
  label.className = "transcript-label";
  label.textContent = "heard:";
  const words = document.createElement("span");
  words.className = "transcript-text";
  words.id = "transcript-text";
  words.textContent = text === "" ? "(nothing)" : text;
  const german = document.createElement("span");
  german.className = "transcript-german";
  german.id = "transcript-german";
  el.append(label, " ", words, " ", german);
  el.dataset.text = text;
}

/** Transcribe a WAV (a Blob): the trace drawn, the cursor at the end of the forward sweep. */
async function run(wav, source) {
  const run = ++state.run;
  stopListening();
  showSource(source);
  perf.sent = { bytes: wav.size, source };
  const bytes = await wav.arrayBuffer();
  const sound = await soundOf(bytes);
  let reply;
  try {
    reply = await transcribe(modelId, bytes);
  } catch (e) {
    if (run !== state.run) return;
    reportRunError(e);
    perf.failed = (perf.failed ?? 0) + 1;
    return;
  }
  if (run !== state.run) return;
  clearInputError();
  const trace = readTrace(reply);
  state.trace = trace;
  state.sound = sound;
  showTranscript(trace.transcript);
  clearGerman();
  player.setSpeed(speedFor(trace.T, 8));
  // unless the link says where: the step that writes the last character (the text whole, the network still busy)
  const last = trace.emitted.findLastIndex((k) => k >= 0);
  const t = P.step ? P.step - 1 : last >= 0 ? last : trace.T - 1;
  player.reset(trace.T, { phase: P.phase, t });
  P.step = 0;
  P.phase = "forward";
  push({ trace, sound });
  player.setAvailable(trace.T, 0, trace.T);
  perf.transcript = trace.transcript;
  perf.trace = { steps: trace.T, frames: trace.frames.length, text: trace.text, beams: trace.beams.map((b) => b.text) };
  perf.loaded = (perf.loaded ?? 0) + 1;
}

// ---- the inputs ----

async function useExample(name) {
  const ex = state.examples.find((e) => e.name === name);
  if (!ex) return;
  writeParams({ example: name, text: null }, { now: true });
  try {
    const bytes = await speechExample(name);
    await run(new Blob([bytes], { type: "audio/wav" }), `example: “${ex.words}”`);
  } catch (e) {
    reportRunError(e);
  }
}

function nextExample() {
  if (!state.examples.length) return;
  const i = state.examples.findIndex((e) => e.name === $("examples").dataset.current);
  const ex = state.examples[(i + 1) % state.examples.length];
  $("examples").dataset.current = ex.name;
  useExample(ex.name);
}

const recorder = new Recorder({
  onStop(wav, error) {
    showRecording(false);
    if (error) {
      showInputError(`The recording could not be read as sound (${error.message}). Record again, a little longer.`);
      return;
    }
    writeParams({ example: null, text: null }, { now: true });
    run(wav, "your recording");
  },
});

function showRecording(on) {
  const b = $("record");
  b.setAttribute("aria-pressed", String(on));
  b.classList.toggle("recording", on);
  b.firstChild.textContent = on ? "■ Stop " : "● Record ";
  perf.recording = on;
  if (on) {
    const tick = () => {
      if (!recorder.recording) return;
      perf.recordedSeconds = recorder.seconds;
      showSource(`recording… ${recorder.seconds.toFixed(1)} s (R stops; at most ${MAX_RECORD_SECONDS} s)`);
      requestAnimationFrame(tick);
    };
    tick();
  }
}

async function toggleRecording() {
  if (recorder.recording) {
    recorder.stop();
    return;
  }
  stopListening();
  try {
    await recorder.start();
  } catch (e) {
    showInputError(`The microphone: ${e.message || e.name}. Allow the page to use it, or upload a WAV (U).`);
    return;
  }
  clearInputError();
  showRecording(true);
}

$("record").addEventListener("click", () => toggleRecording());
$("upload").addEventListener("change", () => {
  const file = $("upload").files?.[0];
  $("upload").value = "";
  if (!file) return;
  writeParams({ example: null, text: null }, { now: true });
  run(file, `upload: ${file.name}`);
});
$("examples").addEventListener("change", () => {
  const name = $("examples").value;
  $("examples").value = "";
  if (!name) return;
  $("examples").dataset.current = name;
  useExample(name);
});

// ---- listening: the sound from the cursor, the cursor following it ----

const listener = new Listener((playing) => {
  $("listen").classList.toggle("playing", playing);
  if (playing) perf.listened = (perf.listened ?? 0) + 1;
});
const stopListening = () => listener.stop();

function listen() {
  if (!listener.playing && (!state.trace || !state.sound)) {
    showInputError(state.trace ? "The browser could not decode this sound to play it." : "Nothing to play yet: choose a clip, record (R) or upload (U).");
    return;
  }
  player.pause();
  listener.toggle(state.trace, state.sound, state.cursor?.t ?? null);
}

$("listen").addEventListener("click", () => listen());

// ---- speech to German ----

function clearGerman() {
  $("german-english").textContent = "";
  $("german-output").textContent = "";
  $("german-link").hidden = true;
  if ($("transcript-german")) $("transcript-german").textContent = "";
  perf.german = null;
}

async function toGerman() {
  if (!germanId) {
    showInputError("The zoo has no translation model to send the transcript to.");
    return;
  }
  const text = state.trace?.transcript?.trim() ?? "";
  if (!text) {
    showInputError("Nothing to translate: the model heard no words. Choose a clip, record (R) or upload (U).");
    return;
  }
  const english = withCommas(text);
  $("german-english").textContent = english;
  $("german-output").textContent = "…";
  try {
    const reply = await translate(germanId, { text: english, beam: 1, top_k: 5 });
    $("german-output").textContent = reply.output;
    if ($("transcript-german")) $("transcript-german").textContent = `→ ${reply.output}`;
    const a = $("german-link");
    a.href = link(`/models/${germanId}`, { text: english });
    a.hidden = false;
    perf.german = { english, output: reply.output };
    clearInputError();
  } catch (e) {
    $("german-output").textContent = "";
    reportRunError(e);
  }
  $("panel-german").scrollIntoView({ block: "nearest" });
}

$("to-german").addEventListener("click", () => toGerman());

bindKeys(player, {
  more: [
    { keys: ["r"], does: "record from the microphone / stop and transcribe", act: () => toggleRecording() },
    { keys: ["u"], does: "upload a WAV to transcribe", act: () => $("upload").click() },
    { keys: ["e"], does: "the next example clip", act: () => nextExample() },
    { keys: ["l"], does: "listen: play the sound from the cursor, the cursor following it", act: () => listen() },
    { keys: ["g"], does: "send the transcript to German", act: () => toGerman() },
  ],
});

async function main() {
  state.card = await loadCard(modelId);
  if (!state.card) return;
  try {
    state.examples = clipsOf((await speechExamples()).examples, state.card);
  } catch (e) {
    reportRunError(e);
  }
  for (const ex of state.examples) {
    const o = new Option(ex.words, ex.name);
    o.title = ex.note;
    $("examples").append(o);
  }
  if (!state.examples.length) {
    $("examples").disabled = true;
    showSource("No example clips here: record (R) or upload a WAV (U).");
    perf.loaded = perf.loaded ?? 0;
    return;
  }
  const first = state.examples.find((e) => e.name === P.example || (P.text && e.words === P.text)) ?? state.examples[0];
  $("examples").dataset.current = first.name;
  await useExample(first.name);
}

exposePage("speech");
main();
