"""A bidirectional model's page in a real browser: a 2-layer bidirectional LSTM made by a plain torch script
(its own key names), imported, then read on its page. Every view names each layer entry's direction (forward,
reverse) and never takes l0_reverse for a second layer; the reverse rows of the unrolled network pass h_t right
to left and their BPTT runs from the first step to the last; the gradient norms drawn are the REST trace's; in
presenter mode at 1280×720 no text is under 14 px."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import torch
from playwright.sync_api import Page

from app.web.config import Settings
from app.zoo import importer
from tests.browser.conftest import SCREENSHOTS, Recorder, assert_clean, screenshot, wait_loaded
from tests.browser.test_tour import MEASURE, MIN_PX
from tests.conftest import LiveServer
from tests.zoo.test_import import train_char_model

MODEL = "their-bilstm"
TEXT = "the cat sat on the mat"
T = len(TEXT)
NAMES = ["layer 1 →", "layer 1 ← reverse", "layer 2 →", "layer 2 ← reverse"]


@pytest.fixture(scope="module")
def bidi_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Their model as their script saves it (torch.save of a state dict named emb, lstm, fc; a {token: id}
    vocabulary with <unk> last), imported as `unrolled import` does, and served."""
    src, models = tmp_path_factory.mktemp("bidi-src"), tmp_path_factory.mktemp("bidi-models")
    model, vocab = train_char_model()
    torch.save(model.state_dict(), src / "char.pt")
    (src / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    importer.write(importer.build(src / "char.pt", src / "vocab.json", MODEL), models)
    settings = Settings(models_dir=models, max_steps=200, max_generate=10, max_concurrent=2, send_timeout=5.0)
    with LiveServer(settings) as live:
        yield live


def open_page(page: Page, live: LiveServer, query: str) -> None:
    page.goto(f"{live.url}/models/{MODEL}?text={quote(TEXT)}&{query}")
    wait_loaded(page)


def cells(page: Page) -> list[dict[str, Any]]:
    """Each step drawn in the unrolled network: t, and per row its direction, its box's label and whether its
    h_t arrow points right (from step t to t+1) or left (from t+1 into t)."""
    value: list[dict[str, Any]] = page.evaluate(
        """() => [...document.querySelectorAll('#unrolled g.step')].filter((g) => g.style.display !== 'none')
          .map((g) => ({
            t: Number(g.querySelector('[data-t]').dataset.t),
            rows: [...g.querySelectorAll('text[data-row]')].map((label) => {
              const hh = g.querySelector(`line[data-row="${label.dataset.row}"]`);
              return { row: Number(label.dataset.row), direction: label.dataset.direction, label: label.textContent,
                       rightward: Number(hh.getAttribute('x2')) > Number(hh.getAttribute('x1')) };
            }),
          }))"""
    )
    return value


def panel_shot(page: Page, selector: str, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(selector).screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def scroll_through(page: Page) -> None:
    """Plots off screen are drawn when scrolled to."""
    height = page.evaluate("() => document.body.scrollHeight")
    for y in range(0, height, 500):
        page.evaluate(f"() => window.scrollTo(0, {y})")
        page.wait_for_timeout(120)


def test_both_directions_are_drawn_and_named(page: Page, recorder: Recorder, bidi_server: LiveServer) -> None:
    ct = 10  # the BPTT sweep at step 11: the forward rows' BPTT has reached t ≥ 10, the reverse rows' t ≤ T−1−10
    open_page(page, bidi_server, f"loss=last&phase=backward&step={ct + 1}")
    tr = page.evaluate("() => ({directions: window.__unrolled.trace.directions, L: window.__unrolled.trace.L})")
    assert tr == {"directions": ["forward", "reverse", "forward", "reverse"], "L": 4}  # two layers, not four
    assert page.locator("#unrolled .unrolled-row").all_inner_texts() == NAMES
    assert page.locator("#layer-select option").all_inner_texts() == [
        "1 → forward", "1 ← reverse", "2 → forward", "2 ← reverse"
    ]  # fmt: skip
    assert "bidirectional" in page.inner_text(".model-shape")
    # it reads its input both ways, so it cannot write text token by token: no Generate link, and that page says why
    assert page.locator(".crumbs a", has_text="Generate").count() == 0
    generate = httpx.get(f"{bidi_server.url}/models/{MODEL}/generate")
    assert generate.status_code == 404 and "both ways" in generate.text

    drawn = cells(page)
    assert len(drawn) >= 8 and any(c["t"] < ct for c in drawn) and any(c["t"] > T - 1 - ct for c in drawn)
    for c in drawn:
        for r in c["rows"]:
            assert r["direction"] == ("reverse" if r["row"] % 2 else "forward")
            if c["t"] < T - 1:
                assert r["rightward"] == (r["direction"] == "forward"), (c["t"], r)  # a reverse row's h_t goes left
            # coloured by ‖∂L/∂h_t‖ (a number in the box) where that direction's BPTT has been, else the cell's name
            reached = c["t"] >= ct if r["direction"] == "forward" else c["t"] <= T - 1 - ct
            assert (r["label"] != "LSTM") == reached, (c["t"], r)
    panel_shot(page, "#panel-unrolled", "bidirectional-backward")
    # the exported picture names its rows too (on the page the names are HTML over the SVG)
    with page.expect_download() as svg:
        page.click("#tools-unrolled [data-export=svg]")
    exported = Path(svg.value.path()).read_text(encoding="utf-8")
    assert all(f">{name}</text>" in exported for name in NAMES)
    assert page.locator("#unrolled svg .row-names").count() == 0  # written for the export only

    # The norms drawn are the trace's: the same as the REST body's, direction by direction.
    body = httpx.post(f"{bidi_server.url}/api/models/{MODEL}/trace", json={"text": TEXT, "loss": "last"}).json()
    assert [layer["direction"] for layer in body["layers"]] == ["forward", "reverse", "forward", "reverse"]
    shown: list[list[float]] = page.evaluate("() => window.__unrolled.trace.grad.hidden.map((a) => Array.from(a))")
    rest: list[list[float]] = body["grad_norms"]["hidden"]
    for got, want in zip(shown, rest, strict=True):
        assert got == pytest.approx(want, rel=1e-3, abs=1e-12)  # the page asks for 4 significant digits
    # The fact the two directions show, with the loss at the last step that has a target (T−2, the last token):
    # the top layer's forward h_{T−1} is read after the loss, its gradient 0; its BPTT fades back towards the
    # first step. The top layer's reverse direction reaches the loss only from steps T−2 and T−1: 0 everywhere before.
    top_forward, top_reverse = shown[2], shown[3]
    assert top_forward[T - 1] == 0 and all(v > 0 for v in top_forward[: T - 1])
    assert max(top_forward[:4]) < top_forward[T - 2] / 100
    assert all(v == 0 for v in top_reverse[: T - 2]) and top_reverse[T - 2] > 0 and top_reverse[T - 1] > 0

    # The gradient plot: one line per direction of each layer, named.
    page.locator("#panel-gradients").scroll_into_view_if_needed()
    page.wait_for_function("() => document.querySelector('#gradients .plot')?.data?.length > 0")
    names: list[str] = page.evaluate("() => document.querySelector('#gradients .plot').data.map((d) => d.name)")
    assert [n for n in names if n.startswith("‖∂L/∂h_t‖")] == [f"‖∂L/∂h_t‖ ({n})" for n in NAMES]
    readout = page.inner_text("#gradients-readout")
    assert "‖∂L/∂h_t‖ (layer 1 ← reverse)" in readout and "‖∂L/∂h_t‖ (layer 2 →)" in readout
    page.wait_for_timeout(300)
    panel_shot(page, "#panel-gradients", "bidirectional-gradients")

    # Choosing the first layer's reverse direction: the states, the gates and the cell at this step say so.
    page.select_option("#layer-select", "1")
    page.wait_for_function("() => new URL(location.href).searchParams.get('layer') === '1'")
    assert page.locator(".layer-ref").all_inner_texts() == ["layer 1 ← reverse", "layer 1 ← reverse"]
    assert page.inner_text("#cellstep-readout").startswith(f"layer 1 ← reverse, unit 0 at step {ct + 1}")
    scroll_through(page)
    page.wait_for_function(
        "() => (document.querySelector('#states .plot')?.data ?? []).some((d) => d.name.endsWith('layer 1 ← reverse'))"
    )
    heat: list[str] = page.evaluate("() => document.querySelector('#states .plot').data.map((d) => d.name)")
    assert heat == ["hidden state h_t, layer 1 ← reverse", "cell state c_t, layer 1 ← reverse"]
    page.evaluate("() => window.scrollTo(0, 0)")
    screenshot(page, "bidirectional-full", full_page=True)
    assert_clean(recorder)


def test_the_reverse_rows_read_from_the_last_step(page: Page, recorder: Recorder, bidi_server: LiveServer) -> None:
    """In the forward sweep at step t, a forward row has read steps 1…t and a reverse row steps T−t+1…T: the
    columns between are still unread, and no prediction shows until both directions have read its step."""
    ct = 10
    open_page(page, bidi_server, f"step={ct + 1}")
    for c in cells(page):
        for r in c["rows"]:
            read = c["t"] <= ct if r["direction"] == "forward" else c["t"] >= T - 1 - ct
            assert (r["label"] == "LSTM") == read, (c["t"], r)
    predictions: list[tuple[int, str]] = page.evaluate(
        """() => [...document.querySelectorAll('#unrolled g.step')].filter((g) => g.style.display !== 'none')
          .map((g) => [Number(g.querySelector('[data-t]').dataset.t), g.querySelector('text.pred').textContent])"""
    )
    for t, text in predictions:
        assert bool(text) == (T - 1 - ct <= t <= ct), (t, text)
    panel_shot(page, "#panel-unrolled", "bidirectional-forward")
    # the text coloured by a unit of the forward layer: read up to the cursor; of its reverse: from the last step back
    unread = "() => [...document.querySelectorAll('#text-view .tk')].map((e, i) => [i, e.classList.contains('unread')])"
    assert [i for i, u in page.evaluate(unread) if u] == list(range(ct + 1, T))
    page.select_option("#layer-select", "1")
    page.wait_for_function("() => new URL(location.href).searchParams.get('layer') === '1'")
    assert [i for i, u in page.evaluate(unread) if u] == list(range(0, T - 1 - ct))
    assert_clean(recorder)


def test_presenter_mode_has_no_text_under_14_px(page: Page, recorder: Recorder, bidi_server: LiveServer) -> None:
    page.set_viewport_size({"width": 1280, "height": 720})
    open_page(page, bidi_server, "presenter=1&phase=backward&step=8&layer=1")
    page.wait_for_function("() => document.documentElement.classList.contains('presenter')")
    page.wait_for_timeout(400)
    small: list[str] = []
    height = page.evaluate("() => document.body.scrollHeight")
    for y in range(0, height, 600):
        page.evaluate(f"() => window.scrollTo(0, {y})")
        page.wait_for_timeout(300)
        items: list[dict[str, Any]] = page.evaluate(MEASURE)
        small += [f"{i['px']} px {i['tag']}.{i['cls']} {i['text']!r}" for i in items if i["px"] < MIN_PX]
        if y == 0:
            screenshot(page, "bidirectional-presenter")
    assert small == [], "\n".join(small)
    # what the audience types (no example of the model's): both directions read it, and it stays legible
    typed = "a dog on a log"
    page.evaluate("() => window.scrollTo(0, 0)")
    page.fill("#text-input", typed)
    page.press("#text-input", "Enter")
    page.wait_for_function("(n) => window.__unrolled.trace?.T === n && window.__unrolled.trace.done", arg=len(typed))
    assert page.locator("#unrolled .unrolled-row").all_inner_texts() == NAMES
    items = page.evaluate(MEASURE)
    assert [i for i in items if i["px"] < MIN_PX] == []
    assert_clean(recorder)
