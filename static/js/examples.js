// The input bar's "Examples…" menu, filled from a model card's examples (the same on every page).

/** One option per example: its text as the value, its label (classifiers) in data-label. */
export function fillExamples(select, examples) {
  for (const ex of examples) {
    const short = ex.text.length > 40 ? `${ex.text.slice(0, 40)}…` : ex.text;
    const o = new Option(ex.note ? `${short} — ${ex.note}` : ex.text.slice(0, 60), ex.text);
    o.dataset.label = ex.label ?? "";
    select.append(o);
  }
}
