"""Talk mode in a real browser: the built-in tour walked scene by scene with a clicker's keys on the real zoo, and
a tour file of the test's own (served through UNROLLED_TOUR_DIR) walked, edited, restored and captioned."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from app.tour.tours import BUILTIN_TOURS, DEFAULT_TOUR, load_tour, scene_models
from app.web.config import ROOT, Settings
from app.zoo.zoo import Zoo
from tests.browser.conftest import Recorder, assert_clean, screenshot
from tests.conftest import LiveServer

ZOO = ROOT / "models"

# What each panel of the scene on screen holds: plots with their points, unrolled cells, bars, written tokens.
REPORT = """() => [...document.querySelectorAll('#stage .tour-panel')].map((p) => ({
  panel: p.dataset.panel,
  plots: [...p.querySelectorAll('.js-plotly-plot')].map((gd) => (gd.data ?? []).reduce((n, d) => {
    const ys = d.z ?? d.y ?? [];
    return n + ys.flat().filter((v) => v !== null && v !== undefined && Number.isFinite(Number(v))).length;
  }, 0)),
  cells: p.querySelectorAll('svg.unrolled-svg .step, svg.encdec-svg .cell').length,
  read: p.querySelectorAll('svg.unrolled-svg .step:not(.ghost), svg.encdec-svg .cell:not(.ghost)').length,
  beams: p.querySelectorAll('.beams li.beam').length,
  bars: p.querySelectorAll('.bar:not([hidden])').length,
  written: p.querySelectorAll('.gen-output span').length,
  tokens: p.querySelectorAll('.textview .tk, .collapse-mark, .caption-word').length,
  pictures: p.querySelectorAll('canvas[data-drawn]').length,
  canvases: p.querySelectorAll('canvas').length,
  rows: p.querySelectorAll('.ratio-table tbody tr').length,
  notes: p.querySelectorAll('svg.pianoroll-svg rect.note').length,
  drawn: p.querySelectorAll('svg.cell-diagram g.cell').length,
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
    "beams": ["beams"],
    "roll": ["notes"],
    "sound": ["canvases"],
    "posteriors": ["canvases"],
    "diagram": ["drawn"],
}
# A caption scene's picture panels (attention, gradients) are the picture drawn under the grid, not plots.
VIEW_NEEDS: dict[str, dict[str, list[str]]] = {"caption": {"attention": ["pictures"], "gradients": ["pictures"]}}
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
        page.wait_for_function(HAS_DATA, arg={**NEEDS, **VIEW_NEEDS.get(scene.get("view", ""), {})}, timeout=60_000)
    except PlaywrightTimeout:
        pytest.fail(f"scene {n} ({scene['title']}): a panel has no data: {page.evaluate(REPORT)}")
    report: list[dict[str, Any]] = page.evaluate(REPORT)
    assert [r["panel"] for r in report] == scene["panels"], report
    return report


FITS = """() => ({
  zoom: window.__unrolled.tour.zoom ?? 1, stage: Number(getComputedStyle(document.getElementById('stage')).zoom),
  height: document.documentElement.scrollHeight, screen: window.innerHeight,
  bottom: document.getElementById('stage').getBoundingClientRect().bottom,
})"""
MIN_PX = 14  # no text that carries meaning is drawn smaller (read from the back of a room, on a 1280×720 projector)
EXCEPTED = 0.01  # of a scene's characters, at most, may be smaller (a decoration, a label shown on hover)

# Every visible piece of text on the page, with the size it is drawn at on screen, CSS zoom and SVG scaling
# included: for SVG text, font-size × (its box's height on screen ÷ its height in user units); for HTML,
# font-size × the zoom in force (currentCSSZoom, or its width on screen ÷ its layout width). `whole`: the whole
# page, not only what is on the screen.
MEASURE = """(whole) => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.textContent.trim();
    const el = n.parentElement;
    if (!text || !el || seen.has(el)) continue;
    seen.add(el);
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    if (!whole && (r.bottom < 0 || r.top > innerHeight || r.right < 0 || r.left > innerWidth)) continue;
    const cs = getComputedStyle(el);
    if (cs.visibility === 'hidden' || Number(cs.opacity) === 0) continue;
    let hidden = false;
    for (let a = el; a; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.display === 'none' || Number(s.opacity) === 0) { hidden = true; break; }
    }
    if (hidden) continue;
    let scale = 1;
    if (el instanceof SVGGraphicsElement && el.getBBox) {
      const b = el.getBBox();
      scale = b.height > 0 ? r.height / b.height : 1;
    } else {
      const w = el.offsetWidth;
      scale = el.currentCSSZoom ?? (w > 0 ? r.width / w : 1);
    }
    const px = parseFloat(cs.fontSize) * scale;
    out.push({ text: text.slice(0, 40), px: Math.round(px * 100) / 100, tag: el.tagName,
               cls: String(el.className?.baseVal ?? el.className).slice(0, 40), chars: text.length,
               svg: el instanceof SVGElement, top: Math.round(r.top) });
  }
  return out;
}"""


def settle(page: Page) -> dict[str, Any]:
    """The stage's zoom and height once they stop changing (views lay themselves out again at a new zoom)."""
    last: dict[str, Any] = {}
    for _ in range(40):
        page.wait_for_timeout(150)
        fit: dict[str, Any] = page.evaluate(FITS)
        if fit == last:
            return fit
        last = fit
    return last


def assert_fits(page: Page, n: int) -> dict[str, Any]:
    """Scene n is shown whole, as a slide: the page does not scroll (tour.js fitStage zooms the stage to the
    room, never below the zoom that keeps its text at MIN_PX)."""
    try:
        page.wait_for_function(f"() => {{ const f = ({FITS})(); return f.height <= f.screen + 1; }}", timeout=30_000)
    except PlaywrightTimeout:
        pytest.fail(f"scene {n} does not fit the screen: {page.evaluate(FITS)}")
    fit = settle(page)
    assert fit["height"] <= fit["screen"] + 1, f"scene {n} does not fit the screen: {fit}"
    assert abs(fit["stage"] - fit["zoom"]) < 0.01, fit  # the zoom reported is the zoom applied
    return fit


def text_sizes(page: Page, n: int, enforce: bool) -> dict[str, Any]:
    """The sizes text is drawn at; enforce: at most EXCEPTED of the characters below MIN_PX (the rest fail the
    test, listed)."""
    items: list[dict[str, Any]] = page.evaluate(MEASURE)
    total = sum(i["chars"] for i in items)
    small = sorted((i for i in items if i["px"] < MIN_PX), key=lambda i: i["px"])
    share = sum(i["chars"] for i in small) / max(1, total)
    if enforce and share > EXCEPTED:
        listed = "\n  ".join(f"{i['px']:.1f} px {i['tag']}.{i['cls']} {i['text']!r}" for i in small[:40])
        pytest.fail(f"scene {n}: {100 * share:.1f} % of the text is below {MIN_PX} px:\n  {listed}", pytrace=False)
    return {"min_px": min((i["px"] for i in items), default=0), "below_pct": round(100 * share, 2), "chars": total}


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
    """Every scene, with a clicker's keys: its panels have data, and it is a readable slide at 1280×720 (whole, no
    text below MIN_PX) and at 1920×1080 (whole, the room used). The sizes go to test-output/tour-fit.json."""
    report: list[dict[str, Any]] = []
    with serve_builtin_tour(zoo_dir) as server:
        page.goto(server.url + "/tour")
        tour = json.loads(page.evaluate("() => document.body.dataset.tour"))
        scenes = tour["scenes"]
        assert tour["name"] == DEFAULT_TOUR and len(scenes) >= 7
        for n, scene in enumerate(scenes, start=1):
            wait_scene(page, n)
            assert parse_qs(urlsplit(page.url).query)["scene"] == [str(n)]
            check_scene(page, scene, n)
            small = assert_fits(page, n)
            sizes = text_sizes(page, n, enforce=True)
            screenshot(page, f"tour-{n}-{slug(scene['title'])}-1280")
            page.set_viewport_size({"width": 1920, "height": 1080})
            big = assert_fits(page, n)
            screenshot(page, f"tour-{n}-{slug(scene['title'])}-1920")
            report.append({
                "scene": n, "title": scene["title"],
                "1280": {**sizes, "zoom": small["zoom"], "used": round(small["bottom"] / small["screen"], 3)},
                "1920": {**text_sizes(page, n, enforce=False), "zoom": big["zoom"],
                         "used": round(big["bottom"] / big["screen"], 3)},
            })  # fmt: skip
            page.set_viewport_size({"width": 1280, "height": 720})
            page.keyboard.press("ArrowRight" if n % 2 else "PageDown")  # what a clicker sends
        page.keyboard.press("ArrowRight")  # past the last scene: it stays
        page.keyboard.press("PageUp")
        wait_scene(page, len(scenes) - 1)
        page.keyboard.press("ArrowLeft")
        wait_scene(page, len(scenes) - 2)
    out = ROOT / "test-output" / "tour-fit.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    for r in report:
        a, b = r["1280"], r["1920"]
        print(
            f"scene {r['scene']}: 1280×720 smallest {a['min_px']:.1f} px, {a['below_pct']:.1f} % below {MIN_PX} px,"
            f" zoom {a['zoom']:.2f}, used {a['used']:.0%}; 1920×1080 zoom {b['zoom']:.2f}, used {b['used']:.0%}"
        )
    assert_clean(recorder)
    assert any(u.startswith("ws://127.0.0.1") for u in recorder.requests), "the scenes did not use the stream"


def test_the_builtin_tour_walks_every_scene_with_the_keyboard(page: Page, recorder: Recorder) -> None:
    walk_builtin_tour(page, recorder, ZOO)


def test_in_presenter_mode_every_builtin_scene_still_fits_1280x720(page: Page, recorder: Recorder) -> None:
    """P on the tour (a lecturer's habit on every page) keeps each scene a slide: whole on the screen, no text
    below MIN_PX (at 19 px type every scene overflowed 1280×720, by up to 174 px)."""
    with serve_builtin_tour(ZOO) as server:
        page.goto(server.url + "/tour?presenter=1")
        count = len(json.loads(page.evaluate("() => document.body.dataset.tour"))["scenes"])
        for n in range(1, count + 1):
            wait_scene(page, n)
            assert page.evaluate("() => document.documentElement.classList.contains('presenter')")
            assert_fits(page, n)
            text_sizes(page, n, enforce=True)
            page.keyboard.press("PageDown")
    assert_clean(recorder)


def test_rnns_are_back_draws_the_five_memory_cells_on_one_log_plot(page: Page, recorder: Recorder) -> None:
    """The scene "RNNs are back": one log plot of ‖∂L/∂h_t‖ with a line for each of the five memory cells, the
    gradient table's rows the same five, whole on a 1280×720 screen in presenter mode, no text under MIN_PX."""
    with serve_builtin_tour(ZOO) as server:
        page.goto(server.url + "/tour?presenter=1")
        scenes = json.loads(page.evaluate("() => document.body.dataset.tour"))["scenes"]
        n = next(i for i, s in enumerate(scenes, 1) if s["title"].startswith("RNNs are back"))
        page.goto(server.url + f"/tour?presenter=1&scene={n}")
        wait_scene(page, n)
        check_scene(page, scenes[n - 1], n)
        names = page.evaluate(
            "() => document.querySelector('#stage .tour-panel .js-plotly-plot').data.map((d) => d.name)"
        )
        cells = [name.split(" ")[0] for name in names if "‖∂L/∂h_t‖" in name]
        assert cells == ["RNN", "LSTM", "GRU", "MINGRU", "S6"], names
        assert_fits(page, n)
        text_sizes(page, n, enforce=True)
        screenshot(page, "tour-rnns-are-back")
    assert_clean(recorder)


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


# Both read plots that may not be drawn yet (a wait asks again until they are): an undrawn plot has no data.
KNOBS_PLOT = "() => (document.querySelector('#stage [data-panel=knobs] .plot')?.data ?? []).map((d) => d.name)"
TRAINED = "() => [...document.querySelectorAll('#stage [data-panel=training] .plot')].map((gd) => (gd.data ?? [{x: []}]).map((d) => d.x.length))"  # noqa: E501


def test_the_labs_scenes_turn_the_knobs_and_train_live(page: Page, recorder: Recorder) -> None:
    """The knobs scene: its four curves, [ and ] turn the live one's radius, K keeps it; the training scene starts
    with the scene, draws every cell's steps, stops on T and links the trained models, which open (200)."""
    titles = [s.title for s in load_tour(BUILTIN_TOURS / f"{DEFAULT_TOUR}.json").scenes]
    knobs = titles.index("Turn the knobs of the vanishing gradient") + 1
    train = titles.index("Train it yourself") + 1
    with serve_builtin_tour(ZOO) as server:
        page.goto(server.url + f"/tour?scene={knobs}")
        wait_scene(page, knobs)
        names = page.evaluate(KNOBS_PLOT)
        assert names[-1] == "RNN · tanh · radius 1.00 · H 32 · T 200" and names[-2] == "the bound"
        assert [n.split(" · ")[:3] for n in names[:3]] == [
            ["kept: RNN", "tanh", "radius 0.50"],
            ["kept: RNN", "relu", "radius 2.00"],
            ["kept: LSTM", "radius 0.90", "forget bias 4.00"],
        ]
        assert page.locator("#player").is_hidden() and page.locator("#inputs").is_hidden()  # keys drive it
        page.keyboard.press("]")
        page.wait_for_function("() => window.__unrolled.tourKnobs.drawn === 1.05")
        assert page.evaluate(KNOBS_PLOT)[-1].startswith("RNN · tanh · radius 1.05")
        page.keyboard.press("[")
        page.keyboard.press("[")
        page.wait_for_function("() => window.__unrolled.tourKnobs.drawn === 0.95")
        page.keyboard.press("k")
        page.wait_for_function(f"() => ({KNOBS_PLOT})().length === {len(names) + 1}")
        assert page.evaluate(KNOBS_PLOT)[3].startswith("kept: RNN · tanh · radius 0.95")
        for digit in str(train):  # a scene past 9 is two digits typed in a row (the tour's number keys)
            page.keyboard.press(digit)
        wait_scene(page, train)
        page.wait_for_function("() => window.__unrolled.tourTrain.state === 'running'")
        drawn = f"(({TRAINED})().flat())"
        page.wait_for_function(f"() => {drawn}.length > 0 && {drawn}.every((n) => n > 0)", timeout=30_000)
        screenshot(page, "tour-lab-training")
        page.keyboard.press("t")  # stop: the run ends and says so
        page.wait_for_function("() => window.__unrolled.tourTrain.state !== 'running'", timeout=30_000)
        assert page.evaluate("() => window.__unrolled.tourTrain.state") == "done"
        links = page.eval_on_selector_all("#stage a.model-link", "(as) => as.map((a) => a.getAttribute('href'))")
        assert [link.rsplit("-", 1)[-1] for link in links] == ["rnn", "lstm", "gru"]
        assert all(httpx.get(server.url + link, timeout=10).status_code == 200 for link in links)
        assert "Stopped" in page.inner_text("#stage [data-panel=training] .info")
    assert_clean(recorder)
