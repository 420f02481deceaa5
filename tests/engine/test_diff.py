"""Change one token (app/engine/lab/diff.py, POST /api/models/{id}/diff): against two independent traces, against
torch.nn's cells in float64, the memory lesson on the real zoo, and bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from torch import nn

from app.engine.card import ModelCard, save_model
from app.engine.family import load_model
from app.engine.lab.diff import TokenCountMismatch, diff_ids
from app.engine.token.card import TokenCard, config
from app.engine.token.model import ModelConfig, SeqModel
from app.engine.token.trace import trace
from app.web.app import create_app
from app.web.config import ROOT, Settings
from tests.conftest import LETTERS, WORDS, write_model

CELLS = ["rnn", "lstm", "gru"]
# Trace states are float32 (a relative error of ~6e-8 a value); the diff runs in float64.
TRACE_TOL = 2e-5


def write_bidirectional(folder: Path, model_id: str, cell: str, kind: str) -> None:
    """A 2-layer bidirectional model file and card, random weights (seeded), scaled up so gates saturate now and
    then as in a trained model."""
    word = kind == "classify"
    tokens = WORDS if word else LETTERS
    labels = ["negative", "positive"] if word else None
    card = ModelCard(
        id=model_id, task="test", cell=cell, kind=kind, hidden_size=12, num_layers=2,  # type: ignore[arg-type]
        vocab={"level": "word" if word else "char", "case": "lower", "tokens": tokens},
        block=TokenCard(embed_size=8, labels=labels),
        bidirectional=True, description=f"a bidirectional test {cell}",
    )  # fmt: skip
    torch.manual_seed(sum(map(ord, model_id)))
    model = SeqModel(config(card))
    for p in model.parameters():
        p.data.mul_(1.5)
    save_model(folder, card, model)


@pytest.fixture(scope="module")
def lab_client(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("diff-models")
    write_model(folder, "chars-lstm", "lstm", "next_token")
    write_model(folder, "chars-gru", "gru", "next_token", layers=2)
    write_model(folder, "words-rnn", "rnn", "classify", layers=2)
    write_bidirectional(folder, "bi-lstm", "lstm", "next_token")
    write_bidirectional(folder, "bi-gru", "gru", "classify")
    write_bidirectional(folder, "bi-rnn", "rnn", "next_token")
    with TestClient(create_app(settings.model_copy(update={"models_dir": folder}))) as c:
        yield c


@pytest.fixture(scope="module")
def zoo_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"models_dir": ROOT / "models"}))) as c:
        yield c


def norms(a: list[Any], b: list[Any]) -> NDArray[np.float64]:
    diff: NDArray[np.float64] = np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=1)
    return diff


PAIRS = {
    "chars-lstm": ("hello world", "jello world"),
    "chars-gru": ("the cat sat on the mat", "the cat sat in the mat"),
    "words-rnn": ("a good film , not bad", "a bad film , not bad"),
    "bi-lstm": ("abcdefghij", "abcdxfghij"),
    "bi-gru": ("a very good plot . great", "a very bad plot . great"),
    "bi-rnn": ("zyxwvu", "zyxwvz"),
}


@pytest.mark.parametrize("model_id", list(PAIRS))
def test_diff_is_two_traces_subtracted(lab_client: TestClient, tmp_path: Path, model_id: str) -> None:
    """States from two REST traces, subtracted, are state_change and cell_change (every entry, both directions);
    the two engine traces' full distributions give prediction_change."""
    text, edited = PAIRS[model_id]
    r = lab_client.post(f"/api/models/{model_id}/diff", json={"text": text, "edited": edited})
    assert r.status_code == 200, r.text
    d = r.json()
    a = lab_client.post(f"/api/models/{model_id}/trace", json={"text": text}).json()
    b = lab_client.post(f"/api/models/{model_id}/trace", json={"text": edited}).json()
    assert d["tokens"] == a["tokens"] and d["edited_tokens"] == b["tokens"]
    assert d["changed"] == [t for t, (x, y) in enumerate(zip(a["tokens"], b["tokens"], strict=True)) if x != y]
    assert d["changed"]
    assert d["directions"] == [layer["direction"] for layer in a["layers"]]
    assert len(d["state_change"]) == len(a["layers"])
    for j, (la, lb) in enumerate(zip(a["layers"], b["layers"], strict=True)):
        np.testing.assert_allclose(d["state_change"][j], norms(la["hidden"], lb["hidden"]), atol=TRACE_TOL)
        if la["cell_state"] is None:
            assert d["cell_change"] is None
        else:
            np.testing.assert_allclose(d["cell_change"][j], norms(la["cell_state"], lb["cell_state"]), atol=TRACE_TOL)
    loaded = lab_client.app.state.zoo.get(model_id)  # type: ignore[attr-defined]
    pa, pb = trace(loaded, text).probs, trace(loaded, edited).probs
    np.testing.assert_allclose(d["prediction_change"], 0.5 * np.abs(pa - pb).sum(axis=1), atol=1e-6)
    first = d["changed"][0]
    assert max(d["prediction_change"][first:]) > 1e-3  # the change is seen (all these models are random)
    assert all(p == 0 for p in d["prediction_change"][:first]) == (
        d["directions"] == ["forward"] * len(d["directions"])
    )


def torch_states(model: SeqModel, ids: list[int]) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Every entry's h_t and c_t (input time) and the head's probabilities, from torch.nn's own cells stepped one
    step at a time (a reverse direction: over the input reversed), float64; the top layer checked against the whole
    torch.nn module's output."""
    cfg = model.config
    D, H = cfg.directions, cfg.hidden_size
    cell_class = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[cfg.cell]
    x = model.embedding(torch.tensor(ids))
    hidden: list[torch.Tensor] = []
    cells: list[torch.Tensor] = []
    for k in range(cfg.num_layers):
        outs = []
        for d in range(D):
            suffix = f"_l{k}" + ("_reverse" if d else "")
            one = cell_class(x.shape[1], H, dtype=torch.float64)
            one.load_state_dict({name: getattr(model.rnn, f"{name}{suffix}") for name in
                                 ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})  # fmt: skip
            h = torch.zeros(1, H, dtype=torch.float64)
            c = torch.zeros(1, H, dtype=torch.float64)
            hs, cs = [], []
            order = range(len(ids) - 1, -1, -1) if d else range(len(ids))
            for t in order:
                if cfg.cell == "lstm":
                    h, c = one(x[t : t + 1], (h, c))
                else:
                    h = one(x[t : t + 1], h)
                hs.append(h[0])
                cs.append(c[0])
            hs_t, cs_t = torch.stack(hs), torch.stack(cs)
            if d:
                hs_t, cs_t = hs_t.flip(0), cs_t.flip(0)
            hidden.append(hs_t)
            cells.append(cs_t)
            outs.append(hs_t)
        x = torch.cat(outs, dim=1)
    whole, _ = model.rnn(model.embedding(torch.tensor(ids))[None])
    torch.testing.assert_close(whole[0], x, rtol=1e-12, atol=1e-12)
    return hidden, cells, torch.softmax(model.head(x), dim=-1)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("bidirectional", "kind"), [(False, "next_token"), (True, "classify")])
@torch.no_grad()
def test_diff_matches_torch_nn_in_float64(cell: str, bidirectional: bool, kind: str) -> None:
    torch.manual_seed(len(cell) + 7 * bidirectional)
    outputs = 11 if kind == "next_token" else 3
    model = SeqModel(ModelConfig(cell, kind, 11, outputs, 8, 16, 2, bidirectional))  # type: ignore[arg-type]
    for p in model.parameters():
        p.data.mul_(1.5)
    ids = torch.randint(1, 11, (25,), generator=torch.Generator().manual_seed(2)).tolist()
    edited = list(ids)
    edited[6] = ids[6] % 10 + 1
    edited[15] = ids[15] % 10 + 1
    d = diff_ids(model, ids, edited)
    m64 = model.double()
    ha, ca, pa = torch_states(m64, ids)
    hb, cb, pb = torch_states(m64, edited)
    assert d.changed == [6, 15]
    assert d.directions == (["forward", "reverse"] if bidirectional else ["forward"]) * 2
    state_change = torch.stack([(a - b).norm(dim=1) for a, b in zip(ha, hb, strict=True)])
    np.testing.assert_allclose(d.state_change, state_change, rtol=1e-9, atol=1e-12)
    if cell == "lstm":
        assert d.cell_change is not None
        cell_change = torch.stack([(a - b).norm(dim=1) for a, b in zip(ca, cb, strict=True)])
        np.testing.assert_allclose(d.cell_change, cell_change, rtol=1e-9, atol=1e-12)
    else:
        assert d.cell_change is None
    np.testing.assert_allclose(d.prediction_change, 0.5 * (pa - pb).abs().sum(dim=1), rtol=1e-9, atol=1e-12)
    # In the first layer, no forward state moves before the first change and no reverse state after the last (the
    # layer above reads both directions, so in it the change reaches every step).
    first_layer = d.state_change[: model.config.directions]
    for direction, change in zip(d.directions, first_layer, strict=False):
        if direction == "forward":
            assert not change[:6].any() and change[6] > 0
        else:
            assert not change[16:].any() and change[15] > 0
    if bidirectional:
        assert (d.state_change[2:] > 0).all()


def test_identical_inputs_change_nothing(lab_client: TestClient) -> None:
    d = lab_client.post("/api/models/bi-lstm/diff", json={"text": "same text", "edited": "same text"}).json()
    assert d["changed"] == []
    assert not np.any(d["state_change"]) and not np.any(d["cell_change"]) and not np.any(d["prediction_change"])


MEMORY = (
    "C 9668578203 2890481714 8332729445 5559877639 4281861040 1594898645 2432900196 8273406861 5298159876 0740257568 ?"
)


def test_a_changed_symbol_persists_in_the_lstm_and_fades_in_the_rnn(zoo_client: TestClient) -> None:
    """The memory card's 100-digit example with its first symbol changed, C → F (measured): memory-lstm's last-step
    state change is 8.89 (memory-gru's 8.74) and its answer changes entirely (total variation 0.9997); memory-rnn's
    falls from 7.3 at step 10 to 1.4e-4 at step 30 and 3.9e-12 at step 40, and by step 50 its two states are equal
    to the last bit of float64: 0 at the last step, and its answer does not change at all."""
    edited = "F" + MEMORY[1:]
    got = {}
    for cell in CELLS:
        r = zoo_client.post(f"/api/models/memory-{cell}/diff", json={"text": MEMORY, "edited": edited})
        assert r.status_code == 200, r.text
        got[cell] = r.json()
        assert got[cell]["changed"] == [0]
    rnn, lstm, gru = got["rnn"], got["lstm"], got["gru"]
    assert lstm["state_change"][0][-1] > 5 and gru["state_change"][0][-1] > 5
    assert lstm["prediction_change"][-1] > 0.99 and gru["prediction_change"][-1] > 0.99
    assert lstm["cell_change"][0][-1] > 5
    assert rnn["state_change"][0][10] > 1  # the RNN read the change: it was not blind to it
    assert rnn["state_change"][0][40] < 1e-9 and rnn["state_change"][0][-1] < 1e-12
    assert rnn["prediction_change"][-1] < 1e-12


def test_translation_and_series_models_are_409(client: TestClient, zoo_client: TestClient) -> None:
    r = client.post("/api/models/numbers-gru/diff", json={"text": "twenty-one", "edited": "twenty-two"})
    assert r.status_code == 409 and "translate" in r.json()["message"]
    r = zoo_client.post("/api/models/sunspots-rnn/diff", json={"text": "1 2", "edited": "1 3"})
    assert r.status_code == 409 and "series" in r.json()["message"]


def test_a_token_count_mismatch_is_a_422_naming_both_counts(client: TestClient) -> None:
    r = client.post("/api/models/chars-lstm/diff", json={"text": "hello", "edited": "hell"})
    assert r.status_code == 422
    assert "5 tokens" in r.json()["message"] and "edited as 4" in r.json()["message"]
    r = client.post("/api/models/words-lstm/diff", json={"text": "a good film", "edited": "a good good film"})
    assert r.status_code == 422 and "3 tokens" in r.json()["message"] and "as 4" in r.json()["message"]
    with pytest.raises(TokenCountMismatch):
        diff_ids(load_model(ROOT / "models", "alphabet-rnn").model, [1, 2], [1])  # type: ignore[arg-type]


def test_tokens_are_read_as_the_trace_reads_them(client: TestClient, zoo_client: TestClient) -> None:
    """An unknown character is the unknown token in both (listed, no error); a note a melody model lacks is the
    trace's own 422."""
    d = client.post("/api/models/chars-lstm/diff", json={"text": "ab!", "edited": "abc"}).json()
    assert d["tokens"] == ["a", "b", "!"] and d["changed"] == [2]
    bad = "C4:1 C#9:1"
    trace_error = zoo_client.post("/api/models/melody-rnn/trace", json={"text": bad})
    r = zoo_client.post("/api/models/melody-rnn/diff", json={"text": bad, "edited": "C4:1 D4:1"})
    assert trace_error.status_code == r.status_code == 422
    assert r.json() == trace_error.json()
    r = zoo_client.post("/api/models/melody-rnn/diff", json={"text": "C4:1 D4:1", "edited": bad})
    assert r.status_code == 422 and "edited melody" in r.json()["message"] and "C#9:1" in r.json()["message"]


def test_checkpoints(client: TestClient) -> None:
    body = {"text": "hello", "edited": "jello", "checkpoint": "0"}
    d = client.post("/api/models/chars-lstm/diff", json=body).json()
    loaded = client.app.state.zoo.get("chars-lstm")  # type: ignore[attr-defined]
    vocab = loaded.vocab
    expected = diff_ids(loaded.checkpoints["0"], vocab.encode("hello").ids, vocab.encode("jello").ids)
    np.testing.assert_allclose(d["state_change"], expected.state_change, rtol=1e-12)
    final = diff_ids(loaded.model, vocab.encode("hello").ids, vocab.encode("jello").ids)
    assert not np.allclose(final.state_change, expected.state_change)
    r = client.post("/api/models/chars-lstm/diff", json={**body, "checkpoint": "7"})
    assert r.status_code == 404 and "checkpoint" in r.json()["message"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"text": "hello"}, "edited"),
        ({"edited": "hello"}, "text"),
        ({"text": "", "edited": ""}, "text"),
        ({"text": "a", "edited": "b", "label": "x"}, "label"),
        ({"text": "a", "edited": "b", "checkpoint": "../x"}, "checkpoint"),
        ({"text": 5, "edited": "b"}, "text"),
    ],
)
def test_bad_bodies_are_422s_naming_the_field(client: TestClient, body: dict[str, Any], named: str) -> None:
    r = client.post("/api/models/chars-lstm/diff", json=body)
    assert r.status_code == 422 and named in r.json()["message"]


def test_too_long_is_a_422_naming_max_steps(client: TestClient, settings: Settings) -> None:
    long = "a" * (settings.max_steps + 1)
    r = client.post("/api/models/chars-lstm/diff", json={"text": long, "edited": long})
    assert r.status_code == 422 and "max_steps" in r.json()["message"]


def test_unknown_model_is_404(client: TestClient) -> None:
    assert client.post("/api/models/nope/diff", json={"text": "a", "edited": "b"}).status_code == 404


def test_the_schema_states_the_limits(client: TestClient, settings: Settings) -> None:
    props = client.get("/openapi.json").json()["components"]["schemas"]["DiffRequest"]["properties"]
    assert props["text"]["maxLength"] == props["edited"]["maxLength"] == settings.max_steps
