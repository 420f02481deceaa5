// Keyboard: the same keys on every page that has a player.
//   Space play/pause · ←/→ step · Home/End · B switch sweep · +/− speed · [ ] unit · / edit input

// A clicker's keys: a one-line text field has no use for them, so they act even while one has focus.
const CLICKER = new Set(["PageUp", "PageDown"]);

export const typing = (el) => el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName)) && el.type !== "range";

/** The player's keys, which every page with a player shares (a page may override some). */
export function playerKeys(player) {
  return {
    " ": () => player.toggle(),
    ArrowRight: () => player.step(1),
    ArrowLeft: () => player.step(-1),
    Home: () => player.home(),
    End: () => player.end(),
    b: () => player.switchPhase(),
    B: () => player.switchPhase(),
    "+": () => player.faster(),
    "=": () => player.faster(),
    "-": () => player.slower(),
    _: () => player.slower(),
  };
}

/**
 * Listen for keys pressed outside text fields (Escape leaves a field; a clicker's Page Up / Page Down leave it
 * and act). `keysFor(e)` maps e.key to an action; a key it has no action for goes to `other(e)`, which returns
 * true if it used it.
 */
export function onKeys(keysFor, other = () => false) {
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (typing(e.target)) {
      if (e.key === "Escape") {
        e.target.blur();
        return;
      }
      if (!CLICKER.has(e.key) || !keysFor(e)[e.key]) return;
      e.target.blur();
    }
    const act = keysFor(e)[e.key];
    if (act) {
      e.preventDefault();
      act();
    } else if (other(e)) {
      e.preventDefault();
    }
  });
}

export function bindKeys(player, { units, input } = {}) {
  onKeys(() => ({
    ...playerKeys(player),
    "]": () => units?.(1),
    "[": () => units?.(-1),
    "/": () => input?.focus(),
  }));
}
