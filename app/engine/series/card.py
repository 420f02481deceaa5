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
    # A classifier's labels, in the head's order; None: a forecaster. (Not named `labels`: a card of before
    # issue 24 holds a token classifier's `labels` and `target` at its top level, which are no series field.)
    classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.classes is not None and (len(self.classes) < 2 or len(set(self.classes)) != len(self.classes)):
            raise ModelFileError("card is not valid: series labels must be at least two, each named once")

    @property
    def labels(self) -> tuple[str, ...] | None:
        return self.classes

    @property
    def target(self) -> Target:
        """What the head gives: the next step's numbers, or one logit per label."""
        return "forecast" if self.classes is None else "classify"

    @property
    def classify(self) -> bool:
        return self.classes is not None

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
        target, labels = data.get("target", "forecast"), data.get("labels")
        if target not in TARGETS:
            raise ModelFileError(f"card is not valid: series target must be one of {list(TARGETS)}")
        if (target == "classify") != (labels is not None):
            raise ModelFileError("card is not valid: a series classifier needs its labels, a forecaster has none")
        if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
            raise ModelFileError("card is not valid: series labels must be a list of strings")
        return cls(Scaling.from_json(data), None if labels is None else tuple(labels))


def series_card(card: ModelCard) -> SeriesCard:
    """The card's series block, or WrongModelKind naming what the model reads instead."""
    if not isinstance(card.block, SeriesCard):
        raise WrongModelKind(f"{card.id} is a {card.kind} model: it reads text, not values")
    return card.block


def config(card: ModelCard) -> SeriesConfig:
    block = series_card(card)
    classes = len(block.labels) if block.labels is not None else 0
    return SeriesConfig(card.cell, block.scaling.width, card.hidden_size, card.num_layers, classes)
