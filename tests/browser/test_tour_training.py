"""The tour's training scene in a real browser on the real zoo (issue 22, items 1 and 9): leaving it and coming
back at once restarts the run with no error; the curves draw the long-gap batches and their moving average, the
steps per second are shown, and the run recorded on the server plays through the same view."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page

from app.tour.tours import BUILTIN_TOURS, DEFAULT_TOUR, load_tour
from tests.browser.conftest import Recorder, assert_clean, screenshot
from tests.browser.test_tour import ZOO, serve_builtin_tour, wait_scene
from tests.conftest import LiveServer

TITLES = [s.title for s in load_tour(BUILTIN_TOURS / f"{DEFAULT_TOUR}.json").scenes]
TRAIN = TITLES.index("Train it yourself") + 1
PANEL = "#stage [data-panel=training]"
# each plot's traces: per cell, its long-gap batches (raw) then their moving average
TRACES = f"() => [...document.querySelectorAll('{PANEL} .plot')].map((gd) => (gd.data ?? []).map((d) => d.x))"


# the scene's (new) plots have drawn steps, or the scene has failed
DREW_OR_FAILED = f"""() => window.__unrolled.tourTrain.state === 'error'
  || ({TRACES})().flat().some((x) => x.length > 0)"""


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with serve_builtin_tour(ZOO) as live:
        yield live


def train_state(page: Page) -> dict[str, object]:
    state: dict[str, object] = page.evaluate("() => window.__unrolled.tourTrain")
    return state


def test_coming_back_to_the_training_scene_restarts_the_run_with_no_error(
    page: Page, recorder: Recorder, server: LiveServer
) -> None:
    """The training scene starts training by itself; Page Down then Page Up at once, three times: each time the scene
    starts a new run that draws steps, and no error is shown (it said "internal error" or "busy")."""
    page.goto(server.url + f"/tour?scene={TRAIN}")
    wait_scene(page, TRAIN)
    page.wait_for_function("() => (window.__unrolled.labTrain?.points ?? 0) > 0", timeout=30_000)
    for _ in range(3):
        page.keyboard.press("PageDown")
        wait_scene(page, TRAIN + 1)
        page.keyboard.press("PageUp")
        wait_scene(page, TRAIN)
        page.wait_for_function(DREW_OR_FAILED, timeout=30_000)
        state = train_state(page)
        assert state["state"] == "running", state
        assert page.get_attribute(f"{PANEL} .info", "data-kind") != "error", page.inner_text(f"{PANEL} .info")
        assert "failed" not in page.inner_text(PANEL)
    page.wait_for_function(
        f"() => ({TRACES})().flat().filter((x) => x.length > 0).length === 18", timeout=30_000
    )  # 3 plots, 3 cells, raw and average
    page.wait_for_function("() => document.querySelector('.train-rate').textContent.includes('steps/s')")
    screenshot(page, "tour-8-training-live-1280")
    page.keyboard.press("t")
    page.wait_for_function("() => window.__unrolled.tourTrain.state === 'done'", timeout=30_000)
    assert_clean(recorder)


def test_the_recorded_run_plays_through_the_same_view_its_short_gap_batches_left_out(
    page: Page, recorder: Recorder, server: LiveServer
) -> None:
    """V plays the run recorded on the server (GET /api/lab/recording) through the training view at its pace:
    each plot draws, for each cell, the long-gap batches and their moving average, never a short-gap batch; the
    line above the plots gives the steps per second and how many short-gap batches were left out."""
    recording = httpx.get(server.url + "/api/lab/recording", timeout=10).json()
    col = {c: i for i, c in enumerate(recording["columns"])}
    first = [r for r in recording["rows"] if r[col["cell"]] == 0]
    short = {r[col["step"]] for r in first if r[col["gap"]] != recording["start"]["n"]}
    assert short and all(r[col["gap"]] <= 3 for r in first if r[col["step"]] in short)
    page.goto(server.url + f"/tour?scene={TRAIN}")
    wait_scene(page, TRAIN)
    page.keyboard.press("t")  # stop the live run the scene started
    page.wait_for_function("() => window.__unrolled.tourTrain.state === 'done'", timeout=30_000)
    page.keyboard.press("v")
    page.wait_for_function("() => window.__unrolled.tourTrain.state === 'replaying'")
    page.wait_for_function("() => (window.__unrolled.labTrain?.short ?? 0) >= 3", timeout=30_000)
    page.wait_for_function("() => document.querySelector('.train-rate').textContent.startsWith('Recorded: ')")
    rate = page.inner_text(".train-rate")
    assert rate.startswith("Recorded: ") and "steps/s per cell" in rate and "with a short gap (1–3" in rate
    screenshot(page, "tour-8-training-recorded-1280")
    for plot in page.evaluate(TRACES):
        assert len(plot) == 2 * len(recording["start"]["cells"])
        for xs in plot:
            assert xs and not short & set(xs), "a short-gap batch is drawn"
        assert plot[0] == plot[1]  # the moving average at every long-gap batch drawn
    page.keyboard.press("t")  # stop the playback: the view says so, with the recorded run's steps
    page.wait_for_function("() => window.__unrolled.tourTrain.state === 'done'", timeout=30_000)
    assert page.inner_text(f"{PANEL} .info").startswith("Stopped. The recorded run: each model trained RNN ")
    assert_clean(recorder)


def test_a_run_too_short_for_the_lesson_says_so_and_offers_the_recorded_run(
    page: Page, recorder: Recorder, server: LiveServer
) -> None:
    """On the lab page, a run at the lesson's gap given too few seconds for its ~650 steps per cell: once its
    steps per second are measured the page says how many steps it will reach and that the lesson needs more,
    and offers the recorded run, which then plays through the same plots."""
    lesson = httpx.get(server.url + "/api/lab/recording", timeout=10).json()["start"]  # N = 100, ~650 steps
    page.goto(server.url + "/lab")
    page.fill("#train-n", str(lesson["n"]))
    page.fill("#train-seconds", "4.5")
    page.click("#train-start")
    page.wait_for_function("() => window.__unrolled.labTrain?.slow === true", timeout=30_000)
    rate = page.inner_text(".train-rate")
    assert "steps/s per cell" in rate and "too few for the lesson" in rate and str(lesson["lesson_steps"]) in rate
    assert page.get_attribute(".train-rate", "data-kind") == "error"
    page.click(".train-rate button.train-replay")
    page.wait_for_function("() => window.__unrolled.labTrain?.state === 'replaying'")
    page.wait_for_function("() => (window.__unrolled.labTrain?.long ?? 0) > 10", timeout=30_000)
    page.keyboard.press("t")
    page.wait_for_function("() => window.__unrolled.labTrain?.state === 'done'", timeout=30_000)
    assert "recorded" in page.inner_text("#train-done")
    assert_clean(recorder)
