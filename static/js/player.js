// The time cursor. A presentation is one sweep of positions p = 0 … 2T−1: the forward sweep t = p
// (left to right), then the BPTT sweep t = 2T−1−p (right to left). The player never runs ahead of the frames
// that have arrived. It emits "cursor" at most once per animation frame and records how long the views took
// to render it (window.__unrolled.frames), which bench/frame_time.py reads. With `sweeps: "forward"` play stops
// at the end of the forward sweep (for a scene shown before BPTT is taught, or a classifier that ends on its
// verdict); stepping and B still reach the BPTT sweep.

import { bus } from "./bus.js";

export const SPEEDS = [0.5, 1, 2, 4, 8, 15, 30, 60, 120, 240, 480];

const perf = (window.__unrolled = window.__unrolled ?? {});
perf.frames = []; // ms the views spent rendering each cursor change during play
perf.intervals = []; // ms between consecutive animation frames during play
const MAX_SAMPLES = 20000;

export class Player {
  constructor({ speed = 8 } = {}) {
    this.T = 0;
    this.available = { steps: 0, gradFrom: 0 };
    this.p = 0;
    this.playing = false;
    this.speed = clampSpeed(speed);
    this.sweeps = "both";
    this.carry = 0;
    this.lastTime = null;
    this.dirty = false;
    this.raf = null;
    bus.on("seek", ({ t, phase }) => this.seek(t, phase));
  }

  get phase() {
    return this.p < this.T ? "forward" : "backward";
  }

  get t() {
    return this.p < this.T ? this.p : 2 * this.T - 1 - this.p;
  }

  /** A new trace: T steps; the cursor goes to (phase, t) once it can; play runs `sweeps` ("both" or "forward"). */
  reset(T, { phase = "forward", t = 0, sweeps = "both" } = {}) {
    this.playing = false;
    this.T = T;
    this.sweeps = sweeps;
    this.available = { steps: 0, gradFrom: T };
    this.wanted = { phase, t };
    this.p = 0;
    this.carry = 0;
    this.emit();
  }

  /** More frames arrived. */
  setAvailable(steps, gradFrom, T = this.T) {
    if (T !== this.T) {
      const { phase, t } = this;
      this.T = T;
      this.p = phase === "forward" ? Math.min(t, T - 1) : 2 * T - 1 - Math.min(t, T - 1);
    }
    this.available = { steps, gradFrom };
    if (this.wanted) {
      const p = this.position(this.wanted.phase, this.wanted.t);
      if (p <= this.maxP()) {
        this.p = p;
        this.wanted = null;
      }
    }
    if (this.p > this.maxP()) this.p = this.maxP();
    this.emit();
    if (this.playing) this.schedule();
  }

  position(phase, t) {
    const tt = Math.max(0, Math.min(this.T - 1, t));
    return phase === "backward" ? 2 * this.T - 1 - tt : tt;
  }

  /** The furthest position the frames received allow. */
  maxP() {
    const { steps, gradFrom } = this.available;
    if (steps < this.T) return Math.max(0, steps - 1);
    return 2 * this.T - 1 - gradFrom < this.T ? this.T - 1 : 2 * this.T - 1 - gradFrom;
  }

  /** Where play stops: the end of the BPTT sweep, or of the forward sweep when only that one is played. */
  lastP() {
    return this.sweeps === "forward" && this.p < this.T ? this.T - 1 : 2 * this.T - 1;
  }

  play() {
    if (this.T === 0) return;
    if (this.p >= this.lastP()) this.p = 0; // at the end: start again
    this.playing = true;
    this.lastTime = null;
    this.carry = 0;
    this.emit();
    this.schedule();
  }

  pause() {
    this.playing = false;
    this.emit();
  }

  toggle() {
    if (this.playing) this.pause();
    else this.play();
  }

  /** One step along the sweep: +1 forward in presentation order, −1 back. */
  step(d) {
    this.pause();
    this.moveTo(this.p + d);
  }

  moveTo(p) {
    this.p = Math.max(0, Math.min(this.maxP(), p));
    this.emit();
  }

  seek(t, phase = this.phase) {
    this.wanted = null;
    this.moveTo(this.position(phase, t));
  }

  /** Home: the first step of the current sweep; End: its last. */
  home() {
    this.pause();
    this.moveTo(this.phase === "forward" ? 0 : this.T);
  }

  end() {
    this.pause();
    this.moveTo(this.phase === "forward" ? this.T - 1 : 2 * this.T - 1);
  }

  /** Jump to the other sweep at the same step. */
  switchPhase() {
    this.seek(this.t, this.phase === "forward" ? "backward" : "forward");
  }

  /** The next speed of SPEEDS up (or down) from the current one, which may lie between two of them. */
  faster() {
    this.setSpeed(SPEEDS.find((v) => v > this.speed * 1.001) ?? SPEEDS[SPEEDS.length - 1]);
  }

  slower() {
    this.setSpeed([...SPEEDS].reverse().find((v) => v < this.speed / 1.001) ?? SPEEDS[0]);
  }

  /** Steps per second, exactly as asked (a tour's "speed": 3 plays at 3), within SPEEDS' range. */
  setSpeed(s) {
    this.speed = clampSpeed(s);
    this.emit();
  }

  emit() {
    this.dirty = true;
    this.schedule();
  }

  schedule() {
    if (this.raf === null) this.raf = requestAnimationFrame((now) => this.tick(now));
  }

  tick(now) {
    this.raf = null;
    const moving = this.playing;
    if (moving) {
      if (this.lastTime !== null) {
        const dt = now - this.lastTime;
        push(perf.intervals, dt);
        this.carry += (dt / 1000) * this.speed;
        const k = Math.floor(this.carry);
        if (k > 0) {
          this.carry -= k;
          const limit = Math.min(this.maxP(), this.lastP());
          if (this.p + k > limit) this.carry = 0; // waiting for frames: do not bank time
          const target = Math.min(this.p + k, limit);
          if (target !== this.p) {
            this.p = target;
            this.dirty = true;
          }
        }
      }
      this.lastTime = now;
      if (this.p >= this.lastP()) {
        this.playing = false;
        this.dirty = true;
      } else {
        this.schedule();
      }
    }
    if (this.dirty) {
      this.dirty = false;
      const start = performance.now();
      const cursor = { phase: this.phase, t: this.t, p: this.p, T: this.T, playing: this.playing, speed: this.speed };
      bus.emit("cursor", cursor);
      if (moving) push(perf.frames, performance.now() - start);
      perf.cursor = cursor;
    }
  }
}

function push(a, v) {
  if (a.length >= MAX_SAMPLES) a.shift();
  a.push(v);
}

function clampSpeed(s) {
  const v = Number(s);
  return Number.isFinite(v) && v > 0 ? Math.max(SPEEDS[0], Math.min(SPEEDS[SPEEDS.length - 1], v)) : 8;
}

function nearestSpeed(s) {
  let best = SPEEDS[0];
  for (const v of SPEEDS) if (Math.abs(Math.log(v / s)) < Math.abs(Math.log(best / s))) best = v;
  return best;
}

/** A speed that plays one sweep of T steps in about `seconds`. */
export function speedFor(T, seconds = 10) {
  return nearestSpeed(Math.max(2, T / seconds));
}
