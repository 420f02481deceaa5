"""SeriesModel: numbers in, numbers out. Each step reads x_t, a vector of F numbers that W_ih reads directly (no
embedding), and a linear head predicts x_{t+1}:

    x_t = (value_t − mean) / std               (per feature; mean and std are the card's, from the training data)
    h_t = cell(x_t, h_{t−1})                   (torch.nn's RNN/LSTM/GRU, 1–2 layers, h_{−1} = 0)
    x̂_{t+1} = W_o h_t + b_o,  predicted_t = x̂_{t+1} · std + mean
    loss_t = Σ_f (x̂_{t+1,f} − x_{t+1,f})²      (squared error in standard deviations; the last step has no target)

A classifier (the card's `target: "classify"`, with its `labels`; issue 25's spoken digits) has the same body and
a head of one logit per label: p_t = softmax(W_o h_t + b_o), what the model would answer had the input ended at
step t; loss_t = −log p_t[label], and L is the last step's (or, `sum`, every step's), as a token classifier's.

Mean squared error, not a Gaussian with a predicted variance: the card's figures (RMSE beside persistence and a
linear AR(p)) are squared errors, so the loss BPTT differentiates is the one the card reports, and ∂L/∂x_t says
how the error would change with each input, not how a variance could be inflated to excuse it.

Parameter names are torch.nn's: `rnn.weight_ih_l0` (G·H × F), …, `head.weight` (F × H), `head.bias`. The card
(kind "series") holds the scaling (`series`: feature names, mean, std, units), so the API speaks the data's units.
`read_values` checks numbers from outside before anything runs.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from app.engine.errors import BadValues, EmptyInput, InputTooLong, ModelFileError
from app.engine.layers import RNN_CLASSES, Cell, RecurrentModel, check_layers

MAX_SCALED = 1e6  # |value − mean| / std beyond this is not data the model could have meant to read
# A value is far outside what the model was trained on (warned of, still read) beyond the training data's range
# widened by MARGIN of its width on each side: the sunspots' training years ran 0–154.4, so up to 231.6, which
# the years no model trained on (1939–2008, at most 190.2, where the held-out RMSE is measured) stay within.
MARGIN = 0.5
FAR_STDS = 5.0  # a card that gives no training range: beyond this many standard deviations from the mean


@dataclass(frozen=True)
class Scaling:
    """What the numbers mean (the card's `series` field): one name, mean and standard deviation per feature."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    units: str = ""
    step: str = ""  # what one step is ("year")
    seen: tuple[tuple[float, float], ...] | None = None  # per feature, the training data's least and greatest value
    least: tuple[float | None, ...] | None = None  # per feature, the least value there can be (a count's 0), or None

    def __post_init__(self) -> None:
        if not self.features or not len(self.features) == len(self.mean) == len(self.std):
            raise ModelFileError("card is not valid: series needs as many means and stds as features")
        if not all(math.isfinite(s) and s > 0 for s in self.std) or not all(math.isfinite(m) for m in self.mean):
            raise ModelFileError("card is not valid: a series' std must be positive and finite, its mean finite")
        for name, given in (("seen", self.seen), ("least", self.least)):
            if given is not None and len(given) != len(self.features):
                raise ModelFileError(f"card is not valid: series {name} needs one entry per feature")
        if self.seen is not None and not all(math.isfinite(a) and math.isfinite(b) and a <= b for a, b in self.seen):
            raise ModelFileError("card is not valid: series seen needs a finite [least, greatest] per feature")

    @property
    def width(self) -> int:
        return len(self.features)

    def scale(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Data units → standard deviations: what W_ih reads."""
        scaled: NDArray[np.float64] = (values - np.array(self.mean)) / np.array(self.std)
        return scaled

    def unscale(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        values: NDArray[np.float64] = x * np.array(self.std) + np.array(self.mean)
        return values

    def plausible(self) -> list[tuple[float, float]]:
        """Per feature, the values the model can be expected to read: the training range widened by MARGIN of its
        width on each side (without one, FAR_STDS standard deviations from the mean), never below the least there
        can be."""
        out = []
        for f in range(self.width):
            if self.seen is not None:
                lo, hi = self.seen[f]
                width = (hi - lo) or self.std[f]
                lo, hi = lo - MARGIN * width, hi + MARGIN * width
            else:
                lo, hi = self.mean[f] - FAR_STDS * self.std[f], self.mean[f] + FAR_STDS * self.std[f]
            least = None if self.least is None else self.least[f]
            out.append((lo if least is None else max(lo, least), hi))
        return out

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        # JSON's shape, as a card read back holds it: lists all the way down (seen is a tuple of pairs)
        out = {k: [list(x) if isinstance(x, tuple) else x for x in v] if isinstance(v, tuple) else v
               for k, v in data.items()}  # fmt: skip
        return {k: v for k, v in out.items() if not (k in ("seen", "least") and v is None)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scaling:
        try:
            seen, least = data.get("seen"), data.get("least")
            return cls(
                features=tuple(str(f) for f in data["features"]),
                mean=tuple(float(m) for m in data["mean"]),
                std=tuple(float(s) for s in data["std"]),
                units=str(data.get("units", "")),
                step=str(data.get("step", "")),
                seen=None if seen is None else tuple((float(a), float(b)) for a, b in seen),
                least=None if least is None else tuple(None if v is None else float(v) for v in least),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"card is not valid: series {e}") from e


@dataclass(frozen=True)
class FarValue:
    t: int  # the step (0-based)
    feature: int
    value: float


@dataclass(frozen=True)
class FarValues:
    """Values far outside what a series model was trained on: read all the same, but what it makes of them is
    extrapolation (and one of them can stretch a plot's axis until the rest looks flat)."""

    values: list[FarValue]
    scaling: Scaling

    def message(self) -> str:
        sc = self.scaling
        shown = ", ".join(f"{v.value:g} (step {v.t}{'' if sc.width == 1 else f', {sc.features[v.feature]}'})"
                          for v in self.values[:8])  # fmt: skip
        more = f" and {len(self.values) - 8} more" if len(self.values) > 8 else ""
        count = "1 value lies" if len(self.values) == 1 else f"{len(self.values)} values lie"
        ranges = "; ".join(
            (f"{sc.features[f]}: " if sc.width > 1 else "")
            + (f"trained on {sc.seen[f][0]:g} to {sc.seen[f][1]:g}, " if sc.seen is not None else "")
            + f"plausible {lo:g} to {hi:g}"
            for f, (lo, hi) in enumerate(sc.plausible())
        )
        units = f" ({sc.units})" if sc.units else ""
        return (f"{count} far outside what the model was trained on: {shown}{more}. {ranges[0].upper()}{ranges[1:]}"
                f"{units}; what the model makes of values beyond is extrapolation.")  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        sc = self.scaling
        return {
            "message": self.message(),
            "values": [{"t": v.t, "feature": v.feature, "value": v.value} for v in self.values],
            "trained": None if sc.seen is None else [list(r) for r in sc.seen],
            "plausible": [[round(lo, 6), round(hi, 6)] for lo, hi in sc.plausible()],
        }


def far_values(values: NDArray[np.float64], scaling: Scaling) -> FarValues | None:
    """The values (T, F), in the data's units, outside scaling.plausible(), or None if there are none."""
    ranges = scaling.plausible()
    lo = np.array([r[0] for r in ranges])
    hi = np.array([r[1] for r in ranges])
    far = (values < lo) | (values > hi)
    if not far.any():
        return None
    found = [FarValue(int(t), int(f), float(values[t, f])) for t, f in np.argwhere(far)]
    return FarValues(found, scaling)


@dataclass(frozen=True)
class SeriesConfig:
    cell: Cell
    features: int  # F: numbers per step, read by W_ih (and, forecasting, predicted by the head)
    hidden_size: int
    num_layers: int = 1
    classes: int = 0  # a classifier's C labels (the head's rows: one logit per label); 0: the head forecasts F numbers

    @property
    def outputs(self) -> int:
        return self.classes or self.features


class SeriesModel(RecurrentModel):
    """x_t (F numbers) → 1 or 2 recurrent layers → linear head, at every step: the next step's F numbers, or (a
    classifier, config.classes > 0) one logit per label."""

    def __init__(self, config: SeriesConfig) -> None:
        super().__init__()
        check_layers(config.cell, config.num_layers)
        self.config = config
        self.rnn = RNN_CLASSES[config.cell](
            config.features, config.hidden_size, num_layers=config.num_layers, batch_first=True
        )
        self.head = nn.Linear(config.hidden_size, config.outputs)

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, F) scaled values → (B, T, F) scaled predictions of each next step, or (B, T, C) a classifier's
        logits after each step."""
        out, _ = self.rnn(x)  # (B, T, H)
        pred: Tensor = self.head(out)
        return pred

    def load_state_dict_checked(self, state: dict[str, Tensor]) -> None:
        super().load_state_dict_checked(state)
        self.__dict__["_float64"] = None  # the twin holds the old weights

    def float64(self) -> SeriesModel:
        """A float64 copy of this model, made once (weights changed in place after it are not seen). A series
        trace runs in float64: ∂L/∂x_t is a sum over the gate rows for each of a few input numbers, and where its
        terms cancel, float32 states would leave it only a few digits."""
        twin: SeriesModel | None = self.__dict__.get("_float64")
        if twin is None:
            twin = copy.deepcopy(self).double()
            twin.forget_layers()
            twin.__dict__["_float64"] = twin
            self.__dict__["_float64"] = twin
        return twin


def read_values(values: object, width: int, max_steps: int, scaling: Scaling | None = None) -> NDArray[np.float64]:
    """Numbers from outside → a (T, width) float64 array, or the engine's errors naming what is wrong.

    `values` is a list of steps, each a list of `width` numbers, or, for a one-feature model, a flat list of
    numbers. Strings, booleans, None, NaN and infinities are BadValues naming the step; an empty list EmptyInput;
    more than `max_steps` steps InputTooLong; with `scaling`, a value more than MAX_SCALED standard deviations
    from the data's mean is BadValues too (it would overflow the model's float32 arithmetic)."""
    if not isinstance(values, Sequence) or isinstance(values, str | bytes):
        raise BadValues(f"values must be a list of numbers (or of lists of {width} numbers), not {_kind(values)}")
    if len(values) == 0:
        raise EmptyInput("the values are empty: give at least one step")
    if len(values) > max_steps:
        raise InputTooLong(len(values), max_steps)
    out = np.empty((len(values), width))
    for t, step in enumerate(values):
        row: Sequence[object]
        if isinstance(step, Sequence) and not isinstance(step, str | bytes):
            row = step
        elif width == 1:
            row = (step,)
        else:
            raise BadValues(f"{_show(step)} is one number; this model reads {width} per step", t)
        if len(row) != width:
            raise BadValues(f"{len(row)} numbers; this model reads {width} per step ({_plural(width)})", t)
        for f, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise BadValues(f"{_show(v)} is not a number", t)
            x = float(v)
            if math.isnan(x):
                raise BadValues("NaN is not a number the model can read", t)
            if math.isinf(x):
                raise BadValues(f"{x} is not a finite number", t)
            out[t, f] = x
    if scaling is not None:
        far = np.abs(scaling.scale(out)) > MAX_SCALED
        if far.any():
            t, f = (int(i) for i in np.argwhere(far)[0])
            raise BadValues(
                f"{out[t, f]:g} is more than {MAX_SCALED:g} standard deviations ({scaling.std[f]:g}) from the "
                f"data's mean ({scaling.mean[f]:g})",
                t,
            )
    return out


def _kind(v: object) -> str:
    return "null" if v is None else type(v).__name__


def _show(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _plural(width: int) -> str:
    return "one number a step" if width == 1 else f"{width} numbers a step"


def scaled_tensor(scaling: Scaling, values: NDArray[np.float64], dtype: torch.dtype = torch.float32) -> Tensor:
    """(T, F) data units → (T, F) standard deviations, what W_ih reads."""
    return torch.from_numpy(scaling.scale(values)).to(dtype)


__all__ = ["Scaling", "SeriesConfig", "SeriesModel", "read_values", "scaled_tensor"]
