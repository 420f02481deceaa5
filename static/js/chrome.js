// What every page shares: presenter mode (large type, high contrast, controls hidden until the mouse moves;
// key P, ?presenter=1) and the keyboard help (key ?).

import { bus } from "./bus.js";
import { typing } from "./keys.js";
import { readParams, writeParams } from "./url.js";

const root = document.documentElement;
const IDLE_MS = 2500;
let idleTimer = null;

function setPresenter(on) {
  root.classList.toggle("presenter", on);
  document.getElementById("presenter-toggle")?.setAttribute("aria-pressed", String(on));
  writeParams({ presenter: on }, { now: true });
  wake();
  bus.emit("layout", { presenter: on });
}

// The controls stay in view while a field of theirs has focus: the room sees its suggestion being typed.
function wake() {
  root.classList.remove("idle");
  clearTimeout(idleTimer);
  if (root.classList.contains("presenter") && !typing(document.activeElement)) {
    idleTimer = setTimeout(() => root.classList.add("idle"), IDLE_MS);
  }
}

function init() {
  const { presenter } = readParams({ presenter: { type: "bool", default: false } });
  if (presenter) setPresenter(true);
  document.getElementById("presenter-toggle")?.addEventListener("click", () => setPresenter(!root.classList.contains("presenter")));
  const help = document.getElementById("help");
  document.getElementById("help-toggle")?.addEventListener("click", () => help?.showModal());
  document.addEventListener("mousemove", wake, { passive: true });
  document.addEventListener("focusin", wake);
  document.addEventListener("focusout", () => setTimeout(wake)); // once focus has moved on
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    if (e.key === "p" || e.key === "P") {
      setPresenter(!root.classList.contains("presenter"));
      e.preventDefault();
    } else if (e.key === "?") {
      if (help?.open) help.close();
      else help?.showModal();
      e.preventDefault();
    }
  });
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => bus.emit("layout", {}), 150);
  });
  bus.on("status", ({ kind = "info", message }) => {
    const el = document.getElementById("status");
    if (!el) return;
    el.hidden = !message;
    el.textContent = message ?? "";
    el.dataset.kind = kind;
  });
}

init();
