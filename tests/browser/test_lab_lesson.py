"""The lab's Jacobian triangles and one-token diff on the memory task need a long gap between the letter and '?'
(app/training/tasks/memory.py, MemoryTask.lesson_gap, measured by bench/lesson_gap.py): over a short one the plain RNN
still holds the letter and the pictures teach the opposite. Typed in presenter mode at 1280×720, an input too short
gets the message in place of the pictures; one long enough gets the pictures, and they show the lesson."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from app.training.tasks.memory import TASK
from tests.browser.conftest import Recorder, assert_clean, screenshot
from tests.browser.test_lab import JACOBIAN, TEXT_SIZES, lab, lower_loaded
from tests.conftest import LiveServer

NEED = TASK.lesson_gap
assert NEED is not None
PICTURES = ["#jacobian-plots", "#jacobian-unrolled", "#diff-plots", "#diff-tokens"]
MESSAGES = ["#jacobian-short", "#diff-short"]


def gap_of(typed: str) -> int:
    return len(typed.replace(" ", "")) - 2  # the digits between the letter and '?'


def run(page: Page, typed: str) -> None:
    page.fill("#text-input", typed)
    page.click("#run")
    page.wait_for_function("(g) => window.__unrolled.labLesson?.gap === g", arg=gap_of(typed))


@pytest.mark.parametrize("typed", ["G 58 31 907 24 6 ?", "B 1 41 42 13 56 23 73 09 ?"])  # the rehearsal's; another
def test_an_input_too_short_for_the_lesson_gets_the_message_in_place_of_the_pictures(
    page: Page, recorder: Recorder, zoo: LiveServer, typed: str
) -> None:
    page.set_viewport_size({"width": 1280, "height": 720})
    lab(page, zoo, "?presenter=1")
    lower_loaded(page)  # the card's example, 100 digits: the pictures, and beside the input what they need
    assert all(page.is_visible(p) for p in PICTURES) and not any(page.is_visible(m) for m in MESSAGES)
    assert f"at least {NEED} digits between the letter and ?" in page.inner_text("#lesson-need")
    gap = gap_of(typed)
    assert gap < NEED
    run(page, typed)
    for m in MESSAGES:
        assert page.is_visible(m)
        text = page.inner_text(m)
        assert f"at least {NEED} digits between the letter and ?" in text and f"this input has {gap}" in text
    assert not any(page.is_visible(p) for p in PICTURES)  # no picture that teaches the opposite
    assert f"this input has {gap}" in page.inner_text("#lesson-need")
    # the saturation scatter takes any input: it is drawn for this one
    page.wait_for_function("(n) => window.__unrolled.labSaturation?.steps === n", arg=gap + 2)
    small = [x for x in page.evaluate(TEXT_SIZES) if x[1] < 14]
    assert small == [], small
    page.locator("#panel-jacobian").scroll_into_view_if_needed()
    screenshot(page, f"lab-too-short-{gap}")
    assert_clean(recorder)


def test_an_input_long_enough_gets_the_pictures_and_they_teach_the_lesson(
    page: Page, recorder: Recorder, zoo: LiveServer
) -> None:
    """A typed input of exactly the gap the lesson needs (digits no example has): the triangles are drawn, and the
    letter's hold on the state at '?' is a decade or more weaker in the RNN than in the LSTM and the GRU."""
    lab(page, zoo)
    lower_loaded(page)
    run(page, "G 58 31 907 24 6 ?")  # too short first: the pictures come back after it
    digits = ("31415926535897932384626433832795028841971693993751" * 2)[:NEED]
    typed = f"D {digits} ?"
    run(page, typed)
    page.wait_for_function(
        "(n) => [...document.querySelectorAll('#jacobian-plots .plot')].every((gd) => gd.data?.[0]?.z?.length === n)",
        arg=NEED + 2,
    )
    assert all(page.is_visible(p) for p in PICTURES) and not any(page.is_visible(m) for m in MESSAGES)
    # log10 ‖∂h_t/∂h_s‖ of torch.nn's three (the memory task's linear recurrences follow them)
    rnn, lstm, gru = (tri["z"] for tri in page.evaluate(JACOBIAN)[:3])
    assert rnn[-1][0] <= lstm[-1][0] - 1 and rnn[-1][0] <= gru[-1][0] - 1, (rnn[-1][0], lstm[-1][0], gru[-1][0])
    page.locator("#panel-jacobian").scroll_into_view_if_needed()
    screenshot(page, "lab-long-enough")
    assert_clean(recorder)
