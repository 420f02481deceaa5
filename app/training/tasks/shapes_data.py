"""Scenes of two shapes, drawn with Pillow at training time: the caption family's data (issue 26).

The rules (other programs draw scenes by them too):
- 64 × 64 pixels, RGB, a white background, two filled shapes that do not overlap and are not identical (they
  differ in shape, size word or colour).
- Shapes: `circle` (diameter s), `square` (side s, upright), `triangle` (pointing up, base and height s). Sizes:
  `small` (s from 10 to 14 px), `big` (19 to 24 px). Colours: `red` (220, 40, 40), `green` (40, 160, 60), `blue`
  (40, 80, 220), `yellow` (230, 190, 20).
- The caption is `a {size} {colour} {shape} {relation} a {size} {colour} {shape}`: the relation says where the
  first shape is against the second, from their centres, along whichever axis the centres differ more (`left of`,
  `right of`, `above`, `below`; the y axis points down, as the picture's rows do).

What this module adds to the rules, and why:
- A shape of side s occupies the box [x, x + s) × [y, y + s) (x, y its top-left pixel); its centre is
  (x + s/2, y + s/2). The circle is Pillow's ellipse in that box, the square the box, the triangle the polygon
  (x, y + s − 1), (x + s − 1, y + s − 1), (x + (s − 1)/2, y). Filled without anti-aliasing: every pixel is white
  or exactly one of the two colours (a model that reads colour reads these values).
- The boxes keep GAP pixels apart and stay MARGIN pixels inside the picture, so the shapes never touch.
- The two axes' differences between the centres differ by at least CLEAR px: a scene whose relation a person
  would hesitate over (a diagonal) is not drawn, so the caption's relation is never a coin toss.
- Which shape the caption names first: the small one; of two of the same size word, the one whose colour comes
  first in COLOURS, then whose shape comes first in SHAPES. A scene has two true captions ("a small red circle
  left of a big blue square" is "a big blue square right of a small red circle"); training on both would make
  the first word a coin toss, so the targets are one (`caption`) and evaluation also reports matches of either
  (`captions`).
- Held out entirely: the colour–shape combinations of HELDOUT (each colour and each shape is still seen, with
  the other colours and shapes). A training scene never shows one; the "combinations" evaluation set shows one
  or two in every scene. Whether a model names a red triangle, never having seen one, is the lesson: captioning
  that generalises, or only memorises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

IMAGE_SIZE = 64
WHITE = (255, 255, 255)
SHAPES = ("circle", "square", "triangle")
SIZES: dict[str, tuple[int, int]] = {"small": (10, 14), "big": (19, 24)}  # s, inclusive
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 190, 20),
}
RELATIONS = ("left of", "right of", "above", "below")
INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
HELDOUT: tuple[tuple[str, str], ...] = (("red", "triangle"), ("green", "circle"), ("blue", "square"))
GAP = 2  # pixels between the two boxes, at least
MARGIN = 1  # pixels between a box and the picture's edge, at least
CLEAR = 4  # px: | |dx| − |dy| | of the centres is at least this (no diagonal scene)
WORDS = ("a", *SIZES, *COLOURS, *SHAPES, "left", "right", "of", "above", "below")  # every word a caption uses
# The training batches are drawn from the run's seed; the evaluation sets from these, fixed:
EVAL_SEEDS = {"scenes": 20_261_207, "combinations": 20_261_208}
Split = Literal["train", "combinations"]


@dataclass(frozen=True)
class Shape:
    shape: str
    size: str  # "small" or "big"
    colour: str
    s: int  # px: the diameter, side, or base and height
    x: int  # the box's top-left pixel
    y: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), x1 and y1 exclusive."""
        return self.x, self.y, self.x + self.s, self.y + self.s

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.s / 2, self.y + self.s / 2

    @property
    def words(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"

    @property
    def combination(self) -> tuple[str, str]:
        return self.colour, self.shape

    def order(self) -> tuple[int, int, int]:
        """The caption names the smaller-ranked shape first: small before big, then COLOURS', then SHAPES' order."""
        return list(SIZES).index(self.size), list(COLOURS).index(self.colour), SHAPES.index(self.shape)


@dataclass(frozen=True)
class Scene:
    first: Shape  # the one the caption names first
    second: Shape

    @property
    def relation(self) -> str:
        return relation(self.first, self.second)

    @property
    def caption(self) -> str:
        return f"a {self.first.words} {self.relation} a {self.second.words}"

    @property
    def captions(self) -> tuple[str, str]:
        """Both true captions: the one trained on, and the other shape named first."""
        return self.caption, f"a {self.second.words} {INVERSE[self.relation]} a {self.first.words}"

    @property
    def shapes(self) -> tuple[Shape, Shape]:
        return self.first, self.second

    def heldout(self) -> bool:
        """Shows a held-out colour–shape combination."""
        return any(s.combination in HELDOUT for s in self.shapes)


def relation(a: Shape, b: Shape) -> str:
    """Where a is against b, from their centres, along the axis where they differ more (y points down)."""
    (ax, ay), (bx, by) = a.centre, b.centre
    dx, dy = ax - bx, ay - by
    if abs(dx) > abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def identical(a: Shape, b: Shape) -> bool:
    return (a.shape, a.size, a.colour) == (b.shape, b.size, b.colour)


def apart(a: Shape, b: Shape, gap: int = GAP) -> bool:
    """The two boxes are at least `gap` pixels apart along x or along y."""
    ax0, ay0, ax1, ay1 = a.box
    bx0, by0, bx1, by1 = b.box
    return ax1 + gap <= bx0 or bx1 + gap <= ax0 or ay1 + gap <= by0 or by1 + gap <= ay0


def clear(a: Shape, b: Shape) -> bool:
    (ax, ay), (bx, by) = a.centre, b.centre
    return abs(abs(ax - bx) - abs(ay - by)) >= CLEAR


def scene_of(a: Shape, b: Shape) -> Scene:
    """The scene of two shapes, in the caption's order."""
    return Scene(a, b) if a.order() <= b.order() else Scene(b, a)


def _kind(rng: np.random.Generator, split: Split) -> tuple[str, str, str]:
    """(shape, size, colour): any combination but the held-out ones (train), or only those (combinations)."""
    while True:
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
        if ((colour, shape) in HELDOUT) == (split == "combinations"):
            return shape, list(SIZES)[int(rng.integers(len(SIZES)))], colour


def _place(rng: np.random.Generator, kind: tuple[str, str, str]) -> Shape:
    shape, size, colour = kind
    lo, hi = SIZES[size]
    s = int(rng.integers(lo, hi + 1))
    top = IMAGE_SIZE - MARGIN - s  # the last top-left pixel that keeps the box MARGIN inside
    return Shape(shape, size, colour, s, int(rng.integers(MARGIN, top + 1)), int(rng.integers(MARGIN, top + 1)))


def random_scene(rng: np.random.Generator, split: Split = "train") -> Scene:
    """A scene by the rules, drawn with `rng`. "train": no held-out combination; "combinations": the first kind
    drawn is a held-out combination, the other any (held out or not) other than it."""
    while True:
        kind_a = _kind(rng, split)
        kind_b = _kind(rng, "train" if split == "combinations" and rng.random() < 0.75 else split)
        if kind_a == kind_b:
            continue
        for _ in range(50):  # positions for these two kinds: almost always found in a few tries
            a, b = _place(rng, kind_a), _place(rng, kind_b)
            if apart(a, b) and clear(a, b):
                return scene_of(a, b)


def scenes(seed: int, n: int, split: Split = "train") -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [random_scene(rng, split) for _ in range(n)]


def eval_sets(n: int) -> dict[str, list[Scene]]:
    """The fixed evaluation sets, the same in every run: "scenes" (drawn as training draws them, from their own
    seed: scenes never trained on, of combinations trained on) and "combinations" (each shows a held-out one)."""
    return {"scenes": scenes(EVAL_SEEDS["scenes"], n), "combinations": scenes(EVAL_SEEDS["combinations"], n,
                                                                             "combinations")}  # fmt: skip


def draw_shape(draw: ImageDraw.ImageDraw, shape: Shape) -> None:
    x0, y0, x1, y1 = shape.box
    fill = COLOURS[shape.colour]
    if shape.shape == "circle":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=fill)
    elif shape.shape == "square":
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=fill)
    else:
        draw.polygon([(x0, y1 - 1), (x1 - 1, y1 - 1), (x0 + (shape.s - 1) / 2, y0)], fill=fill)


def draw(scene: Scene | tuple[Shape, ...]) -> Image.Image:
    """The scene as a 64 × 64 RGB picture, white behind, no anti-aliasing."""
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), WHITE)
    pen = ImageDraw.Draw(image)
    for shape in scene.shapes if isinstance(scene, Scene) else scene:
        draw_shape(pen, shape)
    return image


def pixels(scene: Scene) -> NDArray[np.uint8]:
    """(64, 64, 3) uint8: the drawn scene's pixels."""
    return np.array(draw(scene), dtype=np.uint8)  # a writable copy (torch.from_numpy warns on a read-only view)


def batch_pixels(batch: list[Scene]) -> NDArray[np.uint8]:
    """(B, 64, 64, 3) uint8."""
    return np.stack([pixels(s) for s in batch])


__all__ = [
    "COLOURS", "HELDOUT", "IMAGE_SIZE", "RELATIONS", "SHAPES", "SIZES", "WORDS", "Scene", "Shape", "draw", "eval_sets",
    "pixels", "random_scene", "relation", "scene_of", "scenes",
]  # fmt: skip
