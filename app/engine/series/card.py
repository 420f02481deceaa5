"""A series model's block of its card (kind "series"): the scaling of its numbers. Its `vocab` (common) has level
"value" and no token but <unk>: it reads numbers, not tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from app.engine.card import ModelCard
from app.engine.errors import WrongModelKind
from app.engine.series.model import Scaling, SeriesConfig


@dataclass
class SeriesCard:
    FAMILY: ClassVar[str] = "series"
    DOES: ClassVar[str] = "reads numbers"

    scaling: Scaling  # written as the block itself: {"features", "mean", "std", "units", "step", …}

    def to_json(self) -> dict[str, Any]:
        return self.scaling.to_json()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeriesCard:
        return cls(Scaling.from_json(data))


def series_card(card: ModelCard) -> SeriesCard:
    """The card's series block, or WrongModelKind naming what the model reads instead."""
    if not isinstance(card.block, SeriesCard):
        raise WrongModelKind(f"{card.id} is a {card.kind} model: it reads text, not values")
    return card.block


def config(card: ModelCard) -> SeriesConfig:
    return SeriesConfig(card.cell, series_card(card).scaling.width, card.hidden_size, card.num_layers)
