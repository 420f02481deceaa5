// Talk mode: a tour's scenes one at a time. A clicker's → / Page Down and ← / Page Up (or the arrow buttons,
// the numbered dots, the digit keys) move between scenes; each scene is a live stage (tour-stages.js) on the
// page's one time cursor. The scene and its moment are in the URL; the input can be edited and restored.

import { getModel } from "../api.js";
import { bus } from "../bus.js";
import { onKeys, playerKeys } from "../keys.js";
import { exampleText } from "../numbers.js";
import { Player } from "../player.js";
import { openRoom } from "../room.js";
import { LAB_VIEWS } from "../tour-lab.js";
import { inputCount, makeStage } from "../tour-stages.js";
import { showTarget } from "../target.js";
import { clearUnknown } from "../unknown.js";
import { link, readParams, writeParams } from "../url.js";
import { Controls } from "../views/controls.js";

const $ = (id) => document.getElementById(id);
const root = document.documentElement;
const perf = window.__unrolled;
const tour = JSON.parse(document.body.dataset.tour);
const N = tour.scenes.length;
const INPUT_KEYS = ["text", "text2", "text3", "text4"];

const P = readParams({
  scene: { type: "int", default: Number(document.body.dataset.scene) || 1 },
  captions: { type: "bool", default: true },
  step: { type: "int", default: 0 },
  phase: { default: "", values: ["", "forward", "backward"] },
  speed: { type: "float", default: 0 },
  seed: { type: "int", default: -1 },
  ...Object.fromEntries(INPUT_KEYS.map((k) => [k, { default: "" }])),
});

const player = new Player({ speed: 8 });
const controls = new Controls($("player"), player);
const cards = new Map(); // model id → its card, fetched once
const state = { index: 0, stage: null, visit: 0, inputs: [], own: [] };
perf.page = "tour";
perf.tour = { name: tour.name, scene: 0, ready: false, problems: [] };

const sceneAt = (i) => tour.scenes[i - 1];
const sceneLink = (i) => link("/tour", { name: tour.default ? null : tour.name, scene: i });

async function cardsOf(ids) {
  return Promise.all(
    ids.map(async (id) => {
      if (!cards.has(id)) cards.set(id, await getModel(id));
      return cards.get(id);
    }),
  );
}

function setCaptions(on) {
  root.classList.toggle("no-captions", !on);
  $("captions-toggle").setAttribute("aria-pressed", String(on));
  writeParams({ captions: on ? null : "0" }, { now: true });
  bus.emit("layout", {});
}

/** The heading, caption, dots and arrows of scene i. */
function frame(i, scene) {
  $("scene-number").textContent = `${i} / ${N}`;
  $("scene-title").textContent = scene.title;
  $("scene-caption").textContent = scene.caption ?? "";
  $("scene-caption").hidden = !scene.caption;
  document.title = `${scene.title} · ${tour.title} · Unrolled`;
  for (const dot of document.querySelectorAll(".scene-dot")) {
    if (Number(dot.dataset.scene) === i) dot.setAttribute("aria-current", "step");
    else dot.removeAttribute("aria-current");
  }
  $("prev-scene").href = sceneLink(Math.max(1, i - 1));
  $("next-scene").href = sceneLink(Math.min(N, i + 1));
  $("prev-scene").classList.toggle("disabled", i === 1);
  $("next-scene").classList.toggle("disabled", i === N);
  const problems = scene.problems ?? [];
  $("scene-problems").hidden = problems.length === 0;
  $("scene-problem-list").replaceChildren(
    ...problems.map((p) => {
      const li = document.createElement("li");
      li.textContent = p;
      return li;
    }),
  );
}

/** One input box per input of the scene. */
function inputBoxes(values) {
  const box = $("inputs");
  box.replaceChildren(
    ...values.map((v, k) => {
      const t = document.createElement("textarea");
      t.id = `input-${k}`;
      t.rows = 1;
      t.wrap = "off"; // one whole line that scrolls sideways, never half of a second one
      t.spellcheck = false;
      t.value = v;
      t.setAttribute("aria-label", values.length > 1 ? `Input ${k + 1}` : "Input");
      t.addEventListener("keydown", (e) => {
        if (e.key === "Enter" && !e.shiftKey) {
          e.preventDefault();
          $("run-form").requestSubmit();
        }
      });
      return t;
    }),
  );
}

function readInputs() {
  return [...$("inputs").querySelectorAll("textarea")].map((t) => t.value);
}

/** The scene's own inputs: the file's, or the first model's first example. */
function ownInputs(scene, sceneCards) {
  const n = inputCount(scene);
  const first = sceneCards[0]?.examples?.[0];
  const example = first?.text ?? exampleText(first);
  return Array.from({ length: n }, (_, k) => scene.inputs[k] ?? (k === 0 ? example : ""));
}

/**
 * Show scene i. first: the page was just opened, so the URL's moment and edited inputs apply. to: a room's
 * presenter's {inputs, step, phase, play, speed}, which a student's page follows.
 */
async function show(i, { first = false, to = null } = {}) {
  i = Math.max(1, Math.min(N, i));
  const visit = ++state.visit;
  state.stage?.close();
  state.stage = null;
  state.index = i;
  state.inputs = []; // until the stage runs: the room is not told the last scene's input as this one's
  roomPage.changed();
  player.pause(); // the next stage resets it to its own trace; until then the cursor is not shown on it
  const scene = sceneAt(i);
  frame(i, scene);
  perf.tour = { name: tour.name, scene: i, ready: false, problems: scene.problems ?? [] };
  const stageEl = $("stage");
  stageEl.replaceChildren();
  stageEl.dataset.view = scene.view;
  if (!first) writeParams({ scene: i, step: null, phase: null, speed: null, seed: null, ...Object.fromEntries(INPUT_KEYS.map((k) => [k, null])) }, { now: true });
  else writeParams({ scene: i }, { now: true });
  bus.emit("status", { message: "" });
  clearUnknown();
  document.body.classList.toggle("stage-empty", Boolean(scene.problems?.length));
  document.body.classList.toggle("stage-lab", LAB_VIEWS.has(scene.view)); // no input, no player: keys drive it
  if (scene.problems?.length) {
    inputBoxes([]);
    perf.tour.ready = true;
    roomPage.inputChanged();
    return;
  }
  let sceneCards;
  try {
    sceneCards = await cardsOf(scene.models);
  } catch (e) {
    if (visit !== state.visit) return;
    bus.emit("status", { kind: "error", message: e.message });
    perf.tour.error = e.message;
    return;
  }
  if (visit !== state.visit) return;
  state.own = ownInputs(scene, sceneCards);
  const edited = to ? state.own.map((v, k) => to.inputs[k] ?? v) : first ? state.own.map((v, k) => P[INPUT_KEYS[k]] || v) : state.own;
  inputBoxes(edited);
  const start = to ? { step: to.step, phase: to.phase, speed: to.speed, play: to.play } : first && P.step ? { step: P.step, phase: P.phase, speed: P.speed, play: false } : { play: scene.play, speed: first ? P.speed : 0 };
  state.stage = makeStage({
    root: stageEl,
    scene,
    player,
    cards: sceneCards,
    start,
    seed: first && P.seed >= 0 ? P.seed : undefined, // a link's seed replays its text once
    onSeed: (seed) => visit === state.visit && writeParams({ seed }, { now: true }),
    onReady: () => {
      if (visit !== state.visit) return;
      perf.tour = { ...perf.tour, ready: true };
      perf.loaded = (perf.loaded ?? 0) + 1;
      roomPage.ready();
    },
    onTarget: (traces) => visit === state.visit && showTarget($("target-now"), traces),
    onError: (_, e) => {
      if (visit === state.visit) perf.tour = { ...perf.tour, error: e?.message ?? String(e) };
    },
  });
  run(edited, { first: true });
}

/** Run the stage on inputs; after the first run of a scene, from the scene's own moment (not the URL's). */
function run(inputs, { first = false } = {}) {
  const stage = state.stage;
  if (!stage) return;
  if (!first) stage.ctx.start = { play: stage.scene.play };
  state.inputs = inputs;
  perf.tour = { ...perf.tour, ready: false };
  stage.ready = false;
  stage.ctx.edited = inputs.some((v, j) => v !== state.own[j]); // the scene's label belongs to its own input
  showTarget($("target-now"), []);
  // an edited input goes in the URL (a reload keeps it); the scene's own is left out
  writeParams(Object.fromEntries(INPUT_KEYS.map((k, j) => [k, inputs[j] !== undefined && inputs[j] !== state.own[j] ? inputs[j] : null])), { now: true });
  stage.start(inputs);
  roomPage.inputChanged();
}

/** A room's student page: to the presenter's scene, input and moment ({scene, inputs, step, phase, playing, speed}). */
function follow(s) {
  const at = { step: s.step + 1, phase: s.phase, play: s.playing, speed: s.speed };
  if (s.scene !== state.index) return show(s.scene, { to: { ...at, inputs: s.inputs } });
  const stage = state.stage;
  if (!stage) return;
  const inputs = s.inputs.length ? state.own.map((v, k) => s.inputs[k] ?? v) : state.own;
  if (inputs.some((v, k) => v !== state.inputs[k])) {
    inputBoxes(inputs);
    stage.ctx.start = at;
    return run(inputs, { first: true });
  }
  if (!stage.ready) {
    stage.ctx.start = at;
    return;
  }
  player.setSpeed(s.speed);
  if (!s.playing) player.pause();
  if (!s.playing || player.phase !== s.phase || Math.abs(player.t - s.step) > 1) player.seek(s.step, s.phase);
  if (s.playing && !player.playing) player.play();
}

/** A room's presenter runs a student's suggested input (in the scene's first input box). */
function runSuggestion(text) {
  if (!state.stage || !state.inputs.length) return;
  const inputs = [text, ...state.inputs.slice(1)];
  inputBoxes(inputs);
  run(inputs);
}

/** Back to the scene's own input and moment. */
function restore() {
  if (!state.stage) return;
  show(state.index);
}

function go(i) {
  if (i < 1 || i > N || i === state.index) return;
  show(i);
}

bus.on("cursor", (c) => {
  const stage = state.stage;
  if (!stage?.trace) return;
  controls.update({ cursor: c, trace: stage.trace });
  stage.onCursor(c);
  writeParams({ step: c.t + 1, phase: c.phase === "backward" ? "backward" : null, speed: c.speed });
  perf.state = { ...perf.state, ...c };
  roomPage.cursor();
});
bus.on("unit", (u) => state.stage?.onUnit(u));
bus.on("layout", () => {
  state.stage?.onLayout();
  requestAnimationFrame(fitStage);
});

// A scene is shown whole, as a slide is: on a 1280×720 projector nothing of it should need scrolling, and on a
// bigger screen it uses the room. The views are sized for 1280×720 in talk mode (plots.js isTalk), with no text
// below 15 px; the stage is then zoomed (CSS zoom, which also lays it out narrower or wider) to the room under
// the caption: up (a bigger screen) as long as it keeps the width it was designed for, down only a little, so that
// no text is drawn below 14 px (what can be read from the back of a room).
const MIN_ZOOM = 0.94;
const DESIGN_WIDTH = 1100; // CSS px: the narrowest the stage is laid out at when zoomed in
function fitStage() {
  const el = $("stage");
  const before = el.style.zoom;
  el.style.zoom = "";
  const box = el.getBoundingClientRect();
  const room = window.innerHeight - (box.top + window.scrollY) - 18; // main's bottom padding, and a margin
  const most = Math.max(1, box.width / DESIGN_WIDTH);
  const fit = box.height > 0 ? Math.max(MIN_ZOOM, Math.min(most, room / box.height)) : 1;
  const was = Number(before) || 1;
  // Views laid out again at the new width may change height a little: grow only by a step worth taking (so
  // that it settles), shrink whenever it must (so that nothing scrolls).
  let zoom = fit > was && fit - was < 0.02 ? was : Math.floor(fit * 1000) / 1000;
  el.style.zoom = zoom !== 1 ? zoom.toFixed(3) : "";
  // Zoomed, the stage is laid out narrower or wider than it was measured at, and its text may wrap to more lines
  // than scaling predicts: measure what was drawn and shrink until it fits (each pass only shrinks, so it settles).
  for (let pass = 0; pass < 4 && zoom > MIN_ZOOM; pass++) {
    const drawn = el.getBoundingClientRect().height;
    if (drawn <= room + 0.5) break;
    zoom = Math.max(MIN_ZOOM, Math.floor(((zoom * room) / drawn) * 1000) / 1000);
    el.style.zoom = zoom.toFixed(3);
  }
  perf.tour = { ...perf.tour, zoom };
  if (el.style.zoom !== before) bus.emit("layout", {}); // widths changed: the views lay themselves out again
}
new ResizeObserver(() => requestAnimationFrame(fitStage)).observe($("stage"));
// the bar above the stage grows when a note joins it (unknown.js): the stage has less room
new ResizeObserver(() => requestAnimationFrame(fitStage)).observe($("run-form").parentElement);
window.addEventListener("resize", () => requestAnimationFrame(fitStage));

// Digits choose a scene; a second digit typed within DIGITS_MS of the first makes a two-digit number (1 then 1:
// scene 11). A digit that could begin one waits that long before it goes.
const DIGITS_MS = 600;
const digits = { typed: "", timer: null };
function digit(d) {
  clearTimeout(digits.timer);
  const typed = digits.typed + d;
  digits.typed = "";
  if (typed.length === 1 && Number(typed) * 10 <= N) {
    digits.typed = typed;
    digits.timer = setTimeout(() => {
      digits.typed = "";
      go(Number(typed));
    }, DIGITS_MS);
    return;
  }
  go(Number(Number(typed) <= N ? typed : d));
}

/** The input boxes of the scene: / focuses the first, E the one after the last focused (at first the second). */
function focusInput(next) {
  const boxes = [...$("inputs").querySelectorAll("textarea")];
  if (!boxes.length) return;
  const at = Math.max(0, boxes.indexOf(state.lastInput));
  (next ? boxes[(at + 1) % boxes.length] : boxes[0]).focus();
}
$("inputs").addEventListener("focusin", (e) => {
  state.lastInput = e.target;
});

const roomPage = openRoom({
  tour,
  player,
  anchor: $("stage"),
  sceneAt,
  now: () => ({ scene: state.index, inputs: state.inputs }),
  follow,
  runSuggestion,
});

const stageKey = (keys, does) => ({ keys, does, act: (e) => state.stage?.onKey?.(e.key) });
onKeys([
  { keys: ["ArrowRight", "PageDown"], does: "next scene (a clicker's forward button)", act: () => go(state.index + 1) },
  { keys: ["ArrowLeft", "PageUp"], does: "previous scene", act: () => go(state.index - 1) },
  { keys: [..."1234567890"], show: ["1", "…", "9"], does: `go to scene 1 … 9; two digits typed quickly go to 10 … ${N} (1 then 1: scene ${Math.min(11, N)})`, act: (e) => digit(e.key) },
  ...playerKeys(player, { " ": "play / pause the scene" }).filter((b) => b.keys[0] !== "ArrowLeft"),
  { keys: ["Shift+ArrowRight", "Shift+ArrowLeft"], does: "one step forward / back (the BPTT sweep runs right to left)", act: (e) => player.step(e.key === "ArrowRight" ? 1 : -1) },
  { keys: ["/"], does: "edit the input (Enter runs it, Esc leaves it; Page Up / Page Down still move between scenes)", act: () => focusInput(false) },
  { keys: ["e"], does: "the scene's next input (scene 2's second)", act: () => focusInput(true) },
  { keys: ["r"], does: "restore the scene's own input and moment", act: restore },
  { keys: ["c"], does: "show / hide the captions", act: () => setCaptions(root.classList.contains("no-captions")) },
  { keys: ["s"], does: "a writing scene: sample again, with a new seed (shown; ?seed= in a link replays one)", act: () => state.stage?.samples && run(state.inputs) },
  stageKey(["a"], "a translation scene: the same input with / without attention"),
  stageKey(["l"], "a speech scene: listen, the clip played from the cursor"),
  // the lab's scenes: [ ] turn the radius, K keeps a curve, T starts or stops the training
  stageKey(["[", "]", "k"], "a knobs scene: turn the radius down / up, keep the curve"),
  stageKey(["t"], "a training scene: start / stop the training"),
  stageKey(["v"], "a training scene: play the run recorded on the server"),
  ...roomPage.keys,
]);

function init() {
  $("run-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const inputs = readInputs();
    document.activeElement?.blur(); // Enter leaves the field: the clicker's keys drive the tour again
    if (!inputs.length) return;
    if (!inputs.every((v) => v.trim())) {
      bus.emit("status", { kind: "error", message: "An input is empty: press / and type something, then Enter (R restores the scene's own)." });
      return;
    }
    run(inputs);
  });
  $("restore").addEventListener("click", restore);
  $("captions-toggle").addEventListener("click", () => setCaptions(root.classList.contains("no-captions")));
  const nav = (e, i) => {
    if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) return; // a new tab keeps its own link
    e.preventDefault();
    go(i);
  };
  $("prev-scene").addEventListener("click", (e) => nav(e, state.index - 1));
  $("next-scene").addEventListener("click", (e) => nav(e, state.index + 1));
  for (const dot of document.querySelectorAll(".scene-dot")) dot.addEventListener("click", (e) => nav(e, Number(dot.dataset.scene)));
  if (!P.captions) setCaptions(false);
  show(P.scene, { first: true });
}

init();
