"""Live training in the lab: steps per second per cell, and what each cell has learned after 30 and 60 s.
`python -m bench.lab_train_speed [--n 20 50 100] [--threads 1] [--learn [--seconds 60] [--marks 15 30 45]]`

Speed: each cell's median time per training step at gap N, as the lab takes it (app.training.live.CellRun.step: step 1
alone, the rest from its state, ‖∂L/∂h_1‖/‖∂L/∂h_T‖ read), against a baseline measured in the same run,
interleaved: a bare step of the same model on the same batch (one fused forward, backward, clip, Adam).
With --learn, each N is one run as the server does it (app.training.live.Training: the cells in turn on the same
batches, one step each, one thread), and at each mark the held-out accuracy at gap N (256 sequences, as the done frame
reports it) is measured on a copy of the weights, off the run's clock.
"""

from __future__ import annotations

import argparse
import copy
import functools
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from app.engine.token.model import SeqModel
from app.training.live import BUDGET, CELLS, SIZE, CellRun, LabRequest, Training, build, heldout_accuracy
from app.training.tasks import memory
from app.training.tasks.base import ModelSize
from bench.common import interleaved, table


def step_seconds(n: int, size: ModelSize) -> dict[str, tuple[float, float]]:
    """Each cell's median seconds per training step at gap n, the lab's (with grad_ratio) and the bare one (one
    fused forward, backward, clip and Adam step), all interleaved so that machine noise hits them alike."""
    ids, labels = (torch.from_numpy(a) for a in memory.sequences(np.random.default_rng(0), BUDGET.batch_size, n))
    fns: list[Callable[[], object]] = []
    for cell in CELLS:
        lab = CellRun.start(cell, size)
        bare = build(cell, size)
        opt = torch.optim.Adam(bare.parameters(), lr=BUDGET.lr)

        def bare_step(model: SeqModel = bare, opt: torch.optim.Optimizer = opt) -> None:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(ids)[:, -1], labels).backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), BUDGET.clip)
            opt.step()

        fns += [functools.partial(lab.step, ids, labels), bare_step]
    times = interleaved(fns, repeats=30)
    return {cell: (times[2 * i], times[2 * i + 1]) for i, cell in enumerate(CELLS)}


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
    parser.add_argument("--n", type=int, nargs="+", default=[20, 50, 100])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--marks", type=float, nargs="*", default=[10.0, 20.0, 30.0])
    parser.add_argument("--short-share", type=float, default=memory.SHORT_SHARE)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=SIZE.hidden_size)
    parser.add_argument("--learn", action="store_true", help="also train for --seconds at each N: accuracies")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = ModelSize(embed_size=SIZE.embed_size, hidden_size=args.hidden)
    speed = []
    for n in args.n:
        for cell, (lab, bare) in step_seconds(n, size).items():
            speed.append([n, cell, f"{1 / lab:.1f}", f"{1 / bare:.1f}", f"{lab / bare:.2f}"])
    print(table(["N", "cell", "lab steps/s", "bare steps/s (baseline)", "lab / bare time"], speed), flush=True)
    if not args.learn:
        return
    rows = []
    for n in args.n:
        out = run(n, args.seconds, [m for m in args.marks if m < args.seconds], args.short_share, size)
        for cell in CELLS:
            accs = [f"{out['at'][m][cell]:.2f}" for m in sorted(out["at"])]
            rows.append([n, cell, out["steps"][cell], f"{out['steps_per_s'][cell]:.1f}", *accs])
        print(table(["N", "cell", "steps", "steps/s (own time)", *[f"acc@{m:g}s" for m in sorted(out["at"])]], rows),
              flush=True)  # fmt: skip
    print(
        f"threads {args.threads}, short-gap share {args.short_share}, batch {BUDGET.batch_size}, hidden {args.hidden}"
    )


if __name__ == "__main__":
    main()
