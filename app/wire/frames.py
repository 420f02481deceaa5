"""What the families' wire layouts share: JSON text, rounding, the arrays' wire names, binary records and their
messages. A family's layout (app/wire/token.py, translation.py, series.py) says which arrays travel, in what order;
these say how.

A binary step record is a little-endian uint32 t, then float32 fields, then uint32 ids (if any); a grad record is a
float64 t, then float64 fields (float64 keeps 1e-300), and grad records run from the last step back to the first,
as BPTT does. app/wire/decode.py reads them back.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from app.engine.card import ModelCard

Array = NDArray[Any]
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def step_values(card: ModelCard) -> int:
    """Values a trace writes per time step: every layer entry's state, cell state (LSTM) and gates. What each
    family's size estimate (and the capacity's cost of a trace) scales with."""
    per_entry = card.hidden_size * (1 + (card.cell == "lstm") + len(card.gate_names))
    return card.num_layers * card.directions * per_entry


def encoding_meta(batch: int, layouts: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None) -> dict[str, Any]:
    """What a meta frame says of how the records travel: as JSON, or (layouts: the step and grad layouts) as binary
    records, a step record a uint32 t and float32 fields, a grad record a float64 t and float64 fields."""
    if layouts is None:
        return {"encoding": "json", "batch": batch}
    layout, grad_layout = layouts
    return {"encoding": "binary", "layout": layout, "grad_layout": grad_layout, "batch": batch,
            "step_record_bytes": 4 * (1 + sum(f["size"] for f in layout)),
            "grad_record_bytes": 8 * (1 + sum(f["size"] for f in grad_layout))}  # fmt: skip


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=JSON_OPTIONS)


def round_significant(a: Array, digits: int | None) -> Array:
    """a rounded to `digits` significant digits (None: a itself), as a new array of a's dtype: each value, in
    float64, scaled by the power of ten that leaves `digits` digits before the point, rounded half to even and
    scaled back (divided and multiplied by 10^-k where k < 0, exact up to 10^22: 886135 to 1 digit is 900000.0).
    Zeros, infinities and NaN stay as they are; so does a value whose scale overflows (below ~1e-300). Only JSON
    is rounded: it is shorter for it, where a float32 or float64 record is not."""
    if digits is None:
        return a
    v = np.asarray(a, np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        size = np.abs(v)
        e = np.floor(np.log10(size))
        e += 10.0 ** (e + 1) <= size  # log10 may fall short by one just under a power of ten
        k = digits - 1 - e  # v · 10^k has `digits` digits before the point
        scale = 10.0 ** np.abs(k)
        r = np.where(k >= 0, np.rint(v * scale) / scale, np.rint(v / scale) * scale)
    out = np.where(np.isfinite(r) & (size != 0), r, v)
    if v.dtype == a.dtype:
        # Beyond 10^±22 a power of ten is inexact in float64, and the result can miss the double nearest the
        # rounded decimal by an ulp: 2.9999999999999998e-210, not 3e-210, which defeats the short text. These are
        # gradient norms and losses, a few per step: Python's correctly rounded conversion fixes them.
        flat_in, flat_out = v.reshape(-1), out.reshape(-1)
        far = np.flatnonzero(
            np.isfinite(flat_in)
            & (flat_in != 0)
            & ((np.abs(flat_in) < 10.0 ** (digits - 23)) | (np.abs(flat_in) >= 1e22))
        )
        flat_out[far] = [float(f"{x:.{digits - 1}e}") for x in flat_in[far].tolist()]
    with np.errstate(over="ignore"):  # a float32 near its largest rounds up to inf, as float32 arithmetic would
        return out.astype(a.dtype, copy=False)


def state_key(layer: int, name: str) -> str:
    """The wire's name of a layer's state or gate array ("hidden", "cell_state" or a gate, as the engine names
    them): "layers.0.hidden", "layers.1.gates.forget". The JSON text and the binary layout are both matched by this
    name, never by position."""
    return f"layers.{layer}.{name}" if name in ("hidden", "cell_state") else f"layers.{layer}.gates.{name}"


def layer_arrays(layer: dict[str, Any]) -> list[Array]:
    """A layer's per-step arrays as the wire lists a layer (hidden, cell_state where the cell has one, each gate):
    the arrays a trace holds, in the order its step records carry them."""
    return [layer["hidden"], *([] if layer["cell_state"] is None else [layer["cell_state"]]), *layer["gates"].values()]


def layers_at(layers: list[dict[str, Any]], t: int) -> list[dict[str, Any]]:
    """Step t's slice of each layer, for a JSON step frame."""
    return [
        {
            "hidden": layer["hidden"][t],
            "cell_state": None if layer["cell_state"] is None else layer["cell_state"][t],
            "gates": {n: g[t] for n, g in layer["gates"].items()},
        }
        for layer in layers
    ]


def step_records(parts: list[Array], ids: NDArray[np.int64] | None = None) -> Array:
    """Binary step records, one row per step: little-endian uint32 t, the parts' float32 columns side by side,
    then uint32 token ids (if any): every record of a trace has the same size."""
    T = parts[0].shape[0]
    width = sum(p.shape[1] for p in parts)
    k = 0 if ids is None else ids.shape[1]
    rows = np.empty((T, 1 + width + k), dtype="<f4")
    rows.view("<u4")[:, 0] = np.arange(T)
    np.concatenate([p.astype("<f4", copy=False) for p in parts], axis=1, out=rows[:, 1 : 1 + width])
    if ids is not None:
        rows.view("<u4")[:, 1 + width :] = ids
    return rows


def grad_records(columns: list[Array]) -> Array:
    """Binary grad records, the last step first (as BPTT runs): float64 t, then each column's value(s) at t
    (float64 keeps 1e-300); a column is (T,) or (T, k)."""
    cols = [c[:, None] if c.ndim == 1 else c for c in columns]
    T = cols[0].shape[0]
    rows = np.empty((T, 1 + sum(c.shape[1] for c in cols)), dtype="<f8")
    rows[:, 0] = np.arange(T)
    np.concatenate(cols, axis=1, out=rows[:, 1:])
    return rows[::-1]


def record_messages(rows: Array, batch: int) -> Iterator[bytes]:
    """Records, `batch` to a message."""
    for t0 in range(0, len(rows), batch):
        yield np.ascontiguousarray(rows[t0 : t0 + batch]).tobytes()


def frame_messages(frames: Iterator[dict[str, Any]], batch: int) -> Iterator[bytes]:
    """Frames built as dicts (the small traces: translation, series) as messages: one frame each, or a JSON array
    of up to `batch` frames."""
    if batch == 1:
        yield from (dumps(f) for f in frames)
        return
    while group := list(itertools.islice(frames, batch)):
        yield dumps(group)
