// Sound synthesised in the browser: oscillators through an envelope, nothing fetched. Browsers start audio only
// after a gesture, so the AudioContext is made (or resumed) on the first key or click; a browser without Web
// Audio, or one that keeps it blocked, leaves the page working and says so in the indicator (muted).

export class Synth {
  /** indicator: a button that shows the state and toggles mute. */
  constructor(indicator) {
    this.indicator = indicator;
    this.ctx = null;
    this.muted = false;
    this.failed = "";
    this.played = 0;
    const wake = () => this.start();
    window.addEventListener("keydown", wake, { capture: true });
    window.addEventListener("pointerdown", wake, { capture: true });
    this.attach(indicator);
  }

  /** Show the state in (another) indicator button, which toggles mute. */
  attach(indicator) {
    this.indicator = indicator;
    indicator?.addEventListener("click", (e) => {
      e.preventDefault();
      this.setMuted(!this.muted);
    });
    this.show();
  }

  get running() {
    return Boolean(this.ctx && this.ctx.state === "running" && !this.muted);
  }

  start() {
    if (this.ctx?.state === "running" || this.failed) return;
    const AC = window.AudioContext ?? window.webkitAudioContext;
    if (!AC) {
      this.failed = "this browser has no Web Audio";
      this.show();
      return;
    }
    try {
      if (!this.ctx) {
        this.ctx = new AC();
        this.master = this.ctx.createGain();
        this.master.gain.value = 0.3;
        const limiter = this.ctx.createDynamicsCompressor();
        this.master.connect(limiter).connect(this.ctx.destination);
        this.ctx.addEventListener("statechange", () => this.show());
      }
      this.ctx.resume().then(() => this.show(), () => this.show());
    } catch (e) {
      this.failed = `sound is blocked (${e.message})`;
    }
    this.show();
  }

  setMuted(muted) {
    this.muted = muted;
    if (!muted) this.start();
    this.show();
  }

  /** One note of `seconds` now (a soft organ: a triangle and a quiet octave sine, attack, decay, release). */
  note(frequency, seconds, { level = 1 } = {}) {
    if (!this.running) return false;
    try {
      const c = this.ctx;
      const t0 = c.currentTime + 0.005;
      const len = Math.max(0.06, seconds);
      const env = c.createGain();
      env.gain.setValueAtTime(0, t0);
      env.gain.linearRampToValueAtTime(0.5 * level, t0 + 0.012);
      env.gain.exponentialRampToValueAtTime(0.3 * level, t0 + Math.min(0.15, len * 0.5));
      env.gain.setValueAtTime(0.3 * level, t0 + len * 0.85);
      env.gain.exponentialRampToValueAtTime(0.0001, t0 + len + 0.08);
      env.connect(this.master);
      const oscs = [
        ["triangle", frequency, 1],
        ["sine", 2 * frequency, 0.25],
      ].map(([type, f, g]) => {
        const o = c.createOscillator();
        o.type = type;
        o.frequency.value = f;
        const gain = c.createGain();
        gain.gain.value = g;
        o.connect(gain).connect(env);
        o.start(t0);
        o.stop(t0 + len + 0.1);
        return o;
      });
      oscs[0].addEventListener("ended", () => env.disconnect());
      this.played++;
      this.show();
      return true;
    } catch {
      return false;
    }
  }

  state() {
    if (this.failed) return "unavailable";
    if (this.muted) return "muted";
    return this.ctx?.state ?? "waiting";
  }

  show() {
    const state = this.state();
    window.__unrolled = window.__unrolled ?? {};
    window.__unrolled.audio = { state, context: this.ctx?.state ?? "none", played: this.played };
    const el = this.indicator;
    if (!el) return;
    const text = {
      running: "♪ sound on",
      muted: "♪ muted",
      unavailable: "♪ no sound",
      waiting: "♪ sound: press a key",
      suspended: "♪ sound: press a key",
      closed: "♪ no sound",
    }[state];
    el.textContent = text ?? "♪ sound";
    el.dataset.state = state;
    el.setAttribute("aria-pressed", String(state === "running"));
    el.title = this.failed ? `No sound: ${this.failed}. The page works without it.` : state === "running" ? "Sound is on: click or M to mute" : state === "muted" ? "Muted: click or M for sound" : "Browsers start sound after a key or a click";
  }
}

let shared = null;
/** One synthesiser for a page whose panels come and go (talk mode). */
export function sharedSynth(indicator) {
  if (!shared) shared = new Synth(indicator);
  else shared.attach(indicator);
  return shared;
}
