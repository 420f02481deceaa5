"""Recall: a fixed-size state fills up. Accuracy against the number of items to remember. `python -m bench.recall`

The task (associative recall, as in Zoology's MQAR with one query): K key–value pairs k₁ v₁ … k_K v_K (distinct
keys from 16, values from 16), then one of the keys; the model names its value at that last step. A recurrent
model must hold every pair in its state until the query comes, and its state has a fixed size, whatever K is:
the GRU's and minGRU's H numbers, S6's H × N. Each model trains on the same batches (one K per batch, uniform in
1 … K_max), then is scored on 1,000 held-out sequences per K: as K grows the pairs crowd a state that does not
grow with them, and accuracy falls, sooner for the smaller state. (Attention keeps every pair, at a cost that
grows with T; that trade is where the 2023–2025 models sit.)

The network around each mixing layer is bench/selective_copy.py's (embedding, two residual blocks, head), trained
the same way (seed 0, Adam, one cycle, loss at the query only). One thread (torch), CPU.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import Tensor

from bench.common import table
from bench.selective_copy import STATE, fit, score

KEYS = VALUES = 16


def recall_batch(rng: np.random.Generator, size: int, items: int) -> tuple[Tensor, Tensor]:
    """(ids (size, 2K + 1), targets): keys are 0 … 15, values 16 … 31; the target at the query, −100 elsewhere."""
    keys = np.stack([rng.choice(KEYS, size=items, replace=False) for _ in range(size)])
    values = rng.integers(0, VALUES, size=(size, items))
    ids = np.empty((size, 2 * items + 1), dtype=np.int64)
    ids[:, 0:-1:2], ids[:, 1:-1:2] = keys, KEYS + values
    asked = rng.integers(0, items, size=size)
    ids[:, -1] = keys[np.arange(size), asked]
    targets = np.full(ids.shape, -100, dtype=np.int64)
    targets[:, -1] = values[np.arange(size), asked]
    return torch.from_numpy(ids), torch.from_numpy(targets)


def state_numbers(kind: str, width: int) -> int:
    return width * STATE if kind in ("s6", "lti") else width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-items", type=int, default=16)
    parser.add_argument("--models", nargs="+", default=["gru:16", "mingru:16", "mingru:64", "s6:16"],
                        help="mixer:width")  # fmt: skip
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    counts = [k for k in (1, 2, 4, 6, 8, 12, 16) if k <= args.max_items]

    def batches(rng: np.random.Generator, size: int) -> tuple[Tensor, Tensor]:
        return recall_batch(rng, size, int(rng.integers(1, args.max_items + 1)))

    held = {k: recall_batch(np.random.default_rng(1000 + k), 1000, k) for k in counts}
    rows = []
    for spec in args.models:
        kind, width = spec.split(":")[0], int(spec.split(":")[1])
        net, seconds = fit(kind, KEYS + VALUES, VALUES, width, batches, args.steps, args.batch, args.lr)
        accuracy = [f"{score(net, *held[k])[0]:.2f}" for k in counts]
        rows.append([f"{kind} H={width}", state_numbers(kind, width), *accuracy, f"{seconds:.0f}"])
    print(
        f"associative recall: K pairs (keys and values from {KEYS}), then a key; trained on K uniform in "
        f"1-{args.max_items}, {args.steps} steps of {args.batch}, Adam lr {args.lr}; 1,000 held-out sequences a K; "
        f"chance {1 / VALUES:.3f}"
    )
    print(table(["model", "state numbers", *(f"K={k}" for k in counts), "CPU s"], rows))


if __name__ == "__main__":
    main()
