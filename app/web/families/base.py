"""What the web asks of a model family: its REST and stream handling, its card as the API and pages show it, its
pages and its lab (a tour scene's questions are app/tour/families.py's: the tour sits below the web). One
implementation per family (app/web/families/<family>.py), registered in app/web/families/__init__.py under the
engine family's name; routes, pages and the CLI ask it, never the model's kind.

A request's handling is split in two so that the routes keep the server's mechanics (admission, the byte budget,
sending): the family checks the request and says what computing it costs (a Job, a TraceStream or a StepStream);
the route runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from app.engine.card import LoadedModel
from app.engine.errors import WrongModelKind
from app.engine.lab.jacobian import JacobianNorms
from app.web.config import Settings
from app.web.schemas.caption import CaptionRequest
from app.web.schemas.jacobian import JacobianRequest
from app.web.schemas.models import (
    GenerateRequest,
    StreamGenerateRequest,
    StreamTraceRequest,
    StreamTranslateRequest,
    TraceRequest,
    TranscribeRequest,
    TranslateRequest,
)
from app.zoo.zoo import Zoo

StreamRequest = StreamTraceRequest | StreamGenerateRequest | StreamTranslateRequest


@dataclass
class Job:
    """A REST body to compute: its limits checked; what it costs, known before it runs."""

    work: Callable[[], bytes]  # the body, computed off the event loop
    seconds: float  # its compute estimate (app.web.capacity.cost)
    estimate: int  # bytes at its peak (app.web.capacity.budget)
    # whether the same request always gives the same body, so that identical requests may share one computation
    # (app.web.capacity.shared): a generation that samples without a seed does not
    repeats: bool = True


class StreamedTrace(Protocol):
    """A trace ready to stream: a token model's, a series model's or a translation's."""

    def held_bytes(self) -> int: ...
    def body(self) -> dict[str, Any]: ...
    def meta_frame(self, binary: bool = False, batch: int = 1) -> dict[str, Any]: ...
    def frames(self, batch: int = 1) -> Iterator[bytes]: ...
    def binary_frames(self, batch: int = 1) -> Iterator[bytes]: ...


@dataclass
class TraceStream:
    """A stream of a whole trace: meta, its frames (JSON or binary records), done."""

    wire: Callable[[], StreamedTrace]  # computed off the event loop
    done: Callable[[Any], dict[str, Any]]  # the done frame, from the wire
    seconds: float
    estimate: int


@dataclass
class StepStream:
    """A stream of a generation: each step's frame as soon as it is computed, then the BPTT sweep and done."""

    meta: dict[str, Any]
    total: int  # step frames at most
    next_frame: Callable[[int], bytes | None]  # step t's frame (computed in a compute slot), None when done
    finish: Callable[[], tuple[Iterable[bytes], dict[str, Any]]]  # the grad frames and the done frame
    seconds: float
    repeats: bool = True  # the request decides every step (False: it samples afresh, each stream its own)


def not_captioning(loaded: LoadedModel) -> WrongModelKind:
    """A caption request (an image in) to a model of a family that reads no pictures, refused saying what it does."""
    return WrongModelKind(
        f"{loaded.card.id} {loaded.card.block.DOES}: it does not read images (caption is served for caption models)"
    )


def not_transcribing(loaded: LoadedModel) -> WrongModelKind:
    """A transcribe request (audio in) to a model of a family that reads no audio, refused saying what it does."""
    return WrongModelKind(
        f"{loaded.card.id} {loaded.card.block.DOES}: it does not read audio (transcribe is served for speech models)"
    )


@dataclass
class JacobianInput:
    tokens: list[str]  # what each step reads, as the body names it
    norms: Callable[[], JacobianNorms]
    entries: int  # the layer entries a request may name


@dataclass
class PageChoice:
    """The template that shows a model, and what it needs beyond the model (`m`)."""

    template: str
    context: dict[str, Any]


class WebFamily(Protocol):
    """A family's web side. Each family's class subclasses it: the methods with a body here are defaults (an
    operation most families do not serve, refused by name); those without must be written by every family."""

    @property
    def name(self) -> str:
        """The engine family's name (app/engine/family.py)."""
        ...

    # REST and the stream
    def trace_job(self, loaded: LoadedModel, req: TraceRequest, settings: Settings) -> Job: ...
    def generate_job(self, loaded: LoadedModel, req: GenerateRequest, settings: Settings) -> Job: ...
    def translate_job(self, loaded: LoadedModel, req: TranslateRequest, settings: Settings) -> Job: ...
    def stream(self, loaded: LoadedModel, req: StreamRequest, settings: Settings) -> TraceStream | StepStream: ...
    def transcribe_job(
        self, loaded: LoadedModel, wav: bytes, req: TranscribeRequest, settings: Settings
    ) -> TraceStream:
        """A WAV file's trace (POST /transcribe: its body; the stream's transcribe mode: its frames). Refused by
        default: a family that subclasses WebFamily inherits the refusal, so a new operation edits the family that
        serves it and this protocol, not every other family."""
        raise not_transcribing(loaded)

    def caption_job(self, loaded: LoadedModel, image: bytes, req: CaptionRequest, settings: Settings) -> TraceStream:
        """A PNG or JPEG's trace (POST /caption: its body; the stream's caption mode: its frames). Refused by default,
        as transcribe_job is: only the caption family serves it."""
        raise not_captioning(loaded)

    def jacobian_input(
        self, loaded: LoadedModel, req: JacobianRequest, settings: Settings, check_steps: Callable[[int], None]
    ) -> JacobianInput:
        """The Jacobian's input read and limited (check_steps: the route's limit for this model's size)."""
        ...

    # the card as GET /api/models/{id} and the pages show it
    def card_fields(self, loaded: LoadedModel) -> dict[str, Any]:
        """ModelCardOut's fields of this family (embed_size, vocab, labels, series, attention, …)."""
        ...

    def page_card(self, loaded: LoadedModel) -> dict[str, Any] | None:
        """The card a page carries for this model (data-cards), or None if pages fetch it."""
        ...

    def labels(self, loaded: LoadedModel) -> list[str] | None: ...

    # pages
    def page(
        self, zoo: Zoo, loaded: LoadedModel, view: str, task_models: list[LoadedModel], peers: list[LoadedModel]
    ) -> PageChoice | str:
        """The page of a view ("model", "generate", "learning") of this model, or why it has none (a 404's
        message). `task_models`: every model of its task; `peers`: those the compare page would show."""
        ...

    def home_card(self, loaded: LoadedModel) -> dict[str, Any]:
        """What the zoo's page says of the model (templates/home.html): "shape" (what it does), "reads" (its
        vocabulary or its numbers), "open" (its page link's word), "writes" and "learning" (whether those pages
        have it), "values" (whether its examples are numbers)."""
        ...

    def compared_by_cell(self, loaded: LoadedModel) -> bool:
        """Whether the compare page (and the lab's lower sections) put it beside the other cells of its task."""
        ...

    def not_compared(self, task: str, first: str, known: str) -> str | None:
        """Why a task of this family's models is not on the compare page (None: it may be)."""
        ...

    def in_lab(self, loaded: LoadedModel) -> bool:
        """Whether the lab's lower sections (text in, one token changed) can read this model."""
        ...


class MediaWeb(WebFamily):
    """A family that reads a medium instead of text or numbers (speech's audio, caption's pictures): every request
    of the text and number families' shapes is refused, saying what the model reads; its cards carry no page card,
    no labels and sit on no compare page. A subclass names what it reads (`reads`, e.g. "audio") and serves its
    own medium's job (transcribe_job, caption_job) and pages."""

    reads: str  # what its models read, for the refusals: "audio", "pictures"

    def not_served(self, loaded: LoadedModel, what: str) -> WrongModelKind:
        return WrongModelKind(f"{loaded.card.id} {loaded.card.block.DOES} (it reads {self.reads}, not text or "
                              f"numbers): {what} is not served for {self.name} models")  # fmt: skip

    def trace_job(self, loaded: LoadedModel, req: TraceRequest, settings: Settings) -> Job:
        raise self.not_served(loaded, "a trace of text or values")

    def generate_job(self, loaded: LoadedModel, req: GenerateRequest, settings: Settings) -> Job:
        raise self.not_served(loaded, "generation")

    def translate_job(self, loaded: LoadedModel, req: TranslateRequest, settings: Settings) -> Job:
        raise self.not_served(loaded, "translation")

    def stream(self, loaded: LoadedModel, req: StreamRequest, settings: Settings) -> TraceStream | StepStream:
        raise self.not_served(loaded, "a stream of text or values")

    def jacobian_input(
        self, loaded: LoadedModel, req: JacobianRequest, settings: Settings, check_steps: Callable[[int], None]
    ) -> JacobianInput:
        raise self.not_served(loaded, "the Jacobian of text or values")

    def page_card(self, loaded: LoadedModel) -> dict[str, Any] | None:
        return None

    def labels(self, loaded: LoadedModel) -> list[str] | None:
        return None

    def compared_by_cell(self, loaded: LoadedModel) -> bool:
        return False

    def in_lab(self, loaded: LoadedModel) -> bool:
        return False
