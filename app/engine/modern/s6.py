"""One selective state-space layer, Mamba's S6 (Gu & Dao 2023), with a diagonal A, and its hidden attention.

D channels, each with a state of N numbers; x_t ∈ R^D, h_t ∈ R^(D×N):
    Δ_t = softplus(W_Δ x_t + b_Δ)           (D,)    the per-token step size, one per channel
    B_t = W_B x_t,  C_t = W_C x_t           (N,)    shared by all channels
    Ā_t = exp(Δ_t A)                        (D, N)  A = −exp(A_log) < 0, so 0 < Ā < 1
    B̄_t = Δ_t B_t                           (D, N)
    h_t = Ā_t ⊙ h_{t−1} + B̄_t x_t           (per channel d: h_t[d] = Ā_t[d] ⊙ h_{t−1}[d] + B̄_t[d] x_t[d])
    y_t = h_t C_t + D ⊙ x_t                 (D,)    y_t[d] = Σ_n h_t[d, n] C_t[n] + D[d] x_t[d]
The discretisation is Mamba's as its code runs it (mamba_ssm's selective_scan_ref): zero-order hold for A,
Ā = exp(ΔA), and for B the first-order simplification B̄ = ΔB instead of ZOH's (ΔA)⁻¹(exp(ΔA) − I) ΔB (the
paper's Section 3.5 names it; the two agree to first order in Δ). Mamba computes Δ through a low-rank projection
(dt_proj ∘ x_proj); here W_Δ is a full D × D matrix, the same map without the rank limit. Mamba's block around the
layer (the input projection, the causal convolution, the SiLU gate, the output projection) is not here: this is
the recurrence itself.

It is the linear recurrence of scan.py with a = Ā, b = B̄ ⊙ x, so loop, scan and log space all apply (the last by
signed_log_scan: B̄ x has either sign). Its Jacobian is ∂h_t/∂h_s = diag(Π_{k=s+1..t} Ā_k) (scan.triangle).

Hidden attention (Ali, Zimerman & Wolf, "The Hidden Attention of Mamba Models", 2025): unrolling the recurrence
from h_{−1} = 0, y_t[d] = Σ_{s ≤ t} α_{t,s}[d] x_s[d] + D[d] x_t[d] with
    α_{t,s}[d] = Σ_n C_t[n] (Π_{k=s+1..t} Ā_k[d, n]) B̄_s[d, n],
one lower-triangular T × T matrix per channel, exact (not an approximation of the layer: the layer is y = α x + Dx).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from app.engine.modern import scan as scans
from app.engine.modern.mingru import Mode


@dataclass(frozen=True)
class S6Trace:
    """One sequence x (T, D) through the layer, exactly."""

    states: Tensor  # (T, D, N) h_t
    outputs: Tensor  # (T, D) y_t
    step: Tensor  # (T, D) Δ_t
    a_bar: Tensor  # (T, D, N) Ā_t
    b_bar: Tensor  # (T, D, N) B̄_t
    b: Tensor  # (T, N) B_t
    c: Tensor  # (T, N) C_t
    log_a_bar: Tensor  # (T, D, N) log Ā_t = Δ_t A, exact

    def jacobian(self) -> Tensor:
        """(T, T, D, N): [t, s] the diagonal of ∂h_t/∂h_s = Π_{k=s+1..t} Ā_k for s ≤ t, 0 above (T²·D·N numbers)."""
        return scans.triangle(self.log_a_bar)

    def attention(self) -> Tensor:
        """(D, T, T): α_{t,s} = Σ_n C_t[n] (Π_{k=s+1..t} Ā_k[n]) B̄_s[n] per channel, 0 above the diagonal; one
        channel's T × T × N products at a time."""
        return torch.stack(
            [
                torch.einsum("tn,tsn,sn->ts", self.c, scans.triangle(self.log_a_bar[:, d]), self.b_bar[:, d])
                for d in range(self.log_a_bar.shape[1])
            ]
        )


def _initial_steps(channels: int, step_range: tuple[float, float]) -> Tensor:
    """softplus⁻¹ of steps drawn log-uniformly from step_range, Mamba's dt_min..dt_max: the bias of Δ."""
    low, high = step_range
    steps = torch.exp(math.log(low) + torch.rand(channels) * (math.log(high) - math.log(low)))
    return steps + torch.log(-torch.expm1(-steps))


class _DiagonalSSM(nn.Module):
    """What S6 and its time-invariant counterpart share: A (diagonal, negative), D, the recurrence, the trace."""

    def __init__(self, channels: int, state_size: int) -> None:
        super().__init__()
        self.channels, self.state_size = channels, state_size
        # Mamba's S4D-real initialisation: A[d, n] = −(n + 1).
        self.a_log = nn.Parameter(torch.log(torch.arange(1, state_size + 1, dtype=torch.float32)).repeat(channels, 1))
        self.skip = nn.Parameter(torch.ones(channels))

    def a(self) -> Tensor:
        return -torch.exp(self.a_log)

    def projections(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(Δ (T, …, D), B (T, …, N), C (T, …, N)) for the inputs x (T, …, D)."""
        raise NotImplementedError

    def discretised(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(Δ, Ā, B̄, B, C) for the inputs x (T, …, D)."""
        step, b, c = self.projections(x)
        log_a_bar = step[..., None] * self.a()
        return step, torch.exp(log_a_bar), step[..., None] * b[..., None, :], b, c

    def readout(self, states: Tensor, x: Tensor, c: Tensor) -> Tensor:
        return (states * c[..., None, :]).sum(-1) + self.skip * x

    def forward(self, x: Tensor, h_init: Tensor | None = None, mode: Mode = "loop") -> tuple[Tensor, Tensor]:
        """(outputs (T, …, D), states (T, …, D, N)), the recurrence computed the way `mode` says."""
        _, a_bar, b_bar, _, c = self.discretised(x)
        drive = b_bar * x[..., None]
        h0 = h_init if h_init is not None else torch.zeros_like(drive[0])
        if mode == "log":
            states = scans.signed_log_scan(a_bar, drive, h0)
        elif mode == "scan":
            states = scans.scan(a_bar, drive, h0)[0]
        else:
            states = scans.loop(a_bar, drive, h0)
        return self.readout(states, x, c), states

    def trace(self, x: Tensor) -> S6Trace:
        """Every quantity of one sequence x (T, D) from a zero state, by the loop; the triangle and the hidden
        attention on demand."""
        step, a_bar, b_bar, b, c = self.discretised(x)
        states = scans.loop(a_bar, b_bar * x[..., None], torch.zeros_like(a_bar[0]))
        return S6Trace(
            states=states,
            outputs=self.readout(states, x, c),
            step=step,
            a_bar=a_bar,
            b_bar=b_bar,
            b=b,
            c=c,
            log_a_bar=step[..., None] * self.a(),
        )


class S6(_DiagonalSSM):
    """Δ, B and C read from each token: selective."""

    def __init__(self, channels: int, state_size: int, step_range: tuple[float, float] = (0.001, 0.1)) -> None:
        super().__init__(channels, state_size)
        self.linear_step = nn.Linear(channels, channels)
        self.linear_b = nn.Linear(channels, state_size, bias=False)
        self.linear_c = nn.Linear(channels, state_size, bias=False)
        with torch.no_grad():
            self.linear_step.bias.copy_(_initial_steps(channels, step_range))

    def projections(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return F.softplus(self.linear_step(x)), self.linear_b(x), self.linear_c(x)


class TimeInvariantSSM(_DiagonalSSM):
    """The same layer with Δ, B and C fixed, learned but read from no token (S4D's, in Mamba's discretisation):
    Ā and B̄ are the same at every step, so α_{t,s} depends on t − s only, a convolution. It cannot choose what
    to keep by what it reads, which is what a selective-copying task asks."""

    def __init__(self, channels: int, state_size: int, step_range: tuple[float, float] = (0.001, 0.1)) -> None:
        super().__init__(channels, state_size)
        self.step_bias = nn.Parameter(_initial_steps(channels, step_range))
        self.b_fixed = nn.Parameter(torch.randn(state_size) / math.sqrt(state_size))
        self.c_fixed = nn.Parameter(torch.randn(state_size) / math.sqrt(state_size))

    def projections(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        lead = x.shape[:-1]
        step = F.softplus(self.step_bias).expand(*lead, self.channels)
        return step, self.b_fixed.expand(*lead, self.state_size), self.c_fixed.expand(*lead, self.state_size)


def bptt(trace: S6Trace, upstream: Tensor) -> Tensor:
    """∂L/∂h_t (T, D, N) for a loss whose gradient with respect to each state alone is upstream (T, D, N)."""
    return scans.adjoint(trace.a_bar, upstream)
