// The input bar of a model's page (model, compare, learning): the "Examples…" menu filled from the model card,
// the first input from the URL or the card, and a run on Enter, on submit and on choosing an example.

import { showInputError } from "./inputerror.js";

const $ = (id) => document.getElementById(id);

/** One option per example: its text as the value, its label (classifiers) in data-label. */
export function fillExamples(select, examples) {
  for (const ex of examples) {
    const short = ex.text.length > 40 ? `${ex.text.slice(0, 40)}…` : ex.text;
    const o = new Option(ex.note ? `${short} — ${ex.note}` : ex.text.slice(0, 60), ex.text);
    o.dataset.label = ex.label ?? "";
    select.append(o);
  }
}

/**
 * Wire the bar; run(text, label) is called for every input the presenter asks for (not for the first one).
 * params: the page's URL state ({text, label}); fallback: the input when neither the URL nor the card has one.
 * Returns {input, text, label}: the text box, and the first input with its target label ("" for the model's own).
 */
export function bindInputBar(card, params, run, fallback = "hello") {
  const input = $("text-input");
  const examples = $("examples");
  const labelSelect = $("label-select");
  fillExamples(examples, card.examples);
  // The default target: the class the input names (the memory task's first symbol), or the model's own answer.
  if (labelSelect && card.target === "first_token") labelSelect.options[0].textContent = "from the input";
  const first = card.examples[0];
  input.value = params.text || first?.text || fallback;
  let label = params.label || (params.text ? "" : first?.label ?? "");
  if (labelSelect && card.labels?.includes(label)) labelSelect.value = label;
  else label = "";
  const again = () => run(input.value, labelSelect?.value);
  examples.addEventListener("change", () => {
    const o = examples.selectedOptions[0];
    if (!o?.value) return;
    input.value = o.value;
    if (labelSelect) labelSelect.value = card.labels?.includes(o.dataset.label) ? o.dataset.label : "";
    examples.value = "";
    again();
  });
  $("run-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (input.value.trim()) again();
    else showInputError("The input is empty: type something to run, then Enter.");
  });
  // A typed input is no longer the example its chosen target belonged to: it goes back to its own target.
  input.addEventListener("input", () => {
    if (labelSelect) labelSelect.value = "";
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("run-form").requestSubmit();
    }
  });
  return { input, text: input.value, label };
}
