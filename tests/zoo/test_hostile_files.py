"""Hostile model files and ids (issue 23): a compressed torch file (a zip bomb for torch.load), a vocabulary whose
duplicate check was quadratic, ids with a trailing newline, two writers of one id, JSON nested 200,000 deep, too
many --map fields, and a 5,000-character id echoed in a 404. Each is refused by name, with nothing written."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from app.zoo import importer
from tests.conftest import LiveServer, write_model
from tests.web.test_upload import auth, listing, server, upload
from tests.zoo.test_import import LABELS, WORDS, review_upload, train_review_model

BOMB_ZEROS = 16_000_000  # float32 zeros in the compressed file: 64 MB once inflated, ~60 kB deflated


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("hostile-models")
    write_model(models, "chars-gru", "gru", "next_token")
    return models


@pytest.fixture(scope="module")
def admin(folder: Path) -> Iterator[LiveServer]:
    with server(folder) as live:
        yield live


@pytest.fixture(scope="module")
def review(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return review_upload(tmp_path_factory.mktemp("review-src"))


def deflated(source: Path, target: Path) -> None:
    """The torch file's archive rewritten with every record DEFLATE-compressed (torch.save stores them)."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for record in src.infolist():
            out.writestr(record.filename, src.read(record), compress_type=zipfile.ZIP_DEFLATED)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real review model's state dict with 64 MB of zeros beside it, saved by torch.save, then deflated."""
    src = tmp_path_factory.mktemp("bomb")
    state = dict(train_review_model().state_dict())
    state["padding"] = torch.zeros(BOMB_ZEROS)
    torch.save(state, src / "stored.pt")
    deflated(src / "stored.pt", src / "bomb.pt")
    return src / "bomb.pt"


def test_torch_save_stores_its_records_and_they_import(tmp_path: Path) -> None:
    """What the check lets through: a plain torch.save file (every record stored), imported as before."""
    torch.save(train_review_model().state_dict(), tmp_path / "plain.pt")
    with zipfile.ZipFile(tmp_path / "plain.pt") as archive:
        assert {r.compress_type for r in archive.infolist()} == {zipfile.ZIP_STORED}
    (tmp_path / "vocab.json").write_text(json.dumps(WORDS))
    (tmp_path / "labels.json").write_text(json.dumps(LABELS))
    done = importer.build(tmp_path / "plain.pt", tmp_path / "vocab.json", "plain", labels_path=tmp_path / "labels.json")
    assert done.card.cell == "gru"


def test_a_compressed_torch_file_is_refused_before_it_is_inflated(bomb: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(bomb) as archive:
        inflated = sum(r.file_size for r in archive.infolist())
    assert inflated > 100 * bomb.stat().st_size  # a bomb in miniature: it inflates to > 100× its size
    (tmp_path / "vocab.json").write_text(json.dumps(WORDS))
    with pytest.raises(importer.ImportProblem, match=r"bomb\.pt: its record '.*' is compressed") as refused:
        importer.build(bomb, tmp_path / "vocab.json", "bomb")  # `unrolled import` of a downloaded file
    assert "torch.save stores records uncompressed" in str(refused.value)


def test_a_compressed_torch_upload_is_422_and_nothing_is_written(admin: LiveServer, folder: Path, bomb: Path) -> None:
    before = listing(folder)
    r = upload(admin.url, {"weights": bomb.read_bytes(), "vocab": json.dumps(WORDS).encode()}, id="bomb")
    assert r.status_code == 422 and r.json()["error"] == "bad_model", r.text
    assert "is compressed" in r.json()["message"] and "nothing was written" in r.json()["message"]
    assert listing(folder) == before


def big_vocab_model(tmp_path: Path, vocab: list[str]) -> tuple[Path, Path, Path]:
    """A classifier with one embedding row per token (safetensors), its vocabulary and labels."""
    torch.manual_seed(0)
    state = {
        "embedding.weight": torch.randn(len(vocab), 2),
        **{f"gru.{k}": v for k, v in nn.GRU(2, 3).state_dict().items()},
        "out.weight": torch.randn(2, 3),
        "out.bias": torch.zeros(2),
    }
    save_file(state, str(tmp_path / "big.safetensors"))
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "labels.json").write_text(json.dumps(LABELS))
    return tmp_path / "big.safetensors", tmp_path / "vocab.json", tmp_path / "labels.json"


def test_a_duplicate_in_a_20000_token_vocabulary_is_named_with_its_positions(tmp_path: Path) -> None:
    """The duplicate check was tokens.count(t) for each token: 20,000² comparisons (7 s) for a late duplicate;
    one pass over a dict now, and the message says where both are."""
    vocab = ["<unk>", *(f"w{i}" for i in range(1, 20_000))]
    vocab[19_999] = vocab[19_000]
    weights, vocab_path, labels = big_vocab_model(tmp_path, vocab)
    with pytest.raises(importer.ImportProblem) as refused:
        importer.build(weights, vocab_path, "dup", labels_path=labels)
    assert "holds 'w19000' twice: at positions 19000 and 19999" in str(refused.value)


def test_reading_an_upload_takes_its_size_from_the_byte_budget(folder: Path, tmp_path: Path) -> None:
    """A vocabulary is read and checked in a thread nothing can cancel: what that takes is held in the byte budget
    (max_bytes_in_flight) first, and past it the upload is a 503, read no further."""
    vocab = ["<unk>", *(f"w{i}" for i in range(1, 20_000))]  # ~180 kB of JSON: ~7 MB read
    weights, vocab_path, labels = big_vocab_model(tmp_path, vocab)
    files = {"weights": weights.read_bytes(), "vocab": vocab_path.read_bytes(), "labels": labels.read_bytes()}
    before = listing(folder)
    with server(folder, UNROLLED_MAX_BYTES_IN_FLIGHT="1000000") as small:
        r = upload(small.url, files, id="big-vocab")
    assert r.status_code == 503 and "max_bytes_in_flight" in r.json()["message"], r.text
    assert listing(folder) == before


def test_an_id_with_a_trailing_newline_is_refused(admin: LiveServer, folder: Path, review: dict[str, bytes]) -> None:
    """re's `$` matches before a final newline: "nl2\\n" wrote nl2\\n.json and nl2\\n.safetensors, listed and served."""
    before = listing(folder)
    r = upload(admin.url, review, id="nl2\n")
    assert r.status_code == 422 and "use lower-case letters" in r.json()["message"], r.text
    src = folder.parent / "nl-src"
    src.mkdir(exist_ok=True)
    for name, data in review.items():
        (src / name).write_bytes(data)
    with pytest.raises(importer.ImportProblem, match="--id 'nl2\\\\n'"):  # `unrolled import --id 'nl2\n'`
        importer.build(src / "weights", src / "vocab", "nl2\n", labels_path=src / "labels")
    assert listing(folder) == before
    assert not importer.valid_id("nl2\n") and importer.valid_id("nl2")


def test_an_id_claimed_by_another_writer_is_409(admin: LiveServer, folder: Path, review: dict[str, bytes]) -> None:
    """The claim is the id's lock between servers sharing a folder: while another holds it (an upload of the id
    being written, on any server), an upload or delete of the id is a 409 and nothing is written."""
    before = listing(folder)
    with importer.claim(folder, "claimed"):
        r = upload(admin.url, review, id="claimed")
        assert r.status_code == 409 and r.json()["error"] == "busy_id", r.text
    assert listing(folder) == before
    assert upload(admin.url, review, id="claimed").status_code == 201  # released: the id is free again
    with importer.claim(folder, "claimed"):
        r = httpx.delete(f"{admin.url}/api/models/claimed", headers=auth())
        assert r.status_code == 409 and "being written" in r.json()["message"]
    assert httpx.delete(f"{admin.url}/api/models/claimed", headers=auth()).status_code == 204


def test_two_servers_uploading_one_id_at_once_give_one_201_and_one_409(
    admin: LiveServer, folder: Path, review: dict[str, bytes]
) -> None:
    """Both were 201 in 7 of 15 rounds (the last writer won, and a card and weights of two uploads could pair up);
    and an upload racing a delete on another server was written, then answered 404."""
    with server(folder) as other, ThreadPoolExecutor(2) as pool:
        for round_ in range(6):
            model_id = f"race-{round_}"
            sent = [pool.submit(upload, url, review, id=model_id) for url in (admin.url, other.url)]
            answers = [f.result() for f in sent]
            assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
            loser = next(r for r in answers if r.status_code == 409)
            assert loser.json()["error"] in ("exists", "busy_id")
            # an upload of a new id against a delete of it: the upload is never answered 404
            gone = httpx.delete(f"{other.url}/api/models/{model_id}", headers=auth())
            assert gone.status_code == 204
            up = pool.submit(upload, admin.url, review, id=model_id)
            down = pool.submit(httpx.delete, f"{other.url}/api/models/{model_id}", headers=auth())
            assert up.result().status_code == 201, up.result().text
            assert down.result().status_code in (204, 404, 409)
            card = folder / f"{model_id}.json"
            assert card.is_file() == (down.result().status_code != 204)
            card.unlink(missing_ok=True)
            card.with_suffix(".safetensors").unlink(missing_ok=True)


@pytest.mark.parametrize("field", ["vocab", "labels"])
def test_json_nested_200000_deep_is_422(admin: LiveServer, review: dict[str, bytes], field: str) -> None:
    """It was a plain-text 500 with a stack trace in the log (the JSON decoder's RecursionError)."""
    files = {**review, field: b"[" * 200_000}
    r = upload(admin.url, files, id="deep")
    assert r.status_code == 422 and r.json()["error"] == "bad_model", r.text
    assert "nested too deeply" in r.json()["message"]


def test_more_than_16_map_fields_are_refused(admin: LiveServer, review: dict[str, bytes]) -> None:
    r = upload(admin.url, review, id="maps", map=[f"gru{i}=rnn" for i in range(17)])
    assert r.status_code == 422 and "map: 17 renames; the limit is 16" in r.json()["message"], r.text


def test_a_long_bad_id_is_not_echoed_whole(admin: LiveServer) -> None:
    bad = "x" * 5_000
    for r in (
        httpx.get(f"{admin.url}/api/models/{bad}"),
        httpx.post(f"{admin.url}/api/models/{bad}/trace", json={"text": "a"}),
        httpx.delete(f"{admin.url}/api/models/{bad}", headers=auth()),
    ):
        assert r.status_code == 404, r.text[:200]
        message = r.json()["message"]
        assert f"{'x' * 64}'…" in message and "x" * 65 not in message
