"""The Jacobian triangle ‖∂h_t/∂h_s‖ (app.engine.lab.jacobian) against float64 autograd, and
POST /api/models/{id}/jacobian."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from fastapi.testclient import TestClient
from torch import Tensor, nn

from app.engine.card import save_model
from app.engine.family import load_model
from app.engine.lab.jacobian import jacobian_norms, series_jacobian_norms
from app.engine.layers import suffix
from app.engine.modern.layer import ModernStack
from app.engine.series.model import SeriesConfig, SeriesModel
from app.engine.token.card import config
from app.engine.token.model import ModelConfig, SeqModel
from app.web.app import create_app
from app.web.config import ROOT, Settings
from tests.conftest import LETTERS, LiveServer, write_model

CELLS: dict[type[nn.RNNBase], Callable[[int, int], nn.RNNCellBase]] = {
    nn.RNN: nn.RNNCell,
    nn.LSTM: nn.LSTMCell,
    nn.GRU: nn.GRUCell,
}


def cell_of(rnn: nn.RNNBase, entry: int) -> nn.RNNCellBase:
    """Entry `entry`'s weights (torch's order) in a float64 torch.nn cell module."""
    D = 2 if rnn.bidirectional else 1
    in_size = rnn.input_size if entry < D else rnn.hidden_size * D
    cell = CELLS[type(rnn)](in_size, rnn.hidden_size).double()
    s = suffix(entry, D)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(cell, name).data = getattr(rnn, f"{name}{s}").detach().double().clone()
    return cell


def run_cell(cell: nn.RNNCellBase, xs: Tensor, h: Tensor, c: Tensor | None) -> tuple[list[Tensor], list[Tensor]]:
    hs, cs = [], []
    for x in xs:
        if c is not None:
            h, c = cell(x, (h, c))
            cs.append(c)
        else:
            h = cell(x, h)
        hs.append(h)
    return hs, cs


def embedded(model: SeqModel, ids: list[int]) -> Tensor:
    return model.embedding.weight[torch.tensor(ids)].double()


def layer_inputs(rnn: nn.RNNBase, x: Tensor, entry: int) -> Tensor:
    """What entry `entry` reads (in the input's time) when the stack reads x, from an independent float64 cell loop
    of the layers below."""
    D = 2 if rnn.bidirectional else 1
    lstm = isinstance(rnn, nn.LSTM)
    for k in range(entry // D):
        outs = []
        for d in range(D):
            cell = cell_of(rnn, k * D + d)
            zero = torch.zeros(rnn.hidden_size, dtype=torch.float64)
            xs = x if d == 0 else x.flip(0)
            hs, _ = run_cell(cell, xs, zero, zero.clone() if lstm else None)
            out = torch.stack(hs)
            outs.append(out if d == 0 else out.flip(0))
        x = torch.cat(outs, dim=1)
    return x


def autograd_norms(rnn: nn.RNNBase | ModernStack, x: Tensor, entry: int, ord: float | str) -> Tensor:
    """norms[t][s] = ‖∂h_t/∂h_s‖ of the stack reading x (T, in), in the entry's own time (s ≤ t), each
    ∂h_{s+1…}/∂h_s from autograd's jacobian of a loop that takes h_s as its input (the LSTM's: (h_s, c_s), and
    the norm is that of [∂h_t/∂h_s, ∂h_t/∂c_s])."""
    assert isinstance(rnn, nn.RNNBase)
    D = 2 if rnn.bidirectional else 1
    cell = cell_of(rnn, entry)
    xs = layer_inputs(rnn, x.double(), entry)
    if entry % D:
        xs = xs.flip(0)
    H, T = rnn.hidden_size, len(x)
    zero = torch.zeros(H, dtype=torch.float64)
    lstm = isinstance(rnn, nn.LSTM)
    hs, cs = run_cell(cell, xs, zero, zero.clone() if lstm else None)
    out = torch.full((T, T), math.nan, dtype=torch.float64)
    for s in range(T):
        out[s, s] = torch.linalg.matrix_norm(torch.eye(H, dtype=torch.float64), ord=ord)
        if s == T - 1:
            continue
        state = torch.cat([hs[s], cs[s]]) if lstm else hs[s]  # the LSTM's state at s: (h_s, c_s)

        def after(state: Tensor, s: int = s) -> Tensor:
            h_s, c_s = (state[:H], state[H:]) if lstm else (state, None)
            later, _ = run_cell(cell, xs[s + 1 :], h_s, c_s)
            return torch.stack(later)

        jac = torch.autograd.functional.jacobian(after, state.detach(), vectorize=True)  # type: ignore[no-untyped-call]
        out[s + 1 :, s] = torch.linalg.matrix_norm(jac, ord=ord)  # jac: (T−1−s, H, H), the LSTM's (T−1−s, H, 2H)
    return out


def random_model(cell: str, layers: int = 1, bidirectional: bool = False, hidden: int = 7, scale: float = 1.0,
                 seed: int = 0) -> SeqModel:  # fmt: skip
    torch.manual_seed(seed)
    cfg = ModelConfig(cell, "next_token", 11, 11, 5, hidden, layers, bidirectional)  # type: ignore[arg-type]
    model = SeqModel(cfg).eval().requires_grad_(False)
    for name, p in model.rnn.named_parameters():
        if name.startswith("weight_hh"):
            p.mul_(scale)
    return model


def assert_close_everywhere(ours: Tensor, oracle: Tensor, rtol: float) -> None:
    """Equal where defined (relative, however small the value), NaN exactly where the oracle is undefined."""
    assert torch.equal(ours.isnan(), oracle.isnan())
    defined = ~oracle.isnan()
    a, b = ours[defined], oracle[defined]
    worst = float(((a - b).abs() / b.abs()).max())
    assert worst <= rtol, f"worst relative error {worst:.3g}"


IDS = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers,entry", [(1, 0), (2, 0), (2, 1)])
@pytest.mark.parametrize("ord", [2, "fro"])
def test_every_entry_equals_float64_autograd(cell: str, layers: int, entry: int, ord: float | str) -> None:
    # scale 0.5: the products fall to ~1e-10 and below over 20 steps, so tiny entries are held too
    model = random_model(cell, layers, scale=0.5 if cell == "rnn" else 1.0, seed=layers)
    got = jacobian_norms(model, IDS, entry, "spectral" if ord == 2 else "frobenius")
    assert got.direction == "forward" and got.hidden_size == 7
    oracle = autograd_norms(model.rnn, embedded(model, IDS), entry, ord)
    assert float(oracle[-1, 0]) < 1e-3  # the test reaches small values
    assert_close_everywhere(got.norms, oracle, 1e-9)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_chains_shared_among_torchs_threads_give_the_one_threads_norms(cell: str) -> None:
    """The chains of products are dealt out to torch's threads (the suite runs on one: tests/conftest.py), and
    however they are dealt the triangle is the same (each chain is its own; only the states' last bits may
    differ, torch's sums split another way)."""
    model = random_model(cell, 1, seed=5)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = jacobian_norms(model, IDS, 0, "spectral")
        torch.set_num_threads(3)  # (T − 1) // 4 chains' worth: 3 threads share them
        shared = jacobian_norms(model, IDS, 0, "spectral")
    finally:
        torch.set_num_threads(threads)
    assert_close_everywhere(shared.norms, one.norms, 1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers,entry", [(1, 1), (2, 2), (2, 3)])
def test_a_reverse_entry_is_given_for_s_after_t_and_equals_autograd(cell: str, layers: int, entry: int) -> None:
    """A bidirectional model's reverse entry reads last step to first: its h_t depends on h_s for s ≥ t, in the
    input's time; a forward entry above it reads both directions of the layer below."""
    model = random_model(cell, layers, bidirectional=True, seed=entry)
    got = jacobian_norms(model, IDS[:12], entry, "spectral")
    oracle = autograd_norms(model.rnn, embedded(model, IDS[:12]), entry, 2)  # in the entry's own time
    if entry % 2:
        assert got.direction == "reverse"
        assert math.isnan(float(got.norms[5, 4])) and not math.isnan(float(got.norms[4, 5]))
        oracle = oracle.flip(0, 1)
    else:
        assert got.direction == "forward"
    assert_close_everywhere(got.norms, oracle, 1e-9)


def test_products_far_below_float32s_range_are_exact() -> None:
    """A strongly contracting RNN: over 60 steps its products fall to ~1e-100 and below, which float32 (least
    normal ~1e-38) cannot hold, and which the rescaled chains give to the last digits all the same."""
    model = random_model("rnn", scale=0.05, hidden=5, seed=3)
    ids = (IDS * 3)[:60]
    for norm, ord in (("spectral", 2), ("frobenius", "fro")):
        got = jacobian_norms(model, ids, 0, norm)  # type: ignore[arg-type]
        oracle = autograd_norms(model.rnn, embedded(model, ids), 0, ord)
        assert float(oracle[-1, 0]) < 1e-100
        assert_close_everywhere(got.norms, oracle, 1e-9)


# --- the zoo: the module's point in one number ---------------------------------------------------------------


@pytest.fixture(scope="module")
def zoo_api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"models_dir": ROOT / "models"}))) as c:
        yield c


def test_the_rnn_forgets_the_first_step_where_the_lstm_and_gru_remember(zoo_api: TestClient) -> None:
    """On the memory card's example (102 steps), ‖∂h_101/∂h_0‖ (spectral, measured): memory-rnn 3.2e-58,
    memory-lstm 8.2e-5, memory-gru 1.05. The RNN's influence of the first step has vanished by over 50 orders of
    magnitude more than the LSTM's; the GRU's has not vanished at all."""
    card = zoo_api.get("/api/models/memory-rnn").json()
    text = card["examples"][0]["text"]
    last_first = {}
    for cell in ("rnn", "lstm", "gru"):
        r = zoo_api.post(f"/api/models/memory-{cell}/jacobian", json={"text": text})
        assert r.status_code == 200, r.text
        norms = r.json()["norms"]
        assert len(norms) == len(r.json()["tokens"]) > 90
        last_first[cell] = norms[-1][0]
    assert last_first["rnn"] < 1e-40
    assert 1e-8 < last_first["lstm"] < 1e-2
    assert last_first["gru"] > 0.1
    assert last_first["lstm"] / last_first["rnn"] > 1e30


def test_a_translation_model_is_409_and_an_unknown_note_is_422(zoo_api: TestClient) -> None:
    r = zoo_api.post("/api/models/numbers-gru/jacobian", json={"text": "one two"})
    assert r.status_code == 409 and "translation model" in r.json()["message"], r.text
    r = zoo_api.post("/api/models/melody-gru/jacobian", json={"text": "E4:1 C8:0.125 E4:1"})
    assert r.status_code == 422 and "'C8:0.125' at 1" in r.json()["message"], r.text


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_series_model_reads_values_and_equals_autograd(cell: str) -> None:
    """A series model's layers read its scaled numbers (two features here, two layers): the same triangle."""
    torch.manual_seed(5)
    model = SeriesModel(SeriesConfig(cell, 2, 6, 2)).eval().requires_grad_(False)  # type: ignore[arg-type]
    x = torch.randn(14, 2, dtype=torch.float64)
    for layer in (0, 1):
        got = series_jacobian_norms(model, x, layer, "spectral")
        assert_close_everywhere(got.norms, autograd_norms(model.rnn, x, layer, 2), 1e-9)


def test_the_zoos_series_models_over_rest(zoo_api: TestClient) -> None:
    card = zoo_api.get("/api/models/sunspots-lstm").json()
    values = card["examples"][0]["values"]
    r = zoo_api.post("/api/models/sunspots-lstm/jacobian", json={"values": values, "norm": "frobenius"})
    assert r.status_code == 200, r.text
    body = r.json()
    T = len(values)
    assert len(body["tokens"]) == T and len(body["norms"]) == T and body["norms"][0][1] is None
    assert body["norms"][T - 1][0] > 0 and body["norms"][3][3] == math.sqrt(card["hidden_size"])
    for body, words in (
        ({"text": "1 2 3"}, "reads numbers"),
        ({"values": ["x", 2]}, "step 0"),
        ({"values": [1.0] * 301}, "the limit is 300 steps (jacobian_max_steps)"),
        ({"values": values, "layer": card["num_layers"]}, f"this model has {card['num_layers']} layer entr"),
    ):
        r = zoo_api.post("/api/models/sunspots-lstm/jacobian", json=body)
        assert r.status_code in (409, 422) and words in r.json()["message"], r.text
    r = zoo_api.post("/api/models/memory-rnn/jacobian", json={"values": [1, 2]})
    assert r.status_code == 409 and "reads text" in r.json()["message"], r.text


# --- REST on the test models ------------------------------------------------------------------------------------


def test_the_body_is_the_engines_triangle(client: TestClient, models_dir: Path) -> None:
    r = client.post("/api/models/chars-gru/jacobian", json={"text": "hello world", "layer": 1, "norm": "frobenius"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tokens"] == list("hello world")
    assert (body["layer"], body["norm"], body["hidden_size"], body["direction"]) == (1, "frobenius", 16, "forward")
    loaded = load_model(models_dir, "chars-gru")
    assert isinstance(loaded.model, SeqModel)
    engine = jacobian_norms(loaded.model, loaded.vocab.encode("hello world").ids, 1, "frobenius").norms
    T = 11
    assert len(body["norms"]) == T and all(len(row) == T for row in body["norms"])
    for t in range(T):
        for s in range(T):
            if s > t:
                assert body["norms"][t][s] is None
            else:
                assert body["norms"][t][s] == float(engine[t, s])  # the float64 value, to the last digit
    assert body["norms"][4][4] == math.sqrt(16)


def test_a_checkpoint_gives_its_own_weights_triangle(client: TestClient) -> None:
    def last_first(checkpoint: str | None) -> float:
        body = {"text": "abcabc"} | ({} if checkpoint is None else {"checkpoint": checkpoint})
        r = client.post("/api/models/chars-lstm/jacobian", json=body)
        assert r.status_code == 200, r.text
        value: float = r.json()["norms"][-1][0]
        return value

    assert last_first("0") != last_first("100")
    r = client.post("/api/models/chars-lstm/jacobian", json={"text": "abc", "checkpoint": "7"})
    assert r.status_code == 404 and "checkpoint" in r.json()["message"]


@pytest.mark.parametrize(
    ("model_id", "body", "status", "words"),
    [
        ("chars-rnn", {"text": "a" * 301}, 422, "the limit is 300 steps (jacobian_max_steps)"),
        ("chars-rnn", {"text": "a" * 20_000}, 422, "max_steps"),
        ("chars-gru", {"text": "abc", "layer": 2}, 422, "this model has 2 layer entries"),
        ("chars-rnn", {"text": "abc", "layer": 1}, 422, "this model has 1 layer entry"),
        ("chars-rnn", {"text": "abc", "layer": -1}, 422, "layer"),
        ("chars-rnn", {"text": "abc", "layer": "0"}, 422, "layer"),
        ("chars-rnn", {"text": "abc", "norm": "nuclear"}, 422, "norm"),
        ("chars-rnn", {"text": ""}, 422, "text"),
        ("chars-rnn", {"values": [1, 2]}, 409, "reads text"),
        ("chars-rnn", {"text": "abc", "top_k": 3}, 422, "top_k"),
        ("numbers-gru", {"text": "twenty - one"}, 409, "translation model"),
        ("chars-rnn", {"text": "abc", "values": [1]}, 422, "one of them"),
        ("no-such-model", {"text": "abc"}, 404, "no-such-model"),
    ],
)
def test_bad_requests_are_4xx_naming_the_problem(
    client: TestClient, model_id: str, body: dict[str, Any], status: int, words: str
) -> None:
    r = client.post(f"/api/models/{model_id}/jacobian", json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["message"], r.text


def test_three_hundred_steps_over_a_real_server(live: LiveServer) -> None:
    """The largest input: a 300 × 300 triangle (~1 MB of JSON) sent by uvicorn in chunks, read whole."""
    r = httpx.post(f"{live.url}/api/models/chars-lstm/jacobian", json={"text": "abc " * 75}, timeout=60)
    assert r.status_code == 200, r.text
    norms = r.json()["norms"]
    assert len(norms) == 300 and norms[299][0] is not None and norms[0][299] is None
    assert all(norms[t][t] == 1.0 for t in range(300))


@pytest.mark.slow
def test_a_wide_models_step_limit_shrinks_with_its_work(settings: Settings, tmp_path: Path) -> None:
    """The work grows as T²H³: a model of hidden size 256 may be given 300 · (128/256)^1.5 = 106 steps."""
    write_model(tmp_path, "wide-rnn", "rnn", "next_token", hidden=256)
    with TestClient(create_app(settings.model_copy(update={"models_dir": tmp_path}))) as c:
        r = c.post("/api/models/wide-rnn/jacobian", json={"text": "abc " * 30})
        assert r.status_code == 422, r.text
        assert "for a model of hidden size 256 the limit is 106 steps" in r.json()["message"]
        r = c.post("/api/models/wide-rnn/jacobian", json={"text": "a" * 106})
        assert r.status_code == 200 and len(r.json()["norms"]) == 106, r.text


def test_one_step_is_the_identity_alone(client: TestClient) -> None:
    for norm, value in (("spectral", 1.0), ("frobenius", 4.0)):
        r = client.post("/api/models/chars-lstm/jacobian", json={"text": "a", "norm": norm})
        assert r.status_code == 200 and r.json()["norms"] == [[value]], r.text


def test_a_bidirectional_models_reverse_entry_over_rest(settings: Settings, tmp_path: Path) -> None:
    card = write_model(tmp_path, "both-gru", "gru", "next_token")
    card.bidirectional = True
    torch.manual_seed(2)
    model = SeqModel(config(card))
    card.checkpoints = []
    save_model(tmp_path, card, model)
    with TestClient(create_app(settings.model_copy(update={"models_dir": tmp_path}))) as c:
        r = c.post("/api/models/both-gru/jacobian", json={"text": "hello", "layer": 1})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["direction"] == "reverse"
        engine = jacobian_norms(model, [LETTERS.index(ch) for ch in "hello"], 1, "spectral").norms
        assert body["norms"] == [[None if math.isnan(v) else v for v in row] for row in engine.tolist()]
        assert body["norms"][4][0] is None and body["norms"][0][4] is not None
        r = c.post("/api/models/both-gru/jacobian", json={"text": "hello", "layer": 2})
        assert r.status_code == 422 and "2 layer entries (0 to 1, torch's order: l0, l0_reverse" in r.text, r.text
