"""The pages in a real browser: they load cleanly and offline, play, sweep back, follow the keyboard and the URL."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from playwright.sync_api import Page

from app.web.config import Settings
from tests.browser.conftest import Recorder, assert_clean, screenshot, state, wait_loaded
from tests.conftest import LiveServer, write_model

TEXT = "hello world"
PAGES = [
    ("home", "/", False),
    ("model-lstm", f"/models/chars-lstm?text={quote(TEXT)}", True),
    ("model-gru-2-layers", f"/models/chars-gru?text={quote(TEXT)}&step=6&phase=backward", True),
    ("model-classifier", "/models/words-lstm?text=a%20good%20film%20not%20bad&label=positive&step=4", True),
    ("compare", f"/compare?task=test-chars&text={quote('the quick brown fox')}&phase=backward&step=2", True),
    ("generate", "/models/chars-rnn/generate?prompt=hello&length=20&temperature=0.8&seed=3", True),
    ("learning", f"/models/chars-lstm/learning?text={quote(TEXT)}&checkpoint=0", True),
]


@pytest.mark.parametrize(("name", "path", "traced"), PAGES, ids=[p[0] for p in PAGES])
def test_page_loads_cleanly(
    page: Page, recorder: Recorder, live: LiveServer, name: str, path: str, traced: bool
) -> None:
    page.goto(live.url + path)
    if traced:
        wait_loaded(page)
        page.wait_for_timeout(400)  # let the plots settle
    screenshot(page, name)
    # plots off screen are drawn when they are scrolled to: visit them all before the full-page picture
    height = page.evaluate("() => document.body.scrollHeight")
    for y in range(0, height, 600):
        page.evaluate(f"() => window.scrollTo(0, {y})")
        page.wait_for_timeout(80)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.wait_for_timeout(300)
    screenshot(page, f"{name}-full", full_page=True)
    assert_clean(recorder)
    assert any("vendor/plotly.min.js" in u for u in recorder.requests) == traced  # static/build/'s, if made
    if traced and name != "learning":
        assert any(u.startswith("ws://127.0.0.1") for u in recorder.requests), "the page did not use the stream"


def test_unknown_model_is_a_page_not_a_crash(page: Page, live: LiveServer) -> None:
    response = page.goto(live.url + "/models/no-such-model")
    assert response is not None and response.status == 404
    assert "does not exist" in page.inner_text("main")


def test_play_runs_forward_then_bptt_backward(page: Page, recorder: Recorder, live: LiveServer) -> None:
    page.goto(live.url + f"/models/chars-lstm?text={quote('the cat sat on the mat')}&speed=30")
    wait_loaded(page)
    # opened without a step: at the end of the forward sweep, every panel filled and ready to read
    assert state(page)["t"] == len("the cat sat on the mat") - 1 and state(page)["phase"] == "forward"
    page.keyboard.press("Home")
    page.wait_for_function("() => window.__unrolled.cursor.t === 0")
    page.click("#player [data-action=play]")
    page.wait_for_function("() => window.__unrolled.cursor.t >= 3 && window.__unrolled.cursor.phase === 'forward'")
    page.wait_for_function("() => window.__unrolled.cursor.phase === 'backward'")
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        s = state(page)
        seen.append((s["phase"], s["t"]))
        if s["t"] == 0 and not s["playing"]:
            break
        page.wait_for_timeout(60)
    backward = [t for phase, t in seen if phase == "backward"]
    assert len(set(backward)) >= 3, seen
    assert backward == sorted(backward, reverse=True), "the BPTT sweep must run from the last step to the first"
    assert backward[-1] == 0
    # the gradient plot is uncovered, and the unrolled cells are coloured by ‖∂L/∂h_t‖
    page.locator("#gradients").scroll_into_view_if_needed()
    page.wait_for_selector("#gradients .scatterlayer .trace")
    assert page.locator("#gradients .overlay-mask").is_hidden()
    assert page.locator("#gradients .overlay-cursor").is_visible()
    page.evaluate("() => window.scrollTo(0, 0)")
    fills = page.eval_on_selector_all("#unrolled .step rect.box", "els => els.map(e => e.getAttribute('fill'))")
    assert len({f for f in fills if f and f.startswith("rgb")}) >= 3, fills
    screenshot(page, "model-after-bptt")
    page.wait_for_function("() => new URL(location.href).search.includes('step=1&phase=backward')")
    assert_clean(recorder)


# In the page: fetch the same trace over REST and list where the page's own store differs from it. The REST body is
# asked for whole: binary records are never rounded, whatever precision a page would ask.
COMPARE_WITH_REST = """async (text) => {
  const tr = window.__unrolled.trace;
  const r = await fetch(`/api/models/${tr.model}/trace`, {method: "POST",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify({text, top_k: 5})});
  const body = await r.json();
  const diffs = [];
  const close = (a, b) => Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));
  const check = (name, mine, theirs) => { if (!close(mine, theirs)) diffs.push([name, mine, theirs]); };
  const H = tr.H;
  body.layers.forEach((layer, l) => {
    for (let t = 0; t < body.steps; t++) {
      layer.hidden[t].forEach((v, u) => check(`h ${l} ${t} ${u}`, tr.layers[l].hidden[t * H + u], v));
      for (const [g, a] of Object.entries(layer.gates)) {
        a[t].forEach((v, u) => check(`${g} ${l} ${t} ${u}`, tr.layers[l].gates[g][t * H + u], v));
      }
    }
  });
  for (let t = 0; t < body.steps; t++) {
    if (body.predictions) {
      body.predictions[t].forEach((p, i) => {
        const q = tr.predictions[t][i];
        if (q.token !== p.token) diffs.push([`token ${t} ${i}`, q.token, p.token]);
        check(`p ${t} ${i}`, q.p, p.p);
      });
    } else {
      const n = tr.labels.length;
      body.step_probs[t].forEach((v, i) => check(`probs ${t} ${i}`, tr.probs[t * n + i], v));
    }
    const g = body.grad_norms.hidden[0][t];
    if (g !== null) check(`grad ${t}`, tr.grad.hidden[0][t], g);
  }
  const sameTokens = body.tokens.join("|") === tr.tokens.join("|");
  return {diffs: diffs.slice(0, 5), steps: body.steps, T: tr.T, tokens: sameTokens};
}"""


@pytest.mark.parametrize("model", ["chars-gru", "words-lstm"])
def test_streamed_trace_equals_the_rest_body(page: Page, live: LiveServer, model: str) -> None:
    """The page reads the stream's binary step frames; what it holds is what REST answers, value for value."""
    text = "a good film not bad" if model == "words-lstm" else TEXT
    page.goto(live.url + f"/models/{model}?text={quote(text)}")
    wait_loaded(page)
    assert page.evaluate("() => window.__unrolled.encoding") == "binary"
    compared = page.evaluate(COMPARE_WITH_REST, text)
    assert compared["diffs"] == [] and compared["steps"] == compared["T"] and compared["tokens"], compared


LOSS_BARS = """() => {
  const d = document.querySelector('#panel-loss .js-plotly-plot').data[0];
  return {y: d.y, color: d.marker.color};
}"""


@pytest.mark.parametrize(
    ("model", "text", "loss"), [("chars-lstm", "zebra hums", "sum"), ("words-lstm", "film not a good bad", "last")]
)
def test_the_loss_panel_shows_each_steps_loss_and_the_terms_of_l(
    page: Page, live: LiveServer, model: str, text: str, loss: str
) -> None:
    """The loss panel's bars are the API's per-step losses; the ones coloured as terms of L add up to L: every
    step's with L = sum, the last step's alone with L = last."""
    page.goto(live.url + f"/models/{model}?text={quote(text)}&loss={loss}")
    wait_loaded(page)
    assert_loss_panel_is_the_apis(page, live, model, text, loss)


@pytest.mark.parametrize(
    ("model", "typed", "loss"),
    [("chars-lstm", "jumpy quartz", "last"), ("words-lstm", "very awful plot not great", "sum")],
)
def test_the_loss_panel_follows_a_typed_input_and_a_chosen_loss(
    page: Page, live: LiveServer, model: str, typed: str, loss: str
) -> None:
    """As a lecture uses it: the page opens on its example, an input no example has is typed and L chosen from the
    run bar; the loss panel then shows that input's losses and terms, not the example's."""
    page.goto(live.url + f"/models/{model}")
    wait_loaded(page)
    page.fill("#text-input", typed)
    page.select_option("#loss-select", loss)  # choosing L runs the typed input again
    wait_loaded(page, 2)
    assert parse_qs(urlsplit(page.url).query)["text"] == [typed]
    assert_loss_panel_is_the_apis(page, live, model, typed, loss)


def assert_loss_panel_is_the_apis(page: Page, live: LiveServer, model: str, text: str, loss: str) -> None:
    body = httpx.post(f"{live.url}/api/models/{model}/trace", json={"text": text, "loss": loss}, timeout=60).json()
    assert body["loss_mode"] == loss
    page.locator("#panel-loss").scroll_into_view_if_needed()
    page.wait_for_function(
        "n => document.querySelector('#panel-loss .js-plotly-plot')?.data?.[0]?.y?.length === n", arg=body["steps"]
    )
    bars = page.evaluate(LOSS_BARS)
    assert len(bars["y"]) == body["steps"] == len(body["loss"])
    for mine, theirs in zip(bars["y"], body["loss"], strict=True):  # the page asks for 4 significant digits
        assert (mine is None) == (theirs is None)
        assert theirs is None or mine == pytest.approx(theirs, rel=1e-3, abs=1e-6)
    terms = [y for y, colour in zip(bars["y"], bars["color"], strict=True) if colour != "#cbd5e1"]
    assert len(terms) == (1 if loss == "last" else sum(v is not None for v in body["loss"]))
    assert sum(terms) == pytest.approx(body["total_loss"], rel=1e-3)


def test_choosing_a_unit_recolours_the_text(page: Page, live: LiveServer) -> None:
    page.goto(live.url + f"/models/chars-lstm?text={quote(TEXT)}&phase=backward&step=1")
    wait_loaded(page)
    page.wait_for_function("() => window.__unrolled.cursor.phase === 'backward'")
    colours = "() => [...document.querySelectorAll('#text-view .tk-tok')].map(e => e.style.background)"
    before = page.evaluate(colours)
    assert len(before) == len(TEXT) and all(before)
    box = page.locator("#unit-strip canvas").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * (7.5 / 16), box["y"] + box["height"] / 2)  # unit 7 of 16
    page.wait_for_function("() => window.__unrolled.state.unit === 7")
    after = page.evaluate(colours)
    assert after != before
    assert page.inner_text("#unit-value") == "7"
    page.wait_for_function("() => new URL(location.href).searchParams.get('unit') === '7'")
    # the heatmap chooses a unit too
    page.keyboard.press("]")
    page.wait_for_function("() => window.__unrolled.state.unit === 8")
    assert page.evaluate(colours) != after


def test_compare_shows_three_gradient_curves(page: Page, recorder: Recorder, live: LiveServer) -> None:
    page.goto(live.url + f"/compare?task=test-chars&text={quote('the quick brown fox jumps')}")
    wait_loaded(page)
    page.wait_for_function("() => document.querySelectorAll('#compare-gradients .scatterlayer .trace').length >= 3")
    names = page.evaluate(
        "() => document.querySelector('#compare-gradients .plot').data"
        ".filter(d => d.visible !== 'legendonly').map(d => d.name)"
    )
    assert len(names) == 3 and {n.split()[0] for n in names} == {"RNN", "LSTM", "GRU"}
    assert page.evaluate("() => document.querySelector('#compare-gradients .plot').layout.yaxis.type") == "log"
    assert page.locator("#ratios tbody tr").count() == 3
    assert page.locator(".compare-row svg.unrolled-svg").count() == 3
    page.keyboard.press("b")  # one cursor for all three
    page.wait_for_function("() => window.__unrolled.cursor.phase === 'backward'")
    screenshot(page, "compare-bptt")
    assert_clean(recorder)


def test_generate_streams_tokens(page: Page, recorder: Recorder, live: LiveServer) -> None:
    page.goto(live.url + "/models/chars-lstm/generate?prompt=the%20&length=60&temperature=1&seed=7&speed=30")
    page.wait_for_function("() => (window.__unrolled.state?.steps ?? 0) > 0")
    shown = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        shown.append(page.locator("#gen-output span:not(.ahead)").count())
        if shown[-1] >= 64:
            break
        page.wait_for_timeout(80)
    assert shown[-1] == 64, shown  # 4 prompt characters + 60 written
    assert len(set(shown)) >= 4, f"the text should appear token by token, saw {shown}"
    assert page.locator("#gen-output .gen").count() == 60
    text = page.evaluate("() => window.__unrolled.state.text")
    assert text.startswith("the ") and len(text) == 64
    assert parse_qs(urlsplit(page.url).query)["seed"] == ["7"]
    wait_loaded(page)
    screenshot(page, "generate-written")
    # the same seed writes the same text again
    page.click("#generate")
    wait_loaded(page, 2)
    assert page.evaluate("() => window.__unrolled.state.text") == text
    assert_clean(recorder)


def test_learning_slider_changes_the_internals(page: Page, recorder: Recorder, live: LiveServer) -> None:
    page.goto(live.url + f"/models/chars-lstm/learning?text={quote(TEXT)}")
    wait_loaded(page)
    last = state(page)
    assert last["checkpoint"] == "100"
    heat = "JSON.stringify(document.querySelector('#states .plot').data[0].z[0])"
    heat_last = page.evaluate(f"() => {heat}")
    page.focus("#ckpt")
    page.keyboard.press("Home")
    page.wait_for_function("() => window.__unrolled.state.checkpoint === '0'")
    first = state(page)
    assert first["hiddenAbsSum"] != last["hiddenAbsSum"]
    assert first["totalLoss"] != last["totalLoss"]
    page.wait_for_function(f"() => {heat} !== {heat_last!r}")
    page.wait_for_function("() => new URL(location.href).searchParams.get('checkpoint') === '0'")
    assert "0 % of training" in page.inner_text("#ckpt-value")
    screenshot(page, "learning-checkpoint-0")
    assert_clean(recorder)


def test_keyboard_drives_the_player(page: Page, live: LiveServer) -> None:
    page.goto(live.url + f"/models/chars-gru?text={quote(TEXT)}&step=1")
    wait_loaded(page)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => window.__unrolled.cursor.t === 3")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("() => window.__unrolled.cursor.t === 2")
    page.keyboard.press("End")
    page.wait_for_function(f"() => window.__unrolled.cursor.t === {len(TEXT) - 1}")
    page.keyboard.press("ArrowRight")  # past the end of the forward sweep: BPTT begins at the last step
    page.wait_for_function("() => window.__unrolled.cursor.phase === 'backward'")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"() => window.__unrolled.cursor.t === {len(TEXT) - 2}")
    page.keyboard.press("End")
    page.wait_for_function("() => window.__unrolled.cursor.t === 0 && window.__unrolled.cursor.phase === 'backward'")
    page.keyboard.press("Home")
    page.wait_for_function(f"() => window.__unrolled.cursor.t === {len(TEXT) - 1}")
    page.keyboard.press("b")
    page.wait_for_function("() => window.__unrolled.cursor.phase === 'forward'")
    speed = state(page)["speed"]
    page.keyboard.press("+")
    page.wait_for_function(f"() => window.__unrolled.cursor.speed > {speed}")
    page.keyboard.press("-")
    page.keyboard.press("-")
    page.wait_for_function(f"() => window.__unrolled.cursor.speed < {speed}")
    page.keyboard.press(" ")
    page.wait_for_function("() => window.__unrolled.cursor.playing")
    page.keyboard.press(" ")
    page.wait_for_function("() => !window.__unrolled.cursor.playing")
    page.keyboard.press("p")
    page.wait_for_function("() => document.documentElement.classList.contains('presenter')")
    page.wait_for_function("() => new URL(location.href).searchParams.get('presenter') === '1'")
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.keyboard.press("Escape")


def test_url_holds_the_view_state(page: Page, live: LiveServer) -> None:
    page.goto(live.url + f"/models/chars-lstm?text={quote(TEXT)}&step=5&phase=backward&unit=3&presenter=1&speed=30")
    wait_loaded(page)
    page.wait_for_function("() => window.__unrolled.cursor.t === 4 && window.__unrolled.cursor.phase === 'backward'")
    s = state(page)
    assert s["unit"] == 3 and s["speed"] == 30
    assert page.evaluate("() => document.documentElement.classList.contains('presenter')")
    assert page.input_value("#text-input") == TEXT
    page.mouse.move(10, 10)
    screenshot(page, "model-presenter")
    page.wait_for_timeout(2700)  # controls hide when the mouse rests
    assert page.evaluate("() => document.documentElement.classList.contains('idle')")
    # the top bar folds away (taking its height: no band), the player with its step and sweep stays
    page.wait_for_function("() => getComputedStyle(document.querySelector('.topbar')).display === 'none'")
    assert page.locator("#player").is_visible()
    screenshot(page, "model-presenter-idle")
    page.mouse.move(200, 200)
    page.wait_for_function("() => !document.documentElement.classList.contains('idle')")
    # editing the input re-runs through the stream and resets the cursor
    page.fill("#text-input", "a new input")
    page.press("#text-input", "Enter")
    wait_loaded(page, 2)
    assert parse_qs(urlsplit(page.url).query)["text"] == ["a new input"]
    assert state(page)["T"] == len("a new input")


def test_plots_export_png_and_svg(page: Page, live: LiveServer) -> None:
    page.goto(live.url + f"/models/chars-lstm?text={quote(TEXT)}&phase=backward&step=3")
    wait_loaded(page)
    with page.expect_download() as svg:
        page.click("#tools-unrolled [data-export=svg]")
    assert svg.value.suggested_filename == "unrolled-network.svg"
    with page.expect_download() as png:
        page.click("#tools-unrolled [data-export=png]")
    assert png.value.suggested_filename == "unrolled-network.png"
    page.hover("#gradients .plot")
    with page.expect_download() as plot_svg:
        page.click("#gradients .modebar-btn[data-title='Download SVG']")
    assert plot_svg.value.suggested_filename == "gradient-norms.svg"
    content = Path(plot_svg.value.path()).read_text(encoding="utf-8")
    assert content.startswith("<svg") and "‖∂L/∂h_t‖" in content


def test_the_api_docs_render_offline(page: Page, recorder: Recorder, live: LiveServer) -> None:
    page.goto(live.url + "/docs")
    page.wait_for_selector(".opblock-summary-path")  # the operations, read from /openapi.json
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/models/{model_id}/trace" in p.replace("\u200b", "") for p in paths), paths
    assert recorder.outside() == [] and recorder.errors == []  # no CDN, no policy violation


def test_card_labels_reach_the_page_as_text_never_markup(
    page: Page, recorder: Recorder, settings: Settings, tmp_path: Path
) -> None:
    shutil.copytree(settings.models_dir, tmp_path, dirs_exist_ok=True)
    write_model(tmp_path, "hostile-lstm", "lstm", "classify")
    card_path = tmp_path / "hostile-lstm.json"
    card = json.loads(card_path.read_text())
    labels = ['<a href="https://evil.example/">neg</a>', '<span style="font-size:80px;color:red">pos</span>']
    card["token"].update(labels=labels, positive_label=labels[1])  # the token family's block of the card
    card_path.write_text(json.dumps(card))
    with LiveServer(settings.model_copy(update={"models_dir": tmp_path})) as live:
        page.goto(live.url + f"/models/hostile-lstm?text={quote('a good film')}")
        wait_loaded(page)
        page.wait_for_selector("#panel-predictions .legendtext")
        shown = page.locator("#panel-predictions .legendtext").all_text_contents()
        assert any(labels[0] in t for t in shown) and any(labels[1] in t for t in shown), shown  # as written
        markup = "#panel-predictions svg a, #panel-predictions svg tspan[style*='80px']"  # what Plotly would make
        assert page.locator(markup).count() == 0  # not as markup
        assert page.locator("#panel-predictions .bar-label").all_text_contents() == labels
    assert recorder.outside() == []


def test_a_classifiers_target_is_shown_and_a_typed_input_goes_back_to_its_own(
    page: Page, recorder: Recorder, live: LiveServer
) -> None:
    page.goto(live.url + f"/models/words-lstm?text={quote('a good film')}&label=negative")
    wait_loaded(page)
    assert page.inner_text("#target-now") == "target negative (as chosen)"
    # typing a new review: the chosen target belonged to the last one, so the model's own answer applies
    page.fill("#text-input", "not bad at all")
    page.press("#text-input", "Enter")
    wait_loaded(page, 2)
    label = page.evaluate("() => window.__unrolled.trace.label")
    assert page.input_value("#label-select") == ""
    assert page.inner_text("#target-now") == f"target {label} (the model's own answer)"
    assert "label" not in parse_qs(urlsplit(page.url).query)
    assert recorder.errors == [] and recorder.outside() == []
