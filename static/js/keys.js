// Keyboard: a page's keys are declared once, as bindings {keys, does, act}; the same list drives the key handler
// and the Keys panel (#help), so the panel lists exactly what works on the page.
//   binding: keys, the e.key values (a letter stands for both cases; "Shift+ArrowRight" needs Shift); also, keys
//   that do the same but are not listed (= for +); show, the labels listed instead of keys; does, the words in
//   the panel (a binding without them works but is not listed); act(e).

// A clicker's keys: a one-line text field has no use for them, so they act even while one has focus.
const CLICKER = new Set(["PageUp", "PageDown"]);

export const typing = (el) => el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName)) && el.type !== "range";

// Handled by chrome.js on every page; listed here so that every Keys panel ends with them.
const CHROME = [
  { keys: ["p"], does: "presenter mode" },
  { keys: ["?"], does: "this help" },
];

const NAMES = { " ": "Space", ArrowRight: "→", ArrowLeft: "←", ArrowUp: "↑", ArrowDown: "↓", PageUp: "Page Up", PageDown: "Page Down", "-": "−", Escape: "Esc" };
const shown = (key) => {
  const plus = key.length > 1 ? key.indexOf("+") : -1;
  if (plus > 0) return [key.slice(0, plus), ...shown(key.slice(plus + 1))];
  return [NAMES[key] ?? (key.length === 1 ? key.toUpperCase() : key)];
};

/** The player's keys, which every page with a player shares; words: other `does` for some of them (by key). */
export function playerKeys(player, words = {}) {
  return reword(words, [
    { keys: [" "], does: "play / pause", act: () => player.toggle() },
    { keys: ["ArrowLeft", "ArrowRight"], does: "one step back / forward (the BPTT sweep runs right to left)", act: (e) => player.step(e.key === "ArrowRight" ? 1 : -1) },
    { keys: ["Home", "End"], does: "first / last step of the sweep", act: (e) => (e.key === "Home" ? player.home() : player.end()) },
    { keys: ["b"], does: "switch between the forward sweep and the BPTT sweep", act: () => player.switchPhase() },
    { keys: ["+", "-"], also: ["=", "_"], does: "faster / slower", act: (e) => ("+=".includes(e.key) ? player.faster() : player.slower()) },
  ]);
}

/** The bindings with other words for some of them (keyed by their first key). */
const reword = (words = {}, bindings) => bindings.map((x) => (words[x.keys[0]] ? { ...x, does: words[x.keys[0]] } : x));

/** The map from e.key (with "Shift+" for a named key pressed with Shift) to its binding. */
function keyMap(bindings) {
  const map = new Map();
  for (const b of bindings) {
    for (const k of [...b.keys, ...(b.also ?? [])]) {
      map.set(k, b);
      if (k.length === 1 && k.toUpperCase() !== k) map.set(k.toUpperCase(), b);
    }
  }
  return map;
}

function find(map, e) {
  return (e.shiftKey && e.key.length > 1 && map.get(`Shift+${e.key}`)) || map.get(e.key);
}

const sections = []; // [{title, bindings}] in the order the page declared them

/** The Keys panel, from every binding declared on the page (and chrome.js's P and ?). */
function renderHelp() {
  const dl = document.querySelector("#help dl.keys");
  if (!dl) return;
  const row = (b, prefix = "") => {
    const dt = document.createElement("dt");
    (b.show ?? b.keys).forEach((k, i) => {
      if (i) dt.append(" ");
      shown(k).forEach((part, j) => {
        if (j) dt.append("+");
        const kbd = document.createElement("kbd");
        kbd.textContent = part;
        dt.append(kbd);
      });
    });
    const dd = document.createElement("dd");
    dd.textContent = prefix + b.does;
    return [dt, dd];
  };
  const out = [];
  for (const { title, bindings } of sections) {
    for (const b of bindings) if (b.does) out.push(...row(b, title ? `${title}: ` : ""));
  }
  for (const b of CHROME) out.push(...row(b));
  dl.replaceChildren(...out);
}

/**
 * Listen for keys pressed outside text fields (Escape leaves a field; a clicker's Page Up / Page Down leave it
 * and act), while the Keys panel is closed; a key with no binding goes to `other(e)`, which returns true if it
 * used it.
 */
export function onKeys(bindings, other = () => false) {
  const map = keyMap(bindings);
  sections.push({ title: null, bindings });
  renderHelp();
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (document.getElementById("help")?.open) return;
    if (typing(e.target)) {
      if (e.key === "Escape") {
        e.target.blur();
        return;
      }
      if (!CLICKER.has(e.key) || !find(map, e)) return;
      e.target.blur();
    }
    const b = find(map, e);
    if (b?.act) {
      e.preventDefault();
      b.act(e);
    } else if (other(e)) {
      e.preventDefault();
    }
  });
}

/**
 * Keys that act while an element of a view has focus (a plot picked with the keyboard), listed in the Keys panel
 * under `title`; they take the key from the page's.
 */
export function onKeysIn(el, title, bindings) {
  const map = keyMap(bindings);
  sections.push({ title, bindings });
  renderHelp();
  el.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const b = find(map, e);
    if (!b?.act) return;
    e.preventDefault();
    e.stopPropagation();
    b.act(e);
  });
}

export function bindKeys(player, { units, input, words, more = [] } = {}) {
  onKeys(
    reword(words, [
      ...playerKeys(player),
      ...(units ? [{ keys: ["[", "]"], does: "previous / next unit", act: (e) => units(e.key === "]" ? 1 : -1) }] : []),
      ...(input ? [{ keys: ["/"], does: "edit the input", act: () => input.focus() }] : []),
      ...more,
    ]),
  );
}

renderHelp(); // a page without keys of its own lists chrome.js's
