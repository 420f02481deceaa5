"""The speech family's training data (app/training/tasks/speech_data.py): drawn the same from the same seed,
held-out voices and numbers kept out of training, transcripts that are num2words' text, and espeak-ng's clips
cached so that a second run does not synthesise again."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from app.engine.speech.audio import N_MELS, SAMPLE_RATE
from app.training.tasks import numbers
from app.training.tasks import speech_data as sd


def num2words(n: int) -> str:
    return numbers.translator()(n, "en")


@pytest.fixture(scope="module")
def sets() -> sd.SpeechSets:
    return sd.speech_sets(seed=7, n_train=300, n_eval=60)


def test_the_same_seed_draws_the_same_utterances_and_another_seed_others(sets: sd.SpeechSets) -> None:
    again = sd.speech_sets(seed=7, n_train=300, n_eval=60)
    other = sd.speech_sets(seed=8, n_train=300, n_eval=60)
    assert again.train == sets.train and again.dev == sets.dev
    assert other.train != sets.train
    assert other.voices == sets.voices and other.phrases == sets.phrases  # the held-out sets do not move


def test_held_out_combinations_are_never_trained_on(sets: sd.SpeechSets) -> None:
    held = sd.heldout_combos()
    assert held == sets.heldout_combos and len(held) == round(sd.HELDOUT_COMBOS * len(sd.combos()))
    assert not {u.combo for u in sets.train + sets.dev + sets.phrases} & held
    assert {u.combo for u in sets.voices} <= held


def test_held_out_numbers_are_never_trained_on(sets: sd.SpeechSets) -> None:
    held = sd.heldout_numbers()
    assert held == set(numbers.number_sets()["uniform"]) | set(numbers.number_sets()["round"])
    assert not {u.number for u in sets.train + sets.dev + sets.voices} & held
    assert {u.number for u in sets.phrases} <= held
    assert set(numbers.AUDIENCE) <= {u.number for u in sets.train}


def test_every_transcript_is_the_numbers_words_without_commas(sets: sd.SpeechSets) -> None:
    for u in sets.train + sets.voices + sets.phrases:
        assert u.text == num2words(u.number).replace(",", "")
        assert set(u.text) <= set(sd.ALPHABET)
        assert sd.decode(sd.encode(u.text)) == u.text and 0 not in sd.encode(u.text)  # 0 is the blank


def test_the_alphabet_is_every_character_num2words_writes() -> None:
    spread = [*range(0, 1000), *range(1000, 1_000_000, 997), 999_999]
    assert set(sd.ALPHABET) == {c for n in spread for c in sd.transcript(num2words(n))}


def test_the_draws_cover_espeaks_english_voices_and_variants(sets: sd.SpeechSets) -> None:
    assert "gmw/en" in sd.voices() and "gmw/en-US" in sd.voices()
    assert not [v for v in sd.voices() if v.startswith("mb/")]  # MBROLA voices need the mbrola program
    assert len(sd.variants()) > 50
    assert all(sd.SPEED[0] <= u.speed <= sd.SPEED[1] and sd.PITCH[0] <= u.pitch <= sd.PITCH[1] for u in sets.train)
    assert len({u.voice for u in sets.train}) == len(sd.voices())


def test_a_clip_is_the_same_every_time_and_faster_speech_is_shorter() -> None:
    u = sd.Utterance(321, "three hundred and twenty-one", "gmw/en-US", "f3", 175, 50)
    first, second = sd.clip(u), sd.clip(u)
    np.testing.assert_array_equal(first, second)
    fast = sd.clip(replace(u, speed=210))
    assert 0.8 < len(first) / SAMPLE_RATE < 3.0 and len(fast) < len(first)


def test_a_second_synthesis_reads_the_cache_without_espeak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = sd.speech_sets(seed=1, n_train=12, n_eval=1).train[8:12]
    made = sd.synthesise(batch, tmp_path)
    assert len(list((tmp_path / "speech").glob("clips-*.npz"))) == 1
    monkeypatch.setenv("PATH", "")  # no espeak-ng: only the cache can answer
    with pytest.raises(sd.SynthesisUnavailable):
        sd.synthesise(batch[:3], tmp_path)
    for cached, fresh in zip(sd.synthesise(batch, tmp_path), made, strict=True):
        np.testing.assert_array_equal(cached, fresh)


def test_level_and_noise_are_heard_as_they_should_be() -> None:
    u = sd.Utterance(7, "seven", "gmw/en", "m3", 175, 50)
    samples = sd.clip(u)
    rng = np.random.default_rng(0)
    loud, quiet = sd.hear(samples, rng), sd.hear(samples, rng, gain_db=-20.0)
    assert loud.shape[1] == N_MELS
    speech = loud > loud.max() - 5  # bands well above the log floor
    shift = (loud - quiet)[speech]
    torch.testing.assert_close(shift, torch.full_like(shift, 2 * np.log(10.0)), atol=1e-3, rtol=0)  # −20 dB power
    noisy = sd.hear(samples, np.random.default_rng(1), snr_db=0.0)
    assert float(noisy[~speech].mean()) > float(loud[~speech].mean()) + 3  # noise fills the quiet bands
    same = sd.augmented(samples, np.random.default_rng(5)), sd.augmented(samples, np.random.default_rng(5))
    torch.testing.assert_close(*same, rtol=0, atol=0)


def test_a_clean_clip_heard_from_its_kept_power_is_the_front_ends_frames() -> None:
    """augmented() with the clip's clean_power skips the STFT for a clean clip; what it gives is what hearing the
    samples gives (up to float rounding), with the same draws taken, for clean and noisy clips alike."""
    samples = sd.clip(sd.Utterance(45, "forty-five", "gmw/en-GB-x-rp", "m2", 160, 40))
    power = sd.clean_power(samples)
    kinds = set()
    for seed in range(12):
        a, b, c = (np.random.default_rng(seed) for _ in range(3))
        kept, heard = sd.augmented(samples, a, power), sd.augmented(samples, b)
        torch.testing.assert_close(kept, heard, atol=2e-4, rtol=0)
        assert a.random() == b.random()  # the same draws were taken
        c.uniform()  # the gain
        kinds.add(c.random() < sd.NOISY_SHARE)
    assert kinds == {True, False}


def test_word_errors_count_substitutions_insertions_and_deletions() -> None:
    assert sd.word_errors("one hundred and two", "one hundred and two") == 0
    assert sd.word_errors("one hundred and two", "one hundred and three") == 1
    assert sd.word_errors("one hundred and two", "one hundred two") == 1
    assert sd.word_errors("twenty-one", "twenty one") == 2  # a hyphenated compound is one word
    assert sd.word_error_rate(["one two", "three"], ["one", "three"]) == pytest.approx(1 / 3)
