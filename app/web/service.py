"""Requests to engine calls: one place that both REST and the stream use, so there is one trace per request."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from app.engine.card import LoadedModel
from app.engine.errors import UnknownTokens, WrongModelKind
from app.engine.token.generate import Step, generate
from app.engine.token.trace import trace
from app.engine.vocab import Encoded
from app.web.config import Settings
from app.web.errors import LimitExceeded
from app.web.schemas.models import GenerateRequest, TraceRequest
from app.wire.token import WireTrace


def check_top_k(top_k: int, settings: Settings) -> None:
    if top_k > settings.max_top_k:
        raise LimitExceeded(f"top_k is {top_k}; the limit is {settings.max_top_k} (max_top_k)")


def check_chars(what: str, text: str, limit: int, setting: str) -> None:
    """Texts are bounded in characters, which bounds their steps (one character or word per step)."""
    if len(text) > limit:
        raise LimitExceeded(f"{what} has {len(text)} characters; the limit is {limit} ({setting})")


def text_of(loaded: LoadedModel, text: str | None) -> str:
    """The text a model that reads text is given; numbers sent to it are a 409 that says what it reads."""
    if text is None:
        raise WrongModelKind(f"{loaded.card.id} reads text: send `text` (or a prompt), not values")
    return text


def readable(loaded: LoadedModel, encoded: Encoded, what: str) -> Encoded:
    """A melody's notes must all be notes the model knows: one it lacks is a 422 naming it and its position (a
    character or word a text model lacks is read as unknown and listed in the trace, as a reader skips a typo;
    a note read as "unknown" would be a melody the page cannot play). A vocabulary with no unknown token refuses
    what it lacks itself, with the same UnknownTokens (Vocab.encode)."""
    if loaded.vocab.level == "note" and encoded.unknown:
        raise UnknownTokens(what, encoded.tokens, encoded.unknown)
    return encoded


def trace_steps(loaded: LoadedModel, req: TraceRequest, settings: Settings) -> int:
    """The steps a trace request will take, its limits checked first: known before anything is computed."""
    check_top_k(req.top_k, settings)
    text = text_of(loaded, req.text)
    check_chars("text", text, settings.max_steps, "max_steps")
    return len(readable(loaded, loaded.vocab.encode(text, settings.max_steps), "melody").ids)


def compute_trace(loaded: LoadedModel, req: TraceRequest, settings: Settings) -> WireTrace:
    """Trace the request's text; the result is ready to send whole or step by step."""
    check_top_k(req.top_k, settings)
    text = text_of(loaded, req.text)
    check_chars("text", text, settings.max_steps, "max_steps")
    tr = trace(
        loaded,
        text,
        loss=req.loss,
        label=req.label,
        checkpoint=req.checkpoint,
        top_k=req.top_k,
        max_steps=settings.max_steps,
    )
    return WireTrace.build(loaded, tr, req.precision)


@dataclass
class Generation:
    """A generate request under way: its prompt's ids, and the steps computed so far."""

    loaded: LoadedModel
    req: GenerateRequest
    prompt_ids: list[int]
    pending: Iterator[Step]  # the sampler, not yet run
    steps: list[Step]  # the steps computed so far

    @classmethod
    def start(cls, loaded: LoadedModel, req: GenerateRequest, settings: Settings) -> Generation:
        check_top_k(req.top_k, settings)
        if req.length > settings.max_generate:
            raise LimitExceeded(f"length is {req.length}; the limit is {settings.max_generate} (max_generate)")
        text = text_of(loaded, req.prompt)
        check_chars("prompt", text, settings.max_prompt_chars(), "max_steps − max_generate")
        prompt = readable(loaded, loaded.vocab.encode(text, settings.max_steps, "prompt"), "melody")
        # steps, not characters: a vocabulary may read one character as two (upper-casing "ß" gives "SS")
        if len(prompt.ids) + req.length > settings.max_steps:
            raise LimitExceeded(
                f"the prompt reads as {len(prompt.ids)} steps and length is {req.length}: together over the limit "
                f"of {settings.max_steps} steps (max_steps)"
            )
        # generate checks the model (next-token, one direction) and never writes the vocabulary's unknown token
        steps = generate(loaded.model, prompt.ids, req.length, req.temperature, req.seed, loaded.vocab.unk_id)
        return cls(loaded, req, prompt.ids, steps, [])

    def run(self) -> Iterator[Step]:
        for step in self.pending:
            self.steps.append(step)
            yield step

    def finish(self) -> tuple[str, str, WireTrace]:
        """The text, what the model wrote, and the trace of the whole sequence (with its BPTT sweep)."""
        ids = [s.token_id for s in self.steps]
        vocab = self.loaded.vocab
        tr = trace(self.loaded, ids, top_k=self.req.top_k, max_steps=len(ids))
        written = vocab.decode(ids[len(self.prompt_ids) :])
        return vocab.decode(ids), written, WireTrace.build(self.loaded, tr, self.req.precision)
