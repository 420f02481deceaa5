"""`unrolled import` of models trained by a plain PyTorch script (not our trainer), traced through REST against a
float64 oracle; every bad file refused by name with nothing written; a running server serving a new import."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save_file
from torch import Tensor, nn

from app.cli import main
from app.engine.family import load_model
from app.web.app import create_app
from app.web.config import ROOT, Settings
from app.zoo.zoo import Zoo
from tests.conftest import LiveServer, write_model
from tests.engine.test_trace import STATE_TOL, assert_close_rel
from tests.reference import reference

TEXT = "the cat sat on the mat. the dog sat on the log. "
CHARS = sorted(set(TEXT))
WORDS = ["<unk>", "good", "bad", "film", "plot", "not", "very", "a", "the", "great", "awful"]
LABELS = ["negative", "positive"]


class CharModel(nn.Module):
    """Someone's own next-character model: their names (emb, lstm, fc), two bidirectional LSTM layers."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, 8)
        self.lstm = nn.LSTM(8, 12, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(24, vocab)

    def forward(self, ids: Tensor) -> Tensor:
        out, _ = self.lstm(self.emb(ids))
        logits: Tensor = self.fc(out)
        return logits


class ReviewModel(nn.Module):
    """Someone's own review classifier: embedding, a one-layer GRU (time first), a head named out."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(len(WORDS), 6)
        self.gru = nn.GRU(6, 10)
        self.out = nn.Linear(10, len(LABELS))

    def forward(self, ids: Tensor) -> Tensor:  # (T, B) → (B, labels) at the last step
        out, _ = self.gru(self.embedding(ids))
        logits: Tensor = self.out(out[-1])
        return logits


def train_char_model() -> tuple[CharModel, list[str]]:
    """A few Adam steps on a text; the vocabulary puts <unk> last, as people's own often do."""
    torch.manual_seed(0)
    vocab = [*CHARS, "<unk>"]
    model = CharModel(len(vocab))
    ids = torch.tensor([[vocab.index(c) for c in TEXT]])
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(ids[:, :-1])[0], ids[0, 1:])
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    return model.eval(), vocab


class SetCharModel(nn.Module):
    """Someone's next-character model over a vocabulary built from set(text): no unknown token (the text has none),
    and the space, first in sorted order, is id 0."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, 8)
        self.gru = nn.GRU(8, 10, batch_first=True)
        self.fc = nn.Linear(10, vocab)

    def forward(self, ids: Tensor) -> tuple[Tensor, Tensor]:  # (B, T) → hidden states (B, T, H), logits (B, T, V)
        out, _ = self.gru(self.emb(ids))
        logits: Tensor = self.fc(out)
        return out, logits


def train_set_model() -> tuple[SetCharModel, list[str]]:
    torch.manual_seed(2)
    vocab = sorted(set(TEXT))
    model = SetCharModel(len(vocab))
    ids = torch.tensor([[vocab.index(c) for c in TEXT]])
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(60):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(ids[:, :-1])[1][0], ids[0, 1:])
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    return model.eval(), vocab


def assert_traced_as_the_module(body: dict[str, Any], model: SetCharModel, vocab: list[str], text: str) -> None:
    """The trace of `text` is the script's own module run on the script's own ids (in float64)."""
    ids = [vocab.index(c) for c in text]
    assert body["token_ids"] == ids and body["tokens"] == list(text) and body["unknown"] == []
    hidden, logits = model.double()(torch.tensor([ids]))
    np.testing.assert_allclose(np.array(body["layers"][0]["hidden"]), hidden[0].detach().numpy(), atol=STATE_TOL)
    probs = logits[0].softmax(-1).detach().numpy()
    best = [step[0] for step in body["predictions"]]
    assert [p["token"] for p in best] == [vocab[i] for i in probs.argmax(-1)]
    np.testing.assert_allclose([p["p"] for p in best], probs.max(-1), atol=STATE_TOL)
    model.float()


def greedy(model: SetCharModel, vocab: list[str], prompt: str, length: int) -> str:
    """What the script's own module writes after `prompt`, always its likeliest character (in float64)."""
    ids = [vocab.index(c) for c in prompt]
    for _ in range(length):
        ids.append(int(model.double()(torch.tensor([ids]))[1][0, -1].argmax()))
    model.float()
    return "".join(vocab[i] for i in ids[len(prompt) :])


def train_review_model() -> ReviewModel:
    torch.manual_seed(1)
    model = ReviewModel()
    data = [("a good film", 1), ("a very great plot", 1), ("a bad film", 0), ("not good", 0), ("awful plot", 0)]
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(20):
        for text, label in data:
            ids = torch.tensor([[WORDS.index(w)] for w in text.split()])
            opt.zero_grad()
            nn.functional.cross_entropy(model(ids), torch.tensor([label])).backward()  # type: ignore[no-untyped-call]
            opt.step()
    return model.eval()


def review_upload(folder: Path) -> dict[str, bytes]:
    """A trained review model's files as an upload sends them (weights, vocab, labels), the weights kept in `folder`."""
    save_file(
        {k: v.contiguous() for k, v in train_review_model().state_dict().items()}, str(folder / "review.safetensors")
    )
    return {
        "weights": (folder / "review.safetensors").read_bytes(),
        "vocab": json.dumps(WORDS).encode(),
        "labels": json.dumps(LABELS).encode(),
    }


def run_import(*args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "app.cli", "import", *map(str, args)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CharModel, ReviewModel]:
    """Both models written as their scripts would (a torch state dict; safetensors) and imported by the CLI."""
    src, models = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("models")
    char, vocab = train_char_model()
    torch.save(char.state_dict(), src / "char.pt")
    (src / "char-vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    done = run_import(src / "char.pt", "--vocab", src / "char-vocab.json", "--id", "my-bilstm", "--models-dir", models)
    assert done.returncode == 0, done.stderr
    for line in ("emb.* → embedding.*", "lstm.* → rnn.*", "fc.* → head.*", "2 layers, bidirectional"):
        assert line in done.stdout
    review = train_review_model()
    save_file({k: v.contiguous() for k, v in review.state_dict().items()}, str(src / "review.safetensors"))
    (src / "words.json").write_text(json.dumps(WORDS))
    (src / "labels.json").write_text(json.dumps(LABELS))
    done = run_import(src / "review.safetensors", "--vocab", src / "words.json", "--labels", src / "labels.json",
                      "--id", "my-gru", "--models-dir", models)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "gru.* → rnn.*" in done.stdout and "out.* → head.*" in done.stdout
    return models, char, review


@pytest.fixture(scope="module")
def client(imported: tuple[Path, CharModel, ReviewModel]) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(models_dir=imported[0]))) as c:
        yield c


def check_against_oracle(body: dict[str, object], models: Path, model_id: str, ids: list[int], mode: str) -> None:
    loaded = load_model(models, model_id)
    ref = reference(loaded.model, ids, mode)  # type: ignore[arg-type]
    layers = body["layers"]
    grads = body["grad_norms"]
    assert isinstance(layers, list) and isinstance(grads, dict)
    assert len(layers) == len(ref.hidden)
    for j, layer in enumerate(layers):
        np.testing.assert_allclose(np.array(layer["hidden"]), ref.hidden[j].numpy(), atol=STATE_TOL)
        for name, values in layer["gates"].items():
            np.testing.assert_allclose(np.array(values), ref.gates[j][name].numpy(), atol=STATE_TOL, err_msg=name)
        assert_close_rel(np.array(grads["hidden"][j]), ref.grad_hidden[j])
        assert_close_rel(np.array(grads["weight_hh"][j]), ref.grad_weight_hh[j])
        if ref.grad_cell_state[j] is not None:
            assert_close_rel(np.array(grads["cell_state"][j]), ref.grad_cell_state[j])  # type: ignore[arg-type]
    assert_close_rel(np.array(grads["input"]), ref.grad_input)


def test_a_bidirectional_lstm_trained_elsewhere_traces_exactly(
    imported: tuple[Path, CharModel, ReviewModel], client: TestClient
) -> None:
    models, char, _ = imported
    text = "the cat sat on the log"
    r = client.post("/api/models/my-bilstm/trace", json={"text": text, "top_k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [layer["direction"] for layer in body["layers"]] == ["forward", "reverse"] * 2
    check_against_oracle(body, models, "my-bilstm", body["token_ids"], "sum")
    # …and the oracle is the script's own module: the same probabilities for the same text, in float64
    vocab = [*CHARS, "<unk>"]
    own = char.double()(torch.tensor([[vocab.index(c) for c in text]])).softmax(-1)[0]
    best = [p["token"] for p in (step[0] for step in body["predictions"])]
    assert best == [vocab[i] for i in own.argmax(-1).tolist()]
    top = np.array([[p["p"] for p in step] for step in body["predictions"]])
    np.testing.assert_allclose(top[:, 0], own.max(-1).values.detach().numpy(), atol=STATE_TOL)
    assert body["tokens"] == list(text) and body["unknown"] == []
    # its ids are the script's, <unk> last as the script put it (no row moved): the card's vocabulary is the file's
    assert body["token_ids"] == [vocab.index(c) for c in text]
    card = client.get("/api/models/my-bilstm").json()
    assert card["vocab"] == vocab and card["unk"] == "<unk>"
    r = client.post("/api/models/my-bilstm/trace", json={"text": "the fox"})  # f and x: read as <unk>, listed
    assert r.status_code == 200, r.text
    assert r.json()["unknown"] == [4, 6] and r.json()["token_ids"][4] == vocab.index("<unk>")


def test_a_vocabulary_without_an_unknown_token_is_imported_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A vocabulary built from set(text): its ids, tokens and rows as the script left them, its traces the script's
    module, and text outside it refused by name (422: the character and its position), not read as another token."""
    model, vocab = train_set_model()
    assert "<unk>" not in vocab and vocab[0] == " "
    torch.save(model.state_dict(), tmp_path / "set.pt")
    (tmp_path / "set-vocab.json").write_text(json.dumps(vocab))
    models = tmp_path / "models"
    args = [
        "import",
        str(tmp_path / "set.pt"),
        "--vocab",
        str(tmp_path / "set-vocab.json"),
        "--models-dir",
        str(models),
    ]
    assert main([*args, "--id", "set-gru"]) == 0
    assert "no unknown token" in capsys.readouterr().out
    loaded = load_model(models, "set-gru")
    assert list(loaded.vocab.tokens) == vocab and loaded.vocab.unk is None
    state = loaded.model.state_dict()
    for ours, theirs in (("embedding.weight", "emb.weight"), ("head.weight", "fc.weight"), ("head.bias", "fc.bias")):
        assert torch.equal(state[ours], model.state_dict()[theirs]), ours  # no row moved
    with TestClient(create_app(Settings(models_dir=models))) as c:
        card = c.get("/api/models/set-gru").json()
        assert card["vocab"] == vocab and card["unk"] is None
        text = "the dog sat on the mat"
        r = c.post("/api/models/set-gru/trace", json={"text": text, "top_k": 3})
        assert r.status_code == 200, r.text
        assert_traced_as_the_module(r.json(), model, vocab, text)
        check_against_oracle(r.json(), models, "set-gru", r.json()["token_ids"], "sum")
        for path, body, what in (
            ("trace", {"text": "the fox"}, "text"),
            ("generate", {"prompt": "the fox", "length": 3}, "prompt"),
        ):
            r = c.post(f"/api/models/set-gru/{path}", json=body)
            assert r.status_code == 422, r.text
            message = r.json()["message"]
            assert f"the {what} has" in message and "'f' at 4" in message and "'x' at 6" in message, message
        # it writes every token, the space (id 0) too: only an unknown token is never written
        r = c.post("/api/models/set-gru/generate", json={"prompt": "the cat", "length": 12, "temperature": 0})
        assert r.status_code == 200, r.text
        assert r.json()["generated"] == greedy(model, vocab, "the cat", 12)

    # --unk names one of its own tokens as the unknown one: nothing renamed or moved, unknown text read as it
    assert main([*args, "--id", "set-gru-dot", "--unk", "."]) == 0
    assert "unknown token: '.' (id 1)" in capsys.readouterr().out
    loaded = load_model(models, "set-gru-dot")
    assert list(loaded.vocab.tokens) == vocab and loaded.vocab.unk == "."
    encoded = loaded.vocab.encode("the fox")
    assert encoded.unknown == [4, 6] and encoded.ids[4] == encoded.ids[6] == vocab.index(".")


def test_a_gru_classifier_trained_elsewhere_traces_exactly(
    imported: tuple[Path, CharModel, ReviewModel], client: TestClient
) -> None:
    models, _, review = imported
    r = client.post("/api/models/my-gru/trace", json={"text": "a very good film"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [layer["direction"] for layer in body["layers"]] == ["forward"]
    check_against_oracle(body, models, "my-gru", body["token_ids"], "last")
    own = review.double()(torch.tensor([[WORDS.index(w)] for w in ["a", "very", "good", "film"]])).softmax(-1)[0]
    np.testing.assert_allclose(body["probs"], own.detach().numpy(), atol=STATE_TOL)
    card = client.get("/api/models/my-gru").json()
    assert card["cell"] == "gru" and card["num_layers"] == 1


# --- bad files: a message naming the problem, and nothing written -------------------------------------------


def bad_cases(src: Path) -> Iterator[tuple[str, list[str], str]]:
    """(name, extra CLI args, what the message must say) for each bad file, written into src."""
    model, vocab = train_char_model()
    state = model.state_dict()
    (src / "vocab.json").write_text(json.dumps(vocab))
    good = ["--vocab", str(src / "vocab.json")]

    wrong = dict(state)
    wrong["lstm.weight_ih_l1"] = torch.zeros(48, 20)
    torch.save(wrong, src / "shape.pt")
    yield "shape.pt", good, "weight_ih_l1 has shape (48, 20); the weights imply (48, 24)"

    uneven = dict(state)
    uneven["lstm.weight_hh_l0"] = torch.zeros(40, 12)
    torch.save(uneven, src / "rows.pt")
    yield "rows.pt", good, "rows must be 1, 3 or 4 × its columns"

    head = dict(state)
    head["fc.weight"] = torch.zeros(len(vocab), 12)
    torch.save(head, src / "head.pt")
    yield "head.pt", good, "must read the top layer's 24 numbers (both directions)"

    nan = {k: v.clone() for k, v in state.items()}
    nan["lstm.weight_hh_l1_reverse"][3, 4] = float("nan")
    save_file(nan, str(src / "nan.safetensors"))
    yield "nan.safetensors", good, "lstm.weight_hh_l1_reverse holds 1 NaN or infinite value"

    inf = {k: v.clone() for k, v in state.items()}
    inf["emb.weight"][0, 0] = float("inf")
    torch.save(inf, src / "inf.pt")
    yield "inf.pt", good, "emb.weight holds 1 NaN or infinite value"

    torch.save(model, src / "module.pt")  # the whole module: a pickle of classes
    yield "module.pt", good, "torch.load(weights_only=True) refuses to run pickled code"

    data = (src / "shape.pt").read_bytes()
    torch.save(state, src / "whole.pt")
    (src / "cut.pt").write_bytes((src / "whole.pt").read_bytes()[: len(data) // 2])
    yield "cut.pt", good, "truncated or corrupt torch file"

    save_file(dict(state), str(src / "whole.safetensors"))
    (src / "cut.safetensors").write_bytes((src / "whole.safetensors").read_bytes()[:-100])
    yield "cut.safetensors", good, "truncated or corrupt safetensors file"

    (src / "short-vocab.json").write_text(json.dumps(vocab[:-3]))
    yield "whole.pt", ["--vocab", str(src / "short-vocab.json")], f"has {len(vocab) - 3} tokens but the embedding has"

    yield "whole.pt", [*good, "--unk", "<pad>"], "--unk '<pad>' is not in the vocabulary"

    (src / "labels.json").write_text(json.dumps(LABELS))
    yield (
        "whole.pt",
        [*good, "--labels", str(src / "labels.json")],
        f"the head has {len(vocab)} outputs but labels.json has 2",
    )

    yield "whole.pt", [*good, "--cell", "gru"], "the weights are a lstm"

    extra = {**state, "proj.weight": torch.zeros(3, 3)}
    torch.save(extra, src / "extra.pt")
    yield "extra.pt", good, "none of embedding, recurrent layers and head: ['proj.weight']"


def test_every_bad_file_is_refused_by_name_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, models = tmp_path / "src", tmp_path / "models"
    src.mkdir()
    models.mkdir()
    cases = list(bad_cases(src))
    for name, args, says in cases:
        code = main(["import", str(src / name), *args, "--id", "bad", "--models-dir", str(models)])
        err = capsys.readouterr().err
        assert code == 2, f"{name} was imported"
        assert says in err and "nothing was written" in err, f"{name}: {err}"
        assert list(models.iterdir()) == [], f"{name} left {list(models.iterdir())}"


def test_a_model_of_the_zoo_is_not_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, vocab = train_char_model()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    (tmp_path / "v.json").write_text(json.dumps(vocab))
    (tmp_path / "charlm-lstm.json").write_text(json.dumps({"id": "charlm-lstm", "task": "charlm"}))
    code = main(["import", str(tmp_path / "w.pt"), "--vocab", str(tmp_path / "v.json"), "--id", "charlm-lstm",
                 "--models-dir", str(tmp_path)])  # fmt: skip
    assert code == 2 and "is a model of the zoo" in capsys.readouterr().err
    assert not (tmp_path / "charlm-lstm.safetensors").exists()


def test_a_running_server_serves_a_new_import_within_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    write_model(models, "chars-gru", "gru", "next_token")  # a server is ready once it serves a model
    model = train_review_model()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    (tmp_path / "words.json").write_text(json.dumps(WORDS))
    (tmp_path / "labels.json").write_text(json.dumps(LABELS))
    with LiveServer(
        Settings(models_dir=models, max_steps=100, max_generate=10, max_concurrent=2, send_timeout=5.0)
    ) as live:
        assert httpx.get(f"{live.url}/api/models/late-gru").status_code == 404
        args = ["--vocab", tmp_path / "words.json", "--labels", tmp_path / "labels.json", "--models-dir", models]
        code = main(["import", str(tmp_path / "w.safetensors"), "--id", "late-gru", *map(str, args)])
        assert code == 0, capsys.readouterr().err
        start = time.monotonic()
        while httpx.get(f"{live.url}/api/models/late-gru").status_code != 200:
            assert time.monotonic() - start < 6, "the server did not pick up the new model within 6 s"
            time.sleep(0.2)
        r = httpx.post(f"{live.url}/api/models/late-gru/trace", json={"text": "a good film"})
        assert r.status_code == 200 and r.json()["label"] in LABELS


def test_the_zoo_rescan_loads_what_changed_and_drops_what_is_gone(
    imported: tuple[Path, CharModel, ReviewModel], tmp_path: Path
) -> None:
    src = imported[0]
    for name in ("my-gru.json", "my-gru.safetensors"):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    zoo = Zoo.load(tmp_path)
    assert [m.card.id for m in zoo] == ["my-gru"] and zoo.rescan(tmp_path) is None  # nothing changed: no work
    for name in ("my-bilstm.json", "my-bilstm.safetensors"):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    new = zoo.rescan(tmp_path)
    assert new is not None and [m.card.id for m in new] == ["my-bilstm", "my-gru"]
    assert new.get("my-gru") is zoo.get("my-gru")  # unchanged models are not loaded again
    (tmp_path / "my-gru.json").unlink()
    gone = new.rescan(tmp_path)
    assert gone is not None and [m.card.id for m in gone] == ["my-bilstm"]
