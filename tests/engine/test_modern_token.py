"""minGRU, minLSTM and S6 as cells of the token family: the trace (states, gates or Δ, ‖∂L/∂h_t‖, ‖∂L/∂x_t‖), the
Jacobian triangle and step-by-step generation, each held against float64 autograd on the cells' equations written
out one step at a time from the model's parameters (the papers' σ, 1 − z, f ÷ (f + i), exp(ΔA), ΔB), and the
REST trace and triangle of such a model, served from its card.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from torch import Tensor

from app.engine.family import load_model
from app.engine.lab.jacobian import jacobian_norms
from app.engine.layers import GATES
from app.engine.modern.layer import MinGRULayer, ModernLayer, ModernStack, S6Layer
from app.engine.modern.mingru import MinGRU, MinLSTM
from app.engine.token.generate import generate
from app.engine.token.model import ModelConfig, SeqModel
from app.engine.token.trace import trace_ids
from app.web.app import create_app
from app.web.config import Settings
from tests.conftest import write_model

MODERN = ["mingru", "minlstm", "s6"]
IDS = [3, 1, 4, 1, 5, 2, 6, 5, 3, 5, 0, 2]


def make_model(cell: str, kind: str, layers: int = 1, seed: int = 0) -> SeqModel:
    torch.manual_seed(seed)
    outputs = 7 if kind == "next_token" else 3
    model = SeqModel(ModelConfig(cell, kind, 7, outputs, 4, 5, layers))  # type: ignore[arg-type]
    with torch.no_grad():  # gates (Δ) from nearly shut to nearly open, so products span orders of magnitude
        for name, p in model.named_parameters():
            if "linear_step" in name or ("rnn" in name and cell != "s6"):
                p.mul_(3.0)
    return model.eval().requires_grad_(False)


def oracle_layer(layer: ModernLayer, xs: Tensor, h: Tensor, start: int = 0) -> tuple[list[Tensor], Tensor, Tensor]:
    """The layer's states h_start … h_{T−1} from h_{start−1} = h (each a node of the autograd graph), its outputs
    (T', H) and its gates (T', G·H), one step at a time as the papers write them, float64."""
    states, outs, gates = [], [], []
    for t in range(start, xs.shape[0]):
        x = xs[t]
        if isinstance(layer, S6Layer):
            ssm = layer.ssm
            u = F.linear(x, layer.proj.weight.double(), layer.proj.bias.double())
            step = F.softplus(F.linear(u, ssm.linear_step.weight.double(), ssm.linear_step.bias.double()))
            b, c = u @ ssm.linear_b.weight.double().T, u @ ssm.linear_c.weight.double().T
            a = -torch.exp(ssm.a_log.double())
            h = torch.exp(step[:, None] * a) * h + (step[:, None] * b[None, :]) * u[:, None]
            outs.append(h @ c + ssm.skip.double() * u)
            gates.append(step)
        else:
            assert isinstance(layer, MinGRULayer)
            cell = layer.cell

            def lin(m: torch.nn.Linear, x: Tensor = x) -> Tensor:
                return F.linear(x, m.weight.double(), m.bias.double())

            cand = lin(cell.linear_h)
            if isinstance(cell, MinGRU):
                z = torch.sigmoid(lin(cell.linear_z))
                h = (1 - z) * h + z * cand
                gates.append(z)
            else:
                assert isinstance(cell, MinLSTM)
                f, i = torch.sigmoid(lin(cell.linear_f)), torch.sigmoid(lin(cell.linear_i))
                f, i = f / (f + i), i / (f + i)
                h = f * h + i * cand
                gates.append(torch.cat([f, i]))
            outs.append(h)
        states.append(h)
    return states, torch.stack(outs), torch.stack(gates)


def oracle(model: SeqModel, ids: list[int], label: int | None) -> dict[str, list[Tensor]]:
    """Every layer's states, outputs and gates, ‖∂L/∂h_t‖ and ‖∂L/∂x_t‖ by autograd on the step-by-step model."""
    assert isinstance(model.rnn, ModernStack)
    with torch.enable_grad():
        x = model.embedding.weight.double()[torch.tensor(ids)].clone().requires_grad_(True)
        inp, kept = x, []
        for k in range(model.config.num_layers):
            layer = model.rnn.layer(k)
            states, outs, gates = oracle_layer(layer, inp, layer.zero_state(inp[:1])[0].double())
            for s in states:
                s.retain_grad()
            kept.append((states, outs, gates))
            inp = outs
        logits = inp @ model.head.weight.double().T + model.head.bias.double()
        if label is None:
            loss = F.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="sum")
        else:
            loss = F.cross_entropy(logits[-1:], torch.tensor([label]))
        loss.backward()  # type: ignore[no-untyped-call]
    assert x.grad is not None
    return {
        "states": [torch.stack([s.detach() for s in states]) for states, _, _ in kept],
        "outputs": [outs.detach() for _, outs, _ in kept],
        "gates": [gates.detach() for _, _, gates in kept],
        "grad_hidden": [torch.stack([s.grad.norm() for s in states if s.grad is not None]) for states, _, _ in kept],
        "grad_input": [x.grad.norm(dim=1)],
        "loss": [loss.detach()],
    }


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("kind", ["next_token", "classify"])
@pytest.mark.parametrize("cell", MODERN)
def test_trace_equals_float64_autograd(cell: str, kind: str, layers: int) -> None:
    model = make_model(cell, kind, layers)
    label = 2 if kind == "classify" else None
    tr = trace_ids(model, IDS, label=label)
    want = oracle(model, IDS, label)
    assert tr.cell == cell and len(tr.layers) == layers
    assert tr.loss == pytest.approx(float(want["loss"][0]), rel=1e-6)
    names = GATES[cell]
    for k, layer in enumerate(tr.layers):
        H = model.config.hidden_size
        np.testing.assert_allclose(layer.hidden, want["outputs"][k].numpy(), rtol=1e-5, atol=1e-6)
        assert list(layer.gates) == list(names)
        got_gates = np.concatenate([layer.gates[n] for n in names], axis=1)
        np.testing.assert_allclose(got_gates, want["gates"][k].numpy(), rtol=1e-5, atol=1e-6)
        assert all(g.shape == (len(IDS), H) for g in layer.gates.values())
        close_each(layer.grad_hidden, want["grad_hidden"][k])
        assert layer.cell_state is None and not layer.grad_weight_hh.any()  # no c_t, no W_hh
    close_each(tr.grad_input, want["grad_input"][0])


def close_each(actual: np.ndarray, expected: Tensor) -> None:
    """Each gradient norm against its own size, |a − e| ≤ 1e−6·|e| (a 1e−20 must be reported as 1e−20, not 0).
    BPTT runs in float64; what it starts from, ∂L/∂logits, reads the float32 forward's probabilities (as every
    cell's trace does), whose rounding (~1e−7 relative) it carries."""
    want = expected.numpy()
    assert (np.abs(actual - want) <= 1e-6 * np.abs(want)).all(), (actual, want)


@pytest.mark.parametrize("norm", ["spectral", "frobenius"])
@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize("cell", MODERN)
def test_jacobian_triangle_equals_autograd(cell: str, layer: int, norm: str) -> None:
    """‖∂h_t/∂h_s‖ of the layer's whole state (S6: D × N), its inputs held, against autograd's Jacobian of the
    step-by-step loop from h_s, for every s ≤ t; NaN above the diagonal."""
    model = make_model(cell, "next_token", layers=2)
    ids = IDS[:9]
    got = jacobian_norms(model, ids, layer, norm)  # type: ignore[arg-type]
    assert isinstance(model.rnn, ModernStack)
    inp = model.embedding.weight.double()[torch.tensor(ids)]
    for k in range(layer):
        below = model.rnn.layer(k)
        _, inp, _ = oracle_layer(below, inp, below.zero_state(inp[:1])[0].double())
    own = model.rnn.layer(layer)
    states, _, _ = oracle_layer(own, inp, own.zero_state(inp[:1])[0].double())
    T = len(ids)
    assert got.hidden_size == math.prod(own.state_shape)
    for s in range(T):
        for t in range(T):
            if t < s:
                assert math.isnan(got.norms[t, s])
                continue

            def run(h_s: Tensor, s: int = s, t: int = t) -> Tensor:
                return oracle_layer(own, inp[: t + 1], h_s, start=s + 1)[0][-1] if t > s else h_s

            size = states[s].numel()
            jac = torch.autograd.functional.jacobian(run, states[s].detach())  # type: ignore[no-untyped-call]
            jac = jac.reshape(size, size)
            want = torch.linalg.matrix_norm(jac, ord=2 if norm == "spectral" else "fro")
            assert float(got.norms[t, s]) == pytest.approx(float(want), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("cell", MODERN)
def test_generation_steps_equal_the_trace(cell: str) -> None:
    """Step-by-step generation carries each layer's state (S6's D × N, not its output) from one step to the next:
    its states, gates and probabilities are the whole-sequence trace's."""
    model = make_model(cell, "next_token", layers=2)
    steps = list(generate(model, IDS[:4], length=5, temperature=0.0, seed=0))
    ids = [s.token_id for s in steps]
    tr = trace_ids(model, ids)
    for t, step in enumerate(steps):
        np.testing.assert_allclose(step.probs.numpy(), tr.probs[t], rtol=1e-4, atol=1e-6)
        for k, fwd in enumerate(step.layers):
            np.testing.assert_allclose(fwd.hidden[0].numpy(), tr.layers[k].hidden[t], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", MODERN)
def test_training_forward_equals_the_trace(cell: str) -> None:
    """The batch forward (time first, the loop with its adjoint) that training runs gives the trace's logits."""
    model = make_model(cell, "next_token", layers=2)
    batch = model(torch.tensor([IDS, IDS[::-1]]))
    for row, ids in enumerate([IDS, IDS[::-1]]):
        probs = torch.softmax(batch[row].double(), dim=-1).numpy()
        np.testing.assert_allclose(probs, trace_ids(model, ids).probs, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("cell", MODERN)
def test_the_training_gradient_is_autograds(cell: str) -> None:
    """What training differentiates, the loop with its closed-form adjoint (a batch, a start state given), has
    autograd's gradient through the step-by-step loop, for every parameter and the start state, in float64."""
    model = make_model(cell, "next_token").double()
    assert isinstance(model.rnn, ModernStack)
    layer = model.rnn.layer(0)
    x = torch.randn(9, 2, 4, dtype=torch.float64)
    start = torch.randn(2, *layer.state_shape, dtype=torch.float64, requires_grad=True)
    weights = [*layer.parameters(), start]
    with torch.enable_grad():
        layer.requires_grad_(True)
        out, _ = layer(x, start)
        got = torch.autograd.grad((out * torch.cos(out)).sum(), weights)
        a, b = layer.coefficients(x)
        outs, h = [], start
        for t in range(x.shape[0]):
            h = a[t] * h + b[t]
            outs.append(h)
        want_out = layer.readout(torch.stack(outs), x)
        want = torch.autograd.grad((want_out * torch.cos(want_out)).sum(), weights)
    torch.testing.assert_close(out, want_out, rtol=1e-13, atol=1e-13)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-11, atol=1e-12)


def test_modern_cells_read_one_direction() -> None:
    with pytest.raises(ValueError, match="one direction"):
        SeqModel(ModelConfig("mingru", "next_token", 7, 7, 4, 5, 1, bidirectional=True))


@pytest.fixture(scope="module")
def modern_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder: Path = tmp_path_factory.mktemp("modern")
    for cell in MODERN:
        write_model(folder, f"chars-{cell}", cell, "next_token", layers=2)
    write_model(folder, "words-s6", "s6", "classify")
    return folder


@pytest.fixture(scope="module")
def modern_client(modern_folder: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(models_dir=modern_folder, max_steps=3000))) as client:
        yield client


@pytest.mark.parametrize("cell", MODERN)
def test_a_card_of_a_modern_cell_is_served_with_its_gates(
    modern_client: TestClient, modern_folder: Path, cell: str
) -> None:
    """The card loads (its weights into a ModernStack), the model list names its cell, and the REST trace sends
    the gates the cell's description names, with the engine's numbers."""
    loaded = load_model(modern_folder, f"chars-{cell}")
    assert loaded.card.gate_names == GATES[cell]
    listed = {m["id"]: m for m in modern_client.get("/api/models").json()["models"]}
    assert listed[f"chars-{cell}"]["cell"] == cell
    r = modern_client.post(f"/api/models/chars-{cell}/trace", json={"text": "qwzx kv"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body["layers"][0]["gates"]) == list(GATES[cell])
    assert isinstance(loaded.model, SeqModel)
    tr = trace_ids(loaded.model, loaded.vocab.encode("qwzx kv").ids)
    np.testing.assert_allclose(body["grad_norms"]["hidden"][1], tr.layers[1].grad_hidden, rtol=1e-6)


def test_the_triangle_route_serves_a_modern_cell(modern_client: TestClient, modern_folder: Path) -> None:
    r = modern_client.post("/api/models/words-s6/jacobian", json={"text": "a good film", "norm": "frobenius"})
    assert r.status_code == 200, r.text
    body = r.json()
    loaded = load_model(modern_folder, "words-s6")
    assert isinstance(loaded.model, SeqModel)
    want = jacobian_norms(loaded.model, loaded.vocab.encode("a good film").ids, 0, "frobenius").norms
    assert body["hidden_size"] == 16 * 16  # S6's state: D channels × N
    got = np.array([[math.nan if v is None else v for v in row] for row in body["norms"]])
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-12)
