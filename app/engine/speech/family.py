"""The speech family (kind "transcribe"): models that read log-mel frames of a clip and write its text by CTC."""

from __future__ import annotations

from typing import NoReturn

from torch import Tensor

from app.engine.card import LoadedModel, ModelCard
from app.engine.errors import WrongModelKind
from app.engine.speech.card import SpeechCard, config, speech_card
from app.engine.speech.model import SpeechModel
from app.engine.vocab import Vocab


class SpeechFamily:
    name = "speech"
    kinds = ("transcribe",)
    block = SpeechCard

    def build(self, card: ModelCard, state: dict[str, Tensor]) -> SpeechModel:
        model = SpeechModel(config(card))
        model.load_state_dict_checked(state)
        return model

    def input_size(self, card: ModelCard) -> int:
        return 0  # no embedding: W_ih reads the step's stacked frames as they are

    def head_size(self, card: ModelCard) -> int:
        return speech_card(card).classes

    def output_vocab(self, card: ModelCard) -> Vocab | None:
        return speech_card(card).alphabet_vocab()  # it reads frames and writes characters

    def lab_model(self, loaded: LoadedModel, checkpoint: str | None) -> NoReturn:
        raise WrongModelKind(f"{loaded.card.id} transcribes speech: diff compares two texts read by a model that "
                             "predicts the next token or a class")  # fmt: skip


SPEECH = SpeechFamily()
