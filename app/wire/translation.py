"""A translation model's trace on the wire: a TranslationTrace as a REST body or stream frames.

The body: {"source_tokens", "target_tokens", "encoder": {"layers"}, "decoder": {"layers", "predictions"},
"attention": [T][J], "loss": [T], "grad_norms": {"encoder": {…, "via_attention"}, "decoder": {…}}, …}; layers are
shaped as a token model's ({"hidden", "cell_state", "gates"}), gradient norms are [layer][steps]. The stream sends
the same values: meta, the encoder's step frames, the decoder's (each with its attention row and prediction),
grad frames (the decoder's last to first, then the encoder's last to first), done. Translation traces are small
(tens of steps), so the JSON is written by orjson from rounded arrays; binary records are laid out as a token
model's are, one layout per kind of record, named in the meta frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.engine.card import LoadedModel
from app.engine.translation.trace import Beam, SideTrace, TranslationTrace
from app.wire.frames import (
    Array,
    frame_messages,
    grad_records,
    record_messages,
    round_significant,
    state_key,
    step_records,
    step_values,
)


def estimate_bytes(loaded: LoadedModel, steps: int, top_k: int) -> int:
    """About how long the JSON body of a translation trace of `steps` steps (both sides) will be."""
    card = loaded.card
    values = step_values(card)
    return steps * (12 * values + 12 * card.hidden_size + 32 * top_k + 12 * steps + 96) + 4096


@dataclass
class _Side:
    """One side's arrays, rounded to the request's precision."""

    layers: list[dict[str, Array | dict[str, Array] | None]]  # hidden, cell_state, gates (or hidden only)
    grad_hidden: list[Array]
    grad_cell_state: list[Array] | None
    grad_weight_hh: list[Array]
    grad_input: Array

    @classmethod
    def of(cls, side: SideTrace, precision: int | None) -> _Side:
        def r(a: Array) -> Array:
            return _rounded(a, precision)

        lstm = side.layers[0].cell_state is not None
        return cls(
            layers=[
                {
                    "hidden": r(layer.hidden),
                    "cell_state": None if layer.cell_state is None else r(layer.cell_state),
                    "gates": {name: r(g) for name, g in layer.gates.items()},
                }
                for layer in side.layers
            ],
            grad_hidden=[r(layer.grad_hidden) for layer in side.layers],
            grad_cell_state=[r(layer.grad_cell_state) for layer in side.layers if layer.grad_cell_state is not None]
            if lstm
            else None,
            grad_weight_hh=[r(layer.grad_weight_hh) for layer in side.layers],
            grad_input=r(side.grad_input),
        )

    def keep_hidden_only(self) -> None:
        """Send each layer's hidden states only: its frames and records then hold no cell state and no gate."""
        self.layers = [{"hidden": layer["hidden"]} for layer in self.layers]

    def state_arrays(self) -> list[tuple[str, Array]]:
        out: list[tuple[str, Array]] = []
        for k, layer in enumerate(self.layers):
            out.append((state_key(k, "hidden"), layer["hidden"]))  # type: ignore[arg-type]
            if layer.get("cell_state") is not None:
                out.append((state_key(k, "cell_state"), layer["cell_state"]))  # type: ignore[arg-type]
            gates: dict[str, Array] = layer.get("gates") or {}  # type: ignore[assignment]
            out += [(state_key(k, name), g) for name, g in gates.items()]
        return out

    def layer_at(self, t: int) -> list[dict[str, Any]]:
        """Each layer's arrays at step t, as the layers hold them (hidden, cell_state, gates; or hidden only)."""
        return [
            {
                key: None if a is None else {n: g[t] for n, g in a.items()} if isinstance(a, dict) else a[t]
                for key, a in layer.items()
            }
            for layer in self.layers
        ]

    def grad_columns(self) -> list[tuple[str, Array]]:
        L = len(self.grad_hidden)
        cols = [(f"hidden.{k}", self.grad_hidden[k]) for k in range(L)]
        cols += [(f"cell_state.{k}", c) for k, c in enumerate(self.grad_cell_state or [])]
        cols.append(("input", self.grad_input))
        cols += [(f"weight_hh.{k}", self.grad_weight_hh[k]) for k in range(L)]
        return cols


@dataclass
class TranslationWire:
    """The trace of one translation request, ready to send: whole (body) or step by step (frames)."""

    model_id: str
    trace: TranslationTrace
    precision: int | None
    beams: list[Beam] | None
    encoder: _Side
    decoder: _Side
    attention: Array | None  # (T, J)
    context: Array | None  # (T, H)
    top_probs: Array
    step_loss: Array
    via_attention: Array | None
    grad_context: Array | None
    vocab: tuple[str, ...]  # the decoder's

    @classmethod
    def build(
        cls, loaded: LoadedModel, tr: TranslationTrace, precision: int | None = None, beams: list[Beam] | None = None
    ) -> TranslationWire:
        def r(a: Array | None) -> Array | None:
            return None if a is None else _rounded(a, precision)

        assert loaded.target_vocab is not None
        return cls(
            model_id=loaded.card.id,
            trace=tr,
            precision=precision,
            beams=beams,
            encoder=_Side.of(tr.encoder, precision),
            decoder=_Side.of(tr.decoder, precision),
            attention=r(tr.attention),
            context=r(tr.context),
            top_probs=_rounded(tr.top_probs, precision),
            step_loss=_rounded(tr.step_loss, precision),
            via_attention=r(tr.via_attention),
            grad_context=r(tr.grad_context),
            vocab=loaded.target_vocab.tokens,
        )

    @property
    def source_steps(self) -> int:
        return len(self.trace.source_ids)

    @property
    def target_steps(self) -> int:
        return len(self.trace.target_ids)

    def held_bytes(self) -> int:
        arrays = [a for side in (self.encoder, self.decoder) for _, a in side.state_arrays()]
        arrays += [a for a in (self.attention, self.context, self.top_probs) if a is not None]
        return sum(a.nbytes for a in arrays) + 4096

    def header(self) -> dict[str, Any]:
        tr = self.trace
        return {
            "model": self.model_id,
            "cell": tr.cell,
            "kind": "translate",
            "checkpoint": tr.checkpoint,
            "attention_used": tr.attention is not None,
            "source_tokens": tr.source_tokens,
            "source_ids": tr.source_ids,
            "unknown": tr.unknown,
            "target_tokens": tr.target_tokens,
            "target_ids": tr.target_ids,
            "target_source": tr.target_source,
            "prefix_length": tr.prefix_length,
            "output": tr.output,
            "finished": tr.finished,
            "source_steps": self.source_steps,
            "target_steps": self.target_steps,
            "total_loss": tr.loss,
            "beams": None if self.beams is None else [self._beam(b) for b in self.beams],
        }

    @staticmethod
    def _beam(b: Beam) -> dict[str, Any]:
        return {"output": b.output, "score": b.score, "finished": b.finished}

    def predictions(self) -> list[list[dict[str, Any]]]:
        tokens = self.vocab
        return [
            [{"token": tokens[i], "p": p} for i, p in zip(ids, probs, strict=True)]
            for ids, probs in zip(self.trace.top_ids.tolist(), self.top_probs.tolist(), strict=True)
        ]

    def _grad_norms(self, side: _Side, extra: dict[str, Array | None]) -> dict[str, Any]:
        return {
            "hidden": side.grad_hidden,
            "cell_state": side.grad_cell_state,
            "input": side.grad_input,
            "weight_hh": side.grad_weight_hh,
            **extra,
        }

    def body(self) -> dict[str, Any]:
        """The REST body: the whole trace (and the beams, for a translate request)."""
        tr = self.trace
        return {
            **self.header(),
            "encoder": {"tokens": tr.encoder.tokens, "layers": self.encoder.layers},
            "decoder": {"tokens": tr.decoder.tokens, "layers": self.decoder.layers, "predictions": self.predictions()},
            "attention": self.attention,
            "context": self.context,
            "loss": self.step_loss,
            "grad_norms": {
                "encoder": self._grad_norms(self.encoder, {"via_attention": self.via_attention}),
                "decoder": self._grad_norms(self.decoder, {"context": self.grad_context}),
            },
        }

    # The stream

    def meta_frame(self, binary: bool = False, batch: int = 1) -> dict[str, Any]:
        extra: dict[str, Any] = {"encoding": "json", "batch": batch}
        if binary:
            layouts = self.layouts()
            extra = {
                "encoding": "binary",
                "batch": batch,
                "layouts": layouts,
                "record_bytes": {name: _record_bytes(name, fields) for name, fields in layouts.items()},
            }
        tr = self.trace
        return {
            "type": "meta",
            "mode": "translate",
            **extra,
            **self.header(),
            "encoder_tokens": tr.encoder.tokens,
            "decoder_tokens": tr.decoder.tokens,
            "num_layers": len(self.encoder.layers),
            "hidden_size": int(tr.encoder.layers[0].hidden.shape[1]),
            "gates": list(tr.encoder.layers[0].gates),
        }

    def frames(self, batch: int = 1) -> Iterator[bytes]:
        """Every JSON frame after meta and before done, in order, `batch` to a message (never two sections in one
        message)."""
        for section in (self._encoder_steps(), self._decoder_steps(), self._decoder_grads(), self._encoder_grads()):
            yield from frame_messages(section, batch)

    def _encoder_steps(self) -> Iterator[dict[str, Any]]:
        for t, token in enumerate(self.trace.encoder.tokens):
            yield {"type": "encoder_step", "t": t, "token": token, "layers": self.encoder.layer_at(t)}

    def _decoder_steps(self) -> Iterator[dict[str, Any]]:
        tr = self.trace
        predictions = self.predictions()
        for t in range(self.target_steps):
            yield {
                "type": "decoder_step",
                "t": t,
                "token": tr.decoder.tokens[t],
                "target": tr.target_tokens[t],
                "layers": self.decoder.layer_at(t),
                "attention": None if self.attention is None else self.attention[t],
                "prediction": predictions[t],
                "loss": self.step_loss[t],
            }

    def _decoder_grads(self) -> Iterator[dict[str, Any]]:
        yield from _grad_frames("decoder_grad", self.decoder, "context", self.grad_context)

    def _encoder_grads(self) -> Iterator[dict[str, Any]]:
        yield from _grad_frames("encoder_grad", self.encoder, "via_attention", self.via_attention)

    def layouts(self) -> dict[str, list[dict[str, Any]]]:
        """Binary records, by section: a step record is uint32 t, float32 fields, then uint32 ids; a grad record
        is float64 t, then float64 fields (float64 keeps 1e-300)."""

        def f32(name: str, size: int) -> dict[str, Any]:
            return {"name": name, "dtype": "float32", "size": size}

        def f64(name: str) -> dict[str, Any]:
            return {"name": name, "dtype": "float64", "size": 1}

        encoder = [f32(name, a.shape[1]) for name, a in self.encoder.state_arrays()]
        decoder = [f32(name, a.shape[1]) for name, a in self.decoder.state_arrays()]
        if self.attention is not None:
            decoder.append(f32("attention", self.attention.shape[1]))
        k = self.top_probs.shape[1]
        decoder += [f32("loss", 1), f32("prediction.p", k)]
        decoder.append({"name": "prediction.token_id", "dtype": "uint32", "size": k})
        decoder_grad = [f64(name) for name, _ in self.decoder.grad_columns()]
        encoder_grad = [f64(name) for name, _ in self.encoder.grad_columns()]
        if self.attention is not None:
            decoder_grad.append(f64("context"))
            encoder_grad.append(f64("via_attention"))
        return {"encoder_step": encoder, "decoder_step": decoder, "decoder_grad": decoder_grad,
                "encoder_grad": encoder_grad}  # fmt: skip

    def binary_frames(self, batch: int = 1) -> Iterator[bytes]:
        """The four sections as binary records, in the JSON frames' order, `batch` records to a message."""
        enc = [a for _, a in self.encoder.state_arrays()]
        yield from record_messages(step_records(enc, None), batch)
        dec = [a for _, a in self.decoder.state_arrays()]
        if self.attention is not None:
            dec.append(self.attention)
        dec += [self.step_loss[:, None], self.top_probs]
        yield from record_messages(step_records(dec, self.trace.top_ids), batch)
        extra_d = [] if self.grad_context is None else [self.grad_context]
        extra_e = [] if self.via_attention is None else [self.via_attention]
        yield from record_messages(grad_records([a for _, a in self.decoder.grad_columns()] + extra_d), batch)
        yield from record_messages(grad_records([a for _, a in self.encoder.grad_columns()] + extra_e), batch)


def _rounded(a: Array, precision: int | None) -> Array:
    """Rounded to the request's precision, contiguous (a gate is a column slice of the layer's (T, G·H) array)."""
    return np.ascontiguousarray(round_significant(a, precision))


def _grad_frames(kind: str, side: _Side, extra: str, values: Array | None) -> Iterator[dict[str, Any]]:
    T = len(side.grad_input)
    for t in range(T - 1, -1, -1):
        yield {
            "type": kind,
            "t": t,
            "hidden": [g[t] for g in side.grad_hidden],
            "cell_state": None if side.grad_cell_state is None else [g[t] for g in side.grad_cell_state],
            "input": side.grad_input[t],
            "weight_hh": [g[t] for g in side.grad_weight_hh],
            extra: None if values is None else values[t],
        }


def _record_bytes(section: str, fields: list[dict[str, Any]]) -> int:
    width = 8 if section.endswith("_grad") else 4
    return width * (1 + sum(int(f["size"]) for f in fields))
