"""From what gap does the lab teach the vanishing gradient? `python -m bench.lesson_gap [--inputs 64] [--max-gap 40]`

The lab's two pictures on the memory task, on random inputs of each gap N (a letter A–H, N random digits, '?'),
for the zoo's memory-rnn, memory-lstm and memory-gru:
- the Jacobian triangle's corner ‖∂h_T/∂h_0‖ (the letter's hold on the state at '?', spectral; the LSTM's
  ∂h_T/∂(h_0, c_0)): its lesson holds when the RNN's is at least a decade of the colour scale below both the
  LSTM's and the GRU's;
- "change one token", the letter changed to one the plain RNN cannot tell it from at the longest gap (it keeps one
  bit of the letter for ever, an attractor: a letter changed across it never fades, at any gap, as the page's
  caption says): ‖h_T − h′_T‖ at '?'. Its lesson holds when the RNN's change has faded by the '?' (below its size
  at the letter) to at least a decade below the LSTM's and the GRU's.
Each row gives the share of inputs on which each holds and the medians behind it; the last lines, the least gap
from which a lesson holds on at least RELIABLE of the inputs at that gap and at every longer one measured.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from app.engine.card import LoadedModel
from app.engine.family import load_model
from app.engine.lab.diff import diff_ids
from app.engine.lab.jacobian import jacobian_norms
from app.engine.token.model import SeqModel
from app.training.tasks.memory import DIGITS, SYMBOLS
from app.web.config import ROOT
from bench.common import table

CELLS = ("rnn", "lstm", "gru")
RELIABLE = 0.95  # the share of inputs on which a lesson must hold
DECADE = 10.0  # an ordering must show on the pictures' log scales: a decade at least
LONGEST = 120  # the longest gap the models were trained at (app.training.tasks.memory.LONG_NS)


@dataclass
class Probe:
    jacobian_holds: bool
    diff_holds: bool
    corner: dict[str, float]  # ‖∂h_T/∂h_0‖
    end: dict[str, float]  # ‖h_T − h′_T‖


def seq_model(loaded: LoadedModel) -> SeqModel:
    assert isinstance(loaded.model, SeqModel)
    return loaded.model


def end_change(loaded: LoadedModel, text: str, letter: str) -> tuple[float, float]:
    """‖h − h′‖ at the letter and at '?' when the input's letter is changed to `letter`."""
    ids = loaded.vocab.encode(text).ids
    edited = [loaded.vocab.tokens.index(letter), *ids[1:]]
    change = diff_ids(seq_model(loaded), ids, edited).state_change[0]
    return float(change[0]), float(change[-1])


def forgotten_partners(rnn: LoadedModel, rng: np.random.Generator) -> dict[str, list[str]]:
    """For each letter, the others whose change the RNN has forgotten entirely (‖h_T − h′_T‖ < 1e-6) after LONGEST
    random digits."""
    digits = "".join(DIGITS[d] for d in rng.integers(0, 10, size=LONGEST))
    return {a: [b for b in SYMBOLS if b != a and end_change(rnn, f"{a} {digits} ?", b)[1] < 1e-6] for a in SYMBOLS}


def probe(models: dict[str, LoadedModel], text: str, partner: str) -> Probe:
    corner, at, end = {}, {}, {}
    for cell, loaded in models.items():
        ids = loaded.vocab.encode(text).ids
        corner[cell] = float(jacobian_norms(seq_model(loaded), ids, 0, "spectral").norms[-1, 0])
        at[cell], end[cell] = end_change(loaded, text, partner)
    gated = ("lstm", "gru")
    return Probe(
        jacobian_holds=all(corner["rnn"] * DECADE <= corner[c] for c in gated),
        diff_holds=end["rnn"] < at["rnn"] and all(end["rnn"] * DECADE <= end[c] for c in gated),
        corner=corner,
        end=end,
    )


def reliable_from(gaps: Sequence[int], share: dict[int, float]) -> int | None:
    """The least gap from which the share is at least RELIABLE at every gap measured."""
    ok = [n for n in gaps if all(share[m] >= RELIABLE for m in gaps if m >= n)]
    return ok[0] if ok else None


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--inputs", type=int, default=64, help="random inputs per gap")
    parser.add_argument("--max-gap", type=int, default=40, help="every gap from 1 to this; then 50, 75, 100, 120")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = {cell: load_model(ROOT / "models", f"memory-{cell}") for cell in CELLS}
    rng = np.random.default_rng(args.seed)
    partners = forgotten_partners(models["rnn"], rng)
    print("letters the RNN forgets a change to, at gap", LONGEST, partners)
    gaps = [*range(1, args.max_gap + 1), *(n for n in (50, 75, 100, LONGEST) if n > args.max_gap)]
    rows, jac_share, diff_share = [], {}, {}
    for n in gaps:
        probes = []
        for _ in range(args.inputs):
            letter = SYMBOLS[rng.integers(len(SYMBOLS))]
            digits = "".join(DIGITS[d] for d in rng.integers(0, 10, size=n))
            partner = partners[letter][rng.integers(len(partners[letter]))]
            probes.append(probe(models, f"{letter} {digits} ?", partner))
        jac_share[n] = sum(p.jacobian_holds for p in probes) / len(probes)
        diff_share[n] = sum(p.diff_holds for p in probes) / len(probes)
        corner = [f"{statistics.median(p.corner[c] for p in probes):.2g}" for c in CELLS]
        end = [f"{statistics.median(p.end[c] for p in probes):.2g}" for c in CELLS]
        rows.append([n, f"{jac_share[n]:.2f}", f"{diff_share[n]:.2f}", *corner, *end])
        print(*rows[-1], flush=True)
    heads = ["gap N", "Jacobian holds", "diff holds", *(f"J {c}" for c in CELLS), *(f"Δh_T {c}" for c in CELLS)]
    print(f"{args.inputs} inputs per gap, seed {args.seed}; medians of ‖∂h_T/∂h_0‖ (J) and ‖h_T − h′_T‖ (Δh_T)")
    print(table(heads, rows))
    both = {n: min(jac_share[n], diff_share[n]) for n in gaps}
    for name, share in (("the Jacobian's corner", jac_share), ("the one-token diff", diff_share), ("both", both)):
        print(f"{name}: holds on ≥ {RELIABLE:.0%} of the inputs from gap {reliable_from(gaps, share)} on")


if __name__ == "__main__":
    main()
