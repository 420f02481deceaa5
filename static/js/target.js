// The target in force: what the loss L of a classifier's trace is measured against, and where it came from.
// Shown beside the input wherever a classifier runs, so that the numbers on screen can be read right.

const SOURCE = {
  given: "as chosen",
  input: "named by the input's first symbol",
  predicted: "the model's own answer",
};

/** "target C (named by the input's first symbol)"; for several traces, one target or one per cell; "" if none. */
export function targetText(traces) {
  const cls = traces.filter((tr) => tr && tr.family.head === "classes" && tr.label !== null);
  if (!cls.length) return "";
  const labels = new Set(cls.map((tr) => tr.label));
  const sources = new Set(cls.map((tr) => tr.labelSource));
  const why = sources.size === 1 ? SOURCE[[...sources][0]] ?? "" : "";
  const what = labels.size === 1 ? String(cls[0].label) : cls.map((tr) => `${tr.cell.toUpperCase()} ${tr.label}`).join(", ");
  return `target ${what}${why ? ` (${why})` : ""}`;
}

/** Write the target of `traces` into el, hiding it when there is none (next-token models). */
export function showTarget(el, traces) {
  if (!el) return;
  const text = targetText(traces);
  el.hidden = !text;
  if (el.textContent !== text) el.textContent = text;
}
