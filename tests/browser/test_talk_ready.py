"""Talk mode with the audience's own input, as rehearsed in front of a room: the built-in tour on the real zoo,
projected at 1280×720, driven by the keyboard and a clicker (Page Up / Page Down), inputs typed live."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from app.tour.tours import BUILTIN_TOURS, DEFAULT_TOUR, load_tour
from tests.browser.conftest import Recorder, assert_clean
from tests.browser.test_tour import ZOO, serve_builtin_tour, wait_scene
from tests.conftest import LiveServer


def scene_number(title: str) -> int:
    """The 1-based number of the built-in tour's scene whose title starts so: scenes are added between others."""
    scenes = load_tour(BUILTIN_TOURS / f"{DEFAULT_TOUR}.json").scenes
    return next(i for i, s in enumerate(scenes, 1) if s.title.startswith(title))


# The scenes of tours/deep-learning-for-sequences.json that these tests type into.
SEQUENCES, CERTAINTY, CELL, BPTT, VANISHING, GATES, WRITES, REVIEW = map(scene_number, (
    "Sequences are everywhere", "Sequential memory", "The recurrent cell", "Backpropagation through time",
    "The vanishing gradient", "LSTM and GRU", "Applications: the network writes", "Applications: reading a review",
))  # fmt: skip


@pytest.fixture(scope="module")
def tour_server() -> Iterator[LiveServer]:
    with serve_builtin_tour(ZOO) as server:
        yield server


def open_scene(page: Page, server: LiveServer, n: int, query: str = "") -> None:
    page.goto(f"{server.url}/tour?scene={n}{query}")
    wait_scene(page, n)


def type_input(page: Page, text: str, box: int = 0) -> None:
    """What a presenter does: / to the input (or a click into the k-th box), select all, type, Enter."""
    if box == 0:
        page.keyboard.press("/")
    else:
        page.click(f"#input-{box}")
    page.keyboard.press("Control+a")
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def wait_ready_on(page: Page, text: str) -> None:
    """Until the scene has run `text` whole (its own trace's tokens spell it, spaces aside)."""
    page.wait_for_function(
        "(text) => window.__unrolled.tour.ready && window.__unrolled.trace?.done"
        " && window.__unrolled.trace.tokens.join('').replace(/\\s/g, '').toUpperCase()"
        " === text.replace(/\\s/g, '').toUpperCase()",
        arg=text,
    )


def test_a_typed_input_in_the_certainty_scene_is_drawn_and_played(
    page: Page, recorder: Recorder, tour_server: LiveServer
) -> None:
    open_scene(page, tour_server, CERTAINTY)
    type_input(page, "XQZ GHIJKLMNOP")
    wait_ready_on(page, "XQZ GHIJKLMNOP")
    # the chart shows the new input as its first plot's title, with one point per model and step that has a target
    titles = page.evaluate("() => document.querySelector('[data-panel=certainty] .js-plotly-plot').layout.annotations"
                           ".map((a) => a.text)")  # fmt: skip
    assert titles[0] == "<b>XQZ GHIJKLMNOP</b>", titles
    # a second box edited by a click, as the rehearsal did
    type_input(page, "ONMLKJ", box=1)
    page.wait_for_function(
        "() => window.__unrolled.tour.ready && document.querySelector('[data-panel=certainty] .js-plotly-plot')"
        ".layout.annotations.some((a) => a.text === '<b>ONMLKJ</b>')"
    )
    page.wait_for_function("() => window.__unrolled.cursor.playing || window.__unrolled.cursor.p > 0")
    assert_clean(recorder)  # no "Cannot read properties of null"


def test_a_new_input_replaces_the_prediction_bars(page: Page, recorder: Recorder, tour_server: LiveServer) -> None:
    open_scene(page, tour_server, REVIEW)
    bars = "() => document.querySelectorAll('[data-panel=predictions] .bar').length"
    assert page.evaluate(bars) == 2  # negative, positive
    for review in ("A dull and tiresome film.", "Sharp, funny and moving."):
        type_input(page, review)
        wait_ready_on(page, review)
        assert page.evaluate(bars) == 2
    assert_clean(recorder)


def test_presenter_mode_shows_the_controls_while_the_input_is_typed(
    page: Page, recorder: Recorder, tour_server: LiveServer
) -> None:
    open_scene(page, tour_server, CELL, "&presenter=1")
    idle = "() => document.documentElement.classList.contains('idle')"
    page.wait_for_function(idle)  # the controls fade out while the mouse rests
    page.keyboard.press("/")
    assert not page.evaluate(idle) and page.locator("#input-0").is_visible()
    page.wait_for_timeout(3500)  # longer than the fade's 2.5 s: still shown, since the field has focus
    assert not page.evaluate(idle)
    page.keyboard.type("abc")
    assert page.locator("#input-0").is_visible()
    page.keyboard.press("Escape")
    page.wait_for_function(idle)  # and they fade again once the field is left
    assert_clean(recorder)


def test_a_typed_input_is_scored_against_its_own_target(
    page: Page, recorder: Recorder, tour_server: LiveServer
) -> None:
    open_scene(page, tour_server, VANISHING)
    assert page.evaluate("() => [window.__unrolled.trace.label, window.__unrolled.trace.labelSource]") == ["C", "given"]
    assert page.inner_text("#target-now") == "target C (as chosen)"
    type_input(page, "D 12345 67890 ?")
    wait_ready_on(page, "D1234567890?")
    # the memory task's target is the input's own first symbol, and the screen says so
    assert page.evaluate("() => [window.__unrolled.trace.label, window.__unrolled.trace.labelSource]") == ["D", "input"]
    assert page.inner_text("#target-now") == "target D (named by the input's first symbol)"
    # the three cells compared: each trace is scored against D
    open_scene(page, tour_server, GATES)
    type_input(page, "D 12345 67890 ?")
    page.wait_for_function("() => window.__unrolled.tour.ready && window.__unrolled.trace.label === 'D'")
    assert page.inner_text("#target-now") == "target D (named by the input's first symbol)"
    # another classifier falls back to the model's own answer, shown as such
    open_scene(page, tour_server, REVIEW)
    type_input(page, "Sharp, funny and moving.")
    wait_ready_on(page, "Sharp, funny and moving.")
    label = page.evaluate("() => window.__unrolled.trace.label")
    assert page.evaluate("() => window.__unrolled.trace.labelSource") == "predicted"
    assert page.inner_text("#target-now") == f"target {label} (the model's own answer)"
    assert_clean(recorder)


def test_the_keyboard_help_is_true_and_the_clicker_works_from_the_input(
    page: Page, recorder: Recorder, tour_server: LiveServer
) -> None:
    open_scene(page, tour_server, BPTT)
    page.keyboard.press("?")
    keys = page.inner_text("#help")
    assert "Shift+→" in keys.replace(" ", "") and "." not in [k.strip() for k in keys.split()]
    page.keyboard.press("Escape")
    # Shift+arrows step, as the help says
    page.keyboard.press("Space")  # pause the scene's play
    page.keyboard.press("Home")
    page.keyboard.press("Shift+ArrowRight")
    page.wait_for_function("() => window.__unrolled.cursor.t === 1 && window.__unrolled.cursor.phase === 'forward'")
    # a click into the input, then the clicker: Page Down moves on, Page Up comes back
    page.click("#input-0")
    page.keyboard.press("PageDown")
    wait_scene(page, VANISHING)
    page.click("#input-0")
    page.keyboard.press("PageUp")
    wait_scene(page, BPTT)
    # Enter and Esc leave the field, and the clicker's arrows drive the tour again
    focused = "() => document.activeElement?.tagName"
    for key in ("Escape", "Enter"):
        page.click("#input-0")
        assert page.evaluate(focused) == "TEXTAREA"
        page.keyboard.press(key)
        assert page.evaluate(focused) != "TEXTAREA"
    page.wait_for_function("() => window.__unrolled.tour.ready")
    page.keyboard.press("ArrowRight")
    wait_scene(page, VANISHING)
    # an empty input is not run silently
    page.keyboard.press("/")
    page.keyboard.press("Control+a")
    page.keyboard.press("Backspace")
    page.keyboard.press("Enter")
    assert "empty" in page.inner_text("#status")
    assert_clean(recorder)


@pytest.mark.parametrize("scene", [SEQUENCES, CELL, WRITES, REVIEW])
def test_scenes_before_bptt_play_the_forward_sweep_and_stop_at_its_end(
    page: Page, recorder: Recorder, tour_server: LiveServer, scene: int
) -> None:
    open_scene(page, tour_server, scene, "&speed=120")
    page.wait_for_function("() => window.__unrolled.cursor.p > 0")  # it plays
    page.wait_for_function("() => !window.__unrolled.cursor.playing", timeout=60_000)
    cursor = page.evaluate("() => window.__unrolled.cursor")
    assert (cursor["phase"], cursor["t"]) == ("forward", cursor["T"] - 1), cursor
    if scene == REVIEW:  # a classifier ends on its verdict: the bars show the last step's p
        last = page.evaluate("() => Array.from(window.__unrolled.trace.probsAt(window.__unrolled.trace.T - 1))")
        shown = page.evaluate(
            "() => [...document.querySelectorAll('[data-panel=predictions] .bar-value')]"
            ".map((e) => Number(e.textContent))"
        )
        assert len(shown) == len(last) and all(abs(a - b) < 0.006 for a, b in zip(shown, last, strict=True))
        assert max(shown) >= 0.9
    assert_clean(recorder)


def test_a_tour_speed_is_played_as_written(page: Page, recorder: Recorder, tour_server: LiveServer) -> None:
    open_scene(page, tour_server, CERTAINTY)  # "speed": 3
    assert page.evaluate("() => window.__unrolled.cursor.speed") == 3
    assert "3 steps/s" in page.inner_text("#player")
    assert_clean(recorder)


# What the audience might call out, per scene: never one of the scene's or the model's own examples.
TYPED = {
    SEQUENCES: "rain on a tin roof",
    CERTAINTY: "PQRS TUVWXYZ",
    CELL: "A dull and tiresome film.",
    BPTT: "Not funny at all.",
    VANISHING: "B 27182 81828 ?",
    GATES: "F 16180 33988 7 ?",
    WRITES: "Tonight we ",
    REVIEW: "Slow at first, then gripping.",
}


@pytest.mark.parametrize("scene", sorted(TYPED))
def test_every_scene_runs_what_the_audience_types(
    page: Page, recorder: Recorder, tour_server: LiveServer, scene: int
) -> None:
    open_scene(page, tour_server, scene)
    type_input(page, TYPED[scene])
    if scene == WRITES:  # the prompt, then what the model writes after it
        page.wait_for_function(
            "(p) => window.__unrolled.tour.ready && window.__unrolled.trace?.done"
            " && window.__unrolled.trace.tokens.join('').startsWith(p)",
            arg=TYPED[scene],
        )
        page.wait_for_function(  # shown as the cursor plays on through what it wrote
            "(n) => document.querySelector('[data-panel=output] .gen-output').innerText.length > n",
            arg=len(TYPED[scene]) + 40,
        )
    else:
        wait_ready_on(page, TYPED[scene])
    assert "text=" in page.url  # the edited input is in the URL: a reload keeps it
    page.wait_for_function("() => document.querySelectorAll('#stage .tour-panel').length > 0")
    assert_clean(recorder)
