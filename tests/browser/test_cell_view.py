"""The cell, drawn (issue 29): on a model's page the cell view draws one step of the LSTM or the GRU lit by the
trace at the cursor. Typed inputs no example has, stepped through with the keyboard: at three steps the drawn
valves' openings and the numbers beside the equations are the REST trace's for that step and unit, and in the BPTT
sweep the gradient drawn along the memory line (the LSTM's cell state, the GRU's hidden state) is the trace's
‖∂L/∂c_t‖ (‖∂L/∂h_t‖). Screenshots at 1280×720 and 1920×1080, forward and backward, go to test-output/screenshots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from app.tour.tours import BUILTIN_TOURS, DEFAULT_TOUR, load_tour
from tests.browser.conftest import Recorder, assert_clean, screenshot
from tests.conftest import LiveServer

UNIT = 3  # the unit followed: not the page's first, so that the unit's numbers are its own
STEPS = (0, 3, 6)  # the steps read (0-based), forward
DECIMALS = 0.0005 + 1e-5  # the numbers are written with 3 decimals: half the last digit (and float32's own)

# What the drawing says at the cursor, read off the SVG as a reader sees it: each valve's slot height over the full
# slot (the mean's wide slot, the unit's narrow one), each equation's numbers as written, the gradient labels.
DRAWN = """() => {
  const svg = document.querySelector('#panel-diagram svg.cell-diagram');
  const num = (s) => Number(s.replace('−', '-'));
  const valve = (r) => Number(r.getAttribute('height')) / Number(r.dataset.full);
  return {
    phase: svg.dataset.phase, step: Number(svg.dataset.step), unit: Number(svg.dataset.unit),
    valves: Object.fromEntries([...svg.querySelectorAll('rect.slot')].map((r) => [r.dataset.gate, valve(r)])),
    unitValves: Object.fromEntries([...svg.querySelectorAll('rect.slot-unit')].map((r) => [r.dataset.gate, valve(r)])),
    equations: [...svg.querySelectorAll('.eq[data-q]')].map((e) => ({
      q: e.dataset.q,
      mean: e.querySelector('.num-mean') ? num(e.querySelector('.num-mean').textContent) : null,
      unit: e.querySelector('.num-unit') ? num(e.querySelector('.num-unit').textContent) : null,
      passing: e.querySelector('.num-passing')?.textContent ?? null,
    })),
    gradNow: svg.querySelector('.grad-now') && {
      text: svg.querySelector('.grad-now').textContent, norm: Number(svg.querySelector('.grad-now').dataset.norm) },
    gradBefore: svg.querySelector('.grad-before') && {
      text: svg.querySelector('.grad-before').textContent, norm: svg.querySelector('.grad-before').dataset.norm },
    line: [...svg.querySelectorAll('path.arrow[data-norm]')].map((p) => p.dataset.norm),
  };
}"""


# The compare scene's two drawings at the cursor, by cell: the valves' openings (mean, unit), the RNN's tanh, the
# gradient along each memory line.
SIDE_BY_SIDE = """() => {
  const svg = document.querySelector('#stage svg.cell-diagram');
  const out = { unit: Number(svg.dataset.unit) };
  for (const g of svg.querySelectorAll('g.cell')) {
    const open = (r) => Number(r.getAttribute('height')) / Number(r.dataset.full);
    out[g.dataset.cell] = {
      valves: Object.fromEntries([...g.querySelectorAll('rect.slot')].map((r) =>
        [r.dataset.gate, [open(r), open(g.querySelector(`rect.slot-unit[data-gate="${r.dataset.gate}"]`))]])),
      tanh: Number(g.querySelector('[data-node=tanh] rect.squash')?.dataset.mean),
      gradNow: g.querySelector('.grad-now') ? Number(g.querySelector('.grad-now').dataset.norm) : null,
      line: [...g.querySelectorAll('path.arrow[data-norm]')].map((p) => Number(p.dataset.norm)),
    };
  }
  return out;
}"""


def rest_trace(server: LiveServer, model: str, text: str) -> dict[str, Any]:
    r = httpx.post(f"{server.url}/api/models/{model}/trace", json={"text": text}, timeout=120)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def at_step(body: dict[str, Any], q: str, t: int) -> list[float]:
    """The trace's vector q at step t of the first layer: a gate by its name, c (the cell state) or h."""
    layer = body["layers"][0]
    values: list[float] = (
        layer["gates"][q][t] if q in layer["gates"] else layer["cell_state" if q == "c" else "hidden"][t]
    )
    return values


def mean(v: list[float]) -> float:
    return sum(v) / len(v)


def type_input(page: Page, text: str) -> None:
    """What a presenter does: a click into the input, select all, type, Enter; then until its trace is in."""
    loaded = page.evaluate("() => window.__unrolled?.loaded ?? 0")
    page.click("#text-input, #input-0")
    page.keyboard.press("Control+a")
    page.keyboard.type(text)
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => (window.__unrolled?.loaded ?? 0) > {loaded}")
    page.evaluate("() => document.activeElement?.blur()")  # the keys drive the page again


def go_to(page: Page, t: int, phase: str) -> dict[str, Any]:
    """Step with the arrow keys (and B for the other sweep) until the cursor is at (phase, t); then the drawing."""
    if page.evaluate("() => window.__unrolled.cursor?.playing"):
        page.keyboard.press("Space")
    for _ in range(200):
        c = page.evaluate("() => window.__unrolled.cursor")
        if c["phase"] != phase:
            page.keyboard.press("b")
        elif c["t"] == t:
            break
        else:  # the BPTT sweep runs right to left: → goes back in time there
            forward = (c["t"] < t) == (phase == "forward")
            page.keyboard.press("ArrowRight" if forward else "ArrowLeft")
        page.wait_for_function(
            "(c) => { const n = window.__unrolled.cursor; return n.t !== c.t || n.phase !== c.phase; }", arg=c
        )
    page.wait_for_function(
        "([t, phase, unit]) => { const s = document.querySelector('#panel-diagram svg.cell-diagram');"
        " return s && s.dataset.step === String(t) && s.dataset.phase === phase && s.dataset.unit === String(unit); }",
        arg=[t, phase, UNIT],
    )
    drawn: dict[str, Any] = page.evaluate(DRAWN)
    return drawn


def show_panel(page: Page) -> None:
    """The drawing in the middle of the screen, its title clear of the sticky player (for the screenshots)."""
    page.evaluate("() => document.getElementById('panel-diagram').scrollIntoView({block: 'center'})")
    page.evaluate("() => new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(() => ok(true))))")


def open_model(page: Page, server: LiveServer, model: str, text: str) -> dict[str, Any]:
    page.goto(f"{server.url}/models/{model}")
    page.wait_for_function("() => (window.__unrolled?.loaded ?? 0) >= 1")
    type_input(page, text)
    # a new input plays from its first step: paused, the drawing stays on one step while it is read
    page.wait_for_function("() => window.__unrolled.cursor?.playing !== undefined")
    if page.evaluate("() => window.__unrolled.cursor.playing"):
        page.keyboard.press("Space")
    page.wait_for_function("() => window.__unrolled.cursor.playing === false")
    for _ in range(UNIT):
        page.keyboard.press("]")
    page.wait_for_function(f"() => window.__unrolled.state?.unit === {UNIT}")
    show_panel(page)
    return rest_trace(server, model, text)


def check_forward(drawn: dict[str, Any], body: dict[str, Any], t: int, gates: list[str]) -> None:
    """The valves open by the gates' means and the unit's values; each equation's numbers are its quantity's."""
    assert drawn["phase"] == "forward" and drawn["step"] == t and drawn["unit"] == UNIT
    assert sorted(drawn["valves"]) == sorted(g for g in gates if g != "candidate")  # the sigmoid gates are valves
    for g, opening in drawn["valves"].items():
        assert opening == pytest.approx(mean(at_step(body, g, t)), abs=1e-3), (g, t)
        assert drawn["unitValves"][g] == pytest.approx(at_step(body, g, t)[UNIT], abs=1e-3), (g, t)
    shown = {e["q"]: e for e in drawn["equations"]}
    assert set(gates) | {"h"} <= set(shown), shown  # every gate's equation and h_t's carry numbers
    for q, e in shown.items():
        v = at_step(body, q, t)
        assert e["mean"] == pytest.approx(mean(v), abs=DECIMALS), (q, t, e)
        assert e["unit"] == pytest.approx(v[UNIT], abs=DECIMALS), (q, t, e)


def check_backward(drawn: dict[str, Any], body: dict[str, Any], t: int, line: str, gate: str) -> None:
    """Along the memory line: ‖∂L/∂·‖ at step t and at the step before, as the trace has them; what the gate passes
    back is its mean and the unit's value at t."""
    norms = body["grad_norms"][line][0]
    assert drawn["phase"] == "backward" and drawn["step"] == t
    assert drawn["gradNow"]["norm"] == pytest.approx(norms[t], rel=1e-3)
    written = float(drawn["gradNow"]["text"].split()[-1].replace("−", "-"))
    assert written == pytest.approx(norms[t], rel=5e-3)  # three significant digits
    # the line's arrows: this step's norm from c_t (h_t) back to the gate, the step before's behind it
    assert sorted({float(x) for x in drawn["line"]}) == sorted({norms[t], norms[t - 1]}), drawn["line"]
    assert float(drawn["gradBefore"]["norm"]) == pytest.approx(norms[t - 1], rel=1e-3)
    passing = [e for e in drawn["equations"] if e["passing"]]
    assert [e["q"] for e in passing] == [gate]
    f = at_step(body, gate, t)
    assert f"mean {mean(f):.3f}".replace("-", "−") in passing[0]["passing"]
    assert f"unit {UNIT} {f[UNIT]:.3f}".replace("-", "−") in passing[0]["passing"]


CASES = [
    # model, a typed input no example of it has, the gates, the memory line's gradient, the gate on it
    ("alphabet-lstm", "PQRSTUVBCDEF", ["input", "forget", "candidate", "output"], "cell_state", "forget"),
    ("charlm-gru", "Our rivers, at dawn", ["reset", "update", "candidate"], "hidden", "update"),
]


@pytest.mark.parametrize(("model", "text", "gates", "line", "gate"), CASES, ids=[c[0] for c in CASES])
def test_the_drawn_cell_is_the_trace_at_the_cursor_forward_and_in_the_bptt_sweep(
    page: Page, recorder: Recorder, zoo: LiveServer, model: str, text: str, gates: list[str], line: str, gate: str
) -> None:
    body = open_model(page, zoo, model, text)
    assert len(body["tokens"]) > max(STEPS) and not any(
        e["text"] == text for e in httpx.get(f"{zoo.url}/api/models/{model}").json()["examples"]
    )
    for t in STEPS:
        check_forward(go_to(page, t, "forward"), body, t, gates)
    cell = model.split("-")[-1]
    show_panel(page)
    screenshot(page, f"cell-{cell}-forward-1280")
    for t in reversed(STEPS[1:]):
        drawn = go_to(page, t, "backward")
        check_backward(drawn, body, t, line, gate)
    show_panel(page)
    screenshot(page, f"cell-{cell}-backward-1280")
    # at the first step the line has no step before it: nothing is claimed for it
    drawn = go_to(page, 0, "backward")
    assert drawn["gradBefore"]["norm"] == ""
    assert math.isclose(drawn["gradNow"]["norm"], body["grad_norms"][line][0][0], rel_tol=1e-3)
    page.set_viewport_size({"width": 1920, "height": 1080})
    check_backward(go_to(page, STEPS[1], "backward"), body, STEPS[1], line, gate)
    show_panel(page)
    screenshot(page, f"cell-{cell}-backward-1920")
    check_forward(go_to(page, STEPS[1], "forward"), body, STEPS[1], gates)
    show_panel(page)
    screenshot(page, f"cell-{cell}-forward-1920")
    assert_clean(recorder)


def test_a_part_hovered_or_stepped_to_lights_its_equation_and_the_drawing_exports(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    """The forget gate's valve hovered lights its equation; ↑ / ↓ on the focused drawing step through the parts."""
    open_model(page, zoo, "alphabet-lstm", "MNOPQ XYZ")
    svg = page.locator("#panel-diagram svg.cell-diagram")
    svg.locator("[data-node=forget]").hover()
    lit = "() => [...document.querySelectorAll('#panel-diagram .eq.lit')].map((e) => e.dataset.part)"
    page.wait_for_function(f"() => ({lit})().length > 0")
    assert page.evaluate(lit) == ["forget"]
    page.mouse.move(0, 0)  # the mouse gone, nothing is lit
    page.wait_for_function(f"() => ({lit})().length === 0")
    svg.focus()
    stepped = []
    for key in ["ArrowDown", "ArrowDown", "ArrowDown", "ArrowUp"]:
        page.keyboard.press(key)
        stepped.append(page.evaluate(lit))
    # the parts in the order of the equations: f, i, c̃ (down), then back to i (up)
    assert stepped == [["forget"], ["input"], ["candidate"], ["input"]]
    # exported as the other views are: the drawing with its numbers, as SVG and as PNG
    with page.expect_download() as svg_file:
        page.click("#tools-diagram [data-export=svg]")
    name = svg_file.value.suggested_filename
    assert name.startswith("cell-drawn-forward-step-") and name.endswith(".svg")
    content = Path(svg_file.value.path()).read_text(encoding="utf-8")
    assert content.startswith("<svg") and "cₜ = fₜ ⊙ cₜ₋₁ + iₜ ⊙ c̃ₜ" in content and 'class="slot"' in content
    with page.expect_download() as png:
        page.click("#tools-diagram [data-export=png]")
    assert png.value.suggested_filename == name.replace(".svg", ".png")
    assert Path(png.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_clean(recorder)


# The gates-at-this-step table as a reader sees it: the row framed (the canvas says which), the number in its readout.
TABLE = """() => {
  const c = document.querySelector('canvas.cellstep');
  const mark = [...document.querySelectorAll('mark.lit')];
  return { lit: c.dataset.lit, value: c.dataset.litValue, marks: mark.map((m) => [m.dataset.q, m.textContent]) };
}"""


def drawn_unit_number(page: Page, q: str) -> str:
    """The selected unit's number written beside q's equation in the drawing."""
    text: str = page.evaluate(
        '(q) => document.querySelector(`#panel-diagram .eq[data-q="${q}"] .num-unit`).textContent', q
    )
    return text


def test_a_part_lit_in_the_drawing_lights_the_same_number_in_the_gates_table(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    """Hovering a gate in the drawing (or stepping to it with ↑ / ↓) lights that gate's row in the gates-at-this-step
    table, whose readout shows the unit's value as the drawing writes it beside the equation; and the trace's."""
    text = "KLMNO VWX"
    body = open_model(page, zoo, "alphabet-lstm", text)
    t = STEPS[1]
    go_to(page, t, "forward")
    svg = page.locator("#panel-diagram svg.cell-diagram")
    lit = "(q) => document.querySelector('canvas.cellstep').dataset.lit === q"
    svg.locator("[data-node=output]").hover()
    page.wait_for_function(lit, arg="output")
    table = page.evaluate(TABLE)
    number = drawn_unit_number(page, "output")
    assert table["value"] == number and table["marks"] == [["output", f"output {number}"]]
    assert float(number.replace("−", "-")) == pytest.approx(at_step(body, "output", t)[UNIT], abs=DECIMALS)
    page.mouse.move(0, 0)  # the mouse gone, the table's row is no longer lit
    page.wait_for_function(lit, arg="")
    assert page.evaluate(TABLE)["marks"] == []
    svg.focus()
    # ↓ from nothing: the equations' parts in order (f, i, c̃, o, cₜ), each lighting its own row (c_t's too), ↑ back
    for key, q in [*(("ArrowDown", q) for q in ("forget", "input", "candidate", "output", "c")), ("ArrowUp", "output")]:
        page.keyboard.press(key)
        page.wait_for_function(lit, arg=q)
        table = page.evaluate(TABLE)
        number = drawn_unit_number(page, q)
        assert table["value"] == number and [m[0] for m in table["marks"]] == [q], (q, table)
        assert float(number.replace("−", "-")) == pytest.approx(at_step(body, q, t)[UNIT], abs=DECIMALS), q
    # the table's lit row and its readout at the foot of the screen, the drawing's equations above them
    page.evaluate(
        "() => document.querySelector('canvas.cellstep').parentElement.parentElement.scrollIntoView({block: 'end'})"
    )
    screenshot(page, "cell-lit-in-the-table-1280")
    assert_clean(recorder)


def test_the_tours_side_by_side_scene_draws_the_rnn_and_the_lstm_whole_at_the_same_step(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    """The side-by-side scene ('The RNN and the LSTM'): the RNN's and the LSTM's whole drawings at the cursor, each lit
    by its own trace of an input the audience typed. Forward: the LSTM's valves open by its gates, the RNN's tanh is
    its h_t; in the BPTT sweep each memory line carries its own gradient (the RNN's ‖∂L/∂h_t‖, the LSTM's
    ‖∂L/∂c_t‖), L at the last step as the scene measures it."""
    titles = [s.title for s in load_tour(BUILTIN_TOURS / f"{DEFAULT_TOUR}.json").scenes]
    n = next(i for i, title in enumerate(titles, 1) if title.startswith("The RNN and the LSTM"))
    page.goto(f"{zoo.url}/tour?scene={n}")
    page.wait_for_function(f"() => window.__unrolled?.tour?.scene === {n} && window.__unrolled.tour.ready")
    typed = "G 27182 81828 45904 ?"
    page.keyboard.press("/")
    page.keyboard.press("Control+a")
    page.keyboard.type(typed)
    page.keyboard.press("Enter")
    page.wait_for_function(
        "(text) => window.__unrolled.tour.ready && window.__unrolled.trace?.done"
        " && window.__unrolled.trace.tokens.join('').replace(/\\s/g, '') === text.replace(/\\s/g, '')",
        arg=typed,
    )
    cells = "() => [...document.querySelectorAll('#stage svg.cell-diagram g.cell')].map((g) => g.dataset.model)"
    page.wait_for_function(f"() => ({cells})().length === 2")
    assert page.evaluate(cells) == ["memory-rnn", "memory-lstm"]
    rest = {}
    for model in ("memory-rnn", "memory-lstm"):
        r = httpx.post(f"{zoo.url}/api/models/{model}/trace", json={"text": typed, "loss": "last"}, timeout=120)
        assert r.status_code == 200, r.text
        rest[model.split("-")[1]] = r.json()
    for phase, t in (("backward", 3), ("backward", 1), ("forward", 2), ("forward", 5)):
        while page.evaluate("() => window.__unrolled.cursor.phase") != phase:
            page.keyboard.press("b")
            page.wait_for_function(
                "(p) => window.__unrolled.cursor.phase !== p", arg="forward" if phase != "forward" else "backward"
            )
        while (c := page.evaluate("() => window.__unrolled.cursor"))["t"] != t:
            ahead = (c["t"] < t) == (phase == "forward")  # the BPTT sweep runs right to left
            page.keyboard.press("Shift+ArrowRight" if ahead else "Shift+ArrowLeft")  # (→ alone: the next scene)
            page.wait_for_function("(c) => window.__unrolled.cursor.t !== c.t", arg=c)
        page.wait_for_function(
            f"() => document.querySelector('#stage svg.cell-diagram')?.dataset.step === '{t}'"
            f" && document.querySelector('#stage svg.cell-diagram').dataset.phase === '{phase}'"
        )
        drawn: dict[str, Any] = page.evaluate(SIDE_BY_SIDE)
        if phase == "backward":
            for cell, line in (("rnn", "hidden"), ("lstm", "cell_state")):
                norms = rest[cell]["grad_norms"][line][0]
                assert drawn[cell]["gradNow"] == pytest.approx(norms[t], rel=1e-3), (cell, t)
                # its memory line: this step's norm and the step before's, nothing of the other cell's
                assert sorted(set(drawn[cell]["line"])) == pytest.approx(sorted({norms[t], norms[t - 1]}), rel=1e-6)
            continue
        u = drawn["unit"]
        lstm, rnn = rest["lstm"], rest["rnn"]
        assert sorted(drawn["lstm"]["valves"]) == ["forget", "input", "output"] and drawn["rnn"]["valves"] == {}
        for g, (opening, unit_opening) in drawn["lstm"]["valves"].items():
            assert opening == pytest.approx(mean(at_step(lstm, g, t)), abs=1e-3), (g, t)
            assert unit_opening == pytest.approx(at_step(lstm, g, t)[u], abs=1e-3), (g, t)
        # the RNN has no gate: its one tanh is h_t (its colour's mean); the arrows out carry h_t
        assert drawn["rnn"]["tanh"] == pytest.approx(mean(at_step(rnn, "h", t)), abs=1e-5), t
    assert_clean(recorder)
