"""The linear recurrence h_t = a_t ⊙ h_{t−1} + b_t, the one every modern cell here reduces to, computed three ways.

Time is dimension 0 of every tensor; the trailing dimensions are anything (units, channels × state size, a batch),
element-wise throughout. States are indexed from 0: h_t is the state after reading step t's input, h_init the state
before the first.

1. loop(): the sequential loop, T dependent steps, how an RNN is read.
2. scan(): a parallel prefix scan over the affine maps m_t(h) = a_t h + b_t. The maps compose into maps of the same
   form, m_2 ∘ m_1 = (a_2 a_1, a_2 b_1 + b_2), and composition is associative, so the prefixes m_t ∘ … ∘ m_0 can be
   combined in any grouping. Hillis–Steele: at level ℓ = 0, 1, …, every position i ≥ 2^ℓ composes the prefix it holds
   with the one 2^ℓ to its left, all positions at once; after ⌈log₂ T⌉ levels position t holds (A_t, B_t) with
   h_t = A_t h_init + B_t. Depth ⌈log₂ T⌉ instead of T, work O(T log T) instead of O(T) (Blelloch's two sweeps do
   O(T) work at twice the depth; Hillis–Steele is the one whose levels draw as a simple tree). The levels can be
   kept, so a page can draw which prefix each position holds after each level.
3. log_scan(): the log-space form of "Were RNNs All We Needed?" (Feng et al. 2024, its parallel_scan_log): for
   a_t > 0 and values v_0 = h_init, v_t = b_t (t ≥ 1 in its indexing) all > 0,
       log h_t = a*_t + logcumsumexp_{s ≤ t}(log v_s − a*_s),  a*_t = Σ_{k ≤ t} log a_k,
   a cumulative sum and a cumulative log-sum-exp (both themselves scans). It needs positive values, which is why
   the paper's log-space minGRU makes h̃ positive with g (see mingru.py). signed_log_scan() extends it to values of
   either sign, exactly, by linearity: with a_t > 0 the recurrence driven by b⁺ = max(b, 0) and the one driven by
   b⁻ = max(−b, 0) stay non-negative, and h = (Π a) h_init + h⁺ − h⁻ (zeros enter as a finite stand-in for
   log 0 = −∞, so that gradients stay finite: training can use this form too).
   The difference cancels where h⁺ ≈ h⁻: its error is relative to |h⁺| + |h⁻|, not to |h|. Either way the
   form's rounding grows with T: |a*_t| grows linearly in t, and its absolute rounding (eps × |a*_t|) is a
   relative error of h_t (bench/modern_scan.py: float32 ~1e−5 at T = 100, ~1e−3 at T = 10,000; float64 ~1e−14
   to ~1e−12), where the loop's and the scan's stay at a few eps.

The Jacobian of such a recurrence is diagonal: ∂h_t/∂h_s = diag(Π_{k=s+1..t} a_k), for s ≤ t (triangle()), and
BPTT is the same recurrence run backwards (adjoint()).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ScanLevel:
    """The prefixes every position holds after one level of the Hillis–Steele scan: position i holds the
    composition of the maps first..i (first = max(0, i − 2^(ℓ+1) + 1)), as h_i = a[i] h_{first−1} + b[i]."""

    offset: int  # 2^ℓ: how far to the left each position looked at this level
    first: Tensor  # (T,) long, the first step the prefix at each position covers
    a: Tensor  # (T, …)
    b: Tensor  # (T, …)


def loop(a: Tensor, b: Tensor, h_init: Tensor) -> Tensor:
    """h_t = a_t ⊙ h_{t−1} + b_t, one step after another; (T, …) states."""
    states = []
    h = h_init
    for t in range(a.shape[0]):
        h = a[t] * h + b[t]
        states.append(h)
    return torch.stack(states) if states else a.new_zeros(a.shape)


def levels_needed(steps: int) -> int:
    """⌈log₂ T⌉: the depth of the scan over T steps (0 for a single step)."""
    return math.ceil(math.log2(steps)) if steps > 1 else 0


def scan(a: Tensor, b: Tensor, h_init: Tensor, keep_levels: bool = False) -> tuple[Tensor, list[ScanLevel]]:
    """The Hillis–Steele scan: (T, …) states, equal to loop()'s up to rounding, and its levels if asked for."""
    steps = a.shape[0]
    first = torch.arange(steps)
    levels: list[ScanLevel] = []
    for level in range(levels_needed(steps)):
        offset = 1 << level
        # Position i ≥ offset: (a_i, b_i) ∘ (a_{i−offset}, b_{i−offset}), from the values before this level.
        a_new = torch.cat([a[:offset], a[offset:] * a[:-offset]])
        b = torch.cat([b[:offset], a[offset:] * b[:-offset] + b[offset:]])
        a = a_new
        first = torch.cat([first[:offset], first[:-offset]])
        if keep_levels:
            levels.append(ScanLevel(offset, first, a, b))
    return a * h_init + b, levels


def log_scan(log_a: Tensor, log_values: Tensor) -> Tensor:
    """The paper's parallel_scan_log: log_a (T, …), log_values (T + 1, …) = (log h_init, log b_0, …, log b_{T−1});
    returns the (T, …) states h_t = exp(a*_t + logcumsumexp(log v − a*)) (a_t > 0, values > 0 or log = −∞)."""
    a_star = torch.cat([log_a.new_zeros(log_a[:1].shape), torch.cumsum(log_a, dim=0)])
    log_h = a_star + torch.logcumsumexp(log_values - a_star, dim=0)
    return torch.exp(log_h)[1:]


def _log_nonneg(x: Tensor) -> Tensor:
    """log x for x ≥ 0, with 0 sent to a finite stand-in for −∞ (a quarter of the dtype's most negative number:
    exp of it, and of it plus any a*, is exactly 0) and a gradient of 0 there. A true −∞ gives the same values but
    NaN gradients: torch.log's 0 ÷ 0, and logcumsumexp's backward over a prefix that is −∞ throughout."""
    positive = x > 0
    floor = torch.finfo(x.dtype).min / 4
    return torch.where(positive, torch.log(torch.where(positive, x, torch.ones_like(x))), floor)


def signed_log_scan(a: Tensor, b: Tensor, h_init: Tensor) -> Tensor:
    """log_scan for b and h_init of either sign (a > 0): the positive and the negative parts of b scanned apart,
    h_init carried by its own term (Π_{k≤t} a_k) h_init, exact for either sign and for 0 (whose log would cut its
    gradient)."""
    log_a = torch.log(a)
    start = _log_nonneg(torch.zeros_like(b[:1]))
    parts = [log_scan(log_a, torch.cat([start, _log_nonneg((sign * b).clamp(min=0))])) for sign in (1.0, -1.0)]
    return torch.exp(torch.cumsum(log_a, dim=0)) * h_init + parts[0] - parts[1]


def triangle(log_a: Tensor) -> Tensor:
    """(T, T, …): entry [t, s] is Π_{k=s+1..t} a_k, the diagonal of ∂h_t/∂h_s, for s ≤ t; 0 above the diagonal.

    From log_a (log a_k ≤ 0 for the cells here) as exp(Σ_{k≤t} log a_k − Σ_{k≤s} log a_k): a product of many
    retain factors underflows to 0 only below float64's least (~1e−308), never through an intermediate. The
    difference of two running sums carries their rounding, eps × |Σ log a|, as a relative error of the entry:
    in float64 ~1e−13 for sums of a few hundred (the tests hold entries to 1e−10 of autograd's)."""
    cum = torch.cumsum(log_a, dim=0)
    steps = log_a.shape[0]
    diff = cum[:, None] - cum[None, :]
    below = torch.ones(steps, steps, dtype=torch.bool).tril()
    below = below.reshape(steps, steps, *([1] * (log_a.dim() - 1)))
    return torch.where(below, torch.exp(torch.where(below, diff, torch.zeros_like(diff))), torch.zeros_like(diff))


def adjoint(a: Tensor, upstream: Tensor) -> Tensor:
    """BPTT through h_t = a_t ⊙ h_{t−1} + b_t: given ∂ℓ/∂h_t of a loss read from each state (upstream, (T, …);
    zero where no loss reads it), the total ∂L/∂h_t = upstream_t + a_{t+1} ⊙ ∂L/∂h_{t+1}. The same linear
    recurrence, run last step to first; computed by the same scan."""
    if a.shape[0] == 0:
        return upstream
    # Reversed: g'_j = a'_j g'_{j−1} + u'_j with a'_j = a_{T−j} (j ≥ 1); a'_0 multiplies g'_{−1} = 0.
    a_rev = torch.cat([torch.zeros_like(a[:1]), a.flip(0)[:-1]])
    grads, _ = scan(a_rev, upstream.flip(0), torch.zeros_like(upstream[0]))
    return grads.flip(0)
