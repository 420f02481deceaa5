"""The committed shapes models' quality (issue 26): per model, exact caption match on new scenes of trained
combinations and on scenes that each show a held-out colour–shape combination (a red triangle, a green circle, a
blue square: never drawn in training), the share of attention inside the named shape's box while its three words
are written (and what attention spread evenly would give), and the training CPU time the card records.

    PYTHONPATH=. .venv/bin/python -m bench.caption_accuracy [--models models] [--scenes 500]

The sets are the task's own (app/training/tasks/shapes_data.eval_sets: fixed seeds), scored as the card's metrics
are (app/training/tasks/shapes.set_scores, greedy decoding): at the default 500 scenes the figures must equal the
cards'; a mismatch means the models, the engine or the data moved since training, and is printed.

Measured 2026-12-07 (exact match in %; attention: the share inside the named shape's box, pixel by pixel, and in
brackets what attention spread evenly would give; train CPU s on a machine loaded ~6 times over):
    model         exact new   exact held-out comb.   held-out shape named   attn in box new   train CPU s
    shapes-rnn      40.6             3.2                    9.2               31.0 (7.4)          130
    shapes-lstm     85.4             5.2                    8.2               35.4 (7.4)          153
    shapes-gru      60.0             0.0                    0.4               28.1 (7.4)          147
The models before (H 64, no c_{t−1} in the head): 34.0 / 47.0 / 70.6 new, 3.2 / 1.4 / 7.2 held-out, attention in
box 29.2 / 38.6 / 32.8, 105–112 CPU s.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from app.engine.caption.model import CaptionModel
from app.engine.family import load_model
from app.training.tasks.shapes import EVAL_SCENES, set_scores, words_vocab
from app.training.tasks.shapes_data import HELDOUT, eval_sets
from bench.common import table

CELLS = ("rnn", "lstm", "gru")
COMPARED = ("exact_match", "either_order_match", "attention_in_box", "heldout_shape_named")


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--scenes", type=int, default=EVAL_SCENES, help="scenes per set (the cards': 500)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sets = eval_sets(args.scenes)
    vocab = words_vocab()
    rows: list[list[object]] = []
    mismatches: list[str] = []
    for cell in CELLS:
        mid = f"shapes-{cell}"
        if not (args.models / f"{mid}.json").exists():
            rows.append([mid, *["not trained"] * 9])
            continue
        loaded = load_model(args.models, mid)
        model = loaded.model
        assert isinstance(model, CaptionModel)
        model.eval()
        t0 = time.process_time()
        by_set: dict[str, dict[str, Any]] = {name: set_scores(model, vocab, scenes) for name, scenes in sets.items()}
        eval_cpu = time.process_time() - t0
        new, held = by_set["scenes"], by_set["combinations"]
        training = loaded.card.metrics["training"]
        rows.append(
            [
                mid,
                pct(new["exact_match"]),
                pct(new["either_order_match"]),
                pct(held["exact_match"]),
                pct(held["heldout_shape_named"]),
                f"{pct(new['attention_in_box'])} ({pct(new['attention_in_box_chance'])})",
                f"{pct(held['attention_in_box'])} ({pct(held['attention_in_box_chance'])})",
                f"{training['cpu_seconds']:.0f}",
                f"{training['final_step']}/{training['steps_run']}",
                f"{eval_cpu:.1f}",
            ]
        )
        if args.scenes == EVAL_SCENES:
            card = loaded.card.metrics["by_set"]
            for name, scores in by_set.items():
                for key in COMPARED:
                    if key in scores and card[name].get(key) != scores[key]:
                        mismatches.append(f"{mid} {name} {key}: card {card[name].get(key)}, now {scores[key]}")
    held_out = ", ".join(f"{c} {s}" for c, s in HELDOUT)
    print(f"{args.scenes} scenes per set, greedy decoding, in %. Held-out combinations (never trained on): {held_out}")
    headers = [
        "model",
        "exact new",
        "either order new",
        "exact held-out comb.",
        "held-out shape named",
        "attn in box new (chance)",
        "attn in box held-out (chance)",
        "train CPU s",
        "final/run steps",
        "eval CPU s",
    ]
    print(table(headers, rows))
    for line in mismatches:
        print("MISMATCH", line)


if __name__ == "__main__":
    main()
