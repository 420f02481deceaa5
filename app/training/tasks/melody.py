"""melody: next-note models of folk songs, the Essen folk-song collection's German-language tunes, which the
music21 package ships in its corpus (`pip install '.[train]'`; the server never imports music21).

Why these tunes: they are melodies by nature (one voice, sung), about 6,000 of them, with the rhythms of songs
(dotted notes, upbeats, triplets now and then), where the soprano lines of the 371 Bach chorales are fewer and
mostly quarter notes. The collections chosen (`COLLECTIONS`) are one tradition: German, Dutch, Flemish,
Lorraine, Luxembourg and Swiss songs; the Chinese and Irish files of the collection are left out.

Each tune is read with music21's ABC reader (its tokens: key signatures, accidentals carried through the bar,
broken rhythms, tuplets and ties applied by music21), without building the engraved score (beams, bar lines),
which takes 25 times longer and changes no note. Tied notes are one note, rests in a row one rest, grace
notes are dropped, a tune with a chord is skipped. A step is a note, written `PITCH:DUR` (app/engine/token/notes.py).

Every tune is moved to the key signature without sharps or flats (C major, A minor, D dorian, …), by the
nearest interval (at most a tritone), as folk-rnn and most melody models do: a melody is the same tune in any key,
so the model learns intervals and scale degrees once instead of twelve times, and the vocabulary stays small
(`PITCH:DUR` pairs that occur at least MIN_COUNT times in training). A tune typed in another key still reads:
only its notes outside the vocabulary are unknown, by position.

Whole tunes are held out (a fixed, seeded choice): the card's bits per note are measured on them, beside a
unigram and an interpolated bigram (Witten–Bell) fitted on the training tunes and measured on the same notes.
"""

from __future__ import annotations

import importlib
import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from app.engine.layers import Cell
from app.engine.token.model import SeqModel
from app.engine.token.notes import Note
from app.engine.vocab import UNK, Vocab
from app.training.tasks.base import LN2, Batch, Budget, KeyMetric, ModelSize, Task, TaskData, rounded

MUSIC21 = "music21==10.5.1"  # pinned in pyproject.toml's [train] extra and requirements.lock
COLLECTIONS = (
    "altdeu10", "altdeu20", "ballad10", "ballad20", "ballad30", "ballad40", "ballad50", "ballad60", "ballad70",
    "ballad80", "boehme10", "boehme20", "dva0", "erk10", "erk20", "erk30", "fink0", "folkHaydn", "kinder0", "lot",
    "lux", "variant0", "zuccal0",
)  # fmt: skip
SPLIT_SEED = 20_241_201  # which tunes are held out: fixed, whatever the training seed
HELDOUT_FRACTION = 0.05
DEV_FRACTION = 0.03  # the final weights are chosen on these (neither trained on nor held out)
MIN_COUNT = 3  # a note enters the vocabulary if the training tunes hold it this often
MIN_NOTES = 8
MAX_NOTES = 400  # longer tunes are cut: a batch is padded to its longest tune
DRY_COLLECTIONS = ("kinder0",)


def music21() -> Any:
    """music21, imported only here (training), with a message that says how to install it."""
    try:
        return importlib.import_module("music21")
    except ImportError as e:
        raise RuntimeError(f"the melody task needs {MUSIC21}: pip install -e '.[train]'") from e


@dataclass(frozen=True)
class Tune:
    collection: str
    number: int  # its X: reference number in the collection
    title: str
    notes: tuple[Note, ...]  # moved to the key signature without sharps or flats


def key_shift(sharps: int) -> int:
    """Semitones that move a key signature of `sharps` (flats < 0) to none, the nearest way: each sharp is a
    fifth up from C (7 semitones), so the key is moved 7·sharps back, into −6 … +5."""
    return (-7 * sharps + 6) % 12 - 6


def read_collection(m21: Any, path: Path) -> list[Tune]:
    """Every tune of one ABC file that is a melody (no chords), transposed to the key signature of none."""
    abc = m21.abcFormat
    handler = abc.ABCHandler()
    handler.process(path.read_text(encoding="latin-1"))
    tunes = []
    for number, book in handler.splitByReferenceNumber().items():
        if number is None:
            continue
        notes: list[Note] = []
        tied = False
        shift: int | None = None
        title = ""
        chord = False
        for token in book.tokens:
            if isinstance(token, abc.ABCMetadata):
                if token.tag == "T" and not title:
                    title = token.data.strip()
                continue
            if isinstance(token, abc.ABCChord):
                chord = True
                break
            if not isinstance(token, abc.ABCNote) or token.inGrace:
                continue
            length = Fraction(token.quarterLength).limit_denominator(96)
            if token.activeTuplet is not None:
                length *= Fraction(token.activeTuplet.tupletMultiplier()).limit_denominator(96)
            if length <= 0:
                continue
            if token.isRest:
                midi = None
            else:
                midi = int(m21.pitch.Pitch(token.pitchName).midi)
                if shift is None:
                    ks = token.activeKeySignature
                    shift = key_shift(int(ks.sharps) if ks is not None else 0)
            if notes and ((tied and midi is not None) or (midi is None and notes[-1].midi is None)):
                notes[-1] = Note(notes[-1].midi, notes[-1].duration + length)  # a tie, or rests in a row
            else:
                notes.append(Note(midi, length))
            tied = midi is not None and token.tie in ("start", "continue")
        if chord or shift is None or len(notes) < MIN_NOTES:
            continue
        moved = tuple(n.transposed(shift) for n in notes[:MAX_NOTES])
        tunes.append(Tune(path.stem, int(number), title, moved))
    return tunes


def read_tunes(collections: tuple[str, ...]) -> list[Tune]:
    m21 = music21()
    root = Path(m21.common.getCorpusFilePath()) / "essenFolksong"
    return [t for name in collections for t in read_collection(m21, root / f"{name}.abc")]


def split_tunes(n: int) -> tuple[list[int], list[int], list[int]]:
    """(training, dev, held-out) indices of n tunes: a fixed, seeded choice."""
    order = np.random.default_rng(SPLIT_SEED).permutation(n).tolist()
    n_held, n_dev = round(HELDOUT_FRACTION * n), round(DEV_FRACTION * n)
    return sorted(order[n_held + n_dev :]), sorted(order[n_held : n_held + n_dev]), sorted(order[:n_held])


def build_vocab(tunes: list[Tune]) -> Vocab:
    """The notes the training tunes hold at least MIN_COUNT times, most frequent first."""
    counts = Counter(n.token for t in tunes for n in t.notes)
    kept = sorted((tok for tok, c in counts.items() if c >= MIN_COUNT), key=lambda tok: (-counts[tok], tok))
    return Vocab(tokens=(UNK, *kept), level="note")


@dataclass
class NgramBaselines:
    """Bits per note of a unigram (add-one) and an interpolated bigram (Witten–Bell) from the training tunes."""

    unigram: np.ndarray  # (V,) p(note)
    bigram: np.ndarray  # (V, V) p(next | this)

    @classmethod
    def fit(cls, rows: list[list[int]], size: int) -> NgramBaselines:
        uni = np.ones(size)
        pairs = np.zeros((size, size))
        for ids in rows:
            np.add.at(uni, ids[1:], 1.0)  # the notes a model predicts: every note but a tune's first
            np.add.at(pairs, (ids[:-1], ids[1:]), 1.0)
        p_uni = uni / uni.sum()
        seen = pairs.sum(1, keepdims=True)
        types = (pairs > 0).sum(1, keepdims=True)
        lam = np.divide(seen, seen + types, out=np.zeros_like(seen), where=seen + types > 0)
        p_ml = np.divide(pairs, seen, out=np.zeros_like(pairs), where=seen > 0)
        return cls(unigram=p_uni, bigram=lam * p_ml + (1 - lam) * p_uni[None])

    def bits(self, rows: list[list[int]]) -> tuple[float, float]:
        """(unigram, bigram) mean bits per predicted note over every note but each tune's first."""
        uni = [-math.log2(self.unigram[b]) for ids in rows for b in ids[1:]]
        bi = [-math.log2(self.bigram[a, b]) for ids in rows for a, b in itertools.pairwise(ids)]
        return float(np.mean(uni)), float(np.mean(bi))


def tune_batch(rows: list[list[int]]) -> Batch:
    """Tunes right-padded with 0, their targets (the next note) padded with −100, which the loss ignores."""
    T = max(len(r) for r in rows) - 1
    ids = torch.zeros((len(rows), T), dtype=torch.long)
    targets = torch.full((len(rows), T), -100, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r) - 1] = torch.tensor(r[:-1])
        targets[i, : len(r) - 1] = torch.tensor(r[1:])
    return Batch(ids=ids, targets=targets)


@torch.no_grad()
def bits_per_note(model: SeqModel, rows: list[list[int]], batch_size: int = 64) -> float:
    """Mean bits per predicted note over every note of the tunes but each tune's first (each tune from the
    zero state, as a trace reads it)."""
    total, count = 0.0, 0
    for i in range(0, len(rows), batch_size):
        b = tune_batch(rows[i : i + batch_size])
        logits = model(b.ids)
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), b.targets.reshape(-1), reduction="sum"))
        count += int((b.targets != -100).sum())
    return total / count / LN2


@dataclass
class MelodyData(TaskData):
    train: list[list[int]] = field(default_factory=list)  # token ids of each training tune
    dev: list[list[int]] = field(default_factory=list)
    heldout: list[list[int]] = field(default_factory=list)
    baselines: NgramBaselines | None = None

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        return tune_batch([self.train[int(i)] for i in rng.integers(len(self.train), size=batch_size)])

    def after_step(self, batch: Batch, logits: Tensor) -> dict[str, float]:
        real = batch.targets != -100
        return {"acc": float(((logits.argmax(-1) == batch.targets) & real).sum() / real.sum())}

    def dev_score(self, model: SeqModel) -> float | None:
        return -bits_per_note(model, self.dev)


EXAMPLES = (
    ("E4:1 E4:1 F4:1 G4:1 G4:1 F4:1 E4:1 D4:1 C4:1 C4:1 D4:1 E4:1 E4:1.5 D4:0.5 D4:2",
     "Ode to Joy: a tune the songs never hold, in C; the model expects the steps of the scale."),
    ("C4:1 C4:1 G4:1 G4:1 A4:1 A4:1 G4:2 F4:1 F4:1 E4:1 E4:1 D4:1 D4:1 C4:2",
     "Twinkle, twinkle (Ah vous dirai-je, maman): after G4:2 and the long note, a phrase ends."),
    ("G4:0.5 C5:1 C5:0.5 C5:1 D5:0.5 E5:1 E5:0.5 E5:1 D5:0.5 C5:1.5 R:1",
     "An upbeat and a 6/8 swing: long–short pairs the model learns to continue."),
    ("A4:1 E5:1 E5:1 D5:0.5 C5:0.5 B4:1 G#4:1 A4:2",
     "A minor with its leading tone G#: after G#4 the model expects A4."),
    ("C4:1 D4:1 E4:1 F4:1 G4:1 A4:1 B4:1 C5:1", "A scale: likely, but songs rarely climb so far in one breath."),
)  # fmt: skip


class MelodyTask(Task[MelodyData]):
    name = "melody"
    title = "Melody: the next note of a folk song"
    kind = "next_token"
    description = (
        "Next-note prediction on German-language folk songs (the Essen collection, moved to C major / A minor): "
        "each step reads one note, PITCH:DUR, and predicts the next note's pitch and length together."
    )

    def size(self, cell: Cell) -> ModelSize:
        return ModelSize(embed_size=32, hidden_size=128)

    def budget(self, cell: Cell) -> Budget:
        # ~100 s on an idle core; torch has no fused CPU kernel for a GRU or RNN training step: fewer steps.
        steps = 1500 if cell == "lstm" else 1200
        return Budget(steps=steps, batch_size=32, lr=5e-3, clip=1.0, lr_floor=0.05)

    def load(self, dry_run: bool, cache: Path) -> MelodyData:
        tunes = read_tunes(DRY_COLLECTIONS if dry_run else COLLECTIONS)
        train_idx, dev_idx, held_idx = split_tunes(len(tunes))
        vocab = build_vocab([tunes[i] for i in train_idx])

        def rows(indices: list[int]) -> list[list[int]]:
            return [[vocab.index(n.token) for n in tunes[i].notes] for i in indices]

        train, dev, held = rows(train_idx), rows(dev_idx), rows(held_idx)
        baselines = NgramBaselines.fit(train, len(vocab))
        uni, bi = baselines.bits(held)
        notes = sum(len(t.notes) for t in tunes)
        collections = DRY_COLLECTIONS if dry_run else COLLECTIONS
        source = (
            f"{MUSIC21.replace('==', ' ')}'s corpus, essenFolksong/{{{','.join(collections)}}}.abc (the Essen "
            f"folk-song collection, ABC by Seymour Shlien): {len(tunes)} tunes, {notes} notes, read with music21's "
            f"ABC tokens, moved to the key signature of none; {len(held_idx)} whole tunes held out and "
            f"{len(dev_idx)} for choosing the weights (seed {SPLIT_SEED}); vocabulary: the {len(vocab) - 1} notes "
            f"seen at least {MIN_COUNT} times in training"
        )
        held_notes = sum(len(r) - 1 for r in held)
        extra = {
            "heldout_tunes": len(held),
            "heldout_notes": held_notes,  # predicted notes: every note but each tune's first
            "heldout_unk_rate": rounded(sum(r[1:].count(0) for r in held) / held_notes, 5),
            "heldout_unigram_bits_per_note": rounded(uni),
            "heldout_bigram_bits_per_note": rounded(bi),
            "heldout_tune_names": [f"{tunes[i].collection} {tunes[i].number}" for i in held_idx],
            "train_tunes": len(train),
            "train_notes": sum(len(r) for r in train),
            "baselines": "unigram: add-one; bigram: interpolated with the unigram by Witten-Bell; both fitted on "
            "the training tunes",
        }
        return MelodyData(
            vocab=vocab, data_source=source, extra=extra, train=train, dev=dev, heldout=held, baselines=baselines
        )

    def examples(self) -> list[dict[str, Any]]:
        return [{"text": text, "note": note} for text, note in EXAMPLES]

    def key_metric(self, metrics: dict[str, Any]) -> KeyMetric | None:
        value = metrics.get("heldout_bits_per_note")
        bigram = metrics.get("heldout_bigram_bits_per_note")
        if value is None:
            return None
        return KeyMetric(
            "bits per note, held-out tunes", f"{value:.3g}" + (f" (bigram {bigram:.3g})" if bigram else "")
        )

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1), ignore_index=-100)

    def metrics(self, model: SeqModel, data: MelodyData) -> dict[str, Any]:
        bits = bits_per_note(model, data.heldout)
        return {
            "heldout_bits_per_note": rounded(bits),
            "heldout_perplexity": rounded(2**bits, 2),
            "train_bits_per_note": rounded(bits_per_note(model, data.train[: len(data.heldout) * 4])),
            **data.extra,
        }


TASK = MelodyTask()
