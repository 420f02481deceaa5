"""A room in real Chromium (issue 27): a presenter and three students (one on a phone, 390 × 844) follow ten scene
and step changes; a question collects votes and reveals; a suggested input reaches the presenter's queue and runs;
a student cannot drive the room (its keys move its own page only; a forged frame is refused)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from app.tour.tours import BUILTIN_TOURS, DEFAULT_TOUR, load_tour
from tests.browser.conftest import Recorder, assert_clean, screenshot
from tests.conftest import LiveServer

SCENES = load_tour(BUILTIN_TOURS / f"{DEFAULT_TOUR}.json").scenes
ASKS = next(i + 1 for i, s in enumerate(SCENES) if s.question is not None)
READS = [i + 1 for i, s in enumerate(SCENES) if s.view in ("model", "bptt") and s.question is None and i + 1 < 10][:2]
SUGGESTION = "<i>a</i> slow, tender film & quiet"  # an input no built-in example has, and markup shown as text


def ready(page: Page, scene: int) -> None:
    page.wait_for_function(f"() => window.__unrolled?.tour?.scene === {scene} && window.__unrolled.tour.ready")


@pytest.fixture
def people(browser: Browser, zoo: LiveServer, recorder: Recorder) -> Iterator[list[Page]]:
    """The presenter (1280 × 720) and three students: two laptops and a phone (390 × 844, touch)."""
    contexts = [
        browser.new_context(viewport={"width": 1280, "height": 720}),
        browser.new_context(viewport={"width": 1280, "height": 720}),
        browser.new_context(viewport={"width": 1024, "height": 700}),
        browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True),
    ]
    pages = [c.new_page() for c in contexts]
    for p in pages:
        p.set_default_timeout(90_000)  # a hang guard on a loaded machine: every wait is for a condition
        p.on("console", recorder.console)
        p.on("pageerror", lambda e: recorder.errors.append(f"pageerror: {e}"))
        p.on("request", lambda r: recorder.requests.append(r.url))
    yield pages
    for c in contexts:
        c.close()


def test_three_students_follow_answer_and_suggest(people: list[Page], zoo: LiveServer, recorder: Recorder) -> None:
    presenter, *students = people
    phone = students[-1]
    presenter.goto(f"{zoo.url}/tour?scene=1")
    ready(presenter, 1)
    presenter.keyboard.press("Shift+S")  # open a room: the join code and QR code, large
    presenter.wait_for_function("() => window.__unrolled.room?.connected")
    code = presenter.evaluate("() => window.__unrolled.room.code")
    assert presenter.locator("#room-join-code").text_content() == code
    qr = presenter.locator("#room-qr").bounding_box()
    assert qr is not None and qr["height"] >= 0.6 * 720  # scanned from the back row
    screenshot(presenter, "room-join")
    presenter.keyboard.press("Escape")
    for s in students:
        s.goto(f"{zoo.url}/join/{code}")
        s.wait_for_function("() => window.__unrolled.room?.connected")

    # ten changes: scene, then a step forward and one back, on each of three scenes; then the question's scene
    changes = 0
    for scene in [READS[0], READS[1], READS[0]]:
        presenter.keyboard.press(str(scene))
        ready(presenter, scene)
        if presenter.evaluate("() => window.__unrolled.state.playing"):
            presenter.keyboard.press(" ")  # at once: while the students load, a scene would play to its end
        presenter.wait_for_function("() => !window.__unrolled.state.playing")
        changes += 1
        for s in students:
            ready(s, scene)
        # a step forward and one back, or back and forward where the cursor is at a sweep's end (it stopped there)
        at_start = presenter.evaluate("() => window.__unrolled.state.t") <= 0
        keys = ("Shift+ArrowRight", "Shift+ArrowLeft") if at_start else ("Shift+ArrowLeft", "Shift+ArrowRight")
        for key in keys:
            before = presenter.evaluate("() => window.__unrolled.state.t")
            presenter.keyboard.press(key)
            presenter.wait_for_function(f"() => window.__unrolled.state.t !== {before}")
            changes += 1
            t, phase = presenter.evaluate("() => [window.__unrolled.state.t, window.__unrolled.state.phase]")
            for s in students:
                s.wait_for_function(
                    f"() => window.__unrolled.state?.t === {t} && window.__unrolled.state.phase === '{phase}'"
                    f" && window.__unrolled.tour.scene === {scene}"
                )
    presenter.keyboard.press(str(ASKS))
    changes += 1
    assert changes == 10
    for s in students:
        ready(s, ASKS)

    # predict, then reveal: each student answers on their screen; the presenter sees a bar per choice
    for s, choice in zip(students, (1, 1, 0), strict=True):
        s.locator(f"#room-card .room-choice[data-choice='{choice}']").click()
    presenter.wait_for_function(
        "() => Object.values(window.__unrolled.room.votes ?? {}).reduce((a, b) => a + b, 0) === 3"
    )
    assert presenter.locator("#room-panel .room-bar[data-choice='1'] .room-bar-count").text_content() == "2"
    screenshot(presenter, "room-question")
    screenshot(phone, "room-phone-question")
    presenter.keyboard.press("q")
    for s in students:
        s.wait_for_function(f"() => window.__unrolled.room.revealed === {ASKS}")
        assert s.locator("#room-card .room-reveal").is_visible()
    presenter.wait_for_function("() => window.__unrolled.state.playing")  # the scene plays: the model settles it

    # suggest an input: it reaches the presenter's queue, shown as text, and I runs it for everyone
    scene = READS[0]
    presenter.keyboard.press(str(scene))
    for s in students:
        ready(s, scene)
    phone.locator("#room-suggest-text").fill(SUGGESTION)
    phone.locator("#room-suggest button").click()
    presenter.wait_for_function("() => (window.__unrolled.room.queue ?? []).length === 1")
    assert presenter.locator("#room-queue .room-run").text_content() == SUGGESTION
    assert presenter.locator("#room-queue i").count() == 0  # escaped: no element was made of it
    presenter.keyboard.press("i")
    for s in (presenter, *students):
        s.wait_for_function(f"() => document.querySelector('#input-0')?.value === {SUGGESTION!r}")
        ready(s, scene)
    screenshot(phone, "room-phone-follows")

    # a student cannot drive: its keys move its own page, and a forged presenter frame is refused
    phone.keyboard.press("ArrowRight")
    ready(phone, scene + 1)
    assert phone.locator("#room-back").is_visible()
    assert presenter.evaluate("() => window.__unrolled.tour.scene") == scene
    assert students[0].evaluate("() => window.__unrolled.tour.scene") == scene
    phone.locator("#room-back").click()  # one tap back to the presenter
    ready(phone, scene)
    closed = phone.evaluate(
        """(code) => new Promise((done, fail) => {
            const ws = new WebSocket(`ws://${location.host}/api/rooms/${code}/live`);
            ws.onopen = () => { ws.send('{"type": "join"}'); ws.send('{"type": "state", "state": {"scene": 1}}'); };
            ws.onclose = (e) => done(e.code);
            setTimeout(() => fail(new Error('the server did not close the socket in 60 s')), 60000);  // a hang guard
        })""",
        code,
    )
    assert closed == 4403
    assert presenter.evaluate("() => window.__unrolled.tour.scene") == scene
    assert students[0].evaluate("() => window.__unrolled.tour.scene") == scene
    assert_clean(recorder)
