"""trace_series(): the exact trace of a series model (app/engine/series/model.py) on numbers, and forecast(): a
free-running forecast that feeds each prediction back as the next input.

The method is the token models' (app/engine/layers.py), with the embedding replaced by the scaled values and the
softmax by the regression head:
1. x_t = (value_t − mean) / std; each layer runs torch.nn's kernel, then every step's gates at once. All in
   float64 (the model's float64 twin, SeriesModel.float64): the inputs are a few numbers a step, and ∂L/∂x_t,
   a sum over every gate row, keeps its digits where the terms cancel. States are reported as float32.
2. The head for all steps at once, in float64: x̂_{t+1} = W_o h_t + b_o, each step's squared error and
   ∂L/∂x̂ = 2 w_t (x̂_{t+1} − x_{t+1}), w_t how much step t's loss counts in L (`sum`: every step with a target;
   `last`: the last one, T − 2).
3. BPTT, top layer first (kernels.py, float64, never rounded to zero); ∂L/∂x_t = W_ihᵀ δ_t in float64.
∂L/∂x_t is the input's gradient through the network (the targets held fixed), as for an embedding: "which past
values mattered for these predictions". `grad_values` is the same in the data's units (÷ std), with its sign.

A classifier (config.classes > 0) replaces step 2 with a token classifier's head: p_t = softmax(W_o h_t + b_o)
at every step (float64), loss_t = −log p_t[label] against the given label or the model's own answer at the last
step, L the last step's (`last`, the default) or every step's (`sum`), ∂L/∂logits_t = w_t (p_t − onehot(label)).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from app.engine import kernels
from app.engine.card import LoadedModel
from app.engine.errors import OverLimit, UnknownLabel, WrongModelKind
from app.engine.layers import (
    F32,
    F64,
    MAX_STEPS,
    LayerForward,
    LayerTrace,
    LossMode,
    layer_backward,
    layer_forward,
)
from app.engine.series.card import series_card
from app.engine.series.model import Scaling, SeriesModel, read_values, scaled_tensor

MAX_FORECAST = 2000


@dataclass
class SeriesTrace:
    cell: str
    kind: str  # "series"
    features: list[str]
    values: F64  # (T, F) what each step read, in the data's units
    inputs: F32  # (T, F) x_t: the values in standard deviations, what W_ih reads
    layers: list[LayerTrace]  # as a token model's: hidden, cell_state, gates, grad_hidden, grad_cell_state, …
    predicted: F32  # (T, F) the prediction made at step t for step t + 1, in the data's units (the last: a forecast)
    error: F32  # (T, F) predicted_t − value_{t+1}, in the data's units; NaN at the last step
    step_loss: F64  # (T,) Σ_f (x̂_{t+1,f} − x_{t+1,f})², in standard deviations squared; NaN at the last step
    # (a classifier: predicted and error are (T, 0); step_loss is −log p_t[label] at every step)
    loss: float  # L, the loss BPTT differentiates
    loss_mode: LossMode
    grad_input: F64  # (T,) ‖∂L/∂x_t‖, x_t in standard deviations (as W_ih reads it)
    grad_values: F64  # (T, F) ∂L/∂value_t in the data's units, signed
    checkpoint: str | None = None
    labels: list[str] | None = None  # a classifier's labels; None: a forecaster
    probs: F32 | None = None  # (T, C) a classifier's label probabilities after each step
    label: int | None = None  # the label L is measured against
    label_source: str | None = None  # "given" or "predicted" (the model's own answer at the last step)

    @property
    def prediction(self) -> int | None:
        """A classifier's answer: the most likely label after the last step."""
        return None if self.probs is None else int(self.probs[-1].argmax())

    @property
    def steps(self) -> int:
        return len(self.values)


def series_model(loaded: LoadedModel, checkpoint: str | None = None) -> tuple[SeriesModel, Scaling]:
    """The series model of a zoo entry and its scaling, or WrongModelKind (a forecast needs a forecaster:
    forecast_model)."""
    block = series_card(loaded.card)
    model = loaded.at(checkpoint)
    if not isinstance(model, SeriesModel):
        raise WrongModelKind(f"{loaded.card.id} is a {loaded.card.kind} model: it reads text, not values")
    return model, block.scaling


def forecast_model(loaded: LoadedModel, checkpoint: str | None = None) -> tuple[SeriesModel, Scaling]:
    """series_model, for a forecast: a classifier's head writes no next value to feed back (WrongModelKind)."""
    block = series_card(loaded.card)
    if block.labels is not None:
        raise WrongModelKind(
            f"{loaded.card.id} is a classifier (its labels: {', '.join(block.labels)}): it says which label the "
            "numbers belong to and writes no next value to forecast with; trace it instead"
        )
    return series_model(loaded, checkpoint)


def label_index(labels: Sequence[str] | None, label: str | None) -> int | None:
    """A label's index in a classifier's labels; UnknownLabel if it is none of them, WrongModelKind if the model is
    a forecaster (it has no labels)."""
    if label is None:
        return None
    if labels is None:
        raise WrongModelKind("label applies to classifiers only; this model forecasts the next value")
    if label not in labels:
        raise UnknownLabel(f"label {label!r} is not one of {list(labels)}")
    return list(labels).index(label)


def trace_series(
    loaded: LoadedModel,
    values: object,
    *,
    loss: LossMode | None = None,
    label: str | None = None,
    checkpoint: str | None = None,
    max_steps: int = MAX_STEPS,
) -> SeriesTrace:
    """Trace a series model on numbers in the data's units: a list of steps of F numbers, or a flat list for one
    feature (read_values says what is wrong with anything else: BadValues, EmptyInput, InputTooLong). A
    classifier's L is measured against `label`, or its own answer when none is given."""
    block = series_card(loaded.card)
    label_id = label_index(block.labels, label)
    model, scaling = series_model(loaded, checkpoint)
    array = read_values(values, scaling.width, max_steps, scaling)
    result = trace_values(model, scaling, array, loss=loss, labels=block.labels, label=label_id)
    result.checkpoint = checkpoint
    return result


@torch.no_grad()
def trace_values(
    model: SeriesModel,
    scaling: Scaling,
    values: F64,
    *,
    loss: LossMode | None = None,
    labels: Sequence[str] | None = None,
    label: int | None = None,
) -> SeriesTrace:
    """The engine itself, on checked values (T, F) in the data's units. A classifier (config.classes > 0) is
    traced against label `label` (an index into `labels`), or its own answer at the last step if None."""
    cfg = model.config
    T = len(values)
    mode: LossMode = loss or ("last" if cfg.classes else "sum")
    m64 = model.float64()
    x = scaled_tensor(scaling, values, torch.float64)  # (T, F)

    # 1. Forward, layer by layer, and every step's gates at once.
    forwards = []
    inp = x
    for k in range(cfg.num_layers):
        fwd = layer_forward(m64, k, inp)
        forwards.append(fwd)
        inp = fwd.hidden

    # 2. Head, errors, per-step losses and ∂L/∂x̂ for all steps at once, in float64.
    W_o = m64.head.weight  # (F, H), a classifier's (C, H)
    pred = forwards[-1].hidden @ W_o.T + m64.head.bias  # (T, F) x̂_{t+1}, scaled; a classifier's logits (T, C)
    weight = torch.zeros(T, dtype=torch.float64)
    probs: Tensor | None = None
    if cfg.classes:
        if labels is not None and len(labels) != cfg.classes:
            raise ValueError(f"{len(labels)} labels for a head of {cfg.classes}")
        if label is not None and not 0 <= label < cfg.classes:
            raise UnknownLabel(f"label index {label} is out of range: the model has {cfg.classes} labels")
        logp = torch.log_softmax(pred, dim=-1)  # float64: a loss of 1e-9 stays visible
        probs = logp.exp()
        label_id = int(probs[-1].argmax()) if label is None else label
        step_loss = -logp[:, label_id].clone()
        weight[-1 if mode == "last" else 0 :] = 1.0
        total = float((step_loss * weight).sum())
        dlogits = probs * weight[:, None]  # ∂L/∂logits = w_t (p_t − onehot(label))
        dlogits[:, label_id] -= weight
        ext = (dlogits @ W_o).numpy()  # (T, H) ∂L/∂h_t from the head
        diff = torch.zeros((T, 0), dtype=torch.float64)
        pred = diff
    else:
        label_id = None
        if T > 1:
            if mode == "sum":
                weight[:-1] = 1.0
            else:
                weight[-2] = 1.0
        diff = torch.full_like(pred, float("nan"))
        diff[:-1] = pred[:-1] - x[1:]
        step_loss = (diff**2).sum(1)
        total = float((step_loss.nan_to_num() * weight).sum())
        dpred = 2.0 * diff.nan_to_num() * weight[:, None]  # (T, F)
        ext = (dpred @ W_o).numpy()  # (T, H) ∂L/∂h_t from the head

    # 3. BPTT, top layer first; each layer's ∂L/∂(its input) is the external gradient of the layer below.
    layers: list[LayerTrace] = [None] * cfg.num_layers  # type: ignore[list-item]
    for k in range(cfg.num_layers - 1, -1, -1):
        back = layer_backward(m64, k, forwards[k], ext, exact_input=k == 0)
        layers[k], ext = _layer_f32(back.trace), back.d_input
    grad_input = np.empty(T)
    kernels.row_norms(ext, grad_input)

    std = np.array(scaling.std)
    predicted = scaling.unscale(pred.numpy()) if not cfg.classes else pred.numpy()
    return SeriesTrace(
        cell=cfg.cell,
        kind="series",
        features=list(scaling.features),
        values=values,
        inputs=x.numpy().astype(np.float32),
        layers=layers,
        predicted=predicted.astype(np.float32),
        error=(diff.numpy() * (std if not cfg.classes else 1.0)).astype(np.float32),
        step_loss=step_loss.numpy(),
        loss=total,
        loss_mode=mode,
        grad_input=grad_input,
        grad_values=ext / std,
        labels=None if not cfg.classes else list(labels or (str(c) for c in range(cfg.classes))),
        probs=None if probs is None else probs.numpy().astype(np.float32),
        label=label_id,
        label_source=None if label_id is None else "given" if label is not None else "predicted",
    )


def _layer_f32(layer: LayerTrace) -> LayerTrace:
    """States and gates as every trace reports them: float32 (the gradients stay float64)."""
    layer.hidden = layer.hidden.astype(np.float32)
    layer.cell_state = None if layer.cell_state is None else layer.cell_state.astype(np.float32)
    layer.gates = {name: gate.astype(np.float32) for name, gate in layer.gates.items()}
    return layer


@dataclass
class SeriesStep:
    """One step of a forecast: the value read, each layer's state and gates, and the prediction of the next."""

    value: F64  # (F,) in the data's units
    layers: list[LayerForward]  # each over this step alone (T = 1)
    predicted: F64  # (F,) the next step's value, in the data's units
    forecast: bool  # False: a given value; True: the model's own prediction, fed back


@dataclass
class Forecast:
    values: F64  # (T, F) the given series
    forecast: F64  # (steps, F) the values the model wrote after it
    steps: list[SeriesStep]  # T + steps − 1 model steps: the given values, then each written one but the last


def forecast_steps(
    loaded: LoadedModel,
    values: object,
    steps: int,
    *,
    checkpoint: str | None = None,
    max_steps: int = MAX_STEPS,
    max_forecast: int = MAX_FORECAST,
) -> Iterator[SeriesStep]:
    """Read the given values, then feed each prediction back as the next input until `steps` values are
    written, yielding every step as soon as it is computed. The forecast's values are the predictions of the
    last given step and of every step after it. Errors (BadValues, EmptyInput, InputTooLong, OverLimit) are
    raised before the first step."""
    model, scaling = forecast_model(loaded, checkpoint)
    array = read_values(values, scaling.width, max_steps, scaling)
    if not 0 <= steps <= max_forecast:
        raise OverLimit("forecast", steps, max_forecast, "max_generate")
    return _forecast(model, scaling, array, steps)


@torch.no_grad()  # around each resumption only, not across the yields: see app/engine/token/generate.py's _steps
def _forecast(model: SeriesModel, scaling: Scaling, values: F64, steps: int) -> Iterator[SeriesStep]:
    L = model.config.num_layers
    W_o, b_o = model.head.weight, model.head.bias
    # The given values at once, layer by layer, then cut into steps.
    inp = scaled_tensor(scaling, values)
    given: list[LayerForward] = []
    for k in range(L):
        fwd = layer_forward(model, k, inp)
        given.append(fwd)
        inp = fwd.hidden
    pred = (inp @ W_o.T + b_o).double().numpy()  # (T, F) scaled
    for t in range(len(values)):
        yield SeriesStep(values[t], [_step_of(f, t) for f in given], scaling.unscale(pred[t]), forecast=False)
    states = [f.final_state() for f in given]
    x_next = torch.from_numpy(pred[-1].astype(np.float32))
    for _ in range(steps - 1):
        x = x_next[None]  # (1, F): the prediction, fed back as it is (scaled)
        layers = []
        for k in range(L):
            fwd = layer_forward(model, k, x, *states[k])
            states[k] = fwd.final_state()
            layers.append(fwd)
            x = fwd.hidden
        out = (x @ W_o.T + b_o)[0]
        value = scaling.unscale(x_next.double().numpy())
        yield SeriesStep(value, layers, scaling.unscale(out.double().numpy()), forecast=True)
        x_next = out


def _step_of(fwd: LayerForward, t: int) -> LayerForward:
    """Step t of a layer's forward, as a forward of one step."""

    def cut(a: Tensor | None) -> Tensor | None:
        return None if a is None else a[t : t + 1]

    return LayerForward(fwd.hidden[t : t + 1], fwd.act[t : t + 1], cut(fwd.cell_state), cut(fwd.gh_candidate))


def forecast(
    loaded: LoadedModel,
    values: object,
    steps: int,
    *,
    checkpoint: str | None = None,
    max_steps: int = MAX_STEPS,
    max_forecast: int = MAX_FORECAST,
) -> Forecast:
    """forecast_steps, collected: the given values, the `steps` values written after them, and every step."""
    model, scaling = forecast_model(loaded, checkpoint)
    array = read_values(values, scaling.width, max_steps, scaling)
    if not 0 <= steps <= max_forecast:
        raise OverLimit("forecast", steps, max_forecast, "max_generate")
    all_steps = list(_forecast(model, scaling, array, steps))
    written = [s.predicted for s in all_steps[len(array) - 1 :]][:steps]
    return Forecast(
        values=array,
        forecast=np.array(written).reshape(steps, scaling.width),
        steps=all_steps,
    )


__all__ = [
    "Forecast",
    "SeriesStep",
    "SeriesTrace",
    "forecast",
    "forecast_model",
    "forecast_steps",
    "trace_series",
    "trace_values",
]
