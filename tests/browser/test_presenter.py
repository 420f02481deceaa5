"""Presenter mode as a lecturer uses it (issue 22, items 4 and 6), in real Chromium on the real zoo, each with an input
the audience typed: the controls never cover the page and never leave a band, a key brings the top bar back, and on
a bigger screen the tour's controls and caption grow with its stage."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

from tests.browser.conftest import Recorder, assert_clean, screenshot
from tests.browser.test_text_sizes import BIG, SMALL
from tests.conftest import LiveServer

IDLE = "() => document.documentElement.classList.contains('idle')"

# Whether the element's middle is what the screen shows there (nothing drawn over it), and its box.
SEEN = """(sel) => {
  const el = document.querySelector(sel);
  const r = el.getBoundingClientRect();
  const top = document.elementFromPoint(r.left + r.width / 2, r.top + Math.min(r.height / 2, 10));
  return { seen: Boolean(top) && (el === top || el.contains(top)), top: r.top, bottom: r.bottom, height: r.height,
           width: r.width, opacity: Number(getComputedStyle(el).opacity) };
}"""

# The size an element's text is drawn at on screen (CSS zoom included).
DRAWN_PX = """(sel) => {
  const el = document.querySelector(sel);
  return parseFloat(getComputedStyle(el).fontSize) * el.currentCSSZoom;
}"""

# The blank height between the controls' last row (the top bar, the input, the player, its side line) and the page.
BAND = """() => {
  const rows = [...document.querySelectorAll('#chrome > *')];
  const bottom = Math.max(...rows.map((e) => e.getBoundingClientRect().bottom));
  return document.querySelector('#main .panel').getBoundingClientRect().top - bottom;
}"""


def seen(page: Page, selector: str) -> dict[str, Any]:
    value: dict[str, Any] = page.evaluate(SEEN, selector)
    return value


def type_into(page: Page, text: str) -> None:
    """/ (or a click) to the input, select all, type, Enter; then the keys drive the page again."""
    page.locator("#input-0, #text-input").first.click()
    page.keyboard.press("Control+a")
    page.keyboard.type(text)
    page.keyboard.press("Enter")
    page.evaluate("() => document.activeElement?.blur()")


def test_the_tours_title_and_caption_are_never_under_the_controls(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    page.goto(zoo.url + "/tour?scene=3&presenter=1")
    page.wait_for_function("() => window.__unrolled?.tour?.ready")
    page.keyboard.press("/")  # typing: the controls show, the room reads the title and caption all the same
    page.keyboard.press("Control+a")
    page.keyboard.type("Stale popcorn, brilliant cast.")
    for part in ("#scene-title", "#scene-caption", "#input-0"):
        assert seen(page, part)["seen"], f"{part} is covered: {seen(page, part)}"
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => window.__unrolled.tour.ready && /popcorn/i.test(window.__unrolled.trace.tokens.join(''))"
    )
    for part in ("#scene-title", "#scene-caption"):
        assert seen(page, part)["seen"], f"{part} is covered: {seen(page, part)}"
    screenshot(page, "presenter-tour-typing")
    assert_clean(recorder)


def test_a_model_page_in_presenter_mode_leaves_no_band_and_a_key_brings_the_bar_back(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    page.goto(zoo.url + "/models/charlm-gru?presenter=1")
    page.wait_for_function("() => (window.__unrolled?.loaded ?? 0) >= 1")
    type_into(page, "Tonight, my fellow pilots")
    page.wait_for_function("() => (window.__unrolled?.loaded ?? 0) >= 2")
    assert seen(page, "#main .panel")["seen"]  # the bar shows: the page is under it, not beneath it
    page.wait_for_function(IDLE)  # the mouse and the keys rest: the top bar folds away
    player, panel = seen(page, "#player"), seen(page, "#main .panel")
    # the step and the sweep stay, and the page follows them up: no band where the bar was
    assert player["seen"] and player["opacity"] == 1 and seen(page, "#player [data-role=where]")["seen"], player
    assert panel["seen"] and page.evaluate(BAND) < 30, (player, panel, page.evaluate(BAND))
    screenshot(page, "presenter-model-idle")
    page.keyboard.press("ArrowLeft")  # a player's key: a step back, and the bar is back
    page.wait_for_function(f"() => !({IDLE})()")
    assert seen(page, ".topbar")["seen"] and seen(page, "#main .panel")["seen"]
    assert_clean(recorder)


def test_the_compare_pages_bar_keeps_one_row_and_covers_nothing(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    page.goto(zoo.url + "/compare?task=memory&presenter=1")
    page.wait_for_function("() => (window.__unrolled?.loaded ?? 0) >= 1")
    type_into(page, "H 4142 1356 ?")
    page.wait_for_function("() => (window.__unrolled?.loaded ?? 0) >= 2")
    bar = seen(page, ".topbar")
    assert bar["height"] < 80, bar  # one row (its links wrapped to three: 330 px with the player)
    for part in ("#panel-gradients .panel-head h2", "#compare-gradients"):
        assert seen(page, part)["seen"], f"{part} is covered: {seen(page, part)}"
    screenshot(page, "presenter-compare")
    assert_clean(recorder)


TOUR_CHROME = {
    "top bar": ".topbar .brand",
    "input": "#input-0",
    "player": "#player [data-role=where]",
    "title": "#scene-title",
    "caption": "#scene-caption",
}


def test_on_a_bigger_screen_the_tours_controls_and_caption_grow_with_the_stage(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    page.goto(zoo.url + "/tour?scene=3")
    page.wait_for_function("() => window.__unrolled?.tour?.ready")
    type_into(page, "Stale popcorn, brilliant cast.")
    page.wait_for_function(
        "() => window.__unrolled.tour.ready && /popcorn/i.test(window.__unrolled.trace.tokens.join(''))"
    )
    small = {name: page.evaluate(DRAWN_PX, sel) for name, sel in TOUR_CHROME.items()}
    page.set_viewport_size(BIG)
    page.wait_for_function("() => window.__unrolled.tour.zoom > 1.2")
    growth = BIG["height"] / SMALL["height"]
    big = {name: page.evaluate(DRAWN_PX, sel) for name, sel in TOUR_CHROME.items()}
    for name in TOUR_CHROME:
        assert big[name] >= 0.95 * growth * small[name], (name, small[name], big[name])
    caption = seen(page, "#scene-caption")
    assert caption["width"] > 0.8 * BIG["width"], caption  # it wrapped at ~980 px of 1920
    screenshot(page, "presenter-tour-1920")
    assert_clean(recorder)
