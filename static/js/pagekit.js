// What the pages with one model, one player and the unrolled network share (model, melody, series): the views
// fed from one place, the ‖∂L/∂h_t‖ legend, the cursor and the unit followed (URL, window.__unrolled), the
// presenter's chrome height, the model card loaded, the unit buttons.

import { getModel } from "./api.js";
import { bus } from "./bus.js";
import { GRAD, pow10 } from "./colors.js";
import { link, writeParams } from "./url.js";

const $ = (id) => document.getElementById(id);
const perf = window.__unrolled;

/** push(data): every view updates from the data. */
export const pusher = (views) => (data) => {
  for (const v of views) v.update(data);
};

/** The colour legend of ‖∂L/∂h_t‖ beside the unrolled network: shown in the backward sweep once gradients are in. */
export function gradLegend(trace, phase) {
  const el = $("grad-legend");
  if (!trace || trace.gradFrom >= trace.T || phase !== "backward") {
    el.hidden = true;
    return;
  }
  const [lo, hi] = trace.gradLogRange();
  const a = document.createElement("span");
  a.textContent = `‖∂L/∂h_t‖  ${pow10(lo)}`;
  const bar = document.createElement("span");
  bar.className = "legend-bar";
  bar.style.background = `linear-gradient(to right, ${GRAD.map(([x, c]) => `${c} ${x * 100}%`).join(", ")})`;
  const b = document.createElement("span");
  b.textContent = pow10(hi);
  el.replaceChildren(a, bar, b);
  el.hidden = false;
}

/**
 * The cursor moved: every view follows, the legend when the sweep changes, then `also(cursor)` (the page's own),
 * the step and sweep (and `params(cursor)`) in the URL, the state in window.__unrolled.
 */
export function followCursor(state, push, { also = () => {}, params = () => ({}) } = {}) {
  bus.on("cursor", (cursor) => {
    const phaseChanged = state.cursor?.phase !== cursor.phase;
    state.cursor = cursor;
    push({ cursor, trace: state.trace });
    if (phaseChanged) gradLegend(state.trace, state.cursor?.phase);
    also(cursor);
    writeParams({ step: cursor.t + 1, phase: cursor.phase === "backward" ? "backward" : null, ...params(cursor) });
    perf.state = { ...cursor, unit: state.unit, layer: state.layer, steps: state.trace?.steps ?? 0 };
  });
}

/** The unit followed (and the layer, if the event names one): clamped to the trace's units, shown, pushed; then `also()`. */
export function followUnit(state, push, also = () => {}) {
  bus.on("unit", ({ unit, layer }) => {
    if (!state.trace) return;
    state.unit = Math.max(0, Math.min(state.trace.H - 1, unit));
    if (layer !== undefined) state.layer = layer;
    showUnit(state.unit);
    push({ unit: state.unit, layer: state.layer });
    also();
  });
}

/** The unit's number in the unit box and in every caption that names it. */
export function showUnit(unit) {
  $("unit-value").textContent = String(unit);
  for (const el of document.querySelectorAll(".unit-ref")) el.textContent = String(unit);
}

/** A new layout (presenter mode, the window's size) redraws the views. */
export function followLayout(state, push, unrolled) {
  bus.on("layout", () => {
    unrolled.resize();
    push({ relayout: true, trace: state.trace, cursor: state.cursor ?? undefined });
  });
}

/** More of the trace is in: the player may go as far as it, the views draw it, the legend follows. */
export function arrived(trace, state, player, push) {
  player.setAvailable(trace.steps, trace.gradFrom, trace.T);
  push({ trace, version: trace.version });
  gradLegend(trace, state.cursor?.phase);
}

/** The model's card, or null (the error in the status line). */
export async function loadCard(modelId) {
  try {
    return await getModel(modelId);
  } catch (e) {
    bus.emit("status", { kind: "error", message: e.message });
    return null;
  }
}

/** The − / + buttons of the unit box. */
export function bindUnitBox(state) {
  document.querySelector(".unit-box").addEventListener("click", (e) => {
    const b = e.target.closest("[data-unit]");
    if (b) bus.emit("unit", { unit: state.unit + Number(b.dataset.unit) });
  });
}

/** Enter (without Shift) in the input submits the run form. */
export function submitOnEnter(input) {
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("run-form").requestSubmit();
    }
  });
}

/** window.__unrolled's page name and its link maker (a URL of this page with other parameters). */
export function exposePage(page) {
  perf.page = page;
  perf.link = (q) => link(window.location.pathname, q);
}
