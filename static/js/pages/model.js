// The model view: one input through one model, every view on one time cursor.

import { bus } from "../bus.js";
import { bindInputBar } from "../examples.js";
import { bindKeys } from "../keys.js";
import { mountPage } from "../panels.js";
import { arrived, bindUnitBox, exposePage, followCursor, followLayout, followUnit, loadCard, pusher, showUnit } from "../pagekit.js";
import { Player, speedFor } from "../player.js";
import { Session } from "../session.js";
import { bindDeleteButton } from "../upload.js";
import { showTarget } from "../target.js";
import { keepLinks, readParams, writeParams } from "../url.js";
import { Controls } from "../views/controls.js";

const $ = (id) => document.getElementById(id);
const modelId = document.body.dataset.model;
const perf = window.__unrolled;

const P = readParams({
  text: { default: "" },
  label: { default: "" },
  loss: { default: "", values: ["", "sum", "last"] },
  step: { type: "int", default: 0 }, // 0: not given; the page opens at the end of the forward sweep
  phase: { default: "forward", values: ["forward", "backward"] },
  unit: { type: "int", default: 0 },
  layer: { type: "int", default: 0 },
  speed: { type: "float", default: 0 },
  play: { type: "bool", default: false },
});

const state = { unit: Math.max(0, P.unit), layer: Math.max(0, P.layer), trace: null, cursor: null };
const player = new Player({ speed: P.speed || 8 });
const controls = new Controls($("player"), player);

// the panels (panels.js), titled and made from what the page knows before the card arrives
const panels = mountPage({ card: { id: modelId, cell: document.body.dataset.cell, kind: document.body.dataset.kind } });
const unrolled = panels.unrolled;
const views = [controls, ...Object.values(panels)];

const push = pusher(views);

followCursor(state, push, { params: (cursor) => ({ speed: cursor.speed }) });
/** A bidirectional model: the layer picker and the panels that show one layer name its direction. */
function showLayer() {
  const tr = state.trace;
  if (!tr?.bidirectional) return;
  for (const el of document.querySelectorAll(".layer-ref")) el.textContent = tr.layerName(state.layer).replace("→", "→ forward");
  const select = $("layer-select");
  for (const option of select.options) option.textContent = tr.layerName(Number(option.value)).replace(/^layer /, "").replace("→", "→ forward");
  select.value = String(state.layer);
}

followUnit(state, push, () => {
  showLayer();
  writeParams({ unit: state.unit || null, layer: state.layer || null });
  perf.state = { ...perf.state, unit: state.unit, layer: state.layer };
});
followLayout(state, push, unrolled);

const session = new Session(modelId, {
  besideInput: true,
  onTrace(trace) {
    state.trace = trace;
    state.unit = Math.min(state.unit, trace.H - 1);
    state.layer = Math.min(state.layer, trace.L - 1);
    showUnit(state.unit);
    showLayer();
    if (!P.speed) player.setSpeed(speedFor(trace.T));
    // Opened without a step: at the end of the forward sweep, every panel filled, ready to read.
    player.reset(trace.T, { phase: P.phase, t: P.step ? P.step - 1 : trace.T - 1 });
    push({ trace, unit: state.unit, layer: state.layer, version: trace.version });
    showTarget($("target-now"), [trace]);
  },
  onData(trace) {
    arrived(trace, state, player, push);
    perf.state = { ...perf.state, steps: trace.steps, gradFrom: trace.gradFrom, T: trace.T, done: trace.done };
  },
  onDone(trace) {
    perf.loaded = (perf.loaded ?? 0) + 1;
    perf.totalLoss = trace.totalLoss;
    if (P.play) {
      P.play = false;
      player.play();
    }
  },
});

async function run(text, label) {
  const loss = $("loss-select").value;
  writeParams({ text, label: label || null, loss: loss || null }, { now: true });
  document.title = `${modelId}: ${text.slice(0, 40)} · Unrolled`;
  keepLinks({ text: text || undefined, label: label || null });
  try {
    await session.start({ text, top_k: 5, precision: 4, ...(label ? { label } : {}), ...(loss ? { loss } : {}) });
  } catch {
    // shown beside the input by the session
  }
}

async function main() {
  const card = await loadCard(modelId);
  if (!card) return;
  session.card = card;
  // tokens of its own (not the unknown one, wherever its id; a vocabulary may have none)
  const fallback = card.vocab ? card.vocab.filter((t) => t !== card.unk).slice(0, 11).join("") : "a";
  const { input, text, label } = bindInputBar(
    card,
    P,
    (newText, target) => {
      // a new input plays from its first step: the presenter typed it to watch it being read
      P.step = 1;
      P.phase = "forward";
      P.play = true;
      run(newText, target);
    },
    fallback,
  );
  $("loss-select").value = P.loss;
  $("loss-select").addEventListener("change", () => $("run-form").requestSubmit());
  $("layer-select").value = String(state.layer);
  $("layer-select").addEventListener("change", (e) => bus.emit("unit", { unit: state.unit, layer: Number(e.target.value) }));
  bindUnitBox(state);
  bindKeys(player, { units: (d) => bus.emit("unit", { unit: state.unit + d }), input });
  await run(text, label);
}

exposePage("model");
bindDeleteButton(modelId);
main();
