"""A busy stream is recoverable, against a real uvicorn: a stream holds a place among max_streams only while it
computes or sends (not while it waits in the compute line), and a busy answer says when to ask again."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from websockets.asyncio.client import connect

from app.web.config import Settings
from tests.conftest import LiveServer, run_coroutine
from tests.web.test_faults import gauges

TEXT = "a sentence that the model reads one letter at a time, " * 50  # 2,700 steps


async def stream_end(live: LiveServer, request: dict[str, Any], address: str) -> dict[str, Any]:
    """The stream's last JSON frame (done, or an error), read to the end, from a client at `address`."""
    async with connect(
        f"{live.ws_url}/api/models/chars-lstm/stream",
        additional_headers={"X-Forwarded-For": address},
        max_size=2**24,
        open_timeout=60,
    ) as ws:
        await ws.send(orjson.dumps(request).decode())
        async for message in ws:
            if isinstance(message, str):
                frame = orjson.loads(message)
                if frame["type"] in ("done", "error"):
                    return dict(frame)
    raise AssertionError("the stream closed without a done or error frame")


def test_streams_waiting_for_a_compute_slot_hold_no_place_among_max_streams(settings: Settings) -> None:
    """Ten students ask for ten different traces at once; one slot computes them one after another. On the old
    server each stream counted from its request on, so seven of the ten were refused (max_streams 3) while they
    waited for the slot."""
    env = {"UNROLLED_MAX_CONCURRENT": "1", "UNROLLED_MAX_STREAMS": "3", "UNROLLED_SHARE_COMPUTATIONS": "false"}

    async def room(live: LiveServer) -> list[dict[str, Any]]:
        requests = [{"text": f"{i} {TEXT}", "encoding": "binary", "batch": 4096} for i in range(10)]
        return await asyncio.gather(*(stream_end(live, r, f"10.1.0.{i}") for i, r in enumerate(requests)))

    with LiveServer(settings, **env) as live:
        ends = run_coroutine(room(live))
        assert [end["type"] for end in ends] == ["done"] * 10, [end.get("message") for end in ends]
        assert gauges(live)["unrolled_active_streams"] == 0


def test_a_busy_stream_is_told_when_to_ask_again(settings: Settings) -> None:
    """With max_streams 1, a second stream while a long generation runs is refused busy (4503) with retry_after, as
    REST's Retry-After."""
    env = {"UNROLLED_MAX_STREAMS": "1"}

    async def busy(live: LiveServer) -> dict[str, Any]:
        long = {"mode": "generate", "prompt": "a", "length": 1999, "seed": 1}
        running = asyncio.ensure_future(stream_end(live, long, "10.2.0.1"))
        deadline = time.monotonic() + 60  # a hang guard: the generation is in line within moments
        while gauges(live)["unrolled_active_streams"] < 1:
            assert time.monotonic() < deadline and not running.done()
            await asyncio.sleep(0.01)
        refused = await stream_end(live, {"text": "hello"}, "10.2.0.2")
        await running
        return refused

    with LiveServer(settings, **env) as live:
        refused = run_coroutine(busy(live))
    assert refused["error"] == "busy"
    assert refused["retry_after"] >= 1
