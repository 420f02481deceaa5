"""Talk mode in a real browser: the built-in tour walked scene by scene with a clicker's keys on the real zoo, and
a tour file of the test's own (served through UNROLLED_TOUR_DIR) walked, edited, restored and captioned."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from app.config import ROOT, Settings
from app.tour import BUILTIN_TOURS, DEFAULT_TOUR, load_tour, scene_models
from app.zoo import Zoo
from tests.browser.conftest import Recorder, screenshot
from tests.conftest import LiveServer

ZOO = ROOT / "models"

# What each panel of the scene on screen holds: plots with their points, unrolled cells, bars, written tokens.
REPORT = """() => [...document.querySelectorAll('#stage .tour-panel')].map((p) => ({
  panel: p.dataset.panel,
  plots: [...p.querySelectorAll('.js-plotly-plot')].map((gd) => (gd.data ?? []).reduce((n, d) => {
    const ys = d.z ?? d.y ?? [];
    return n + ys.flat().filter((v) => v !== null && v !== undefined && Number.isFinite(Number(v))).length;
  }, 0)),
  cells: p.querySelectorAll('svg.unrolled-svg .step').length,
  read: p.querySelectorAll('svg.unrolled-svg .step:not(.ghost)').length,
  bars: p.querySelectorAll('.bar:not([hidden])').length,
  written: p.querySelectorAll('.gen-output span').length,
  tokens: p.querySelectorAll('.textview .tk').length,
  canvases: p.querySelectorAll('canvas').length,
  rows: p.querySelectorAll('.ratio-table tbody tr').length,
}))"""

# A panel has data when: its plots have points, its unrolled network has cells it has read, and so on.
NEEDS: dict[str, list[str]] = {
    "unrolled": ["cells", "read"],
    "cells": ["cells", "read"],
    "output": ["written"],
    "text": ["tokens"],
    "predictions": ["bars"],
    "cell": ["canvases"],
    "norms": ["plots", "rows"],
}
HAS_DATA = f"""(needs) => {{
  const report = ({REPORT})();
  const full = (v) => (Array.isArray(v) ? v.length > 0 && v.every((x) => x > 0) : v > 0);
  return report.length > 0 && report.every((r) => (needs[r.panel] ?? ["plots"]).every((k) => full(r[k])));
}}"""


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def wait_scene(page: Page, n: int) -> None:
    page.wait_for_function(f"() => window.__unrolled?.tour?.scene === {n} && window.__unrolled.tour.ready")


def visit_everything(page: Page) -> None:
    """Plots off screen are drawn when scrolled to: visit the whole scene, then come back to its top."""
    height = page.evaluate("() => document.body.scrollHeight")
    for y in range(0, height, 500):
        page.evaluate(f"() => window.scrollTo(0, {y})")
        page.wait_for_timeout(60)
    page.evaluate("() => window.scrollTo(0, 0)")


def check_scene(page: Page, scene: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """The scene on screen is scene n: its title, its caption, and every panel with data."""
    assert page.inner_text("#scene-title") == scene["title"]
    count = page.evaluate("() => JSON.parse(document.body.dataset.tour).scenes.length")
    assert page.inner_text("#scene-number") == f"{n} / {count}"
    if scene.get("caption"):
        assert page.locator("#scene-caption").is_visible()
        assert page.inner_text("#scene-caption") == scene["caption"]
    assert page.locator("#scene-problems").is_hidden(), page.inner_text("#scene-problems")
    visit_everything(page)  # the views draw their plots once their traces are in and they are on screen
    try:
        page.wait_for_function(HAS_DATA, arg=NEEDS, timeout=10_000)
    except PlaywrightTimeout:
        pytest.fail(f"scene {n} ({scene['title']}): a panel has no data: {page.evaluate(REPORT)}")
    report: list[dict[str, Any]] = page.evaluate(REPORT)
    assert [r["panel"] for r in report] == scene["panels"], report
    return report


FITS = """() => ({
  zoom: window.__unrolled.tour.zoom ?? 1, stage: Number(getComputedStyle(document.getElementById('stage')).zoom),
  height: document.documentElement.scrollHeight, screen: window.innerHeight,
})"""
MIN_ZOOM = 0.55  # static/js/pages/tour.js


def assert_fits(page: Page, n: int, allow_min_zoom: bool) -> None:
    """Scene n is shown whole, as a slide: the page does not scroll (the stage shrinks to fit if it must)."""
    try:
        page.wait_for_function(
            f"() => {{ const f = ({FITS})(); return f.height <= f.screen + 1 || ({str(allow_min_zoom).lower()}"
            f" && f.zoom <= {MIN_ZOOM}); }}",
            timeout=5_000,
        )
    except PlaywrightTimeout:
        pytest.fail(f"scene {n} does not fit the screen: {page.evaluate(FITS)}")
    fit = page.evaluate(FITS)
    assert abs(fit["stage"] - fit["zoom"]) < 0.01, fit  # the zoom reported is the zoom applied


def assert_clean(recorder: Recorder) -> None:
    assert recorder.errors == [], recorder.errors
    assert recorder.outside() == [], recorder.outside()


def serve_builtin_tour(zoo_dir: Path) -> LiveServer:
    """The app on a models folder that must hold every model the built-in tour names: if one is missing, the
    test fails and says which (the tour is written for the zoo: a missing model is a broken talk)."""
    tour = load_tour(BUILTIN_TOURS / f"{DEFAULT_TOUR}.json")
    zoo = Zoo.load(zoo_dir)
    missing = sorted({p for s in tour.scenes for p in scene_models(s, zoo)[1]})
    if missing:
        pytest.fail(
            f"the built-in tour needs models that {zoo_dir} does not hold (train them with `make zoo`):\n  "
            + "\n  ".join(missing),
            pytrace=False,
        )
    settings = Settings(models_dir=zoo_dir, max_steps=3000, max_generate=2000, max_concurrent=4, send_timeout=5.0)
    return LiveServer(settings)


def walk_builtin_tour(page: Page, recorder: Recorder, zoo_dir: Path) -> None:
    with serve_builtin_tour(zoo_dir) as server:
        page.goto(server.url + "/tour")
        tour = json.loads(page.evaluate("() => document.body.dataset.tour"))
        scenes = tour["scenes"]
        assert tour["name"] == DEFAULT_TOUR and len(scenes) >= 7
        for n, scene in enumerate(scenes, start=1):
            wait_scene(page, n)
            assert parse_qs(urlsplit(page.url).query)["scene"] == [str(n)]
            check_scene(page, scene, n)
            assert_fits(page, n, allow_min_zoom=True)  # 1280×720: whole, unless the stage is at its smallest
            screenshot(page, f"tour-{n}-{slug(scene['title'])}")
            page.set_viewport_size({"width": 1920, "height": 1080})
            assert_fits(page, n, allow_min_zoom=False)  # 1080p: every scene whole
            page.set_viewport_size({"width": 1280, "height": 720})
            page.keyboard.press("ArrowRight" if n % 2 else "PageDown")  # what a clicker sends
        page.keyboard.press("ArrowRight")  # past the last scene: it stays
        page.keyboard.press("PageUp")
        wait_scene(page, len(scenes) - 1)
        page.keyboard.press("ArrowLeft")
        wait_scene(page, len(scenes) - 2)
    assert_clean(recorder)
    assert any(u.startswith("ws://127.0.0.1") for u in recorder.requests), "the scenes did not use the stream"


def test_the_builtin_tour_walks_every_scene_with_the_keyboard(page: Page, recorder: Recorder) -> None:
    walk_builtin_tour(page, recorder, ZOO)


OWN_SERIES = [{"name": "A <b>wave</b>", "values": [0, 1, 0, -1, 0, 1, 0], "labels": list("abcdefg")}]
OWN_TOUR: dict[str, Any] = {
    "title": "My own talk",
    "description": "Written by the test.",
    "scenes": [
        {"title": "One cell", "caption": "The cells, one per step.", "view": "unrolled", "model": "chars-lstm",
         "input": "hello there", "panels": ["unrolled", "text", "states", "gates", "cell"]},
        {"title": "Other sequences", "caption": "Numbers too.", "view": "sequences", "model": "chars-rnn",
         "input": "a wave", "series": OWN_SERIES, "play": True, "speed": 30},
        {"title": "Sure or not", "caption": "p of the next letter.", "view": "certainty",
         "models": ["chars-lstm", "chars-gru"], "input": ["abcdef", "fedcba"]},
        {"title": "Backwards", "caption": "The error goes back.", "view": "bptt", "model": "words-lstm",
         "input": "a good film not bad", "label": "positive", "phase": "backward", "step": -1},
        {"title": "A missing model", "caption": "This one cannot be shown.", "model": "no-such-model", "input": "x"},
        {"title": "Three cells", "caption": "One input, three cells.", "view": "compare", "task": "test-chars",
         "input": "the quick brown fox", "panels": ["norms", "gates", "cells"], "phase": "backward", "step": 1},
        {"title": "Writing", "caption": "It writes.", "view": "generate", "model": "chars-rnn", "input": "the ",
         "length": 30, "seed": 3, "panels": ["output", "predictions", "unrolled", "states", "gradients"]},
        {"title": "Learning", "caption": "At the start of training.", "view": "learning", "model": "chars-lstm",
         "input": "hello", "checkpoint": "0", "panels": ["checkpoints", "text", "gradients", "pca", "weights"]},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def own_live(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("own-tours")
    (folder / "my-talk.json").write_text(json.dumps(OWN_TOUR), encoding="utf-8")
    (folder / "broken.json").write_text('{"title": "half a file", "scenes": [', encoding="utf-8")
    with LiveServer(settings, UNROLLED_TOUR_DIR=str(folder)) as server:
        yield server


def test_a_tour_file_of_ones_own_is_served_and_walked(page: Page, recorder: Recorder, own_live: LiveServer) -> None:
    page.goto(own_live.url + "/tours")
    assert "My own talk" in page.inner_text("main")
    assert "broken.json" in page.inner_text("#skipped-tours")  # skipped, said why, and the server carries on
    page.click("text=My own talk")
    page.wait_for_url(re.compile(r"/tour\?name=my-talk"))
    scenes = json.loads(page.evaluate("() => document.body.dataset.tour"))["scenes"]
    for n, scene in enumerate(scenes, start=1):
        wait_scene(page, n)
        if scene["title"] == "A missing model":
            assert page.locator("#scene-problems").is_visible()
            assert "'no-such-model' does not exist" in page.inner_text("#scene-problems")
            assert page.locator("#stage .tour-panel").count() == 0
            assert page.locator("#player").is_hidden() and page.locator("#run").is_hidden()
            assert page.locator(".scene-dot.has-problem").count() == 1
        else:
            report = check_scene(page, scene, n)
            if scene["view"] == "certainty":  # two inputs, two models each: one line per model and input
                assert page.locator("#inputs textarea").count() == 2
                assert report[1]["plots"][0] >= 2 * (len("abcdef") - 1)
            if scene["view"] == "learning":  # the scene's checkpoint, then another from the slider
                assert page.evaluate("() => window.__unrolled.trace.checkpoint") == "0"
                slider = page.locator("[data-panel=checkpoints] input[type=range]")
                slider.evaluate("(el) => { el.value = el.max; el.dispatchEvent(new Event('input')); }")
                page.wait_for_function(
                    "() => window.__unrolled.trace.checkpoint === '100' && window.__unrolled.tour.ready"
                )
                assert "100 % of training" in page.inner_text("[data-panel=checkpoints]")
        screenshot(page, f"tour-own-{n}-{slug(scene['title'])}", full_page=True)
        page.keyboard.press("PageDown")
    assert_clean(recorder)


def test_a_scene_is_edited_live_and_restored(page: Page, recorder: Recorder, own_live: LiveServer) -> None:
    page.goto(own_live.url + "/tour?name=my-talk&scene=1")
    wait_scene(page, 1)
    assert page.evaluate("() => window.__unrolled.trace.T") == len("hello there")
    page.keyboard.press("/")
    page.keyboard.press("Control+a")
    page.keyboard.type("a longer input for the same weights")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.__unrolled.tour.ready && window.__unrolled.trace.T === 35")
    assert parse_qs(urlsplit(page.url).query)["text"] == ["a longer input for the same weights"]
    page.keyboard.press("ArrowRight")  # the clicker works again once the input is run
    wait_scene(page, 2)
    page.keyboard.press("ArrowLeft")  # the scene comes back with its own input
    wait_scene(page, 1)
    assert page.input_value("#input-0") == "hello there"
    # edit again, then restore with the key
    page.fill("#input-0", "something else")
    page.press("#input-0", "Enter")
    page.wait_for_function("() => window.__unrolled.tour.ready && window.__unrolled.trace.T === 14")
    page.keyboard.press("r")
    page.wait_for_function("() => window.__unrolled.tour.ready && window.__unrolled.trace.T === 11")
    assert page.input_value("#input-0") == "hello there"
    assert "text" not in parse_qs(urlsplit(page.url).query)
    # a moment of a scene is a URL: an edited input, a step and a sweep, captions hidden
    page.goto(own_live.url + "/tour?name=my-talk&scene=1&text=abcdefgh&step=5&phase=backward&captions=0")
    wait_scene(page, 1)
    page.wait_for_function("() => window.__unrolled.cursor.t === 4 && window.__unrolled.cursor.phase === 'backward'")
    assert page.input_value("#input-0") == "abcdefgh"
    assert page.locator("#scene-caption").is_hidden()
    page.keyboard.press("c")
    assert page.locator("#scene-caption").is_visible()
    page.wait_for_function("() => !new URL(location.href).searchParams.has('captions')")
    page.keyboard.press("c")
    page.wait_for_function("() => new URL(location.href).searchParams.get('captions') === '0'")
    # the player's keys work inside a scene: play, sweep, steps
    page.keyboard.press("b")
    page.wait_for_function("() => window.__unrolled.cursor.phase === 'forward'")
    page.keyboard.press("Shift+ArrowRight")
    page.wait_for_function("() => window.__unrolled.cursor.t === 5")
    page.keyboard.press("3")  # a digit goes to that scene
    wait_scene(page, 3)
    assert parse_qs(urlsplit(page.url).query)["scene"] == ["3"]
    page.click("#prev-scene")
    wait_scene(page, 2)
    page.keyboard.press("?")
    assert page.locator("#help").is_visible() and "Page Down" in page.inner_text("#help")
    page.keyboard.press("Escape")
    assert_clean(recorder)
