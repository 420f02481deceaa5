"""Faults: clients that vanish or stop reading, a read-only models folder, a full disk."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.web.config import Settings
from tests.conftest import LiveServer, write_model


def gauges(live: LiveServer) -> dict[str, float]:
    text = httpx.get(f"{live.url}/metrics").text
    names = ("unrolled_active_streams", "unrolled_computations_in_flight", "unrolled_computations_running")
    return {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines() if ln.startswith(names)}


def wait_idle(live: LiveServer, within: float) -> dict[str, float]:
    deadline = time.monotonic() + within
    while any(g := gauges(live)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return g


def wait_for(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not (met := condition()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return met


def rss_mb(live: LiveServer) -> float:
    assert live.proc is not None
    status = Path(f"/proc/{live.proc.pid}/status").read_text()
    return int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS")).split()[1]) / 1024


async def vanish_after(live: LiveServer, frames: int, text: str) -> None:
    ws = await aconnect(f"{live.ws_url}/api/models/chars-lstm/stream", max_size=2**24)
    await ws.send(orjson.dumps({"text": text}).decode())
    for _ in range(frames):
        await ws.recv()
    ws.transport.abort()  # gone: no closing handshake, as a lost network or a closed laptop


def run_async(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine in a thread of its own: other tests (Playwright's sync API) may leave an event loop
    running in this one."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


async def vanish_many(live: LiveServer, clients: int, text: str) -> None:
    for start in range(0, clients, 25):
        await asyncio.gather(*(vanish_after(live, 2 + i % 5, text) for i in range(start, min(clients, start + 25))))


@pytest.fixture(scope="module")
def server(settings: Settings, models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("fault-models")
    shutil.copytree(models_dir, folder, dirs_exist_ok=True)
    # Wide enough that a stream (~17 kB a frame) overflows every socket buffer of a client that stops reading.
    write_model(folder, "wide-lstm", "lstm", "next_token", hidden=256)
    local = settings.model_copy(update={"models_dir": folder})
    # Its hundred clients share one address: give that address the whole line (fairness is tested elsewhere), and
    # its eight stuck streams their memory (the byte budget is tested elsewhere).
    # The stuck streams are given up on after send_timeout: long enough that, on a machine whose cores are busy, a
    # trace and a stream are served while all of them are still stuck (with 3 s, a busy machine dropped the first
    # before the last had started).
    env = {"UNROLLED_MAX_QUEUE": "256", "UNROLLED_MAX_QUEUE_PER_CLIENT": "256", "UNROLLED_SEND_TIMEOUT": "15",
           "UNROLLED_MAX_BYTES_IN_FLIGHT": "2000000000"}  # fmt: skip
    with LiveServer(local, **env) as live:
        yield live


def test_a_hundred_clients_that_vanish_mid_stream_leave_no_work_and_no_memory(server: LiveServer) -> None:
    text = "the quick brown fox jumps over the lazy dog. " * 25  # 1,125 steps
    run_async(vanish_many(server, 10, text))  # warm-up: allocator pools, compiled kernels
    assert wait_idle(server, 5) == {k: 0 for k in gauges(server)}
    before = rss_mb(server)
    run_async(vanish_many(server, 100, text))
    left = wait_idle(server, 5)
    assert left == {k: 0.0 for k in left}, left
    after = rss_mb(server)
    assert after - before < 40, f"resident memory grew from {before:.0f} MB to {after:.0f} MB"
    assert httpx.post(f"{server.url}/api/models/chars-lstm/trace", json={"text": "ok"}).status_code == 200


def test_slow_clients_that_read_nothing_cannot_stall_others(server: LiveServer) -> None:
    slow = ExitStack()
    sockets = []
    for mode in ("trace", "generate") * 4:
        ws = slow.enter_context(connect(f"{server.ws_url}/api/models/wide-lstm/stream", max_queue=1))
        sockets.append(ws.socket)
        body = {"text": "z" * 2900} if mode == "trace" else {"mode": "generate", "prompt": "a", "length": 1999}
        ws.send(orjson.dumps(body).decode())  # and never read from again
    # all stuck on clients that do not read (each takes its place once it computes: a busy machine takes seconds)
    assert wait_for(lambda: gauges(server)["unrolled_active_streams"] == 8, 30)
    r = httpx.post(f"{server.url}/api/models/chars-lstm/trace", json={"text": "hello " * 100}, timeout=10)
    assert r.status_code == 200
    with connect(f"{server.ws_url}/api/models/chars-lstm/stream") as ws:
        ws.send(orjson.dumps({"text": "hello " * 100}).decode())
        while orjson.loads(ws.recv(timeout=10))["type"] != "done":
            pass
    # Served alongside them, not after them: the stuck streams are all still there.
    assert gauges(server)["unrolled_active_streams"] == 8
    # The server gives up on them after send_timeout and forgets them.
    assert wait_idle(server, 40)["unrolled_active_streams"] == 0
    for sock in sockets:  # vanish: a polite close would wait behind megabytes of unread frames
        sock.shutdown(socket.SHUT_RDWR)
    slow.close()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    point = tmp_path / "fs"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(point)], check=True)
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_read_only_models_folder_and_full_disk_do_not_stop_serving(
    settings: Settings, models_dir: Path, tmpfs: Path
) -> None:
    models = tmpfs / "models"
    shutil.copytree(models_dir, models)
    scratch = tmpfs / "scratch"
    scratch.mkdir()
    with (scratch / "filler").open("wb") as f:  # fill the disk
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)  # and make it read-only
    env = {"TMPDIR": str(scratch), "NUMBA_CACHE_DIR": str(scratch / "numba")}
    with LiveServer(settings.model_copy(update={"models_dir": models}), **env) as live:
        assert httpx.get(f"{live.url}/readyz").json()["models"] == 7
        r = httpx.post(f"{live.url}/api/models/chars-gru/trace", json={"text": "read only"}, timeout=30)
        assert r.status_code == 200 and r.json()["steps"] == 9


def test_sockets_that_connect_and_send_nothing_cannot_lock_visitors_out(settings: Settings) -> None:
    with (
        LiveServer(settings, UNROLLED_MAX_STREAMS="4", UNROLLED_REQUEST_TIMEOUT="2") as live,
        ExitStack() as idle,
    ):
        silent = [idle.enter_context(connect(f"{live.ws_url}/api/models/chars-lstm/stream")) for _ in range(12)]
        # three times max_streams of them, and a visitor is still served: only a request makes a stream count
        with connect(f"{live.ws_url}/api/models/chars-lstm/stream") as ws:
            ws.send(orjson.dumps({"text": "hello"}).decode())
            kinds: list[str] = []
            while not kinds or kinds[-1] != "done":
                kinds.append(orjson.loads(ws.recv(timeout=30))["type"])
        assert kinds[0] == "meta" and kinds.count("step") == 5
        assert gauges(live)["unrolled_active_streams"] == 0
        # and the silent ones are told why and closed once request_timeout has passed
        for ws in silent:
            frame = orjson.loads(ws.recv(timeout=30))
            assert frame["type"] == "error" and frame["error"] == "timeout", frame


def post_and_never_read(live: LiveServer, body: dict[str, Any]) -> socket.socket:
    """A raw client that posts a trace request, with a small receive buffer, and then reads nothing."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", live.port))
    raw = orjson.dumps(body)
    s.sendall(
        b"POST /api/models/wide-lstm/trace HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(raw)}\r\n\r\n".encode()
        + raw
    )
    return s


def peak_rss_while(live: LiveServer, done: Callable[[], bool], within: float) -> float:
    peak = rss_mb(live)
    deadline = time.monotonic() + within
    while not done() and time.monotonic() < deadline:
        peak = max(peak, rss_mb(live))
        time.sleep(0.05)
    return max(peak, rss_mb(live))


@pytest.fixture
def budget_server(settings: Settings, models_dir: Path, tmp_path: Path) -> Iterator[LiveServer]:
    shutil.copytree(models_dir, tmp_path, dirs_exist_ok=True)
    write_model(tmp_path, "wide-lstm", "lstm", "next_token", hidden=256)  # ~13 kB of JSON a step
    local = settings.model_copy(update={"models_dir": tmp_path})
    env = {
        "UNROLLED_MAX_BYTES_IN_FLIGHT": "200000000",
        "UNROLLED_SEND_TIMEOUT": "3",
        "UNROLLED_MAX_QUEUE": "64",
        "UNROLLED_MAX_QUEUE_PER_CLIENT": "64",  # the clients share one address; the byte budget is what is tested
        "UNROLLED_MIN_STREAM_RATE": "262144",
    }
    with LiveServer(local, **env) as live:
        yield live


def test_clients_that_never_read_big_bodies_hold_at_most_the_byte_budget(budget_server: LiveServer) -> None:
    live = budget_server
    budget_mb = 200  # UNROLLED_MAX_BYTES_IN_FLIGHT
    body = {"text": "the quick brown fox " * 145, "top_k": 20}  # 2,900 steps: a body of ~45 MB
    size_mb = len(httpx.post(f"{live.url}/api/models/wide-lstm/trace", json=body, timeout=60).content) / 1e6
    # Computing one takes ~3 bodies (arrays, text, body: wire.WORKING_FACTOR); beside two held bodies, no more.
    assert 3 * size_mb < budget_mb < 5 * size_mb
    httpx.post(f"{live.url}/api/models/wide-lstm/trace", json={"text": "warm"}, timeout=30)  # settle
    before = rss_mb(live)
    held = [post_and_never_read(live, body) for _ in range(12)]
    # while they sit there: a visitor is served, and the server holds no more than the budget for them
    r = httpx.post(f"{live.url}/api/models/chars-lstm/trace", json={"text": "hello"}, timeout=30)
    assert r.status_code == 200
    in_flight = gauges_named(live, "unrolled_bytes_in_flight")
    assert in_flight <= budget_mb * 1e6
    peak = peak_rss_while(live, lambda: gauges_named(live, "unrolled_bytes_in_flight") == 0, within=30)
    # the bound: the budget, which counts what computing takes too, and the allocator's slack over it
    assert peak - before < 1.5 * budget_mb, f"resident memory {before:.0f} → {peak:.0f} MB"
    # the server gave up on them after send_timeout: nothing is held, and the memory is handed back
    assert gauges_named(live, "unrolled_bytes_in_flight") == 0
    time.sleep(2.5)  # memory.TRIM_INTERVAL: the trim after the last body was let go
    httpx.post(f"{live.url}/api/models/chars-lstm/trace", json={"text": "a"}, timeout=30)
    assert rss_mb(live) - before < 100, f"resident memory stayed at {rss_mb(live):.0f} MB (from {before:.0f})"
    for s in held:
        s.close()


def test_a_stream_read_in_a_trickle_is_closed(budget_server: LiveServer) -> None:
    live = budget_server
    text = "the quick brown fox " * 145
    with connect(f"{live.ws_url}/api/models/wide-lstm/stream", max_size=2**24, max_queue=1) as ws:
        ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        ws.send(orjson.dumps({"text": text, "encoding": "binary", "batch": 1}).decode())
        received = 0
        with pytest.raises(ConnectionClosed):
            while received < 10_000:  # 5,800 records and the frames around them, were it read to the end
                ws.recv(timeout=30)
                received += 1
                time.sleep(0.05)  # ~100 kB/s at most, below min_stream_rate's 256 kB/s
    assert received < 2 * 2900
    assert wait_idle(live, 10)["unrolled_active_streams"] == 0
    assert gauges_named(live, "unrolled_bytes_in_flight") == 0


def gauges_named(live: LiveServer, name: str) -> float:
    text = httpx.get(f"{live.url}/metrics").text
    return float(next(ln.split()[1] for ln in text.splitlines() if ln.startswith(name + " ")))


def test_a_greedy_clients_backlog_does_not_starve_a_visitor(settings: Settings) -> None:
    """One client (by its forwarded address, from a trusted proxy) sends twelve long generations at once; a visitor
    from another address, arriving after them, is served beside them, not after them."""
    greedy_body = {"prompt": "a", "length": 1999}  # 2,000 steps: expensive work, one slot of two at most
    with LiveServer(settings, UNROLLED_MAX_CONCURRENT="2") as live, ThreadPoolExecutor(13) as pool:

        def generate(_: int) -> int:
            r = httpx.post(f"{live.url}/api/models/chars-lstm/generate", json=greedy_body, timeout=120,
                           headers={"X-Forwarded-For": "10.0.0.1"})  # fmt: skip
            return r.status_code

        greedy = [pool.submit(generate, i) for i in range(12)]
        deadline = time.monotonic() + 30
        while gauges(live)["unrolled_computations_in_flight"] < 12 and time.monotonic() < deadline:
            time.sleep(0.02)  # all twelve are in line before the visitor comes
        r = httpx.post(f"{live.url}/api/models/chars-lstm/trace", json={"text": "hello"}, timeout=120,
                       headers={"X-Forwarded-For": "10.0.0.2"})  # fmt: skip
        unfinished = sum(not f.done() for f in greedy)
        assert r.status_code == 200
        # First come, first served would have made the visitor wait for the ten in line ahead of it.
        assert unfinished >= 10, f"only {unfinished} of the greedy client's generations were left"
        assert [f.result() for f in greedy] == [200] * 12
