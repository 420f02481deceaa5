"""A busy answer is recoverable (issue 27): a page whose stream is refused busy says "the room is busy, retrying",
asks again after the server's retry_after (with jitter), and shows its trace once a place is free."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest
from playwright.sync_api import Page
from websockets.sync.client import ClientConnection, connect

from app.web.config import Settings
from tests.browser.conftest import Recorder, assert_clean, screenshot, wait_loaded
from tests.conftest import LiveServer
from tests.web.test_faults import gauges

# A trace of about 10 MB of JSON frames (every step's states, gates and top 20): more than the kernel holds for a
# client that reads nothing, so its stream stays open, sending, and holds the server's one place (max_streams 1)
HOLDER = {"text": "the room holds its breath while one stream waits on a reader. " * 47, "top_k": 20}


@pytest.fixture
def one_place(settings: Settings) -> Iterator[LiveServer]:
    # send_timeout: the holder is given up on only long after the test is over
    with LiveServer(settings, UNROLLED_MAX_STREAMS="1", UNROLLED_SEND_TIMEOUT="300") as live:
        yield live


def hold_the_place(live: LiveServer) -> ClientConnection:
    """A stream whose client reads nothing (its buffer takes one message): it keeps the one place."""
    holder = connect(f"{live.ws_url}/api/models/chars-lstm/stream", max_queue=1, open_timeout=60)
    holder.send(orjson.dumps(HOLDER).decode())
    deadline = time.monotonic() + 60  # a hang guard: the trace is computed within moments
    while gauges(live)["unrolled_active_streams"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return holder


def test_a_page_refused_busy_says_so_retries_and_shows_its_trace(
    page: Page, recorder: Recorder, one_place: LiveServer
) -> None:
    holder = hold_the_place(one_place)
    try:
        page.goto(one_place.url + "/models/chars-lstm")
        page.wait_for_function("() => document.getElementById('status')?.textContent === 'The room is busy, retrying…'")
        assert page.evaluate("() => window.__unrolled?.loaded ?? 0") == 0
        screenshot(page, "busy-retrying")
    finally:
        holder.close()  # the place is free: the page's next try is served
    wait_loaded(page)
    assert page.evaluate("() => window.__unrolled.transport") == "stream"
    # the busy note went with the answer
    assert page.evaluate("() => document.getElementById('status').textContent") == ""
    assert_clean(recorder)
