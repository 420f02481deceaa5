"""/metrics on a port of its own (metrics_port), so that a public deployment does not show its load to the world.

A second uvicorn server in the same process and event loop, started and stopped by the app's lifespan: it reads
the same Metrics object as the public app. The public server owns the signals; this one stops with the app.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.web.middleware.metrics import Metrics

CONTENT_TYPE = "text/plain; version=0.0.4"


class _QuietServer(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # SIGTERM is the public server's: it stops the app, whose lifespan stops this one


def metrics_app(metrics: Metrics) -> Starlette:
    async def render(_: Request) -> Response:
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE)

    return Starlette(routes=[Route("/metrics", render)])


class MetricsServer:
    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        # Bound here, so that a port in use fails the app's start-up with an OSError that names it.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        config = uvicorn.Config(metrics_app(metrics), lifespan="off", log_config=None, access_log=False)
        self.server = _QuietServer(config)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task
        self.sock.close()
