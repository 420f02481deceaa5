"""Every REST endpoint through the app (TestClient): the status code first, then the body."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.engine.family import load_model
from app.engine.token.trace import trace
from app.web.app import create_app
from app.web.capacity.compute import Work
from app.web.config import Settings


def post_trace(client: TestClient, model_id: str, **body: Any) -> Any:
    return client.post(f"/api/models/{model_id}/trace", json=body)


def test_models_lists_every_loaded_model(client: TestClient) -> None:
    r = client.get("/api/models")
    assert r.status_code == 200
    models = {m["id"]: m for m in r.json()["models"]}
    assert set(models) == {"chars-lstm", "chars-gru", "chars-rnn", "words-lstm", "numbers-gru-attention",
                           "numbers-lstm-attention", "numbers-gru"}  # fmt: skip
    assert models["chars-gru"]["num_layers"] == 2
    assert models["words-lstm"]["kind"] == "classify"
    assert models["chars-lstm"]["vocab_size"] == 30


def test_model_card_has_vocab_gates_examples_and_checkpoints(client: TestClient) -> None:
    r = client.get("/api/models/chars-lstm")
    assert r.status_code == 200
    card = r.json()
    assert card["gates"] == ["input", "forget", "candidate", "output"]
    assert card["vocab"][0] == "<unk>" and card["labels"] is None
    assert [c["name"] for c in card["checkpoints"]] == ["0", "100"]
    assert card["examples"][0]["text"] == "hello world"
    classifier = client.get("/api/models/words-lstm").json()
    assert classifier["labels"] == ["negative", "positive"] and classifier["vocab"] is None
    assert classifier["target"] == "predicted" and card["target"] is None  # next-token models have no classes


def test_unknown_model_is_404_with_a_message_naming_the_models(client: TestClient) -> None:
    for r in (client.get("/api/models/nope"), post_trace(client, "nope", text="abc")):
        assert r.status_code == 404
        assert r.json()["error"] == "not_found"
        assert "chars-lstm" in r.json()["message"]


def test_trace_body_shapes_and_values_equal_the_engine(client: TestClient, settings: Settings) -> None:
    r = post_trace(client, "chars-gru", text="hello, world", top_k=3)
    assert r.status_code == 200
    body = r.json()
    T = len("hello, world")
    assert body["steps"] == T and body["tokens"] == list("hello, world")
    assert body["loss_mode"] == "sum" and body["cell"] == "gru"
    assert len(body["layers"]) == 2
    layer = body["layers"][1]
    assert np.array(layer["hidden"]).shape == (T, 16)
    assert layer["cell_state"] is None
    assert sorted(layer["gates"]) == ["candidate", "reset", "update"]
    assert len(body["predictions"]) == T and len(body["predictions"][0]) == 3
    assert body["loss"][-1] is None and all(x is not None for x in body["loss"][:-1])
    grads = body["grad_norms"]
    assert np.array(grads["hidden"]).shape == (2, T) and grads["cell_state"] is None
    # The body carries the engine's values exactly (full float32 when no precision is asked).
    tr = trace(load_model(settings.models_dir, "chars-gru"), "hello, world", top_k=3)
    np.testing.assert_array_equal(np.array(layer["hidden"], dtype=np.float32), tr.layers[1].hidden)
    np.testing.assert_array_equal(np.array(grads["input"]), tr.grad_input)
    assert body["total_loss"] == pytest.approx(tr.loss)


def test_lstm_trace_has_cell_state_and_its_gradient(client: TestClient) -> None:
    body = post_trace(client, "chars-lstm", text="abc", loss="last").json()
    assert np.array(body["layers"][0]["cell_state"]).shape == (3, 16)
    assert np.array(body["grad_norms"]["cell_state"]).shape == (1, 3)
    assert body["loss_mode"] == "last"


def test_classifier_trace_has_probs_per_step_and_a_label(client: TestClient) -> None:
    r = post_trace(client, "words-lstm", text="a good film, not bad", label="positive")
    assert r.status_code == 200
    body = r.json()
    assert body["tokens"] == ["a", "good", "film", ",", "not", "bad"]
    assert body["unknown"] == [3]  # "," is not in the vocabulary
    assert body["label"] == "positive" and body["label_source"] == "given" and body["loss_mode"] == "last"
    assert np.array(body["step_probs"]).shape == (6, 2)
    assert body["probs"] == body["step_probs"][-1]
    assert math.isclose(sum(body["probs"]), 1.0, rel_tol=1e-5)
    assert body["predictions"] is None
    # no label: the model's own answer, and the body says so
    own = post_trace(client, "words-lstm", text="a good film, not bad").json()
    assert own["label_source"] == "predicted" and own["label"] == ["negative", "positive"][int(np.argmax(own["probs"]))]
    assert post_trace(client, "chars-rnn", text="abc").json()["label_source"] is None


def test_precision_rounds_to_significant_digits(client: TestClient) -> None:
    full = post_trace(client, "chars-rnn", text="abcdef").json()
    short = post_trace(client, "chars-rnn", text="abcdef", precision=3).json()
    a, b = np.array(full["layers"][0]["hidden"]), np.array(short["layers"][0]["hidden"])
    np.testing.assert_allclose(b, a, rtol=5e-3)
    digits = [len(f"{abs(v):.6e}".split("e")[0].rstrip("0").replace(".", "")) for v in b.ravel()]
    assert max(digits) <= 3 < max(len(f"{abs(v):.6e}".split("e")[0].rstrip("0").replace(".", "")) for v in a.ravel())


def test_checkpoint_changes_the_weights_used(client: TestClient) -> None:
    first = post_trace(client, "chars-lstm", text="abc", checkpoint="0").json()
    last = post_trace(client, "chars-lstm", text="abc", checkpoint="100").json()
    default = post_trace(client, "chars-lstm", text="abc").json()
    assert first["checkpoint"] == "0"
    assert first["layers"][0]["hidden"] != last["layers"][0]["hidden"]
    assert last["layers"][0]["hidden"] == default["layers"][0]["hidden"]


@pytest.mark.parametrize(
    ("body", "status", "error", "phrase"),
    [
        ({"text": ""}, 422, "invalid", "text"),
        ({"text": "   "}, 200, None, None),
        ({"text": "a" * 3001}, 422, "over_limit", "limit is 3000 (max_steps)"),
        ({"text": "abc", "top_k": 0}, 422, "invalid", "top_k"),
        ({"text": "abc", "top_k": 21}, 422, "over_limit", "max_top_k"),
        ({"text": "abc", "checkpoint": "7"}, 404, "not_found", "choose one of"),
        ({"text": "abc", "checkpoint": "../../etc/passwd"}, 422, "invalid", "checkpoint"),
        ({"text": "abc", "label": "positive"}, 409, "wrong_model_kind", "classifiers only"),
        ({"text": "abc", "loss": "mean"}, 422, "invalid", "loss"),
        ({"text": "abc", "surprise": 1}, 422, "invalid", "surprise"),
        ({"text": 5}, 422, "invalid", "text"),
        ({}, 422, "invalid", "text"),
    ],
)
def test_bad_trace_requests_get_a_4xx_with_a_message(
    client: TestClient, body: dict[str, Any], status: int, error: str | None, phrase: str | None
) -> None:
    r = post_trace(client, "chars-lstm", **body)
    assert r.status_code == status, r.text
    if error is not None:
        assert r.json()["error"] == error
        assert phrase is not None and phrase in r.json()["message"]


def test_wrong_label_for_a_classifier_names_the_labels(client: TestClient) -> None:
    r = post_trace(client, "words-lstm", text="good", label="meh")
    assert r.status_code == 404
    assert "negative" in r.json()["message"]


def test_malformed_json_and_wrong_content_are_422(client: TestClient) -> None:
    r = client.post("/api/models/chars-lstm/trace", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid"
    r = client.post("/api/models/chars-lstm/trace", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_body_over_the_limit_is_413_before_it_is_read(settings: Settings) -> None:
    small = settings.model_copy(update={"max_body_bytes": 2048})
    with TestClient(create_app(small)) as c:
        r = c.post("/api/models/chars-lstm/trace", json={"text": "a" * 5000})
        assert r.status_code == 413
        assert "2048 bytes" in r.json()["message"]


def test_generate_writes_length_tokens_reproducibly(client: TestClient) -> None:
    body = {"prompt": "the ", "length": 20, "temperature": 1.0, "seed": 7}
    r = client.post("/api/models/chars-lstm/generate", json=body)
    assert r.status_code == 200
    out = r.json()
    assert out["text"] == "the " + out["generated"] and len(out["generated"]) == 20
    assert out["trace"]["steps"] == 24
    again = client.post("/api/models/chars-lstm/generate", json=body).json()
    assert again["generated"] == out["generated"]
    greedy = client.post("/api/models/chars-lstm/generate", json={**body, "temperature": 0, "seed": 1}).json()
    greedy2 = client.post("/api/models/chars-lstm/generate", json={**body, "temperature": 0, "seed": 2}).json()
    assert greedy["generated"] == greedy2["generated"]


def test_generate_limits_and_classifiers(client: TestClient) -> None:
    r = client.post("/api/models/chars-lstm/generate", json={"prompt": "a", "length": 2001})
    assert r.status_code == 422 and "max_generate" in r.json()["message"]
    r = client.post("/api/models/words-lstm/generate", json={"prompt": "good", "length": 5})
    assert r.status_code == 409 and "classifier" in r.json()["message"]
    r = client.post("/api/models/chars-lstm/generate", json={"prompt": "a", "temperature": "hot"})
    assert r.status_code == 422


def test_health_ready_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "models": None}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["models"] == 7
    client.get("/api/models")
    text = client.get("/metrics").text
    assert 'unrolled_requests_total{method="GET",route="/api/models",status="200"}' in text
    assert "unrolled_active_streams 0" in text
    assert 'unrolled_request_seconds_bucket{route="/api/models",le="+Inf"}' in text


def test_unknown_route_and_method_are_json_errors(client: TestClient) -> None:
    r = client.get("/api/nothing")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = client.put("/api/models/chars-lstm")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
    assert r.headers["allow"] == "DELETE, GET"  # every route of the path: GET, and DELETE (uploads)


def test_saturated_server_answers_503_with_retry_after(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"max_concurrent": 1, "max_queue": 0}))
    with TestClient(app) as c:
        assert c.portal is not None
        with c.portal.wrap_async_context_manager(app.state.compute.slot(Work("tester"))):  # the one slot is taken
            r = post_trace(c, "chars-lstm", text="abc")
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1" and r.json()["error"] == "busy"
        assert post_trace(c, "chars-lstm", text="abc").status_code == 200


def test_broken_model_files_are_skipped_not_fatal(tmp_path: Any, models_dir: Any, settings: Settings) -> None:
    import shutil

    shutil.copytree(models_dir, tmp_path, dirs_exist_ok=True)
    (tmp_path / "chars-rnn.safetensors").write_bytes(b"truncated")
    (tmp_path / "words-lstm.json").write_text("{ not a card")
    (tmp_path / "orphan.json").write_text('{"id": "orphan"}')
    card = (tmp_path / "chars-lstm.json").read_text().replace('"id": "chars-lstm"', '"id": "ghost"')
    (tmp_path / "ghost.json").write_text(card)  # a card whose weights file is missing
    with TestClient(create_app(settings.model_copy(update={"models_dir": tmp_path}))) as c:
        ids = {m["id"] for m in c.get("/api/models").json()["models"]}
        assert ids == {"chars-lstm", "chars-gru", "numbers-gru-attention", "numbers-lstm-attention", "numbers-gru"}
        assert c.get("/readyz").status_code == 200
        home = c.get("/").text  # says which files were skipped and why, without the server's own paths
        assert "chars-rnn" in home and "ghost" in home and str(tmp_path) not in home


def test_requests_wait_in_a_bounded_line_for_a_slot(settings: Settings) -> None:
    """One slot, one place in line: the second request waits and succeeds; the third, a different request, is
    refused (an identical one would join the waiting computation: app/web/capacity/shared.py)."""
    import threading
    import time

    app = create_app(settings.model_copy(update={"max_concurrent": 1, "max_queue": 1}))
    with TestClient(app) as c:
        assert c.portal is not None
        results: list[int] = []
        with c.portal.wrap_async_context_manager(app.state.compute.slot(Work("tester"))):
            waiter = threading.Thread(target=lambda: results.append(post_trace(c, "chars-lstm", text="ab").status_code))
            waiter.start()
            deadline = time.monotonic() + 60
            while app.state.compute.admitted < 2:  # the waiter has taken its place in line
                assert time.monotonic() < deadline, "the waiter never took its place in line"
                waiter.join(0.01)
            assert post_trace(c, "chars-lstm", text="abc").status_code == 503
            assert results == []  # still waiting while the slot is held
        waiter.join(10)
        assert results == [200]


def test_a_prompt_is_limited_by_the_steps_it_reads_as_not_its_characters(client: TestClient) -> None:
    # "İ" lower-cases to two characters (i and a combining dot): 999 characters read as 1998 steps, and with
    # 2000 more to write that is over max_steps (3000), though the characters are within the prompt's limit.
    r = client.post("/api/models/chars-lstm/generate", json={"prompt": "İ" * 999, "length": 2000})
    assert r.status_code == 422
    assert r.json()["error"] == "over_limit" and "1998 steps" in r.json()["message"]
    assert client.post("/api/models/chars-lstm/generate", json={"prompt": "İ" * 400, "length": 2000}).status_code == 200


def test_every_zoo_card_is_served(settings: Settings) -> None:
    """Every model in the repository's zoo (notes, numbers, translators included) has a card over the API."""
    from app.web.config import ROOT

    with TestClient(create_app(settings.model_copy(update={"models_dir": ROOT / "models"}))) as c:
        models = c.get("/api/models")
        assert models.status_code == 200
        ids = [m["id"] for m in models.json()["models"]]
        assert {"melody-lstm", "sunspots-gru", "numbers-gru-attention", "charlm-lstm"} <= set(ids)
        for model_id in ids:
            r = c.get(f"/api/models/{model_id}")
            assert r.status_code == 200, (model_id, r.text[:200])
