"""What an audience types, in a real browser on the repository's zoo (issue 22, items 3, 7, 10 and 13): input outside
a model's vocabulary is struck through and named on every page that shows it, and where it takes away what the
answer is about the page says so; an input the API refuses is named beside it; the writing scene samples afresh on
every run (the seed shown, S samples again, a link's seed replays); every scene, the Jacobian triangles' cells, the
saturation plot's units and scene 2's second input are reached from the keyboard, and the Keys panel lists what
works on the page."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Page

from app.tour.tours import BUILTIN_TOURS, DEFAULT_TOUR, load_tour
from tests.browser.conftest import Recorder, assert_clean, screenshot
from tests.conftest import LiveServer

SCENES = load_tour(BUILTIN_TOURS / f"{DEFAULT_TOUR}.json").scenes
TITLES = [s.title for s in SCENES]
WRITES = TITLES.index("Applications: the network writes") + 1
TRANSLATES = TITLES.index("Applications: translation") + 1
LETTERS = TITLES.index("Sequential memory") + 1


def type_input(page: Page, text: str, field: str = "#text-input") -> None:
    """As the presenter does: / (or a page's key) to the field, select what is there, type, Enter."""
    page.keyboard.press("Escape")
    page.keyboard.press("/")
    assert page.evaluate("() => document.activeElement.tagName") == "TEXTAREA"
    page.keyboard.press("Control+a")
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def struck(page: Page) -> list[str]:
    """The struck-through tokens of the note beside the input."""
    words: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('#unknown-note s.oov')]
          .filter((s) => getComputedStyle(s).textDecorationLine.includes('line-through')).map((s) => s.textContent)"""
    )
    return words


def wait_scene(page: Page, n: int) -> None:
    page.wait_for_function(f"() => window.__unrolled?.tour?.scene === {n} && window.__unrolled.tour.ready")


# ---- 7. a refused input is named beside it ----

INPUT_ERROR = """() => {
  const el = document.getElementById('input-error');
  const bar = document.getElementById('run-form').getBoundingClientRect();
  return el && !el.hidden ? {text: el.textContent, size: parseFloat(getComputedStyle(el).fontSize),
    gap: el.getBoundingClientRect().top - bar.bottom, toast: !document.getElementById('status').hidden} : null;
}"""


@pytest.mark.parametrize(("path", "word"), [("/models/charlm-gru", "wobble "), ("/models/numbers-gru", "seven ")])
def test_an_input_the_api_refuses_is_named_beside_it_on_the_model_and_translate_pages(
    page: Page, recorder: Recorder, zoo: LiveServer, path: str, word: str
) -> None:
    """As on the melody page (a bad note): an input the API refuses (longer than its limit) is named under the run
    bar at 14 px or more in presenter mode at 1280×720, not in the status toast, and the next run clears it."""
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(zoo.url + path + "?presenter=1")
    page.wait_for_function("() => (window.__unrolled?.loaded ?? 0) >= 1")
    typed = word * 3001
    page.fill("#text-input", typed)
    page.keyboard.press("Enter")
    page.wait_for_function(INPUT_ERROR)
    shown = page.evaluate(INPUT_ERROR)
    assert f"text has {len(typed)} characters; the limit is" in shown["text"], shown
    assert 0 <= shown["gap"] < 20 and shown["size"] >= 14 and not shown["toast"], shown
    type_input(page, word.strip())
    page.wait_for_function("() => (window.__unrolled?.loaded ?? 0) >= 2")
    assert page.evaluate(INPUT_ERROR) is None
    assert_clean(recorder)


# ---- 3. input outside the vocabulary ----


def test_a_memory_letter_outside_a_to_h_is_struck_through_and_the_answer_called_a_guess(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    page.goto(zoo.url + "/models/memory-rnn")
    page.wait_for_function("() => (window.__unrolled?.loaded ?? 0) >= 1")
    assert page.locator("#unknown-note").count() == 0  # the example reads whole
    type_input(page, "K 555 ?")
    page.wait_for_function("() => (window.__unrolled?.loaded ?? 0) >= 2")
    page.wait_for_selector("#unknown-note")
    assert struck(page) == ["K"]
    note = page.inner_text("#unknown-note")
    assert "Not in the vocabulary" in note and "A–H" in note and "nothing to recall" in note
    answer = page.evaluate("() => window.__unrolled.trace.topPrediction(window.__unrolled.trace.T - 1).token")
    assert f"so {answer} at p " in note and "is a guess" in note  # beside the answer it names
    # in the views too: the unrolled network's first token, the text's first token
    first_cell = """() => [...document.querySelectorAll('svg.unrolled-svg .step')]
      .find((s) => s.querySelector('[data-t]')?.dataset.t === '0')
      .querySelector('text.tok').getAttribute('text-decoration')"""
    assert page.evaluate(first_cell) == "line-through"
    first = page.locator(".textview .tk").first
    assert "unknown" in (first.get_attribute("class") or "") and first.get_attribute("title") == "not in the vocabulary"
    screenshot(page, "unknown-memory-letter")
    # a letter it learned: the note goes
    type_input(page, "D 555 ?")
    page.wait_for_function("() => (window.__unrolled?.loaded ?? 0) >= 3")
    assert page.locator("#unknown-note").count() == 0
    assert_clean(recorder)


def test_a_misspelled_number_word_is_named_in_the_translation_scene(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    page.goto(zoo.url + f"/tour?scene={TRANSLATES}")
    wait_scene(page, TRANSLATES)
    assert page.locator("#unknown-note").count() == 0
    type_input(page, "fourty-two")
    page.wait_for_function("() => window.__unrolled.tour.ready && window.__unrolled.trace.source?.[0] === 'fourty'")
    page.wait_for_selector("#unknown-note")
    assert struck(page) == ["fourty"]
    output = page.evaluate("() => window.__unrolled.trace.output")
    note = page.inner_text("#unknown-note")
    assert "never learned “fourty”" in note and f"“{output}” translates the rest of the input" in note
    word = page.locator("svg.encdec-svg text.word").first
    assert word.text_content() == "fourty" and word.get_attribute("text-decoration") == "line-through"
    screenshot(page, "unknown-number-word-tour")
    # a number out of range: its word is named too
    type_input(page, "one million")
    page.wait_for_function("() => window.__unrolled.tour.ready && window.__unrolled.trace.source?.[1] === 'million'")
    page.wait_for_function("() => document.querySelector('#unknown-note s.oov')?.textContent === 'million'")
    assert_clean(recorder)


def test_the_lab_names_a_letter_none_of_its_models_knows(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    # the lab runs every memory-task model of the zoo (the three classic cells and the linear recurrences)
    models = httpx.get(zoo.url + "/api/models", timeout=60).json()["models"]
    memory = sorted(m["id"] for m in models if m["id"].startswith("memory-"))
    assert {"memory-rnn", "memory-lstm", "memory-gru"} <= set(memory)
    page.goto(zoo.url + "/lab")
    page.wait_for_function("() => (window.__unrolled.loaded ?? 0) >= 1")
    type_input(page, "K 58 31 907 ?")
    page.wait_for_function("() => (window.__unrolled.loaded ?? 0) >= 2")
    page.wait_for_selector("#unknown-note")
    assert struck(page) == ["K"]
    note = page.inner_text("#unknown-note")
    named = note[: note.index(" read it as the unknown token")]
    assert all(model_id in named for model_id in memory), (memory, note)
    assert "these models learned to remember (A–H)" in note and "are guesses" in note
    page.locator("#unknown-note").scroll_into_view_if_needed()
    screenshot(page, "unknown-lab")
    assert_clean(recorder)


# ---- 10. the writing scene samples afresh ----


def written(page: Page) -> str:
    text: str = page.evaluate("() => window.__unrolled.trace.tokens.join('')")
    return text


def test_the_writing_scene_samples_afresh_and_a_links_seed_replays(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    prompt = "Tonight we will build a better "
    page.goto(zoo.url + f"/tour?scene={WRITES}")
    wait_scene(page, WRITES)
    type_input(page, prompt)
    page.wait_for_function(
        f"() => window.__unrolled.tour.ready && window.__unrolled.trace.tokens.join('').startsWith({prompt!r})"
    )
    first, seed = written(page), page.evaluate("() => window.__unrolled.tourSeed")
    assert f"seed {seed}" in page.inner_text("#stage [data-panel=output] .gen-seed")  # shown on screen
    page.wait_for_function(f"() => new URL(location.href).searchParams.get('seed') === '{seed}'")
    link = page.url
    page.keyboard.press("s")  # sample again
    page.wait_for_function(f"() => window.__unrolled.tourSeed !== {seed} && window.__unrolled.tour.ready")
    again = page.evaluate("() => window.__unrolled.tourSeed")
    page.wait_for_function(f"() => window.__unrolled.trace.done && window.__unrolled.tourSeed === {again}")
    assert written(page).startswith(prompt) and written(page) != first
    assert f"seed {again}" in page.inner_text("#stage [data-panel=output] .gen-seed")
    screenshot(page, "tour-writes-sampled-again")
    # the link of the first run writes the first text again
    page.goto(link)
    wait_scene(page, WRITES)
    assert page.evaluate("() => window.__unrolled.tourSeed") == seed and written(page) == first
    assert_clean(recorder)


def test_the_writing_scene_first_writes_its_own_seed_so_every_screen_in_a_room_shows_one_text(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    """Opened afresh twice (two students), the scene writes with the scene's seed, the same text both times: the
    room's screens agree with the projector. (The scene asks for it in one REST body, which the server computes and
    compresses once for the whole room.)"""
    scene_seed = SCENES[WRITES - 1].seed
    assert scene_seed is not None
    texts = []
    for _ in range(2):
        page.goto(zoo.url + f"/tour?scene={WRITES}")
        wait_scene(page, WRITES)
        page.wait_for_function("() => window.__unrolled.trace?.done && window.__unrolled.tour.ready")
        assert page.evaluate("() => window.__unrolled.tourSeed") == scene_seed
        assert f"seed {scene_seed}" in page.inner_text("#stage [data-panel=output] .gen-seed")
        texts.append(written(page))
    assert texts[0] == texts[1] and texts[0].startswith(str(SCENES[WRITES - 1].input))
    assert_clean(recorder)


def test_the_generate_page_samples_again_on_s(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    page.goto(zoo.url + "/models/charlm-lstm/generate?length=25&prompt=" + "Ce soir nous allons")
    page.wait_for_function("() => (window.__unrolled.loaded ?? 0) >= 1")
    seed = page.evaluate("() => window.__unrolled.seed")
    first = page.evaluate("() => window.__unrolled.state.text")
    assert page.inner_text(".gen-seed") == f"seed {seed}"
    page.keyboard.press("s")
    page.wait_for_function("() => (window.__unrolled.loaded ?? 0) >= 2")
    again = page.evaluate("() => window.__unrolled.seed")
    assert again != seed and parse_qs(urlsplit(page.url).query)["seed"] == [str(again)]
    assert page.evaluate("() => window.__unrolled.state.text") != first
    screenshot(page, "generate-sampled-again")
    assert_clean(recorder)


# ---- 13. keys ----


def test_two_digits_typed_quickly_reach_scenes_ten_and_eleven(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    page.goto(zoo.url + "/tour?scene=3")
    wait_scene(page, 3)
    page.keyboard.press("1")
    page.keyboard.press("1")
    wait_scene(page, 11)
    page.keyboard.press("1")
    page.keyboard.press("0")
    wait_scene(page, 10)
    page.keyboard.press("1")  # alone: scene 1, once no second digit came
    wait_scene(page, 1)
    page.keyboard.press("?")
    keys = page.inner_text("#help")
    last = f"two digits typed quickly go to 10 … {len(SCENES)}"  # the help names the tour's last scene
    assert last in keys and "sample again" in keys and "second" in keys
    screenshot(page, "tour-keys-panel")
    assert_clean(recorder)


def test_scene_2s_second_input_is_reached_with_e(page: Page, recorder: Recorder, zoo: LiveServer) -> None:
    page.goto(zoo.url + f"/tour?scene={LETTERS}")
    wait_scene(page, LETTERS)
    page.keyboard.press("e")
    assert page.evaluate("() => document.activeElement.id") == "input-1"
    page.keyboard.press("Control+a")
    page.keyboard.type("PQR KLMNOP")
    page.keyboard.press("Enter")
    page.wait_for_function("() => new URL(location.href).searchParams.get('text2') === 'PQR KLMNOP'")
    wait_scene(page, LETTERS)
    assert_clean(recorder)


def test_the_labs_triangle_cells_and_saturation_units_are_picked_with_the_keyboard(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    page.goto(zoo.url + "/lab")
    page.wait_for_function("() => (window.__unrolled.loaded ?? 0) >= 1")
    # 31 tokens: a gap of 29 digits, past the 26 the lab's lessons need (shorter, the triangles give way to a note)
    type_input(page, "E 7 31 4159 2 653 5897 9323 8462 6433 83 ?")
    page.wait_for_function("() => window.__unrolled.loaded >= 2 && window.__unrolled.labSaturation?.steps === 31")
    page.keyboard.press("Escape")  # out of the field: the keys are the page's again
    page.keyboard.press("j")
    assert page.evaluate("() => document.activeElement.classList.contains('lab-cell-plot')")
    page.keyboard.press("ArrowUp")  # from the first token's influence on the last step: one row up
    page.wait_for_function("() => window.__unrolled.labHover?.s === 0 && window.__unrolled.labHover?.t === 29")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => window.__unrolled.labHover?.s === 1 && window.__unrolled.labHover?.t === 29")
    readout = page.inner_text("#jacobian-readout")
    assert "(s = 2)" in readout and "(t = 30)" in readout
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.__unrolled.labSelected?.s === 1 && window.__unrolled.labSelected?.t === 29")
    assert page.inner_text("#jacobian-readout").startswith("Selected")
    page.locator("#panel-jacobian").scroll_into_view_if_needed()
    screenshot(page, "lab-jacobian-keyboard")
    # the saturation scatter: U, then the arrows move a ring from unit to unit and Enter follows it
    page.keyboard.press("Escape")
    page.evaluate("() => document.activeElement.blur()")
    page.keyboard.press("u")
    assert page.evaluate("() => document.activeElement.id") == "saturation-plot"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => window.__unrolled.labSaturation.picked === 2")
    assert page.evaluate("() => window.__unrolled.labSaturation.unit") == 0  # not followed before Enter
    assert "Unit 2 (Enter follows it" in page.inner_text("#saturation-readout")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.__unrolled.labSaturation.unit === 2")
    assert page.inner_text("#unit-value") == "2"
    page.locator("#panel-saturation").scroll_into_view_if_needed()
    screenshot(page, "lab-saturation-keyboard")
    page.keyboard.press("?")
    keys = page.inner_text("#help")
    assert "on a Jacobian triangle (J)" in keys and "on the gate saturation plot (U)" in keys
    assert_clean(recorder)
