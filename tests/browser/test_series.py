"""The series page in a real browser, on the zoo's sunspots models: an example traced (the one-step predictions are
the API's) and forecast, the cursor shared by the plot, the unrolled network and the states, ∂L/∂x_t uncovered by
the BPTT sweep, pasted numbers in any separator, and a bad number shown as the API's own message."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from playwright.sync_api import Page

from tests.browser.conftest import Recorder, assert_clean, screenshot, state, wait_loaded
from tests.conftest import LiveServer

PASTED = "10, 20\n40;80  120\t90,60 30 15 8 12 30 60"
NUMBERS = [10.0, 20.0, 40.0, 80.0, 120.0, 90.0, 60.0, 30.0, 15.0, 8.0, 12.0, 30.0, 60.0]


def series(page: Page) -> dict[str, Any]:
    value: dict[str, Any] = page.evaluate(
        """() => {
      const gd = document.querySelector('#series .plot');
      const error = document.getElementById('values-error');
      return {
        ...window.__unrolled.series,
        forecast: window.__unrolled.forecast,
        traces: gd.data ? gd.data.map((d) => ({name: d.name, n: d.x.length})) : [],
        error: error.hidden ? null : error.textContent,
        readout: document.getElementById('series-readout').textContent,
        current: document.querySelector('#unrolled .current .tok')?.textContent ?? null,
      };
    }"""
    )
    return value


def test_an_example_is_traced_and_forecast_on_one_cursor(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    page.goto(zoo.url + "/models/sunspots-lstm")
    wait_loaded(page)
    page.wait_for_function("() => window.__unrolled.forecast?.length === 20")
    card = httpx.get(zoo.url + "/models/sunspots-lstm").text  # the example the page opens with
    assert "1909" in card
    s = series(page)
    values = s["values"]
    assert s["steps"] == 60 and values[:3] == [43.9, 18.6, 5.7]
    rest = httpx.post(zoo.url + "/api/models/sunspots-lstm/trace", json={"values": values, "loss": "last"}).json()
    assert s["predicted"] == pytest.approx([p[0] for p in rest["predicted"]], rel=1e-3)
    forecast = httpx.post(zoo.url + "/api/models/sunspots-lstm/generate", json={"values": values, "length": 20}).json()
    assert s["forecast"] == pytest.approx([v[0] for v in forecast["forecast"]], rel=1e-5)
    assert [t["n"] for t in s["traces"]] == [60, 60, 21]  # the data, one step ahead, the forecast from 1968
    # the cursor starts at the last year; the readout, the plot and the unrolled network agree on it
    assert state(page)["t"] == 59 and s["readout"].startswith("1968: 106. From it and every value before")
    assert s["current"] == "106"
    page.keyboard.press("Home")
    page.wait_for_function("() => window.__unrolled.state.t === 0")
    s = series(page)
    assert s["readout"].startswith("1909: 43.9.") and "predicts 1910" in s["readout"] and "it was 18.6" in s["readout"]
    assert s["current"] == "43.9"
    assert_clean(recorder)


def test_the_bptt_sweep_uncovers_which_past_years_mattered(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    page.goto(zoo.url + "/models/sunspots-gru?phase=backward&step=50")
    wait_loaded(page)
    page.wait_for_function("() => document.querySelector('#input-grad .plot')?.data?.length === 1")
    g = page.evaluate(
        """() => {
      const gd = document.querySelector('#input-grad .plot');
      const text = document.getElementById('input-grad-readout').textContent;
      return {x: gd.data[0].x, y: gd.data[0].y, mask: gd.__overlay.state.mask, text};
    }"""
    )
    grads = page.evaluate("() => window.__unrolled.trace.gradValues.map((v) => v[0])")
    assert g["x"][0] == 1909 and g["y"] == grads and len(grads) == 60
    assert grads[-1] == 0  # L is the last prediction's error: the last value predicts nothing that is scored
    assert g["mask"] == [1908.5, 1957.5]  # the years BPTT has not reached yet are hidden
    assert g["text"].startswith("∂L/∂x at 1958:")
    assert_clean(recorder)


def test_pasted_numbers_are_traced_and_forecast(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    page.goto(zoo.url + "/models/sunspots-rnn")
    wait_loaded(page)
    page.fill("#text-input", PASTED)
    page.fill("#first-input", "")
    page.select_option("#length-select", "10")
    page.wait_for_function("() => (window.__unrolled.loaded ?? 0) >= 2 && window.__unrolled.forecast?.length === 10")
    s = series(page)
    assert s["values"] == NUMBERS and s["error"] is None
    assert s["readout"].startswith("step 13: 60.0. From it and every value before, the model predicts step 14:")
    # the numbers are in the URL, so a link replays them
    assert parse_qs(urlsplit(page.url).query)["values"] == [", ".join(f"{v:g}" for v in NUMBERS)]
    assert_clean(recorder)


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("10, 20, thirty, 40", "step 2: 'thirty' is not a number"),
        ("10 20 NaN 40", "step 2: 'NaN' is not a number"),
        ("5 1e300", "standard deviations"),
    ],
)
def test_a_bad_number_shows_the_apis_message(
    page: Page, recorder: Recorder, zoo: LiveServer, typed: str, says: str
) -> None:
    page.goto(zoo.url + "/models/sunspots-lstm")
    wait_loaded(page)
    page.fill("#text-input", typed)
    page.keyboard.press("Enter")
    page.wait_for_function("() => !document.getElementById('values-error').hidden")
    message = page.locator("#values-error").inner_text()
    assert says in message
    api = httpx.post(zoo.url + "/api/models/sunspots-lstm/trace", json={"values": [10, 20, "thirty", 40]}).json()
    if "thirty" in typed:
        assert message == api["message"]  # the API's words, as they are
    # the page stays as it was: the example's trace, no error but the message
    assert series(page)["steps"] == 60
    assert_clean(recorder)


def test_the_series_page_at_1920_with_a_forecast(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(zoo.url + "/models/sunspots-lstm?phase=backward&step=40")
    wait_loaded(page)
    page.wait_for_function("() => window.__unrolled.forecast?.length === 20")
    small = page.evaluate(
        """() => [...document.querySelectorAll('#series svg text, #input-grad svg text, .overlay-mask span')]
          .filter((t) => t.textContent.trim() && t.getBoundingClientRect().width > 0)
          .map((t) => parseFloat(getComputedStyle(t).fontSize)).filter((s) => s < 14)"""
    )
    assert small == []
    screenshot(page, "series-forecast")
    assert_clean(recorder)


def test_typed_numbers_read_at_1280_by_720_in_presenter_mode(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    """Numbers a presenter types (no example has them), projected at 1280×720: no text on the plots or the
    unrolled network under 14 px."""
    page.set_viewport_size({"width": 1280, "height": 720})
    values = quote(", ".join(f"{v:g}" for v in NUMBERS))
    page.goto(zoo.url + f"/models/sunspots-gru?values={values}&presenter=1")
    wait_loaded(page)
    page.wait_for_function("() => window.__unrolled.forecast?.length > 0")
    assert series(page)["values"] == NUMBERS
    small = page.evaluate(
        """() => [...document.querySelectorAll('svg text')]
          .filter((t) => t.textContent.trim() && t.getBoundingClientRect().width > 0)
          .map((t) => [t.textContent.trim(), parseFloat(getComputedStyle(t).fontSize)]).filter(([, s]) => s < 14)"""
    )
    assert small == []
    assert_clean(recorder)


FAR_TYPED = "12, 35, 70, -20, 110, 95, 60, 90000, 28, 9, 4"  # a sunspot number is never negative; 90,000 is absurd


def test_values_far_outside_the_training_range_are_warned_of_and_the_axis_keeps_the_rest_readable(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(zoo.url + "/models/sunspots-gru?presenter=1")
    wait_loaded(page)
    page.fill("#text-input", FAR_TYPED)
    page.fill("#first-input", "1911")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.__unrolled.series?.steps === 11 && window.__unrolled.forecast?.length > 0")
    warning = page.locator("#values-warning")
    assert warning.is_visible()
    text = warning.inner_text()
    assert "-20 (1914)" in text and "90000 (1918)" in text and "(0 to 154.4)" in text, text
    plot = page.evaluate(
        """() => { const gd = document.querySelector('#series .plot');
          const far = gd.data.find((d) => d.name.startsWith('far outside'));
          return {range: gd._fullLayout.yaxis.range, x: far.x, y: far.y, text: far.text}; }"""
    )
    lo, hi = plot["range"]
    # the axis holds the plausible values (up to 110) and not the 90,000, which would flatten them all to 0
    assert lo <= 0 and 110 < hi < 231.6, plot["range"]
    assert plot["x"] == [1914, 1918] and plot["y"] == [lo, hi]  # each far value marked at the edge it lies beyond
    assert plot["text"] == ["-20.0 ↓", "90000 ↑"]
    small = page.evaluate(
        """() => [...document.querySelectorAll('#series svg text, #values-warning')]
          .filter((t) => t.textContent.trim() && t.getBoundingClientRect().width > 0)
          .map((t) => [t.textContent.trim(), parseFloat(getComputedStyle(t).fontSize)]).filter(([, s]) => s < 14)"""
    )
    assert small == [], small
    screenshot(page, "series-far-values")
    # plausible numbers again: no warning, the axis its own
    page.fill("#text-input", "12, 35, 70, 110, 95, 60, 28")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.__unrolled.series?.steps === 7")
    page.wait_for_function("() => document.getElementById('values-warning').hidden")
    assert_clean(recorder)
