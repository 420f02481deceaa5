"""Series models (numbers in, numbers out) against torch.nn and a float64 autograd oracle; their numbers checked
before anything runs; the free-running forecast."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import torch

from app.engine.card import LoadedModel, ModelCard
from app.engine.errors import BadValues, EmptyInput, InputTooLong, OverLimit, WrongModelKind
from app.engine.series.card import SeriesCard, series_card
from app.engine.series.model import Scaling, SeriesConfig, SeriesModel, read_values
from app.engine.series.trace import SeriesTrace, forecast, forecast_steps, trace_series, trace_values
from app.engine.vocab import UNK, Vocab
from tests.engine.test_trace import GRAD_RTOL, STATE_TOL, assert_close_rel, assert_layers_match
from tests.reference import reference_series

CELLS = ["rnn", "lstm", "gru"]


def make_series(cell: str, features: int, layers: int, seed: int, hidden: int = 16) -> SeriesModel:
    torch.manual_seed(seed)
    model = SeriesModel(SeriesConfig(cell, features, hidden, layers))  # type: ignore[arg-type]
    for p in model.parameters():  # larger than torch's init, so gates saturate now and then
        p.data.mul_(1.5)
    return model.eval()


def scaling(features: int) -> Scaling:
    return Scaling(
        features=tuple(f"f{i}" for i in range(features)),
        mean=tuple(10.0 * (i + 1) for i in range(features)),
        std=tuple(2.0 + i for i in range(features)),
        units="widgets",
    )


def series_values(T: int, features: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sc = scaling(features)
    return np.array(sc.mean) + np.array(sc.std) * rng.standard_normal((T, features))


def loaded_series(model: SeriesModel, sc: Scaling) -> LoadedModel:
    cfg = model.config
    card = ModelCard(
        id="test-series", task="test", cell=cfg.cell, kind="series", hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers, vocab=Vocab(tokens=(UNK,), level="value").to_json(), block=SeriesCard(sc),
    )  # fmt: skip
    return LoadedModel(card=card, vocab=card.make_vocab(), model=model)


def check(tr: SeriesTrace, model: SeriesModel, sc: Scaling, values: np.ndarray, mode: str) -> None:
    x = torch.from_numpy(sc.scale(values))
    ref = reference_series(model, x, mode)
    np.testing.assert_allclose(tr.inputs, x.numpy(), rtol=1e-6)
    assert tr.loss == pytest.approx(ref.loss, rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(tr.step_loss, ref.step_loss.numpy(), rtol=1e-5, atol=1e-5)  # NaN == NaN
    np.testing.assert_allclose(tr.predicted, sc.unscale(ref.predicted.numpy()), rtol=1e-5, atol=1e-4)
    assert_layers_match(tr.layers, ref, model.config.cell)
    assert_close_rel(tr.grad_input, ref.grad_input)
    # ∂L/∂value_t = ∂L/∂x_t / std, each number against itself, sign included
    expected = ref.grad_x.numpy() / np.array(sc.std)
    bad = np.abs(tr.grad_values - expected) > GRAD_RTOL * np.abs(expected)
    assert not bad.any(), f"∂L/∂value at {np.argwhere(bad)[:3].tolist()}"


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize(("features", "mode"), [(1, "sum"), (1, "last"), (3, "sum")])
def test_series_trace_matches_autograd(cell: str, layers: int, features: int, mode: str) -> None:
    model = make_series(cell, features, layers, seed=layers * 5 + features)
    sc = scaling(features)
    values = series_values(29, features, seed=features + layers)
    check(trace_values(model, sc, values, loss=mode), model, sc, values, mode)  # type: ignore[arg-type]


@pytest.mark.parametrize("cell", CELLS)
def test_series_states_equal_torch_nn_modules(cell: str) -> None:
    model = make_series(cell, 2, 2, seed=3, hidden=32)
    sc = scaling(2)
    values = series_values(300, 2, seed=1)
    with torch.no_grad():
        out, _ = model.rnn(torch.from_numpy(sc.scale(values).astype(np.float32))[None])
        pred = model.head(out)[0].double().numpy()
    tr = trace_values(model, sc, values)
    np.testing.assert_allclose(tr.layers[-1].hidden, out[0].numpy(), atol=STATE_TOL)
    np.testing.assert_allclose(tr.predicted, sc.unscale(pred), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("cell", CELLS)
def test_tiny_early_input_gradients_are_reported_not_rounded_to_zero(cell: str) -> None:
    """Small recurrent weights and the last step's loss: ‖∂L/∂x_0‖ falls far below float32's range, and is
    still exact, as is every signed ∂L/∂value_t."""
    model = make_series(cell, 1, 1, seed=4)
    with torch.no_grad():
        model.weights(0).weight_hh.mul_(0.05)
        if cell == "gru":  # the update gate's carry (z h_{t−1}) must shrink too: bias it towards n
            model.weights(0).bias_ih[16:32].fill_(-6.0)
        if cell == "lstm":  # and the cell state's (f c_{t−1}): a forget gate near 0
            model.weights(0).bias_ih[16:32].fill_(-6.0)
    sc = scaling(1)
    values = series_values(80, 1, seed=9)
    tr = trace_values(model, sc, values, loss="last")
    first = float(tr.grad_input[0])
    assert 0 < first < 1e-40, f"the test needs an input gradient below float32's smallest normal, not {first}"
    check(tr, model, sc, values, "last")


def test_single_step_has_no_target_and_zero_gradient() -> None:
    model = make_series("lstm", 1, 1, seed=0)
    tr = trace_values(model, scaling(1), series_values(1, 1, seed=0))
    assert np.isnan(tr.step_loss[0]) and np.isnan(tr.error[0, 0]) and tr.loss == 0.0
    assert tr.layers[0].grad_hidden[0] == 0.0 and tr.grad_values[0, 0] == 0.0


def test_trace_series_reads_flat_lists_and_lists_of_steps_alike() -> None:
    model = make_series("gru", 1, 1, seed=2)
    loaded = loaded_series(model, scaling(1))
    flat = [12.0, 9.5, 11, 14.25, 8]
    a = trace_series(loaded, flat)
    b = trace_series(loaded, [[v] for v in flat])
    np.testing.assert_array_equal(a.predicted, b.predicted)
    assert a.values.shape == (5, 1) and a.predicted.shape == (5, 1) and a.features == ["f0"]
    np.testing.assert_allclose(a.error[:-1, 0], a.predicted[:-1, 0] - np.array(flat[1:]), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    ("values", "width", "message"),
    [
        ([1.0, float("nan"), 2.0], 1, "step 1: NaN"),
        ([1.0, 2.0, float("inf")], 1, "step 2: inf is not a finite number"),
        ([1.0, -math.inf], 1, "step 1: -inf"),
        ([1.0, "two", 3.0], 1, "step 1: 'two' is not a number"),
        ([1.0, True], 1, "step 1: True is not a number"),
        ([None], 1, "step 0: None is not a number"),
        ([[1.0, 2.0], [3.0]], 2, "step 1: 1 numbers; this model reads 2 per step"),
        ([1.0, 2.0], 2, "step 0: 1.0 is one number; this model reads 2 per step"),
        ([[1.0, 2.0]], 1, "step 0: 2 numbers; this model reads 1 per step"),
        ("1, 2, 3", 1, "not str"),
        ({"a": 1}, 1, "not dict"),
        ([1.0, 1e300], 1, "step 1: 1e+300 is more than 1e+06 standard deviations"),
    ],
)
def test_bad_numbers_are_named_with_their_step(values: Any, width: int, message: str) -> None:
    with pytest.raises(BadValues) as e:
        read_values(values, width, 100, scaling(width))
    assert message in str(e.value)


def test_empty_and_too_many_values_raise_the_engines_errors() -> None:
    with pytest.raises(EmptyInput):
        read_values([], 1, 10)
    with pytest.raises(InputTooLong, match="limit is 10 steps"):
        read_values([1.0] * 11, 1, 10)
    loaded = loaded_series(make_series("rnn", 1, 1, seed=0), scaling(1))
    with pytest.raises(InputTooLong):
        trace_series(loaded, [1.0] * 11, max_steps=10)
    with pytest.raises(OverLimit, match="forecast has 11 steps; the limit is 10"):
        forecast(loaded, [1.0, 2.0], 11, max_forecast=10)


def test_a_series_model_is_not_traced_as_text_nor_a_text_model_as_values() -> None:
    from app.engine.token.model import ModelConfig, SeqModel
    from app.engine.token.trace import trace

    loaded = loaded_series(make_series("rnn", 1, 1, seed=0), scaling(1))
    with pytest.raises(WrongModelKind, match="reads numbers"):
        trace(loaded, "12 13 14")
    with pytest.raises(WrongModelKind, match="reads numbers"):
        loaded.vocab.encode("12 13")
    text = SeqModel(ModelConfig("rnn", "next_token", 4, 4, 2, 4))
    loaded.model = text
    with pytest.raises(WrongModelKind, match="reads text"):
        trace_series(loaded, [1.0])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [1, 2])
def test_forecast_feeds_each_prediction_back_and_matches_a_plain_loop(cell: str, layers: int) -> None:
    model = make_series(cell, 2, layers, seed=7)
    sc = scaling(2)
    values = series_values(12, 2, seed=4)
    fc = forecast(loaded_series(model, sc), values.tolist(), 6)
    assert fc.forecast.shape == (6, 2) and len(fc.steps) == 12 + 6 - 1
    assert [s.forecast for s in fc.steps] == [False] * 12 + [True] * 5
    # the given part's predictions are the trace's own
    tr = trace_values(model, sc, values)
    np.testing.assert_allclose(np.array([s.predicted for s in fc.steps[:12]]), tr.predicted, rtol=1e-5, atol=1e-4)
    for s, h in zip(fc.steps[:12], tr.layers[-1].hidden, strict=True):
        np.testing.assert_allclose(s.layers[-1].hidden[0].numpy(), h, atol=STATE_TOL)
    # torch.nn itself, one step at a time, each prediction fed back
    with torch.no_grad():
        x = torch.from_numpy(sc.scale(values).astype(np.float32))[None]
        out, state = model.rnn(x)
        nxt = model.head(out[:, -1:])
        written = [nxt]
        for _ in range(5):
            out, state = model.rnn(nxt, state)
            nxt = model.head(out)
            written.append(nxt)
        plain = sc.unscale(torch.cat(written, 1)[0].double().numpy())
    np.testing.assert_allclose(fc.forecast, plain, rtol=1e-5, atol=1e-4)
    for s, v in zip(fc.steps[12:], fc.forecast[:-1], strict=True):
        np.testing.assert_allclose(s.value, v, rtol=1e-6)  # each forecast step read the value written before it
    first = next(forecast_steps(loaded_series(model, sc), values.tolist(), 6))
    np.testing.assert_array_equal(first.value, values[0])


def test_scaling_round_trips_and_rejects_a_zero_std() -> None:
    sc = scaling(2)
    v = series_values(5, 2, seed=0)
    np.testing.assert_allclose(sc.unscale(sc.scale(v)), v)
    assert Scaling.from_json(sc.to_json()) == sc
    from app.engine.errors import ModelFileError

    with pytest.raises(ModelFileError):
        Scaling(features=("a",), mean=(0.0,), std=(0.0,))
    ranged = Scaling(("a", "b"), (0.0, 1.0), (1.0, 2.0), seen=((0.0, 10.0), (-5.0, 5.0)), least=(0.0, None))
    assert Scaling.from_json(ranged.to_json()) == ranged
    assert ranged.plausible() == [(0.0, 15.0), (-10.0, 10.0)]  # widened by half the range, never below the least
    for bad in ({"seen": ((3.0, 1.0), (0.0, 1.0))}, {"least": (0.0,)}):
        with pytest.raises(ModelFileError):
            Scaling(("a", "b"), (0.0, 1.0), (1.0, 2.0), **bad)


# --- the zoo's sunspots models ------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_sunspots_card_and_held_out_rmse_recomputed_with_plain_torch_nn(cell: str) -> None:
    """The card's one-step RMSE on 1969-2008, from the weights with a plain torch.nn module over the card's own
    whole-series example; LSTM and GRU beat persistence, every cell its own card's figures."""
    from pathlib import Path

    from safetensors.torch import load_file

    from app.engine.family import load_model

    models = Path(__file__).resolve().parents[2] / "models"
    m = load_model(models, f"sunspots-{cell}")
    c, metrics = m.card, m.card.metrics
    assert (c.kind, m.vocab.level) == ("series", "value")
    assert 0 < c.train_seconds <= 180 and metrics["training"]["dry_run"] is False
    assert [k.name for k in c.checkpoints] == ["0", "5", "20", "100"] and set(m.checkpoints) == {"0", "5", "20", "100"}
    assert "statsmodels" in c.data_source and metrics["heldout_years"] == [1969, 2008] and metrics["ar_p"] >= 1
    whole = next(ex for ex in c.examples if ex["first"] == 1700)["values"]
    assert len(whole) == 309
    sc = series_card(c).scaling
    state = load_file(str(models / f"sunspots-{cell}.safetensors"))
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    rnn = cls(1, c.hidden_size, num_layers=c.num_layers, batch_first=True)
    rnn.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("rnn.")})
    values = np.array(whole)
    with torch.no_grad():
        out, _ = rnn(torch.from_numpy(sc.scale(values[:, None]).astype(np.float32))[None])
        pred = sc.unscale((out[0] @ state["head.weight"].T + state["head.bias"]).double().numpy())[:, 0]
    held = slice(len(values) - 40, len(values))
    made = slice(len(values) - 41, len(values) - 1)
    rmse = float(np.sqrt(np.mean((pred[made] - values[held]) ** 2)))
    persistence = float(np.sqrt(np.mean((values[made] - values[held]) ** 2)))
    assert abs(rmse - metrics["heldout_rmse"]) < 1e-2 and abs(persistence - metrics["heldout_persistence_rmse"]) < 1e-3
    assert [p["actual"] for p in metrics["heldout_predictions"]] == values[held].tolist()
    if cell in ("lstm", "gru"):
        assert metrics["heldout_rmse"] < metrics["heldout_persistence_rmse"], "beats persistence"
    # the engine's trace predicts the same numbers, in the data's units
    tr = trace_series(m, whole)
    np.testing.assert_allclose(tr.predicted[:, 0], pred, rtol=1e-4, atol=1e-3)
    assert tr.grad_values.shape == (309, 1) and (tr.grad_input[:-1] > 0).all()
    assert tr.grad_input[-1] == 0, "the last value reaches only the last prediction, which has no target"
    fc = forecast(m, whole[:-40], 40)
    assert fc.forecast.shape == (40, 1) and np.isfinite(fc.forecast).all()


def test_a_forecast_stepped_from_several_threads_leaves_each_ones_grad_mode_alone() -> None:
    """A stream's forecast steps in whichever pool thread is free: no step may leave no_grad on behind it (a live
    training run in that thread then failed)."""
    sc = scaling(1)
    steps = forecast_steps(loaded_series(make_series("gru", 1, 1, seed=0), sc), series_values(4, 1, 0).tolist(), 3)
    with ThreadPoolExecutor(1) as first, ThreadPoolExecutor(1) as second:
        first.submit(next, steps).result()
        second.submit(next, steps).result()
        assert first.submit(torch.is_grad_enabled).result() and second.submit(torch.is_grad_enabled).result()
    assert len(list(steps)) == 4
