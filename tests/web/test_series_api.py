"""Series models over the API: numbers in place of text for trace, generate (a forecast) and the stream, the
engine's values exactly, and every bad number a 422 that names it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import torch
from fastapi.testclient import TestClient
from websockets.sync.client import connect

from app.engine.card import ModelCard, save_model
from app.engine.family import load_model
from app.engine.series.card import SeriesCard
from app.engine.series.model import MARGIN, Scaling, SeriesConfig, SeriesModel
from app.engine.series.trace import forecast, trace_series
from app.web.app import create_app
from app.web.config import ROOT, Settings
from app.wire.decode import grad_arrays, sections, step_arrays
from tests.conftest import LiveServer

SERIES = [3.0, 5.5, 9.0, 14.0, 9.5, 4.0, 1.5, 2.0, 6.5, 12.0, 15.5, 11.0]
PAIRS = [[v, 10 - v / 2] for v in SERIES]


def write_series_model(folder: Path, model_id: str, cell: str, features: list[str]) -> None:
    scaling = Scaling(tuple(features), tuple(8.0 for _ in features), tuple(4.0 for _ in features), "units", "year")
    card = ModelCard(
        id=model_id, task="test-series", cell=cell, kind="series", hidden_size=12,  # type: ignore[arg-type]
        num_layers=1, vocab={"level": "value", "tokens": ["<unk>"]}, block=SeriesCard(scaling),
        description="a test series model", examples=[{"values": SERIES[:6], "note": "test"}], seed=1,
    )  # fmt: skip
    torch.manual_seed(sum(map(ord, model_id)))
    model = SeriesModel(SeriesConfig(card.cell, len(features), 12, 1))
    save_model(folder, card, model)


@pytest.fixture(scope="module")
def series_settings(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("series-models")
    shutil.copytree(models_dir, folder, dirs_exist_ok=True)
    write_series_model(folder, "toy-series-gru", "gru", ["level"])
    write_series_model(folder, "toy-series-lstm", "lstm", ["level", "other"])
    return Settings(models_dir=folder, max_steps=3000, max_generate=2000, max_concurrent=4, send_timeout=5.0)


@pytest.fixture(scope="module")
def api(series_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(series_settings)) as c:
        yield c


@pytest.fixture(scope="module")
def server(series_settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(series_settings) as live:
        yield live


@pytest.mark.parametrize(("model_id", "values"), [("toy-series-gru", SERIES), ("toy-series-lstm", PAIRS)])
def test_a_trace_of_numbers_is_the_engines(
    api: TestClient, series_settings: Settings, model_id: str, values: list[Any]
) -> None:
    r = api.post(f"/api/models/{model_id}/trace", json={"values": values})
    assert r.status_code == 200, r.text
    body = r.json()
    tr = trace_series(load_model(series_settings.models_dir, model_id), values)
    T, F = len(values), tr.values.shape[1]
    assert body["kind"] == "series" and body["steps"] == T and len(body["features"]) == F
    assert body["units"] == "units" and body["step"] == "year"
    np.testing.assert_array_equal(np.array(body["values"]).reshape(T, F), tr.values)
    np.testing.assert_array_equal(np.array(body["predicted"], np.float32), tr.predicted)
    np.testing.assert_array_equal(np.array(body["layers"][0]["hidden"], np.float32), tr.layers[0].hidden)
    np.testing.assert_allclose(body["grad_norms"]["input"], tr.grad_input, rtol=1e-15)
    np.testing.assert_allclose(np.array(body["grad_norms"]["values"]), tr.grad_values, rtol=1e-6)
    assert body["loss"][-1] is None and body["error"][-1] == [None] * F  # the last step has no next value


def test_a_flat_list_is_one_feature(api: TestClient) -> None:
    flat = api.post("/api/models/toy-series-gru/trace", json={"values": SERIES}).json()
    nested = api.post("/api/models/toy-series-gru/trace", json={"values": [[v] for v in SERIES]}).json()
    assert flat["predicted"] == nested["predicted"] and flat["layers"] == nested["layers"]


def test_generate_is_a_free_running_forecast(api: TestClient, series_settings: Settings) -> None:
    r = api.post("/api/models/toy-series-gru/generate", json={"values": SERIES, "length": 7})
    assert r.status_code == 200, r.text
    body = r.json()
    engine = forecast(load_model(series_settings.models_dir, "toy-series-gru"), SERIES, 7)
    assert len(body["forecast"]) == 7
    np.testing.assert_allclose(np.array(body["forecast"]), engine.forecast, rtol=1e-6)
    trace = body["trace"]
    assert trace["steps"] == len(SERIES) + 6  # the given values, then all but the last forecast value, read back
    # the forecast is what the model predicted from each step: fed back, it is the next step's value
    np.testing.assert_allclose(np.array(trace["values"])[len(SERIES) :, 0], engine.forecast[:-1, 0], rtol=1e-6)
    np.testing.assert_allclose(np.array(trace["predicted"])[len(SERIES) - 1 :, 0], engine.forecast[:, 0], rtol=1e-4)


@pytest.mark.parametrize(
    ("path", "model_id", "json", "status", "words"),
    [
        ("trace", "toy-series-gru", {"values": [1, 2, "three"]}, 422, "step 2: 'three' is not a number"),
        ("trace", "toy-series-gru", {"values": [1, None, 3]}, 422, "step 1"),
        ("trace", "toy-series-gru", {"values": [1, True]}, 422, "step 1"),
        ("trace", "toy-series-lstm", {"values": [[1, 2], [3]]}, 422, "step 1: 1 numbers; this model reads 2"),
        ("trace", "toy-series-lstm", {"values": [1, 2]}, 422, "reads 2 per step"),
        ("trace", "toy-series-gru", {"values": [1e300]}, 422, "standard deviations"),
        ("trace", "toy-series-gru", {"values": [1.0] * 3001}, 422, "max_steps"),
        ("trace", "toy-series-gru", {"values": []}, 422, "values"),
        ("trace", "toy-series-gru", {"text": "hello"}, 409, "reads numbers"),
        ("trace", "chars-lstm", {"values": [1, 2]}, 409, "reads text"),
        ("trace", "toy-series-gru", {}, 422, "one of them"),
        ("trace", "toy-series-gru", {"text": "a", "values": [1]}, 422, "one of them"),
        ("generate", "toy-series-gru", {"values": [1, 2], "length": 5000}, 422, "max_generate"),
        ("generate", "toy-series-gru", {"prompt": "hello"}, 409, "reads numbers"),
        ("translate", "toy-series-gru", {"text": "one"}, 409, "not a translation model"),
    ],
)
def test_bad_numbers_and_misuse_are_named(
    api: TestClient, path: str, model_id: str, json: dict[str, Any], status: int, words: str
) -> None:
    r = api.post(f"/api/models/{model_id}/{path}", json=json)
    assert r.status_code == status, r.text
    assert words in r.json()["message"], r.json()


@pytest.mark.parametrize("raw", [b'{"values": [1, NaN]}', b'{"values": [Infinity]}', b'{"values": [1, -Infinity]}'])
def test_nan_and_infinities_are_refused(api: TestClient, raw: bytes) -> None:
    r = api.post("/api/models/toy-series-gru/trace", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422) and r.json()["error"] in ("malformed", "invalid")


# --- the stream, against a real uvicorn -------------------------------------------------------------------------


def frames_of(server: LiveServer, model_id: str, request: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    with connect(f"{server.ws_url}/api/models/{model_id}/stream", max_size=2**24) as ws:
        ws.send(orjson.dumps(request).decode())
        while True:
            message = ws.recv(timeout=30)
            if isinstance(message, bytes):
                out.append(message)
                continue
            parsed = orjson.loads(message)
            out += parsed if isinstance(parsed, list) else [parsed]
            if isinstance(parsed, dict) and parsed["type"] in ("done", "error"):
                return out


@pytest.mark.parametrize("batch", [1, 5])
def test_the_stream_sends_the_rest_bodys_values(server: LiveServer, batch: int) -> None:
    body = httpx.post(f"{server.url}/api/models/toy-series-lstm/trace", json={"values": PAIRS}).json()
    got = frames_of(server, "toy-series-lstm", {"values": PAIRS, "batch": batch})
    T = len(PAIRS)
    assert [f["type"] for f in got] == ["meta"] + ["step"] * T + ["grad"] * T + ["done"]
    steps, grads = got[1 : T + 1], got[T + 1 : 2 * T + 1]
    assert [f["predicted"] for f in steps] == body["predicted"]
    assert [f["layers"][0]["cell_state"] for f in steps] == body["layers"][0]["cell_state"]
    assert [f["t"] for f in grads] == list(range(T - 1, -1, -1))
    assert [f["values"] for f in reversed(grads)] == body["grad_norms"]["values"]


def test_the_binary_stream_holds_the_same_values(server: LiveServer) -> None:
    body = httpx.post(f"{server.url}/api/models/toy-series-lstm/trace", json={"values": PAIRS}).json()
    got = frames_of(server, "toy-series-lstm", {"values": PAIRS, "encoding": "binary", "batch": 4})
    meta, records = got[0], b"".join(m for m in got if isinstance(m, bytes))
    T = len(PAIRS)
    step_blob, grad_blob = sections(records, [(T, meta["step_record_bytes"]), (T, meta["grad_record_bytes"])])
    steps = step_arrays(step_blob, meta["layout"], T)
    grads = grad_arrays(grad_blob, meta["grad_layout"], T)
    np.testing.assert_array_equal(steps["value"], np.array(PAIRS, np.float32))
    np.testing.assert_array_equal(steps["predicted"], np.array(body["predicted"], np.float32))
    np.testing.assert_array_equal(steps["layers.0.cell_state"], np.array(body["layers"][0]["cell_state"], np.float32))
    assert grads["hidden.0"].tolist() == body["grad_norms"]["hidden"][0]
    assert grads["values"].tolist() == body["grad_norms"]["values"]


def test_a_streamed_forecast_sends_each_step_then_the_sweep(server: LiveServer) -> None:
    rest = httpx.post(f"{server.url}/api/models/toy-series-gru/generate", json={"values": SERIES, "length": 5}).json()
    got = frames_of(server, "toy-series-gru", {"mode": "generate", "values": SERIES, "length": 5})
    steps = [f for f in got if f["type"] == "step"]
    assert got[0]["type"] == "meta" and got[0]["given_steps"] == len(SERIES)
    assert len(steps) == len(SERIES) + 4 and [f["forecast"] for f in steps].count(True) == 4
    assert got[-1]["type"] == "done"
    np.testing.assert_allclose(got[-1]["forecast"], rest["forecast"], rtol=1e-6)
    assert sum(f["type"] == "grad" for f in got) == len(SERIES) + 4


@pytest.mark.parametrize("model_id", ["toy-series-gru", "toy-series-lstm"])
def test_a_series_models_card_says_what_it_reads(api: TestClient, model_id: str) -> None:
    card = api.get(f"/api/models/{model_id}").json()
    assert card["kind"] == "series" and card["vocab_level"] == "value"
    assert card["series"]["units"] == "units" and len(card["series"]["features"]) in (1, 2)
    assert model_id in {m["id"] for m in api.get("/api/models").json()["models"]}


# --- values far outside what a model was trained on ---------------------------------------------------------


@pytest.fixture(scope="module")
def zoo_api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"models_dir": ROOT / "models"}))) as c:
        yield c


FAR = [10, 40, 80, -20, 120, 90, 60, 90000, 30]  # a sunspot number is never negative; 90,000 is ~580× the most seen


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_sunspot_numbers_far_outside_the_training_years_are_named_with_the_range(
    zoo_api: TestClient, cell: str
) -> None:
    card = zoo_api.get(f"/api/models/sunspots-{cell}").json()["series"]
    (least, most), floor = card["seen"][0], card["least"][0]
    assert (least, floor) == (0.0, 0.0) and 150 < most < 160  # the training years 1700–1938
    body = zoo_api.post(f"/api/models/sunspots-{cell}/trace", json={"values": FAR}).json()
    far = body["outliers"]
    assert [(v["t"], v["value"]) for v in far["values"]] == [(3, -20.0), (7, 90000.0)]
    assert far["trained"] == [[least, most]]
    assert far["plausible"] == [[floor, pytest.approx(most + MARGIN * (most - least))]]
    assert "-20 (step 3), 90000 (step 7)" in far["message"] and "Trained on 0 to 154.4" in far["message"]
    assert body["values"] == [[v] for v in FAR]  # warned of, still read
    reply = zoo_api.post(f"/api/models/sunspots-{cell}/generate", json={"values": FAR, "length": 5}).json()
    assert reply["outliers"] == far and reply["trace"]["outliers"] == far  # the forecast's own values are not named
    # the card's own examples (the real series, a sine, a flat line) are all plausible
    for example in zoo_api.get(f"/api/models/sunspots-{cell}").json()["examples"]:
        assert (
            zoo_api.post(f"/api/models/sunspots-{cell}/trace", json={"values": example["values"]}).json()["outliers"]
            is None
        )


def test_without_a_training_range_far_is_five_standard_deviations(api: TestClient) -> None:
    """toy-series-gru's card gives a mean of 8 and a std of 4 and no range: plausible is −12 to 28."""
    body = api.post("/api/models/toy-series-gru/trace", json={"values": [8, -11.9, 28, 28.5, -13]}).json()
    assert [(v["t"], v["value"]) for v in body["outliers"]["values"]] == [(3, 28.5), (4, -13.0)]
    assert body["outliers"]["trained"] is None and body["outliers"]["plausible"] == [[-12.0, 28.0]]
    pairs = api.post("/api/models/toy-series-lstm/trace", json={"values": [[8, 8], [8, 100]]}).json()["outliers"]
    assert pairs["values"] == [{"t": 1, "feature": 1, "value": 100.0}] and "(step 1, other)" in pairs["message"]


def test_the_streams_meta_names_far_values(server: LiveServer) -> None:
    for request in ({"values": [8, 9, 40]}, {"mode": "generate", "values": [8, 9, 40], "length": 3}):
        meta = frames_of(server, "toy-series-gru", request)[0]
        assert meta["type"] == "meta" and [v["t"] for v in meta["outliers"]["values"]] == [2], request
    assert frames_of(server, "toy-series-gru", {"values": [8, 9, 10]})[0]["outliers"] is None
