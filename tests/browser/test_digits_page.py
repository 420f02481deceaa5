"""A spoken-digit classifier's page (the series family's classify target) in a real browser, projected: at 1280×720
in presenter mode an example of the held-out speaker and frames typed that no example has are classified, the
answer on the page is the API's, the frames and the label probabilities are drawn, and no text is under 14 px."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from app.web.config import ROOT
from tests.browser.conftest import Recorder, assert_clean, screenshot, wait_loaded
from tests.browser.test_text_sizes import PRESENTER_PX, measured, summary
from tests.conftest import LiveServer

MODEL = "digits-lstm"


def shown(page: Page) -> dict[str, Any]:
    value: dict[str, Any] = page.evaluate(
        """() => ({
      prediction: window.__unrolled.prediction,
      text: document.getElementById('prediction').textContent,
      frames: document.querySelector('#frames .plot')?.data?.[0]?.z?.length ?? 0,
      probs: document.querySelector('#class-probs .plot')?.data?.[0]?.z?.length ?? 0,
      steps: window.__unrolled.trace?.T ?? 0,
    })"""
    )
    return value


def rest_prediction(zoo: LiveServer, frames: list[list[float]]) -> str:
    body = httpx.post(f"{zoo.url}/api/models/{MODEL}/trace", json={"values": frames}, timeout=60).json()
    prediction: str = body["prediction"]
    return prediction


def test_a_digit_is_heard_and_read_on_the_projected_page(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    if not (ROOT / "models" / f"{MODEL}.json").exists():
        pytest.skip(f"{MODEL} is not trained")
    card = httpx.get(f"{zoo.url}/api/models/{MODEL}").json()
    examples = card["examples"]
    page.goto(f"{zoo.url}/models/{MODEL}")
    wait_loaded(page)
    page.keyboard.press("p")
    page.wait_for_function("() => document.documentElement.classList.contains('presenter')")
    # an example of the held-out speaker, chosen from the list
    page.select_option("#examples", "1")
    wait_loaded(page, 2)
    page.wait_for_function("() => document.querySelector('#class-probs .plot')?.data")
    s = shown(page)
    said = examples[1]["label"]
    assert s["prediction"] == rest_prediction(zoo, examples[1]["values"])
    assert s["text"].startswith(f"The model hears: {s['prediction']} (") and f"measured against {said}" in s["text"]
    assert s["frames"] == 13 and s["probs"] == 10 and s["steps"] == len(examples[1]["values"])
    # frames no example has (the first ten of another recording), typed as a presenter would, L against its answer
    page.select_option("#label-select", "")
    wait_loaded(page, 3)
    typed = examples[0]["values"][:10]
    box = page.locator("#text-input")
    box.click()
    page.keyboard.press("Control+a")
    page.keyboard.type("; ".join(" ".join(str(v) for v in frame) for frame in typed))
    box.press("Enter")
    wait_loaded(page, 4)
    page.evaluate("() => document.activeElement?.blur()")
    s = shown(page)
    assert s["steps"] == 10 and s["prediction"] == rest_prediction(zoo, typed)
    assert s["text"] == page.evaluate("() => document.getElementById('prediction').textContent")
    assert s["prediction"] in [str(d) for d in range(10)]
    small = summary(measured(page), PRESENTER_PX, PRESENTER_PX)
    assert not small["below"], "text under 14 px in presenter mode:\n  " + "\n  ".join(small["below"][:40])
    screenshot(page, "digits-presenter-1280x720")
    assert_clean(recorder)
