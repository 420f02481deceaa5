"""A layout (presenter mode toggled, the window resized, a page fitting itself) in the very task that finishes a typed
run, on the model page: the page hung there, its renderer climbing to gigabytes. Every plot's config was made afresh
on each draw, so Plotly took every redraw for a new config and plotted anew, then reacted again with its own config;
the run's last redraw and the layout's, in flight on one plot together, each found the other's config, for ever."""

from __future__ import annotations

from urllib.parse import quote

from playwright.sync_api import Page

from tests.browser.conftest import Recorder, screenshot, wait_loaded
from tests.conftest import LiveServer

LONG = "the quick brown fox jumps over the lazy dog and runs far away into the dark wood " * 3
SHORT = "zebra quiz"  # shorter than LONG, and no example of the test model has it

# On the page's next finished run, P is pressed inside that run's completion (chrome.js emits "layout" on the bus
# at once), then a task is queued: it runs (and says so) only if the page comes back from the layout's redraws.
ANSWERED = "unrolled: the page answers after the layout"
LAYOUT_WHEN_DONE = """([count, answered]) => {
  const perf = window.__unrolled;
  let loaded = perf.loaded;
  Object.defineProperty(perf, "loaded", {
    configurable: true,
    get: () => loaded,
    set: (v) => {
      loaded = v;
      if (v !== count) return;
      perf.laidOutOn = perf.trace.T;
      document.dispatchEvent(new KeyboardEvent("keydown", { key: "p", bubbles: true }));
      setTimeout(() => console.info(answered));
    },
  });
}"""

HEAT = """document.querySelector('.plot[data-name="hidden-state"]')"""  # the hidden-state heatmap's plot
HEATMAP = f"""() => {{
  const gd = {HEAT};
  return {{ range: gd.layout.xaxis.range, columns: gd.data[0].z[0].length, font: gd._fullLayout.font.size }};
}}"""


def test_a_layout_as_a_typed_run_finishes_leaves_the_page_answering(
    page: Page, recorder: Recorder, live: LiveServer
) -> None:
    page.goto(live.url + f"/models/chars-lstm?text={quote(LONG)}")
    wait_loaded(page)
    before = page.evaluate("() => window.__unrolled.cursor")
    assert before["T"] == len(LONG) and before["t"] == len(LONG) - 1  # a late step of the longer trace
    assert page.evaluate(HEATMAP)["columns"] == len(LONG)  # the heatmap is in view: the run's last redraw reaches it
    page.evaluate(LAYOUT_WHEN_DONE, [2, ANSWERED])

    # The hang's guard: a hung page never says it answers. The wait is Playwright's own, in this process (a wait
    # run in the page would hang with it): the test fails after the page's default timeout instead of hanging.
    with page.expect_console_message(lambda m: m.text == ANSWERED):
        page.keyboard.press("/")
        page.keyboard.press("Control+a")
        page.keyboard.type(SHORT)
        page.keyboard.press("Enter")
    assert page.evaluate("() => window.__unrolled.laidOutOn") == len(SHORT)  # the layout came with the new trace
    assert page.evaluate("() => document.documentElement.classList.contains('presenter')")
    # the new run plays on, and the heatmap shows the new trace whole, at presenter mode's type size
    page.wait_for_function(f"() => window.__unrolled.cursor?.T === {len(SHORT)}")
    page.wait_for_function(f"() => {HEAT}.data[0].z[0].length === {len(SHORT)}")
    heat = page.evaluate(HEATMAP)
    assert heat["range"] == [0.5, len(SHORT) + 0.5]
    assert heat["font"] == page.evaluate("async () => (await import('/static/js/plots.js')).fontSize()")
    screenshot(page, "rerun-layout-presenter")
    assert recorder.errors == [], recorder.errors
    assert recorder.outside() == [], recorder.outside()


def test_a_plot_redrawn_for_a_layout_is_redrawn_in_place(page: Page, recorder: Recorder, live: LiveServer) -> None:
    """The fact under the hang: a redraw with the plot's config is a react (the plot's SVG stays), never a new plot."""
    page.goto(live.url + f"/models/chars-lstm?text={quote(SHORT)}")
    wait_loaded(page)
    small = page.evaluate(HEATMAP)["font"]
    page.evaluate(f"() => {{ window.__svg = {HEAT}.querySelector('.main-svg'); }}")
    page.keyboard.press("p")  # presenter mode: a layout; the heatmap is drawn again at the larger type
    page.wait_for_function(f"() => {HEAT}._fullLayout.font.size > {small}")
    assert page.evaluate(f"() => {HEAT}.querySelector('.main-svg') === window.__svg")
    assert recorder.errors == [], recorder.errors
