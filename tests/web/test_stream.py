"""The WebSocket stream against a real uvicorn on a loopback port."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from app.web.config import Settings
from app.wire.decode import grad_arrays, record_bytes, step_arrays
from tests.conftest import LiveServer, write_model


def open_stream(live: LiveServer, model_id: str) -> ClientConnection:
    return connect(f"{live.ws_url}/api/models/{model_id}/stream", max_size=2**24, open_timeout=10)


def run_stream(live: LiveServer, model_id: str, request: dict[str, Any]) -> list[dict[str, Any]]:
    return [frame for message in stream_messages(live, model_id, request) for frame in message]


def stream_messages(live: LiveServer, model_id: str, request: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Each WebSocket message's frames: one, or a JSON array of them when the request sets a batch."""
    messages = []
    with open_stream(live, model_id) as ws:
        ws.send(orjson.dumps(request).decode())
        while True:
            message = orjson.loads(ws.recv(timeout=30))
            messages.append(message if isinstance(message, list) else [message])
            if messages[-1][-1]["type"] in ("done", "error"):
                break
    return messages


def expect_error(live: LiveServer, model_id: str, message: str | bytes | None) -> tuple[dict[str, Any], int]:
    """Send a raw message; return the error frame and the close code."""
    with open_stream(live, model_id) as ws:
        if message is not None:
            ws.send(message)
        frame = orjson.loads(ws.recv(timeout=30))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None
        return frame, closed.value.rcvd.code


def server_gauges(live: LiveServer) -> dict[str, float]:
    text = httpx.get(f"{live.url}/metrics").text
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith(("unrolled_active_streams", "unrolled_computations_in_flight"))
    }


def wait_idle(live: LiveServer, within: float) -> dict[str, float]:
    deadline = time.monotonic() + within
    while True:
        gauges = server_gauges(live)
        if not any(gauges.values()) or time.monotonic() > deadline:
            return gauges
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("model_id", "request_body"),
    [
        ("chars-lstm", {"text": "hello, world"}),
        ("chars-gru", {"text": "two layers of gru", "loss": "last", "top_k": 4}),
        ("chars-rnn", {"text": "plain rnn", "precision": 4}),
        ("words-lstm", {"text": "a very good film", "label": "negative"}),
    ],
)
def test_frames_equal_the_rest_trace_value_for_value(
    live: LiveServer, model_id: str, request_body: dict[str, Any]
) -> None:
    body = httpx.post(f"{live.url}/api/models/{model_id}/trace", json=request_body, timeout=30).json()
    frames = run_stream(live, model_id, request_body)
    T = body["steps"]
    assert [f["type"] for f in frames] == ["meta"] + ["step"] * T + ["grad"] * T + ["done"]
    meta = frames[0]
    for key in ("tokens", "token_ids", "unknown", "steps", "cell", "loss_mode", "total_loss", "label", "checkpoint"):
        assert meta[key] == body[key], key
    steps, grads = frames[1 : T + 1], frames[T + 1 : 2 * T + 1]
    for t, frame in enumerate(steps):
        assert frame["t"] == t and frame["token"] == body["tokens"][t]
        assert frame["loss"] == body["loss"][t]
        for k, layer in enumerate(frame["layers"]):
            want = body["layers"][k]
            assert layer["hidden"] == want["hidden"][t]
            assert layer["cell_state"] == (None if want["cell_state"] is None else want["cell_state"][t])
            assert layer["gates"] == {name: v[t] for name, v in want["gates"].items()}
        if body["kind"] == "classify":
            assert frame["probs"] == body["step_probs"][t]
        else:
            assert frame["prediction"] == body["predictions"][t]
    # The BPTT sweep runs from the last step back to the first.
    assert [g["t"] for g in grads] == list(range(T - 1, -1, -1))
    norms = body["grad_norms"]
    for g in grads:
        t = g["t"]
        assert g["hidden"] == [layer[t] for layer in norms["hidden"]]
        assert g["input"] == norms["input"][t]
        assert g["weight_hh"] == [layer[t] for layer in norms["weight_hh"]]
        assert g["cell_state"] == (None if norms["cell_state"] is None else [layer[t] for layer in norms["cell_state"]])


@pytest.mark.parametrize(("model_id", "batch"), [("chars-gru", 7), ("words-lstm", 64)])
def test_json_batches_carry_the_same_frames_in_arrays(live: LiveServer, model_id: str, batch: int) -> None:
    req = {"text": "a very good film, and a long one " * 3}
    single = stream_messages(live, model_id, req)
    batched = stream_messages(live, model_id, {**req, "batch": batch})
    assert all(len(m) == 1 for m in single)
    assert [f for m in batched for f in m] == [
        {**m[0], "batch": batch} if m[0]["type"] == "meta" else m[0] for m in single
    ]
    T = single[0][0]["steps"]
    sweep = [batch] * (T // batch) + [T % batch] * (T % batch > 0)  # T frames, `batch` to a message
    assert [len(m) for m in batched] == [1, *sweep, *sweep, 1]  # meta, steps, grads, done


def test_generate_mode_streams_each_sampled_step_then_the_bptt_sweep(live: LiveServer) -> None:
    req = {"mode": "generate", "prompt": "ab", "length": 12, "temperature": 0.7, "seed": 3}
    frames = run_stream(live, "chars-gru", req)
    assert frames[0]["type"] == "meta" and frames[0]["steps"] == 14
    steps = [f for f in frames if f["type"] == "step"]
    grads = [f for f in frames if f["type"] == "grad"]
    assert len(steps) == 14 and [s["sampled"] for s in steps] == [False] * 2 + [True] * 12
    assert [g["t"] for g in grads] == list(range(13, -1, -1))
    done = frames[-1]
    assert done["type"] == "done" and len(done["generated"]) == 12
    assert "".join(s["token"] for s in steps) == done["text"]
    rest = httpx.post(f"{live.url}/api/models/chars-gru/generate", json={k: v for k, v in req.items() if k != "mode"})
    assert rest.json()["generated"] == done["generated"]


@pytest.mark.parametrize(
    ("model_id", "message", "code", "error"),
    [
        ("chars-lstm", "{oops", 4400, "malformed"),
        ("chars-lstm", "[1, 2]", 4400, "malformed"),
        ("chars-lstm", b"\xff\xfe", 4400, "malformed"),
        ("nope", '{"text": "abc"}', 4404, "not_found"),
        ("chars-lstm", '{"text": ""}', 4422, "invalid"),
        ("chars-lstm", '{"text": "abc", "top_k": "many"}', 4422, "invalid"),
        ("chars-lstm", '{"text": "abc", "checkpoint": "42"}', 4404, "not_found"),
        ("chars-lstm", '{"text": "' + "a" * 3001 + '"}', 4422, "over_limit"),
        ("words-lstm", '{"mode": "generate", "prompt": "good"}', 4409, "wrong_model_kind"),
    ],
)
def test_bad_requests_get_an_error_frame_and_a_fitting_close_code(
    live: LiveServer, model_id: str, message: str | bytes, code: int, error: str
) -> None:
    frame, close_code = expect_error(live, model_id, message)
    assert frame["type"] == "error" and frame["error"] == error and frame["message"]
    assert close_code == code
    assert wait_idle(live, 2.0) == {"unrolled_active_streams": 0, "unrolled_computations_in_flight": 0}


def vanish(ws: ClientConnection) -> None:
    """Drop the connection without a closing handshake, as a closed laptop or a lost network does."""
    ws.socket.shutdown(socket.SHUT_RDWR)
    ws.socket.close()


def test_client_that_disconnects_mid_stream_leaves_nothing_running(live: LiveServer) -> None:
    ws = open_stream(live, "chars-lstm")
    ws.send(orjson.dumps({"text": "abc " * 700}).decode())
    for _ in range(5):
        ws.recv(timeout=30)
    vanish(ws)
    assert wait_idle(live, 2.0) == {"unrolled_active_streams": 0, "unrolled_computations_in_flight": 0}


def generated_steps(live: LiveServer) -> int:
    text = httpx.get(f"{live.url}/metrics").text
    return int(next(ln for ln in text.splitlines() if ln.startswith("unrolled_generated_steps_total ")).split()[1])


def test_client_that_disconnects_mid_generation_stops_the_sampling(live: LiveServer) -> None:
    before = generated_steps(live)
    ws = open_stream(live, "chars-gru")
    ws.send(orjson.dumps({"mode": "generate", "prompt": "a", "length": 2000, "temperature": 1}).decode())
    for _ in range(4):
        ws.recv(timeout=30)
    vanish(ws)
    assert wait_idle(live, 2.0) == {"unrolled_active_streams": 0, "unrolled_computations_in_flight": 0}
    sampled = generated_steps(live) - before
    assert 3 <= sampled < 1000, f"{sampled} steps were computed for a client that left after 4 frames"
    assert httpx.get(f"{live.url}/healthz").status_code == 200


@pytest.mark.parametrize(
    ("model_id", "batch", "precision"),
    [("chars-lstm", 1, None), ("chars-gru", 7, None), ("words-lstm", 64, None), ("chars-lstm", 5, 3)],
)
def test_binary_records_hold_the_rest_values(
    live: LiveServer, model_id: str, batch: int, precision: int | None
) -> None:
    """Binary encoding: T step records (float32), then T grad records (float64, last step first), `batch` to a
    message, each value equal to the REST body's. A precision rounds JSON only: the records stay whole."""
    import numpy as np

    req: dict[str, Any] = {"text": "a good film, very good", "top_k": 3}
    body = httpx.post(f"{live.url}/api/models/{model_id}/trace", json=req).json()
    if precision is not None:
        req["precision"] = precision
    vocab = httpx.get(f"{live.url}/api/models/{model_id}").json()["vocab"]
    T = body["steps"]
    messages: list[bytes] = []
    with open_stream(live, model_id) as ws:
        ws.send(orjson.dumps({**req, "encoding": "binary", "batch": batch}).decode())
        meta = orjson.loads(ws.recv(timeout=30))
        while isinstance(msg := ws.recv(timeout=30), bytes):
            messages.append(msg)
        assert orjson.loads(msg)["type"] == "done"
    assert meta["encoding"] == "binary" and meta["batch"] == batch
    step_size, grad_size = meta["step_record_bytes"], meta["grad_record_bytes"]
    assert (step_size, grad_size) == (record_bytes(meta["layout"]), record_bytes(meta["grad_layout"], grad=True))
    n_step_messages = -(-T // batch)
    assert len(messages) == 2 * n_step_messages
    assert all(len(m) <= batch * step_size for m in messages[:n_step_messages])
    steps = step_arrays(b"".join(messages[:n_step_messages]), meta["layout"], T)
    grads = grad_arrays(b"".join(messages[n_step_messages:]), meta["grad_layout"], T)
    for name, values in steps.items():
        if name.startswith("layers."):
            _, k, *path = name.split(".")
            source: Any = body["layers"][int(k)]
            for key in path:
                source = source[key]
            expected = np.array(source, dtype=np.float32)
        elif name == "loss":
            expected = np.array([np.nan if v is None else v for v in body["loss"]], dtype=np.float32)
        elif name == "probs":
            expected = np.array(body["step_probs"], dtype=np.float32)
        elif name == "prediction.p":
            expected = np.array([[p["p"] for p in step] for step in body["predictions"]], dtype=np.float32)
        else:
            assert [[vocab[i] for i in row] for row in values] == [[p["token"] for p in s] for s in body["predictions"]]
            continue
        np.testing.assert_array_equal(values, expected, err_msg=name)
    norms = body["grad_norms"]
    for j, layer in enumerate(norms["hidden"]):
        assert grads[f"hidden.{j}"].tolist() == layer
        assert grads[f"weight_hh.{j}"].tolist() == norms["weight_hh"][j]
        if norms["cell_state"] is not None:
            assert grads[f"cell_state.{j}"].tolist() == norms["cell_state"][j]
    assert grads["input"].tolist() == norms["input"]


def test_a_stream_opened_by_another_sites_page_is_refused(live: LiveServer) -> None:
    url = f"{live.ws_url}/api/models/chars-lstm/stream"
    with connect(url, origin=Origin("http://evil.example")) as ws:
        frame = orjson.loads(ws.recv(timeout=30))
        assert frame["type"] == "error" and frame["error"] == "forbidden_origin"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    # this server's own pages (their Origin names its host), and clients that send no Origin, are served
    for origin in (Origin(f"http://127.0.0.1:{live.port}"), None):
        with connect(url, origin=origin) as ws:
            ws.send(orjson.dumps({"text": "abc"}).decode())
            assert orjson.loads(ws.recv(timeout=30))["type"] == "meta"


def test_an_s6_models_stream_ends_with_its_hidden_attention_as_the_rest_body_holds_it(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The done frame of a JSON and of a binary stream carries each S6 layer's hidden attention, the REST body's
    layers' own (the lower triangle, value for value); a model of another cell's done frame has none."""
    models = tmp_path_factory.mktemp("s6-stream")
    write_model(models, "chars-s6", "s6", "next_token", layers=2)
    write_model(models, "chars-mingru", "mingru", "next_token")
    text = "zq wkv xj"  # no example has it
    with LiveServer(Settings(models_dir=models, max_steps=300, max_generate=100, send_timeout=5.0)) as live:
        rest = httpx.post(f"{live.url}/api/models/chars-s6/trace", json={"text": text}, timeout=60).json()
        want = [layer["attention"] for layer in rest["layers"]]
        assert len(want) == 2 and all(len(rows) == len(rest["tokens"]) for rows in want)
        assert run_stream(live, "chars-s6", {"text": text})[-1]["attention"] == want
        with open_stream(live, "chars-s6") as ws:  # binary records, then the done frame as JSON text
            ws.send(orjson.dumps({"text": text, "encoding": "binary", "batch": 64}).decode())
            frames: list[dict[str, Any]] = []
            while not frames or frames[-1]["type"] not in ("done", "error"):
                message = ws.recv(timeout=30)
                if isinstance(message, str):
                    frames.append(orjson.loads(message))
        assert frames[-1]["type"] == "done" and frames[-1]["attention"] == want
        other = run_stream(live, "chars-mingru", {"text": text})[-1]
        assert other["type"] == "done" and "attention" not in other
