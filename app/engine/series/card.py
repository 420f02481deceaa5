"""A series model's block of its card (kind "series"): the scaling of its numbers and what its head does. Its
`vocab` (common) has level "value" and no token but <unk>: it reads numbers, not tokens.

The block is the scaling itself ({"features", "mean", "std", "units", "step", …}); a classifier adds
`"target": "classify"` and its `labels` (a forecaster's block has neither: "forecast" is the default)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from app.engine.card import ModelCard
from app.engine.errors import ModelFileError, WrongModelKind
from app.engine.series.model import Scaling, SeriesConfig

Target = Literal["forecast", "classify"]
TARGETS: tuple[Target, ...] = ("forecast", "classify")


@dataclass
class SeriesCard:
    FAMILY: ClassVar[str] = "series"
    DOES: ClassVar[str] = "reads numbers"

    scaling: Scaling
    target: Target = "forecast"  # the head: the next step's numbers, or one logit per label
    labels: tuple[str, ...] | None = None  # a classifier's labels, in the head's order

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ModelFileError(f"card is not valid: series target must be one of {list(TARGETS)}")
        if (self.target == "classify") != (self.labels is not None):
            raise ModelFileError("card is not valid: a series classifier needs its labels, a forecaster has none")
        if self.labels is not None and (len(self.labels) < 2 or len(set(self.labels)) != len(self.labels)):
            raise ModelFileError("card is not valid: series labels must be at least two, each named once")

    @property
    def classify(self) -> bool:
        return self.target == "classify"

    @property
    def outputs(self) -> int:
        """The head's rows: one per label, or one per feature (the next step's numbers)."""
        return len(self.labels) if self.labels is not None else self.scaling.width

    def to_json(self) -> dict[str, Any]:
        data = self.scaling.to_json()
        if self.labels is not None:
            data.update(target=self.target, labels=list(self.labels))
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeriesCard:
        labels = data.get("labels")
        if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
            raise ModelFileError("card is not valid: series labels must be a list of strings")
        return cls(Scaling.from_json(data), data.get("target", "forecast"), None if labels is None else tuple(labels))


def series_card(card: ModelCard) -> SeriesCard:
    """The card's series block, or WrongModelKind naming what the model reads instead."""
    if not isinstance(card.block, SeriesCard):
        raise WrongModelKind(f"{card.id} is a {card.kind} model: it reads text, not values")
    return card.block


def config(card: ModelCard) -> SeriesConfig:
    block = series_card(card)
    classes = len(block.labels) if block.labels is not None else 0
    return SeriesConfig(card.cell, block.scaling.width, card.hidden_size, card.num_layers, classes)
