"""Loop, scan and log space: equal, and what the scan buys. `python -m bench.modern_scan [--steps 100 1000 10000]`

For minGRU (the paper's positive form, so log space is the paper's own parallel_scan_log), minLSTM (the same) and
S6 (log space by the signed split), on one random sequence (input 32, hidden 64; S6: 64 channels, state 16),
untrained weights (seed 0), no gradient:
1. Agreement: the largest |difference| of each way's states from the float64 loop's, in float32 and in float64, and
   the largest |h| for scale. The float32 loop's own difference is printed too: it is the rounding every float32
   way starts from. The log-space form's error grows with T: it subtracts a* = Σ_{k≤t} log a_k, whose size grows
   linearly in t, from log v, and exponentiates what is left, so its absolute rounding (eps × |a*|) becomes a
   relative error of h that grows with T (float32: ~1e−5 at T = 100, ~1e−3 at 10,000).
2. Time: the median wall and CPU milliseconds of each way in float32 (interleaved runs, torch on one thread, so
   that a shared machine's other load hits all alike; on a loaded machine read the CPU time), beside torch.nn.GRU
   (its fused C++ loop, the same hidden size and input), and the depth of each way: the dependent steps a machine
   with enough parallel units would still take one after another (loop T; scan ⌈log₂ T⌉ levels; log space a
   cumsum and a logcumsumexp, each a scan of depth ⌈log₂ T⌉ on a parallel machine, run by torch's CPU kernels
   as one sequential pass each).
A CPU has a few cores, not T: the scan's O(T log T) work is spread over at most a handful of them, so what it buys
here is depth, not always time; the tables say what each way costs on this machine in this run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from app.engine.modern import mingru, s6
from app.engine.modern.scan import levels_needed
from bench.common import table

INPUT, HIDDEN, STATE = 32, 64, 16


def interleaved(fns: list[Callable[[], object]], repeats: int) -> list[tuple[float, float]]:
    """Median (wall, CPU) seconds of each function, run in turn after one warm-up round. On a loaded machine the
    wall time includes waiting for a core; the CPU time (time.process_time) is what the call itself took."""
    for fn in fns:
        fn()
    runs: list[list[tuple[float, float]]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            runs[i].append((time.perf_counter() - wall, time.process_time() - cpu))
    return [(statistics.median(w for w, _ in r), statistics.median(c for _, c in r)) for r in runs]


def cells(dtype: torch.dtype) -> dict[str, Callable[[Tensor, mingru.Mode], Tensor]]:
    """The three cells in dtype, the same weights in either (float32's, exact in float64)."""
    torch.manual_seed(0)
    gru_cell = mingru.MinGRU(INPUT, HIDDEN, positive=True).to(dtype)
    lstm_cell = mingru.MinLSTM(INPUT, HIDDEN, positive=True).to(dtype)
    layer = s6.S6(HIDDEN, STATE, step_range=(0.001, 0.1)).to(dtype)
    project = nn.Linear(INPUT, HIDDEN).to(dtype)  # S6 maps D channels to D: its input is x projected to HIDDEN

    def run_s6(x: Tensor, mode: mingru.Mode) -> Tensor:
        return layer.forward(project(x), mode=mode)[1]

    def run_gru(x: Tensor, mode: mingru.Mode) -> Tensor:
        return gru_cell.forward(x, mode=mode)

    def run_lstm(x: Tensor, mode: mingru.Mode) -> Tensor:
        return lstm_cell.forward(x, mode=mode)

    return {"minGRU": run_gru, "minLSTM": run_lstm, "S6": run_s6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    runs, runs64 = cells(torch.float32), cells(torch.float64)
    agree_rows, time_rows = [], []
    torch.manual_seed(1)
    gru = nn.GRU(INPUT, HIDDEN)
    with torch.no_grad():
        for steps in args.steps:
            x64 = torch.randn(steps, INPUT, dtype=torch.float64)
            x32 = x64.float()
            for name, run in runs.items():
                truth = runs64[name](x64, "loop")
                row: list[object] = [name, steps, f"{float(truth.abs().max()):.3g}"]
                ways = [(run, x32, mode) for mode in mingru.MODES] + [
                    (runs64[name], x64, "scan"),
                    (runs64[name], x64, "log"),
                ]
                for way, x, mode in ways:
                    row.append(f"{float((way(x, mode).double() - truth).abs().max()):.1e}")
                agree_rows.append(row)
            # Every way of every cell and nn.GRU, interleaved, so that the machine's other load hits all alike.
            fns = [partial(run, x32, mode) for run in runs.values() for mode in mingru.MODES]
            times = [
                f"{w * 1e3:.1f} ({c * 1e3:.1f})"
                for w, c in interleaved([*fns, partial(gru, x32[:, None])], args.repeats)
            ]
            for i, name in enumerate(runs):
                time_rows.append([name, steps, *times[3 * i : 3 * i + 3], steps, levels_needed(steps)])
            time_rows.append(["nn.GRU", steps, times[-1], "", "", steps, ""])
    print("\nLargest |difference| from the float64 loop's states")
    print(
        table(
            ["cell", "T", "max |h|", "f32 loop", "f32 scan", "f32 log", "f64 scan", "f64 log"],
            agree_rows,
        )
    )
    print(f"\nload average {os.getloadavg()[0]:.2f}")
    print("\nMedian ms, wall (CPU), float32, one thread (nn.GRU: torch's fused loop, same hidden size)")
    print(table(["cell", "T", "loop", "scan", "log space", "loop depth", "scan levels"], time_rows))


if __name__ == "__main__":
    main()
