"""The training loop: one task and one cell → models/<id>.safetensors, models/<id>.json and its checkpoints.

Training is reproducible: torch, numpy and random are seeded, torch runs its deterministic algorithms, and the
number of steps (not the clock) decides when training ends. Weights are written with safetensors only.

Two clocks: the card's `train_seconds` is the wall time, and metrics.training.cpu_seconds the time this process ran
on the CPU (one thread: TRAIN_THREADS). The budget's safety cap (Budget.max_seconds) reads the CPU clock, so that a
machine shared with other work stretches a run's wall time but never cuts its steps short: the same seed and
budget give the same model on a busy machine and on an idle one.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from app.engine.card import Checkpoint, ModelCard, save_model, save_weights
from app.engine.layers import Cell
from app.training.tasks import TASKS
from app.training.tasks.base import Budget, ModelSize, Task
from app.training.tasks.wheel import DEFAULT_CACHE as DEFAULT_CACHE  # the cache `unrolled train` reads

CHECKPOINTS: tuple[tuple[str, float], ...] = (("0", 0.0), ("5", 0.05), ("20", 0.2), ("100", 1.0))
CURVE_POINTS = 50
# A dry run checks the pipeline, not the curve: each point scores the dev set (a translation task decodes it
# greedily), which was two thirds of a dry run's time at a point every step.
DRY_CURVE_POINTS = 10
DEFAULT_SEED = 0
# One thread: these models are small, so a second thread gains little when the machine is idle, and when
# the other core is busy (a server, a test run) two threads spin-wait on each other and run several times slower.
TRAIN_THREADS = 1


def model_id(task: str, cell: str, variant: str = "") -> str:
    return f"{task}-{cell}-{variant}" if variant else f"{task}-{cell}"


@contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch, numpy and random, and make torch use deterministic algorithms on TRAIN_THREADS threads
    while inside (results can depend on the number of threads)."""
    previous = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(TRAIN_THREADS)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        torch.set_num_threads(threads)


def save_checkpoint(model: nn.Module, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_weights(model, path)


def checkpoint_steps(steps: int) -> dict[str, int]:
    return {name: round(frac * steps) for name, frac in CHECKPOINTS}


def cosine(step: int, steps: int, floor: float) -> float:
    """The learning-rate factor after `step` of `steps`: 1 → `floor` along half a cosine."""
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(step, steps) / max(steps, 1)))


def train(
    task_name: str,
    cell: Cell,
    out: Path,
    *,
    seed: int = DEFAULT_SEED,
    dry_run: bool = False,
    cache: Path = DEFAULT_CACHE,
    progress: bool = True,
    variant: str = "",
) -> ModelCard:
    """Train one model of the zoo and write it (weights, card, checkpoints) into `out`. `variant`: one of the
    task's variants for the cell (Task.variants), e.g. numbers-gru-"attention"."""
    if task_name not in TASKS:
        raise ValueError(f"unknown task {task_name!r}; choose one of {sorted(TASKS)}")
    task = TASKS[task_name]
    if cell not in task.cells:
        raise ValueError(f"{task_name} trains no {cell!r} model; choose one of {list(task.cells)}")
    if variant not in task.variants(cell):
        raise ValueError(f"{task_name} has no {cell} model {variant!r}; it has {list(task.variants(cell))}")
    started = time.perf_counter()
    cpu_started = time.process_time()
    with deterministic(seed):
        card, model, data = _train(task, cell, variant, out, seed, dry_run, cache, progress, cpu_started)
    card.train_seconds = round(time.perf_counter() - started, 1)
    card.metrics["training"]["cpu_seconds"] = round(time.process_time() - cpu_started, 1)
    save_model(out, card, model)
    task.write_files(out, data)
    return card


def _train(
    task: Task[Any],
    cell: Cell,
    variant: str,
    out: Path,
    seed: int,
    dry_run: bool,
    cache: Path,
    progress: bool,
    cpu_started: float,
) -> tuple[ModelCard, nn.Module, Any]:
    mid = model_id(task.name, cell, variant)
    data = task.load(dry_run, cache)
    size: ModelSize = task.dry_size(cell) if dry_run else task.size(cell)
    budget: Budget = task.dry_budget(cell) if dry_run else task.variant_budget(cell, variant)
    model = task.build_model(cell, size, data, variant)
    task.init_model(model, data)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine(s, budget.steps, budget.lr_floor))

    def ck_path(name: str) -> Path:
        return out / "checkpoints" / f"{mid}-{name}.safetensors"

    ck_steps = checkpoint_steps(budget.steps)
    checkpoints: list[Checkpoint] = []
    save_checkpoint(model, ck_path("0"))
    checkpoints.append(Checkpoint(name="0", step=0, file=f"checkpoints/{mid}-0.safetensors"))
    log_every = max(1, budget.steps // (DRY_CURVE_POINTS if dry_run else CURVE_POINTS))
    curve: list[dict[str, float]] = []
    sums: dict[str, float] = {}
    count = 0
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None  # (dev score, step, weights)
    evals_since_best = 0
    step = 0
    stopped = ""
    bar = tqdm(range(1, budget.steps + 1), desc=mid, disable=not progress, mininterval=1.0, leave=True)
    model.train()
    for step in bar:
        batch = data.batch(rng, budget.batch_size)
        logits = task.forward(model, batch)
        loss = task.loss(logits, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), budget.clip))
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            logged = {"loss": float(loss), "grad_norm": grad_norm, **data.after_step(batch, logits.detach())}
        for key, value in logged.items():
            sums[key] = sums.get(key, 0.0) + value
        count += 1
        for name in ("5", "20"):
            if step == ck_steps[name] and step < budget.steps:
                save_checkpoint(model, ck_path(name))
                checkpoints.append(Checkpoint(name=name, step=step, file=f"checkpoints/{mid}-{name}.safetensors"))
        if step % log_every == 0 or step == budget.steps:
            point: dict[str, float] = {"step": step}
            point.update({k: round(v / count, 4) for k, v in sums.items()})
            sums, count = {}, 0
            model.eval()
            dev = data.dev_score(model)
            model.train()
            if dev is not None:
                point["dev"] = round(dev, 4)
                # The final weights come from the 20 % checkpoint on, so that checkpoints stay in order.
                if step >= ck_steps["20"] and (best is None or dev > best[0]):
                    best = (dev, step, {k: v.detach().clone() for k, v in model.state_dict().items()})
                    evals_since_best = 0
                else:
                    evals_since_best += 1
            curve.append(point)
            bar.set_postfix(loss=f"{point['loss']:.3f}", refresh=False)
            if budget.patience and evals_since_best >= budget.patience and step >= ck_steps["20"]:
                stopped = f"early stop: dev score did not improve for {budget.patience} evaluations"
                break
        if time.process_time() - cpu_started > budget.max_seconds:
            stopped = f"time cap: stopped after {step} of {budget.steps} steps ({budget.max_seconds:.0f} CPU s)"
            tqdm.write(f"{mid}: {stopped}")
            break
    bar.close()
    final_step = step
    if best is not None:
        model.load_state_dict(best[2])
        final_step = best[1]
    model.eval()
    save_checkpoint(model, ck_path("100"))
    checkpoints.append(Checkpoint(name="100", step=final_step, file=f"checkpoints/{mid}-100.safetensors"))
    metrics = task.metrics(model, data)
    metrics["training"] = {
        "steps_planned": budget.steps,
        "steps_run": step,
        "final_step": final_step,
        "batch_size": budget.batch_size,
        "lr": budget.lr,
        "clip": budget.clip,
        "stopped": stopped or "completed",
        "dry_run": dry_run,
    }
    card = ModelCard(
        id=mid,
        task=task.name,
        cell=cell,
        kind=task.kind,
        hidden_size=size.hidden_size,
        num_layers=size.num_layers,
        bidirectional=size.bidirectional,
        vocab=data.vocab.to_json(),
        block=task.card_block(model, data, size),
        description=task.description,
        examples=task.examples(),
        metrics=metrics,
        curve=curve,
        checkpoints=checkpoints,
        seed=seed,
        data_source=data.data_source,
    )
    return card, model, data
