"""Translation over the API: REST trace and translate, and the stream against a real uvicorn, all the engine's
values, in the issue's shapes; every misuse a clear 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import torch
from fastapi.testclient import TestClient
from websockets.sync.client import connect

from app.engine.family import load_model
from app.engine.translation.card import translation_card
from app.engine.translation.trace import trace_translation, translate
from app.wire.decode import grad_arrays, sections, step_arrays
from tests.conftest import LiveServer

MODELS = ["numbers-gru-attention", "numbers-lstm-attention", "numbers-gru"]
TEXT = "three hundred and twenty-one"


@pytest.mark.parametrize("model_id", MODELS)
def test_trace_of_a_given_target_holds_both_sides_and_equals_the_engine(
    client: TestClient, settings: Any, model_id: str
) -> None:
    r = client.post(f"/api/models/{model_id}/trace", json={"text": TEXT, "target": "dreih"})
    assert r.status_code == 200, r.text
    body = r.json()
    loaded = load_model(settings.models_dir, model_id)
    # with the server's torch threads: a GRU's float32 states differ in their last bit between 1 and 2 threads
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads_per_worker())
    try:
        tr = trace_translation(loaded, TEXT, "dreih", allow_unknown=True)
    finally:
        torch.set_num_threads(threads)
    J, T = len(tr.source_ids), len(tr.target_ids)
    assert body["kind"] == "translate" and body["target_source"] == "given"
    assert body["target_tokens"] == [*"dreih", "</s>"] and (body["source_steps"], body["target_steps"]) == (J, T)
    assert body["source_tokens"] == ["three", "hundred", "and", "twenty", "-", "one"]
    assert body["decoder"]["tokens"] == ["<s>", *"dreih"]
    for side, trace_side, steps in (("encoder", tr.encoder, J), ("decoder", tr.decoder, T)):
        layers = body[side]["layers"]
        assert len(layers) == loaded.card.num_layers
        for got, want in zip(layers, trace_side.layers, strict=True):
            np.testing.assert_array_equal(np.array(got["hidden"], np.float32), want.hidden)
            assert set(got["gates"]) == set(want.gates) and len(got["hidden"]) == steps
            assert (got["cell_state"] is None) == (want.cell_state is None)
        norms = body["grad_norms"][side]
        np.testing.assert_allclose(norms["hidden"], [layer.grad_hidden for layer in trace_side.layers], rtol=1e-15)
    attention = body["attention"]
    if translation_card(loaded.card).attention:
        assert np.array(attention).shape == (T, J)
        np.testing.assert_allclose(np.array(attention).sum(1), 1, atol=1e-5)
        assert len(body["grad_norms"]["encoder"]["via_attention"]) == J
    else:
        assert attention is None and body["grad_norms"]["encoder"]["via_attention"] is None
    assert body["total_loss"] == pytest.approx(sum(body["loss"]), rel=1e-6)
    assert len(body["decoder"]["predictions"]) == T and len(body["decoder"]["predictions"][0]) == 5


def test_trace_without_a_target_is_the_models_own_greedy_output(client: TestClient) -> None:
    traced = client.post("/api/models/numbers-gru-attention/trace", json={"text": TEXT}).json()
    translated = client.post("/api/models/numbers-gru-attention/translate", json={"text": TEXT}).json()
    assert traced["target_source"] == "greedy"
    assert traced["output"] == translated["output"] == translated["beams"][0]["output"]
    assert traced["target_tokens"] == translated["trace"]["target_tokens"]


@pytest.mark.parametrize("model_id", MODELS)
def test_translate_lists_every_beam_best_first_and_scores_the_best(
    client: TestClient, settings: Any, model_id: str
) -> None:
    r = client.post(f"/api/models/{model_id}/translate", json={"text": TEXT, "beam": 4, "top_k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    scores = [b["score"] for b in body["beams"]]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True)
    assert body["output"] == body["beams"][0]["output"]
    assert body["trace"]["total_loss"] == pytest.approx(-scores[0], rel=1e-5)  # the best beam, teacher-forced
    engine = translate(load_model(settings.models_dir, model_id), TEXT, beam=4, top_k=3)
    assert [b.output for b in engine.beams] == [b["output"] for b in body["beams"]]


def test_a_forced_prefix_starts_the_output(client: TestClient) -> None:
    body = client.post("/api/models/numbers-gru-attention/translate", json={"text": TEXT, "prefix": "zwei"}).json()
    assert body["output"].startswith("zwei") and body["trace"]["prefix_length"] == 4


def test_unknown_source_words_are_read_as_unknown_and_named_by_position(client: TestClient) -> None:
    body = client.post("/api/models/numbers-gru/trace", json={"text": "one zillion two"}).json()
    assert body["unknown"] == [1] and body["source_tokens"][1] == "zillion"


@pytest.mark.parametrize(
    ("path", "model_id", "json", "status", "words"),
    [
        ("generate", "numbers-gru", {"prompt": "one"}, 409, "translate"),
        ("translate", "words-lstm", {"text": "a good film"}, 409, "not a translation model"),
        ("translate", "chars-lstm", {"text": "hello"}, 409, "not a translation model"),
        ("trace", "chars-lstm", {"text": "hello", "target": "x"}, 409, "target"),
        ("translate", "numbers-gru", {"text": "   "}, 422, "empty"),
        ("translate", "numbers-gru", {"text": "one " * 600}, 422, "max_source_steps"),
        ("translate", "numbers-gru", {"text": "one", "beam": 9}, 422, "beam"),
        ("translate", "numbers-gru", {"text": "one", "top_k": 1000}, 422, "max_top_k"),
        ("translate", "numbers-gru", {"text": "one", "max_length": 3, "prefix": "zweizwei"}, 422, "max_length"),
        ("trace", "numbers-gru", {"text": "one", "target": "e" * 1001}, 422, "target"),
        ("translate", "nothing", {"text": "one"}, 404, "nothing"),
    ],
)
def test_misuse_is_a_clear_4xx(
    client: TestClient, path: str, model_id: str, json: dict[str, Any], status: int, words: str
) -> None:
    r = client.post(f"/api/models/{model_id}/{path}", json=json)
    assert r.status_code == status, r.text
    assert words in r.json()["message"]


def test_the_card_says_how_it_translates(client: TestClient) -> None:
    card = client.get("/api/models/numbers-lstm-attention").json()
    assert card["kind"] == "translate" and card["attention"] is True and card["max_length"] == 24
    assert card["target_vocab"][:3] == ["<unk>", "<s>", "</s>"] and "softmax" in card["equations"]
    assert client.get("/api/models/numbers-gru").json()["attention"] is False


# --- the stream, against a real uvicorn -------------------------------------------------------------------------


def stream(live: LiveServer, model_id: str, request: dict[str, Any]) -> Iterator[str | bytes]:
    with connect(f"{live.ws_url}/api/models/{model_id}/stream", max_size=2**24) as ws:
        ws.send(orjson.dumps(request).decode())
        while True:
            message = ws.recv(timeout=30)
            yield message
            parsed = orjson.loads(message) if isinstance(message, str) else None
            if isinstance(parsed, dict) and parsed["type"] in ("done", "error"):
                return


def frames(messages: Iterator[str | bytes]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        parsed = orjson.loads(m)
        out += parsed if isinstance(parsed, list) else [parsed]
    return out


@pytest.mark.parametrize("model_id", ["numbers-lstm-attention", "numbers-gru"])
@pytest.mark.parametrize("batch", [1, 4])
def test_the_stream_sends_both_sides_in_order_with_the_rest_bodys_values(
    live: LiveServer, model_id: str, batch: int
) -> None:
    request = {"mode": "translate", "text": TEXT, "beam": 3, "precision": 6, "states": "all"}
    rest = httpx.post(f"{live.url}/api/models/{model_id}/translate", json={"text": TEXT, "beam": 3, "precision": 6},
                      timeout=30).json()  # fmt: skip
    body = rest["trace"]
    got = frames(stream(live, model_id, request | {"batch": batch}))
    J, T = body["source_steps"], body["target_steps"]
    assert [f["type"] for f in got] == (["meta"] + ["encoder_step"] * J + ["decoder_step"] * T
                                        + ["decoder_grad"] * T + ["encoder_grad"] * J + ["done"])  # fmt: skip
    meta, done = got[0], got[-1]
    assert meta["source_tokens"] == body["source_tokens"] and meta["target_tokens"] == body["target_tokens"]
    assert [b["output"] for b in done["beams"]] == [b["output"] for b in rest["beams"]]
    enc = [f for f in got if f["type"] == "encoder_step"]
    dec = [f for f in got if f["type"] == "decoder_step"]
    assert [f["t"] for f in enc] == list(range(J)) and [f["t"] for f in dec] == list(range(T))
    for k, layer in enumerate(body["encoder"]["layers"]):
        assert [f["layers"][k]["hidden"] for f in enc] == layer["hidden"]
    for k, layer in enumerate(body["decoder"]["layers"]):
        assert [f["layers"][k]["gates"] for f in dec] == [
            {n: g[t] for n, g in layer["gates"].items()} for t in range(T)
        ]
    assert [f["attention"] for f in dec] == (body["attention"] or [None] * T)
    assert [f["prediction"] for f in dec] == body["decoder"]["predictions"]
    dgrads = [f for f in got if f["type"] == "decoder_grad"]
    egrads = [f for f in got if f["type"] == "encoder_grad"]
    assert [f["t"] for f in dgrads] == list(range(T - 1, -1, -1))  # BPTT: last step first
    assert [f["t"] for f in egrads] == list(range(J - 1, -1, -1))
    norms = body["grad_norms"]
    assert [f["hidden"] for f in reversed(egrads)] == [list(x) for x in zip(*norms["encoder"]["hidden"], strict=True)]
    assert [f["via_attention"] for f in reversed(egrads)] == (norms["encoder"]["via_attention"] or [None] * J)


def test_the_binary_stream_holds_the_same_values(live: LiveServer) -> None:
    request = {"mode": "translate", "text": TEXT, "encoding": "binary", "batch": 3, "states": "all"}
    messages = list(stream(live, "numbers-lstm-attention", request))
    meta = orjson.loads(messages[0])
    body = frames(iter([messages[-1]]))[0]
    assert meta["encoding"] == "binary" and body["type"] == "done"
    J, T = meta["source_steps"], meta["target_steps"]
    sizes, layouts = meta["record_bytes"], meta["layouts"]
    blob = b"".join(m for m in messages[1:-1] if isinstance(m, bytes))
    encoder, decoder, decoder_grad, encoder_grad = sections(
        blob, [(J, sizes["encoder_step"]), (T, sizes["decoder_step"]), (T, sizes["decoder_grad"]),
               (J, sizes["encoder_grad"])]
    )  # fmt: skip
    rest = httpx.post(f"{live.url}/api/models/numbers-lstm-attention/translate", json={"text": TEXT}).json()["trace"]
    enc = step_arrays(encoder, layouts["encoder_step"], J)
    dec = step_arrays(decoder, layouts["decoder_step"], T)
    for side, arrays in (("encoder", enc), ("decoder", dec)):
        for k, layer in enumerate(rest[side]["layers"]):
            np.testing.assert_array_equal(arrays[f"layers.{k}.hidden"], np.array(layer["hidden"], np.float32))
            np.testing.assert_array_equal(arrays[f"layers.{k}.cell_state"], np.array(layer["cell_state"], np.float32))
            for name, gate in layer["gates"].items():
                np.testing.assert_array_equal(arrays[f"layers.{k}.gates.{name}"], np.array(gate, np.float32))
    np.testing.assert_array_equal(dec["attention"], np.array(rest["attention"], np.float32))
    norms = rest["grad_norms"]
    for side, blob_, steps in (("decoder", decoder_grad, T), ("encoder", encoder_grad, J)):
        grads = grad_arrays(blob_, layouts[f"{side}_grad"], steps)
        assert [grads[f"hidden.{k}"].tolist() for k in range(meta["num_layers"])] == norms[side]["hidden"]
    assert (
        grad_arrays(encoder_grad, layouts["encoder_grad"], J)["via_attention"].tolist()
        == norms["encoder"]["via_attention"]
    )


def test_the_pages_stream_carries_the_hidden_states_only(live: LiveServer) -> None:
    """What the translation page reads, and no more: by default a translate stream's step frames and records hold
    each layer's hidden states, no cell state and no gate (an LSTM's would be five times as many values)."""
    request = {"text": TEXT, "beam": 2, "precision": 4}
    rest = httpx.post(f"{live.url}/api/models/numbers-lstm-attention/translate", json=request).json()["trace"]
    request["mode"] = "translate"
    got = frames(stream(live, "numbers-lstm-attention", request))
    enc = [f for f in got if f["type"] == "encoder_step"]
    dec = [f for f in got if f["type"] == "decoder_step"]
    assert all(list(layer) == ["hidden"] for f in enc + dec for layer in f["layers"])
    for side, steps in (("encoder", enc), ("decoder", dec)):
        for k, layer in enumerate(rest[side]["layers"]):
            assert [f["layers"][k]["hidden"] for f in steps] == layer["hidden"]
    messages = list(stream(live, "numbers-lstm-attention", request | {"encoding": "binary"}))
    layouts = orjson.loads(messages[0])["layouts"]
    for section in ("encoder_step", "decoder_step"):
        states = [f["name"] for f in layouts[section] if f["name"].startswith("layers.")]
        assert states == [f"layers.{k}.hidden" for k in range(len(rest["encoder"]["layers"]))]


def test_a_stream_of_the_wrong_kind_is_closed_with_an_error(live: LiveServer) -> None:
    got = frames(stream(live, "numbers-gru", {"mode": "generate", "prompt": "one"}))
    assert got[-1]["type"] == "error" and got[-1]["error"] == "wrong_model_kind"
    got = frames(stream(live, "chars-lstm", {"mode": "translate", "text": "hello"}))
    assert got[-1]["type"] == "error" and got[-1]["error"] == "wrong_model_kind"
