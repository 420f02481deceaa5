"""POST /api/models and DELETE /api/models/{id} against real servers: off without an admin token, 401 on a wrong
one, 413 over max_upload_bytes, every bad file 422 by name with nothing written, a good upload served at once (and
exact against the float64 oracle), deletes only of uploaded models, and two servers sharing one models folder."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import torch

from app.client import Client
from app.web.config import Settings
from tests.conftest import LiveServer, write_model
from tests.web.test_stream import expect_error
from tests.zoo.test_import import (
    LABELS,
    assert_traced_as_the_module,
    bad_cases,
    check_against_oracle,
    review_upload,
    train_char_model,
    train_set_model,
)

TOKEN = "s3cret-admin-token-for-the-tests"
LIMIT = 400_000  # max_upload_bytes for these servers
BODY_LIMIT = 1024  # their max_body_bytes: every upload below is larger, so the upload's own limit is what applies


def server(models: Path, **env: str) -> LiveServer:
    settings = Settings(models_dir=models, max_steps=200, max_generate=10, max_concurrent=2, send_timeout=5.0)
    return LiveServer(settings, UNROLLED_ADMIN_TOKEN=TOKEN, UNROLLED_MAX_UPLOAD_BYTES=str(LIMIT),
                      UNROLLED_MAX_BODY_BYTES=str(BODY_LIMIT), **env)  # fmt: skip


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shared-models")
    write_model(folder, "chars-gru", "gru", "next_token")  # one of "the zoo": read-only
    return folder


@pytest.fixture(scope="module")
def live_admin(models: Path) -> Iterator[LiveServer]:
    with server(models) as live:
        yield live


@pytest.fixture(scope="module")
def review_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return review_upload(tmp_path_factory.mktemp("review"))  # its weights alone are over BODY_LIMIT


def upload(url: str, files: dict[str, bytes], token: str | None = TOKEN, **fields: str | list[str]) -> httpx.Response:
    parts = [(name, (f"{name}.bin" if name == "weights" else f"{name}.json", data)) for name, data in files.items()]
    return httpx.post(f"{url}/api/models", files=parts, data=fields, headers=auth(token) if token else {}, timeout=60)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_uploads_are_off_without_an_admin_token(live: LiveServer, review_files: dict[str, bytes]) -> None:
    r = upload(live.url, review_files, token=None, id="nope")  # no token sent: 401, saying uploads are off
    assert r.status_code == 401 and "uploads are off" in r.json()["message"]
    r = upload(live.url, review_files, id="nope")
    assert r.status_code == 403 and r.json()["error"] == "uploads_off" and "UNROLLED_ADMIN_TOKEN" in r.json()["message"]
    r = httpx.delete(f"{live.url}/api/models/chars-lstm", headers=auth())
    assert r.status_code == 403 and r.json()["error"] == "uploads_off"
    assert httpx.get(f"{live.url}/api/models/chars-lstm").status_code == 200


def test_a_missing_or_wrong_token_is_401(live_admin: LiveServer, review_files: dict[str, bytes], models: Path) -> None:
    before = listing(models)
    for token in (None, "wrong", TOKEN[:-1], TOKEN + "x"):
        r = upload(live_admin.url, review_files, token=token, id="nope")
        assert r.status_code == 401, (token, r.text)
        assert r.headers["www-authenticate"] == "Bearer" and r.json()["error"] == "unauthorized"
    r = httpx.delete(f"{live_admin.url}/api/models/chars-gru", headers=auth("wrong"))
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = httpx.post(f"{live_admin.url}/api/models", headers={"Authorization": f"Basic {TOKEN}"})
    assert r.status_code == 401
    r = httpx.post(f"{live_admin.url}/api/models", headers={b"authorization": "Bearer é".encode()})
    assert r.status_code == 401
    assert listing(models) == before


def test_a_body_over_the_upload_limit_is_413(live_admin: LiveServer, models: Path) -> None:
    before = listing(models)
    big = {"weights": b"\0" * (LIMIT + 1), "vocab": b"[]"}
    r = upload(live_admin.url, big, id="big")
    assert r.status_code == 413 and r.json()["error"] == "too_large" and "max_upload_bytes" in r.json()["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while the route reads it
        yield b'--x\r\nContent-Disposition: form-data; name="weights"; filename="w.bin"\r\n\r\n'
        for _ in range(LIMIT // 65536 + 2):
            yield b"\0" * 65536

    headers = {**auth(), "content-type": "multipart/form-data; boundary=x"}
    r = httpx.post(f"{live_admin.url}/api/models", content=chunks(), headers=headers, timeout=60)
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    # the upload's limit is its own: every other route keeps max_body_bytes (BODY_LIMIT here)
    r = httpx.post(f"{live_admin.url}/api/models/chars-gru/trace", json={"text": "a" * (BODY_LIMIT + 10)})
    assert r.status_code == 413 and "max_body_bytes" in r.json()["message"]
    assert listing(models) == before


def test_bad_fields_are_422(live_admin: LiveServer, review_files: dict[str, bytes]) -> None:
    url = live_admin.url
    cases: list[tuple[dict[str, bytes], dict[str, str], str]] = [
        (review_files, {}, "id: the model's id is required"),
        (review_files, {"id": "../evil"}, "use lower-case letters"),
        (review_files, {"id": "ok", "level": "byte"}, "level: 'byte' is not one of char, word"),
        (review_files, {"id": "ok", "cell": "transformer"}, "cell: 'transformer' is not one of"),
        (review_files, {"id": "ok", "colour": "red"}, "unknown fields ['colour']"),
        ({"vocab": review_files["vocab"]}, {"id": "ok"}, "weights: a file is required"),
        (review_files, {"id": "ok", "map": "nonsense"}, "write FROM=TO"),
    ]
    for files, fields, says in cases:
        r = upload(url, files, **fields)
        assert r.status_code == 422, (fields, r.text)
        assert says in r.json()["message"], (fields, r.json())
    r = httpx.post(f"{url}/api/models", data={"id": "ok", "weights": "text, not a file"}, headers=auth())
    assert r.status_code == 422 and "weights: give one file" in r.json()["message"]
    r = httpx.post(f"{url}/api/models", content=b"{}", headers={**auth(), "content-type": "application/json"})
    assert r.status_code == 422


def test_every_bad_file_is_422_by_name_and_nothing_is_written(
    live_admin: LiveServer, models: Path, tmp_path: Path
) -> None:
    before = listing(models)
    for name, args, says in bad_cases(tmp_path):
        opts = dict(zip(args[::2], args[1::2], strict=True))
        files = {"weights": (tmp_path / name).read_bytes(), "vocab": Path(opts.pop("--vocab")).read_bytes()}
        if "--labels" in opts:
            files["labels"] = Path(opts.pop("--labels")).read_bytes()
        fields = {k.removeprefix("--"): v for k, v in opts.items()}
        r = upload(live_admin.url, files, id="bad", **fields)
        assert r.status_code == 422, (name, r.text)
        body = r.json()
        assert body["error"] == "bad_model" and says in body["message"] and "nothing was written" in body["message"]
        assert listing(models) == before, f"{name} left files"
    assert not list(Path("/tmp").glob("unrolled-upload-*"))  # the temporary copies are gone too


def test_a_good_upload_is_served_exactly_and_deleted(
    live_admin: LiveServer, models: Path, review_files: dict[str, bytes], tmp_path: Path
) -> None:
    url = live_admin.url
    r = upload(url, review_files, id="up-gru")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["model"]["id"] == "up-gru" and body["model"]["task"] == "imported"
    assert "gru.* → rnn.*" in body["matched"] and "out.* → head.*" in body["matched"]
    r = httpx.post(f"{url}/api/models/up-gru/trace", json={"text": "a very good film"})  # served at once, here
    assert r.status_code == 200, r.text
    check_against_oracle(r.json(), models, "up-gru", r.json()["token_ids"], "last")
    assert upload(url, review_files, id="up-gru").status_code == 409  # an id is not overwritten by an upload

    # a bidirectional char model from a torch state dict, with its map of names
    char, vocab = train_char_model()
    torch.save({"net." + k: v for k, v in char.state_dict().items()}, tmp_path / "char.pt")
    files = {"weights": (tmp_path / "char.pt").read_bytes(), "vocab": json.dumps(vocab).encode()}
    r = upload(url, files, id="up-bilstm", map=["net.lstm=rnn"], level="char")
    assert r.status_code == 201, r.text
    assert "lstm.* → rnn.*" not in r.json()["matched"]
    trace = httpx.post(f"{url}/api/models/up-bilstm/trace", json={"text": "the cat"}).json()
    assert [layer["direction"] for layer in trace["layers"]] == ["forward", "reverse"] * 2
    check_against_oracle(trace, models, "up-bilstm", trace["token_ids"], "sum")
    arrays = Client(url).trace("up-bilstm", "the cat")  # …and the client's arrays are the same values
    for k, layer in enumerate(trace["layers"]):
        np.testing.assert_array_equal(arrays[f"layers.{k}.hidden"], np.array(layer["hidden"], dtype=np.float32))
        np.testing.assert_array_equal(arrays[f"grad_norms.hidden.{k}"], trace["grad_norms"]["hidden"][k])

    r = httpx.delete(f"{url}/api/models/chars-gru", headers=auth())
    assert r.status_code == 403 and r.json()["error"] == "read_only" and "zoo" in r.json()["message"]
    assert (models / "chars-gru.json").exists() and (models / "chars-gru.safetensors").exists()
    assert httpx.delete(f"{url}/api/models/nothing-here", headers=auth()).status_code == 404
    assert httpx.delete(f"{url}/api/models/..", headers=auth()).status_code == 404
    for model_id in ("up-gru", "up-bilstm"):
        r = httpx.delete(f"{url}/api/models/{model_id}", headers=auth())
        assert r.status_code == 204, r.text
        assert httpx.get(f"{url}/api/models/{model_id}").status_code == 404
        assert not (models / f"{model_id}.json").exists() and not (models / f"{model_id}.safetensors").exists()
    assert listing(models) == ["chars-gru.json", "chars-gru.safetensors", "checkpoints"]


def test_an_upload_without_an_unknown_token_is_served_as_it_is(
    live_admin: LiveServer, models: Path, tmp_path: Path
) -> None:
    """A vocabulary built from set(text), uploaded: its ids the script's, its trace the script's module, and a
    character outside it refused by name, by REST (422) and on the stream (an error frame, then close 4422)."""
    url = live_admin.url
    model, vocab = train_set_model()
    torch.save(model.state_dict(), tmp_path / "set.pt")
    files = {"weights": (tmp_path / "set.pt").read_bytes(), "vocab": json.dumps(vocab).encode()}
    r = upload(url, files, id="up-set")
    assert r.status_code == 201, r.text
    assert any("no unknown token" in line for line in r.json()["matched"])
    card = httpx.get(f"{url}/api/models/up-set").json()
    assert card["vocab"] == vocab and card["unk"] is None
    text = "the log sat on the dog"
    r = httpx.post(f"{url}/api/models/up-set/trace", json={"text": text, "top_k": 3})
    assert r.status_code == 200, r.text
    assert_traced_as_the_module(r.json(), model, vocab, text)
    check_against_oracle(r.json(), models, "up-set", r.json()["token_ids"], "sum")
    r = httpx.post(f"{url}/api/models/up-set/trace", json={"text": "the fox"})
    assert r.status_code == 422 and r.json()["error"] == "invalid", r.text
    assert "'f' at 4, 'x' at 6" in r.json()["message"]
    frame, code = expect_error(live_admin, "up-set", orjson.dumps({"text": "the fox"}).decode())
    assert frame["type"] == "error" and frame["error"] == "invalid" and code == 4422
    assert "'f' at 4, 'x' at 6" in str(frame["message"])
    assert httpx.delete(f"{url}/api/models/up-set", headers=auth()).status_code == 204


def test_two_servers_sharing_a_folder_both_serve_an_upload(
    live_admin: LiveServer, models: Path, review_files: dict[str, bytes]
) -> None:
    with server(models) as other:
        assert httpx.get(f"{other.url}/api/models/shared-gru").status_code == 404
        r = upload(live_admin.url, review_files, id="shared-gru")
        assert r.status_code == 201, r.text
        start = time.monotonic()
        while httpx.get(f"{other.url}/api/models/shared-gru").status_code != 200:
            assert time.monotonic() - start < 6, "the other server did not serve the upload within 6 s"
            time.sleep(0.2)
        traces = [
            httpx.post(f"{s.url}/api/models/shared-gru/trace", json={"text": "not a good plot"}).json()
            for s in (live_admin, other)
        ]
        assert traces[0] == traces[1] and traces[0]["label"] in LABELS
        # …and a delete through the other server is seen by the first
        assert httpx.delete(f"{other.url}/api/models/shared-gru", headers=auth()).status_code == 204
        start = time.monotonic()
        while httpx.get(f"{live_admin.url}/api/models/shared-gru").status_code != 404:
            assert time.monotonic() - start < 6, "the first server still serves a deleted model after 6 s"
            time.sleep(0.2)
