"""POST /api/models/{id}/trace and /generate: the whole trace in one JSON body."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from app.api.deps import ComputeDep, SettingsDep, ZooDep
from app.api.schemas import ErrorBody, GenerateRequest, GenerateResponse, TraceRequest, TraceResponse
from app.api.service import Generation, compute_trace
from app.api.wire import dumps

router = APIRouter(prefix="/api", tags=["trace"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the body is not JSON in UTF-8"},
    404: {"model": ErrorBody, "description": "no such model, checkpoint or label"},
    409: {"model": ErrorBody, "description": "the model is of the other kind (generate on a classifier, …)"},
    413: {"model": ErrorBody, "description": "the body is over max_body_bytes"},
    422: {"model": ErrorBody, "description": "the request is malformed or names an unknown label or checkpoint"},
    503: {"model": ErrorBody, "description": "busy: retry after the Retry-After header's seconds"},
}


class JSONBytes(Response):
    media_type = "application/json"


@router.post("/models/{model_id}/trace", response_model=TraceResponse, responses=ERRORS)
async def trace_model(
    model_id: str, req: TraceRequest, zoo: ZooDep, compute: ComputeDep, settings: SettingsDep
) -> Response:
    """Trace a text: every step's states, gates, predictions, losses and BPTT gradient norms."""
    loaded = zoo.get(model_id)

    def work() -> bytes:
        return dumps(compute_trace(loaded, req, settings).body())

    return JSONBytes(await compute.run(work))


@router.post("/models/{model_id}/generate", response_model=GenerateResponse, responses=ERRORS)
async def generate_text(
    model_id: str, req: GenerateRequest, zoo: ZooDep, compute: ComputeDep, settings: SettingsDep
) -> Response:
    """Sample text from a next-token model, with the trace of the whole sequence."""
    loaded = zoo.get(model_id)
    generation = Generation.start(loaded, req, settings)

    def work() -> bytes:
        for _ in generation.run():
            pass
        text, written, wire = generation.finish()
        return dumps({"text": text, "generated": written, "trace": wire.body()})

    return JSONBytes(await compute.run(work))
