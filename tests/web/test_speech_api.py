"""The speech family's API (issue 25): POST /api/models/{id}/transcribe takes the WAV itself and answers the engine's
trace of it; the stream's transcribe mode sends the same values as JSON frames or binary records (against a real
uvicorn); every kind of bad audio is a 4xx or an error frame naming the problem; and a request to the wrong family
is refused by name (409) both ways. The models and the clips are made here: random weights, numpy tones."""

from __future__ import annotations

import base64
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.engine.family import load_model
from app.engine.speech.card import BLANK
from app.engine.speech.trace import SpeechTrace, trace
from app.web.app import create_app
from app.web.config import Settings
from app.wire.decode import grad_arrays, sections, step_arrays
from tests.conftest import LiveServer, write_model, write_translation_model
from tests.engine.test_audio import BAD
from tests.speech import ALPHABET, LEXICON, voice_wav, write_speech_model
from tests.web.test_series_api import write_series_model

WAV = {"content-type": "audio/wav"}


@pytest.fixture(scope="module")
def speech_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder: Path = tmp_path_factory.mktemp("speech-models")
    write_speech_model(folder, "speech-gru", "gru", bidirectional=True, layers=2, lexicon=LEXICON)
    write_speech_model(folder, "speech-lstm", "lstm", bidirectional=False, layers=1, seed=1)
    write_speech_model(folder, "speech-rnn", "rnn", bidirectional=True, layers=1, seed=2)
    write_model(folder, "chars-lstm", "lstm", "next_token")
    write_translation_model(folder, "numbers-gru", "gru", attention=False)
    write_series_model(folder, "toy-series-gru", "gru", ["level"])
    return Settings(models_dir=folder, max_concurrent=2, send_timeout=5.0)


@pytest.fixture(scope="module")
def speech_client(speech_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(speech_settings)) as client:
        yield client


@pytest.fixture(scope="module")
def server(speech_settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(speech_settings) as live:
        yield live


def transcribe(client: TestClient, model_id: str, wav: bytes, **query: Any) -> httpx.Response:
    response: httpx.Response = client.post(f"/api/models/{model_id}/transcribe", params=query, content=wav, headers=WAV)
    return response


def f32(a: Any) -> np.ndarray[Any, Any]:
    return np.array(a, dtype=np.float32)


def assert_body_is_the_trace(body: dict[str, Any], tr: SpeechTrace) -> None:
    """Every array of the body, the engine's value for value (float32 and float64 JSON read back exactly)."""
    assert body["text"] == tr.text
    assert body["beams"] == [{"text": b.text, "log_prob": b.log_prob} for b in tr.beams]
    found = tr.lexicon_beams
    assert body["lexicon_beams"] == (
        None if found is None else [{"text": b.text, "log_prob": b.log_prob} for b in found]
    )
    assert (body["transcript"], body["decoder"]) == (tr.transcript, tr.decoder)
    t = body["trace"]
    assert t["steps"] == tr.steps and t["stack"] == tr.stack
    np.testing.assert_array_equal(f32(t["features"]), tr.frames)
    assert len(t["layers"]) == len(tr.layers)
    for sent, layer in zip(t["layers"], tr.layers, strict=True):
        assert sent["direction"] == layer.direction
        np.testing.assert_array_equal(f32(sent["hidden"]), layer.hidden)
        if layer.cell_state is None:
            assert sent["cell_state"] is None
        else:
            np.testing.assert_array_equal(f32(sent["cell_state"]), layer.cell_state)
        assert list(sent["gates"]) == list(layer.gates)
        for name, gate in layer.gates.items():
            np.testing.assert_array_equal(f32(sent["gates"][name]), gate)
    assert t["log_probs"] == tr.log_probs.tolist()
    assert t["greedy"] == tr.greedy.tolist() and t["emitted"] == tr.emitted.tolist()
    assert (t["target"], t["target_ids"], t["total_loss"]) == (tr.target, tr.target_ids, tr.loss)
    trellis = t["trellis"]
    assert trellis["labels"] == tr.trellis.labels
    assert trellis["alignment"] == tr.trellis.alignment.tolist() and trellis["path"] == tr.trellis.path.tolist()
    assert trellis["log_prob"] == tr.trellis.alignment_log_prob
    occupancy = np.exp(tr.trellis.log_alpha + tr.trellis.log_beta - tr.trellis.log_prob)
    assert trellis["occupancy"] == occupancy.tolist()
    grads = t["grad_norms"]
    assert grads["hidden"] == [layer.grad_hidden.tolist() for layer in tr.layers]
    assert grads["weight_hh"] == [layer.grad_weight_hh.tolist() for layer in tr.layers]
    assert grads["input"] == tr.grad_input.tolist()
    assert grads["logits"] == np.linalg.norm(tr.grad_logits, axis=1).tolist()


@pytest.mark.parametrize("model_id", ["speech-gru", "speech-lstm", "speech-rnn"])
@pytest.mark.parametrize("transcript", [None, "one two"])
def test_the_rest_body_is_the_engines_trace_of_the_same_wav(
    speech_client: TestClient, speech_settings: Settings, model_id: str, transcript: str | None
) -> None:
    wav = voice_wav(1.3, 22_050, seed=3)
    query = {} if transcript is None else {"transcript": transcript}
    r = transcribe(speech_client, model_id, wav, **query)
    assert r.status_code == 200, r.text
    body = r.json()
    tr = trace(load_model(speech_settings.models_dir, model_id), wav, transcript=transcript)
    assert_body_is_the_trace(body, tr)
    assert body["trace"]["target_source"] == ("greedy" if transcript is None else "given")
    assert body["trace"]["classes"] == [BLANK, *ALPHABET]


def test_a_model_with_a_lexicon_serves_its_searchs_best_text_and_one_without_it_its_greedy_text(
    speech_client: TestClient,
) -> None:
    wav = voice_wav(1.3, 22_050, seed=4)
    body = transcribe(speech_client, "speech-gru", wav, beam=5).json()
    assert body["decoder"] == "lexicon" and LEXICON.accepts(body["transcript"])
    assert 1 <= len(body["lexicon_beams"]) <= 5 and body["transcript"] == body["lexicon_beams"][0]["text"]
    assert body["trace"]["transcript"] == body["transcript"] and body["trace"]["text"] == body["text"]
    plain = transcribe(speech_client, "speech-lstm", wav).json()
    assert plain["decoder"] == "greedy" and plain["lexicon_beams"] is None and plain["transcript"] == plain["text"]


def test_the_body_says_what_audio_was_read_and_when_each_frame_and_step_is_heard(speech_client: TestClient) -> None:
    wav = voice_wav(1.5, 44_100, bits=24, channels=2)
    t = transcribe(speech_client, "speech-gru", wav).json()["trace"]
    assert t["audio"] == {"seconds": 1.5, "sample_rate": 44_100, "channels": 2, "bits": 24, "encoding": "pcm"}
    assert t["frame_seconds"] == 0.01 and t["step_seconds"] == pytest.approx(0.03)
    # 1.5 s at 16 kHz is 24,000 samples: 1 + (24,000 − 400) // 160 = 148 frames of 40 bands, 49 steps of 3
    assert np.shape(t["features"]) == (148, 40) and t["frame_count"] == 148 and t["steps"] == 49
    assert t["directions"] == ["forward", "reverse", "forward", "reverse"]


def test_beam_and_precision_are_read_from_the_query(speech_client: TestClient) -> None:
    wav = voice_wav(1.0, 16_000)
    narrow = transcribe(speech_client, "speech-gru", wav, beam=1).json()
    wide = transcribe(speech_client, "speech-gru", wav, beam=4, precision=3).json()
    assert len(narrow["beams"]) == 1 and len(wide["beams"]) == 4
    full = transcribe(speech_client, "speech-gru", wav, beam=4).json()
    rounded, exact = wide["trace"]["layers"][0]["hidden"], full["trace"]["layers"][0]["hidden"]
    assert rounded != exact
    np.testing.assert_allclose(rounded, exact, rtol=5e-3)


@pytest.mark.parametrize("media", ["audio/wav", "audio/x-wav", "audio/wave", "Audio/WAV; codecs=1"])
def test_each_name_a_wav_is_sent_under_is_taken(speech_client: TestClient, media: str) -> None:
    r = speech_client.post("/api/models/speech-gru/transcribe", content=voice_wav(0.5), headers={"content-type": media})
    assert r.status_code == 200, r.text


def test_a_10_s_48_khz_stereo_32_bit_wav_passes_the_body_limit(speech_client: TestClient) -> None:
    wav = voice_wav(10.0, 48_000, channels=2, encoding="float")
    assert len(wav) > 3_840_000 > 1_000_000  # over the JSON routes' max_body_bytes
    r = transcribe(speech_client, "speech-lstm", wav)
    assert r.status_code == 200, r.text
    assert r.json()["trace"]["audio"]["seconds"] == 10.0


# Bad audio, each case named: the engine's own cases (tests/engine/test_audio.py) through the API, then the HTTP ones


@pytest.mark.parametrize("case", list(BAD))
def test_bad_audio_is_a_4xx_naming_the_problem(speech_client: TestClient, case: str) -> None:
    data, _, words = BAD[case]
    r = transcribe(speech_client, "speech-gru", data)
    assert r.status_code == (413 if case == "too long" else 422), r.text
    assert words in r.json()["message"]


def test_a_wrong_or_missing_content_type_is_415_naming_it(speech_client: TestClient) -> None:
    wav = voice_wav(0.5)
    for sent, named in [("text/plain", "'text/plain'"), ("application/json", "'application/json'")]:
        r = speech_client.post("/api/models/speech-gru/transcribe", content=wav, headers={"content-type": sent})
        assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"
        assert named in r.json()["message"] and "audio/wav" in r.json()["message"]
    r = speech_client.post("/api/models/speech-gru/transcribe", content=wav)
    assert r.status_code == 415 and "no Content-Type" in r.json()["message"]


def test_an_empty_body_is_not_a_wav(speech_client: TestClient) -> None:
    r = transcribe(speech_client, "speech-gru", b"")
    assert r.status_code == 422 and "not a WAV" in r.json()["message"]


def http_reply(s: socket.socket) -> tuple[int, bytes]:
    """An HTTP/1.1 response's status and body (by its Content-Length), read off a socket as its parts arrive."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536) or b"\r\n\r\n"
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(v) for k, v in (line.split(": ", 1) for line in lines[1:]) if k.lower() == "content-length")
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), body


def test_a_body_over_the_limit_is_413_before_it_is_read(server: LiveServer, speech_settings: Settings) -> None:
    limit = speech_settings.max_audio_bytes
    # a huge declared size: refused on the head, the body never sent (httpx would wait on it otherwise)
    head = (
        f"POST /api/models/speech-gru/transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
        f"Content-Length: {10**12}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(head + b"RIFF")
        status, body = http_reply(s)
    assert status == 413 and "max_audio_bytes" in orjson.loads(body)["message"]

    def chunks() -> Iterator[bytes]:  # a chunked body with no length: cut off once it passes the limit
        for _ in range(limit // 65536 + 2):
            yield bytes(65536)

    r = httpx.post(f"{server.url}/api/models/speech-gru/transcribe", content=chunks(), headers=WAV, timeout=60)
    assert r.status_code == 413 and "max_audio_bytes" in r.json()["message"]


def test_a_client_that_leaves_mid_body_is_no_server_error(server: LiveServer) -> None:
    head = b"POST /api/models/speech-gru/transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(head + b"Content-Length: 100000\r\n\r\n" + voice_wav(0.5)[:5000])
    # the server notices the lost client, and counts it as a request answered 400, never a 500
    deadline = time.monotonic() + 60
    while 'route="/api/models/{model_id}/transcribe",status="400"' not in (
        metrics := httpx.get(f"{server.url}/metrics").text
    ):
        assert time.monotonic() < deadline, metrics
        time.sleep(0.1)
    assert 'status="500"' not in metrics


def test_a_transcript_with_characters_outside_the_alphabet_names_them_and_where(speech_client: TestClient) -> None:
    r = transcribe(speech_client, "speech-gru", voice_wav(1.0), transcript="one 2 twé")
    assert r.status_code == 422
    assert r.json()["message"] == "the transcript has pieces the model does not know: '2' at 4, 'é' at 8"


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"transcript": "nine nine nine"}, "the transcript needs at least"),  # more letters than steps
        ({"beam": 0}, "query.beam"),
        ({"beam": 33}, "query.beam"),
        ({"precision": 12}, "query.precision"),
        ({"checkpoint": "50"}, "checkpoint '50' does not exist"),
        ({"transcipt": "one"}, "query.transcipt: Extra inputs are not permitted"),
    ],
)
def test_a_bad_query_is_a_4xx_naming_it(speech_client: TestClient, query: dict[str, Any], words: str) -> None:
    r = transcribe(speech_client, "speech-gru", voice_wav(0.3, 16_000), **query)
    assert r.status_code in (404, 422), r.text
    assert words in r.json()["message"]


# The wrong family, both ways


@pytest.mark.parametrize(
    ("model_id", "does"),
    [("chars-lstm", "reads text"), ("numbers-gru", "translates"), ("toy-series-gru", "reads numbers")],
)
def test_a_model_of_another_family_refuses_transcribe_saying_what_it_does(
    speech_client: TestClient, model_id: str, does: str
) -> None:
    message = f"{model_id} {does}: it does not read audio (transcribe is served for speech models)"
    r = transcribe(speech_client, model_id, voice_wav(0.5))
    assert r.status_code == 409 and r.json() == {"error": "wrong_model_kind", "message": message}
    with speech_client.websocket_connect(f"/api/models/{model_id}/stream") as ws:
        ws.send_json({"mode": "transcribe", "audio": base64.b64encode(voice_wav(0.5)).decode()})
        assert ws.receive_json() == {"type": "error", "error": "wrong_model_kind", "message": message}


REFUSED = [
    ("trace", {"text": "one"}, "a trace of text or values"),
    ("generate", {"prompt": "o", "length": 3}, "generation"),
    ("translate", {"text": "one"}, "translation"),
]


@pytest.mark.parametrize(("path", "body", "what"), REFUSED)
def test_a_request_of_another_familys_shape_is_refused_saying_what_the_model_does(
    speech_client: TestClient, path: str, body: dict[str, object], what: str
) -> None:
    r = speech_client.post(f"/api/models/speech-gru/{path}", json=body)
    assert r.status_code == 409
    assert r.json()["message"] == (
        f"speech-gru transcribes speech (it reads audio, not text or numbers): {what} is not served for speech models"
    )
    with speech_client.websocket_connect("/api/models/speech-gru/stream") as ws:
        ws.send_json({"text": "one"})
        frame = ws.receive_json()
    assert frame["type"] == "error" and frame["error"] == "wrong_model_kind"


def test_a_speech_model_is_listed_with_its_kind_and_its_alphabet(speech_client: TestClient) -> None:
    r = speech_client.get("/api/models")
    assert r.status_code == 200
    assert ("speech-gru", "transcribe") in [(m["id"], m["kind"]) for m in r.json()["models"]]
    body = speech_client.get("/api/models/speech-gru").json()
    assert body["target_vocab"] == [BLANK, *ALPHABET] and body["bidirectional"] is True
    assert body["gates"] == ["reset", "update", "candidate"]
    schema = speech_client.get("/openapi.json").json()["components"]["schemas"]["ModelSummary"]
    assert "transcribe" in schema["properties"]["kind"]["enum"]


def test_the_openapi_shows_the_wav_body_and_its_limit(speech_client: TestClient, speech_settings: Settings) -> None:
    operation = speech_client.get("/openapi.json").json()["paths"]["/api/models/{model_id}/transcribe"]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == {"audio/wav", "audio/x-wav", "audio/wave"}
    assert body["content"]["audio/wav"]["schema"] == {"type": "string", "format": "binary"}
    assert f"at most {speech_settings.max_audio_bytes} bytes (max_audio_bytes)" in body["description"]
    assert {p["name"] for p in operation["parameters"]} == {"model_id", "transcript", "beam", "checkpoint", "precision"}
    assert {"413", "415", "422", "409"} <= set(operation["responses"])


# The stream, against a real uvicorn


def frames_of(server: LiveServer, model_id: str, request: dict[str, Any] | str) -> tuple[list[Any], int | None]:
    """Every frame (JSON frames parsed, binary messages as bytes) until done or error, and the close code."""
    out: list[Any] = []
    with connect(f"{server.ws_url}/api/models/{model_id}/stream", max_size=None) as ws:
        ws.send(request if isinstance(request, str) else orjson.dumps(request).decode())
        while True:
            message = ws.recv(timeout=60)
            if isinstance(message, bytes):
                out.append(message)
                continue
            parsed = orjson.loads(message)
            out += parsed if isinstance(parsed, list) else [parsed]
            if isinstance(parsed, dict) and parsed["type"] in ("done", "error"):
                break
        code = None
        if out[-1]["type"] == "error":
            with contextlib.suppress(ConnectionClosed):  # the close frame ends the connection
                ws.recv(timeout=30)
            code = ws.close_code
    return out, code


def stream_request(wav: bytes, **fields: Any) -> dict[str, Any]:
    return {"mode": "transcribe", "audio": base64.b64encode(wav).decode(), **fields}


@pytest.mark.parametrize("batch", [1, 7])
def test_the_json_stream_sends_the_rest_bodys_values(server: LiveServer, batch: int) -> None:
    wav = voice_wav(1.2, 16_000, seed=5)
    body = httpx.post(f"{server.url}/api/models/speech-gru/transcribe?transcript=one", content=wav, headers=WAV).json()
    got, _ = frames_of(server, "speech-gru", stream_request(wav, transcript="one", batch=batch))
    t = body["trace"]
    T = t["steps"]
    assert [f["type"] for f in got] == ["meta"] + ["step"] * T + ["grad"] * T + ["done"]
    meta, steps, grads, done = got[0], got[1 : T + 1], got[T + 1 : 2 * T + 1], got[-1]
    assert meta["mode"] == "transcribe" and meta["features"] == t["features"] and meta["beams"] == body["beams"]
    assert meta["lexicon_beams"] == body["lexicon_beams"] and meta["transcript"] == body["transcript"]
    assert (meta["audio"], meta["frame_seconds"], meta["labels"]) == (t["audio"], 0.01, t["trellis"]["labels"])
    assert [f["log_probs"] for f in steps] == t["log_probs"]
    assert [f["occupancy"] for f in steps] == t["trellis"]["occupancy"]
    assert [f["alignment"] for f in steps] == t["trellis"]["alignment"]
    assert [f["greedy"] for f in steps] == t["greedy"] and [f["emitted"] for f in steps] == t["emitted"]
    for k, layer in enumerate(t["layers"]):
        assert [f["layers"][k]["hidden"] for f in steps] == layer["hidden"]
        assert [f["layers"][k]["gates"] for f in steps] == [
            {n: g[s] for n, g in layer["gates"].items()} for s in range(T)
        ]
    assert [f["t"] for f in grads] == list(range(T - 1, -1, -1))
    assert [f["hidden"] for f in reversed(grads)] == np.array(t["grad_norms"]["hidden"]).T.tolist()
    assert [f["logits"] for f in reversed(grads)] == t["grad_norms"]["logits"]
    assert done == {
        "type": "done",
        "text": body["text"],
        "transcript": body["transcript"],
        "total_loss": t["total_loss"],
    }


@pytest.mark.parametrize("model_id", ["speech-gru", "speech-lstm"])
def test_the_binary_stream_holds_the_json_bodys_values(server: LiveServer, model_id: str) -> None:
    wav = voice_wav(0.9, 8_000, bits=8, seed=6)
    body = httpx.post(f"{server.url}/api/models/{model_id}/transcribe", content=wav, headers=WAV).json()
    got, _ = frames_of(server, model_id, stream_request(wav, encoding="binary", batch=16))
    meta, done = got[0], got[-1]
    t = body["trace"]
    T = meta["steps"]
    assert T == t["steps"] and done["type"] == "done"
    records = b"".join(m for m in got if isinstance(m, bytes))
    step_blob, grad_blob = sections(records, [(T, meta["step_record_bytes"]), (T, meta["grad_record_bytes"])])
    steps = step_arrays(step_blob, meta["layout"], T)
    grads = grad_arrays(grad_blob, meta["grad_layout"], T)
    for k, layer in enumerate(t["layers"]):
        np.testing.assert_array_equal(steps[f"layers.{k}.hidden"], f32(layer["hidden"]))
        for name, gate in layer["gates"].items():
            np.testing.assert_array_equal(steps[f"layers.{k}.gates.{name}"], f32(gate))
        if layer["cell_state"] is not None:
            np.testing.assert_array_equal(steps[f"layers.{k}.cell_state"], f32(layer["cell_state"]))
        assert grads[f"hidden.{k}"].tolist() == t["grad_norms"]["hidden"][k]
        assert grads[f"weight_hh.{k}"].tolist() == t["grad_norms"]["weight_hh"][k]
    np.testing.assert_array_equal(steps["log_probs"], f32(t["log_probs"]))
    np.testing.assert_array_equal(steps["occupancy"], f32(t["trellis"]["occupancy"]))
    assert (
        steps["greedy"][:, 0].tolist() == t["greedy"] and steps["alignment"][:, 0].tolist() == t["trellis"]["alignment"]
    )
    assert grads["input"].tolist() == t["grad_norms"]["input"] and grads["logits"].tolist() == t["grad_norms"]["logits"]


def test_a_10_s_48_khz_stereo_32_bit_wav_passes_in_the_stream_too(server: LiveServer) -> None:
    wav = voice_wav(10.0, 48_000, channels=2, encoding="float")
    got, _ = frames_of(server, "speech-lstm", stream_request(wav, encoding="binary", batch=4096))
    assert got[0]["type"] == "meta" and got[0]["audio"]["seconds"] == 10.0 and got[-1]["type"] == "done"


STREAM_BAD: dict[str, tuple[dict[str, Any], int, str]] = {
    "bad base64": ({"mode": "transcribe", "audio": "UklGR!!!"}, 4422, "audio: Value error, not valid base64"),
    "base64 of a wrong length": ({"mode": "transcribe", "audio": "UklGRg="}, 4422, "not valid base64"),
    "audio missing": ({"mode": "transcribe"}, 4422, "audio: Field required"),
    "audio not a string": ({"mode": "transcribe", "audio": 5}, 4422, "expected a string of base64"),
    "beam a string": ({**stream_request(b"RIFF"), "beam": "4"}, 4422, "beam: Value error, expected a number"),
    **{
        case: (stream_request(data), 4413 if case == "too long" else 4422, words)
        for case, (data, _, words) in BAD.items()
    },
}


@pytest.mark.parametrize("case", list(STREAM_BAD))
def test_bad_audio_in_the_stream_is_an_error_frame_naming_it_then_a_close(server: LiveServer, case: str) -> None:
    request, code, words = STREAM_BAD[case]
    got, closed = frames_of(server, "speech-gru", request)
    assert len(got) == 1 and got[0]["type"] == "error", got
    assert words in got[0]["message"]
    assert closed == code
