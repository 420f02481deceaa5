"""The translation family (kind "translate"): an encoder–decoder with optional attention, and beam search."""

from __future__ import annotations

from typing import NoReturn

from torch import Tensor

from app.engine.card import LoadedModel, ModelCard
from app.engine.errors import WrongModelKind
from app.engine.translation.card import TranslationCard, config, translation_card
from app.engine.translation.model import Seq2SeqModel
from app.engine.vocab import Vocab


class TranslationFamily:
    name = "translation"
    kinds = ("translate",)
    block = TranslationCard

    def build(self, card: ModelCard, state: dict[str, Tensor]) -> Seq2SeqModel:
        model = Seq2SeqModel(config(card))
        model.load_state_dict_checked(state)
        return model

    def input_size(self, card: ModelCard) -> int:
        return translation_card(card).embed_size

    def head_size(self, card: ModelCard) -> int:
        return len(translation_card(card).target_vocab["tokens"])

    def output_vocab(self, card: ModelCard) -> Vocab | None:
        return Vocab.from_json(translation_card(card).target_vocab)

    def lab_model(self, loaded: LoadedModel, checkpoint: str | None) -> NoReturn:
        raise WrongModelKind(f"{loaded.card.id} is a {loaded.card.kind} model: diff compares two texts read by a "
                             "model that predicts the next token or a class")  # fmt: skip


TRANSLATION = TranslationFamily()
