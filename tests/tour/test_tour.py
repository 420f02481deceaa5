"""Talk mode's tour files: the loader (valid, invalid and skipped with a log, re-read when edited), the scenes'
models checked against the zoo, and the /tour and /tours pages over HTTP."""

from __future__ import annotations

import html
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.tour.tours import (
    BUILTIN_TOURS,
    DEFAULT_TOUR,
    PAGE_ONLY_PANELS,
    VIEW_PANELS,
    Scene,
    TourError,
    current_tours,
    load_tour,
    load_tours,
    scene_models,
)
from app.web.app import create_app
from app.web.config import ROOT, Settings
from app.zoo.zoo import Zoo

SMALL: dict[str, Any] = {
    "title": "A small talk",
    "scenes": [
        {"title": "Unrolled", "caption": "Look.", "view": "unrolled", "model": "chars-lstm", "input": "hi"},
        {"title": "Three cells", "view": "compare", "task": "test-chars", "input": "abc", "phase": "backward"},
        {"title": "Writing", "view": "generate", "model": "chars-rnn", "input": "the ", "length": 20, "seed": 1},
        {"title": "Sure or not", "view": "certainty", "models": ["chars-lstm"], "input": ["abc", "cba"]},
    ],
}


def write(folder: Path, name: str, content: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def zoo(models_dir: Path) -> Zoo:
    return Zoo.load(models_dir)


def test_the_builtin_tour_is_a_valid_tour_file() -> None:
    tour = load_tour(BUILTIN_TOURS / f"{DEFAULT_TOUR}.json")
    assert len(tour.scenes) >= 7
    views = [s.view for s in tour.scenes]
    for view in ("sequences", "certainty", "bptt", "compare", "generate", "model"):
        assert view in views
    assert all(s.caption for s in tour.scenes), "every built-in scene says what to look at"
    # the memory example of the zoo's cards: 100 digits between the symbol and '?'
    vanishing = next(s for s in tour.scenes if s.view == "model" and s.model == "memory-rnn")
    assert isinstance(vanishing.input, str) and sum(c.isdigit() for c in vanishing.input) == 100


def test_the_talk_guides_example_is_a_valid_tour_file(tmp_path: Path) -> None:
    section = (ROOT / "docs" / "talk.md").read_text(encoding="utf-8")
    example = section.split("```json", 1)[1].split("```", 1)[0]
    tour = load_tour(write(tmp_path, "readme", example))
    assert {s.view for s in tour.scenes} >= {"model", "compare", "generate"}
    for field in ("view", "model", "input", "step", "phase", "caption", "title", "panels"):
        assert f"`{field}`" in section, f"docs/talk.md's table does not explain {field}"


def test_a_valid_file_loads_with_its_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "small", SMALL)
    tour = load_tour(path)
    assert [s.view for s in tour.scenes] == ["model", "compare", "generate", "certainty"]  # "unrolled" is "model"
    first = tour.scenes[0]
    assert first.step == 1 and first.phase == "forward" and not first.play
    assert first.shown_panels() == ["unrolled", "predictions", "gradients"]
    assert tour.scenes[1].shown_panels() == ["norms", "cells"]
    assert tour.scenes[3].input == ["abc", "cba"]


@pytest.mark.parametrize(
    ("scene", "says"),
    [
        ({"title": "x", "view": "slides", "model": "m"}, "view"),
        ({"title": "x", "view": "model"}, "needs a model"),
        ({"title": "x", "model": "m", "colour": "red"}, "colour"),
        ({"title": "x", "model": "m", "step": 0}, "0 is not a step"),
        ({"title": "x", "model": "m", "input": ["a", "b"]}, "only in a certainty scene"),
        ({"title": "x", "view": "compare"}, "task or models"),
        ({"title": "x", "model": "m", "panels": ["cells"]}, "cannot show"),
        ({"title": "x", "model": "m", "panels": ["series"]}, "needs series"),
        ({"title": "", "model": "m"}, "title"),
        ({"title": "x", "view": "generate", "model": "m", "temperature": 9}, "temperature"),
        ({"title": "x", "view": "translate"}, "needs a model"),
        ({"title": "x", "view": "translate", "model": "m", "models": ["a", "b"]}, "at most one more"),
        ({"title": "x", "view": "translate", "model": "m", "beam": 9}, "beam"),
        ({"title": "x", "model": "m", "beam": 3}, "beam is for translate scenes"),
        ({"title": "x", "view": "translate", "model": "m", "panels": ["states"]}, "cannot show"),
        ({"title": "x", "model": "m", "panels": ["attention"]}, "cannot show"),
        ({"title": "x", "view": "knobs"}, "a knobs scene needs knobs"),
        ({"title": "x", "view": "knobs", "model": "m", "knobs": [{}]}, "runs no model of the zoo"),
        ({"title": "x", "view": "train", "input": "abc"}, "reads no input"),
        ({"title": "x", "model": "m", "knobs": [{}]}, "knobs are for knobs scenes"),
        ({"title": "x", "model": "m", "training": {}}, "training is for train scenes"),
        ({"title": "x", "view": "knobs", "knobs": [{"radius": 0}]}, "knobs.0.radius"),
        ({"title": "x", "view": "knobs", "knobs": [{"nonlinearity": "sigmoid"}]}, "knobs.0.nonlinearity"),
        ({"title": "x", "view": "train", "training": {"cells": ["rnn", "rnn"]}}, "names a cell twice"),
        ({"title": "x", "view": "train", "training": {"seconds": 0}}, "training.seconds"),
        ({"title": "x", "view": "train", "panels": ["knobs"]}, "a train scene cannot show ['knobs']"),
    ],
)
def test_an_invalid_scene_is_refused_with_where_and_why(tmp_path: Path, scene: dict[str, Any], says: str) -> None:
    path = write(tmp_path, "bad", {"title": "t", "scenes": [scene]})
    with pytest.raises(TourError) as e:
        load_tour(path)
    assert "scenes.0" in str(e.value) and says in str(e.value)


def test_broken_files_are_logged_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path, "good", SMALL)
    write(tmp_path, "not-json", '{"title": "t", "scenes": [')
    write(tmp_path, "no-scenes", {"title": "t", "scenes": []})
    write(tmp_path, "Bad Name", SMALL)
    (tmp_path / "notes.txt").write_text("not a tour", encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="unrolled.tour"):
        tours = load_tours([tmp_path])
    assert list(tours.tours) == ["good"]
    skipped = tours.skipped  # by file name: a page that lists them never shows the server's paths
    assert set(skipped) == {"not-json.json", "no-scenes.json", "Bad Name.json"}
    assert not any(str(tmp_path) in why for why in skipped.values())
    assert "not JSON" in skipped["not-json.json"] and "line 1" in skipped["not-json.json"]
    assert "scenes" in skipped["no-scenes.json"]
    assert "not a tour name" in skipped["Bad Name.json"]
    logged = [r.getMessage() for r in caplog.records]
    assert sum("skipped" in m for m in logged) == 3, logged


def test_a_presenters_tour_replaces_a_builtin_one_of_the_same_name(tmp_path: Path) -> None:
    write(tmp_path, DEFAULT_TOUR, SMALL)
    tours = load_tours([BUILTIN_TOURS, tmp_path])
    chosen = tours.default()
    assert chosen is not None and chosen.tour.title == "A small talk"


def test_an_edited_file_is_read_again(tmp_path: Path) -> None:
    path = write(tmp_path, "live", SMALL)
    assert current_tours(tmp_path).tours["live"].tour.title == "A small talk"
    assert current_tours(tmp_path) is current_tours(tmp_path), "unchanged files are not read again"
    write(tmp_path, "live", {**SMALL, "title": "An edited talk"})
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    assert current_tours(tmp_path).tours["live"].tour.title == "An edited talk"
    assert DEFAULT_TOUR in current_tours(tmp_path).tours, "the built-in tour is always there"


def test_scene_models_are_checked_against_the_zoo(zoo: Zoo) -> None:
    def problems(**scene: Any) -> list[str]:
        return scene_models(Scene.model_validate({"title": "x", **scene}), zoo)[1]

    assert problems(model="chars-lstm") == []
    unknown = problems(model="no-such-model")
    assert len(unknown) == 1 and "'no-such-model' does not exist" in unknown[0] and "chars-lstm" in unknown[0]
    assert "classifier" in problems(view="generate", model="words-lstm")[0]
    assert "no checkpoint '7'" in problems(model="chars-lstm", checkpoint="7")[0]
    assert "no label 'maybe'" in problems(model="words-lstm", label="maybe")[0]
    assert "task 'nope'" in problems(view="compare", task="nope")[0]
    assert "one cell only" in problems(view="compare", task="test-sentiment")[0]
    ids, none = scene_models(Scene.model_validate({"title": "x", "view": "compare", "task": "test-chars"}), zoo)
    assert ids == ["chars-rnn", "chars-lstm", "chars-gru"] and none == []


def test_translate_scenes_take_translation_models_and_their_attention_peer(zoo: Zoo) -> None:
    def resolved(**scene: Any) -> tuple[list[str], list[str]]:
        return scene_models(Scene.model_validate({"title": "x", **scene}), zoo)

    scene = Scene.model_validate({"title": "x", "view": "translate", "model": "numbers-gru-attention", "input": "one"})
    assert scene.shown_panels() == ["unrolled", "attention", "beams"] and scene.beam == 1
    assert resolved(view="translate", model="numbers-gru-attention", models=["numbers-gru"], beam=3) == (
        ["numbers-gru-attention", "numbers-gru"],
        [],
    )
    assert "needs a translation model" in resolved(view="translate", model="chars-lstm")[1][0]
    # the second model switches attention: two models with attention are not a with/without pair
    pair = resolved(view="translate", model="numbers-gru-attention", models=["numbers-lstm-attention"])[1]
    assert len(pair) == 1 and "attention switched" in pair[0]
    # a translation model in any other view would break its page: said, not shown
    for view in ("model", "bptt", "learning"):
        assert "show it in a translate scene" in resolved(view=view, model="numbers-gru")[1][0]
    assert "translates" in resolved(view="generate", model="numbers-gru")[1][0]
    assert "translates" in resolved(view="compare", task="test-numbers")[1][0]
    assert "show it in a translate scene" in resolved(view="compare", models=["chars-lstm", "numbers-gru"])[1][0]


def test_the_builtin_translation_scene_switches_attention_on_the_zoos_models() -> None:
    tour = load_tour(BUILTIN_TOURS / f"{DEFAULT_TOUR}.json")
    scene = next(s for s in tour.scenes if s.view == "translate")
    assert scene.title == "Applications: translation"
    titles = [s.title for s in tour.scenes]
    assert titles.index(scene.title) == titles.index("Applications: reading a review") + 1  # beside the others
    assert scene_models(scene, Zoo.load(ROOT / "models")) == (["numbers-gru-attention", "numbers-gru"], [])


def test_the_builtin_tour_ends_with_five_memory_cells_on_one_input() -> None:
    """The scene "RNNs are back": the zoo's five memory models on the gates scene's own input, one log plot; the
    gates scene keeps its three cells (the task has five now)."""
    tour = load_tour(BUILTIN_TOURS / f"{DEFAULT_TOUR}.json")
    zoo = Zoo.load(ROOT / "models")
    back = next(s for s in tour.scenes if s.title.startswith("RNNs are back"))
    gates = next(s for s in tour.scenes if s.title == "LSTM and GRU: gates keep the gradient")
    cells = ["memory-rnn", "memory-lstm", "memory-gru"]
    assert scene_models(gates, zoo) == (cells, [])
    assert scene_models(back, zoo) == ([*cells, "memory-mingru", "memory-s6"], [])
    assert back.view == "compare" and back.shown_panels() == ["norms"] and back.input == gates.input


@pytest.fixture(scope="module")
def tour_client(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("tours")
    scenes = [
        *SMALL["scenes"],
        {"title": "Missing", "model": "no-such-model", "input": "x"},
        {"title": "Quotes", "caption": 'It\'s "quoted" </script><script>alert(1)</script>', "model": "chars-lstm"},
        {"title": "Translating", "view": "translate", "model": "numbers-gru-attention", "models": ["numbers-gru"],
         "input": "twenty-one", "beam": 2},
    ]  # fmt: skip
    write(folder, "mine", {**SMALL, "scenes": scenes})
    write(folder, "broken", "{")
    settings = Settings(models_dir=models_dir, tour_dir=folder, max_steps=3000, max_generate=2000)
    with TestClient(create_app(settings)) as c:
        yield c


def tour_data(body: str) -> dict[str, Any]:
    match = re.search(r"data-tour='([^']*)'", body)
    assert match, "the page carries its tour in data-tour"
    data: dict[str, Any] = json.loads(html.unescape(match.group(1)))
    return data


def test_the_tour_page_carries_its_scenes_and_their_problems(tour_client: TestClient) -> None:
    r = tour_client.get("/tour?name=mine&scene=5")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "<script>" not in r.text and "https://" not in r.text
    data = tour_data(r.text)
    assert data["name"] == "mine" and len(data["scenes"]) == 7
    first, compare, _, certainty, missing, quotes, translating = data["scenes"]
    assert first["view"] == "model" and first["models"] == ["chars-lstm"] and first["inputs"] == ["hi"]
    assert compare["models"] == ["chars-rnn", "chars-lstm", "chars-gru"] and compare["panels"] == ["norms", "cells"]
    assert certainty["inputs"] == ["abc", "cba"]
    assert missing["problems"] and "does not exist" in missing["problems"][0]
    assert quotes["caption"].startswith('It\'s "quoted" </script>')
    assert translating["view"] == "translate" and translating["models"] == ["numbers-gru-attention", "numbers-gru"]
    assert translating["beam"] == 2 and translating["panels"] == ["unrolled", "attention", "beams"]
    assert translating["problems"] == []
    # the requested scene is rendered by the server too, its problem in place of the views
    assert 'id="scene-title">Missing<' in r.text and "no-such-model" in r.text.split('id="scene-problems"')[1]


def test_tour_urls(tour_client: TestClient) -> None:
    r = tour_client.get("/tour")
    assert r.status_code == 200 and tour_data(r.text)["name"] == DEFAULT_TOUR
    assert tour_client.get("/tour?name=mine&scene=99").text.count('aria-current="step"') == 1
    assert 'id="scene-number">7 / 7<' in tour_client.get("/tour?name=mine&scene=99").text
    assert 'id="scene-number">1 / 7<' in tour_client.get("/tour?name=mine&scene=x").text
    # digits that are not ASCII, and a number too long for int(): scene 1, not a 500
    for odd in ("²", "٣", "1" * 4301):
        r = tour_client.get("/tour", params={"name": "mine", "scene": odd})
        assert r.status_code == 200 and 'id="scene-number">1 / 7<' in r.text, odd
    missing = tour_client.get("/tour?name=nope")
    assert missing.status_code == 404 and "mine" in missing.text and DEFAULT_TOUR in missing.text


# a count in words, as a description would write it (one … twenty-five)
NUMBER_WORDS = [
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen",
    "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
    *(f"twenty-{n}" for n in ("one", "two", "three", "four", "five")),
]  # fmt: skip


def test_the_talks_page_counts_each_tours_scenes_and_no_description_counts_them_stale(
    tour_client: TestClient,
) -> None:
    """The number of scenes is the page's, from the scenes (7 in "mine", the built-in tour's own); a description that
    counts them (the built-in one said "eleven live scenes" at fourteen) must say the count the tour has."""
    r = tour_client.get("/tours")
    counts = dict(
        re.findall(r'data-tour-name="([^"]+)".*?<span class="scene-count">(\d+) scenes?</span>', r.text, re.S)
    )
    builtin = load_tour(BUILTIN_TOURS / f"{DEFAULT_TOUR}.json")
    assert counts["mine"] == "7" and counts[DEFAULT_TOUR] == str(len(builtin.scenes)), counts
    for path in sorted(BUILTIN_TOURS.glob("*.json")):
        tour = load_tour(path)
        for said in re.findall(r"\b([\w-]+)(?: live)? scenes\b", tour.description.lower()):
            n = int(said) if said.isdigit() else NUMBER_WORDS.index(said) + 1 if said in NUMBER_WORDS else None
            assert n in (None, len(tour.scenes)), f"{path.name} says {said} scenes; it has {len(tour.scenes)}"


def test_the_list_of_tours_shows_the_skipped_files(tour_client: TestClient) -> None:
    r = tour_client.get("/tours")
    assert r.status_code == 200
    assert 'data-tour-name="mine"' in r.text and f'data-tour-name="{DEFAULT_TOUR}"' in r.text
    assert "broken.json" in r.text and "not JSON" in r.text
    assert "does not exist" in r.text  # the scene that names an unknown model
    assert "/tmp" not in r.text and str(ROOT) not in r.text  # base names only; the paths are in the log


def test_the_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("UNROLLED_TOUR_DIR", str(tmp_path))
    assert Settings().tour_dir == tmp_path
    monkeypatch.delenv("UNROLLED_TOUR_DIR")
    assert Settings().tour_dir is None
    assert BUILTIN_TOURS == ROOT / "tours"


def test_melody_and_series_scenes_take_models_of_their_kind() -> None:
    zoo = Zoo.load(ROOT / "models")

    def resolved(**scene: Any) -> tuple[list[str], list[str]]:
        return scene_models(Scene.model_validate({"title": "x", **scene}), zoo)

    assert Scene.model_validate({"title": "x", "view": "melody", "model": "melody-lstm"}).shown_panels() == [
        "roll",
        "unrolled",
        "predictions",
    ]
    assert resolved(view="melody", model="melody-gru", panels=["roll", "states", "gates"]) == (["melody-gru"], [])
    assert resolved(view="series", model="sunspots-rnn", panels=["forecast", "mattered", "states"]) == (
        ["sunspots-rnn"],
        [],
    )
    assert "a melody scene needs a melody (note) model" in resolved(view="melody", model="charlm-lstm")[1][0]
    assert "a series scene needs a series model" in resolved(view="series", model="melody-lstm")[1][0]
    # a series model anywhere else would be sent text: said, not shown
    for view in ("model", "bptt", "learning"):
        assert "reads numbers: show it in a series scene" in resolved(view=view, model="sunspots-lstm")[1][0]
    # the sequences scene's guests: a roll needs a melody model in models, a forecast a series model
    guests = {"view": "sequences", "model": "charlm-lstm", "panels": ["unrolled", "roll", "forecast"]}
    assert resolved(**guests, models=["melody-rnn", "sunspots-gru"]) == (
        ["charlm-lstm", "melody-rnn", "sunspots-gru"],
        [],
    )
    wrong = resolved(**guests, models=["alphabet-lstm", "sunspots-gru"])[1]
    assert wrong == ["the roll panel needs a melody model (notes) in the scene's models; it names none"]


@pytest.mark.parametrize(
    ("scene", "says"),
    [
        ({"view": "melody", "model": "m", "panels": ["forecast"]}, "a melody scene cannot show ['forecast']"),
        ({"view": "series", "model": "m", "panels": ["roll"]}, "a series scene cannot show ['roll']"),
        ({"view": "model", "model": "m", "panels": ["roll"]}, "a model scene cannot show ['roll']"),
        ({"view": "sequences", "model": "m", "panels": ["roll"]}, "the roll panel runs a melody model: name it in"),
    ],
)
def test_melody_and_series_panels_fit_their_views(scene: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        Scene.model_validate({"title": "x", **scene})


def test_the_labs_scenes_run_no_model_and_take_their_defaults() -> None:
    """A knobs scene draws its curves, a train scene trains (the memory task, all three cells, unless it says):
    neither names a model of the zoo, so neither has a problem with it."""
    zoo = Zoo.load(ROOT / "models")
    knobs = Scene.model_validate({"title": "x", "view": "knobs", "knobs": [{"radius": 0.5}, {"cell": "lstm"}]})
    assert knobs.shown_panels() == ["knobs"] and knobs.knobs is not None
    assert [(k.cell, k.steps, k.radius, k.nonlinearity) for k in knobs.knobs] == [
        ("rnn", 200, 0.5, "tanh"),
        ("lstm", 200, 0.9, "tanh"),
    ]
    train = Scene.model_validate({"title": "x", "view": "train"})
    assert train.shown_panels() == ["training"] and train.training is not None
    assert (train.training.n, train.training.seconds, train.training.cells) == (20, 20.0, ["rnn", "lstm", "gru"])
    assert scene_models(knobs, zoo) == ([], []) and scene_models(train, zoo) == ([], [])


def test_every_panel_of_the_front_ends_registry_may_be_named_by_a_scene() -> None:
    """A panel is declared once, in static/js/panels.js; a tour file that names it must pass the tour's checks too,
    so a panel added there and forgotten here (as the loss panel first was) fails at once, not in a talk."""
    source = (ROOT / "static/js/panels.js").read_text()
    block = source[source.index("export const PANELS = {") :]
    block = block[: block.index("\n};")]
    keys = set(re.findall(r"^  (\w+): \{", block, re.M))
    assert {"unrolled", "gates", "loss"} <= keys, "the registry's keys were not found where this test reads them"
    accepted = set().union(*VIEW_PANELS.values())
    # A family's own panels stand in for the scene's keys (FAMILY_PANELS in panels.js): a scene names "unrolled",
    # "predictions" and "gradients", and an encoder–decoder fills them with encdec, topk and encdecGradients; a
    # compare scene's "norms" and "cells" are the compare page's (COMPARE_PANELS).
    families = source[source.index("const FAMILY_PANELS = {") :]
    stand_ins = set(re.findall(r': "(\w+)"', families[: families.index("\n};")])) | {"compareNorms", "compareCells"}
    assert {"encdec", "topk", "encdecGradients"} <= stand_ins, "FAMILY_PANELS was not found where this test reads it"
    assert keys - stand_ins - PAGE_ONLY_PANELS <= accepted, sorted(keys - stand_ins - PAGE_ONLY_PANELS - accepted)
    assert PAGE_ONLY_PANELS <= keys and not PAGE_ONLY_PANELS & accepted, "a page-only panel is gone or scenes take it"


def test_caption_scenes_take_caption_models_and_a_caption_model_no_other_scene(zoo: Zoo, tmp_path: Path) -> None:
    """The tour registry's caption rules: a caption scene of a caption model resolves (its default panels the
    picture's attention, BPTT into the regions and the words); a caption model in any other view would be sent text,
    and a model of another family in a caption scene would be sent a picture: each said, not shown."""
    for suffix in (".json", ".safetensors"):
        (tmp_path / f"shapes-gru{suffix}").write_bytes((ROOT / "models" / f"shapes-gru{suffix}").read_bytes())
    (tmp_path / "checkpoints").mkdir()
    for kept in (ROOT / "models" / "checkpoints").glob("shapes-gru-*.safetensors"):  # its card names them
        (tmp_path / "checkpoints" / kept.name).write_bytes(kept.read_bytes())
    shapes = Zoo.load(tmp_path)

    def resolved(in_zoo: Zoo, **scene: Any) -> tuple[list[str], list[str]]:
        return scene_models(Scene.model_validate({"title": "x", **scene}), in_zoo)

    scene = Scene.model_validate({"title": "x", "view": "caption", "model": "shapes-gru", "input": "a big red circle"})
    assert scene.shown_panels() == ["attention", "gradients", "text"]
    assert resolved(shapes, view="caption", model="shapes-gru", panels=["unrolled", "beams"]) == (["shapes-gru"], [])
    for view in ("model", "bptt", "translate", "transcribe"):
        assert "captions images: show it in a caption scene" in resolved(shapes, view=view, model="shapes-gru")[1][0]
    assert "a caption scene needs a caption model" in resolved(zoo, view="caption", model="chars-lstm")[1][0]
    with pytest.raises(ValidationError, match="a caption scene cannot show"):
        Scene.model_validate({"title": "x", "view": "caption", "model": "shapes-gru", "panels": ["sound"]})
