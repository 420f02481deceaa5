"""Talk mode: a tour is a JSON file of scenes, each a live view of a model on an input with a caption.

The built-in tour lives in tours/ beside the app; a presenter adds their own by pointing UNROLLED_TOUR_DIR at a
folder of *.json files (a tour of theirs with a built-in tour's name replaces it). Files are read when a tour
page is asked for and again only when they change, so an edited file shows on the next reload. A file that
cannot be read or does not match the format is logged and skipped; a scene naming a model the zoo does not
hold is served with a problem that the page shows in place of the scene.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.engine.layers import CELLS
from app.tour.families import scene_rules
from app.zoo.zoo import UnknownModel, Zoo

log = logging.getLogger("unrolled.tour")

BUILTIN_TOURS = Path(__file__).resolve().parents[2] / "tours"  # the project's tours/ folder
DEFAULT_TOUR = "deep-learning-for-sequences"
MAX_FILE_BYTES = 1_000_000
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")

View = Literal[
    "model", "unrolled", "sequences", "certainty", "bptt", "compare", "generate", "learning", "translate",
    "melody", "series", "knobs", "train", "transcribe", "caption",
]  # fmt: skip
Panel = Literal[
    "unrolled",
    "text",
    "loss",
    "predictions",
    "states",
    "cell",
    "gates",
    "gradients",
    "norms",
    "weights",
    "pca",
    "series",
    "certainty",
    "checkpoints",
    "cells",
    "output",
    "attention",
    "beams",
    "roll",
    "forecast",
    "mattered",
    "knobs",
    "training",
    "sound",
    "posteriors",
    "diagram",
]

# What each view may show, and what it shows when a scene does not say. The special views are the model view
# with other panels: the page builds every view out of the same panels.
MODEL_PANELS: frozenset[str] = frozenset(
    {
        "unrolled",
        "text",
        "predictions",
        "states",
        "cell",
        "gates",
        "gradients",
        "loss",
        "norms",
        "weights",
        "pca",
        "series",
        "diagram",
    }
)
VIEW_PANELS: dict[str, frozenset[str]] = {
    "model": MODEL_PANELS,
    "sequences": MODEL_PANELS,
    "bptt": MODEL_PANELS,
    "certainty": MODEL_PANELS | {"certainty"},
    "learning": MODEL_PANELS | {"checkpoints"},
    "compare": frozenset({"norms", "cells", "gates", "diagram"}),
    "generate": frozenset({"output", "predictions", "unrolled", "states", "gradients"}),
    # an encoder–decoder: its two rows unrolled with the attention between them, the attention heatmap, the
    # beam's candidates, the decoder's top-k (predictions) and both BPTT sweeps on one axis (gradients)
    "translate": frozenset({"unrolled", "attention", "beams", "predictions", "gradients"}),
    # a melody model (notes): its piano roll, played on the scene's cursor (sound from the first key or click)
    "melody": frozenset({"roll", "unrolled", "predictions", "states", "cell", "gates", "gradients"}),
    # a series model (numbers): the series, its one-step predictions and forecast; ∂L/∂x_t (mattered)
    "series": frozenset({"forecast", "mattered", "unrolled", "states", "cell", "gates", "gradients"}),
    # a speech model listening to an example clip (its input: the clip's words): the sound on the cursor (L plays
    # it), the network over frames, CTC's posteriors with the alignment, the collapse (text), the beams, BPTT
    "transcribe": frozenset({"sound", "unrolled", "posteriors", "text", "beams", "gradients"}),
    # a caption model looking at a scene (its input: the scene's words, drawn by the training's rules): the picture
    # with the attention of the cursor's word (attention), the caption word by word (text), the decoder unrolled,
    # the beams, BPTT into the picture's regions (gradients)
    "caption": frozenset({"attention", "text", "unrolled", "beams", "gradients"}),
}
# The lab's scenes (/lab): the knobs of the vanishing gradient on a fresh network, and cells trained live. They run
# no model of the zoo.
# Panels of a page that no scene may name yet: a series classifier's frames and label probabilities (the digits
# page). A tour scene of a classifier over frames is not built; naming them would pass validation and draw nothing.
# S6's hidden attention (hiddenAttention) is drawn on an S6 model's page; scene 16 shows five cells, four without one.
PAGE_ONLY_PANELS = frozenset({"frames", "classprobs", "hiddenAttention"})
VIEW_PANELS["knobs"] = frozenset({"knobs"})
VIEW_PANELS["train"] = frozenset({"training"})
LAB_VIEWS = {"knobs", "train"}
# The sequences scene may also show a melody (roll) and a series (forecast) beside its model, each run on its own
# model named in `models` (its first example).
VIEW_PANELS["sequences"] = MODEL_PANELS | {"roll", "forecast"}
# The panel that needs a model of its own kind, in a scene whose main model is of another.
GUEST_PANELS = {"roll": "melody", "forecast": "series"}
DEFAULT_PANELS: dict[str, tuple[str, ...]] = {
    "model": ("unrolled", "predictions", "gradients"),
    "sequences": ("unrolled", "series"),
    "bptt": ("unrolled", "gradients", "weights"),
    "certainty": ("unrolled", "certainty"),
    "learning": ("checkpoints", "text", "gradients"),
    "compare": ("norms", "cells"),
    "generate": ("output", "predictions", "unrolled"),
    "translate": ("unrolled", "attention", "beams"),
    "melody": ("roll", "unrolled", "predictions"),
    "series": ("forecast", "unrolled", "mattered"),
    "transcribe": ("sound", "posteriors", "text"),
    "caption": ("attention", "gradients", "text"),
    "knobs": ("knobs",),
    "train": ("training",),
}
NEXT_TOKEN_ONLY = {"generate", "certainty"}


class TourError(Exception):
    """A tour file that cannot be used, and why."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Series(Strict):
    """A plotted sequence of numbers (a time series, the pitches of a melody) for the "series" panel."""

    name: str = Field(min_length=1, max_length=80)
    values: list[float] = Field(min_length=2, max_length=2000)
    kind: Literal["line", "notes"] = "line"
    labels: list[str] | None = Field(None, description="a label per value, e.g. note names")

    @model_validator(mode="after")
    def _labels_fit(self) -> Series:
        if self.labels is not None and len(self.labels) != len(self.values):
            raise ValueError(f"labels has {len(self.labels)} entries; values has {len(self.values)}")
        return self


LabCell = Literal["rnn", "lstm", "gru"]
LAB_CELLS: tuple[LabCell, ...] = ("rnn", "lstm", "gru")


class Knobs(Strict):
    """One curve of a knobs scene: the settings of POST /api/lab/gradients (its limits are the server's)."""

    cell: LabCell = "rnn"
    steps: int = Field(200, ge=2, le=100_000)
    hidden_size: int = Field(32, ge=1, le=100_000)
    radius: float = Field(0.9, gt=0, le=10)
    nonlinearity: Literal["tanh", "relu", "identity"] = "tanh"
    forget_bias: float = Field(0.0, ge=-50, le=50)
    seed: int = Field(0, ge=0, le=2**31 - 1)


class Training(Strict):
    """A train scene's run: the first frame of /api/lab/train (the memory task; its limits are the server's)."""

    n: int = Field(20, ge=1, le=100_000, description="the memory task's gap: digits between the letter and '?'")
    seconds: float = Field(20.0, gt=0, le=3600)
    steps: int | None = Field(None, ge=1, le=1_000_000, description="at most this many steps per cell")
    cells: list[LabCell] = Field(default_factory=lambda: list(LAB_CELLS), min_length=1, max_length=3)

    @model_validator(mode="after")
    def _no_repeats(self) -> Training:
        if len(set(self.cells)) != len(self.cells):
            raise ValueError(f"cells names a cell twice: {self.cells}")
        return self


class Question(Strict):
    """Predict, then reveal: asked of a room's students before the scene plays; its playing settles it."""

    text: str = Field(min_length=1, max_length=200)
    choices: list[str] = Field(min_length=2, max_length=6, description="the answers a student picks from")
    reveal: str = Field(min_length=1, max_length=600, description="what to look for once the scene plays")

    @model_validator(mode="after")
    def _choices_differ(self) -> Question:
        if any(not c or len(c) > 80 for c in self.choices):
            raise ValueError("a choice has 1 to 80 characters")
        if len({c.casefold() for c in self.choices}) != len(self.choices):
            raise ValueError(f"the choices repeat one: {self.choices}")
        return self


class Scene(Strict):
    """One idea: a view of a model (or several) on an input, a title and a caption of what to look at."""

    title: str = Field(min_length=1, max_length=120)
    caption: str = Field("", max_length=1200)
    view: View = "model"
    model: str | None = Field(None, max_length=100)
    models: list[str] | None = Field(None, min_length=1, max_length=6)
    task: str | None = Field(None, max_length=100, description="compare: the task whose cells are compared")
    input: str | list[str] | None = Field(None, description="the text, prompt, or (certainty) a list of inputs")
    label: str | None = Field(None, max_length=64, description="the target for the scene's own input only")
    loss: Literal["sum", "last"] | None = None
    checkpoint: str | None = Field(None, max_length=32)
    step: int = Field(1, description="the cursor's step, from 1; negative counts from the end (-1: the last)")
    phase: Literal["forward", "backward"] = "forward"
    play: bool = False
    sweeps: Literal["both", "forward"] = Field(
        "both",
        description="what play runs: both sweeps, or the forward sweep only, stopping at its end (a scene shown "
        "before BPTT is taught; a classifier that ends on its verdict)",
    )
    speed: float | None = Field(None, gt=0, le=480, description="steps per second; default: a sweep in ~10 s")
    panels: list[Panel] | None = Field(None, min_length=1, max_length=8)
    series: list[Series] = Field(default_factory=list, max_length=4)
    length: int = Field(100, ge=1, le=2000, description="generate: tokens to write")
    temperature: float = Field(0.8, ge=0, le=2)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    beam: int = Field(1, ge=1, le=8, description="translate: the beam width (1: greedy decoding)")
    knobs: list[Knobs] | None = Field(
        None, min_length=1, max_length=6, description="knobs: the curves; the first is live ([ and ] turn its radius)"
    )
    training: Training | None = Field(None, description="train: the live run (it starts with the scene if play)")
    question: Question | None = Field(None, description="a room's students answer it before the scene plays")

    @model_validator(mode="after")
    def _fits_its_view(self) -> Scene:
        if self.view == "unrolled":
            self.view = "model"
        view = self.view
        if self.step == 0:
            raise ValueError("step counts from 1 (or from the end with -1, -2, …); 0 is not a step")
        if view == "compare":
            if not (self.task or self.models or self.model):
                raise ValueError("a compare scene needs a task or models")
        elif view == "certainty":
            if not (self.models or self.model):
                raise ValueError("a certainty scene needs models (or a model)")
        elif view in LAB_VIEWS:
            if self.model or self.models or self.input is not None:
                raise ValueError(f"a {view} scene runs no model of the zoo and reads no input")
            if view == "knobs" and not self.knobs:
                raise ValueError("a knobs scene needs knobs: the settings of its curves")
            if view == "train" and self.training is None:
                self.training = Training()
        elif not self.model:
            raise ValueError(f"a {view} scene needs a model")
        if view != "knobs" and self.knobs is not None:
            raise ValueError(f"knobs are for knobs scenes; a {view} scene does not turn them")
        if view != "train" and self.training is not None:
            raise ValueError(f"training is for train scenes; a {view} scene does not train")
        if view == "translate" and self.models is not None and len(self.models) > 1:
            raise ValueError("a translate scene takes a model and at most one more (its task, attention switched)")
        if view != "translate" and self.beam != 1:
            raise ValueError(f"beam is for translate scenes; a {view} scene does not decode")
        if isinstance(self.input, list):
            if view != "certainty":
                raise ValueError(f"input is a list only in a certainty scene; a {view} scene takes one text")
            if not 1 <= len(self.input) <= 4:
                raise ValueError("a certainty scene takes 1 to 4 inputs")
        texts = self.input if isinstance(self.input, list) else [self.input or ""]
        if any(len(t) > 5000 for t in texts):
            raise ValueError("an input is longer than 5000 characters")
        if isinstance(self.input, list) and not all(t.strip() for t in self.input):
            raise ValueError("an input of a certainty scene is empty")
        wrong = [p for p in self.panels or [] if p not in VIEW_PANELS[view]]
        if wrong:
            raise ValueError(f"a {view} scene cannot show {wrong}; it can show {sorted(VIEW_PANELS[view])}")
        guests = [p for p in self.shown_panels() if p in GUEST_PANELS and view != GUEST_PANELS[p]]
        if guests and not self.models:
            raise ValueError(f"the {guests[0]} panel runs a {GUEST_PANELS[guests[0]]} model: name it in models")
        if "series" in self.shown_panels() and not self.series:
            raise ValueError('the "series" panel needs series to plot')
        return self

    def shown_panels(self) -> list[str]:
        return list(self.panels or DEFAULT_PANELS[self.view])

    def named_models(self) -> list[str]:
        """The models the scene names itself (a compare scene may name a task instead)."""
        return [*([self.model] if self.model else []), *(self.models or [])]


class Tour(Strict):
    title: str = Field(min_length=1, max_length=120)
    description: str = Field("", max_length=2000)
    scenes: list[Scene] = Field(min_length=1, max_length=100)


@dataclass(frozen=True)
class LoadedTour:
    name: str
    path: Path
    tour: Tour


@dataclass
class Tours:
    tours: dict[str, LoadedTour] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # file name → why it was not loaded (paths: the log)

    def default(self) -> LoadedTour | None:
        if DEFAULT_TOUR in self.tours:
            return self.tours[DEFAULT_TOUR]
        return next(iter(self.tours.values()), None)


def describe(error: ValidationError) -> str:
    """pydantic's errors in one line: where in the file, and what is wrong."""
    parts = []
    for e in error.errors()[:6]:
        where = ".".join(str(x) for x in e["loc"]) or "the file"
        parts.append(f"{where}: {e['msg']}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def load_tour(path: Path) -> Tour:
    """Read and validate one tour file."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise TourError(f"{size} bytes; a tour file may have at most {MAX_FILE_BYTES}")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise TourError(f"cannot be read: {e}") from e
    except json.JSONDecodeError as e:
        raise TourError(f"is not JSON: {e.msg} at line {e.lineno}, column {e.colno}") from e
    try:
        return Tour.model_validate(data)
    except ValidationError as e:
        raise TourError(describe(e)) from e


def tour_files(folders: Sequence[Path]) -> list[Path]:
    out: list[Path] = []
    for folder in folders:
        try:
            out.extend(sorted(p for p in folder.glob("*.json") if p.is_file()))
        except OSError as e:
            log.error("tour folder %s cannot be read: %s", folder, e)
    return out


def load_tours(folders: Sequence[Path]) -> Tours:
    """Every *.json of the folders, in order (a later folder's tour replaces an earlier one of the same name)."""
    result = Tours()
    for path in tour_files(folders):
        name = path.stem
        if not NAME_RE.fullmatch(name):
            result.skipped[path.name] = f"the file name {name!r} is not a tour name (a-z, 0-9, - and _)"
            log.error("tour %s skipped: %s", path, result.skipped[path.name])
            continue
        try:
            tour = load_tour(path)
        except TourError as e:
            result.skipped[path.name] = str(e).replace(str(path), path.name)
            log.error("tour %s skipped: %s", path, e)
            continue
        if name in result.tours:
            log.info("tour %s: %s replaces %s", name, path, result.tours[name].path)
        result.tours[name] = LoadedTour(name, path, tour)
    log.info("loaded %d tours (%d skipped)", len(result.tours), len(result.skipped))
    return result


def folders(tour_dir: Path | None) -> tuple[Path, ...]:
    return (BUILTIN_TOURS,) if tour_dir is None else (BUILTIN_TOURS, tour_dir)


_cache: dict[tuple[Path, ...], tuple[tuple[tuple[str, int, int], ...], Tours]] = {}
_lock = threading.Lock()


def _signature(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for p in paths:
        try:
            st = p.stat()
            out.append((str(p), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(p), -1, -1))
    return tuple(out)


def current_tours(tour_dir: Path | None) -> Tours:
    """The tours as the files are now: read again only when a file appeared, went or changed."""
    key = folders(tour_dir)
    signature = _signature(tour_files(key))
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1]
        tours = load_tours(key)
        _cache[key] = (signature, tours)
        return tours


def scene_models(scene: Scene, zoo: Zoo) -> tuple[list[str], list[str]]:
    """The models a scene runs on, as the zoo holds them, and what stands in the way (empty: nothing)."""
    problems: list[str] = []
    ids = scene.named_models()
    if scene.view == "compare" and not scene.models and scene.task:
        in_task = [m for m in zoo if m.card.task == scene.task and scene_rules(m).in_compare_scene(m)]
        if not in_task and any(m.card.task == scene.task for m in zoo):
            problems.append(f"the task {scene.task!r} translates: its models are shown in a translate scene")
        elif not in_task:
            tasks = sorted({m.card.task for m in zoo})
            problems.append(f"no model of the zoo has the task {scene.task!r}; the tasks are: {', '.join(tasks)}")
        order = {cell: n for n, cell in enumerate(CELLS)}
        seen: dict[str, str] = {}
        for m in sorted(in_task, key=lambda m: (order.get(m.card.cell, 9), m.card.id)):
            seen.setdefault(m.card.cell, m.card.id)
        ids = list(seen.values())
        if len(ids) == 1:
            problems.append(f"the task {scene.task!r} has one cell only ({ids[0]}): there is nothing to compare")
    guests = {GUEST_PANELS[p] for p in scene.shown_panels() if p in GUEST_PANELS and scene.view != GUEST_PANELS[p]}
    found: set[str] = set()
    for model_id in ids:
        try:
            m = zoo.get(model_id)
        except UnknownModel as e:
            problems.append(str(e))
            continue
        rules = scene_rules(m)
        shape = rules.shape(m)
        guest = model_id != scene.model and shape in guests
        if guest:
            found.add(shape)
        if scene.view in ("melody", "series") and model_id == scene.model and shape != scene.view:
            what = {"melody": "a melody (note) model", "series": "a series model (numbers in)"}[scene.view]
            problems.append(
                f"{model_id} is a {m.card.kind} model of {m.vocab.level}s: a {scene.view} scene needs {what}"
            )
        elif (problem := rules.problem(m, scene.view, scene.view in NEXT_TOKEN_ONLY, guest)) is not None:
            problems.append(problem)
        if scene.checkpoint and scene.checkpoint not in {c.name for c in m.card.checkpoints}:
            known = ", ".join(c.name for c in m.card.checkpoints) or "none"
            problems.append(f"{model_id} has no checkpoint {scene.checkpoint!r}; its checkpoints: {known}")
        labels = rules.labels(m)
        if scene.label and labels is not None and scene.label not in labels:
            problems.append(f"{model_id} has no label {scene.label!r}; its labels: {', '.join(labels)}")
    for missing in sorted(guests - found):
        panel = next(p for p, s in GUEST_PANELS.items() if s == missing)
        what = "a melody model (notes)" if missing == "melody" else "a series model (numbers)"
        problems.append(f"the {panel} panel needs {what} in the scene's models; it names none")
    if scene.view == "translate" and len(ids) == 2 and not problems:
        first, second = (zoo.get(i) for i in ids)
        a, b = first.card, second.card
        if scene_rules(first).attention(first) == scene_rules(second).attention(second) or a.task != b.task:
            problems.append(
                f"a translate scene's second model is its first with attention switched: {a.id} and {b.id} are not "
                "(the same task, one with attention and one without)"
            )
    return ids, problems
