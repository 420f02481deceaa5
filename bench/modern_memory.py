"""The memory task's five cells: held-out accuracy by gap N and how much gradient reaches the letter.
`python -m bench.modern_memory [--models models]`

Reads models/memory-{rnn,lstm,gru,mingru,s6} (trained by `unrolled train memory`: the same batches, size 16 → 64,
2,500 steps of 32, lr 3e-3 for every cell) and measures, in this run:
1. Accuracy on the task's held-out set (512 sequences per N from its held-out seed, the cards' own), by N, the
   digits between the letter and '?'; chance is 1/8.
2. ‖∂L/∂h_1‖ ÷ ‖∂L/∂h_T‖ on the card's N = 100 example (102 steps; L the loss at '?' against its letter), by the
   trace engine (float64 BPTT; S6: of its whole D × N state), and the largest ‖∂h_T/∂h_0‖ (spectral, the lab's
   triangle) for the same input. A ratio near 1 is a gradient that reaches the letter undiminished; the plain
   RNN's is tens of orders of magnitude below.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.engine.family import load_model
from app.engine.lab.jacobian import jacobian_norms
from app.engine.token.model import SeqModel
from app.engine.token.trace import trace_ids
from app.training.tasks.base import classify_accuracy
from app.training.tasks.memory import EXAMPLE_SYMBOL, SYMBOLS, TASK, example_text
from app.training.tasks.wheel import DEFAULT_CACHE
from bench.common import table

CELLS = ("rnn", "lstm", "gru", "mingru", "s6")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    args = parser.parse_args()
    data = TASK.load(False, DEFAULT_CACHE)
    ns = sorted(data.heldout)
    rows = []
    text = example_text(100)
    for cell in CELLS:
        loaded = load_model(args.models, f"memory-{cell}")
        model = loaded.model
        assert isinstance(model, SeqModel)
        accuracy = [f"{classify_accuracy(model, [data.heldout[n]]):.2f}" for n in ns]
        ids = loaded.vocab.encode(text).ids
        grads = trace_ids(model, ids, loss="last", label=SYMBOLS.index(EXAMPLE_SYMBOL)).layers[0].grad_hidden
        reach = float(jacobian_norms(model, ids, 0, "spectral").norms[-1, 0])
        rows.append([f"memory-{cell}", *accuracy, f"{grads[0] / grads[-1]:.2e}", f"{reach:.2e}"])
    heads = ["model", *(f"N={n}" for n in ns), "‖∂L/∂h_1‖÷‖∂L/∂h_T‖", "‖∂h_T/∂h_0‖"]
    print(f"held-out accuracy by gap N ({len(data.heldout[ns[0]].targets)} a gap, chance 0.12); gradients on:")
    print(f"  {text}  (T = {len(ids)})")
    print(table(heads, rows))


if __name__ == "__main__":
    main()
