"""Vocabularies: text to token ids and back, with the token that stands for text they lack, if they have one.

Levels: `char`, `word`, `note` (a melody's `PITCH:DUR` notes, app/engine/token/notes.py: split on whitespace, each note
written in its one spelling, so `Db4:1` reads as the vocabulary's `C#4:1`; a note that is not `PITCH:DUR` is a
BadNote naming it and its position, a valid note the vocabulary lacks is unknown, by position, like a character)
and `value` (a series model's: it reads numbers, not text, and has no tokens but the unknown one).

The unknown token (`unk`) is one of the tokens, at any id: the zoo's vocabularies put `<unk>` first, an imported one
keeps its own ids and names its own (`<UNK>` at id 57 stays there). A vocabulary built from `set(text)` has none
(`unk` None): text outside it cannot be read, and is refused by name (UnknownTokens: the piece and its position).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from app.engine.errors import EmptyInput, InputTooLong, UnknownTokens, WrongModelKind
from app.engine.token import notes

UNK = "<unk>"
WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")

Level = Literal["char", "word", "note", "value"]
Case = Literal["keep", "lower", "upper"]


@dataclass(frozen=True)
class Encoded:
    tokens: list[str]  # what each step read, as written in the vocabulary (unknowns keep their text)
    ids: list[int]
    unknown: list[int]  # positions read as the unknown token (none in a vocabulary without one: refused instead)


@dataclass(frozen=True)
class Vocab:
    """A character-, word- or note-level vocabulary; `unk` is the token text it lacks is read as (None: such text
    is refused), and unk_id its id."""

    tokens: tuple[str, ...]
    level: Level = "char"
    case: Case = "keep"
    skip_whitespace: bool = False  # e.g. the alphabet: "G H I" reads as "GHI"
    unk: str | None = UNK
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.tokens:
            raise ValueError("a vocabulary has at least one token")
        object.__setattr__(self, "_index", {tok: i for i, tok in enumerate(self.tokens)})
        if self.unk is not None and self.unk not in self._index:
            raise ValueError(f"its unknown token {self.unk!r} is not one of its tokens")

    @property
    def unk_id(self) -> int | None:
        """The id text the vocabulary lacks is read as; None if it has no unknown token."""
        return None if self.unk is None else self._index[self.unk]

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

    def encode(self, text: str, max_steps: int | None = None, what: str = "text") -> Encoded:
        """The text's pieces and ids; pieces the vocabulary lacks are read as its unknown token, or, if it has
        none, refused: UnknownTokens names them and their positions (`what` names the text in its message)."""
        pieces = self.split(text)
        if not pieces:
            raise EmptyInput("the input is empty: give at least one token")
        if max_steps is not None and len(pieces) > max_steps:
            raise InputTooLong(len(pieces), max_steps)
        found = [self._index.get(p) for p in pieces]
        unknown = [i for i, t in enumerate(found) if t is None]
        unk = self.unk_id
        if unknown and unk is None:
            raise UnknownTokens(what, pieces, unknown)
        ids = [unk if t is None else t for t in found]
        return Encoded(tokens=pieces, ids=cast(list[int], ids), unknown=unknown)

    def index(self, token: str) -> int:
        """The id of a token as the vocabulary writes it; the unknown token's if it lacks it (refused with none)."""
        i = self._index.get(token, self.unk_id)
        if i is None:
            raise UnknownTokens("text", [token], [0])
        return i

    def from_ids(self, ids: Sequence[int]) -> Encoded:
        if not ids:
            raise EmptyInput("the input is empty: give at least one token")
        bad = [i for i in ids if not 0 <= i < len(self.tokens)]
        if bad:
            raise ValueError(f"token ids must lie in [0, {len(self.tokens)}); got {bad[0]}")
        return Encoded(
            tokens=[self.tokens[i] for i in ids],
            ids=list(ids),
            unknown=[i for i, t in enumerate(ids) if t == self.unk_id],
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
            # written only when it is not the zoo's <unk> (so cards written before the field read the same)
            **({} if self.unk == UNK else {"unk": self.unk}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Vocab:
        return cls(
            tokens=tuple(data["tokens"]),
            level=data.get("level", "char"),
            case=data.get("case", "keep"),
            skip_whitespace=bool(data.get("skip_whitespace", False)),
            unk=data.get("unk", UNK),
        )

    @classmethod
    def build(cls, pieces: Sequence[str], **kwargs: Any) -> Vocab:
        """A vocabulary of the given pieces in order of first appearance, unknown first."""
        seen = dict.fromkeys(p for p in pieces if p != UNK)
        return cls(tokens=(UNK, *seen), **kwargs)
