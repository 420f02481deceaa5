"""The knobs of the vanishing gradient: ‖∂L/∂h_t‖ along one recurrent layer as its settings change.

One layer of the chosen cell (hidden size H, INPUT_SIZE inputs) reads T random inputs x_t ~ N(0, 1); everything is
float64 and drawn from `seed`. The recurrent weights are a random Gaussian matrix rescaled so that its spectral
radius (largest |eigenvalue|) is exactly `radius`; for the LSTM and the GRU each gate's H×H block of weight_hh is
its own such matrix. Biases are zero, except the LSTM's forget gate bias (`forget_bias`).

The loss is L = w·h_{T−1} with w a fixed random unit vector: then ∂L/∂h_{T−1} = w has norm exactly 1 whatever the
forward did, so every point of the curve reads directly as the factor by which the gradient has grown or shrunk
on its way back (with ½‖h_{T−1}‖² the curve's scale would follow the last state, which for ReLU or identity at a
large radius is itself huge).

grad_norms[t] = ‖∂L/∂h_t‖, the total derivative through the recurrence (for the LSTM, of h_t: the path through
the cell states c is part of the total). The backward is the explicit reverse recursion, one W_hhᵀ product and a
few vectorised element-wise operations per step (as app/engine/kernels.py does for the trace);
tests/engine/test_knobs.py holds it against float64 autograd and torch.nn's own cells.

The linear recurrences (minGRU, S6) have no W_hh: their ∂h_t/∂h_{t−1} is diag(a_t), a_t read from x_t only, so
the radius and the nonlinearity do not apply and the curve is ‖w ⊙ Π_{k>t} a_k‖, which can never exceed ‖w‖ = 1
(their `bound`: 1 at every step). Their own knobs: minGRU's update gate bias `gate_bias` (a_t = 1 − z_t,
z_t = σ(W_z x_t + gate_bias)) and S6's typical step `step` (Δ_t = softplus(W_Δ x_t + softplus⁻¹(step)),
a_t = exp(Δ_t A) over its H × N state, A[·, n] = −(n + 1), Mamba's initialisation); the state's numbers are H
for minGRU and H·N for S6, and w is a unit vector over them.

`clip` is clipped BPTT: wherever the backward message ∂L/∂h_t is longer than `clip` it is rescaled to length
`clip` before it travels on. It tames explosion (the curve is capped), but it cannot undo vanishing: a message
that is already small is never made larger. For the LSTM only the h message is clipped; the cell state's message
c is multiplied by forget gates below 1 at every step and cannot explode on its own.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray

from app.engine.layers import Cell
from app.engine.modern.layer import MODERN_GATES, S6_STATE_SIZE

Nonlinearity = Literal["tanh", "relu", "identity"]
F64 = NDArray[np.float64]
INPUT_SIZE = 8
GATE_COUNT = {"rnn": 1, "lstm": 4, "gru": 3}
_INPUT_STREAM = 2**32  # the inputs' generator is seeded with seed + this: a stream apart from the weights'
_INPUT_BLOCK = 64
_RESCALE = 1e100


@dataclass(frozen=True)
class _Base:
    """What a seed draws for a cell and a hidden size, before any knob is applied."""

    blocks: torch.Tensor  # (G, H, H) Gaussian recurrent blocks
    radii: torch.Tensor  # (G,) each block's spectral radius
    eigenvalues: torch.Tensor  # (G, H) complex, each block's eigenvalues
    weight_ih: torch.Tensor  # (G·H, INPUT_SIZE)
    readout: torch.Tensor  # (H,) w of L = w·h_{T−1}, unit length


@functools.lru_cache(maxsize=8)
def _base(cell: Cell, hidden_size: int, seed: int) -> _Base:
    """The seed's draw, kept for a few (cell, H, seed): a slider moves `radius` and `forget_bias` only, and the
    eigenvalues (~10 ms for one 128×128 block) are then not computed again."""
    G, H = GATE_COUNT[cell], hidden_size
    gen = torch.Generator().manual_seed(seed)
    blocks = torch.randn(G, H, H, generator=gen, dtype=torch.float64)
    weight_ih = torch.randn(G * H, INPUT_SIZE, generator=gen, dtype=torch.float64) / math.sqrt(INPUT_SIZE)
    readout = torch.randn(H, generator=gen, dtype=torch.float64)
    eigenvalues = torch.linalg.eigvals(blocks)  # (G, H)
    return _Base(blocks, eigenvalues.abs().amax(dim=1), eigenvalues, weight_ih, readout / readout.norm())


@dataclass(frozen=True)
class KnobLayer:
    """One layer's weights as torch.nn lays them out (gates in its order), float64, and the loss's readout."""

    weight_ih: torch.Tensor  # (G·H, INPUT_SIZE)
    weight_hh: torch.Tensor  # (G·H, H), each gate's block of spectral radius `radius`
    bias: torch.Tensor  # (G·H,) torch.nn's bias_ih (its bias_hh is zero)
    readout: torch.Tensor  # (H,)
    radius_measured: float  # the largest spectral radius of the blocks, as set


def knob_layer(cell: Cell, hidden_size: int, radius: float, forget_bias: float = 0.0, seed: int = 0) -> KnobLayer:
    """The layer the knobs set. radius_measured is max|λ| over the rescaled blocks' eigenvalues: torch.linalg.eigvals
    of each Gaussian block (cached per seed), times the block's scale, so a slider move pays no eigenvalue
    computation. torch.linalg.eigvals of the rescaled matrices themselves agrees to 1e-14 relative (measured over
    every cell, H 8 to 256, radius 0.1 to 7.3; tests hold it to 1e-9)."""
    base = _base(cell, hidden_size, seed)
    H = hidden_size
    scale = radius / base.radii  # (G,)
    weight_hh = (base.blocks * scale[:, None, None]).reshape(-1, H)
    bias = torch.zeros(weight_hh.shape[0], dtype=torch.float64)
    if cell == "lstm":
        bias[H : 2 * H] = forget_bias  # torch.nn's order: input, forget, candidate, output
    measured = float((base.eigenvalues.abs() * scale[:, None]).amax())
    return KnobLayer(base.weight_ih, weight_hh, bias, base.readout, measured)


def knob_inputs(steps: int, seed: int) -> torch.Tensor:
    """(T, INPUT_SIZE) inputs x_t ~ N(0, 1); a shorter T reads the first rows of a longer one (drawn in blocks of
    a fixed size: torch draws a block of 16 values or more differently from a shorter one)."""
    gen = torch.Generator().manual_seed(seed + _INPUT_STREAM)
    blocks = [torch.randn(_INPUT_BLOCK, INPUT_SIZE, generator=gen, dtype=torch.float64)
              for _ in range(-(-steps // _INPUT_BLOCK))]  # fmt: skip
    return torch.cat(blocks)[:steps]


@dataclass
class Forward:
    """What the backward reads of one forward pass (numpy, float64)."""

    # (T, H) h_t; ReLU and identity past 1e100: h_t divided by a positive factor (its signs are exact)
    hidden: F64
    pre: F64  # (T, H) the plain RNN's pre-activations (scaled as hidden); else empty
    act: F64  # (T, G·H) gate activations in torch.nn's order; the RNN: empty
    cell_state: F64 | None  # (T, H), LSTM
    gh_candidate: F64 | None  # (T, H), GRU: W_hn h_{t−1} (+ b_hn = 0), which the reset gate scales


def _phi(nonlinearity: Nonlinearity, a: F64) -> F64:
    if nonlinearity == "tanh":
        return np.tanh(a)
    if nonlinearity == "relu":
        return np.maximum(a, 0.0)
    return a.copy()


def forward(cell: Cell, nonlinearity: Nonlinearity, layer: KnobLayer, x: torch.Tensor) -> Forward:
    """The layer over x from h_{−1} = 0 (and c_{−1} = 0), a float64 loop of its own: torch.nn.RNN has no identity
    nonlinearity, and torch.nn's float64 LSTM and GRU (no fused kernel) are slower than this loop (tests hold it
    against torch.nn's cells wherever they exist)."""
    W = layer.weight_hh.numpy()
    T, H = x.shape[0], W.shape[1]
    xw = torch.addmm(layer.bias, x, layer.weight_ih.T).numpy()  # (T, G·H): every step's input term at once
    h = np.zeros(H)
    hidden = np.empty((T, H))
    with np.errstate(all="ignore"):  # ReLU or identity at a large radius may overflow: inf is the answer
        if cell == "rnn":
            # ReLU and identity at a large radius grow the state past float64's range. Both are positively
            # homogeneous, so past _RESCALE the state is kept divided by a positive factor (x_t's term divided by it
            # too): the signs of the pre-activations, all that the backward reads of them, stay exact.
            pre = np.empty((T, H))
            inv_scale = 1.0
            for t in range(T):
                a = W @ h + xw[t] * inv_scale
                pre[t] = a
                h = hidden[t] = _phi(nonlinearity, a)
                if nonlinearity != "tanh" and (m := float(np.abs(h).max())) > _RESCALE:
                    h = h / m
                    inv_scale /= m
            return Forward(hidden, pre, np.empty((T, 0)), None, None)
        act = np.empty((T, W.shape[0]))
        if cell == "lstm":
            # σ(z) = ½ tanh(z/2) + ½: the sigmoid rows (i, f, o) are halved once, then one tanh a step serves all
            half = np.full(4 * H, 0.5)
            half[2 * H : 3 * H] = 1.0  # the candidate g is a tanh of its own pre-activation
            W_half, xw_half = W * half[:, None], xw * half
            offset = np.where(half == 0.5, 0.5, 0.0)
            cell_state = np.empty((T, H))
            c = np.zeros(H)
            for t in range(T):
                gates = act[t]
                z = W_half @ h
                z += xw_half[t]
                np.tanh(z, out=gates)
                gates *= half
                gates += offset
                c = cell_state[t] = gates[H : 2 * H] * c + gates[:H] * gates[2 * H : 3 * H]
                h = hidden[t] = gates[3 * H :] * np.tanh(c)
            return Forward(hidden, np.empty((T, 0)), act, cell_state, None)
        gh_candidate = np.empty((T, H))
        for t in range(T):
            gh = W @ h
            gates = act[t]
            np.tanh(0.5 * (xw[t, : 2 * H] + gh[: 2 * H]), out=gates[: 2 * H])  # r, z
            gates[: 2 * H] = 0.5 * gates[: 2 * H] + 0.5
            gh_candidate[t] = gh[2 * H :]
            gates[2 * H :] = np.tanh(xw[t, 2 * H :] + gates[:H] * gh[2 * H :])
            z_t = gates[H : 2 * H]
            h = hidden[t] = h + (1.0 - z_t) * (gates[2 * H :] - h)
        return Forward(hidden, np.empty((T, 0)), act, None, gh_candidate)


@dataclass
class Backward:
    grad_hidden: F64  # (T, H) ∂L/∂h_t as it travelled on (after clipping)
    clipped: NDArray[np.bool_]  # (T,)


def _length(v: F64) -> float:
    """‖v‖₂ that neither underflows (values below 1e-154) nor overflows (above 1e154)."""
    n = math.sqrt(float(v @ v))
    if 1e-150 < n < 1e150 or n == 0.0:
        return n
    m = float(np.abs(v).max())
    if m == 0.0 or not math.isfinite(m):
        return m
    u = v / m
    return m * math.sqrt(float(u @ u))


def backward(cell: Cell, nonlinearity: Nonlinearity, layer: KnobLayer, fwd: Forward, clip: float | None) -> Backward:
    """The reverse recursion from ∂L/∂h_{T−1} = w: per step, the message through step t's gates back to h_{t−1}
    (closed form per cell; the step-dependent factors are computed for all steps at once)."""
    W = layer.weight_hh.numpy()
    T, H = fwd.hidden.shape
    dh_all = np.empty((T, H))
    clipped = np.zeros(T, dtype=bool)
    g = layer.readout.numpy().copy()
    with np.errstate(all="ignore"):
        h_prev = np.vstack([np.zeros((1, H)), fwd.hidden[:-1]])
        if cell == "rnn":
            if nonlinearity == "tanh":
                deriv = 1.0 - fwd.hidden**2
            elif nonlinearity == "relu":
                deriv = (fwd.pre > 0).astype(np.float64)
            else:
                deriv = np.ones((T, H))
        elif cell == "lstm":
            assert fwd.cell_state is not None
            act = fwd.act
            i, f, cand, o = (act[:, k * H : (k + 1) * H] for k in range(4))
            c_prev = np.vstack([np.zeros((1, H)), fwd.cell_state[:-1]])
            tanh_c = np.tanh(fwd.cell_state)
            to_cell = o * (1.0 - tanh_c**2)  # ∂h_t/∂c_t
            # ∂(i, f, g pre-activations)/∂c_t, then ∂(o pre-activation)/∂h_t: dpre_t = [dc_t·A_t, dh_t·B_t]
            A = np.concatenate([cand * i * (1 - i), c_prev * f * (1 - f), i * (1 - cand**2)], axis=1)
            B = tanh_c * o * (1 - o)
            A3 = A.reshape(T, 3, H)
            dc_next = np.zeros(H)  # ∂L/∂c_t through c_{t+1}: f_{t+1} ∂L/∂c_{t+1}
            dpre = np.empty(4 * H)
            dpre_cell, dpre_output = dpre[: 3 * H].reshape(3, H), dpre[3 * H :]
        else:
            assert fwd.gh_candidate is not None
            act = fwd.act
            r, z, n = (act[:, k * H : (k + 1) * H] for k in range(3))
            to_n = (1 - z) * (1 - n**2)  # ∂h_t/∂(the candidate's pre-activation)
            # ∂L/∂(W_hh h_{t−1} + b_hh)_t = dh_t · Q_t, rows r, z, n; h_{t−1} is also carried on by z_t
            Q = np.stack([to_n * fwd.gh_candidate * r * (1 - r), (h_prev - n) * z * (1 - z), to_n * r], axis=1)
            dpre = np.empty(3 * H)
            dpre3 = dpre.reshape(3, H)
        for t in range(T - 1, -1, -1):
            if clip is not None:
                norm = _length(g)
                if norm > clip:
                    g = g * (clip / norm)
                    clipped[t] = True
            dh_all[t] = g
            if t == 0:
                break
            if cell == "rnn":
                g = (deriv[t] * g) @ W  # W_hhᵀ (φ'(a_t) ⊙ g)
            elif cell == "lstm":
                dc = g * to_cell[t]
                dc += dc_next
                np.multiply(A3[t], dc, out=dpre_cell)
                np.multiply(B[t], g, out=dpre_output)
                dc_next = dc * f[t]
                g = dpre @ W
            else:
                np.multiply(Q[t], g, out=dpre3)  # Q: (T, 3, H)
                carry = g * z[t]
                g = dpre @ W
                g += carry
    return Backward(dh_all, clipped)


def row_lengths(a: F64) -> F64:
    """‖a_t‖₂ of every row, each scaled by its largest |value| so that tiny and huge rows keep their digits."""
    with np.errstate(all="ignore"):
        m = np.abs(a).max(axis=1)
        safe = np.where((m > 0) & np.isfinite(m), m, 1.0)
        lengths: F64 = np.where((m > 0) & np.isfinite(m), m * np.linalg.norm(a / safe[:, None], axis=1), m)
    return lengths


@dataclass
class Curves:
    radius_measured: float
    grad_norms: F64  # (T,) ‖∂L/∂h_t‖
    bound: F64  # (T,) ‖∂L/∂h_{T−1}‖ (radius · max φ')^(T−1−t)
    clipped: NDArray[np.bool_]  # (T,)


def gradients(
    cell: Cell,
    steps: int,
    hidden_size: int,
    radius: float,
    nonlinearity: Nonlinearity = "tanh",
    forget_bias: float = 0.0,
    clip: float | None = None,
    seed: int = 0,
    gate_bias: float = 0.0,
    step: float = 0.01,
) -> Curves:
    """‖∂L/∂h_t‖ for every step t of one layer set by the knobs, the loss at the last step.

    bound[t] = ‖∂L/∂h_{T−1}‖ · (radius · max φ')^(T−1−t), the textbook geometric bound (max φ' = 1 for tanh, ReLU
    and identity). It is the plain RNN's: for the LSTM and the GRU the same formula (tanh's) is drawn, the bound
    that their gates let the gradient escape. Written with the spectral radius, as the lecture states it, it is
    the long-run rate only: strictly, the bound needs the spectral norm ‖W_hh‖₂ ≥ radius, so for a non-normal W_hh
    the curve may sit above it by a bounded factor, never at a steeper slope in the long run.
    `nonlinearity` applies to the plain RNN only and `forget_bias` to the LSTM only; the other cells ignore them
    (their candidate is always a tanh)."""
    if cell in MODERN_GATES:
        return linear_gradients(cell, steps, hidden_size, gate_bias, step, clip, seed)
    layer = knob_layer(cell, hidden_size, radius, forget_bias, seed)
    x = knob_inputs(steps, seed)
    phi: Nonlinearity = nonlinearity if cell == "rnn" else "tanh"
    fwd = forward(cell, phi, layer, x)
    back = backward(cell, phi, layer, fwd, clip)
    grad_norms = row_lengths(back.grad_hidden)
    distance = np.arange(steps - 1, -1, -1, dtype=np.float64)  # T−1−t
    with np.errstate(all="ignore"):  # radius^distance may overflow to inf or underflow to 0: both are the answer
        bound = float(layer.readout.norm()) * np.exp(distance * math.log(radius))
    return Curves(layer.radius_measured, grad_norms, bound, back.clipped)


def retain_factors(cell: Cell, steps: int, hidden_size: int, gate_bias: float, step: float, seed: int) -> F64:
    """(T, K) a_t of a linear recurrence set by its knobs: minGRU's 1 − z_t (K = H), S6's exp(Δ_t A) (K = H·N),
    from the weights `seed` draws and the inputs knob_inputs gives; computed as exp of the exact log."""
    gen = torch.Generator().manual_seed(seed)
    x = knob_inputs(steps, seed)
    weight = torch.randn(hidden_size, INPUT_SIZE, generator=gen, dtype=torch.float64) / math.sqrt(INPUT_SIZE)
    pre = x @ weight.T  # (T, H)
    if cell == "s6":
        delta = torch.nn.functional.softplus(pre + math.log(math.expm1(step)))  # softplus⁻¹(step) as Δ's bias
        a = -torch.arange(1, S6_STATE_SIZE + 1, dtype=torch.float64)
        log_a = (delta[:, :, None] * a).reshape(steps, -1)
    else:
        log_a = -torch.nn.functional.softplus(pre + gate_bias)  # log(1 − σ(k)) = −softplus(k)
    factors: F64 = torch.exp(log_a).numpy()
    return factors


def linear_gradients(
    cell: Cell, steps: int, hidden_size: int, gate_bias: float, step: float, clip: float | None, seed: int
) -> Curves:
    """‖∂L/∂h_t‖ of a linear recurrence: the message g_{t−1} = a_t ⊙ g_t from g_{T−1} = w (clipped where asked)."""
    a = retain_factors(cell, steps, hidden_size, gate_bias, step, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    w = torch.randn(a.shape[1], generator=gen, dtype=torch.float64)
    g = (w / w.norm()).numpy()
    messages = np.empty_like(a)
    clipped = np.zeros(steps, dtype=bool)
    for t in range(steps - 1, -1, -1):
        if clip is not None and (norm := _length(g)) > clip:
            g = g * (clip / norm)
            clipped[t] = True
        messages[t] = g
        g = a[t] * g
    return Curves(0.0, row_lengths(messages), np.ones(steps), clipped)
