"""The token family: models that read text (characters, words or notes) and predict the next token at every step
(kind "next_token"; a melody is one whose vocabulary level is "note") or a class (kind "classify")."""

from __future__ import annotations

from torch import Tensor

from app.engine.card import LoadedModel, ModelCard
from app.engine.token.card import TokenCard, config, token_card, token_model
from app.engine.token.model import SeqModel
from app.engine.vocab import Vocab


class TokenFamily:
    name = "token"
    kinds = ("next_token", "classify")
    block = TokenCard

    def build(self, card: ModelCard, state: dict[str, Tensor]) -> SeqModel:
        model = SeqModel(config(card))
        model.load_state_dict_checked(state)
        return model

    def input_size(self, card: ModelCard) -> int:
        return token_card(card).embed_size

    def head_size(self, card: ModelCard) -> int:
        return config(card).num_outputs

    def output_vocab(self, card: ModelCard) -> Vocab | None:
        return None

    def lab_model(self, loaded: LoadedModel, checkpoint: str | None) -> SeqModel:
        return token_model(loaded, checkpoint)


TOKEN = TokenFamily()
