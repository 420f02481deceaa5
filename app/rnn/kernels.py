"""The BPTT recursions, compiled with numba.

trace.py computes everything that does not depend on the recursion for all steps at once; what is left is one
W_hhᵀ matrix-vector product and a few element-wise operations per step, run here. The recursion is carried in
float64, so that a vanishing gradient of 1e-25 (or 1e-250) is reported as such, not flushed to zero; its norms
are scaled by max|v| so that squares cannot underflow either. A torch or numpy op in a Python loop costs 1–5 µs;
a compiled step costs about the matrix-vector product alone.

Shapes: T steps, H hidden units. Inputs from the forward are float32 as torch computed them (act: the gate
activations in torch.nn's order); gradients are float64. Every kernel writes, per step t, the norms
‖∂L/∂h_t‖, ‖∂L/∂c_t‖ (LSTM; else 0) and ‖step t's term of ∂L/∂W_hh‖ = ‖δ_t‖·‖h_{t−1}‖ (an outer product's norm),
and dgi (T, G·H) = ∂L/∂(W_ih x_t + b_ih), from which trace.py gets ∂L/∂(the layer's input) in one product.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numba
import numpy as np

# Reassociation lets the W_hhᵀ·δ reduction vectorise. No "nnan"/"ninf": tiny and huge values are the lesson.
_FAST = {"reassoc", "contract"}
# Compiled kernels are cached on disk beside this file, or where NUMBA_CACHE_DIR points; numba refuses a cache it
# cannot write, so on a read-only install they are compiled at start-up instead (a few seconds).
_CACHE_DIR = os.environ.get("NUMBA_CACHE_DIR") or os.path.dirname(__file__)
_CACHE = os.access(_CACHE_DIR if os.path.isdir(_CACHE_DIR) else os.path.dirname(_CACHE_DIR), os.W_OK)


def _jit(fn: Any) -> Any:
    return numba.njit(cache=_CACHE, fastmath=_FAST, boundscheck=False, nogil=True)(fn)


@_jit
def _norm(v: Any) -> float:
    """‖v‖₂ scaled by max|v|."""
    m = 0.0
    for x in v:
        m = max(m, abs(x))
    if m == 0.0:
        return 0.0
    s = 0.0
    for x in v:
        y = x / m
        s += y * y
    return m * math.sqrt(s)


@_jit
def _recurrent(WT: Any, delta: Any, j: int) -> float:
    """(W_hhᵀ δ)_j, with WT = W_hhᵀ stored row-major (H, G·H) so that the reduction reads contiguous memory."""
    acc = 0.0
    for k in range(delta.shape[0]):
        acc += WT[j, k] * delta[k]
    return acc


@_jit
def lstm_cell_forward(act: Any, c0: Any, cell_state: Any) -> None:
    """c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t, from c_{−1} = c0 (H,). act (T, 4H) = [i, f, g, o]; writes cell_state (T, H)."""
    T, H = cell_state.shape
    for t in range(T):
        for j in range(H):
            prev = cell_state[t - 1, j] if t > 0 else c0[j]
            cell_state[t, j] = act[t, H + j] * prev + act[t, j] * act[t, 2 * H + j]


@_jit
def lstm_backward(WT: Any, ext: Any, act: Any, c: Any, h: Any, dh: Any, dc: Any, dgi: Any, norms: Any) -> None:
    """One LSTM layer. ext (T, H) = ∂L/∂h_t from the head or the layer above, not through the recurrence.

    ∂L/∂h_t = ext_t + W_hhᵀ δ_{t+1};  ∂L/∂c_t = ∂L/∂h_t · o(1 − tanh²c_t) + f_{t+1} ∂L/∂c_{t+1};
    δ_t = ∂L/∂[i, f, g, o pre-activations] = [dc·g·i(1−i), dc·c_{t−1}·f(1−f), dc·i(1−g²), dh·tanh(c)·o(1−o)].
    For the LSTM, δ is the gradient of both W_ih x + b_ih and W_hh h + b_hh: dgi = δ.
    """
    T, H = ext.shape
    for t in range(T - 1, -1, -1):
        last = t == T - 1
        for j in range(H):
            i, f, g, o = act[t, j], act[t, H + j], act[t, 2 * H + j], act[t, 3 * H + j]
            s = ext[t, j]
            if not last:
                s += _recurrent(WT, dgi[t + 1], j)
            tc = math.tanh(c[t, j])
            d_c = s * o * (1.0 - tc * tc)
            if not last:
                d_c += dc[t + 1, j] * act[t + 1, H + j]
            c_prev = c[t - 1, j] if t > 0 else 0.0
            dh[t, j] = s
            dc[t, j] = d_c
            dgi[t, j] = d_c * g * i * (1.0 - i)
            dgi[t, H + j] = d_c * c_prev * f * (1.0 - f)
            dgi[t, 2 * H + j] = d_c * i * (1.0 - g * g)
            dgi[t, 3 * H + j] = s * tc * o * (1.0 - o)
        norms[t, 0] = _norm(dh[t])
        norms[t, 1] = _norm(dc[t])
        norms[t, 2] = _norm(dgi[t]) * (_norm(h[t - 1]) if t > 0 else 0.0)


@_jit
def gru_backward(WT: Any, ext: Any, act: Any, gh_n: Any, h: Any, dh: Any, dgh: Any, dgi: Any, norms: Any) -> None:
    """One GRU layer. act (T, 3H) = [r, z, n]; gh_n (T, H) = W_hn h_{t−1} + b_hn.

    h_t = (1 − z) n + z h_{t−1}, n = tanh(W_in x + b_in + r ⊙ gh_n), so
    ∂L/∂h_t = ext_t + z_{t+1} ∂L/∂h_{t+1} + W_hhᵀ dgh_{t+1}, with dgh = ∂L/∂(W_hh h + b_hh) =
    [dn·gh_n·r(1−r), dh·(h_{t−1} − n)·z(1−z), dn·r] and dn = dh·(1 − z)(1 − n²); dgi is dgh with dn for dgh_n/r.
    """
    T, H = ext.shape
    for t in range(T - 1, -1, -1):
        last = t == T - 1
        for j in range(H):
            r, z, n = act[t, j], act[t, H + j], act[t, 2 * H + j]
            s = ext[t, j]
            if not last:
                s += _recurrent(WT, dgh[t + 1], j) + act[t + 1, H + j] * dh[t + 1, j]
            h_prev = h[t - 1, j] if t > 0 else 0.0
            dn = s * (1.0 - z) * (1.0 - n * n)
            d_r = dn * gh_n[t, j] * r * (1.0 - r)
            d_z = s * (h_prev - n) * z * (1.0 - z)
            dh[t, j] = s
            dgh[t, j] = d_r
            dgh[t, H + j] = d_z
            dgh[t, 2 * H + j] = dn * r
            dgi[t, j] = d_r
            dgi[t, H + j] = d_z
            dgi[t, 2 * H + j] = dn
        norms[t, 0] = _norm(dh[t])
        norms[t, 2] = _norm(dgh[t]) * (_norm(h[t - 1]) if t > 0 else 0.0)


@_jit
def rnn_backward(WT: Any, ext: Any, h: Any, dh: Any, dgi: Any, norms: Any) -> None:
    """One tanh-RNN layer: h_t = tanh(W_ih x + b_ih + W_hh h_{t−1} + b_hh); δ_t = ∂L/∂h_t · (1 − h_t²)."""
    T, H = ext.shape
    for t in range(T - 1, -1, -1):
        for j in range(H):
            s = ext[t, j]
            if t < T - 1:
                s += _recurrent(WT, dgi[t + 1], j)
            dh[t, j] = s
            dgi[t, j] = s * (1.0 - h[t, j] * h[t, j])
        norms[t, 0] = _norm(dh[t])
        norms[t, 2] = _norm(dgi[t]) * (_norm(h[t - 1]) if t > 0 else 0.0)


@_jit
def row_norms(x: Any, out: Any) -> None:
    for t in range(x.shape[0]):
        out[t] = _norm(x[t])


def warm_up() -> None:
    """Compile (or load from the cache) every kernel once, so that no request pays for it."""
    T, H = 2, 2
    f32 = np.ones((T, H), np.float32)
    f64 = np.zeros((T, H))
    norms = np.zeros((T, 3))
    act4 = np.ones((T, 4 * H), np.float32)
    lstm_cell_forward(act4, f32[0], f32.copy())
    lstm_backward(np.zeros((H, 4 * H)), f64, act4, f32, f32, f64.copy(), f64.copy(), np.zeros((T, 4 * H)), norms)
    gru_backward(
        np.zeros((H, 3 * H)), f64, np.ones((T, 3 * H), np.float32), f32, f32,
        f64.copy(), np.zeros((T, 3 * H)), np.zeros((T, 3 * H)), norms,
    )  # fmt: skip
    rnn_backward(np.zeros((H, H)), f64, f32, f64.copy(), np.zeros((T, H)), norms)
    row_norms(f64, np.zeros(T))
