"""The engine against torch.nn (states) and torch.autograd (gradients), on random weights and inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from app.engine.errors import EmptyInput, InputTooLong
from app.engine.layers import GATES, LayerTrace
from app.engine.token.card import token_card
from app.engine.token.model import ModelConfig, SeqModel
from app.engine.token.trace import Trace, trace_ids
from tests.reference import Reference, SeriesReference, reference

CELLS = ["rnn", "lstm", "gru"]
STATE_TOL = 1e-5
GRAD_RTOL = 1e-4


def make_model(cell: str, kind: str, layers: int, seed: int, hidden: int = 16) -> SeqModel:
    torch.manual_seed(seed)
    vocab = 11
    outputs = vocab if kind == "next_token" else 3
    model = SeqModel(ModelConfig(cell, kind, vocab, outputs, 8, hidden, layers))  # type: ignore[arg-type]
    # Larger weights than torch's default init, so gates saturate now and then as in a trained model.
    for p in model.parameters():
        p.data.mul_(1.5)
    return model.eval()


def assert_close_rel(actual: NDArray[np.float64], expected: torch.Tensor, rtol: float = GRAD_RTOL) -> None:
    """Each value against itself: |a − e| ≤ rtol·|e|, so 1e-25 must be reported as 1e-25, not 0."""
    exp = expected.numpy()
    assert actual.shape == exp.shape
    bad = np.abs(actual - exp) > rtol * np.abs(exp)
    assert not bad.any(), f"at steps {np.nonzero(bad)[0][:5]}: engine {actual[bad][:3]} vs autograd {exp[bad][:3]}"


def check(tr: Trace, model: SeqModel, ids: list[int], mode: str, label: int | None = None) -> None:
    ref = reference(model, ids, mode, label)
    assert tr.loss == pytest.approx(ref.loss, rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(tr.probs, ref.probs.numpy(), atol=STATE_TOL)
    np.testing.assert_allclose(tr.step_loss, ref.step_loss.numpy(), rtol=1e-5, atol=1e-5)  # NaN == NaN
    assert tr.label == ref.label
    assert_layers_match(tr.layers, ref, model.config.cell)
    assert_close_rel(tr.grad_input, ref.grad_input)


def assert_layers_match(layers: list[LayerTrace], ref: Reference | SeriesReference, cell: str) -> None:
    """Every layer's states, gates and gradient norms as autograd's reference has them (cell states: LSTM only)."""
    for k, layer in enumerate(layers):
        np.testing.assert_allclose(layer.hidden, ref.hidden[k].numpy(), atol=STATE_TOL)
        assert sorted(layer.gates) == sorted(GATES[cell])
        for name, values in layer.gates.items():
            np.testing.assert_allclose(values, ref.gates[k][name].numpy(), atol=STATE_TOL, err_msg=name)
        assert_close_rel(layer.grad_hidden, ref.grad_hidden[k])
        assert_close_rel(layer.grad_weight_hh, ref.grad_weight_hh[k])
        ref_c, ref_dc = ref.cell_state[k], ref.grad_cell_state[k]
        if cell == "lstm":
            assert layer.cell_state is not None and layer.grad_cell_state is not None
            assert ref_c is not None and ref_dc is not None
            np.testing.assert_allclose(layer.cell_state, ref_c.numpy(), atol=STATE_TOL)
            assert_close_rel(layer.grad_cell_state, ref_dc)
        else:
            assert layer.cell_state is None and layer.grad_cell_state is None


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("mode", ["sum", "last"])
def test_next_token_trace_matches_autograd(cell: str, layers: int, mode: str) -> None:
    model = make_model(cell, "next_token", layers, seed=layers * 7 + len(mode))
    ids = torch.randint(0, 11, (23,), generator=torch.Generator().manual_seed(3)).tolist()
    check(trace_ids(model, ids, loss=mode), model, ids, mode)  # type: ignore[arg-type]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize(("mode", "label"), [("last", None), ("last", 2), ("sum", 0)])
def test_classifier_trace_matches_autograd(cell: str, layers: int, mode: str, label: int | None) -> None:
    model = make_model(cell, "classify", layers, seed=11 + layers)
    ids = torch.randint(0, 11, (17,), generator=torch.Generator().manual_seed(5)).tolist()
    check(trace_ids(model, ids, loss=mode, label=label), model, ids, mode, label)  # type: ignore[arg-type]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2])
def test_states_equal_torch_nn_modules(cell: str, layers: int) -> None:
    """The top layer's h_t is what torch.nn.RNN/LSTM/GRU itself returns for the same input."""
    model = make_model(cell, "next_token", layers, seed=2, hidden=32)
    ids = torch.randint(0, 11, (200,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out, final = model.rnn(model.embedding(ids[None]))
    tr = trace_ids(model, ids.tolist())
    np.testing.assert_allclose(tr.layers[-1].hidden, out[0].numpy(), atol=STATE_TOL)
    if cell == "lstm":
        c_n = final[1]
        for k in range(layers):
            c = tr.layers[k].cell_state
            assert c is not None
            np.testing.assert_allclose(c[-1], c_n[k, 0].numpy(), atol=STATE_TOL)


def test_vanishing_gradient_is_reported_not_rounded_to_zero() -> None:
    """A plain RNN with small recurrent weights: ‖∂L/∂h_0‖ falls far below float32's range, and is still exact."""
    model = make_model("rnn", "next_token", 1, seed=4)
    with torch.no_grad():
        model.weights(0).weight_hh.mul_(0.08)
    ids = torch.randint(0, 11, (60,), generator=torch.Generator().manual_seed(9)).tolist()
    tr = trace_ids(model, ids, loss="last")
    ref = reference(model, ids, "last")
    first = float(ref.grad_hidden[0][0])
    assert 0 < first < 1e-40, "the test needs a gradient below float32's smallest normal number"
    assert_close_rel(tr.layers[0].grad_hidden, ref.grad_hidden[0])
    assert_close_rel(tr.grad_input, ref.grad_input)
    assert tr.layers[0].grad_hidden[0] > 0


def test_long_input_is_exact_at_the_ends() -> None:
    """2,000 steps of a 2-layer LSTM: the first and last steps still match the per-step oracle's values."""
    model = make_model("lstm", "next_token", 2, seed=8)
    ids = torch.randint(0, 11, (2000,), generator=torch.Generator().manual_seed(2)).tolist()
    tr = trace_ids(model, ids, loss="last")
    ref = reference(model, ids, "last")
    for k in range(2):
        assert_close_rel(tr.layers[k].grad_hidden[-50:], ref.grad_hidden[k][-50:])
        np.testing.assert_allclose(tr.layers[k].hidden, ref.hidden[k].numpy(), atol=STATE_TOL)


def test_empty_and_too_long_inputs_raise_errors_naming_the_limit() -> None:
    model = make_model("gru", "next_token", 1, seed=0)
    with pytest.raises(EmptyInput):
        trace_ids(model, [])
    with pytest.raises(InputTooLong, match="limit is 100 steps"):
        trace_ids(model, [1] * 101, max_steps=100)


def test_single_step_next_token_has_no_target_and_zero_gradient() -> None:
    model = make_model("lstm", "next_token", 1, seed=0)
    tr = trace_ids(model, [3])
    assert np.isnan(tr.step_loss[0])
    assert tr.loss == 0.0
    assert tr.layers[0].grad_hidden[0] == 0.0


def test_top_k_lists_the_most_likely_next_tokens_in_order() -> None:
    model = make_model("gru", "next_token", 1, seed=6)
    tr = trace_ids(model, [1, 2, 3, 4], top_k=3)
    assert tr.top_ids.shape == (4, 3)
    for t in range(4):
        order = np.argsort(-tr.probs[t])[:3]
        np.testing.assert_array_equal(tr.top_ids[t], order)
        np.testing.assert_allclose(tr.top_probs[t], tr.probs[t][order], rtol=1e-6)


# --- the target a classifier's trace is scored against ----------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_a_memory_input_is_scored_against_the_symbol_it_starts_with(cell: str) -> None:
    from app.engine.family import load_model
    from app.engine.token.trace import trace
    from app.web.config import ROOT

    loaded = load_model(ROOT / "models", f"memory-{cell}")
    labels = token_card(loaded.card).labels or []
    for symbol in ("D", "h"):  # read as upper case, as the vocabulary does
        own = trace(loaded, f"{symbol} 12345 67890 ?")
        assert (labels[own.label or 0], own.label_source) == (symbol.upper(), "input")
        named = trace(loaded, f"{symbol} 12345 67890 ?", label=symbol.upper())
        assert named.label_source == "given" and named.loss == own.loss
    # an input that names no symbol: the model's own answer at the last step, as for any classifier
    none = trace(loaded, "9 12345 ?")
    assert none.label_source == "predicted" and none.label == int(none.probs[-1].argmax())
