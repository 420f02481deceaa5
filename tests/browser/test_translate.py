"""The translation page in a real browser, on the zoo's own translators (the test zoo's random ones write nothing but
the end): an encoder–decoder's two rows, the attention heatmap filling in as the decoder writes, the beams best first,
both BPTT sweeps, a typed number, the attention switch and the keys; and the tour's translate scene."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from playwright.sync_api import Page

from app.web.config import ROOT, Settings
from tests.browser.conftest import Recorder, assert_clean, screenshot, state, wait_loaded
from tests.conftest import LiveServer

TEXT = "three hundred and twenty-one"
GERMAN = "dreihunderteinundzwanzig"  # 321, as numbers-gru-attention writes it (test_tour_claims holds it too)
SOURCE = ["three", "hundred", "and", "twenty", "-", "one"]

TOUR: dict[str, Any] = {
    "title": "Translation",
    "scenes": [
        {"title": "With and without attention", "caption": "Press A.", "view": "translate",
         "model": "numbers-gru-attention", "models": ["numbers-gru"], "input": TEXT, "beam": 2,
         "panels": ["unrolled", "attention", "beams", "gradients"], "phase": "backward", "step": 1},
    ],
}  # fmt: skip

# What the page holds: the trace's sizes, the two rows, the heatmap's filled cells and what hides them.
PAGE = """() => {
  const tr = window.__unrolled.trace;
  const gd = document.querySelector('#attention .plot');
  const z = gd && gd.data ? gd.data[0].z : [];
  const cells = (side) => [...document.querySelectorAll(`#encdec .cell[data-side=${side}]`)];
  return {
    model: tr.model, J: tr.J, Tout: tr.Tout, output: tr.output, source: tr.source, done: tr.done,
    filled: z.flat().filter((v) => v !== null && Number.isFinite(v)).length, rows: z.length,
    mask: gd && gd.__overlay ? gd.__overlay.state.mask : 'none',
    encoder: cells('encoder').length, decoder: cells('decoder').length,
    ghosts: document.querySelectorAll('#encdec .cell.ghost').length,
    words: cells('encoder').map((c) => c.querySelector('text.word').textContent),
    letters: cells('decoder').map((c) => c.querySelector('text.letter').textContent).join(''),
    lines: [...document.querySelectorAll('#encdec .attention-lines line')].filter((l) => l.style.display !== 'none').length,
    fills: [...new Set([...document.querySelectorAll('#encdec .cell .box')].map((b) => b.getAttribute('fill')))],
    via: [...document.querySelectorAll('#encdec .cell[data-side=encoder] rect.via')].filter((r) => r.style.display !== 'none' && r.getAttribute('fill')).length,
    written: document.querySelector('#translation-now .out-written')?.textContent ?? '',
    ahead: document.querySelector('#translation-now .out-ahead')?.textContent ?? '',
  };
}"""  # noqa: E501


def held(page: Page) -> dict[str, Any]:
    value: dict[str, Any] = page.evaluate(PAGE)
    return value


@pytest.fixture(scope="module")
def zoo(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app on the zoo's models, with a tour file of the test's own (a translate scene)."""
    folder: Path = tmp_path_factory.mktemp("translate-tour")
    (folder / "translation.json").write_text(json.dumps(TOUR), encoding="utf-8")
    with LiveServer(settings.model_copy(update={"models_dir": ROOT / "models"}), UNROLLED_TOUR_DIR=str(folder)) as live:
        yield live


def until(page: Page, condition: str) -> None:
    page.wait_for_function(f"() => {{ const c = window.__unrolled.cursor; return {condition}; }}")


def test_the_page_plays_the_encoder_then_the_decoder_and_back(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    page.goto(zoo.url + f"/models/numbers-gru-attention?text={quote(TEXT)}&step=1&speed=60")
    wait_loaded(page)
    assert any(u.startswith("ws://127.0.0.1") for u in recorder.requests), "the page did not use the stream"
    h = held(page)
    J, T = h["J"], h["Tout"]
    assert h["source"] == SOURCE and h["words"] == SOURCE and (h["encoder"], h["decoder"]) == (J, T)
    assert h["output"] == GERMAN and T == len(GERMAN) + 1  # every letter, then the end
    # at the first word: nothing written, the heatmap's columns all hidden, no attention drawn yet
    assert h["written"] == "" and h["letters"] == "" and h["lines"] == 0
    assert h["mask"] == [0.5, T + 0.5]
    assert page.inner_text("#player [data-role=where]").startswith(f"encoder 1 / {J}")
    # the decoder's third letter: three columns uncovered, a line to every word with α ≥ 0.01
    for _ in range(J + 2):
        page.keyboard.press("ArrowRight")
    until(page, f"c.t === {J + 2}")
    h = held(page)
    assert h["mask"] == [3.5, T + 0.5] and len(h["letters"]) == 3 and h["written"] == h["output"][:3]
    assert 1 <= h["lines"] <= J
    assert page.inner_text("#player [data-role=where]").startswith(f"decoder 3 / {T}")
    assert page.locator("#topk .bar:visible").count() == 5 and page.locator("#topk .bar.hit").count() == 1
    # play to the end: every letter written, the whole heatmap (T × J) filled, then BPTT back to the first word
    page.keyboard.press(" ")
    until(page, "c.phase === 'backward' && c.t === 0 && !c.playing")
    h = held(page)
    assert h["filled"] == J * T and h["rows"] == J and h["mask"] is None
    assert h["ghosts"] == 0 and h["written"] == h["output"] and h["ahead"] == ""
    assert len([f for f in h["fills"] if f.startswith("rgb")]) >= 3, h["fills"]  # coloured by ‖∂L/∂h‖
    assert h["via"] == J  # beside each word, the part of its gradient that came through attention
    assert page.locator("#encdec-legend").is_visible()
    page.locator("#encdec-gradients").scroll_into_view_if_needed()
    page.wait_for_function("() => (document.querySelector('#encdec-gradients .plot').data ?? []).length === 3")
    names = page.evaluate("() => document.querySelector('#encdec-gradients .plot').data.map((d) => d.name)")
    assert names == ["encoder ‖∂L/∂h_j‖ (the words)", "the part via attention", "decoder ‖∂L/∂s_t‖ (the letters)"]
    assert "through attention" in page.inner_text("#gradients-readout")
    page.wait_for_function("() => new URL(location.href).searchParams.get('phase') === 'backward'")
    screenshot(page, "translate-after-bptt")
    assert_clean(recorder)


def test_a_typed_number_is_translated_and_the_beams_are_listed_best_first(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    page.goto(zoo.url + f"/models/numbers-gru-attention?text={quote(TEXT)}&speed=60")
    wait_loaded(page)
    page.keyboard.press("/")
    assert page.evaluate("() => document.activeElement.id") == "text-input"
    page.keyboard.press("Control+a")
    page.keyboard.type("four thousand and seven")
    page.keyboard.press("Enter")
    wait_loaded(page, 2)
    h = held(page)
    assert h["source"] == ["four", "thousand", "and", "seven"] and h["words"] == h["source"]
    assert h["output"] == "viertausendsieben"
    assert parse_qs(urlsplit(page.url).query)["text"] == ["four thousand and seven"]
    until(page, "c.phase === 'backward' && !c.playing")  # a typed number plays, to the end of BPTT
    assert held(page)["written"] == h["output"]
    # a wider beam: every candidate, best first, the best the one traced
    page.select_option("#beam-select", "4")
    wait_loaded(page, 3)
    beams = page.evaluate(
        "() => [...document.querySelectorAll('#beams li.beam')].map((li) => ({score: Number(li.dataset.score),"
        " text: li.querySelector('.beam-output').firstChild.textContent, best: li.classList.contains('best')}))"
    )
    reply = page.evaluate(
        """async () => (await (await fetch('/api/models/numbers-gru-attention/translate', {method: 'POST',
        headers: {'Content-Type': 'application/json'}, body: JSON.stringify({text: 'four thousand and seven',
        beam: 4})})).json())"""
    )
    assert len(beams) == len(reply["beams"]) == 4
    assert [b["score"] for b in beams] == sorted((b["score"] for b in beams), reverse=True)
    assert [b["best"] for b in beams] == [True, False, False, False]
    assert beams[0]["text"] == reply["output"] == "viertausendsieben"
    assert [b["text"] for b in beams] == [b["output"] or "(nothing: it ended at once)" for b in reply["beams"]]
    assert parse_qs(urlsplit(page.url).query)["beam"] == ["4"]
    # a word the model does not know is read as <unk>, and the note beside the input says which, struck through
    page.fill("#text-input", "four hundred apples")
    page.press("#text-input", "Enter")
    wait_loaded(page, 4)
    assert page.inner_text("#unknown-note s.oov") == "apples" and "<unk>" in page.inner_text("#unknown-note")
    assert recorder.outside() == []


def test_the_switch_runs_the_same_input_without_attention_and_back(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    page.goto(zoo.url + f"/models/numbers-gru-attention?text={quote(TEXT)}&beam=2&speed=60")
    wait_loaded(page)
    assert page.get_attribute("#attention-switch", "aria-checked") == "true"
    page.click("#attention-switch")
    wait_loaded(page, 2)
    h = held(page)
    assert h["model"] == "numbers-gru" and h["source"] == SOURCE and h["output"] != GERMAN  # the bottleneck
    assert urlsplit(page.url).path == "/models/numbers-gru"
    query = parse_qs(urlsplit(page.url).query)
    assert query["text"] == [TEXT] and query["beam"] == ["2"]
    assert page.get_attribute("#attention-switch", "aria-checked") == "false"
    assert page.inner_text("#model-name") == "numbers-gru" and "no attention" in page.inner_text("#model-shape")
    assert "has no attention" in page.inner_text("#panel-attention")
    assert page.locator("#attention .plot-wrap").is_hidden()
    assert page.locator("#panel-encdec [data-when=no-attention]").is_visible()
    until(page, "c.phase === 'backward' && c.t === 0 && !c.playing")  # a switch plays from the first step
    assert held(page)["via"] == 0 and held(page)["lines"] == 0  # no attention: no lines, no short path
    page.keyboard.press("a")  # and back, with the key
    wait_loaded(page, 3)
    assert held(page)["model"] == "numbers-gru-attention" and urlsplit(page.url).path == "/models/numbers-gru-attention"
    assert page.locator("#attention .plot-wrap").is_visible()
    assert_clean(recorder)


def test_the_keys_drive_the_page(page: Page, zoo: LiveServer) -> None:
    page.goto(zoo.url + f"/models/numbers-gru-attention?text={quote(TEXT)}")
    wait_loaded(page)
    T = state(page)["T"]
    assert state(page)["t"] == T - 1 and state(page)["phase"] == "forward"  # opened on the whole translation
    page.keyboard.press("Home")
    until(page, "c.t === 0")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    until(page, "c.t === 2")
    page.keyboard.press("ArrowLeft")
    until(page, "c.t === 1")
    page.keyboard.press("b")
    until(page, "c.phase === 'backward' && c.t === 1")
    page.keyboard.press("End")
    until(page, "c.phase === 'backward' && c.t === 0")
    speed = state(page)["speed"]
    page.keyboard.press("+")
    until(page, f"c.speed > {speed}")
    page.keyboard.press(" ")
    until(page, "c.playing")
    page.keyboard.press(" ")
    until(page, "!c.playing")
    page.keyboard.press("p")
    page.wait_for_function("() => document.documentElement.classList.contains('presenter')")
    page.keyboard.press("?")
    assert page.locator("#help").is_visible() and "with / without attention" in page.inner_text("#help")
    page.keyboard.press("Escape")


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)], ids=["1280x720", "1920x1080"])
def test_the_page_fits_a_projector(page: Page, recorder: Recorder, zoo: LiveServer, size: tuple[int, int]) -> None:
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.goto(zoo.url + f"/models/numbers-gru-attention?text={quote(TEXT)}&step=9")
    wait_loaded(page)
    page.wait_for_selector("#attention .plot .heatmaplayer")
    fit = page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth, width: innerWidth,"
        " svg: document.querySelector('#encdec svg').getBoundingClientRect().right,"
        " sizes: [...document.querySelectorAll('#encdec svg text, #attention .xtick text, #attention .ytick text')]"
        ".filter((t) => t.textContent.trim()).map((t) => parseFloat(getComputedStyle(t).fontSize))})"
    )
    assert fit["scroll"] <= fit["width"] and fit["svg"] <= fit["width"], fit  # nothing runs off the side
    assert min(fit["sizes"]) >= 14, fit["sizes"]  # read from the back of a room
    screenshot(page, f"translate-{size[0]}")
    assert_clean(recorder)


def test_the_tours_translate_scene_renders_and_switches_attention(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    page.goto(zoo.url + "/tour?name=translation&scene=1")
    page.wait_for_function("() => window.__unrolled?.tour?.ready")
    panels = page.eval_on_selector_all("#stage .tour-panel", "els => els.map((e) => e.dataset.panel)")
    assert panels == ["unrolled", "attention", "beams", "gradients"]
    until(page, "c.phase === 'backward' && c.t === 0")
    h = page.evaluate(
        "() => ({tr: window.__unrolled.trace.model, J: window.__unrolled.trace.J, T: window.__unrolled.trace.Tout,"
        " cells: document.querySelectorAll('#stage svg.encdec-svg .cell:not(.ghost)').length,"
        " beams: document.querySelectorAll('#stage .beams li.beam').length,"
        " z: document.querySelector('#stage [data-panel=attention] .plot').data[0].z.flat().length})"
    )
    assert h["tr"] == "numbers-gru-attention" and h["cells"] == h["J"] + h["T"] and h["z"] == h["J"] * h["T"]
    assert h["beams"] == 2 and page.inner_text("#stage .translation-now").endswith(GERMAN)
    assert page.get_attribute("#stage .switch", "aria-checked") == "true"
    page.keyboard.press("a")
    page.wait_for_function(
        "() => window.__unrolled.tour.ready && window.__unrolled.trace.model === 'numbers-gru'"
        " && window.__unrolled.trace.done"
    )
    assert page.get_attribute("#stage .switch", "aria-checked") == "false"
    assert "has no attention" in page.inner_text("#stage [data-panel=attention]")
    screenshot(page, "tour-translate-without-attention")
    assert_clean(recorder)
