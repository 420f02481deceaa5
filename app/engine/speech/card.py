"""A speech model's block of its card (kind "transcribe"): the alphabet its head writes, how frames become steps,
and the front end it was trained on.

    "speech": {"alphabet": " -adefghilnorstuvwxyz", "stack": 4, "scale": 0.5, "variance": true,
               "front_end": {"sample_rate": 16000, "window": 400, "hop": 160, "bands": 40, "log_floor": 1e-06},
               "lexicon": {"starts": [...], "follows": {"twenty": ["-one", …, " thousand"], …}, "ends": [...]}}

Class 0 of the head is CTC's blank; class i ≥ 1 is alphabet[i − 1]. Its `vocab` (common) has level "value" and
no token but <unk>, as a series model's: it reads numbers (log-mel frames), not text; what it writes is
`alphabet_vocab`, the family's output vocabulary, through which a given transcript is read (a character outside
the alphabet is refused by name and position). The front end is the one app/engine/speech/audio.py computes; a
card that names another was trained on frames this server cannot make, and is refused when it is loaded.
`variance`: each band's clip standard deviation divided out too, not only its mean (model.py's frames_to_steps;
cards written before it have false). `lexicon` (app/engine/speech/lexicon.py): the words its transcripts are made
of and which may follow which, read off the training transcripts; with it the trace also runs the
lexicon-constrained beam search, whose best text is the served transcript; without it (older cards) the transcript
is the greedy text.
The directions and layers are the common card's (`bidirectional`, `num_layers`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from app.engine.card import ModelCard
from app.engine.errors import ModelFileError, WrongModelKind
from app.engine.speech import audio
from app.engine.speech.lexicon import Lexicon
from app.engine.speech.model import SpeechConfig
from app.engine.vocab import Vocab

BLANK = "<blank>"  # class 0's name where the alphabet's classes are listed (it is never typed: char-level text)


@dataclass(frozen=True)
class FrontEnd:
    """What app/engine/speech/audio.py's one front end computes: the rate, the STFT's window and hop (samples),
    the mel bands and the power floor under the log."""

    sample_rate: int = audio.SAMPLE_RATE
    window: int = audio.WINDOW
    hop: int = audio.HOP
    bands: int = audio.N_MELS
    log_floor: float = audio.LOG_FLOOR

    @property
    def frame_seconds(self) -> float:
        return self.hop / self.sample_rate


@dataclass
class SpeechCard:
    FAMILY: ClassVar[str] = "speech"
    DOES: ClassVar[str] = "transcribes speech"

    alphabet: str  # the characters of a transcript, head classes 1 … len: class 0 is the blank
    stack: int = 3  # log-mel frames side by side in one step (3: 30 ms a step)
    scale: float = 0.25  # the mean-removed log-mel values × scale: about unit scale at W_ih
    front_end: FrontEnd = FrontEnd()
    variance: bool = False  # each band's clip standard deviation divided out as well as its mean
    lexicon: Lexicon | None = None

    def __post_init__(self) -> None:
        if not self.alphabet or len(set(self.alphabet)) != len(self.alphabet):
            raise ModelFileError("card is not valid: a speech alphabet is one or more distinct characters")
        if not isinstance(self.stack, int) or not 1 <= self.stack <= 16:
            raise ModelFileError(f"card is not valid: stack {self.stack!r} is not a number of frames from 1 to 16")
        if self.front_end != FrontEnd():
            raise ModelFileError(
                f"card is not valid: the model was trained on the front end {asdict(self.front_end)}; this server "
                f"computes {asdict(FrontEnd())} (app/engine/speech/audio.py)"
            )
        if not isinstance(self.variance, bool):
            raise ModelFileError(f"card is not valid: speech variance {self.variance!r} is not true or false")
        if self.lexicon is not None:
            self.lexicon.automaton(self.alphabet)  # a character outside the alphabet: refused now, not when heard

    @property
    def classes(self) -> int:
        return 1 + len(self.alphabet)

    @property
    def step_seconds(self) -> float:
        """What one step of the network hears: `stack` hops."""
        return self.stack * self.front_end.frame_seconds

    def alphabet_vocab(self) -> Vocab:
        """The head's classes as a vocabulary: the blank at 0, the alphabet after it, no unknown token; a transcript
        is read in lower case."""
        return Vocab((BLANK, *self.alphabet), level="char", case="lower", unk=None)

    def to_json(self) -> dict[str, Any]:
        return {"alphabet": self.alphabet, "stack": self.stack, "scale": self.scale, "variance": self.variance,
                "front_end": asdict(self.front_end),
                "lexicon": None if self.lexicon is None else self.lexicon.to_json()}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpeechCard:
        data = dict(data)
        try:
            front = data.pop("front_end", {})
            lexicon = data.pop("lexicon", None)
            words = None if lexicon is None else Lexicon.from_json(lexicon)
            return cls(**data, front_end=FrontEnd(**front), lexicon=words)
        except TypeError as e:
            raise ModelFileError(f"card is not valid: speech {e}") from e


def speech_card(card: ModelCard) -> SpeechCard:
    """The card's speech block, or WrongModelKind naming what the model does instead."""
    if not isinstance(card.block, SpeechCard):
        raise WrongModelKind(f"{card.id} {card.block.DOES}: it is not a model of speech")
    return card.block


def config(card: ModelCard) -> SpeechConfig:
    block = speech_card(card)
    return SpeechConfig(card.cell, block.front_end.bands, block.stack, card.hidden_size, block.classes,
                        card.num_layers, card.bidirectional, block.scale, block.variance)  # fmt: skip
