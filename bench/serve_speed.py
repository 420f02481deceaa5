"""The server under a 1000-step trace: `python -m bench.serve_speed [--model charlm-lstm] [--seconds 20]`

One run, side by side: a bare torch forward+backward of the same weights (in this process), REST latency and
bytes, the stream's time to first frame and to done (JSON one frame a message, JSON and binary 64 to a
message), and N concurrent clients for S
seconds (throughput, p50/p99, errors) against a real uvicorn on a loopback port.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import torch
from websockets.asyncio.client import connect

from app.engine.card import LoadedModel
from app.engine.family import load_model
from app.engine.token.model import SeqModel
from app.web.config import ROOT, Settings
from bench.common import table
from bench.trace_speed import baseline

BATCH = 64  # binary records, or JSON frames, per WebSocket message


def start_server(
    models: Path, port: int, env: dict[str, str], code: Path = ROOT, ready_within: float = 60
) -> subprocess.Popen[bytes]:
    """The real entry point, `unrolled serve` (with its uvicorn settings: no per-message deflate, limits), of the
    code in `code`, ready to answer."""
    env = {**os.environ, "UNROLLED_MODELS_DIR": str(models), "UNROLLED_LOG_LEVEL": "warning", **env}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], cwd=code, env=env)
    deadline = time.monotonic() + ready_within
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server of {code} did not become ready")


def input_text(loaded: LoadedModel, steps: int) -> str:
    """A `steps`-character input made of the model's own example texts."""
    seed = " ".join(str(e["text"]) for e in loaded.card.examples) or "the quick brown fox "
    return (seed * (steps // len(seed) + 1))[:steps]


@dataclass
class Baseline:
    """A token model's trace input and its torch baseline, as every serving bench sets them up."""

    loaded: LoadedModel
    text: str
    ids: torch.Tensor
    model: SeqModel
    threads: int  # torch threads of the baseline: as many as the server gives each computation


def baseline_of(models: Path, model_id: str, steps: int) -> Baseline:
    """Load `model_id`, make a `steps`-character input of its examples, and set torch's threads to the server's
    per computation (Settings.threads_per_worker), so the baseline and the server compute alike."""
    loaded = load_model(models, model_id)
    text = input_text(loaded, steps)
    model = loaded.model
    assert isinstance(model, SeqModel), f"{model_id} is not a sequence model"
    model.requires_grad_(True)
    threads = Settings().threads_per_worker()
    torch.set_num_threads(threads)
    return Baseline(loaded, text, torch.tensor(loaded.vocab.encode(text).ids), model, threads)


async def stream_once(url: str, body: dict[str, Any]) -> tuple[float, float, float]:
    """(seconds to the meta frame, to the first step frame, to done)."""
    start = time.perf_counter()
    first_meta = first_step = 0.0
    async with connect(url, max_size=2**26) as ws:
        await ws.send(orjson.dumps(body).decode())
        while True:
            msg = await ws.recv()
            now = time.perf_counter() - start
            if isinstance(msg, bytes) or msg[0] == "[":  # batches of step records or frames, then of grads
                first_step = first_step or now
                continue
            kind = orjson.loads(msg)["type"] if msg[:9] != '{"type":"' else msg[9:13]
            if kind == "meta":
                first_meta = now
            elif kind == "step":
                first_step = first_step or now
            elif kind in ("done", "error"):
                if kind == "error":
                    raise RuntimeError(msg)
                return first_meta, first_step, now


async def load(
    base: str, ws_base: str, body: dict[str, Any], clients: int, seconds: float, mode: str
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.perf_counter() + seconds

    async def rest_client(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                r = await client.post(f"{base}/trace", json=body, timeout=60)
                if r.status_code != 200:
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                    continue
            except httpx.HTTPError as e:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                continue
            latencies.append(time.perf_counter() - start)

    async def stream_client() -> None:
        while time.perf_counter() < deadline:
            try:
                _, _, done = await stream_once(f"{ws_base}/stream", {**body, "encoding": "binary", "batch": BATCH})
                latencies.append(done)
            except Exception as e:  # counted, not fatal: the figure is the error count
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1

    start = time.perf_counter()
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients)) as client:
        tasks = [rest_client(client) if mode == "rest" else stream_client() for _ in range(clients)]
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return {"done": len(latencies), "rate": len(latencies) / elapsed, "p50": q[49], "p99": q[98], "errors": errors}


def interleaved_with_phases(
    timed: list[Callable[[], object]], phased: list[Callable[[], tuple[float, float, float]]], repeats: int
) -> tuple[list[float], list[tuple[float, float, float]]]:
    """Run every function once per round, for `repeats` rounds (after one warm-up round): the medians of the
    timed functions' seconds, and of each phased function's own three timings."""
    times: list[list[float]] = [[] for _ in timed]
    phases: list[list[tuple[float, float, float]]] = [[] for _ in phased]
    for round_ in range(repeats + 1):
        for i, fn in enumerate(timed):
            start = time.perf_counter()
            fn()
            if round_:
                times[i].append(time.perf_counter() - start)
        for j, phase_fn in enumerate(phased):
            result = phase_fn()
            if round_:
                phases[j].append(result)

    def median3(runs: list[tuple[float, float, float]]) -> tuple[float, float, float]:
        first, second, third = (statistics.median(r[k] for r in runs) for k in range(3))
        return first, second, third

    return [statistics.median(t) for t in times], [median3(runs) for runs in phases]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="charlm-lstm")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args()

    b = baseline_of(args.models, args.model, args.steps)
    text, ids, model, threads = b.text, b.ids, b.model, b.threads

    proc = start_server(args.models, args.port, {"UNROLLED_MAX_QUEUE": "256"})
    base = f"http://127.0.0.1:{args.port}/api/models/{args.model}"
    ws_base = f"ws://127.0.0.1:{args.port}/api/models/{args.model}"
    body = {"text": text}
    try:
        # REST latency: request sent to the last byte read, on one kept-alive connection of the standard library's
        # client (httpx spends more time in its own parsing of 8 MB than the server spends sending it).
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)

        def rest(extra: dict[str, Any]) -> int:
            conn.request("POST", f"/api/models/{args.model}/trace", orjson.dumps({**body, **extra}),
                         {"content-type": "application/json"})  # fmt: skip
            r = conn.getresponse()
            data = r.read()
            assert r.status == 200, data[:200]
            return len(data)

        def stream(encoding: str, batch: int) -> tuple[float, float, float]:
            request = {**body, "encoding": encoding, "batch": batch}
            return asyncio.run(stream_once(f"{ws_base}/stream", request))

        size_full, size_4 = rest({}), rest({"precision": 4})
        # Every measure in turn, the baseline among them, so that this machine's drift hits all of them alike.
        (torch_s, rest_s, rest4_s), (json, batched, binary) = interleaved_with_phases(
            [lambda: baseline(model, ids), lambda: rest({}), lambda: rest({"precision": 4})],
            [lambda: stream("json", 1), lambda: stream("json", BATCH), lambda: stream("binary", BATCH)],
            args.repeats,
        )
        json_meta, json_first, json_done = json
        _, batched_first, batched_done = batched
        _, bin_first, bin_done = binary
        conn.close()
        loads = {m: asyncio.run(load(base, ws_base, body, args.clients, args.seconds, m)) for m in ("rest", "stream")}
    finally:
        proc.terminate()
        proc.wait(timeout=20)

    def ms(s: float) -> str:
        return f"{s * 1e3:.1f}"

    def x(s: float) -> str:
        return f"{s / torch_s:.2f}x"

    print(f"{args.model}, {args.steps} steps, torch {torch.__version__}, {threads} torch thread(s) per computation")
    rows = [
        ["bare torch forward+backward (same weights)", ms(torch_s), "1.00x", "-", "-"],
        ["REST trace, full float32", ms(rest_s), x(rest_s), f"{size_full / 1e6:.2f} MB", "<= 3x"],
        ["REST trace, precision 4", ms(rest4_s), x(rest4_s), f"{size_4 / 1e6:.2f} MB", "-"],
        ["stream JSON: first frame (meta)", ms(json_meta), x(json_meta), "-", "<= 50 ms"],
        ["stream JSON: first step frame", ms(json_first), x(json_first), "-", "-"],
        ["stream JSON: done", ms(json_done), x(json_done), "-", "<= 3x"],
        [f"stream JSON ({BATCH} frames a message): first steps", ms(batched_first), x(batched_first), "-", "-"],
        [f"stream JSON ({BATCH} frames a message): done", ms(batched_done), x(batched_done), "-", "<= 3x"],
        [f"stream binary ({BATCH} records a message): first steps", ms(bin_first), x(bin_first), "-", "-"],
        [f"stream binary ({BATCH} records a message): done", ms(bin_done), x(bin_done), "-", "<= 3x"],
    ]
    print(table(["measure (median)", "ms", "vs torch", "bytes", "goal"], rows))
    print()
    rows = [
        [m, args.clients, f"{args.seconds:g}", r["done"], f"{r['rate']:.1f}", ms(r["p50"]), ms(r["p99"]),
         sum(r["errors"].values()), orjson.dumps(r["errors"]).decode()]
        for m, r in loads.items()
    ]  # fmt: skip
    print(table(["load", "clients", "seconds", "completed", "per s", "p50 ms", "p99 ms", "errors", "by kind"], rows))


if __name__ == "__main__":
    main()
