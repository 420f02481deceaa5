"""POST /api/models/{id}/trace and /generate: the whole trace in one JSON body."""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import brotli
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope, Send

from app.engine.card import LoadedModel
from app.web.capacity.budget import ByteBudget, Held
from app.web.capacity.compute import Compute, Work
from app.web.capacity.shared import Shared
from app.web.config import Settings
from app.web.deps import BudgetDep, ComputeDep, SettingsDep, ZooDep, work_of
from app.web.families import web_family
from app.web.families.base import Job, TraceStream
from app.web.middleware.assets import accepted
from app.web.schemas.models import (
    ErrorBody,
    GenerateRequest,
    GenerateResponse,
    TraceRequest,
    TraceResponse,
    TranscribeRequest,
    TranscribeResponse,
    TranslateRequest,
    TranslateResponse,
    TranslationTraceResponse,
)
from app.wire.frames import dumps

log = logging.getLogger("unrolled.api")
router = APIRouter(prefix="/api", tags=["trace"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the body is not JSON in UTF-8"},
    404: {"model": ErrorBody, "description": "no such model, checkpoint or label"},
    409: {"model": ErrorBody, "description": "the model is of the other kind (generate on a classifier, …)"},
    413: {"model": ErrorBody, "description": "the body is over max_body_bytes"},
    422: {"model": ErrorBody, "description": "the request is malformed or names an unknown label or checkpoint"},
    503: {"model": ErrorBody, "description": "busy: retry after the Retry-After header's seconds"},
}


# an ASGI extension of `unrolled serve` (app.web.middleware.request_head): reset the connection
ABORT = "unrolled.abort"


# REST bodies' encodings: brotli's quality 5 and gzip's 6 are within a few per cent of their best on trace JSON, at a
# fraction of the time
COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "br": lambda raw: brotli.compress(raw, quality=5),
    "gzip": lambda raw: gzip.compress(raw, compresslevel=6, mtime=0),
}


@dataclass(frozen=True)
class SharedBody:
    """A REST body that many clients share (app.web.capacity.shared), with its br and gzip copies where smaller:
    compressed once, beside the computation, for every client that is sent it (a room of students' forecast: 147 kB
    of JSON each, 0.03 MB compressed)."""

    raw: bytes
    encoded: dict[str, bytes]

    # bytes: a smaller body is sent as it is, and so is a bigger one (compressing 45 MB takes seconds of a compute
    # slot, while its byte budget is held: what a room shares is a few hundred kB)
    COMPRESS_FROM, COMPRESS_UP_TO = 1024, 4_000_000

    @classmethod
    def of(cls, raw: bytes) -> SharedBody:
        if not cls.COMPRESS_FROM < len(raw) <= cls.COMPRESS_UP_TO:
            return cls(raw, {})
        copies = {name: compress(raw) for name, compress in COMPRESS.items()}
        return cls(raw, {name: body for name, body in copies.items() if len(body) < len(raw)})

    @classmethod
    def one(cls, raw: bytes, accept_encoding: str) -> tuple[str | None, bytes]:
        """A body only one client is sent: compressed for it alone (by the compute thread that made it, never on
        the event loop) in the first encoding it accepts, where that is smaller. A transcription's or a caption's
        trace is a few hundred kB of JSON, a fifth of that compressed."""
        if not cls.COMPRESS_FROM < len(raw) <= cls.COMPRESS_UP_TO:
            return None, raw
        for name in accepted(accept_encoding.encode("latin-1")):
            body = COMPRESS[name](raw)
            return (name, body) if len(body) < len(raw) else (None, raw)
        return None, raw

    def size(self) -> int:
        return len(self.raw) + sum(map(len, self.encoded.values()))

    def for_client(self, accept_encoding: str) -> tuple[str | None, bytes]:
        """(its encoding, the bytes) of the smallest copy the client accepts."""
        for name in accepted(accept_encoding.encode("latin-1")):
            if name in self.encoded:
                return name, self.encoded[name]
        return None, self.raw


class HeldJSON(Response):
    """A JSON body that holds its size in the server's byte budget until it has been sent. It leaves in chunks,
    each of which the client must take within send_timeout: one that stops reading is given up on (uvicorn then
    closes the connection), so a client cannot keep a big body in the server's memory by not reading it."""

    media_type = "application/json"
    CHUNK = 1 << 20

    def __init__(self, body: bytes, held: Held, timeout: float, encoding: str | None = None) -> None:
        super().__init__(body, headers={"content-encoding": encoding, "vary": "Accept-Encoding"} if encoding else None)
        self.held = held
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            body, self.body = memoryview(self.body), b""
            for start in range(0, max(1, len(body)), self.CHUNK):
                with anyio.fail_after(self.timeout):
                    chunk = bytes(body[start : start + self.CHUNK])
                    await send(
                        {"type": "http.response.body", "body": chunk, "more_body": start + self.CHUNK < len(body)}
                    )
        except TimeoutError:
            log.info("gave up on a client that read nothing for %g s", self.timeout)
            abort = scope.get("extensions", {}).get(ABORT)
            if abort is not None:  # reset the connection: what the kernel still holds for it is dropped too
                abort()
                await anyio.sleep(0)  # the server learns of the lost connection, and expects no more of the body
        finally:
            self.held.release()


async def held_json(
    fn: Callable[[], bytes],
    work: Work,
    compute: Compute,
    budget: ByteBudget,
    estimate: int,
    settings: Settings,
    accept_encoding: str = "",
) -> HeldJSON:
    """Compute a body that has room in the byte budget: what computing it takes at its peak (an estimate) is taken
    before computing (over the budget: a 503 at once, nothing computed), then only the body's exact size, held
    until it has been sent. Compressed for the client where it accepts an encoding (SharedBody.one)."""
    held = budget.take(estimate)

    def body() -> tuple[str | None, bytes]:
        return SharedBody.one(fn(), accept_encoding)

    try:
        encoding, sent = await compute.run(work, body)
        held.resize(len(sent))
    except BaseException:
        held.release()
        raise
    return HeldJSON(sent, held, settings.send_timeout, encoding)


@dataclass(frozen=True)
class ShareKey:
    """What a shared computation computes (app.web.capacity.shared): `key`, and the model it names by identity."""

    key: Hashable
    loaded: LoadedModel


def share_key(operation: str, loaded: LoadedModel, req: BaseModel) -> ShareKey:
    """The operation, the model as loaded (the object itself: a model rescanned from its folder or trained anew in
    the lab is another one), and the request in canonical form: every field in the schema's order with its
    defaults filled in, so bodies that differ in their order, spacing or spelt-out defaults share. The request
    carries the checkpoint."""
    return ShareKey((operation, id(loaded), type(req).__name__, req.model_dump_json()), loaded)


class Jobs:
    """What a route runs a family's Job with (app/web/families): the request's client, the compute pool, the byte
    budget, the shared results and the settings, taken once as one dependency."""

    def __init__(
        self, request: Request, compute: Compute, budget: ByteBudget, settings: Settings, shared: Shared | None = None
    ) -> None:
        self.request, self.compute, self.budget, self.settings = request, compute, budget, settings
        self.shared = shared if shared is not None else Shared(0, enabled=False)

    async def run(self, job: Job, key: ShareKey | None = None) -> HeldJSON:
        """The job's REST body, admitted at its cost and held in the byte budget. With a key (share_key) and a job
        whose body repeats, the body is shared with every request of the same key (app.web.capacity.shared): one
        computation, admitted as its first asker's, and its compressed copies (SharedBody); each answer then holds
        the size of what it sends until it is sent."""
        work = work_of(self.request, job.seconds)
        if key is None or not job.repeats or not self.shared.enabled:
            return await held_json(
                job.work, work, self.compute, self.budget, job.estimate, self.settings, self.accept_encoding
            )

        def body_and_copies() -> SharedBody:
            return SharedBody.of(job.work())

        async def compute() -> SharedBody:
            with self.budget.hold(job.estimate):
                return await self.compute.run(work, body_and_copies)

        shared = await self.shared.get(key.key, compute, SharedBody.size, key.loaded)
        encoding, body = shared.for_client(self.accept_encoding)
        return HeldJSON(body, self.budget.take(len(body)), self.settings.send_timeout, encoding)

    @property
    def accept_encoding(self) -> str:
        return self.request.headers.get("accept-encoding", "")

    def check_media(self, types: tuple[str, ...], needed: str) -> None:
        """A route whose body is a file (a WAV, an image): sent as one of `types`, else a 415 naming what was sent
        (`needed`: what it must be, up to "…; this has")."""
        media = self.request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in types:
            sent = f"Content-Type {media!r}" if media else "no Content-Type"
            raise HTTPException(415, f"the body must be {needed} {sent}")

    async def body(self) -> bytes:
        """The file itself, at most the route's own body limit (app.web.middleware.metrics: a 413 past it, unread)."""
        try:
            return await self.request.body()
        except ClientDisconnect:  # nobody to answer; a 400 is logged rather than a 500
            raise HTTPException(400, "the client left before its body arrived") from None

    async def run_whole(self, plan: TraceStream) -> HeldJSON:
        """A stream's plan answered as one REST body (POST /transcribe, /caption), admitted at its cost."""

        def work() -> bytes:
            return dumps(plan.wire().body())

        work_ = work_of(self.request, plan.seconds)
        return await held_json(
            work, work_, self.compute, self.budget, plan.estimate, self.settings, self.accept_encoding
        )


async def get_jobs(request: Request, compute: ComputeDep, budget: BudgetDep, settings: SettingsDep) -> Jobs:
    return Jobs(request, compute, budget, settings, request.app.state.shared)


JobsDep = Annotated[Jobs, Depends(get_jobs)]


@router.post("/models/{model_id}/trace", response_model=TraceResponse | TranslationTraceResponse, responses=ERRORS)
async def trace_model(model_id: str, req: TraceRequest, zoo: ZooDep, jobs: JobsDep) -> Response:
    """Trace a text: every step's states, gates, predictions, losses and BPTT gradient norms. A translation model
    traces its encoder and decoder: on `target` (teacher forcing) or on its own greedy output."""
    loaded = zoo.get(model_id)
    return await jobs.run(web_family(loaded).trace_job(loaded, req, jobs.settings), share_key("trace", loaded, req))


@router.post("/models/{model_id}/generate", response_model=GenerateResponse, responses=ERRORS)
async def generate_text(model_id: str, req: GenerateRequest, zoo: ZooDep, jobs: JobsDep) -> Response:
    """Sample text from a next-token model, with the trace of the whole sequence; from a series model, a
    free-running forecast of `length` values (each prediction fed back as the next input)."""
    loaded = zoo.get(model_id)
    job = web_family(loaded).generate_job(loaded, req, jobs.settings)
    return await jobs.run(job, share_key("generate", loaded, req))


@router.post("/models/{model_id}/translate", response_model=TranslateResponse, responses=ERRORS)
async def translate_text(model_id: str, req: TranslateRequest, zoo: ZooDep, jobs: JobsDep) -> Response:
    """Translate a text: beam search (every candidate and its score), after an optional forced prefix, with the
    trace of the best output."""
    loaded = zoo.get(model_id)
    job = web_family(loaded).translate_job(loaded, req, jobs.settings)
    return await jobs.run(job, share_key("translate", loaded, req))


# The media types a WAV file is sent as: the registered audio/wav, and the older names browsers and tools still use.
WAV_TYPES = ("audio/wav", "audio/x-wav", "audio/wave")
WAV_BODY = {"schema": {"type": "string", "format": "binary"}}
TRANSCRIBE_ERRORS: dict[int | str, dict[str, Any]] = {
    **{status: answer for status, answer in ERRORS.items() if status != 400},  # its body is no JSON
    413: {"model": ErrorBody, "description": "the body is over max_audio_bytes, or the audio lasts over 10 s"},
    415: {"model": ErrorBody, "description": "the body is not sent as a WAV (Content-Type audio/wav)"},
    422: {
        "model": ErrorBody,
        "description": "the audio is not a WAV this server reads, or the transcript has a character outside the "
        "model's alphabet (each named), or the query is malformed",
    },
}


@router.post(
    "/models/{model_id}/transcribe",
    response_model=TranscribeResponse,
    responses=TRANSCRIBE_ERRORS,
    openapi_extra={"requestBody": {"required": True, "content": dict.fromkeys(WAV_TYPES, WAV_BODY)}},
)
async def transcribe_audio(
    model_id: str, query: Annotated[TranscribeRequest, Query()], zoo: ZooDep, jobs: JobsDep
) -> Response:
    """Transcribe a WAV file (the body itself, Content-Type audio/wav: PCM 8–32-bit or float, mono or stereo,
    8–48 kHz, at most 10 s): its text, the beam search's candidates, and the trace of every step (states and
    gates of every layer and direction, CTC's posteriors, the alignment, BPTT's gradient norms), scored against
    `transcript` or the model's own text."""
    jobs.check_media(WAV_TYPES, f"a WAV file sent as {', '.join(WAV_TYPES)}; this one has")
    loaded = zoo.get(model_id)
    family = web_family(loaded)
    wav = await jobs.body()
    return await jobs.run_whole(family.transcribe_job(loaded, wav, query, jobs.settings))
