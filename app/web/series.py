"""A series model (numbers in, numbers out) on the wire: requests to engine calls, and a SeriesTrace as a REST
body or stream frames.

The body is a token model's with values in place of tokens: {"features", "values": [T][F], "predicted": [T][F]
(made at step t for step t + 1, in the data's units), "error", "layers", "loss", "grad_norms": {"hidden",
"cell_state", "input", "weight_hh", "values": [T][F] ∂L/∂value_t, signed}, "outliers": given values far outside
what the model was trained on, {"message", "values": [{"t", "feature", "value"}], "trained", "plausible"}, or
null (app.engine.series.model.far_values)}. The stream sends meta (with "outliers"), one step frame
per value ({"t", "value", "predicted", "layers", "loss"}), one grad frame per value from the last back, then done.
A generate request is a free-running forecast: each prediction fed back as the next input.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.engine.card import LoadedModel
from app.engine.errors import WrongModelKind
from app.engine.series.card import series_card
from app.engine.series.model import FarValues, Scaling, far_values, read_values
from app.engine.series.trace import SeriesStep, SeriesTrace, forecast_steps, series_model, trace_series
from app.web.config import Settings
from app.web.errors import LimitExceeded
from app.web.schemas.models import GenerateRequest, TraceRequest
from app.wire.frames import frame_messages, grad_records, record_messages, round_significant, step_records

Array = NDArray[Any]


def values_of(loaded: LoadedModel, values: list[Any] | None) -> list[Any]:
    """The numbers a series model is given; text sent to it is a 409 that says what it reads."""
    if values is None:
        raise WrongModelKind(f"{loaded.card.id} reads numbers: send `values` (a list of numbers), not text")
    return values


def value_steps(values: list[Any], settings: Settings) -> int:
    if len(values) > settings.max_steps:
        raise LimitExceeded(f"values has {len(values)} steps; the limit is {settings.max_steps} (max_steps)")
    return len(values)


def estimate_bytes(loaded: LoadedModel, steps: int) -> int:
    """About what computing and holding a series trace takes (small: a few numbers a step beside the states)."""
    card = loaded.card
    values = card.num_layers * card.hidden_size * (1 + (card.cell == "lstm") + len(card.gate_names))
    return steps * (40 * values + 256) + 4096


def trace_request(loaded: LoadedModel, req: TraceRequest, settings: Settings) -> SeriesWire:
    tr = trace_series(loaded, req.values, loss=req.loss, checkpoint=req.checkpoint, max_steps=settings.max_steps)
    return SeriesWire.build(loaded, tr, req.precision)


@dataclass
class SeriesWire:
    """The trace of one series request, ready to send: whole (body) or step by step (frames)."""

    model_id: str
    trace: SeriesTrace
    scaling: Scaling
    precision: int | None
    layers: list[dict[str, Any]]  # per layer: hidden, cell_state, gates (rounded, contiguous)
    values: Array
    predicted: Array
    error: Array
    step_loss: Array
    grad_hidden: list[Array]
    grad_cell_state: list[Array] | None
    grad_weight_hh: list[Array]
    grad_input: Array
    grad_values: Array
    far: FarValues | None  # given values far outside what the model was trained on

    @classmethod
    def build(
        cls, loaded: LoadedModel, tr: SeriesTrace, precision: int | None = None, given: int | None = None
    ) -> SeriesWire:
        """`given`: how many of the values came from outside (a forecast's are the model's own, fed back)."""

        def r(a: Array) -> Array:
            return np.ascontiguousarray(round_significant(a, precision))

        lstm = tr.cell == "lstm"
        scaling = series_card(loaded.card).scaling
        return cls(
            model_id=loaded.card.id,
            trace=tr,
            scaling=scaling,
            precision=precision,
            layers=[
                {
                    "hidden": r(layer.hidden),
                    "cell_state": None if layer.cell_state is None else r(layer.cell_state),
                    "gates": {n: r(g) for n, g in layer.gates.items()},
                }
                for layer in tr.layers
            ],
            values=tr.values,  # as given: never rounded
            predicted=r(tr.predicted),
            error=r(tr.error),
            step_loss=r(tr.step_loss),
            grad_hidden=[r(layer.grad_hidden) for layer in tr.layers],
            grad_cell_state=[r(layer.grad_cell_state) for layer in tr.layers if layer.grad_cell_state is not None]
            if lstm
            else None,
            grad_weight_hh=[r(layer.grad_weight_hh) for layer in tr.layers],
            grad_input=r(tr.grad_input),
            grad_values=r(tr.grad_values),
            far=far_values(tr.values[:given], scaling),
        )

    def header(self) -> dict[str, Any]:
        tr = self.trace
        return {
            "model": self.model_id,
            "cell": tr.cell,
            "kind": "series",
            "checkpoint": tr.checkpoint,
            "features": tr.features,
            "units": self.scaling.units,
            "step": self.scaling.step,
            "steps": tr.steps,
            "loss_mode": tr.loss_mode,
            "total_loss": tr.loss,
            "outliers": None if self.far is None else self.far.to_json(),
        }

    def body(self) -> dict[str, Any]:
        return {
            **self.header(),
            "values": self.values,
            "predicted": self.predicted,
            "error": self.error,
            "layers": self.layers,
            "loss": self.step_loss,
            "grad_norms": {
                "hidden": self.grad_hidden,
                "cell_state": self.grad_cell_state,
                "input": self.grad_input,
                "weight_hh": self.grad_weight_hh,
                "values": self.grad_values,
            },
        }

    def held_bytes(self) -> int:
        arrays = [a for layer in self.layers for a in _layer_arrays(layer)]
        return sum(a.nbytes for a in arrays) + 64 * self.trace.steps + 4096

    def meta_frame(self, binary: bool = False, batch: int = 1) -> dict[str, Any]:
        extra: dict[str, Any] = {"encoding": "json", "batch": batch}
        if binary:
            layout, grad_layout = self.binary_layout(), self.grad_layout()
            extra = {"encoding": "binary", "layout": layout, "grad_layout": grad_layout, "batch": batch,
                     "step_record_bytes": 4 * (1 + sum(f["size"] for f in layout)),
                     "grad_record_bytes": 8 * (1 + sum(f["size"] for f in grad_layout))}  # fmt: skip
        first = self.layers[0]
        return {
            "type": "meta",
            **extra,
            **self.header(),
            "num_layers": len(self.layers),
            "hidden_size": int(first["hidden"].shape[1]),
            "gates": list(first["gates"]),
        }

    def step_frames(self, batch: int = 1) -> Iterator[bytes]:
        def frames() -> Iterator[dict[str, Any]]:
            for t in range(self.trace.steps):
                yield {"type": "step", "t": t, "value": self.values[t], "predicted": self.predicted[t],
                       "layers": _layers_at(self.layers, t), "loss": self.step_loss[t]}  # fmt: skip

        return frame_messages(frames(), batch)

    def grad_frames(self, batch: int = 1) -> Iterator[bytes]:
        def frames() -> Iterator[dict[str, Any]]:
            for t in range(self.trace.steps - 1, -1, -1):
                yield {
                    "type": "grad",
                    "t": t,
                    "hidden": [g[t] for g in self.grad_hidden],
                    "cell_state": None if self.grad_cell_state is None else [g[t] for g in self.grad_cell_state],
                    "input": self.grad_input[t],
                    "weight_hh": [g[t] for g in self.grad_weight_hh],
                    "values": self.grad_values[t],
                }

        return frame_messages(frames(), batch)

    def _state_arrays(self) -> list[tuple[str, Array]]:
        out: list[tuple[str, Array]] = []
        for k, layer in enumerate(self.layers):
            out.append((f"layers.{k}.hidden", layer["hidden"]))
            if layer["cell_state"] is not None:
                out.append((f"layers.{k}.cell_state", layer["cell_state"]))
            out += [(f"layers.{k}.gates.{n}", g) for n, g in layer["gates"].items()]
        return out

    def binary_layout(self) -> list[dict[str, Any]]:
        """A step record after its uint32 t: these float32 fields (value and predicted in the data's units)."""
        F = self.values.shape[1]
        fields = [
            {"name": "value", "dtype": "float32", "size": F},
            {"name": "predicted", "dtype": "float32", "size": F},
        ]
        fields += [{"name": n, "dtype": "float32", "size": a.shape[1]} for n, a in self._state_arrays()]
        fields.append({"name": "loss", "dtype": "float32", "size": 1})
        return fields

    def grad_layout(self) -> list[dict[str, Any]]:
        """A grad record after its float64 t: these float64 fields."""
        L = len(self.layers)
        names = [f"hidden.{k}" for k in range(L)] + [f"cell_state.{k}" for k in range(len(self.grad_cell_state or []))]
        names += ["input"] + [f"weight_hh.{k}" for k in range(L)]
        fields = [{"name": n, "dtype": "float64", "size": 1} for n in names]
        fields.append({"name": "values", "dtype": "float64", "size": self.values.shape[1]})
        return fields

    def frames(self, batch: int = 1) -> Iterator[bytes]:
        """Every JSON frame between meta and done: the step frames, then the grad frames (last step first)."""
        return itertools.chain(self.step_frames(batch), self.grad_frames(batch))

    def binary_frames(self, batch: int = 1) -> Iterator[bytes]:
        return itertools.chain(self.binary_steps(batch), self.binary_grads(batch))

    def binary_steps(self, batch: int = 1) -> Iterator[bytes]:
        parts = [self.values, self.predicted, *(a for _, a in self._state_arrays()), self.step_loss[:, None]]
        return record_messages(step_records(parts), batch)

    def binary_grads(self, batch: int = 1) -> Iterator[bytes]:
        columns = [*self.grad_hidden, *(self.grad_cell_state or []), self.grad_input, *self.grad_weight_hh]
        return record_messages(grad_records([*columns, self.grad_values]), batch)


@dataclass
class SeriesGeneration:
    """A forecast under way: the given values, then each prediction fed back, step by step."""

    loaded: LoadedModel
    req: GenerateRequest
    given: int
    pending: Iterator[SeriesStep]
    steps: list[SeriesStep]
    far: FarValues | None  # the given values far outside what the model was trained on (the forecast's are its own)

    @classmethod
    def start(cls, loaded: LoadedModel, req: GenerateRequest, settings: Settings) -> SeriesGeneration:
        values = values_of(loaded, req.values)
        given = value_steps(values, settings)
        if req.length > settings.max_generate:
            raise LimitExceeded(f"length is {req.length}; the limit is {settings.max_generate} (max_generate)")
        if given + req.length > settings.max_steps:
            raise LimitExceeded(
                f"{given} values and a forecast of {req.length}: together over the limit of {settings.max_steps} "
                "steps (max_steps)"
            )
        pending = forecast_steps(loaded, values, req.length, max_steps=settings.max_steps)  # checks the numbers
        _, scaling = series_model(loaded)
        far = far_values(read_values(values, scaling.width, settings.max_steps, scaling), scaling)
        return cls(loaded, req, given, pending, [], far)

    def outliers(self) -> dict[str, Any] | None:
        return None if self.far is None else self.far.to_json()

    def run(self) -> Iterator[SeriesStep]:
        for step in self.pending:
            self.steps.append(step)
            yield step

    def step_frame(self, step: SeriesStep, t: int) -> dict[str, Any]:
        card = self.loaded.card
        r = self.req.precision
        return {
            "type": "step",
            "t": t,
            "value": step.value,
            "predicted": round_significant(step.predicted, r),
            "forecast": step.forecast,
            "layers": [
                {
                    "hidden": round_significant(f.hidden[0].numpy(), r),
                    "cell_state": None if f.cell_state is None else round_significant(f.cell_state[0].numpy(), r),
                    "gates": {
                        n: round_significant(np.ascontiguousarray(g[0]), r) for n, g in f.gates(card.cell).items()
                    },
                }
                for f in step.layers
                for gates in [f.gates(card.cell)]
            ],
        }

    def finish(self) -> tuple[Array, SeriesWire]:
        """The forecast, and the trace of the given values followed by it (with its BPTT sweep)."""
        for _ in self.run():
            pass
        written = [s.predicted for s in self.steps[self.given - 1 :]][: self.req.length]
        forecast = np.array(written, dtype=np.float64).reshape(len(written), -1)
        given = np.array([s.value for s in self.steps[: self.given]], dtype=np.float64)
        whole = np.concatenate([given, forecast[:-1]]) if len(forecast) else given
        tr = trace_series(self.loaded, whole.tolist(), max_steps=len(whole))
        return forecast, SeriesWire.build(self.loaded, tr, self.req.precision, given=self.given)


def _layer_arrays(layer: dict[str, Any]) -> list[Array]:
    return [layer["hidden"], *([] if layer["cell_state"] is None else [layer["cell_state"]]), *layer["gates"].values()]


def _layers_at(layers: list[dict[str, Any]], t: int) -> list[dict[str, Any]]:
    return [
        {
            "hidden": layer["hidden"][t],
            "cell_state": None if layer["cell_state"] is None else layer["cell_state"][t],
            "gates": {n: g[t] for n, g in layer["gates"].items()},
        }
        for layer in layers
    ]
