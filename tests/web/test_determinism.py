"""The same request gives the same bytes, so a talk rehearsed is the talk given."""

from __future__ import annotations

import httpx
import orjson
from websockets.sync.client import connect

from tests.conftest import LiveServer


def stream_bytes(live: LiveServer, model_id: str, request: dict[str, object]) -> list[str | bytes]:
    frames: list[str | bytes] = []
    with connect(f"{live.ws_url}/api/models/{model_id}/stream", max_size=2**24) as ws:
        ws.send(orjson.dumps(request).decode())
        while True:
            frames.append(ws.recv(timeout=30))
            if isinstance(frames[-1], str) and '"type":"done"' in frames[-1]:
                return frames


def test_rest_traces_and_generations_repeat_byte_for_byte(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as c:
        for path, body in [
            ("/api/models/chars-gru/trace", {"text": "a rehearsed talk " * 20, "top_k": 3}),
            ("/api/models/words-lstm/trace", {"text": "a good film, not a bad plot", "loss": "sum"}),
            ("/api/models/chars-lstm/generate", {"prompt": "once ", "length": 50, "temperature": 1.2, "seed": 42}),
        ]:
            first = c.post(path, json=body).content
            assert all(c.post(path, json=body).content == first for _ in range(3)), path


def test_stream_frames_repeat_byte_for_byte(live: LiveServer) -> None:
    cases: list[tuple[str, dict[str, object]]] = [
        ("chars-lstm", {"text": "the same frames, every time"}),
        ("chars-rnn", {"text": "binary too", "encoding": "binary"}),
        ("chars-gru", {"mode": "generate", "prompt": "ab", "length": 30, "seed": 7, "temperature": 1.0}),
    ]
    for model_id, request in cases:
        first = stream_bytes(live, model_id, request)
        assert stream_bytes(live, model_id, request) == first, model_id
