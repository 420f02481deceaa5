"""A speech trace on the wire (app/wire/speech.py): the binary records, read back by app/wire/decode.py, and the JSON
frames hold the REST body's values, every array under its own name, for each cell and one or two directions."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from app.engine.family import load_model
from app.engine.layers import Cell
from app.engine.speech.audio import read_wav
from app.engine.speech.trace import trace
from app.wire.decode import grad_arrays, record_bytes, sections, step_arrays
from app.wire.speech import SpeechWire
from tests.speech import voice_wav, write_speech_model

CASES: list[tuple[Cell, bool]] = [("lstm", True), ("gru", False), ("rnn", True)]


def wire_of(tmp_path: Path, cell: Cell, bidirectional: bool, precision: int | None = None) -> SpeechWire:
    write_speech_model(tmp_path, f"speech-{cell}", cell, bidirectional=bidirectional, layers=2, hidden=6)
    loaded = load_model(tmp_path, f"speech-{cell}")
    wav = voice_wav(0.8, 16_000, seed=2)
    return SpeechWire.build(loaded, trace(loaded, wav, transcript="one"), read_wav(wav), precision)


def parsed(body: dict[str, Any]) -> Any:
    return orjson.loads(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))


@pytest.mark.parametrize(("cell", "bidirectional"), CASES)
def test_binary_records_decode_to_the_bodys_arrays(tmp_path: Path, cell: Cell, bidirectional: bool) -> None:
    wire = wire_of(tmp_path, cell, bidirectional)
    body = parsed(wire.body())["trace"]
    meta = wire.meta_frame(binary=True, batch=5)
    T = meta["steps"]
    assert meta["step_record_bytes"] == record_bytes(meta["layout"])
    assert meta["grad_record_bytes"] == record_bytes(meta["grad_layout"], grad=True)
    records = b"".join(wire.binary_frames(batch=5))
    steps_blob, grads_blob = sections(records, [(T, meta["step_record_bytes"]), (T, meta["grad_record_bytes"])])
    steps = step_arrays(steps_blob, meta["layout"], T)
    grads = grad_arrays(grads_blob, meta["grad_layout"], T)
    assert len(body["layers"]) == 2 * (1 + bidirectional)
    for k, layer in enumerate(body["layers"]):
        np.testing.assert_array_equal(steps[f"layers.{k}.hidden"], np.array(layer["hidden"], np.float32))
        for name, gate in layer["gates"].items():
            np.testing.assert_array_equal(steps[f"layers.{k}.gates.{name}"], np.array(gate, np.float32))
        assert (f"layers.{k}.cell_state" in steps) == (cell == "lstm")
        assert grads[f"hidden.{k}"].tolist() == body["grad_norms"]["hidden"][k]
        assert grads[f"weight_hh.{k}"].tolist() == body["grad_norms"]["weight_hh"][k]
        if cell == "lstm":
            assert grads[f"cell_state.{k}"].tolist() == body["grad_norms"]["cell_state"][k]
    np.testing.assert_array_equal(steps["log_probs"], np.array(body["log_probs"], np.float32))
    np.testing.assert_array_equal(steps["occupancy"], np.array(body["trellis"]["occupancy"], np.float32))
    assert steps["greedy"][:, 0].tolist() == body["greedy"]
    assert steps["alignment"][:, 0].tolist() == body["trellis"]["alignment"]
    assert grads["input"].tolist() == body["grad_norms"]["input"]
    assert grads["logits"].tolist() == body["grad_norms"]["logits"]


@pytest.mark.parametrize("batch", [1, 4])
def test_json_frames_hold_the_bodys_values_in_order(tmp_path: Path, batch: int) -> None:
    wire = wire_of(tmp_path, "lstm", True)
    body = parsed(wire.body())["trace"]
    messages = [orjson.loads(m) for m in wire.frames(batch)]
    frames = list(itertools.chain.from_iterable(m if isinstance(m, list) else [m] for m in messages))
    T = body["steps"]
    assert [f["type"] for f in frames] == ["step"] * T + ["grad"] * T
    steps, grads = frames[:T], frames[T:][::-1]
    assert [f["t"] for f in steps] == [f["t"] for f in grads] == list(range(T))
    assert [f["layers"][1]["cell_state"] for f in steps] == body["layers"][1]["cell_state"]
    assert [f["occupancy"] for f in steps] == body["trellis"]["occupancy"]
    assert [f["weight_hh"] for f in grads] == np.array(body["grad_norms"]["weight_hh"]).T.tolist()
    meta = parsed(wire.meta_frame())
    assert meta["features"] == body["features"] and meta["labels"] == body["trellis"]["labels"]
    assert meta["num_layers"] == 2 and meta["directions"] == ["forward", "reverse"] * 2


def test_precision_rounds_the_json_to_its_significant_digits(tmp_path: Path) -> None:
    exact = wire_of(tmp_path, "gru", True)
    rounded = wire_of(tmp_path, "gru", True, precision=2)
    hidden = np.array(parsed(rounded.body())["trace"]["layers"][0]["hidden"])
    assert np.all(hidden == np.array([[float(f"{v:.1e}") for v in row] for row in hidden]))
    np.testing.assert_allclose(hidden, exact.trace.layers[0].hidden, rtol=0.05)
    assert not np.array_equal(hidden, exact.trace.layers[0].hidden)
