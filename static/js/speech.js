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

/** Σ of squares → a norm: the layer's directions' ‖∂L/∂h_t‖ as one (the norm of the two halves of h_t together). */
const joined = (rows, T) => Array.from({ length: T }, (_, t) => Math.hypot(...rows.map((r) => r[t] ?? 0)));

/**
 * The transcribe reply ({text, beams, transcript, trace}: app/wire/speech.py) as the views read it: T' steps of `stack` frames
 * each, `hop` seconds apart; y_t(k) (T' × C, class 0 the blank); the greedy path, what its collapse writes at each
 * step (−1: nothing), the best alignment as classes; ‖∂L/∂h_t‖ per step (the top layer's, both directions as one
 * norm); the layers' states (the top layer's forward entry is what the unrolled network shows).
 */
export function readTrace(reply) {
  const tr = reply.trace;
  const classes = tr.classes.map((c, k) => (k === 0 ? "·" : c));
  const probs = tr.log_probs.map((row) => row.map((x) => Math.exp(x)));
  const T = tr.steps;
  const stepSeconds = tr.step_seconds;
  const perLayer = Math.max(1, tr.layers.length / Math.max(1, tr.directions.filter((d) => d === "forward").length)); // directions
  const L = tr.layers.length / perLayer;
  const layerGrads = Array.from({ length: L }, (_, l) => joined(tr.grad_norms.hidden.slice(l * perLayer, (l + 1) * perLayer), T));
  const grad = layerGrads[L - 1] ?? new Array(T).fill(null);
  const topForward = tr.layers[(L - 1) * perLayer];
  return {
    T,
    tokens: tr.greedy.map((k) => classes[k]), // what the player's readout names at each step
    gradFrom: 0, // CTC's error enters at every step: the BPTT sweep is whole at once
    gradLogRange: () => logRange(grad),
    frames: tr.features,
    bands: tr.features[0]?.length ?? 0,
    stack: tr.stack,
    hop: tr.frame_seconds,
    stepSeconds,
    duration: tr.audio.seconds,
    classes,
    probs,
    greedy: tr.greedy,
    emitted: tr.emitted,
    alignment: tr.trellis.path,
    text: reply.text, // the greedy path's collapse
    transcript: reply.transcript ?? reply.text, // what the model serves: the lexicon search's best text
    beams: reply.beams.map((b) => ({ text: b.text, logProb: b.log_prob })),
    target: tr.target,
    loss: tr.total_loss,
    layers: tr.layers.map((l) => ({ direction: l.direction, h: l.hidden, c: l.cell_state, gates: l.gates })),
    top: { h: topForward?.hidden ?? [] },
    directions: perLayer,
    grad,
    layerGrads,
    H: topForward?.hidden?.[0]?.length ?? 0,
    cell: tr.cell,
  };
}

/** [lo, hi] of log10 of the positive values (the ‖∂L/∂h_t‖ legend's ends). */
function logRange(values) {
  const logs = values.filter((v) => v > 0).map(Math.log10);
  return logs.length ? [Math.min(...logs), Math.max(...logs)] : [0, 0];
}
