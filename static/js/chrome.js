// What every page shares: presenter mode (large type, high contrast; key P, ?presenter=1), whose top bar folds
// away while the mouse and the keys rest and comes back on either; the room's scale (--room); the keyboard help
// (key ?).

import { bus } from "./bus.js";
import { typing } from "./keys.js";
import { readParams, writeParams } from "./url.js";

const root = document.documentElement;
const IDLE_MS = 2500;
const STATUS_MS = 8000;
let idleTimer = null;

function setPresenter(on) {
  root.classList.toggle("presenter", on);
  document.getElementById("presenter-toggle")?.setAttribute("aria-pressed", String(on));
  writeParams({ presenter: on }, { now: true });
  wake();
  bus.emit("layout", { presenter: on });
}

// The top bar folds away (unrolled.css: it takes its height with it, leaving no band) after IDLE_MS without a
// mouse move or a key; it stays while a field has focus: the room sees its suggestion being typed.
function wake() {
  root.classList.remove("idle");
  clearTimeout(idleTimer);
  if (root.classList.contains("presenter") && !typing(document.activeElement)) {
    idleTimer = setTimeout(() => root.classList.add("idle"), IDLE_MS);
  }
}

// A screen bigger than the 1280×720 the pages are made for is a bigger room: --room is how much bigger (the
// smaller of the two ratios, at least 1). Presenter mode and the tour's controls grow by it (unrolled.css).
function measureRoom() {
  const room = Math.max(1, Math.min(window.innerWidth / 1280, window.innerHeight / 720));
  root.style.setProperty("--room", room.toFixed(3));
}

function init() {
  measureRoom();
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
    wake(); // a key (a step, play, a scene) brings the top bar back, as the mouse does
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
    measureRoom();
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => bus.emit("layout", {}), 150);
  });
  // The status line is a toast over the foot of the page (the melody's info line, a plot's axis): it goes after
  // STATUS_MS, and never stays up over what it covers.
  let statusTimer = null;
  const status = document.getElementById("status");
  const hideStatus = () => {
    if (status) status.hidden = true;
  };
  bus.on("status", ({ kind = "info", message }) => {
    if (!status) return;
    if (kind === "busy" && !message && status.dataset.kind !== "busy") return; // only the busy note goes
    status.hidden = !message;
    status.textContent = message ?? "";
    status.dataset.kind = kind;
    clearTimeout(statusTimer);
    if (message) statusTimer = setTimeout(hideStatus, STATUS_MS);
  });
}

init();
