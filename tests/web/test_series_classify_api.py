"""Series classifiers over the API (frames of numbers in, a label out: the digits models' kind): the REST trace,
the JSON and binary stream all carry the engine's label probabilities after every frame and its answer; a
forecast, an unknown label and text are refused by name."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from app.engine.card import ModelCard, save_model
from app.engine.family import load_model
from app.engine.series.card import SeriesCard
from app.engine.series.model import Scaling, SeriesConfig, SeriesModel
from app.engine.series.trace import trace_series
from app.web.app import create_app
from app.web.config import Settings
from app.wire.decode import grad_arrays, sections, step_arrays
from tests.conftest import LiveServer
from tests.web.test_series_api import frames_of

LABELS = ["low", "middle", "high"]
MODEL = "toy-series-classify"
FRAMES = [[3.0 + t, 10 - t / 2, (t * 7) % 5] for t in range(11)]


def write_classifier(folder: Path) -> None:
    scaling = Scaling(("a", "b", "c"), (5.0, 8.0, 2.0), (3.0, 2.0, 1.5), "units", "frame")
    card = ModelCard(
        id=MODEL, task="test-series", cell="lstm", kind="series", hidden_size=12, num_layers=1,
        vocab={"level": "value", "tokens": ["<unk>"]}, block=SeriesCard(scaling, tuple(LABELS)),
        description="a test series classifier", examples=[{"values": FRAMES[:4], "label": "high"}], seed=1,
    )  # fmt: skip
    torch.manual_seed(7)
    save_model(folder, card, SeriesModel(SeriesConfig("lstm", 3, 12, 1, len(LABELS))))


@pytest.fixture(scope="module")
def settings(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("series-classify-models")
    shutil.copytree(models_dir, folder, dirs_exist_ok=True)
    write_classifier(folder)
    return Settings(models_dir=folder, max_steps=3000, max_generate=2000, max_concurrent=4, send_timeout=5.0)


@pytest.fixture(scope="module")
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings) as live:
        yield live


@pytest.mark.parametrize("label", [None, "middle"])
def test_a_classifiers_trace_is_the_engines(api: TestClient, settings: Settings, label: str | None) -> None:
    r = api.post(f"/api/models/{MODEL}/trace", json={"values": FRAMES, **({"label": label} if label else {})})
    assert r.status_code == 200, r.text
    body = r.json()
    tr = trace_series(load_model(settings.models_dir, MODEL), FRAMES, label=label)
    assert tr.probs is not None and tr.prediction is not None
    assert body["target"] == "classify" and body["labels"] == LABELS and body["loss_mode"] == "last"
    assert body["prediction"] == LABELS[tr.prediction]
    assert body["label"] == (label or LABELS[tr.prediction])
    assert body["label_source"] == ("given" if label else "predicted")
    np.testing.assert_array_equal(np.array(body["step_probs"], np.float32), tr.probs)
    assert body["probs"] == body["step_probs"][-1]
    assert body["predicted"] is None and body["error"] is None
    assert body["total_loss"] == pytest.approx(tr.loss, rel=1e-12)
    np.testing.assert_allclose(body["grad_norms"]["hidden"][0], tr.layers[0].grad_hidden, rtol=1e-6)
    assert body["grad_norms"]["hidden"][0][-1] > 0  # L at the last frame: the gradient starts there


def test_the_stream_sends_each_frames_probabilities_in_json_and_binary(server: LiveServer) -> None:
    body = httpx.post(f"{server.url}/api/models/{MODEL}/trace", json={"values": FRAMES, "label": "low"}).json()
    T = len(FRAMES)
    got = frames_of(server, MODEL, {"values": FRAMES, "label": "low", "batch": 3})
    assert [f["type"] for f in got] == ["meta"] + ["step"] * T + ["grad"] * T + ["done"]
    meta = got[0]
    assert meta["labels"] == LABELS and meta["label"] == "low" and meta["prediction"] == body["prediction"]
    assert [f["probs"] for f in got[1 : T + 1]] == body["step_probs"]
    assert all("predicted" not in f for f in got[1 : T + 1])
    binary = frames_of(server, MODEL, {"values": FRAMES, "label": "low", "encoding": "binary", "batch": 4})
    meta, records = binary[0], b"".join(m for m in binary if isinstance(m, bytes))
    assert meta["labels"] == LABELS and "probs" in [f["name"] for f in meta["layout"]]
    step_blob, grad_blob = sections(records, [(T, meta["step_record_bytes"]), (T, meta["grad_record_bytes"])])
    steps = step_arrays(step_blob, meta["layout"], T)
    np.testing.assert_array_equal(steps["probs"], np.array(body["step_probs"], np.float32))
    np.testing.assert_array_equal(steps["value"], np.array(FRAMES, np.float32))
    assert grad_arrays(grad_blob, meta["grad_layout"], T)["hidden.0"].tolist() == body["grad_norms"]["hidden"][0]


def test_the_card_names_the_labels_and_the_target(api: TestClient) -> None:
    card = api.get(f"/api/models/{MODEL}").json()
    assert card["labels"] == LABELS and card["series"]["target"] == "classify"
    assert card["series"]["labels"] == LABELS


@pytest.mark.parametrize(
    ("path", "json", "status", "words"),
    [
        ("generate", {"values": FRAMES, "length": 5}, 409, "classifier"),
        ("trace", {"values": FRAMES, "label": "loud"}, 404, "'loud' is not one of"),  # as a token classifier's
        ("trace", {"values": [[1, 2]]}, 422, "reads 3 per step"),
        ("trace", {"text": "one two"}, 409, "reads numbers"),
    ],
)
def test_misuse_is_named(api: TestClient, path: str, json: dict[str, Any], status: int, words: str) -> None:
    r = api.post(f"/api/models/{MODEL}/{path}", json=json)
    assert r.status_code == status, r.text
    assert words in r.json()["message"], r.json()


def test_a_stream_forecast_of_a_classifier_is_an_error_frame(server: LiveServer) -> None:
    got = frames_of(server, MODEL, {"mode": "generate", "values": FRAMES, "length": 5})
    assert got[-1]["type"] == "error" and "classifier" in got[-1]["message"]
