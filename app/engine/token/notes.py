"""The text form of a melody: space-separated `PITCH:DUR` notes, one step per note.

PITCH is scientific pitch notation (C4 is middle C, MIDI 60): a letter A–G, then `#`, `##`, `b` or `bb`, then
the octave (−1 to 9), or `R` for a rest. DUR is the length in quarter notes: `1`, `0.5`, `1.5`, or a fraction
such as `1/3` (a triplet eighth). `E4:1 E4:1 F4:1 G4:1 R:2`.

A note is its sound, not its spelling: `Db4` and `C#4` are one pitch (MIDI 61), and `0.50` and `1/2` one length.
Every note is written back in one spelling per pitch class (`NAMES`: the sharps and flats a tune in C major or
A minor uses: C#, Eb, F#, G#, Bb), lengths in their shortest form, so a vocabulary of written notes has one
token per sound, and a text a person typed in any spelling reads as the notes the model knows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from app.engine.errors import BadNote

NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")  # the written spelling of each pitch class
STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
ALTER = {"": 0, "#": 1, "##": 2, "b": -1, "bb": -2}
PITCH_RE = re.compile(r"([A-Ga-g])(##|#|bb|b|)(-?\d+)")
DURATION_RE = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(?:/(\d+))?")
REST = "R"
MAX_DURATION = Fraction(64)  # quarter notes: sixteen 4/4 bars
LOWEST, HIGHEST = 0, 127  # MIDI: C-1 to G9
PITCH_HELP = "a pitch is a letter A-G, an optional #, ##, b or bb, and an octave (C4 is middle C), or R for a rest"


@dataclass(frozen=True)
class Note:
    """One step of a melody: a MIDI pitch (None for a rest) and a length in quarter notes."""

    midi: int | None
    duration: Fraction

    @property
    def is_rest(self) -> bool:
        return self.midi is None

    @property
    def pitch(self) -> str:
        """The written pitch: `C#4`, `Bb3`, or `R`."""
        if self.midi is None:
            return REST
        return f"{NAMES[self.midi % 12]}{self.midi // 12 - 1}"

    @property
    def token(self) -> str:
        """The note as the text writes it and a vocabulary holds it: `PITCH:DUR`."""
        return f"{self.pitch}:{write_duration(self.duration)}"

    def transposed(self, semitones: int) -> Note:
        return self if self.midi is None else Note(self.midi + semitones, self.duration)

    def to_json(self) -> dict[str, Any]:
        """For a piano roll and a synthesiser: the token, the MIDI number (null: a rest), the length in quarters."""
        return {"token": self.token, "midi": self.midi, "duration": float(self.duration)}


def write_duration(duration: Fraction) -> str:
    """The shortest text of a length: `1`, `0.5`, `0.375`; a fraction where no decimal is exact (`1/3`)."""
    if duration.denominator == 1:
        return str(duration.numerator)
    d, twos, fives = duration.denominator, 0, 0
    while d % 2 == 0:
        d, twos = d // 2, twos + 1
    while d % 5 == 0:
        d, fives = d // 5, fives + 1
    k = max(twos, fives)  # decimals a denominator of 2^a 5^b needs
    if d != 1:
        return f"{duration.numerator}/{duration.denominator}"
    digits = str(duration.numerator * 10**k // duration.denominator).rjust(k + 1, "0")  # exact: 10^k / den is whole
    return f"{digits[:-k]}.{digits[-k:]}".rstrip("0")


def parse_pitch(text: str) -> int | None:
    """A written pitch → its MIDI number (None for a rest), or ValueError saying what is wrong."""
    if text.upper() == REST:
        return None
    m = PITCH_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"bad pitch {text!r}: {PITCH_HELP}")
    letter, accidental, octave = m.groups()
    midi = 12 * (int(octave) + 1) + STEPS[letter.upper()] + ALTER[accidental]
    if not LOWEST <= midi <= HIGHEST:
        raise ValueError(f"pitch {text!r} is out of range: from C-1 to G9 (MIDI 0 to 127)")
    return midi


def parse_duration(text: str) -> Fraction:
    """A written length in quarter notes → a Fraction, or ValueError saying what is wrong."""
    m = DURATION_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"bad duration {text!r}: a length in quarter notes, such as 1, 0.5, 1.5 or 1/3")
    value = Fraction(m.group(1))
    if m.group(2) is not None:
        if int(m.group(2)) == 0:
            raise ValueError(f"bad duration {text!r}: division by zero")
        value /= int(m.group(2))
    if not 0 < value <= MAX_DURATION:
        raise ValueError(f"bad duration {text!r}: a note lasts more than 0 and at most {MAX_DURATION} quarter notes")
    return value


def parse_note(token: str, position: int = 0) -> Note:
    """One `PITCH:DUR` token → a Note, or BadNote naming the token, its position and what is wrong."""
    pitch, sep, duration = token.partition(":")
    if not sep:
        raise BadNote(token, position, "a note is PITCH:DUR, e.g. C4:1, F#4:0.5 or R:2 (a rest)")
    try:
        return Note(parse_pitch(pitch), parse_duration(duration))
    except ValueError as e:
        raise BadNote(token, position, str(e)) from None


def parse_notes(text: str) -> list[Note]:
    """A melody's text → its notes. BadNote names the first note that is not `PITCH:DUR`, with its position."""
    return [parse_note(token, i) for i, token in enumerate(text.split())]


def normalise(text: str) -> list[str]:
    """A melody's text → its notes as written tokens (one spelling per sound): what a note vocabulary reads."""
    return [note.token for note in parse_notes(text)]


def write_notes(notes: Iterable[Note]) -> str:
    """Notes → the melody's text, `PITCH:DUR` tokens separated by spaces."""
    return " ".join(note.token for note in notes)


__all__ = ["NAMES", "REST", "Note", "normalise", "parse_duration", "parse_note", "parse_notes", "parse_pitch",
           "write_duration", "write_notes"]  # fmt: skip
