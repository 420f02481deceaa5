"""alphabet: predict the next letter of a stream of random letters interleaved with forward alphabet runs.

The sequential-memory example: once the model has read three consecutive letters of a run it can be nearly
sure of the fourth, but after one letter it cannot know whether a run has started. A backwards run (Z Y X …)
never occurs in training, so the model stays unsure of it.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.engine.layers import Cell
from app.engine.token.model import SeqModel
from app.engine.vocab import UNK, Vocab
from app.training.tasks.base import (
    LN2,
    Batch,
    Budget,
    KeyMetric,
    ModelSize,
    Task,
    TaskData,
    batch_loss,
    next_probs,
    percent,
    rounded,
)

LETTERS = string.ascii_uppercase
P_STOP = 0.01  # chance that a run stops early at each letter (it always stops after Z)
RANDOM_LEN = (3, 12)  # random letters between runs: uniform on this closed range
SEQ_LEN = 96
HELDOUT_SEED = 20_240_101  # the held-out streams are the same whatever the training seed

# The card's two demonstrations. The prefix has no two consecutive letters (and no F before the G).
G_PREFIX = "KQWDM"
G_RUN = "GHIJKLMNOP"
BACKWARDS = "ZYXWVUTSRQ"


def vocab() -> Vocab:
    return Vocab(tokens=(UNK, *LETTERS), level="char", case="upper", skip_whitespace=True)


def stream(rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
    """A stream of `length` letters (0 = A … 25 = Z) and, for each, its position in a run (0 = random, 1 =
    the first letter of a run, 2 = the second, …). Random stretches and runs alternate, starting random."""
    letters = np.empty(length, dtype=np.int64)
    run_pos = np.zeros(length, dtype=np.int64)
    i = 0
    while i < length:
        n = int(rng.integers(RANDOM_LEN[0], RANDOM_LEN[1] + 1))
        m = min(n, length - i)
        letters[i : i + m] = rng.integers(0, 26, size=m)
        i += m
        letter = int(rng.integers(0, 26))
        k = 1
        while i < length:
            letters[i] = letter
            run_pos[i] = k
            i += 1
            if letter == 25 or rng.random() < P_STOP:
                break
            letter += 1
            k += 1
    return letters, run_pos


def letter_ids(letters: np.ndarray) -> np.ndarray:
    return letters + 1  # vocabulary index: 0 is <unk>, then A … Z


@dataclass
class AlphabetData(TaskData):
    seq_len: int = SEQ_LEN
    heldout: tuple[Batch, np.ndarray] | None = None  # (batch, run positions of its T + 1 letters)

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        rows = [letter_ids(stream(rng, self.seq_len + 1)[0]) for _ in range(batch_size)]
        ids = torch.from_numpy(np.stack(rows))
        return Batch(ids=ids[:, :-1], targets=ids[:, 1:])

    def after_step(self, batch: Batch, logits: torch.Tensor) -> dict[str, float]:
        pred = logits.argmax(-1)
        return {"acc": float((pred == batch.targets).float().mean())}


class AlphabetTask(Task[AlphabetData]):
    name = "alphabet"
    title = "Alphabet runs: sequential memory"
    kind = "next_token"
    description = (
        "Next-letter prediction on random letters interleaved with forward alphabet runs (G H I J …): "
        "the model must remember the last few letters to tell a run from chance."
    )

    def size(self, cell: Cell) -> ModelSize:
        return ModelSize(embed_size=16, hidden_size=32)

    def budget(self, cell: Cell) -> Budget:
        return Budget(steps=3000, batch_size=32, lr=3e-3, clip=1.0)

    def load(self, dry_run: bool, cache: Path) -> AlphabetData:
        rng = np.random.default_rng(HELDOUT_SEED)
        n, length = (16, 48) if dry_run else (256, SEQ_LEN)
        rows, runs = zip(*(stream(rng, length + 1) for _ in range(n)), strict=True)
        ids = torch.from_numpy(np.stack([letter_ids(r) for r in rows]))
        heldout = (Batch(ids=ids[:, :-1], targets=ids[:, 1:]), np.stack(runs))
        source = (
            f"generated: random letters (runs of {RANDOM_LEN[0]}-{RANDOM_LEN[1]}) interleaved with forward "
            f"alphabet runs from a uniform start letter to Z (early stop p={P_STOP} per letter), "
            f"{length} letters per sequence; held-out streams from seed {HELDOUT_SEED}"
        )
        return AlphabetData(vocab=vocab(), data_source=source, seq_len=length, heldout=heldout)

    def examples(self) -> list[dict[str, Any]]:
        return [
            {
                "text": f"{G_PREFIX} {G_RUN}",
                "note": "Random letters, then a run from G: unsure at G and H, nearly certain from I on.",
            },
            {"text": BACKWARDS, "note": "A backwards run never seen in training: the model stays unsure."},
            {"text": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "note": "The whole alphabet: what comes after Z?"},
            {"text": "XQGTBM UVW", "note": "A short run at the end of the alphabet."},
            {"text": "HELLOWORLD", "note": "Ordinary text: only L→M or O→P would be a run."},
        ]

    def key_metric(self, metrics: dict[str, Any]) -> KeyMetric | None:
        value = metrics.get("run_accuracy_from_third_letter")
        return None if value is None else KeyMetric("accuracy in a run, from its third letter", percent(value))

    def metrics(self, model: SeqModel, data: AlphabetData) -> dict[str, Any]:
        assert data.heldout is not None
        batch, run_pos = data.heldout
        with torch.no_grad():
            logits = model(batch.ids)
            loss = float(batch_loss("next_token", logits, batch))
            correct = (logits.argmax(-1) == batch.targets).numpy()
            p_true = torch.softmax(logits, -1).gather(-1, batch.targets.unsqueeze(-1)).squeeze(-1).numpy()
        # Step t is inside a run that goes on at t + 1: its target is the next letter of the run.
        continues = (run_pos[:, :-1] >= 1) & (run_pos[:, 1:] == run_pos[:, :-1] + 1)
        run_here = run_pos[:, :-1]
        third_on = continues & (run_here >= 3)
        g_tokens = f"{G_PREFIX}{G_RUN}"
        g_steps = _steps(model, data.vocab, g_tokens)
        b_steps = _steps(model, data.vocab, BACKWARDS)
        g_run = g_steps[len(G_PREFIX) :]
        return {
            "heldout_loss": rounded(loss),
            "heldout_bits_per_letter": rounded(loss / LN2),
            "heldout_accuracy": rounded(float(correct.mean())),
            "run_accuracy_from_third_letter": rounded(float(correct[third_on].mean())),
            "run_mean_p_from_third_letter": rounded(float(p_true[third_on].mean())),
            "g_run": {
                "text": f"{G_PREFIX} {G_RUN}",
                "steps": g_steps,  # every step of the input: the letter read, the next letter and its p
                "p": [s["p"] for s in g_run],  # the run only: p of the next run letter after G, H, I, …
                "min_p_from_third": min(s["p"] for s in g_run[2:]),
            },
            "backwards": {
                "text": BACKWARDS,
                "steps": b_steps,
                "p": [s["p"] for s in b_steps],  # p of the next backwards letter after Z, Y, X, …
                "max_p": max(s["p"] for s in b_steps),
            },
        }


def _steps(model: SeqModel, vocab: Vocab, text: str) -> list[dict[str, Any]]:
    """For each letter but the last: the letter read, the letter that follows in `text`, and its probability."""
    enc = vocab.encode(text)
    probs = next_probs(model, enc.ids)
    return [
        {"read": enc.tokens[t], "next": enc.tokens[t + 1], "p": rounded(float(probs[t, enc.ids[t + 1]]))}
        for t in range(len(enc.ids) - 1)
    ]


TASK = AlphabetTask()
