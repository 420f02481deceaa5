// What is wrong with the input a presenter typed (the API's 4xx message, which names the bad note, word or number),
// shown beside the input, under the run bar, until the next good run. The status toast lies over the foot of the
// page (the melody's info line) and goes after 8 s: an error the presenter has to fix belongs where they type.
// Failures that are not the input's (the server unreachable, a 5xx) stay in the toast.
//   A page's run bar (#run-form, #gen-form) gets the line on first use; a page may place its own (.input-error,
//   as the series page does under its numbers).

import { ApiError } from "./api.js";
import { bus } from "./bus.js";

const perf = window.__unrolled;

function line(create) {
  let el = document.querySelector(".input-error");
  const anchor = document.querySelector("#run-form, #gen-form");
  if (!el && create && anchor) {
    el = document.createElement("p");
    el.id = "input-error";
    el.className = "input-error";
    el.setAttribute("role", "alert");
    anchor.after(el);
  }
  return el;
}

/** Show `message` beside the input ("" clears it); in the status toast on a page without a run bar. */
export function showInputError(message) {
  const el = line(Boolean(message));
  if (!el) {
    if (message) bus.emit("status", { kind: "error", message });
    return;
  }
  el.textContent = message ?? "";
  el.hidden = !message;
  perf.inputError = message ?? "";
}

/** A run's failure: beside the input when the input caused it (a 4xx), in the status toast otherwise. */
export function reportRunError(e) {
  if (e instanceof ApiError && e.status >= 400 && e.status < 500) showInputError(e.message);
  else bus.emit("status", { kind: "error", message: e instanceof Error ? e.message : String(e) });
}

/** A good run: the last input's error goes. */
export function clearInputError() {
  showInputError("");
}
