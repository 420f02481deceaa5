"""The room's follow latency (issue 27): 200 students connected to one worker of a real `unrolled serve`, a
presenter who changes scene and step; for each change, the time from the presenter's send to each student's
receipt of the state. Prints p50/p95/p99/max over every (change, student), and writes bench/rooms.txt.

    PYTHONPATH=. .venv/bin/python bench/rooms.py [--students 200] [--changes 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

import httpx
import websockets

from app.web.config import ROOT, Settings
from tests.conftest import LiveServer

OUT = Path(__file__).with_suffix(".txt")


async def student(
    url: str, code: str, received: dict[int, list[float]], ready: asyncio.Event, n: list[int], total: int
) -> None:
    async with websockets.connect(f"{url}/api/rooms/{code}/live", max_size=None) as ws:
        await ws.send(json.dumps({"type": "join"}))
        await asyncio.wait_for(ws.recv(), 120)  # a hang guard
        n[0] += 1
        if n[0] == total:
            ready.set()
        async for raw in ws:
            f = json.loads(raw)
            if f["type"] == "state":
                received.setdefault(f["state"]["step"], []).append(time.perf_counter())


async def run(url: str, students: int, changes: int) -> list[float]:
    async with httpx.AsyncClient() as client:
        room = (await client.post(url.replace("ws://", "http://") + "/api/rooms", json={})).json()
    received: dict[int, list[float]] = {}
    ready = asyncio.Event()
    n = [0]
    tasks = [asyncio.create_task(student(url, room["code"], received, ready, n, students)) for _ in range(students)]
    await asyncio.wait_for(ready.wait(), 120)
    latencies: list[float] = []
    async with websockets.connect(f"{url}/api/rooms/{room['code']}/live") as presenter:
        await presenter.send(json.dumps({"type": "join", "key": room["key"]}))
        await asyncio.wait_for(presenter.recv(), 120)
        for k in range(1, changes + 1):
            sent = time.perf_counter()
            state = {"scene": 1 + k % 12, "step": k, "phase": "forward", "playing": False, "speed": 8, "inputs": []}
            await presenter.send(json.dumps({"type": "state", "state": state}))
            deadline = time.monotonic() + 30
            while len(received.get(k, [])) < students and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            latencies += [t - sent for t in received.get(k, [])]
            await asyncio.sleep(0.3)  # a talk's pace: changes a few per second at most
    for t in tasks:
        t.cancel()
    return latencies


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user + system, /proc): the server's work, whatever else the machine runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--changes", type=int, default=30)
    args = parser.parse_args()
    settings = Settings(models_dir=ROOT / "models")
    with LiveServer(settings, UNROLLED_WORKERS="1") as live:
        assert live.proc is not None
        before = cpu_seconds(live.proc.pid)
        latencies = asyncio.run(run(live.ws_url, args.students, args.changes))
        server_cpu = cpu_seconds(live.proc.pid) - before
    q = statistics.quantiles(latencies, n=100)
    expected = args.students * args.changes
    lines = [
        f"rooms follow latency: {args.students} students on one worker of `unrolled serve`, {args.changes} changes",
        "  (presenter's send → each student's receipt, loopback; the bench's client shares the machine's 2 cores)",
        f"  received {len(latencies)} of {expected} states",
        f"  p50 {q[49] * 1000:.1f} ms   p95 {q[94] * 1000:.1f} ms   p99 {q[98] * 1000:.1f} ms"
        f"   max {max(latencies) * 1000:.1f} ms   (target: p95 ≤ 200 ms)",
        f"  the server's CPU: {server_cpu:.2f} s for the {args.students} joins and {args.changes} changes"
        f" ({server_cpu / (args.students * args.changes) * 1e6:.0f} µs a delivered state, joins included)",
    ]
    text = "\n".join(lines)
    print(text)
    OUT.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
