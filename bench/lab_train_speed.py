"""Live training in the lab: steps per second per cell, and what each cell has learned after 30 and 60 s.
`python -m bench.lab_train_speed [--n 20 30 50] [--seconds 60] [--short-share 0.1] [--threads 1]`

Each N is one run as the server does it (app.lab.Training: the cells in turn on the same batches, one step
each, one thread). Baseline, measured in the same run: a bare torch forward + backward + Adam step of the same
LSTM on the same batch (no first-step split, no grad_ratio), so the table shows what the lab's exact
‖∂L/∂h_1‖/‖∂L/∂h_T‖ costs. At each checkpoint time the held-out accuracy at gap N (256 sequences, as the done
frame reports it) is measured on a copy of the weights, outside the clock.
"""

from __future__ import annotations

import argparse
import copy
import threading
import time
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from app.lab import BUDGET, SIZE, LabRequest, Training, build, heldout_accuracy
from app.tasks import memory
from app.tasks.base import ModelSize
from bench.common import interleaved, table


def bare_step_seconds(n: int) -> float:
    """A bare training step of the LSTM at gap n: the baseline."""
    model = build("lstm")
    opt = torch.optim.Adam(model.parameters(), lr=BUDGET.lr)
    ids, labels = (torch.from_numpy(a) for a in memory.sequences(np.random.default_rng(0), BUDGET.batch_size, n))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(ids)[:, -1], labels).backward()  # type: ignore[no-untyped-call]
        opt.step()

    return interleaved([step], repeats=50)[0]


def run(n: int, seconds: float, marks: list[float], short_share: float, size: ModelSize = SIZE) -> dict[str, Any]:
    """One run of every cell for `seconds` (of training time: evaluations at the marks are not counted)."""
    paused = 0.0
    pause_start = 0.0
    training: Training

    def clock() -> float:
        return time.monotonic() - paused

    pending = sorted(marks)
    at: dict[float, dict[str, float]] = {}

    def emit(frame: dict[str, Any]) -> None:
        nonlocal paused, pause_start
        if pending and frame["elapsed"] >= pending[0]:
            start = time.monotonic()
            mark = pending.pop(0)
            at[mark] = {r.cell: heldout_accuracy(copy.deepcopy(r.model), n) for r in training.cells}
            for r in training.cells:
                r.model.train()
            paused += time.monotonic() - start

    training = Training("bench", LabRequest("memory", n, ("rnn", "lstm", "gru"), seconds), threading.Event(), emit,
                        clock=clock, size=size, short_share=short_share)  # fmt: skip
    training.train()
    result = training.finish("time")
    at[seconds] = result.accuracy
    steps_per_s = {r.cell: r.steps / r.busy for r in training.cells}
    return {"steps": result.steps, "steps_per_s": steps_per_s, "at": at, "seconds": training.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, nargs="+", default=[20, 30, 50])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--marks", type=float, nargs="*", default=[10.0, 20.0, 30.0])
    parser.add_argument("--short-share", type=float, default=memory.SHORT_SHARE)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=SIZE.hidden_size)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for n in args.n:
        base = bare_step_seconds(n)
        size = ModelSize(embed_size=SIZE.embed_size, hidden_size=args.hidden)
        out = run(n, args.seconds, [m for m in args.marks if m < args.seconds], args.short_share, size)
        for cell in ("rnn", "lstm", "gru"):
            accs = [f"{out['at'][m][cell]:.2f}" for m in sorted(out["at"])]
            rows.append([n, cell, out["steps"][cell], f"{out['steps_per_s'][cell]:.1f}",
                         f"{1 / base:.0f}" if cell == "lstm" else "", *accs])  # fmt: skip
        print(table(["N", "cell", "steps", "steps/s (alone)", "bare LSTM steps/s",
                     *[f"acc@{m:g}s" for m in sorted(out["at"])]], rows), flush=True)  # fmt: skip
    print(
        f"threads {args.threads}, short-gap share {args.short_share}, batch {BUDGET.batch_size}, hidden {args.hidden}"
    )


if __name__ == "__main__":
    main()
