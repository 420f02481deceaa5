"""A token model's block of its card (kinds "next_token" and "classify"), and the checks that a card is one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

from torch import nn

from app.engine.card import LoadedModel, ModelCard
from app.engine.errors import ModelFileError, WrongModelKind
from app.engine.layers import Cell
from app.engine.token.model import ModelConfig, SeqKind, SeqModel

Target = Literal["predicted", "first_token"]
SEQ_KINDS: dict[str, SeqKind] = {"next_token": "next_token", "classify": "classify"}


@dataclass
class TokenCard:
    FAMILY: ClassVar[str] = "token"
    DOES: ClassVar[str] = "reads text"

    embed_size: int
    labels: list[str] | None = None  # classifiers: their classes, in the head's order
    positive_label: str | None = None  # sentiment: which label is the positive class
    # classifiers: the label L is measured against when a request names none. "predicted": the model's own answer
    # at the last step; "first_token": the class the input's first token names (the memory task: its symbol), so
    # that an edited input is scored against its own answer, not a target fixed for another input.
    target: Target = "predicted"

    def __post_init__(self) -> None:
        if self.target not in ("predicted", "first_token"):
            raise ModelFileError(f"card is not valid: target {self.target!r} is not 'predicted' or 'first_token'")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenCard:
        return cls(**data)


def token_card(card: ModelCard) -> TokenCard:
    """The card's token block, or WrongModelKind naming what the model does instead."""
    if not isinstance(card.block, TokenCard):
        raise WrongModelKind(f"{card.id} {card.block.DOES}: it is not a model of text tokens")
    return card.block


def seq_kind(kind: str) -> SeqKind:
    """The shape SeqModel computes for a card kind: a head at every step over the vocabulary ("next_token"), or
    over the labels ("classify"); WrongModelKind for a kind of another family."""
    if kind not in SEQ_KINDS:
        raise WrongModelKind(f"a {kind} model is not a model of text tokens ({' or '.join(SEQ_KINDS)})")
    return SEQ_KINDS[kind]


def seq_config(
    kind: str, cell: Cell, vocab_size: int, labels: Sequence[str] | None, embed_size: int, hidden_size: int,
    num_layers: int = 1, bidirectional: bool = False,
) -> ModelConfig:  # fmt: skip
    """The SeqModel a token model of this kind is: its head has a row per token, or per label."""
    shape = seq_kind(kind)
    outputs = vocab_size if shape == "next_token" else len(labels or ())
    return ModelConfig(cell, shape, vocab_size, outputs, embed_size, hidden_size, num_layers, bidirectional)


def config(card: ModelCard) -> ModelConfig:
    block = token_card(card)
    return seq_config(card.kind, card.cell, len(card.vocab["tokens"]), block.labels, block.embed_size,
                      card.hidden_size, card.num_layers, card.bidirectional)  # fmt: skip


def token_model(loaded: LoadedModel, checkpoint: str | None = None) -> SeqModel:
    """The SeqModel of a token model of the zoo (at a checkpoint), or WrongModelKind."""
    token_card(loaded.card)
    model: nn.Module = loaded.at(checkpoint)
    if not isinstance(model, SeqModel):  # pragma: no cover - a token card's weights are a SeqModel
        raise WrongModelKind(f"{loaded.card.id} holds no SeqModel")
    return model
