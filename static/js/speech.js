// The speech page's sound: the WAV it sends (a bundled clip, an upload, or the microphone recorded here and
// encoded as 16-bit PCM in the browser: nothing leaves for anywhere but this server), the sound played with Web
// Audio (its context made on the first gesture, as browsers require), the trace read into one shape for the
// views, and the one rule that turns a transcript into the translation model's English (commas).

import { bus } from "./bus.js";

/** The rate the page records and encodes at: the speech front end's own (app/engine/speech/audio.py). */
export const RECORD_RATE = 16000;
/** The longest recording the page keeps, in seconds (the server refuses more than 10 s). */
export const MAX_RECORD_SECONDS = 8;

/**
 * The transcript as the translation model reads it. The speech alphabet has no comma, but num2words (which wrote
 * the translation model's English) writes one after "thousand" when more words follow: "two thousand, three
 * hundred". This is the one place that puts it back.
 */
export function withCommas(transcript) {
  const words = transcript.trim().split(/\s+/).filter(Boolean);
  return words.map((w, i) => (w === "thousand" && i < words.length - 1 ? `${w},` : w)).join(" ");
}

/** Float samples (−1 … 1) as a 16-bit PCM mono WAV file. */
export function encodeWav(samples, rate) {
  const bytes = new ArrayBuffer(44 + samples.length * 2);
  const v = new DataView(bytes);
  const text = (at, s) => [...s].forEach((ch, i) => v.setUint8(at + i, ch.charCodeAt(0)));
  text(0, "RIFF");
  v.setUint32(4, 36 + samples.length * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  v.setUint32(16, 16, true); // the fmt chunk's size
  v.setUint16(20, 1, true); // PCM
  v.setUint16(22, 1, true); // mono
  v.setUint32(24, rate, true);
  v.setUint32(28, rate * 2, true); // bytes per second
  v.setUint16(32, 2, true); // bytes per frame
  v.setUint16(34, 16, true); // bits per sample
  text(36, "data");
  v.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const x = Math.max(-1, Math.min(1, samples[i]));
    v.setInt16(44 + i * 2, x < 0 ? x * 0x8000 : x * 0x7fff, true);
  }
  return new Blob([bytes], { type: "audio/wav" });
}

let context = null;

/** The page's AudioContext: made (or resumed) on a gesture; null before the first one. */
export function audioContext(create = false) {
  if (!context && create) context = new AudioContext();
  if (context?.state === "suspended" && create) context.resume();
  return context;
}

/** The first key or click anywhere makes the AudioContext (a page may not start sound before one). */
export function onFirstGesture() {
  const make = () => {
    audioContext(true);
    window.removeEventListener("keydown", make, true);
    window.removeEventListener("pointerdown", make, true);
  };
  window.addEventListener("keydown", make, true);
  window.addEventListener("pointerdown", make, true);
}

/** Any audio file's bytes → an AudioBuffer (decoded at the file's own rate, so the waveform is its samples). */
export async function decode(bytes) {
  const ctx = new OfflineAudioContext(1, 1, 44100);
  return ctx.decodeAudioData(bytes.slice(0));
}

/** An AudioBuffer resampled to mono at `rate` (Web Audio's own resampler). */
export async function resampled(buffer, rate = RECORD_RATE) {
  const ctx = new OfflineAudioContext(1, Math.max(1, Math.ceil(buffer.duration * rate)), rate);
  const src = ctx.createBufferSource();
  src.buffer = buffer;
  src.connect(ctx.destination);
  src.start();
  return ctx.startRendering();
}

/**
 * The microphone, recorded here: start() asks for it (getUserMedia, on a gesture), stop() ends the recording and
 * gives the WAV (16 kHz, 16-bit mono) of what it heard. It stops itself after MAX_RECORD_SECONDS.
 */
export class Recorder {
  constructor({ onStop }) {
    this.onStop = onStop;
    this.recorder = null;
    this.chunks = [];
    this.started = 0;
    this.timer = null;
  }

  get recording() {
    return this.recorder?.state === "recording";
  }

  /** Seconds recorded so far. */
  get seconds() {
    return this.recording ? (performance.now() - this.started) / 1000 : 0;
  }

  async start() {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
    this.chunks = [];
    this.recorder = new MediaRecorder(stream);
    this.recorder.addEventListener("dataavailable", (e) => e.data.size && this.chunks.push(e.data));
    this.recorder.addEventListener("stop", () => this.finish(stream));
    this.recorder.start();
    this.started = performance.now();
    this.timer = setTimeout(() => this.stop(), MAX_RECORD_SECONDS * 1000);
  }

  stop() {
    clearTimeout(this.timer);
    if (this.recording) this.recorder.stop();
  }

  async finish(stream) {
    for (const track of stream.getTracks()) track.stop();
    try {
      const recorded = await decode(await new Blob(this.chunks).arrayBuffer());
      const mono = await resampled(recorded, RECORD_RATE);
      this.onStop(encodeWav(mono.getChannelData(0), RECORD_RATE), null);
    } catch (e) {
      this.onStop(null, e);
    }
  }
}

/** Plays an AudioBuffer from `offset` seconds; `at()` is where it is now (seconds), null once it has ended. */
export class Playback {
  constructor(buffer, offset, onEnd) {
    const ctx = audioContext(true);
    this.ctx = ctx;
    this.offset = Math.max(0, Math.min(offset, buffer.duration));
    this.source = ctx.createBufferSource();
    this.source.buffer = buffer;
    this.source.connect(ctx.destination);
    this.begun = ctx.currentTime;
    this.ended = false;
    this.source.addEventListener("ended", () => {
      this.ended = true;
      onEnd();
    });
    this.source.start(0, this.offset);
  }

  at() {
    return this.ended ? null : this.offset + (this.ctx.currentTime - this.begun);
  }

  stop() {
    if (this.ended) return;
    this.ended = true;
    this.source.stop();
  }
}

/**
 * Listening: the sound played from the cursor's step, the cursor following it (the player's "seek"), until it
 * ends or toggle() stops it. onChange(playing) tells the page (a button's look).
 */
export class Listener {
  constructor(onChange = () => {}) {
    this.onChange = onChange;
    this.playback = null;
  }

  get playing() {
    return this.playback !== null;
  }

  stop() {
    if (!this.playback) return;
    this.playback.stop();
    this.playback = null;
    this.onChange(false);
  }

  /** Start at step t of the trace (from the start if t is its last step), or stop if playing. */
  toggle(trace, sound, t) {
    if (this.playback) {
      this.stop();
      return;
    }
    const from = t !== null && t < trace.T - 1 ? t * trace.stepSeconds : 0;
    const playback = new Playback(sound.buffer, from, () => {
      if (this.playback === playback) this.stop();
    });
    this.playback = playback;
    this.onChange(true);
    let last = null;
    const follow = () => {
      const at = playback.at();
      if (at === null || this.playback !== playback) return;
      const step = Math.min(trace.T - 1, Math.floor(at / trace.stepSeconds));
      if (step !== last) bus.emit("seek", { t: step, phase: "forward" });
      last = step;
      requestAnimationFrame(follow);
    };
    follow();
  }
}

/**
 * The clips to offer: the files the server lists, each named by the card's own example for it where the card has
 * one ({text, note, audio: "speech-examples/<file>"}), else by its file's name.
 */
export function clipsOf(listed, card) {
  const known = new Map((card?.examples ?? []).filter((e) => e.audio).map((e) => [e.audio.split("/").pop(), e]));
  return listed.map((x) => ({ ...x, words: known.get(x.name)?.text ?? x.words, note: known.get(x.name)?.note ?? "" }));
}

/** A decoded sound for the views and the Listener: {buffer, samples, rate}, or null if the browser cannot read it. */
export async function soundOf(bytes) {
  try {
    const buffer = await decode(bytes);
    return { buffer, samples: buffer.getChannelData(0), rate: buffer.sampleRate };
  } catch {
    return null; // the server says what is wrong with it
  }
}

const get = (o, ...names) => names.map((n) => o?.[n]).find((x) => x !== undefined);

/**
 * The transcribe reply ({text, beams, trace}) as the views read it: T' steps of `stack` frames each, `hop` seconds
 * apart; probabilities (T' × C, class 0 the blank); the greedy path, what its collapse writes at each step
 * (−1: nothing), the best alignment as classes; ‖∂L/∂h_t‖ per step; the layers' states.
 */
export function readTrace(reply, card) {
  const tr = reply.trace ?? {};
  const classes = ["·", ...(card?.target_vocab ?? []).slice(1)];
  const logProbs = get(tr, "log_probs", "posteriors_log") ?? [];
  const probs = get(tr, "probs", "posteriors") ?? logProbs.map((row) => row.map((x) => Math.exp(x)));
  const T = probs.length;
  const frames = get(tr, "features", "frames", "log_mel") ?? [];
  const stack = get(tr, "stack", "frames_per_step") ?? Math.max(1, Math.round(frames.length / Math.max(1, T)));
  const hop = get(tr, "hop_seconds", "frame_seconds", "hop") ?? 0.01;
  const greedy = get(tr, "greedy", "greedy_path") ?? probs.map((row) => row.indexOf(Math.max(...row)));
  const emitted = get(tr, "emitted") ?? greedy.map((c, t) => (c !== 0 && c !== greedy[t - 1] ? c : -1));
  const alignment = alignmentClasses(tr);
  const layers = (tr.layers ?? []).map((l, i) => ({
    name: l.name ?? `layer ${i}`,
    h: get(l, "h", "hidden") ?? l.states?.h ?? [],
    c: get(l, "c", "cell") ?? l.states?.c ?? null,
    gates: l.gates ?? {},
  }));
  const grad = gradNorms(tr, T);
  const stepSeconds = stack * hop;
  return {
    T,
    tokens: greedy.map((k) => (k === 0 ? "·" : classes[k])), // what the player's readout names at each step
    where: (t) => `step ${t + 1} / ${T} · ${(t * stepSeconds).toFixed(2)} s`,
    gradFrom: 0, // CTC's error enters at every step: the BPTT sweep is whole at once
    gradLogRange: () => logRange(grad),
    frames,
    bands: frames[0]?.length ?? 0,
    stack,
    hop,
    stepSeconds,
    duration: get(tr, "duration", "seconds", "duration_seconds") ?? frames.length * hop,
    classes,
    probs,
    greedy,
    emitted,
    alignment,
    text: reply.text ?? "",
    beams: (reply.beams ?? []).map((b) => ({ text: b.text ?? "", logProb: get(b, "log_prob", "score") ?? null })),
    target: get(tr, "target", "transcript") ?? reply.text ?? "",
    loss: get(tr, "loss") ?? null,
    layers,
    grad,
    H: layers[0]?.h?.[0]?.length ?? 0,
    cell: card?.cell ?? "",
  };
}

/** [lo, hi] of log10 of the positive values (the ‖∂L/∂h_t‖ legend's ends). */
function logRange(values) {
  const logs = values.filter((v) => v > 0).map(Math.log10);
  return logs.length ? [Math.min(...logs), Math.max(...logs)] : [0, 0];
}

/** The best alignment as the class at each step (the trace gives it as classes, or as positions in l'). */
function alignmentClasses(tr) {
  const a = get(tr, "alignment_classes", "alignment_path") ?? tr.alignment ?? tr.trellis?.alignment;
  if (!a) return [];
  if (Array.isArray(a)) {
    const labels = tr.trellis?.labels ?? tr.labels;
    return labels ? a.map((s) => labels[s]) : a;
  }
  if (a.path) return a.path;
  if (a.classes) return a.classes;
  if (a.positions && a.labels) return a.positions.map((s) => a.labels[s]);
  return [];
}

/** ‖∂L/∂h_t‖ per step: the trace's, summed over layers as one norm where it gives them per layer. */
function gradNorms(tr, T) {
  const g = get(tr, "grad_norms", "grad_h", "grad_h_norms", "dL_dh");
  if (!g) return new Array(T).fill(null);
  if (Array.isArray(g) && typeof g[0] === "number") return g;
  const rows = Array.isArray(g) ? g : Object.values(g);
  if (Array.isArray(rows[0]) && rows[0].length === T) return rows[rows.length - 1]; // per layer: the top layer's
  if (Array.isArray(rows[0])) return rows.map((r) => Math.hypot(...r)); // per step, per layer
  return new Array(T).fill(null);
}
