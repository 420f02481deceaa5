// Keyboard: the same keys on every page that has a player.
//   Space play/pause · ←/→ step · Home/End · B switch sweep · +/− speed · [ ] unit · / edit input

import { bus } from "./bus.js";

const typing = (el) => el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName)) && el.type !== "range";

export function bindKeys(player, { units, input } = {}) {
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (typing(e.target)) {
      if (e.key === "Escape") e.target.blur();
      return;
    }
    const k = e.key;
    const act = {
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
      "]": () => units?.(1),
      "[": () => units?.(-1),
      "/": () => input?.focus(),
    }[k];
    if (act) {
      e.preventDefault();
      act();
      bus.emit("key", { key: k });
    }
  });
}
