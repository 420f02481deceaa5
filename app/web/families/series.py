"""The series family on the web: models that read numbers; their trace and free-running forecast. Their wire
layout and request handling are app/web/series.py's."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from app.engine.card import LoadedModel
from app.engine.errors import WrongModelKind
from app.engine.lab.jacobian import JacobianNorms, series_jacobian_norms
from app.engine.series.card import series_card
from app.engine.series.model import read_values, scaled_tensor
from app.engine.series.trace import series_model
from app.web import series
from app.web.capacity import cost
from app.web.config import Settings
from app.web.families.base import JacobianInput, Job, PageChoice, StepStream, StreamRequest, TraceStream
from app.web.schemas.jacobian import JacobianRequest
from app.web.schemas.models import (
    GenerateRequest,
    StreamGenerateRequest,
    StreamTranslateRequest,
    TraceRequest,
    TranslateRequest,
)
from app.wire.frames import dumps
from app.zoo.zoo import Zoo

DONE = {"type": "done"}


def not_translation(loaded: LoadedModel) -> WrongModelKind:
    return WrongModelKind(f"{loaded.card.id} is a {loaded.card.kind} model, not a translation model")


class SeriesWeb:
    name = "series"

    def trace_job(self, loaded: LoadedModel, req: TraceRequest, settings: Settings) -> Job:
        values = series.values_of(loaded, req.values)
        steps = series.value_steps(values, settings)

        def work() -> bytes:
            return dumps(series.trace_request(loaded, req, settings).body())

        return Job(work, cost.trace_seconds(loaded, steps), series.estimate_bytes(loaded, steps))

    def generate_job(self, loaded: LoadedModel, req: GenerateRequest, settings: Settings) -> Job:
        """A free-running forecast of `length` values (each prediction fed back as the next input)."""
        forecasting = series.SeriesGeneration.start(loaded, req, settings)
        total = forecasting.given + req.length

        def work() -> bytes:
            forecast, wire = forecasting.finish()
            return dumps({"values": wire.values[: forecasting.given], "forecast": forecast,
                          "outliers": forecasting.outliers(), "trace": wire.body()})  # fmt: skip

        seconds = cost.forecast_seconds(loaded, forecasting.given, req.length)
        return Job(work, seconds, series.estimate_bytes(loaded, total))

    def translate_job(self, loaded: LoadedModel, req: TranslateRequest, settings: Settings) -> Job:
        raise not_translation(loaded)

    def stream(self, loaded: LoadedModel, req: StreamRequest, settings: Settings) -> TraceStream | StepStream:
        """A trace (meta, steps, grads, done), or a forecast whose steps leave as they are computed."""
        if isinstance(req, StreamTranslateRequest):
            raise not_translation(loaded)
        values = series.values_of(loaded, req.values)
        if isinstance(req, StreamGenerateRequest):
            return self._forecast(loaded, req, settings)
        steps = series.value_steps(values, settings)

        def wire() -> series.SeriesWire:
            return series.trace_request(loaded, req, settings)

        return TraceStream(
            wire, lambda _: DONE, cost.trace_seconds(loaded, steps), series.estimate_bytes(loaded, steps)
        )

    def _forecast(self, loaded: LoadedModel, req: StreamGenerateRequest, settings: Settings) -> StepStream:
        """Each step frame leaves as soon as it is computed (the given values, then the forecast fed back); then the
        BPTT sweep of the whole sequence, and done with the forecast."""
        forecasting = series.SeriesGeneration.start(loaded, req, settings)
        steps = forecasting.run()
        total = forecasting.given + forecasting.req.length - 1

        def next_frame(t: int) -> bytes | None:
            step = next(steps, None)
            return None if step is None else dumps(forecasting.step_frame(step, t))

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
        values = series.values_of(loaded, req.values)
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
        return {"embed_size": 0, "vocab": list(loaded.vocab.tokens), "series": series_card(loaded.card).to_json()}

    def page_card(self, loaded: LoadedModel) -> dict[str, Any] | None:
        return {"embed_size": 0, "vocab": None, "labels": None, "series": series_card(loaded.card).to_json()}

    def labels(self, loaded: LoadedModel) -> list[str] | None:
        return None

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
        scaling = series_card(loaded.card).scaling
        return {
            "shape": "numbers in, the next value out",
            "reads": ", ".join(scaling.features) + (f" ({scaling.units})" if scaling.units else ""),
            "open": "Forecast",
            "writes": False,
            "learning": False,
            "values": True,
        }

    def compared_by_cell(self, loaded: LoadedModel) -> bool:
        return False  # compared on its own page by the held-out error, against persistence and AR(p)

    def not_compared(self, task: str, first: str, known: str) -> str | None:
        return (
            f"the task {task!r} reads numbers: its models are compared by their held-out error against "
            f"persistence and AR(p) on each model's page (/models/{first}), not cell by cell here. "
            f"Tasks with several cells: {known}"
        )

    def in_lab(self, loaded: LoadedModel) -> bool:
        return False


SERIES_WEB = SeriesWeb()
