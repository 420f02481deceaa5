"""A speech model's trace on the wire: a SpeechTrace as the REST body of POST /api/models/{id}/transcribe or as the
stream's frames.

The body: {"text", "beams": [{"text", "log_prob"}], "transcript", "decoder", "lexicon_beams", "trace"}: "text" is
the greedy path's collapse and "beams" the unconstrained prefix beam search's; "transcript" is the text served, the
lexicon-constrained search's best ("decoder": "lexicon"), or the greedy text when the model has no lexicon or no
text of it fits the clip ("decoder": "greedy"); "lexicon_beams" that search's texts with their exact log p (null
without a lexicon). The trace holds what the page draws, each array by
step t of the network (T' steps; a step hears `stack` log-mel frames) unless it says frames:
- the audio as read ("audio": seconds, sample_rate, channels, bits, encoding) and its timing: "frame_seconds" (the
  front end's hop: frame f is heard from f · frame_seconds), "step_seconds" (stack hops);
- "features": (T, 40) the log-mel frames the model read, by frame (the spectrogram it hears);
- "layers": every layer entry in torch's order (l0, l0_reverse, l1, …), each {"direction", "hidden", "cell_state",
  "gates"} as (T', H) arrays indexed by the input's step (a reverse entry's h_t has read steps T'−1 … t);
- "log_probs": (T', C) CTC's log-posteriors over "classes" (blank first); "greedy" (T') the likeliest class a
  step, "emitted" (T') the class the collapse writes there (−1: none);
- "target", "target_ids", "target_source" ("given" by ?transcript=, else "greedy"), "total_loss" L = −log p(target);
- "trellis": {"labels" (S) the extended labels l', "occupancy" (T', S) the posterior of each position of l' at each
  step, exp(α + β − log p), "alignment" (T') the best path's position in l', "path" (T') its class,
  "log_prob" that path's log-probability};
- "grad_norms": {"hidden", "cell_state", "weight_hh": [entry][T'], "input" [T'] ‖∂L/∂x_t‖, "logits" [T']
  ‖∂L/∂logits_t‖}.
The stream sends the same values: meta (the header, the features, beams, trellis labels), one step frame per step
({"t", "layers", "log_probs", "greedy", "emitted", "occupancy", "alignment"}), one grad frame per step from the last
back, then done. In binary, step records (float32 states, log-probs and occupancy, then uint32 greedy and alignment)
and grad records (float64), whose layouts the meta frame gives, read by app/wire/decode.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.engine.card import LoadedModel
from app.engine.speech.audio import Audio
from app.engine.speech.card import speech_card
from app.engine.speech.trace import SpeechTrace, occupancy_by_position
from app.wire.frames import (
    Array,
    frame_messages,
    grad_records,
    layer_arrays,
    layers_at,
    record_messages,
    round_significant,
    state_key,
    step_records,
)


def estimate_bytes(loaded: LoadedModel, steps: int, frames: int, labels: int) -> int:
    """About what computing and holding a speech trace takes: the states, the features, the trellis (T' × S, both
    α and β in float64 while it is computed) and the JSON text of it all."""
    card = loaded.card
    classes = speech_card(card).classes
    values = card.num_layers * card.directions * card.hidden_size * (1 + (card.cell == "lstm") + len(card.gate_names))
    S = 2 * labels + 1
    return steps * (40 * values + 24 * classes + 40 * S + 256) + frames * 40 * 12 + 8192


def _rounded(a: Array, precision: int | None) -> Array:
    return np.ascontiguousarray(round_significant(a, precision))


@dataclass
class SpeechWire:
    """The trace of one transcribe request, ready to send: whole (body) or step by step (frames)."""

    model_id: str
    trace: SpeechTrace
    audio: Audio
    classes: list[str]  # blank, then the alphabet: the posteriors' columns
    step_seconds: float
    frame_seconds: float
    features: Array  # (T, bands)
    layers: list[dict[str, Any]]  # per entry: direction, hidden, cell_state, gates (rounded, contiguous)
    log_probs: Array  # (T', C)
    occupancy: Array  # (T', S)
    grad_hidden: list[Array]
    grad_cell_state: list[Array] | None
    grad_weight_hh: list[Array]
    grad_input: Array
    grad_logits: Array  # (T',) ‖∂L/∂logits_t‖

    @classmethod
    def build(cls, loaded: LoadedModel, tr: SpeechTrace, audio: Audio, precision: int | None = None) -> SpeechWire:
        def r(a: Array) -> Array:
            return _rounded(a, precision)

        block = speech_card(loaded.card)
        lstm = tr.cell == "lstm"
        return cls(
            model_id=loaded.card.id,
            trace=tr,
            audio=audio,
            classes=list(block.alphabet_vocab().tokens),
            step_seconds=block.step_seconds,
            frame_seconds=block.front_end.frame_seconds,
            features=r(tr.frames),
            layers=[
                {
                    "direction": layer.direction,
                    "hidden": r(layer.hidden),
                    "cell_state": None if layer.cell_state is None else r(layer.cell_state),
                    "gates": {n: r(g) for n, g in layer.gates.items()},
                }
                for layer in tr.layers
            ],
            log_probs=r(tr.log_probs),
            occupancy=r(occupancy_by_position(tr.trellis)),
            grad_hidden=[r(layer.grad_hidden) for layer in tr.layers],
            grad_cell_state=[r(layer.grad_cell_state) for layer in tr.layers if layer.grad_cell_state is not None]
            if lstm
            else None,
            grad_weight_hh=[r(layer.grad_weight_hh) for layer in tr.layers],
            grad_input=r(tr.grad_input),
            grad_logits=r(np.linalg.norm(tr.grad_logits, axis=1)),
        )

    def beams(self) -> list[dict[str, Any]]:
        return [{"text": b.text, "log_prob": b.log_prob} for b in self.trace.beams]

    def decoded(self) -> dict[str, Any]:
        """The served transcript, which decoder gave it, and the lexicon search's beams (None without a lexicon)."""
        tr = self.trace
        found = tr.lexicon_beams
        lexicon = None if found is None else [{"text": b.text, "log_prob": b.log_prob} for b in found]
        return {"transcript": tr.transcript, "decoder": tr.decoder, "lexicon_beams": lexicon}

    def header(self) -> dict[str, Any]:
        tr = self.trace
        a = self.audio
        return {
            "model": self.model_id,
            "cell": tr.cell,
            "kind": "transcribe",
            "checkpoint": tr.checkpoint,
            "audio": {
                "seconds": a.seconds,
                "sample_rate": a.rate,
                "channels": a.channels,
                "bits": a.bits,
                "encoding": a.encoding,
            },
            "frame_seconds": self.frame_seconds,
            "step_seconds": self.step_seconds,
            "stack": tr.stack,
            "frame_count": int(tr.frames.shape[0]),
            "steps": tr.steps,
            "classes": self.classes,
            "directions": [layer["direction"] for layer in self.layers],
            "text": tr.text,
            "transcript": tr.transcript,
            "decoder": tr.decoder,
            "target": tr.target,
            "target_ids": tr.target_ids,
            "target_source": tr.target_source,
            "total_loss": tr.loss,
        }

    def body(self) -> dict[str, Any]:
        """The REST body: {"text", "beams", "trace"}."""
        tr = self.trace
        return {
            "text": tr.text,
            "beams": self.beams(),
            **self.decoded(),
            "trace": {
                **self.header(),
                "features": self.features,
                "layers": self.layers,
                "log_probs": self.log_probs,
                "greedy": tr.greedy,
                "emitted": tr.emitted,
                "trellis": {
                    "labels": tr.trellis.labels,
                    "occupancy": self.occupancy,
                    "alignment": tr.trellis.alignment,
                    "path": tr.trellis.path,
                    "log_prob": tr.trellis.alignment_log_prob,
                },
                "grad_norms": self._grad_norms(),
            },
        }

    def _grad_norms(self) -> dict[str, Any]:
        return {"hidden": self.grad_hidden, "cell_state": self.grad_cell_state, "weight_hh": self.grad_weight_hh,
                "input": self.grad_input, "logits": self.grad_logits}  # fmt: skip

    def held_bytes(self) -> int:
        arrays = [a for layer in self.layers for a in layer_arrays(layer)]
        arrays += [self.features, self.log_probs, self.occupancy]
        return sum(a.nbytes for a in arrays) + 64 * self.trace.steps + 4096

    # The stream

    def meta_frame(self, binary: bool = False, batch: int = 1) -> dict[str, Any]:
        extra: dict[str, Any] = {"encoding": "json", "batch": batch}
        if binary:
            layout, grad_layout = self.binary_layout(), self.grad_layout()
            extra = {"encoding": "binary", "layout": layout, "grad_layout": grad_layout, "batch": batch,
                     "step_record_bytes": 4 * (1 + sum(f["size"] for f in layout)),
                     "grad_record_bytes": 8 * (1 + sum(f["size"] for f in grad_layout))}  # fmt: skip
        tr = self.trace
        first = self.layers[0]
        return {
            "type": "meta",
            "mode": "transcribe",
            **extra,
            **self.header(),
            "beams": self.beams(),
            "lexicon_beams": self.decoded()["lexicon_beams"],
            "features": self.features,
            "labels": tr.trellis.labels,
            "alignment_log_prob": tr.trellis.alignment_log_prob,
            "num_layers": len(self.layers) // (1 + any(layer["direction"] == "reverse" for layer in self.layers)),
            "hidden_size": int(first["hidden"].shape[1]),
            "gates": list(first["gates"]),
        }

    def done_frame(self) -> dict[str, Any]:
        tr = self.trace
        return {"type": "done", "text": tr.text, "transcript": tr.transcript, "total_loss": tr.loss}

    def _state_arrays(self) -> list[tuple[str, Array]]:
        out: list[tuple[str, Array]] = []
        for k, layer in enumerate(self.layers):
            out.append((state_key(k, "hidden"), layer["hidden"]))
            if layer["cell_state"] is not None:
                out.append((state_key(k, "cell_state"), layer["cell_state"]))
            out += [(state_key(k, n), g) for n, g in layer["gates"].items()]
        return out

    def step_frames(self, batch: int = 1) -> Iterator[bytes]:
        tr = self.trace

        def frames() -> Iterator[dict[str, Any]]:
            for t in range(tr.steps):
                yield {"type": "step", "t": t, "layers": layers_at(self.layers, t), "log_probs": self.log_probs[t],
                       "greedy": int(tr.greedy[t]), "emitted": int(tr.emitted[t]), "occupancy": self.occupancy[t],
                       "alignment": int(tr.trellis.alignment[t])}  # fmt: skip

        return frame_messages(frames(), batch)

    def grad_frames(self, batch: int = 1) -> Iterator[bytes]:
        def frames() -> Iterator[dict[str, Any]]:
            for t in range(self.trace.steps - 1, -1, -1):
                yield {
                    "type": "grad",
                    "t": t,
                    "hidden": [g[t] for g in self.grad_hidden],
                    "cell_state": None if self.grad_cell_state is None else [g[t] for g in self.grad_cell_state],
                    "weight_hh": [g[t] for g in self.grad_weight_hh],
                    "input": self.grad_input[t],
                    "logits": self.grad_logits[t],
                }

        return frame_messages(frames(), batch)

    def frames(self, batch: int = 1) -> Iterator[bytes]:
        """Every JSON frame between meta and done: the step frames, then the grad frames (last step first)."""
        return itertools.chain(self.step_frames(batch), self.grad_frames(batch))

    def binary_layout(self) -> list[dict[str, Any]]:
        """A step record after its uint32 t: float32 states, log-probs and occupancy, then uint32 classes."""
        fields = [{"name": n, "dtype": "float32", "size": a.shape[1]} for n, a in self._state_arrays()]
        fields += [
            {"name": "log_probs", "dtype": "float32", "size": self.log_probs.shape[1]},
            {"name": "occupancy", "dtype": "float32", "size": self.occupancy.shape[1]},
            {"name": "greedy", "dtype": "uint32", "size": 1},
            {"name": "alignment", "dtype": "uint32", "size": 1},
        ]
        return fields

    def grad_layout(self) -> list[dict[str, Any]]:
        """A grad record after its float64 t: these float64 fields, one value each."""
        E = len(self.layers)
        names = [f"hidden.{k}" for k in range(E)] + [f"cell_state.{k}" for k in range(len(self.grad_cell_state or []))]
        names += [f"weight_hh.{k}" for k in range(E)] + ["input", "logits"]
        return [{"name": n, "dtype": "float64", "size": 1} for n in names]

    def binary_frames(self, batch: int = 1) -> Iterator[bytes]:
        tr = self.trace
        parts = [*(a for _, a in self._state_arrays()), self.log_probs, self.occupancy]
        ids = np.stack([tr.greedy, tr.trellis.alignment], axis=1)
        columns = [*self.grad_hidden, *(self.grad_cell_state or []), *self.grad_weight_hh, self.grad_input,
                   self.grad_logits]  # fmt: skip
        return itertools.chain(
            record_messages(step_records(parts, ids), batch), record_messages(grad_records(columns), batch)
        )
