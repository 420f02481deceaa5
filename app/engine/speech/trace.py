"""A speech model's trace: one exact forward pass, CTC's readings of it, and one BPTT sweep over the steps.

The method, in the order it runs (T frames, T' = T // S steps, C = 1 + len(alphabet) classes, blank = 0):
1. The front end's log-mel frames (app/engine/speech/audio.py) → steps of S stacked frames (model.py).
2. The forward: every layer and direction by app/engine/layers.py's stack_forward, the code every family uses
   (torch.nn's kernel, then every step's gates at once).
3. The head, and CTC's posteriors y_t = softmax(logits_t) over blank and the alphabet (float64 logs).
4. Decoding: the greedy path (the likeliest class per step) and its collapse (repeats merged, blanks dropped:
   `emitted` says at which step each character of the text appears); a prefix beam search (`beam_search`); and,
   when the card has a lexicon, the same search kept inside its words (lexicon.py's `lexicon_beam_search`), each
   of its texts scored exactly by the CTC forward: its best text is the transcript served (else the greedy text).
5. The CTC loss against a transcript (the one given, else the greedy text): on the extended labels
   l' = (blank, l_1, blank, …, l_L, blank), the forward–backward trellis in log space,

       α_t(s) = log y_t(l'_s) + logsumexp(α_{t−1}(s), α_{t−1}(s−1), [α_{t−1}(s−2) if l'_s ≠ blank, l'_s ≠ l'_{s−2}])
       β_t(s) = logsumexp over s' ∈ {s, s+1, s+2 (same rule)} of log y_{t+1}(l'_{s'}) + β_{t+1}(s')

   with α_0 over {0, 1} and β_{T'−1} = 0 on {S−1, S−2}. β here excludes step t's own y (Graves includes it),
   so Σ_s exp(α_t(s) + β_t(s)) = p(l | x) at every step t, and L = −log p(l | x). The best alignment is the
   same recursion with max for logsumexp (Viterbi), traced back from the better of the two last states.
6. ∂L/∂logits_t(k) = y_t(k) − γ_t(k), γ_t(k) = Σ_{s: l'_s = k} exp(α_t(s) + β_t(s) − log p): the trellis'
   occupancy, all steps at once; through the head it is ∂L/∂h_t of the top layer, which stack_backward carries
   down every layer and direction (the compiled float64 recursion), giving ‖∂L/∂h_t‖ per step and layer.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from app.engine import kernels
from app.engine.card import LoadedModel
from app.engine.errors import EmptyInput, EngineError, OverLimit, WrongModelKind
from app.engine.layers import F32, F64, I64, LayerTrace, stack_backward, stack_forward
from app.engine.speech.audio import MAX_SECONDS, Audio, features, read_wav
from app.engine.speech.card import speech_card
from app.engine.speech.lexicon import Lexicon, lexicon_beam_search
from app.engine.speech.model import SpeechModel

BLANK_ID = 0
BEAM_WIDTH = 8
MAX_BEAM_WIDTH = 32
NEG_INF = -math.inf

TargetSource = Literal["given", "greedy"]


class Unalignable(EngineError):
    """A transcript that no path of the clip's steps can spell: CTC needs a step per character and one more between
    each doubled letter ("ee" needs three)."""

    def __init__(self, needed: int, steps: int) -> None:
        super().__init__(
            f"the transcript needs at least {needed} steps of the network (one per character, one more between "
            f"doubled letters); the audio gives {steps}. Give a shorter transcript or a longer clip."
        )
        self.needed = needed
        self.steps = steps


@dataclass
class Beam:
    ids: list[int]  # the collapsed text's classes (1 …)
    text: str
    log_prob: float  # log p(text | audio): every path the search kept that collapses to it


@dataclass
class Trellis:
    labels: list[int]  # (S,) the extended labels l': blank, l_1, blank, …, l_L, blank (S = 2L + 1)
    log_alpha: F64  # (T', S)
    log_beta: F64  # (T', S), without step t's own y (module docstring)
    log_prob: float  # log p(l | x) = logsumexp_s(α_t(s) + β_t(s)), any t
    alignment: I64  # (T',) the best path: at each step, its position s in `labels`
    alignment_log_prob: float  # that one path's log-probability

    @property
    def path(self) -> I64:
        """(T',) the best alignment as classes per step (blank 0)."""
        path: I64 = np.asarray(self.labels, dtype=np.int64)[self.alignment]
        return path


@dataclass
class SpeechTrace:
    cell: str
    frames: F32  # (T, bands) the front end's log-mel frames (the spectrogram)
    stack: int  # frames per step: step t hears frames [S·t, S·t + S)
    layers: list[LayerTrace]  # torch's order (l0, l0_reverse, l1, …), each indexed by step
    log_probs: F64  # (T', C) log y_t: CTC's posteriors over blank and the alphabet
    greedy: I64  # (T',) the likeliest class per step
    emitted: I64  # (T',) the class the collapse writes at step t, −1 where it writes none (a blank, a repeat)
    text: str  # the greedy path collapsed
    beams: list[Beam]  # the prefix beam search's, best first
    lexicon_beams: list[Beam] | None  # the lexicon-constrained search's, best first (None: the card has no lexicon)
    target: str  # the transcript L is measured against
    target_ids: list[int]
    target_source: TargetSource
    loss: float  # L = −log p(target | audio)
    trellis: Trellis
    grad_logits: F64  # (T', C) ∂L/∂logits_t
    grad_input: F64  # (T',) ‖∂L/∂x_t‖, x_t the step's stacked frames as W_ih reads them
    checkpoint: str | None = None

    @property
    def steps(self) -> int:
        return len(self.greedy)

    @property
    def decoder(self) -> Literal["lexicon", "greedy"]:
        """Which text is served: the lexicon search's best, or the greedy text when there is no lexicon or no text
        it allows fits the steps."""
        return "lexicon" if self.lexicon_beams else "greedy"

    @property
    def transcript(self) -> str:
        """The transcript served: the lexicon search's best text, else the greedy text."""
        return self.lexicon_beams[0].text if self.lexicon_beams else self.text


def collapse(path: Sequence[int]) -> tuple[list[int], I64]:
    """CTC's rule on a path of classes: repeats merged, then blanks dropped. Returns the text's classes and, per
    step, the class written there (−1: none)."""
    emitted = np.full(len(path), -1, dtype=np.int64)
    for t, c in enumerate(path):
        if c != BLANK_ID and (t == 0 or c != path[t - 1]):
            emitted[t] = c
    return [int(c) for c in emitted if c >= 0], emitted


def steps_needed(labels: Sequence[int]) -> int:
    """The fewest steps that can spell `labels`: one per character, one more per doubled letter (a blank between)."""
    return len(labels) + sum(1 for a, b in pairwise(labels) if a == b)


def extended(labels: Sequence[int]) -> tuple[I64, NDArray[np.bool_]]:
    """l' (S,) and, per position, whether a path may skip the blank before it (from s − 2)."""
    ext = np.zeros(2 * len(labels) + 1, dtype=np.int64)
    ext[1::2] = labels
    skip = np.zeros(len(ext), dtype=bool)
    skip[2:] = (ext[2:] != BLANK_ID) & (ext[2:] != ext[:-2])
    return ext, skip


def _logsumexp3(a: F64, b: F64, c: F64) -> F64:
    out: F64 = np.logaddexp(np.logaddexp(a, b), c)
    return out


def _later(a: F64, k: int) -> F64:
    """a moved k positions on (out[s] = a[s − k]), −∞ where there is nothing before."""
    out = np.full(len(a), NEG_INF)
    if k < len(a):
        out[k:] = a[: len(a) - k]
    return out


def _earlier(a: F64, k: int) -> F64:
    """a moved k positions back (out[s] = a[s + k]), −∞ past the end."""
    out = np.full(len(a), NEG_INF)
    if k < len(a):
        out[: len(a) - k] = a[k:]
    return out


def trellis(log_probs: F64, labels: Sequence[int]) -> Trellis:
    """The forward–backward trellis and the Viterbi alignment of `labels` over log_probs (T', C); Unalignable if
    no path can spell them."""
    T = log_probs.shape[0]
    if steps_needed(labels) > T:
        raise Unalignable(steps_needed(labels), T)
    ext, skip = extended(labels)
    S = len(ext)
    y = log_probs[:, ext]  # (T', S) log y_t(l'_s)
    alpha = np.full((T, S), NEG_INF)
    best = np.full((T, S), NEG_INF)  # Viterbi's δ
    back = np.zeros((T, S), dtype=np.int64)  # δ's predecessor: s, s − 1 or s − 2
    alpha[0, : min(2, S)] = y[0, : min(2, S)]
    best[0] = alpha[0]
    stay = np.arange(S)
    for t in range(1, T):
        a, d = alpha[t - 1], best[t - 1]
        a1, a2 = _later(a, 1), np.where(skip, _later(a, 2), NEG_INF)  # from s − 1; from s − 2 where allowed
        alpha[t] = y[t] + _logsumexp3(a, a1, a2)
        d1, d2 = _later(d, 1), np.where(skip, _later(d, 2), NEG_INF)
        choice = np.argmax(np.stack([d, d1, d2]), axis=0)  # (S,) 0: stay, 1: from s − 1, 2: from s − 2
        best[t] = y[t] + np.choose(choice, [d, d1, d2])
        back[t] = stay - choice
    beta = np.full((T, S), NEG_INF)
    beta[T - 1, max(0, S - 2) :] = 0.0
    skip_next = np.zeros(S, dtype=bool)  # may s + 2 be reached from s
    skip_next[: max(0, S - 2)] = skip[2:]
    for t in range(T - 2, -1, -1):
        nb = y[t + 1] + beta[t + 1]  # (S,) entering s' at t + 1
        n1, n2 = _earlier(nb, 1), np.where(skip_next, _earlier(nb, 2), NEG_INF)
        beta[t] = _logsumexp3(nb, n1, n2)
    log_prob = float(np.logaddexp.reduce(alpha[T - 1, max(0, S - 2) :]))
    end = S - 1 if S == 1 or best[T - 1, S - 1] >= best[T - 1, S - 2] else S - 2
    alignment = np.empty(T, dtype=np.int64)
    alignment[T - 1] = end
    for t in range(T - 1, 0, -1):
        alignment[t - 1] = back[t, alignment[t]]
    return Trellis([int(c) for c in ext], alpha, beta, log_prob, alignment, float(best[T - 1, end]))


def occupancy_by_position(tr: Trellis) -> F64:
    """(T', S): the posterior probability that the target's paths are at position s of l' at step t (each row sums
    to 1): the trellis as the page draws it."""
    post: F64 = np.exp(tr.log_alpha + tr.log_beta - tr.log_prob)
    return post


def occupancy(tr: Trellis, classes: int) -> F64:
    """γ (T', C): the posterior probability that step t emits class k, summed over the trellis' positions."""
    post = occupancy_by_position(tr)  # (T', S)
    gamma = np.zeros((post.shape[0], classes))
    np.add.at(gamma.T, np.asarray(tr.labels), post.T)  # gamma[:, l'_s] += post[:, s]
    return gamma


def _logaddexp(a: float, b: float) -> float:
    """log(e^a + e^b) on Python floats: the beam search's inner loop, where numpy's ufunc on scalars costs 10×."""
    if a < b:
        a, b = b, a
    return a if b == NEG_INF else a + math.log1p(math.exp(b - a))


def beam_search(log_probs: F64, width: int = BEAM_WIDTH) -> list[tuple[list[int], float]]:
    """CTC prefix beam search: at each step, every kept prefix is extended by each class, the probability of
    ending in blank (p_b) and in its last character (p_nb) kept apart so that "a", "a" merges into one "a" but
    "a", blank, "a" writes two. Returns the `width` best prefixes and their log-probabilities, best first; with a
    width that keeps every prefix, each is exactly log p(prefix | x)."""
    C = log_probs.shape[1]
    lae = _logaddexp
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
    for row in log_probs.tolist():  # Python floats: scalar arithmetic on numpy values is several times slower
        nxt: dict[tuple[int, ...], list[float]] = {}  # prefix → [log p_b, log p_nb] after this step
        for prefix, (pb, pnb) in beams.items():
            total = lae(pb, pnb)
            here = nxt.setdefault(prefix, [NEG_INF, NEG_INF])
            here[0] = lae(here[0], total + row[BLANK_ID])  # a blank: the prefix, now ending in blank
            last = prefix[-1] if prefix else None
            for c in range(1, C):
                longer = nxt.setdefault((*prefix, c), [NEG_INF, NEG_INF])
                if c == last:
                    longer[1] = lae(longer[1], pb + row[c])  # a doubled letter needs the blank between
                    here[1] = lae(here[1], pnb + row[c])  # the same letter again: merged
                else:
                    longer[1] = lae(longer[1], total + row[c])
        scored = [(lae(v[0], v[1]), p, v) for p, v in nxt.items()]
        # best first; a prefix no path reaches (a doubled letter straight after itself) is dropped, not kept at −∞
        ranked = heapq.nlargest(width, (s for s in scored if s[0] > NEG_INF), key=lambda s: s[0])
        beams = {p: (v[0], v[1]) for _, p, v in ranked}
    out = [(list(p), lae(pb, pnb)) for p, (pb, pnb) in beams.items()]
    return sorted(out, key=lambda b: -b[1])


def trace(
    loaded: LoadedModel,
    wav: bytes,
    *,
    transcript: str | None = None,
    beam_width: int = BEAM_WIDTH,
    checkpoint: str | None = None,
    max_seconds: float = MAX_SECONDS,
) -> SpeechTrace:
    """Trace a speech model of the zoo on a WAV file's bytes (BadAudio naming what is wrong with them), scoring
    `transcript` (a character outside the alphabet: UnknownTokens by position) or else its own greedy text."""
    speech_card(loaded.card)  # WrongModelKind, saying what it does, before the audio is read
    audio = read_wav(wav, max_seconds)
    return trace_audio(loaded, audio, transcript=transcript, beam_width=beam_width, checkpoint=checkpoint)


def transcript_ids(loaded: LoadedModel, transcript: str) -> list[int]:
    """A transcript's classes (a character outside the alphabet: UnknownTokens naming it and its position)."""
    return speech_card(loaded.card).alphabet_vocab().encode(transcript, what="transcript").ids


def trace_audio(
    loaded: LoadedModel,
    audio: Audio,
    *,
    transcript: str | None = None,
    beam_width: int = BEAM_WIDTH,
    checkpoint: str | None = None,
) -> SpeechTrace:
    """`trace` on a WAV already read (the web reads it first: what it costs depends on how long it is)."""
    block = speech_card(loaded.card)
    frames = features(audio)
    target = None if transcript is None else transcript_ids(loaded, transcript)
    model = loaded.at(checkpoint)
    if not isinstance(model, SpeechModel):  # pragma: no cover - a speech card's weights are a SpeechModel
        raise WrongModelKind(f"{loaded.card.id} holds no SpeechModel")
    result = trace_frames(model, frames, target, block.alphabet, beam_width, block.lexicon)
    result.checkpoint = checkpoint
    return result


@torch.no_grad()
def trace_frames(
    model: SpeechModel,
    frames: Tensor,
    target: Sequence[int] | None,
    alphabet: str,
    beam_width: int = BEAM_WIDTH,
    lexicon: Lexicon | None = None,
) -> SpeechTrace:
    """The engine itself, on log-mel frames (T, bands) and the target's classes (None: the greedy text's)."""
    cfg = model.config
    if not 1 <= beam_width <= MAX_BEAM_WIDTH:
        raise OverLimit("beam", beam_width, MAX_BEAM_WIDTH, "beam_width")

    def spell(ids: Sequence[int]) -> str:
        return "".join(alphabet[c - 1] for c in ids)

    # 1–2. Steps, then every layer and direction's forward.
    x = model.steps(frames.float())  # (T', bands·S)
    if x.shape[0] == 0:
        raise EmptyInput(
            f"the audio gives {frames.shape[0]} frame(s); one step of this model hears {cfg.stack} frames, 10 ms "
            "apart. Record longer."
        )
    forwards, top = stack_forward(model, x, cfg.num_layers, cfg.directions)  # top: (T', D·H)

    # 3. The head and CTC's posteriors.
    logits = top @ model.head.weight.T + model.head.bias  # (T', C)
    log_probs = torch.log_softmax(logits.double(), dim=-1).numpy()  # (T', C) float64

    # 4. Decoding.
    greedy = log_probs.argmax(axis=1).astype(np.int64)  # (T',)
    text_ids, emitted = collapse(greedy.tolist())
    beams = [Beam(ids, spell(ids), lp) for ids, lp in beam_search(log_probs, beam_width)]
    lexicon_beams = None
    if lexicon is not None:
        found = lexicon_beam_search(log_probs, lexicon.automaton(alphabet), beam_width)
        lexicon_beams = [Beam(ids, spell(ids), lp) for ids, lp in found]

    # 5–6. The loss, its trellis, ∂L/∂logits and BPTT.
    source: TargetSource = "greedy" if target is None else "given"
    labels = text_ids if target is None else list(target)
    tr = trellis(log_probs, labels)
    grad_logits = np.exp(log_probs) - occupancy(tr, cfg.classes)  # (T', C)
    ext = grad_logits @ model.head.weight.double().numpy()  # (T', D·H) ∂L/∂h_t of the top layer, from the head
    layers, d_x = stack_backward(model, forwards, ext, cfg.num_layers, cfg.directions)
    grad_input = np.empty(len(d_x))
    kernels.row_norms(d_x, grad_input)

    return SpeechTrace(
        cell=cfg.cell,
        frames=frames.float().numpy(),
        stack=cfg.stack,
        layers=layers,
        log_probs=log_probs,
        greedy=greedy,
        emitted=emitted,
        text=spell(text_ids),
        beams=beams,
        lexicon_beams=lexicon_beams,
        target=spell(labels),
        target_ids=labels,
        target_source=source,
        loss=-tr.log_prob,
        trellis=tr,
        grad_logits=grad_logits,
        grad_input=grad_input,
    )


__all__ = [
    "Beam", "SpeechTrace", "Trellis", "Unalignable", "beam_search", "collapse", "occupancy_by_position", "trace",
    "trace_audio", "trace_frames", "transcript_ids", "trellis",
]  # fmt: skip
