"""The `unrolled` command. Each subcommand registers itself with an `add_<name>` function below."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from app.engine.card import ModelCard
from app.engine.layers import CELLS
from app.web.serve import add_serve, add_trace


def _summary(card: ModelCard) -> str:
    from app.training.tasks import TASKS

    km = TASKS[card.task].key_metric(card.metrics) if card.task in TASKS else None
    return f"{card.id}: {card.train_seconds:.1f} s" + (f", {km.label} {km.value}" if km else "")


def cmd_train(args: argparse.Namespace) -> int:
    from app.training.loop import train
    from app.training.tasks import TASKS

    tasks = list(TASKS) if args.task == "all" else [args.task]
    if args.task != "all" and args.cell != "all" and args.cell not in TASKS[args.task].cells:
        names = ", ".join(TASKS[args.task].cells)
        print(f"unrolled train: {args.task} trains no {args.cell} model; its cells: {names}", file=sys.stderr)
        return 2
    cards = []
    for task in tasks:
        # every task's own cells; one cell: the tasks that train it
        cells = [c for c in TASKS[task].cells if args.cell in ("all", c)]
        for cell in cells:
            for variant in TASKS[task].variants(cell):
                card = train(
                    task, cell, args.out, seed=args.seed, dry_run=args.dry_run, cache=args.data_cache, variant=variant
                )
                print(_summary(card), flush=True)
                cards.append(card)
    if len(cards) > 1:
        print("\n".join(["", "summary:", *(_summary(c) for c in cards)]))
    return 0


def add_train(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from app.training.loop import DEFAULT_CACHE, DEFAULT_SEED
    from app.training.tasks import TASKS

    p = sub.add_parser("train", help="train models of the zoo", description="Train models of the zoo.")
    p.add_argument("task", choices=[*TASKS, "all"], help="the task to train, or all of them")
    p.add_argument(
        "--cell", choices=[*CELLS, "all"], default="all", help="the recurrent cell (default: all the task's cells)"
    )
    p.add_argument("--out", type=Path, default=Path("models"), help="the models folder (default: models)")
    p.add_argument("--dry-run", action="store_true", help="a tiny, seconds-long run (for CI)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"the random seed (default: {DEFAULT_SEED})")
    p.add_argument(
        "--data-cache",
        type=Path,
        default=DEFAULT_CACHE,
        help=f"where downloaded data is kept (default: {DEFAULT_CACHE}, or $UNROLLED_DATA_CACHE)",
    )
    p.set_defaults(func=cmd_train)


def cmd_import(args: argparse.Namespace) -> int:
    from app.zoo import importer

    try:
        series = importer.SeriesOptions(
            features=tuple(args.features or ()), mean=tuple(args.mean or ()), std=tuple(args.std or ()),
            units=args.units or "", step=args.step or "",
        )  # fmt: skip
        imported = importer.build(
            args.weights, args.vocab, args.id, maps=args.map, labels_path=args.labels, cell=args.cell,
            level=args.level, unk=args.unk, series=series,
        )  # fmt: skip
        for line in imported.matched:
            print(f"matched: {line}")
        weights, card = importer.write(imported, args.models_dir)
    except importer.ImportProblem as e:
        print(f"unrolled import: {e}; nothing was written", file=sys.stderr)
        return 2
    print(f"wrote {weights} and {card}; a running server serves {args.id} within a few seconds")
    return 0


def add_import(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from app.web.config import get_settings

    p = sub.add_parser(
        "import",
        help="import a model trained elsewhere",
        description="Import a torch.nn RNN/LSTM/GRU (1–4 layers, one or two directions) with an nn.Embedding and "
        "a Linear head, from safetensors or a state-dict file (read with torch.load(weights_only=True) only). "
        "Without --vocab: a series model, whose layers read numbers (no embedding) and whose head predicts the next "
        "step's numbers.",
    )
    p.add_argument("weights", type=Path, help="the weights: .safetensors, or a torch state dict (.pt/.pth)")
    p.add_argument("--vocab", type=Path, help="a JSON list of tokens, or a {token: id} map (none: a series model)")
    p.add_argument("--id", required=True, help="the model's id in the zoo (lower case, digits, . _ -)")
    p.add_argument("--models-dir", type=Path, default=None, help="the models folder (default: the server's)")
    p.add_argument("--map", action="append", default=[], metavar="FROM=TO", help="rename a key or module")
    p.add_argument("--labels", type=Path, help="a classifier's labels, a JSON list in the head's order")
    p.add_argument("--cell", choices=["rnn", "lstm", "gru"], help="the cell, checked against the weights")
    p.add_argument("--level", choices=["char", "word"], help="what a token is (default: inferred)")
    p.add_argument(
        "--unk",
        help="which of the vocabulary's tokens stands for text it lacks (default: <unk>, <UNK>, "
        "[UNK] or <oov> if it has one; with none, text outside it is refused); ids stay as they are",
    )
    series = p.add_argument_group("series models (no --vocab): what the numbers are")
    series.add_argument("--features", type=_names, help="names of the numbers a step reads, comma-separated")
    series.add_argument("--mean", type=_numbers, help="the training data's mean per feature (the model reads "
                        "(value − mean) / std; default 0)")  # fmt: skip
    series.add_argument("--std", type=_numbers, help="the training data's standard deviation per feature (default 1)")
    series.add_argument("--units", help="what the numbers measure, e.g. 'mm of rain'")
    series.add_argument("--step", help="what one step is, e.g. 'day'")
    p.set_defaults(func=cmd_import, models_dir_default=lambda: get_settings().models_dir)


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"{text!r}: names separated by commas, none empty")
    return names


def _numbers(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: numbers separated by commas, e.g. 43.6 or 1.5,20") from None


def cmd_lab_record(args: argparse.Namespace) -> int:
    import json
    import os
    import platform
    import time

    import torch

    from app.training.live import CELLS, RECORDING, LabRequest, record
    from app.web.config import Settings

    # the server's threads per computation: the recording's pace is a live run's on this machine
    # (one thread, as on a small server: record() then times the run by this thread's CPU time)
    threads = Settings().threads_per_worker()
    torch.set_num_threads(threads)
    clock = time.thread_time if threads == 1 else time.monotonic
    machine = f"{os.cpu_count()} cores, {platform.machine()}, torch {torch.__version__} on {threads} thread(s)"
    rec = record(LabRequest("memory", args.n, CELLS, args.seconds, args.steps or None), machine, clock)
    out = args.out / RECORDING
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec, separators=(",", ":")) + "\n")
    done, info = rec["done"], rec["recorded"]
    print(f"{out}: {info['seconds']} s, {os.path.getsize(out)} bytes", flush=True)
    for cell in CELLS:
        print(f"  {cell}: {done['steps'][cell]} steps ({info['steps_per_second'][cell]} steps/s), "
              f"held-out accuracy {done['accuracy'][cell]:.3f}")  # fmt: skip
    return 0


def add_lab_record(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from app.training.live import LESSON_N, LESSON_STEP_CAP, RECORDING

    p = sub.add_parser(
        "lab-record",
        help="record a live training run for the lab to play back",
        description=f"Train the lab's live run (the memory task, RNN, LSTM and GRU) here and write every step to "
        f"<out>/{RECORDING}: the lab plays it back, at its pace, where the machine is too slow to train live.",
    )
    p.add_argument("--out", type=Path, default=Path("models"), help="the models folder (default: models)")
    p.add_argument("--n", type=int, default=LESSON_N, help=f"the gap (default: {LESSON_N}, the lesson's)")
    p.add_argument("--seconds", type=float, default=60.0, help="how long it trains (default: 60, the tour's)")
    cap = f"at most this many steps per cell (default: {LESSON_STEP_CAP}, the tour's; 0: no cap)"
    p.add_argument("--steps", type=int, default=LESSON_STEP_CAP, help=cap)
    p.set_defaults(func=cmd_lab_record)


# Subcommands, in the order `unrolled --help` lists them. Add e.g. `add_serve` and `add_trace` here.
SUBCOMMANDS = [add_serve, add_trace, add_train, add_import, add_lab_record]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unrolled", description="See inside recurrent neural networks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "models_dir", 0) is None:
        args.models_dir = args.models_dir_default()
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
