"""Browser fixtures: Debian's Chromium driven by Playwright against the `live` uvicorn, recording every
console message, page error and request, so each test can assert the page stayed clean and offline."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.web.config import ROOT, Settings
from tests.conftest import LiveServer

CHROMIUM = Path(os.environ.get("UNROLLED_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}

try:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request, sync_playwright
except ImportError:  # pragma: no cover - reported by the fixture below
    sync_playwright = None  # type: ignore[assignment]


def unavailable(reason: str) -> None:
    """In CI a missing browser fails the run; on a developer's machine it skips with what to do."""
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(f"{reason} (make install-browser)")


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if sync_playwright is None:
        unavailable("the playwright package is not installed")
    if not CHROMIUM.exists():
        unavailable(f"Chromium is not installed at {CHROMIUM}")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield b
    b.close()


@dataclass
class Recorder:
    """Everything a page said and asked for."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.errors.append(f"console: {msg.text}")

    def outside(self) -> list[str]:
        """Requests that left the machine (anything but loopback, data: and blob:)."""
        out = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about"):
                continue
            if parts.hostname not in LOOPBACK:
                out.append(url)
        return out


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def record(page: Page, recorder: Recorder) -> None:
    """The page's console errors, page errors and requests, from now on, in the recorder."""
    page.on("console", recorder.console)
    page.on("pageerror", lambda e: recorder.errors.append(f"pageerror: {e}"))
    page.on("request", lambda r: recorder.requests.append(r.url))


@pytest.fixture
def page(browser: Browser, recorder: Recorder) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 720}, accept_downloads=True)
    pg = context.new_page()
    # A guard against a hang, never a speed target: every wait is for a condition, and a loaded machine is slow.
    pg.set_default_timeout(60_000)
    record(pg, recorder)
    pg.on("websocket", lambda ws: recorder.requests.append(ws.url))
    yield pg
    context.close()


def screenshot(page: Page, name: str, full_page: bool = False) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def wait_loaded(page: Page, count: int = 1) -> None:
    """Until the page's trace(s) have arrived whole (window.__unrolled.loaded counts finished runs)."""
    page.wait_for_function(f"() => (window.__unrolled?.loaded ?? 0) >= {count}")


def state(page: Page) -> dict[str, Any]:
    value: dict[str, Any] = page.evaluate(
        "() => ({...(window.__unrolled?.state ?? {}), ...(window.__unrolled?.cursor ?? {})})"
    )
    return value


def assert_clean(recorder: Recorder) -> None:
    """The page loaded (it asked for something), logged no error and asked nothing of any machine but this one."""
    assert recorder.requests, "no request was recorded"
    assert recorder.errors == [], recorder.errors
    assert recorder.outside() == [], recorder.outside()


@contextmanager
def open_tour_scene(
    browser: Browser,
    live: LiveServer,
    recorder: Recorder,
    tour: str,
    title: str,
    on_request: Callable[[Request], None] | None = None,
) -> Iterator[Page]:
    """The first scene of the server's tour `tour` at 1280×720 (a lecture's screen), ready: the scene titled `title`,
    no scene problems shown. Every console error, page error and request goes to the recorder, each request also to
    `on_request` from before the page loads. The context is closed after."""
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)  # a guard against a hang: every wait is for a condition
        record(page, recorder)
        if on_request is not None:
            page.on("request", on_request)
        page.goto(f"{live.url}/tour?name={tour}&scene=1")
        page.wait_for_function("() => window.__unrolled?.tour?.ready")
        assert page.locator("#scene-problems").is_hidden(), page.inner_text("#scene-problems")
        assert page.inner_text("#scene-title") == title
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def zoo(settings: Settings) -> Iterator[LiveServer]:
    """The app on the repository's own zoo (models/), served by a real `unrolled serve`, one per test module."""
    with LiveServer(settings.model_copy(update={"models_dir": ROOT / "models"})) as live:
        yield live
