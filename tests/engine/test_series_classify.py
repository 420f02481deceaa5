"""Series classifiers (frames of numbers in, a label out; the card's `target: "classify"`, issue 25's spoken
digits) against torch.nn and a float64 autograd oracle: per-step label probabilities, the loss at the last step
(or every step), ‖∂L/∂h_t‖ and ∂L/∂value_t; and what a classifier refuses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.engine.card import LoadedModel, ModelCard
from app.engine.errors import ModelFileError, UnknownLabel, WrongModelKind
from app.engine.layers import GATES
from app.engine.series.card import SeriesCard
from app.engine.series.model import SeriesConfig, SeriesModel
from app.engine.series.trace import SeriesTrace, forecast, trace_series, trace_values
from app.engine.vocab import UNK, Vocab
from tests.engine.test_series import scaling, series_values
from tests.engine.test_trace import GRAD_RTOL, STATE_TOL, assert_close_rel
from tests.reference import reference_series_classify

CELLS = ["rnn", "lstm", "gru"]
LABELS = ("zero", "one", "two", "three")


def make_classifier(cell: str, features: int, layers: int, seed: int, hidden: int = 16) -> SeriesModel:
    torch.manual_seed(seed)
    model = SeriesModel(SeriesConfig(cell, features, hidden, layers, len(LABELS)))  # type: ignore[arg-type]
    for p in model.parameters():  # larger than torch's init, so gates saturate now and then
        p.data.mul_(1.5)
    return model.eval()


def loaded_classifier(model: SeriesModel, features: int) -> LoadedModel:
    cfg = model.config
    card = ModelCard(
        id="test-series-classify", task="test", cell=cfg.cell, kind="series", hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers, vocab=Vocab(tokens=(UNK,), level="value").to_json(),
        block=SeriesCard(scaling(features), LABELS),
    )  # fmt: skip
    return LoadedModel(card=card, vocab=card.make_vocab(), model=model)


def check(tr: SeriesTrace, model: SeriesModel, values: np.ndarray, mode: str, label: int) -> None:
    sc = scaling(model.config.features)
    x = torch.from_numpy(sc.scale(values))
    ref = reference_series_classify(model, x, mode, label)
    assert tr.probs is not None and tr.label == label
    np.testing.assert_allclose(tr.probs, ref.predicted.numpy(), atol=1e-6)
    np.testing.assert_allclose(tr.probs.sum(1), 1.0, atol=1e-6)
    assert tr.loss == pytest.approx(ref.loss, rel=1e-9)
    np.testing.assert_allclose(tr.step_loss, ref.step_loss.numpy(), rtol=1e-9)
    assert tr.predicted.shape == (len(values), 0) and tr.error.shape == (len(values), 0)
    for k, layer in enumerate(tr.layers):
        np.testing.assert_allclose(layer.hidden, ref.hidden[k].numpy(), atol=STATE_TOL)
        assert sorted(layer.gates) == sorted(GATES[model.config.cell])
        for name, gate in layer.gates.items():
            np.testing.assert_allclose(gate, ref.gates[k][name].numpy(), atol=STATE_TOL, err_msg=name)
        assert_close_rel(layer.grad_hidden, ref.grad_hidden[k])
        assert_close_rel(layer.grad_weight_hh, ref.grad_weight_hh[k])
        if model.config.cell == "lstm":
            assert layer.grad_cell_state is not None and ref.grad_cell_state[k] is not None
            assert_close_rel(layer.grad_cell_state, ref.grad_cell_state[k])  # type: ignore[arg-type]
    assert_close_rel(tr.grad_input, ref.grad_input)
    expected = ref.grad_x.numpy() / np.array(sc.std)
    bad = np.abs(tr.grad_values - expected) > GRAD_RTOL * np.abs(expected)
    assert not bad.any(), f"∂L/∂value at {np.argwhere(bad)[:3].tolist()}"


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("mode", ["last", "sum"])
def test_classify_trace_matches_float64_autograd(cell: str, layers: int, mode: str) -> None:
    model = make_classifier(cell, 3, layers, seed=layers * 7 + len(mode))
    values = series_values(23, 3, seed=layers)
    tr = trace_values(model, scaling(3), values, loss=mode, labels=LABELS, label=2)  # type: ignore[arg-type]
    assert tr.label_source == "given" and tr.labels == list(LABELS)
    check(tr, model, values, mode, label=2)


@pytest.mark.parametrize("cell", CELLS)
def test_classify_probabilities_equal_torch_nn_softmax_at_every_step(cell: str) -> None:
    model = make_classifier(cell, 13, 1, seed=5, hidden=32)
    sc = scaling(13)
    values = series_values(60, 13, seed=2)
    with torch.no_grad():
        logits = model(torch.from_numpy(sc.scale(values).astype(np.float32))[None])[0]
    tr = trace_values(model, sc, values, labels=LABELS)
    assert tr.probs is not None
    np.testing.assert_allclose(tr.probs, torch.softmax(logits, -1).numpy(), atol=1e-5)


def test_without_a_label_l_is_measured_against_the_models_own_answer_at_the_last_step() -> None:
    model = make_classifier("gru", 2, 1, seed=1)
    values = series_values(15, 2, seed=3)
    tr = trace_values(model, scaling(2), values, labels=LABELS)
    assert tr.probs is not None and tr.loss_mode == "last"  # a classifier's default
    answer = int(np.argmax(tr.probs[-1]))
    assert tr.prediction == tr.label == answer and tr.label_source == "predicted"
    check(tr, model, values, "last", label=answer)


def test_trace_series_names_a_label_by_its_name_and_refuses_one_it_does_not_have() -> None:
    model = make_classifier("lstm", 2, 1, seed=2)
    loaded = loaded_classifier(model, 2)
    values = series_values(9, 2, seed=4).tolist()
    tr = trace_series(loaded, values, label="three")
    assert tr.label == 3 and tr.label_source == "given"
    with pytest.raises(UnknownLabel, match="'four' is not one of"):
        trace_series(loaded, values, label="four")


def test_a_classifier_does_not_forecast_and_a_forecaster_takes_no_label() -> None:
    loaded = loaded_classifier(make_classifier("rnn", 1, 1, seed=0), 1)
    with pytest.raises(WrongModelKind, match="classifier"):
        forecast(loaded, [10.0, 11.0, 12.0], 5)
    forecaster = SeriesModel(SeriesConfig("rnn", 1, 8, 1))
    card = ModelCard(
        id="f", task="test", cell="rnn", kind="series", hidden_size=8, num_layers=1,
        vocab=Vocab(tokens=(UNK,), level="value").to_json(), block=SeriesCard(scaling(1)),
    )  # fmt: skip
    with pytest.raises(WrongModelKind, match="classifiers only"):
        trace_series(LoadedModel(card, card.make_vocab(), forecaster), [1.0, 2.0], label="one")


def test_the_classify_block_round_trips_and_a_forecasters_card_is_unchanged() -> None:
    block = SeriesCard(scaling(2), LABELS)
    data = block.to_json()
    assert data["target"] == "classify" and data["labels"] == list(LABELS)
    assert SeriesCard.from_json(data) == block
    assert "target" not in SeriesCard(scaling(2)).to_json() and "labels" not in SeriesCard(scaling(2)).to_json()
    with pytest.raises(ModelFileError, match="needs its labels"):
        SeriesCard.from_json({**scaling(2).to_json(), "target": "classify"})
    with pytest.raises(ModelFileError, match="target must be one of"):
        SeriesCard.from_json({**scaling(2).to_json(), "target": "guess", "labels": ["a", "b"]})
