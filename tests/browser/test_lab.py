"""The lab page (/lab) in a real browser over the repository's zoo: the gradient knobs (the slider redraws the curve,
tanh at radius 0.5 vanishes, ReLU at 1.5 explodes, Keep pins a curve, the knob-to-plot latency measured), the three
Jacobian triangles and the unrolled view they mark, the one-token diff, gate saturation selecting a unit, a live
training run whose models open in the model view, and presenter mode at 1280×720."""

from __future__ import annotations

import json
import statistics
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from app.web.config import ROOT
from tests.browser.conftest import Recorder, assert_clean, screenshot
from tests.conftest import LiveServer

CELLS = ["rnn", "lstm", "gru"]
MOVES = 20  # slider moves measured for the knob-to-plot latency
LATENCY = ROOT / "test-output" / "lab-knob-latency.json"


def lab(page: Page, zoo: LiveServer, query: str = "") -> None:
    page.goto(zoo.url + "/lab" + query)
    page.wait_for_function("() => (window.__unrolled.knobs?.draws ?? 0) >= 1")


def drawn(page: Page) -> None:
    """Until the curve of the latest knob settings is on the plot."""
    page.wait_for_function("() => { const k = window.__unrolled.knobs; return k.last && k.last.seq === k.asked; }")


def curve(page: Page) -> dict[str, Any]:
    """The plotted data: the current curve (the last trace), the bound (before it) and the kept curves."""
    value: dict[str, Any] = page.evaluate(
        """() => { const d = document.querySelector('#knobs-plot .plot').data;
          return {y: d[d.length - 1].y, name: d[d.length - 1].name, bound: d[d.length - 2].y,
                  kept: d.slice(0, -2).map((t) => t.name)}; }"""
    )
    return value


def set_knobs(page: Page, **values: str) -> None:
    """Choose selects and fields as the presenter does (each change redraws); then wait for the last one's curve."""
    for name, value in values.items():
        selector = f"#knob-{name}"
        if page.get_attribute(selector, "type") == "range":
            page.eval_on_selector(
                selector, "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }", value
            )
        elif page.evaluate(f"() => document.querySelector('{selector}').tagName") == "SELECT":
            page.select_option(selector, value)
        else:
            page.fill(selector, value)
            page.dispatch_event(selector, "change")
    drawn(page)


def to_slider(page: Page) -> None:
    """The keyboard's way to the radius slider: Escape leaves a field, R focuses the slider."""
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    assert page.evaluate("() => document.activeElement.id") == "knob-radius"


def lower_loaded(page: Page) -> None:
    page.wait_for_function("() => (window.__unrolled.loaded ?? 0) >= 1 && window.__unrolled.labDiff")


def test_the_radius_slider_redraws_the_curve_vanishing_and_exploding(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    lab(page, zoo)
    # tanh at radius 0.5: each step back multiplies by at most 0.5: orders of magnitude lost over 200 steps
    set_knobs(page, cell="rnn", nonlinearity="tanh", steps="200", radius="0.5")
    c = curve(page)
    assert len(c["y"]) == 200 and c["name"].startswith("RNN · tanh · radius 0.50")
    first, last = c["y"][0], c["y"][-1]
    assert last > 0 and (first is None or first < last * 1e-6), (first, last)
    assert all(b is None or b > 0 for b in c["bound"])
    # ReLU at 1.5 grows as it goes back. It switches about half the units off, so 1.5 is on the edge and the
    # draw decides (tests/engine/test_knobs.py test_relu_explodes_past_the_edge): seed 3's draw explodes
    set_knobs(page, nonlinearity="relu", radius="1.5", seed="3")
    c = curve(page)
    assert c["name"].startswith("RNN · relu · radius 1.50") and c["name"].endswith("seed 3")
    assert c["y"][0] > c["y"][-1] * 1e3, (c["y"][0], c["y"][-1])
    # the slider with the keyboard (R focuses it): one step down redraws the curve
    exploded = c["y"]
    to_slider(page)
    page.keyboard.press("ArrowLeft")
    drawn(page)
    c = curve(page)
    assert c["name"].startswith("RNN · relu · radius 1.45") and c["y"] != exploded
    assert page.evaluate("() => window.__unrolled.knobs.maxInflight") == 1
    screenshot(page, "lab-knobs")
    assert_clean(recorder)


def test_the_linear_recurrences_turn_their_own_knobs(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    """minGRU shows its gate bias, S6 its step Δ (the radius slider, which they lack, hidden); each curve is the
    REST reply's for the settings, never above 1, and a larger gate bias (a larger Δ) loses more of it."""
    lab(page, zoo)
    set_knobs(page, cell="mingru", steps="150", gate="-3")
    assert page.is_visible("#knob-gate") and not page.is_visible("#knob-radius") and not page.is_visible("#knob-step")
    c = curve(page)
    assert c["name"].startswith("MINGRU · gate bias -3.00")
    rest = httpx.post(zoo.url + "/api/lab/gradients", json={"cell": "mingru", "steps": 150, "hidden_size": 32,
                                                             "radius": 0.9, "gate_bias": -3.0}).json()  # fmt: skip
    assert c["y"] == [v if v and v > 0 else None for v in rest["grad_norms"]]
    assert all(v is None or v <= 1 + 1e-12 for v in c["y"]) and set(c["bound"]) == {1}
    kept = c["y"][0]
    set_knobs(page, gate="3")
    assert curve(page)["y"][0] is None or curve(page)["y"][0] < kept
    set_knobs(page, cell="s6", step="-2.5")
    assert page.is_visible("#knob-step") and not page.is_visible("#knob-gate")
    c = curve(page)
    assert c["name"].startswith("S6 · Δ 0.0032") and 0 < c["y"][0] < 1
    screenshot(page, "lab-knobs-s6")
    assert_clean(recorder)


def test_keep_pins_a_curve_and_clear_removes_it(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    lab(page, zoo)
    set_knobs(page, cell="lstm", forget="4")
    flat = curve(page)
    # a high forget bias carries the gradient back: not orders of magnitude lost over 200 steps
    assert flat["y"][0] > flat["y"][-1] * 1e-2, (flat["y"][0], flat["y"][-1])
    page.click("#knob-keep")
    page.wait_for_function("() => document.querySelector('#knobs-plot .plot').data.length === 3")
    set_knobs(page, forget="-4")
    c = curve(page)
    assert c["kept"] == ["kept: " + flat["name"]]
    assert c["name"] != flat["name"] and c["y"][0] < flat["y"][0]
    page.keyboard.press("k")  # the key keeps too
    page.wait_for_function("() => document.querySelector('#knobs-plot .plot').data.length === 4")
    assert curve(page)["kept"] == ["kept: " + flat["name"], "kept: " + c["name"]]
    screenshot(page, "lab-kept")
    page.click("#knob-clear")
    page.wait_for_function("() => document.querySelector('#knobs-plot .plot').data.length === 2")
    assert_clean(recorder)


def test_the_knob_to_plot_latency_at_200_steps_is_measured(page: Page, zoo: LiveServer) -> None:
    """From the slider's input event to Plotly's redraw of the answer, over MOVES moves at T = 200: reported
    (test-output/lab-knob-latency.json), not asserted (speed belongs in bench/)."""
    lab(page, zoo)
    set_knobs(page, cell="rnn", nonlinearity="tanh", steps="200", hidden="32", radius="0.5")
    before = len(page.evaluate("() => window.__unrolled.knobs.latencies"))
    to_slider(page)
    for _ in range(MOVES):
        page.keyboard.press("ArrowRight")
        drawn(page)
    ms: list[float] = page.evaluate("() => window.__unrolled.knobs.latencies")[before:]
    parts: list[dict[str, float]] = page.evaluate("() => window.__unrolled.knobs.parts")[before:]
    assert len(ms) == MOVES == len(parts) and curve(page)["name"].startswith("RNN · tanh · radius 1.50")
    report = {
        "moves": MOVES, "steps": 200, "hidden": 32, "median_ms": statistics.median(ms), "max_ms": max(ms),
        # the input event to the answer (the request), and the answer to Plotly's redraw
        "answer_median_ms": statistics.median(p["answer"] for p in parts),
        "draw_median_ms": statistics.median(p["draw"] for p in parts),
    }  # fmt: skip
    LATENCY.parent.mkdir(parents=True, exist_ok=True)
    LATENCY.write_text(json.dumps(report, indent=1), encoding="utf-8")
    median, worst = report["median_ms"], report["max_ms"]
    print(
        f"\nknob-to-plot latency at T = 200 over {MOVES} moves: median {median:.1f} ms, max {worst:.1f} ms "
        f"(answer {report['answer_median_ms']:.1f} ms, redraw {report['draw_median_ms']:.1f} ms, medians)"
    )


def test_a_burst_of_moves_keeps_one_request_in_flight_and_the_last_wins(page: Page, zoo: LiveServer) -> None:
    lab(page, zoo)
    set_knobs(page, cell="rnn", radius="0.5")
    to_slider(page)
    for _ in range(MOVES):
        page.keyboard.press("ArrowRight")  # without waiting
    drawn(page)
    k = page.evaluate("() => window.__unrolled.knobs")
    assert k["maxInflight"] == 1
    assert k["last"]["settings"]["radius"] == pytest.approx(1.5)
    assert curve(page)["name"].startswith("RNN · tanh · radius 1.50")


JACOBIAN = """() => [...document.querySelectorAll('#jacobian-plots .plot')].map((gd) => ({
  z: gd.data[0].z, zmin: gd.data[0].zmin, zmax: gd.data[0].zmax, visible: gd.offsetWidth > 0}))"""

# the pixel of (s, t) (1-based) on triangle i, in page coordinates
CELL_AT = """([i, s, t]) => { const gd = document.querySelectorAll('#jacobian-plots .plot')[i];
  const fl = gd._fullLayout; const r = gd.getBoundingClientRect();
  return [r.left + fl.xaxis._offset + fl.xaxis.l2p(s), r.top + fl.yaxis._offset + fl.yaxis.l2p(t)]; }"""

MARKED = """() => { const at = (c) => [...document.querySelectorAll(`#jacobian-unrolled g.step.${c}`)]
  .filter((g) => g.style.display !== 'none').map((g) => Number(g.querySelector('rect.hit').dataset.t));
  return {s: at('mark-s'), t: at('current')}; }"""


def test_the_jacobian_triangles_render_and_a_hover_marks_s_and_t(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    lab(page, zoo)
    page.wait_for_function("() => window.__unrolled.labJacobian?.drawn >= 1")
    triangles = page.evaluate(JACOBIAN)
    assert len(triangles) == 3 and all(t["visible"] for t in triangles)
    T = len(triangles[0]["z"])
    assert T == 102  # the memory card's first example: C, 100 digits, ?
    for tri in triangles:
        z = tri["z"]
        assert all(z[t][s] is None for t in range(T) for s in range(t + 1, T))  # nothing above the diagonal
        assert all(z[t][s] is not None for t in range(T) for s in range(t + 1))
        assert all(abs(z[t][t]) < 1e-6 for t in range(T))  # ‖I‖ = 1 on the diagonal: log10 1 = 0
        assert (tri["zmin"], tri["zmax"]) == (triangles[0]["zmin"], triangles[0]["zmax"])  # one colour scale
    rnn, lstm, gru = (tri["z"] for tri in triangles)
    # the letter's hold on the state at '?': gone in the RNN (below 1e-40), kept by the LSTM and the GRU
    assert rnn[T - 1][0] < -40 and lstm[T - 1][0] > rnn[T - 1][0] + 30 and gru[T - 1][0] > -3
    # hover the RNN's cell s = 5, t = 9: the unrolled view marks step 5 (orange) and step 9 (the cursor)
    page.locator("#jacobian-plots").scroll_into_view_if_needed()
    x, y = page.evaluate(CELL_AT, [0, 5, 9])
    page.mouse.move(x, y)
    page.wait_for_function("() => window.__unrolled.labHover?.s === 4 && window.__unrolled.labHover?.t === 8")
    assert page.evaluate(MARKED) == {"s": [4], "t": [8]}
    assert page.evaluate("() => window.__unrolled.labHover.model") == "memory-rnn"
    assert "s = 5" in page.inner_text("#jacobian-readout") and "t = 9" in page.inner_text("#jacobian-readout")
    # the LSTM's triangle: the view now shows the LSTM's trace, marked at its own cell
    x, y = page.evaluate(CELL_AT, [1, 2, 8])
    page.mouse.move(x, y)
    page.wait_for_function("() => window.__unrolled.labHover?.model === 'memory-lstm'")
    assert page.evaluate(MARKED) == {"s": [1], "t": [7]}
    # the letter against the '?': too far apart for one window, which shows s (the overview strip marks both)
    x, y = page.evaluate(CELL_AT, [2, 1, T])
    page.mouse.move(x, y)
    page.wait_for_function(
        f"() => window.__unrolled.labHover?.model === 'memory-gru' && window.__unrolled.labHover.t === {T - 1}"
    )
    assert page.evaluate(MARKED)["s"] == [0]
    # Plotly's hover box is dark: its text must be light to be read (it once took the layout's dark font colour)
    hover_text = (
        "() => [...document.querySelectorAll('.hoverlayer .hovertext text')].map((t) => getComputedStyle(t).fill)"
    )
    assert page.evaluate(hover_text) and set(page.evaluate(hover_text)) == {"rgb(255, 255, 255)"}
    screenshot(page, "lab-jacobian")
    assert_clean(recorder)


DIFF = """() => ({
  traces: document.querySelector('#diff-plots .plot').data.map((d) => ({name: d.name, y: d.y})),
  pred: document.querySelectorAll('#diff-plots .plot')[1].data.length,
  shapes: document.querySelector('#diff-plots .plot').layout.shapes.map((s) => [s.x0, s.x1]),
  original: [...document.querySelectorAll('.diff-row-original .diff-tok')].map((b) => b.textContent),
  edited: [...document.querySelectorAll('.diff-row-edited .diff-tok')].map((b) => b.textContent),
  marked: [...document.querySelectorAll('.diff-row-original .diff-tok.changed')].map((b) => Number(b.dataset.i)),
  markedEdited: [...document.querySelectorAll('.diff-row-edited .diff-tok.changed')].map((b) => Number(b.dataset.i)),
})"""


def test_one_changed_token_is_marked_and_its_travel_drawn_for_each_cell(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    lab(page, zoo)
    lower_loaded(page)
    d = page.evaluate(DIFF)
    # the memory card's first example with its letter changed to the first other label (C → A): step 1 marked
    assert d["original"][0] == "C" and d["edited"][0] == "A" and d["original"][1:] == d["edited"][1:]
    assert d["marked"] == [0] and d["markedEdited"] == [0] and d["shapes"] == [[0.5, 1.5]]
    assert [t["name"].split()[0] for t in d["traces"]] == ["RNN", "LSTM", "GRU"] and d["pred"] == 3
    T = len(d["original"])
    assert all(len(t["y"]) == T for t in d["traces"])
    rnn, lstm = d["traces"][0]["y"], d["traces"][1]["y"]
    # after 100 digits the RNN's state no longer tells C from A (nothing left to plot on a log axis), the LSTM's does
    assert lstm[-1] > 1 and (rnn[-1] is None or rnn[-1] < lstm[-1] * 1e-3), (rnn[-1], lstm[-1])
    # click the fifth token: the edit moves there
    page.click(".diff-row-original .diff-tok[data-i='4']")
    page.wait_for_function("() => window.__unrolled.labDiff.changed.join() === '4'")
    d = page.evaluate(DIFF)
    assert d["marked"] == [4] and d["edited"][4] != d["original"][4] and d["edited"][0] == d["original"][0]
    assert d["shapes"] == [[4.5, 5.5]]
    assert all(t["y"][k] is None for t in d["traces"] for k in range(4))  # nothing differs before the change
    page.locator("#panel-diff").scroll_into_view_if_needed()
    screenshot(page, "lab-diff")
    screenshot(page, "lab-page", full_page=True)
    assert_clean(recorder)


# a point of the scatter alone within 14 px (a click there can only mean it), in page coordinates
LONE_POINT = """() => { const gd = document.querySelector('#saturation-plot .plot');
  const fl = gd._fullLayout; const r = gd.getBoundingClientRect();
  const pts = gd.data.slice(0, -1).flatMap((d) => d.x.map((x, k) => ({unit: d.customdata[k],
    px: r.left + fl.xaxis._offset + fl.xaxis.l2p(x), py: r.top + fl.yaxis._offset + fl.yaxis.l2p(d.y[k])})));
  const apart = (p, q) => q === p || Math.hypot(q.px - p.px, q.py - p.py) > 14;
  const alone = pts.filter((p) => p.unit !== 0 && pts.every((q) => apart(p, q)));
  return alone[0] ?? null; }"""


def test_gate_saturation_has_one_point_per_gate_unit_and_a_click_selects_the_unit(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    lab(page, zoo)
    lower_loaded(page)
    page.wait_for_function("() => window.__unrolled.labSaturation?.model === 'memory-lstm'")
    sat = page.evaluate("() => window.__unrolled.labSaturation")
    assert sat["gates"] == ["input", "forget", "output"] and sat["points"] == 64 * 3
    page.locator("#panel-saturation").scroll_into_view_if_needed()
    point = page.evaluate(LONE_POINT)
    assert point is not None
    page.mouse.click(point["px"], point["py"])
    unit = point["unit"]
    page.wait_for_function(f"() => window.__unrolled.labSaturation.unit === {unit}")
    # selected everywhere: the unit box, the ring on its points, its gates over time, the model view's link
    assert page.inner_text("#unit-value") == str(unit)
    ring = page.evaluate("() => document.querySelector('#saturation-plot .plot').data.at(-1)")
    gates = page.evaluate("() => document.querySelector('#saturation-plot .plot').data.slice(0, -1)")
    assert ring["x"] == [g["x"][unit] for g in gates] and ring["y"] == [g["y"][unit] for g in gates]
    title = page.evaluate("() => document.querySelector('#saturation-unit .plot').layout.xaxis.title.text")
    assert title.endswith(f"unit {unit}")
    href = page.get_attribute("#saturation-link", "href")
    assert href is not None and href.startswith("/models/memory-lstm?") and f"unit={unit}" in href
    # the bus's unit event, as the model page's keys send it
    page.keyboard.press("]")
    page.wait_for_function(f"() => window.__unrolled.labSaturation.unit === {unit + 1}")
    # the plain RNN has no gates: said, not drawn
    page.select_option("#saturation-cell", "rnn")
    assert "no gates" in page.inner_text("#saturation-readout")
    page.select_option("#saturation-cell", "gru")
    page.wait_for_function("() => window.__unrolled.labSaturation.model === 'memory-gru'")
    assert page.evaluate("() => window.__unrolled.labSaturation.points") == 64 * 2  # reset and update gates
    screenshot(page, "lab-saturation")
    assert_clean(recorder)


def test_a_live_training_run_draws_points_and_its_models_open(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    lab(page, zoo)
    lower_loaded(page)  # the lower sections' computations are done: a run's compute slot is free
    page.fill("#train-n", "5")
    page.fill("#train-seconds", "3")
    page.keyboard.press("Escape")  # out of the field: the key T starts it, as the button does
    page.keyboard.press("t")
    page.wait_for_function("() => window.__unrolled.labTrain?.state === 'running'")
    page.wait_for_function("() => (window.__unrolled.labTrain?.points ?? 0) > 0", timeout=30_000)
    page.wait_for_function("() => window.__unrolled.labTrain?.state !== 'running'", timeout=60_000)
    run = page.evaluate("() => window.__unrolled.labTrain")
    assert run["state"] == "done", run
    for gd in page.query_selector_all("#train-plots .plot"):
        lengths = gd.evaluate("(gd) => gd.data.map((d) => d.x.length)")
        assert len(lengths) == 6 and all(n > 0 for n in lengths)  # each cell's long-gap batches and their average
    links = page.eval_on_selector_all("#train-done a.model-link", "(as) => as.map((a) => a.getAttribute('href'))")
    assert len(links) == 3
    assert [link.rsplit("-", 1)[-1] for link in links] == CELLS
    for link in links:
        assert httpx.get(zoo.url + link, timeout=10).status_code == 200
    assert page.locator("#train-done").inner_text().count("%") == 3  # the held-out accuracies
    page.locator("#panel-train").scroll_into_view_if_needed()
    screenshot(page, "lab-training")
    page.click("#train-done a.model-link >> nth=1")
    page.wait_for_function("() => (window.__unrolled?.loaded ?? 0) >= 1")
    assert page.evaluate("() => window.__unrolled.trace.model") == links[1].rsplit("/", 1)[-1]
    assert_clean(recorder)


# every text node drawn, with the size it is drawn at (HTML and SVG)
TEXT_SIZES = """() => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    const unseen = 'dialog:not([open]), script, style, .modebar-container, .hoverlayer';
    if (!n.textContent.trim() || !el || el.closest(unseen)) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || getComputedStyle(el).visibility === 'hidden') continue;
    out.push([n.textContent.trim().slice(0, 30), parseFloat(getComputedStyle(el).fontSize)]);
  }
  return out; }"""


def test_presenter_mode_at_1280_by_720_has_no_text_under_14_px(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    page.set_viewport_size({"width": 1280, "height": 720})
    lab(page, zoo, "?presenter=1")
    lower_loaded(page)
    page.wait_for_function("() => window.__unrolled.labSaturation && window.__unrolled.labJacobian")
    sizes = page.evaluate(TEXT_SIZES)
    assert len(sizes) > 200
    small = [s for s in sizes if s[1] < 14]
    assert small == [], small
    screenshot(page, "lab-presenter")
    assert_clean(recorder)


def test_an_input_the_audience_types_runs_through_every_section_at_1280_by_720(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    """A memory input no example has, typed into the lab's input bar in presenter mode: the triangles, the
    one-token diff and the saturation scatter are all of it, and nothing on screen is under 14 px."""
    page.set_viewport_size({"width": 1280, "height": 720})
    lab(page, zoo, "?presenter=1")
    lower_loaded(page)
    typed = "E 27182 81828 45904 52353 60287 47135 ?"  # 30 digits: the lesson's gap (tests/browser/test_lab_lesson.py)
    tokens = [c for c in typed if c != " "]
    page.fill("#text-input", typed)
    page.click("#run")
    page.wait_for_function(
        "(n) => [...document.querySelectorAll('#jacobian-plots .plot')].every((gd) => gd.data?.[0]?.z?.length === n)",
        arg=len(tokens),
    )
    triangles = page.evaluate(JACOBIAN)
    assert len(triangles) == 3
    for tri in triangles:  # nothing above the diagonal, the identity's norm on it
        z = tri["z"]
        assert all(z[t][s] is None for t in range(len(tokens)) for s in range(t + 1, len(tokens)))
        assert all(abs(z[t][t]) < 1e-6 for t in range(len(tokens)))
    diff_tokens = "(n) => document.querySelectorAll('.diff-row-original .diff-tok').length === n"
    page.wait_for_function(diff_tokens, arg=len(tokens))
    d = page.evaluate(DIFF)
    assert d["original"] == tokens and d["edited"][1:] == tokens[1:] and d["edited"][0] != "E"
    assert all(len(t["y"]) == len(tokens) for t in d["traces"])
    page.wait_for_function("(n) => window.__unrolled.labSaturation?.steps === n", arg=len(tokens))
    small = [x for x in page.evaluate(TEXT_SIZES) if x[1] < 14]
    assert small == [], small
    assert_clean(recorder)


def test_a_refused_training_run_is_said_plainly_and_a_busy_one_retried(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    """A gap over the server's limit is a 422 naming it. A second run while another page's trains is refused
    (503): the page says another run is going and retries by itself, and starts once the other stops."""
    lab(page, zoo)
    lower_loaded(page)  # the lower sections' computations are done: a run's compute slot is free
    page.fill("#train-n", "100000")
    page.click("#train-start")
    page.wait_for_function("() => window.__unrolled.labTrain?.state === 'error'")
    assert page.evaluate("() => window.__unrolled.labTrain.status") == 422
    message = page.inner_text("#train-message")
    assert message.startswith("The training run failed — 422: ") and "200" in message  # lab_max_gap
    assert page.get_attribute("#train-message", "data-kind") == "error"
    other = page.context.new_page()
    other.goto(zoo.url + "/lab")
    lower_loaded(other)
    other.fill("#train-n", "5")
    other.fill("#train-seconds", "60")
    other.click("#train-start")
    other.wait_for_function("() => (window.__unrolled.labTrain?.points ?? 0) > 0", timeout=30_000)
    page.fill("#train-n", "7")
    page.fill("#train-seconds", "3")
    page.click("#train-start")
    page.wait_for_function("() => window.__unrolled.labTrain?.state === 'retrying'")
    assert page.inner_text("#train-message").startswith("Another run is going on the server; retrying in ")
    assert page.get_attribute("#train-message", "data-kind") == "info"
    other.click("#train-start")  # Stop: the first run ends at once and says so
    other.wait_for_function("() => window.__unrolled.labTrain?.state === 'done'", timeout=30_000)
    assert other.inner_text("#train-message").startswith("Stopped.")
    # the retry starts a run of its own (its retry_after and backoff are at most a few seconds)
    page.wait_for_function("() => window.__unrolled.labTrain?.state === 'done'", timeout=40_000)
    assert page.evaluate("() => window.__unrolled.labTrain.attempt") >= 1
    assert page.inner_text("#train-message").startswith("Time is up.")
    other.close()
    assert_clean(recorder)
