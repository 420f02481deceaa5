"""A classroom, before → after: `python -m bench.classroom [-n 200] [--window 10] > bench/classroom.txt`

200 students open the same tour scene within 10 s, on one `unrolled serve` (one worker), each doing what Chromium
does on that page (recorded once per server with Playwright: the HTML, every asset, the REST calls, each stream's
request), replayed by a lean HTTP/1.1 and WebSocket client (a general-purpose Python client spends more CPU per
request than the server and ends up measuring itself; /work/shared/classroom/load.py's, condensed).

- before: the same server with share_computations=false and static_build=false (each student's traces computed for
  it; the modules one by one and Plotly's full bundle), i.e. the server up to issue 27's classroom work;
- after: the defaults (identical computations shared and kept, static/build/'s bundles where `make install` made
  them).
For scenes 1 (three streams and a forecast a student) and 5 (one stream); students each from its own loopback
address (127.0.x.y) and all from one (a room behind a NAT); cold (a server just started, nothing computed yet, and
students with an empty browser cache: every asset fetched) then warm (the same server right after, students whose
browser holds the assets: the HTML, the REST calls and the streams). Nothing is retried: a busy answer (503, a
stream closed 4503) is counted as the student's. First frame: each stream's time from its request sent to its
first frame, all of a run's streams. Bytes: HTTP bodies as they came over the wire (compressed) and stream
messages, per student. Server CPU: the server process's user and system seconds during the run (the wall-clock
times above move with whatever else the machine runs; these do not).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.web.config import ROOT
from bench.common import table
from tests.conftest import free_port

BROWSER = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/140 classroom-bench",
    "Accept-Encoding": "gzip, deflate, br, zstd",
}
SCENES = ["/tour?scene=1", "/tour?scene=5"]
BEFORE = {"UNROLLED_SHARE_COMPUTATIONS": "false", "UNROLLED_STATIC_BUILD": "false"}
AFTER: dict[str, str] = {}


@contextmanager
def server(env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """`unrolled serve` on a free loopback port, one worker; (its base URL, its pid)."""
    port = free_port()
    cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    full_env = {**os.environ, "UNROLLED_LOG_LEVEL": "warning", "UNROLLED_WORKERS": "1", "PYTHONPATH": str(ROOT), **env}
    proc = subprocess.Popen(cmd, env=full_env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not get ready")
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- what a browser does on the page, recorded once


@dataclass
class Plan:
    path: str
    assets: list[str]  # every static file, in request order
    api: list[tuple[str, str, bytes | None, str | None]]  # (method, path, body, its Content-Type)
    sockets: list[tuple[str, str]]  # (path, the request it sends)


def record(base: str, path: str) -> Plan:
    """One student alone in Chromium (Debian's, through Playwright), an empty cache, until the scene has run."""
    from playwright.sync_api import sync_playwright

    requests: list[tuple[str, str, str, bytes | None, str | None]] = []
    sockets: list[dict[str, Any]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        # the body as bytes and its type: the speech and caption scenes POST a WAV and a PNG, not JSON
        page.on(
            "request",
            lambda r: requests.append(
                (r.resource_type, r.method, r.url, r.post_data_buffer, r.headers.get("content-type"))
            ),
        )

        def on_socket(ws: Any) -> None:
            s: dict[str, Any] = {"url": ws.url, "sent": [], "closed": False}
            ws.on("framesent", lambda payload: s["sent"].append(payload))
            ws.on("close", lambda _: s.update(closed=True))
            sockets.append(s)

        page.on("websocket", on_socket)
        page.goto(base + path)
        page.wait_for_function("() => window.__unrolled?.tour?.ready === true", timeout=120_000)
        deadline = time.monotonic() + 120
        while not (sockets and all(s["closed"] for s in sockets)) and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        page.wait_for_timeout(500)  # late requests (the favicon)
        browser.close()

    def local(url: str) -> str:
        u = urlsplit(url)
        return u.path + (f"?{u.query}" if u.query else "")

    assets = [local(u) for kind, _, u, _, _ in requests if kind not in ("document", "fetch", "xhr", "websocket")]
    api = [(m, local(u), body, ctype) for kind, m, u, body, ctype in requests if kind in ("fetch", "xhr")]
    streams = [(urlsplit(s["url"]).path, str(s["sent"][0])) for s in sockets if s["sent"]]
    return Plan(path, [a for a in assets if a.startswith("/")], api, streams)


# --- the lean client


class Conn:
    """One HTTP/1.1 keep-alive connection: the request written at once, the head parsed, the body counted."""

    def __init__(self, host: str, port: int, ip: str) -> None:
        self.host, self.port, self.ip = host, port, ip
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> tuple[int, int]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, limit=1 << 20, local_addr=(self.ip, 0)
            )
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if body is not None:
            head += f"Content-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        h = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:] if ":" in x)}
        size = 0
        if status not in (204, 304) and "content-length" in h:
            size = int(h["content-length"])
            await self.reader.readexactly(size)
        elif "chunked" in h.get("transfer-encoding", ""):
            while True:
                chunk = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(chunk + 2)
                size += chunk
                if chunk == 0:
                    break
        if h.get("connection", "").lower() == "close":
            self.close()
        return status, size

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


@dataclass
class Student:
    ip: str
    start: float
    http_bytes: int = 0
    ws_bytes: int = 0
    busy: int = 0
    errors: list[str] = field(default_factory=list)
    first_frames: list[float] = field(default_factory=list)  # each stream: request sent → first frame


class Browser:
    """A student's browser: up to six keep-alive connections, from the student's address."""

    def __init__(self, base: str, student: Student) -> None:
        u = urlsplit(base)
        self.host, self.port, self.student = u.hostname or "127.0.0.1", u.port or 80, student
        self.idle: list[Conn] = []
        self.opened: list[Conn] = []
        self.slots = asyncio.Semaphore(6)

    async def fetch(self, method: str, path: str, body: bytes | None = None, ctype: str | None = None) -> None:
        headers = {**BROWSER, **({"Content-Type": ctype or "application/json"} if body is not None else {})}
        async with self.slots:
            conn = self.idle.pop() if self.idle else None
            if conn is None:
                conn = Conn(self.host, self.port, self.student.ip)
                self.opened.append(conn)
            status, size = await conn.request(method, path, headers, body)
            self.idle.append(conn)
        self.student.http_bytes += size
        if status == 503:
            self.student.busy += 1
        elif status >= 400:
            self.student.errors.append(f"{status} {path}")

    async def stream(self, base: str, path: str, request: str) -> None:
        st = self.student
        try:
            async with connect(
                base.replace("http", "ws", 1) + path,
                origin=base,  # type: ignore[arg-type]
                compression=None,
                max_size=None,
                open_timeout=120,
                local_addr=(st.ip, 0),
            ) as ws:
                await ws.send(request)
                sent = time.monotonic()
                first = True
                async for message in ws:
                    if first:
                        st.first_frames.append(time.monotonic() - sent)
                        first = False
                    st.ws_bytes += len(message) if isinstance(message, bytes) else len(message.encode())
                    if isinstance(message, str) and message.startswith('{"type":"error"'):
                        if '"busy"' in message[:40]:
                            st.busy += 1
                        else:
                            st.errors.append(message[:100])
                        return
                    if isinstance(message, str) and message.startswith('{"type":"done"'):
                        return
        except ConnectionClosed as e:
            if e.rcvd is not None and e.rcvd.code == 4503:
                st.busy += 1
            else:
                st.errors.append(f"closed {e}")
        except OSError as e:
            st.errors.append(f"{type(e).__name__} {e}")

    def close(self) -> None:
        for conn in self.opened:
            conn.close()


async def visit(base: str, plan: Plan, student: Student, cold: bool) -> None:
    browser = Browser(base, student)
    try:
        await browser.fetch("GET", plan.path)
        if cold:
            await asyncio.gather(*(browser.fetch("GET", path) for path in plan.assets))
        calls = [browser.fetch(method, path, body, ctype) for method, path, body, ctype in plan.api]
        streams = [browser.stream(base, path, request) for path, request in plan.sockets]
        await asyncio.gather(*calls, *streams)
    except (OSError, asyncio.IncompleteReadError) as e:
        student.errors.append(f"{type(e).__name__} {e}")
    finally:
        browser.close()


async def classroom(base: str, plan: Plan, n: int, window: float, shared_ip: bool, cold: bool) -> list[Student]:
    rng = random.Random(27)
    students = [
        Student("127.0.0.1" if shared_ip else f"127.0.{(i + 2) // 256}.{(i + 2) % 256}", rng.uniform(0, window))
        for i in range(n)
    ]
    t0 = time.monotonic()

    async def one(st: Student) -> None:
        await asyncio.sleep(max(0.0, st.start - (time.monotonic() - t0)))
        try:
            await asyncio.wait_for(visit(base, plan, st, cold), 120)
        except TimeoutError:
            st.errors.append("no answer within 120 s")

    await asyncio.gather(*(one(st) for st in students))
    return students


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))] if s else float("nan")


@dataclass
class Outcome:
    busy: int  # busy answers
    busy_students: int
    errors: int
    p50: float
    p95: float
    p99: float
    mb_per_student: float
    cpu_s: float  # the server process's CPU seconds during the run (user + system: load-independent, unlike p99)


def outcome(students: list[Student], cpu_s: float) -> Outcome:
    frames = [t for st in students for t in st.first_frames]
    return Outcome(
        busy=sum(st.busy for st in students),
        busy_students=sum(st.busy > 0 for st in students),
        errors=sum(bool(st.errors) for st in students),
        p50=quantile(frames, 0.5),
        p95=quantile(frames, 0.95),
        p99=quantile(frames, 0.99),
        mb_per_student=sum(st.http_bytes + st.ws_bytes for st in students) / len(students) / 1e6,
        cpu_s=cpu_s,
    )


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far, user and system (/proc/<pid>/stat's utime and stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    env: dict[str, str], n: int, window: float, scenes: list[str] = SCENES
) -> dict[tuple[str, str, str], Outcome]:
    """(scene, addresses, cache) → what the room saw, on servers configured by `env`."""
    with server(env) as (base, _):
        plans = {scene: record(base, scene) for scene in scenes}
    for scene, plan in plans.items():
        print(f"# {env or 'defaults'} {scene}: {len(plan.assets)} assets, {len(plan.api)} REST calls, "
              f"{len(plan.sockets)} streams", file=sys.stderr)  # fmt: skip
    results: dict[tuple[str, str, str], Outcome] = {}
    for scene, plan in plans.items():
        for addresses in ("separate", "one"):
            with server(env) as (base, pid):  # a server just started: nothing computed, nothing kept
                for cache in ("cold", "warm"):
                    cpu = cpu_seconds(pid)
                    students = asyncio.run(classroom(base, plan, n, window, addresses == "one", cache == "cold"))
                    results[(scene, addresses, cache)] = got = outcome(students, cpu_seconds(pid) - cpu)
                    print(f"# {scene} {addresses} {cache}: {got}", file=sys.stderr)
                    if any(st.errors for st in students):
                        print(f"#   errors: {[e for st in students for e in st.errors][:5]}", file=sys.stderr)
    return results


def scene_numbers(spec: str) -> list[int]:
    """'all' → every scene of the built-in tour; '1,5' → [1, 5]."""
    if spec == "all":
        tour = json.loads((ROOT / "tours" / "deep-learning-for-sequences.json").read_text())
        return list(range(1, len(tour["scenes"]) + 1))
    return [int(k) for k in spec.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=200, help="students")
    ap.add_argument("--window", type=float, default=10.0, help="seconds within which they arrive")
    ap.add_argument(
        "--scenes", default="1,5", help="the tour's scenes, by number (comma-separated) or 'all' (default 1,5)"
    )
    ap.add_argument("--after-only", action="store_true", help="only the defaults, no before (a table of after)")
    args = ap.parse_args()
    scenes = [f"/tour?scene={k}" for k in scene_numbers(args.scenes)]
    after = measure(AFTER, args.n, args.window, scenes)
    if args.after_only:
        print(f"{args.n} students within {args.window:g} s, one worker, {os.cpu_count()} cores; the defaults")
        headers = ["scene", "addresses", "cache", "busy answers", "students busy", "first frame p50 s", "p95 s",
                   "p99 s", "MB a student", "server CPU s", "students with errors"]  # fmt: skip
        print(table(headers, [
            [*key, a.busy, a.busy_students, f"{a.p50:.3f}", f"{a.p95:.3f}", f"{a.p99:.3f}", f"{a.mb_per_student:.3f}",
             f"{a.cpu_s:.1f}", a.errors]
            for key, a in after.items()
        ]))  # fmt: skip
        print("goal: 0 busy answers; first frame p99 ≤ 1 s cold and ≤ 0.1 s warm; ≤ 0.8 MB a cold student")
        return
    before = measure(BEFORE, args.n, args.window, scenes)
    rows = []
    for key in before:
        b, a = before[key], after[key]
        rows.append([
            *key,
            f"{b.busy} → {a.busy}",
            f"{b.busy_students} → {a.busy_students}",
            f"{b.p50:.3f} → {a.p50:.3f}",
            f"{b.p95:.3f} → {a.p95:.3f}",
            f"{b.p99:.3f} → {a.p99:.3f}",
            f"{b.mb_per_student:.3f} → {a.mb_per_student:.3f}",
            f"{b.cpu_s:.1f} → {a.cpu_s:.1f}",
            f"{b.errors} → {a.errors}",
        ])  # fmt: skip
    print(f"{args.n} students within {args.window:g} s, one worker, {os.cpu_count()} cores; before → after")
    headers = ["scene", "addresses", "cache", "busy answers", "students busy", "first frame p50 s", "p95 s", "p99 s",
               "MB a student", "server CPU s", "students with errors"]  # fmt: skip
    print(table(headers, rows))
    print("goal: 0 busy answers; first frame p99 ≤ 1 s cold and ≤ 0.1 s warm; ≤ 0.8 MB a cold student")


if __name__ == "__main__":
    main()
