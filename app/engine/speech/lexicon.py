"""The words a speech model's transcripts are made of, and which may follow which: the closed vocabulary its
lexicon-constrained beam search (`lexicon_beam_search`) spells within.

A transcript is words joined by separators (" " between words, "-" inside a compound: "twenty-three thousand").
The lexicon holds the words (the parts between separators), the words a transcript may start with and end with,
and, for each word, what may follow it: a separator and the next word (" thousand", "-three"). It is a bigram
grammar over the parts: every transcript the trainer wrote fits it (its card's lexicon is read off them), and a
few others do ("one hundred and nine thousand and nine" fits; so does "one hundred and twenty-one hundred").

The search walks a character automaton built from it: a state is (the word before and its separator, the part
of the current word spelt so far); its arcs are the characters that keep the spelling a prefix of a word allowed
there, plus, where a whole word ends, the separators its followers start with. A state accepts where a whole
word that may end a transcript ends. The CTC prefix beam search (trace.py's) extends a prefix only along those
arcs, keeps at each step besides its likeliest prefixes the likeliest that end a transcript (so that one is
left at the end), and at the last step only those; their scores are then recomputed
exactly (the CTC forward over each text's alignments, `log_likelihood`), since pruning may have dropped
alignments that passed through a prefix while it was out of the beam.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.engine.errors import ModelFileError
from app.engine.layers import F64

SEPARATORS = " -"
NEG_INF = -math.inf
BLANK_ID = 0


@dataclass(frozen=True)
class Automaton:
    """The lexicon as a character automaton over a model's classes: state 0 is the start; arcs[s] maps a class
    (1 …) to the next state; accepting[s] says whether a transcript may end there."""

    arcs: tuple[dict[int, int], ...]
    accepting: tuple[bool, ...]

    def walk(self, ids: Sequence[int]) -> int | None:
        """The state a spelling reaches, None if it leaves the lexicon."""
        state = 0
        for c in ids:
            nxt = self.arcs[state].get(c)
            if nxt is None:
                return None
            state = nxt
        return state


@dataclass(frozen=True)
class Lexicon:
    starts: tuple[str, ...]  # the words a transcript may begin with
    follows: dict[str, tuple[str, ...]]  # word → what may follow it: a separator and a word (" thousand", "-one")
    ends: tuple[str, ...]  # the words a transcript may end with
    _automata: dict[str, Automaton] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        words = self.words
        if not self.starts or not self.ends:
            raise ModelFileError("card is not valid: a lexicon needs words to start and to end a transcript")
        for w in words:
            if not w or any(s in w for s in SEPARATORS):
                raise ModelFileError(f"card is not valid: lexicon word {w!r} is empty or holds a separator")
        for w, after in self.follows.items():
            for f in after:
                if len(f) < 2 or f[0] not in SEPARATORS or f[1:] not in words:
                    raise ModelFileError(f"card is not valid: {f!r} may follow {w!r} but is no separator and word")
        unknown = sorted(set(self.follows) - words)
        if unknown:
            raise ModelFileError(f"card is not valid: the lexicon says what follows {unknown[:3]}, never written")

    @property
    def words(self) -> set[str]:
        return {*self.starts, *self.ends, *self.follows, *(f[1:] for after in self.follows.values() for f in after)}

    @classmethod
    def of(cls, transcripts: Sequence[str]) -> Lexicon:
        """The lexicon of some transcripts: their words, first and last words, and every word's followers."""
        starts: set[str] = set()
        ends: set[str] = set()
        follows: dict[str, set[str]] = {}
        for text in transcripts:
            words, seps = split(text)
            starts.add(words[0])
            ends.add(words[-1])
            for a, sep, b in zip(words, seps, words[1:], strict=False):
                follows.setdefault(a, set()).add(sep + b)
        return cls(tuple(sorted(starts)), {w: tuple(sorted(f)) for w, f in sorted(follows.items())},
                   tuple(sorted(ends)))  # fmt: skip

    def accepts(self, text: str) -> bool:
        words, seps = split(text) if text else ([], [])
        if not words or words[0] not in self.starts or words[-1] not in self.ends:
            return False
        return all(sep + b in self.follows.get(a, ()) for a, sep, b in zip(words, seps, words[1:], strict=False))

    def automaton(self, alphabet: str) -> Automaton:
        """The character automaton over the classes of `alphabet` (class i ≥ 1 is alphabet[i − 1]), made once."""
        if alphabet not in self._automata:
            self._automata[alphabet] = self._build(alphabet)
        return self._automata[alphabet]

    def _build(self, alphabet: str) -> Automaton:
        missing = sorted({c for w in self.words for c in w} - set(alphabet) | set(SEPARATORS) - set(alphabet))
        if missing:
            raise ModelFileError(f"card is not valid: the lexicon writes {missing} outside the alphabet")
        cls = {c: i + 1 for i, c in enumerate(alphabet)}
        allowed: dict[str, tuple[str, ...]] = {"": self.starts}  # context (word + separator, "" at the start) → words
        for w, after in self.follows.items():
            for sep in SEPARATORS:
                allowed[w + sep] = tuple(f[1:] for f in after if f[0] == sep)
        ends = set(self.ends)
        index: dict[tuple[str, str], int] = {("", ""): 0}
        queue: list[tuple[str, str]] = [("", "")]
        arcs: list[dict[int, int]] = []
        accepting: list[bool] = []

        def to(key: tuple[str, str]) -> int:
            if key not in index:
                index[key] = len(queue)
                queue.append(key)
            return index[key]

        for context, part in queue:  # grows as states are found
            here: dict[int, int] = {}
            for w in allowed[context]:
                if len(w) > len(part) and w.startswith(part):
                    here[cls[w[len(part)]]] = to((context, w[: len(part) + 1]))
            whole = part in allowed[context]
            if whole:
                for sep in {f[0] for f in self.follows.get(part, ())}:
                    here[cls[sep]] = to((part + sep, ""))
            arcs.append(here)
            accepting.append(whole and part in ends)
        return Automaton(tuple(arcs), tuple(accepting))

    def to_json(self) -> dict[str, Any]:
        return {"starts": list(self.starts), "follows": {w: list(f) for w, f in self.follows.items()},
                "ends": list(self.ends)}  # fmt: skip

    @classmethod
    def from_json(cls, data: Any) -> Lexicon:
        try:
            follows = {str(w): tuple(map(str, f)) for w, f in dict(data["follows"]).items()}
            return cls(tuple(map(str, data["starts"])), follows, tuple(map(str, data["ends"])))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"card is not valid: speech lexicon {e!r}") from e


def split(text: str) -> tuple[list[str], list[str]]:
    """A transcript → its words and the separators between them ("twenty-one thousand" → [twenty, one, thousand],
    [-, " "])."""
    words, seps, start = [], [], 0
    for i, c in enumerate(text):
        if c in SEPARATORS:
            words.append(text[start:i])
            seps.append(c)
            start = i + 1
    words.append(text[start:])
    return words, seps


def _logaddexp(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    return a if b == NEG_INF else a + math.log1p(math.exp(b - a))


def log_likelihood(log_probs: F64, labels: Sequence[int]) -> float:
    """log p(labels | x): CTC's forward recursion (trace.py's α) over every alignment of the labels, −∞ if no path
    of the steps spells them."""
    T = log_probs.shape[0]
    ext = np.zeros(2 * len(labels) + 1, dtype=np.int64)
    ext[1::2] = labels
    S = len(ext)
    skip = np.zeros(S, dtype=bool)
    skip[2:] = (ext[2:] != BLANK_ID) & (ext[2:] != ext[:-2])
    y = log_probs[:, ext]  # (T', S)
    alpha = np.full(S, NEG_INF)
    alpha[: min(2, S)] = y[0, : min(2, S)]
    for t in range(1, T):
        a1 = np.concatenate([[NEG_INF], alpha[:-1]])
        a2 = np.where(skip, np.concatenate([[NEG_INF, NEG_INF], alpha[:-2]]), NEG_INF)
        alpha = y[t] + np.logaddexp(np.logaddexp(alpha, a1), a2)
    return float(np.logaddexp.reduce(alpha[max(0, S - 2) :]))


def lexicon_beam_search(log_probs: F64, automaton: Automaton, width: int) -> list[tuple[list[int], float]]:
    """The CTC prefix beam search (trace.beam_search's) with every prefix kept inside the lexicon: a prefix is
    extended only by its state's arcs; each step keeps the `width` likeliest prefixes and the `width` likeliest
    that end a transcript, and the last step only the latter. Returns up to
    `width` texts (as classes) with their exact log p(text | x), best first; none if no transcript the lexicon
    allows fits the steps."""
    lae = _logaddexp
    arcs, accepting = automaton.arcs, automaton.accepting
    beams: dict[tuple[int, ...], tuple[float, float, int]] = {(): (0.0, NEG_INF, 0)}  # prefix → (p_b, p_nb, state)
    rows = log_probs.tolist()
    for t, row in enumerate(rows):
        nxt: dict[tuple[int, ...], list[float]] = {}  # prefix → [log p_b, log p_nb] after this step
        states: dict[tuple[int, ...], int] = {}
        for prefix, (pb, pnb, state) in beams.items():
            total = lae(pb, pnb)
            here = nxt.setdefault(prefix, [NEG_INF, NEG_INF])
            states[prefix] = state
            here[0] = lae(here[0], total + row[BLANK_ID])
            last = prefix[-1] if prefix else None
            if last is not None:
                here[1] = lae(here[1], pnb + row[last])  # the last character again: merged
            for c, after in arcs[state].items():
                key = (*prefix, c)
                longer = nxt.setdefault(key, [NEG_INF, NEG_INF])
                states[key] = after
                # a doubled letter needs the blank between: only the paths ending in blank extend by it
                longer[1] = lae(longer[1], (pb if c == last else total) + row[c])
        scored = [(lae(v[0], v[1]), p, v) for p, v in nxt.items() if lae(v[0], v[1]) > NEG_INF]
        ends = [s for s in scored if accepting[states[s[1]]]]
        # the `width` likeliest prefixes, and the `width` likeliest that end a transcript besides: once a whole
        # transcript has been heard it stays in the beam (blanks keep it), so that the last step has one to give
        kept = heapq.nlargest(width, ends, key=lambda s: s[0])
        if t < len(rows) - 1:
            kept += heapq.nlargest(width, scored, key=lambda s: s[0])
        beams = {p: (v[0], v[1], states[p]) for _, p, v in kept}
    beams = dict(sorted(beams.items(), key=lambda b: -lae(b[1][0], b[1][1]))[:width])
    exact = [(list(p), log_likelihood(log_probs, p)) for p in beams]
    return sorted(exact, key=lambda b: -b[1])


__all__ = ["Automaton", "Lexicon", "lexicon_beam_search", "log_likelihood", "split"]
