"""The melody page in a real browser, on the zoo's melody models: a gesture starts the AudioContext and the roll's
cursor moves while it runs, each note sounding as the cursor reaches it; the model's guesses on the roll; Write
plays what the model writes; no audio is never an error; the tour's first scene plays its melody; and a bad note is
named beside the input."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from playwright.sync_api import Page

from tests.browser.conftest import Recorder, assert_clean, screenshot, state, wait_loaded
from tests.conftest import LiveServer

ODE = "E4:1 E4:1 F4:1 G4:1 G4:1 F4:1 E4:1 D4:1 C4:1 C4:1 D4:1 E4:1 E4:1.5 D4:0.5 D4:2"

ROLL = """() => {
  const cur = document.querySelector('#roll .roll-cursor');
  return {
    x: cur ? Number(cur.dataset.x) : null,
    notes: document.querySelectorAll('#roll rect.note').length,
    current: document.querySelectorAll('#roll rect.note.current').length,
    guesses: document.querySelectorAll('#roll rect.guess').length,
    hits: [...document.querySelectorAll('#roll rect.guess')]
      .filter((r) => r.getAttribute('stroke-width') === '3').length,
    audio: window.__unrolled.audio,
    sounded: window.__unrolled.sounded ?? null,
    readout: document.getElementById('roll-readout').textContent,
    indicator: document.getElementById('sound').textContent,
  };
}"""


def roll(page: Page) -> dict[str, Any]:
    value: dict[str, Any] = page.evaluate(ROLL)
    return value


def test_a_gesture_starts_the_sound_and_the_rolls_cursor_moves_while_it_plays(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    page.goto(zoo.url + f"/models/melody-lstm?text={quote(ODE)}&tempo=200")
    wait_loaded(page)
    before = roll(page)
    # no gesture yet: the browser has not let the page start sound, and the page says so
    assert before["audio"]["context"] == "none" and "press a key" in before["indicator"]
    assert before["notes"] == 15 and before["current"] == 1 and state(page)["t"] == 0
    page.keyboard.press("Space")  # the gesture: sound starts, and play
    page.wait_for_function("() => window.__unrolled.audio?.context === 'running'")
    page.wait_for_function(f"() => Number(document.querySelector('#roll .roll-cursor').dataset.x) > {before['x']}")
    page.wait_for_function("() => (window.__unrolled.sounded?.count ?? 0) >= 3 && window.__unrolled.audio.played >= 3")
    during = roll(page)
    assert during["audio"]["state"] == "running" and during["audio"]["context"] == "running"
    assert during["x"] > before["x"] and "sound on" in during["indicator"]
    assert state(page)["playing"] or state(page)["t"] == 14  # still playing, or just finished the tune
    # the note sounded is the note at the cursor: E4 = MIDI 64, F4 65, G4 67, …
    page.wait_for_function("() => window.__unrolled.state.t >= 3 || !window.__unrolled.state.playing")
    page.keyboard.press("Space")
    t = state(page)["t"]
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"() => window.__unrolled.sounded.t === {t + 1}")
    expected = [64, 64, 65, 67, 67, 65, 64, 62, 60, 60, 62, 64, 64, 62, 62][t + 1]
    assert page.evaluate("() => window.__unrolled.sounded.midi") == expected
    screenshot(page, "melody-playing")
    assert_clean(recorder)


def test_the_model_guesses_the_next_note_on_the_roll(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    page.goto(zoo.url + f"/models/melody-lstm?text={quote(ODE)}&step=3")
    wait_loaded(page)
    page.wait_for_function("() => document.querySelectorAll('#roll rect.guess').length === 5")
    r = roll(page)
    trace = page.evaluate("() => window.__unrolled.trace.predictions[2].map((p) => p.token)")
    assert len(trace) == 5 and r["guesses"] == 5
    assert r["hits"] == (1 if "G4:1" in trace else 0)  # what came after F4 is G4:1, outlined if guessed
    assert r["readout"].startswith("Note 3 of 15: F4 for 1 beat. Next, the model expects")
    assert "then came G4:1" in r["readout"]
    # the predictions panel is the model page's own view
    assert page.locator("#predictions").inner_text().count(":") >= 5
    assert_clean(recorder)


def test_write_plays_each_note_as_the_model_writes_it(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    page.goto(zoo.url + "/models/melody-gru?text=" + quote("C4:1 E4:1 G4:1") + "&tempo=200&temperature=1.5&seed=7")
    wait_loaded(page)
    page.keyboard.press("w")  # a gesture, and Write
    page.wait_for_function("() => (window.__unrolled.loaded ?? 0) >= 2")
    page.wait_for_function("() => window.__unrolled.audio.context === 'running'")
    page.wait_for_function("() => window.__unrolled.state.t >= 4")  # past the prompt: notes the model wrote
    written = page.evaluate("() => window.__unrolled.trace")
    assert written is not None
    info = page.evaluate(
        "() => ({T: window.__unrolled.trace.T, prompt: window.__unrolled.trace.promptSteps,"
        " sampled: Array.from(window.__unrolled.trace.sampled).filter(Boolean).length,"
        " green: [...document.querySelectorAll('#roll rect.note')]"
        ".filter((r) => r.getAttribute('fill') === '#16a34a').length})"
    )
    assert info["prompt"] == 3 and info["T"] == 3 + 24 and info["sampled"] == 24
    assert info["green"] >= 1  # the notes the model wrote, in green, as the cursor reaches them
    assert "temperature=1.5" in page.url and "seed=7" in page.url
    assert_clean(recorder)


def test_a_browser_without_web_audio_still_plays_the_roll(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    page.add_init_script("delete window.AudioContext; delete window.webkitAudioContext;")
    page.goto(zoo.url + f"/models/melody-rnn?text={quote(ODE)}&tempo=200")
    wait_loaded(page)
    x0 = roll(page)["x"]
    page.keyboard.press("Space")
    page.wait_for_function(f"() => Number(document.querySelector('#roll .roll-cursor').dataset.x) > {x0}")
    r = roll(page)
    assert r["audio"]["state"] == "unavailable" and r["indicator"] == "♪ no sound" and r["audio"]["played"] == 0
    assert_clean(recorder)


def test_the_tours_first_scene_plays_a_melody_and_forecasts_a_series(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    page.goto(zoo.url + "/tour?scene=1")
    page.wait_for_function("() => window.__unrolled.tour?.ready")
    page.wait_for_function("() => window.__unrolled.tourSeries?.forecast?.length === 20")
    panels = page.evaluate("() => [...document.querySelectorAll('.tour-panel')].map((p) => p.dataset.panel)")
    assert panels == ["unrolled", "roll", "forecast"]
    page.mouse.click(5, 715)  # the first gesture: the tune starts again, heard
    page.wait_for_function("() => window.__unrolled.audio?.context === 'running'")
    page.wait_for_function("() => window.__unrolled.tourMelody?.t >= 2 && window.__unrolled.audio.played >= 2")
    melody = page.evaluate("() => window.__unrolled.tourMelody")
    assert melody["model"] == "melody-lstm" and melody["T"] == 15
    series = page.evaluate("() => window.__unrolled.tourSeries")
    assert series["model"] == "sunspots-lstm" and series["steps"] == 60
    readout = page.locator(".tour-panel[data-panel=forecast] .info").inner_text()
    assert readout.startswith("1968: 106. From it and every value before, the model predicts 1969:")
    assert page.locator(".tour-panel[data-panel=forecast] .plot .scatterlayer .trace").count() == 3
    assert_clean(recorder)


SMALL_TEXT = """() => [...document.querySelectorAll('svg text')]
  .filter((t) => t.textContent.trim() && t.getBoundingClientRect().width > 0)
  .map((t) => [t.textContent.trim(), parseFloat(getComputedStyle(t).fontSize)]).filter(([, s]) => s < 14)"""


def test_a_typed_melody_reads_at_1280_by_720(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    """A melody a presenter types (no example has it) is drawn note for note, and nothing on the projector at
    1280×720 is under 14 px."""
    typed = "C4:0.5 D4:0.5 E4:1 G4:2 R:1 G4:1 E4:1 C4:2"
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(zoo.url + f"/models/melody-gru?text={quote(typed)}&presenter=1")
    wait_loaded(page)
    assert roll(page)["notes"] == 7  # eight steps, one of them a rest: seven bars on the roll
    assert state(page)["steps"] == 8
    assert page.evaluate(SMALL_TEXT) == []
    assert_clean(recorder)


INPUT_ERROR = """() => {
  const el = document.getElementById('input-error');
  const bar = document.getElementById('run-form').getBoundingClientRect();
  const box = el?.getBoundingClientRect();
  return el && !el.hidden ? {text: el.textContent, size: parseFloat(getComputedStyle(el).fontSize),
    gap: box.top - bar.bottom, bottom: box.bottom, toast: !document.getElementById('status').hidden} : null;
}"""


def test_a_bad_note_is_named_beside_the_input_until_the_next_good_run(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    """A mistyped note (H is no pitch; no example has it), projected at 1280×720 in presenter mode: the API's
    message, which names the note and counts it from 1, is shown under the notes, where the presenter types, at
    14 px or more, and not in the status toast (which goes after 8 s, over the roll's readout); the melody read
    before stays, and the next good run takes the message away."""
    typed = "C4:1 D4:0.5 H4:1 E4:2"
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(zoo.url + "/models/melody-gru?presenter=1")
    wait_loaded(page)
    before = state(page)["steps"]
    page.keyboard.press("/")  # as the presenter does: to the notes, select them, type, Enter
    page.keyboard.press("Control+a")
    page.keyboard.type(typed)
    page.keyboard.press("Enter")
    page.wait_for_function(INPUT_ERROR)
    shown = page.evaluate(INPUT_ERROR)
    api = httpx.post(zoo.url + "/api/models/melody-gru/trace", json={"text": typed})
    assert api.status_code == 422 and shown["text"] == api.json()["message"]  # the API's words, as they are
    assert "'H4:1' at position 3" in shown["text"]
    assert 0 <= shown["gap"] < 20 and shown["bottom"] <= 720 and shown["size"] >= 14, shown
    assert not shown["toast"]
    assert state(page)["steps"] == before
    screenshot(page, "melody-bad-note")
    page.fill("#text-input", typed.replace("H4", "G4"))
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.__unrolled.state?.steps === 4 && window.__unrolled.state.done")
    assert page.evaluate(INPUT_ERROR) is None
    assert_clean(recorder)
