"""Prometheus text metrics (requests, latencies, streams) and the ASGI middleware that records them.

The same middleware enforces the request body limit, before any route reads a byte too many.
"""

from __future__ import annotations

import bisect
import re
import time
from collections import defaultdict
from collections.abc import Callable, Mapping

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.web.errors import BodyTooLarge, error_body

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.latency: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.active_streams = 0
        self.streams_total = 0
        self.generated_steps_total = 0
        self.gauges: dict[str, Callable[[], float]] = {}
        self.counters: dict[str, Callable[[], float]] = {}  # kept by other parts of the app, read when rendered

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, str(status))] += 1
        self.latency[route][bisect.bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum[route] += seconds

    def render(self) -> str:
        lines = [
            "# HELP unrolled_requests_total HTTP requests served, by method, route and status.",
            "# TYPE unrolled_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            lines.append(f'unrolled_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}')
        lines += [
            "# HELP unrolled_request_seconds HTTP request latency, by route.",
            "# TYPE unrolled_request_seconds histogram",
        ]
        for route, counts in sorted(self.latency.items()):
            cumulative = 0
            for le, n in zip([*map(str, BUCKETS), "+Inf"], counts, strict=True):
                cumulative += n
                lines.append(f'unrolled_request_seconds_bucket{{route="{route}",le="{le}"}} {cumulative}')
            lines.append(f'unrolled_request_seconds_sum{{route="{route}"}} {self.latency_sum[route]:.6f}')
            lines.append(f'unrolled_request_seconds_count{{route="{route}"}} {cumulative}')
        lines += [
            "# HELP unrolled_active_streams WebSocket streams open now.",
            "# TYPE unrolled_active_streams gauge",
            f"unrolled_active_streams {self.active_streams}",
            "# HELP unrolled_streams_total WebSocket streams accepted.",
            "# TYPE unrolled_streams_total counter",
            f"unrolled_streams_total {self.streams_total}",
            "# HELP unrolled_generated_steps_total Steps computed by generation, streamed or not.",
            "# TYPE unrolled_generated_steps_total counter",
            f"unrolled_generated_steps_total {self.generated_steps_total}",
        ]
        for name, read in sorted(self.gauges.items()):
            lines += [f"# TYPE {name} gauge", f"{name} {read():g}"]
        for name, read in sorted(self.counters.items()):
            lines += [f"# TYPE {name} counter", f"{name} {read():g}"]
        return "\n".join(lines) + "\n"


class MetricsAndLimits:
    """Pure ASGI middleware: records every HTTP request; refuses bodies over max_body_bytes with a JSON 413.

    `route_limits` gives (method, path) pairs a limit of their own and its setting's name (the upload's
    max_upload_bytes, a WAV's max_audio_bytes); a path's "{name}" segment stands for any one segment. Such a route
    reads its body itself, after checking who asks: a chunked body is not read ahead here, and going over the
    limit while the route reads raises BodyTooLarge (a JSON 413 from the app's handler)."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        max_body_bytes: int,
        route_limits: Mapping[tuple[str, str], tuple[int, str]] | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.route_limits = [
            (method, re.compile("/".join("[^/]+" if p.startswith("{") else re.escape(p) for p in path.split("/"))),
             limit)
            for (method, path), limit in (route_limits or {}).items()
        ]  # fmt: skip

    def _own_limit(self, method: str, path: str) -> tuple[int, str] | None:
        return next((limit for m, p, limit in self.route_limits if m == method and p.fullmatch(path)), None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        own = self._own_limit(scope["method"], scope["path"])
        limit, setting = (self.max_body, "max_body_bytes") if own is None else own
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._too_large(send, limit, setting)
            self.metrics.observe(scope["method"], "body_limit", 413, time.perf_counter() - start)
            return
        if declared is None and own is None and scope["method"] in ("POST", "PUT", "PATCH"):
            # A chunked body has no length to check up front: read it here, at most max_body bytes, and refuse it
            # with 413 before the app sees it (the app's body parser would turn an error into a 400).
            buffered = await self._read_bounded(receive)
            if buffered is None:
                await self._too_large(send, limit, setting)
                self.metrics.observe(scope["method"], "body_limit", 413, time.perf_counter() - start)
                return
            receive = _replay(buffered, receive)
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, setting)
            return message

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, counting_receive, recording_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - start)

    async def _read_bounded(self, receive: Receive) -> list[Message] | None:
        """The request's body messages, or None once they pass max_body bytes."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages  # the client left: the app sees it as it would have
            size += len(message.get("body", b""))
            if size > self.max_body:
                return None
            if not message.get("more_body", False):
                return messages

    async def _too_large(self, send: Send, limit: int, setting: str) -> None:
        body = orjson.dumps(error_body("too_large", str(BodyTooLarge(limit, setting))))
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives these messages first, then whatever the client sends next (a disconnect)."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
