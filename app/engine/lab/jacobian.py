"""jacobian_norms(): every step's influence on every later step, ‖∂h_t/∂h_s‖ for all s ≤ t, of one layer entry.

The definition. h is one layer entry's hidden state (torch's order: l0, l0_reverse, l1, …). ∂h_t/∂h_s is the
derivative through that entry's own recurrence only: the entry's inputs (the embeddings, or the layer below's
states) do not depend on its own h_s, so they are held. For the LSTM the state is (h, c), and step s's influence is
that of its whole state: ‖∂h_t/∂(h_s, c_s)‖, the norm of the H × 2H matrix [∂h_t/∂h_s, ∂h_t/∂c_s]; after step s
every path, through h and through c, counts. (With c_s held, the LSTM's memory, which lives in c, was left out:
on the memory task's `G 58 31 907 24 6 ?` ‖∂h_T/∂h_0‖ was 0.048 with c_0 held, below the plain RNN's 0.066, and
is 0.43 with it.) The diagonal ∂h_t/∂h_t is the identity ([I, 0] for the LSTM: spectral norm 1, Frobenius √H),
and ‖∂L/∂(h_s, c_s)‖ ≤ ‖∂h_t/∂(h_s, c_s)‖ ‖∂L/∂h_t‖ for a loss L read from h_t. A reverse entry
reads the input last step to first, so its h_t depends on h_s for s ≥ t: its norms are given for s ≥ t.

The method (T steps, H hidden units), in float64 throughout:
1. The layer stack's forward, run by torch.nn on a float64 copy of the weights (the float32 weights are exact in
   float64), and every step's gates recomputed at once (app.engine.layers.stack_forward).
2. Every step's Jacobian J_k = ∂(state_k)/∂(state_{k−1}) in closed form, all k at once from the gates: the RNN's
   diag(1 − h_k²) W_hh; the GRU's diag(z) + diag(·) W_hn + diag(·) W_hr + diag(·) W_hz; the LSTM's four H × H
   blocks of ∂(h_k, c_k)/∂(h_{k−1}, c_{k−1}), two of which are diagonal (∂c_k/∂c_{k−1} = diag(f_k)).
3. The products P(t, s) = J_t ⋯ J_{s+1}, T²/2 of them: each s's chain P(t, s) = J_t P(t−1, s), t = s+1 … T−1,
   is independent of every other s's, so the chains are shared out among the threads (s = i, i + n, …: even
   work), each run by one compiled kernel (product_chains) whose H × H product stays in cache from one step to
   the next, one dgemm per step; the LSTM carries ∂c_t/∂(h_s, c_s) beside ∂h_t/∂(h_s, c_s) (2H columns, twice
   the RNN's work per product), its two diagonal blocks applied element-wise. No synchronisation per step: a
   batched torch version that waited on both threads at each t was several times slower on a busy machine.
4. Each product's norm as soon as it is made. A product of 300 contracting Jacobians reaches 1e−100 and beyond,
   where float32 has long underflowed (its least normal is ~1e−38): each chain keeps its product divided by a
   scale, whose logarithm is booked aside, back to norm 1 whenever it leaves [1e−100, 1e100]; a norm is
   exp(log scale + log ‖P̃‖), 0 only below float64's least (~1e−308). Frobenius: the sum of squares. Spectral: the
   largest singular value, by Lanczos on P̃ᵀP̃ with full reorthogonalisation (top_singular_value), started from
   the chain's previous product's top right singular vector (P(t, s) = J_t P(t−1, s) changes little), stopped when
   the top Ritz value's residual is under 1e−10 of it, which puts an eigenvalue within 1e−10 of it (in practice
   the error is about the residual squared: the values agree to 1e−15 with those of a 1e−13 stop, at half the
   time on memory-gru, whose clustered singular values near 1 take Lanczos the longest), or after H vectors,
   where it is exact.

Tests hold every entry, down to 1e−100 and below, against float64 autograd (to 1e−9 relative). On the memory
card's example (102 steps), ‖∂h_101/∂h_0‖ (spectral) is 3.2e−58 for memory-rnn, 8.2e−5 for memory-lstm and 1.05
for memory-gru: the RNN's first step has all but vanished from its last state; the gated cells' has not.

Speed (bench/jacobian_speed.py, 2 threads on a shared 2-core machine): T = 300, H = 128 in 2.5–3.7 s (RNN, GRU)
and 6 s (LSTM, when it carried h_s's H columns only; with c_s's too its products take twice the work: on a machine
at load 10, 22 CPU seconds against the RNN's 7), dgemm-bound (OpenBLAS at ~48 GFLOP/s a core); the zoo's ~100-step
inputs in 0.03–0.26 s (hidden 64) and 0.3–0.7 s (hidden 128).
"""

from __future__ import annotations

import copy
import ctypes
import functools
import importlib.util
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from app.engine.errors import EmptyInput, EngineError, InputTooLong
from app.engine.jit import cache_mode, njit
from app.engine.layers import (
    Cell,
    Direction,
    LayerForward,
    LayerWeights,
    Recurrence,
    Stack,
    layer_views,
    layer_weights,
    stack_forward,
)
from app.engine.modern.layer import ModernLayer, ModernStack
from app.engine.series.model import SeriesModel
from app.engine.token.model import ModelConfig, SeqModel

Norm = Literal["spectral", "frobenius"]

SETTLED = 1e-10  # Lanczos stops when its top Ritz value's residual is this small relative to it
RESCALE = 1e100  # a product is brought back to norm 1 when its norm leaves [1/RESCALE, RESCALE]


class BadLayer(EngineError):
    """A layer entry the model does not have."""


@dataclass
class JacobianNorms:
    norms: Tensor  # (T, T) float64: [t][s] = ‖∂h_t/∂h_s‖ where s is upstream of t, NaN elsewhere
    direction: Direction  # "forward": defined for s ≤ t; "reverse": for s ≥ t
    hidden_size: int


class _Float64Stack:
    """A SeqModel's recurrent layers as float64 copies, in the shape stack_forward reads (config, layer, weights)."""

    def __init__(self, model: SeqModel) -> None:
        self.config: ModelConfig = model.config
        self.rnn = copy.deepcopy(model.rnn).double()
        rnn = self.rnn
        self._layers: list[nn.RNNBase | ModernLayer] = (
            [rnn.layer(k) for k in range(rnn.num_layers)]
            if isinstance(rnn, ModernStack)
            else list(layer_views(rnn, model.config.cell, model.config.embed_size))
        )

    def layer(self, k: int) -> nn.RNNBase | ModernLayer:
        return self._layers[k]

    def weights(self, k: int) -> LayerWeights:
        if isinstance(self.rnn, ModernStack):
            raise ValueError("a linear recurrence has no W_ih and W_hh")
        return layer_weights(self.rnn, k)


@torch.no_grad()
def jacobian_norms(
    model: SeqModel, ids: Sequence[int], layer: int = 0, norm: Norm = "spectral", max_steps: int = 300
) -> JacobianNorms:
    """‖∂h_t/∂h_s‖ of layer entry `layer` (torch's order) on the token ids, for every pair of steps (see the
    module's docstring for the definition)."""
    cfg = model.config
    _check(cfg.num_layers * cfg.directions, layer, len(ids), max_steps)
    stack = _Float64Stack(model)
    x = model.embedding.weight[torch.as_tensor(list(ids), dtype=torch.long)].double()
    return _triangle(stack, x, cfg.directions, layer, norm)


@torch.no_grad()
def series_jacobian_norms(
    model: SeriesModel, x: Tensor, layer: int = 0, norm: Norm = "spectral", max_steps: int = 300
) -> JacobianNorms:
    """The same for a series model, on its inputs x (T, F) as W_ih reads them (scaled), in its float64 twin."""
    cfg = model.config
    _check(cfg.num_layers, layer, len(x), max_steps)
    twin = model.float64()
    return _triangle(twin, x.double(), 1, layer, norm)


def _check(entries: int, layer: int, T: int, max_steps: int) -> None:
    if not 0 <= layer < entries:
        raise BadLayer(f"layer {layer} does not exist: this model has {entries} layer entries (0 to {entries - 1})")
    if T == 0:
        raise EmptyInput("the input is empty: give at least one step")
    if T > max_steps:
        raise InputTooLong(T, max_steps)


def _triangle(stack: Stack, x: Tensor, directions: int, layer: int, norm: Norm) -> JacobianNorms:
    # Only the layers up to the asked one's are run.
    forwards, _ = stack_forward(stack, x, layer // directions + 1, directions)
    direction: Direction = "reverse" if layer % directions else "forward"
    fwd = forwards[layer]  # a reverse entry's arrays are in its own time: last step first
    if fwd.recurrence is not None:
        return diagonal_norms(fwd.recurrence, norm)
    H = stack.config.hidden_size
    steps = step_jacobians(stack.config.cell, stack.weights(layer), fwd)
    own = product_norms(steps, H, norm)
    return JacobianNorms(own if direction == "forward" else own.flip(0, 1), direction, H)


def diagonal_norms(rec: Recurrence, norm: Norm) -> JacobianNorms:
    """A linear recurrence's triangle (minGRU, minLSTM, S6): ∂h_t/∂h_s = diag(Π_{k=s+1..t} a_k) over its whole
    state (S6: D × N numbers), so its spectral norm is the largest |entry| and its Frobenius norm the entries'
    root-sum-square, each from the exact log a_k as exp(A_t − A_s), A_t = Σ_{k≤t} log a_k (scan.triangle's way:
    no intermediate product underflows), one row t at a time ((t+1) × state numbers, not T² × state)."""
    log_a = rec.layer.log_retain(rec.inputs).double().reshape(rec.inputs.shape[0], -1)  # (T, K)
    T, K = log_a.shape
    cum = torch.cumsum(log_a, dim=0)
    out = torch.full((T, T), math.nan, dtype=torch.float64)
    for t in range(T):
        logs = cum[t] - cum[: t + 1]  # (t+1, K): log Π_{k=s+1..t} a_k for s = 0 … t
        if norm == "spectral":
            out[t, : t + 1] = torch.exp(logs.max(dim=1).values)
        else:
            out[t, : t + 1] = torch.exp(0.5 * torch.logsumexp(2 * logs, dim=1))
    return JacobianNorms(out, "forward", K)


@dataclass
class StepJacobians:
    """Every step's Jacobian, k = 1 … T−1 (row k−1). The RNN and GRU: hh (T−1, H, H), ∂h_k/∂h_{k−1}. The LSTM:
    stacked (T−1, 2H, H) = [∂h_k/∂h_{k−1}; ∂c_k/∂h_{k−1}], and the diagonal blocks h_from_c (T−1, H) =
    ∂h_k/∂c_{k−1} and forget (T−1, H) = ∂c_k/∂c_{k−1}."""

    hh: Tensor
    h_from_c: Tensor | None = None
    forget: Tensor | None = None

    @property
    def steps(self) -> int:
        return self.hh.shape[0] + 1


def step_jacobians(cell: Cell, w: LayerWeights, fwd: LayerForward) -> StepJacobians:
    """J_k for every step k ≥ 1 at once, in closed form from the forward's states and gates (float64). The RNN is
    torch.nn's tanh RNN, the only one the engine runs (its layer views are built with the default nonlinearity)."""
    W = w.weight_hh.double()
    h = fwd.hidden.double()
    H = h.shape[1]
    if cell == "rnn":
        h_k = h[1:]
        return StepJacobians((1 - h_k * h_k)[:, :, None] * W)  # tanh' = 1 − tanh²
    act = fwd.act.double()[1:]
    h_prev = h[:-1]
    if cell == "gru":
        assert fwd.gh_candidate is not None
        r, z, n = act[:, :H], act[:, H : 2 * H], act[:, 2 * H :]
        gh_n = fwd.gh_candidate.double()[1:]  # W_hn h_{k−1} + b_hn, which r scales
        W_r, W_z, W_n = W[:H], W[H : 2 * H], W[2 * H :]
        dn = (1 - z) * (1 - n * n)  # ∂h_k/∂(n's pre-activation)
        hh = (dn * r)[:, :, None] * W_n + (dn * gh_n * r * (1 - r))[:, :, None] * W_r
        hh += ((h_prev - n) * z * (1 - z))[:, :, None] * W_z
        hh.diagonal(dim1=1, dim2=2).add_(z)  # h_k = (1 − z) n + z h_{k−1}
        return StepJacobians(hh)
    assert fwd.cell_state is not None
    c = fwd.cell_state.double()
    i, f, g, o = act[:, :H], act[:, H : 2 * H], act[:, 2 * H : 3 * H], act[:, 3 * H :]
    c_prev, tanh_c = c[:-1], c[1:].tanh()
    W_i, W_f, W_g, W_o = W[:H], W[H : 2 * H], W[2 * H : 3 * H], W[3 * H :]
    # c_k = f c_{k−1} + i g; h_k = o tanh(c_k)
    ch = (c_prev * f * (1 - f))[:, :, None] * W_f + (g * i * (1 - i))[:, :, None] * W_i
    ch += (i * (1 - g * g))[:, :, None] * W_g
    through_c = o * (1 - tanh_c * tanh_c)  # ∂h_k/∂c_k
    hh = (tanh_c * o * (1 - o))[:, :, None] * W_o + through_c[:, :, None] * ch
    return StepJacobians(torch.cat([hh, ch], dim=1), through_c * f, f)


def product_norms(steps: StepJacobians, H: int, norm: Norm) -> Tensor:
    """(T, T) norms[t][s] = ‖J_t ⋯ J_{s+1}‖ for s < t (the LSTM: the product's h rows, ∂h_t/∂(h_s, c_s)),
    the identity's norm on the diagonal, NaN above it. Each s's chain of products P(t, s) = J_t P(t−1, s) is
    independent of every other s's: the chains are shared out among torch's threads, each run by one compiled
    kernel whose matrices stay in cache (no synchronisation per step)."""
    T = steps.steps
    out = torch.full((T, T), math.nan, dtype=torch.float64)
    out.diagonal().fill_(1.0 if norm == "spectral" else math.sqrt(H))
    if T == 1:
        return out
    lstm = steps.forget is not None
    hh = steps.hh.contiguous().numpy()
    empty = np.zeros((1, 1))
    h_from_c = empty if steps.h_from_c is None else steps.h_from_c.contiguous().numpy()
    forget = empty if steps.forget is None else steps.forget.contiguous().numpy()
    nudge = np.random.default_rng(0).standard_normal(2 * H if lstm else H)  # in the space of the state at s
    nudge /= np.linalg.norm(nudge)
    o = out.numpy()
    threads = max(1, min(torch.get_num_threads(), (T - 1) // 4))
    # chain s costs T − 1 − s products: thread i takes s = i, i + threads, …, which evens the work out
    shares = [np.arange(i, T - 1, threads, dtype=np.int64) for i in range(threads)]
    spectral = norm == "spectral"

    def run(chains: NDArray[np.int64]) -> None:
        _one_blas_thread()
        product_chains(hh, h_from_c, forget, lstm, spectral, chains, nudge, SETTLED, o)

    if threads == 1:
        run(shares[0])
    else:
        list(_pool.map(run, shares))
    return out


_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="jacobian")


@functools.cache
def _openblas() -> ctypes.CDLL | None:
    """scipy's OpenBLAS, whose dgemm numba's np.dot calls."""
    spec = importlib.util.find_spec("scipy")
    if spec is None or spec.origin is None:
        return None
    found = sorted((Path(spec.origin).parent.parent / "scipy.libs").glob("libscipy_openblas*.so*"))
    try:
        return ctypes.CDLL(str(found[0])) if found else None
    except OSError:
        return None


def _one_blas_thread() -> None:
    """This thread's dgemm runs on this thread alone: the chains already share the cores out, and OpenBLAS's own
    threads, waiting on each other at every 128 × 128 product, made it 7× slower on a busy machine (measured)."""
    lib = _openblas()
    if lib is not None and hasattr(lib, "openblas_set_num_threads_local"):
        lib.openblas_set_num_threads_local(1)


_FAST = {"reassoc", "contract"}  # no "nnan"/"ninf": tiny and huge values are the point
_jit = njit(cache_mode(Path(__file__).parent), fastmath=_FAST, boundscheck=False, nogil=True)


@_jit
def product_chains(hh: Any, h_from_c: Any, forget: Any, lstm: bool, spectral: bool, chains: Any, nudge: Any,
                   settled: float, out: Any) -> None:  # fmt: skip
    """For each s in `chains`, out[t, s] = ‖P(t, s)‖ for t = s+1 … T−1, P(s+1, s) = J_{s+1} and
    P(t, s) = J_t P(t−1, s). The RNN and GRU: P = ∂h_t/∂h_s, J_{s+1} = hh[s]. The LSTM: P = [X; Y] =
    [∂h_t/∂(h_s, c_s); ∂c_t/∂(h_s, c_s)], H × 2H each, P(s+1, s) = [hh_h[s], diag(h_from_c[s]); hh_c[s],
    diag(forget[s])], X' = hh_h X + h_from_c ⊙ Y, Y' = hh_c X + forget ⊙ Y, and the norm is X's. P is kept divided
    by exp(log_scale) within [1/RESCALE, RESCALE], so that neither it nor its squares under- or overflow."""
    T = hh.shape[0] + 1
    H = hh.shape[2]
    W = 2 * H if lstm else H  # the columns: the state at s that is perturbed (h_s, and the LSTM's c_s)
    X = np.zeros((H, W))
    Y = np.zeros((H, W))
    Z = np.empty((hh.shape[1], W))
    v = np.empty(W)
    basis = np.empty((W + 1, W))  # the Lanczos vectors
    alpha = np.empty(W)
    beta = np.empty(W)
    u = np.empty(H)
    z = np.empty(W)
    for s in chains:
        X[:, :H] = hh[s, :H]
        if lstm:
            Y[:, :H] = hh[s, H:]
            X[:, H:] = 0.0
            Y[:, H:] = 0.0
            for i in range(H):
                X[i, H + i] = h_from_c[s, i]
                Y[i, H + i] = forget[s, i]
        v[:] = nudge
        log_scale = 0.0
        for t in range(s + 1, T):
            if t > s + 1:
                np.dot(hh[t - 1], X, Z)
                if lstm:
                    for i in range(H):
                        a, f = h_from_c[t - 1, i], forget[t - 1, i]
                        for j in range(W):
                            y = Y[i, j]
                            X[i, j] = Z[i, j] + a * y
                            Y[i, j] = Z[H + i, j] + f * y
                else:
                    X[:, :] = Z
            frob = 0.0
            for i in range(H):
                for j in range(W):
                    frob += X[i, j] * X[i, j]
            frob = math.sqrt(frob)
            size = frob
            if lstm:
                q = 0.0
                for i in range(H):
                    for j in range(W):
                        q += Y[i, j] * Y[i, j]
                size = max(size, math.sqrt(q))
            if size > 0.0 and (size > RESCALE or size < 1.0 / RESCALE):
                inv = 1.0 / size
                X *= inv
                if lstm:
                    Y *= inv
                log_scale += math.log(size)
                frob *= inv
            value = frob
            if spectral and frob > 0.0:
                for j in range(W):  # a start off the last singular vector by a little: see top_singular_value
                    v[j] += 1e-6 * nudge[j]
                value = top_singular_value(X, frob, v, settled, basis, alpha, beta, u, z)
            out[t, s] = math.exp(log_scale + math.log(value)) if value > 0.0 else 0.0


@_jit
def top_singular_value(
    M: Any, frob: float, v: Any, settled: float, Q: Any, alpha: Any, beta: Any, u: Any, z: Any
) -> float:
    """The largest singular value of M (R, C), whose Frobenius norm is frob: Lanczos on (M/frob)ᵀ(M/frob), whose
    entries are then at most 1 (M's own at 1e−80 would have their squares' squares underflow), from v, with full
    reorthogonalisation; v ends as the top Ritz vector, the start for the next product of the chain. It stops when
    the top Ritz value θ's residual β_k|y_k| is at most `settled`·θ (an eigenvalue lies that close: the Krylov
    space's largest, the top one), or the space is invariant, or it holds C vectors: then θ is exact. v (C); Q,
    alpha, beta, u, z: work arrays ((C+1, C), C, C, R, C)."""
    R, C = M.shape
    size = 0.0
    for j in range(C):
        size += v[j] * v[j]
    size = math.sqrt(size)
    for j in range(C):
        Q[0, j] = v[j] / size
    theta = 0.0
    inv = 1.0 / frob
    for k in range(1, C + 1):
        for i in range(R):  # z = Mᵀ(M q) / frob²
            acc = 0.0
            for j in range(C):
                acc += M[i, j] * Q[k - 1, j]
            u[i] = acc * inv
        for j in range(C):
            z[j] = 0.0
        for i in range(R):
            ui = u[i]
            for j in range(C):
                z[j] += M[i, j] * ui
        for j in range(C):
            z[j] *= inv
        a = 0.0
        for j in range(C):
            a += Q[k - 1, j] * z[j]
        alpha[k - 1] = a
        for _ in range(2):  # against every earlier vector, twice: the basis stays orthonormal to rounding
            for i in range(k):
                d = 0.0
                for j in range(C):
                    d += Q[i, j] * z[j]
                for j in range(C):
                    z[j] -= d * Q[i, j]
        b = 0.0
        for j in range(C):
            b += z[j] * z[j]
        b = math.sqrt(b)
        beta[k - 1] = b
        top = 0.0
        for i in range(k):
            top = max(top, abs(alpha[i]))
        invariant = b <= 1e-15 * top
        if invariant or k == C or k % 3 == 0:
            T = np.zeros((k, k))
            for i in range(k):
                T[i, i] = alpha[i]
                if i + 1 < k:
                    T[i, i + 1] = beta[i]
                    T[i + 1, i] = beta[i]
            w, Y = np.linalg.eigh(T)
            theta = w[k - 1]
            if invariant or k == C or b * abs(Y[k - 1, k - 1]) <= settled * theta:
                for j in range(C):
                    acc = 0.0
                    for i in range(k):
                        acc += Q[i, j] * Y[i, k - 1]
                    v[j] = acc
                break
        for j in range(C):
            Q[k, j] = z[j] / b
    return math.sqrt(max(theta, 0.0)) * frob


def warm_up() -> None:
    """Compile (or load from the cache) the kernels once, so that no request pays for it."""
    with torch.random.fork_rng():  # the weights' draw leaves the process's generator as it was
        for cell in ("rnn", "lstm"):
            model = SeqModel(ModelConfig(cell, "next_token", 3, 3, 2, 2)).eval().requires_grad_(False)
            for norm in ("spectral", "frobenius"):
                jacobian_norms(model, [0, 1, 2], 0, norm)
