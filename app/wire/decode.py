"""The stream's binary records read back as numpy arrays: the one decoder, used by the client, the tests and the
bench.

A step record is little-endian uint32 t, then float32 fields, then uint32 fields (token ids); a grad record is
float64 t, then float64 fields, and grad records come last step first, as BPTT runs. Which fields, in what order
and how wide, the meta frame's layout says ({"name", "dtype", "size"} each). Every array is a view of the bytes
received (numpy.frombuffer: nothing parsed or copied, so read-only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

Arrays = dict[str, NDArray[Any]]
Layout = Sequence[dict[str, Any]]


class RecordError(ValueError):
    """Records that do not match their layout: out of order, or of another size."""


def step_arrays(data: bytes | memoryview, layout: Layout, steps: int) -> Arrays:
    """`steps` step records as one (T, size) view per field ("loss", one value a step, as (T,))."""
    words = np.frombuffer(data, dtype="<f4")
    width = 1 + sum(int(f["size"]) for f in layout)
    if words.size != steps * width:
        raise RecordError(f"{steps} step records of {width} words are {steps * width} words; got {words.size}")
    words = words.reshape(steps, width)
    if not np.array_equal(words[:, 0].view("<u4"), np.arange(steps, dtype="<u4")):
        raise RecordError("step records out of order")
    out: Arrays = {}
    at = 1
    for field in layout:
        size = int(field["size"])
        column = words[:, at : at + size]
        if field["dtype"] == "uint32":
            column = column.view("<u4")
        out[field["name"]] = column[:, 0] if field["name"] == "loss" else column
        at += size
    return out


def grad_arrays(data: bytes | memoryview, layout: Layout, steps: int, prefix: str = "") -> Arrays:
    """`steps` grad records (sent last step first) as one view per field in step order, named prefix + the
    field's name: (T,) for a field of one value (a gradient norm), (T, size) for a wider one."""
    values = np.frombuffer(data, dtype="<f8")
    width = 1 + sum(int(f["size"]) for f in layout)
    if values.size != steps * width:
        raise RecordError(f"{steps} grad records of {width} values are {steps * width} values; got {values.size}")
    rows = values.reshape(steps, width)[::-1]
    if not np.array_equal(rows[:, 0], np.arange(steps)):
        raise RecordError("grad records out of order")
    out: Arrays = {}
    at = 1
    for field in layout:
        size = int(field["size"])
        out[prefix + field["name"]] = rows[:, at] if size == 1 else rows[:, at : at + size]
        at += size
    return out


def record_bytes(layout: Layout, grad: bool = False) -> int:
    """One record's size: 4 bytes a step record's word, 8 a grad record's value, t included."""
    return (8 if grad else 4) * (1 + sum(int(f["size"]) for f in layout))


def sections(data: bytes, sizes: Sequence[tuple[int, int]]) -> list[memoryview]:
    """Records sent back to back, cut into sections of (records, bytes a record) each, in order."""
    view, out, at = memoryview(data), [], 0
    for count, size in sizes:
        out.append(view[at : at + count * size])
        at += count * size
    if at != len(data):
        raise RecordError(f"the sections hold {at} bytes; got {len(data)}")
    return out
