"""The token family on the web: next-token models (text and melodies) and classifiers. Whether a model predicts
the next token or a class, or reads notes, is this family's own business and is decided here."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from app.engine.card import LoadedModel
from app.engine.errors import WrongModelKind
from app.engine.lab.jacobian import JacobianNorms, jacobian_norms
from app.engine.token.card import token_card, token_model
from app.engine.token.trace import Trace
from app.web.capacity import cost
from app.web.config import Settings
from app.web.families.base import (
    JacobianInput,
    Job,
    PageChoice,
    StepStream,
    StreamRequest,
    TraceStream,
    WebFamily,
)
from app.web.schemas.jacobian import JacobianRequest
from app.web.schemas.models import (
    GenerateRequest,
    StreamGenerateRequest,
    StreamTraceRequest,
    StreamTranslateRequest,
    TraceRequest,
    TranslateRequest,
)
from app.web.service import Generation, check_chars, compute_trace, readable, text_of, trace_steps
from app.wire.frames import dumps
from app.wire.token import WireTrace, estimate_working_bytes, generated_step_frame
from app.zoo.zoo import Zoo


def is_melody(m: LoadedModel) -> bool:
    """A next-note model: its text is PITCH:DUR notes (app/engine/token/notes.py), shown on the melody page."""
    return m.card.kind == "next_token" and m.vocab.level == "note"


def refuse_translation_fields(loaded: LoadedModel, req: TraceRequest) -> None:
    """`target` belongs to translation models; a token model's trace would silently ignore it otherwise."""
    if req.target is not None:
        raise WrongModelKind(f"{loaded.card.id} is a {loaded.card.kind} model: `target` is for translation models")


def not_translation(loaded: LoadedModel) -> WrongModelKind:
    return WrongModelKind(f"{loaded.card.id} is a {loaded.card.kind} model, not a translation model")


def table(loaded: LoadedModel, tr: Trace) -> list[str]:
    """`unrolled trace`'s table: each step's token, its prediction (the next token or the class), its loss and
    its gradient norms."""
    next_token = tr.kind == "next_token"
    head = ["t", "token", "predicts (p)" if next_token else "class (p)", "loss"]
    head += [f"|dL/dh| l{k}" for k in range(len(tr.layers))] + ["|dL/dx|"]
    lines = ["  ".join(f"{h:>12}" for h in head)]
    labels = token_card(loaded.card).labels or []
    for t in range(tr.steps):
        if next_token:
            best = f"{loaded.vocab.tokens[tr.top_ids[t, 0]]!r} {tr.top_probs[t, 0]:.2f}"
        else:
            c = int(np.argmax(tr.probs[t]))
            best = f"{labels[c]} {tr.probs[t, c]:.2f}"
        row = [str(t), repr(tr.tokens[t]), best, "-" if np.isnan(tr.step_loss[t]) else f"{tr.step_loss[t]:.3f}"]
        row += [f"{layer.grad_hidden[t]:.3e}" for layer in tr.layers] + [f"{tr.grad_input[t]:.3e}"]
        lines.append("  ".join(f"{c:>12}" for c in row))
    return lines


class TokenWeb(WebFamily):
    name = "token"

    def trace_job(self, loaded: LoadedModel, req: TraceRequest, settings: Settings) -> Job:
        refuse_translation_fields(loaded, req)
        steps = trace_steps(loaded, req, settings)

        def work() -> bytes:
            return dumps(compute_trace(loaded, req, settings).body())

        estimate = estimate_working_bytes(loaded.card, steps, req.top_k, "rest")
        return Job(work, cost.trace_seconds(loaded, steps), estimate)

    def generate_job(self, loaded: LoadedModel, req: GenerateRequest, settings: Settings) -> Job:
        generation = Generation.start(loaded, req, settings)
        steps = len(generation.prompt_ids) + req.length

        def work() -> bytes:
            for _ in generation.run():
                pass
            text, written, wire = generation.finish()
            return dumps({"text": text, "generated": written, "trace": wire.body()})

        estimate = estimate_working_bytes(loaded.card, steps, req.top_k, "rest")
        seconds = cost.generate_seconds(loaded, len(generation.prompt_ids), req.length)
        # without a seed each generation samples afresh (temperature 0 is greedy: always the same text)
        return Job(work, seconds, estimate, repeats=req.seed is not None or req.temperature == 0)

    def translate_job(self, loaded: LoadedModel, req: TranslateRequest, settings: Settings) -> Job:
        raise not_translation(loaded)

    def stream(self, loaded: LoadedModel, req: StreamRequest, settings: Settings) -> TraceStream | StepStream:
        if isinstance(req, StreamTranslateRequest):
            raise not_translation(loaded)
        if isinstance(req, StreamTraceRequest):
            refuse_translation_fields(loaded, req)
        if isinstance(req, StreamGenerateRequest):
            return self._generation(loaded, req, settings)
        # One trace, computed off the event loop, with its JSON text if JSON is asked for; its frames are put
        # together one at a time as they are sent (a few µs each), so the first leaves as soon as the trace is done.
        binary = req.encoding == "binary"

        def compute_wire() -> WireTrace:
            wire = compute_trace(loaded, req, settings)
            if not binary:
                wire.layer_text  # noqa: B018 (written here, not on the event loop)
            return wire

        steps = trace_steps(loaded, req, settings)
        estimate = estimate_working_bytes(loaded.card, steps, req.top_k, "binary" if binary else "json")
        return TraceStream(compute_wire, WireTrace.done_frame, cost.trace_seconds(loaded, steps), estimate)

    def _generation(self, loaded: LoadedModel, req: StreamGenerateRequest, settings: Settings) -> StepStream:
        """Each step frame leaves as soon as its token is sampled; then the BPTT sweep of the whole text."""
        gen = Generation.start(loaded, req, settings)
        steps = gen.run()
        total = len(gen.prompt_ids) + req.length

        def next_frame(t: int) -> bytes | None:
            step = next(steps, None)
            return None if step is None else dumps(generated_step_frame(gen.loaded, step, t, req.top_k, req.precision))

        def finish() -> tuple[Iterable[bytes], dict[str, Any]]:
            text, written, wire = gen.finish()
            return wire.grad_frames(), {"type": "done", "text": text, "generated": written,
                                        "total_loss": wire.trace.loss}  # fmt: skip

        card = loaded.card
        meta = {"type": "meta", "mode": "generate", "model": card.id, "steps": total, "cell": card.cell,
                "gates": list(card.gate_names), "num_layers": card.num_layers,
                "hidden_size": card.hidden_size, "prompt_steps": len(gen.prompt_ids)}  # fmt: skip
        seconds = cost.generate_seconds(loaded, len(gen.prompt_ids), req.length)
        repeats = req.seed is not None or req.temperature == 0  # as the REST generation's Job
        return StepStream(meta, total, next_frame, finish, seconds, repeats)

    def jacobian_input(
        self, loaded: LoadedModel, req: JacobianRequest, settings: Settings, check_steps: Callable[[int], None]
    ) -> JacobianInput:
        text = text_of(loaded, req.text)
        model = token_model(loaded, req.checkpoint)
        check_chars("text", text, settings.max_steps, "max_steps")
        encoded = readable(loaded, loaded.vocab.encode(text), "melody")
        check_steps(len(encoded.ids))
        limit = settings.jacobian_max_steps

        def norms() -> JacobianNorms:
            return jacobian_norms(model, encoded.ids, req.layer, req.norm, max_steps=limit)

        return JacobianInput(encoded.tokens, norms, loaded.card.num_layers * loaded.card.directions)

    def card_fields(self, loaded: LoadedModel) -> dict[str, Any]:
        block = token_card(loaded.card)
        classify = loaded.card.kind == "classify"
        return {
            "embed_size": block.embed_size,
            "vocab": None if classify else list(loaded.vocab.tokens),
            "labels": block.labels,
            "positive_label": block.positive_label,
            "target": block.target if classify else None,
        }

    def page_card(self, loaded: LoadedModel) -> dict[str, Any] | None:
        if not is_melody(loaded):
            return None
        block = token_card(loaded.card)
        return {"embed_size": block.embed_size, "vocab": list(loaded.vocab.tokens), "labels": block.labels,
                "series": None}  # fmt: skip

    def labels(self, loaded: LoadedModel) -> list[str] | None:
        return token_card(loaded.card).labels

    def page(
        self, zoo: Zoo, loaded: LoadedModel, view: str, task_models: list[LoadedModel], peers: list[LoadedModel]
    ) -> PageChoice | str:
        model_id = loaded.card.id
        if is_melody(loaded):
            if view == "learning":
                return (
                    f"{model_id} is a melody model: the learning page shows text models and classifiers. "
                    f"Its melody is on its own page, /models/{model_id}."
                )
            return PageChoice("melody.html", {"peers": peers, "writing": view == "generate"})
        if view == "generate" and loaded.card.bidirectional:
            return (
                f"{model_id} reads its input both ways (bidirectional): it cannot write text one token at a time. "
                f"Its trace is on its own page, /models/{model_id}."
            )
        if view == "generate" and loaded.card.kind == "classify":
            return f"{model_id} is a classifier: only next-token models can write text."
        return PageChoice(f"{view}.html", {"peers": peers})

    def home_card(self, loaded: LoadedModel) -> dict[str, Any]:
        c, next_token, melody = loaded.card, loaded.card.kind == "next_token", is_melody(loaded)
        level = {"word": "words", "note": "notes"}.get(loaded.vocab.level, "symbols")
        return {
            "shape": "next token" if next_token else f"classifier ({len(token_card(c).labels or [])} classes)",
            "reads": f"{len(loaded.vocab)} {level}",
            "open": "Play" if melody else "Unroll",
            "writes": next_token and not c.bidirectional,
            "learning": len(c.checkpoints) > 1 and not melody,
            "values": False,
        }

    def compared_by_cell(self, loaded: LoadedModel) -> bool:
        return True

    def not_compared(self, task: str, first: str, known: str) -> str | None:
        return None

    def in_lab(self, loaded: LoadedModel) -> bool:
        return not is_melody(loaded)


TOKEN_WEB = TokenWeb()
