"""The gradient knobs (app/engine/lab/knobs.py, POST /api/lab/gradients): the reverse recursion against torch.nn's cells
and float64 autograd, the directions the lesson names, and the endpoint's limits."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from torch import Tensor

from app.engine.lab import knobs
from app.engine.layers import RNN_CLASSES, Cell
from app.web.config import Settings

SEEDS = range(5)
GRID = [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0]


def oracle(
    cell: str, nonlinearity: str, layer: knobs.KnobLayer, x: Tensor, clip: float | None = None
) -> tuple[Tensor, Tensor]:
    """(h_t, ∂L/∂h_t) by autograd, one step at a time through torch.nn's own cell (float64), or a plain torch loop
    for the identity that torch.nn lacks. A hook on each h_t sees its total gradient (every path after it) and, with
    clip, hands on the clipped one: clipped BPTT as autograd runs it."""
    T, H = x.shape[0], layer.weight_hh.shape[1]
    step: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]
    if cell == "rnn" and nonlinearity == "identity":

        def step(x_t: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
            return layer.weight_ih @ x_t + layer.bias + layer.weight_hh @ h, c

    else:
        kwargs = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        module = RNN_CLASSES[cell](knobs.INPUT_SIZE, H, dtype=torch.float64, **kwargs)
        module.load_state_dict(
            {"weight_ih_l0": layer.weight_ih, "weight_hh_l0": layer.weight_hh, "bias_ih_l0": layer.bias,
             "bias_hh_l0": torch.zeros_like(layer.bias)}
        )  # fmt: skip

        def step(x_t: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
            if cell == "lstm":
                _, (h_new, c_new) = module(x_t[None, None], (h[None, None], c[None, None]))
                return h_new[0, 0], c_new[0, 0]
            out, _ = module(x_t[None, None], h[None, None])
            return out[0, 0], c

    h = torch.zeros(H, dtype=torch.float64, requires_grad=True)  # every h_t then requires grad, whatever the cell
    c = torch.zeros(H, dtype=torch.float64)
    hs = []
    grads = torch.zeros(T, H, dtype=torch.float64)
    for t in range(T):
        h, c = step(x[t], h, c)

        def hook(g: Tensor, t: int = t) -> Tensor:
            if clip is not None and float(g.norm()) > clip:
                g = g * (clip / g.norm())
            grads[t] = g
            return g

        h.register_hook(hook)  # type: ignore[no-untyped-call]
        hs.append(h)
    loss = layer.readout @ hs[-1]
    loss.backward()  # type: ignore[no-untyped-call]
    return torch.stack(hs).detach(), grads


CASES = [("rnn", "tanh"), ("rnn", "relu"), ("rnn", "identity"), ("lstm", "tanh"), ("gru", "tanh")]


@pytest.mark.parametrize(("cell", "nonlinearity"), CASES)
@pytest.mark.parametrize(("radius", "forget_bias", "clip"), [(0.9, 0.0, None), (1.6, 2.0, None), (1.6, -1.0, 0.3)])
def test_recursion_matches_torch_nn_and_autograd(
    cell: Cell, nonlinearity: knobs.Nonlinearity, radius: float, forget_bias: float, clip: float | None
) -> None:
    """States equal torch.nn's (float64) to 1e-12; every ‖∂L/∂h_t‖ equals autograd's to 1e-9 relative, even where it
    has fallen to 1e-20; with clip, the clipped messages and where they were clipped equal autograd's with a hook."""
    layer = knobs.knob_layer(cell, 12, radius, forget_bias, seed=3)
    x = knobs.knob_inputs(40, seed=3)
    fwd = knobs.forward(cell, nonlinearity, layer, x)
    back = knobs.backward(cell, nonlinearity, layer, fwd, clip)
    hidden, grads = oracle(cell, nonlinearity, layer, x, clip)
    np.testing.assert_allclose(fwd.hidden, hidden.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(back.grad_hidden, grads.numpy(), rtol=1e-9, atol=0)
    if clip is not None:
        expected = grads.norm(dim=1).numpy() >= clip * (1 - 1e-12)
        assert back.clipped.any() and (back.clipped == expected).all()
    else:
        assert not back.clipped.any()


def test_curves_are_the_recursions_norms_and_the_bound_is_geometric() -> None:
    curves = knobs.gradients("rnn", 30, 10, 0.7, "tanh", seed=1)
    layer = knobs.knob_layer("rnn", 10, 0.7, seed=1)
    fwd = knobs.forward("rnn", "tanh", layer, knobs.knob_inputs(30, 1))
    back = knobs.backward("rnn", "tanh", layer, fwd, None)
    np.testing.assert_allclose(curves.grad_norms, np.linalg.norm(back.grad_hidden, axis=1), rtol=1e-14)
    assert curves.grad_norms[-1] == pytest.approx(1.0, rel=1e-14)  # ∂L/∂h_{T−1} = w, a unit vector
    np.testing.assert_allclose(curves.bound, 0.7 ** np.arange(29, -1, -1), rtol=1e-12)


def test_norms_keep_their_digits_far_below_float64_squares() -> None:
    """‖v‖ of a vector of 1e-200s is 1e-200-ish, not 0 (its squares underflow)."""
    a = np.full((2, 4), 3e-200)
    a[1] = 2e200
    np.testing.assert_allclose(knobs.row_lengths(a), [6e-200, 4e200], rtol=1e-14)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_radius_measured_is_the_rescaled_blocks_spectral_radius(cell: Cell) -> None:
    """Measured here on the matrices the layer uses: every gate's block of weight_hh has spectral radius `radius`."""
    H = 24
    for radius in (0.3, 1.0, 7.5):
        layer = knobs.knob_layer(cell, H, radius, seed=2)
        blocks = layer.weight_hh.reshape(-1, H, H)
        measured = torch.linalg.eigvals(blocks).abs().amax(dim=1)
        np.testing.assert_allclose(measured.numpy(), radius, rtol=1e-9)
        assert layer.radius_measured == pytest.approx(radius, abs=1e-9)
        assert knobs.gradients(cell, 5, H, radius, seed=2).radius_measured == pytest.approx(radius, abs=1e-9)


def test_forget_bias_is_the_lstms_forget_gate_bias_only() -> None:
    layer = knobs.knob_layer("lstm", 6, 1.0, forget_bias=5.0)
    assert layer.bias.reshape(4, 6).tolist() == [[0.0] * 6, [5.0] * 6, [0.0] * 6, [0.0] * 6]
    assert not knobs.knob_layer("gru", 6, 1.0, forget_bias=5.0).bias.any()


def first_step(cell: Cell, radius: float, seed: int, nonlinearity: knobs.Nonlinearity = "tanh",
               forget_bias: float = 0.0) -> float:  # fmt: skip
    return float(knobs.gradients(cell, 200, 128, radius, nonlinearity, forget_bias, seed=seed).grad_norms[0])


def test_tanh_at_half_vanishes() -> None:
    """T = 200, H = 128, tanh at radius 0.5: the first step's gradient is below 1e-80 of the last's (measured
    8e-99 to 5e-94 over seeds 0–4), and at no step larger than the bound 0.5^(T−1−t) times 10."""
    for seed in SEEDS:
        curves = knobs.gradients("rnn", 200, 128, 0.5, "tanh", seed=seed)
        assert curves.grad_norms[0] < 1e-80
        assert (curves.grad_norms <= 10 * curves.bound).all()


def test_relu_explodes_past_the_edge() -> None:
    """ReLU switches about half the units off a step, so a Gaussian W_hh grows a gradient by about radius·√½ a
    step: at radius 1.5 (1.06 a step) it is on the edge and depends on the draw; measured over seeds 0–19, 13 of
    20 first-step norms are above 1 (up to 4e10), the least 9e-10, while tanh's at the same radius are all below
    1e-12. At radius 2 every seed's grows past 1e9 (measured 1.8e9 to 7e35)."""
    relu_15 = [first_step("rnn", 1.5, seed, "relu") for seed in range(20)]
    assert sum(g > 1 for g in relu_15) >= 12
    assert max(relu_15) > 1e9
    for seed in SEEDS:
        assert relu_15[seed] > 1e6 * first_step("rnn", 1.5, seed, "tanh")
    assert all(first_step("rnn", 2.0, seed, "relu") > 1e9 for seed in range(20))


def test_identity_at_radius_one_neither_vanishes_nor_explodes() -> None:
    """Measured over seeds 0–4: every ‖∂L/∂h_t‖ between 0.32 and 1.5."""
    for seed in SEEDS:
        norms = knobs.gradients("rnn", 200, 128, 1.0, "identity", seed=seed).grad_norms
        assert 0.2 < norms.min() and norms.max() < 5


def test_lstm_forget_bias_keeps_the_gradient() -> None:
    """Radius 1, T = 200: with forget_bias 5 (f ≈ 0.993) no step's norm falls below 1e-3 (measured ≥ 9.6e-3 over
    seeds 0–4); with 0 the first step's is below 1e-30 (≈ 1e-40), with −3 below 1e-100 (≈ 1e-127)."""
    for seed in SEEDS:
        assert knobs.gradients("lstm", 200, 128, 1.0, forget_bias=5.0, seed=seed).grad_norms.min() > 1e-3
        assert first_step("lstm", 1.0, seed, forget_bias=0.0) < 1e-30
        assert first_step("lstm", 1.0, seed, forget_bias=-3.0) < 1e-100


@pytest.mark.parametrize(("cell", "nonlinearity"), CASES)
def test_larger_radius_larger_first_step(cell: Cell, nonlinearity: knobs.Nonlinearity) -> None:
    for seed in SEEDS:
        norms = [first_step(cell, radius, seed, nonlinearity) for radius in GRID]
        assert all(a < b for a, b in itertools.pairwise(norms)), norms


def test_clip_caps_explosion_but_cannot_undo_vanishing() -> None:
    exploding = knobs.gradients("rnn", 200, 64, 2.0, "relu", clip=10.0)
    assert exploding.clipped.any() and exploding.grad_norms.max() <= 10.0 * (1 + 1e-12)
    assert knobs.gradients("rnn", 200, 64, 2.0, "relu").grad_norms.max() > 1e9
    vanishing = knobs.gradients("rnn", 200, 64, 0.5, "tanh", clip=10.0)
    assert not vanishing.clipped.any()
    np.testing.assert_array_equal(vanishing.grad_norms, knobs.gradients("rnn", 200, 64, 0.5, "tanh").grad_norms)


def test_the_knobs_that_a_cell_lacks_are_ignored() -> None:
    """nonlinearity applies to the plain RNN only, forget_bias to the LSTM only."""
    gru = knobs.gradients("gru", 20, 8, 1.2, "tanh", seed=4).grad_norms
    np.testing.assert_array_equal(knobs.gradients("gru", 20, 8, 1.2, "relu", 3.0, seed=4).grad_norms, gru)
    lstm = knobs.gradients("lstm", 20, 8, 1.2, "tanh", seed=4).grad_norms
    np.testing.assert_array_equal(knobs.gradients("lstm", 20, 8, 1.2, "identity", seed=4).grad_norms, lstm)


def test_a_shorter_sequence_reads_the_first_inputs_of_a_longer_one() -> None:
    np.testing.assert_array_equal(knobs.knob_inputs(7, 5), knobs.knob_inputs(30, 5)[:7])


# The endpoint.


def body(**overrides: object) -> dict[str, object]:
    return {"cell": "rnn", "steps": 50, "hidden_size": 16, "radius": 0.8, **overrides}


def test_endpoint_returns_the_engines_curves(client: TestClient) -> None:
    r = client.post("/api/lab/gradients", json=body(cell="lstm", forget_bias=2.0, clip=0.5, seed=7))
    assert r.status_code == 200, r.text
    data = r.json()
    curves = knobs.gradients("lstm", 50, 16, 0.8, "tanh", 2.0, 0.5, 7)
    assert data["cell"] == "lstm" and data["steps"] == 50 and data["hidden_size"] == 16 and data["radius"] == 0.8
    assert data["nonlinearity"] == "tanh"
    assert data["radius_measured"] == pytest.approx(0.8, abs=1e-9)
    assert data["grad_norms"] == curves.grad_norms.tolist()
    assert data["bound"] == curves.bound.tolist()
    assert data["clipped"] == curves.clipped.tolist() and any(data["clipped"])


def test_endpoint_defaults(client: TestClient) -> None:
    data = client.post("/api/lab/gradients", json=body()).json()
    assert data["nonlinearity"] == "tanh" and not any(data["clipped"])
    assert data["grad_norms"] == knobs.gradients("rnn", 50, 16, 0.8, "tanh", 0.0, None, 0).grad_norms.tolist()


def test_endpoint_sends_overflow_as_null(client: TestClient) -> None:
    """ReLU at radius 10 over 1000 steps overflows float64: those values are null, the rest numbers."""
    r = client.post("/api/lab/gradients", json=body(steps=1000, nonlinearity="relu", radius=10))
    assert r.status_code == 200
    data = r.json()
    assert None in data["grad_norms"] and None in data["bound"]
    assert data["grad_norms"][-1] == pytest.approx(1.0) and data["bound"][-1] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"steps": "lab_max_steps+1"}, "lab_max_steps"),
        ({"steps": 1}, "steps"),
        ({"hidden_size": "lab_max_hidden+1"}, "lab_max_hidden"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"radius": 0}, "radius"),
        ({"radius": 10.5}, "radius"),
        ({"radius": math.inf}, "radius"),
        ({"radius": "1"}, "radius"),
        ({"cell": "transformer"}, "cell"),
        ({"nonlinearity": "sigmoid"}, "nonlinearity"),
        ({"clip": 0}, "clip"),
        ({"clip": -1}, "clip"),
        ({"seed": -1}, "seed"),
        ({"forget_bias": 1e9}, "forget_bias"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_a_422_naming_it(
    client: TestClient, settings: Settings, overrides: dict[str, object], named: str
) -> None:
    """Each limit and each malformed field: a 422 whose message names it. Infinity is sent as Python's json writes
    it (not JSON, but read by the server's parser), so that an infinite radius is refused, not computed."""
    for key, value in overrides.items():
        if isinstance(value, str) and value.endswith("+1"):
            overrides = {**overrides, key: getattr(settings, value[:-2]) + 1}
    content = json.dumps(body(**overrides)).encode()
    r = client.post("/api/lab/gradients", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert named in r.json()["message"]


def test_the_schema_states_the_limits(client: TestClient, settings: Settings) -> None:
    """The OpenAPI schema names the server's own limits, so a client (or a fuzzer) knows them."""
    props = client.get("/openapi.json").json()["components"]["schemas"]["GradientsRequest"]["properties"]
    assert props["steps"]["maximum"] == settings.lab_max_steps
    assert props["hidden_size"]["maximum"] == settings.lab_max_hidden
    assert props["radius"]["maximum"] == 10 and props["radius"]["exclusiveMinimum"] == 0


# The linear recurrences: their own knobs, held against autograd on the cells written out step by step.


def linear_oracle(cell: str, steps: int, hidden: int, gate_bias: float, step: float, seed: int) -> Tensor:
    """‖∂L/∂h_t‖ by autograd, L = w·h_{T−1}: minGRU (h_t = (1 − z_t) h_{t−1} + z_t h̃_t, z_t = σ(W_z x_t + b)) or S6
    (h_t = exp(Δ_t A) h_{t−1} + Δ_t B x_t, Δ_t = softplus(W_Δ x_t + softplus⁻¹(step)), A[·, n] = −(n + 1)), from
    the weights the seed draws (W first, then w from seed + 1) and a candidate and B of the test's own (the
    gradient through the recurrence does not depend on them)."""
    gen = torch.Generator().manual_seed(seed)
    x = knobs.knob_inputs(steps, seed)
    weight = torch.randn(hidden, knobs.INPUT_SIZE, generator=gen, dtype=torch.float64) / math.sqrt(knobs.INPUT_SIZE)
    drive = torch.randn(steps, hidden, dtype=torch.float64)
    with torch.enable_grad():
        if cell == "s6":
            n = 16
            delta = torch.nn.functional.softplus(x @ weight.T + math.log(math.expm1(step)))
            a = -torch.arange(1, n + 1, dtype=torch.float64)
            h = torch.zeros(hidden, n, dtype=torch.float64, requires_grad=True)
        else:
            z = torch.sigmoid(x @ weight.T + gate_bias)
            h = torch.zeros(hidden, dtype=torch.float64, requires_grad=True)
        states = []
        for t in range(steps):
            if cell == "s6":
                h = torch.exp(delta[t][:, None] * a) * h + delta[t][:, None] * drive[t][:, None]
            else:
                h = (1 - z[t]) * h + z[t] * drive[t]
            h.retain_grad()
            states.append(h)
        w = torch.randn(h.numel(), generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
        (states[-1].reshape(-1) @ (w / w.norm())).backward()
    return torch.stack([s.grad.norm() for s in states if s.grad is not None])


@pytest.mark.parametrize(
    ("cell", "gate_bias", "step"), [("mingru", -2.0, 0.01), ("mingru", 3.0, 0.01), ("s6", 0.0, 0.003), ("s6", 0.0, 2.0)]
)
def test_a_linear_recurrences_knobs_match_autograd(cell: Cell, gate_bias: float, step: float) -> None:
    got = knobs.gradients(cell, 40, 6, 1.0, seed=3, gate_bias=gate_bias, step=step)
    want = linear_oracle(cell, 40, 6, gate_bias, step, 3)
    assert np.all(np.abs(got.grad_norms - want.numpy()) <= 1e-10 * want.numpy())  # each to its own size
    assert got.radius_measured == 0.0 and np.all(got.bound == 1.0) and np.all(got.grad_norms <= 1.0 + 1e-12)


def test_a_linear_recurrence_keeps_more_as_its_gate_closes() -> None:
    """minGRU: a larger update gate bias overwrites more (1 − z smaller): the first step keeps less. S6: a larger
    step Δ forgets faster."""
    firsts = [knobs.gradients("mingru", 100, 16, 1.0, gate_bias=b).grad_norms[0] for b in (-4.0, 0.0, 4.0)]
    assert firsts[0] > firsts[1] > firsts[2]
    s6 = [knobs.gradients("s6", 100, 16, 1.0, step=d).grad_norms[0] for d in (0.001, 0.05, 1.0)]
    assert s6[0] > s6[1] > s6[2]


def test_endpoint_takes_the_linear_recurrences_knobs(client: TestClient) -> None:
    r = client.post("/api/lab/gradients", json=body(cell="s6", step=0.2, clip=0.5))
    assert r.status_code == 200, r.text
    curves = knobs.gradients("s6", 50, 16, 0.8, "tanh", 0.0, 0.5, 0, 0.0, 0.2)
    assert r.json()["grad_norms"] == curves.grad_norms.tolist() and r.json()["radius_measured"] == 0.0
    bad = client.post("/api/lab/gradients", json=body(cell="s6", step=0.0))
    assert bad.status_code == 422 and "step" in bad.text
