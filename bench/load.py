"""Load: REST and stream clients together at rising concurrency. `python -m bench.load [--seconds 10]`

Each client sends its own text, and every stream is checked against the REST trace of that same text, so a
wrong or mixed-up frame is counted. Overload must be shed with 503 + Retry-After (clients then wait and retry),
never with timeouts; the server's resident memory is read before and after each level. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from websockets.asyncio.client import connect

from app.web.config import ROOT
from bench.common import table
from bench.serve_speed import BATCH, start_server


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    shed: int = 0  # 503 with Retry-After
    errors: dict[str, int] = field(default_factory=dict)
    wrong_frames: int = 0
    checked_frames: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def expected_steps(body: dict[str, Any], layout: list[dict[str, Any]]) -> list[bytes]:
    """What each binary step frame must hold, from the REST body of the same request."""
    out = []
    for t in range(body["steps"]):
        parts = [np.array([t], "<u4").tobytes()]
        for f in layout:
            name = f["name"]
            if name.startswith("layers."):
                _, k, *path = name.split(".")
                src: Any = body["layers"][int(k)]
                for key in path:
                    src = src[key]
                parts.append(np.array(src[t], "<f4").tobytes())
            elif name == "loss":
                parts.append(np.array([np.nan if body["loss"][t] is None else body["loss"][t]], "<f4").tobytes())
            elif name == "prediction.p":
                parts.append(np.array([p["p"] for p in body["predictions"][t]], "<f4").tobytes())
            elif name == "probs":
                parts.append(np.array(body["step_probs"][t], "<f4").tobytes())
            elif name == "prediction.token_id":
                parts.append(np.array(body["_top_ids"][t], "<u4").tobytes())
        out.append(b"".join(parts))
    return out


def expected_grads(body: dict[str, Any]) -> bytes:
    """The grad records (float64, last step first) the stream must send for this REST body."""
    g = body["grad_norms"]
    columns = [*g["hidden"], *(g["cell_state"] or []), g["input"], *g["weight_hh"]]
    T = body["steps"]
    rows = np.array([[t, *(c[t] for c in columns)] for t in range(T - 1, -1, -1)], dtype="<f8")
    return rows.tobytes()


async def run_level(
    base: str, ws_base: str, texts: list[str], refs: dict[str, Any], clients: int, seconds: float
) -> dict[str, Any]:
    rest, stream = Tally(), Tally()
    deadline = time.perf_counter() + seconds

    async def rest_client(i: int, client: httpx.AsyncClient) -> None:
        body = {"text": texts[i % len(texts)]}
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                r = await client.post(f"{base}/trace", json=body, timeout=60)
            except httpx.HTTPError as e:
                rest.error(type(e).__name__)
                continue
            if r.status_code == 503:
                rest.shed += 1
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))
            elif r.status_code != 200:
                rest.error(str(r.status_code))
            else:
                rest.latencies.append(time.perf_counter() - start)

    async def stream_client(i: int) -> None:
        text = texts[i % len(texts)]
        want = refs[text]
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                async with connect(f"{ws_base}/stream", max_size=2**26) as ws:
                    request = {"text": text, "encoding": "binary", "batch": BATCH, "top_k": 5}
                    await ws.send(orjson.dumps(request).decode())
                    meta = orjson.loads(await ws.recv())
                    if meta["type"] == "error":
                        if meta["error"] == "busy":
                            stream.shed += 1
                            await asyncio.sleep(1)
                        else:
                            stream.error(meta["error"])
                        continue
                    binary = b""
                    while isinstance(msg := await ws.recv(), bytes):
                        binary += msg
                    done = orjson.loads(msg)
                if meta["tokens"] != want["tokens"] or done["type"] != "done":
                    stream.wrong_frames += 1
                size, T = meta["step_record_bytes"], meta["steps"]
                records = [binary[t * size : (t + 1) * size] for t in range(T)]
                stream.wrong_frames += sum(a != b for a, b in zip(records, want["_frames"], strict=True))
                stream.wrong_frames += binary[T * size :] != want["_grads"]
                stream.checked_frames += 2 * T
                stream.latencies.append(time.perf_counter() - start)
            except Exception as e:  # counted: the figure is the error count
                stream.error(f"{type(e).__name__}: {e}"[:80])

    start = time.perf_counter()
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=clients)) as client:
        await asyncio.gather(
            *(rest_client(i, client) for i in range(clients // 2)),
            *(stream_client(i) for i in range(clients - clients // 2)),
        )
    elapsed = time.perf_counter() - start
    return {"rest": rest, "stream": stream, "elapsed": elapsed}


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS")).split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="charlm-lstm")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--levels", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--port", type=int, default=8792)
    args = parser.parse_args()

    proc = start_server(args.models, args.port, {})
    base = f"http://127.0.0.1:{args.port}/api/models/{args.model}"
    ws_base = f"ws://127.0.0.1:{args.port}/api/models/{args.model}"
    rows = []
    try:
        card = httpx.get(base).json()
        vocab = card["vocab"] or []
        letters = [v for v in vocab if len(v) == 1 and v.isalpha()] or ["a"]
        rng = np.random.default_rng(0)
        texts = ["".join(rng.choice(letters, args.steps)) for _ in range(16)]  # one text per client slot
        refs: dict[str, Any] = {}
        with httpx.Client(timeout=60) as c:
            for text in texts:
                body = c.post(f"{base}/trace", json={"text": text, "top_k": 5}).json()
                index = {tok: i for i, tok in enumerate(vocab)}
                body["_top_ids"] = [[index[p["token"]] for p in preds] for preds in body["predictions"]]
                with asyncio.Runner() as runner:
                    layout = runner.run(_layout(ws_base, text))
                body["_frames"] = expected_steps(body, layout)
                body["_grads"] = expected_grads(body)
                refs[text] = body
        baseline = rss_mb(proc.pid)
        for level in args.levels:
            before = rss_mb(proc.pid)
            result = asyncio.run(run_level(base, ws_base, texts, refs, level, args.seconds))
            time.sleep(2)
            after = rss_mb(proc.pid)
            for kind in ("rest", "stream"):
                t: Tally = result[kind]
                q = statistics.quantiles(t.latencies, n=100) if len(t.latencies) > 1 else [float("nan")] * 99
                rows.append([
                    level, kind, len(t.latencies), f"{len(t.latencies) / result['elapsed']:.1f}",
                    f"{q[49] * 1e3:.0f}", f"{q[98] * 1e3:.0f}", t.shed, sum(t.errors.values()) or 0,
                    f"{t.wrong_frames}/{t.checked_frames}" if kind == "stream" else "-",
                    f"{before:.0f} → {after:.0f}",
                ])  # fmt: skip
                if t.errors:
                    print(level, kind, t.errors)
        final = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"{args.model}, {args.steps}-step texts, {args.seconds:g} s per level, half REST and half stream clients")
    headers = ["clients", "kind", "completed", "per s", "p50 ms", "p99 ms", "503 shed", "errors",
               "wrong frames", "server MB"]  # fmt: skip
    print(table(headers, rows))
    print(f"server resident memory: {baseline:.0f} MB after warm-up, {final:.0f} MB at the end")


async def _layout(ws_base: str, text: str) -> list[dict[str, Any]]:
    async with connect(f"{ws_base}/stream", max_size=2**26) as ws:
        await ws.send(orjson.dumps({"text": text, "encoding": "binary", "batch": BATCH, "top_k": 5}).decode())
        meta = orjson.loads(await ws.recv())
        layout: list[dict[str, Any]] = meta["layout"]
        return layout


if __name__ == "__main__":
    main()
