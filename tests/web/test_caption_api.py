"""The caption family's API (issue 26). A caption model in the zoo is listed, its card served, the home page shows
it, and every request of another family's shape is refused by name (409). POST /api/models/{id}/caption takes the
PNG or JPEG itself and answers the engine's trace of it, on the committed shapes models and scenes drawn here by the
rules (placed by hand: no example or evaluation set has them); the stream's caption mode sends the same values as
JSON frames or binary records (against a real uvicorn); every kind of bad image is a 4xx or an error frame naming
the problem; a model of another family refuses caption by name (409) both ways."""

from __future__ import annotations

import base64
import shutil
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.engine.caption.card import CaptionCard, config
from app.engine.caption.image import MAX_BYTES
from app.engine.caption.model import CaptionModel
from app.engine.caption.trace import Captioning, caption
from app.engine.card import ModelCard, save_model
from app.engine.family import load_model
from app.training.tasks.shapes import pixels_vocab, words_vocab
from app.training.tasks.shapes_data import Scene, Shape, draw, scene_of
from app.web.app import create_app
from app.web.config import ROOT, Settings
from app.wire.decode import grad_arrays, sections, step_arrays
from tests.conftest import LiveServer, write_model, write_translation_model
from tests.engine.test_caption_image import claims, encode
from tests.speech import write_speech_model
from tests.web.test_series_api import write_series_model
from tests.web.test_speech_api import frames_of, http_reply


@pytest.fixture(scope="module")
def caption_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder: Path = tmp_path_factory.mktemp("caption-models")
    block = CaptionCard(words=words_vocab().to_json(), embed_size=4, channels=[3, 4, 5], attention_size=6)
    card = ModelCard(id="shapes-lstm", task="shapes", cell="lstm", kind="caption", hidden_size=8, num_layers=1,
                     vocab=pixels_vocab().to_json(), block=block)  # fmt: skip
    save_model(folder, card, CaptionModel(config(card)))
    with TestClient(create_app(Settings(models_dir=folder))) as client:
        yield client


def test_a_caption_model_is_listed_with_its_kind_and_its_words(caption_client: TestClient) -> None:
    r = caption_client.get("/api/models")
    assert r.status_code == 200
    assert [(m["id"], m["kind"]) for m in r.json()["models"]] == [("shapes-lstm", "caption")]
    r = caption_client.get("/api/models/shapes-lstm")
    assert r.status_code == 200
    body = r.json()
    assert body["target_vocab"] == list(words_vocab().tokens)
    assert body["gates"] == ["input", "forget", "candidate", "output"]
    schema = caption_client.get("/openapi.json").json()["components"]["schemas"]["ModelSummary"]
    assert "caption" in schema["properties"]["kind"]["enum"]
    home = caption_client.get("/")
    assert home.status_code == 200 and "shapes-lstm" in home.text and "a picture in, its caption out" in home.text


REFUSED = [
    ("trace", {"text": "a small red circle"}, "a trace of text or values"),
    ("generate", {"prompt": "a", "length": 3}, "generation"),
    ("translate", {"text": "a small red circle"}, "translation"),
]


@pytest.mark.parametrize(("path", "body", "what"), REFUSED)
def test_a_request_of_another_familys_shape_is_refused_saying_what_the_model_does(
    caption_client: TestClient, path: str, body: dict[str, object], what: str
) -> None:
    r = caption_client.post(f"/api/models/shapes-lstm/{path}", json=body)
    assert r.status_code == 409
    assert r.json()["message"] == (
        f"shapes-lstm captions images (it reads pictures, not text or numbers): {what} is not served for caption models"
    )
    with caption_client.websocket_connect("/api/models/shapes-lstm/stream") as ws:
        ws.send_json({"text": "a"})
        frame = ws.receive_json()
    assert frame["type"] == "error" and frame["error"] == "wrong_model_kind"
    page = caption_client.get("/models/shapes-lstm/generate")
    assert page.status_code in (404, 409) and "captions images: its page is /models/shapes-lstm" in page.text
    assert caption_client.get("/models/shapes-lstm").status_code == 200  # where a scene is drawn and captioned


def test_the_scene_rules_redraw_pillows_pictures_pixel_for_pixel(caption_client: TestClient) -> None:
    """GET /api/caption-scenes: each shape's rows as Pillow fills them, moved to any whole-pixel position, are the
    picture the training draws (the page's editor paints these rows: its scenes are the training's)."""
    rules = caption_client.get("/api/caption-scenes").json()
    assert rules["colours"]["red"] == [220, 40, 40] and rules["sizes"] == {"small": [10, 14], "big": [19, 24]}
    rng = np.random.default_rng(26)
    for shape in rules["shapes"]:
        for side, rows in rules["masks"][shape].items():
            s = int(side)
            x, y = (int(v) for v in rng.integers(0, 64 - s, size=2))
            painted = np.full((64, 64, 3), 255, np.uint8)
            for r, span in enumerate(rows):
                if span is not None:
                    painted[y + r, x + span[0] : x + span[1]] = rules["colours"]["blue"]
            drawn = np.asarray(draw((Shape(shape, "small", "blue", s, x, y),)))
            assert (painted == drawn).all(), f"{shape} of side {s} at ({x}, {y})"


# The committed shapes models, and scenes placed by hand by the rules (app/training/tasks/shapes_data.py): each pair
# of shapes apart and clear of a diagonal, none drawn by a seed the training or evaluation sets use.
MODELS = ("shapes-rnn", "shapes-lstm", "shapes-gru")
SCENES: dict[str, Scene] = {
    "yellow triangle left of blue circle": scene_of(
        Shape("triangle", "small", "yellow", 12, 6, 30), Shape("circle", "big", "blue", 21, 38, 25)
    ),
    "green square above red circle": scene_of(
        Shape("square", "big", "green", 20, 22, 3), Shape("circle", "small", "red", 11, 27, 45)
    ),
}
PNG = {"content-type": "image/png"}


def png_of(scene: Scene, side: int = 64) -> bytes:
    """The scene drawn by the rules as a PNG, `side` pixels a side (each pixel repeated: it reads back the same)."""
    return encode(draw(scene).resize((side, side), Image.Resampling.NEAREST))


@pytest.fixture(scope="module")
def shapes_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The committed shapes models and their checkpoints, and a model of every other family (to refuse caption)."""
    folder: Path = tmp_path_factory.mktemp("shapes-models")
    (folder / "checkpoints").mkdir()
    for model_id in MODELS:
        for suffix in (".json", ".safetensors"):
            shutil.copy(ROOT / "models" / f"{model_id}{suffix}", folder)
        for path in (ROOT / "models" / "checkpoints").glob(f"{model_id}-*.safetensors"):
            shutil.copy(path, folder / "checkpoints")
    write_model(folder, "chars-lstm", "lstm", "next_token")
    write_translation_model(folder, "numbers-gru", "gru", attention=True)
    write_series_model(folder, "toy-series-gru", "gru", ["level"])
    write_speech_model(folder, "speech-rnn", "rnn", bidirectional=False, layers=1)
    return Settings(models_dir=folder, max_concurrent=2, send_timeout=5.0)


@pytest.fixture(scope="module")
def shapes_client(shapes_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(shapes_settings)) as client:
        yield client


@pytest.fixture(scope="module")
def server(shapes_settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(shapes_settings) as live:
        yield live


def post_caption(client: TestClient, model_id: str, image: bytes, **query: Any) -> httpx.Response:
    response: httpx.Response = client.post(f"/api/models/{model_id}/caption", params=query, content=image, headers=PNG)
    return response


def f32(a: Any) -> np.ndarray[Any, Any]:
    return np.array(a, dtype=np.float32)


def assert_body_is_the_captioning(body: dict[str, Any], c: Captioning) -> None:
    """Every array of the body, the engine's value for value (float32 and float64 JSON read back exactly)."""
    tr = c.trace
    assert body["caption"] == c.caption
    assert body["beams"] == [{"caption": b.caption, "score": b.score, "finished": b.finished} for b in c.beams]
    t = body["trace"]
    assert (t["words"], t["word_ids"], t["inputs"]) == (tr.words, tr.word_ids, tr.inputs)
    assert (t["caption"], t["finished"], t["total_loss"]) == (tr.caption, tr.finished, tr.loss)
    assert (t["grid_size"], t["cells"], t["cell_pixels"], t["steps"]) == (8, 64, 8, len(tr.words))
    [layer] = t["layers"]
    np.testing.assert_array_equal(f32(layer["hidden"]), tr.decoder.hidden)
    if tr.decoder.cell_state is None:
        assert layer["cell_state"] is None and t["start"]["cell_state"] is None
    else:
        np.testing.assert_array_equal(f32(layer["cell_state"]), tr.decoder.cell_state)
        np.testing.assert_array_equal(f32(t["start"]["cell_state"]), tr.start_cell)
    assert list(layer["gates"]) == list(tr.decoder.gates)
    for name, gate in tr.decoder.gates.items():
        np.testing.assert_array_equal(f32(layer["gates"][name]), gate)
    np.testing.assert_array_equal(f32(t["start"]["hidden"]), tr.start)
    assert t["attention"] == tr.attention.tolist()
    words = list(words_vocab().tokens)
    assert t["predictions"] == [
        [{"token": words[i], "p": p} for i, p in zip(ids, ps, strict=True)]
        for ids, ps in zip(tr.top_ids.tolist(), f32(tr.top_probs).tolist(), strict=True)
    ]
    assert all(len(row) == 5 for row in t["predictions"])
    assert t["loss"] == tr.step_loss.tolist()
    g = t["grad_norms"]
    assert g["hidden"] == [tr.decoder.grad_hidden.tolist()] and g["weight_hh"] == [tr.decoder.grad_weight_hh.tolist()]
    assert g["cell_state"] == (None if tr.decoder.grad_cell_state is None else [tr.decoder.grad_cell_state.tolist()])
    assert (g["input"], g["context"], g["start"]) == (tr.grad_input.tolist(), tr.grad_context.tolist(), tr.grad_start)
    assert g["grid"] == tr.grad_grid.tolist() and g["grid_words"] == tr.grad_grid_words.tolist()
    assert (g["grid_attention"], g["grid_start"]) == (tr.grad_grid_attention.tolist(), tr.grad_grid_start.tolist())


@pytest.mark.parametrize("model_id", MODELS)
@pytest.mark.parametrize(("scene", "beam", "given"), [(0, 1, False), (1, 4, True)])
def test_the_rest_body_is_the_engines_trace_of_the_same_image(
    shapes_client: TestClient, shapes_settings: Settings, model_id: str, scene: int, beam: int, given: bool
) -> None:
    drawn = list(SCENES.values())[scene]
    png = png_of(drawn, side=128)
    query: dict[str, Any] = {"beam": beam, **({"caption": drawn.caption} if given else {})}
    r = post_caption(shapes_client, model_id, png, **query)
    assert r.status_code == 200, r.text
    body = r.json()
    loaded = load_model(shapes_settings.models_dir, model_id)
    assert_body_is_the_captioning(body, caption(loaded, png, given=drawn.caption if given else None, beam=beam))
    assert len(body["beams"]) == beam
    assert body["trace"]["target_source"] == ("given" if given else "greedy")
    if given:
        assert body["trace"]["words"] == [*drawn.caption.split(), "</s>"]


def test_the_answer_is_compressed_for_a_client_that_accepts_it_and_sent_plain_to_one_that_does_not(
    shapes_client: TestClient,
) -> None:
    """A picture's answer is one client's (never shared: its key would be the file), and was sent as raw JSON: the
    tour's captioning and speech scenes cost a room's students several hundred kB each."""
    png = png_of(next(iter(SCENES.values())))
    answers = {
        encoding: shapes_client.post("/api/models/shapes-lstm/caption", content=png,
                                     headers={"Content-Type": "image/png", "Accept-Encoding": encoding})
        for encoding in ("br", "gzip", "identity")
    }  # fmt: skip
    assert [answers[e].headers.get("content-encoding") for e in ("br", "gzip", "identity")] == ["br", "gzip", None]
    plain = answers["identity"].content
    assert answers["br"].content == answers["gzip"].content == plain  # decoded, byte for byte the same JSON
    assert int(answers["br"].headers["content-length"]) < len(plain) / 2


def test_each_row_of_attention_sums_to_one_over_the_grid(shapes_client: TestClient) -> None:
    for drawn in SCENES.values():
        attention = np.array(post_caption(shapes_client, "shapes-gru", png_of(drawn)).json()["trace"]["attention"])
        assert attention.shape[1] == 64 and (attention >= 0).all()
        np.testing.assert_allclose(attention.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_a_jpeg_is_captioned_and_precision_and_checkpoint_are_read_from_the_query(shapes_client: TestClient) -> None:
    drawn = SCENES["green square above red circle"]
    jpeg = encode(draw(drawn), "JPEG", quality=95)
    r = shapes_client.post("/api/models/shapes-lstm/caption", content=jpeg, headers={"content-type": "image/jpeg"})
    assert r.status_code == 200, r.text
    exact = post_caption(shapes_client, "shapes-lstm", png_of(drawn)).json()["trace"]
    rounded = post_caption(shapes_client, "shapes-lstm", png_of(drawn), precision=3).json()["trace"]
    assert rounded["layers"][0]["hidden"] != exact["layers"][0]["hidden"]
    np.testing.assert_allclose(rounded["layers"][0]["hidden"], exact["layers"][0]["hidden"], rtol=5e-3)
    early = post_caption(shapes_client, "shapes-lstm", png_of(drawn), checkpoint="0").json()["trace"]
    assert early["checkpoint"] == "0" and early["total_loss"] != exact["total_loss"]


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ({"caption": "a small purple circle left of a big blue square"}, 422,
         "the caption has pieces the model does not know: 'purple' at 2"),
        ({"caption": " ".join(["a"] * 201)}, 422, "query.caption"),  # over 400 characters: the schema's limit
        ({"caption": "a small red circle left of a big blue square above a"}, 422,
         "caption has 13 steps; the limit is 12 steps (max_length)"),
        ({"beam": 0}, 422, "query.beam"),
        ({"beam": 9}, 422, "query.beam"),
        ({"precision": 12}, 422, "query.precision"),
        ({"checkpoint": "50"}, 404, "checkpoint '50' does not exist"),
        ({"captoin": "a"}, 422, "query.captoin: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_a_bad_query_is_a_4xx_naming_it(
    shapes_client: TestClient, query: dict[str, Any], status: int, words: str
) -> None:
    r = post_caption(shapes_client, "shapes-rnn", png_of(SCENES["green square above red circle"]), **query)
    assert r.status_code == status, r.text
    assert words in r.json()["message"]


# Bad images, each named: the body (REST) and the image (the stream) alike


def noise_png(side: int = 64) -> bytes:
    return encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)))


def noise_jpeg() -> bytes:
    return encode(Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)), "JPEG")


SMALL = encode(Image.new("RGB", (4, 4), "white"))
BAD: dict[str, tuple[bytes, int, str]] = {
    "not an image": (b"hello, this is text", 422, "not a PNG or JPEG image: its bytes are neither"),
    "a GIF": (encode(Image.new("RGB", (8, 8), "white"), "GIF"), 422, "it is a GIF"),
    "truncated PNG": (noise_png()[: len(noise_png()) // 2], 422, "truncated or corrupt"),
    "truncated JPEG": (noise_jpeg()[: len(noise_jpeg()) // 2], 422, "truncated or corrupt"),
    "broken header": (noise_png()[:33], 422, "starts as a PNG but its header is broken or incomplete"),
    "decompression bomb": (claims(SMALL, 40_000, 40_000), 413, "the limit is 256 × 256"),
    "CMYK": (encode(Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "JPEG"), 422, "colour mode is CMYK"),
    "0 × 0": (claims(SMALL, 0, 0), 422, "the image is 0 × 0 pixels: it has none"),
    "0 × 4": (claims(SMALL, 0, 4), 422, "0 × 4 pixels"),
    "over 256 a side": (encode(Image.new("RGB", (300, 20), "white")), 413, "300 × 20 pixels; the limit is 256 × 256"),
    "empty": (b"", 422, "the file is empty"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_image_is_a_4xx_naming_the_problem(shapes_client: TestClient, case: str) -> None:
    data, status, words = BAD[case]
    r = post_caption(shapes_client, "shapes-lstm", data)
    assert r.status_code == status, r.text
    assert words in r.json()["message"]


def test_a_wrong_or_missing_content_type_is_415_naming_it(shapes_client: TestClient) -> None:
    png = png_of(SCENES["green square above red circle"])
    for sent in ("text/plain", "image/gif", "application/octet-stream"):
        r = shapes_client.post("/api/models/shapes-lstm/caption", content=png, headers={"content-type": sent})
        assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"
        assert repr(sent) in r.json()["message"] and "image/png or image/jpeg" in r.json()["message"]
    r = shapes_client.post("/api/models/shapes-lstm/caption", content=png)
    assert r.status_code == 415 and "no Content-Type" in r.json()["message"]


def padded_png(size: int) -> bytes:
    """A scene's PNG padded to `size` bytes with an ancillary chunk ("zzZz") that PNG readers skip."""
    png = png_of(SCENES["green square above red circle"])
    pad = size - len(png) - 12  # a chunk: 4 bytes of length, 4 of type, the data, 4 of CRC
    chunk = b"zzZz" + bytes(pad)
    return png[:33] + pad.to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big") + png[33:]


def test_an_image_of_1_mib_passes_the_body_limit_and_one_byte_more_is_413(shapes_client: TestClient) -> None:
    """A PNG of exactly MAX_BYTES (over the JSON routes' max_body_bytes) reads; one byte more is refused unread."""
    padded = padded_png(MAX_BYTES)
    assert len(padded) == MAX_BYTES > Settings().max_body_bytes
    r = post_caption(shapes_client, "shapes-gru", padded)
    assert r.status_code == 200, r.text
    r = post_caption(shapes_client, "shapes-gru", padded + b"\0")
    assert r.status_code == 413 and "max_image_bytes" in r.json()["message"]


def test_a_lower_max_image_bytes_holds_for_the_stream_too(shapes_settings: Settings) -> None:
    png = png_of(SCENES["green square above red circle"])
    settings = shapes_settings.model_copy(update={"max_image_bytes": len(png) - 1})
    with TestClient(create_app(settings)) as client:
        r = post_caption(client, "shapes-rnn", png)
        assert r.status_code == 413 and f"larger than {len(png) - 1} bytes (max_image_bytes)" in r.json()["message"]
        with client.websocket_connect("/api/models/shapes-rnn/stream") as ws:
            ws.send_json(stream_request(png))
            frame = ws.receive_json()
    assert frame["error"] == "too_large"
    assert frame["message"] == f"the file has {len(png)} bytes; the limit is {len(png) - 1} (max_image_bytes)"


def test_a_body_over_the_limit_is_413_before_it_is_read(server: LiveServer) -> None:
    head = (
        f"POST /api/models/shapes-lstm/caption HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        f"Content-Length: {10**12}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(head + b"\x89PNG")
        status, body = http_reply(s)
    assert status == 413 and "max_image_bytes" in orjson.loads(body)["message"]

    def chunks() -> Iterator[bytes]:  # a chunked body with no length: cut off once it passes the limit
        for _ in range(MAX_BYTES // 65536 + 2):
            yield bytes(65536)

    r = httpx.post(f"{server.url}/api/models/shapes-lstm/caption", content=chunks(), headers=PNG, timeout=60)
    assert r.status_code == 413 and "max_image_bytes" in r.json()["message"]


# The wrong family, both ways


@pytest.mark.parametrize(
    ("model_id", "does"),
    [("chars-lstm", "reads text"), ("numbers-gru", "translates"), ("toy-series-gru", "reads numbers"),
     ("speech-rnn", "transcribes speech")],
)  # fmt: skip
def test_a_model_of_another_family_refuses_caption_saying_what_it_does(
    shapes_client: TestClient, model_id: str, does: str
) -> None:
    message = f"{model_id} {does}: it does not read images (caption is served for caption models)"
    png = png_of(SCENES["green square above red circle"])
    r = post_caption(shapes_client, model_id, png)
    assert r.status_code == 409 and r.json() == {"error": "wrong_model_kind", "message": message}
    with shapes_client.websocket_connect(f"/api/models/{model_id}/stream") as ws:
        ws.send_json({"mode": "caption", "image": base64.b64encode(png).decode()})
        assert ws.receive_json() == {"type": "error", "error": "wrong_model_kind", "message": message}


def test_a_caption_model_refuses_transcribe_saying_what_it_does(shapes_client: TestClient) -> None:
    r = shapes_client.post("/api/models/shapes-rnn/transcribe", content=b"RIFF", headers={"content-type": "audio/wav"})
    assert r.status_code == 409
    assert r.json()["message"] == "shapes-rnn captions images: it does not read audio (transcribe is served for " \
        "speech models)"  # fmt: skip


def test_the_openapi_shows_the_image_body_and_its_limit(shapes_client: TestClient, shapes_settings: Settings) -> None:
    operation = shapes_client.get("/openapi.json").json()["paths"]["/api/models/{model_id}/caption"]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == {"image/png", "image/jpeg"}
    assert body["content"]["image/png"]["schema"] == {"type": "string", "format": "binary"}
    assert f"at most {shapes_settings.max_image_bytes} bytes (max_image_bytes)" in body["description"]
    assert {p["name"] for p in operation["parameters"]} == {"model_id", "caption", "beam", "checkpoint", "precision"}
    assert {"413", "415", "422", "409"} <= set(operation["responses"])


# The stream, against a real uvicorn


def stream_request(image: bytes, **fields: Any) -> dict[str, Any]:
    return {"mode": "caption", "image": base64.b64encode(image).decode(), **fields}


@pytest.mark.parametrize("batch", [1, 5])
def test_the_json_stream_sends_the_rest_bodys_values(server: LiveServer, batch: int) -> None:
    drawn = SCENES["yellow triangle left of blue circle"]
    png = png_of(drawn)
    r = httpx.post(f"{server.url}/api/models/shapes-lstm/caption?beam=3", content=png, headers=PNG, timeout=60)
    body = r.json()
    got, _ = frames_of(server, "shapes-lstm", stream_request(png, beam=3, batch=batch))
    t = body["trace"]
    T = t["steps"]
    assert [f["type"] for f in got] == ["meta"] + ["step"] * T + ["grad"] * T + ["done"]
    meta, steps, grads, done = got[0], got[1 : T + 1], got[T + 1 : 2 * T + 1], got[-1]
    assert meta["mode"] == "caption" and meta["beams"] == body["beams"] and meta["words"] == t["words"]
    assert meta["start"] == t["start"] and (meta["grid_size"], meta["cells"]) == (8, 64)
    assert meta["grad_norms"] == {k: t["grad_norms"][k] for k in ("start", "grid", "grid_attention", "grid_start")}
    assert [f["word"] for f in steps] == t["words"] and [f["input"] for f in steps] == t["inputs"]
    assert [f["attention"] for f in steps] == t["attention"]
    assert [f["prediction"] for f in steps] == t["predictions"] and [f["loss"] for f in steps] == t["loss"]
    layer = t["layers"][0]
    assert [f["layers"][0]["hidden"] for f in steps] == layer["hidden"]
    assert [f["layers"][0]["cell_state"] for f in steps] == layer["cell_state"]
    assert [f["layers"][0]["gates"] for f in steps] == [{n: g[s] for n, g in layer["gates"].items()} for s in range(T)]
    assert [f["t"] for f in grads] == list(range(T - 1, -1, -1))
    g = t["grad_norms"]
    assert [f["hidden"] for f in reversed(grads)] == np.array(g["hidden"]).T.tolist()
    assert [f["cell_state"] for f in reversed(grads)] == np.array(g["cell_state"]).T.tolist()
    assert [f["context"] for f in reversed(grads)] == g["context"]
    assert [f["grid"] for f in reversed(grads)] == g["grid_words"]
    assert done == {"type": "done", "caption": body["caption"], "total_loss": t["total_loss"]}


@pytest.mark.parametrize("model_id", MODELS)
def test_the_binary_stream_holds_the_json_bodys_values(server: LiveServer, model_id: str) -> None:
    drawn = SCENES["green square above red circle"]
    png = png_of(drawn, side=200)
    query = {"caption": drawn.caption}
    body = httpx.post(f"{server.url}/api/models/{model_id}/caption", params=query, content=png, headers=PNG).json()
    got, _ = frames_of(server, model_id, stream_request(png, encoding="binary", batch=4, **query))
    meta, done = got[0], got[-1]
    t = body["trace"]
    T = meta["steps"]
    assert T == t["steps"] == len(drawn.caption.split()) + 1 and done["type"] == "done"
    records = b"".join(m for m in got if isinstance(m, bytes))
    step_blob, grad_blob = sections(records, [(T, meta["step_record_bytes"]), (T, meta["grad_record_bytes"])])
    steps = step_arrays(step_blob, meta["layout"], T)
    grads = grad_arrays(grad_blob, meta["grad_layout"], T)
    layer = t["layers"][0]
    np.testing.assert_array_equal(steps["layers.0.hidden"], f32(layer["hidden"]))
    for name, gate in layer["gates"].items():
        np.testing.assert_array_equal(steps[f"layers.0.gates.{name}"], f32(gate))
    assert ("layers.0.cell_state" in steps) == (layer["cell_state"] is not None)
    np.testing.assert_array_equal(steps["attention"], f32(t["attention"]))
    np.testing.assert_allclose(steps["attention"].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(steps["loss"], f32(t["loss"]))
    np.testing.assert_array_equal(steps["prediction.p"], f32([[p["p"] for p in row] for row in t["predictions"]]))
    words = list(words_vocab().tokens)
    assert [[words[i] for i in row] for row in steps["prediction.token_id"].tolist()] == [
        [p["token"] for p in row] for row in t["predictions"]
    ]
    g = t["grad_norms"]
    assert grads["hidden.0"].tolist() == g["hidden"][0] and grads["weight_hh.0"].tolist() == g["weight_hh"][0]
    assert grads["input"].tolist() == g["input"] and grads["context"].tolist() == g["context"]
    assert grads["grid"].tolist() == g["grid_words"]


def test_an_image_of_1_mib_passes_in_the_stream_too(server: LiveServer) -> None:
    got, _ = frames_of(server, "shapes-rnn", stream_request(padded_png(MAX_BYTES), encoding="binary", batch=64))
    assert got[0]["type"] == "meta" and got[-1]["type"] == "done"


STREAM_BAD: dict[str, tuple[dict[str, Any], int, str]] = {
    "bad base64": ({"mode": "caption", "image": "iVBOR!!!"}, 4422, "image: Value error, not valid base64"),
    "base64 of a wrong length": ({"mode": "caption", "image": "iVBORw0"}, 4422, "not valid base64"),
    "image missing": ({"mode": "caption"}, 4422, "image: Field required"),
    "image not a string": ({"mode": "caption", "image": 5}, 4422, "expected a string of base64"),
    "beam a string": ({**stream_request(SMALL), "beam": "4"}, 4422, "beam: Value error, expected a number"),
    "an unknown word": (stream_request(SMALL, caption="a big pink circle"), 4422, "'pink' at 2"),
    "over 1 MiB": (stream_request(b"\x89PNG\r\n\x1a\n" + bytes(MAX_BYTES)), 4413, "the limit is 1048576"),
    **{case: (stream_request(data), 4000 + status, words) for case, (data, status, words) in BAD.items()},
}


@pytest.mark.parametrize("case", list(STREAM_BAD))
def test_a_bad_image_in_the_stream_is_an_error_frame_naming_it_then_a_close(server: LiveServer, case: str) -> None:
    request, code, words = STREAM_BAD[case]
    got, closed = frames_of(server, "shapes-lstm", request)
    assert len(got) == 1 and got[0]["type"] == "error", got
    assert words in got[0]["message"]
    assert closed == code
