"""The translation family on the web: an encoder–decoder's trace and its beam search (the request read, limited
and handed to the engine), its page with its peer of the other attention setting. Its wire layout is
app/wire/translation.py's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.engine.card import LoadedModel, ModelCard
from app.engine.errors import WrongModelKind
from app.engine.translation.card import TranslationCard, translation_card
from app.engine.translation.trace import DEFAULT_MAX_LENGTH, MAX_SOURCE_STEPS, trace_translation, translate
from app.web.capacity import cost
from app.web.config import Settings
from app.web.errors import LimitExceeded
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
from app.web.service import check_chars, check_top_k, text_of
from app.wire.frames import dumps
from app.wire.translation import TranslationWire, estimate_bytes
from app.zoo.zoo import Zoo

MAX_BEAM = 8


def output_limit(loaded: LoadedModel, max_length: int | None) -> int:
    return max_length or translation_card(loaded.card).max_length or DEFAULT_MAX_LENGTH


def translation_steps(
    loaded: LoadedModel, text: str, max_length: int | None, beam: int, top_k: int, settings: Settings
) -> int:
    """An upper bound of the steps a translation computes (source, and every beam's output), its limits checked
    before anything is computed."""
    check_top_k(top_k, settings)  # first: an absurd top_k is a 422, not a body too big for the byte budget
    check_chars("text", text, min(settings.max_steps, MAX_SOURCE_STEPS), "max_source_steps")
    if not 1 <= beam <= MAX_BEAM:
        raise LimitExceeded(f"beam is {beam}; the limit is {MAX_BEAM}")
    return len(loaded.vocab.split(text)) + output_limit(loaded, max_length) * beam


def trace_request(loaded: LoadedModel, req: TraceRequest, settings: Settings) -> TranslationWire:
    check_top_k(req.top_k, settings)
    tr = trace_translation(
        loaded,
        text_of(loaded, req.text),
        req.target,
        # a given target is bounded by the schema (1,000 letters), not by the card's max_length, which bounds
        # what the decoder writes on its own
        max_length=None if req.target is None else len(req.target) + 2,
        top_k=req.top_k,
        checkpoint=req.checkpoint,
        max_source_steps=min(settings.max_steps, MAX_SOURCE_STEPS),
        allow_unknown=True,  # read as <unk>: the source's positions are reported ("unknown"), as a token model's
    )
    return TranslationWire.build(loaded, tr, req.precision)


def translate_request(loaded: LoadedModel, req: TranslateRequest, settings: Settings) -> TranslationWire:
    check_top_k(req.top_k, settings)
    result = translate(
        loaded,
        req.text,
        beam=req.beam,
        max_length=req.max_length,
        top_k=req.top_k,
        prefix=req.prefix,
        checkpoint=req.checkpoint,
        max_source_steps=min(settings.max_steps, MAX_SOURCE_STEPS),
        allow_unknown=True,  # read as <unk>: the source's positions are reported ("unknown"), as a token model's
    )
    return TranslationWire.build(loaded, result.trace, req.precision, result.beams)


def stream_request(
    loaded: LoadedModel, req: StreamTraceRequest | StreamTranslateRequest, settings: Settings
) -> TranslationWire:
    if isinstance(req, StreamTranslateRequest):
        wire = translate_request(loaded, req, settings)
        if req.states == "hidden":  # what the translation page reads: the cell states and gates stay behind
            wire.encoder.keep_hidden_only()
            wire.decoder.keep_hidden_only()
        return wire
    return trace_request(loaded, req, settings)


def attention_peer(zoo: Zoo, card: ModelCard) -> LoadedModel | None:
    """The translation model of the same task with attention switched (on ↔ off): the same cell and depth if the
    zoo has it, else the nearest; None if the task has no such model."""
    attends = translation_card(card).attention
    others = [
        m
        for m in zoo
        if isinstance(m.card.block, TranslationCard) and m.card.task == card.task
        and translation_card(m.card).attention != attends
    ]  # fmt: skip
    others.sort(key=lambda m: (m.card.cell != card.cell, m.card.num_layers != card.num_layers, m.card.id))
    return others[0] if others else None


class TranslationWeb(WebFamily):
    name = "translation"

    def trace_job(self, loaded: LoadedModel, req: TraceRequest, settings: Settings) -> Job:
        steps = translation_steps(loaded, text_of(loaded, req.text), None, 1, req.top_k, settings)

        def work() -> bytes:
            return dumps(trace_request(loaded, req, settings).body())

        estimate = estimate_bytes(loaded, steps, req.top_k)
        return Job(work, cost.translate_seconds(loaded, steps), estimate)

    def generate_job(self, loaded: LoadedModel, req: GenerateRequest, settings: Settings) -> Job:
        raise WrongModelKind("generate needs a next-token model; this one translates (use translate)")

    def translate_job(self, loaded: LoadedModel, req: TranslateRequest, settings: Settings) -> Job:
        steps = translation_steps(loaded, text_of(loaded, req.text), req.max_length, req.beam, req.top_k, settings)

        def work() -> bytes:
            wire = translate_request(loaded, req, settings)
            return dumps({"output": wire.trace.output, "beams": wire.header()["beams"], "trace": wire.body()})

        estimate = estimate_bytes(loaded, steps, req.top_k)
        return Job(work, cost.translate_seconds(loaded, steps), estimate)

    def stream(self, loaded: LoadedModel, req: StreamRequest, settings: Settings) -> TraceStream | StepStream:
        """meta, the encoder's steps, the decoder's steps, the decoder's BPTT, the encoder's BPTT, done."""
        if isinstance(req, StreamGenerateRequest):
            raise WrongModelKind(
                f"{loaded.card.id} translates: open a stream with mode translate or trace, not generate"
            )
        is_translate = isinstance(req, StreamTranslateRequest)
        beam = req.beam if isinstance(req, StreamTranslateRequest) else 1
        max_length = req.max_length if isinstance(req, StreamTranslateRequest) else None
        steps = translation_steps(loaded, text_of(loaded, req.text), max_length, beam, req.top_k, settings)

        def done(wire: TranslationWire) -> dict[str, Any]:
            frame: dict[str, Any] = {"type": "done", "output": wire.trace.output, "total_loss": wire.trace.loss}
            if is_translate:
                frame["beams"] = wire.header()["beams"]
            return frame

        def wire() -> TranslationWire:
            return stream_request(loaded, req, settings)

        estimate = estimate_bytes(loaded, steps, req.top_k)
        return TraceStream(wire, done, cost.translate_seconds(loaded, steps), estimate)

    def jacobian_input(
        self, loaded: LoadedModel, req: JacobianRequest, settings: Settings, check_steps: Callable[[int], None]
    ) -> JacobianInput:
        raise WrongModelKind(
            f"{loaded.card.id} is a translation model: the Jacobian is computed for one recurrent stack (text and "
            "series models) only"
        )

    def card_fields(self, loaded: LoadedModel) -> dict[str, Any]:
        block = translation_card(loaded.card)
        return {
            "embed_size": block.embed_size,
            "vocab": list(loaded.vocab.tokens),
            "target_vocab": None if loaded.target_vocab is None else list(loaded.target_vocab.tokens),
            "attention": block.attention,
            "max_length": block.max_length,
            "equations": block.equations or None,
        }

    def page_card(self, loaded: LoadedModel) -> dict[str, Any] | None:
        return None

    def labels(self, loaded: LoadedModel) -> list[str] | None:
        return None

    def page(
        self, zoo: Zoo, loaded: LoadedModel, view: str, task_models: list[LoadedModel], peers: list[LoadedModel]
    ) -> PageChoice | str:
        model_id = loaded.card.id
        if view == "generate":
            return f"{model_id} translates (its page: /models/{model_id}): only next-token models can write text."
        if view == "learning":
            return (
                f"{model_id} is a translation model: the learning page shows next-token models and classifiers. "
                f"Its encoder, decoder and attention are on its own page, /models/{model_id}."
            )
        return PageChoice("translate.html", {"peer": attention_peer(zoo, loaded.card)})

    def home_card(self, loaded: LoadedModel) -> dict[str, Any]:
        attends = translation_card(loaded.card).attention
        level = {"word": "words", "note": "notes"}.get(loaded.vocab.level, "symbols")
        return {
            "shape": "encoder–decoder" + (", with attention" if attends else ", no attention"),
            "reads": f"{len(loaded.vocab)} {level}",
            "open": "Translate",
            "writes": False,
            "learning": False,
            "values": False,
        }

    def compared_by_cell(self, loaded: LoadedModel) -> bool:
        return False  # one time axis cannot hold an encoder and a decoder: its page switches attention instead

    def not_compared(self, task: str, first: str, known: str) -> str | None:
        return (
            f"the task {task!r} translates: its models are not compared cell by cell but with and without "
            f"attention, on a translation model's page (/models/{first}). Tasks with several cells: {known}"
        )

    def in_lab(self, loaded: LoadedModel) -> bool:
        return False


TRANSLATION_WEB = TranslationWeb()
