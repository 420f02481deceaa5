"""The series family on the web: models that read numbers; their trace and free-running forecast (the request
read, limited and handed to the engine). Their wire layout is app/wire/series.py's."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from app.engine.card import LoadedModel
from app.engine.errors import WrongModelKind
from app.engine.lab.jacobian import JacobianNorms, series_jacobian_norms
from app.engine.series.card import series_card
from app.engine.series.model import FarValues, far_values, read_values, scaled_tensor
from app.engine.series.trace import SeriesStep, forecast_steps, series_model, trace_series
from app.web.capacity import cost
from app.web.config import Settings
from app.web.errors import LimitExceeded
from app.web.families.base import (
    JacobianInput,
    Job,
    PageChoice,
    StepStream,
    StreamRequest,
    TraceStream,
    WebFamily,
)
from app.web.schemas.jacobian import JacobianRequest
from app.web.schemas.models import (
    GenerateRequest,
    StreamGenerateRequest,
    StreamTranslateRequest,
    TraceRequest,
    TranslateRequest,
)
from app.wire.frames import Array, dumps
from app.wire.series import SeriesWire, estimate_bytes, forecast_step_frame
from app.zoo.zoo import Zoo

DONE = {"type": "done"}


def values_of(loaded: LoadedModel, values: list[Any] | None) -> list[Any]:
    """The numbers a series model is given; text sent to it is a 409 that says what it reads."""
    if values is None:
        raise WrongModelKind(f"{loaded.card.id} reads numbers: send `values` (a list of numbers), not text")
    return values


def value_steps(values: list[Any], settings: Settings) -> int:
    if len(values) > settings.max_steps:
        raise LimitExceeded(f"values has {len(values)} steps; the limit is {settings.max_steps} (max_steps)")
    return len(values)


def trace_request(loaded: LoadedModel, req: TraceRequest, settings: Settings) -> SeriesWire:
    tr = trace_series(
        loaded, req.values, loss=req.loss, label=req.label, checkpoint=req.checkpoint, max_steps=settings.max_steps
    )
    return SeriesWire.build(loaded, tr, req.precision)


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


def not_translation(loaded: LoadedModel) -> WrongModelKind:
    return WrongModelKind(f"{loaded.card.id} is a {loaded.card.kind} model, not a translation model")


class SeriesWeb(WebFamily):
    name = "series"

    def trace_job(self, loaded: LoadedModel, req: TraceRequest, settings: Settings) -> Job:
        values = values_of(loaded, req.values)
        steps = value_steps(values, settings)

        def work() -> bytes:
            return dumps(trace_request(loaded, req, settings).body())

        return Job(work, cost.trace_seconds(loaded, steps), estimate_bytes(loaded, steps))

    def generate_job(self, loaded: LoadedModel, req: GenerateRequest, settings: Settings) -> Job:
        """A free-running forecast of `length` values (each prediction fed back as the next input)."""
        forecasting = SeriesGeneration.start(loaded, req, settings)
        total = forecasting.given + req.length

        def work() -> bytes:
            forecast, wire = forecasting.finish()
            return dumps({"values": wire.values[: forecasting.given], "forecast": forecast,
                          "outliers": forecasting.outliers(), "trace": wire.body()})  # fmt: skip

        seconds = cost.forecast_seconds(loaded, forecasting.given, req.length)
        return Job(work, seconds, estimate_bytes(loaded, total))

    def translate_job(self, loaded: LoadedModel, req: TranslateRequest, settings: Settings) -> Job:
        raise not_translation(loaded)

    def stream(self, loaded: LoadedModel, req: StreamRequest, settings: Settings) -> TraceStream | StepStream:
        """A trace (meta, steps, grads, done), or a forecast whose steps leave as they are computed."""
        if isinstance(req, StreamTranslateRequest):
            raise not_translation(loaded)
        values = values_of(loaded, req.values)
        if isinstance(req, StreamGenerateRequest):
            return self._forecast(loaded, req, settings)
        steps = value_steps(values, settings)

        def wire() -> SeriesWire:
            return trace_request(loaded, req, settings)

        return TraceStream(wire, lambda _: DONE, cost.trace_seconds(loaded, steps), estimate_bytes(loaded, steps))

    def _forecast(self, loaded: LoadedModel, req: StreamGenerateRequest, settings: Settings) -> StepStream:
        """Each step frame leaves as soon as it is computed (the given values, then the forecast fed back); then the
        BPTT sweep of the whole sequence, and done with the forecast."""
        forecasting = SeriesGeneration.start(loaded, req, settings)
        steps = forecasting.run()
        total = forecasting.given + forecasting.req.length - 1

        def next_frame(t: int) -> bytes | None:
            step = next(steps, None)
            return None if step is None else dumps(forecast_step_frame(loaded, step, t, req.precision))

        def finish() -> tuple[Iterable[bytes], dict[str, Any]]:
            forecast, wire = forecasting.finish()
            return wire.grad_frames(), {"type": "done", "forecast": forecast, "total_loss": wire.trace.loss}

        card = loaded.card
        meta = {"type": "meta", "mode": "generate", "model": card.id, "kind": "series", "steps": total,
                "given_steps": forecasting.given, "cell": card.cell, "gates": list(card.gate_names),
                "num_layers": card.num_layers, "hidden_size": card.hidden_size,
                "outliers": forecasting.outliers()}  # fmt: skip
        seconds = cost.forecast_seconds(loaded, forecasting.given, req.length)
        return StepStream(meta, total, next_frame, finish, seconds)

    def jacobian_input(
        self, loaded: LoadedModel, req: JacobianRequest, settings: Settings, check_steps: Callable[[int], None]
    ) -> JacobianInput:
        values = values_of(loaded, req.values)
        check_steps(len(values))
        model, scaling = series_model(loaded, req.checkpoint)
        limit = settings.jacobian_max_steps
        array = read_values(values, scaling.width, limit, scaling)
        tokens = [", ".join(f"{v:g}" for v in row) for row in array]
        x = scaled_tensor(scaling, array, torch.float64)

        def norms() -> JacobianNorms:
            return series_jacobian_norms(model, x, req.layer, req.norm, max_steps=limit)

        return JacobianInput(tokens, norms, loaded.card.num_layers)

    def card_fields(self, loaded: LoadedModel) -> dict[str, Any]:
        block = series_card(loaded.card)
        labels = None if block.labels is None else list(block.labels)
        return {"embed_size": 0, "vocab": list(loaded.vocab.tokens), "labels": labels, "series": block.to_json()}

    def page_card(self, loaded: LoadedModel) -> dict[str, Any] | None:
        block = series_card(loaded.card)
        labels = None if block.labels is None else list(block.labels)
        return {"embed_size": 0, "vocab": None, "labels": labels, "series": block.to_json()}

    def labels(self, loaded: LoadedModel) -> list[str] | None:
        labels = series_card(loaded.card).labels
        return None if labels is None else list(labels)

    def page(
        self, zoo: Zoo, loaded: LoadedModel, view: str, task_models: list[LoadedModel], peers: list[LoadedModel]
    ) -> PageChoice | str:
        model_id = loaded.card.id
        if view == "generate":
            return (
                f"{model_id} reads numbers: its free-running forecast (what it writes) is on its own page, "
                f"/models/{model_id}."
            )
        if view == "learning":
            return (
                f"{model_id} is a series model: the learning page shows text models and classifiers. "
                f"Its series is on its own page, /models/{model_id}."
            )
        return PageChoice("series.html", {"peers": task_models})

    def home_card(self, loaded: LoadedModel) -> dict[str, Any]:
        block = series_card(loaded.card)
        scaling = block.scaling
        features = ", ".join(scaling.features) if scaling.width <= 3 else f"{scaling.width} numbers a {scaling.step}"
        return {
            "shape": "numbers in, a label out" if block.classify else "numbers in, the next value out",
            "reads": features + (f" ({scaling.units})" if scaling.units else ""),
            "open": "Classify" if block.classify else "Forecast",
            "writes": False,
            "learning": False,
            "values": True,
        }

    def compared_by_cell(self, loaded: LoadedModel) -> bool:
        return False  # compared on its own page by the held-out error, against persistence and AR(p)

    def not_compared(self, task: str, first: str, known: str) -> str | None:
        return (
            f"the task {task!r} reads numbers: its models are compared by their held-out error or accuracy on "
            f"each model's page (/models/{first}), not cell by cell here. Tasks with several cells: {known}"
        )

    def in_lab(self, loaded: LoadedModel) -> bool:
        return False


SERIES_WEB = SeriesWeb()
