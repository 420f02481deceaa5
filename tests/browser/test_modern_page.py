"""A token model of a linear recurrence (minGRU, S6) on its page in a real browser: the page names the gates its
cell's description gives (minGRU's update gate z, S6's step Δ), draws them for every step of a typed input, and
its gradient norms are the REST trace's; clean and offline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from playwright.sync_api import Page

from app.engine.layers import GATES, GRADIENT_NOTES
from app.web.config import Settings
from tests.browser.conftest import Recorder, assert_clean, screenshot, wait_loaded
from tests.conftest import LiveServer, write_model

TEXT = "zq vox jumps"  # typed: no built-in example has it


@pytest.fixture(scope="module")
def modern_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    models = tmp_path_factory.mktemp("modern-models")
    write_model(models, "chars-mingru", "mingru", "next_token")
    write_model(models, "chars-s6", "s6", "next_token", layers=2)
    settings = Settings(models_dir=models, max_steps=200, max_generate=10, max_concurrent=2, send_timeout=5.0)
    with LiveServer(settings) as live:
        yield live


def drawn(page: Page, name: str) -> list[dict[str, Any]]:
    """The traces of the plot `name`, once it has been scrolled into view and drawn (plots draw when on screen)."""
    page.locator(f'.plot[data-name="{name}"]').scroll_into_view_if_needed()
    page.wait_for_function(f"""() => document.querySelector('.plot[data-name="{name}"]').data?.length > 0""")
    value: list[dict[str, Any]] = page.evaluate(PLOTTED, name)
    return value


PLOTTED = """(name) => {
  const gd = document.querySelector(`.plot[data-name="${name}"]`);
  return (gd?.data ?? []).map((d) => ({ name: d.name, x: d.x ? Array.from(d.x) : null,
    y: d.y ? Array.from(d.y) : null, columns: d.z ? d.z[0].length : null }));
}"""


def test_a_linear_recurrence_shows_its_own_gates_and_the_traces_norms(
    page: Page, recorder: Recorder, modern_server: LiveServer
) -> None:
    for model in ("chars-mingru", "chars-s6"):
        cell = model.split("-")[1]
        page.goto(f"{modern_server.url}/models/{model}?text={quote(TEXT)}&panels=unrolled,gates,gradients")
        wait_loaded(page)
        badge = page.locator(".here .cell-badge")
        assert badge.inner_text() == cell.upper()
        assert badge.evaluate("(b) => getComputedStyle(b).backgroundColor") != "rgba(0, 0, 0, 0)"  # its colour
        caption = page.locator(".panel", has=page.locator('.plot[data-name="gradient-norms"]')).locator(".caption")
        assert GRADIENT_NOTES[cell] in caption.first.inner_text()  # its own cell's sentence, not the GRU's
        heat = drawn(page, "gates-over-time")
        assert [d["name"] for d in heat] == [f"{g} gate" for g in GATES[cell]]  # the shown layer's
        assert all(d["columns"] == len(TEXT) for d in heat)
        rest = httpx.post(f"{modern_server.url}/api/models/{model}/trace", json={"text": TEXT}, timeout=60).json()
        norms = drawn(page, "gradient-norms")
        line = next(d for d in norms if str(d["name"]).startswith("‖∂L/∂h_t‖"))  # layer 1's (S6: of its D × N state)
        assert isinstance(line["y"], list) and len(line["y"]) == len(TEXT)
        want = np.array(rest["grad_norms"]["hidden"][0], dtype=float)
        got = np.array([np.nan if v is None else v for v in line["y"]], dtype=float)
        np.testing.assert_allclose(got[want > 0], want[want > 0], rtol=1e-6)
        screenshot(page, f"modern-page-{cell}")
    assert_clean(recorder)
