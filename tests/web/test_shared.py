"""Identical computations shared (app/web/capacity/shared.py): the class's rules, then a room against a real uvicorn:
identical streams and REST traces from one address, more than its share of the compute line, are all served from one
computation, byte for byte what each would have had alone."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from app.web.capacity.shared import Shared
from app.web.config import Settings
from tests.conftest import LiveServer, run_coroutine

# --- the rules of sharing


class Counted:
    """A computation that counts its runs and waits for `release` before answering (so that askers overlap)."""

    def __init__(self, result: str = "trace") -> None:
        self.runs = 0
        self.result = result
        self.release = asyncio.Event()

    async def __call__(self) -> str:
        self.runs += 1
        await self.release.wait()
        return f"{self.result} {self.runs}"


def test_identical_requests_in_flight_share_one_computation() -> None:
    async def main() -> None:
        shared = Shared(1000)
        work = Counted()
        askers = [asyncio.ensure_future(shared.get("k", work, len)) for _ in range(20)]
        await asyncio.sleep(0)
        work.release.set()
        assert await asyncio.gather(*askers) == ["trace 1"] * 20
        assert (work.runs, shared.computed, shared.joined) == (1, 1, 19)
        assert await shared.get("k", work, len) == "trace 1"  # kept: a repeat computes nothing
        assert (work.runs, shared.hits) == (1, 1)

    run_coroutine(main())


def test_different_requests_compute_each_and_sharing_off_computes_every_one() -> None:
    async def main() -> None:
        shared = Shared(1000)
        work = Counted()
        work.release.set()
        assert [await shared.get(key, work, len) for key in ("a", "b", "a")] == ["trace 1", "trace 2", "trace 1"]
        off = Shared(1000, enabled=False)
        assert [await off.get("a", work, len) for _ in range(2)] == ["trace 3", "trace 4"]
        assert await shared.get(None, work, len) == "trace 5"  # no key: not shareable

    run_coroutine(main())


def test_kept_results_stay_within_their_bytes_least_recently_used_first_out() -> None:
    async def main() -> None:
        shared = Shared(100)
        runs: list[str] = []

        async def result(key: str, size: int = 25) -> str:
            async def compute() -> str:
                runs.append(key)
                return key * size

            return await shared.get(key, compute, len)

        for key in "abcd":
            await result(key)
        assert shared.held == 100
        await result("a")  # used again: now the most recent
        await result("e")  # pushes out b, the least recently used
        assert shared.held == 100
        await result("a")
        await result("b")
        assert runs == ["a", "b", "c", "d", "e", "b"]
        await result("f", size=26)  # over a quarter of the bytes: served, never kept
        await result("f", size=26)
        assert runs[-2:] == ["f", "f"] and shared.held <= 100

    run_coroutine(main())


def test_an_error_reaches_every_waiter_and_is_not_kept() -> None:
    async def main() -> None:
        shared = Shared(1000)
        gate = asyncio.Event()
        calls = 0

        async def failing() -> str:
            nonlocal calls
            calls += 1
            await gate.wait()
            raise ValueError("the model refused it")

        askers = [asyncio.ensure_future(shared.get("k", failing, len)) for _ in range(3)]
        await asyncio.sleep(0)
        gate.set()
        outcomes = await asyncio.gather(*askers, return_exceptions=True)
        assert [str(o) for o in outcomes] == ["the model refused it"] * 3 and calls == 1
        with pytest.raises(ValueError):
            await shared.get("k", failing, len)
        assert calls == 2

    run_coroutine(main())


def test_the_first_asker_leaving_does_not_cancel_the_others_computation() -> None:
    async def main() -> None:
        shared = Shared(1000)
        work = Counted()
        first = asyncio.ensure_future(shared.get("k", work, len))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(shared.get("k", work, len))
        await asyncio.sleep(0)
        first.cancel()
        work.release.set()
        assert await second == "trace 1"
        assert first.cancelled() and work.runs == 1

    run_coroutine(main())


# --- a room behind one address, against a real server

ROOM = 24  # students behind one NAT address: far more than its share of the line (max_queue_per_client 2)
TEXT = "the quick brown fox jumps over the lazy dog " * 60  # 2,640 steps: long enough for askers to overlap
NAT = {"X-Forwarded-For": "10.9.9.9"}


@pytest.fixture(scope="module")
def room_server(settings: Settings) -> Iterator[LiveServer]:
    env = {"UNROLLED_MAX_CONCURRENT": "1", "UNROLLED_MAX_QUEUE_PER_CLIENT": "2"}
    with LiveServer(settings, **env) as live:
        yield live


def counters(live: LiveServer) -> dict[str, float]:
    text = httpx.get(f"{live.url}/metrics").text
    return {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines() if ln.startswith("unrolled_shared_")}


async def stream_digest(live: LiveServer, request: dict[str, Any]) -> str:
    """What a student's stream delivered, as a digest of every message; "busy" if it was refused."""
    digest = hashlib.sha256()
    async with connect(
        f"{live.ws_url}/api/models/chars-lstm/stream", additional_headers=NAT, max_size=2**24, open_timeout=60
    ) as ws:
        await ws.send(orjson.dumps(request).decode())
        async for message in ws:
            if isinstance(message, bytes):  # binary records
                digest.update(message)
                continue
            frame = orjson.loads(message)
            if isinstance(frame, dict) and frame["type"] == "error":
                return str(frame["error"])
            digest.update(message.encode() if isinstance(message, str) else message)
            if isinstance(frame, dict) and frame["type"] == "done":
                break
    return digest.hexdigest()


def room_posts(live: LiveServer, path: str, body: dict[str, Any]) -> list[httpx.Response]:
    """The whole room posting the same body at once, from one address."""

    async def room() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=live.url, timeout=120) as client:
            return await asyncio.gather(*(client.post(path, json=body, headers=NAT) for _ in range(ROOM)))

    return run_coroutine(room())


@pytest.mark.parametrize("encoding", [{"precision": 4}, {"encoding": "binary", "batch": 64}])
def test_a_room_behind_one_address_streams_one_trace_computed_once(
    room_server: LiveServer, encoding: dict[str, Any]
) -> None:
    """On the old server the one address held at most 2 places in the line: most of the room was answered busy.
    JSON frames and binary records alike, written once for the room."""
    request = {"text": TEXT, "top_k": 3, **encoding}
    before = counters(room_server)

    async def room() -> list[str]:
        return await asyncio.gather(*(stream_digest(room_server, request) for _ in range(ROOM)))

    digests = run_coroutine(room())
    assert "busy" not in digests
    assert len(set(digests)) == 1  # byte for byte the same trace for everyone
    after = counters(room_server)
    assert after["unrolled_shared_computations_total"] - before["unrolled_shared_computations_total"] == 1
    # and a repeat is what the first computed
    assert run_coroutine(stream_digest(room_server, request)) == digests[0]


def test_a_room_behind_one_address_gets_one_rest_trace_computed_once(room_server: LiveServer) -> None:
    body = {"text": TEXT[:-1] + "!", "top_k": 2}

    before = counters(room_server)
    answers = room_posts(room_server, "/api/models/chars-lstm/trace", body)
    assert [r.status_code for r in answers] == [200] * ROOM
    assert len({r.content for r in answers}) == 1
    # compressed once for all of them, sent compressed to those who accept it, the same JSON to those who do not
    assert {r.headers.get("content-encoding") for r in answers} == {"br"}
    url = f"{room_server.url}/api/models/chars-lstm/trace"
    plain = httpx.post(url, json=body, headers={**NAT, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == answers[0].content
    after = counters(room_server)
    assert after["unrolled_shared_computations_total"] - before["unrolled_shared_computations_total"] == 1
    # the same request written otherwise (its fields in another order, a default spelt out) is the same computation
    again = httpx.post(f"{room_server.url}/api/models/chars-lstm/trace", json={"top_k": 2, "loss": None, **body})
    assert again.content == answers[0].content
    assert counters(room_server)["unrolled_shared_computations_total"] == after["unrolled_shared_computations_total"]


def test_a_room_behind_one_address_follows_one_seeded_generation_stepped_once(room_server: LiveServer) -> None:
    """The tour's writing scene: every student streams the same seeded generation. On the old server each was
    stepped for its own student, and one address held at most 2 places in the line: most were answered busy."""
    request = {"mode": "generate", "prompt": "the ", "length": 60, "seed": 1962, "top_k": 3}
    before = counters(room_server)

    async def room() -> list[str]:
        return await asyncio.gather(*(stream_digest(room_server, request) for _ in range(ROOM)))

    digests = run_coroutine(room())
    assert "busy" not in digests and len(set(digests)) == 1
    after = counters(room_server)
    assert after["unrolled_shared_computations_total"] - before["unrolled_shared_computations_total"] == 1
    # a student who comes later is sent the finished generation, kept: the same messages, nothing stepped again
    assert run_coroutine(stream_digest(room_server, request)) == digests[0]
    later = counters(room_server)
    assert later["unrolled_shared_results_served_total"] - after["unrolled_shared_results_served_total"] == 1
    assert later["unrolled_shared_computations_total"] == after["unrolled_shared_computations_total"]
    # and what it wrote is what the REST generation writes with that seed
    rest = {k: v for k, v in request.items() if k != "mode"}
    written = httpx.post(f"{room_server.url}/api/models/chars-lstm/generate", json=rest, timeout=60).json()["text"]
    assert run_coroutine(stream_done(room_server, request))["text"] == written


async def stream_done(live: LiveServer, request: dict[str, Any]) -> dict[str, Any]:
    """A stream's done frame."""
    async with connect(f"{live.ws_url}/api/models/chars-lstm/stream", max_size=2**24, open_timeout=60) as ws:
        await ws.send(orjson.dumps(request).decode())
        async for message in ws:
            frame = orjson.loads(message)
            if isinstance(frame, dict) and frame["type"] in {"done", "error"}:
                return dict(frame)
    raise AssertionError("the stream closed without its done frame")


def test_generations_that_sample_afresh_are_not_shared(room_server: LiveServer) -> None:
    """Without a seed each generation samples its own text; with one, the same seed writes the same text."""
    url = f"{room_server.url}/api/models/chars-lstm/generate"
    before = counters(room_server)
    for _ in range(2):
        assert httpx.post(url, json={"prompt": "the", "length": 40}, timeout=60).status_code == 200
    mid = counters(room_server)
    assert mid["unrolled_shared_computations_total"] == before["unrolled_shared_computations_total"]
    seeded = [httpx.post(url, json={"prompt": "the", "length": 40, "seed": 7}, timeout=60) for _ in range(2)]
    assert seeded[0].content == seeded[1].content
    after = counters(room_server)
    assert after["unrolled_shared_computations_total"] - mid["unrolled_shared_computations_total"] == 1
    assert after["unrolled_shared_results_served_total"] - mid["unrolled_shared_results_served_total"] == 1
    for _ in range(2):  # so for streams: each samples its own, stepped for it alone
        assert run_coroutine(stream_done(room_server, {"mode": "generate", "prompt": "the", "length": 40}))["text"]
    assert counters(room_server)["unrolled_shared_computations_total"] == after["unrolled_shared_computations_total"]


def test_a_room_behind_one_address_gets_the_knobs_curves_computed_once(room_server: LiveServer) -> None:
    """The knobs scene: every student asks the same curves (the knobs and the seed decide them). On the old server
    each was computed for its student, and one address held at most 2 places in the line."""
    body = {"cell": "rnn", "steps": 150, "hidden_size": 24, "radius": 0.9, "seed": 5}

    before = counters(room_server)
    answers = room_posts(room_server, "/api/lab/gradients", body)
    assert [r.status_code for r in answers] == [200] * ROOM
    assert len({r.content for r in answers}) == 1 and len(answers[0].json()["grad_norms"]) == 150
    after = counters(room_server)
    assert after["unrolled_shared_computations_total"] - before["unrolled_shared_computations_total"] == 1
    other = httpx.post(f"{room_server.url}/api/lab/gradients", json={**body, "seed": 6}, timeout=60)
    assert other.status_code == 200 and other.content != answers[0].content  # another seed, other weights
