"""create_app(): settings, lifespan (load the zoo), middleware, routers. Wiring only."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import anyio.to_thread
import fastapi_offline
import plotly
import torch
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from app.engine import kernels
from app.engine.lab import jacobian
from app.training.live import LabModels
from app.web import errors, openapi
from app.web.capacity.broadcast import Broadcasts
from app.web.capacity.budget import ByteBudget
from app.web.capacity.compute import Compute
from app.web.capacity.shared import Shared
from app.web.config import ROOT, SERVED_BY_CLI, Settings, get_settings
from app.web.families import caption as caption_web
from app.web.families import speech as speech_web
from app.web.middleware.assets import Assets, StaticAssets
from app.web.middleware.metrics import Metrics, MetricsAndLimits
from app.web.middleware.metrics_port import MetricsServer
from app.web.middleware.security import SecurityHeaders, SlashRedirect, security_headers
from app.web.rooms.redis import RedisStore
from app.web.rooms.room import Rooms
from app.web.rooms.store import MemoryStore, Store
from app.web.routes import caption as routes_caption
from app.web.routes import health, lab_train, pages, stream, upload
from app.web.routes import jacobian as routes_jacobian
from app.web.routes import lab as routes_lab
from app.web.routes import models as routes_models
from app.web.routes import rooms as routes_rooms
from app.web.routes import tour as routes_tour
from app.web.routes import trace as routes_trace
from app.zoo.zoo import RESCAN_SECONDS, Zoo

log = logging.getLogger("unrolled")


def _on_termination(app: FastAPI) -> None:
    """On SIGTERM/SIGINT, report not-ready at once (so a load balancer stops sending), then let uvicorn's own
    handler shut down gracefully: no new connections, requests in flight finish, streams close with 1012."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers belong to the main thread (under TestClient the app runs in another)
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)

        def handler(sig: int, frame: FrameType | None, previous: Any = previous) -> None:
            app.state.ready = False
            app.state.stopping = True
            log.info("signal %s: shutting down gracefully", signal.Signals(sig).name)
            if callable(previous):
                previous(sig, frame)

        signal.signal(signum, handler)


async def _rescan_zoo(app: FastAPI, folder: Path) -> None:
    """Serve models added to (or changed in) the folder since start-up, e.g. by `unrolled import`, within a few
    seconds: every RESCAN_SECONDS, a stat of each card and its weights, and a load of those that changed."""
    while True:
        await asyncio.sleep(RESCAN_SECONDS)
        try:
            zoo = await anyio.to_thread.run_sync(app.state.zoo.rescan, folder)
        except Exception:  # a rescan that fails must not stop the next one
            log.exception("rescanning the models folder failed")
            continue
        if zoo is not None:
            app.state.zoo = zoo


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not os.environ.get(SERVED_BY_CLI):
            log.warning(
                "not started by `unrolled serve`: start uvicorn with --ws-per-message-deflate false (else every "
                "binary trace frame a browser receives is compressed on the event loop, ~8x slower) and "
                "--ws-max-size %d, or run `unrolled serve`, which sets both",
                settings.max_message_bytes(),
            )
        torch.set_num_threads(settings.threads_per_worker())
        app.state.zoo = await anyio.to_thread.run_sync(Zoo.load, settings.models_dir)
        await anyio.to_thread.run_sync(kernels.warm_up)
        await anyio.to_thread.run_sync(jacobian.warm_up)
        _on_termination(app)
        metrics_server = None
        if settings.metrics_port is not None:
            metrics_server = MetricsServer(app.state.metrics, settings.host, settings.metrics_port)
            metrics_server.start()
        await app.state.rooms.start()
        if os.environ.get(SERVED_BY_CLI):
            # What start-up made (the zoo, the static files, the kernels: ~340k objects) is kept for the process's
            # life: out of the collector's sight, so that a full collection, run on the event loop, walks only what
            # came since (0.6–1.1 s before, with a room's streams and pages waiting on it; 3 ms after).
            # Not in the tests' processes, whose many apps' zoos are garbage later.
            gc.freeze()
        app.state.ready = True
        rescanning = asyncio.create_task(_rescan_zoo(app, settings.models_dir))
        yield
        rescanning.cancel()
        app.state.ready = False
        if metrics_server is not None:
            await metrics_server.stop()
        await app.state.rooms.stop()
        await app.state.broadcasts.close()

    app = FastAPI(
        title="Unrolled",
        summary="Every time step of an RNN, LSTM and GRU: hidden states, gates, and BPTT gradient norms.",
        version="0.1.0",
        lifespan=lifespan,
        redirect_slashes=False,  # app.web.middleware.security.SlashRedirect does it without trusting Host
        docs_url=None,  # /docs is a page of ours (app.web.routes.pages): Swagger UI from its package, not from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.zoo = Zoo({})
    app.state.ready = False
    app.state.stopping = False
    app.state.compute = Compute(
        settings.max_concurrent, settings.max_queue, settings.max_queue_per_client, settings.max_expensive
    )
    app.state.budget = ByteBudget(settings.max_bytes_in_flight)
    app.state.shared = Shared(settings.result_cache_bytes, settings.share_computations)
    app.state.broadcasts = Broadcasts(app.state.shared)  # generation streams stepped once for all who ask the same
    app.state.lab_models = LabModels(settings.lab_models_kept, settings.lab_model_ttl)
    app.state.lab_shows = {}  # live training runs in flight, by request: later askers watch them (lab_train.Show)
    store: Store = RedisStore(settings.redis_url) if settings.redis_url else MemoryStore()
    app.state.rooms = Rooms(settings, store)
    metrics = Metrics()
    metrics.gauges["unrolled_computations_in_flight"] = lambda: app.state.compute.admitted
    metrics.gauges["unrolled_computations_running"] = lambda: app.state.compute.running
    metrics.gauges["unrolled_bytes_in_flight"] = lambda: app.state.budget.held
    metrics.gauges["unrolled_shared_results_bytes"] = lambda: app.state.shared.held
    metrics.gauges["unrolled_shared_computations_in_flight"] = lambda: (
        app.state.shared.flying + len(app.state.broadcasts.flying)
    )
    # identical requests (app.web.capacity.shared): computations run for them, requests that joined one in flight,
    # and requests answered with a kept result
    metrics.counters["unrolled_shared_computations_total"] = lambda: app.state.shared.computed
    metrics.counters["unrolled_shared_joined_total"] = lambda: app.state.shared.joined
    metrics.counters["unrolled_shared_results_served_total"] = lambda: app.state.shared.hits
    metrics.gauges["unrolled_models_loaded"] = lambda: len(app.state.zoo)
    app.state.metrics = metrics

    errors.install(app)
    openapi.install(app, settings)
    for router in (
        health.router,
        routes_models.router,
        upload.router,
        routes_trace.router,
        routes_caption.router,
        stream.router,
        routes_lab.router,
        routes_jacobian.router,
        lab_train.router,
        routes_rooms.router,
    ):
        app.include_router(router)
    if settings.metrics_port is None:
        app.include_router(health.metrics_router)
    app.include_router(pages.router)
    app.include_router(routes_tour.router)
    app.include_router(routes_rooms.pages)
    app.include_router(speech_web.router)  # the speech page's example clips
    app.include_router(caption_web.router)  # the scene rules the caption page draws by
    swagger_ui = Path(fastapi_offline.__file__).parent / "static"  # Swagger UI 5 (OpenAPI 3.1), from its package
    app.mount("/static/vendor/swagger-ui", StaticFiles(directory=swagger_ui), name="swagger-ui")
    # Every file of static/ and Plotly's bundle, read and compressed once: served from memory by StaticAssets
    plotly_bundle = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    app.state.assets = Assets.load(
        ROOT / "static", extra={"vendor/plotly.min.js": plotly_bundle}, use_build=settings.static_build
    )
    app.add_middleware(
        MetricsAndLimits,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        route_limits={  # routes whose body is a file, with a limit of their own
            ("POST", "/api/models"): (settings.max_upload_bytes, "max_upload_bytes"),
            ("POST", "/api/models/{model_id}/transcribe"): (settings.max_audio_bytes, "max_audio_bytes"),
            ("POST", "/api/models/{model_id}/caption"): (settings.max_image_bytes, "max_image_bytes"),
        },
    )
    app.add_middleware(SlashRedirect)
    app.add_middleware(SecurityHeaders)
    # In front of the router and the middleware above, which a static file has no need of (its security headers
    # are the same, written by the app itself): see app.web.middleware.assets.
    app.add_middleware(StaticAssets, assets=app.state.assets, headers=security_headers, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"], allow_headers=["*"]
        )
    return app
