"""app.client against a real server: its numpy arrays (from the stream's binary records) equal the REST body's
values, for a next-token LSTM, a two-layer GRU and a classifier; errors arrive as ClientError."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.sync.client import connect

from app.client import Client, ClientError
from app.web.config import ROOT, Settings
from tests.conftest import LiveServer, write_model
from tests.speech import voice_wav, write_speech_model
from tests.web.test_caption_api import SCENES, png_of


def rest(live: LiveServer, model_id: str, body: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(f"{live.url}/api/models/{model_id}/trace", json=body, timeout=30)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def equal(a: Any, b: Any, dtype: str) -> None:
    want = np.array([np.nan if v is None else v for v in b] if isinstance(b, list) and b and b[0] is None else b,
                    dtype=dtype)  # fmt: skip
    np.testing.assert_array_equal(a, want)  # exactly: the same float32 (or float64) values, NaN where null


@pytest.mark.parametrize(
    ("model_id", "text", "options"),
    [
        ("chars-lstm", "hello world, hello there", {"top_k": 3}),
        ("chars-gru", "the quick brown fox", {"top_k": 5, "loss": "last"}),
        ("words-lstm", "a good film not bad", {"label": "positive"}),
        ("chars-rnn", "abc", {"precision": 4}),
    ],
)
def test_the_clients_arrays_equal_the_rest_body(
    live: LiveServer, model_id: str, text: str, options: dict[str, Any]
) -> None:
    traced = Client(live.url).traced(model_id, text, **options)
    got = traced.arrays
    # A precision rounds JSON only: binary records hold the engine's values whole, the unrounded body's.
    body = rest(live, model_id, {"text": text, **{k: v for k, v in options.items() if k != "precision"}})
    T = body["steps"]
    assert traced.meta["tokens"] == body["tokens"]
    np.testing.assert_array_equal(got["token_ids"], body["token_ids"])
    for k, layer in enumerate(body["layers"]):
        equal(got[f"layers.{k}.hidden"], layer["hidden"], "float32")
        if layer["cell_state"] is not None:
            equal(got[f"layers.{k}.cell_state"], layer["cell_state"], "float32")
        for gate, values in layer["gates"].items():
            equal(got[f"layers.{k}.gates.{gate}"], values, "float32")
        for name in ("hidden", "weight_hh", *(["cell_state"] if layer["cell_state"] is not None else [])):
            equal(got[f"grad_norms.{name}.{k}"], body["grad_norms"][name][k], "float64")
    equal(got["grad_norms.input"], body["grad_norms"]["input"], "float64")
    equal(got["loss"], body["loss"], "float32")
    if body["kind"] == "classify":
        equal(got["probs"], body["step_probs"], "float32")
    else:
        equal(got["prediction.p"], [[p["p"] for p in step] for step in body["predictions"]], "float32")
        tokens = [[p["token"] for p in step] for step in body["predictions"]]
        vocab = {m: i for i, m in enumerate(httpx.get(f"{live.url}/api/models/{model_id}").json()["vocab"])}
        np.testing.assert_array_equal(got["prediction.token_id"], [[vocab[t] for t in row] for row in tokens])
    assert all(a.shape[0] == T for a in got.values())


def test_models_and_errors(live: LiveServer) -> None:
    client = Client(live.url + "/")
    ids = [m["id"] for m in client.models()]
    assert "chars-lstm" in ids and "words-lstm" in ids
    with pytest.raises(ClientError) as e:
        client.trace("no-such-model", "abc")
    assert e.value.status == 404 and "no-such-model" in str(e.value)
    with pytest.raises(ClientError) as e:
        client.trace("chars-lstm", "")
    assert e.value.status == 422


def test_the_api_guides_client_example_runs_as_written() -> None:
    """docs/api.md's block, against a real server of the repository's own zoo (charlm-lstm)."""
    readme = (ROOT / "docs" / "api.md").read_text()
    block = re.search(r"```python\n(from app\.client import Client\n.*?)```", readme, re.S)
    assert block is not None
    settings = Settings(models_dir=ROOT / "models", max_steps=1000, max_generate=100, max_concurrent=2)
    with LiveServer(settings) as live:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(block.group(1).replace("http://localhost:8000", live.url), {})
    lines = out.getvalue().splitlines()
    assert "charlm-lstm" in lines[0] and lines[1] == "(44, 128)"


class PlainUvicorn(LiveServer):
    """The app run the FastAPI way, `uvicorn app.main:app`, with uvicorn's defaults (per-message deflate on)."""

    def __enter__(self) -> LiveServer:
        self.env.pop("UNROLLED_SERVED_BY_CLI", None)
        cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.__exit__()
                raise RuntimeError("uvicorn did not become ready")
            time.sleep(0.1)


def test_the_client_offers_no_compression_and_plain_uvicorn_says_what_it_needs(settings: Settings) -> None:
    with PlainUvicorn(settings) as server:
        path = f"{server.ws_url}/api/models/chars-lstm/stream"
        # The same server compresses for a client that offers it (the browser's case), so the check below can fail.
        with connect(path) as ws:
            assert ws.response is not None
            assert "permessage-deflate" in (ws.response.headers.get("Sec-WebSocket-Extensions") or "")
        with Client(server.url).open(path) as ws:
            assert ws.response is not None
            assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        assert Client(server.url).trace("chars-lstm", "a new day")["layers.0.hidden"].shape[0] == len("a new day")
    assert server.proc is not None and server.proc.stderr is not None
    log = server.proc.stderr.read().decode()
    assert "not started by `unrolled serve`" in log and "--ws-per-message-deflate false" in log


@pytest.fixture(scope="module")
def speech_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("client-speech")
    write_speech_model(folder, "speech-lstm", "lstm", bidirectional=True, layers=2)
    write_model(folder, "chars-lstm", "lstm", "next_token")
    with LiveServer(Settings(models_dir=folder, send_timeout=5.0)) as server:
        yield server


def test_transcribe_gives_the_rest_bodys_values_as_arrays(speech_live: LiveServer) -> None:
    wav = voice_wav(1.1, 24_000, seed=4)
    transcribed = Client(speech_live.url).transcribe("speech-lstm", wav, transcript="one", beam=3)
    r = httpx.post(f"{speech_live.url}/api/models/speech-lstm/transcribe?transcript=one&beam=3", content=wav,
                   headers={"content-type": "audio/wav"}, timeout=30)  # fmt: skip
    body = r.json()
    t, got, meta = body["trace"], transcribed.arrays, transcribed.meta
    assert (meta["text"], meta["beams"], meta["total_loss"]) == (body["text"], body["beams"], t["total_loss"])
    assert len(meta["beams"]) == 3 and meta["target"] == "one"
    equal(got["features"], t["features"], "float32")
    for k, layer in enumerate(t["layers"]):
        equal(got[f"layers.{k}.hidden"], layer["hidden"], "float32")
        equal(got[f"layers.{k}.cell_state"], layer["cell_state"], "float32")
        for gate, values in layer["gates"].items():
            equal(got[f"layers.{k}.gates.{gate}"], values, "float32")
        for name in ("hidden", "cell_state", "weight_hh"):
            equal(got[f"grad_norms.{name}.{k}"], t["grad_norms"][name][k], "float64")
    equal(got["log_probs"], t["log_probs"], "float32")
    equal(got["occupancy"], t["trellis"]["occupancy"], "float32")
    equal(got["greedy"][:, 0], t["greedy"], "uint32")
    equal(got["alignment"][:, 0], t["trellis"]["alignment"], "uint32")
    equal(got["grad_norms.input"], t["grad_norms"]["input"], "float64")
    equal(got["grad_norms.logits"], t["grad_norms"]["logits"], "float64")


def test_transcribe_errors_arrive_as_client_errors(speech_live: LiveServer) -> None:
    client = Client(speech_live.url)
    with pytest.raises(ClientError) as e:
        client.transcribe("speech-lstm", b"not a wav at all")
    assert e.value.status == 422 and "not a WAV" in str(e.value)
    with pytest.raises(ClientError) as e:
        client.transcribe("chars-lstm", voice_wav(0.5))
    assert e.value.status == 409 and "does not read audio" in str(e.value)


@pytest.fixture(scope="module")
def caption_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("client-caption")
    for suffix in (".json", ".safetensors"):
        shutil.copy(ROOT / "models" / f"shapes-lstm{suffix}", folder)
    write_model(folder, "chars-lstm", "lstm", "next_token")
    card = json.loads((folder / "shapes-lstm.json").read_text())
    card["checkpoints"] = []  # the checkpoints' files stay behind
    (folder / "shapes-lstm.json").write_text(json.dumps(card))
    with LiveServer(Settings(models_dir=folder, send_timeout=5.0)) as server:
        yield server


def test_caption_gives_the_rest_bodys_values_as_arrays(caption_live: LiveServer) -> None:
    drawn = SCENES["green square above red circle"]
    png = png_of(drawn, side=96)
    captioned = Client(caption_live.url).caption("shapes-lstm", png, caption=drawn.caption, beam=3)
    r = httpx.post(f"{caption_live.url}/api/models/shapes-lstm/caption", params={"caption": drawn.caption, "beam": 3},
                   content=png, headers={"content-type": "image/png"}, timeout=30)  # fmt: skip
    body = r.json()
    t, got, meta = body["trace"], captioned.arrays, captioned.meta
    assert (meta["caption"], meta["beams"], meta["total_loss"]) == (body["caption"], body["beams"], t["total_loss"])
    assert len(meta["beams"]) == 3 and meta["words"] == [*drawn.caption.split(), "</s>"]
    layer = t["layers"][0]
    equal(got["layers.0.hidden"], layer["hidden"], "float32")
    equal(got["layers.0.cell_state"], layer["cell_state"], "float32")
    for gate, values in layer["gates"].items():
        equal(got[f"layers.0.gates.{gate}"], values, "float32")
    equal(got["attention"], t["attention"], "float32")
    equal(got["loss"], t["loss"], "float32")
    for name in ("hidden", "cell_state", "weight_hh"):
        equal(got[f"grad_norms.{name}.0"], t["grad_norms"][name][0], "float64")
    equal(got["grad_norms.context"], t["grad_norms"]["context"], "float64")
    equal(got["grad_norms.grid"], t["grad_norms"]["grid_words"], "float64")
    assert meta["grad_norms"]["grid"] == t["grad_norms"]["grid"] and meta["start"] == t["start"]


def test_caption_errors_arrive_as_client_errors(caption_live: LiveServer) -> None:
    client = Client(caption_live.url)
    with pytest.raises(ClientError) as e:
        client.caption("shapes-lstm", b"not an image at all")
    assert e.value.status == 422 and "not a PNG or JPEG image" in str(e.value)
    with pytest.raises(ClientError) as e:
        client.caption("chars-lstm", png_of(SCENES["green square above red circle"]))
    assert e.value.status == 409 and "does not read images" in str(e.value)
