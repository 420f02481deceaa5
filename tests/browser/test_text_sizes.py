"""Readable on every page: the size every piece of text is drawn at, measured in real Chromium on the real zoo, with
an input the audience typed (no example has it), at 1280×720 without and with presenter mode (P) and at 1920×1080.
The table goes to test-output/text-sizes.json.

What is asked of each (issue 22, items 5 and 6):
- a laptop (no P): body text at least 14 px, text in a plot or a drawing at least 11 px;
- presenter mode at 1280×720 (a projector): no text under 14 px, /docs included;
- presenter mode at 1920×1080: the page grows with the screen, as a projected slide does: no text under 14 px × 1.5.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Page, ViewportSize

from app.web.config import ROOT
from tests.browser.conftest import Recorder, assert_clean
from tests.browser.test_tour import MEASURE
from tests.conftest import LiveServer

BODY_PX = 14.0  # a laptop: body text
PLOT_PX = 11.0  # a laptop: the text of a plot or a drawing (SVG)
PRESENTER_PX = 14.0  # projected at 1280×720, read from the back of a room
BIG: ViewportSize = {"width": 1920, "height": 1080}
SMALL: ViewportSize = {"width": 1280, "height": 720}
GROWTH = BIG["height"] / SMALL["height"]  # the room is 1.5× bigger: so is what it reads
TOLERANCE = 0.05  # px: sizes are rounded to 0.01 px and zoom factors to 0.001


@dataclass(frozen=True)
class Visit:
    """A page, what the audience types into it (None: a page without an input) and what says it is drawn."""

    name: str
    path: str
    typed: str | None = None
    ready: str = "() => true"
    projected: bool = False  # made for a projector (the tour): at 1920×1080 it grows, P or not


LOADED = "() => (window.__unrolled?.loaded ?? 0) >= 1"
VISITS = [
    Visit("home", "/"),
    Visit("model-alphabet", "/models/alphabet-gru", "QWERTY STUVWXYZ", LOADED),
    Visit("model-charlm", "/models/charlm-lstm", "Our schools, tonight", LOADED),
    Visit("model-memory", "/models/memory-lstm", "E 31415 92653 ?", LOADED),
    Visit("model-sentiment", "/models/sentiment-rnn", "Clumsy, but oddly charming.", LOADED),
    Visit("compare", "/compare?task=sentiment", "Clumsy, but oddly charming.", LOADED),
    Visit("translation", "/models/numbers-gru-attention", "six hundred and four", LOADED),
    Visit("melody", "/models/melody-lstm", "D4:1 F4:1 A4:2 G4:0.5 F4:0.5", LOADED),
    Visit("series", "/models/sunspots-gru", "12, 40, 88, 130, 95, 60, 31, 9, 4, 20, 70", LOADED),
    Visit("lab", "/lab", "F 2718 2818 ?", "() => (window.__unrolled.knobs?.draws ?? 0) >= 1"),
    Visit("docs", "/docs", None, "() => document.querySelectorAll('.opblock-tag, .opblock').length > 0"),
    Visit("upload", "/upload"),
    Visit("tour", "/tour?scene=3", "A dull and tiresome film.", "() => window.__unrolled?.tour?.ready", projected=True),
]


def type_input(page: Page, visit: Visit) -> None:
    """What a presenter does: / (or a click) to the input, select all, type, Enter; then until it is drawn again."""
    assert visit.typed is not None
    loaded = page.evaluate("() => window.__unrolled?.loaded ?? 0")
    box = page.locator("#input-0, #text-input").first
    box.click()
    page.keyboard.press("Control+a")
    page.keyboard.type(visit.typed)
    page.keyboard.press("Enter")
    if visit.name == "tour":
        page.wait_for_function(
            "(t) => window.__unrolled.tour.ready && window.__unrolled.trace?.done"
            " && window.__unrolled.trace.tokens.join('').replace(/\\s/g, '').toLowerCase()"
            " === t.replace(/\\s/g, '').toLowerCase()",
            arg=visit.typed,
        )
    elif visit.name == "lab":
        page.wait_for_function("(t) => new URL(location.href).searchParams.get('text') === t", arg=visit.typed)
    else:
        page.wait_for_function(f"() => (window.__unrolled?.loaded ?? 0) > {loaded}")
    page.evaluate("() => document.activeElement?.blur()")  # the keys drive the page again


TWO_FRAMES = "() => new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(() => ok(true))))"


def visit_everything(page: Page) -> None:
    """Views below the fold are drawn once scrolled to: scroll the page through, then back to its top."""
    height = page.evaluate("() => document.documentElement.scrollHeight")
    step = page.evaluate("() => innerHeight")
    for y in range(0, height + step, step // 2):
        page.evaluate(f"() => window.scrollTo(0, {y})")
        page.evaluate(TWO_FRAMES)
    page.evaluate("() => window.scrollTo(0, 0)")


def measured(page: Page) -> list[dict[str, Any]]:
    """Every piece of text on the whole page, once two measures a frame apart agree (the views have laid out)."""
    last: list[dict[str, Any]] = []
    for _ in range(40):
        visit_everything(page)
        items: list[dict[str, Any]] = page.evaluate(MEASURE, True)
        sizes = sorted((i["text"], i["px"]) for i in items)
        if sizes == sorted((i["text"], i["px"]) for i in last):
            return items
        last = items
        page.wait_for_function("() => new Promise((ok) => setTimeout(() => ok(true), 200))")
    return last


def presenter_small_text(page: Page) -> list[str]:
    """Every piece of text under 14 px in presenter mode (P pressed, then pressed again to leave it): a page's own test
    asks it at 1280×720."""
    page.keyboard.press("p")
    page.wait_for_function("() => document.documentElement.classList.contains('presenter')")
    items: list[dict[str, Any]] = measured(page)
    small = [f"{i['px']} px {i['tag']}.{i['cls']} {i['text']!r}" for i in items if i["px"] < PRESENTER_PX - TOLERANCE]
    page.keyboard.press("p")
    page.wait_for_function("() => !document.documentElement.classList.contains('presenter')")
    return small


def px(item: dict[str, Any]) -> float:
    return float(item["px"])


def summary(items: list[dict[str, Any]], body_px: float, plot_px: float) -> dict[str, Any]:
    """The smallest text (HTML and plot apart) and every piece below its floor."""
    html = [i for i in items if not i["svg"]]
    plot = [i for i in items if i["svg"]]
    small = [i for i in html if i["px"] < body_px - TOLERANCE] + [i for i in plot if i["px"] < plot_px - TOLERANCE]
    return {
        "min_body_px": min((i["px"] for i in html), default=None),
        "min_plot_px": min((i["px"] for i in plot), default=None),
        "chars": sum(i["chars"] for i in items),
        "below": [f"{i['px']:.1f} px {i['tag']}.{i['cls']} {i['text']!r}" for i in sorted(small, key=px)],
    }


TABLE = ROOT / "test-output" / "text-sizes.json"


def record(name: str, row: dict[str, Any]) -> None:
    """The page's row into the table (the other pages' rows kept)."""
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    table = json.loads(TABLE.read_text(encoding="utf-8")) if TABLE.exists() else {}
    table[name] = row
    TABLE.write_text(json.dumps(table, indent=1, ensure_ascii=False), encoding="utf-8")


@pytest.mark.parametrize("visit", VISITS, ids=[v.name for v in VISITS])
def test_every_page_is_readable_on_a_laptop_projected_and_on_a_big_screen(
    page: Page, recorder: Recorder, zoo: LiveServer, visit: Visit
) -> None:
    page.goto(zoo.url + visit.path)
    page.wait_for_function(visit.ready)
    if visit.typed is not None:
        type_input(page, visit)
    # a laptop's floors, or a projector's for a page made for one (the tour), which grows with a bigger screen
    body_px, plot_px = (PRESENTER_PX, PRESENTER_PX) if visit.projected else (BODY_PX, PLOT_PX)
    big = GROWTH * PRESENTER_PX
    row = {"1280×720": summary(measured(page), body_px, plot_px)}
    page.set_viewport_size(BIG)
    row["1920×1080"] = summary(measured(page), *((big, big) if visit.projected else (body_px, plot_px)))
    page.keyboard.press("p")
    page.wait_for_function("() => document.documentElement.classList.contains('presenter')", timeout=5_000)
    items = measured(page)
    if visit.projected:  # the tour's stage is fitted to the room's height: P's larger type leaves it a smaller zoom
        big = max(PRESENTER_PX, PRESENTER_PX * page.evaluate("() => window.__unrolled.tour.zoom"))
    row["1920×1080 P"] = summary(items, big, big)
    page.set_viewport_size(SMALL)
    row["1280×720 P"] = summary(measured(page), PRESENTER_PX, PRESENTER_PX)
    record(visit.name, row)
    print(visit.name, {mode: (r["min_body_px"], r["min_plot_px"], len(r["below"])) for mode, r in row.items()})
    failures = [f"{mode}: {b}" for mode, r in row.items() for b in r["below"]]
    assert not failures, f"{visit.name}: text below its floor:\n  " + "\n  ".join(failures[:60])
    assert_clean(recorder)
