"""WebSocket /api/models/{id}/stream: every time step as it is computed.

Protocol: the client sends one JSON request (a trace body, or {"mode": "generate", …} with a generate body).
The server sends {"type": "meta"}, one {"type": "step"} per step in order, one {"type": "grad"} per step from
the last back to the first (the BPTT sweep), then {"type": "done"}. With "batch": n > 1 the step and grad frames
travel n to a message, as a JSON array of frames. With "encoding": "binary" they travel as fixed-size binary
records (float32 states, float64 gradient norms; the meta frame gives their layouts), `batch` records to a
message: T step records, then T grad records, then {"type": "done"}.
A translation model (or {"mode": "translate", …} with a translate body) sends meta, {"type": "encoder_step"}
per source step, {"type": "decoder_step"} per output step (with its attention row and prediction),
{"type": "decoder_grad"} from the last output step back, {"type": "encoder_grad"} from the last source step
back, then done; in binary, the same four sections of records, each with its own layout in the meta frame.
A speech model ({"mode": "transcribe", "audio": <a WAV file in base64>, "transcript"?, "beam"?}) sends meta (with
the log-mel features and the beams), one {"type": "step"} per step of the network, one {"type": "grad"} per step
from the last back, then done (app/wire/speech.py); in binary, the step and grad records as a trace's.
A caption model ({"mode": "caption", "image": <a PNG or JPEG in base64>, "caption"?, "beam"?}) sends meta (with the
beams, the start state and what reaches each grid cell), one {"type": "step"} per word (its states, gates, attention
over the grid, top-5 and loss), one {"type": "grad"} per word from the last back, then done (app/wire/caption.py).
On bad input it sends {"type": "error", "error", "message"} and closes with code 4000 + the HTTP status REST
would answer (4400 malformed, 4403 opened by another site's page (its Origin), 4404 unknown model, checkpoint or
label, 4408 no request in time, 4409 wrong model kind, 4413 too large, 4422 invalid or over a limit, 4503 busy). A
busy error frame carries "retry_after", the seconds to wait before asking again (REST's Retry-After).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import orjson
from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from starlette.datastructures import State
from starlette.websockets import WebSocketDisconnect

from app.web.capacity.broadcast import Abandoned, Broadcast, Broadcasts
from app.web.capacity.budget import ByteBudget
from app.web.capacity.compute import Compute, Work
from app.web.capacity.shared import Shared
from app.web.config import Settings
from app.web.deps import get_zoo, work_of
from app.web.errors import Overloaded, classify
from app.web.families import web_family
from app.web.families.base import StepStream, StreamedTrace, TraceStream
from app.web.middleware.metrics import Metrics
from app.web.routes.trace import ShareKey, share_key
from app.web.schemas.caption import StreamCaptionRequest
from app.web.schemas.models import (
    StreamGenerateRequest,
    StreamTraceRequest,
    StreamTranscribeRequest,
    StreamTranslateRequest,
)
from app.wire.frames import dumps
from app.zoo.zoo import Zoo

log = logging.getLogger("unrolled.stream")
router = APIRouter(prefix="/api", tags=["stream"])


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """A browser names the page that opens a WebSocket in Origin: this server's own pages, or a configured origin.
    Clients that are not browsers send none, and are let in as on the REST API."""
    if origin is None:
        return True
    return origin in allowed or urlsplit(origin).netloc == (host or "")


class ClientGone(Exception):
    """The client closed the connection or stopped reading: stop working for it."""


class StreamError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error = status, error


@router.websocket("/models/{model_id}/stream")
async def stream(ws: WebSocket, model_id: str) -> None:
    state = ws.app.state
    settings: Settings = state.settings
    metrics: Metrics = state.metrics
    await ws.accept()
    sender = Sender(ws, settings.send_timeout, settings.min_stream_rate)
    place = StreamPlace(metrics, settings.max_streams)
    try:
        if not origin_allowed(ws.headers.get("origin"), ws.headers.get("host"), settings.cors_origins):
            # another site's page, spending this server's CPU through its visitors' browsers
            raise StreamError(403, "forbidden_origin", "streams are open to this server's own pages (and cors_origins)")
        # Sockets that connect and say nothing are closed after request_timeout (a few seconds); a stream takes its
        # place among max_streams only once it computes or sends (StreamPlace).
        request = await _read_request(ws, settings.request_timeout)
        metrics.streams_total += 1
        zoo = await get_zoo(ws)  # with the models trained live in the lab
        await _serve(sender, zoo, state, place, settings, model_id, request, ws)
    except StreamError as e:
        await _close_with_error(sender, e.status, e.error, str(e))
    except (ClientGone, WebSocketDisconnect):
        pass
    except Exception as e:  # a domain error from the engine or the service
        status, name = classify(e)
        if status >= 500 and name != "busy":
            log.exception("stream failed")
            message = "internal error: the server could not complete this stream"
        else:
            message = str(e)
        await _close_with_error(sender, status, name, message)
    finally:
        place.release()


class StreamPlace:
    """A stream's place among max_streams (metrics.active_streams): taken when it starts to compute (its slot in the
    compute line is granted) or to send (the trace it shares is ready), held until it ends. A stream that waits, for
    a slot or for a computation it shares with others, holds none: the compute line bounds the waiting (max_queue),
    and a room's streams waiting on one trace would otherwise fill max_streams and be refused while the server
    computes a single trace for all of them."""

    def __init__(self, metrics: Metrics, limit: int) -> None:
        self.metrics, self.limit = metrics, limit
        self.taken = False

    def take(self) -> None:
        if self.taken:
            return
        if self.metrics.active_streams >= self.limit:
            raise StreamError(
                503, "busy", f"too many open streams (max_streams {self.limit}); retry in {Overloaded.retry_after} s"
            )
        self.metrics.active_streams += 1
        self.taken = True

    def release(self) -> None:
        if self.taken:
            self.metrics.active_streams -= 1
            self.taken = False


class Sender:
    """Sends frames; a client that has gone, or takes nothing for send_timeout seconds, raises ClientGone. So does
    one that reads a trickle: the time spent waiting on the client may not pass send_timeout plus what its bytes
    take at min_stream_rate (a generation's own pace between frames does not count: only the waits in send)."""

    # Messages sent under one deadline: a deadline of its own costs a small frame more than sending it. A group
    # is at most 64 messages or 64 KiB, so big messages still leave as soon as each is ready.
    GROUP = 64
    GROUP_BYTES = 65536

    def __init__(self, ws: WebSocket, timeout: float, min_rate: float = float("inf")) -> None:
        self.ws = ws
        self.timeout = timeout
        self.min_rate = min_rate
        self.sent = 0  # bytes handed to the client so far
        self.waited = 0.0  # seconds spent in send

    async def text(self, payload: bytes) -> None:
        await self._send(_text(payload))

    async def frame(self, frame: dict[str, Any]) -> None:
        await self.text(dumps(frame))

    async def texts(self, payloads: Iterable[bytes]) -> None:
        await self._send_all(_text(p) for p in payloads)

    async def binaries(self, payloads: Iterable[bytes]) -> None:
        await self._send_all({"type": "websocket.send", "bytes": p} for p in payloads)

    async def messages(self, messages: Iterable[dict[str, Any]]) -> None:
        """ASGI messages written beforehand (WrittenTrace's), sent as they are."""
        await self._send_all(messages)

    async def _send_all(self, messages: Iterable[dict[str, Any]]) -> None:
        group: list[dict[str, Any]] = []
        size = 0
        for message in messages:
            group.append(message)
            size += len(message.get("text") or message.get("bytes") or b"")
            if len(group) == self.GROUP or size >= self.GROUP_BYTES:
                await self._send(*group)
                group, size = [], 0
        if group:
            await self._send(*group)

    async def _send(self, *messages: dict[str, Any]) -> None:
        size = sum(len(m.get("text") or m.get("bytes") or b"") for m in messages)
        allowed = min(self.timeout, self.timeout + (self.sent + size) / self.min_rate - self.waited)
        started = time.monotonic()
        try:
            if allowed <= 0:
                raise TimeoutError
            with anyio.fail_after(allowed):
                for message in messages:
                    await self.ws.send(message)
        except (TimeoutError, WebSocketDisconnect, RuntimeError, OSError) as e:
            raise ClientGone from e
        except Exception as e:  # the ASGI server's own "connection closed" types
            if type(e).__name__ in {"ClientDisconnected", "ConnectionClosed", "ConnectionClosedOK"}:
                raise ClientGone from e
            raise
        finally:
            self.waited += time.monotonic() - started
        self.sent += size


async def receive_request(ws: WebSocket, timeout: float) -> str | bytes:
    """A WebSocket's first message, its request, as sent: 408 if none comes within `timeout` of connecting."""
    with anyio.move_on_after(timeout) as scope:
        message = await ws.receive()
    if scope.cancelled_caught:
        raise StreamError(408, "timeout", f"no request within {timeout:g} s of connecting")
    if message["type"] == "websocket.disconnect":
        raise ClientGone
    raw: str | bytes | None = message.get("text")
    return raw if raw is not None else message.get("bytes") or b""


StreamAnyRequest = (
    StreamTraceRequest | StreamGenerateRequest | StreamTranslateRequest | StreamTranscribeRequest | StreamCaptionRequest
)


async def _read_request(ws: WebSocket, timeout: float) -> StreamAnyRequest:
    raw = await receive_request(ws, timeout)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise StreamError(400, "malformed", f"the request is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise StreamError(400, "malformed", "the request must be a JSON object")
    try:
        if data.get("mode") == "generate":
            return StreamGenerateRequest.model_validate(data)
        if data.get("mode") == "translate":
            return StreamTranslateRequest.model_validate(data)
        if data.get("mode") == "transcribe":
            return StreamTranscribeRequest.model_validate(data)
        if data.get("mode") == "caption":
            return StreamCaptionRequest.model_validate(data)
        return StreamTraceRequest.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "request"
        raise StreamError(422, "invalid", f"{where}: {first['msg']}") from e


async def _serve(
    sender: Sender,
    zoo: Zoo,
    state: State,
    place: StreamPlace,
    settings: Settings,
    model_id: str,
    req: StreamAnyRequest,
    ws: WebSocket,
) -> None:
    compute: Compute = state.compute
    loaded = zoo.get(model_id)
    if not isinstance(req, StreamGenerateRequest) and req.encoding == "binary":
        # Binary records carry float32 states and float64 gradient norms whole: rounding them buys no byte.
        req = req.model_copy(update={"precision": None})
    family = web_family(loaded)
    # the request checked, its cost known
    if isinstance(req, StreamTranscribeRequest):
        plan: TraceStream | StepStream = family.transcribe_job(loaded, req.audio, req, settings)
    elif isinstance(req, StreamCaptionRequest):
        plan = family.caption_job(loaded, req.image, req, settings)
    else:
        plan = family.stream(loaded, req, settings)
    work = work_of(ws, plan.seconds)
    if isinstance(plan, StepStream):
        # A generation whose every step is decided by the request (a seed, temperature 0; a forecast) is stepped
        # once for every stream that asks it (app.web.capacity.broadcast); one that samples afresh, for its own.
        step_key = share_key("stream", loaded, req) if plan.repeats else None
        await _send_steps(sender, compute, state.broadcasts, work, place, plan, step_key)
    else:
        assert not isinstance(req, StreamGenerateRequest)  # a family answers a generation with a StepStream
        # A trace is the same for the same request: shared (a file's trace, audio or image, is not: its key would
        # be the file)
        files = isinstance(req, StreamTranscribeRequest | StreamCaptionRequest)
        key = None if files else share_key("stream", loaded, req)
        await _send_trace(sender, compute, state.budget, state.shared, place, work, plan, req, key)


async def _send_trace(
    sender: Sender,
    compute: Compute,
    budget: ByteBudget,
    shared: Shared,
    place: StreamPlace,
    work: Work,
    plan: TraceStream,
    req: StreamTraceRequest | StreamTranslateRequest | StreamTranscribeRequest | StreamCaptionRequest,
    key: ShareKey | None,
) -> None:
    """Meta, every frame (JSON or binary records, `batch` to a message), done. The trace is held in the byte budget
    from before it is computed (what computing it takes at its peak, an estimate; over the budget: busy, nothing
    computed) until its last frame has left (its exact size once computed). With a key, the trace is shared with
    every stream of the same key (app.web.capacity.shared): computed once, then each stream holds its size while it
    sends it."""
    if key is None or not shared.enabled:
        with budget.hold(plan.estimate) as held:
            async with compute.admitted_for(work), compute.slot_for(work):
                place.take()
                wire = await anyio.to_thread.run_sync(plan.wire)
            held.resize(wire.held_bytes())
            await _send_wire(sender, plan, wire, req)
        return

    def written() -> WrittenTrace:
        return WrittenTrace.of(plan, plan.wire(), req)

    async def computed() -> WrittenTrace:
        with budget.hold(plan.estimate):
            return await compute.run(work, written)

    trace = await shared.get(key.key, computed, WrittenTrace.size, key.loaded)
    place.take()
    with budget.hold(trace.size()):
        await sender.messages(trace.messages)


@dataclass(frozen=True)
class WrittenTrace:
    """A shared trace as its streams send it: meta, its frames, done, as the ASGI messages themselves, written once
    beside its computation (the request, part of the key, fixes the encoding and the batch). A room's 200 streams
    of it then send bytes: writing the frames again for each (packing records, joining JSON) was most of what a
    repeat stream cost the event loop."""

    messages: list[dict[str, Any]]

    @classmethod
    def of(
        cls,
        plan: TraceStream,
        wire: StreamedTrace,
        req: StreamTraceRequest | StreamTranslateRequest | StreamTranscribeRequest | StreamCaptionRequest,
    ) -> WrittenTrace:
        binary = req.encoding == "binary"
        frames: Iterable[dict[str, Any]] = (
            ({"type": "websocket.send", "bytes": b} for b in wire.binary_frames(req.batch))
            if binary
            else (_text(t) for t in wire.frames(req.batch))
        )
        meta = _text(dumps(wire.meta_frame(binary, req.batch)))
        done = _text(dumps(plan.done(wire)))
        return cls([meta, *frames, done])

    def size(self) -> int:
        return sum(len(m.get("text") or m.get("bytes") or b"") for m in self.messages)


async def _send_wire(
    sender: Sender,
    plan: TraceStream,
    wire: StreamedTrace,
    req: StreamTraceRequest | StreamTranslateRequest | StreamTranscribeRequest | StreamCaptionRequest,
) -> None:
    binary = req.encoding == "binary"
    await sender.frame(wire.meta_frame(binary, req.batch))
    if binary:
        await sender.binaries(wire.binary_frames(req.batch))
    else:
        await sender.texts(wire.frames(req.batch))
    await sender.frame(plan.done(wire))


async def _send_steps(
    sender: Sender,
    compute: Compute,
    broadcasts: Broadcasts,
    work: Work,
    place: StreamPlace,
    plan: StepStream,
    key: ShareKey | None,
) -> None:
    """Each step frame leaves as soon as it is computed; then the BPTT sweep of the whole sequence, and done. With a
    key, the steps are computed once for every stream of the key, each sending them at its own client's pace."""
    metrics = place.metrics

    async def step(broadcast: Broadcast) -> None:
        # Admitted once, as its first asker's computation; then each step takes a slot only while it computes,
        # never while a frame waits on a client, so a client that stops reading holds no slot and stalls no one.
        async with compute.admitted_for(work), compute.slot_for(work):
            first = await anyio.to_thread.run_sync(plan.next_frame, 0)
        broadcast.publish(_text(dumps(plan.meta)))
        payload, total = first, plan.total
        for t in range(1, total + 1):
            if payload is None:
                break
            metrics.generated_steps_total += 1
            broadcast.publish(_text(payload))
            await broadcast.sent_by_one()
            if broadcast.abandoned():  # every client has gone: the sampling stops
                raise Abandoned("every client of this generation has gone")
            payload = await compute.run_in_slot(work, plan.next_frame, t) if t < total else None
        grads, done = await compute.run_in_slot(work, plan.finish)
        broadcast.publish(*(_text(g) for g in grads), _text(dumps(done)))

    # its place among max_streams is taken with its first message
    with contextlib.suppress(Abandoned):
        await broadcasts.follow(key and key.key, step, sender.messages, place.take, key and key.loaded)


def _text(payload: bytes) -> dict[str, Any]:
    """A JSON frame's bytes as the ASGI message that sends them as text."""
    return {"type": "websocket.send", "text": payload.decode()}


async def _close_with_error(sender: Sender, status: int, error: str, message: str) -> None:
    frame: dict[str, Any] = {"type": "error", "error": error, "message": message}
    if status == 503:  # busy: the seconds to wait before asking again, as REST's Retry-After
        frame["retry_after"] = Overloaded.retry_after
    try:
        await sender.frame(frame)
        await sender.ws.close(code=4000 + status, reason=error)
    except (ClientGone, RuntimeError, OSError):
        pass
