"""Loop, scan and log space: equal, and what the scan buys. `python -m bench.modern_scan [--steps 100 1000 10000]`

For minGRU (the paper's positive form, so log space is the paper's own parallel_scan_log), minLSTM (the same) and
S6 (log space by the signed split), on one random sequence (input 32, hidden 64; S6: 64 channels, state 16),
untrained weights (seed 0), no gradient:
1. Agreement: the largest |difference| of each way's states from the float64 loop's, in float32 and in float64, and
   the largest |h| for scale. The float32 loop's own difference is printed too: it is the rounding every float32
   way starts from.
2. Time: the median wall seconds of each way in float32 (interleaved runs, torch on one thread so that a shared
   machine's other load hits all alike), beside torch.nn.GRU (its fused C++ loop, the same hidden size and input),
   and the depth each way has: the number of dependent steps a machine with enough parallel units would still have
   to take one after another (loop T; scan ⌈log₂ T⌉ levels; log space a cumsum and a logcumsumexp, each itself
   a scan of depth ⌈log₂ T⌉ on a parallel machine but run by torch's CPU kernels as one sequential pass).
A CPU has a few cores, not T: the scan's O(T log T) work is spread over at most a handful of them, so what it buys
here is depth, not time; the tables say how much time each way takes on this machine in this run.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from app.engine.modern import mingru, s6
from app.engine.modern.scan import levels_needed
from bench.common import interleaved, table

INPUT, HIDDEN, STATE = 32, 64, 16


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
            times = interleaved([*fns, partial(gru, x32[:, None])], args.repeats, 1)
            for i, name in enumerate(runs):
                ms = (f"{s * 1e3:.1f}" for s in times[3 * i : 3 * i + 3])
                time_rows.append([name, steps, *ms, steps, levels_needed(steps)])
            time_rows.append(["nn.GRU", steps, f"{times[-1] * 1e3:.1f}", "", "", steps, ""])
    print("\nLargest |difference| from the float64 loop's states")
    print(
        table(
            ["cell", "T", "max |h|", "f32 loop", "f32 scan", "f32 log", "f64 scan", "f64 log"],
            agree_rows,
        )
    )
    print("\nMedian wall ms, float32, one thread (nn.GRU: torch's fused loop, same hidden size)")
    print(table(["cell", "T", "loop", "scan", "log space", "loop depth", "scan levels"], time_rows))


if __name__ == "__main__":
    main()
