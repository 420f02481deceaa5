"""Hostile input: every one gets a 4xx with a JSON message (or a proper WebSocket close), never a 5xx or a hang,
and the server is healthy afterwards."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.web.config import Settings
from tests.conftest import LiveServer

TRACE = "/api/models/chars-lstm/trace"
GENERATE = "/api/models/chars-lstm/generate"


@pytest.fixture(scope="module")
def http(live: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=live.url, timeout=30)


def assert_json_4xx(r: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    assert body["message"] and body["error"]
    return body


@pytest.mark.parametrize(
    "text",
    [
        "\x00\x01\x02\x1b[31m\x7f",  # control characters
        "naïve café — “quotes”",
        "🙂🚀 emoji 👩‍👩‍👧",
        "\u202eevil\u202c right-to-left \u200f marks",
        "\ufeff\ufffd",
    ],
)
def test_unusual_characters_are_read_as_unknown_tokens(http: httpx.Client, text: str) -> None:
    r = http.post(TRACE, json={"text": text})
    assert r.status_code == 200
    body = r.json()
    assert body["steps"] == len(text) and len(body["unknown"]) >= 1


def test_unpaired_surrogates_are_refused(http: httpx.Client) -> None:
    r = http.post(TRACE, content=b'{"text": "ab\\ud800cd"}', headers={"content-type": "application/json"})
    body = assert_json_4xx(r, 422)  # pydantic refuses them while parsing: no response could echo them in UTF-8
    assert "unicode" in body["message"]


def test_invalid_utf8_and_garbage_bodies(http: httpx.Client) -> None:
    for raw in (b"\xff\xfe\xfa", b"\x00" * 64, b'{"text": "a"', b"null", b'"text"', b"{}" * 1000):
        r = http.post(TRACE, content=raw, headers={"content-type": "application/json"})
        assert_json_4xx(r, 400, 422)


def test_deeply_nested_json_is_refused(http: httpx.Client) -> None:
    raw = b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert_json_4xx(http.post(TRACE, content=raw, headers={"content-type": "application/json"}), 400, 422)


def test_ten_megabyte_body_is_413(http: httpx.Client) -> None:
    body = assert_json_4xx(http.post(TRACE, content=b'{"text": "' + b"a" * 10_000_000 + b'"}'), 413)
    assert "max_body_bytes" in body["message"]


def test_a_chunked_body_over_the_limit_is_413_and_one_within_it_is_read(http: httpx.Client) -> None:
    def chunks(total: int) -> Iterator[bytes]:  # no content-length: the server learns the size as it reads
        yield b'{"text": "'
        for _ in range(total // 100_000):
            yield b"a" * 100_000
        yield b'"}'

    body = assert_json_4xx(http.post(TRACE, content=chunks(2_000_000)), 413)
    assert "max_body_bytes" in body["message"]
    r = http.post(TRACE, content=iter([b'{"text": ', b'"hello"}']), headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["steps"] == 5


@pytest.mark.parametrize(
    "raw",
    [
        b'{"text": "abc", "top_k": NaN}',
        b'{"text": "abc", "top_k": Infinity}',
        b'{"text": "abc", "precision": -Infinity}',
        b'{"prompt": "a", "temperature": NaN}',
        b'{"prompt": "a", "temperature": Infinity}',
    ],
)
def test_nan_and_infinities_are_refused(http: httpx.Client, raw: bytes) -> None:
    path = GENERATE if b"prompt" in raw else TRACE
    assert_json_4xx(http.post(path, content=raw, headers={"content-type": "application/json"}), 422)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (TRACE, {"text": "abc", "top_k": -1}),
        (TRACE, {"text": "abc", "top_k": 10**30}),
        (TRACE, {"text": "abc", "precision": 0}),
        (GENERATE, {"prompt": "a", "length": -5}),
        (GENERATE, {"prompt": "a", "length": 10**18}),
        (GENERATE, {"prompt": "a", "seed": 2**70}),
        (GENERATE, {"prompt": "a", "temperature": -1}),
        (TRACE, {"text": 123}),
        (TRACE, {"text": ["a", "b"]}),
        (TRACE, {"text": {"a": 1}}),
        (TRACE, {"text": None}),
        (TRACE, {"text": "abc", "top_k": "5"}),
        (TRACE, {"text": "abc", "top_k": True}),
        (TRACE, {"text": "abc", "loss": 1}),
        (GENERATE, {"prompt": "a", "length": 2.5}),
    ],
)
def test_wrong_numbers_and_types_are_422(http: httpx.Client, path: str, body: dict[str, Any]) -> None:
    assert_json_4xx(http.post(path, json=body), 422)


@pytest.mark.parametrize(
    "model_id",
    ["..%2F..%2Fetc%2Fpasswd", "%2e%2e", "chars-lstm%00", "chars-lstm.json", "CHARS-LSTM", "x" * 5000, "%C0%AE%C0%AE"],
)
def test_path_like_model_ids_are_404(http: httpx.Client, model_id: str) -> None:
    assert_json_4xx(http.get(f"/api/models/{model_id}"), 404)
    assert_json_4xx(http.post(f"/api/models/{model_id}/trace", json={"text": "a"}), 404)


@pytest.mark.parametrize("checkpoint", ["../100", "100/../0", "/etc/passwd", "1e2", " 100", "0x64", "-1"])
def test_path_like_checkpoint_names_are_refused(http: httpx.Client, checkpoint: str) -> None:
    assert_json_4xx(http.post(TRACE, json={"text": "abc", "checkpoint": checkpoint}), 404, 422)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_unknown_methods_are_405(http: httpx.Client, method: str) -> None:
    r = http.request(method, TRACE, json={"text": "a"})
    assert_json_4xx(r, 405)
    assert "POST" in r.headers["allow"]


def test_a_made_up_method_and_a_garbage_request_line_get_4xx(live: LiveServer) -> None:
    for request in (b"FROBNICATE /api/models HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01garbage\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
            s.sendall(request)
            status = s.recv(4096).split(b"\r\n", 1)[0]
        assert status.split()[1].startswith(b"4"), status


def ws_close(live: LiveServer, message: str | bytes) -> tuple[list[dict[str, Any]], int]:
    frames: list[dict[str, Any]] = []
    with connect(f"{live.ws_url}/api/models/chars-lstm/stream", max_size=2**24, open_timeout=10) as ws:
        ws.send(message)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frames.append(orjson.loads(ws.recv(timeout=20)))
    code = closed.value.rcvd.code if closed.value.rcvd is not None else 1006
    return frames, code


@pytest.mark.parametrize(
    "message",
    [b"\x00\xff garbage", "\x00" * 100, "[" * 50_000, '{"text": 5}', '{"mode": "dance"}', "NaN", '"just a string"'],
)
def test_garbage_websocket_messages_get_an_error_frame_and_close(live: LiveServer, message: str | bytes) -> None:
    frames, code = ws_close(live, message)
    assert frames[-1]["type"] == "error"
    assert code in (4400, 4422)


def test_oversized_websocket_message_is_closed_as_too_big(live: LiveServer, settings: Settings) -> None:
    """The server closes with 1009 as soon as the frame header announces more than its largest message (a
    transcribe request's WAV in base64: Settings.max_message_bytes); it may do so while the client is still
    sending, so the client sees either the 1009 close or a reset connection."""
    url = f"{live.ws_url}/api/models/chars-lstm/stream"
    with connect(url, open_timeout=10) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.send('{"text": "' + "a" * settings.max_message_bytes() + '"}')
        ws.recv(timeout=20)
    received = closed.value.rcvd
    assert received is None or received.code == 1009
    assert httpx.get(f"{live.url}/healthz").status_code == 200


def test_server_is_healthy_after_all_of_it(http: httpx.Client) -> None:
    assert http.get("/healthz").status_code == 200
    assert http.post(TRACE, json={"text": "still fine"}).status_code == 200
    metrics = http.get("/metrics").text
    assert 'status="500"' not in metrics
