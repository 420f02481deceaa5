"""Spoken number words, synthesised at training time: the speech family's data (issue 25).

What is said: English number words as num2words writes them (0 to 999,999), the numbers drawn as the numbers
task draws the numbers people type (app/training/tasks/numbers.py: by digit count, round, near-round, small), so
that "one hundred" and "two thousand" are heard as often as an audience says them. The transcript is num2words'
text without its commas ("one thousand, two hundred" → "one thousand two hundred"): a comma is not heard; the
hyphen of "twenty-one" is kept, because num2words writes the compound as one word and the translation model
reads it so. ALPHABET is every character those transcripts use.

Who says it: espeak-ng (a Debian package, `make install-train`; the server never needs it), every English voice
it has without MBROLA (`espeak-ng --voices=en`: British, American, Scottish, Lancaster, RP, West Midlands,
Caribbean, New York) crossed with every voice variant (`--voices=variant`: ~100 speakers, male, female,
whispered, robotic), at a speed of SPEED words a minute and a pitch of PITCH (espeak's 0–99), drawn per clip.
espeak writes 22,050 Hz 16-bit WAV to its stdout; the clip goes through the front end's reader and resampler
(app/engine/speech/audio.py) to 16 kHz and is kept so, as int16, in the data cache: a retrain with the same
draws reads them back instead of running espeak again.

What is held out: whole voice/variant combinations (HELDOUT_COMBOS of them, seeded, the same in every run)
are never trained on, and numbers.number_sets()'s held-out numbers ("uniform" and "round") are never spoken in
training. Two evaluation sets measure them apart: "voices" (held-out combinations saying numbers drawn as in
training) and "phrases" (held-out numbers said by training combinations).

How it is heard: at batch time a clip's level is changed by GAIN_DB and, for NOISY_SHARE of the clips, white
noise is added at an SNR drawn from SNR_DB (the noise's power against the clip's mean power, silences
included); then the front end's log-mel frames. Evaluation adds noise at a fixed SNR with a fixed seed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from torch import Tensor

from app.engine.speech.audio import log_mel, log_of, mel_power, read_wav, resample, seal
from app.engine.speech.lexicon import Lexicon
from app.training.tasks import numbers
from app.training.tasks.numbers import MIXTURE, SMALL_MAX, digit_range, near_round, round_numbers

ESPEAK = "espeak-ng"
INSTALL = "apt-get install espeak-ng (or `make install-train` as root)"
ALPHABET = " -adefghilnorstuvwxyz"  # every character of a transcript; CTC's blank is added before them
SPEED = (130, 210)  # words a minute, drawn per clip (espeak's default is 175)
PITCH = (25, 75)  # espeak's pitch, 0–99 (default 50)
GAIN_DB = (-20.0, 0.0)  # the level change, drawn per batch and clip
SNR_DB = (5.0, 30.0)  # white noise's SNR when a clip is noisy
NOISY_SHARE = 0.5
COMBO_SEED = 20_251_207  # which voice/variant combinations are held out: fixed, whatever the training seed
HELDOUT_COMBOS = 0.1  # of all combinations
EVAL_SEED = COMBO_SEED + 1


class SynthesisUnavailable(RuntimeError):
    """espeak-ng is missing or failed: the speech data cannot be made."""


@dataclass(frozen=True)
class Utterance:
    """One clip to synthesise: the number, its transcript and how espeak-ng says it."""

    number: int
    text: str
    voice: str  # an espeak-ng voice file, e.g. "gmw/en-US"
    variant: str  # an espeak-ng variant file, e.g. "Storm"
    speed: int  # words a minute
    pitch: int  # 0–99

    @property
    def combo(self) -> tuple[str, str]:
        return self.voice, self.variant


def transcript(words: str) -> str:
    """num2words' English text as the recogniser writes it: lower case, no commas, single spaces."""
    return " ".join(words.replace(",", " ").lower().split())


@cache
def number_lexicon() -> Lexicon:
    """The words of every transcript of 0-999,999 and which may follow which (app/engine/speech/lexicon.py), read
    off the numbers whose transcripts hold every pair there is: 0-999 (the words and pairs below a thousand),
    every thousand k·1000 (each last word of k before "thousand") and 1000-1999 (what follows "thousand")."""
    words = numbers.translator()
    said = [*range(2000), *range(2000, 1_000_000, 1000)]
    return Lexicon.of([transcript(words(n, "en")) for n in said])


def _espeak(*args: str) -> str:
    if shutil.which(ESPEAK) is None:
        raise SynthesisUnavailable(f"{ESPEAK} is not installed: {INSTALL}")
    done = subprocess.run([ESPEAK, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SynthesisUnavailable(f"`{ESPEAK} {' '.join(args)}` failed: {done.stderr.strip()[-300:]}")
    return done.stdout


def _voice_files(listing: str) -> list[str]:
    """The File column of `espeak-ng --voices=…` (Pty Language Age/Gender VoiceName File Other…)."""
    return [line.split()[4] for line in listing.splitlines()[1:] if len(line.split()) >= 5]


@cache
def voices() -> tuple[str, ...]:
    """espeak-ng's English voices that need nothing else installed (MBROLA's "mb/…" voices need the mbrola
    program and its voice files), by file: ("gmw/en", "gmw/en-US", …), sorted."""
    files = _voice_files(_espeak("--voices=en"))
    return tuple(sorted({f for f in files if f.startswith("gmw/")}))


@cache
def variants() -> tuple[str, ...]:
    """espeak-ng's voice variants, by file name without the "!v/" folder: ("Adam", "Alex", …), sorted."""
    return tuple(sorted({f.removeprefix("!v/") for f in _voice_files(_espeak("--voices=variant"))}))


@cache
def espeak_version() -> str:
    return _espeak("--version").strip()


def combos() -> list[tuple[str, str]]:
    return [(v, w) for v in voices() for w in variants()]


def heldout_combos() -> set[tuple[str, str]]:
    """HELDOUT_COMBOS of every voice/variant combination, the same in every run (given espeak-ng's voices)."""
    every = combos()
    rng = np.random.default_rng(COMBO_SEED)
    chosen = rng.choice(len(every), size=round(HELDOUT_COMBOS * len(every)), replace=False)
    return {every[i] for i in chosen.tolist()}


def heldout_numbers() -> set[int]:
    """The numbers task's held-out numbers ("uniform" and "round"): never spoken in training."""
    sets = numbers.number_sets()
    return set(sets["uniform"]) | set(sets["round"])


def draw_numbers(rng: np.random.Generator, size: int, never: set[int]) -> list[int]:
    """`size` numbers as the numbers task's training batches draw them (its MIXTURE), none of them in `never`."""
    rounds = round_numbers()
    out: list[int] = []
    while len(out) < size:
        draw = MIXTURE[int(rng.choice(len(MIXTURE), p=[share for _, share in MIXTURE]))][0]
        if draw == "digits":
            lo, hi = digit_range(int(rng.choice(numbers.DIGITS)))
            n = int(rng.integers(lo, hi + 1))
        elif draw == "round":
            n = rounds[int(rng.integers(len(rounds)))]
        elif draw == "near_round":
            n = near_round(rng, 1)[0]
        else:
            n = int(rng.integers(0, SMALL_MAX + 1))
        if n not in never:
            out.append(n)
    return out


def utterances(
    rng: np.random.Generator, said: Sequence[int], words: Callable[[int], str], pool: Sequence[tuple[str, str]]
) -> list[Utterance]:
    """Each number in `said` by a combination drawn from `pool`, at a drawn speed and pitch."""
    out = []
    for n in said:
        voice, variant = pool[int(rng.integers(len(pool)))]
        speed, pitch = int(rng.integers(SPEED[0], SPEED[1] + 1)), int(rng.integers(PITCH[0], PITCH[1] + 1))
        out.append(Utterance(n, transcript(words(n)), voice, variant, speed, pitch))
    return out


def speak(u: Utterance) -> bytes:
    """The WAV espeak-ng writes for one utterance, with its true sizes (app.engine.speech.audio.seal)."""
    args = ["--stdout", "-v", f"{u.voice}+{u.variant}", "-s", str(u.speed), "-p", str(u.pitch), u.text]
    if shutil.which(ESPEAK) is None:
        raise SynthesisUnavailable(f"{ESPEAK} is not installed: {INSTALL}")
    done = subprocess.run([ESPEAK, *args], capture_output=True, check=False)
    if done.returncode != 0 or not done.stdout:
        raise SynthesisUnavailable(f"{ESPEAK} could not say {u}: {done.stderr.decode(errors='replace')[-300:]}")
    return seal(done.stdout)


def clip(u: Utterance) -> NDArray[np.int16]:
    """One utterance at 16 kHz, as int16 (how the cache keeps it: half the bytes of float32, and espeak-ng
    writes 16 bits to begin with)."""
    audio = read_wav(speak(u))
    samples = resample(audio.samples, audio.rate)
    return np.round(np.clip(samples, -1.0, 1.0 - 2**-15) * 2**15).astype(np.int16)


def synthesise(batch: Sequence[Utterance], cache: Path | None) -> list[NDArray[np.int16]]:
    """The 16 kHz clips of many utterances, read from the data cache when an earlier run made the same ones
    (the key: espeak-ng's version and every utterance), else synthesised and stored there."""
    key = hashlib.sha256(json.dumps([espeak_version(), *map(asdict, batch)]).encode()).hexdigest()[:20]
    path = None if cache is None else cache / "speech" / f"clips-{key}.npz"
    if path is not None and path.exists():
        with np.load(path) as stored:
            flat, offsets = stored["samples"], stored["offsets"]
        return [flat[offsets[i] : offsets[i + 1]] for i in range(len(batch))]
    clips = [clip(u) for u in batch]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        offsets = np.cumsum([0, *map(len, clips)])
        partial = path.with_suffix(".partial.npz")
        np.savez(partial, samples=np.concatenate(clips), offsets=offsets)
        partial.replace(path)  # whole or absent: a run stopped while writing leaves no half cache
    return clips


def hear(
    samples: NDArray[np.int16], rng: np.random.Generator, gain_db: float = 0.0, snr_db: float | None = None
) -> Tensor:
    """A cached clip as the model hears it: its level changed by gain_db, white noise at snr_db (None: clean),
    through the front end's log-mel frames. (T, N_MELS)."""
    x = samples.astype(np.float32) / 2**15 * np.float32(10 ** (gain_db / 20))
    if snr_db is not None:
        power = float(np.mean(x.astype(np.float64) ** 2))
        x = x + rng.standard_normal(len(x)).astype(np.float32) * np.float32(np.sqrt(power / 10 ** (snr_db / 10)))
    return log_mel(np.clip(x, -1.0, 1.0))


def clean_power(samples: NDArray[np.int16]) -> Tensor:
    """A cached clip's mel power (N_MELS, T) at its own level, before the front end's log: what `augmented` reads
    for a clean clip instead of running the STFT again."""
    return mel_power(samples.astype(np.float32) / np.float32(2**15))


def augmented(samples: NDArray[np.int16], rng: np.random.Generator, power: Tensor | None = None) -> Tensor:
    """A training clip with a drawn level and, NOISY_SHARE of the time, drawn noise. `power`: the clip's
    clean_power, if kept: a clean clip's frames are then its power times the gain, through the log (the STFT is
    linear, so this is `hear` up to float rounding; clean clips never clip, the gain being at most 0 dB)."""
    gain = float(rng.uniform(*GAIN_DB))
    snr = float(rng.uniform(*SNR_DB)) if rng.random() < NOISY_SHARE else None
    if power is not None and snr is None:
        return log_of(power * float(np.float32(10 ** (gain / 10))))
    return hear(samples, rng, gain, snr)


def encode(text: str) -> list[int]:
    """A transcript → CTC targets: 1 + its index in ALPHABET (0 is the blank)."""
    return [ALPHABET.index(c) + 1 for c in text]


def decode(ids: Sequence[int]) -> str:
    return "".join(ALPHABET[i - 1] for i in ids)


def word_errors(reference: str, hypothesis: str) -> int:
    """Word-level edit distance (substitutions, insertions, deletions): the numerator of the word error rate."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    errors = sum(word_errors(r, h) for r, h in zip(references, hypotheses, strict=True))
    return errors / max(1, sum(len(r.split()) for r in references))


@dataclass
class SpeechSets:
    """Utterances to synthesise: training, dev (training combinations and numbers, other draws), and the two
    held-out sets: "voices" (held-out combinations) and "phrases" (held-out numbers)."""

    train: list[Utterance]
    dev: list[Utterance]
    voices: list[Utterance]
    phrases: list[Utterance]
    heldout_combos: set[tuple[str, str]]


def speech_sets(seed: int, n_train: int, n_eval: int, words: Callable[[int], str] | None = None) -> SpeechSets:
    """The utterances of a run: training and dev drawn from `seed`; the held-out sets from EVAL_SEED, the same
    in every run of the same sizes. AUDIENCE's numbers are always among the training ones."""
    say = words or (lambda n: numbers.translator()(n, "en"))
    held_combos = heldout_combos()
    trained = [c for c in combos() if c not in held_combos]
    held_numbers = heldout_numbers()
    rng = np.random.default_rng(seed)
    said = [*numbers.AUDIENCE, *draw_numbers(rng, max(0, n_train - len(numbers.AUDIENCE)), held_numbers)]
    train = utterances(rng, said[:n_train], say, trained)
    dev = utterances(rng, draw_numbers(rng, n_eval, held_numbers), say, trained)
    eval_rng = np.random.default_rng(EVAL_SEED)
    voices_set = utterances(eval_rng, draw_numbers(eval_rng, n_eval, held_numbers), say, sorted(held_combos))
    phrases_pool = sorted(held_numbers)
    picked = eval_rng.choice(len(phrases_pool), size=min(n_eval, len(phrases_pool)), replace=False)
    phrases = utterances(eval_rng, [phrases_pool[i] for i in picked.tolist()], say, trained)
    return SpeechSets(train, dev, voices_set, phrases, held_combos)
