"""Issue 28's cells on the pages, in real Chromium over the repository's zoo, with inputs no built-in example has:
memory-s6's hidden attention drawn beside its loss as REST computes it, lit at the cursor's step and exportable; the
unrolled network's arrow from one step to the next labelled with what the cell multiplies its state by (not W_hh,
which minGRU and S6 do not have); the lab's Jacobian triangle and "change one token" of memory-mingru the REST
routes' numbers; presenter mode at 1280×720 with no text under 14 px on the S6 page."""

from __future__ import annotations

import math
from typing import Any

import httpx
import numpy as np
from playwright.sync_api import Page

from tests.browser.conftest import Recorder, assert_clean, screenshot, wait_loaded
from tests.browser.test_text_sizes import PRESENTER_PX, measured, summary
from tests.conftest import LiveServer

# Typed by the audience: no card's example has these (a letter, digits, '?').
S6_TEXT = "F 2718 2818 4590 ?"
LAB_TEXT = "B 16180 33988 74989 48482 04586 83436 ?"  # 30 digits: past the memory lesson's gap of 26

HIDDEN = """() => { const gd = document.querySelector('.plot[data-name="hidden-attention"]');
  return gd?.data?.length ? { z: gd.data[0].z, zmin: gd.data[0].zmin, zmax: gd.data[0].zmax } : null; }"""


# where the overlay's row band is, and where row t = cursor's step is on the plot (page pixels)
LIT = """() => { const gd = document.querySelector('.plot[data-name="hidden-attention"]');
  const band = gd.parentElement.querySelector('.overlay-row');
  const mask = gd.parentElement.querySelector('.overlay-mask');
  const t = window.__unrolled.state.t; const fl = gd._fullLayout; const r = gd.getBoundingClientRect();
  const b = band?.getBoundingClientRect();
  return { row: Boolean(b && band.style.display !== 'none'), rowY: b ? b.top + b.height / 2 : null,
           cellY: r.top + fl.yaxis._offset + fl.yaxis.l2p(t), mask: mask.style.display !== 'none' }; }"""


def type_input(page: Page, text: str) -> None:
    """What a presenter does: click the input, select all, type, Enter; then until the new trace is whole."""
    loaded = page.evaluate("() => window.__unrolled?.loaded ?? 0")
    page.locator("#text-input").click()
    page.keyboard.press("Control+a")
    page.keyboard.type(text)
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => (window.__unrolled?.loaded ?? 0) > {loaded}")
    page.evaluate("() => document.activeElement?.blur()")


def rest_trace(server: LiveServer, model: str, text: str) -> dict[str, Any]:
    r = httpx.post(f"{server.url}/api/models/{model}/trace", json={"text": text}, timeout=120)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_s6_draws_its_hidden_attention_as_rest_computes_it(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    page.goto(zoo.url + "/models/memory-s6")
    wait_loaded(page)
    type_input(page, S6_TEXT)
    panel = page.locator('[data-panel="hiddenAttention"]')
    panel.scroll_into_view_if_needed()
    page.wait_for_function(f"() => ({HIDDEN})()?.z.length === {len(S6_TEXT.replace(' ', ''))}")
    drawn = page.evaluate(HIDDEN)
    body = rest_trace(zoo, "memory-s6", S6_TEXT)
    rows = body["layers"][0]["attention"]
    T = len(rows)
    assert T == len(body["tokens"]) == len(drawn["z"])
    # every drawn cell is REST's ᾱ_{t,s} (the stream's float32, REST's shortest float32 digits); nothing above the
    # diagonal; one cell read on its own, the '?' reading the letter
    for t in range(T):
        assert all(v is None for v in drawn["z"][t][t + 1 :])
        np.testing.assert_allclose(drawn["z"][t][: t + 1], rows[t], rtol=1e-6, atol=1e-12)
    assert math.isclose(drawn["z"][T - 1][0], rows[T - 1][0], rel_tol=1e-6)
    largest = max(abs(v) for row in rows for v in row)
    assert math.isclose(drawn["zmax"], largest, rel_tol=1e-6) and drawn["zmin"] == -drawn["zmax"]  # 0 is white
    # the cursor's step is lit: End (the typed input was playing), back to the forward sweep, three steps back;
    # the readout names that step and the earlier step it reads most, by REST's row
    page.keyboard.press("End")
    if page.evaluate("() => window.__unrolled.state.phase") == "backward":
        page.keyboard.press("b")
        page.keyboard.press("End")
    for _ in range(3):
        page.keyboard.press("ArrowLeft")
    page.wait_for_function(
        f"() => window.__unrolled.state.phase === 'forward' && window.__unrolled.state.t === {T - 4}"
    )
    best = max(range(T - 3), key=lambda s: abs(rows[T - 4][s]))
    tokens = body["tokens"]
    want = f"step {T - 3} “{tokens[T - 4]}” reads most from step {best + 1} “{tokens[best]}”"
    page.wait_for_function(
        "(w) => document.querySelector('#hidden-attention-info').textContent.startsWith(w)", arg=want
    )
    lit = page.evaluate(LIT)
    assert lit["row"] and abs(lit["rowY"] - lit["cellY"]) < 2.0, lit  # the band over row t
    assert lit["mask"], lit  # the steps after t not read yet
    assert panel.locator("[data-tools] button").count() == 2  # PNG and SVG, as every exportable view
    screenshot(page, "s6-hidden-attention")
    assert_clean(recorder)


RECURRENT_LABELS = """() => [...document.querySelectorAll('#unrolled svg text.w')]
  .filter((t) => t.style.display !== 'none' && t.closest('g.step')?.style.display !== 'none')
  .map((t) => t.textContent).filter((s) => !s.startsWith('W_xh') && !s.startsWith('W_hy'))"""


def test_the_unrolled_arrow_of_a_linear_recurrence_says_what_carries_its_state(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    for model, label in (("memory-mingru", "(1−zₜ)⊙"), ("memory-s6", "Āₜ"), ("memory-gru", "W_hh")):
        page.goto(zoo.url + f"/models/{model}")
        wait_loaded(page)
        type_input(page, S6_TEXT)
        labels = page.evaluate(RECURRENT_LABELS)
        assert labels and set(labels) == {label}, (model, labels)
    assert_clean(recorder)


JACOBIAN = """() => [...document.querySelectorAll('#jacobian-plots .lab-cell-plot')].filter((b) => !b.hidden)
  .map((b) => ({ title: b.querySelector('.lab-plot-title').textContent.trim(),
                 z: b.querySelector('.plot').data[0].z }))"""
DIFF = """() => document.querySelector('#diff-plots .plot').data.map((d) => ({ name: d.name, y: d.y }))"""


def test_the_lab_draws_mingrus_triangle_and_diff_as_rest_computes_them(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    page.goto(zoo.url + "/lab")
    page.wait_for_function("() => (window.__unrolled.loaded ?? 0) >= 1 && window.__unrolled.labDiff")
    jacobians = page.evaluate("() => window.__unrolled.labJacobian.drawn")
    diffs = page.evaluate("() => window.__unrolled.labDiff.drawn")
    page.locator("#text-input").click()
    page.keyboard.press("Control+a")
    page.keyboard.type(LAB_TEXT)
    page.keyboard.press("Enter")
    page.wait_for_function(
        f"() => window.__unrolled.labJacobian.drawn > {jacobians} && window.__unrolled.labDiff.drawn > {diffs}"
    )
    triangles = page.evaluate(JACOBIAN)
    titles = [t["title"] for t in triangles]
    # torch.nn's three first, then the task's linear recurrences, each triangle titled with its own model
    assert titles[:3] == ["RNN memory-rnn", "LSTM memory-lstm", "GRU memory-gru"], titles
    assert "MINGRU memory-mingru" in titles and "S6 memory-s6" in titles, titles
    mine = triangles[titles.index("MINGRU memory-mingru")]["z"]
    asked = {"text": LAB_TEXT, "norm": "spectral"}
    r = httpx.post(f"{zoo.url}/api/models/memory-mingru/jacobian", json=asked, timeout=120)
    assert r.status_code == 200, r.text
    norms = r.json()["norms"]
    T = len(norms)
    assert len(mine) == T == len(LAB_TEXT.replace(" ", ""))
    lo = min(min(v for v in row if v is not None and v > 0) for row in norms)
    for t in range(T):
        for s in range(T):
            want = norms[t][s]
            if want is None:
                assert mine[t][s] is None
            elif want > 0:  # drawn as log10 ‖∂h_t/∂h_s‖
                assert math.isclose(mine[t][s], math.log10(want), rel_tol=1e-9, abs_tol=1e-12), (t, s)
            else:
                assert mine[t][s] <= math.log10(lo)
    # the diff: the edit the page made (the letter changed), REST's ‖h_t − h′_t‖ for minGRU, drawn where positive
    edited = page.input_value("#edited-input")
    assert edited != LAB_TEXT
    d = httpx.post(f"{zoo.url}/api/models/memory-mingru/diff", json={"text": LAB_TEXT, "edited": edited}, timeout=120)
    assert d.status_code == 200, d.text
    want_change = d.json()["state_change"][0]
    lines = page.evaluate(DIFF)
    names = [line["name"].split()[0] for line in lines]
    assert names[:3] == ["RNN", "LSTM", "GRU"] and "MINGRU" in names and "S6" in names, names
    got = lines[names.index("MINGRU")]["y"]
    assert len(got) == T
    for g, w in zip(got, want_change, strict=True):
        assert (g is None) if w <= 0 else math.isclose(g, w, rel_tol=1e-12)
    screenshot(page, "lab-linear-recurrences", full_page=True)
    assert_clean(recorder)


def test_presenter_mode_at_1280_by_720_has_no_text_under_14_px_on_the_s6_page(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    """The S6 page with its hidden attention (the lab's lower sections with every cell: test_lab.py's typed input)."""
    page.goto(zoo.url + "/models/memory-s6?presenter=1")
    wait_loaded(page)
    type_input(page, S6_TEXT)
    assert page.evaluate("() => document.documentElement.classList.contains('presenter')")
    page.locator('[data-panel="hiddenAttention"]').scroll_into_view_if_needed()
    page.wait_for_function(f"() => ({HIDDEN})()?.z.length === {len(S6_TEXT.replace(' ', ''))}")
    small = summary(measured(page), PRESENTER_PX, PRESENTER_PX)["below"]
    assert not small, small[:20]
    screenshot(page, "s6-page-presenter-1280", full_page=True)
    assert_clean(recorder)
