"""WebSocket /api/lab/train: an RNN, an LSTM and a GRU learn the memory task live, every step streamed.

Protocol: the client sends {"task": "memory", "n", "cells", "seconds", "steps"?} (steps: at
most this many per cell). The server answers {"type": "start", …},
then one {"type": "step", "cell", "step", "loss", "accuracy", "grad_ratio", "elapsed"} per training step of each
cell, and at the end {"type": "done", "reason", "models", "steps", "accuracy"} and a normal close (1000). The
client may send {"type": "stop"} at any time. Errors: {"type": "error", "error", "message"} and close code
4000 + status (4403 another site's page, 4408 no request in time, 4422 a bad request, naming the field and its
limit ("request" if it is not a JSON object), 4503 no compute slot or training run free, the frame then with
"retry_after": the seconds to wait before asking again).

The run holds one compute slot (expensive work) for its whole length and trains in one worker thread, which
checks a stop flag every step: set by the client's stop frame, by its disconnect (the receiving task sees it at
once) or by a send that fails. A run whose client has left keeps its slot until its thread has returned, within
one step: a request that finds only such runs in its way waits for them (at most LEAVING_WAIT) rather than being
refused, so a page that leaves its run and comes back at once starts a new one. A run going for another client
is refused at once, never queued. Step frames go to the event loop through an outbox the trainer never waits on;
a client that reads slowly gets each cell's curve thinned (every other step), never the done frame dropped.
The trained models join app.state.lab_models (app.training.live.LabModels), served under their ids by every model route.

A request identical to a run in flight (task, n, cells, seconds, steps) is not refused: it watches that run (Show),
as a room that opens the training scene does: every frame sent so far, then each as it goes, then the done frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import orjson
from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.websockets import WebSocketDisconnect

from app.training.live import CELLS, LESSON_N, RECORDING, LabModels, LabRequest, RunResult, Training
from app.web.capacity.compute import Compute, Work
from app.web.config import Settings
from app.web.errors import Overloaded, error_body
from app.web.routes.stream import ClientGone, Sender, StreamError, _close_with_error, origin_allowed, receive_request
from app.web.schemas.models import ErrorBody
from app.wire.frames import dumps

log = logging.getLogger("unrolled.lab")
router = APIRouter(prefix="/api", tags=["lab"])

FIELDS = ("task", "n", "cells", "seconds")
OPTIONAL = ("steps",)  # at most this many steps per cell: the lesson is a number of steps, not of seconds
MAX_STEPS = 1_000_000
OUTBOX_LIMIT = 3000  # step frames waiting for a slow client; past it each cell's waiting frames are thinned
# Seconds a request waits for runs whose client has left: each is over after the step it is in (well under a
# second at lab_max_gap), this is only a bound should the machine stall.
LEAVING_WAIT = 10.0
RETRY_MAX = 10  # the longest retry_after a busy frame suggests (a run may be stopped before its time is up)


def parse_request(data: Any, settings: Settings) -> LabRequest:
    """The first frame as a LabRequest, or a 422 naming the field and its limit."""
    if not isinstance(data, dict):
        raise StreamError(422, "invalid", 'request: a JSON object {"task", "n", "cells", "seconds"}')
    unknown = sorted(set(data) - set(FIELDS) - set(OPTIONAL))
    if unknown:
        raise StreamError(422, "invalid", f"{unknown[0]}: unknown field; the fields are "
                          f"{', '.join(FIELDS + OPTIONAL)}")  # fmt: skip
    for name in FIELDS:
        if name not in data:
            raise StreamError(422, "invalid", f"{name}: required")
    if data["task"] != "memory":
        raise StreamError(422, "invalid", f"task: {data['task']!r} cannot be trained live; the lab trains 'memory'")
    n = data["n"]
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= settings.lab_max_gap:
        raise StreamError(422, "invalid", f"n: the gap must be a whole number from 1 to {settings.lab_max_gap} "
                          "(lab_max_gap)")  # fmt: skip
    cells = data["cells"]
    if not isinstance(cells, list) or not cells:
        raise StreamError(422, "invalid", f"cells: a non-empty list of {', '.join(CELLS)}")
    for cell in cells:
        if cell not in CELLS:
            raise StreamError(422, "invalid", f"cells: {cell!r} is not a cell; choose from {', '.join(CELLS)}")
    if len(set(cells)) != len(cells):
        raise StreamError(422, "invalid", "cells: each cell at most once")
    seconds = data["seconds"]
    if (
        not isinstance(seconds, int | float)
        or isinstance(seconds, bool)
        or not math.isfinite(seconds)
        or not 0 < seconds <= settings.lab_max_seconds
    ):
        raise StreamError(422, "invalid", f"seconds: more than 0 and at most {settings.lab_max_seconds:g} "
                          "(lab_max_seconds)")  # fmt: skip
    steps = data.get("steps")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS):
        raise StreamError(
            422, "invalid", f"steps: a whole number of steps per cell from 1 to {MAX_STEPS:,}, or left out"
        )
    return LabRequest("memory", n, tuple(cells), float(seconds), steps)


async def _read_request(ws: WebSocket, settings: Settings) -> LabRequest:
    raw = await receive_request(ws, settings.request_timeout)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise StreamError(422, "invalid", f"request: not valid JSON ({e})") from e
    return parse_request(data, settings)


class Outbox:
    """Step frames from the training thread to the event loop. `put` never blocks the trainer: it appends under a
    lock and wakes the loop only when the outbox was empty. Past `limit` frames waiting, each cell's waiting
    frames are thinned to every other one (its newest kept): the curves grow coarser, none stops."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = OUTBOX_LIMIT) -> None:
        self.loop = loop
        self.limit = limit
        self._frames: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ready = asyncio.Event()
        self._closed = False
        self.thinned = 0  # frames left out

    def put(self, frame: dict[str, Any]) -> None:
        with self._lock:
            self._frames.append(frame)
            wake = len(self._frames) == 1
            if len(self._frames) > self.limit:
                kept = thin(self._frames)
                self.thinned += len(self._frames) - len(kept)
                self._frames = kept
        if wake:
            self.loop.call_soon_threadsafe(self._ready.set)

    def close(self) -> None:
        """No more frames will come (called on the event loop)."""
        self._closed = True
        self._ready.set()

    async def take(self) -> list[dict[str, Any]] | None:
        """Every frame waiting (waits for one); None once closed and empty."""
        while True:
            with self._lock:
                frames, self._frames = self._frames, []
            if frames:
                return frames
            if self._closed:
                return None
            self._ready.clear()
            with self._lock:
                if self._frames:
                    continue
            await self._ready.wait()


def thin(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every other frame of each cell, always its newest, in their order."""
    by_cell: dict[str, list[int]] = {}
    for i, f in enumerate(frames):
        by_cell.setdefault(f["cell"], []).append(i)
    keep = set()
    for indices in by_cell.values():
        keep.update(indices[1::2])
        keep.add(indices[-1])
    return [f for i, f in enumerate(frames) if i in keep]


class Show:
    """A live run that later askers of the same request watch: a room that opens the training scene asks 200 times
    for the one run a server trains at a time (max_training_runs), and every asker but the first was refused busy.
    A run's batches and first weights are the same for every run of one request (app.training.live), so a watcher
    is shown the very run it would have trained: every message sent so far, then each as it is sent, then the done
    frame. Watchers take no compute slot and start no run; one that stops (or leaves) stops watching, not the run.
    The run ends as before: its time or steps are up, or its owner (the first asker) stops it or leaves."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []  # every message so far: the start frame, the step frames
        self.steps: dict[str, int] = {}  # each cell's last step sent
        self.watchers: set[asyncio.Queue[bytes | None]] = set()

    def publish(self, frames: list[dict[str, Any]], messages: list[bytes]) -> None:
        self.sent.extend(messages)
        for f in frames:
            if f.get("type") == "step":
                self.steps[f["cell"]] = f["step"]
        for queue in self.watchers:
            for m in messages:
                queue.put_nowait(m)

    def join(self) -> asyncio.Queue[bytes | None]:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        for m in self.sent:
            queue.put_nowait(m)
        self.watchers.add(queue)
        return queue

    def stopped_frame(self) -> bytes:
        """The done frame of a watching that ends before the run: the steps seen, no models."""
        return dumps({"type": "done", "reason": "stopped", "models": {}, "steps": dict(self.steps), "accuracy": {}})

    def end(self, done: bytes | None) -> None:
        """The run is over: its done frame to each watcher (None, its owner gone: the steps seen, no models)."""
        last = done if done is not None else self.stopped_frame()
        for queue in self.watchers:
            queue.put_nowait(last)
            queue.put_nowait(None)
        self.watchers.clear()


@router.get(
    "/lab/recording",
    summary="The training run recorded on this server, for a machine too slow to train live",
    responses={404: {"model": ErrorBody, "description": "no run is recorded on this server"}},
)
async def lab_recording(request: Request) -> Response:
    """The run `unrolled lab-record` recorded (app.training.live.record): its start frame, its step frames as rows, its
    done frame. The lab plays it through the live run's view at the pace it was recorded."""
    settings: Settings = request.app.state.settings
    path = settings.models_dir / RECORDING
    if not path.is_file():
        message = f"no training run is recorded on this server (`unrolled lab-record` writes {RECORDING} there)"
        return JSONResponse(error_body("not_found", message), 404)
    return FileResponse(path, media_type="application/json")


@router.websocket("/lab/train")
async def lab_train(ws: WebSocket) -> None:
    state = ws.app.state
    settings: Settings = state.settings
    await ws.accept()
    sender = Sender(ws, settings.send_timeout, settings.min_stream_rate)
    try:
        if not origin_allowed(ws.headers.get("origin"), ws.headers.get("host"), settings.cors_origins):
            raise StreamError(403, "forbidden_origin", "the lab is open to this server's own pages (and cors_origins)")
        request = await _read_request(ws, settings)
        await _serve(ws, sender, state.compute, state.lab_models, settings, request)
    except Busy as e:
        await _close_busy(sender, str(e), e.retry_after)
    except StreamError as e:
        await _close_with_error(sender, e.status, e.error, str(e))
    except Overloaded as e:
        await _close_busy(sender, str(e), Overloaded.retry_after)
    except (ClientGone, WebSocketDisconnect):
        pass
    except Exception:
        log.exception("live training failed")
        await _close_with_error(sender, 500, "internal", "internal error: the server could not complete this run")


class Busy(Exception):
    """No run may start now: a 503 whose frame says when to ask again."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _busy(compute: Compute, lab: LabModels, settings: Settings) -> Busy | None:
    """Why a run cannot start now, or None."""
    if lab.runs >= settings.max_training_runs:
        left = min(max(lab.ends - time.monotonic(), 1.0), RETRY_MAX)
        return Busy(f"a live training run is going already (max_training_runs {settings.max_training_runs}); "
                    "retry when it is done", math.ceil(left))  # fmt: skip
    if compute.running >= compute.max_concurrent or compute.running_expensive >= compute.max_expensive:
        return Busy("every compute slot for long work is taken; retry in a few seconds", Overloaded.retry_after)
    return None


async def _admit(compute: Compute, lab: LabModels, settings: Settings) -> None:
    """Return once a run may start; raise Busy if it may not. Runs whose client has left are waited for (each is
    over within a step); any other is not. Checked on the event loop with no await between the last check and the
    caller taking its slot: a run that may start takes it at once."""
    busy = _busy(compute, lab, settings)
    with anyio.move_on_after(LEAVING_WAIT):
        while busy is not None and lab.leaving:
            await lab.wait_run_over()
            busy = _busy(compute, lab, settings)
    if busy is not None:
        raise busy


async def _serve(
    ws: WebSocket, sender: Sender, compute: Compute, lab: LabModels, settings: Settings, request: LabRequest
) -> None:
    shows: dict[LabRequest, Show] = ws.app.state.lab_shows
    key = request  # frozen: equal requests are one run
    if key not in shows:
        await _admit(compute, lab, settings)
    if key in shows:  # going already, or begun while this one waited for a leaving run
        await _watch(ws, sender, shows[key])
        return
    show = shows[key] = Show()
    work = Work(ws.client.host if ws.client else "unknown", expensive=True)
    left = False

    def on_leave() -> None:
        nonlocal left
        left = True
        lab.leaving += 1
        if shows.get(key) is show:  # a run ending with no one to train for: the next asker starts its own
            del shows[key]

    lab.runs += 1
    lab.ends = time.monotonic() + request.seconds
    done: bytes | None = None
    try:
        async with compute.slot(work):
            recorded = request.n == LESSON_N and (settings.models_dir / RECORDING).is_file()
            result = await _run(ws, sender, lab, request, on_leave, recorded, show)
        if result is not None:
            done = dumps({
                "type": "done",
                "reason": result.reason,
                "models": {cell: m.card.id for cell, m in result.models.items()},
                "steps": result.steps,
                "accuracy": {cell: round(a, 4) for cell, a in result.accuracy.items()},
            })  # fmt: skip
    finally:
        # the thread has returned (cancellation too waits for it): the slot is free again, so is the run
        lab.runs -= 1
        lab.leaving -= left
        lab.run_over()
        if shows.get(key) is show:
            del shows[key]
        show.end(done)
    if done is None:
        return  # the client left: no one to tell
    await sender.text(done)
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):  # it may have left after the done frame
        await ws.close(code=1000)


async def _watch(ws: WebSocket, sender: Sender, show: Show) -> None:
    """Send a run in flight to one more client (Show): what it has sent, then each message as it goes, then its
    done frame. A stop frame ends the watching with a done frame of its own (the steps seen, no models)."""
    queue = show.join()
    over = False  # the run's end reached this client: its done frame was sent
    asked_stop = False
    finished = anyio.Event()

    async def listen() -> None:
        nonlocal asked_stop
        asked_stop = await _stop_or_gone(ws)
        finished.set()

    async def relay() -> None:
        nonlocal over
        with contextlib.suppress(ClientGone):
            while (message := await queue.get()) is not None:
                await sender.text(message)
            over = True
        finished.set()

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(listen)
            tasks.start_soon(relay)
            await finished.wait()
            tasks.cancel_scope.cancel()
    finally:
        show.watchers.discard(queue)
    with contextlib.suppress(ClientGone, RuntimeError, OSError, WebSocketDisconnect):
        if asked_stop and not over:
            await sender.text(show.stopped_frame())
        if over or asked_stop:
            await ws.close(code=1000)


async def _stop_or_gone(ws: WebSocket) -> bool:
    """The client's next word once a run is going: True for a stop frame, False when it has gone. Anything else it
    sends means nothing now and is skipped."""
    while True:
        try:
            message = await ws.receive()
        except (WebSocketDisconnect, RuntimeError, OSError):
            return False
        if message["type"] == "websocket.disconnect":
            return False
        with contextlib.suppress(orjson.JSONDecodeError):
            data = orjson.loads(message.get("text") or message.get("bytes") or b"")
            if isinstance(data, dict) and data.get("type") == "stop":
                return True


async def _close_busy(sender: Sender, message: str, retry_after: int) -> None:
    try:
        await sender.frame({"type": "error", "error": "busy", "message": message, "retry_after": retry_after})
        await sender.ws.close(code=4503, reason="busy")
    except (ClientGone, RuntimeError, OSError):
        pass


async def _run(
    ws: WebSocket,
    sender: Sender,
    lab: LabModels,
    request: LabRequest,
    on_leave: Callable[[], None],
    recorded: bool = False,
    show: Show | None = None,
) -> RunResult | None:
    """Train in one worker thread while one task sends its frames and another listens for stop or a disconnect
    (on_leave is called once if the client goes); the models, once stored, or None if the client has gone.
    recorded: a recorded run of this request's gap is served (its address goes in the start frame)."""
    stop = threading.Event()
    gone = threading.Event()
    outbox = Outbox(asyncio.get_running_loop())
    training = Training(secrets.token_hex(4), request, stop, outbox.put)
    start = {**training.start_frame(), "recording": "/api/lab/recording" if recorded else None}
    if show is not None:
        show.publish([start], [dumps(start)])
    await sender.frame(start)

    def leave() -> None:  # on the event loop
        if not gone.is_set():
            gone.set()
            on_leave()
        stop.set()

    async def listen() -> None:
        try:
            while await _stop_or_gone(ws):
                stop.set()
            leave()
        finally:
            # cancelled (the server shutting down): the thread, which cancellation waits for, must end too
            stop.set()

    sent_all = anyio.Event()

    async def send() -> None:
        while (frames := await outbox.take()) is not None:
            messages = [dumps(f) for f in frames]
            if show is not None:
                show.publish(frames, messages)
            if gone.is_set():
                continue
            try:
                await sender.texts(messages)
            except ClientGone:
                leave()
        sent_all.set()

    def train() -> RunResult | None:
        reason = training.train()
        if gone.is_set():
            return None
        result = training.finish(reason)
        lab.add(list(result.models.values()))
        return result

    failed: Exception | None = None
    result: RunResult | None = None
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(listen)
        tasks.start_soon(send)
        try:
            result = await anyio.to_thread.run_sync(train)
        except Exception as e:  # raised below, once the tasks are done
            failed = e
        outbox.close()
        await sent_all.wait()  # every step frame leaves before the done frame (each send has its deadline)
        tasks.cancel_scope.cancel()
    if failed is not None:
        raise failed
    r = request
    steps = {run.cell: run.steps for run in training.cells}
    end = "client left" if gone.is_set() else result.reason if result is not None else "?"
    log.info("lab run %s: memory n=%d %s for %.1f s of %g: %s, steps %s", training.run_id, r.n, "/".join(r.cells),
             training.seconds, r.seconds, end, steps)  # fmt: skip
    return None if gone.is_set() else result
