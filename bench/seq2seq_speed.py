"""Is the translation trace as cheap as torch itself? `python -m bench.seq2seq_speed`

For each shape, in one process and thread count, interleaved: the baseline is a bare torch forward and backward
of the same encoder–decoder on the same source and target (Seq2SeqModel.forward, float32, teacher forcing →
summed cross-entropy → .backward()); the trace computes everything Unrolled shows of it (both sides' states and
gates, attention, context, predictions, losses, and every BPTT gradient norm, via_attention included). The
default shape is the zoo's numbers models: 15 source words, 58 target letters, hidden 128.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from app.engine import kernels
from app.engine.translation.model import BOS_ID, EOS_ID, Seq2SeqConfig, Seq2SeqModel
from app.engine.translation.trace import trace_ids
from app.engine.vocab import UNK, Vocab
from bench.common import interleaved, table

SOURCE_VOCAB = 36
TARGET_VOCAB = 24
GOAL = 2.0


def baseline(model: Seq2SeqModel, source: torch.Tensor, target: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    target_in = torch.cat([target.new_full((1,), BOS_ID), target[:-1]])
    logits = model(source[None], target_in[None])[0]  # (T, V)
    nn.functional.cross_entropy(logits, target, reduction="sum").backward()  # type: ignore[no-untyped-call]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shapes", nargs="+", default=["15x58", "100x100"], help="source x target steps")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--cells", nargs="+", default=["gru", "lstm", "rnn"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to run")
    args = parser.parse_args()
    kernels.warm_up()
    target_vocab = Vocab(tokens=(UNK, "<s>", "</s>", *(chr(97 + i) for i in range(TARGET_VOCAB - 3))))
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for cell in args.cells:
            for layers in args.layers:
                for attention in (True, False):
                    torch.manual_seed(0)
                    cfg = Seq2SeqConfig(
                        cell, SOURCE_VOCAB, TARGET_VOCAB, 32, args.hidden, layers, args.hidden // 2 if attention else 0
                    )
                    model = Seq2SeqModel(cfg)
                    for shape in args.shapes:
                        J, T = (int(n) for n in shape.split("x"))
                        source = torch.randint(1, SOURCE_VOCAB, (J,))
                        target = torch.cat([torch.randint(3, TARGET_VOCAB, (T - 1,)), torch.tensor([EOS_ID])])
                        src, tgt = source.tolist(), target.tolist()
                        fns: list[Callable[[], object]] = [
                            partial(baseline, model, source, target),
                            partial(trace_ids, model, target_vocab, src, tgt),
                        ]
                        times = interleaved(fns, args.repeats)
                        ratio = times[1] / times[0]
                        rows.append([
                            threads, cell, layers, "yes" if attention else "no", f"{J}x{T}", f"{times[0] * 1e3:.2f}",
                            f"{times[1] * 1e3:.2f}", f"{ratio:.2f}x", "yes" if ratio <= GOAL else "NO",
                        ])  # fmt: skip
    print(f"torch {torch.__version__}, hidden {args.hidden}, embed 32, batch 1, medians of interleaved runs")
    headers = ["threads", "cell", "layers", "attention", "source x target", "torch fwd+bwd ms", "full trace ms",
               "trace/torch", f"<= {GOAL}x"]  # fmt: skip
    print(table(headers, rows))


if __name__ == "__main__":
    main()
