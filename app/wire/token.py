"""A token model's Trace on the wire: the REST body and the stream's frames, built from the same arrays.

The arrays are rounded (if the request asks for a precision) and written as JSON text once, by orjson, then
either sent whole (REST) or sliced row by row into frames (stream), so a stream's frames equal the REST body
value for value. Binary records hold the arrays as the trace computed them: float32 and float64 travel whole, and
rounding them would buy no byte. NaN (a step with no target) is written as null.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from app.engine.card import LoadedModel, ModelCard
from app.engine.modern.layer import attention_values, state_numbers
from app.engine.token.card import token_card
from app.engine.token.generate import Step
from app.engine.token.trace import Trace
from app.wire.frames import (
    Array,
    dumps,
    encoding_meta,
    grad_records,
    record_messages,
    round_significant,
    state_key,
    step_records,
    step_values,
)


class Rows:
    """A 2-D array as JSON text, "[[…],[…]]", written once for both the REST body (whole) and the stream's
    frames (row by row)."""

    def __init__(self, text: bytes, rows: list[bytes] | None = None) -> None:
        self.text = text
        self._rows = rows

    @classmethod
    def of(cls, a: Array) -> Rows:
        """orjson's text of a (its float32 values as float32's shortest digits; NaN as null)."""
        return cls(dumps(np.ascontiguousarray(a)))

    @classmethod
    def joined(cls, rows: list[bytes]) -> Rows:
        return cls(b"[" + b",".join(rows) + b"]", rows)

    def whole(self) -> orjson.Fragment:
        return orjson.Fragment(self.text)

    def raw(self, t: int) -> bytes:
        """Row t's text, "[…]"."""
        if self._rows is None:
            # Split once, on the first frame: numbers hold no brackets, so "],[" is only ever between two rows.
            inner = self.text[2:-2]
            self._rows = [b"[" + row + b"]" for row in inner.split(b"],[")] if len(self.text) > 2 else []
        return self._rows[t]


def write_predictions(ids: NDArray[np.int64], probs: Array, vocab: tuple[str, ...]) -> Rows:
    """Each step's top-k tokens and probabilities (T, k) as JSON, [[{"token": "e", "p": 0.31}, …], …]: each
    token's JSON string written once, the probabilities by orjson (a number never holds a comma)."""
    names = [orjson.dumps(token) for token in vocab]
    p = Rows.of(probs)
    return Rows.joined(
        [
            b"["
            + b",".join(
                b'{"token":' + names[i] + b',"p":' + v + b"}"
                for i, v in zip(row, p.raw(t)[1:-1].split(b","), strict=True)
            )
            + b"]"
            for t, row in enumerate(ids.tolist())
        ]
    )


def estimate_body_bytes(card: ModelCard, steps: int, top_k: int) -> int:
    """About how long a trace's JSON body will be (a little over), known before computing it: ~13 characters a
    float32 value (its shortest digits and a comma: 11.6 on charlm-lstm), ~32 a top-k prediction, ~48 a step's
    losses and gradient norms."""
    values = step_values(card)
    per_step = 13 * values + (32 * top_k if card.kind == "next_token" else 12 * len(token_card(card).labels or [])) + 48
    attention = 13 * card.num_layers * attention_values(card.cell, steps)  # an S6 layer's hidden attention
    return steps * per_step + attention + 1024


# What computing a trace takes at its peak, as a multiple of its JSON body's estimated size (measured on a
# 10,000-step charlm-lstm trace, VmHWM over the idle server): the arrays (4 bytes a value), float64 BPTT
# temporaries, the JSON text (~13 a value) and the writer's buffers; a REST body also joins the text into one.
WORKING_FACTOR = {"rest": 3.0, "json": 3.4, "binary": 1.6}


# A modern cell's BPTT (app/engine/layers.py's modern_backward) works on its whole state in float64, which it does
# not send: the states recomputed, the adjoint, the coefficients and their graph, up to 18 float64 copies of the
# state a step, one layer at a time; each layer keeps its float32 states for it besides. Measured by
# tests/web/test_trace_estimate.py (T = 2,000, H = 64; peak resident rise): S6 (D × N = 1,024 numbers a step)
# 259 MB for one layer, 271 for two (126 and 6 bytes a number a step); minGRU 23 and 26 MB (128 numbers a step).
MODERN_BACKWARD_BYTES = 144  # a number of the state, a step: once
MODERN_HELD_BYTES = 8  # a number of the state, a step: each layer


def estimate_working_bytes(card: ModelCard, steps: int, top_k: int, form: str) -> int:
    """What computing a trace takes at its peak, for a REST body ("rest") or a stream ("json", "binary"): taken
    from the byte budget before computing, and brought down to what is held while sending once computed. A modern
    cell's state is not what it sends (S6's is 16 numbers for each one of its hidden size): its BPTT is counted by
    the numbers of its state."""
    per_number = MODERN_BACKWARD_BYTES + MODERN_HELD_BYTES * card.num_layers
    modern = steps * state_numbers(card.cell, card.hidden_size) * per_number
    return int(estimate_body_bytes(card, steps, top_k) * WORKING_FACTOR[form]) + modern


@dataclass
class WireTrace:
    """The trace of one request, ready to send: whole (body) or step by step (frames)."""

    model_id: str
    trace: Trace
    precision: int | None  # significant digits of every value sent (None: full precision)
    # The big arrays, as the trace computed them: rounded only if they are written as JSON (layer_text).
    hidden: list[Array]  # per layer (T, H)
    cell_state: list[Array | None]
    gates: list[dict[str, Array]]
    directions: list[str]  # per layer entry, in torch's order (l0, l0_reverse, …): "forward" or "reverse"
    # The small arrays, rounded already.
    probs: Array  # (T, outputs)
    top_probs: Array
    step_loss: Array
    grad_hidden: list[Array]
    grad_cell_state: list[Array | None]
    grad_weight_hh: list[Array]
    grad_input: Array
    vocab: tuple[str, ...]
    labels: list[str] | None
    attention: list[Array | None]  # per layer, an S6 layer's hidden attention (T, T), rounded; else None

    @staticmethod
    def triangle(a: Array | None) -> list[Array] | None:
        """A hidden attention as its lower triangle, row t's t + 1 numbers (above the diagonal it is 0)."""
        return None if a is None else [a[t, : t + 1] for t in range(a.shape[0])]

    @classmethod
    def build(cls, loaded: LoadedModel, tr: Trace, precision: int | None = None) -> WireTrace:
        def r(a: Array) -> Array:
            return round_significant(a, precision)

        return cls(
            model_id=loaded.card.id,
            trace=tr,
            precision=precision,
            hidden=[layer.hidden for layer in tr.layers],
            cell_state=[layer.cell_state for layer in tr.layers],
            gates=[layer.gates for layer in tr.layers],
            directions=[layer.direction for layer in tr.layers],
            probs=r(tr.probs),
            top_probs=r(tr.top_probs),
            step_loss=r(tr.step_loss),
            grad_hidden=[r(layer.grad_hidden) for layer in tr.layers],
            grad_cell_state=[None if g is None else r(g) for g in (layer.grad_cell_state for layer in tr.layers)],
            grad_weight_hh=[r(layer.grad_weight_hh) for layer in tr.layers],
            grad_input=r(tr.grad_input),
            vocab=loaded.vocab.tokens,
            labels=token_card(loaded.card).labels,
            attention=[None if layer.attention is None else r(layer.attention) for layer in tr.layers],
        )

    def state_arrays(self) -> list[tuple[str, Array]]:
        """Every layer's hidden states, cell states and gates under their wire names, in the binary record's order."""
        out: list[tuple[str, Array]] = []
        for k, (h, c, gates) in enumerate(zip(self.hidden, self.cell_state, self.gates, strict=True)):
            out.append((state_key(k, "hidden"), h))
            if c is not None:
                out.append((state_key(k, "cell_state"), c))
            out += [(state_key(k, n), g) for n, g in gates.items()]
        return out

    def held_bytes(self) -> int:
        """What this trace keeps in memory while it is sent: its arrays, and their JSON text if written."""
        arrays = [a for _, a in self.state_arrays()] + [self.probs, self.top_probs, self.trace.top_ids]
        size = sum(a.nbytes for a in arrays)
        if "layer_text" in self.__dict__:  # the cached JSON text
            size += sum(
                len(r.text) for h, c, g in self.layer_text for r in (h, *([] if c is None else [c]), *g.values())
            )
        return size

    @cached_property
    def layer_text(self) -> list[tuple[Rows, Rows | None, dict[str, Rows]]]:
        """Each layer's hidden states, cell states and gates as JSON text, written once (and only if JSON is
        asked for) for both the REST body and the stream's frames; looked up by name."""
        text = {name: Rows.of(round_significant(a, self.precision)) for name, a in self.state_arrays()}
        return [
            (
                text[state_key(k, "hidden")],
                None if c is None else text[state_key(k, "cell_state")],
                {n: text[state_key(k, n)] for n in g},
            )
            for k, (c, g) in enumerate(zip(self.cell_state, self.gates, strict=True))
        ]

    @property
    def is_lstm(self) -> bool:
        return self.trace.cell == "lstm"

    @cached_property
    def predictions(self) -> Rows:
        """Every step's top-k as JSON text, written once for the body and the frames."""
        return write_predictions(self.trace.top_ids, self.top_probs, self.vocab)

    def _label(self) -> str | None:
        tr = self.trace
        return None if tr.label is None or self.labels is None else self.labels[tr.label]

    def header(self) -> dict[str, Any]:
        tr = self.trace
        return {
            "model": self.model_id,
            "cell": tr.cell,
            "kind": tr.kind,
            "checkpoint": tr.checkpoint,
            "tokens": tr.tokens,
            "token_ids": tr.token_ids,
            "unknown": tr.unknown,
            "steps": tr.steps,
            "loss_mode": tr.loss_mode,
            "total_loss": tr.loss,
            "label": self._label(),
            "label_source": self.trace.label_source,
        }

    def body(self) -> dict[str, Any]:
        """The REST body: the whole trace."""
        classify = self.trace.kind == "classify"
        return {
            **self.header(),
            "layers": [
                {
                    "direction": d,
                    "hidden": h.whole(),
                    "cell_state": c and c.whole(),
                    "gates": {n: g.whole() for n, g in gs.items()},
                    "attention": self.triangle(a),
                }
                for d, (h, c, gs), a in zip(self.directions, self.layer_text, self.attention, strict=True)
            ],
            "predictions": None if classify else self.predictions.whole(),
            "probs": self.probs[-1] if classify else None,
            "step_probs": self.probs if classify else None,
            "loss": self.step_loss,
            "grad_norms": {
                "hidden": self.grad_hidden,
                "cell_state": self.grad_cell_state if self.is_lstm else None,
                "input": self.grad_input,
                "weight_hh": self.grad_weight_hh,
            },
        }

    def done_frame(self) -> dict[str, Any]:
        """The stream's last frame; a model with hidden attention (S6) sends it there, [layer] its lower triangle
        or null, as the REST body's layers do."""
        if all(a is None for a in self.attention):
            return {"type": "done"}
        return {"type": "done", "attention": [self.triangle(a) for a in self.attention]}

    def meta_frame(self, binary: bool = False, batch: int = 1) -> dict[str, Any]:
        extra = encoding_meta(batch, (self.binary_layout(), self.grad_layout()) if binary else None)
        return {
            "type": "meta",
            **extra,
            **self.header(),
            "num_layers": len(self.hidden),
            "hidden_size": int(self.hidden[0].shape[1]),
            "gates": list(self.gates[0]),
            "directions": self.directions,
            "labels": self.labels,
        }

    def step_frames(self, batch: int = 1) -> Iterator[bytes]:
        """The forward sweep's frames as JSON, in order, `batch` to a message: {"type": "step", "t", "token",
        "layers": [{"direction", "hidden", "cell_state", "gates"}], "loss", "prediction" or "probs"}. Put together
        from text written once, by joining bytes: building a dict for orjson per frame would cost more than the
        frame's own values."""
        return _messages(self._step_frame_parts(), batch)

    def _step_frame_parts(self) -> Iterator[list[bytes]]:
        layers = self.layer_text
        keys = [[orjson.dumps(name) + b":" for name in gates] for _, _, gates in layers]
        opening = [b'{"direction":' + orjson.dumps(d) + b',"hidden":' for d in self.directions]
        tokens = [orjson.dumps(token) for token in self.trace.tokens]
        losses = [orjson.dumps(loss) for loss in self.step_loss.tolist()]  # NaN (no target) → null
        if self.trace.kind == "classify":
            key, last = b',"probs":', Rows.of(self.probs)
        else:
            key, last = b',"prediction":', self.predictions
        for t in range(self.trace.steps):
            parts = [b'{"type":"step","t":', b"%d" % t, b',"token":', tokens[t], b',"layers":[']
            for k, (h, c, gates) in enumerate(layers):
                parts += [b',' if k else b'', opening[k], h.raw(t), b',"cell_state":',
                          b"null" if c is None else c.raw(t), b',"gates":{']  # fmt: skip
                parts.append(b",".join(name + g.raw(t) for name, g in zip(keys[k], gates.values(), strict=True)))
                parts.append(b"}}")
            parts += [b'],"loss":', losses[t], key, last.raw(t), b"}"]
            yield parts

    def binary_layout(self) -> list[dict[str, Any]]:
        """What a binary step frame holds after its uint32 t: float32 fields in this order, then uint32 ids. A
        layer's fields carry its direction."""
        fields: list[dict[str, Any]] = [
            {
                "name": name,
                "dtype": "float32",
                "size": a.shape[1],
                "direction": self.directions[int(name.split(".")[1])],
            }
            for name, a in self.state_arrays()
        ]
        fields.append({"name": "loss", "dtype": "float32", "size": 1})
        if self.trace.kind == "classify":
            fields.append({"name": "probs", "dtype": "float32", "size": self.probs.shape[1]})
        else:
            k = self.top_probs.shape[1]
            fields.append({"name": "prediction.p", "dtype": "float32", "size": k})
            fields.append({"name": "prediction.token_id", "dtype": "uint32", "size": k})
        return fields

    def grad_layout(self) -> list[dict[str, Any]]:
        """What a binary grad record holds: float64 t, then these float64 fields (float64 keeps 1e-300)."""
        L = len(self.hidden)
        names = [f"hidden.{k}" for k in range(L)]
        names += [f"cell_state.{k}" for k in range(L)] if self.is_lstm else []
        names += ["input"] + [f"weight_hh.{k}" for k in range(L)]

        def direction(name: str) -> dict[str, str]:
            return {} if name == "input" else {"direction": self.directions[int(name.split(".")[1])]}

        return [{"name": n, "dtype": "float64", "size": 1, **direction(n)} for n in names]

    def binary_steps(self, batch: int = 1) -> Iterator[bytes]:
        """Step records in messages of up to `batch` records each (frames.step_records: uint32 t, the float32 fields
        of binary_layout(), then uint32 token ids)."""
        parts = [a for _, a in self.state_arrays()]
        parts.append(self.step_loss[:, None])
        parts.append(self.probs if self.trace.kind == "classify" else self.top_probs)
        return record_messages(step_records(parts, self.trace.top_ids), batch)

    def binary_grads(self, batch: int = 1) -> Iterator[bytes]:
        """Grad records, from the last step back to the first, in messages of up to `batch` records each."""
        columns = [*self.grad_hidden, *(self.grad_cell_state if self.is_lstm else []), self.grad_input,
                   *self.grad_weight_hh]  # fmt: skip
        return record_messages(grad_records([c for c in columns if c is not None]), batch)

    def frames(self, batch: int = 1) -> Iterator[bytes]:
        """Every JSON frame between meta and done: the forward sweep's, then the BPTT sweep's."""
        return itertools.chain(self.step_frames(batch), self.grad_frames(batch))

    def binary_frames(self, batch: int = 1) -> Iterator[bytes]:
        """Every binary message between meta and done: T step records, then T grad records (last step first)."""
        return itertools.chain(self.binary_steps(batch), self.binary_grads(batch))

    def grad_frames(self, batch: int = 1) -> Iterator[bytes]:
        """The BPTT sweep's frames as JSON, from the last step back to the first, `batch` to a message: {"type":
        "grad", "t", "hidden": [per layer], "cell_state": [per layer] or null, "input", "weight_hh": [per layer]},
        joined from each gradient norm's text (orjson writes a whole column at once; a number never holds a
        comma)."""
        return _messages(self._grad_frame_parts(), batch)

    def _grad_frame_parts(self) -> Iterator[list[bytes]]:
        def column(values: Array) -> list[bytes]:
            return dumps(values)[1:-1].split(b",")

        def per_layer(columns: list[list[bytes]], t: int) -> bytes:
            return b"[" + b",".join(c[t] for c in columns) + b"]"

        hidden = [column(g) for g in self.grad_hidden]
        cell = [column(g) for g in self.grad_cell_state if g is not None] if self.is_lstm else None
        weight_hh = [column(g) for g in self.grad_weight_hh]
        grad_input = column(self.grad_input)
        for t in range(self.trace.steps - 1, -1, -1):
            yield [b'{"type":"grad","t":', b"%d" % t, b',"hidden":', per_layer(hidden, t),
                   b',"cell_state":', b"null" if cell is None else per_layer(cell, t),
                   b',"input":', grad_input[t], b',"weight_hh":', per_layer(weight_hh, t), b"}"]  # fmt: skip


def _messages(frames: Iterator[list[bytes]], batch: int) -> Iterator[bytes]:
    """Frames (each given as parts) as messages: one frame each, or a JSON array of up to `batch` frames, each
    message joined once."""
    if batch == 1:
        yield from (b"".join(parts) for parts in frames)
        return
    while group := list(itertools.islice(frames, batch)):
        message = [b"["]
        for parts in group:
            message += parts
            message.append(b",")
        message[-1] = b"]"  # the last frame's comma
        yield b"".join(message)


def generated_step_frame(loaded: LoadedModel, step: Step, t: int, top_k: int, precision: int | None) -> dict[str, Any]:
    """A step frame for a step of generation, the same shape as those of WireTrace.step_frames."""

    def r(a: Array) -> Array:
        return round_significant(a, precision)

    top_p, top_i = step.probs.topk(min(top_k, len(step.probs)))
    return {
        "type": "step",
        "t": t,
        "token": loaded.vocab.tokens[step.token_id],
        "sampled": step.sampled,
        "layers": [
            {
                "direction": "forward",  # generation runs one direction only
                "hidden": r(f.hidden[0].numpy()),
                "cell_state": None if f.cell_state is None else r(f.cell_state[0].numpy()),
                "gates": {n: r(g[0]) for n, g in f.gates(loaded.card.cell).items()},
            }
            for f in step.layers
        ],
        "prediction": [
            {"token": loaded.vocab.tokens[i], "p": p}
            for i, p in zip(top_i.tolist(), r(top_p.numpy()).tolist(), strict=True)
        ],
    }
