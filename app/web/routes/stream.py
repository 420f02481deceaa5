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
On bad input it sends {"type": "error", "error", "message"} and closes with code 4000 + the HTTP status REST
would answer (4400 malformed, 4403 opened by another site's page (its Origin), 4404 unknown model, checkpoint or
label, 4408 no request in time, 4409 wrong model kind, 4413 too large, 4422 invalid or over a limit, 4503 busy).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import anyio
import orjson
from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from app.engine.errors import WrongModelKind
from app.engine.token.generate import Step
from app.engine.token.model import LoadedModel
from app.web import series, translation
from app.web.capacity import cost
from app.web.capacity.budget import ByteBudget
from app.web.capacity.compute import Compute, Work
from app.web.config import Settings
from app.web.deps import get_zoo, work_of
from app.web.errors import classify
from app.web.middleware.metrics import Metrics
from app.web.schemas.models import StreamGenerateRequest, StreamTraceRequest, StreamTranslateRequest
from app.web.service import Generation, compute_trace, text_of, trace_steps
from app.wire.records import WireTrace, dumps, estimate_working_bytes, generated_step_frame
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
    counted = False
    try:
        if not origin_allowed(ws.headers.get("origin"), ws.headers.get("host"), settings.cors_origins):
            # another site's page, spending this server's CPU through its visitors' browsers
            raise StreamError(403, "forbidden_origin", "streams are open to this server's own pages (and cors_origins)")
        # A stream counts once its request has arrived: sockets that connect and say nothing cannot fill
        # max_streams and lock visitors out; they are closed after request_timeout (a few seconds).
        request = await _read_request(ws, settings.request_timeout)
        metrics.active_streams += 1
        metrics.streams_total += 1
        counted = True
        if metrics.active_streams > settings.max_streams:
            raise StreamError(503, "busy", f"too many open streams (max_streams {settings.max_streams}); retry later")
        zoo = await get_zoo(ws)  # with the models trained live in the lab
        await _serve(sender, zoo, state.compute, state.budget, metrics, settings, model_id, request, ws)
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
        if counted:
            metrics.active_streams -= 1


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
        await self._send({"type": "websocket.send", "text": payload.decode()})

    async def frame(self, frame: dict[str, Any]) -> None:
        await self.text(dumps(frame))

    async def texts(self, payloads: Iterable[bytes]) -> None:
        await self._send_all({"type": "websocket.send", "text": p.decode()} for p in payloads)

    async def binaries(self, payloads: Iterable[bytes]) -> None:
        await self._send_all({"type": "websocket.send", "bytes": p} for p in payloads)

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


async def _read_request(
    ws: WebSocket, timeout: float
) -> StreamTraceRequest | StreamGenerateRequest | StreamTranslateRequest:
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
        return StreamTraceRequest.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "request"
        raise StreamError(422, "invalid", f"{where}: {first['msg']}") from e


async def _serve(
    sender: Sender,
    zoo: Zoo,
    compute: Compute,
    budget: ByteBudget,
    metrics: Metrics,
    settings: Settings,
    model_id: str,
    req: StreamTraceRequest | StreamGenerateRequest | StreamTranslateRequest,
    ws: WebSocket,
) -> None:
    loaded = zoo.get(model_id)
    if not isinstance(req, StreamGenerateRequest) and req.encoding == "binary":
        # Binary records carry float32 states and float64 gradient norms whole: rounding them buys no byte.
        req = req.model_copy(update={"precision": None})
    if series.is_series(loaded) and not isinstance(req, StreamTranslateRequest):
        await _serve_series(sender, compute, budget, metrics, settings, loaded, req, ws)
        return
    if translation.is_translation(loaded) or isinstance(req, StreamTranslateRequest):
        if isinstance(req, StreamGenerateRequest):
            raise WrongModelKind(f"{model_id} translates: open a stream with mode translate or trace, not generate")
        await _serve_translation(sender, compute, budget, settings, loaded, req, ws)
        return
    if isinstance(req, StreamTraceRequest):
        translation.refuse_translation_fields(loaded, req)
    if isinstance(req, StreamGenerateRequest):
        gen = Generation.start(loaded, req, settings)
        work = work_of(ws, cost.generate_seconds(loaded, len(gen.prompt_ids), req.length))
        await _serve_generate(sender, compute, work, metrics, gen)
        return

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
    work = work_of(ws, cost.trace_seconds(loaded, steps))
    await _send_trace(sender, compute, budget, work, estimate, compute_wire, req, lambda _: DONE)


class StreamedTrace(Protocol):
    """A trace ready to stream: a token model's, a series model's or a translation's."""

    def held_bytes(self) -> int: ...
    def meta_frame(self, binary: bool = False, batch: int = 1) -> dict[str, Any]: ...
    def frames(self, batch: int = 1) -> Iterator[bytes]: ...
    def binary_frames(self, batch: int = 1) -> Iterator[bytes]: ...


W = TypeVar("W", bound=StreamedTrace)
DONE = {"type": "done"}


async def _send_trace(
    sender: Sender,
    compute: Compute,
    budget: ByteBudget,
    work: Work,
    estimate: int,
    compute_wire: Callable[[], W],
    req: StreamTraceRequest | StreamTranslateRequest,
    done: Callable[[W], dict[str, Any]],
) -> None:
    """Meta, every frame (JSON or binary records, `batch` to a message), done. The trace is held in the byte budget
    from before it is computed (what computing it takes at its peak, an estimate; over the budget: busy, nothing
    computed) until its last frame has left (its exact size once computed)."""
    binary = req.encoding == "binary"
    with budget.hold(estimate) as held:
        wire = await compute.run(work, compute_wire)
        held.resize(wire.held_bytes())
        await sender.frame(wire.meta_frame(binary, req.batch))
        if binary:
            await sender.binaries(wire.binary_frames(req.batch))
        else:
            await sender.texts(wire.frames(req.batch))
        await sender.frame(done(wire))


async def _serve_series(
    sender: Sender,
    compute: Compute,
    budget: ByteBudget,
    metrics: Metrics,
    settings: Settings,
    loaded: LoadedModel,
    req: StreamTraceRequest | StreamGenerateRequest,
    ws: WebSocket,
) -> None:
    """A series model: a trace (meta, steps, grads, done), or a forecast whose steps leave as they are computed."""
    values = series.values_of(loaded, req.values)
    if isinstance(req, StreamGenerateRequest):
        forecasting = series.SeriesGeneration.start(loaded, req, settings)
        work = work_of(ws, cost.forecast_seconds(loaded, forecasting.given, req.length))
        await _serve_forecast(sender, compute, work, metrics, forecasting)
        return
    steps = series.value_steps(values, settings)
    estimate = series.estimate_bytes(loaded, steps)
    trace_wire = functools.partial(series.trace_request, loaded, req, settings)
    work = work_of(ws, cost.trace_seconds(loaded, steps))
    await _send_trace(sender, compute, budget, work, estimate, trace_wire, req, lambda _: DONE)


async def _serve_forecast(
    sender: Sender, compute: Compute, work: Work, metrics: Metrics, forecasting: series.SeriesGeneration
) -> None:
    """Each step frame leaves as soon as it is computed (the given values, then the forecast fed back); then the
    BPTT sweep of the whole sequence, and done with the forecast."""
    steps = forecasting.run()
    total = forecasting.given + forecasting.req.length - 1

    def next_frame(t: int) -> bytes | None:
        step = next(steps, None)
        return None if step is None else dumps(forecasting.step_frame(step, t))

    async with compute.admitted_for(work):
        first = await compute.run_in_slot(work, next_frame, 0)
    card = forecasting.loaded.card
    await sender.frame({"type": "meta", "mode": "generate", "model": card.id, "kind": "series", "steps": total,
                        "given_steps": forecasting.given, "cell": card.cell, "gates": list(card.gate_names),
                        "num_layers": card.num_layers, "hidden_size": card.hidden_size,
                        "outliers": forecasting.outliers()})  # fmt: skip
    payload = first
    for t in range(1, total + 1):
        if payload is None:
            break
        metrics.generated_steps_total += 1
        await sender.text(payload)
        payload = await compute.run_in_slot(work, next_frame, t) if t < total else None
    forecast, wire = await compute.run_in_slot(work, forecasting.finish)
    await sender.texts(wire.grad_frames())
    await sender.frame({"type": "done", "forecast": forecast, "total_loss": wire.trace.loss})


async def _serve_translation(
    sender: Sender,
    compute: Compute,
    budget: ByteBudget,
    settings: Settings,
    loaded: LoadedModel,
    req: StreamTraceRequest | StreamTranslateRequest,
    ws: WebSocket,
) -> None:
    """meta, the encoder's steps, the decoder's steps, the decoder's BPTT, the encoder's BPTT, done."""
    if not translation.is_translation(loaded):
        raise WrongModelKind(f"{loaded.card.id} is a {loaded.card.kind} model, not a translation model")
    is_translate = isinstance(req, StreamTranslateRequest)
    beam = req.beam if isinstance(req, StreamTranslateRequest) else 1
    max_length = req.max_length if isinstance(req, StreamTranslateRequest) else None
    steps = translation.translation_steps(loaded, text_of(loaded, req.text), max_length, beam, req.top_k, settings)

    def done(wire: translation.TranslationWire) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "done", "output": wire.trace.output, "total_loss": wire.trace.loss}
        if is_translate:
            frame["beams"] = wire.header()["beams"]
        return frame

    estimate = translation.estimate_bytes(loaded, steps, req.top_k)
    trace_wire = functools.partial(translation.stream_request, loaded, req, settings)
    work = work_of(ws, cost.translate_seconds(loaded, steps))
    await _send_trace(sender, compute, budget, work, estimate, trace_wire, req, done)


async def _serve_generate(sender: Sender, compute: Compute, work: Work, metrics: Metrics, gen: Generation) -> None:
    """Each step frame leaves as soon as its token is sampled; then the BPTT sweep of the whole text."""
    req = gen.req
    steps: Iterator[Step] = gen.run()
    total = len(gen.prompt_ids) + req.length

    def next_frame(t: int) -> bytes | None:
        step = next(steps, None)
        return None if step is None else dumps(generated_step_frame(gen.loaded, step, t, req.top_k, req.precision))

    # Admitted once, like any computation; then each step takes a slot only while it computes, never while its
    # frame waits on the client, so a client that stops reading holds no slot and stalls no one.
    async with compute.admitted_for(work):
        first = await compute.run_in_slot(work, next_frame, 0)
    card = gen.loaded.card
    await sender.frame({"type": "meta", "mode": "generate", "model": card.id, "steps": total, "cell": card.cell,
                        "gates": list(card.gate_names), "num_layers": card.num_layers,
                        "hidden_size": card.hidden_size, "prompt_steps": len(gen.prompt_ids)})  # fmt: skip
    payload = first
    for t in range(1, total + 1):
        if payload is None:
            break
        metrics.generated_steps_total += 1
        await sender.text(payload)
        payload = await compute.run_in_slot(work, next_frame, t) if t < total else None
    text, written, wire = await compute.run_in_slot(work, gen.finish)
    await sender.texts(wire.grad_frames())
    await sender.frame({"type": "done", "text": text, "generated": written, "total_loss": wire.trace.loss})


async def _close_with_error(sender: Sender, status: int, error: str, message: str) -> None:
    try:
        await sender.frame({"type": "error", "error": error, "message": message})
        await sender.ws.close(code=4000 + status, reason=error)
    except (ClientGone, RuntimeError, OSError):
        pass
