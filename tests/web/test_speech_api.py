"""A speech model in the zoo, before its own routes (issue 25): it is listed and its card served, and every request
of another family's shape is refused by name (409), never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.engine.card import ModelCard, save_model
from app.engine.speech.card import BLANK, SpeechCard, config
from app.engine.speech.model import SpeechModel
from app.web.app import create_app
from app.web.config import Settings

ALPHABET = " -efinortvw"


@pytest.fixture(scope="module")
def speech_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder: Path = tmp_path_factory.mktemp("speech-models")
    card = ModelCard(id="speech-gru", task="speech", cell="gru", kind="transcribe", hidden_size=8, num_layers=2,
                     vocab={"level": "value", "tokens": ["<unk>"]}, bidirectional=True,
                     block=SpeechCard(alphabet=ALPHABET))  # fmt: skip
    save_model(folder, card, SpeechModel(config(card)))
    with TestClient(create_app(Settings(models_dir=folder))) as client:
        yield client


def test_a_speech_model_is_listed_with_its_kind_and_its_alphabet(speech_client: TestClient) -> None:
    r = speech_client.get("/api/models")
    assert r.status_code == 200
    assert [(m["id"], m["kind"]) for m in r.json()["models"]] == [("speech-gru", "transcribe")]
    r = speech_client.get("/api/models/speech-gru")
    assert r.status_code == 200
    body = r.json()
    assert body["target_vocab"] == [BLANK, *ALPHABET] and body["bidirectional"] is True
    assert body["gates"] == ["reset", "update", "candidate"]
    schema = speech_client.get("/openapi.json").json()["components"]["schemas"]["ModelSummary"]
    assert "transcribe" in schema["properties"]["kind"]["enum"]


REFUSED = [
    ("trace", {"text": "one"}, "a trace of text or values"),
    ("generate", {"prompt": "o", "length": 3}, "generation"),
]


@pytest.mark.parametrize(("path", "body", "what"), REFUSED)
def test_a_request_of_another_familys_shape_is_refused_saying_what_the_model_does(
    speech_client: TestClient, path: str, body: dict[str, object], what: str
) -> None:
    r = speech_client.post(f"/api/models/speech-gru/{path}", json=body)
    assert r.status_code == 409
    assert r.json()["message"] == (
        f"speech-gru transcribes speech (it reads audio, not text or numbers): {what} is not served for speech models"
    )
    with speech_client.websocket_connect("/api/models/speech-gru/stream") as ws:
        ws.send_json({"text": "one"})
        frame = ws.receive_json()
    assert frame["type"] == "error" and frame["error"] == "wrong_model_kind"
