"""The lexicon-constrained decoding of the speech family (app/engine/speech/lexicon.py): its automaton spells
exactly the transcripts its lexicon allows, its beam search finds the likeliest of them (against every path of a
small case enumerated) and scores each text it returns exactly (against torch's CTC loss, pruned or not), and the
trace serves its best text; the per-clip variance normalisation of the steps."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from app.engine.card import card_text
from app.engine.errors import ModelFileError
from app.engine.family import card_from_json
from app.engine.speech.card import speech_card
from app.engine.speech.lexicon import Lexicon, lexicon_beam_search, log_likelihood
from app.engine.speech.model import STD_FLOOR, SpeechConfig, SpeechModel
from app.engine.speech.trace import collapse, trace_frames
from tests.engine.test_speech import card, frames

ALPHABET = "abd -"  # classes 1 … 5; 0 is the blank
SMALL = Lexicon.of(["ab", "ab-b", "da ab", "b da ab"])


def spell(ids: list[int] | tuple[int, ...]) -> str:
    return "".join(ALPHABET[c - 1] for c in ids)


def ctc(log_probs: torch.Tensor, labels: list[int]) -> float:
    """torch's −log p(labels | x) of one sequence."""
    T = log_probs.shape[0]
    return float(F.ctc_loss(log_probs[:, None], torch.tensor([labels]), torch.tensor([T]), torch.tensor([len(labels)]),
                            blank=0, reduction="sum"))  # fmt: skip


def random_log_probs(T: int, seed: int, C: int = 1 + len(ALPHABET)) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.log_softmax(torch.from_numpy(rng.normal(size=(T, C)) * 2.0), dim=-1)


def test_the_lexicon_is_read_off_its_transcripts_and_allows_only_their_word_pairs() -> None:
    assert SMALL.starts == ("ab", "b", "da") and SMALL.ends == ("ab", "b")
    assert SMALL.follows == {"ab": ("-b",), "b": (" da",), "da": (" ab",)}
    for text in ("ab", "ab-b", "da ab", "b da ab-b", "da ab-b da ab"):
        assert SMALL.accepts(text), text
    for text in ("", "da", "ab b", "ab-", "b-da", "abab", "ab  b", "c"):
        assert not SMALL.accepts(text), text


def test_the_automaton_accepts_exactly_the_texts_the_lexicon_allows() -> None:
    """Every string of up to 7 characters over the alphabet, walked through the automaton."""
    automaton = SMALL.automaton(ALPHABET)
    accepted = 0
    for n in range(8):
        for ids in itertools.product(range(1, 1 + len(ALPHABET)), repeat=n):
            state = automaton.walk(ids)
            ends = state is not None and automaton.accepting[state]
            assert ends == SMALL.accepts(spell(ids)), spell(ids)
            accepted += ends
    assert accepted == 6  # ab, b, ab-b, da ab, b da ab, da ab-b


def test_a_search_that_keeps_every_prefix_gives_every_allowed_text_with_its_exact_probability() -> None:
    """Every path of 5 steps over blank and 5 characters, enumerated: p(text | x) summed over the paths that collapse
    to it; the search returns exactly the allowed texts some path spells, best first, each at that probability."""
    log_probs = random_log_probs(5, seed=1).numpy()
    by_text: dict[tuple[int, ...], list[float]] = {}
    for path in itertools.product(range(1 + len(ALPHABET)), repeat=5):
        score = sum(log_probs[t, c] for t, c in enumerate(path))
        by_text.setdefault(tuple(collapse(path)[0]), []).append(score)
    allowed = {ids: float(np.logaddexp.reduce(s)) for ids, s in by_text.items() if SMALL.accepts(spell(ids))}
    found = lexicon_beam_search(log_probs, SMALL.automaton(ALPHABET), width=100_000)
    assert {tuple(ids) for ids, _ in found} == set(allowed) and len(allowed) == 4  # ab, b, ab-b, da ab
    for ids, lp in found:
        assert lp == pytest.approx(allowed[tuple(ids)], rel=1e-12)
    assert [lp for _, lp in found] == sorted((lp for _, lp in found), reverse=True)
    best = max(allowed.items(), key=lambda item: item[1])[0]
    assert found[0][0] == list(best)


@pytest.mark.parametrize("width", [1, 3, 8])
def test_a_pruned_searchs_texts_are_scored_exactly_as_torchs_ctc_loss(width: int) -> None:
    """Pruning may drop a prefix's alignments while it is out of the beam: the texts returned are scored again by
    the CTC forward over all their alignments, which is torch's loss."""
    log_probs = random_log_probs(40, seed=width)
    found = lexicon_beam_search(log_probs.numpy(), SMALL.automaton(ALPHABET), width)
    assert 1 <= len(found) <= width
    for ids, lp in found:
        assert SMALL.accepts(spell(ids))
        assert lp == pytest.approx(-ctc(log_probs, ids), rel=1e-10), spell(ids)
        assert log_likelihood(log_probs.numpy(), ids) == lp


def test_no_allowed_text_fits_too_few_steps() -> None:
    """ "b" needs one step; "ab" two: one step can only spell "b", none can spell nothing."""
    log_probs = random_log_probs(1, seed=0).numpy()
    assert [spell(ids) for ids, _ in lexicon_beam_search(log_probs, SMALL.automaton(ALPHABET), 8)] == ["b"]
    only_ab = Lexicon.of(["ab"])
    assert lexicon_beam_search(log_probs, only_ab.automaton(ALPHABET), 8) == []


def small_model(seed: int) -> SpeechModel:
    torch.manual_seed(seed)
    cfg = SpeechConfig("lstm", bands=6, stack=2, hidden_size=10, classes=1 + len(ALPHABET), num_layers=2)
    return SpeechModel(cfg).eval()


def test_the_trace_serves_the_lexicon_searchs_best_text_with_the_greedy_text_beside_it() -> None:
    model = small_model(seed=4)
    tr = trace_frames(model, frames(60, seed=5), None, ALPHABET, beam_width=6, lexicon=SMALL)
    assert tr.lexicon_beams and tr.decoder == "lexicon" and tr.transcript == tr.lexicon_beams[0].text
    assert SMALL.accepts(tr.transcript) and tr.text == spell(collapse(tr.greedy.tolist())[0])
    log_probs = torch.from_numpy(tr.log_probs)
    for beam in tr.lexicon_beams:  # the final beams: each the CTC log-sum over its alignments, torch's
        assert beam.text == spell(beam.ids) and beam.log_prob == pytest.approx(-ctc(log_probs, beam.ids), rel=1e-10)
    plain = trace_frames(model, frames(60, seed=5), None, ALPHABET, beam_width=6)
    assert plain.lexicon_beams is None and plain.decoder == "greedy" and plain.transcript == plain.text
    short = trace_frames(model, frames(2, seed=5), None, ALPHABET, lexicon=Lexicon.of(["ab"]))  # one step
    assert short.lexicon_beams == [] and short.decoder == "greedy" and short.transcript == short.text


def test_a_card_carries_its_lexicon_and_normalisation_and_refuses_a_lexicon_it_cannot_spell() -> None:
    numbers = Lexicon.of(["twenty-one", "one thousand and one", "twenty"])
    c = card(stack=4, scale=0.5, variance=True, lexicon=numbers)
    data = json.loads(card_text(c))
    assert data["speech"]["variance"] is True and data["speech"]["lexicon"]["follows"]["twenty"] == ["-one"]
    back = card_from_json(data)
    assert back == c and speech_card(back).lexicon == numbers
    old = {**data, "speech": {k: v for k, v in data["speech"].items() if k not in ("variance", "lexicon")}}
    assert speech_card(card_from_json(old)).lexicon is None and speech_card(card_from_json(old)).variance is False
    spelt_wrong = {**data["speech"]["lexicon"], "starts": ["twenty", "cent"]}  # "c" is not in the alphabet
    with pytest.raises(ModelFileError, match=r"lexicon writes \['c'\] outside the alphabet"):
        card_from_json({**data, "speech": {**data["speech"], "lexicon": spelt_wrong}})
    unknown = {**data["speech"]["lexicon"], "follows": {"twenty": ["-one"], "one": ["+two"]}}
    with pytest.raises(ModelFileError, match=r"'\+two' may follow 'one' but is no separator and word"):
        card_from_json({**data, "speech": {**data["speech"], "lexicon": unknown}})
    with pytest.raises(ModelFileError, match="speech lexicon"):
        card_from_json({**data, "speech": {**data["speech"], "lexicon": {"starts": ["one"]}}})


def test_with_variance_a_step_is_each_bands_clip_mean_removed_divided_by_its_deviation_floored() -> None:
    torch.manual_seed(0)
    cfg = SpeechConfig("gru", bands=6, stack=2, hidden_size=4, classes=3, num_layers=1, scale=0.5, variance=True)
    model = SpeechModel(cfg)
    f = frames(9, seed=2).numpy().astype(np.float64)
    f[:, 3] = -13.8 + 0.01 * np.arange(9)  # a band that hardly moves: divided by the floor, not blown up
    centred = f - f.mean(axis=0)  # the mean and deviation of all 9 frames, the one left over included
    normal = centred / np.maximum(centred.std(axis=0), STD_FLOOR)
    expected = [np.concatenate([normal[2 * t], normal[2 * t + 1]]) * 0.5 for t in range(4)]
    steps = model.steps(torch.from_numpy(f).float()).numpy()
    np.testing.assert_allclose(steps, np.stack(expected), atol=1e-5)
    assert np.abs(steps.reshape(4, 2, 6)[:, :, 3]).max() < 0.05
