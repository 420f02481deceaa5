"""The shapes task's pieces (app/training/tasks/shapes.py): its batches, its BLEU and which grid cells a box covers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from app.engine.caption.model import BOS_ID, EOS_ID
from app.training.tasks.shapes import bleu4, box_share, in_box, scene_batch, words_vocab
from app.training.tasks.shapes_data import Shape, pixels, scenes


def test_a_batch_is_the_scenes_pixels_with_their_captions_teacher_forced() -> None:
    vocab = words_vocab()
    batch_scenes = scenes(seed=2, n=6)
    b = scene_batch(vocab, batch_scenes)
    assert b.decoder_ids is not None
    assert torch.equal(b.ids, torch.from_numpy(np.stack([pixels(s) for s in batch_scenes])))
    for row, scene in enumerate(batch_scenes):
        ids = [*vocab.encode(scene.caption).ids, EOS_ID]
        n = len(ids)
        assert b.targets[row, :n].tolist() == ids and (b.targets[row, n:] == -100).all()
        assert b.decoder_ids[row, :n].tolist() == [BOS_ID, *ids[:-1]]


def test_bleu4_is_papinenis_clipped_precisions_and_brevity_penalty() -> None:
    assert bleu4(["a b c d e"], [("a b c d e",)]) == pytest.approx(1.0)
    assert bleu4(["x y z w"], [("a b c d e", "x y z w")]) == pytest.approx(1.0)  # any reference will do
    assert bleu4(["a b c d"], [("d c b a",)]) == 0.0  # no 2-gram in common
    # one word wrong at the end: precisions 4/5, 3/4, 2/3, 1/2; the same length, so no penalty
    assert bleu4(["a b c d e"], [("a b c d f",)]) == pytest.approx((0.8 * 0.75 * (2 / 3) * 0.5) ** 0.25)
    # every n-gram right but shorter than the reference: the brevity penalty alone
    short = bleu4(["a b c d"], [("a b c d e f",)])
    assert short == pytest.approx(math.exp(1 - 6 / 4))


def test_a_box_covers_the_grid_cells_its_pixels_fall_in() -> None:
    inside = Shape("square", "small", "red", 8, 8, 8)  # pixels 8–15: exactly cell (1, 1)
    across = Shape("circle", "small", "red", 10, 60 - 10, 0)  # x 50–59, y 0–9: cells (0, 6), (0, 7), (1, 6), (1, 7)
    boxes = in_box((inside, across), grid=8)
    assert np.flatnonzero(boxes[0]).tolist() == [9]
    assert np.flatnonzero(boxes[1]).tolist() == [6, 7, 14, 15]


def test_a_box_holds_the_share_of_each_cells_pixels_inside_it() -> None:
    inside = Shape("square", "small", "red", 8, 8, 8)  # exactly cell (1, 1)
    across = Shape("circle", "small", "red", 10, 60 - 10, 0)  # x 50–55 | 56–59 (6 | 4 px), y 0–7 | 8–9 (8 | 2 px)
    share = box_share((inside, across), grid=8)
    assert np.flatnonzero(share[0]).tolist() == [9] and share[0, 9] == 1.0
    assert {j: share[1, j] * 64 for j in np.flatnonzero(share[1])} == {6: 6 * 8, 7: 4 * 8, 14: 6 * 2, 15: 4 * 2}
    assert share[1].sum() * 64 == 10 * 10  # the cells' shares add up to the box's area
