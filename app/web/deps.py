"""Dependencies as Annotated aliases: what a route needs, taken from the app's state.

They are async although they only read an attribute: FastAPI runs a plain def dependency in a thread pool, a
thread hop (~0.2 ms here) per dependency per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from app.web.capacity.budget import ByteBudget
from app.web.capacity.compute import Compute, Work
from app.web.config import Settings
from app.web.middleware.metrics import Metrics
from app.zoo.zoo import Zoo


async def get_zoo(conn: HTTPConnection) -> Zoo:
    """The zoo, with the models trained live in the lab (app.training.live.LabModels) found by id beside its own."""
    zoo: Zoo = conn.app.state.zoo
    lab = getattr(conn.app.state, "lab_models", None)
    return zoo if lab is None else zoo.with_models(lab.snapshot())


async def get_settings(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.app.state.settings
    return settings


async def get_compute(conn: HTTPConnection) -> Compute:
    compute: Compute = conn.app.state.compute
    return compute


async def get_budget(conn: HTTPConnection) -> ByteBudget:
    budget: ByteBudget = conn.app.state.budget
    return budget


async def get_metrics(conn: HTTPConnection) -> Metrics:
    metrics: Metrics = conn.app.state.metrics
    return metrics


def work_of(conn: HTTPConnection, seconds: float) -> Work:
    """The computation a request asks for: its client, by address (behind a trusted proxy, the forwarded one:
    uvicorn rewrites the address from X-Forwarded-For for forwarded_allow_ips), and whether it is expensive, by
    its estimated CPU seconds (app.web.capacity.cost)."""
    settings: Settings = conn.app.state.settings
    client = conn.client.host if conn.client else "unknown"
    return Work(client, seconds >= settings.expensive_seconds)


ZooDep = Annotated[Zoo, Depends(get_zoo)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ComputeDep = Annotated[Compute, Depends(get_compute)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
BudgetDep = Annotated[ByteBudget, Depends(get_budget)]
