// Generate: type a prompt and watch the model write, its states streaming in as each token is sampled.

import { bus } from "../bus.js";
import { bindKeys } from "../keys.js";
import { mountPage } from "../panels.js";
import { Player } from "../player.js";
import { Session } from "../session.js";
import { readParams, writeParams } from "../url.js";
import { Controls } from "../views/controls.js";

const $ = (id) => document.getElementById(id);
const perf = window.__unrolled;
const modelId = document.body.dataset.model;

const P = readParams({
  prompt: { default: "" },
  temperature: { type: "float", default: 0.8 },
  length: { type: "int", default: 100 },
  seed: { type: "int", default: -1 },
  speed: { type: "float", default: 15 },
});

const player = new Player({ speed: P.speed });
const controls = new Controls($("player"), player);
// the panels (panels.js), as a model writing shows them
const { cell, kind } = document.body.dataset;
const panels = mountPage({ card: { id: modelId, cell, kind }, writing: true });
const unrolled = panels.unrolled;
const views = [controls, ...Object.values(panels)];
let current = null;
const seedNote = document.createElement("output");
seedNote.className = "gen-seed";
seedNote.setAttribute("for", "seed");

const push = (data) => views.forEach((v) => v.update(data));

bus.on("cursor", (cursor) => {
  push({ cursor, trace: current });
  writeParams({ speed: cursor.speed });
  perf.state = { ...perf.state, ...cursor };
});
bus.on("layout", () => {
  unrolled.resize();
  push({ relayout: true, trace: current });
});

const session = new Session(modelId, {
  onTrace(trace) {
    current = trace;
    player.reset(trace.T);
    push({ trace, version: trace.version });
    player.play(); // the cursor follows the tokens as they are sampled
  },
  onData(trace) {
    player.setAvailable(trace.steps, trace.gradFrom, trace.T);
    push({ trace, version: trace.version });
    perf.state = { ...perf.state, steps: trace.steps, T: trace.T, done: trace.done, text: trace.tokens.slice(0, trace.steps).join("") };
  },
  onDone(trace) {
    perf.loaded = (perf.loaded ?? 0) + 1;
    push({ trace, version: trace.version });
  },
});

/** fresh: sample again (S): a new seed, whatever the field holds (a link's seed fills it: Write replays it). */
function write({ fresh = false } = {}) {
  const prompt = $("prompt-input").value;
  if (!prompt.trim()) return;
  const temperature = Number($("temperature").value);
  const length = Number($("length").value);
  if (fresh) $("seed").value = "";
  const typed = $("seed").value;
  // A seed is always chosen, shown and kept in the URL, so a link replays the same text.
  const seed = typed !== "" ? Number(typed) : Math.floor(Math.random() * 2 ** 31);
  seedNote.textContent = typed !== "" ? "" : `seed ${seed}`; // a typed seed is on screen already
  perf.seed = seed;
  writeParams({ prompt, temperature, length, seed }, { now: true });
  session.start({ mode: "generate", prompt, length, temperature, seed, top_k: 5, precision: 4 }).catch(() => {});
}

function init() {
  $("prompt-input").value = P.prompt || "The ";
  $("temperature").value = String(Math.max(0, Math.min(2, P.temperature)));
  $("temperature-value").textContent = Number($("temperature").value).toFixed(2);
  $("temperature").addEventListener("input", () => {
    $("temperature-value").textContent = Number($("temperature").value).toFixed(2);
  });
  const lengths = [...$("length").options].map((o) => Number(o.value));
  if (!lengths.includes(P.length)) $("length").append(new Option(String(P.length), String(P.length)));
  $("length").value = String(P.length);
  if (P.seed >= 0) $("seed").value = String(P.seed);
  $("seed").after(seedNote);
  $("gen-form").addEventListener("submit", (e) => {
    e.preventDefault();
    write();
  });
  $("prompt-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("gen-form").requestSubmit();
    }
  });
  bindKeys(player, {
    input: $("prompt-input"),
    words: { "/": "edit the prompt (Enter writes)" },
    more: [{ keys: ["s"], does: "sample again, with a new seed (the seed is shown; ?seed= in a link replays one)", act: () => write({ fresh: true }) }],
  });
  write();
}

perf.page = "generate";
init();
