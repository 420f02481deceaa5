"""memory: read a symbol, then N random digits, then '?', and name the symbol. The vanishing-gradient lesson.

At N = 100 the answer lies 101 steps back. An LSTM or GRU can carry it through its gates; a plain RNN's
gradient ∂L/∂h_1 shrinks geometrically with the distance, so it never learns to keep the symbol.
"""

from __future__ import annotations

import copy
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from app.rnn.model import Cell, SeqModel
from app.rnn.tokenize import UNK, Vocab
from app.tasks.base import Batch, Budget, ModelSize, Task, TaskData, classify_accuracy, rounded

SYMBOLS = "ABCDEFGH"
DIGITS = string.digits
QUERY = "?"
MAX_N = 120  # training draws N uniformly from 1 … MAX_N, one N per batch
EVAL_NS = (10, 25, 50, 100, 150)
HELDOUT_SEED = 20_240_202
HELDOUT_PER_N = 512
EXAMPLE_SEED = 7  # the card's fixed N = 100 example
EXAMPLE_SYMBOL = "C"


def vocab() -> Vocab:
    return Vocab(tokens=(UNK, *SYMBOLS, *DIGITS, QUERY), level="char", case="upper", skip_whitespace=True)


_VOCAB = vocab()
SYMBOL_IDS = np.array([_VOCAB.tokens.index(s) for s in SYMBOLS])
DIGIT_IDS = np.array([_VOCAB.tokens.index(d) for d in DIGITS])
QUERY_ID = _VOCAB.tokens.index(QUERY)


def sequences(rng: np.random.Generator, batch_size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, n + 2) token ids — symbol, n digits, '?' — and (B,) labels: the index of the symbol in SYMBOLS."""
    labels = rng.integers(0, len(SYMBOLS), size=batch_size)
    ids = np.empty((batch_size, n + 2), dtype=np.int64)
    ids[:, 0] = SYMBOL_IDS[labels]
    ids[:, 1:-1] = DIGIT_IDS[rng.integers(0, len(DIGITS), size=(batch_size, n))]
    ids[:, -1] = QUERY_ID
    return ids, labels


def to_batch(ids: np.ndarray, labels: np.ndarray) -> Batch:
    return Batch(ids=torch.from_numpy(ids), targets=torch.from_numpy(labels))


def example_text(n: int = 100, seed: int = EXAMPLE_SEED, symbol: str = EXAMPLE_SYMBOL) -> str:
    """A symbol, n seeded digits in groups of ten (spaces are skipped when read), and '?'."""
    digits = "".join(DIGITS[d] for d in np.random.default_rng(seed).integers(0, 10, size=n))
    groups = " ".join(digits[i : i + 10] for i in range(0, n, 10))
    return f"{symbol} {groups} {QUERY}"


def state_grad_norms(model: SeqModel, ids: list[int], label: int) -> dict[str, list[float]]:
    """‖∂L/∂h_t‖ (and for an LSTM ‖∂L/∂c_t‖) for every step t of one input, L the classification loss at the
    last step.

    The total derivative through the recurrence: the layer runs one step at a time (in float64) and autograd
    keeps the gradient of every step's state. For an LSTM, h_t is the hidden state the next step's gates read
    and c_t the cell state. The LSTM step is written out (c_t → h_t inside a step) so that ∂L/∂c_t counts
    both of c_t's paths: into h_t and into c_{t+1}."""
    if model.config.num_layers != 1:
        raise ValueError("state_grad_norms reads a one-layer model")
    model = copy.deepcopy(model).double()  # float64: a plain RNN's gradient underflows float32 over 100 steps
    model.__dict__["_layers"] = None
    layer = model.layer(0)
    with torch.enable_grad():
        x = model.embedding(torch.tensor([ids], dtype=torch.long)).detach().requires_grad_(True)
        kept: dict[str, list[Tensor]] = {"h": [], "c": []}
        if model.config.cell == "lstm":
            h = c = torch.zeros(1, model.config.hidden_size, dtype=x.dtype)
            for t in range(len(ids)):
                h, c = _lstm_step(layer, x[:, t], h, c)
                kept["h"].append(h)
                kept["c"].append(c)
        else:
            h = torch.zeros(1, model.config.hidden_size, dtype=x.dtype)
            for t in range(len(ids)):
                _, state = layer(x[:, t : t + 1], h.unsqueeze(0))
                h = state[0]  # (1, H): what the next step reads
                kept["h"].append(h)
        for value in kept["h"] + kept["c"]:
            value.retain_grad()
        loss = F.cross_entropy(model.head(kept["h"][-1]), torch.tensor([label]))
        loss.backward()  # type: ignore[no-untyped-call]
    norms: dict[str, list[float]] = {}
    for key, values in kept.items():
        if values:
            norms[key] = [float(v.grad.norm()) if v.grad is not None else 0.0 for v in values]
    return norms


def _lstm_step(layer: torch.nn.RNNBase, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """One step of a one-layer torch.nn.LSTM (gate order input, forget, candidate, output)."""
    w_ih, w_hh, b_ih, b_hh = (
        cast(Tensor, getattr(layer, f"{n}_l0")) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )
    gates = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def hidden_grad_norms(model: SeqModel, ids: list[int], label: int) -> list[float]:
    """‖∂L/∂h_t‖ for every step t of one input (see state_grad_norms)."""
    return state_grad_norms(model, ids, label)["h"]


@dataclass
class MemoryData(TaskData):
    max_n: int = MAX_N
    heldout: dict[int, Batch] = field(default_factory=dict)

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        n = int(rng.integers(1, self.max_n + 1))
        return to_batch(*sequences(rng, batch_size, n))

    def after_step(self, batch: Batch, logits: Tensor) -> dict[str, float]:
        return {"acc": float((logits[:, -1].argmax(-1) == batch.targets).float().mean())}


class MemoryTask(Task[MemoryData]):
    name = "memory"
    kind = "classify"
    labels = tuple(SYMBOLS)
    target = "first_token"  # the input names its own answer: the symbol it starts with
    description = (
        "Long-range recall: read a letter A–H, then N random digits, then '?', and name the letter. "
        "At N = 100 the gradient that must teach the first step vanishes in a plain RNN."
    )

    def size(self, cell: Cell) -> ModelSize:
        return ModelSize(embed_size=16, hidden_size=64)

    def budget(self, cell: Cell) -> Budget:
        steps = {"rnn": 2500, "lstm": 2500, "gru": 1600}[cell]
        return Budget(steps=steps, batch_size=32, lr=3e-3, clip=1.0)

    def load(self, dry_run: bool, cache: Path) -> MemoryData:
        rng = np.random.default_rng(HELDOUT_SEED)
        ns = (5, 10) if dry_run else EVAL_NS
        per_n = 32 if dry_run else HELDOUT_PER_N
        heldout = {n: to_batch(*sequences(rng, per_n, n)) for n in ns}
        source = (
            f"generated: a letter from {SYMBOLS}, N uniform random digits, '?'; N drawn uniformly from "
            f"1-{12 if dry_run else MAX_N} per batch; held-out {per_n} sequences per N from seed {HELDOUT_SEED}"
        )
        return MemoryData(vocab=vocab(), data_source=source, max_n=12 if dry_run else MAX_N, heldout=heldout)

    def examples(self) -> list[dict[str, Any]]:
        return [
            {
                "text": example_text(100),
                "label": EXAMPLE_SYMBOL,
                "note": "N = 100 digits: LSTM and GRU remember the C, the plain RNN guesses.",
            },
            {"text": "E 31415 ?", "label": "E", "note": "N = 5: easy for every cell."},
            {"text": example_text(20, seed=11, symbol="A"), "label": "A", "note": "N = 20."},
            {"text": example_text(50, seed=12, symbol="H"), "label": "H", "note": "N = 50."},
        ]

    def metrics(self, model: SeqModel, data: MemoryData) -> dict[str, Any]:
        accuracy = {str(n): rounded(classify_accuracy(model, [b])) for n, b in data.heldout.items()}
        out: dict[str, Any] = {
            "accuracy_by_n": accuracy,
            "chance": rounded(1 / len(SYMBOLS)),
            "heldout_per_n": len(next(iter(data.heldout.values())).targets),
        }
        if "100" in accuracy:
            out["accuracy_n100"] = accuracy["100"]
        # The gradient lesson on the card's fixed example (N = 100).
        text = example_text(100)
        enc = data.vocab.encode(text)
        norms = state_grad_norms(model, enc.ids, SYMBOLS.index(EXAMPLE_SYMBOL))
        h = norms["h"]
        out["gradient"] = {
            "text": text,
            "label": EXAMPLE_SYMBOL,
            "norms": [float(f"{g:.4g}") for g in h],  # ‖∂L/∂h_t‖, t = 1 … T
            "ratio_first_last": float(f"{h[0] / h[-1]:.4g}"),  # ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖
        }
        if "c" in norms:  # an LSTM keeps the symbol in its cell state: the gradient flows back along c
            c = norms["c"]
            out["gradient"]["cell_norms"] = [float(f"{g:.4g}") for g in c]
            out["gradient"]["cell_ratio_first_last"] = float(f"{c[0] / c[-1]:.4g}")
        return out


TASK = MemoryTask()
