"""A request head (request line and headers) is capped in size and time by the server itself, `unrolled serve`:
httptools caps neither, and five never-finished 40 MB heads held 400 MB."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.sync.client import connect

from app.web.config import Settings
from tests.conftest import LiveServer

MAX_HEAD = 16_384
TIMEOUT = 1.0
READ_CHUNK = 262_144  # asyncio's largest read: the most a connection can hold beyond the cap


@pytest.fixture(scope="module")
def live(settings: Settings) -> Iterator[LiveServer]:
    env = {"UNROLLED_MAX_HEADER_BYTES": str(MAX_HEAD), "UNROLLED_HEADER_TIMEOUT": str(TIMEOUT)}
    with LiveServer(settings, **env) as server:
        yield server


def rss_mb(live: LiveServer) -> float:
    assert live.proc is not None
    status = Path(f"/proc/{live.proc.pid}/status").read_text()
    return int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS")).split()[1]) / 1024


def dial(live: LiveServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", live.port), timeout=15)


def answer(sock: socket.socket) -> tuple[int, dict[str, str]]:
    """Read the response until the server closes: its status and JSON body."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), orjson.loads(body)


def send_until_refused(sock: socket.socket, first: bytes, total: int) -> int:
    """Send `first`, then filler up to `total` bytes, stopping when the server stops reading; the bytes sent."""
    sent = 0
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
        sock.sendall(first)
        sent = len(first)
        sock.settimeout(2)
        while sent < total:
            sent += sock.send(b"a" * min(65536, total - sent))
    sock.settimeout(15)
    return sent


def test_an_unfinished_head_over_the_cap_is_431_and_closed(live: LiveServer) -> None:
    with dial(live) as sock:
        sent = send_until_refused(sock, b"GET / HTTP/1.1\r\nHost: x\r\nX-Filler: ", 40_000_000)
        assert sent < 40_000_000  # the server stopped reading long before the end
        status, body = answer(sock)
    assert status == 431 and body["error"] == "headers_too_large" and str(MAX_HEAD) in body["message"]


def test_a_complete_head_over_the_cap_is_431(live: LiveServer) -> None:
    r = httpx.get(f"{live.url}/healthz", headers={"X-Big": "a" * (MAX_HEAD + 1)}, timeout=15)
    assert r.status_code == 431 and r.json()["error"] == "headers_too_large"
    ok = httpx.get(f"{live.url}/healthz", headers={"X-Big": "a" * (MAX_HEAD // 2)}, timeout=15)
    assert ok.status_code == 200


def test_a_head_that_trickles_in_is_408_and_one_that_never_starts_is_closed(live: LiveServer) -> None:
    with dial(live) as slow, dial(live) as silent:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        status, body = answer(slow)
        assert status == 408 and body["error"] == "timeout"
        assert silent.recv(1) == b""  # closed without a word: it said nothing


def test_many_unfinished_heads_hold_at_most_the_cap_each(live: LiveServer) -> None:
    """Five connections, each pushing a 40 MB head: the server's memory grows by at most what the cap lets each
    hold (the cap plus one read), not by the 200 MB they send."""
    httpx.get(f"{live.url}/healthz", timeout=15)
    before = rss_mb(live)
    socks = [dial(live) for _ in range(5)]
    try:
        for sock in socks:
            send_until_refused(sock, b"GET / HTTP/1.1\r\nX-Filler: ", 40_000_000)
        peak = rss_mb(live)
        statuses = [answer(sock)[0] for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    assert statuses == [431] * 5
    bound_mb = 5 * (MAX_HEAD + READ_CHUNK) / 2**20 + 20  # + what the interpreter itself may take meanwhile
    assert peak - before < bound_mb, f"RSS grew from {before:.0f} to {peak:.0f} MB"


def test_bodies_and_streams_are_not_heads(live: LiveServer) -> None:
    """A body far over the head cap, in the same packets as its head, is read; a stream's upgrade works; a
    keep-alive connection's second request gets its own head budget."""
    text = "the quick brown fox " * 140  # a 2,800-character text: a body well over 16 KB once padded
    r = httpx.post(f"{live.url}/api/models/chars-lstm/trace", content=orjson.dumps({"text": text}) + b" " * 60_000,
                   headers={"content-type": "application/json"}, timeout=30)  # fmt: skip
    assert r.status_code == 200
    with httpx.Client(base_url=live.url, timeout=15) as c:
        for _ in range(3):
            assert c.get("/healthz", headers={"X-Pad": "a" * (MAX_HEAD // 2)}).status_code == 200
            time.sleep(TIMEOUT / 2)  # idle between requests counts against keep-alive, not the head timer
    with connect(f"{live.ws_url}/api/models/chars-lstm/stream") as ws:
        ws.send(orjson.dumps({"text": "hello"}).decode())
        while orjson.loads(ws.recv(timeout=15))["type"] != "done":
            pass
