"""minGRU, minLSTM and S6 as recurrent layers of a token model (the cells "mingru", "minlstm", "s6"): what
app/engine/layers.py reads of a layer whose recurrence is the linear h_t = a_t ⊙ h_{t−1} + b_t.

A layer reads x (T, …, in) and hands on (T, …, H) to the layer above or the head. Its state, the numbers the
recurrence carries, has `state_shape`: minGRU's and minLSTM's is h_t itself (H), so `state_is_hidden`; S6's is
D × N (D = H channels, N = S6_STATE_SIZE numbers each), and what it hands on is its output y_t = h_t C_t + D ⊙ u_t.
Everything the engine needs is element-wise in time given x: the coefficients (a_t, b_t), the exact log a_t, the
readout and the gates; only the recurrence itself runs step after step (or by the scan).

S6 in a token model reads its input through a linear map u_t = W_u x_t + b_u to its D channels (Mamba's input
projection, without the convolution and the gate of its block: the recurrence is what is traced).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from app.engine.modern import scan as scans
from app.engine.modern.mingru import MinGRU, MinLSTM, Mode
from app.engine.modern.s6 import S6

ModernCell = Literal["mingru", "minlstm", "s6"]
# Each cell's gates as the trace shows them, (T, H) each, in the order of ModernLayer.gates' columns. S6's is its
# step size Δ_t (one per channel): how much of the token it writes, and how far its state decays, at that step.
MODERN_GATES: dict[str, tuple[str, ...]] = {"mingru": ("update",), "minlstm": ("forget", "input"),
                                                   "s6": ("step",)}  # fmt: skip
S6_STATE_SIZE = 16  # N, Mamba's default


class _LoopRecurrence(torch.autograd.Function):
    """h_t = a_t ⊙ h_{t−1} + b_t by the loop, differentiated by the closed-form adjoint run as a loop too
    (δ_t = g_t + a_{t+1} ⊙ δ_{t+1}; ∂L/∂a_t = δ_t ⊙ h_{t−1}, ∂L/∂b_t = δ_t): the loop's numbers, autograd's
    gradient up to rounding, and no graph of T steps. On a CPU this is what trains fastest (bench/modern_scan.py:
    the scan buys depth, not time): at S6's (T, B, D, N) = (110, 32, 64, 16) autograd through the scan's levels took
    0.37 s a batch, the adjoint through the scan 0.28 s, mostly the levels' copies."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, start: Tensor) -> Tensor:
        states = torch.empty_like(b)
        h = start.expand_as(b[0])
        for t in range(a.shape[0]):
            h = torch.addcmul(b[t], a[t], h)
            states[t] = h
        ctx.save_for_backward(a, start, states)
        return states

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a, start, states = ctx.saved_tensors
        delta = torch.empty_like(grad)
        d = grad[-1]
        delta[-1] = d
        for t in range(a.shape[0] - 2, -1, -1):
            d = torch.addcmul(grad[t], a[t + 1], d)
            delta[t] = d
        previous = torch.cat([start.expand_as(states[:1]), states[:-1]])
        grad_start = (a[0] * delta[0]).sum_to_size(start.shape)
        return delta * previous, delta, grad_start


def recurrence(a: Tensor, b: Tensor, start: Tensor) -> Tensor:
    """(T, …) states of h_t = a_t ⊙ h_{t−1} + b_t from `start`, by the loop, differentiable by its adjoint."""
    states: Tensor = _LoopRecurrence.apply(a, b, start)  # type: ignore[no-untyped-call]
    return states


class ModernLayer(nn.Module):
    """One layer of a linear recurrence; subclasses give its coefficients, exact log-retain, readout and gates."""

    hidden_size: int
    state_shape: tuple[int, ...]
    state_is_hidden: bool  # the state is what the layer hands on (minGRU, minLSTM), or not (S6)

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(a, b) of h_t = a_t ⊙ h_{t−1} + b_t, each (T, …, *state_shape)."""
        raise NotImplementedError

    def log_retain(self, x: Tensor) -> Tensor:
        """log a_t (T, …, *state_shape) from the pre-activations: exact where a_t rounds to 1 or 0."""
        raise NotImplementedError

    def readout(self, states: Tensor, x: Tensor) -> Tensor:
        """What the layer hands on at each step, (T, …, H), from its states and its inputs."""
        raise NotImplementedError

    def gates(self, x: Tensor) -> Tensor:
        """(T, …, G·H): the gates of MODERN_GATES side by side."""
        raise NotImplementedError

    def zero_state(self, x: Tensor) -> Tensor:
        return x.new_zeros((*x.shape[1:-1], *self.state_shape))

    def forward(self, x: Tensor, state: Tensor | None = None, mode: Mode = "loop") -> tuple[Tensor, Tensor]:
        """(outputs (T, …, H), states (T, …, *state_shape)) from x (T, …, in); the recurrence computed the way
        `mode` says: the loop (differentiated by its adjoint, see _LoopRecurrence: what training runs), the
        Hillis–Steele scan or the log-space form (each differentiated by autograd)."""
        start = self.zero_state(x) if state is None else state
        a, b = self.coefficients(x)
        if mode == "scan":
            states = scans.scan(a, b, start)[0]
        elif mode == "log":
            states = scans.signed_log_scan(a, b, start)
        else:
            states = recurrence(a, b, start)
        return self.readout(states, x), states


class MinGRULayer(ModernLayer):
    state_is_hidden = True

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size, self.state_shape = hidden_size, (hidden_size,)
        self.cell = self.make_cell(input_size, hidden_size)

    def make_cell(self, input_size: int, hidden_size: int) -> MinGRU | MinLSTM:
        return MinGRU(input_size, hidden_size)

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.cell.coefficients(x)

    def log_retain(self, x: Tensor) -> Tensor:
        return self.cell.log_retain_and_write(x)[0]

    def readout(self, states: Tensor, x: Tensor) -> Tensor:
        return states

    def gates(self, x: Tensor) -> Tensor:
        return torch.cat(list(self.cell.gates(x).values()), dim=-1)


class MinLSTMLayer(MinGRULayer):
    def make_cell(self, input_size: int, hidden_size: int) -> MinGRU | MinLSTM:
        return MinLSTM(input_size, hidden_size)


class S6Layer(ModernLayer):
    state_is_hidden = False

    def __init__(self, input_size: int, hidden_size: int, state_size: int = S6_STATE_SIZE) -> None:
        super().__init__()
        self.hidden_size, self.state_shape = hidden_size, (hidden_size, state_size)
        self.proj = nn.Linear(input_size, hidden_size)
        self.ssm = S6(hidden_size, state_size)

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u = self.proj(x)
        _, a_bar, b_bar, _, _ = self.ssm.discretised(u)
        return a_bar, b_bar * u[..., None]

    def log_retain(self, x: Tensor) -> Tensor:
        step = F.softplus(self.ssm.linear_step(self.proj(x)))
        return step[..., None] * self.ssm.a()

    def readout(self, states: Tensor, x: Tensor) -> Tensor:
        u = self.proj(x)
        return self.ssm.readout(states, u, self.ssm.linear_c(u))

    def gates(self, x: Tensor) -> Tensor:
        return F.softplus(self.ssm.linear_step(self.proj(x)))


LAYERS: dict[ModernCell, type[MinGRULayer] | type[S6Layer]] = {"mingru": MinGRULayer, "minlstm": MinLSTMLayer,
                                                                "s6": S6Layer}  # fmt: skip


class ModernStack(nn.Module):
    """1–4 layers of one modern cell, read as torch.nn's RNNs are: (B, T, in) → ((B, T, H), None)."""

    def __init__(self, cell: ModernCell, input_size: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional = False
        self.layers = nn.ModuleList(
            [LAYERS[cell](input_size if k == 0 else hidden_size, hidden_size) for k in range(num_layers)]
        )

    def layer(self, k: int) -> ModernLayer:
        layer = self.layers[k]
        assert isinstance(layer, ModernLayer)
        return layer

    def forward(self, x: Tensor, state: None = None) -> tuple[Tensor, None]:
        out = x.transpose(0, 1)  # time first, as the recurrences read it
        for k in range(self.num_layers):
            out, _ = self.layer(k)(out)
        return out.transpose(0, 1), None


__all__ = ["LAYERS", "MODERN_GATES", "S6_STATE_SIZE", "ModernCell", "ModernLayer", "ModernStack", "recurrence"]
