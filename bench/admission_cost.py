"""Admission by cost: each endpoint's worst allowed request, and a visitor beside it. `python -m bench.admission_cost`

For every endpoint, the most expensive request the default limits allow (on the zoo's models), against a real
`unrolled serve` (2 compute slots, 1 torch thread each, started afresh for each row):
  cpu s      the server's CPU seconds for the request alone
  peak MB    the server's peak resident memory while it ran (VmHWM, reset before it)
  est. s     what app/web/capacity/cost.py estimates; "expensive" from expensive_seconds (0.05 s) on
  old rule   what the step count of before issue 23 said (at least 2,000 steps, the Jacobian's as T²/45)
  visitor    a visitor's 5-letter trace (another client) on the idle server (median of 8), then while one client
             keeps four of these requests in flight (median / worst of 8; the byte budget may refuse some of the
             four: max_bytes_in_flight), and, where the old rule called the request small, the same under it
             (expensive_seconds 1e9: nothing is expensive, which is what the step count said of these)
`--calibrate` prints, instead, the estimate beside the CPU seconds measured in this process for a spread of
requests: how the constants of app/web/capacity/cost.py were fitted. Loopback only; not part of the test suite.
The last run's table: bench/admission_cost.txt.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.engine.card import LoadedModel
from app.web.capacity import cost
from app.web.config import ROOT, Settings
from app.zoo.zoo import Zoo
from bench.common import table

ATTACKER = {"X-Forwarded-For": "10.0.0.1"}
VISITOR = {"X-Forwarded-For": "10.0.0.2"}
SPEECH = "The American people. Thank you so much. We believe that every child can go to school, and work. "
TICK = os.sysconf("SC_CLK_TCK")
SOURCE = "one hundred and twenty-one " * 37  # 999 characters: max_source_steps
SOURCE_WORDS = 37 * 6  # as the source vocabulary splits it (a hyphen is a word of its own)


def text(chars: int) -> str:
    return (SPEECH * (chars // len(SPEECH) + 1))[:chars]


def numbers(count: int) -> list[float]:
    return [float((i * 37) % 101) for i in range(count)]


@dataclass
class Case:
    name: str
    path: str
    body: dict[str, Any]
    estimate: Callable[[Zoo], float]
    old_steps: int  # what the route counted before issue 23 (expensive at 2,000)


def model(zoo: Zoo, model_id: str) -> LoadedModel:
    return zoo.get(model_id)


def cases(s: Settings) -> list[Case]:
    steps, gen, jac = s.max_steps, s.max_generate, s.jacobian_max_steps
    prompt = s.max_prompt_chars()
    return [
        Case("trace charlm-lstm 10,000 chars", "/api/models/charlm-lstm/trace", {"text": text(steps)},
             lambda z: cost.trace_seconds(model(z, "charlm-lstm"), steps), steps),
        Case("jacobian charlm-lstm 299 chars", "/api/models/charlm-lstm/jacobian", {"text": text(jac - 1)},
             lambda z: cost.jacobian_seconds(model(z, "charlm-lstm"), jac - 1), (jac - 1) ** 2 // 45),
        Case("jacobian charlm-lstm 300 chars", "/api/models/charlm-lstm/jacobian", {"text": text(jac)},
             lambda z: cost.jacobian_seconds(model(z, "charlm-lstm"), jac), jac**2 // 45),
        Case("generate charlm-lstm 100 + 1,899", "/api/models/charlm-lstm/generate",
             {"prompt": text(100), "length": 1899},
             lambda z: cost.generate_seconds(model(z, "charlm-lstm"), 100, 1899), 1999),
        Case("generate charlm-lstm 8,000 + 2,000", "/api/models/charlm-lstm/generate",
             {"prompt": text(prompt), "length": gen},
             lambda z: cost.generate_seconds(model(z, "charlm-lstm"), prompt, gen), prompt + gen),
        Case("diff charlm-lstm 10,000 chars", "/api/models/charlm-lstm/diff",
             {"text": text(steps), "edited": "X" + text(steps)[1:]},
             lambda z: cost.diff_seconds(model(z, "charlm-lstm"), steps), steps),
        Case("translate 999 chars, beam 8, max_length 400", "/api/models/numbers-lstm-attention/translate",
             {"text": SOURCE, "beam": 8, "max_length": 400},
             lambda z: cost.translate_seconds(model(z, "numbers-lstm-attention"), SOURCE_WORDS + 8 * 400),
             SOURCE_WORDS + 8 * 400),
        Case("series trace sunspots-lstm 10,000", "/api/models/sunspots-lstm/trace", {"values": numbers(steps)},
             lambda z: cost.trace_seconds(model(z, "sunspots-lstm"), steps), steps),
        Case("forecast sunspots-lstm 8,000 + 2,000", "/api/models/sunspots-lstm/generate",
             {"values": numbers(prompt), "length": gen},
             lambda z: cost.forecast_seconds(model(z, "sunspots-lstm"), prompt, gen), prompt + gen),
        Case("lab gradients lstm 1,000 × 256", "/api/lab/gradients",
             {"cell": "lstm", "steps": s.lab_max_steps, "hidden_size": s.lab_max_hidden, "radius": 1.0},
             lambda z: cost.knobs_seconds("lstm", s.lab_max_steps, s.lab_max_hidden), s.lab_max_steps),
    ]  # fmt: skip


def near_threshold() -> list[Case]:
    """Requests estimated near expensive_seconds (0.05 s), where the estimate decides."""
    return [
        Case("trace charlm-lstm 600 chars", "/api/models/charlm-lstm/trace", {"text": text(600)},
             lambda z: cost.trace_seconds(model(z, "charlm-lstm"), 600), 600),
        Case("jacobian charlm-lstm 20 chars", "/api/models/charlm-lstm/jacobian", {"text": text(20)},
             lambda z: cost.jacobian_seconds(model(z, "charlm-lstm"), 20), 20),
        Case("jacobian alphabet-lstm 150 chars", "/api/models/alphabet-lstm/jacobian", {"text": text(150).lower()},
             lambda z: cost.jacobian_seconds(model(z, "alphabet-lstm"), 150), 500),
        Case("generate charlm-lstm 20 + 100", "/api/models/charlm-lstm/generate", {"prompt": text(20), "length": 100},
             lambda z: cost.generate_seconds(model(z, "charlm-lstm"), 20, 100), 120),
        Case("generate alphabet-rnn 10 + 300", "/api/models/alphabet-rnn/generate",
             {"prompt": text(10).lower(), "length": 300},
             lambda z: cost.generate_seconds(model(z, "alphabet-rnn"), 10, 300), 310),
        Case("series trace sunspots-lstm 2,000", "/api/models/sunspots-lstm/trace", {"values": numbers(2000)},
             lambda z: cost.trace_seconds(model(z, "sunspots-lstm"), 2000), 2000),
        Case("lab gradients gru 1,000 × 64", "/api/lab/gradients",
             {"cell": "gru", "steps": 1000, "hidden_size": 64, "radius": 1.0},
             lambda z: cost.knobs_seconds("gru", 1000, 64), 1000),
    ]  # fmt: skip


class Server:
    """`unrolled serve` on a loopback port, with its CPU time and peak resident memory read from /proc."""

    def __init__(self, port: int, **extra: str) -> None:
        env = {**os.environ, "UNROLLED_LOG_LEVEL": "warning", "UNROLLED_MAX_CONCURRENT": "2",
               "UNROLLED_TORCH_THREADS": "1", "UNROLLED_FORWARDED_ALLOW_IPS": "127.0.0.1", **extra}  # fmt: skip
        cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("the server did not become ready")

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime

    def reset_peak(self) -> None:
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS

    def peak_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.kill()  # not a graceful stop: that would wait for the computations still running
        self.proc.wait()


def visitor_ms(url: str) -> float:
    start = time.perf_counter()
    r = httpx.post(f"{url}/api/models/alphabet-lstm/trace", json={"text": "hello"}, headers=VISITOR, timeout=600)
    assert r.status_code == 200, r.text[:200]
    return (time.perf_counter() - start) * 1000


def measure(case: Case, port: int, samples: int, **env: str) -> tuple[float, float, list[float], list[float]]:
    server = Server(port, **env)
    try:
        idle = [visitor_ms(server.url) for _ in range(samples)]
        server.reset_peak()
        before = server.cpu()
        r = httpx.post(f"{server.url}{case.path}", json=case.body, headers=ATTACKER, timeout=600)
        assert r.status_code == 200, f"{case.name}: {r.status_code} {r.text[:300]}"
        cpu, peak = server.cpu() - before, server.peak_mb()

        def attack() -> None:
            with contextlib.suppress(httpx.HTTPError):  # the server is stopped under it
                httpx.post(f"{server.url}{case.path}", json=case.body, headers=ATTACKER, timeout=600)

        threads = [threading.Thread(target=attack, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # all four are in line
        busy = [visitor_ms(server.url) for _ in range(samples)]
        return cpu, peak, idle, busy
    finally:
        server.stop()


def calibrate(zoo: Zoo, settings: Settings) -> None:
    import torch
    from fastapi.testclient import TestClient

    from app.web.app import create_app

    torch.set_num_threads(1)
    client = TestClient(create_app(settings)).__enter__()

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    rows = []
    for case in [*cases(settings), *near_threshold()]:
        if "jacobian" in case.path and "300" in case.name:
            continue
        for _ in range(1 if case in near_threshold() else 0):
            client.post(case.path, json=case.body)  # small requests: warm, then the second is measured
        start = cpu()
        r = client.post(case.path, json=case.body)
        assert r.status_code == 200, r.text[:300]
        measured = cpu() - start
        est = case.estimate(zoo)
        rows.append([case.name, f"{measured:.3f}", f"{est:.3f}", f"{est / measured:.2f}"])
        print(f"done: {case.name}", file=sys.stderr, flush=True)
    print(table(["request", "cpu s (measured)", "est. s", "est./measured"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--port", type=int, default=18123)
    parser.add_argument("--only", default="", help="run only the rows whose name contains this")
    args = parser.parse_args()
    settings = Settings(torch_threads=1)
    zoo = Zoo.load(settings.models_dir)
    if args.calibrate:
        calibrate(zoo, settings)
        return
    rows = []
    for case in cases(settings):
        if args.only not in case.name:
            continue
        cpu, peak, idle, busy = measure(case, args.port, args.samples)
        est = case.estimate(zoo)
        expensive, was_expensive = est >= settings.expensive_seconds, case.old_steps >= 2000
        old = "same"
        if expensive and not was_expensive:  # admitted as small work, as the step count did
            *_, before = measure(case, args.port, args.samples, UNROLLED_EXPENSIVE_SECONDS="1e9")
            old = f"{statistics.median(before):.0f} / {max(before):.0f}"
        rows.append([
            case.name, f"{cpu:.2f}", f"{peak:.0f}", f"{est:.3f}", "expensive" if expensive else "small",
            "expensive" if was_expensive else "small", f"{statistics.median(idle):.0f}",
            f"{statistics.median(busy):.0f} / {max(busy):.0f}", old,
        ])  # fmt: skip
        print(f"done: {case.name}", file=sys.stderr, flush=True)
    print(table(["worst allowed request", "cpu s", "peak MB", "est. s", "now", "old rule", "visitor ms idle",
                 "visitor ms, 4 in flight", "same, old rule"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
