"""charlm: a character language model of the English prose in CPython's own help texts (pydoc_data.topics).

Some whole topics are held out (a fixed, seeded choice); the card reports bits per character on them.
"""

from __future__ import annotations

import platform
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.rnn.model import Cell, SeqModel
from app.rnn.tokenize import UNK, Vocab
from app.tasks.base import LN2, Batch, Budget, ModelSize, Task, TaskData, rounded

SPLIT_SEED = 20_240_303  # which topics are held out: fixed, whatever the training seed
HELDOUT_CHARS = 40_000  # hold out whole topics until they add up to at least this many characters
MAX_HELDOUT_TOPIC = 15_000  # …choosing among topics no longer than this
MIN_COUNT = 20  # characters seen fewer times in the training text read as <unk>
SEQ_LEN = 128
EVAL_STREAMS = 32
SEPARATOR = "\n\n"
SAMPLE_PROMPT = "The "
SAMPLE_SEED = 3


def load_topics() -> dict[str, str]:
    from pydoc_data.topics import topics

    return dict(topics)


def split_topics(topics: dict[str, str]) -> tuple[list[str], list[str]]:
    """(training topic names, held-out topic names), both sorted."""
    names = sorted(topics)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(names))
    heldout: list[str] = []
    total = 0
    for i in order:
        name = names[int(i)]
        if total >= HELDOUT_CHARS:
            break
        if len(topics[name]) <= MAX_HELDOUT_TOPIC:
            heldout.append(name)
            total += len(topics[name])
    held = set(heldout)
    return [n for n in names if n not in held], sorted(heldout)


def build_vocab(text: str) -> Vocab:
    counts = Counter(text)
    chars = sorted(ch for ch, c in counts.items() if c >= MIN_COUNT)
    return Vocab(tokens=(UNK, *chars), level="char", case="keep", skip_whitespace=False)


def join(topics: dict[str, str], names: list[str]) -> str:
    return SEPARATOR.join(topics[n] for n in names)


@dataclass
class CharLMData(TaskData):
    train_ids: np.ndarray | None = None
    heldout_ids: np.ndarray | None = None
    seq_len: int = SEQ_LEN

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        assert self.train_ids is not None
        starts = rng.integers(0, len(self.train_ids) - self.seq_len - 1, size=batch_size)
        rows = np.stack([self.train_ids[s : s + self.seq_len + 1] for s in starts])
        ids = torch.from_numpy(rows)
        return Batch(ids=ids[:, :-1], targets=ids[:, 1:])

    def after_step(self, batch: Batch, logits: torch.Tensor) -> dict[str, float]:
        return {"acc": float((logits.argmax(-1) == batch.targets).float().mean())}


@torch.no_grad()
def bits_per_char(model: SeqModel, ids: np.ndarray, streams: int = EVAL_STREAMS) -> float:
    """Mean bits per character predicting `ids`, read as `streams` contiguous parallel streams."""
    length = (len(ids) - 1) // streams
    x = torch.from_numpy(ids[: streams * length].reshape(streams, length))
    y = torch.from_numpy(ids[1 : streams * length + 1].reshape(streams, length))
    logits = model(x)
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    return float(ce) / LN2


@torch.no_grad()
def sample(model: SeqModel, vocab: Vocab, prompt: str, length: int, seed: int, temperature: float = 0.7) -> str:
    """Continue `prompt` by sampling `length` characters (never <unk>) with a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    ids = vocab.encode(prompt).ids
    emb = model.embedding(torch.tensor([ids]))
    out, state = model.rnn(emb)
    logits = model.head(out[:, -1])
    chars: list[str] = []
    for _ in range(length):
        logits[:, 0] = -float("inf")
        nxt = int(torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=gen))
        chars.append(vocab.tokens[nxt])
        out, state = model.rnn(model.embedding(torch.tensor([[nxt]])), state)
        logits = model.head(out[:, -1])
    return "".join(chars)


class CharLMTask(Task[CharLMData]):
    name = "charlm"
    kind = "next_token"
    description = (
        "A character-level language model of English technical prose (Python's built-in help texts): "
        "at each step it predicts the next character from everything read so far."
    )

    def size(self, cell: Cell) -> ModelSize:
        return ModelSize(embed_size=16, hidden_size=128)

    def budget(self, cell: Cell) -> Budget:
        steps = {"rnn": 1500, "lstm": 1200, "gru": 1100}[cell]
        return Budget(steps=steps, batch_size=64, lr=4e-3, clip=1.0)

    def load(self, dry_run: bool, cache: Path) -> CharLMData:
        topics = load_topics()
        train_names, heldout_names = split_topics(topics)
        train_text = join(topics, train_names)
        heldout_text = join(topics, heldout_names)
        vocab = build_vocab(train_text)
        if dry_run:
            train_text, heldout_text = train_text[:20_000], heldout_text[:4_000]
        train_ids = np.array(vocab.encode(train_text).ids, dtype=np.int64)
        heldout_ids = np.array(vocab.encode(heldout_text).ids, dtype=np.int64)
        source = (
            f"CPython pydoc_data.topics (Python {platform.python_version()}), {len(topics)} topics, "
            f"{sum(len(t) for t in topics.values())} characters; {len(heldout_names)} topics held out "
            f"(seed {SPLIT_SEED}): {', '.join(heldout_names)}"
        )
        extra = {
            "python_version": platform.python_version(),
            "train_chars": len(train_ids),
            "heldout_chars": len(heldout_ids),
            "heldout_topics": heldout_names,
            "heldout_unk_rate": rounded(float((heldout_ids == 0).mean()), 5),
        }
        return CharLMData(
            vocab=vocab,
            data_source=source,
            extra=extra,
            train_ids=train_ids,
            heldout_ids=heldout_ids,
            seq_len=32 if dry_run else SEQ_LEN,
        )

    def examples(self) -> list[dict[str, Any]]:
        return [
            {"text": "The for statement repeats a block of code", "note": "Plain prose about Python."},
            {"text": "An exception is raised when", "note": "A sentence to continue."},
            {"text": 'The "while" statement\n*********************\n', "note": "A heading, as in the help."},
            {"text": "def greet(name):\n    return ", "note": "A little code: indentation is predictable."},
            {"text": "lists, tuples and dictionaries", "note": "Commas and plurals."},
        ]

    def metrics(self, model: SeqModel, data: CharLMData) -> dict[str, Any]:
        assert data.train_ids is not None and data.heldout_ids is not None
        train_sample = data.train_ids[: len(data.heldout_ids)]
        return {
            "heldout_bpc": rounded(bits_per_char(model, data.heldout_ids)),
            "train_bpc": rounded(bits_per_char(model, train_sample)),
            "eval_streams": EVAL_STREAMS,
            **data.extra,
            "sample": {
                "prompt": SAMPLE_PROMPT,
                "temperature": 0.7,
                "seed": SAMPLE_SEED,
                "text": sample(model, data.vocab, SAMPLE_PROMPT, 200, SAMPLE_SEED),
            },
        }


TASK = CharLMTask()
