"""The series family (kind "series"): models that read numbers and predict the next step's numbers, or (a classifier)
say which label the numbers so far belong to."""

from __future__ import annotations

from typing import NoReturn

from torch import Tensor

from app.engine.card import LoadedModel, ModelCard
from app.engine.errors import WrongModelKind
from app.engine.series.card import SeriesCard, config, series_card
from app.engine.series.model import SeriesModel
from app.engine.vocab import Vocab


class SeriesFamily:
    name = "series"
    kinds = ("series",)
    block = SeriesCard

    def build(self, card: ModelCard, state: dict[str, Tensor]) -> SeriesModel:
        model = SeriesModel(config(card))
        model.load_state_dict_checked(state)
        return model

    def input_size(self, card: ModelCard) -> int:
        return 0  # no embedding: W_ih reads the step's F numbers (too few to count beside the recurrence)

    def head_size(self, card: ModelCard) -> int:
        return series_card(card).outputs

    def output_vocab(self, card: ModelCard) -> Vocab | None:
        return None

    def lab_model(self, loaded: LoadedModel, checkpoint: str | None) -> NoReturn:
        raise WrongModelKind(f"{loaded.card.id} is a {loaded.card.kind} model: diff compares two texts read by a "
                             "model that predicts the next token or a class")  # fmt: skip


SERIES = SeriesFamily()
