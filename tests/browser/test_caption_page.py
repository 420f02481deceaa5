"""The caption page in real Chromium against a real `unrolled serve` with the committed shapes-lstm: a scene drawn with
the keyboard only (no example has it), the PNG the page sent redrawn here by the training's rules (Pillow) pixel for
pixel, and its caption on the page checked against the REST API's for that very PNG; a scene dragged with the
pointer and a random scene (R); a PNG uploaded; bad images (a truncated PNG, a text file) showing the API's own
message; the tour's captioning scene. Captions on the page are always the API's for the bytes the page sent, never a
string written here. No text under 14 px in presenter mode at 1280×720."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Request, Route

from app.training.tasks.shapes_data import Shape, draw
from app.web.config import ROOT, Settings
from tests.browser.conftest import Recorder, assert_clean, open_tour_scene, record, screenshot
from tests.browser.test_text_sizes import TWO_FRAMES, presenter_small_text
from tests.conftest import LiveServer

MODEL = "shapes-lstm"
SCENE_TITLE = "Applications: image captioning"
BUILTIN_TOUR = ROOT / "tours" / "deep-learning-for-sequences.json"


def tour_scene() -> dict[str, Any]:
    """The built-in tour's captioning scene, as the built-in tour has it."""
    scenes: list[dict[str, Any]] = json.loads(BUILTIN_TOUR.read_text(encoding="utf-8"))["scenes"]
    return next(s for s in scenes if s["title"] == SCENE_TITLE)


@pytest.fixture(scope="module")
def caption_zoo(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder: Path = tmp_path_factory.mktemp("caption-zoo")
    for suffix in (".json", ".safetensors"):
        shutil.copy(ROOT / "models" / f"{MODEL}{suffix}", folder / f"{MODEL}{suffix}")
    (folder / "checkpoints").mkdir()
    for kept in (ROOT / "models" / "checkpoints").glob(f"{MODEL}-*.safetensors"):  # its card names them
        shutil.copy(kept, folder / "checkpoints" / kept.name)
    tours = folder / "tours"
    tours.mkdir()
    tour = {"title": "Captioning", "description": "A caption model looking.", "scenes": [tour_scene()]}
    (tours / "captioning.json").write_text(json.dumps(tour), encoding="utf-8")
    with LiveServer(settings.model_copy(update={"models_dir": folder}), UNROLLED_TOUR_DIR=str(tours)) as live:
        yield live


def api_caption(live: LiveServer, request: Request) -> dict[str, Any]:
    """The REST API's answer to the very request the page sent (its body, Content-Type and query)."""
    r = httpx.post(request.url, content=request.post_data_buffer,
                   headers={"Content-Type": request.headers["content-type"]}, timeout=120)  # fmt: skip
    body: dict[str, Any] = r.json()
    body["status"] = r.status_code
    return body


def open_page(browser: Browser, live: LiveServer, recorder: Recorder, sent: list[Request], touch: bool = False) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 720}, has_touch=touch)
    page = context.new_page()
    page.set_default_timeout(120_000)  # a guard against a hang: every wait is for a condition
    record(page, recorder)
    page.on("request", lambda r: sent.append(r) if r.url.split("?")[0].endswith("/caption") else None)
    page.goto(f"{live.url}/models/{MODEL}")
    settled(page)  # the first example scene, captioned
    return page


def settled(page: Page) -> None:
    """Until the page's latest picture is captioned (or refused): nothing pending, the last answer the last sent's."""
    page.wait_for_function(
        "() => window.__unrolled?.pending === false && window.__unrolled.sent"
        " && (window.__unrolled.captionRun === window.__unrolled.sent.run || (window.__unrolled.failed ?? 0) > 0)"
    )


def caption_on_page(page: Page) -> str:
    text: str = page.evaluate("() => document.getElementById('caption').dataset.text")
    return text


def redrawn(scene: list[dict[str, Any]]) -> Any:
    """The page's scene drawn here by the training's own code (Pillow), as (64, 64, 3) pixels."""
    shapes = [Shape(s["shape"], s["size"], s["colour"], s["s"], s["x"], s["y"]) for s in scene]
    return np.asarray(draw(tuple(shapes)))


# The keys a presenter presses: / to the editor; the first shape made big, recoloured twice, reshaped, moved down
# 12 px; Tab to the second, recoloured, moved left 8 px; Esc gives the keys back to the player.
DRAWING = ["/", "z", "c", "c", "s", *["Shift+ArrowDown"] * 3, "Tab", "c", *["Shift+ArrowLeft"] * 2]


def test_a_scene_drawn_with_the_keyboard_is_captioned_as_the_api_captions_its_png(
    browser: Browser, caption_zoo: LiveServer, recorder: Recorder
) -> None:
    sent: list[Request] = []
    page = open_page(browser, caption_zoo, recorder, sent)
    first = page.evaluate("() => window.__unrolled.scene")
    for key in DRAWING:
        page.keyboard.press(key)
    settled(page)
    scene = page.evaluate("() => window.__unrolled.scene")
    assert scene != first and len(scene) == 2
    # a scene no example has: the caption the rules give it is none of the card's examples
    examples = [e["text"] for e in httpx.get(f"{caption_zoo.url}/api/models/{MODEL}").json()["examples"]]
    rules_caption = page.evaluate("() => document.getElementById('editor-info').dataset.rules")
    assert rules_caption and rules_caption not in examples
    # the PNG the page sent last is the scene drawn by the training's rules, pixel for pixel
    png = sent[-1].post_data_buffer
    assert png is not None and sent[-1].headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (64, 64)
    assert (np.asarray(image.convert("RGB")) == redrawn(scene)).all()
    reply = api_caption(caption_zoo, sent[-1])
    assert reply["status"] == 200 and caption_on_page(page) == reply["caption"]
    # the keys are the player's again: End writes the whole caption, ← steps back a word
    page.keyboard.press("Escape")
    page.keyboard.press("End")
    whole = " ".join(w for w in reply["trace"]["words"] if w != "</s>")
    page.wait_for_function("(t) => document.querySelector('.caption-line')?.dataset.text === t", arg=whole)
    t = page.evaluate("() => window.__unrolled.state.t")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => window.__unrolled.state.t === {t - 1}")
    screenshot(page, "caption-keyboard-1280x720")
    assert presenter_small_text(page) == []
    # the link holds the scene: opened again, it draws the same scene and the same caption
    page.wait_for_function("() => new URL(location.href).searchParams.get('scene')")
    again = page.context.new_page()
    again.on("pageerror", lambda e: recorder.errors.append(f"pageerror: {e}"))
    again.goto(page.url)
    settled(again)
    assert again.evaluate("() => window.__unrolled.scene") == scene and caption_on_page(again) == reply["caption"]
    assert_clean(recorder)


def test_an_answer_to_an_earlier_scene_leaves_the_page_pending_while_the_newer_scene_waits(
    browser: Browser, caption_zoo: LiveServer, recorder: Recorder
) -> None:
    """The race a busy machine found: a caption for the scene sent mid-drawing came back during the debounce of the
    last edit, and the page called itself settled on the older scene's caption. The page's clock is held here (the
    debounce fires only when told) and the server's answers are let through one at a time, so the order is fixed."""
    sent: list[Request] = []
    page = open_page(browser, caption_zoo, recorder, sent)
    held: list[Route] = []
    page.route("**/caption*", lambda route: held.append(route))
    page.clock.install()
    # the fake clock still runs with the real one until paused: paused a minute on (in the page's time), so that only
    # run_for below fires the debounce, however slow the machine
    page.clock.pause_at(datetime.now() + timedelta(minutes=1))
    page.keyboard.press("/")
    page.keyboard.press("c")  # the first edit: sent once the debounce fires
    page.clock.run_for(1000)
    deadline_wait(page, held, 1)
    loaded = page.evaluate("() => window.__unrolled.loaded")
    page.keyboard.press("c")  # the second edit: its debounce held by the page's clock
    held[0].continue_()  # the first scene's answer arrives while the second waits
    page.wait_for_function(f"() => window.__unrolled.loaded === {loaded + 1}")
    assert page.evaluate("() => window.__unrolled.pending") is True
    page.clock.run_for(1000)
    deadline_wait(page, held, 2)
    held[1].continue_()
    settled(page)
    png = Image.open(io.BytesIO(sent[-1].post_data_buffer or b"")).convert("RGB")
    assert (np.asarray(png) == redrawn(page.evaluate("() => window.__unrolled.scene"))).all()
    assert caption_on_page(page) == api_caption(caption_zoo, sent[-1])["caption"]
    assert_clean(recorder)


def deadline_wait(page: Page, held: list[Route], n: int) -> None:
    """Until the n-th caption request has reached the route (the page's own events run meanwhile)."""
    for _ in range(1200):
        if len(held) >= n:
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"the page sent {len(held)} caption requests, not {n}")


def test_a_dragged_shape_and_a_random_scene_are_captioned_live(
    browser: Browser, caption_zoo: LiveServer, recorder: Recorder
) -> None:
    sent: list[Request] = []
    page = open_page(browser, caption_zoo, recorder, sent)
    before = page.evaluate("() => window.__unrolled.scene")
    box = page.locator(".scene-canvas").bounding_box()
    assert box is not None
    k = box["width"] / 64
    grab = before[0]
    x0, y0 = box["x"] + (grab["x"] + grab["s"] / 2) * k, box["y"] + (grab["y"] + grab["s"] / 2) * k
    page.mouse.move(x0, y0)
    page.mouse.down()
    down = 1 if grab["y"] + grab["s"] + 16 <= 63 else -1  # 16 px, down if it has the room
    for i in range(1, 9):  # pointer events all the way: a finger's drag is the same events
        page.mouse.move(x0, y0 + down * i * 2 * k)
    page.mouse.up()
    settled(page)
    after = page.evaluate("() => window.__unrolled.scene")
    assert after[0]["y"] == grab["y"] + down * 16 and after[0]["x"] == grab["x"] and after[1] == before[1]
    assert caption_on_page(page) == api_caption(caption_zoo, sent[-1])["caption"]
    page.keyboard.press("r")
    page.wait_for_function("(s) => JSON.stringify(window.__unrolled.scene) !== s", arg=json.dumps(after))
    settled(page)
    assert page.locator("#editor-info.wrong").count() == 0  # a scene the rules draw
    assert (np.asarray(Image.open(io.BytesIO(sent[-1].post_data_buffer or b"")).convert("RGB"))
            == redrawn(page.evaluate("() => window.__unrolled.scene"))).all()  # fmt: skip
    assert caption_on_page(page) == api_caption(caption_zoo, sent[-1])["caption"]
    assert_clean(recorder)


def empty_spot(scene: list[dict[str, Any]], s: int) -> tuple[float, float]:
    """A point of the picture on no shape, where a shape of side s centred on it stays inside (a fifth of a pixel
    off the grid, so that rounding has one answer)."""
    for y in range(4, 60, 3):
        for x in range(4, 60, 3):
            px, py = x + 0.2, y + 0.2
            inside = 1 <= px - s / 2 and px + s / 2 <= 63 and 1 <= py - s / 2 and py + s / 2 <= 63
            on_one = any(sh["x"] <= px < sh["x"] + sh["s"] and sh["y"] <= py < sh["y"] + sh["s"] for sh in scene)
            if inside and not on_one:
                return px, py
    raise AssertionError(f"no empty spot in {scene}")


def test_a_finger_places_the_picked_shape_where_it_lands(
    browser: Browser, caption_zoo: LiveServer, recorder: Recorder
) -> None:
    sent: list[Request] = []
    page = open_page(browser, caption_zoo, recorder, sent, touch=True)
    before = page.evaluate("() => window.__unrolled.scene")
    box = page.locator(".scene-canvas").bounding_box()
    assert box is not None
    k = box["width"] / 64
    s = before[0]["s"]  # the picked shape (the first) goes where the finger lands, centred under it
    x, y = empty_spot(before, s)
    page.touchscreen.tap(box["x"] + x * k, box["y"] + y * k)
    settled(page)
    after = page.evaluate("() => window.__unrolled.scene")
    assert (after[0]["x"], after[0]["y"]) == (round(x - s / 2), round(y - s / 2)) and after[1] == before[1]
    assert caption_on_page(page) == api_caption(caption_zoo, sent[-1])["caption"]
    assert_clean(recorder)


def hold_until(page: Page, held: list[Route], n: int) -> None:
    """Until the route handler holds n requests (it runs as Playwright handles the page's events, which a call into
    the page lets it do); a hang guard of 2,000 frames, never a timed wait."""
    for _ in range(1000):
        if len(held) >= n:
            return
        page.evaluate(TWO_FRAMES)
    raise AssertionError(f"{len(held)} caption requests held, not {n}")


def test_an_answer_to_an_older_scene_is_dropped_when_it_comes_last(
    browser: Browser, caption_zoo: LiveServer, recorder: Recorder
) -> None:
    """The network holds two captions (two random scenes, R twice) and lets the newer one's through first: the page
    shows it, and the older one's answer, let through after, changes nothing."""
    sent: list[Request] = []
    page = open_page(browser, caption_zoo, recorder, sent)
    held: list[Route] = []
    page.route("**/caption?*", lambda route: held.append(route))
    for n in (1, 2):
        with page.expect_request("**/caption?*"):
            page.keyboard.press("r")
        hold_until(page, held, n)
    newer = page.evaluate("() => window.__unrolled.scene")
    with page.expect_response("**/caption?*"):
        held[1].continue_()
    settled(page)
    shown = caption_on_page(page)
    assert shown == api_caption(caption_zoo, sent[-1])["caption"]
    loaded = page.evaluate("() => window.__unrolled.loaded")
    with page.expect_response("**/caption?*") as older:
        held[0].continue_()
    assert older.value.ok
    page.evaluate(TWO_FRAMES)  # the page has had the older answer in hand
    assert page.evaluate("() => window.__unrolled.loaded") == loaded and caption_on_page(page) == shown
    assert page.evaluate("() => window.__unrolled.scene") == newer
    assert_clean(recorder)


def uploaded_png() -> bytes:
    """A scene no example shows, drawn by the rules at 128 × 128 (the server reads it down to 64 × 64)."""
    shapes = (Shape("square", "small", "yellow", 13, 44, 8), Shape("triangle", "big", "red", 22, 6, 36))
    buf = io.BytesIO()
    draw(shapes).resize((128, 128), Image.Resampling.NEAREST).save(buf, "PNG")
    return buf.getvalue()


def test_an_uploaded_png_is_captioned_as_the_api_captions_it(
    browser: Browser, caption_zoo: LiveServer, recorder: Recorder, tmp_path: Path
) -> None:
    sent: list[Request] = []
    page = open_page(browser, caption_zoo, recorder, sent)
    path = tmp_path / "my-scene.png"
    path.write_bytes(uploaded_png())
    page.set_input_files("#upload", str(path))
    page.wait_for_function("() => window.__unrolled.sent.source === 'upload: my-scene.png'")
    settled(page)
    assert sent[-1].post_data_buffer == path.read_bytes()  # the file itself, as it was
    assert caption_on_page(page) == api_caption(caption_zoo, sent[-1])["caption"]
    assert_clean(recorder)


@pytest.mark.parametrize(
    ("name", "content"),
    [("cut.png", uploaded_png()[:300]), ("notes.txt", b"these are my lecture notes, not a picture")],
    ids=["truncated-png", "text-file"],
)
def test_a_bad_image_shows_the_apis_message_beside_the_input(
    browser: Browser, caption_zoo: LiveServer, recorder: Recorder, tmp_path: Path, name: str, content: bytes
) -> None:
    sent: list[Request] = []
    page = open_page(browser, caption_zoo, recorder, sent)
    path = tmp_path / name
    path.write_bytes(content)
    page.set_input_files("#upload", str(path))
    page.wait_for_function("() => (window.__unrolled.failed ?? 0) >= 1")
    reply = api_caption(caption_zoo, sent[-1])
    assert 400 <= reply["status"] < 500 and reply["message"]
    assert page.locator("#input-error").inner_text() == reply["message"]
    recorder.errors = [e for e in recorder.errors if "status of 4" not in e]  # the refused request's console line
    assert_clean(recorder)


def test_the_tour_scene_captions_the_scene_its_words_describe(
    browser: Browser, caption_zoo: LiveServer, recorder: Recorder
) -> None:
    sent: list[Request] = []

    def keep(r: Request) -> None:
        if r.url.split("?")[0].endswith("/caption"):
            sent.append(r)

    with open_tour_scene(browser, caption_zoo, recorder, "captioning", SCENE_TITLE, on_request=keep) as page:
        reply = api_caption(caption_zoo, sent[-1])
        assert reply["status"] == 200 and page.evaluate("() => window.__unrolled.caption") == reply["caption"]
        page.keyboard.press("End")
        whole = " ".join(w for w in reply["trace"]["words"] if w != "</s>")
        page.wait_for_function("(t) => document.querySelector('.caption-line')?.dataset.text === t", arg=whole)
        titles = page.locator(".tour-panel h2").all_inner_texts()
        assert len(titles) == len(tour_scene()["panels"])
        assert titles[0] == "The picture, and where the decoder looks (attention α)"
        screenshot(page, "caption-tour-1280x720")
        assert_clean(recorder)
