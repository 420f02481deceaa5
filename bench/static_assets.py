"""Static files, before → after: `python -m bench.static_assets [--seconds 5] [--connections 6]`

Before: Starlette's StaticFiles mounted at /static behind the router and every middleware, Plotly from a route
that gzips it once (the wiring up to issue 27, rebuilt here from today's create_app). After: app.web.middleware.
assets, from memory in front of them. In one run, for each wiring:
- the server's own Python per request: the ASGI app called in this process (no socket, no HTTP parsing: those
  cost both wirings alike), median µs of many calls;
- requests/s over loopback: a real uvicorn (one worker) asked by a lean HTTP/1.1 client on keep-alive connections
  (as load.py's: a general-purpose client would measure itself), for a module as a browser first asks for it
  (Accept-Encoding: gzip, deflate, br, zstd), the same revalidated (If-None-Match), and Plotly's bundle.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import os
import statistics
import subprocess
import sys
import time
from importlib import resources
from typing import Any, cast

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from app.web.app import create_app
from app.web.config import ROOT
from app.web.middleware.assets import StaticAssets
from bench.common import table
from tests.conftest import free_port

BROWSER = {"accept-encoding": "gzip, deflate, br, zstd", "user-agent": "bench"}
MODULE = "/static/js/views/unrolled.js"
PLOTLY = "/static/vendor/plotly.min.js"


def after_app() -> FastAPI:
    return create_app()


def before_app() -> FastAPI:
    """Today's app wired as before issue 27: no StaticAssets; StaticFiles at /static; Plotly gzipped (level 6) on
    its first request by a route of its own, with a day's Cache-Control."""
    app = create_app()
    app.user_middleware = [m for m in app.user_middleware if cast(object, m.cls) is not StaticAssets]
    zipped: dict[str, tuple[bytes, bytes, str]] = {}

    def plotly_bundle(request: Request) -> Response:
        if not zipped:
            raw = (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()
            etag = '"' + hashlib.sha256(raw).hexdigest()[:20] + '"'
            zipped["js"] = (raw, gzip.compress(raw, compresslevel=6, mtime=0), etag)
        raw, body, etag = zipped["js"]
        headers = {"Cache-Control": "public, max-age=86400", "ETag": etag, "Vary": "Accept-Encoding"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(body, media_type="text/javascript", headers={**headers, "Content-Encoding": "gzip"})
        return Response(raw, media_type="text/javascript", headers=headers)

    app.add_api_route(PLOTLY, plotly_bundle, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=ROOT / "static"), name="static")
    return app


async def call(app: Any, path: str, headers: dict[str, str]) -> tuple[int, dict[bytes, bytes], int]:
    """One GET through the ASGI app in this process: (status, response headers, body bytes)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *((k.encode(), v.encode()) for k, v in headers.items())],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80), "state": {},
    }  # fmt: skip
    status, head, size = 0, {}, 0

    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:  # the body is read: a response waiting for the disconnect waits (it is cancelled at its end)
            await asyncio.Future()
        received = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, head, size
        if message["type"] == "http.response.start":
            status, head = message["status"], dict(message["headers"])
        else:
            size += len(message.get("body", b""))

    await app(scope, receive, send)
    return status, head, size


async def in_process(app: FastAPI, cases: list[tuple[str, dict[str, str]]], calls: int) -> list[float]:
    """Median µs per call of each case (in rounds of 50 calls, so that a pause does not skew it)."""
    out = []
    for path, headers in cases:
        rounds = []
        for _ in range(calls // 50):
            start = time.perf_counter()
            for _ in range(50):
                await call(app, path, headers)
            rounds.append((time.perf_counter() - start) / 50 * 1e6)
        out.append(statistics.median(rounds))
    return out


async def hammer(port: int, path: str, headers: dict[str, str], seconds: float, connections: int) -> tuple[float, int]:
    """Requests/s and bytes per response over `connections` keep-alive HTTP/1.1 connections for `seconds`."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    raw = (request + "\r\n").encode()
    done, size = 0, 0
    deadline = time.perf_counter() + seconds

    async def one() -> None:
        nonlocal done, size
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < deadline:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            done, size = done + 1, length
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    return done / (time.perf_counter() - start), size


def serve(factory: str, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "uvicorn", f"bench.static_assets:{factory}", "--factory", "--port", str(port),
           "--no-access-log", "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "UNROLLED_TORCH_THREADS": "1"})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{factory} did not become ready")


def etag_of(app: FastAPI, path: str) -> str:
    _, head, _ = asyncio.run(call(app, path, BROWSER))
    return head[b"etag"].decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=6)  # a browser's connections to one host
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    apps = {"before": before_app(), "after": after_app()}
    cases = {
        name: [
            ("module, first visit", MODULE, BROWSER),
            ("module, revalidated (304)", MODULE, {**BROWSER, "if-none-match": etag_of(app, MODULE)}),
            ("plotly.min.js, first visit", PLOTLY, BROWSER),
        ]
        for name, app in apps.items()
    }
    cost = {name: asyncio.run(in_process(app, [(p, h) for _, p, h in cases[name]], args.calls))
            for name, app in apps.items()}  # fmt: skip
    rates: dict[str, list[tuple[float, int]]] = {}
    for name, factory in (("before", "before_app"), ("after", "after_app")):
        port = free_port()
        proc = serve(factory, port)
        try:
            rates[name] = [asyncio.run(hammer(port, p, h, args.seconds, args.connections)) for _, p, h in cases[name]]
        finally:
            proc.terminate()
            proc.wait()
    rows = []
    for i, (label, _, _) in enumerate(cases["after"]):
        (rb, bb), (ra, ba) = rates["before"][i], rates["after"][i]
        rows.append([label, f"{cost['before'][i]:.0f} → {cost['after'][i]:.0f}", f"{rb:.0f} → {ra:.0f}",
                     f"{ra / rb:.1f}x", f"{bb} → {ba}"])  # fmt: skip
    print(f"one uvicorn worker, {args.connections} keep-alive connections, {args.seconds:g} s a row")
    print(table(["request", "server µs/request", "requests/s", "speed-up", "bytes/response"], rows))


if __name__ == "__main__":
    main()
