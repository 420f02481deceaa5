"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.requests import HTTPConnection

from app.web.deps import MetricsDep, ZooDep
from app.web.schemas.models import Health

router = APIRouter(tags=["health"])
metrics_router = APIRouter(tags=["health"])  # on the public port only when no metrics_port is set


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """Alive: the process answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health, "description": "not ready"}})
def readyz(conn: HTTPConnection, zoo: ZooDep) -> JSONResponse:
    """Ready once the models are loaded, at least one of them (and not shutting down)."""
    state = conn.app.state
    if not getattr(state, "ready", False):
        status = "stopping" if getattr(state, "stopping", False) else "starting"
    elif len(zoo) == 0:
        status = "no models loaded: see the log for what was skipped"
    else:
        status = "ready"
    ready = status == "ready"
    body = Health(status=status, models=len(zoo)).model_dump()
    return JSONResponse(body, status_code=200 if ready else 503)


@metrics_router.get("/metrics", response_class=PlainTextResponse)
def metrics(m: MetricsDep) -> PlainTextResponse:
    """Prometheus text: requests, latencies, active streams, computations in flight."""
    return PlainTextResponse(m.render(), media_type="text/plain; version=0.0.4")
