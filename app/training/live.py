"""The lab's live training: an RNN, an LSTM and a GRU learn the memory task side by side, step by step.

Each chosen cell is a SeqModel of the memory task's size, initialised from the same seed, trained in turn on the
same batches, one optimiser step each (Adam, the task's learning rate and clip). Every step gives its loss, the
batch's accuracy and grad_ratio = ‖∂L/∂h_1‖/‖∂L/∂h_T‖, the total derivative of the loss with respect to the top
layer's hidden state at the first step against the last, over the batch: how much of the error reaches the symbol.

What a run shows, measured (bench/lab_train_speed.py --learn, one thread, two busy cores): at N = 100 the
plain RNN stays at chance (0.12-0.16 held-out) for its first ~650 steps while the GRU reaches 1.00 after ~450
and the LSTM ~0.8 after ~650: the lesson within a minute. At N = 50-75 the plain RNN learns too (fixed gaps,
Adam): 0.84-1.00 within 60 s. At N = 150 no cell learns within 60 s. Past ~900 steps at N = 100 the plain RNN
may find the symbol as well (0.80 at 90 s in one run), so longer runs blur the lesson.

`LabModels` keeps the models trained live for a while (bounded in number and age), so that they open in the
model view and every model API under the ids a run's done frame names.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from app.engine.card import Checkpoint, LoadedModel, ModelCard
from app.engine.layers import Cell
from app.engine.token.card import TokenCard
from app.engine.token.model import SeqModel
from app.training.tasks import memory
from app.training.tasks.base import ModelSize
from app.zoo.importer import LAB_PREFIX

CELLS: tuple[Cell, ...] = ("rnn", "lstm", "gru")
TASK = memory.TASK
SIZE = ModelSize(embed_size=16, hidden_size=64)  # the zoo's memory models'
BUDGET = TASK.budget("lstm")  # batch size, learning rate and clip: the same for every cell
SEED = 0  # every cell's initial weights and the batches
# A tenth of the batches have a gap of 1-3 (memory.SHORT_NS) where the error still reaches the symbol in every
# cell: without them no cell learned anything within 30 s at N = 50 or 100 (see also app/training/tasks/memory.py). The
# other batches have the gap N itself: gaps spread over N/2-N kept the LSTM from learning N = 100 within 120 s.
SHORT_SHARE = memory.SHORT_SHARE
HELDOUT_SEED = memory.HELDOUT_SEED
HELDOUT = 256  # held-out sequences at the chosen gap, for the done frame's accuracy
CURVE_POINTS = 100  # at most, on the card: the learning page's curve
# The lesson (the gated cells learn, the plain RNN stays at chance) at N = 100 takes ~450 (GRU) to ~650 (LSTM)
# steps per cell (bench/lab_train_speed.py --learn): a run that cannot reach LESSON_STEPS in its time is told so
# by the page, which then offers the run recorded on the server (`unrolled lab-record`, RECORDING).
LESSON_N = 100
LESSON_STEPS = 650
# A run is capped by steps as well as time: past ~900 steps per cell the plain RNN starts to find the letter too
# (the recording made on an idle machine reached 1,596 steps in 60 s and the RNN 0.78 held out), so a fast server
# would teach the opposite of the lesson. At 800 every cell has had its ~650 steps and the RNN has not escaped
# (the recording's long-gap batches at steps 551-650: RNN 0.13, LSTM 0.74, GRU 1.00; at 801-900: 0.14, 0.76, 1.00).
LESSON_STEP_CAP = 800
RECORDING = Path("lab") / f"memory-{LESSON_N}-recorded.json"  # under the models folder (not a model: no card)
RECORD_COLUMNS = ("cell", "step", "gap", "loss", "accuracy", "grad_ratio", "elapsed")  # cell: its index

Reason = Literal["stopped", "time", "steps"]


def init_weights(model: SeqModel, seed: int) -> None:
    """torch.nn's default initialisation (embedding N(0, 1), recurrent weights and biases U(±1/√H), the head
    U(±1/√fan_in)), drawn from a generator of our own: seeding torch's global one would reach into every other
    computation of the server. Then the task's own (an LSTM's forget-gate bias 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.embedding.weight.normal_(generator=gen)
        bound = 1 / math.sqrt(model.config.hidden_size)
        for p in model.rnn.parameters():
            p.uniform_(-bound, bound, generator=gen)
        bound = 1 / math.sqrt(model.head.in_features)
        model.head.weight.uniform_(-bound, bound, generator=gen)
        model.head.bias.uniform_(-bound, bound, generator=gen)
    TASK.init_model(model, DATA)


DATA = memory.MemoryData(vocab=memory.vocab(), data_source="the lab")  # what building a model reads: the vocabulary


def build(cell: Cell, size: ModelSize = SIZE, seed: int = SEED) -> SeqModel:
    model = TASK.seq_model(cell, size, DATA)
    init_weights(model, seed)
    return model


def draw_gap(rng: np.random.Generator, n: int, short_share: float = SHORT_SHARE) -> int:
    """One batch's gap: the chosen n, or with probability short_share a short gap of 1-3 (never longer than n)."""
    if n > memory.SHORT_NS[1] and rng.random() < short_share:
        return int(rng.integers(memory.SHORT_NS[0], memory.SHORT_NS[1] + 1))
    return n


def forward_ratio(model: SeqModel, ids: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The loss at the last step, its logits, and the top layer's hidden state after step 1 and after step T,
    both kept for their gradients. Step 1 runs alone and the rest from its state, through torch.nn's fused
    modules: h_1 is then a tensor of the graph whose .grad is the total derivative ∂L/∂h_1 (every path through
    later steps), and the last output's .grad is ∂L/∂h_T."""
    x = model.embedding(ids)
    first, state = model.rnn(x[:, :1])
    h1 = state[0] if isinstance(state, tuple) else state  # (layers, B, H): what step 2 reads
    h1.retain_grad()
    rest_state: Tensor | tuple[Tensor, Tensor] = (h1, state[1]) if isinstance(state, tuple) else h1
    if ids.shape[1] > 1:
        out, _ = model.rnn(x[:, 1:], rest_state)
    else:
        out = first
    h_last = out[:, -1]
    h_last.retain_grad()
    logits = model.head(h_last)
    return F.cross_entropy(logits, labels), logits, h1, h_last


def grad_ratio(h1: Tensor, h_last: Tensor) -> float | None:
    """‖∂L/∂h_1‖/‖∂L/∂h_T‖ over the batch (Frobenius norms of the (B, H) gradients; the top layer's h_1)."""
    if h1.grad is None or h_last.grad is None:
        return None
    # in float64: a plain RNN's ∂L/∂h_1 across 100 steps has float32 entries (~1e-28), but their squares are
    # below float32's range, and a float32 norm says 0
    last = float(h_last.grad.double().norm())
    first = float(h1.grad[-1].double().norm())
    if last == 0.0 or not math.isfinite(last) or not math.isfinite(first):
        return None
    return first / last


@dataclass
class CellRun:
    """One cell's model, optimiser and what its steps gave."""

    cell: Cell
    model: SeqModel
    optimizer: torch.optim.Optimizer
    initial: dict[str, Tensor]
    steps: int = 0
    busy: float = 0.0  # seconds spent in its steps: its own steps per second, apart from the other cells'
    history: list[tuple[float, float, float | None]] = field(default_factory=list)  # (loss, accuracy, ratio)

    @classmethod
    def start(cls, cell: Cell, size: ModelSize = SIZE, seed: int = SEED) -> CellRun:
        model = build(cell, size, seed)
        model.train()
        initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return cls(cell, model, torch.optim.Adam(model.parameters(), lr=BUDGET.lr), initial)

    def step(self, ids: Tensor, labels: Tensor) -> tuple[float, float, float | None]:
        """One optimiser step on a batch: its loss, accuracy and grad_ratio (before the update)."""
        started = time.perf_counter()
        loss, logits, h1, h_last = forward_ratio(self.model, ids, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        nn.utils.clip_grad_norm_(self.model.parameters(), BUDGET.clip)
        self.optimizer.step()
        accuracy = float((logits.detach().argmax(-1) == labels).float().mean())
        result = (float(loss.detach()), accuracy, grad_ratio(h1, h_last))
        self.steps += 1
        self.history.append(result)
        self.busy += time.perf_counter() - started
        return result


def heldout_accuracy(model: SeqModel, n: int, count: int = HELDOUT) -> float:
    """Accuracy over `count` fixed sequences (seed HELDOUT_SEED) at gap n."""
    ids, labels = memory.sequences(np.random.default_rng(HELDOUT_SEED), count, n)
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(ids))[:, -1].argmax(-1)
    return float((pred == torch.from_numpy(labels)).float().mean())


def curve(history: Sequence[tuple[float, float, float | None]], points: int = CURVE_POINTS) -> list[dict[str, float]]:
    """The training curve as the zoo's cards keep it: windows of steps, each its mean loss and accuracy (and the
    geometric mean of grad_ratio), at most `points` of them."""
    if not history:
        return []
    every = max(1, math.ceil(len(history) / points))
    out: list[dict[str, float]] = []
    for start in range(0, len(history), every):
        window = history[start : start + every]
        point = {
            "step": start + len(window),
            "loss": round(sum(w[0] for w in window) / len(window), 4),
            "acc": round(sum(w[1] for w in window) / len(window), 4),
        }
        ratios = [w[2] for w in window if w[2] is not None and w[2] > 0]
        if ratios:
            point["grad_ratio"] = float(f"{math.exp(sum(math.log(r) for r in ratios) / len(ratios)):.4g}")
        out.append(point)
    return out


@dataclass(frozen=True)
class LabRequest:
    task: str
    n: int
    cells: tuple[Cell, ...]
    seconds: float
    steps: int | None = None  # at most this many steps per cell (the run also ends when `seconds` pass)


@dataclass
class RunResult:
    reason: Reason
    models: dict[str, LoadedModel]  # cell → the trained model, its card filled in
    steps: dict[str, int]
    accuracy: dict[str, float]


class Training:
    """One live run: the cells trained in turn on the same batches until `seconds` pass, each cell has taken
    `steps` steps or `stop` is set. Runs in
    one worker thread; `emit` gets each step's frame (it must not block) and is called from that thread."""

    def __init__(
        self,
        run: str,
        request: LabRequest,
        stop: threading.Event,
        emit: Callable[[dict[str, Any]], None],
        clock: Callable[[], float] = time.monotonic,
        size: ModelSize = SIZE,
        short_share: float = SHORT_SHARE,
    ) -> None:
        self.run_id = run
        self.request = request
        self.stop = stop
        self.emit = emit
        self.clock = clock
        self.size = size
        self.short_share = short_share
        self.cells: list[CellRun] = []
        self.started = 0.0
        self.seconds = 0.0

    def start_frame(self) -> dict[str, Any]:
        r = self.request
        return {"type": "start", "run": self.run_id, "task": r.task, "n": r.n, "cells": list(r.cells),
                "seconds": r.seconds, "steps": r.steps, "batch_size": BUDGET.batch_size,
                "hidden_size": self.size.hidden_size, "embed_size": self.size.embed_size,
                "lesson_steps": LESSON_STEPS if r.n == LESSON_N else None}  # fmt: skip

    def batches(self) -> Iterator[tuple[int, Tensor, Tensor]]:
        """The run's batches, the same for every run of this request: each one's gap (n, or a short 1-3), its
        token ids (B, gap + 2: the letter, the digits, '?') and its labels."""
        rng = np.random.default_rng(SEED)
        while True:
            gap = draw_gap(rng, self.request.n, self.short_share)
            ids, labels = memory.sequences(rng, BUDGET.batch_size, gap)
            yield gap, torch.from_numpy(ids), torch.from_numpy(labels)

    def train(self) -> Reason:
        """Step every cell in turn until the time is up or stop is set; then the reason. Each step frame names
        its batch's gap: a short one (1-3) reaches the letter in every cell, so the curves tell them apart."""
        # Grad mode is per thread, and this one comes from a pool whose threads also run the no-grad inference
        # of every other route: never inherit what they left behind.
        with torch.enable_grad():
            return self._train()

    def _train(self) -> Reason:
        self.cells = [CellRun.start(cell, self.size) for cell in self.request.cells]
        self.started = self.clock()
        reason: Reason = "time"
        try:
            for gap, ids, labels in self.batches():
                for run in self.cells:
                    if self.stop.is_set():
                        reason = "stopped"
                        return reason
                    elapsed = self.clock() - self.started
                    if elapsed >= self.request.seconds:
                        return reason
                    if self.request.steps is not None and run.steps >= self.request.steps:
                        return "steps"  # checked at the first cell of a batch: every cell has its `steps`
                    loss, accuracy, ratio = run.step(ids, labels)
                    self.emit({"type": "step", "cell": run.cell, "step": run.steps, "gap": gap, "loss": loss,
                               "accuracy": accuracy, "grad_ratio": ratio,
                               "elapsed": round(self.clock() - self.started, 4)})  # fmt: skip
            raise AssertionError("unreachable: the batches never end")
        finally:
            self.seconds = self.clock() - self.started

    def finish(self, reason: Reason) -> RunResult:
        """Each cell's held-out accuracy at gap n, and its model as the zoo would load it."""
        models: dict[str, LoadedModel] = {}
        accuracy: dict[str, float] = {}
        for run in self.cells:
            accuracy[run.cell] = heldout_accuracy(run.model, self.request.n)
            models[run.cell] = self.loaded(run, accuracy[run.cell], reason)
        return RunResult(reason, models, {r.cell: r.steps for r in self.cells}, accuracy)

    def loaded(self, run: CellRun, accuracy: float, reason: Reason) -> LoadedModel:
        n = self.request.n
        model_id = f"{LAB_PREFIX}{self.run_id}-{run.cell}"
        run.model.eval()
        run.model.requires_grad_(False)
        run.model.forget_layers()
        initial = SeqModel(run.model.config)
        initial.load_state_dict(run.initial)
        initial.eval()
        initial.requires_grad_(False)
        example = {
            "text": memory.example_text(n, seed=n, symbol=memory.SYMBOLS[n % len(memory.SYMBOLS)]),
            "label": memory.SYMBOLS[n % len(memory.SYMBOLS)],
            "note": f"N = {n}: the gap this model was trained on in the lab.",
        }
        card = ModelCard(
            id=model_id,
            task=TASK.name,
            cell=run.cell,
            kind=TASK.kind,
            hidden_size=self.size.hidden_size,
            num_layers=1,
            vocab=memory.vocab().to_json(),
            block=TokenCard(embed_size=self.size.embed_size, labels=list(memory.SYMBOLS), target=TASK.target),
            description=(
                f"Trained live in the lab: {run.steps} steps in {self.seconds:.1f} s at gap N = {n} "
                f"({'stopped by the presenter' if reason == 'stopped' else 'its time was up'}), the same batches "
                f"and initial weights as the run's other cells. {TASK.description}"
            ),
            examples=[example, *TASK.examples()],
            metrics={
                "accuracy": round(accuracy, 4),
                "n": n,
                "chance": round(1 / len(memory.SYMBOLS), 4),
                "heldout": HELDOUT,
                "training": {
                    "steps": run.steps,
                    "seconds": round(self.seconds, 2),
                    "batch_size": BUDGET.batch_size,
                    "lr": BUDGET.lr,
                    "clip": BUDGET.clip,
                    "short_share": self.short_share,
                    "stopped": reason,
                },
            },
            curve=curve(run.history),
            checkpoints=[Checkpoint("0", 0, ""), Checkpoint("100", run.steps, "")],
            seed=SEED,
            train_seconds=round(self.seconds, 1),
            data_source=(
                f"generated live: a letter from {memory.SYMBOLS}, N = {n} random digits, '?'"
                + (f"; {self.short_share:.0%} of batches a short gap of 1-3" if self.short_share and n > 3 else "")
                + f"; held-out {HELDOUT} sequences at N = {n} from seed {HELDOUT_SEED}"
            ),
        )
        return LoadedModel(
            card=card, vocab=memory.vocab(), model=run.model, checkpoints={"0": initial, "100": run.model}
        )


def record(request: LabRequest, machine: str, clock: Callable[[], float] = time.thread_time) -> dict[str, Any]:
    """A whole run, trained here in this thread as the server trains one, as the page plays it back: the start
    frame, every step frame as a row of RECORD_COLUMNS (in the order they were sent) and the done frame (the
    held-out accuracies; no models: they are not kept). Timed by default by this thread's CPU time (torch on one
    thread computes in it), so that other work on the machine does not slow the recording down: its pace is this
    machine's when it trains alone."""
    rows: list[list[float | int | None]] = []
    cells = list(request.cells)

    def keep(frame: dict[str, Any]) -> None:
        ratio = frame["grad_ratio"]
        rows.append([cells.index(frame["cell"]), frame["step"], frame["gap"], round(frame["loss"], 4),
                     round(frame["accuracy"], 4), None if ratio is None else float(f"{ratio:.4g}"),
                     round(frame["elapsed"], 3)])  # fmt: skip

    training = Training("recorded", request, threading.Event(), keep, clock=clock)
    result = training.finish(training.train())
    return {
        "recorded": {
            "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "machine": machine,
            "seconds": round(training.seconds, 2),
            "steps_per_second": {r.cell: round(r.steps / training.seconds, 2) for r in training.cells},
        },
        "start": training.start_frame(),
        "columns": list(RECORD_COLUMNS),
        "rows": rows,
        "done": {
            "type": "done",
            "reason": result.reason,
            "models": {},
            "steps": result.steps,
            "accuracy": {c: round(a, 4) for c, a in result.accuracy.items()},
        },
    }


class LabModels:
    """The models trained live: at most `kept` (the oldest go first), each for `ttl` seconds (expired ones are
    dropped whenever the store is read). Thread-safe. Also counts the training runs going, which
    max_training_runs bounds, and those of them whose client has left: each is over within one training step
    (its thread checks the stop flag every step), so a new request waits for them instead of being refused."""

    def __init__(self, kept: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.kept = kept
        self.ttl = ttl
        self.clock = clock
        self._models: OrderedDict[str, tuple[float, LoadedModel]] = OrderedDict()  # id → (added, model), oldest first
        self._lock = threading.Lock()
        # changed and read on the event loop only
        self.runs = 0  # training runs going
        self.leaving = 0  # of them, those whose client has left
        self.ends = 0.0  # time.monotonic() when the newest run's time is up
        self._over: asyncio.Event | None = None  # set when a run is over (a new one for each)

    def run_over(self) -> None:
        """A run has ended: wake whoever waits for one."""
        if self._over is not None:
            self._over.set()
            self._over = None

    async def wait_run_over(self) -> None:
        """Until the next run ends."""
        if self._over is None:
            self._over = asyncio.Event()
        await self._over.wait()

    def add(self, models: Sequence[LoadedModel]) -> None:
        with self._lock:
            now = self.clock()
            for m in models:
                self._models.pop(m.card.id, None)
                self._models[m.card.id] = (now, m)
            while len(self._models) > self.kept:
                self._models.popitem(last=False)
            self._expire(now)

    def snapshot(self) -> dict[str, LoadedModel]:
        """The models kept now, by id."""
        with self._lock:
            self._expire(self.clock())
            return {i: m for i, (_, m) in self._models.items()}

    def __contains__(self, model_id: object) -> bool:
        return model_id in self.snapshot()

    def __len__(self) -> int:
        return len(self.snapshot())

    def _expire(self, now: float) -> None:
        while self._models:
            added = next(iter(self._models.values()))[0]
            if now - added < self.ttl:
                return
            self._models.popitem(last=False)
