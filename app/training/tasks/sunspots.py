"""sunspots: predict next year's sunspot number from the years before, with a model that reads numbers
(app/engine/series/model.py), in the data's own units.

The series is the yearly sunspot numbers 1700–2008 that statsmodels ships among its datasets
(`statsmodels.api.datasets.sunspots`, `pip install '.[train]'`; the server never imports statsmodels). Its
~11-year cycle varies in height and length, so the last few years alone do not tell where a cycle peaks.

The last 40 years (1969–2008) are held out; the 30 before them (1939–1968) choose the final weights; the models
train on windows of 1700–1938. The scaling (mean and standard deviation) is the training years'. The card's
figures are the RMSE of one-step predictions on the held-out years, each made from the true series up to the
year before, beside two baselines on the same years: persistence (next year = this year) and a linear AR(p)
fitted by statsmodels (AutoReg, by least squares) on 1700–1968, with p chosen by AIC among 1–20 on those years.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from app.engine.layers import Cell
from app.engine.series.card import SeriesCard
from app.engine.series.model import Scaling, SeriesConfig, SeriesModel
from app.engine.vocab import UNK, Vocab
from app.training.tasks.base import Batch, Budget, KeyMetric, ModelSize, Task, TaskData, rounded

STATSMODELS = "statsmodels==0.15.0"  # pinned in pyproject.toml's [train] extra and requirements.lock
FIRST_YEAR = 1700
HELDOUT_YEARS = 40
DEV_YEARS = 30
WINDOW = 64  # years in a training window
MAX_AR_LAGS = 20
FEATURES = ("sunspots",)
UNITS = "yearly mean sunspot number (SILSO, version 1)"


def statsmodels_api() -> Any:
    """statsmodels.api, imported only here (training), with a message that says how to install it."""
    try:
        return importlib.import_module("statsmodels.api")
    except ImportError as e:
        raise RuntimeError(f"the sunspots task needs {STATSMODELS}: pip install -e '.[train]'") from e


def read_series() -> tuple[np.ndarray, np.ndarray]:
    """(years, sunspot numbers), 1700–2008."""
    data = statsmodels_api().datasets.sunspots.load_pandas().data
    return data["YEAR"].to_numpy(dtype=np.int64), data["SUNACTIVITY"].to_numpy(dtype=np.float64)


def value_vocab() -> Vocab:
    return Vocab(tokens=(UNK,), level="value")


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


@dataclass(frozen=True)
class AR:
    """A linear autoregression: next = c + Σ_k a_k · value_{t−k+1}, k = 1 … p."""

    const: float
    coefs: tuple[float, ...]
    aic: float

    @property
    def p(self) -> int:
        return len(self.coefs)

    def predict_next(self, series: np.ndarray, t: int) -> float:
        """The prediction, made at index t, of series[t + 1]."""
        return self.const + float(sum(a * series[t - k] for k, a in enumerate(self.coefs)))


def fit_ar(values: np.ndarray) -> AR:
    """AR(p) by statsmodels' AutoReg (least squares), p by AIC among 1 … MAX_AR_LAGS on the same values."""
    tsa = importlib.import_module("statsmodels.tsa.ar_model")
    p = max(tsa.ar_select_order(values, maxlag=MAX_AR_LAGS, ic="aic").ar_lags)
    fit = tsa.AutoReg(values, lags=p).fit()
    params = [float(x) for x in fit.params]
    return AR(const=params[0], coefs=tuple(params[1:]), aic=float(fit.aic))


@dataclass
class SunspotsData(TaskData):
    years: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))  # data units, every year
    scaling: Scaling | None = None
    n_train: int = 0  # years trained on: [0, n_train)
    n_dev: int = 0  # then the dev years; the rest are held out
    window: int = WINDOW

    @property
    def scaled(self) -> Tensor:
        assert self.scaling is not None
        return torch.from_numpy(self.scaling.scale(self.values[:, None]).astype(np.float32))  # (N, 1)

    def batch(self, rng: np.random.Generator, batch_size: int) -> Batch:
        x = self.scaled
        starts = rng.integers(0, self.n_train - self.window, size=batch_size)
        rows = torch.stack([x[s : s + self.window + 1] for s in starts.tolist()])  # (B, W + 1, 1)
        return Batch(ids=rows[:, :-1], targets=rows[:, 1:])

    @torch.no_grad()
    def one_step(self, model: SeriesModel) -> np.ndarray:
        """The one-step predictions, in the data's units, made at every year from the true series before it:
        entry t predicts values[t + 1]."""
        assert self.scaling is not None
        pred = model(self.scaled[None])[0].double().numpy()  # (N, 1)
        return self.scaling.unscale(pred)[:, 0]

    def dev_score(self, model: SeriesModel) -> float | None:
        pred = self.one_step(model)
        lo, hi = self.n_train, self.n_train + self.n_dev
        return -rmse(pred[lo - 1 : hi - 1], self.values[lo:hi])


class SunspotsTask(Task[SunspotsData]):
    name = "sunspots"
    title = "A time series: yearly sunspot numbers"
    kind = "series"
    description = (
        "Next year's sunspot number from every year before it (1700 on), read as numbers: each step reads one "
        "year's value (no embedding: W_ih reads it directly) and the head predicts the next, trained on squared "
        "error. The ~11-year solar cycle varies in height and length."
    )

    def size(self, cell: Cell) -> ModelSize:
        return ModelSize(embed_size=0, hidden_size=32)

    def budget(self, cell: Cell) -> Budget:
        return Budget(steps=1500, batch_size=16, lr=1e-2, clip=1.0, lr_floor=0.05, weight_decay=1e-5)

    def dry_size(self, cell: Cell) -> ModelSize:
        return ModelSize(embed_size=0, hidden_size=8)

    def build_model(self, cell: Cell, size: ModelSize, data: SunspotsData, variant: str) -> nn.Module:
        return SeriesModel(SeriesConfig(cell, len(FEATURES), size.hidden_size, size.num_layers))

    def forward(self, model: SeriesModel, batch: Batch) -> Tensor:
        pred: Tensor = model(batch.ids)
        return pred

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        # Σ_f squared error, averaged over steps: the series trace's step loss
        return ((logits - batch.targets) ** 2).sum(-1).mean()

    def card_block(self, model: SeriesModel, data: SunspotsData, size: ModelSize) -> SeriesCard:
        assert data.scaling is not None
        return SeriesCard(data.scaling)

    def load(self, dry_run: bool, cache: Path) -> SunspotsData:
        years, values = read_series()
        n = len(values)
        n_train = n - HELDOUT_YEARS - DEV_YEARS
        train = values[:n_train]
        scaling = Scaling(
            features=FEATURES,
            mean=(float(train.mean()),),
            std=(float(train.std()),),
            units=UNITS,
            step="year",
            seen=((float(train.min()), float(train.max())),),  # a value far outside it is warned of
            least=(0.0,),  # a sunspot number counts spots: never below 0
        )
        held = slice(n - HELDOUT_YEARS, n)
        persistence = rmse(values[n - HELDOUT_YEARS - 1 : n - 1], values[held])
        ar = fit_ar(values[: n - HELDOUT_YEARS])
        ar_pred = np.array([ar.predict_next(values, t) for t in range(n - HELDOUT_YEARS - 1, n - 1)])
        source = (
            f"{STATSMODELS.replace('==', ' ')}, statsmodels.api.datasets.sunspots: the yearly sunspot numbers "
            f"{years[0]}-{years[-1]} ({n} years). Trained on windows of {years[0]}-{years[n_train - 1]}; "
            f"{years[n_train]}-{years[n - HELDOUT_YEARS - 1]} chose the final weights; the last {HELDOUT_YEARS} "
            f"years ({years[n - HELDOUT_YEARS]}-{years[-1]}) are held out. Scaled by the training years' mean "
            f"{scaling.mean[0]:.2f} and standard deviation {scaling.std[0]:.2f}"
        )
        extra = {
            "heldout_years": [int(years[n - HELDOUT_YEARS]), int(years[-1])],
            "heldout_persistence_rmse": rounded(persistence),
            "heldout_ar_rmse": rounded(rmse(ar_pred, values[held])),
            "ar_p": ar.p,
            "ar": {
                "p": ar.p,
                "chosen_by": f"AIC among p = 1..{MAX_AR_LAGS}, fitted by statsmodels AutoReg (least squares) on "
                f"{years[0]}-{years[n - HELDOUT_YEARS - 1]}",
                "const": rounded(ar.const, 6),
                "coefs": [rounded(a, 6) for a in ar.coefs],
            },
            "dev_years": [int(years[n_train]), int(years[n - HELDOUT_YEARS - 1])],
            "train_years": [int(years[0]), int(years[n_train - 1])],
        }
        return SunspotsData(
            vocab=value_vocab(),
            data_source=source,
            extra=extra,
            years=years,
            values=values,
            scaling=scaling,
            n_train=n_train,
            n_dev=DEV_YEARS,
            window=16 if dry_run else WINDOW,
        )

    def examples(self) -> list[dict[str, Any]]:
        """Inputs in the data's units: two held-out stretches of the real series and two written by us."""
        years, values = read_series()
        at = {int(y): float(v) for y, v in zip(years, values, strict=True)}
        cycle = [round(80 + 70 * math.sin(2 * math.pi * (t - 3) / 11), 1) for t in range(44)]
        return [
            {
                "values": [at[y] for y in range(1909, 1969)],
                "first": 1909,
                "note": "1909-1968, the years before the held-out ones: what comes in 1969?",
            },
            {
                "values": [at[y] for y in range(1700, 2009)],
                "first": 1700,
                "note": "The whole series, 1700-2008: the last 40 one-step predictions were never trained on.",
            },
            {"values": cycle, "first": 0, "note": "A clean 11-year sine: does the forecast keep its rhythm?"},
            {"values": [50.0] * 30, "first": 0, "note": "Flat at 50: the model pulls it back towards a cycle."},
        ]

    def key_metric(self, metrics: dict[str, Any]) -> KeyMetric | None:
        value = metrics.get("heldout_rmse")
        if value is None:
            return None
        persistence = metrics.get("heldout_persistence_rmse")
        return KeyMetric(
            "RMSE, held-out years", f"{value:.3g}" + (f" (persistence {persistence:.3g})" if persistence else "")
        )

    def metrics(self, model: SeriesModel, data: SunspotsData) -> dict[str, Any]:
        pred = data.one_step(model)
        n = len(data.values)
        held = slice(n - HELDOUT_YEARS, n)
        made = slice(n - HELDOUT_YEARS - 1, n - 1)
        train = slice(1, data.n_train)
        dev = slice(data.n_train, data.n_train + data.n_dev)
        return {
            "heldout_rmse": rounded(rmse(pred[made], data.values[held])),
            **data.extra,
            "dev_rmse": rounded(rmse(pred[dev.start - 1 : dev.stop - 1], data.values[dev])),
            "train_rmse": rounded(rmse(pred[train.start - 1 : train.stop - 1], data.values[train])),
            "heldout_predictions": [
                {"year": int(data.years[t + 1]), "actual": float(data.values[t + 1]), "predicted": rounded(pred[t], 3)}
                for t in range(made.start, made.stop)
            ],
        }


TASK = SunspotsTask()
