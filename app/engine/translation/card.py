"""A translation model's block of its card (kind "translate"): its decoder's vocabulary, its attention, its length."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from app.engine.card import ModelCard
from app.engine.errors import ModelFileError, WrongModelKind
from app.engine.translation.model import BOS, EOS, Seq2SeqConfig


@dataclass
class TranslationCard:
    FAMILY: ClassVar[str] = "translation"
    DOES: ClassVar[str] = "translates"

    # the card's common `vocab` is the source's, `target_vocab` the decoder's; attention_size is 0 without
    # attention; `equations` say how every number is computed; max_length bounds an output's steps.
    embed_size: int
    target_vocab: dict[str, Any]
    attention: bool = False
    attention_size: int = 0
    equations: str = ""
    max_length: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TranslationCard:
        if not data.get("target_vocab"):
            raise ModelFileError("card is not valid: a translation model needs its target_vocab")
        return cls(**data)


def translation_card(card: ModelCard) -> TranslationCard:
    """The card's translation block, or WrongModelKind."""
    if not isinstance(card.block, TranslationCard):
        raise WrongModelKind(f"{card.id} is a {card.kind} model, not a translation model")
    return card.block


def config(card: ModelCard) -> Seq2SeqConfig:
    block = translation_card(card)
    target = block.target_vocab.get("tokens", [])
    if tuple(target[1:3]) != (BOS, EOS):
        raise ModelFileError(f"card is not valid: a target vocabulary starts <unk>, {BOS}, {EOS}")
    return Seq2SeqConfig(
        cell=card.cell,
        source_vocab_size=len(card.vocab["tokens"]),
        target_vocab_size=len(target),
        embed_size=block.embed_size,
        hidden_size=card.hidden_size,
        num_layers=card.num_layers,
        attention_size=block.attention_size if block.attention else 0,
    )
