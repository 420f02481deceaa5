// The series page: a model that reads numbers. Paste numbers (commas, spaces or new lines between them): the
// stream traces them (one-step predictions, states, gates, BPTT with ∂L/∂x_t) and the generate endpoint runs
// the free-running forecast. A bad number is the API's own message, shown under the input.
// A classifier (the card's target "classify": the spoken digits) reads frames, one a line, and says its answer:
// the frames and its label probabilities after every frame are drawn, and no forecast is asked for.

import { ApiError, generate } from "../api.js";
import { bus } from "../bus.js";
import { showInputError } from "../inputerror.js";
import { bindKeys } from "../keys.js";
import { exampleFrames, exampleText, parseFrames, parseNumbers } from "../numbers.js";
import { mountPage } from "../panels.js";
import { arrived, bindUnitBox, exposePage, followCursor, followLayout, followUnit, loadCard, pusher, submitOnEnter } from "../pagekit.js";
import { Player, speedFor } from "../player.js";
import { Session } from "../session.js";
import { bindDeleteButton } from "../upload.js";
import { readParams, writeParams } from "../url.js";
import { Controls } from "../views/controls.js";
import { answerAt, pct } from "../views/seriesclass.js";

const $ = (id) => document.getElementById(id);
const modelId = document.body.dataset.model;
const perf = window.__unrolled;
const classify = document.body.dataset.target === "classify";

const P = readParams({
  values: { default: "" },
  first: { default: "" },
  example: { type: "int", default: 1 },
  loss: { default: "last", values: ["last", "sum"] },
  label: { default: "" },
  length: { type: "int", default: 20 },
  step: { type: "int", default: 0 },
  phase: { default: "forward", values: ["forward", "backward"] },
  play: { type: "bool", default: false },
});

const state = { unit: 0, layer: 0, trace: null, cursor: null, forecast: null, first: null, run: 0 };
const player = new Player({ speed: 8 });
const controls = new Controls($("player"), player);
// the panels (panels.js): the series and ∂L/∂x_t read the first year and the forecast from the page's state
const { cell, kind, step } = document.body.dataset;
const panels = mountPage({ card: { id: modelId, cell, kind, step }, stage: { first: () => state.first, get forecast() { return state.forecast; } } });
const unrolled = panels.unrolled;
const views = [controls, ...Object.values(panels)];

const push = pusher(views);

/** A bad number's message under the numbers (#values-error: the page's own place for the shared line). */
function showError(message) {
  showInputError(message);
  perf.valuesError = message ?? "";
}

/** Values far outside what the model was trained on (the trace's `outliers`): named beside the input, by year. */
function showWarning(outliers) {
  const el = $("values-warning");
  const far = outliers?.values ?? [];
  const where = (t) => (state.first === null ? `value ${t + 1}` : String(state.first + t));
  const [lo, hi] = outliers?.plausible?.[0] ?? [0, 0];
  const trained = outliers?.trained?.[0];
  const named = far.slice(0, 6).map((o) => `${o.value} (${where(o.t)})`).join(", ") + (far.length > 6 ? ` and ${far.length - 6} more` : "");
  const text = far.length
    ? `Far outside what the model was trained on${trained ? ` (${trained[0]} to ${trained[1]})` : ""}: ${named}. What it predicts from ${far.length === 1 ? "it" : "them"} is extrapolation; the plot keeps its axis to the plausible ${lo} to ${hi} and marks ${far.length === 1 ? "it" : "them"} at its edge.`
    : "";
  el.textContent = text;
  el.hidden = !text;
  perf.valuesWarning = text;
}

followCursor(state, push);
followUnit(state, push);
followLayout(state, push, unrolled);

const session = new Session(modelId, {
  besideInput: true,
  onTrace(trace) {
    state.trace = trace;
    showWarning(trace.outliers);
    state.unit = Math.min(state.unit, trace.H - 1);
    player.setSpeed(speedFor(trace.T));
    player.reset(trace.T, { phase: P.phase, t: P.step ? P.step - 1 : trace.T - 1 });
    push({ trace, unit: state.unit, layer: state.layer, version: trace.version });
  },
  onData(trace) {
    arrived(trace, state, player, push);
  },
  onDone(trace) {
    perf.loaded = (perf.loaded ?? 0) + 1;
    perf.series = { steps: trace.T, values: trace.values.map((v) => v?.[0]), predicted: trace.predicted.map((v) => v?.[0]) };
    if (classify) showPrediction(trace);
    if (P.play) {
      P.play = false;
      player.play();
    }
  },
});

/** A classifier's answer after the last frame, large above the panels (and what L was measured against). */
function showPrediction(trace) {
  const el = $("prediction");
  if (!trace) {
    el.textContent = "";
    perf.prediction = null;
    return;
  }
  const { label, p } = answerAt(trace, trace.T - 1);
  const given = trace.labelSource === "given" ? ` · L measured against ${trace.label}` : "";
  el.textContent = `The model hears: ${label} (${pct(p)})${given}`;
  perf.prediction = label;
}

async function run() {
  if (classify) return runClassify();
  const text = $("text-input").value;
  const values = parseNumbers(text);
  const typed = $("first-input").value.trim();
  state.first = /^-?\d{1,6}$/.test(typed) ? Number(typed) : null;
  const loss = $("loss-select").value;
  const length = Number($("length-select").value);
  writeParams({ values: values.join(", "), first: state.first ?? null, loss: loss === "last" ? null : loss, length: length === 20 ? null : length, example: null }, { now: true });
  for (const a of document.querySelectorAll("[data-keep]")) {
    const url = new URL(a.href, window.location.href);
    url.searchParams.set("values", values.join(", "));
    if (state.first !== null) url.searchParams.set("first", String(state.first));
    a.href = url.pathname + url.search;
  }
  if (values.length === 0) {
    showError("No numbers: paste some, with commas, spaces or new lines between them, then Enter.");
    return;
  }
  const run = ++state.run;
  showError("");
  showWarning(null);
  state.forecast = null;
  perf.forecast = null;
  try {
    await session.start({ values, loss, precision: 4 });
  } catch (e) {
    if (run === state.run) showError(e.message);
    return;
  }
  try {
    const reply = await generate(modelId, { values, length, precision: 6 });
    if (run !== state.run) return;
    state.forecast = reply.forecast;
    perf.forecast = reply.forecast.map((v) => v[0]);
    push({ trace: state.trace, version: state.trace?.version });
  } catch (e) {
    if (run === state.run) showError(e instanceof ApiError ? e.message : String(e));
  }
}

/** A classifier's run: the frames traced (against the label chosen, or its own answer); nothing forecast. */
async function runClassify() {
  const values = parseFrames($("text-input").value);
  const loss = $("loss-select").value;
  const label = $("label-select").value;
  writeParams({ values: null, loss: loss === "last" ? null : loss, label: label || null }, { now: true });
  if (values.length === 0) {
    showError("No frames: paste some, one a line or a semicolon between them, each frame's numbers with spaces or commas between them, then Enter.");
    return;
  }
  const run = ++state.run;
  showError("");
  showWarning(null);
  showPrediction(null);
  try {
    await session.start({ values, loss, precision: 4, ...(label ? { label } : {}) });
  } catch (e) {
    if (run === state.run) showError(e.message);
  }
}

async function main() {
  const card = await loadCard(modelId);
  if (!card) return;
  session.card = card;
  const examples = card.examples ?? [];
  examples.forEach((ex, i) => {
    const what = classify ? `${ex.label ?? "?"}: ${ex.values.length} frames` : `${ex.values.length} values${ex.first !== undefined ? ` from ${ex.first}` : ""}`;
    const o = new Option(`${what}${ex.note ? ` — ${ex.note}` : ""}`, String(i));
    $("examples").append(o);
  });
  const useExample = (i) => {
    const ex = examples[i];
    if (!ex) return;
    if (classify) {
      $("text-input").value = exampleFrames(ex);
      $("label-select").value = ex.label ?? "";
      return;
    }
    $("text-input").value = exampleText(ex);
    $("first-input").value = ex.first !== undefined ? String(ex.first) : "";
  };
  if (classify) {
    useExample(Math.max(0, P.example - 1));
    if (P.label) $("label-select").value = P.label;
  } else if (P.values) {
    $("text-input").value = P.values;
    $("first-input").value = P.first;
  } else useExample(Math.max(0, P.example - 1));
  $("loss-select").value = P.loss;
  if (classify) $("label-select").addEventListener("change", () => $("run-form").requestSubmit());
  else if (![...$("length-select").options].some((o) => Number(o.value) === P.length)) $("length-select").append(new Option(String(P.length), String(P.length)));
  if (!classify) $("length-select").value = String(P.length);
  $("examples").addEventListener("change", () => {
    const i = $("examples").value;
    if (i === "") return;
    useExample(Number(i));
    $("examples").value = "";
    P.step = 0;
    run();
  });
  for (const id of classify ? ["loss-select"] : ["loss-select", "length-select"]) $(id).addEventListener("change", () => $("run-form").requestSubmit());
  $("run-form").addEventListener("submit", (e) => {
    e.preventDefault();
    P.step = 0;
    P.phase = "forward";
    run();
  });
  submitOnEnter($("text-input"));
  bindUnitBox(state);
  bindKeys(player, {
    units: (d) => bus.emit("unit", { unit: state.unit + d }),
    input: $("text-input"),
    words: { b: "switch between the forward sweep and the BPTT sweep (∂L/∂x_t)", "/": "paste or edit the numbers" },
  });
  await run();
}

exposePage("series");
bindDeleteButton(modelId); // an uploaded series model's Delete (templates/_delete.html)
main();
