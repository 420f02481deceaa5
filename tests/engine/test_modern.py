"""minGRU, minLSTM and S6 (app/engine/modern) against float64 autograd on the cells written out step by step.

The oracles below read only the modules' parameters and write each cell's equations as the papers give them
(σ, 1 − z, f ÷ (f + i), exp(ΔA), ΔB), one step at a time; every traced quantity, Jacobian entry and gradient is held
against them or against torch.autograd on them. The three ways (loop, scan, log space) must agree to float64 rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from app.engine.modern import mingru, s6, scan

CELLS = [(mingru.MinGRU, False), (mingru.MinGRU, True), (mingru.MinLSTM, False), (mingru.MinLSTM, True)]
CELL_IDS = ["mingru", "mingru-positive", "minlstm", "minlstm-positive"]
MinCell = mingru.MinGRU | mingru.MinLSTM


def close(actual: Tensor, expected: Tensor) -> None:
    """Equal to float64 rounding, relative or absolute."""
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-13)


def make_cell(cls: type[MinCell], positive: bool, seed: int = 0) -> MinCell:
    torch.manual_seed(seed)
    cell = cls(5, 6, positive=positive).double()
    with torch.no_grad():  # gates from nearly shut to nearly open, so products span many orders of magnitude
        for p in cell.parameters():
            p.mul_(3.0)
    return cell


def inputs(steps: int, size: int = 5, seed: int = 1) -> Tensor:
    torch.manual_seed(seed)
    return torch.randn(steps, size, dtype=torch.float64)


def oracle_step(cell: MinCell, x_t: Tensor, h: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """One step as the paper writes it: (h_t, gates, h̃_t)."""
    pre = F.linear(x_t, cell.linear_h.weight, cell.linear_h.bias)
    cand = torch.where(pre >= 0, pre + 0.5, torch.sigmoid(pre)) if cell.positive else pre
    if isinstance(cell, mingru.MinGRU):
        z = torch.sigmoid(F.linear(x_t, cell.linear_z.weight, cell.linear_z.bias))
        return (1 - z) * h + z * cand, {"update": z}, cand
    f = torch.sigmoid(F.linear(x_t, cell.linear_f.weight, cell.linear_f.bias))
    i = torch.sigmoid(F.linear(x_t, cell.linear_i.weight, cell.linear_i.bias))
    f, i = f / (f + i), i / (f + i)
    return f * h + i * cand, {"forget": f, "input": i}, cand


def oracle_states(cell: MinCell, x: Tensor, h: Tensor, start: int = 0) -> list[Tensor]:
    """h_start … h_{T−1} from h_{start−1} = h, each state a node of the autograd graph."""
    states = []
    for t in range(start, x.shape[0]):
        h = oracle_step(cell, x[t], h)[0]
        states.append(h)
    return states


def initial(cell: MinCell) -> Tensor:
    return torch.full((cell.hidden_size,), 0.5 if cell.positive else 0.0, dtype=torch.float64)


@pytest.mark.parametrize(("cls", "positive"), CELLS, ids=CELL_IDS)
def test_min_cell_trace_is_the_papers_cell(cls: type[MinCell], positive: bool) -> None:
    cell, x = make_cell(cls, positive), inputs(40)
    trace = cell.trace(x)
    h = initial(cell)
    for t in range(x.shape[0]):
        h, gates, cand = oracle_step(cell, x[t], h)
        close(trace.states[t], h)
        close(trace.candidate[t], cand)
        assert trace.gates.keys() == gates.keys()
        for name, gate in gates.items():
            close(trace.gates[name][t], gate)
    if cls is mingru.MinLSTM:
        torch.testing.assert_close(trace.gates["forget"] + trace.gates["input"], torch.ones_like(trace.states))


@pytest.mark.parametrize(("cls", "positive"), CELLS, ids=CELL_IDS)
def test_min_cell_jacobian_triangle_is_autograds(cls: type[MinCell], positive: bool) -> None:
    cell, x = make_cell(cls, positive), inputs(24)
    trace = cell.trace(x)
    states = trace.states.detach()
    steps, hidden = states.shape
    for s in range(steps):
        # ∂(h_s, …, h_{T−1}) / ∂h_s: the oracle restarted from h_s (its own inputs held).
        def later(h_s: Tensor, s: int = s) -> Tensor:
            return torch.stack([h_s, *oracle_states(cell, x, h_s, start=s + 1)])

        jac = torch.autograd.functional.jacobian(later, states[s])  # type: ignore[no-untyped-call]  # (T − s, H, H)
        for t in range(s, steps):
            torch.testing.assert_close(jac[t - s], torch.diag(trace.jacobian()[t, s]), rtol=1e-10, atol=1e-300)
    upper = torch.ones(steps, steps, dtype=torch.bool).triu(1)
    assert bool((trace.jacobian()[upper] == 0).all())
    # No W_hh and no tanh′: every entry is a product of factors in (0, 1), so none exceeds 1.
    assert float(trace.jacobian().detach().max()) <= 1.0
    assert hidden == cell.hidden_size


def test_min_cell_jacobian_keeps_tiny_products() -> None:
    """Entries far below float32's range are still exact relative to the product of the factors."""
    cell, x = make_cell(mingru.MinGRU, False), inputs(300)
    trace = cell.trace(x)
    z = trace.gates["update"]
    expected = torch.exp(torch.log1p(-z[1:]).sum(0))  # Π_{k=1..T−1} (1 − z_k)
    torch.testing.assert_close(trace.jacobian()[-1, 0], expected, rtol=1e-9, atol=0.0)
    assert float(expected.detach().min()) < 1e-60


def last_step_loss(readout: Tensor, target: int) -> Callable[[Tensor], Tensor]:
    return lambda h: -torch.log_softmax(readout @ h, dim=-1)[target]


@pytest.mark.parametrize(("cls", "positive"), CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("every_step", [False, True], ids=["loss-at-last-step", "loss-at-every-step"])
def test_min_cell_bptt_is_autograds(cls: type[MinCell], positive: bool, every_step: bool) -> None:
    cell, x = make_cell(cls, positive), inputs(30)
    torch.manual_seed(2)
    readout = torch.randn(4, cell.hidden_size, dtype=torch.float64)
    targets = torch.randint(0, 4, (x.shape[0],)).tolist()
    reads = range(x.shape[0]) if every_step else [x.shape[0] - 1]
    # Autograd on the oracle: the total ∂L/∂h_t of every state.
    states = oracle_states(cell, x, initial(cell))
    for h in states:
        h.retain_grad()
    torch.stack([last_step_loss(readout, targets[t])(states[t]) for t in reads]).sum().backward()  # type: ignore[no-untyped-call]
    expected = torch.stack([h.grad for h in states if h.grad is not None])
    # Ours: each loss's gradient with respect to its own state alone, handed to bptt.
    trace = cell.trace(x)
    upstream = torch.zeros_like(trace.states)
    for t in reads:
        upstream[t] = torch.func.grad(last_step_loss(readout, targets[t]))(trace.states[t].detach())
    grads = mingru.bptt(trace, upstream)
    torch.testing.assert_close(grads, expected, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(grads.norm(dim=-1), expected.norm(dim=-1), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize(("cls", "positive"), CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("steps", [1, 2, 7, 64, 257])
def test_loop_scan_and_log_space_agree_in_float64(cls: type[MinCell], positive: bool, steps: int) -> None:
    cell, x = make_cell(cls, positive), inputs(steps)
    with torch.no_grad():
        loop = cell(x, mode="loop")
        scale = float(loop.abs().max())
        torch.testing.assert_close(cell(x, mode="scan"), loop, rtol=0, atol=1e-13 * scale)
        torch.testing.assert_close(cell(x, mode="log"), loop, rtol=0, atol=1e-12 * scale)


def test_min_cells_take_a_batch_after_time() -> None:
    cell, x = make_cell(mingru.MinGRU, True), inputs(20 * 3).reshape(20, 3, 5)
    with torch.no_grad():
        for mode in mingru.MODES:
            batched = cell(x, mode=mode)
            for i in range(3):
                close(batched[:, i], cell(x[:, i], mode=mode))


def test_log_space_refuses_a_non_positive_initial_state() -> None:
    cell, x = make_cell(mingru.MinGRU, True), inputs(5)
    with pytest.raises(ValueError, match="positive initial state"):
        cell(x, torch.zeros(cell.hidden_size, dtype=torch.float64), mode="log")


@pytest.mark.parametrize("steps", [1, 2, 5, 8, 13])
def test_scan_levels_hold_the_prefixes(steps: int) -> None:
    torch.manual_seed(3)
    a, b = torch.rand(steps, 2, dtype=torch.float64), torch.randn(steps, 2, dtype=torch.float64)
    h_init = torch.randn(2, dtype=torch.float64)
    states, levels = scan.scan(a, b, h_init, keep_levels=True)
    assert len(levels) == math.ceil(math.log2(steps)) if steps > 1 else not levels
    before = torch.cat([h_init[None], scan.loop(a, b, h_init)])  # before[i] = h_{i−1}
    for number, level in enumerate(levels):
        assert level.offset == 2**number
        for i in range(steps):
            first = int(level.first[i])
            assert first == max(0, i - 2 ** (number + 1) + 1)
            # The prefix at i maps h_{first−1} to h_i.
            close(level.a[i] * before[first] + level.b[i], before[i + 1])
    if levels:
        assert bool((levels[-1].first == 0).all())
    close(states, before[1:])


# S6


def make_s6(seed: int = 0) -> s6.S6:
    torch.manual_seed(seed)
    layer = s6.S6(3, 4, step_range=(0.01, 1.0)).double()
    with torch.no_grad():
        layer.linear_step.weight.mul_(2.0)
        layer.skip.normal_()
    return layer


def s6_oracle(
    layer: s6.S6, x: Tensor, u: Tensor | None = None, h: Tensor | None = None, start: int = 0
) -> dict[str, list[Tensor]]:
    """The layer step by step, per channel d and state n as the equations read; u, if given, replaces x where it
    is driven into the state (B̄_t u_t), with Δ, B, C still read from x: the map whose matrix is the attention."""
    a = -torch.exp(layer.a_log)
    u = x if u is None else u
    h = torch.zeros(layer.channels, layer.state_size, dtype=x.dtype) if h is None else h
    out: dict[str, list[Tensor]] = {"h": [], "y": [], "step": [], "a_bar": [], "b_bar": []}
    for t in range(start, x.shape[0]):
        step = F.softplus(layer.linear_step.weight @ x[t] + layer.linear_step.bias)
        b, c = layer.linear_b.weight @ x[t], layer.linear_c.weight @ x[t]
        a_bar = torch.exp(step[:, None] * a)
        b_bar = step[:, None] * b[None, :]
        h = a_bar * h + b_bar * u[t][:, None]
        y = h @ c + layer.skip * u[t]
        for key, value in zip(out, (h, y, step, a_bar, b_bar), strict=True):
            out[key].append(value)
    return out


def test_s6_trace_is_the_layer() -> None:
    layer, x = make_s6(), inputs(40, size=3)
    trace = layer.trace(x)
    oracle = s6_oracle(layer, x)
    for name, ours in (
        ("h", trace.states),
        ("y", trace.outputs),
        ("step", trace.step),
        ("a_bar", trace.a_bar),
        ("b_bar", trace.b_bar),
    ):
        close(ours, torch.stack(oracle[name]))
    assert float(trace.step.detach().min()) > 0 and float(trace.a_bar.detach().max()) < 1


def test_s6_hidden_attention_is_the_layers_matrix() -> None:
    layer, x = make_s6(), inputs(32, size=3)
    trace = layer.trace(x)
    steps = x.shape[0]
    # y = αx + Dx, with α lower-triangular.
    close(torch.einsum("dts,sd->td", trace.attention(), x) + layer.skip * x, trace.outputs)
    upper = torch.ones(steps, steps, dtype=torch.bool).triu(1)
    assert bool((trace.attention()[:, upper] == 0).all())
    # With Δ, B and C read from x and held, y is linear in what is driven into the state: autograd's matrix of
    # ∂y_t[d]/∂u_s[d] is α_{t,s}[d] (+ D[d] on the diagonal), and no channel reads another's.
    jac = torch.autograd.functional.jacobian(  # type: ignore[no-untyped-call]
        lambda u: torch.stack(s6_oracle(layer, x, u)["y"]), x.clone()
    )  # (T, D, T, D)
    for d in range(layer.channels):
        expected = trace.attention()[d] + torch.diag(layer.skip[d].expand(steps))
        torch.testing.assert_close(jac[:, d, :, d], expected, rtol=1e-10, atol=1e-14)
    other = ~torch.eye(layer.channels, dtype=torch.bool)
    assert bool((jac.permute(0, 2, 1, 3)[:, :, other] == 0).all())


def test_s6_jacobian_triangle_is_autograds() -> None:
    layer, x = make_s6(), inputs(16, size=3)
    trace = layer.trace(x)
    states = trace.states.detach()
    steps, size = states.shape[0], layer.channels * layer.state_size
    for s in range(steps):

        def later(h_s: Tensor, s: int = s) -> Tensor:
            return torch.stack([h_s, *s6_oracle(layer, x, h=h_s, start=s + 1)["h"]])

        jac = torch.autograd.functional.jacobian(later, states[s]).reshape(steps - s, size, size)  # type: ignore[no-untyped-call]
        for t in range(s, steps):
            torch.testing.assert_close(
                jac[t - s], torch.diag(trace.jacobian()[t, s].reshape(size)), rtol=1e-10, atol=1e-300
            )
    upper = torch.ones(steps, steps, dtype=torch.bool).triu(1)
    assert bool((trace.jacobian()[upper] == 0).all())


@pytest.mark.parametrize("every_step", [False, True], ids=["loss-at-last-step", "loss-at-every-step"])
def test_s6_bptt_is_autograds(every_step: bool) -> None:
    layer, x = make_s6(), inputs(30, size=3)
    torch.manual_seed(2)
    targets = torch.randn(x.shape[0], layer.channels, dtype=torch.float64)
    reads = range(x.shape[0]) if every_step else [x.shape[0] - 1]

    def loss(t: int) -> Callable[[Tensor], Tensor]:
        # A loss on y_t, read from h_t through C_t (and the skip, which does not depend on h).
        c = layer.linear_c.weight @ x[t]
        return lambda h: ((h @ c + layer.skip * x[t] - targets[t]) ** 2).sum()

    states = s6_oracle(layer, x)["h"]
    for h in states:
        h.retain_grad()
    torch.stack([loss(t)(states[t]) for t in reads]).sum().backward()  # type: ignore[no-untyped-call]
    expected = torch.stack([h.grad for h in states if h.grad is not None])
    trace = layer.trace(x)
    upstream = torch.zeros_like(trace.states)
    for t in reads:
        upstream[t] = torch.func.grad(loss(t))(trace.states[t].detach())
    grads = s6.bptt(trace, upstream)
    torch.testing.assert_close(grads, expected, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(grads.flatten(1).norm(dim=-1), expected.flatten(1).norm(dim=-1), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("steps", [1, 2, 7, 64, 257])
def test_s6_loop_scan_and_log_space_agree_in_float64(steps: int) -> None:
    layer, x = make_s6(), inputs(steps, size=3)
    with torch.no_grad():
        y_loop, h_loop = layer(x, mode="loop")
        for mode, tol in (("scan", 1e-13), ("log", 1e-12)):
            y, h = layer(x, mode=mode)
            torch.testing.assert_close(h, h_loop, rtol=0, atol=tol * float(h_loop.abs().max()))
            torch.testing.assert_close(y, y_loop, rtol=0, atol=tol * float(y_loop.abs().max()))


def parameter_gradients(module: torch.nn.Module, loss: Tensor) -> Tensor:
    grads = torch.autograd.grad(loss, list(module.parameters()))
    return torch.cat([g.flatten() for g in grads])


def assert_three_ways_train_alike(layer: torch.nn.Module, outputs: Callable[[mingru.Mode], Tensor]) -> None:
    loop = parameter_gradients(layer, outputs("loop").pow(2).sum())
    for mode in ("scan", "log"):
        grads = parameter_gradients(layer, outputs(mode).pow(2).sum())
        assert not bool(grads.isnan().any())
        torch.testing.assert_close(grads, loop, rtol=0, atol=1e-11 * float(loop.abs().max()))


@pytest.mark.parametrize(("cls", "positive"), CELLS, ids=CELL_IDS)
def test_the_three_ways_train_alike(cls: type[MinCell], positive: bool) -> None:
    """Gradients through loop, scan and log space agree in float64, none NaN: the log-space form's stand-in for
    log 0 (the sign split's zeros) keeps them finite."""
    cell, x = make_cell(cls, positive), inputs(40)
    assert_three_ways_train_alike(cell, lambda mode: cell(x, mode=mode))


def test_the_three_ways_of_s6_train_alike() -> None:
    layer, x = make_s6(), inputs(40, size=3)
    assert_three_ways_train_alike(layer, lambda mode: layer(x, mode=mode)[0])


def test_signed_log_scan_carries_an_initial_state_of_either_sign_or_zero() -> None:
    torch.manual_seed(4)
    a, b = torch.rand(9, 3, dtype=torch.float64), torch.randn(9, 3, dtype=torch.float64)
    h_init = torch.tensor([-1.5, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    ours, loop = scan.signed_log_scan(a, b, h_init), scan.loop(a, b, h_init)
    close(ours, loop)
    close(torch.autograd.grad(ours.sum(), h_init)[0], torch.autograd.grad(loop.sum(), h_init)[0])


def test_a_time_invariant_ssm_attends_by_distance_only() -> None:
    """With Δ, B, C read from no token, α_{t,s} depends on t − s alone (a convolution); S6's does not."""
    torch.manual_seed(0)
    fixed = s6.TimeInvariantSSM(3, 4, step_range=(0.01, 1.0)).double()
    x = inputs(24, size=3)
    trace = fixed.trace(x)
    attention = trace.attention()
    close(torch.einsum("dts,sd->td", attention, x) + fixed.skip * x, trace.outputs)
    for lag in range(x.shape[0]):
        diagonal = torch.diagonal(attention, offset=-lag, dim1=1, dim2=2)  # (D, T − lag): every α_{s+lag, s}
        close(diagonal, diagonal[:, :1].expand_as(diagonal))
    selective = torch.diagonal(make_s6().trace(x).attention(), offset=-1, dim1=1, dim2=2)
    assert float((selective - selective[:, :1]).detach().abs().max()) > 1e-3
    with torch.no_grad():
        loop = fixed(x, mode="loop")[1]
        for mode in ("scan", "log"):
            torch.testing.assert_close(fixed(x, mode=mode)[1], loop, rtol=0, atol=1e-12 * float(loop.abs().max()))
