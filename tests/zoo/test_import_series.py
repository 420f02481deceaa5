"""`unrolled import` of a series model (numbers in, the next step's numbers out; no embedding) trained by a plain
PyTorch script, not by our trainer: imported by the CLI and by upload, traced through REST against the float64
autograd oracle; and every series-specific bad file refused by name, with nothing written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from torch import Tensor, nn

from app.cli import main
from app.engine.family import load_model
from app.engine.series.card import series_card
from app.engine.series.model import SeriesModel
from app.web.app import create_app
from app.web.config import Settings
from tests.engine.test_trace import assert_close_rel
from tests.reference import reference_series
from tests.zoo.test_import import run_import

FEATURES = ["rain", "temp"]
MEAN, STD = [3.0, 15.0], [2.0, 5.0]
TOKEN = "s3cret-series-token"


class WeatherModel(nn.Module):
    """Someone's own forecaster: two GRU layers (time first) named `gru`, a head named `fc`, no embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(2, 12, num_layers=2)
        self.fc = nn.Linear(12, 2)

    def forward(self, x: Tensor) -> Tensor:  # (T, B, 2) scaled → (T, B, 2) the next step, scaled
        out, _ = self.gru(x)
        pred: Tensor = self.fc(out)
        return pred


def weather(T: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    rain = 3 + 2 * np.sin(t / 3) + rng.normal(0, 0.3, T)
    temp = 15 + 5 * np.cos(t / 5) + rng.normal(0, 0.5, T)
    return np.stack([rain, temp], 1)


def train_weather_model() -> WeatherModel:
    torch.manual_seed(2)
    model = WeatherModel()
    x = torch.from_numpy((weather(80, 0) - np.array(MEAN)) / np.array(STD)).float()[:, None]  # (T, 1, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(40):
        opt.zero_grad()
        loss = ((model(x[:-1]) - x[1:]) ** 2).mean()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WeatherModel]:
    src, models = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("models")
    model = train_weather_model()
    torch.save(model.state_dict(), src / "weather.pt")
    done = run_import(src / "weather.pt", "--id", "my-weather", "--models-dir", models, "--features", "rain,temp",
                      "--mean", "3,15", "--std", "2,5", "--units", "mm, °C", "--step", "day")  # fmt: skip
    assert done.returncode == 0, done.stderr
    for line in ("gru.* → rnn.*", "fc.* → head.*", "reads 2 numbers a step (no embedding)", "2 layers"):
        assert line in done.stdout, done.stdout
    return models, model


def test_the_card_says_what_the_numbers_are(imported: tuple[Path, WeatherModel]) -> None:
    loaded = load_model(imported[0], "my-weather")
    assert loaded.card.kind == "series" and loaded.card.task == "imported" and loaded.card.cell == "gru"
    assert isinstance(loaded.model, SeriesModel) and loaded.model.config.num_layers == 2
    sc = series_card(loaded.card).scaling
    assert sc.features == tuple(FEATURES) and sc.mean == tuple(MEAN) and sc.std == tuple(STD)
    assert sc.units == "mm, °C" and sc.step == "day"


def test_an_imported_series_model_traces_exactly_through_rest(imported: tuple[Path, WeatherModel]) -> None:
    """The trace of the imported model is the float64 oracle's, run on the script's own weights (not on what the
    import wrote): the states, the predictions in the data's units and ∂L/∂value_t."""
    models, model = imported
    values = weather(40, 7)
    with TestClient(create_app(Settings(models_dir=models))) as api:
        r = api.post("/api/models/my-weather/trace", json={"values": values.tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    sd = model.state_dict()
    ours = load_model(models, "my-weather").model
    assert isinstance(ours, SeriesModel)
    for mine, theirs in (("rnn.weight_hh_l1", "gru.weight_hh_l1"), ("head.bias", "fc.bias")):
        assert torch.equal(ours.state_dict()[mine], sd[theirs])
    x = torch.from_numpy((values - np.array(MEAN)) / np.array(STD))
    ref = reference_series(ours, x, "sum")
    T = len(values)
    np.testing.assert_allclose(np.array(body["layers"][1]["hidden"]), ref.hidden[1].numpy(), atol=2e-6)
    predicted = ref.predicted.numpy() * np.array(STD) + np.array(MEAN)
    np.testing.assert_allclose(np.array(body["predicted"]).reshape(T, 2), predicted, rtol=1e-5, atol=1e-4)
    assert_close_rel(np.array(body["grad_norms"]["hidden"][0]), ref.grad_hidden[0])
    expected = ref.grad_x.numpy() / np.array(STD)
    np.testing.assert_allclose(np.array(body["grad_norms"]["values"]).reshape(T, 2), expected, rtol=1e-5)


def test_a_series_model_uploads_too(imported: tuple[Path, WeatherModel], tmp_path: Path) -> None:
    _, model = imported
    buf = tmp_path / "w.pt"
    torch.save(model.state_dict(), buf)
    settings = Settings(models_dir=tmp_path / "models", admin_token=TOKEN)
    with TestClient(create_app(settings)) as api:
        r = api.post(
            "/api/models",
            headers={"Authorization": f"Bearer {TOKEN}"},
            files={"weights": ("w.pt", buf.read_bytes())},
            data={"id": "up-weather", "features": "rain,temp", "mean": "3,15", "std": "2,5", "units": "mm, °C"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["model"]["kind"] == "series"
        t = api.post("/api/models/up-weather/trace", json={"values": weather(12, 1).tolist()})
        assert t.status_code == 200, t.text
        with_vocab = api.post(
            "/api/models",
            headers={"Authorization": f"Bearer {TOKEN}"},
            files={"weights": ("w.pt", buf.read_bytes()), "vocab": ("v.json", b'["<unk>", "a"]')},
            data={"id": "up-weather-2", "mean": "3,15"},
        )
        assert with_vocab.status_code == 422 and "not with a vocabulary" in with_vocab.json()["message"]
    loaded = load_model(tmp_path / "models", "up-weather")
    assert series_card(loaded.card).scaling.mean == tuple(MEAN)


def bad_series(src: Path) -> Iterator[tuple[str, list[str], str]]:
    model = train_weather_model()
    state = model.state_dict()
    torch.save(state, src / "good.pt")

    bi = nn.GRU(2, 12, bidirectional=True)
    torch.save({**{f"gru.{k}": v for k, v in bi.state_dict().items()}, "fc.weight": torch.zeros(2, 24),
                "fc.bias": torch.zeros(2)}, src / "bi.pt")  # fmt: skip
    yield "bi.pt", [], "a reverse direction reads the future"

    torch.save({**state, "fc.weight": torch.zeros(3, 12), "fc.bias": torch.zeros(3)}, src / "head.pt")
    yield "head.pt", [], "the head has 3 outputs for 2 input numbers a step"

    yield "good.pt", ["--mean", "1,2,3"], "--mean gives 3 numbers; the model reads 2 per step"
    yield "good.pt", ["--std", "1,0"], "std must be positive"
    yield "good.pt", ["--features", "rain"], "--features names 1 numbers; the model reads 2 per step"

    torch.save({**state, "emb.weight": torch.zeros(5, 2)}, src / "emb.pt")
    yield "emb.pt", [], "emb.weight looks like an nn.Embedding"

    (src / "labels.json").write_text(json.dumps(["up", "down"]))
    yield "good.pt", ["--labels", str(src / "labels.json")], "--labels without --vocab"

    nan = {k: v.clone() for k, v in state.items()}
    nan["gru.weight_ih_l0"][0, 1] = float("nan")
    torch.save(nan, src / "nan.pt")
    yield "nan.pt", [], "gru.weight_ih_l0 holds 1 NaN or infinite value"


def test_every_bad_series_file_is_refused_by_name_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, models = tmp_path / "src", tmp_path / "models"
    src.mkdir()
    models.mkdir()
    for name, args, says in list(bad_series(src)):
        code = main(["import", str(src / name), *args, "--id", "bad", "--models-dir", str(models)])
        err = capsys.readouterr().err
        assert code == 2, f"{name} {args} was imported"
        assert says in err and "nothing was written" in err, f"{name} {args}: {err}"
        assert list(models.iterdir()) == [], f"{name} left {list(models.iterdir())}"


def test_an_id_of_the_labs_is_refused(imported: tuple[Path, WeatherModel], tmp_path: Path) -> None:
    """Models trained live in the lab go by lab-<run>-<cell>: an import may not take such an id."""
    torch.save(imported[1].state_dict(), tmp_path / "w.pt")
    done = run_import(tmp_path / "w.pt", "--id", "lab-0123abcd-lstm", "--models-dir", tmp_path / "models")
    assert done.returncode == 2 and "are the lab's" in done.stderr
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").iterdir())
