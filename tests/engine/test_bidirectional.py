"""Bidirectional layers (1–4 layers, both directions) against torch.nn (states) and the float64 oracle (gradients)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
import torch

from app.engine.card import save_model
from app.engine.family import load_model
from app.engine.layers import GATES
from app.engine.token.card import config
from app.engine.token.model import ModelConfig, SeqModel
from app.engine.token.trace import trace, trace_ids
from app.wire.frames import dumps
from app.wire.token import WireTrace
from tests.conftest import write_model
from tests.engine.test_trace import CELLS, STATE_TOL, assert_close_rel
from tests.reference import reference


def make_bi(cell: str, kind: str, layers: int, seed: int, hidden: int = 12) -> SeqModel:
    torch.manual_seed(seed)
    outputs = 11 if kind == "next_token" else 3
    model = SeqModel(ModelConfig(cell, kind, 11, outputs, 8, hidden, layers, bidirectional=True))  # type: ignore[arg-type]
    for p in model.parameters():
        p.data.mul_(1.5)  # gates that saturate now and then, as in a trained model
    return model.eval()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("layers", "kind", "mode"), [(1, "next_token", "sum"), (2, "classify", "last"),
                                                      (3, "next_token", "last"), (4, "classify", "sum")])  # fmt: skip
def test_bidirectional_trace_matches_autograd(cell: str, layers: int, kind: str, mode: str) -> None:
    model = make_bi(cell, kind, layers, seed=layers * 5 + len(cell))
    ids = torch.randint(0, 11, (19,), generator=torch.Generator().manual_seed(layers)).tolist()
    tr = trace_ids(model, ids, loss=mode)  # type: ignore[arg-type]
    ref = reference(model, ids, mode)
    assert tr.loss == pytest.approx(ref.loss, rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(tr.probs, ref.probs.numpy(), atol=STATE_TOL)
    assert [layer.direction for layer in tr.layers] == ["forward", "reverse"] * layers
    for j, layer in enumerate(tr.layers):
        np.testing.assert_allclose(layer.hidden, ref.hidden[j].numpy(), atol=STATE_TOL, err_msg=f"entry {j}")
        assert list(layer.gates) == list(GATES[cell])
        for name, values in layer.gates.items():
            np.testing.assert_allclose(values, ref.gates[j][name].numpy(), atol=STATE_TOL, err_msg=name)
        assert_close_rel(layer.grad_hidden, ref.grad_hidden[j])
        assert_close_rel(layer.grad_weight_hh, ref.grad_weight_hh[j])
        if cell == "lstm":
            c, dc, ref_c, ref_dc = layer.cell_state, layer.grad_cell_state, ref.cell_state[j], ref.grad_cell_state[j]
            assert c is not None and dc is not None and ref_c is not None and ref_dc is not None
            np.testing.assert_allclose(c, ref_c.numpy(), atol=STATE_TOL)
            assert_close_rel(dc, ref_dc)
    assert_close_rel(tr.grad_input, ref.grad_input)


@pytest.mark.parametrize("cell", CELLS)
def test_both_directions_equal_torch_nn_output(cell: str) -> None:
    """torch.nn's own bidirectional module: its output is [forward; reverse] of the top layer at every step, its
    final states the forward's last step and the reverse's first."""
    model = make_bi(cell, "next_token", 2, seed=3, hidden=32)
    ids = torch.randint(0, 11, (150,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out, final = model.rnn(model.embedding(ids[None]))
    tr = trace_ids(model, ids.tolist())
    top = np.concatenate([tr.layers[2].hidden, tr.layers[3].hidden], axis=1)
    np.testing.assert_allclose(top, out[0].numpy(), atol=STATE_TOL)
    h_n = final[0] if cell == "lstm" else final
    for j, layer in enumerate(tr.layers):  # h_n is in torch's order too
        last = layer.hidden[-1] if layer.direction == "forward" else layer.hidden[0]
        np.testing.assert_allclose(last, h_n[j, 0].numpy(), atol=STATE_TOL)


def test_reverse_bptt_runs_from_the_first_step_to_the_last() -> None:
    """A classifier scored at the last step reads the reverse direction where that direction began: nothing
    flows on from there, so of the reverse direction only the last step has a gradient, while the forward
    direction's gradient fades from the last step back to the first."""
    model = make_bi("rnn", "classify", 1, seed=2)
    with torch.no_grad():
        model.weights(0).weight_hh.mul_(0.3)
    ids = torch.randint(0, 11, (40,), generator=torch.Generator().manual_seed(4)).tolist()
    tr = trace_ids(model, ids, loss="last")
    ref = reference(model, ids, "last")
    fwd, rev = tr.layers
    assert rev.grad_hidden[-1] > 0 and np.all(rev.grad_hidden[:-1] == 0)
    assert 0 < fwd.grad_hidden[0] < fwd.grad_hidden[-1]
    for j in range(2):
        assert_close_rel(tr.layers[j].grad_hidden, ref.grad_hidden[j])


def test_tiny_gradients_of_the_reverse_direction_are_not_flushed_to_zero() -> None:
    """Two layers, scored at the last step, with small recurrent weights: layer 1's forward gradient fades
    towards the first step, and layer 0's reverse direction carries that from the first step on, far below
    float32's range, exact as the oracle's."""
    model = make_bi("rnn", "classify", 2, seed=4)
    with torch.no_grad():
        for j in range(4):
            model.weights(j).weight_hh.mul_(0.06)
    ids = torch.randint(0, 11, (60,), generator=torch.Generator().manual_seed(9)).tolist()
    tr = trace_ids(model, ids, loss="last")
    ref = reference(model, ids, "last")
    rev = tr.layers[1]
    assert rev.direction == "reverse"
    assert 0 < rev.grad_hidden[0] < 1e-40, "the test needs a gradient below float32's smallest normal number"
    for j in range(4):
        assert_close_rel(tr.layers[j].grad_hidden, ref.grad_hidden[j])
        assert_close_rel(tr.layers[j].grad_weight_hh, ref.grad_weight_hh[j])
    assert_close_rel(tr.grad_input, ref.grad_input)
    assert tr.grad_input[0] > 0


def test_the_wire_names_each_layer_entry_by_its_direction(tmp_path: Path) -> None:
    """REST body, stream frames and binary layouts: entries in torch's order, each with its direction, and the
    frames' values those of the body."""
    card = write_model(tmp_path, "bi-lstm", "lstm", "next_token", layers=2)
    card.bidirectional = True
    for c in card.checkpoints:
        (tmp_path / c.file).unlink()
    card.checkpoints = []
    torch.manual_seed(1)
    save_model(tmp_path, card, SeqModel(config(card)))
    loaded = load_model(tmp_path, "bi-lstm")
    wire = WireTrace.build(loaded, trace(loaded, "hello"))
    body = orjson.loads(dumps(wire.body()))
    assert [layer["direction"] for layer in body["layers"]] == ["forward", "reverse", "forward", "reverse"]
    assert len(body["grad_norms"]["hidden"]) == 4
    frames = [orjson.loads(f) for f in wire.step_frames()]
    for t, frame in enumerate(frames):
        for k, layer in enumerate(frame["layers"]):
            assert layer["direction"] == body["layers"][k]["direction"]
            assert layer["hidden"] == body["layers"][k]["hidden"][t]
    assert wire.meta_frame()["directions"] == ["forward", "reverse"] * 2
    layout = wire.binary_layout()
    assert {(f["name"], f["direction"]) for f in layout if f["name"].startswith("layers.1.")} == {
        (f"layers.1.{n}", "reverse")
        for n in ["hidden", "cell_state", "gates.input", "gates.forget", "gates.candidate", "gates.output"]
    }
    assert [f.get("direction") for f in wire.grad_layout()][:4] == ["forward", "reverse"] * 2
