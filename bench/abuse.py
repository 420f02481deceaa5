"""Abuse: slow, idle and greedy clients against a real `unrolled serve`. `python -m bench.abuse [--scale 0.2]`

The attacks of issue 13, at the issue's scale unless --scale shrinks them (counts and durations):
  slow-reader    20 raw connections (4 KB receive buffer) each post a 10,000-character trace to charlm-lstm with
                 top_k 20 (a ~90 MB answer) and never read it; held 30 s
  trickle        8 streams with batch 1 on a 10,000-character text, each read 4 KB at a time, once a second; 20 s
  idle-sockets   64 WebSockets that complete the handshake and send nothing, plus 2 new ones a second; 20 s
  greedy-client  12 concurrent generate requests (8,000-character prompt, length 2000) from one client, until done
  slow-headers   5 connections each sending a 40 MB request head that never ends; 20 s
For each: the server's resident memory when idle before it, its peak, and the seconds until it is back within
--tolerance-mb of idle once the attackers have left; meanwhile a visitor's latency (a 5-step trace of
alphabet-lstm; a stream too in the stream attacks; its own decoding included) beside the same visitor on the idle
server; and what the attackers got. Attackers send X-Forwarded-For 10.0.0.1 and the visitor 10.0.0.2 (uvicorn
trusts it from loopback), so a server that schedules per client tells them apart.
Loopback only; settings come from UNROLLED_* variables (or --env). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect
from websockets.typing import Origin

from app.web.config import ROOT, Settings
from bench.common import table

ATTACKER_IP = "10.0.0.1"
VISITOR_IP = "10.0.0.2"
ATTACK_MODEL = "charlm-lstm"
VISITOR_MODEL = "alphabet-lstm"
SMALL_RCVBUF = 4096  # the slow clients' receive buffer (Linux doubles it)
MIN_SECONDS = 12.0  # a scaled-down attack still outlasts a 10 s send_timeout
GREEDY_LIMIT = 300.0  # seconds the greedy client's requests may take in all
SPEECH = "The American people. Thank you so much. We believe that every child can go to school, and work. "


def long_text(chars: int) -> str:
    return (SPEECH * (chars // len(SPEECH) + 1))[:chars]


# ---------------------------------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tree_pids(pid: int) -> list[int]:
    """The process and all its descendants (uvicorn's worker processes, if there are several)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def rss_mb(pids: list[int]) -> float:
    """Resident memory (VmRSS) of these processes, summed, in MiB; a process that has gone counts 0."""
    kib = 0
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        kib += next((int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmRSS:")), 0)
    return kib / 1024


class Server:
    """`unrolled serve` on a loopback port, its output in a log file, always stopped by stop()."""

    def __init__(self, models: Path, port: int, log_path: Path) -> None:
        self.models, self.fixed_port, self.log_path = models, port, log_path
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._pids: list[int] = []
        self._pids_at = 0.0

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.hostport}"

    def start(self) -> None:
        self.port = self.fixed_port or free_port()
        script = Path(sys.executable).with_name("unrolled")  # the installed entry point; else the same code by -m
        cmd = [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]
        cmd += ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        env = {"UNROLLED_LOG_LEVEL": "warning", **os.environ, "UNROLLED_MODELS_DIR": str(self.models)}
        with self.log_path.open("ab") as log:
            log.write(f"--- {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._pids_at = 0.0
        if self.wait_ready(120):
            return
        self.stop()
        raise RuntimeError(f"`unrolled serve` did not become ready; its log ends:\n{self.log_tail()}")

    def ready(self) -> bool:
        try:
            with httpx.Client(timeout=2, trust_env=False) as c:
                r = c.get(f"{self.url}/readyz")
                if r.status_code == 404:  # no readiness probe: health will do
                    r = c.get(f"{self.url}/healthz")
                return r.status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.alive():
            if self.ready():
                return True
            time.sleep(0.2)
        return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_mb(self) -> float:
        if self.proc is None:
            return 0.0
        now = time.monotonic()
        if now - self._pids_at > 1.0:
            self._pids, self._pids_at = tree_pids(self.proc.pid), now
        return rss_mb(self._pids)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class RssSampler:
    """Samples the server's resident memory every 50 ms in a thread, for the peak over any window."""

    def __init__(self, server: Server, interval: float = 0.05) -> None:
        self.server, self.interval = server, interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append((time.monotonic(), self.server.rss_mb()))
            if len(self.samples) > 200_000:
                del self.samples[:100_000]

    def peak(self, since: float, until: float) -> float:
        window = [mb for t, mb in list(self.samples) if since <= t <= until]
        return max(window, default=self.server.rss_mb())


# ------------------------------------------------------------------------------------------- the attackers' kit


class Refused(Exception):
    """The WebSocket handshake was not answered 101."""


@dataclass
class Conn:
    """One attacker: its connection, and what it got."""

    started: float = 0.0  # monotonic: connected (or request sent)
    port: int = 0  # its local port, by which the server's end is found in /proc/net/tcp (0: not watched)
    engaged: threading.Event = field(default_factory=threading.Event)  # the attack is under way (or failed)
    result: str = "no answer"  # e.g. "HTTP 200", "close 4408 (timeout)", "refused: HTTP 503"
    ended_at: float | None = None  # seconds after `started` when the server ended it (closed, cut off, answered)
    sent_mb: float | None = None
    missing_since: float | None = None  # the server's end not seen in /proc/net/tcp since (monotonic)
    read_bytes: int | None = None  # what it read in all

    def end(self) -> None:
        if self.ended_at is None:
            self.ended_at = time.monotonic() - self.started if self.started else 0.0

    def fail(self, e: BaseException) -> None:
        self.result = {"ConnectionResetError": "reset", "BrokenPipeError": "reset"}.get(type(e).__name__) or (
            "timed out" if isinstance(e, TimeoutError) else type(e).__name__
        )
        self.end()


class Sockets:
    """Every attacker socket, so that none outlives its scenario even if its thread is stuck."""

    def __init__(self) -> None:
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def new(self, rcvbuf: int | None = None, timeout: float = 10.0) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: the window follows it
        s.settimeout(timeout)
        with self._lock:
            self._open.add(s)
        return s

    def close(self, s: socket.socket) -> None:
        with self._lock:
            self._open.discard(s)
        s.close()

    def close_all(self) -> int:
        with self._lock:
            left, self._open = self._open, set()
        for s in left:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked on it
            s.close()
        return len(left)


ESTABLISHED = "01"  # /proc/net/tcp's state code


def server_ends(server_port: int) -> dict[int, str]:
    """The TCP state of the server's end of each connection to its port, by the client's port. Seen from here, so
    a client that reads nothing still learns when the server gave up on it (its FIN waits behind unread data)."""
    states: dict[int, str] = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) < 4 or int(f[1].rsplit(":", 1)[1], 16) != server_port:
                continue
            client = int(f[2].rsplit(":", 1)[1], 16)
            if client and states.get(client) != ESTABLISHED:
                states[client] = f[3]
    return states


def watch_server_ends(conns: list[Conn], server_port: int, stop: threading.Event) -> None:
    """Marks each watched connection ended when the server's end of it has left ESTABLISHED (closed or gone) in
    two reads in a row: /proc/net/tcp is read a page at a time, and may miss a line while the table changes."""
    while not stop.wait(0.25):
        states, now = server_ends(server_port), time.monotonic()
        for c in list(conns):
            if not c.port or c.ended_at is not None:
                continue
            if states.get(c.port) == ESTABLISHED:
                c.missing_since = None
            elif c.missing_since is None:
                c.missing_since = now
            else:
                c.ended_at = c.missing_since - c.started


def peek_status(s: socket.socket) -> str | None:
    """The answer's status, read without taking it from the receive buffer (None: nothing yet)."""
    try:
        head = s.recv(64, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return None
    except OSError as e:
        return "reset" if isinstance(e, ConnectionResetError) else type(e).__name__
    return status_of(head)


def status_of(head: bytes) -> str:
    if not head:
        return "closed without an answer"
    parts = head.split(b" ", 2)
    if head.startswith(b"HTTP/") and len(parts) >= 2:
        return f"HTTP {parts[1].decode(errors='replace')}"
    return "garbage answer"


DRAIN_SECONDS = 3.0  # a slow client, leaving, reads at full speed for this long to learn what the server still sent
DRAIN_IDLE = 1.0  # … or until nothing has come for this long


def drain(s: socket.socket, feed: Callable[[bytes], bool]) -> str:
    """Reads what the server still sends, fast, for at most DRAIN_SECONDS; feed() says when the answer is whole.
    Returns "whole" (it is), "closed" (the server closed first), "stalled" (it stopped sending), or "flowing"."""
    deadline = time.monotonic() + DRAIN_SECONDS
    s.settimeout(DRAIN_IDLE)
    while time.monotonic() < deadline:
        try:
            data = s.recv(1 << 20)
        except TimeoutError:
            return "stalled"
        except OSError:
            return "closed"
        if not data:
            return "closed"
        if feed(data):
            return "whole"
    return "flowing"


LEFT_WITH = {  # what a slow client found when it read fast at last, before leaving
    "whole": ", sent in full once read",
    "flowing": ", still being sent once read",
    "stalled": ", cut off (nothing more came)",
    "closed": ", cut off (closed)",
}


class HttpAnswer:
    """Counts an HTTP answer's body as it comes, to learn whether all of it (Content-Length) came."""

    def __init__(self) -> None:
        self.head = b""
        self.length: int | None = None  # Content-Length; -1: chunked (whole at the last chunk)
        self.body = 0
        self.tail = b""

    def feed(self, data: bytes) -> bool:
        if self.length is None:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return False
            head, rest = self.head.split(b"\r\n\r\n", 1)
            found = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            self.length, self.head = (int(found[1]) if found else -1), head
            data = rest
        self.body += len(data)
        self.tail = (self.tail + data)[-5:]
        return self.body >= self.length >= 0 or (self.length < 0 and self.tail == b"0\r\n\r\n")


def ws_open(s: socket.socket, hostport: str, path: str) -> bytes:
    """A WebSocket handshake on a connected socket, as a browser on the server's own page would send it. Returns
    the bytes after the answer's head (the first frames, if any); Refused if it is not 101."""
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://{hostport}\r\n"
        f"X-Forwarded-For: {ATTACKER_IP}\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        data = s.recv(4096)
        if not data:
            raise Refused("closed during the handshake")
        answer += data
        if len(answer) > 65536:
            raise Refused("an endless handshake answer")
    head, rest = answer.split(b"\r\n\r\n", 1)
    status = status_of(head)
    if status != "HTTP 101":
        raise Refused(status)
    return rest


def ws_frame(payload: bytes, opcode: int = 1) -> bytes:
    """One client frame (masked, as a client's must be)."""
    n, mask = len(payload), os.urandom(4)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
    return head + mask + masked


class FrameScanner:
    """The server's WebSocket frames, read from raw bytes as they come; keeps only each message's first bytes (its
    type, an error's name), so a trickle reader's memory stays small."""

    KEEP = 96

    def __init__(self) -> None:
        self.buf = bytearray()
        self.remaining = 0  # payload bytes of the current frame still to come
        self.opcode = 0
        self.head = bytearray()
        self.received = 0
        self.messages = 0
        self.done = False
        self.error: str | None = None
        self.close_code: int | None = None

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        self.buf += data
        while True:
            if self.remaining:
                take = min(self.remaining, len(self.buf))
                if take == 0:
                    return
                room = self.KEEP - len(self.head)
                if room > 0:
                    self.head += self.buf[: min(take, room)]
                del self.buf[:take]
                self.remaining -= take
                if self.remaining:
                    return
                self._message()
                continue
            header = self._header()
            if header is None:
                return
            self.opcode, self.remaining = header
            self.head = bytearray()
            if self.remaining == 0:
                self._message()

    def _header(self) -> tuple[int, int] | None:
        b = self.buf
        if len(b) < 2:
            return None
        n, at = b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, at = int.from_bytes(b[2:4], "big"), 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, at = int.from_bytes(b[2:10], "big"), 10
        at += 4 if b[1] & 0x80 else 0
        if len(b) < at:
            return None
        opcode = b[0] & 0x0F
        del b[:at]
        return opcode, n

    def _message(self) -> None:
        head = bytes(self.head)
        if self.opcode == 8:
            self.close_code = int.from_bytes(head[:2], "big") if len(head) >= 2 else 1005
        elif self.opcode in (0, 1, 2):
            self.messages += 1
            kind = re.search(rb'"type":\s*"(\w+)"', head)
            if kind and kind[1] == b"done":
                self.done = True
            elif kind and kind[1] == b"error":
                name = re.search(rb'"error":\s*"([^"]*)"', head)
                self.error = name[1].decode(errors="replace") if name else "error"

    def outcome(self) -> str | None:
        if self.close_code is not None:
            return f"close {self.close_code}" + (f" ({self.error})" if self.error else "")
        return "read to the end" if self.done else None


# ------------------------------------------------------------------------------------------------------ scenarios


@dataclass
class Ctx:
    """One scenario's run: the server, the scale, the attackers and their sockets."""

    server: Server
    scale: float
    stop: threading.Event = field(default_factory=threading.Event)  # the attackers leave
    conns: list[Conn] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    sockets: Sockets = field(default_factory=Sockets)

    def count(self, full: int) -> int:
        return max(1, round(full * self.scale))

    def seconds(self, full: float) -> float:
        return max(full * self.scale, min(full, MIN_SECONDS))

    def spawn(self, attacker: Callable[[Ctx, Conn], None], conn: Conn | None = None) -> Conn:
        conn = conn or Conn()
        self.conns.append(conn)
        thread = threading.Thread(target=attacker, args=(self, conn), daemon=True)
        self.threads.append(thread)
        thread.start()
        return conn

    def connect(self, s: socket.socket, conn: Conn) -> None:
        s.connect(("127.0.0.1", self.server.port))
        conn.port, conn.started = s.getsockname()[1], time.monotonic()

    def sleep_until(self, deadline: float) -> None:
        self.stop.wait(max(0.0, deadline - time.monotonic()))


Wait = Callable[[], None]  # blocks until the attack is over


def slow_reader(ctx: Ctx) -> Wait:
    body = orjson.dumps({"text": long_text(10_000), "top_k": 20})
    request = (
        f"POST /api/models/{ATTACK_MODEL}/trace HTTP/1.1\r\nHost: {ctx.server.hostport}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nX-Forwarded-For: {ATTACKER_IP}\r\n\r\n"
    ).encode() + body

    def attacker(ctx: Ctx, conn: Conn) -> None:
        s = ctx.sockets.new(rcvbuf=SMALL_RCVBUF)
        try:
            ctx.connect(s, conn)
            s.sendall(request)
            conn.engaged.set()
            while True:  # until the attackers leave
                if conn.result == "no answer":  # its status line is peeked at, never taken: the answer stays unread
                    conn.result = peek_status(s) or conn.result
                if ctx.stop.wait(0.5):
                    break
            # Leaving: read fast what the server still has for it, to tell an answer cut off from one still sent.
            answer = HttpAnswer()
            how = drain(s, answer.feed)
            if conn.result.startswith("HTTP 2"):  # the big answer: did the server give up on it?
                conn.result += LEFT_WITH[how]
                conn.read_bytes = answer.body
        except OSError as e:
            conn.fail(e)
        finally:
            conn.engaged.set()
            ctx.sockets.close(s)

    for _ in range(ctx.count(20)):
        ctx.spawn(attacker)
    deadline = time.monotonic() + ctx.seconds(30)
    return lambda: ctx.sleep_until(deadline)


def trickle(ctx: Ctx) -> Wait:
    request = orjson.dumps({"text": long_text(10_000), "batch": 1})
    path = f"/api/models/{ATTACK_MODEL}/stream"

    def attacker(ctx: Ctx, conn: Conn) -> None:
        s = ctx.sockets.new(rcvbuf=SMALL_RCVBUF)
        scan = FrameScanner()
        try:
            ctx.connect(s, conn)
            scan.feed(ws_open(s, ctx.server.hostport, path))
            s.sendall(ws_frame(request))
            conn.result = "read a trickle"
            conn.engaged.set()
            s.settimeout(1.0)
            while not ctx.stop.is_set() and scan.outcome() is None:
                try:
                    data = s.recv(SMALL_RCVBUF)
                except TimeoutError:
                    continue
                if not data:
                    conn.result = "closed without a close frame"
                    conn.end()
                    break
                scan.feed(data)
                ctx.stop.wait(1.0)  # one small read a second
            conn.read_bytes = scan.received
            if scan.outcome() is not None:
                conn.result = scan.outcome() or conn.result
                conn.end()
            elif conn.result == "read a trickle":
                # Leaving: read fast what the server still has for it, to tell a stream cut off from one still sent.
                def whole(data: bytes) -> bool:
                    scan.feed(data)
                    return scan.outcome() is not None

                how = drain(s, whole)
                if scan.close_code is not None:
                    conn.result += f", cut off ({scan.outcome()})"
                else:
                    conn.result += LEFT_WITH[how]
        except Refused as e:
            conn.result = f"refused: {e}"
            conn.end()
        except OSError as e:
            conn.fail(e)
        finally:
            if conn.read_bytes is None:
                conn.read_bytes = scan.received
            conn.engaged.set()
            ctx.sockets.close(s)

    for _ in range(ctx.count(8)):
        ctx.spawn(attacker)
    deadline = time.monotonic() + ctx.seconds(20)
    return lambda: ctx.sleep_until(deadline)


def idle_sockets(ctx: Ctx) -> Wait:
    path = f"/api/models/{ATTACK_MODEL}/stream"

    def attacker(ctx: Ctx, conn: Conn) -> None:
        s = ctx.sockets.new()
        scan = FrameScanner()
        try:
            ctx.connect(s, conn)
            scan.feed(ws_open(s, ctx.server.hostport, path))
            conn.result = "idle"
            conn.engaged.set()
            s.settimeout(0.5)
            while not ctx.stop.is_set() and scan.close_code is None:
                try:
                    data = s.recv(4096)
                except TimeoutError:
                    continue
                if not data:
                    conn.result = "closed without a close frame"
                    conn.end()
                    break
                scan.feed(data)
            if scan.close_code is not None:
                conn.result = scan.outcome() or conn.result
                conn.end()
        except Refused as e:
            conn.result = f"refused: {e}"
            conn.end()
        except OSError as e:
            conn.fail(e)
        finally:
            conn.engaged.set()
            ctx.sockets.close(s)

    for _ in range(ctx.count(64)):
        ctx.spawn(attacker)
    deadline = time.monotonic() + ctx.seconds(20)
    per_second = 2 * ctx.scale if ctx.scale < 1 else 2.0

    def keep_coming() -> None:  # ~2 new idle sockets a second (joined with the attackers' threads)
        while not ctx.stop.wait(1 / per_second) and time.monotonic() < deadline:
            ctx.spawn(attacker)

    spawner = threading.Thread(target=keep_coming, daemon=True)
    spawner.start()

    def wait() -> None:
        ctx.sleep_until(deadline)
        spawner.join(timeout=5)

    return wait


def greedy_client(ctx: Ctx) -> Wait:
    body = orjson.dumps({"prompt": long_text(8_000), "length": 2000})
    url = f"{ctx.server.url}/api/models/{ATTACK_MODEL}/generate"

    def attacker(ctx: Ctx, conn: Conn) -> None:
        conn.started = time.monotonic()
        conn.engaged.set()
        try:
            timeout = httpx.Timeout(GREEDY_LIMIT, connect=10)
            headers = {"X-Forwarded-For": ATTACKER_IP, "Content-Type": "application/json"}
            with (
                httpx.Client(timeout=timeout, trust_env=False, headers=headers) as client,
                client.stream("POST", url, content=body) as r,
            ):
                conn.result = f"HTTP {r.status_code}"
                for _ in r.iter_bytes(1 << 20):  # read and dropped: the client's memory stays small
                    if ctx.stop.is_set():
                        conn.result += ", left unfinished"
                        break
        except httpx.HTTPError as e:
            conn.result = type(e).__name__
        finally:
            conn.end()

    for _ in range(ctx.count(12)):
        ctx.spawn(attacker)
    deadline = time.monotonic() + GREEDY_LIMIT

    def wait() -> None:  # until every request is answered
        for t in list(ctx.threads):
            t.join(timeout=max(0.0, deadline - time.monotonic()))

    return wait


def slow_headers(ctx: Ctx) -> Wait:
    size = 40_000_000
    head = f"GET / HTTP/1.1\r\nHost: {ctx.server.hostport}\r\nX-Forwarded-For: {ATTACKER_IP}\r\nX-A: ".encode()
    deadline = time.monotonic() + ctx.seconds(20)

    def attacker(ctx: Ctx, conn: Conn) -> None:
        s = ctx.sockets.new(timeout=5.0)
        sent = 0
        try:
            ctx.connect(s, conn)
            s.sendall(head)
            conn.result = "held open"
            conn.engaged.set()
            chunk = b"a" * 65536
            try:
                while sent < size and not ctx.stop.is_set() and time.monotonic() < deadline:
                    s.sendall(chunk[: size - sent])  # never the blank line that would end the head
                    sent += min(len(chunk), size - sent)
            except TimeoutError:
                pass  # the server stopped reading: wait for what it says
            except OSError:
                conn.end()  # cut off: its answer may still be in the receive buffer
            s.settimeout(0.5)
            while not ctx.stop.is_set():
                try:
                    answer = s.recv(4096)
                except TimeoutError:
                    continue
                conn.result = status_of(answer)
                conn.end()
                break
        except OSError as e:
            conn.fail(e)
        finally:
            conn.sent_mb = sent / 1e6
            conn.engaged.set()
            ctx.sockets.close(s)

    for _ in range(ctx.count(5)):
        ctx.spawn(attacker)
    return lambda: ctx.sleep_until(deadline)


@dataclass(frozen=True)
class Scenario:
    name: str
    launch: Callable[[Ctx], Wait]  # starts the attackers; returns what waits for the attack to be over
    visitor: tuple[str, ...]  # "trace", "stream"
    ended: str  # how the summary names a connection the server ended
    what: Callable[[Ctx], str]


SCENARIOS = {
    s.name: s
    for s in [
        Scenario("slow-reader", slow_reader, ("trace",), "server closed it",
                 lambda c: f"{c.count(20)} × 10,000-char trace (top_k 20), never read, {c.seconds(30):g} s"),
        Scenario("trickle", trickle, ("trace", "stream"), "server closed it",
                 lambda c: f"{c.count(8)} × 10,000-char stream (batch 1), 4 KB read a second, {c.seconds(20):g} s"),
        Scenario("idle-sockets", idle_sockets, ("trace", "stream"), "server closed it",
                 lambda c: f"{c.count(64)} idle WebSockets, + {min(2, 2 * c.scale):g}/s, {c.seconds(20):g} s"),
        Scenario("greedy-client", greedy_client, ("trace",), "answered",
                 lambda c: f"{c.count(12)} × generate (8,000-char prompt, length 2000) at once, until answered"),
        Scenario("slow-headers", slow_headers, ("trace",), "server ended it",
                 lambda c: f"{c.count(5)} × 40 MB request head never finished, {c.seconds(20):g} s"),
    ]
}  # fmt: skip


def span(values: list[float], unit: str) -> str:
    """A sorted list of figures as "a–b unit", or "a unit" when they are all about the same."""
    lo, hi = values[0], values[-1]
    digits = 0 if unit == "KB" else 1
    if round(hi - lo, digits) == 0:
        return f"{lo:.{digits}f} {unit}"
    return f"{lo:.{digits}f}–{hi:.{digits}f} {unit}"


def summarize(conns: list[Conn], ended: str) -> str:
    groups: dict[str, list[Conn]] = {}
    for c in conns:
        groups.setdefault(c.result, []).append(c)
    parts = []
    for result, cs in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        times = sorted(c.ended_at for c in cs if c.ended_at is not None)
        notes = []
        if times:
            notes.append(f"{'' if len(times) == len(cs) else f'{len(times)} '}{ended} at {span(times, 's')}")
        if len(times) < len(cs):
            notes.append(f"{'' if not times else f'{len(cs) - len(times)} '}connection open until they left")
        sent = sorted(c.sent_mb for c in cs if c.sent_mb is not None)
        if sent:
            notes.append(f"sent {span(sent, 'MB')}")
        read = sorted(c.read_bytes for c in cs if c.read_bytes is not None)
        if read and read[-1] >= 1000:
            big = read[-1] >= 1e6
            notes.append(f"read {span([b / (1e6 if big else 1e3) for b in read], 'MB' if big else 'KB')}")
        parts.append(f"{len(cs)}× {result}" + (f" ({'; '.join(notes)})" if notes else ""))
    return ", ".join(parts) or "none"


# -------------------------------------------------------------------------------------------------- the visitor


class VisitFailed(Exception):
    pass


def visit_trace(server: Server, timeout: float) -> float:
    """A small trace over a new connection, its JSON decoded: seconds."""
    with httpx.Client(timeout=timeout, trust_env=False, headers={"X-Forwarded-For": VISITOR_IP}) as client:
        start = time.perf_counter()
        try:
            r = client.post(f"{server.url}/api/models/{VISITOR_MODEL}/trace", json={"text": "hello"})
        except httpx.HTTPError as e:
            raise VisitFailed(type(e).__name__) from e
        if r.status_code != 200:
            raise VisitFailed(f"HTTP {r.status_code}")
        steps = r.json().get("steps")
        elapsed = time.perf_counter() - start
    if steps != 5:
        raise VisitFailed("a wrong answer")
    return elapsed


def _close_code(ws: ClientConnection) -> str:
    try:
        ws.recv(timeout=2)
    except ConnectionClosed as e:
        return str(e.rcvd.code) if e.rcvd else "1006"
    except TimeoutError:
        pass
    return "(no close)"


def visit_stream(server: Server, timeout: float) -> float:
    """A small stream, from opening it to its done frame, every frame decoded: seconds."""
    start = time.perf_counter()
    deadline = start + timeout
    try:
        with ws_connect(
            f"ws://{server.hostport}/api/models/{VISITOR_MODEL}/stream",
            origin=Origin(f"http://{server.hostport}"),
            additional_headers={"X-Forwarded-For": VISITOR_IP},
            proxy=None,
            open_timeout=timeout,
            close_timeout=2,
            max_size=2**24,
        ) as ws:
            ws.send(orjson.dumps({"text": "hello"}).decode())
            while True:
                frame = orjson.loads(ws.recv(timeout=max(0.01, deadline - time.perf_counter())))
                if isinstance(frame, list):
                    continue
                if frame.get("type") == "error":
                    raise VisitFailed(f"{frame.get('error')} {_close_code(ws)}")
                if frame.get("type") == "done":
                    return time.perf_counter() - start
    except ConnectionClosed as e:
        raise VisitFailed(f"closed {e.rcvd.code if e.rcvd else 1006}") from e
    except InvalidStatus as e:
        raise VisitFailed(f"refused HTTP {e.response.status_code}") from e
    except TimeoutError as e:
        raise VisitFailed("timed out") from e
    except (InvalidHandshake, OSError) as e:
        raise VisitFailed(type(e).__name__) from e


VISITS: dict[str, Callable[[Server, float], float]] = {"trace": visit_trace, "stream": visit_stream}


@dataclass
class VisitorLog:
    times: dict[str, list[float]] = field(default_factory=dict)
    failures: Counter[str] = field(default_factory=Counter)

    def visit(self, kind: str, server: Server, timeout: float) -> None:
        try:
            self.times.setdefault(kind, []).append(VISITS[kind](server, timeout))
        except VisitFailed as e:
            self.failures[f"{kind} {e}"] += 1
        except Exception as e:  # the visitor must not die of a server's oddity: count it
            self.failures[f"{kind} {type(e).__name__}"] += 1

    def cell(self, with_max: bool = True) -> str:
        parts = []
        for kind, ts in self.times.items():
            ms = [t * 1e3 for t in ts]
            parts.append(f"{kind} {statistics.median(ms):.0f}" + (f"/{max(ms):.0f}" if with_max else ""))
        if self.failures:
            parts.append("failed: " + ", ".join(f"{n}× {what}" for what, n in self.failures.most_common()))
        return "; ".join(parts) or "-"


def visitor(server: Server, kinds: tuple[str, ...], stop: threading.Event, log: VisitorLog, timeout: float) -> None:
    """A visitor 1 s into the attack, then again every half second until it is over (at least once)."""
    stop.wait(1.0)
    while True:
        for kind in kinds:
            log.visit(kind, server, timeout)
        if stop.wait(0.5):
            return


# ----------------------------------------------------------------------------------------------------- the run


@dataclass
class Row:
    name: str
    what: str
    idle: float
    peak: float
    recovery: float | None
    after: float  # resident memory when recovery was reached or given up on
    nudged: float | None  # not recovered: resident memory 3 s after one more small request
    visitor: VisitorLog
    outcome: str


def warm_up(server: Server, timeout: float) -> None:
    """Models loaded and code paths run once, so that an attack's first seconds do not pay for them."""
    with httpx.Client(timeout=120, trust_env=False) as c:
        c.post(f"{server.url}/api/models/{ATTACK_MODEL}/trace", json={"text": long_text(1000)})
        c.post(f"{server.url}/api/models/{ATTACK_MODEL}/generate", json={"prompt": "The ", "length": 50})
    log = VisitorLog()
    for _ in range(3):
        for kind in VISITS:
            log.visit(kind, server, timeout)


def settle(server: Server) -> float:
    """Idle memory: the median of a second's samples, after a second's rest."""
    time.sleep(1.0)
    samples = []
    for _ in range(20):
        samples.append(server.rss_mb())
        time.sleep(0.05)
    return statistics.median(samples)


def run_scenario(sc: Scenario, server: Server, sampler: RssSampler, args: argparse.Namespace) -> Row:
    idle = settle(server)
    ctx = Ctx(server, args.scale)
    print(f"{sc.name}: {sc.what(ctx)} …", file=sys.stderr, flush=True)
    t_start = time.monotonic()
    watch_stop, visitor_stop = threading.Event(), threading.Event()
    watcher = threading.Thread(target=watch_server_ends, args=(ctx.conns, server.port, watch_stop), daemon=True)
    log = VisitorLog()
    guest = threading.Thread(
        target=visitor, args=(server, sc.visitor, visitor_stop, log, args.visitor_timeout), daemon=True
    )
    stuck = 0
    try:
        watcher.start()
        wait = sc.launch(ctx)
        engaged_by = time.monotonic() + 15
        for c in list(ctx.conns):
            c.engaged.wait(timeout=max(0.0, engaged_by - time.monotonic()))
        guest.start()
        wait()
    finally:
        visitor_stop.set()
        if guest.ident is not None:  # started
            guest.join(timeout=args.visitor_timeout + 10)
        watch_stop.set()
        watcher.join(timeout=5)
        ctx.stop.set()  # the attackers leave
        leave_by = time.monotonic() + 15
        for t in list(ctx.threads):
            t.join(timeout=max(0.0, leave_by - time.monotonic()))
        stuck = sum(t.is_alive() for t in ctx.threads) + ctx.sockets.close_all()
    left = time.monotonic()
    recovery: float | None = None
    after = server.rss_mb()
    while server.alive():
        after = server.rss_mb()
        if after <= idle + args.tolerance_mb:
            recovery = time.monotonic() - left
            break
        if time.monotonic() - left > args.recovery_timeout:
            break
        time.sleep(0.05)
    peak = sampler.peak(t_start, time.monotonic())
    nudged: float | None = None
    if recovery is None and server.alive():
        # Not back: is the memory merely not given back until the next computation? One small request, and see.
        VisitorLog().visit("trace", server, args.visitor_timeout)
        time.sleep(3)
        nudged = server.rss_mb()
    outcome = summarize(ctx.conns, sc.ended)
    if stuck:
        outcome += f"; {stuck} attacker sockets or threads had to be closed"
    if not server.alive():
        code = server.proc.returncode if server.proc else None
        outcome += f"; THE SERVER EXITED (code {code})"
    return Row(sc.name, sc.what(ctx), idle, peak, recovery, after, nudged, log, outcome)


def format_row(row: Row, baseline: VisitorLog, args: argparse.Namespace) -> list[str]:
    if row.recovery is not None:
        recovery = f"{row.recovery:.1f}"
    else:
        recovery = f"> {args.recovery_timeout:g} (+{row.after - row.idle:.0f} MB"
        if row.nudged is not None:
            recovery += f"; {row.nudged - row.idle:+.0f} MB after one more request"
        recovery += ")"
    kinds = set(SCENARIOS[row.name].visitor)
    base = VisitorLog({k: v for k, v in baseline.times.items() if k in kinds})
    return [
        row.name, f"{row.idle:.0f}", f"{row.peak:.0f}", f"{row.peak - row.idle:+.0f}", recovery,
        row.visitor.cell(), base.cell(with_max=False), row.outcome,
    ]  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.abuse", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--scenarios",
        nargs="+",
        choices=list(SCENARIOS),
        default=list(SCENARIOS),
        metavar="NAME",
        help=f"which attacks, in order (default: all: {' '.join(SCENARIOS)})",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="shrink the attacks: connection counts × SCALE, durations × SCALE but at least "
        f"{MIN_SECONDS:g} s (default 1: the issue's figures; 0.2 for a quick look)",
    )
    p.add_argument(
        "--tolerance-mb",
        type=float,
        default=50.0,
        help="recovered: resident memory within this many MB of idle (default 50)",
    )
    p.add_argument(
        "--recovery-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for recovery before giving up (default 30)",
    )
    p.add_argument("--visitor-timeout", type=float, default=60.0, help="seconds a visitor's request may take")
    p.add_argument("--baseline-rounds", type=int, default=10, help="visitor requests on the idle server (default 10)")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="UNROLLED_NAME=VALUE",
        help="a server setting for this run (repeatable); UNROLLED_* variables already set are used too",
    )
    p.add_argument("--fresh", action="store_true", help="a new server for each scenario (default: one for all)")
    p.add_argument("--models", type=Path, default=ROOT / "models", help="the models folder (default: models/)")
    p.add_argument("--port", type=int, default=0, help="the server's port (default: a free one)")
    args = p.parse_args(argv)
    if args.scale <= 0:
        p.error("--scale must be above 0")
    for item in args.env:
        name, eq, _ = item.partition("=")
        if not eq or not name.startswith("UNROLLED_"):
            p.error(f"--env wants UNROLLED_NAME=VALUE, not {item!r}")
    return args


SETTINGS_NOT_SHOWN = {"models_dir", "tour_dir", "host", "port", "log_level", "log_json", "cors_origins"}


def settings_line(settings: Settings) -> str:
    items = []
    for name in type(settings).model_fields:
        if name in SETTINGS_NOT_SHOWN:
            continue
        value = getattr(settings, name)
        shown = f"{value:_}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
        items.append(f"{name}={shown}")
    return textwrap.fill(", ".join(items), width=116, initial_indent="  ", subsequent_indent="  ")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops the server
    for item in args.env:
        name, _, value = item.partition("=")
        os.environ[name] = value  # read by Settings below and inherited by the server
    try:
        settings = Settings()
    except ValueError as e:
        print(f"the settings are invalid: {e}", file=sys.stderr)
        return 2
    log_path = Path(tempfile.mkstemp(prefix="unrolled-abuse-", suffix=".log")[1])
    server = Server(args.models, args.port, log_path)
    rows: list[Row] = []
    errors: list[str] = []
    baseline = VisitorLog()
    started = time.monotonic()
    try:
        with RssSampler(server) as sampler:
            for i, name in enumerate(args.scenarios):
                if server.proc is not None and (args.fresh or not server.wait_ready(30)):
                    server.stop()
                if server.proc is None:
                    print("starting `unrolled serve` …", file=sys.stderr, flush=True)
                    server.start()
                    warm_up(server, args.visitor_timeout)
                    if i == 0:  # the visitor on the idle server, before any attack
                        for _ in range(args.baseline_rounds):
                            for kind in VISITS:
                                baseline.visit(kind, server, args.visitor_timeout)
                try:
                    rows.append(run_scenario(SCENARIOS[name], server, sampler, args))
                except Exception as e:  # one broken scenario must not lose the others' figures
                    errors.append(f"{name}: {type(e).__name__}: {e}")
    except KeyboardInterrupt:
        errors.append("interrupted")
    except RuntimeError as e:
        errors.append(str(e))
    finally:
        server.stop()

    print(f"\n`unrolled serve` ({args.models}), scale {args.scale:g}, {time.monotonic() - started:.0f} s in all")
    print("the settings that bound memory and time:")
    print(settings_line(settings))
    print(
        f"RSS: the server's resident memory (VmRSS, MiB; its worker processes summed); recovery: seconds from the "
        f"attackers leaving until it is within {args.tolerance_mb:g} MB of idle.\n"
        f"visitor: ms, median/max, a 5-step trace of {VISITOR_MODEL} over HTTP (a stream of it too in the stream "
        f"attacks), decoding included; baseline: median on the idle server."
    )
    for r in rows:
        print(f"  {r.name}: {r.what}")
    headers = ["scenario", "idle RSS MB", "peak RSS MB", "growth MB", "recovery s", "visitor ms (median/max)",
               "visitor baseline ms", "attackers' outcome"]  # fmt: skip
    print(table(headers, [format_row(r, baseline, args) for r in rows]))
    log = server.log_tail(100_000)
    tracebacks = log.count("Traceback")
    print(f"server log: {log_path} ({len(log.splitlines())} lines, {tracebacks} tracebacks)")
    for error in errors:
        print(f"error: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
