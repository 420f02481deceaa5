// A melody's notes as the API writes them: PITCH:DUR (app/engine/token/notes.py), e.g. "F#4:0.5", "R:1" for a rest.

const STEP = { C: 0, D: 2, E: 4, F: 5, G: 7, A: 9, B: 11 };
const NOTE_RE = /^([A-G])(##|#|bb|b)?(-?\d+):(\d+(?:\.\d+)?)$/;
const REST_RE = /^R:(\d+(?:\.\d+)?)$/;
const SHIFT = { "": 0, "#": 1, "##": 2, b: -1, bb: -2 };

/** {midi, dur} (midi null for a rest), or null for a token that is not a note (<unk>). */
export function parseNote(token) {
  const rest = REST_RE.exec(token ?? "");
  if (rest) return { midi: null, dur: Number(rest[1]) };
  const m = NOTE_RE.exec(token ?? "");
  if (!m) return null;
  return { midi: 12 * (Number(m[3]) + 1) + STEP[m[1]] + SHIFT[m[2] ?? ""], dur: Number(m[4]) };
}

const NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
export const midiName = (midi) => `${NAMES[midi % 12]}${Math.floor(midi / 12) - 1}`;
export const frequency = (midi) => 440 * 2 ** ((midi - 69) / 12);

/** Every step's note and its onset in quarter notes from the first (an unreadable token lasts one quarter). */
export function timeline(tokens, T = tokens.length) {
  const out = [];
  let at = 0;
  for (let t = 0; t < T; t++) {
    const n = parseNote(tokens[t]) ?? { midi: null, dur: 1, unknown: true };
    out.push({ ...n, onset: at });
    at += n.dur;
  }
  return { notes: out, length: at };
}
