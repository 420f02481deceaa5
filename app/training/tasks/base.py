"""What every task provides to the trainer: a vocabulary, batches, a held-out set, examples and metrics.

A `Task` is the static description (name, kind, card text, model sizes, training budget, examples). Its `load`
builds a `TaskData`: the vocabulary and the data, bound to one run. The trainer asks the data for batches and,
at the end, asks the task for the metrics of the trained model on the held-out part.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from app.engine.card import CardBlock
from app.engine.layers import Cell
from app.engine.token.card import TokenCard, seq_config, seq_kind
from app.engine.token.loss import last_step_logits, token_loss
from app.engine.token.model import SeqKind, SeqModel
from app.engine.vocab import Vocab

LN2 = math.log(2.0)


@dataclass(frozen=True)
class Batch:
    """One training or evaluation batch, batch first.

    next_token: `targets` is (B, T), the id that follows each step. classify: `targets` is (B,) label ids and
    `lengths` (B,) the number of real steps of each row; padding (id 0) follows the real steps. translate: `ids`
    and `lengths` are the source's, `decoder_ids` (B, T) what the decoder reads and `targets` (B, T) what it
    should write (padding: −100, which the loss ignores).
    """

    ids: Tensor
    targets: Tensor
    lengths: Tensor | None = None
    decoder_ids: Tensor | None = None


@dataclass(frozen=True)
class ModelSize:
    embed_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False  # each layer also reads last step to first (a model that hears the whole clip)


@dataclass(frozen=True)
class Budget:
    """How long to train. `steps` decides (training is reproducible); `max_seconds` is only a safety cap."""

    steps: int
    batch_size: int
    lr: float
    clip: float = 1.0  # gradient norm clipping
    weight_decay: float = 0.0
    lr_floor: float = 0.1  # cosine decay of the learning rate to lr_floor × lr at the last step
    max_seconds: float = 170.0
    patience: int = 0  # early stopping: evaluations of the dev set without improvement (0: never stop)


@dataclass
class TaskData(ABC):
    """A task's data for one run: the vocabulary, the training batches and a held-out part."""

    vocab: Vocab
    data_source: str
    extra: dict[str, Any] = field(default_factory=dict)  # facts about the data for the card's metrics

    @abstractmethod
    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        """A fresh training batch drawn with `rng`."""

    def after_step(self, batch: Batch, logits: Tensor) -> dict[str, float]:
        """Called after every training step with the batch's logits: training metrics for the curve."""
        return {}

    def dev_score(self, model: Any) -> float | None:
        """A score on a development set (higher is better) for early stopping, or None if the task has none."""
        return None


D = TypeVar("D", bound=TaskData)


@dataclass(frozen=True)
class KeyMetric:
    """The number a model's card shows first: how good it is at its task, in words."""

    label: str
    value: str


def percent(x: float) -> str:
    return f"{100 * x:.1f} %"


class Task(ABC, Generic[D]):
    """A training task of the zoo. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]
    # The cells it trains (`unrolled train <task>` with no --cell, and `train all`): torch.nn's three; a token task
    # may add the linear recurrences of app/engine/modern (memory: minGRU and S6 beside them).
    cells: ClassVar[tuple[Cell, ...]] = ("rnn", "lstm", "gru")
    title: ClassVar[str]  # the task in the module's words, as the pages head it
    kind: ClassVar[str]  # the card kind of the models it trains (its family's: app/engine/family.py)
    description: ClassVar[str]
    labels: ClassVar[tuple[str, ...] | None] = None
    positive_label: ClassVar[str | None] = None
    # classifiers: the label a trace is scored against when a request names none (ModelCard.target)
    target: ClassVar[Literal["predicted", "first_token"]] = "predicted"
    # Classifiers: weight of an extra loss on the label at every real step ("target replication"); the
    # prediction is still the last step's. It trains faster and makes the per-step predictions meaningful.
    every_step_weight: ClassVar[float] = 0.0
    # A lesson that needs distance: the least number of steps between an input's first and last (what the lab
    # names as `lesson_gap_what`) for its pictures to teach it on this task's models; None: any input will do.
    lesson_gap: ClassVar[int | None] = None
    lesson_gap_what: ClassVar[str] = "steps between the first and the last"

    @abstractmethod
    def size(self, cell: Cell) -> ModelSize:
        """The default model size for a cell."""

    @abstractmethod
    def budget(self, cell: Cell) -> Budget:
        """The default training budget for a cell (at most three minutes on two CPU cores)."""

    def dry_size(self, cell: Cell) -> ModelSize:
        return ModelSize(embed_size=8, hidden_size=16)

    def dry_budget(self, cell: Cell) -> Budget:
        full = self.budget(cell)
        return Budget(steps=40, batch_size=16, lr=full.lr, clip=full.clip, max_seconds=30.0, patience=0)

    @abstractmethod
    def load(self, dry_run: bool, cache: Path) -> D:
        """Build the vocabulary and the data. `cache` is where downloaded sources are kept."""

    @abstractmethod
    def examples(self) -> list[dict[str, Any]]:
        """Inputs a presenter can click: {"text", "note", and "label" for classifiers}. Written by us."""

    def key_metric(self, metrics: dict[str, Any]) -> KeyMetric | None:
        """The card's headline number, read from the metrics this task's `metrics` wrote."""
        return None

    @abstractmethod
    def metrics(self, model: Any, data: D) -> dict[str, Any]:
        """The trained model's metrics on held-out data, for the card."""

    # The model a task trains: a token model (SeqModel) unless the task overrides these, build_model, forward,
    # loss and card_block (translation: a Seq2SeqModel; series: a SeriesModel).
    def variants(self, cell: Cell) -> tuple[str, ...]:
        """The models this task trains for a cell, as suffixes of their ids ("": the id is <task>-<cell>)."""
        return ("",)

    def variant_budget(self, cell: Cell, variant: str) -> Budget:
        """The training budget of one variant (by default the cell's)."""
        return self.budget(cell)

    def build_model(self, cell: Cell, size: ModelSize, data: D, variant: str) -> nn.Module:
        return self.seq_model(cell, size, data)

    def seq_model(self, cell: Cell, size: ModelSize, data: D) -> SeqModel:
        """The token model of this task's kind (its head: a row per token, or per label)."""
        return SeqModel(
            seq_config(self.kind, cell, len(data.vocab), self.labels, size.embed_size, size.hidden_size,
                       size.num_layers)
        )  # fmt: skip

    def forward(self, model: Any, batch: Batch) -> Tensor:
        """The batch's logits, as `loss` and the data's `after_step` read them."""
        logits: Tensor = model(batch.ids)
        return logits

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        return batch_loss(seq_kind(self.kind), logits, batch, self.every_step_weight)

    def card_block(self, model: Any, data: D, size: ModelSize) -> CardBlock:
        """The family's block of the trained model's card (a token model's: its embedding and labels)."""
        return TokenCard(
            embed_size=size.embed_size,
            labels=list(self.labels) if self.labels is not None else None,
            positive_label=self.positive_label,
            target=self.target,
        )

    def write_files(self, out: Path, data: D) -> None:
        """Files the task's page needs beside its models in `out` (speech: example clips). By default none."""

    def init_model(self, model: Any, data: D) -> None:
        """Initialisation beyond torch's default. LSTM: forget-gate bias 1 (the sum bias_ih + bias_hh)."""
        if model.config.cell == "lstm":
            h = model.config.hidden_size
            with torch.no_grad():
                for k in range(model.config.num_layers):
                    getattr(model.rnn, f"bias_ih_l{k}")[h : 2 * h].fill_(1.0)
                    getattr(model.rnn, f"bias_hh_l{k}")[h : 2 * h].fill_(0.0)


def batch_loss(kind: SeqKind, logits: Tensor, batch: Batch, every_step_weight: float = 0.0) -> Tensor:
    """A token model's loss on a batch (app/engine/token/loss.py)."""
    return token_loss(kind, logits, batch.targets, batch.lengths, every_step_weight)


def pad_batch(rows: list[list[int]], labels: list[int]) -> Batch:
    """Right-pad token id lists with 0 into a classification batch."""
    lengths = [len(r) for r in rows]
    ids = torch.zeros((len(rows), max(lengths)), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return Batch(
        ids=ids, targets=torch.tensor(labels, dtype=torch.long), lengths=torch.tensor(lengths, dtype=torch.long)
    )


@torch.no_grad()
def classify_accuracy(model: SeqModel, batches: list[Batch]) -> float:
    """Accuracy of a classifier (at each row's last real step) over evaluation batches."""
    right = total = 0
    for b in batches:
        pred = last_step_logits(model(b.ids), b.lengths).argmax(-1)
        right += int((pred == b.targets).sum())
        total += len(b.targets)
    return right / max(total, 1)


@torch.no_grad()
def next_probs(model: SeqModel, ids: list[int]) -> Tensor:
    """(T, V) probabilities of the next token after each step of one input."""
    logits = model(torch.tensor([ids], dtype=torch.long))[0]
    return torch.softmax(logits, dim=-1)


def rounded(x: float, digits: int = 4) -> float:
    return float(round(x, digits))
