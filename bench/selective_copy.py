"""Selective copying: a time-invariant SSM against S6 (and minGRU, and torch's GRU). `python -m bench.selective_copy`

The task (Gu & Dao 2023, Section 3.1): K data tokens (from S symbols) at random places among L noise tokens '.',
then K query tokens '?'; at the k-th '?' the model names the k-th data token. Where the data fall changes from one
sequence to the next, so a layer whose mixing depends on distance only (a time-invariant SSM: Ā, B̄, C the same at
every step, a fixed convolution) cannot line them up; S6 reads Δ_t from each token and can let the noise through
without a trace (Δ ≈ 0: Ā ≈ 1, B̄ ≈ 0), so that the data sit in its state as if they had come one after another.

Every model is the same network around its mixing layer: an embedding (D), two residual blocks
x ← x + mix(LayerNorm(x)), LayerNorm, a linear head at every step; trained in-process on the same batches (seed 0)
with the same budget (steps, batch, Adam, lr), the loss at the K query steps only; scored on 2,000 held-out
sequences: the accuracy per query token and per whole sequence (all K right). One thread (torch), CPU.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from app.engine.modern.layer import recurrence
from app.engine.modern.mingru import MinGRU
from app.engine.modern.s6 import S6, TimeInvariantSSM
from bench.common import table

STATE = 16  # N, each channel's state size (the SSMs)


class Mixer(nn.Module):
    """One mixing layer over time, (T, B, D) → (T, B, D), time first."""

    def __init__(self, kind: str, width: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "lti":
            self.layer: nn.Module = TimeInvariantSSM(width, STATE)
        elif kind == "s6":
            self.layer = S6(width, STATE)
        elif kind == "mingru":
            self.layer = MinGRU(width, width)
        else:
            self.layer = nn.GRU(width, width)

    def forward(self, x: Tensor) -> Tensor:
        """The recurrences by the loop with its adjoint (app/engine/modern/layer.py's recurrence: what trains
        fastest on a CPU); the GRU by torch."""
        layer = self.layer
        if isinstance(layer, S6 | TimeInvariantSSM):
            _, a_bar, b_bar, _, c = layer.discretised(x)
            states = recurrence(a_bar, b_bar * x[..., None], torch.zeros_like(a_bar[0]))
            return layer.readout(states, x, c)
        if isinstance(layer, MinGRU):
            a, b = layer.coefficients(x)
            return recurrence(a, b, torch.zeros_like(a[0]))
        out: Tensor = layer(x)[0]
        return out


class Net(nn.Module):
    """Embedding → `depth` residual blocks x + mix(LayerNorm(x)) → LayerNorm → head, at every step."""

    def __init__(self, kind: str, vocab: int, outputs: int, width: int, depth: int = 2) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, width)
        self.norms = nn.ModuleList([nn.LayerNorm(width) for _ in range(depth)])
        self.mixers = nn.ModuleList([Mixer(kind, width) for _ in range(depth)])
        self.out_norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, outputs)

    def forward(self, ids: Tensor) -> Tensor:
        """(B, T) ids → (B, T, outputs) logits."""
        x = self.embedding(ids).transpose(0, 1)
        for norm, mix in zip(self.norms, self.mixers, strict=True):
            x = x + mix(norm(x))
        logits: Tensor = self.head(self.out_norm(x))
        return logits.transpose(0, 1)


Batcher = Callable[[np.random.Generator, int], tuple[Tensor, Tensor]]


def fit(
    kind: str, vocab: int, outputs: int, width: int, batches: Batcher, steps: int, batch_size: int, lr: float
) -> tuple[Net, float]:
    """Train a Net on `batches` (ids (B, T), targets (B, T) with −100 where no loss) from seed 0; (net, CPU s)."""
    torch.manual_seed(0)
    net = Net(kind, vocab, outputs, width)
    rng = np.random.default_rng(0)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    started = time.process_time()
    for _ in range(steps):
        ids, targets = batches(rng, batch_size)
        logits = net(ids)
        loss = F.cross_entropy(logits.reshape(-1, outputs), targets.reshape(-1), ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    return net.eval(), time.process_time() - started


def copy_batch(rng: np.random.Generator, size: int, noise: int, items: int, symbols: int) -> tuple[Tensor, Tensor]:
    """(ids, targets) of selective copying: 0 is noise, 1 … symbols the data, symbols + 1 the query '?'."""
    ids = np.zeros((size, noise + items), dtype=np.int64)
    targets = np.full((size, noise + items), -100, dtype=np.int64)
    data = rng.integers(1, symbols + 1, size=(size, items))
    for row in range(size):
        where = np.sort(rng.choice(noise, size=items, replace=False))
        ids[row, where] = data[row]
    ids[:, noise:] = symbols + 1
    targets[:, noise:] = data
    return torch.from_numpy(ids), torch.from_numpy(targets)


@torch.no_grad()
def score(net: Net, ids: Tensor, targets: Tensor) -> tuple[float, float]:
    """(accuracy per scored token, per whole sequence)."""
    pred = net(ids).argmax(-1)
    scored = targets != -100
    right = (pred == targets) | ~scored
    return float((pred == targets)[scored].float().mean()), float(right.all(dim=1).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--noise", type=int, default=32, help="L, the noise tokens")
    parser.add_argument("--items", type=int, default=4, help="K, the data tokens to copy")
    parser.add_argument("--symbols", type=int, default=8)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--kinds", nargs="+", default=["lti", "s6", "mingru", "gru"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    vocab = args.symbols + 2

    def batches(rng: np.random.Generator, size: int) -> tuple[Tensor, Tensor]:
        return copy_batch(rng, size, args.noise, args.items, args.symbols)

    held_ids, held_targets = batches(np.random.default_rng(12345), 2000)
    rows = []
    for kind in args.kinds:
        net, seconds = fit(kind, vocab, vocab, args.width, batches, args.steps, args.batch, args.lr)
        per_token, per_sequence = score(net, held_ids, held_targets)
        params = sum(p.numel() for p in net.parameters())
        rows.append([kind, params, f"{per_token:.3f}", f"{per_sequence:.3f}", f"{seconds:.0f}"])
    print(
        f"selective copying: {args.items} of {args.symbols} symbols among {args.noise} noise tokens, then "
        f"{args.items} '?'; width {args.width}, state {STATE} (SSMs), 2 blocks; {args.steps} steps of "
        f"{args.batch}, Adam lr {args.lr} (one cycle); 2,000 held-out sequences; chance {1 / args.symbols:.3f}"
    )
    print(table(["mixer", "parameters", "accuracy / token", "accuracy / sequence", "CPU s"], rows))


if __name__ == "__main__":
    main()
