"""The wire, A against B: `python -m bench.wire_ab --before DIR [--model charlm-lstm] [--repeats 15]`

Two real `unrolled serve` processes on loopback, one running this checkout and one running the code in DIR (e.g.
`git archive <commit> | tar -x -C DIR`), on the same models folder, each asked the same 1000-step requests in
turn with a bare torch forward+backward of the same weights (the baseline, in this process, on the server's
torch threads), so that the machine's drift hits every row alike. The rows are what users take: a REST trace as
JSON (curl, the REST fallback, the Python `json` reader), the same with `precision: 4`, and the binary stream the
pages open, with the `precision: 4` they used to send. The two servers' REST bodies are compared byte for byte
first: a faster writer that wrote other bytes would not count.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import torch

from app.web.config import ROOT
from bench.common import table
from bench.serve_speed import baseline_of, start_server, stream_once
from bench.trace_speed import baseline


def start(code: Path, models: Path, port: int) -> subprocess.Popen[bytes]:
    """`unrolled serve` of the code in `code`, ready to answer."""
    env = {"PYTHONPATH": str(code)}
    if code != ROOT:  # its own numba cache: one left by another checkout's kernels failed to load ('<dynamic>')
        env["NUMBA_CACHE_DIR"] = str(code / ".numba-cache")
    return start_server(models, port, env, code, ready_within=300)  # a checkout new to numba compiles its kernels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the code to compare against")
    parser.add_argument("--model", default="charlm-lstm")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--port", type=int, default=8793)
    args = parser.parse_args()

    b = baseline_of(args.models, args.model, args.steps)
    text, ids, model, threads = b.text, b.ids, b.model, b.threads

    codes = {"before": args.before.resolve(), "after": ROOT}
    ports = {"before": args.port, "after": args.port + 1}
    procs = {name: start(code, args.models, ports[name]) for name, code in codes.items()}
    try:
        conns = {name: http.client.HTTPConnection("127.0.0.1", port, timeout=60) for name, port in ports.items()}

        def rest(name: str, extra: dict[str, Any]) -> bytes:
            conn = conns[name]
            conn.request("POST", f"/api/models/{args.model}/trace", orjson.dumps({"text": text, **extra}),
                         {"content-type": "application/json"})  # fmt: skip
            r = conn.getresponse()
            data = r.read()
            assert r.status == 200, data[:200]
            return data

        def binary(name: str) -> float:
            url = f"ws://127.0.0.1:{ports[name]}/api/models/{args.model}/stream"
            request = {"text": text, "top_k": 5, "precision": 4, "encoding": "binary", "batch": 64}
            return asyncio.run(stream_once(url, request))[2]

        same = {
            p: rest("before", extra) == rest("after", extra) for p, extra in (("full", {}), ("4", {"precision": 4}))
        }
        sizes = {p: len(rest("after", extra)) for p, extra in (("full", {}), ("4", {"precision": 4}))}
        rows: dict[str, list[float]] = {}
        measures: list[tuple[str, Any]] = [("torch", lambda: baseline(model, ids))]
        for name in codes:
            measures += [
                (f"rest {name}", lambda n=name: rest(n, {})),
                (f"rest4 {name}", lambda n=name: rest(n, {"precision": 4})),
            ]
        for round_ in range(args.repeats + 1):  # the first round warms up
            for key, fn in measures:
                t0 = time.perf_counter()
                fn()
                if round_:
                    rows.setdefault(key, []).append(time.perf_counter() - t0)
            for name in codes:  # the stream's own clock: request sent to done received
                seconds = binary(name)
                if round_:
                    rows.setdefault(f"binary {name}", []).append(seconds)
        for conn in conns.values():
            conn.close()
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=20)

    med = {key: statistics.median(v) for key, v in rows.items()}
    torch_s = med["torch"]

    def cell(key: str) -> str:
        return f"{med[key] * 1e3:.1f} ms ({med[key] / torch_s:.2f}x)"

    print(f"{args.model}, {args.steps} steps, torch {torch.__version__}, {threads} torch thread(s), medians of "
          f"{args.repeats} interleaved rounds; bare torch forward+backward {torch_s * 1e3:.1f} ms")  # fmt: skip
    print(table(
        ["measure (median)", "before", "after", "bytes (after)", "bodies equal"],
        [
            ["REST trace, JSON", cell("rest before"), cell("rest after"), f"{sizes['full'] / 1e6:.2f} MB",
             same["full"]],
            ["REST trace, JSON, precision 4", cell("rest4 before"), cell("rest4 after"), f"{sizes['4'] / 1e6:.2f} MB",
             same["4"]],
            ["stream, binary, 64 a message, precision 4 asked: done", cell("binary before"), cell("binary after"),
             "-", "-"],
        ],
    ))  # fmt: skip


if __name__ == "__main__":
    main()
