"""A caption model in the zoo, before its own routes (issue 26): it is listed, its card served, the home page shows
it, and every request of another family's shape is refused by name (409), never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.engine.caption.card import CaptionCard, config
from app.engine.caption.model import CaptionModel
from app.engine.card import ModelCard, save_model
from app.training.tasks.shapes import pixels_vocab, words_vocab
from app.web.app import create_app
from app.web.config import Settings


@pytest.fixture(scope="module")
def caption_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder: Path = tmp_path_factory.mktemp("caption-models")
    block = CaptionCard(words=words_vocab().to_json(), embed_size=4, channels=[3, 4, 5], attention_size=6)
    card = ModelCard(id="shapes-lstm", task="shapes", cell="lstm", kind="caption", hidden_size=8, num_layers=1,
                     vocab=pixels_vocab().to_json(), block=block)  # fmt: skip
    save_model(folder, card, CaptionModel(config(card)))
    with TestClient(create_app(Settings(models_dir=folder))) as client:
        yield client


def test_a_caption_model_is_listed_with_its_kind_and_its_words(caption_client: TestClient) -> None:
    r = caption_client.get("/api/models")
    assert r.status_code == 200
    assert [(m["id"], m["kind"]) for m in r.json()["models"]] == [("shapes-lstm", "caption")]
    r = caption_client.get("/api/models/shapes-lstm")
    assert r.status_code == 200
    body = r.json()
    assert body["target_vocab"] == list(words_vocab().tokens)
    assert body["gates"] == ["input", "forget", "candidate", "output"]
    schema = caption_client.get("/openapi.json").json()["components"]["schemas"]["ModelSummary"]
    assert "caption" in schema["properties"]["kind"]["enum"]
    home = caption_client.get("/")
    assert home.status_code == 200 and "shapes-lstm" in home.text and "a picture in, its caption out" in home.text


REFUSED = [
    ("trace", {"text": "a small red circle"}, "a trace of text or values"),
    ("generate", {"prompt": "a", "length": 3}, "generation"),
    ("translate", {"text": "a small red circle"}, "translation"),
]


@pytest.mark.parametrize(("path", "body", "what"), REFUSED)
def test_a_request_of_another_familys_shape_is_refused_saying_what_the_model_does(
    caption_client: TestClient, path: str, body: dict[str, object], what: str
) -> None:
    r = caption_client.post(f"/api/models/shapes-lstm/{path}", json=body)
    assert r.status_code == 409
    assert r.json()["message"] == (
        f"shapes-lstm captions images (it reads pictures, not text or numbers): {what} is not served for caption models"
    )
    with caption_client.websocket_connect("/api/models/shapes-lstm/stream") as ws:
        ws.send_json({"text": "a"})
        frame = ws.receive_json()
    assert frame["type"] == "error" and frame["error"] == "wrong_model_kind"
    page = caption_client.get("/models/shapes-lstm")
    assert page.status_code in (404, 409) and "captions images: its page is not built yet" in page.text
