"""Melodies over the API: notes as the text of trace, generate and the stream; a note the model cannot read is a
422 naming it and its position."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient
from websockets.sync.client import connect

from app.engine.token.notes import parse_notes
from app.web.app import create_app
from app.web.config import ROOT, Settings
from tests.conftest import LiveServer

ODE = "E4:1 E4:1 F4:1 G4:1 G4:1 F4:1 E4:1 D4:1"


@pytest.fixture(scope="module")
def zoo_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"models_dir": ROOT / "models"})


@pytest.fixture(scope="module")
def api(zoo_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(zoo_settings)) as c:
        yield c


def test_a_melody_is_traced_one_note_a_step(api: TestClient) -> None:
    body = api.post("/api/models/melody-lstm/trace", json={"text": ODE, "top_k": 3}).json()
    assert body["tokens"] == ODE.split() and body["steps"] == 8 and body["unknown"] == []
    assert all(":" in p["token"] for step in body["predictions"] for p in step)  # it predicts notes


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("E4:1 H4:1 F4:1", "note 'H4:1' at position 2: bad pitch"),  # the second note, counted from 1
        ("E4:1 E4:x", "note 'E4:x' at position 2"),
        ("E4:1 C8:0.125 E4:1", "'C8:0.125' at 1"),  # well written, but a note the model never learned
    ],
)
def test_a_note_the_model_cannot_read_is_named_with_its_position(api: TestClient, text: str, words: str) -> None:
    for path, body in (("trace", {"text": text}), ("generate", {"prompt": text, "length": 4})):
        r = api.post(f"/api/models/melody-gru/{path}", json=body)
        assert r.status_code == 422 and words in r.json()["message"], (path, r.text)


def test_generated_notes_are_notes(api: TestClient) -> None:
    r = api.post("/api/models/melody-rnn/generate", json={"prompt": ODE, "length": 12, "seed": 3})
    assert r.status_code == 200
    written = parse_notes(r.json()["generated"])
    assert len(written) == 12


def test_the_stream_plays_notes(zoo_settings: Settings) -> None:
    with LiveServer(zoo_settings) as live, connect(f"{live.ws_url}/api/models/melody-lstm/stream") as ws:
        ws.send(orjson.dumps({"text": ODE, "batch": 4}).decode())
        frames: list[dict[str, object]] = []
        while not frames or frames[-1]["type"] not in ("done", "error"):
            parsed = orjson.loads(ws.recv(timeout=30))
            frames += parsed if isinstance(parsed, list) else [parsed]
    assert [f["type"] for f in frames] == ["meta"] + ["step"] * 8 + ["grad"] * 8 + ["done"]
    assert [f["token"] for f in frames[1:9]] == ODE.split()
