"""The captioning scenes (app/training/tasks/shapes_data.py) obey the issue's rules, read off the drawn pixels."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from app.training.tasks.shapes_data import (
    COLOURS,
    HELDOUT,
    IMAGE_SIZE,
    SHAPES,
    SIZES,
    WORDS,
    Scene,
    Shape,
    draw,
    eval_sets,
    pixels,
    relation,
    scene_of,
    scenes,
)

SCENES = scenes(seed=7, n=400)
COMBINATIONS = scenes(seed=8, n=200, split="combinations")


def mask(shape: Shape) -> NDArray[np.bool_]:
    """The pixels one shape alone paints."""
    painted: NDArray[np.bool_] = (np.asarray(draw((shape,))) != 255).any(axis=2)
    return painted


@pytest.mark.parametrize("scene", SCENES[:100] + COMBINATIONS[:50])
def test_two_filled_shapes_that_do_not_overlap_on_white(scene: Scene) -> None:
    image = pixels(scene)
    assert image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and image.dtype == np.uint8
    a, b = mask(scene.first), mask(scene.second)
    assert not (a & b).any()  # no pixel painted by both
    for shape, m in ((scene.first, a), (scene.second, b)):
        assert (image[m] == COLOURS[shape.colour]).all()  # filled in exactly its colour, no anti-aliasing
        ys, xs = np.nonzero(m)
        x0, y0, x1, y1 = shape.box
        assert x0 >= 1 and y0 >= 1 and x1 <= IMAGE_SIZE - 1 and y1 <= IMAGE_SIZE - 1
        assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1  # inside its box
        assert xs.max() - xs.min() + 1 == shape.s and ys.max() - ys.min() + 1 == shape.s  # s wide and s high
        lo, hi = SIZES[shape.size]
        assert lo <= shape.s <= hi
    assert (image[~(a | b)] == 255).all()  # the rest is white
    assert (scene.first.shape, scene.first.size, scene.first.colour) != (
        scene.second.shape, scene.second.size, scene.second.colour)  # fmt: skip


def test_the_colours_are_the_issues_pixel_values() -> None:
    assert COLOURS == {"red": (220, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 220), "yellow": (230, 190, 20)}
    seen = {tuple(int(v) for v in p) for s in SCENES[:60] for p in pixels(s).reshape(-1, 3)}
    assert seen == {(255, 255, 255), *COLOURS.values()}


def test_each_shape_is_drawn_as_its_name_says() -> None:
    """A square fills its box; a circle leaves its corners white and covers about π/4 of it; an upward triangle is
    one pixel wide at the top and s wide at the bottom, half its box."""
    for size, s in (("small", 12), ("big", 21)):
        for name in SHAPES:
            m = mask(Shape(name, size, "red", s, 10, 20))[20 : 20 + s, 10 : 10 + s]
            share = m.mean()
            if name == "square":
                assert m.all()
            elif name == "circle":
                assert not m[0, 0] and not m[-1, -1] and m[s // 2].all() and abs(share - np.pi / 4) < 0.08
            else:
                assert m[-1].all() and m[0].sum() <= 2 and abs(share - 0.5) < 0.1
                assert m[: s // 2].sum() < m[s // 2 :].sum()  # wider below: it points up


@pytest.mark.parametrize("scene", SCENES[:200])
def test_the_relation_is_read_from_the_centres_along_the_axis_they_differ_more(scene: Scene) -> None:
    a, b = mask(scene.first), mask(scene.second)
    # the centres of the painted pixels' extents (the boxes are the shapes' extents: tested above)
    ca = [(np.nonzero(a.any(axis=k))[0][[0, -1]].mean() + 0.5) for k in (0, 1)]  # x, y
    cb = [(np.nonzero(b.any(axis=k))[0][[0, -1]].mean() + 0.5) for k in (0, 1)]
    dx, dy = ca[0] - cb[0], ca[1] - cb[1]
    expected = ("left of" if dx < 0 else "right of") if abs(dx) > abs(dy) else ("above" if dy < 0 else "below")
    assert scene.relation == expected
    assert abs(abs(dx) - abs(dy)) >= 4  # never a diagonal the eye hesitates over


def test_the_caption_follows_the_grammar_and_its_other_reading_is_also_true() -> None:
    for scene in SCENES[:100]:
        words = scene.caption.split()
        rel = scene.relation.split()
        assert words == ["a", *scene.first.words.split(), *rel, "a", *scene.second.words.split()]
        assert set(words) <= set(WORDS)
        other = scene.captions[1]
        swapped = Scene(scene.second, scene.first)
        assert other == f"a {swapped.first.words} {relation(swapped.first, swapped.second)} a {swapped.second.words}"
    small = Shape("circle", "small", "red", 12, 5, 30)
    big = Shape("square", "big", "blue", 20, 40, 25)
    assert scene_of(big, small).caption == "a small red circle left of a big blue square"


def test_held_out_combinations_are_never_in_training_and_always_in_their_set() -> None:
    train = scenes(seed=0, n=3000)
    assert not any(s.combination in HELDOUT for scene in train for s in scene.shapes)
    assert all(scene.heldout() for scene in COMBINATIONS)
    seen = {s.combination for scene in train for s in scene.shapes}
    # every other colour–shape pair is trained on, and each colour and each shape is seen
    assert seen == {(c, s) for c in COLOURS for s in SHAPES} - set(HELDOUT)
    assert {c for c, _ in HELDOUT} < set(COLOURS) and {s for _, s in HELDOUT} == set(SHAPES)


def test_scenes_are_deterministic_from_their_seed_and_the_evaluation_sets_fixed() -> None:
    assert scenes(seed=3, n=20) == scenes(seed=3, n=20)
    assert scenes(seed=3, n=20) != scenes(seed=4, n=20)
    assert eval_sets(30) == eval_sets(30)
    assert np.array_equal(pixels(SCENES[5]), pixels(SCENES[5]))
    sets = eval_sets(200)
    assert not any(s.heldout() for s in sets["scenes"]) and all(s.heldout() for s in sets["combinations"])
