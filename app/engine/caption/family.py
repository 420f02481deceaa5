"""The caption family (kind "caption"): models that look at a picture and write what is in it, word by word."""

from __future__ import annotations

from typing import NoReturn

from torch import Tensor

from app.engine.caption.card import CaptionCard, caption_card, config
from app.engine.caption.model import CaptionModel
from app.engine.card import LoadedModel, ModelCard
from app.engine.errors import WrongModelKind
from app.engine.vocab import Vocab


class CaptionFamily:
    name = "caption"
    kinds = ("caption",)
    block = CaptionCard

    def build(self, card: ModelCard, state: dict[str, Tensor]) -> CaptionModel:
        model = CaptionModel(config(card))
        model.load_state_dict_checked(state)
        return model

    def input_size(self, card: ModelCard) -> int:
        return caption_card(card).embed_size  # the decoder's W_ih reads the previous word's embedding

    def head_size(self, card: ModelCard) -> int:
        return len(caption_card(card).words["tokens"])

    def output_vocab(self, card: ModelCard) -> Vocab | None:
        return caption_card(card).words_vocab()  # it reads pixels and writes words

    def lab_model(self, loaded: LoadedModel, checkpoint: str | None) -> NoReturn:
        raise WrongModelKind(f"{loaded.card.id} captions images: diff compares two texts read by a model that "
                             "predicts the next token or a class")  # fmt: skip


CAPTION = CaptionFamily()
