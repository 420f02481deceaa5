"""The Family protocol and its registry: the one place that maps a card's kind to the family that serves it.

A family (one folder of app/engine/) says what its card block is, builds its module from a card and its weights,
and answers what the rest of the app asks of a model without asking its kind. The loader lives here, not in
card.py, because reading a card needs the registry and the registry imports every family, each of which imports
card.py: card.py below the families, the registry above them, and no import cycle.

A new family: its folder (model, card block, trace, family.py) and one line in FAMILIES.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from safetensors.torch import load_file
from torch import Tensor, nn

from app.engine.caption.family import CAPTION
from app.engine.card import CardBlock, LoadedModel, ModelCard
from app.engine.errors import ModelFileError
from app.engine.series.family import SERIES
from app.engine.speech.family import SPEECH
from app.engine.token.family import TOKEN
from app.engine.token.model import SeqModel
from app.engine.translation.family import TRANSLATION
from app.engine.vocab import Vocab


class Family(Protocol):
    @property
    def name(self) -> str:
        """ "token", "translation", "series": the key of its block in a card file."""
        ...

    @property
    def kinds(self) -> tuple[str, ...]:
        """The card kinds it serves."""
        ...

    @property
    def block(self) -> type[CardBlock]:
        """Its block of the card (app/engine/<family>/card.py)."""
        ...

    def build(self, card: ModelCard, state: dict[str, Tensor]) -> nn.Module:
        """The family's module for `card`, its weights `state` loaded (ModelFileError if they do not fit)."""
        ...

    def input_size(self, card: ModelCard) -> int:
        """What the first layer's W_ih reads at a step: the embedding's width (0: it reads its numbers as given)."""
        ...

    def head_size(self, card: ModelCard) -> int:
        """The head's outputs at a step: the vocabulary, the labels, the decoder's vocabulary, the features."""
        ...

    def output_vocab(self, card: ModelCard) -> Vocab | None:
        """The vocabulary its output is written in, when it is not the one it reads (a translation's decoder)."""
        ...

    def lab_model(self, loaded: LoadedModel, checkpoint: str | None) -> SeqModel:
        """The model the lab's maths on a zoo model (diff) take: a token model's, or WrongModelKind saying why not."""
        ...


FAMILIES: tuple[Family, ...] = (TOKEN, TRANSLATION, SERIES, SPEECH, CAPTION)
BY_KIND: dict[str, Family] = {kind: f for f in FAMILIES for kind in f.kinds}
KINDS = tuple(BY_KIND)


def family_of(kind: str) -> Family:
    """The family that serves a card kind, or ModelFileError naming the kinds there are."""
    try:
        return BY_KIND[kind]
    except (KeyError, TypeError):
        raise ModelFileError(f"card is not valid: kind {kind!r} is not one of {list(KINDS)}") from None


def card_from_json(data: dict[str, Any]) -> ModelCard:
    """A card from a card file's JSON, in its current form or the flat form of before (see ModelCard.from_json)."""
    if not isinstance(data, dict):
        raise ModelFileError("card is not valid: a card is a JSON object")
    return ModelCard.from_json(data, family_of(data.get("kind", "")).block)


def build_model(card: ModelCard, weights: Path) -> nn.Module:
    try:
        state = load_file(str(weights))
    except Exception as e:  # safetensors raises several types for truncated or corrupt files
        raise ModelFileError(f"{weights.name} is not a readable safetensors file: {e}") from e
    model = family_of(card.kind).build(card, state)
    model.eval()
    model.requires_grad_(False)
    return model


def load_model(folder: Path, model_id: str) -> LoadedModel:
    """Load models/<id>.json and its weights (and checkpoints), checking each against the card."""
    card_path = folder / f"{model_id}.json"
    try:
        card = card_from_json(json.loads(card_path.read_text()))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{card_path.name} cannot be read: {e}") from e
    if card.id != model_id:
        raise ModelFileError(f"{card_path.name} names itself {card.id!r}")
    model = build_model(card, folder / f"{model_id}.safetensors")
    checkpoints = {c.name: build_model(card, folder / c.file) for c in card.checkpoints}
    return LoadedModel(
        card=card,
        vocab=card.make_vocab(),
        model=model,
        checkpoints=checkpoints,
        target_vocab=family_of(card.kind).output_vocab(card),
    )


__all__ = ["FAMILIES", "KINDS", "Family", "build_model", "card_from_json", "family_of", "load_model"]
