// Learning: the same input's internals at each saved checkpoint; the slider is training time.

import { getModel, trace as traceRest } from "../api.js";
import { bus } from "../bus.js";
import { bindInputBar } from "../examples.js";
import { ACCENT } from "../colors.js";
import { onKeys } from "../keys.js";
import { mountPage } from "../panels.js";
import { Plotly, baseLayout, makePlot, plotConfig } from "../plots.js";
import { Trace } from "../trace.js";
import { showTarget } from "../target.js";
import { clearUnknown, showRead } from "../unknown.js";
import { keepLinks, readParams, writeParams } from "../url.js";

const $ = (id) => document.getElementById(id);
const perf = window.__unrolled;
const modelId = document.body.dataset.model;
const P = readParams({ text: { default: "" }, label: { default: "" }, checkpoint: { default: "" }, unit: { type: "int", default: 0 } });

// Every step read and every gradient shown: this page's time is training time, not the sequence's.
const CURSOR = { phase: "backward", t: -1, T: 0, playing: false }; // t −1: no step cursor drawn
const state = { card: null, traces: new Map(), index: 0, unit: Math.max(0, P.unit), run: 0, playing: null };
// the panels (panels.js), as a model at a checkpoint of its training shows them
const { text, states, gradients } = mountPage({ card: { id: modelId, cell: document.body.dataset.cell, kind: document.body.dataset.kind }, checkpoint: true });
const curve = makePlot($("curve"), "training-curve", "plot-curve");
const slider = $("ckpt");

const checkpoints = () => state.card?.checkpoints ?? [];
const fmtPct = (name) => `${name} % of training`;

function show() {
  const ck = checkpoints()[state.index];
  if (!ck) return;
  slider.value = String(state.index);
  $("ckpt-value").textContent = `${fmtPct(ck.name)} · step ${ck.step}`;
  const tr = state.traces.get(ck.name);
  writeParams({ checkpoint: ck.name });
  drawCurve();
  if (!tr) return;
  showTarget($("target-now"), [tr]);
  const cursor = { ...CURSOR, T: tr.T };
  text.update({ trace: tr, unit: state.unit, cursor });
  states.update({ trace: tr, unit: state.unit, cursor });
  gradients.update({ trace: tr, cursor });
  stats(tr);
  let sum = 0;
  for (const v of tr.layers[0].hidden) sum += Math.abs(v);
  perf.state = { checkpoint: ck.name, index: state.index, totalLoss: tr.totalLoss, hiddenAbsSum: sum, T: tr.T, unit: state.unit };
}

function stats(tr) {
  const items = [["L on this input", tr.totalLoss?.toFixed(3) ?? "–"]];
  if (tr.family.head === "tokens") {
    let right = 0;
    let n = 0;
    for (let t = 0; t < tr.T - 1; t++) {
      n++;
      if (tr.predictions[t]?.[0]?.token === tr.tokens[t + 1]) right++;
    }
    items.push(["next token right (top 1)", n ? `${right} / ${n}` : "–"]);
  } else {
    const top = tr.topPrediction(tr.T - 1);
    items.push(["decision at the last step", `${top.token} (p ${top.p.toFixed(2)})`]);
  }
  const box = $("stats");
  box.replaceChildren(
    ...items.map(([k, v]) => {
      const s = document.createElement("span");
      const b = document.createElement("strong");
      b.textContent = v;
      s.append(`${k}: `, b);
      return s;
    }),
  );
}

function drawCurve() {
  const card = state.card;
  if (!card) return;
  const cks = checkpoints();
  const ck = cks[state.index];
  const data = [];
  if (card.curve?.length) {
    data.push({
      type: "scatter",
      mode: "lines",
      x: card.curve.map((p) => p.step),
      y: card.curve.map((p) => p.loss),
      name: "training loss",
      line: { color: "#64748b", width: 2 },
    });
  }
  const have = cks.filter((c) => state.traces.has(c.name));
  data.push({
    type: "scatter",
    mode: "lines+markers",
    x: have.map((c) => c.step),
    y: have.map((c) => state.traces.get(c.name).totalLoss),
    name: "L on this input",
    line: { color: ACCENT, width: 2, dash: "dot" },
    marker: { size: 9, color: ACCENT },
  });
  const layout = baseLayout({
    height: 260,
    showlegend: true,
    margin: { l: 56, r: 12, t: 30, b: 44 },
    xaxis: { title: { text: "training step" } },
    yaxis: { title: { text: "loss" }, rangemode: "tozero" },
    shapes: ck ? [{ type: "line", xref: "x", yref: "paper", x0: ck.step, x1: ck.step, y0: 0, y1: 1, line: { color: ACCENT, width: 3 } }] : [],
  });
  curve.style.height = "260px";
  Plotly.react(curve, data, layout, plotConfig("training-curve"));
}

async function load(text, label) {
  const run = ++state.run;
  state.traces.clear();
  clearUnknown();
  writeParams({ text, label: label || null }, { now: true });
  keepLinks({ text });
  // the checkpoint on screen first, then the rest, so the slider answers at once
  const order = checkpoints().map((_, i) => i).sort((a, b) => (a === state.index ? -1 : b === state.index ? 1 : a - b));
  for (const i of order) {
    const ck = checkpoints()[i];
    try {
      const body = await traceRest(modelId, { text, top_k: 3, precision: 4, checkpoint: ck.name, ...(label ? { label } : {}) });
      if (run !== state.run) return;
      state.traces.set(ck.name, Trace.fromBody(body, state.card));
      if (i === state.index) showRead(state.traces.get(ck.name), state.card); // the one on screen: its answer
    } catch (e) {
      bus.emit("status", { kind: "error", message: e.message });
      return;
    }
    if (i === state.index) show();
    else drawCurve();
  }
  perf.loaded = (perf.loaded ?? 0) + 1;
}

function go(i) {
  const n = checkpoints().length;
  state.index = Math.max(0, Math.min(n - 1, i));
  show();
}

function togglePlay() {
  const btn = document.querySelector("[data-ckpt=play]");
  if (state.playing) {
    clearInterval(state.playing);
    state.playing = null;
    btn.textContent = "▶";
    return;
  }
  if (state.index >= checkpoints().length - 1) go(0);
  btn.textContent = "❚❚";
  state.playing = setInterval(() => {
    if (state.index >= checkpoints().length - 1) togglePlay();
    else go(state.index + 1);
  }, 1200);
}

async function main() {
  try {
    state.card = await getModel(modelId);
  } catch (e) {
    bus.emit("status", { kind: "error", message: e.message });
    return;
  }
  const card = state.card;
  const names = checkpoints().map((c) => c.name);
  state.index = names.includes(P.checkpoint) ? names.indexOf(P.checkpoint) : Math.max(0, names.length - 1);
  const { input, text, label } = bindInputBar(card, P, load);
  slider.addEventListener("input", () => go(Number(slider.value)));
  $("ckpt-player").addEventListener("click", (e) => {
    const b = e.target.closest("[data-ckpt]");
    if (!b) return;
    const act = { first: () => go(0), prev: () => go(state.index - 1), next: () => go(state.index + 1), last: () => go(checkpoints().length - 1), play: togglePlay }[b.dataset.ckpt];
    act?.();
  });
  onKeys([
    { keys: ["ArrowLeft", "ArrowRight"], does: "previous / next checkpoint", act: (e) => go(state.index + (e.key === "ArrowRight" ? 1 : -1)) },
    { keys: ["Home", "End"], does: "first / last checkpoint", act: (e) => go(e.key === "Home" ? 0 : checkpoints().length - 1) },
    { keys: [" "], does: "play / pause the checkpoints", act: togglePlay },
    { keys: ["[", "]"], does: "previous / next unit", act: (e) => bus.emit("unit", { unit: state.unit + (e.key === "]" ? 1 : -1) }) },
    { keys: ["/"], does: "edit the input", act: () => input.focus() },
  ]);
  bus.on("unit", ({ unit }) => {
    const tr = state.traces.get(checkpoints()[state.index]?.name);
    state.unit = Math.max(0, Math.min((tr?.H ?? 1) - 1, unit));
    for (const el of document.querySelectorAll(".unit-ref")) el.textContent = String(state.unit);
    writeParams({ unit: state.unit || null });
    show();
  });
  bus.on("layout", () => {
    const tr = state.traces.get(checkpoints()[state.index]?.name);
    if (tr) {
      states.update({ relayout: true });
      gradients.update({ relayout: true });
    }
    drawCurve();
  });
  for (const el of document.querySelectorAll(".unit-ref")) el.textContent = String(state.unit);
  show();
  await load(text, label);
}

perf.page = "learning";
main();
