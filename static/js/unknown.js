// Input a model has no token for (the API's `unknown` positions, read as <unk>, as a blank): one note beside the
// input bar on every page, the tokens struck through and named "not in the vocabulary", and where the unknown
// token takes away what the answer is about, a sentence that says so beside the answer.
//   Every run of a page's model(s) reports what it read (session.js for the streamed runs, a page for its REST
//   ones); a new run clears the note.

const reads = new Map(); // model and input → {model, tokens, unknown, card, translates, answer}
const perf = window.__unrolled;

/** The answer a run ends on, if it is one thing: a classifier's verdict, a translation's output. */
function answerOf(trace) {
  if (trace.output !== undefined) return `“${trace.output}”`;
  if (trace.labels && trace.steps) {
    const top = trace.topPrediction(trace.steps - 1);
    return `${top.token} at p ${top.p.toFixed(2)}`;
  }
  return null;
}

/** A new run: the last one's note goes. */
export function clearUnknown() {
  reads.clear();
  render();
}

/** What a model read: trace, its finished trace (a Trace or a TranslationTrace); card, the model's card. */
export function showRead(trace, card) {
  if (!trace) return;
  const tokens = trace.source ?? trace.tokens; // a translation's unknown positions are its source's
  // an encoder–decoder (a source beside what it writes) translates every word: a word it never learned is lost
  const translates = Boolean(card?.target_vocab || trace.source);
  reads.set(`${trace.model}\u0000${tokens.join("\u0000")}`, { model: trace.model, tokens, unknown: [...trace.unknown].sort((a, b) => a - b), card, translates, answer: answerOf(trace) });
  render();
}

const words = (list) => (list.length < 2 ? list.join("") : `${list.slice(0, -1).join(", ")} and ${list.at(-1)}`);

/** Symbols as a range when they run on (A–H), else listed. */
function symbols(labels) {
  const runs = labels.length > 2 && labels.every((l, i) => l.length === 1 && (!i || l.charCodeAt(0) === labels[i - 1].charCodeAt(0) + 1));
  return runs ? `${labels[0]}–${labels.at(-1)}` : labels.join(", ");
}

/**
 * Where an unknown token leaves the answer without its subject: a model taught to name the first token (the
 * memory task) given one it never saw, a translation of a word it never learned. Null where a blank is only a gap
 * in what the model reads (a review with a rare word).
 */
function lesson(group) {
  const [first] = group;
  const { card, tokens, unknown } = first;
  const answers = group.filter((r) => r.answer).map((r) => (group.length > 1 ? `${r.model} ${r.answer}` : r.answer));
  const said = answers.length > 1 ? `the answers — ${words(answers)} —` : answers.length ? answers[0] : "its answer";
  if (card?.target === "first_token" && unknown[0] === 0 && card.labels?.length) {
    const who = group.length > 1 ? "these models" : first.model;
    return `“${tokens[0]}” is not one of the symbols ${who} learned to remember (${symbols(card.labels)}): there is nothing to recall, so ${said} ${answers.length > 1 ? "are guesses, each" : "is a guess,"} scored against itself. Start the input with one of ${symbols(card.labels)}.`;
  }
  if (first.translates) {
    const never = words(unknown.map((j) => `“${tokens[j]}”`));
    return `${first.model} never learned ${never}: ${said} translates the rest of the input, not what was typed.`;
  }
  return null;
}

function render() {
  const anchor = document.querySelector("#run-form, #gen-form");
  let note = document.getElementById("unknown-note");
  const withUnknown = [...reads.values()].filter((r) => r.unknown.length);
  perf.unknown = withUnknown.map((r) => ({ model: r.model, tokens: r.unknown.map((j) => r.tokens[j]), lesson: lesson([r]) }));
  if (!withUnknown.length) {
    note?.remove();
    return;
  }
  if (!note) {
    note = document.createElement("div");
    note.id = "unknown-note";
    note.className = "unknown-note";
    note.setAttribute("role", "status");
  }
  if (anchor && note.previousElementSibling !== anchor) anchor.after(note);
  // models that read the same input the same way share one line (the compare page's three cells)
  const groups = new Map();
  for (const r of withUnknown) {
    const key = `${r.unknown.join(",")}|${r.tokens.join("\u0000")}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const lines = [];
  for (const group of groups.values()) {
    const { tokens, unknown, card } = group[0];
    const p = document.createElement("p");
    p.append("Not in the vocabulary: ");
    const seen = new Set();
    for (const j of unknown) {
      if (seen.has(tokens[j])) continue;
      seen.add(tokens[j]);
      if (seen.size > 1) p.append(" ");
      const s = document.createElement("s");
      s.className = "oov";
      s.title = "not in the vocabulary";
      s.textContent = tokens[j];
      p.append(s);
    }
    p.append(` — ${words(group.map((r) => r.model))} ${group.length > 1 ? "read" : "reads"} ${seen.size > 1 ? "them" : "it"} as the unknown token ${card?.unk ?? "<unk>"}, a blank.`);
    const why = lesson(group);
    if (why) {
      const b = document.createElement("strong");
      b.className = "unknown-lesson";
      b.textContent = ` ${why}`;
      p.append(b);
    }
    lines.push(p);
  }
  note.replaceChildren(...lines);
}
