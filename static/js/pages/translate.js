// The translation page: an encoder–decoder on a number a person types, every view on one time cursor that
// runs over the encoder's words, then the decoder's letters (and back, for BPTT). One switch runs the same
// input on the model of the same task with attention switched (numbers-gru-attention ↔ numbers-gru).

import { getModel } from "../api.js";
import { bus } from "../bus.js";
import { fillExamples } from "../examples.js";
import { mountPage } from "../panels.js";
import { showInputError } from "../inputerror.js";
import { onKeys, playerKeys } from "../keys.js";
import { Player, speedFor } from "../player.js";
import { TranslateSession } from "../translation.js";
import { link, readParams, writeParams } from "../url.js";
import { Controls } from "../views/controls.js";

const $ = (id) => document.getElementById(id);
const perf = window.__unrolled;
const BEAMS = [1, 2, 3, 4, 5, 8];

const P = readParams({
  text: { default: "" },
  beam: { type: "int", default: 1, values: BEAMS },
  step: { type: "int", default: 0 }, // 0: not given; the page opens at the end of the forward sweep
  phase: { default: "forward", values: ["forward", "backward"] },
  speed: { type: "float", default: 0 },
  play: { type: "bool", default: false },
});

const state = {
  model: document.body.dataset.model,
  peer: document.body.dataset.peer ?? null,
  cards: new Map(),
  trace: null,
  cursor: null,
};
const player = new Player({ speed: P.speed || 4 });
const controls = new Controls($("player"), player);
// the panels (panels.js), an encoder–decoder's
const panels = mountPage({ card: { id: document.body.dataset.model, cell: document.body.dataset.cell, kind: "translate" } });
const { encdec, attention, beams, topk, encdecGradients: grads } = panels;
const views = [controls, encdec, attention, beams, topk, grads];

function push(data) {
  for (const v of views) v.update(data);
}

/** The output so far: the letters the decoder has written by the cursor, the rest still to come. */
function showOutput(tr, cursor) {
  const el = $("translation-now");
  if (!tr) {
    el.replaceChildren();
    return;
  }
  const letters = tr.written.filter((w) => w !== "</s>");
  const { side, i } = tr.at(cursor?.t ?? 0);
  const n = cursor?.phase === "backward" ? letters.length : side === "decoder" ? Math.min(letters.length, i + 1) : 0;
  const key = `${tr.model}|${tr.version}|${n}`;
  if (el.dataset.key === key) return;
  el.dataset.key = key;
  const arrow = document.createElement("span");
  arrow.className = "runbar-label";
  arrow.textContent = "German";
  const written = document.createElement("span");
  written.className = "out-written";
  written.textContent = letters.slice(0, n).join("");
  const ahead = document.createElement("span");
  ahead.className = "out-ahead";
  ahead.textContent = letters.slice(n).join("");
  el.replaceChildren(arrow, written, ahead);
}

bus.on("cursor", (cursor) => {
  state.cursor = cursor;
  push({ cursor, trace: state.trace });
  showOutput(state.trace, cursor);
  writeParams({ step: cursor.t + 1, phase: cursor.phase === "backward" ? "backward" : null, speed: cursor.speed });
  const tr = state.trace;
  perf.state = { ...perf.state, ...cursor, side: tr ? tr.at(cursor.t).side : null };
});

bus.on("layout", () => push({ relayout: true, trace: state.trace, cursor: state.cursor ?? undefined }));

const session = new TranslateSession(state.model, {
  besideInput: true,
  onTrace(tr) {
    state.trace = tr;
    if (!P.speed) player.setSpeed(speedFor(tr.T, 8));
    // Opened without a step: at the end of the forward sweep, the whole translation written, ready to read.
    player.reset(tr.T, { phase: P.phase, t: P.step ? P.step - 1 : tr.T - 1 });
    push({ trace: tr, version: tr.version }); // a word it lacks: unknown.js's note, struck through beside the input
  },
  onData(tr) {
    player.setAvailable(tr.steps, tr.gradFrom, tr.T);
    push({ trace: tr, version: tr.version });
    perf.state = { ...perf.state, model: tr.model, steps: tr.steps, gradFrom: tr.gradFrom, T: tr.T, J: tr.J, Tout: tr.Tout, done: tr.done };
  },
  onDone(tr) {
    push({ trace: tr, version: tr.version });
    showOutput(tr, state.cursor);
    perf.loaded = (perf.loaded ?? 0) + 1;
    perf.output = tr.output;
    if (P.play) {
      P.play = false;
      player.play();
    }
  },
});

async function cardOf(id) {
  if (!state.cards.has(id)) state.cards.set(id, await getModel(id));
  return state.cards.get(id);
}

async function run(text) {
  const beam = Number($("beam-select").value) || 1;
  writeParams({ text, beam: beam > 1 ? beam : null }, { now: true });
  document.title = `${state.model}: ${text.slice(0, 40)} · Unrolled`;
  try {
    await session.start({ text, beam, top_k: 5, precision: 4 });
  } catch {
    // shown beside the input by the session
  }
}

/** Show a model's name, cell and shape in the page's chrome (the switch changes them in place). */
function showModel(card) {
  document.body.dataset.model = card.id;
  document.body.dataset.attention = card.attention ? "1" : "0";
  $("model-name").textContent = card.id;
  const badge = $("model-badge");
  badge.textContent = card.cell.toUpperCase();
  badge.className = `cell-badge cell-${card.cell}`;
  $("model-shape").textContent = `${card.num_layers} × ${card.hidden_size} ${card.cell.toUpperCase()} encoder–decoder · ${card.attention ? "with attention" : "no attention: the last state is all the decoder gets"}`;
  const sw = $("attention-switch");
  sw.setAttribute("aria-checked", String(Boolean(card.attention)));
  if (state.peer) sw.title = `Run the same input ${card.attention ? "without" : "with"} attention: ${state.peer} (A)`;
  for (const el of document.querySelectorAll("[data-when]")) el.hidden = (el.dataset.when === "attention") !== Boolean(card.attention);
}

/** The same input, the same beam, on the model with attention switched; the cursor starts again. */
async function switchAttention() {
  if (!state.peer) return;
  const [from, to] = [state.model, state.peer];
  let card;
  try {
    card = await cardOf(to);
  } catch (e) {
    bus.emit("status", { kind: "error", message: e.message });
    return;
  }
  state.model = to;
  state.peer = from;
  session.modelId = to;
  showModel(card);
  window.history.replaceState(null, "", link(`/models/${encodeURIComponent(to)}`, Object.fromEntries(new URLSearchParams(window.location.search))));
  P.step = 1;
  P.phase = "forward";
  P.play = true;
  run($("text-input").value);
}

async function main() {
  let card;
  try {
    card = await cardOf(state.model);
  } catch (e) {
    bus.emit("status", { kind: "error", message: e.message });
    return;
  }
  const input = $("text-input");
  const examples = $("examples");
  fillExamples(examples, card.examples);
  input.value = P.text || card.examples[0]?.text || "one";
  $("beam-select").value = String(P.beam);
  const again = () => {
    if (!input.value.trim()) {
      showInputError("The input is empty: type a number in words, then Enter.");
      return;
    }
    // a new input plays from its first step: the presenter typed it to watch it being translated
    P.step = 1;
    P.phase = "forward";
    P.play = true;
    run(input.value);
  };
  examples.addEventListener("change", () => {
    const o = examples.selectedOptions[0];
    if (!o?.value) return;
    input.value = o.value;
    examples.value = "";
    again();
  });
  $("run-form").addEventListener("submit", (e) => {
    e.preventDefault();
    input.blur();
    again();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("run-form").requestSubmit();
    }
  });
  $("beam-select").addEventListener("change", () => $("run-form").requestSubmit());
  $("attention-switch").addEventListener("click", switchAttention);
  onKeys([
    ...playerKeys(player, { ArrowLeft: "one step back / forward: the encoder's words, then the decoder's letters (BPTT runs back)" }),
    { keys: ["a"], does: "the same input with / without attention", act: switchAttention },
    { keys: ["/"], does: "type a number in words (Enter translates)", act: () => input.focus() },
  ]);
  showModel(card);
  await run(input.value);
}

perf.page = "translate";
main();
