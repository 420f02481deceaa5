"""A caption model's trace on the wire: a Captioning as the REST body of POST /api/models/{id}/caption or as the
stream's frames.

The body: {"caption", "beams": [{"caption", "score", "finished"}], "trace"}. The trace holds what the page draws,
each array by word t (T words: what the decoder writes, </s> last if the caption ended) unless it says cells:
- the grid: "grid_size" cells a side, "cells" = grid_size²; cell j is the region (row, col) = divmod(j, grid_size)
  of the 64 × 64 picture, "cell_pixels" a side (the image as the model saw it is not sent: the page has it);
- "words", "word_ids" (what each step should write), "inputs" (what it read: <s>, y_0, …), "caption" (the words as
  text), "finished", "target_source" ("given" by ?caption=, else "greedy"), "total_loss" L = −log p(caption);
- "layers": the decoder's one layer entry, {"direction", "hidden", "cell_state", "gates"} as (T, H) arrays;
  "start": {"hidden", "cell_state"} h_{−1} (c_{−1}), the state the decoder starts from, computed from the grid;
- "attention": (T, G) α_tj, each row sums to 1; "predictions": per word the top-5 next words [{token, p}];
  "loss": (T) each word's loss L_t = −log p(y_t);
- "grad_norms": "hidden", "cell_state", "weight_hh" [entry][T] (BPTT through the decoder), "input" (T)
  ‖∂L/∂E[y_{t−1}]‖, "context" (T) ‖∂L/∂c_t‖, "start" ‖∂L/∂h_{−1}‖, "grid" (G) ‖∂L/∂m_j‖ (all that reaches grid
  cell j of the encoder's output), "grid_attention" and "grid_start" (G) its shares through attention and through
  the start state, "grid_words" (T, G) ‖∂L_t/∂m_j‖ (word t's own loss, reaching cell j).
The stream sends the same values: meta (the header, the beams, the start state and the grid's totals), one step
frame per word ({"t", "word", "input", "layers", "attention", "prediction", "loss"}), one grad frame per word from the
last back ({"t", "hidden", "cell_state", "weight_hh", "input", "context", "grid"}), then done. In binary, step
records (float32 states, attention, loss and top-5 probabilities, then uint32 top-5 ids) and grad records (float64,
"grid" G values wide), whose layouts the meta frame gives, read by app/wire/decode.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.engine.caption.card import caption_card, config
from app.engine.caption.model import IMAGE_SIZE
from app.engine.caption.trace import Beam, Captioning
from app.engine.card import LoadedModel
from app.wire.frames import (
    Array,
    encoding_meta,
    frame_messages,
    grad_records,
    record_messages,
    round_significant,
    state_key,
    step_records,
    step_values,
)

TOP_K = 5  # next words listed per word


def estimate_bytes(loaded: LoadedModel, beam: int) -> int:
    """About what computing and holding a caption's trace takes, at the card's max_length words: the states, the
    attention and the per-word gradient over the grid (T × G each, float64), the probabilities (T × V), the beam
    search's candidates and the JSON text of it all; the decoded image and the encoder's grid besides."""
    block = caption_card(loaded.card)
    T, G, V = block.max_length, config(loaded.card).cells, len(block.words["tokens"])
    per_word = 40 * step_values(loaded.card) + 40 * G + 24 * V + 256
    return T * per_word + beam * T * V * 16 + IMAGE_SIZE * IMAGE_SIZE * 3 * 8 + 65_536


def _rounded(a: Array, precision: int | None) -> Array:
    return np.ascontiguousarray(round_significant(a, precision))


@dataclass
class CaptionWire:
    """The trace of one caption request, ready to send: whole (body) or word by word (frames)."""

    model_id: str
    captioning: Captioning
    vocab: list[str]  # the words the model writes, in its head's order
    layer: dict[str, Any]  # direction, hidden, cell_state, gates (rounded, contiguous)
    start: dict[str, Any]  # hidden, cell_state
    attention: Array  # (T, G)
    top_probs: Array  # (T, k)
    step_loss: Array  # (T,)
    grad_hidden: Array
    grad_cell_state: Array | None
    grad_weight_hh: Array
    grad_input: Array
    grad_context: Array
    grad_grid: Array  # (G,)
    grad_grid_attention: Array
    grad_grid_start: Array
    grad_grid_words: Array  # (T, G)

    @classmethod
    def build(cls, loaded: LoadedModel, captioning: Captioning, precision: int | None = None) -> CaptionWire:
        def r(a: Array) -> Array:
            return _rounded(a, precision)

        tr = captioning.trace
        d = tr.decoder
        return cls(
            model_id=loaded.card.id,
            captioning=captioning,
            vocab=list(caption_card(loaded.card).words_vocab().tokens),
            layer={
                "direction": d.direction,
                "hidden": r(d.hidden),
                "cell_state": None if d.cell_state is None else r(d.cell_state),
                "gates": {n: r(g) for n, g in d.gates.items()},
            },
            start={"hidden": r(tr.start), "cell_state": None if tr.start_cell is None else r(tr.start_cell)},
            attention=r(tr.attention),
            top_probs=r(tr.top_probs),
            step_loss=r(tr.step_loss),
            grad_hidden=r(d.grad_hidden),
            grad_cell_state=None if d.grad_cell_state is None else r(d.grad_cell_state),
            grad_weight_hh=r(d.grad_weight_hh),
            grad_input=r(tr.grad_input),
            grad_context=r(tr.grad_context),
            grad_grid=r(tr.grad_grid),
            grad_grid_attention=r(tr.grad_grid_attention),
            grad_grid_start=r(tr.grad_grid_start),
            grad_grid_words=r(tr.grad_grid_words),
        )

    @property
    def steps(self) -> int:
        return len(self.captioning.trace.word_ids)

    @staticmethod
    def _beam(b: Beam) -> dict[str, Any]:
        return {"caption": b.caption, "score": b.score, "finished": b.finished}

    def beams(self) -> list[dict[str, Any]]:
        return [self._beam(b) for b in self.captioning.beams]

    def predictions(self) -> list[list[dict[str, Any]]]:
        ids = self.captioning.trace.top_ids.tolist()
        return [
            [{"token": self.vocab[i], "p": p} for i, p in zip(row, probs, strict=True)]
            for row, probs in zip(ids, self.top_probs.tolist(), strict=True)
        ]

    def header(self) -> dict[str, Any]:
        tr = self.captioning.trace
        return {
            "model": self.model_id,
            "cell": tr.cell,
            "kind": "caption",
            "checkpoint": tr.checkpoint,
            "grid_size": tr.grid_size,
            "cells": tr.grid_size * tr.grid_size,
            "cell_pixels": IMAGE_SIZE // tr.grid_size,
            "steps": self.steps,
            "hidden_size": int(self.layer["hidden"].shape[1]),
            "gates": list(self.layer["gates"]),
            "words": tr.words,
            "word_ids": tr.word_ids,
            "inputs": tr.inputs,
            "caption": tr.caption,
            "finished": tr.finished,
            "target_source": tr.target_source,
            "total_loss": tr.loss,
        }

    def _grid_norms(self) -> dict[str, Any]:
        """What reaches the grid, in total over the words: known once the whole sweep has run."""
        return {"start": self.captioning.trace.grad_start, "grid": self.grad_grid,
                "grid_attention": self.grad_grid_attention, "grid_start": self.grad_grid_start}  # fmt: skip

    def body(self) -> dict[str, Any]:
        """The REST body: {"caption", "beams", "trace"}."""
        return {
            "caption": self.captioning.caption,
            "beams": self.beams(),
            "trace": {
                **self.header(),
                "layers": [self.layer],
                "start": self.start,
                "attention": self.attention,
                "predictions": self.predictions(),
                "loss": self.step_loss,
                "grad_norms": {
                    "hidden": [self.grad_hidden],
                    "cell_state": None if self.grad_cell_state is None else [self.grad_cell_state],
                    "weight_hh": [self.grad_weight_hh],
                    "input": self.grad_input,
                    "context": self.grad_context,
                    **self._grid_norms(),
                    "grid_words": self.grad_grid_words,
                },
            },
        }

    def held_bytes(self) -> int:
        arrays = [self.attention, self.grad_grid_words, self.top_probs, *self._layer_arrays()]
        return sum(a.nbytes for a in arrays) + 256 * self.steps + 4096

    def _layer_arrays(self) -> list[Array]:
        return [a for _, a in self._state_arrays()]

    def _state_arrays(self) -> list[tuple[str, Array]]:
        layer = self.layer
        out: list[tuple[str, Array]] = [(state_key(0, "hidden"), layer["hidden"])]
        if layer["cell_state"] is not None:
            out.append((state_key(0, "cell_state"), layer["cell_state"]))
        return out + [(state_key(0, n), g) for n, g in layer["gates"].items()]

    # The stream

    def meta_frame(self, binary: bool = False, batch: int = 1) -> dict[str, Any]:
        layouts = (self.binary_layout(), self.grad_layout()) if binary else None
        return {
            "type": "meta",
            "mode": "caption",
            **encoding_meta(batch, layouts),
            **self.header(),
            "beams": self.beams(),
            "start": self.start,
            "grad_norms": self._grid_norms(),
        }

    def done_frame(self) -> dict[str, Any]:
        return {"type": "done", "caption": self.captioning.caption, "total_loss": self.captioning.trace.loss}

    def step_frames(self, batch: int = 1) -> Iterator[bytes]:
        tr = self.captioning.trace
        layer = self.layer
        predictions = self.predictions()

        def frames() -> Iterator[dict[str, Any]]:
            for t in range(self.steps):
                yield {
                    "type": "step",
                    "t": t,
                    "word": tr.words[t],
                    "input": tr.inputs[t],
                    "layers": [
                        {
                            "hidden": layer["hidden"][t],
                            "cell_state": None if layer["cell_state"] is None else layer["cell_state"][t],
                            "gates": {n: g[t] for n, g in layer["gates"].items()},
                        }
                    ],
                    "attention": self.attention[t],
                    "prediction": predictions[t],
                    "loss": self.step_loss[t],
                }

        return frame_messages(frames(), batch)

    def grad_frames(self, batch: int = 1) -> Iterator[bytes]:
        def frames() -> Iterator[dict[str, Any]]:
            for t in range(self.steps - 1, -1, -1):
                yield {
                    "type": "grad",
                    "t": t,
                    "hidden": [self.grad_hidden[t]],
                    "cell_state": None if self.grad_cell_state is None else [self.grad_cell_state[t]],
                    "weight_hh": [self.grad_weight_hh[t]],
                    "input": self.grad_input[t],
                    "context": self.grad_context[t],
                    "grid": self.grad_grid_words[t],
                }

        return frame_messages(frames(), batch)

    def frames(self, batch: int = 1) -> Iterator[bytes]:
        """Every JSON frame between meta and done: the step frames, then the grad frames (last word first)."""
        return itertools.chain(self.step_frames(batch), self.grad_frames(batch))

    def binary_layout(self) -> list[dict[str, Any]]:
        """A step record after its uint32 t: float32 states, attention, loss and top-k probabilities, then the
        top-k word ids (uint32)."""
        k = self.top_probs.shape[1]
        fields = [{"name": n, "dtype": "float32", "size": a.shape[1]} for n, a in self._state_arrays()]
        return [
            *fields,
            {"name": "attention", "dtype": "float32", "size": self.attention.shape[1]},
            {"name": "loss", "dtype": "float32", "size": 1},
            {"name": "prediction.p", "dtype": "float32", "size": k},
            {"name": "prediction.token_id", "dtype": "uint32", "size": k},
        ]

    def grad_layout(self) -> list[dict[str, Any]]:
        """A grad record after its float64 t: these float64 fields; "grid" is one value per grid cell."""
        names = ["hidden.0", *(["cell_state.0"] if self.grad_cell_state is not None else []), "weight_hh.0", "input",
                 "context"]  # fmt: skip
        fields = [{"name": n, "dtype": "float64", "size": 1} for n in names]
        return [*fields, {"name": "grid", "dtype": "float64", "size": self.grad_grid_words.shape[1]}]

    def binary_frames(self, batch: int = 1) -> Iterator[bytes]:
        parts = [*self._layer_arrays(), self.attention, self.step_loss[:, None], self.top_probs]
        columns = [self.grad_hidden, *([] if self.grad_cell_state is None else [self.grad_cell_state]),
                   self.grad_weight_hh, self.grad_input, self.grad_context, self.grad_grid_words]  # fmt: skip
        return itertools.chain(
            record_messages(step_records(parts, self.captioning.trace.top_ids), batch),
            record_messages(grad_records(columns), batch),
        )
