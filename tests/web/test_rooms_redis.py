"""Rooms past one server (issue 27): two real uvicorn servers on one real Redis (Debian's redis-server); a student on
each follows the same presenter, and a vote cast on one reaches the presenter on the other."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from websockets.sync.client import ClientConnection, connect

from app.web.app import create_app
from app.web.config import Settings
from tests.conftest import LiveServer, free_port
from tests.web.test_rooms import receive

REDIS_SERVER = shutil.which("redis-server")


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real redis-server on a free loopback port, with nothing on disk: its URL and its process."""
    if REDIS_SERVER is None:
        # in CI a missing server fails the run, as a missing browser does (tests/browser/conftest.py); here it skips
        reason = "redis-server is not installed (Debian: apt-get install redis-server; make test installs it as root)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    port = free_port()
    args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30  # a hang guard
        ping = ["redis-cli", "-p", str(port), "ping"]
        while subprocess.run(ping, capture_output=True, timeout=30).stdout.strip() != b"PONG":
            assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as (url, _):
        yield url


@pytest.fixture(scope="module")
def servers(settings: Settings, redis_url: str) -> Iterator[tuple[LiveServer, LiveServer]]:
    with (
        LiveServer(settings, UNROLLED_REDIS_URL=redis_url) as a,
        LiveServer(settings, UNROLLED_REDIS_URL=redis_url) as b,
    ):
        yield a, b


def join(server: LiveServer, code: str, key: str | None = None) -> tuple[ClientConnection, dict[str, Any]]:
    ws = connect(f"{server.ws_url}/api/rooms/{code}/live", open_timeout=30, legacy=True)
    ws.send(json.dumps({"type": "join", "key": key} if key else {"type": "join"}))
    welcome = json.loads(ws.recv(timeout=30))
    assert welcome["type"] == "welcome"
    return ws, welcome


def next_of(
    ws: ClientConnection, kind: str, where: Callable[[dict[str, Any]], bool] = lambda f: True
) -> dict[str, Any]:
    """The next frame of a kind (and condition): the presenter is also sent each scene's tally and queue."""
    for _ in range(50):
        f: dict[str, Any] = json.loads(ws.recv(timeout=30))  # a hang guard, not a speed target
        if f["type"] == kind and where(f):
            return f
    raise AssertionError(f"no {kind} frame in 50")


def test_a_student_on_each_server_follows_the_same_presenter(servers: tuple[LiveServer, LiveServer]) -> None:
    a, b = servers
    room = httpx.post(f"{a.url}/api/rooms", json={}, timeout=30).json()
    code, key = room["code"], room["key"]
    assert httpx.get(f"{b.url}/api/rooms/{code}", timeout=30).status_code == 200  # the other server knows the room
    presenter, _ = join(a, code, key)
    on_a, _ = join(a, code)
    on_b, _ = join(b, code)
    for scene, step in [(2, 0), (2, 5), (3, 1), (5, 9), (4, 2)]:
        sent = {"scene": scene, "step": step, "phase": "forward", "playing": False, "speed": 8.0, "inputs": []}
        presenter.send(json.dumps({"type": "state", "state": sent}))
        for student in (on_a, on_b):
            assert next_of(student, "state")["state"] == {**sent, "revealed": False}
    late, welcome = join(b, code)  # the state lives in Redis: a student arriving on the other server starts there
    assert welcome["state"]["scene"] == 4 and welcome["state"]["step"] == 2
    presenter.send(json.dumps({"type": "state", "state": {"scene": 2}}))
    next_of(on_b, "state")
    on_b.send(json.dumps({"type": "vote", "scene": 2, "choice": 1}))
    assert next_of(presenter, "tally", lambda f: bool(f["votes"]))["votes"] == {
        "1": 1
    }  # cast on b, counted for the presenter on a
    on_b.send(json.dumps({"type": "suggest", "text": "from the other server"}))
    assert [i["text"] for i in next_of(presenter, "queue", lambda f: bool(f["items"]))["items"]] == [
        "from the other server"
    ]
    on_a.send(json.dumps({"type": "state", "state": {"scene": 9}}))  # a student still cannot drive
    assert next_of(on_a, "error")["error"] == "not_presenter"
    for ws in (presenter, on_a, on_b, late):
        ws.close()


def test_a_redis_that_went_away_is_a_503_and_a_4503_naming_it(settings: Settings) -> None:
    """Rooms on a Redis that stops: opening one is a 503 and joining one a 4503 error frame and close, each naming
    Redis, never a 500 or a socket left open."""
    with redis_server() as (url, proc), TestClient(create_app(settings.model_copy(update={"redis_url": url}))) as c:
        room = c.post("/api/rooms", json={})
        assert room.status_code == 201
        proc.terminate()
        proc.wait(timeout=15)
        r = c.post("/api/rooms", json={})
        assert r.status_code == 503 and r.json()["error"] == "unavailable" and "Redis" in r.json()["message"]
        with c.websocket_connect(f"/api/rooms/{room.json()['code']}/live") as ws:
            ws.send_json({"type": "join"})
            error = receive(ws)
            assert error["type"] == "error" and error["error"] == "unavailable" and "Redis" in error["message"]
            with pytest.raises(WebSocketDisconnect) as e:
                receive(ws)
            assert e.value.code == 4503
