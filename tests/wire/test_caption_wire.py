"""A caption trace on the wire (app/wire/caption.py): the binary records, read back by app/wire/decode.py, and the
JSON frames hold the REST body's values, every array under its own name, for each cell (the committed shapes
models, on a scene placed by hand)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import orjson
import pytest

from app.engine.caption.trace import caption
from app.engine.family import load_model
from app.web.config import ROOT
from app.wire.caption import CaptionWire
from app.wire.decode import grad_arrays, record_bytes, sections, step_arrays
from tests.web.test_caption_api import MODELS, SCENES, png_of

SCENE = SCENES["yellow triangle left of blue circle"]


def wire_of(model_id: str, precision: int | None = None, given: str | None = None) -> CaptionWire:
    loaded = load_model(ROOT / "models", model_id)
    return CaptionWire.build(loaded, caption(loaded, png_of(SCENE), given=given, beam=2), precision)


def parsed(body: dict[str, Any]) -> Any:
    return orjson.loads(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))


@pytest.mark.parametrize("model_id", MODELS)
def test_binary_records_decode_to_the_bodys_arrays(model_id: str) -> None:
    wire = wire_of(model_id)
    body = parsed(wire.body())["trace"]
    meta = wire.meta_frame(binary=True, batch=3)
    T = meta["steps"]
    assert meta["step_record_bytes"] == record_bytes(meta["layout"])
    assert meta["grad_record_bytes"] == record_bytes(meta["grad_layout"], grad=True)
    records = b"".join(wire.binary_frames(batch=3))
    steps_blob, grads_blob = sections(records, [(T, meta["step_record_bytes"]), (T, meta["grad_record_bytes"])])
    steps = step_arrays(steps_blob, meta["layout"], T)
    grads = grad_arrays(grads_blob, meta["grad_layout"], T)
    [layer] = body["layers"]
    np.testing.assert_array_equal(steps["layers.0.hidden"], np.array(layer["hidden"], np.float32))
    for name, gate in layer["gates"].items():
        np.testing.assert_array_equal(steps[f"layers.0.gates.{name}"], np.array(gate, np.float32))
    lstm = model_id == "shapes-lstm"
    assert ("layers.0.cell_state" in steps) == lstm == ("cell_state.0" in grads)
    if lstm:
        np.testing.assert_array_equal(steps["layers.0.cell_state"], np.array(layer["cell_state"], np.float32))
        assert grads["cell_state.0"].tolist() == body["grad_norms"]["cell_state"][0]
    np.testing.assert_array_equal(steps["attention"], np.array(body["attention"], np.float32))
    np.testing.assert_array_equal(steps["loss"], np.array(body["loss"], np.float32))
    np.testing.assert_array_equal(steps["prediction.p"], [[p["p"] for p in row] for row in body["predictions"]])
    assert steps["prediction.token_id"].tolist() == wire.captioning.trace.top_ids.tolist()
    g = body["grad_norms"]
    assert grads["hidden.0"].tolist() == g["hidden"][0] and grads["weight_hh.0"].tolist() == g["weight_hh"][0]
    assert grads["input"].tolist() == g["input"] and grads["context"].tolist() == g["context"]
    assert grads["grid"].shape == (T, 64) and grads["grid"].tolist() == g["grid_words"]


@pytest.mark.parametrize("batch", [1, 4])
def test_json_frames_hold_the_bodys_values_in_order(batch: int) -> None:
    wire = wire_of("shapes-lstm", given=SCENE.caption)
    body = parsed(wire.body())["trace"]
    messages = [orjson.loads(m) for m in wire.frames(batch)]
    frames = list(itertools.chain.from_iterable(m if isinstance(m, list) else [m] for m in messages))
    T = body["steps"]
    assert T == len(SCENE.caption.split()) + 1 and body["words"][-1] == "</s>"
    assert [f["type"] for f in frames] == ["step"] * T + ["grad"] * T
    steps, grads = frames[:T], frames[T:][::-1]
    assert [f["t"] for f in steps] == [f["t"] for f in grads] == list(range(T))
    assert [f["word"] for f in steps] == body["words"] and [f["input"] for f in steps] == body["inputs"]
    assert [f["layers"][0]["cell_state"] for f in steps] == body["layers"][0]["cell_state"]
    assert [f["attention"] for f in steps] == body["attention"]
    assert [f["prediction"] for f in steps] == body["predictions"]
    assert [f["grid"] for f in grads] == body["grad_norms"]["grid_words"]
    assert [f["weight_hh"] for f in grads] == np.array(body["grad_norms"]["weight_hh"]).T.tolist()
    meta = parsed(wire.meta_frame())
    assert meta["start"] == body["start"] and meta["grad_norms"]["grid"] == body["grad_norms"]["grid"]
    assert (meta["encoding"], meta["batch"], meta["gates"]) == ("json", 1, ["input", "forget", "candidate", "output"])


def test_precision_rounds_the_json_to_its_significant_digits() -> None:
    exact = wire_of("shapes-gru")
    rounded = wire_of("shapes-gru", precision=2)
    body = parsed(rounded.body())["trace"]
    hidden = np.array(body["layers"][0]["hidden"])
    assert np.all(hidden == np.array([[float(f"{v:.1e}") for v in row] for row in hidden]))
    np.testing.assert_allclose(hidden, exact.captioning.trace.decoder.hidden, rtol=0.05)
    assert not np.array_equal(hidden, exact.captioning.trace.decoder.hidden)
    grid = np.array(body["grad_norms"]["grid"])
    assert np.all(grid == np.array([float(f"{v:.1e}") for v in grid]))
