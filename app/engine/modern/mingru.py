"""minGRU and minLSTM ("Were RNNs All We Needed?", Feng et al. 2024): gates that read only x_t.

minGRU:   z_t = σ(W_z x_t + b_z),  h̃_t = W_h x_t + b_h,  h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t.
minLSTM:  f_t = σ(W_f x_t + b_f),  i_t = σ(W_i x_t + b_i),  f′_t, i′_t = f_t, i_t ÷ (f_t + i_t)  (the paper's
          normalisation, which makes the state's scale independent of time),  h_t = f′_t ⊙ h_{t−1} + i′_t ⊙ h̃_t.

Neither gate reads h_{t−1}, so both are the linear recurrence h_t = a_t ⊙ h_{t−1} + b_t of scan.py with
a = 1 − z, b = z ⊙ h̃ (minGRU) or a = f′, b = i′ ⊙ h̃ (minLSTM), and all three of its ways apply. The Jacobian is
∂h_t/∂h_s = Π_{k=s+1..t} diag(a_k): no W_hh and no tanh′, so no product can exceed 1 (it cannot explode), and it
shrinks only at the steps where a gate chooses to overwrite (a_k < 1).

The log-space form is the paper's (its Appendix, minGRU/minLSTM "log-space version"): with `positive` set, h̃_t is
g(W_h x_t + b_h), g(x) = x + 0.5 for x ≥ 0 and σ(x) below (continuous, positive, linear growth), and
log h̃ = log_g(·); log(1 − z) = −softplus(k), log z = −softplus(−k) for k = W_z x + b_z (never log of a rounded
sigmoid), and for minLSTM, with d = softplus(−k_f) − softplus(−k_i), log f′ = −softplus(d), log i′ = −softplus(−d).
The paper feeds its h_0 through log_g too; here h_init is the state itself, positive (log h_init) in the paper's
form. Without `positive` (h̃ of either sign) the log-space form is scan.signed_log_scan's, an extension the paper
does not make.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from app.engine.modern import scan as scans

Mode = Literal["loop", "scan", "log"]
MODES: tuple[Mode, ...] = ("loop", "scan", "log")


def g(x: Tensor) -> Tensor:
    """The paper's g: x + 0.5 for x ≥ 0, σ(x) below; positive, continuous, and linear for large x."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """log g(x), computed as the paper does: log(relu(x) + 0.5) for x ≥ 0, −softplus(−x) below."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


@dataclass(frozen=True)
class MinTrace:
    """One sequence through a minGRU or minLSTM, exactly; (T, H) unless said."""

    states: Tensor  # h_t
    candidate: Tensor  # h̃_t
    gates: dict[str, Tensor]  # minGRU: "update" z_t; minLSTM: "forget" f′_t, "input" i′_t (normalised)
    retain: Tensor  # a_t, the factor h_{t−1} is kept by: 1 − z_t, or f′_t
    log_retain: Tensor  # log a_t, from the pre-activation (−softplus), exact where a_t rounds to 1 or 0

    def jacobian(self) -> Tensor:
        """(T, T, H): [t, s] the diagonal of ∂h_t/∂h_s = Π_{k=s+1..t} a_k for s ≤ t, 0 above; T²·H numbers,
        made when asked for (a lesson's T ~ 100 is 10⁴·H; T = 10⁴ would be 10⁸·H)."""
        return scans.triangle(self.log_retain)


class _MinCell(nn.Module):
    """What minGRU and minLSTM share: the candidate h̃, the three ways, the trace, BPTT."""

    def __init__(self, input_size: int, hidden_size: int, positive: bool) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.positive = input_size, hidden_size, positive
        self.linear_h = nn.Linear(input_size, hidden_size)

    def candidate(self, x: Tensor) -> Tensor:
        pre = self.linear_h(x)
        return g(pre) if self.positive else pre

    def log_retain_and_write(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """log a_t and log of the write gate (z_t or i′_t), each from the pre-activations, never a rounded σ."""
        raise NotImplementedError

    def gates(self, x: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(a, b) of h_t = a_t ⊙ h_{t−1} + b_t for the inputs x (T, …, input_size)."""
        log_a, log_w = self.log_retain_and_write(x)
        return torch.exp(log_a), torch.exp(log_w) * self.candidate(x)

    def initial(self, x: Tensor, h_init: Tensor | None) -> Tensor:
        if h_init is not None:
            return h_init
        # The paper's positive cells start from g(0) = 0.5, which log space can hold; the others from 0.
        return x.new_full((*x.shape[1:-1], self.hidden_size), 0.5 if self.positive else 0.0)

    def forward(self, x: Tensor, h_init: Tensor | None = None, mode: Mode = "loop") -> Tensor:
        """(T, …, hidden_size) states, computed the way `mode` says."""
        h0 = self.initial(x, h_init)
        if mode == "log":
            return self.log_space(x, h0)
        a, b = self.coefficients(x)
        return scans.loop(a, b, h0) if mode == "loop" else scans.scan(a, b, h0)[0]

    def log_space(self, x: Tensor, h0: Tensor) -> Tensor:
        if not self.positive:
            a, b = self.coefficients(x)
            return scans.signed_log_scan(a, b, h0)
        if bool((h0 <= 0).any()):
            raise ValueError("the log-space form needs a positive initial state")
        log_a, log_w = self.log_retain_and_write(x)
        log_values = torch.cat([torch.log(h0).expand(log_a.shape[1:])[None], log_w + log_g(self.linear_h(x))])
        return scans.log_scan(log_a, log_values)

    def trace(self, x: Tensor, h_init: Tensor | None = None) -> MinTrace:
        """Every quantity of one sequence x (T, input_size), by the loop."""
        h0 = self.initial(x, h_init)
        log_a, _ = self.log_retain_and_write(x)
        a, b = self.coefficients(x)
        return MinTrace(scans.loop(a, b, h0), self.candidate(x), self.gates(x), a, log_a)


def bptt(trace: MinTrace, upstream: Tensor) -> Tensor:
    """∂L/∂h_t (T, H) for a loss whose gradient with respect to each state alone is upstream (T, H): a loss at
    the last step has zeros above its last row; a loss at every step fills them all."""
    return scans.adjoint(trace.retain, upstream)


class MinGRU(_MinCell):
    def __init__(self, input_size: int, hidden_size: int, positive: bool = False) -> None:
        super().__init__(input_size, hidden_size, positive)
        self.linear_z = nn.Linear(input_size, hidden_size)

    def log_retain_and_write(self, x: Tensor) -> tuple[Tensor, Tensor]:
        k = self.linear_z(x)
        return -F.softplus(k), -F.softplus(-k)

    def gates(self, x: Tensor) -> dict[str, Tensor]:
        return {"update": torch.sigmoid(self.linear_z(x))}


class MinLSTM(_MinCell):
    def __init__(self, input_size: int, hidden_size: int, positive: bool = False) -> None:
        super().__init__(input_size, hidden_size, positive)
        self.linear_f = nn.Linear(input_size, hidden_size)
        self.linear_i = nn.Linear(input_size, hidden_size)

    def log_retain_and_write(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # log f′ = log f − log(f + i) = −softplus(d), d = log i − log f = softplus(−k_f) − softplus(−k_i).
        diff = F.softplus(-self.linear_f(x)) - F.softplus(-self.linear_i(x))
        return -F.softplus(diff), -F.softplus(-diff)

    def gates(self, x: Tensor) -> dict[str, Tensor]:
        f, i = torch.sigmoid(self.linear_f(x)), torch.sigmoid(self.linear_i(x))
        return {"forget": f / (f + i), "input": i / (f + i)}
