// The lab: the knobs of the vanishing gradient, live training, every step's influence (the Jacobian), one token
// changed (the diff) and gate saturation, the last three for the RNN, LSTM and GRU of one task on one input.

import { ApiError, diff, getModel, jacobian, labGradients, trace as traceRest } from "../api.js";
import { bus } from "../bus.js";
import { onKeys } from "../keys.js";
import { exposePage, showUnit } from "../pagekit.js";
import { Trace } from "../trace.js";
import { clearUnknown, showRead } from "../unknown.js";
import { readParams, writeParams } from "../url.js";
import { DiffView } from "../views/diffview.js";
import { JacobianView } from "../views/jacobian.js";
import { KnobsView } from "../views/knobs.js";
import { TrainView, Trainer } from "../views/labtrain.js";
import { SaturationView } from "../views/saturation.js";

const $ = (id) => document.getElementById(id);
const perf = window.__unrolled;
const TASKS = JSON.parse(document.body.dataset.tasks || "{}");
// task → {min_gap, what}: the least gap between an input's first and last token from which the Jacobian and
// the one-token diff teach their lesson on the task's models (measured: app/training/tasks/memory.py)
const LESSONS = JSON.parse(document.body.dataset.lessons || "{}");
const CELLS = ["rnn", "lstm", "gru"];

const P = readParams({
  task: { default: TASKS.memory ? "memory" : Object.keys(TASKS)[0] ?? "" },
  text: { default: "" },
  edited: { default: "" },
  cell: { default: "lstm", values: CELLS },
  unit: { type: "int", default: 0 },
});

/** A failed request as a sentence for the page (a missing endpoint says so plainly). */
function problem(e) {
  if (e instanceof ApiError && (e.status === 404 || e.status === 405) && !e.message.includes("model")) return "not available on this server yet";
  return e instanceof ApiError ? `${e.status ? `${e.status}: ` : ""}${e.message}` : String(e?.message ?? e);
}

// ---- 1. the knobs ----

const knobs = new KnobsView($("knobs-plot"), { readout: $("knobs-readout") });
const knobState = { inflight: false, queued: null, seq: 0 };
perf.knobs = { latencies: [], parts: [], draws: 0, requests: 0, asked: 0, inflight: 0, maxInflight: 0, last: null };

function knobSettings() {
  const num = (id, fallback) => {
    const v = Number($(id).value);
    return Number.isFinite(v) && $(id).value !== "" ? v : fallback;
  };
  const clip = $("knob-clip").value.trim();
  return {
    cell: $("knob-cell").value,
    steps: Math.round(num("knob-steps", 200)),
    hidden_size: Math.round(num("knob-hidden", 32)),
    radius: num("knob-radius", 0.9),
    nonlinearity: $("knob-nonlinearity").value,
    forget_bias: num("knob-forget", 0),
    gate_bias: num("knob-gate", -2),
    step: 10 ** num("knob-step", -2), // the slider is log10 Δ
    clip: clip === "" ? null : Number(clip),
    seed: Math.round(num("knob-seed", 0)),
  };
}

function showKnobs() {
  const cell = $("knob-cell").value;
  for (const el of document.querySelectorAll("#knobs [data-for]")) el.hidden = !el.dataset.for.split(" ").includes(cell);
  $("knob-radius-value").textContent = Number($("knob-radius").value).toFixed(2);
  $("knob-forget-value").textContent = Number($("knob-forget").value).toFixed(2);
  $("knob-gate-value").textContent = Number($("knob-gate").value).toFixed(2);
  $("knob-step-value").textContent = (10 ** Number($("knob-step").value)).toPrecision(2);
}

/** A knob moved: at most one request in flight; the latest settings wait for it and win. */
function knobChanged() {
  showKnobs();
  const request = { settings: knobSettings(), at: performance.now(), seq: ++knobState.seq };
  perf.knobs.asked = request.seq;
  if (knobState.inflight) {
    knobState.queued = request;
    return;
  }
  sendKnobs(request);
}

async function sendKnobs(request) {
  knobState.inflight = true;
  perf.knobs.requests++;
  perf.knobs.inflight++;
  perf.knobs.maxInflight = Math.max(perf.knobs.maxInflight, perf.knobs.inflight);
  let reply = null;
  try {
    reply = await labGradients(request.settings);
    $("knobs-readout").dataset.kind = "info";
  } catch (e) {
    $("knobs-readout").textContent = `The gradient knobs: ${problem(e)}`;
    $("knobs-readout").dataset.kind = "error";
  }
  knobState.inflight = false;
  perf.knobs.inflight--;
  const next = knobState.queued;
  knobState.queued = null;
  if (next) sendKnobs(next); // the newer settings are asked for while this answer is drawn
  if (!reply) return;
  const answered = performance.now();
  await knobs.update({ result: { settings: request.settings, reply } });
  const ms = performance.now() - request.at;
  perf.knobs.latencies.push(ms);
  perf.knobs.parts.push({ answer: answered - request.at, draw: performance.now() - answered }); // where the time goes
  perf.knobs.draws++;
  perf.knobs.last = { settings: request.settings, seq: request.seq, ms };
  writeParams({ radius: request.settings.radius });
}

for (const el of document.querySelectorAll("#knobs input, #knobs select")) {
  el.addEventListener(el.type === "range" ? "input" : "change", knobChanged);
}
$("knobs").addEventListener("submit", (e) => e.preventDefault());
const keep = () => knobs.update({ keep: true });
const clear = () => knobs.update({ clear: true });
$("knob-keep").addEventListener("click", keep);
$("knob-clear").addEventListener("click", clear);

// ---- 2. train it yourself ----

const train = new TrainView($("train-plots"), { done: $("train-done"), message: $("train-message"), onReplay: replayTraining });
const trainer = new Trainer(train, {
  report: (r) => {
    setRunning(r.state === "running" || r.state === "retrying" || r.state === "replaying");
    const done = r.done ? { done: r.done } : {};
    perf.labTrain = { ...perf.labTrain, ...r, ...done, points: train.points };
  },
});

function setRunning(on) {
  $("train-start").firstChild.textContent = on ? "Stop " : "Start ";
  $("train-start").classList.toggle("running", on);
}

function startTraining() {
  if (trainer.active) {
    train.update({ message: "Stopping…" }); // first: a playback or a wait ends at once, saying so
    trainer.stop();
    return;
  }
  const cells = [...document.querySelectorAll("#train-form input[name=cells]:checked")].map((c) => c.value);
  const body = { task: "memory", n: Number($("train-n").value), cells, seconds: Number($("train-seconds").value), steps: Number($("train-steps").value) };
  perf.labTrain = { state: "running", points: 0 };
  trainer.start(body, `Training ${cells.map((c) => c.toUpperCase()).join(", ")} on the memory task, gap N = ${body.n}, for ${body.steps} steps each (${body.seconds} s at most)…`);
}

/** The run recorded on the server, played through the same plots at its pace. */
function replayTraining() {
  perf.labTrain = { state: "replaying", points: 0 };
  trainer.replay();
}

$("train-form").addEventListener("submit", (e) => {
  e.preventDefault();
  startTraining();
});

// ---- 3–5. one task, one input: the Jacobian, the diff, gate saturation ----

const lower = { task: null, models: [], cards: {}, text: "", edited: "", traces: {}, unit: Math.max(0, P.unit), run: 0 };
const jacobianView = new JacobianView($("jacobian-plots"), { unrolledRoot: $("jacobian-unrolled"), readout: $("jacobian-readout"), legend: $("jacobian-legend") });
const diffView = new DiffView($("diff-plots"), { tokens: $("diff-tokens"), readout: $("diff-readout"), onToken: changeToken });
const saturationView = new SaturationView($("saturation-plot"), { unitRoot: $("saturation-unit"), readout: $("saturation-readout") });

/** The model of each cell type for a task (the route lists them RNN, LSTM, GRU). */
const modelsOf = (task) => (TASKS[task] ?? []).map((id, i) => ({ id, cell: CELLS[i] }));

/** Where token i of a text is: character models read one token per character (skipping whitespace if they do). */
function tokenPositions(text, card) {
  if (card?.vocab_level !== "char") return null;
  const skip = !(card.vocab ?? []).includes(" ");
  const out = [];
  [...text].forEach((ch, k) => {
    if (!(skip && /\s/.test(ch))) out.push(k);
  });
  return out;
}

/**
 * Another token of `old`'s kind (a digit for a digit, a letter for a letter; a classifier's label for a label):
 * the first of them, or with `cycle` the one after `old`. The vocabulary's, or for a classifier (its card has no
 * vocabulary) its labels and the input's own characters.
 */
function otherToken(old, card, text, cycle = false) {
  const up = old.toUpperCase();
  const labels = card?.labels ?? [];
  const known = card?.vocab ?? [...new Set([...labels, ...text.toUpperCase()])].sort();
  const vocab = known.filter((t) => t.length === 1 && t.trim());
  const kind = labels.includes(up) ? labels : vocab.filter((t) => /\d/.test(t) === /\d/.test(up) && !labels.includes(t));
  const pool = kind.length > 1 ? kind : vocab;
  if (!pool.length) return old;
  return cycle ? pool[(pool.indexOf(up) + 1) % pool.length] : pool.find((t) => t !== up) ?? old;
}

/** The text with token i changed (the first by default); `from`: the token shown there now, to cycle on from it. */
function editOf(text, card, i = 0, from = null) {
  const at = tokenPositions(text, card);
  if (!at || at[i] === undefined) return text;
  const chars = [...text];
  const next = otherToken(from ?? chars[at[i]], card, text, from !== null);
  chars[at[i]] = next.toUpperCase() === chars[at[i]].toUpperCase() ? otherToken(next, card, text, true) : next;
  return chars.join("");
}

/** A click on token i of the input: the edit moves there (clicked again, the token changes again). */
function changeToken(i) {
  const card = lower.cards[lower.models[0]?.id];
  const base = $("text-input").value;
  const at = tokenPositions(base, card);
  if (!at || at[i] === undefined) return;
  const current = [...$("edited-input").value];
  const was = current.length === [...base].length && current[at[i]] !== [...base][at[i]] ? current[at[i]] : null;
  $("edited-input").value = editOf(base, card, i, was);
  runDiff();
}

/**
 * The input's gap against the task's lesson: {need, gap, short}, or null when the task's lesson takes any input.
 * Beside the input it is always said; an input too short gets the message in place of the Jacobian's and the
 * diff's pictures, which over a short gap show the opposite of the lesson (nothing has had time to vanish yet).
 */
function lessonGap(text) {
  const lesson = LESSONS[lower.task];
  const at = tokenPositions(text, lower.cards[lower.models[0]?.id]) ?? [];
  const gap = Math.max(0, at.length - 2);
  const short = Boolean(lesson) && gap < lesson.min_gap;
  const need = $("lesson-need");
  need.hidden = !lesson;
  need.dataset.kind = short ? "warning" : "info";
  need.textContent = lesson ? `This lesson needs a gap of at least ${lesson.min_gap} ${lesson.what}${text ? `: this input has ${gap}` : ""}.` : "";
  const message = short
    ? `This lesson needs a gap of at least ${lesson.min_gap} ${lesson.what}; this input has ${gap}. Over a shorter gap nothing has had time to vanish: the plain RNN still holds the letter, and the pictures would show the opposite of the lesson. Add digits, or pick an example.`
    : "";
  for (const id of ["jacobian-short", "diff-short"]) {
    $(id).textContent = message;
    $(id).hidden = !short;
  }
  for (const id of ["jacobian-plots", "jacobian-readout", "jacobian-unrolled", "jacobian-legend", "diff-tokens", "diff-plots", "diff-readout"]) $(id).hidden = short;
  if (!lesson) return null;
  perf.labLesson = { need: lesson.min_gap, gap, short, checked: (perf.labLesson?.checked ?? 0) + 1 };
  return { need: lesson.min_gap, gap, short };
}

async function loadTask(task) {
  lower.task = task;
  lower.models = modelsOf(task);
  const cards = await Promise.all(lower.models.map((m) => getModel(m.id).catch(() => null)));
  lower.cards = Object.fromEntries(lower.models.map((m, i) => [m.id, cards[i]]));
}

async function runLower({ keepEdit = false } = {}) {
  const text = $("text-input").value.trim();
  if (!text) {
    bus.emit("status", { kind: "error", message: "The input is empty: type something to run, then Enter." });
    return;
  }
  const card = lower.cards[lower.models[0]?.id];
  if (!keepEdit || !$("edited-input").value.trim()) $("edited-input").value = editOf(text, card);
  lower.text = text;
  writeParams({ task: lower.task, text }, { now: true });
  const n = ++lower.run;
  bus.emit("status", { message: "" });
  const short = lessonGap(text)?.short ?? false;
  clearUnknown();
  const settle = (promises) => Promise.all(promises.map((p) => p.then((r) => r, (e) => ({ error: problem(e) }))));
  const [traces, jac] = await Promise.all([
    settle(lower.models.map((m) => traceRest(m.id, { text, top_k: 1, precision: 4 }))),
    short ? null : settle(lower.models.map((m) => jacobian(m.id, { text, layer: 0, norm: "spectral" }))),
    runDiff(n),
  ]);
  if (n !== lower.run) return;
  lower.traces = {};
  lower.models.forEach((m, i) => {
    if (!traces[i].error) lower.traces[m.id] = Trace.fromBody(traces[i], lower.cards[m.id]);
    showRead(lower.traces[m.id], lower.cards[m.id]);
  });
  const failed = lower.models.filter((m, i) => traces[i].error).map((m, i) => `${m.id}: ${traces[i].error}`);
  if (failed.length) bus.emit("status", { kind: "error", message: failed.join(" · ") });
  if (jac) jacobianView.update({ traces: lower.traces, models: lower.models, replies: jac });
  showSaturation();
  perf.loaded = (perf.loaded ?? 0) + 1;
}

async function runDiff(n = lower.run) {
  const text = $("text-input").value.trim();
  const edited = $("edited-input").value.trim();
  if (!text || !edited || lessonGap(text)?.short) return;
  writeParams({ edited: edited === editOf(text, lower.cards[lower.models[0]?.id]) ? null : edited });
  const replies = await Promise.all(lower.models.map((m) => diff(m.id, { text, edited }).catch((e) => ({ error: problem(e) }))));
  if (n !== lower.run) return;
  diffView.update({ models: lower.models, replies });
}

function saturationModel() {
  const cell = $("saturation-cell").value;
  return lower.models.find((m) => m.cell === cell) ?? lower.models[0];
}

function showSaturation() {
  const m = saturationModel();
  const tr = m ? lower.traces[m.id] ?? null : null;
  if (tr) lower.unit = Math.min(lower.unit, tr.H - 1);
  showUnit(lower.unit);
  saturationView.update({ trace: tr, unit: lower.unit });
  const link = $("saturation-link");
  if (m) {
    const q = new URLSearchParams({ text: lower.text });
    if (lower.unit) q.set("unit", String(lower.unit));
    link.href = `/models/${encodeURIComponent(m.id)}?${q}`;
    link.textContent = `open ${m.id} in the model view`;
  }
  writeParams({ cell: $("saturation-cell").value, unit: lower.unit || null });
}

// The unit followed: the same bus event the model page uses; here the saturation scatter, its unit plot, the unit
// box and the model link follow it.
bus.on("unit", ({ unit }) => {
  const tr = lower.traces[saturationModel()?.id];
  lower.unit = Math.max(0, Math.min((tr?.H ?? 1) - 1, unit));
  perf.state = { ...perf.state, unit: lower.unit };
  showSaturation();
});
document.querySelector(".unit-box").addEventListener("click", (e) => {
  const b = e.target.closest("[data-unit]");
  if (b) bus.emit("unit", { unit: lower.unit + Number(b.dataset.unit) });
});
$("saturation-cell").addEventListener("change", showSaturation);

$("run-form").addEventListener("submit", (e) => {
  e.preventDefault();
  runLower();
});
$("text-input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    $("run-form").requestSubmit();
  }
});
$("edited-input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    runDiff();
  }
});
$("diff-run").addEventListener("click", () => runDiff());
$("task-select").addEventListener("change", async (e) => {
  await loadTask(e.target.value);
  $("text-input").value = lower.cards[lower.models[0]?.id]?.examples?.[0]?.text ?? "";
  runLower();
});

bus.on("layout", () => {
  knobs.render();
  jacobianView.unrolled.resize();
  jacobianView.update({ relayout: true });
  diffView.update({ relayout: true });
  saturationView.update({});
});

onKeys([
  { keys: ["r"], does: "the radius slider (then ← → turn it)", act: () => $("knob-radius").focus() },
  { keys: ["k", "c"], does: "keep the current gradient curve / clear the kept ones", act: (e) => (e.key.toLowerCase() === "k" ? keep() : clear()) },
  { keys: ["t"], does: "start / stop the live training", act: startTraining },
  { keys: ["v"], does: "play the training run recorded on the server", act: replayTraining },
  { keys: ["/"], does: "edit the input of the lower sections (Enter runs it)", act: () => $("text-input").focus() },
  { keys: ["e"], does: "edit the changed input", act: () => $("edited-input").focus() },
  { keys: ["j"], does: "pick a cell of the Jacobian triangles with the keyboard", act: () => jacobianView.focus() },
  { keys: ["u"], does: "pick a unit in the gate saturation plot with the keyboard", act: () => saturationView.focus() },
  { keys: ["[", "]"], does: "previous / next unit", act: (e) => bus.emit("unit", { unit: lower.unit + (e.key === "]" ? 1 : -1) }) },
]);

async function main() {
  const r = readParams({ radius: { type: "float", default: 0 } }).radius;
  if (r > 0) $("knob-radius").value = String(r);
  showKnobs();
  knobChanged();
  const select = $("task-select");
  for (const task of Object.keys(TASKS)) select.append(new Option(task, task));
  if (!select.options.length) {
    $("run-form").hidden = true;
    return;
  }
  select.value = TASKS[P.task] ? P.task : select.options[0].value;
  $("saturation-cell").value = P.cell;
  await loadTask(select.value);
  $("text-input").value = P.text || lower.cards[lower.models[0]?.id]?.examples?.[0]?.text || "";
  if (P.edited) $("edited-input").value = P.edited;
  await runLower({ keepEdit: Boolean(P.edited) });
}

exposePage("lab");
main();
