"""A caption model's block of its card (kind "caption"): the words it writes, its encoder and attention, its length.

    "caption": {"words": {"tokens": ["<unk>", "<s>", "</s>", "a", …], "level": "word", …}, "embed_size": 16,
                "channels": [16, 32, 32], "attention_size": 32, "max_length": 12, "equations": "…"}

Its `vocab` (common) has level "value" and no token but <unk>, as a series or speech model's: it reads pixels,
not text. What it writes is `words`, the family's output vocabulary, through which a given caption is read (a
word outside it is refused by name and position). The decoder is one recurrent layer (`num_layers` 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from app.engine.caption.model import BOS, EOS, CaptionConfig
from app.engine.card import ModelCard
from app.engine.errors import ModelFileError, WrongModelKind
from app.engine.vocab import Vocab


@dataclass
class CaptionCard:
    FAMILY: ClassVar[str] = "caption"
    DOES: ClassVar[str] = "captions images"

    words: dict[str, Any]  # the decoder's vocabulary: <unk>, <s>, </s>, then the words
    embed_size: int
    channels: list[int] = field(default_factory=lambda: [16, 32, 32])
    attention_size: int = 32
    max_length: int = 12  # tokens a caption may have, </s> included
    equations: str = ""

    def __post_init__(self) -> None:
        tokens = self.words.get("tokens", []) if isinstance(self.words, dict) else []
        if tuple(tokens[1:3]) != (BOS, EOS) or len(tokens) < 4:
            raise ModelFileError(f"card is not valid: a caption model's words start <unk>, {BOS}, {EOS}")
        if len(self.channels) != 3 or not all(isinstance(c, int) and 1 <= c <= 256 for c in self.channels):
            raise ModelFileError(f"card is not valid: channels {self.channels!r} are not three widths from 1 to 256")
        if not isinstance(self.max_length, int) or not 1 <= self.max_length <= 64:
            raise ModelFileError(f"card is not valid: max_length {self.max_length!r} is not from 1 to 64")

    def words_vocab(self) -> Vocab:
        return Vocab.from_json(self.words)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaptionCard:
        try:
            return cls(**data)
        except TypeError as e:
            raise ModelFileError(f"card is not valid: caption {e}") from e


def caption_card(card: ModelCard) -> CaptionCard:
    """The card's caption block, or WrongModelKind naming what the model does instead."""
    if not isinstance(card.block, CaptionCard):
        raise WrongModelKind(f"{card.id} {card.block.DOES}: it does not caption images")
    return card.block


def config(card: ModelCard) -> CaptionConfig:
    block = caption_card(card)
    if card.num_layers != 1 or card.bidirectional:
        raise ModelFileError("card is not valid: a caption model's decoder is one layer, one direction")
    c0, c1, c2 = block.channels
    return CaptionConfig(card.cell, len(block.words["tokens"]), block.embed_size, card.hidden_size, (c0, c1, c2),
                         block.attention_size)  # fmt: skip
