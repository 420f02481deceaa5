"""A series model's trace on the wire (numbers in, numbers out): a SeriesTrace as a REST body or stream frames.

The body is a token model's with values in place of tokens: {"features", "values": [T][F], "predicted": [T][F]
(made at step t for step t + 1, in the data's units), "error", "layers", "loss", "grad_norms": {"hidden",
"cell_state", "input", "weight_hh", "values": [T][F] ∂L/∂value_t, signed}, "outliers": given values far outside
what the model was trained on, {"message", "values": [{"t", "feature", "value"}], "trained", "plausible"}, or
null (app.engine.series.model.far_values)}. The stream sends meta (with "outliers"), one step frame
per value ({"t", "value", "predicted", "layers", "loss"}), one grad frame per value from the last back, then done.
A forecast's step frames (forecast_step_frame) leave one by one as the model writes them.

Every header says the model's "target": "forecast" or "classify". A classifier's (issue 25's spoken digits) adds,
as a token classifier's does, "labels", "label" (what L is measured against), "label_source" ("given" or
"predicted") and "prediction" (its answer: the most likely label after the last step); its body has "probs" (the
last step's) and "step_probs" [T][C] in place of "predicted" and "error" (null); its step frames carry "probs"
(the label probabilities after that step) in place of "predicted", in JSON and in the binary layout.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.engine.card import LoadedModel
from app.engine.series.card import series_card
from app.engine.series.model import FarValues, Scaling, far_values
from app.engine.series.trace import SeriesStep, SeriesTrace
from app.wire.frames import (
    Array,
    encoding_meta,
    frame_messages,
    grad_records,
    layer_arrays,
    layers_at,
    record_messages,
    round_significant,
    state_key,
    step_records,
    step_values,
)


def estimate_bytes(loaded: LoadedModel, steps: int) -> int:
    """About what computing and holding a series trace takes (small: a few numbers a step beside the states)."""
    return steps * (40 * step_values(loaded.card) + 256) + 4096


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
    probs: Array | None = None  # a classifier's (T, C) label probabilities after each step

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
            probs=None if tr.probs is None else r(tr.probs),
        )

    def _name(self, label: int | None) -> str | None:
        labels = self.trace.labels
        return None if label is None or labels is None else labels[label]

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
            "target": "forecast" if tr.labels is None else "classify",
            **({} if tr.labels is None else {
                "labels": tr.labels,
                "label": self._name(tr.label),
                "label_source": tr.label_source,
                "prediction": self._name(tr.prediction),
            }),
        }  # fmt: skip

    def body(self) -> dict[str, Any]:
        classify = self.probs is not None
        return {
            **self.header(),
            "values": self.values,
            "predicted": None if classify else self.predicted,
            "error": None if classify else self.error,
            **({"probs": self.probs[-1], "step_probs": self.probs} if self.probs is not None else {}),
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
        arrays = [a for layer in self.layers for a in layer_arrays(layer)]
        return sum(a.nbytes for a in arrays) + 64 * self.trace.steps + 4096

    def meta_frame(self, binary: bool = False, batch: int = 1) -> dict[str, Any]:
        extra = encoding_meta(batch, (self.binary_layout(), self.grad_layout()) if binary else None)
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
            probs = self.probs
            for t in range(self.trace.steps):
                head = {"predicted": self.predicted[t]} if probs is None else {"probs": probs[t]}
                yield {"type": "step", "t": t, "value": self.values[t], **head,
                       "layers": layers_at(self.layers, t), "loss": self.step_loss[t]}  # fmt: skip

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
            out.append((state_key(k, "hidden"), layer["hidden"]))
            if layer["cell_state"] is not None:
                out.append((state_key(k, "cell_state"), layer["cell_state"]))
            out += [(state_key(k, n), g) for n, g in layer["gates"].items()]
        return out

    def binary_layout(self) -> list[dict[str, Any]]:
        """A step record after its uint32 t: these float32 fields (value and predicted in the data's units; a
        classifier's probs in place of predicted)."""
        F = self.values.shape[1]
        head = self._head()
        fields = [
            {"name": "value", "dtype": "float32", "size": F},
            {"name": "probs" if self.probs is not None else "predicted", "dtype": "float32", "size": head.shape[1]},
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
        parts = [self.values, self._head(), *(a for _, a in self._state_arrays()), self.step_loss[:, None]]
        return record_messages(step_records(parts), batch)

    def _head(self) -> Array:
        """What the head says at each step: the prediction of the next value, or a classifier's probabilities."""
        return self.predicted if self.probs is None else self.probs

    def binary_grads(self, batch: int = 1) -> Iterator[bytes]:
        columns = [*self.grad_hidden, *(self.grad_cell_state or []), self.grad_input, *self.grad_weight_hh]
        return record_messages(grad_records([*columns, self.grad_values]), batch)


def forecast_step_frame(loaded: LoadedModel, step: SeriesStep, t: int, precision: int | None) -> dict[str, Any]:
    """A step frame of a forecast as it is computed: the value read, the prediction, whether the value is the
    model's own (fed back), and each layer's states and gates at the step."""
    cell = loaded.card.cell
    r = precision
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
                "gates": {n: round_significant(np.ascontiguousarray(g[0]), r) for n, g in f.gates(cell).items()},
            }
            for f in step.layers
        ],
    }
