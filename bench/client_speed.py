"""A trace through the Python client, against a bare torch forward and backward: `python -m bench.client_speed`

In one process, interleaved, medians of repeats: the baseline is a bare torch forward and backward of the same
model (bench.trace_speed.baseline: embedding → torch.nn.LSTM → head → summed next-token loss → .backward()); the
client (app.client.Client.trace) asks a real `unrolled serve` on this machine for the whole trace of the same
input over the stream's binary records and decodes them into numpy arrays. The issue's goal: at most 2× the
baseline. For scale, what a Python client did before: the default JSON stream read with `websockets` and `json`
(one frame a message), and the REST body read and parsed with the standard library.
"""

from __future__ import annotations

import argparse
import http.client
import json
from collections.abc import Callable
from typing import Any

import torch
from websockets.sync.client import connect

from app.client import Client
from app.web.config import ROOT
from bench.common import interleaved, table
from bench.serve_speed import baseline_of, start_server
from bench.trace_speed import baseline

GOAL = 2.0


def json_stream(url: str, body: dict[str, Any]) -> int:
    """The default JSON stream, a frame a message, each parsed: what a first Python client does."""
    frames = 0
    with connect(url, max_size=None) as ws:
        ws.send(json.dumps(body))
        while json.loads(ws.recv())["type"] != "done":
            frames += 1
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="charlm-lstm")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--port", type=int, default=8793)
    parser.add_argument("--scale", action="store_true", help="also time the JSON stream and the REST body")
    args = parser.parse_args()

    models = ROOT / "models"
    b = baseline_of(models, args.model, args.steps)
    loaded, text, ids, model, threads = b.loaded, b.text, b.ids, b.model, b.threads
    proc = start_server(models, args.port, {})
    url = f"http://127.0.0.1:{args.port}"
    try:
        client = Client(url)
        arrays = client.trace(args.model, text)
        assert arrays["layers.0.hidden"].shape == (len(ids), loaded.card.hidden_size)
        fns: list[Callable[[], object]] = [lambda: baseline(model, ids), lambda: client.trace(args.model, text)]
        names = ["torch forward+backward", "client: binary stream → numpy"]
        if args.scale:
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)

            def rest() -> object:
                conn.request("POST", f"/api/models/{args.model}/trace", json.dumps({"text": text}),
                             {"content-type": "application/json"})  # fmt: skip
                return json.loads(conn.getresponse().read())

            ws = f"ws://127.0.0.1:{args.port}/api/models/{args.model}/stream"
            fns += [lambda: json_stream(ws, {"text": text}), rest]
            names += ["JSON stream (websockets + json)", "REST body (http.client + json)"]
        times = interleaved(fns, args.repeats)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    print(f"{args.model}, {len(ids)} steps, torch {torch.__version__}, {threads} thread(s) in the baseline and per "
          f"computation in the server, medians of {args.repeats} interleaved runs")  # fmt: skip
    rows = [[name, f"{t * 1e3:.1f}", f"{t / times[0]:.2f}x"] for name, t in zip(names, times, strict=True)]
    rows[1].append("yes" if times[1] / times[0] <= GOAL else "NO")
    for row in rows:
        row += [""] * (4 - len(row))
    print(table(["", "ms", "/ torch", f"<= {GOAL}x"], rows))


if __name__ == "__main__":
    main()
