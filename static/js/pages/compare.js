// Compare: the RNN, LSTM and GRU of one task on the same input, one shared time cursor.

import { getModel } from "../api.js";
import { bus } from "../bus.js";
import { bindInputBar } from "../examples.js";
import { exportButtons } from "../export.js";
import { bindKeys } from "../keys.js";
import { Player, speedFor } from "../player.js";
import { Session } from "../session.js";
import { showTarget } from "../target.js";
import { keepLinks, readParams, writeParams } from "../url.js";
import { Controls } from "../views/controls.js";
import { GradCompareView } from "../views/gradcompare.js";
import { UnrolledView } from "../views/unrolled.js";
import { showToken } from "../trace.js";

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

/** One log range for every row, so that colours compare across cells. */
function sharedRange() {
  let lo = Infinity;
  let hi = -Infinity;
  for (const tr of traces) {
    if (!tr || tr.gradFrom >= tr.T) continue;
    const [a, b] = tr.gradLogRange();
    lo = Math.min(lo, a);
    hi = Math.max(hi, b);
  }
  return Number.isFinite(lo) ? [lo, hi] : [-8, 0];
}

const rows = ids.map((id) => {
  const row = document.querySelector(`.compare-row[data-model="${id}"]`);
  const net = new UnrolledView(row.querySelector("[data-role=net]"), { compact: true, name: `unrolled-${id}`, range: sharedRange });
  exportButtons(row.querySelector("[data-role=tools]"), () => net.exportPng(), () => net.exportSvg());
  return { pred: row.querySelector("[data-role=pred]"), net };
});
const grads = new GradCompareView($("compare-gradients"), { table: $("ratios") });
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
  rows.forEach((r, i) => r.net.update({ trace: traces[i], version }));
  grads.update({ traces: ready });
  perf.state = { ...perf.state, steps, gradFrom, T, curves: grads.gd.data?.filter((d) => d.visible !== "legendonly").length ?? 0 };
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
  rows.forEach((r, i) => {
    r.net.update({ cursor: c });
    const tr = traces[i];
    if (!tr || c.t >= tr.steps) return;
    const top = tr.topPrediction(c.t);
    const g = c.phase === "backward" && c.t >= tr.gradFrom ? `  ‖∂L/∂h‖ ${tr.grad.hidden[0][c.t].toExponential(1)}` : "";
    r.pred.textContent = top ? `→ ${showToken(top.token)} ${top.p.toFixed(2)}${g}` : "";
  });
  grads.update({ cursor: c });
  writeParams({ step: c.t + 1, phase: c.phase === "backward" ? "backward" : null, speed: c.speed });
  perf.state = { ...perf.state, ...c };
});

bus.on("layout", () => {
  rows.forEach((r) => r.net.resize());
  grads.update({ relayout: true });
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
