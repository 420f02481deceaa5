// Compare: the RNN, LSTM and GRU of one task on the same input, one shared time cursor.

import { getModel } from "../api.js";
import { bus } from "../bus.js";
import { bindInputBar } from "../examples.js";
import { bindKeys } from "../keys.js";
import { mountPage } from "../panels.js";
import { Player, speedFor } from "../player.js";
import { Session } from "../session.js";
import { showTarget } from "../target.js";
import { keepLinks, readParams, writeParams } from "../url.js";
import { Controls } from "../views/controls.js";

const $ = (id) => document.getElementById(id);
const perf = window.__unrolled;
const ids = document.body.dataset.models.split(",").filter(Boolean);

const P = readParams({
  text: { default: "" },
  label: { default: "" },
  loss: { default: "", values: ["", "sum", "last"] },
  step: { type: "int", default: 1 },
  phase: { default: "forward", values: ["forward", "backward"] },
  speed: { type: "float", default: 0 },
  play: { type: "bool", default: false },
});

const player = new Player({ speed: P.speed || 8 });
const controls = new Controls($("player"), player);
const traces = ids.map(() => null);

// The panels (panels.js: compareNorms, compareCells), mounted once the cards have come.
let views = {};
let cursor = null;
let started = false;

function sync() {
  const ready = traces.filter(Boolean);
  if (ready.length < ids.length) return;
  const T = Math.min(...ready.map((tr) => tr.T));
  const steps = Math.min(...ready.map((tr) => tr.steps));
  const gradFrom = Math.max(...ready.map((tr) => tr.gradFrom));
  if (!started) {
    started = true;
    if (!P.speed) player.setSpeed(speedFor(T));
    player.reset(T, { phase: P.phase, t: P.step - 1 });
    showTarget($("target-now"), ready);
  }
  player.setAvailable(Math.min(steps, T), Math.min(gradFrom, T), T);
  const version = ready.map((tr) => tr.version).join(",");
  views.compareCells.update({ traces: [...traces], version });
  views.compareNorms.update({ traces: ready });
  const curves = views.compareNorms.gd.data?.filter((d) => d.visible !== "legendonly").length ?? 0;
  perf.state = { ...perf.state, steps, gradFrom, T, curves };
}

const sessions = ids.map(
  (id, i) =>
    new Session(id, {
      onTrace(trace) {
        traces[i] = trace;
        sync();
      },
      onData() {
        sync();
      },
      onDone() {
        sync();
        if (traces.every((tr) => tr?.done)) {
          perf.loaded = (perf.loaded ?? 0) + 1;
          if (P.play) {
            P.play = false;
            player.play();
          }
        }
      },
    }),
);

bus.on("cursor", (c) => {
  cursor = c;
  controls.update({ cursor: c, trace: traces[0] });
  views.compareCells?.update({ cursor: c });
  views.compareNorms?.update({ cursor: c });
  writeParams({ step: c.t + 1, phase: c.phase === "backward" ? "backward" : null, speed: c.speed });
  perf.state = { ...perf.state, ...c };
});

bus.on("layout", () => {
  views.compareCells?.resize();
  views.compareNorms?.update({ relayout: true });
});

function run(text, label) {
  const loss = $("loss-select").value;
  writeParams({ text, label: label || null, loss: loss || null }, { now: true });
  keepLinks({ text, label: label || undefined });
  started = false;
  traces.fill(null);
  // By default L is the last step's loss: BPTT then starts at one step, and the fall of ‖∂L/∂h_t‖ is plain.
  const body = { text, top_k: 3, precision: 4, loss: loss || "last", ...(label ? { label } : {}) };
  sessions.forEach((s) => s.start(body).catch(() => {}));
}

async function main() {
  let cards;
  try {
    cards = await Promise.all(ids.map((id) => getModel(id)));
  } catch (e) {
    bus.emit("status", { kind: "error", message: e.message });
    return;
  }
  sessions.forEach((s, i) => {
    s.card = cards[i];
  });
  const card = cards[0];
  views = mountPage({ card, cards });
  const { input, text, label } = bindInputBar(card, P, (newText, target) => {
    P.step = 1;
    P.phase = "forward";
    run(newText, target);
  });
  $("loss-select").value = P.loss;
  $("loss-select").addEventListener("change", () => $("run-form").requestSubmit());
  bindKeys(player, { input });
  run(text, label);
}

perf.page = "compare";
main();
