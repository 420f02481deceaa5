"""numbers: translate English number words into German ones, 0 to 999,999, with an encoder–decoder.

"three hundred and twenty-one" → "dreihunderteinundzwanzig". German writes the units before the tens
("einundzwanzig": one-and-twenty) and runs the words together, so the decoder's attention must cross back and
forth over the source; the heatmap shows it.

Both sides are written by the `num2words` package at training time (`pip install '.[train]'`); nothing it
writes is committed except the models. The server never imports it.

The source is read word by word, the target written character by character. Words on the source, because an
English number is a sequence of 33 words (and "-", ","): one step per word makes the encoder 5× shorter than
one per letter, which is what lets these models train in the budget, and it gives the attention heatmap one
column per word, so that "ein" can be seen to look at "one" and "zwanzig" at "twenty". Characters on the
target, because German runs its words together: the decoder has to spell "dreihunderteinundzwanzig" itself.

Training draws numbers as people write them, not only uniformly: an audience types "one hundred", "two
thousand", "ten thousand" first, and uniform sampling over 0–999,999 almost never draws a round number (a model
trained on it wrote "einhunderteinhundert…" to the length cap). Each training number is one of: by digit count
(1 to 6, then uniformly among the numbers of that many digits, so that short numbers are not drowned by the
900,000 six-digit ones), 60 %; round (at most two significant digits at every magnitude: 10, 250, 2000, 110000),
15 %; near-round (a round number plus 1 to 99 in its zeros: 101, 1001, 2005, 300012), 15 %; small (0 to 100), 10 %.

Three fixed, seeded sets measure it, each reported in the card's `exact_match_by_set`: "uniform", the held-out
numbers by digit count (5 % of each count, at most 400 per count: never trained on; they also give the card's
exact match and its accuracy by source length); "round", a quarter of the round numbers and 150 near-round ones,
never trained on; "small", every number 0 to 100 (there are too few to hold any out: the model must know them
all). AUDIENCE, the numbers a lecture's audience types first, are always trained on, never held out. The model
without attention has only the encoder's last state to go on: it falls behind on the longest numbers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from app.engine.layers import Cell
from app.engine.translation.card import TranslationCard
from app.engine.translation.model import BOS, BOS_ID, EOS, EOS_ID, EQUATIONS, Seq2SeqConfig, Seq2SeqModel
from app.engine.vocab import UNK, Vocab
from app.training.tasks.base import Batch, Budget, KeyMetric, ModelSize, Task, TaskData, percent, rounded

NUM2WORDS = "num2words==0.5.14"  # pinned in pyproject.toml's [train] extra and requirements.lock
SOURCE_WORDS = (
    *[
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
    ],
    *[
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
        "thirty",
        "forty",
        "fifty",
        "sixty",
        "seventy",
        "eighty",
        "ninety",
    ],
    *("hundred", "thousand", "and", "-", ","),
)
TARGET_CHARS = "abcdefghilnrstuvwzßöü"  # every letter num2words writes in German for 0 … 999,999
MAX_NUMBER = 999_999
DIGITS = (1, 2, 3, 4, 5, 6)
HELDOUT_SEED = 20_240_514  # which numbers are held out: fixed, whatever the training seed
HELDOUT_FRACTION = 0.05
HELDOUT_CAP = 400  # per digit count
POOL_PER_DIGITS = 12_000  # training numbers per digit count (fewer where fewer exist); num2words is slow
DRY_POOL_PER_DIGITS = 200
DEV_PER_DIGITS = 100  # 4 to 6 digits: the final weights are chosen on these (neither trained on nor held out)
ROUND_SEED = HELDOUT_SEED + 2  # which round and near-round numbers are held out: fixed, whatever the training seed
ROUND_HELDOUT_FRACTION = 0.25  # of the round numbers
NEAR_ROUND_HELDOUT = 150
NEAR_ROUND_POOL = 3000  # near-round training numbers (a pool, drawn once; num2words is slow)
SMALL_MAX = 100
AUDIENCE = (10, 20, 100, 200, 1000, 2000, 10_000, 100_000)  # typed first; trained on, not held out
MIXTURE = (("digits", 0.60), ("round", 0.15), ("near_round", 0.15), ("small", 0.10))  # what a training number is
DEV_ROUND = 60  # round and near-round dev numbers (neither trained on nor held out)
LENGTH_BUCKETS = ((1, 3), (4, 6), (7, 9), (10, 12), (13, 15))  # source words (incl. "-" and ",")
MAX_LENGTH = 80  # decoder steps: the longest German number has 63 letters, and </s>
VARIANTS: dict[str, tuple[str, ...]] = {"gru": ("attention", ""), "lstm": ("attention",), "rnn": ()}


def source_vocab() -> Vocab:
    return Vocab(tokens=(UNK, *SOURCE_WORDS), level="word", case="lower")


def target_vocab() -> Vocab:
    return Vocab(tokens=(UNK, BOS, EOS, *TARGET_CHARS), level="char", case="lower")


def translator() -> Callable[[int, str], str]:
    """num2words, imported only here (training), with a message that says how to install it."""
    try:
        module = importlib.import_module("num2words")
    except ImportError as e:
        raise RuntimeError(f"the numbers task needs {NUM2WORDS}: pip install -e '.[train]'") from e
    fn: Callable[[int, str], str] = lambda n, lang: str(module.num2words(n, lang=lang))  # noqa: E731
    return fn


def digit_range(d: int) -> tuple[int, int]:
    return (0 if d == 1 else 10 ** (d - 1)), 10**d - 1


def heldout_numbers() -> list[int]:
    """The held-out numbers, the same in every run: 5 % of each digit count, at most 400 per count."""
    rng = np.random.default_rng(HELDOUT_SEED)
    out: list[int] = []
    for d in DIGITS:
        lo, hi = digit_range(d)
        n = min(HELDOUT_CAP, round(HELDOUT_FRACTION * (hi - lo + 1)))
        out.extend(sorted(int(x) for x in rng.choice(np.arange(lo, hi + 1), size=n, replace=False)))
    return out


def round_numbers() -> list[int]:
    """Every number from 10 to 999,999 with at most two significant digits and a zero last: m × 10^k, m 1–99, k ≥ 1."""
    return sorted({m * 10**k for k in range(1, 6) for m in range(1, 100) if m * 10**k <= MAX_NUMBER})


def near_round(rng: np.random.Generator, size: int) -> list[int]:
    """Near-round numbers: a round number with at least two zeros last plus 1 to 99 that leaves a zero between
    them (101, 2005, 300012, 110001); an offset below 10 half the time, or whenever only that fits."""
    rounds = [n for n in round_numbers() if n % 100 == 0]
    out: list[int] = []
    while len(out) < size:
        r = rounds[int(rng.integers(len(rounds)))]
        top = 10 if r % 1000 else 100  # 100 → 101…109; 1000 → 1001…1099
        offset = int(rng.integers(1, 10)) if top == 10 or rng.random() < 0.5 else int(rng.integers(10, top))
        out.append(r + offset)
    return out


def number_sets() -> dict[str, list[int]]:
    """The fixed evaluation sets, the same in every run: "uniform" (held out by digit count), "round" (a quarter
    of the round numbers above 100 and 150 near-round ones, held out; AUDIENCE excepted) and "small" (0 to 100, all)."""
    rng = np.random.default_rng(ROUND_SEED)
    rounds = [n for n in round_numbers() if n not in AUDIENCE and n > SMALL_MAX]  # every small one is trained on
    held_round = rng.choice(rounds, size=round(ROUND_HELDOUT_FRACTION * len(rounds)), replace=False).tolist()
    near = [n for n in dict.fromkeys(near_round(rng, 4 * NEAR_ROUND_HELDOUT)) if n not in AUDIENCE]
    held = sorted({int(n) for n in held_round} | set(near[:NEAR_ROUND_HELDOUT]))
    return {"uniform": heldout_numbers(), "round": held, "small": list(range(SMALL_MAX + 1))}


@dataclass
class Pair:
    number: int
    source: list[int]  # word ids
    target: list[int]  # character ids, </s> last


def pair_writer() -> Callable[[int], Pair]:
    """n → its Pair, both sides written by num2words (training and evaluation only)."""
    words = translator()
    src, tgt = source_vocab(), target_vocab()

    def pair(n: int) -> Pair:
        en, de = words(n, "en"), words(n, "de")
        s, t = src.encode(en), tgt.encode(de)
        if s.unknown or t.unknown:
            raise RuntimeError(f"{NUM2WORDS} wrote {en!r} → {de!r}, outside the vocabularies")
        return Pair(n, s.ids, [*t.ids, EOS_ID])

    return pair


@dataclass
class NumbersData(TaskData):
    target_vocab: Vocab = field(default_factory=target_vocab)
    train: dict[int, list[Pair]] = field(default_factory=dict)  # digit count → pairs
    people: dict[str, list[Pair]] = field(default_factory=dict)  # "round", "near_round", "small" → pairs
    heldout: list[Pair] = field(default_factory=list)
    sets: dict[str, list[Pair]] = field(default_factory=dict)  # number_sets(), as pairs
    dev: list[Pair] = field(default_factory=list)  # for choosing the final weights: neither trained on nor held out

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        kinds = rng.choice(len(MIXTURE), size=batch_size, p=[share for _, share in MIXTURE])
        pairs = []
        for k in kinds.tolist():
            pool = self.train[int(rng.choice(DIGITS))] if MIXTURE[k][0] == "digits" else self.people[MIXTURE[k][0]]
            pairs.append(pool[int(rng.integers(len(pool)))])
        return pair_batch(pairs)

    def after_step(self, batch: Batch, logits: Tensor) -> dict[str, float]:
        real = batch.targets != -100
        return {"acc": float(((logits.argmax(-1) == batch.targets) & real).sum() / real.sum())}

    def dev_score(self, model: Seq2SeqModel) -> float | None:
        """Exact match on the dev numbers; once that saturates, a lower loss on them breaks the tie."""
        batch = pair_batch(self.dev)
        assert batch.decoder_ids is not None
        with torch.no_grad():
            logits = model(batch.ids, batch.decoder_ids, batch.lengths)
            nll = float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1)))
        return exact_match(model, self.dev) - 1e-3 * min(nll, 1.0)


def pair_batch(pairs: list[Pair]) -> Batch:
    """Right-padded source ids (0) with their lengths, decoder inputs (<s> y_0 … y_{T−2}) and targets (−100 pad)."""
    J = max(len(p.source) for p in pairs)
    T = max(len(p.target) for p in pairs)
    ids = torch.zeros((len(pairs), J), dtype=torch.long)
    dec = torch.zeros((len(pairs), T), dtype=torch.long)
    tgt = torch.full((len(pairs), T), -100, dtype=torch.long)
    for i, p in enumerate(pairs):
        ids[i, : len(p.source)] = torch.tensor(p.source)
        dec[i, : len(p.target)] = torch.tensor([BOS_ID, *p.target[:-1]])
        tgt[i, : len(p.target)] = torch.tensor(p.target)
    lengths = torch.tensor([len(p.source) for p in pairs])
    return Batch(ids=ids, targets=tgt, lengths=lengths, decoder_ids=dec)


@torch.no_grad()
def greedy_batch(model: Seq2SeqModel, pairs: list[Pair], max_length: int = MAX_LENGTH) -> list[list[int]]:
    """Greedy outputs (ids up to and including </s>) of many sources at once."""
    batch = pair_batch(pairs)
    memory, state = model.encode(batch.ids, batch.lengths)
    token = torch.full((len(pairs), 1), BOS_ID, dtype=torch.long)
    outputs = torch.zeros((len(pairs), max_length), dtype=torch.long)
    ended = torch.zeros(len(pairs), dtype=torch.bool)
    for t in range(max_length):
        out, state = model.decoder(model.decoder_embedding(token), state)
        logits, _ = model.output(out, memory, batch.lengths)
        logits[:, :, : BOS_ID + 1] = -torch.inf  # as beam_search: never <unk> or <s>
        token = logits.argmax(-1)  # (B, 1)
        outputs[:, t] = token[:, 0]
        ended |= token[:, 0] == EOS_ID
        if bool(ended.all()):
            break
    result = []
    for row in outputs.tolist():
        result.append(row[: row.index(EOS_ID) + 1] if EOS_ID in row else row)
    return result


def set_scores(model: Seq2SeqModel, pairs: list[Pair], max_length: int = MAX_LENGTH) -> dict[str, Any]:
    """Exact match (greedy) on one evaluation set, and how many outputs ran to the length cap without </s>: a
    decoder that repeats itself ("einhunderteinhundert…") never ends."""
    was_training = model.training
    model.eval()
    outs = greedy_batch(model, pairs, max_length)
    model.train(was_training)
    right = sum(o == p.target for o, p in zip(outs, pairs, strict=True))
    capped = sum(EOS_ID not in o for o in outs)
    return {"n": len(pairs), "exact_match": rounded(right / max(len(pairs), 1)), "at_length_cap": capped}


def exact_match(model: Seq2SeqModel, pairs: list[Pair]) -> float:
    was_training = model.training
    model.eval()
    outs = greedy_batch(model, pairs)
    model.train(was_training)
    return sum(o == p.target for o, p in zip(outs, pairs, strict=True)) / max(len(pairs), 1)


class NumbersTask(Task[NumbersData]):
    name = "numbers"
    title = "Translation: number words, English to German"
    kind = "translate"
    description = (
        "An encoder–decoder translating English number words into German ones (0 to 999,999): the encoder "
        "reads the English words, the decoder writes the German letters. With attention it looks back at the "
        "English words at every letter; without, it has only the encoder's last state to go on."
    )

    def variants(self, cell: Cell) -> tuple[str, ...]:
        return VARIANTS[cell]

    def size(self, cell: Cell) -> ModelSize:
        return ModelSize(embed_size=32, hidden_size=128)

    def budget(self, cell: Cell) -> Budget:
        return Budget(steps=800, batch_size=64, lr=3e-3, clip=1.0, lr_floor=0.05)

    def variant_budget(self, cell: Cell, variant: str) -> Budget:
        # With attention 800 steps reach ~99 % on held-out numbers. Without, the decoder first learns German
        # number words and only slowly to read the encoder's last state: more steps, in the same time cap.
        full = self.budget(cell)
        return full if variant else Budget(steps=1800, batch_size=64, lr=full.lr, clip=full.clip, lr_floor=0.05)

    def dry_size(self, cell: Cell) -> ModelSize:
        return ModelSize(embed_size=8, hidden_size=16)

    def build_model(self, cell: Cell, size: ModelSize, data: NumbersData, variant: str) -> nn.Module:
        config = Seq2SeqConfig(
            cell=cell,
            source_vocab_size=len(data.vocab),
            target_vocab_size=len(data.target_vocab),
            embed_size=size.embed_size,
            hidden_size=size.hidden_size,
            num_layers=size.num_layers,
            attention_size=size.hidden_size // 2 if variant == "attention" else 0,
        )
        return Seq2SeqModel(config)

    def init_model(self, model: Seq2SeqModel, data: NumbersData) -> None:
        """LSTM: forget-gate bias 1 (the sum bias_ih + bias_hh) in the encoder and the decoder."""
        if model.config.cell == "lstm":
            h = model.config.hidden_size
            with torch.no_grad():
                for rnn in (model.encoder, model.decoder):
                    for k in range(model.config.num_layers):
                        getattr(rnn, f"bias_ih_l{k}")[h : 2 * h].fill_(1.0)
                        getattr(rnn, f"bias_hh_l{k}")[h : 2 * h].fill_(0.0)

    def forward(self, model: Seq2SeqModel, batch: Batch) -> Tensor:
        assert batch.decoder_ids is not None
        logits: Tensor = model(batch.ids, batch.decoder_ids, batch.lengths)
        return logits

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1), ignore_index=-100)

    def card_block(self, model: Seq2SeqModel, data: NumbersData, size: ModelSize) -> TranslationCard:
        cfg = model.config
        return TranslationCard(
            embed_size=size.embed_size,
            target_vocab=data.target_vocab.to_json(),
            attention=cfg.attention,
            attention_size=cfg.attention_size,
            equations=EQUATIONS,
            max_length=MAX_LENGTH,
        )

    def load(self, dry_run: bool, cache: Path) -> NumbersData:
        src, tgt = source_vocab(), target_vocab()
        pair = pair_writer()
        sets = number_sets()
        held = sets["uniform"]
        never = set(held) | set(sets["round"])  # the small set is trained on: all 101 of it
        rng = np.random.default_rng(HELDOUT_SEED + 1)
        per_digits = DRY_POOL_PER_DIGITS if dry_run else POOL_PER_DIGITS
        train: dict[int, list[Pair]] = {}
        dev: list[Pair] = []
        n_dev = DEV_PER_DIGITS // 4 if dry_run else DEV_PER_DIGITS
        for d in DIGITS:
            lo, hi = digit_range(d)
            if hi - lo + 1 <= per_digits + n_dev + HELDOUT_CAP:
                chosen = [n for n in range(lo, hi + 1) if n not in never]
                train[d] = [pair(n) for n in rng.permutation(chosen)[:per_digits].tolist()]
            else:
                draw = rng.choice(np.arange(lo, hi + 1), size=per_digits + n_dev + HELDOUT_CAP, replace=False)
                chosen = [int(n) for n in draw if int(n) not in never]
                train[d] = [pair(n) for n in chosen[:per_digits]]
                dev.extend(pair(n) for n in chosen[per_digits : per_digits + n_dev])
        rounds = [n for n in round_numbers() if n not in never]
        near = [n for n in dict.fromkeys(near_round(rng, NEAR_ROUND_POOL + DEV_ROUND)) if n not in never]
        candidates = [n for n in [*rounds, *near] if n not in AUDIENCE]
        n_dev_round = DEV_ROUND // 4 if dry_run else DEV_ROUND
        dev_round = {int(n) for n in rng.choice(candidates, size=n_dev_round, replace=False)}
        rounds, near = [n for n in rounds if n not in dev_round], [n for n in near if n not in dev_round]
        if dry_run:
            rounds, near = rounds[::8], near[:DRY_POOL_PER_DIGITS]
        people = {
            "round": [pair(n) for n in rounds],
            "near_round": [pair(n) for n in near[:NEAR_ROUND_POOL]],
            "small": [pair(n) for n in range(SMALL_MAX + 1) if n not in never],
        }
        dev.extend(pair(n) for n in sorted(dev_round))
        step = 8 if dry_run else 1
        heldout = [pair(n) for n in held[::step]]
        eval_sets = {name: heldout if name == "uniform" else [pair(n) for n in ns[::step]] for name, ns in sets.items()}
        n_train = sum(len(v) for v in train.values()) + sum(len(v) for v in people.values())
        mixture = ", ".join(f"{name.replace('_', '-')} {share:.0%}" for name, share in MIXTURE)
        source = (
            f"generated with {NUM2WORDS} (English → German, lang 'en' and 'de'): {n_train} training numbers "
            f"({mixture} of each batch): by digit count (1 to 6 digits, each count equally often; at most "
            f"{per_digits} per count, seed {HELDOUT_SEED + 1}), round (at most two significant digits, every "
            f"magnitude), near-round (a round number plus 1 to 99) and small (0 to {SMALL_MAX}); held out, never "
            f"trained on: {len(held)} numbers by digit count ({HELDOUT_FRACTION:.0%} of each digit count, at most "
            f"{HELDOUT_CAP} per count, seed {HELDOUT_SEED}) and {len(sets['round'])} round and near-round numbers "
            f"(seed {ROUND_SEED})"
        )
        extra = {"train_numbers": n_train, "heldout_numbers": len(heldout)}
        return NumbersData(
            vocab=src,
            data_source=source,
            extra=extra,
            target_vocab=tgt,
            train=train,
            people=people,
            heldout=heldout,
            sets=eval_sets,
            dev=dev,
        )

    def examples(self) -> list[dict[str, Any]]:
        return [
            {"text": "twenty-one", "note": "einundzwanzig: the units come first, so attention crosses."},
            {"text": "three hundred and twenty-one", "note": "dreihunderteinundzwanzig: one word in German."},
            {"text": "seventeen", "note": "siebzehn: 'seven' loses its -en."},
            {
                "text": "nine hundred and ninety-eight thousand, seven hundred and sixty-five",
                "note": "The longest kind: without attention the last state must carry all six digits.",
            },
            {"text": "one thousand and one", "note": "eintausendeins: 'one' alone is 'eins'."},
        ]

    def key_metric(self, metrics: dict[str, Any]) -> KeyMetric | None:
        value = metrics.get("heldout_exact_match")
        return None if value is None else KeyMetric("exact match, held-out numbers", percent(value))

    def metrics(self, model: Seq2SeqModel, data: NumbersData) -> dict[str, Any]:
        pairs = data.heldout
        outs = greedy_batch(model, pairs)
        right = [o == p.target for o, p in zip(outs, pairs, strict=True)]
        chars = [
            sum(a == b for a, b in zip(o, p.target, strict=False)) / max(len(o), len(p.target))
            for o, p in zip(outs, pairs, strict=True)
        ]

        def share(rows: list[int]) -> float | None:
            return rounded(sum(right[i] for i in rows) / len(rows)) if rows else None

        by_length: dict[str, Any] = {}
        for lo, hi in LENGTH_BUCKETS:
            rows = [i for i, p in enumerate(pairs) if lo <= len(p.source) <= hi]
            by_length[f"{lo}-{hi}"] = {"n": len(rows), "exact_match": share(rows)}
        by_digits: dict[str, Any] = {}
        for d in DIGITS:
            rows = [i for i, p in enumerate(pairs) if len(str(p.number)) == d]
            by_digits[str(d)] = {"n": len(rows), "exact_match": share(rows)}
        tgt = data.target_vocab
        mistakes = [
            {
                "number": p.number,
                "expected": tgt.decode(p.target[:-1]),
                "output": tgt.decode(o[:-1] if o[-1:] == [EOS_ID] else o),
            }
            for o, p, ok in zip(outs, pairs, right, strict=True)
            if not ok
        ][:10]
        return {
            "heldout_exact_match": rounded(sum(right) / len(right)),
            "heldout_char_accuracy": rounded(float(np.mean(chars))),
            "exact_match_by_source_length": by_length,  # source words, "-" and "," included
            "exact_match_by_digits": by_digits,
            "heldout_mistakes": mistakes,
            "exact_match_by_set": {name: set_scores(model, ps) for name, ps in data.sets.items()},
            "decoding": "greedy",
            **data.extra,
        }


TASK = NumbersTask()
