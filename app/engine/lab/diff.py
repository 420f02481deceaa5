"""Change one token: how far the change travels through a model's states and predictions.

The two inputs (as many tokens each) run through the trace engine's own forward (app.engine.layers.stack_forward:
torch.nn's kernel layer by layer, each direction, every step's gates at once) on a float64 copy of the model, so
that a difference that has faded to 1e-12 is reported as such and not lost in float32 rounding. Per layer entry
(torch.nn's order, direction named) and step: ‖h_t − h'_t‖ and, for the LSTM, ‖c_t − c'_t‖; per step, the total
variation distance ½Σ|p_t − p'_t| between the two distributions the head gives (the next token's, or a
classifier's classes at that step, as the trace computes them).

A reverse direction has read the input from its end back to step t, so a change at step s reaches its states at
steps t ≤ s: its state_change is zero after the change and, in a bidirectional model, the change travels both ways.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from app.engine.errors import EmptyInput, EngineError
from app.engine.layers import Direction, stack_forward
from app.engine.token.model import SeqModel

F64 = NDArray[np.float64]


def _tokens(n: int) -> str:
    return f"{n} token" if n == 1 else f"{n} tokens"


class TokenCountMismatch(EngineError):
    def __init__(self, steps: int, edited_steps: int) -> None:
        super().__init__(
            f"text reads as {_tokens(steps)} and edited as {edited_steps}: change tokens, do not add or remove any "
            "(both must have the same number of tokens)"
        )
        self.steps = steps
        self.edited_steps = edited_steps


@dataclass
class States:
    """One input's forward, float64, every entry in the input's time."""

    hidden: list[F64]  # per entry (T, H)
    cell_state: list[F64] | None  # per entry (T, H), LSTM
    probs: F64  # (T, outputs)


@dataclass
class Diff:
    changed: list[int]  # steps whose tokens differ
    directions: list[Direction]  # per entry, torch.nn's order
    state_change: F64  # (entries, T) ‖h_t − h'_t‖
    cell_change: F64 | None  # (entries, T) ‖c_t − c'_t‖, LSTM
    prediction_change: F64  # (T,) ½Σ|p_t − p'_t|


def float64_copy(model: SeqModel) -> SeqModel:
    twin = copy.deepcopy(model).double()
    twin.forget_layers()  # the single-layer views are made again, over the float64 tensors
    return twin


@torch.no_grad()
def states(model: SeqModel, ids: Sequence[int]) -> States:
    """The states and the head's probabilities at every step, through the trace engine's forward."""
    cfg = model.config
    x = model.embedding.weight[torch.as_tensor(list(ids), dtype=torch.long)]
    forwards, top = stack_forward(model, x, cfg.num_layers, cfg.directions)
    hidden: list[F64] = []
    cells: list[F64] = []
    for j, fwd in enumerate(forwards):
        reverse = j % cfg.directions == 1  # its arrays are in its own time, last input step first
        h = fwd.hidden.numpy()
        hidden.append(h[::-1] if reverse else h)
        if fwd.cell_state is not None:
            c = fwd.cell_state.numpy()
            cells.append(c[::-1] if reverse else c)
    logits = top @ model.head.weight.T + model.head.bias
    probs = torch.softmax(logits.double(), dim=-1).numpy()
    return States(hidden, cells if cfg.cell == "lstm" else None, probs)


def diff_ids(model: SeqModel, ids: Sequence[int], edited_ids: Sequence[int]) -> Diff:
    """The change of every state and prediction when `ids` is read as `edited_ids` (as many tokens)."""
    if not ids or not edited_ids:
        raise EmptyInput("the input is empty: give at least one token")
    if len(ids) != len(edited_ids):
        raise TokenCountMismatch(len(ids), len(edited_ids))
    cfg = model.config
    for seq in (ids, edited_ids):
        if min(seq) < 0 or max(seq) >= cfg.vocab_size:
            raise ValueError(f"token ids must lie in [0, {cfg.vocab_size})")
    m64 = float64_copy(model)
    a, b = states(m64, ids), states(m64, edited_ids)
    state_change = np.stack([np.linalg.norm(h - h2, axis=1) for h, h2 in zip(a.hidden, b.hidden, strict=True)])
    cell_change = None
    if a.cell_state is not None and b.cell_state is not None:
        cell_change = np.stack(
            [np.linalg.norm(c - c2, axis=1) for c, c2 in zip(a.cell_state, b.cell_state, strict=True)]
        )
    directions: list[Direction] = ["forward", "reverse"][: cfg.directions] * cfg.num_layers  # type: ignore[assignment]
    return Diff(
        changed=[t for t, (i, j) in enumerate(zip(ids, edited_ids, strict=True)) if i != j],
        directions=directions,
        state_change=state_change,
        cell_change=cell_change,
        prediction_change=0.5 * np.abs(a.probs - b.probs).sum(axis=1),
    )
