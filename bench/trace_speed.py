"""Is the full trace as fast as torch itself? `python -m bench.trace_speed`

For each input length, in one process and thread count, interleaved: the baseline is a bare torch forward and
backward of the same model (embedding → torch.nn.LSTM → head → summed next-token loss → .backward(), torch's
fused CPU kernel); the trace computes everything Unrolled shows (states, gates, predictions, losses and
all BPTT gradient norms). The naive method, a per-step Python loop with retain_grad, is shown for scale.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from app.engine import kernels
from app.engine.token.model import ModelConfig, SeqModel
from app.engine.token.trace import trace_ids
from bench.common import interleaved, table

VOCAB = 96
GOAL = 1.5


def baseline(model: SeqModel, ids: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    logits = model(ids[None, :-1])[0]  # (T−1, V)
    nn.functional.cross_entropy(logits, ids[1:], reduction="sum").backward()  # type: ignore[no-untyped-call]


def naive(model: SeqModel, ids: torch.Tensor) -> None:
    """What a first attempt looks like: one torch op per gate per step, retain_grad on every state."""
    w = model.weights(0)
    x = model.embedding(ids)
    H = model.config.hidden_size
    h = x.new_zeros(H)
    c = x.new_zeros(H)
    hs = []
    for t in range(len(ids)):
        gates = w.weight_ih @ x[t] + w.bias_ih + w.weight_hh @ h + w.bias_hh
        i, f, g, o = gates.split(H)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
        h.retain_grad()
        hs.append(h)
    logits = model.head(torch.stack(hs[:-1]))
    nn.functional.cross_entropy(logits, ids[1:], reduction="sum").backward()  # type: ignore[no-untyped-call]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn"])
    parser.add_argument("--naive", action="store_true", help="also time the per-step retain_grad loop")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to run")
    args = parser.parse_args()
    kernels.warm_up()
    rows = []
    for threads, cell in ((n, c) for n in args.threads for c in args.cells):
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = SeqModel(ModelConfig(cell, "next_token", VOCAB, VOCAB, 64, args.hidden, 1))
        for steps in args.steps:
            ids = torch.randint(0, VOCAB, (steps,))
            id_list = ids.tolist()
            fns: list[Callable[[], object]] = [partial(baseline, model, ids), partial(trace_ids, model, id_list)]
            if args.naive and cell == "lstm":
                fns.append(partial(naive, model, ids))
            repeats = max(3, args.repeats * 1000 // steps)
            times = interleaved(fns, repeats)
            ratio = times[1] / times[0]
            naive_ratio = f"{times[2] / times[0]:.1f}x" if len(times) > 2 else "-"
            verdict = ("yes" if ratio <= GOAL else "NO") if cell == "lstm" else "(no goal)"
            rows.append([
                threads, cell, steps, f"{times[0] * 1e3:.1f}", f"{times[1] * 1e3:.1f}", f"{ratio:.2f}x", naive_ratio,
                verdict,
            ])  # fmt: skip
    print(f"torch {torch.__version__}, hidden {args.hidden}, batch 1, medians of interleaved runs")
    headers = ["threads", "cell", "steps", "torch fwd+bwd ms", "full trace ms", "trace/torch", "naive/torch",
               f"<= {GOAL}x"]  # fmt: skip
    print(table(headers, rows))


if __name__ == "__main__":
    main()
