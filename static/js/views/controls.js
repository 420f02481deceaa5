// The player's controls: play/pause, step, sweep, speed and a scrubber, kept in step with the cursor.

import { bus } from "../bus.js";

const $ = (root, sel) => root.querySelector(sel);

export class Controls {
  constructor(root, player) {
    this.root = root;
    this.player = player;
    this.play = $(root, "[data-action=play]");
    this.scrub = $(root, "input[type=range]");
    this.phase = $(root, "[data-role=phase]");
    this.where = $(root, "[data-role=where]");
    this.speed = $(root, "[data-role=speed]");
    const actions = {
      play: () => player.toggle(),
      back: () => player.step(-1),
      forward: () => player.step(1),
      home: () => player.home(),
      end: () => player.end(),
      slower: () => player.slower(),
      faster: () => player.faster(),
      sweep: () => player.switchPhase(),
    };
    root.addEventListener("click", (e) => {
      const b = e.target.closest("[data-action]");
      if (b && actions[b.dataset.action]) actions[b.dataset.action]();
    });
    this.scrub?.addEventListener("input", () => {
      player.pause();
      bus.emit("seek", { t: Number(this.scrub.value) });
    });
  }

  update({ cursor, trace }) {
    if (!cursor) return;
    const { phase, t, T, playing, speed } = cursor;
    const label = playing ? "Pause" : "Play";
    if (this.play && this.play.dataset.state !== label) {
      this.play.dataset.state = label;
      this.play.setAttribute("aria-label", label);
      this.play.title = `${label} (Space)`;
      this.play.textContent = playing ? "❚❚" : "▶";
    }
    if (this.scrub) {
      if (this.scrub.max !== String(Math.max(0, T - 1))) this.scrub.max = String(Math.max(0, T - 1));
      if (this.scrub.value !== String(t)) this.scrub.value = String(t);
      this.scrub.classList.toggle("backward", phase === "backward");
    }
    if (this.phase) {
      const text = phase === "forward" ? "Forward sweep →" : "← BPTT sweep";
      if (this.phase.textContent !== text) {
        this.phase.textContent = text;
        this.phase.dataset.phase = phase;
      }
    }
    if (this.where) {
      const tok = trace?.tokens[t];
      const own = T && trace?.where ? trace.where(t) : null; // a translation: "encoder 2 / 6 “hundred”"
      const text = own ?? (T ? `step ${t + 1} / ${T}${tok !== undefined ? `  “${tokenText(tok)}”` : ""}` : "");
      if (this.where.textContent !== text) this.where.textContent = text;
    }
    if (this.speed) {
      const text = `${speed} steps/s`;
      if (this.speed.textContent !== text) this.speed.textContent = text;
    }
  }
}

function tokenText(tok) {
  return tok === " " ? "␣" : tok === "\n" ? "⏎" : tok;
}
