"""Check a running Unrolled service from outside: `python -m deploy.check_service URL [--server-uid N]`.

Used by `make docker-test` against the container; prints one line per check and exits 1 if any fails.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
from websockets.asyncio.client import connect


def canonical(name: str) -> str:
    """A distribution's name as PEP 503 compares them (Jinja2 = jinja2, typing_extensions = typing-extensions)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wait_ready(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not become ready within {seconds:g} s")


async def stream(ws_url: str, text: str) -> tuple[int, int, str]:
    async with connect(ws_url, max_size=2**26) as ws:
        await ws.send(orjson.dumps({"text": text}).decode())
        steps = grads = 0
        while True:
            frame = orjson.loads(await ws.recv())
            steps += frame["type"] == "step"
            grads += frame["type"] == "grad"
            if frame["type"] in ("done", "error"):
                return steps, grads, frame["type"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--server-uid", default="unknown")
    parser.add_argument("--metrics-url", help="where /metrics is served, apart from the public port")
    parser.add_argument("--cache-writable", default="unknown", help="whether the server's user may write its cache")
    parser.add_argument("--installed", default="", help="the image's installed distributions, as NAME==VERSION words")
    parser.add_argument("--healthcheck", default="unknown", help="the image's declared health check (inspect's JSON)")
    parser.add_argument("--lock", type=Path, help="requirements.lock: the versions the image must hold")
    parser.add_argument("--ready-timeout", type=float, default=90)
    args = parser.parse_args()
    url = args.url.rstrip("/")
    start = time.monotonic()
    wait_ready(url, args.ready_timeout)
    ready_s = time.monotonic() - start
    models = httpx.get(f"{url}/api/models").json()["models"]
    model = next((m for m in models if m["kind"] == "next_token"), models[0] if models else None)
    text = "the cell state carries memory"
    results: list[tuple[str, bool, str]] = []

    def check(name: str, fn: Callable[[], tuple[bool, str]]) -> None:
        try:
            ok, detail = fn()
        except Exception as e:  # a failed check is reported, and the others still run
            ok, detail = False, f"{type(e).__name__}: {e}"
        results.append((name, ok, detail))

    def healthz() -> tuple[bool, str]:
        r = httpx.get(f"{url}/healthz")
        return r.status_code == 200 and r.json()["status"] == "ok", f"{r.status_code} {r.text}"

    def readyz() -> tuple[bool, str]:
        r = httpx.get(f"{url}/readyz")
        return r.status_code == 200 and r.json()[
            "models"
        ] >= 1, f"{r.status_code} {r.text}, ready after {ready_s:.1f} s"

    def trace() -> tuple[bool, str]:
        assert model is not None, "no models are loaded"
        r = httpx.post(f"{url}/api/models/{model['id']}/trace", json={"text": text}, timeout=30)
        body = r.json()
        return r.status_code == 200 and body["steps"] == len(
            body["tokens"]
        ) > 0, f"{r.status_code}, {model['id']}, {body.get('steps')} steps"

    def stream_check() -> tuple[bool, str]:
        assert model is not None, "no models are loaded"
        ws_url = url.replace("http", "ws", 1) + f"/api/models/{model['id']}/stream"
        steps, grads, last = asyncio.run(stream(ws_url, text))
        return last == "done" and steps == grads > 0, f"{steps} step frames, {grads} grad frames, then {last}"

    def page() -> tuple[bool, str]:
        r = httpx.get(f"{url}/")
        csp = r.headers.get("content-security-policy", "")
        ok = r.status_code == 200 and "text/html" in r.headers.get("content-type", "") and "script-src 'self'" in csp
        return ok, f"{r.status_code} {r.headers.get('content-type')}, CSP {'set' if csp else 'missing'}"

    def bundled() -> tuple[bool, str]:
        # The image's static/build (the Dockerfile's Node.js stage): served only where it was made from the modules
        # the image holds; otherwise the pages fall back to the modules one by one and Plotly's full bundle.
        html = httpx.get(f"{url}/tour").text
        modules = re.findall(r'src="(/static/[^"]+)"', html)
        plotly = next((m for m in modules if "plotly" in m), "")
        r = httpx.get(f"{url}{plotly}", headers={"Accept-Encoding": "br"}) if plotly else None
        ok = any(m.startswith("/static/build/js/") for m in modules) and plotly.startswith("/static/build/vendor/")
        ok = ok and r is not None and r.status_code == 200 and r.headers.get("content-encoding") == "br"
        sent = r.num_bytes_downloaded if r is not None else 0
        return ok, f"scripts {', '.join(m.split('?')[0] for m in modules)}; Plotly {sent} bytes in br"

    def not_root() -> tuple[bool, str]:
        return args.server_uid not in ("0", "unknown"), f"server process uid {args.server_uid}"

    def metrics_apart() -> tuple[bool, str]:
        public = httpx.get(f"{url}/metrics").status_code
        private = httpx.get(f"{args.metrics_url}/metrics") if args.metrics_url else None
        ok = public == 404 and private is not None and "unrolled_requests_total" in private.text
        return ok, f"public port {public}, metrics port {private.status_code if private else 'not given'}"

    def cache_read_only() -> tuple[bool, str]:
        return args.cache_writable == "False", f"compiled-kernel cache writable by the server: {args.cache_writable}"

    def locked() -> tuple[bool, str]:
        # The image installs with the lock as constraints (the Dockerfile's pip -c): every distribution in it that
        # the lock names is at the locked version, and torch is the CPU build. Build tools are not the app's.
        assert args.lock is not None, "no lock file given"
        pins = dict(line.split("==") for line in args.lock.read_text().splitlines() if "==" in line)
        pins = {canonical(name): version for name, version in pins.items()}
        have = dict(word.split("==", 1) for word in args.installed.split() if "==" in word)
        have = {canonical(name): version for name, version in have.items()}
        tools = {"pip", "setuptools", "wheel", "unrolled"}
        off = {n: (v, pins.get(n)) for n, v in have.items() if n not in tools and pins.get(n) != v}
        ok = bool(have) and not off and have.get("torch", "").endswith("+cpu")
        return ok, f"{len(have)} distributions, torch {have.get('torch')}, off the lock: {off or 'none'}"

    def health() -> tuple[bool, str]:
        return "/healthz" in args.healthcheck, f"declared health check: {args.healthcheck[:120]}"

    for name, fn in [("healthz", healthz), ("readyz", readyz), ("trace", trace), ("stream", stream_check),
                     ("page", page), ("bundled", bundled), ("non-root", not_root), ("metrics", metrics_apart),
                     ("cache", cache_read_only), ("lock", locked), ("health", health)]:  # fmt: skip
        check(name, fn)
    for name, ok, detail in results:
        print(f"{'PASS' if ok else 'FAIL'}  {name:9} {detail}")
    sys.exit(0 if all(ok for _, ok, _ in results) else 1)


if __name__ == "__main__":
    main()
