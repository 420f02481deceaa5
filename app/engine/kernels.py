"""The BPTT recursions, compiled with numba.

trace.py computes everything that does not depend on the recursion for all steps at once; what is left is one
W_hhᵀ matrix-vector product and a few element-wise operations per step, run here. The recursion is carried in
float64, so that a vanishing gradient of 1e-25 (or 1e-250) is reported as such, not flushed to zero; its norms
are scaled by max|v| so that squares cannot underflow either. A torch or numpy op in a Python loop costs 1–5 µs;
a compiled step costs about the matrix-vector product alone.

Shapes: T steps, H hidden units. Inputs from the forward are float32 as torch computed them (act: the gate
activations in torch.nn's order); gradients are float64. Every kernel writes, per step t, the norms
‖∂L/∂h_t‖, ‖∂L/∂c_t‖ (LSTM; else 0) and ‖step t's term of ∂L/∂W_hh‖ = ‖δ_t‖·‖h_{t−1}‖ (an outer product's norm),
and dgi (T, G·H) = ∂L/∂(W_ih x_t + b_ih) with its norm and unit rows, from which trace.py gets ∂L/∂(the layer's
input) in one float32 product. norms (T, 4) = ‖∂L/∂h_t‖, ‖∂L/∂c_t‖, ‖W_hh term‖, ‖dgi_t‖.

A layer may start from a state (h0, c0) other than zeros and hand its last state on (an encoder's to a decoder):
the gradient arriving at h_{T−1} from after the sequence is part of ext's last row, the one arriving at c_{T−1}
is `dc_last`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from app.engine.jit import cache_mode, njit

# Reassociation lets the W_hhᵀ·δ reduction vectorise. No "nnan"/"ninf": tiny and huge values are the lesson.
_FAST = {"reassoc", "contract"}
# Compiled kernels are cached on disk beside this file, or where NUMBA_CACHE_DIR points (app.engine.jit: read-only there
# in the image).
CACHE_MODE = cache_mode(Path(__file__).parent)


def _jit(fn: Any) -> Any:
    return njit(CACHE_MODE, fastmath=_FAST, boundscheck=False, nogil=True)(fn)


# Below this, a sum of squares in float64 may have lost digits to underflow: recompute it scaled by max|v|.
_TINY_SQUARES = 1e-280


@_jit
def _norm(v: Any) -> float:
    """‖v‖₂ in one pass; values whose squares underflow (below ~1e-154) take a second, scaled pass."""
    n = v.shape[0]
    s = 0.0
    for k in range(n):  # indexed loops: numba vectorises these, not `for x in v`
        s += v[k] * v[k]
    if s > _TINY_SQUARES:
        return math.sqrt(s)
    m = 0.0
    for k in range(n):
        m = max(m, abs(v[k]))
    if m == 0.0:
        return 0.0
    inv = 1.0 / m
    s = 0.0
    for k in range(n):
        y = v[k] * inv
        s += y * y
    return m * math.sqrt(s)


@_jit
def _recurrent(WT: Any, delta: Any, out: Any) -> None:
    """out = W_hhᵀ δ. WT = W_hhᵀ (H, G·H), row-major so each reduction reads contiguous memory; it stays float32
    (the weights are float32: nothing is lost, and it halves the memory read per step), summed in float64.
    Four rows at a time, so each δ_k loaded serves four sums; this product is most of a step's cost."""
    H, K = WT.shape
    j = 0
    while j + 4 <= H:
        a0 = a1 = a2 = a3 = 0.0
        for k in range(K):
            d = delta[k]
            a0 += np.float64(WT[j, k]) * d
            a1 += np.float64(WT[j + 1, k]) * d
            a2 += np.float64(WT[j + 2, k]) * d
            a3 += np.float64(WT[j + 3, k]) * d
        out[j], out[j + 1], out[j + 2], out[j + 3] = a0, a1, a2, a3
        j += 4
    for r in range(j, H):
        acc = 0.0
        for k in range(K):
            acc += np.float64(WT[r, k]) * delta[k]
        out[r] = acc


@_jit
def _finish_step(t: int, dgi: Any, unit: Any, norms: Any, h_prev_norm: float) -> None:
    """Step t's δ norms, and δ_t / ‖δ_t‖ in float32, from which trace.py gets ∂L/∂(input) in one float32 product
    without losing tiny rows to float32's range."""
    n = _norm(dgi[t])
    norms[t, 2] = n * h_prev_norm
    norms[t, 3] = n
    inv = 1.0 / n if n > 0.0 else 0.0
    for k in range(dgi.shape[1]):
        unit[t, k] = dgi[t, k] * inv


@_jit
def lstm_cell_forward(act: Any, c0: Any, cell_state: Any) -> None:
    """c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t, from c_{−1} = c0 (H,). act (T, 4H) = [i, f, g, o]; writes cell_state (T, H)."""
    T, H = cell_state.shape
    for t in range(T):
        for j in range(H):
            prev = cell_state[t - 1, j] if t > 0 else c0[j]
            cell_state[t, j] = act[t, H + j] * prev + act[t, j] * act[t, 2 * H + j]


@_jit
def lstm_backward(
    WT: Any,
    ext: Any,
    act: Any,
    c: Any,
    c0: Any,
    dc_last: Any,
    tanh_c: Any,
    h_prev_norm: Any,
    dh: Any,
    dc: Any,
    dgi: Any,
    unit: Any,
    norms: Any,
) -> None:
    """One LSTM layer. ext (T, H) = ∂L/∂h_t from the head or the layer above, not through the recurrence;
    c0 (H,) = c_{−1}; dc_last (H,) = what reaches c_{T−1} from after the sequence (f_{T} ∂L/∂c_{T}).

    ∂L/∂h_t = ext_t + W_hhᵀ δ_{t+1};  ∂L/∂c_t = ∂L/∂h_t · o(1 − tanh²c_t) + f_{t+1} ∂L/∂c_{t+1};
    δ_t = ∂L/∂[i, f, g, o pre-activations] = [dc·g·i(1−i), dc·c_{t−1}·f(1−f), dc·i(1−g²), dh·tanh(c)·o(1−o)].
    For the LSTM, δ is the gradient of both W_ih x + b_ih and W_hh h + b_hh: dgi = δ.
    """
    T, H = ext.shape
    rec = np.zeros(H)
    ones = np.ones_like(act[0, :H])  # f after the last step, in act's own dtype (float32, or a series' float64)
    for t in range(T - 1, -1, -1):
        # Branch-free rows for the inner loop (so it vectorises): after the last step comes only dc_last.
        if t < T - 1:
            _recurrent(WT, dgi[t + 1], rec)
            dc_next, f_next = dc[t + 1], act[t + 1, H : 2 * H]
        else:
            dc_next, f_next = dc_last, ones
        c_prev = c[t - 1] if t > 0 else c0
        a, e, tch = act[t], ext[t], tanh_c[t]
        d_h, d_c, d = dh[t], dc[t], dgi[t]
        for j in range(H):
            i, f, g, o = a[j], a[H + j], a[2 * H + j], a[3 * H + j]
            s = e[j] + rec[j]
            tc = tch[j]
            dcj = s * o * (1.0 - tc * tc) + dc_next[j] * f_next[j]
            d_h[j] = s
            d_c[j] = dcj
            d[j] = dcj * g * i * (1.0 - i)
            d[H + j] = dcj * c_prev[j] * f * (1.0 - f)
            d[2 * H + j] = dcj * i * (1.0 - g * g)
            d[3 * H + j] = s * tc * o * (1.0 - o)
        norms[t, 0] = _norm(dh[t])
        norms[t, 1] = _norm(dc[t])
        _finish_step(t, dgi, unit, norms, h_prev_norm[t])


@_jit
def gru_backward(
    WT: Any,
    ext: Any,
    act: Any,
    gh_n: Any,
    h: Any,
    h0: Any,
    h_prev_norm: Any,
    dh: Any,
    dgh: Any,
    dgi: Any,
    unit: Any,
    norms: Any,
) -> None:
    """One GRU layer. act (T, 3H) = [r, z, n]; gh_n (T, H) = W_hn h_{t−1} + b_hn; h0 (H,) = h_{−1}.

    h_t = (1 − z) n + z h_{t−1}, n = tanh(W_in x + b_in + r ⊙ gh_n), so
    ∂L/∂h_t = ext_t + z_{t+1} ∂L/∂h_{t+1} + W_hhᵀ dgh_{t+1}, with dgh = ∂L/∂(W_hh h + b_hh) =
    [dn·gh_n·r(1−r), dh·(h_{t−1} − n)·z(1−z), dn·r] and dn = dh·(1 − z)(1 − n²); dgi is dgh with dn for dgh_n/r.
    """
    T, H = ext.shape
    rec = np.zeros(H)
    for t in range(T - 1, -1, -1):
        last = t == T - 1
        if not last:
            _recurrent(WT, dgh[t + 1], rec)
        for j in range(H):
            r, z, n = act[t, j], act[t, H + j], act[t, 2 * H + j]
            s = ext[t, j]
            if not last:
                s += rec[j] + act[t + 1, H + j] * dh[t + 1, j]
            h_prev = h[t - 1, j] if t > 0 else h0[j]
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
        _finish_step(t, dgi, unit, norms, h_prev_norm[t])
        norms[t, 2] = _norm(dgh[t]) * h_prev_norm[t]  # the W_hh term is dgh ⊗ h_{t−1}, not dgi's


@_jit
def rnn_backward(WT: Any, ext: Any, h: Any, h_prev_norm: Any, dh: Any, dgi: Any, unit: Any, norms: Any) -> None:
    """One tanh-RNN layer: h_t = tanh(W_ih x + b_ih + W_hh h_{t−1} + b_hh); δ_t = ∂L/∂h_t · (1 − h_t²)."""
    T, H = ext.shape
    rec = np.zeros(H)
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            _recurrent(WT, dgi[t + 1], rec)
        for j in range(H):
            s = ext[t, j] + rec[j]
            dh[t, j] = s
            dgi[t, j] = s * (1.0 - h[t, j] * h[t, j])
        norms[t, 0] = _norm(dh[t])
        _finish_step(t, dgi, unit, norms, h_prev_norm[t])


@_jit
def top_k(probs: Any, ids: Any, top: Any) -> None:
    """Each row's k largest probabilities in descending order, ties to the lower index (as torch.topk on CPU);
    k = ids.shape[1]. An insertion into k sorted slots: cheaper than torch.topk for a vocabulary of ~100."""
    T, V = probs.shape
    k = ids.shape[1]
    for t in range(T):
        n = 0
        for v in range(V):
            p = probs[t, v]
            if n == k and p <= top[t, k - 1]:
                continue
            pos = n if n < k else k - 1
            while pos > 0 and top[t, pos - 1] < p:
                if pos < k:
                    top[t, pos] = top[t, pos - 1]
                    ids[t, pos] = ids[t, pos - 1]
                pos -= 1
            top[t, pos] = p
            ids[t, pos] = v
            n = min(n + 1, k)


@_jit
def row_norms(x: Any, out: Any) -> None:
    for t in range(x.shape[0]):
        out[t] = _norm(x[t])


def warm_up() -> None:
    """Compile (or load from the cache) every kernel once, with the types trace.py passes, so that no request
    pays for it."""
    T, H = 2, 4
    f32 = np.ones((T, H), np.float32)
    f64 = np.zeros((T, H))
    norms = np.zeros((T, 4))
    for G in (1, 3, 4):
        gates32 = np.ones((T, G * H), np.float32)
        WT, dgi, unit = np.zeros((H, G * H), np.float32), np.zeros((T, G * H)), np.zeros((T, G * H), np.float32)
        if G == 4:
            lstm_cell_forward(gates32, f32[0], f32.copy())
            lstm_backward(
                WT, f64, gates32, f32, f32[0], f64[0], f32, np.zeros(T), f64.copy(), f64.copy(), dgi, unit, norms
            )
        elif G == 3:
            gru_backward(WT, f64, gates32, f32, f32, f32[0], np.zeros(T), f64.copy(), dgi.copy(), dgi, unit, norms)
        else:
            rnn_backward(WT, f64, f32, np.zeros(T), f64.copy(), dgi, unit, norms)
    # Series models (app/engine/series/trace.py) run their forward in float64: the same kernels on float64 inputs.
    g64 = np.ones((T, 4 * H))
    lstm_cell_forward(g64, f64[0], f64.copy())
    W64, d64, u64 = np.zeros((H, 4 * H)), np.zeros((T, 4 * H)), np.zeros((T, 4 * H), np.float32)
    lstm_backward(W64, f64, g64, f64, f64[0], f64[0], f64, np.zeros(T), f64.copy(), f64.copy(), d64, u64, norms)
    W64, d64, u64 = np.zeros((H, 3 * H)), np.zeros((T, 3 * H)), np.zeros((T, 3 * H), np.float32)
    gru_backward(
        W64, f64, g64[:, : 3 * H].copy(), f64, f64, f64[0], np.zeros(T), f64.copy(), d64.copy(), d64, u64, norms
    )
    W64, d64, u64 = np.zeros((H, H)), np.zeros((T, H)), np.zeros((T, H), np.float32)
    rnn_backward(W64, f64, f64, np.zeros(T), f64.copy(), d64, u64, norms)
    row_norms(f64, np.zeros(T))
    top_k(f32, np.zeros((T, 2), np.int64), np.zeros((T, 2), np.float32))
