"""Vocabularies: text to token ids and back, with an explicit unknown token.

Levels: `char`, `word`, `note` (a melody's `PITCH:DUR` notes, app/engine/token/notes.py: split on whitespace, each note
written in its one spelling, so `Db4:1` reads as the vocabulary's `C#4:1`; a note that is not `PITCH:DUR` is a
BadNote naming it and its position, a valid note the vocabulary lacks is unknown, by position, like a character)
and `value` (a series model's: it reads numbers, not text, and has no tokens but the unknown one).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from app.engine.errors import EmptyInput, InputTooLong, WrongModelKind
from app.engine.token import notes

UNK = "<unk>"
WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")

Level = Literal["char", "word", "note", "value"]
Case = Literal["keep", "lower", "upper"]


@dataclass(frozen=True)
class Encoded:
    tokens: list[str]  # what each step read, as written in the vocabulary (unknowns keep their text)
    ids: list[int]
    unknown: list[int]  # positions that mapped to the unknown token


@dataclass(frozen=True)
class Vocab:
    """A character-, word- or note-level vocabulary. Index 0 is always the unknown token."""

    tokens: tuple[str, ...]
    level: Level = "char"
    case: Case = "keep"
    skip_whitespace: bool = False  # e.g. the alphabet: "G H I" reads as "GHI"
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.tokens or self.tokens[0] != UNK:
            raise ValueError(f"a vocabulary starts with {UNK!r}")
        object.__setattr__(self, "_index", {tok: i for i, tok in enumerate(self.tokens)})

    def __len__(self) -> int:
        return len(self.tokens)

    def split(self, text: str) -> list[str]:
        if self.level == "note":
            return notes.normalise(text)
        if self.level == "value":
            raise WrongModelKind("this model reads numbers (values), not text")
        if self.case == "lower":
            text = text.lower()
        elif self.case == "upper":
            text = text.upper()
        if self.level == "word":
            return WORD_RE.findall(text.lower() if self.case == "keep" else text)
        if self.skip_whitespace:
            return [ch for ch in text if not ch.isspace()]
        return list(text)

    def encode(self, text: str, max_steps: int | None = None) -> Encoded:
        pieces = self.split(text)
        if not pieces:
            raise EmptyInput("the input is empty: give at least one token")
        if max_steps is not None and len(pieces) > max_steps:
            raise InputTooLong(len(pieces), max_steps)
        ids = [self._index.get(p, 0) for p in pieces]
        unknown = [i for i, t in enumerate(ids) if t == 0]
        return Encoded(tokens=pieces, ids=ids, unknown=unknown)

    def index(self, token: str) -> int:
        """The id of a token as the vocabulary writes it; 0 (unknown) if it lacks it."""
        return self._index.get(token, 0)

    def from_ids(self, ids: Sequence[int]) -> Encoded:
        if not ids:
            raise EmptyInput("the input is empty: give at least one token")
        bad = [i for i in ids if not 0 <= i < len(self.tokens)]
        if bad:
            raise ValueError(f"token ids must lie in [0, {len(self.tokens)}); got {bad[0]}")
        return Encoded(
            tokens=[self.tokens[i] for i in ids],
            ids=list(ids),
            unknown=[i for i, t in enumerate(ids) if t == 0],
        )

    def decode(self, ids: Sequence[int]) -> str:
        sep = " " if self.level in ("word", "note") else ""
        return sep.join(self.tokens[i] for i in ids)

    def to_json(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "case": self.case,
            "skip_whitespace": self.skip_whitespace,
            "tokens": list(self.tokens),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Vocab:
        return cls(
            tokens=tuple(data["tokens"]),
            level=data.get("level", "char"),
            case=data.get("case", "keep"),
            skip_whitespace=bool(data.get("skip_whitespace", False)),
        )

    @classmethod
    def build(cls, pieces: Sequence[str], **kwargs: Any) -> Vocab:
        """A vocabulary of the given pieces in order of first appearance, unknown first."""
        seen = dict.fromkeys(p for p in pieces if p != UNK)
        return cls(tokens=(UNK, *seen), **kwargs)
