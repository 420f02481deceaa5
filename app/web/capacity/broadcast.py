"""A stepped computation (a generation stream: each sampled token's frame as soon as it is computed) stepped once
for every stream that asks for the same thing, each following it from its first message.

A room of 200 students opening the tour's writing scene asks 200 times for one seeded generation. Each used to be
stepped for its own student, and scene 11 of bench.classroom left 136 of 200 "busy": 200 steppers in a compute line
of a few slots, a room behind one address held at most max_queue_per_client places in it. A Broadcast is stepped
once; each stream sends what it has published so far, then each message as it is published, at its own client's
pace. Finished, it is kept in the Shared cache (app.web.capacity.shared) like a shared trace, and a stream that comes
later is sent it whole.

Only a request whose messages are a function of its key is broadcast: a generation that samples afresh (no seed, a
temperature above 0) gets a Broadcast of its own, with one follower. Once every follower has gone, the stepping stops
at its next step (the old per-client rule: a client that leaves stops its sampling) and nothing is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from app.web.capacity.shared import Shared

Message = dict[str, Any]  # an ASGI "websocket.send" message, written once for every follower


class Abandoned(Exception):
    """Every follower of a broadcast has gone: its stepping stops."""


class Broadcast:
    """The messages a stepper publishes, in order, to every follower; over with a last message or an error."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.over = False
        self.error: BaseException | None = None
        self.followers = 0
        self.furthest = 0  # messages the furthest follower has sent
        self._changed = asyncio.Event()  # a message published, or the end
        self._taken = asyncio.Event()  # a follower sent more, or left

    def publish(self, *messages: Message) -> None:
        self.messages.extend(messages)
        self._wake()

    def end(self, error: BaseException | None = None) -> None:
        self.over, self.error = True, error
        self._wake()

    def abandoned(self) -> bool:
        """The stepper asks between steps: no one follows any more."""
        return self.followers == 0

    async def sent_by_one(self) -> None:
        """Until the furthest follower has sent every message published (or none follows any more). The stepper
        waits here before each step, as a stream stepped for one client waited on its send: the room's fastest
        client paces the stepping, and clients that stop reading spend no compute (a slower one falls behind the
        others and is cut off by its own send deadline)."""
        while self.followers > 0 and self.furthest < len(self.messages):
            self._taken = asyncio.Event()
            await self._taken.wait()

    def size(self) -> int:
        return sum(len(m.get("text") or m.get("bytes") or b"") for m in self.messages)

    async def follow(self, send: Callable[[list[Message]], Awaitable[None]], first: Callable[[], None]) -> None:
        """Send every message, from the first, as each is published (first() before the first send); return at the
        end, or raise the stepper's error once what came before it is sent. A follower that leaves (its send
        raises) is counted out."""
        self.followers += 1
        try:
            sent = 0
            while True:
                if sent < len(self.messages):
                    if sent == 0:
                        first()
                    upto = len(self.messages)
                    await send(self.messages[sent:upto])
                    sent = upto
                    if sent > self.furthest:
                        self.furthest = sent
                        self._taken.set()
                    continue
                if self.error is not None:
                    raise self.error
                if self.over:
                    return
                await self._changed.wait()
        finally:
            self.followers -= 1
            self._taken.set()  # the stepper looks again: it may be abandoned

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


Stepper = Callable[[Broadcast], Awaitable[None]]


class Broadcasts:
    """Broadcasts in flight, by key; the finished ones are kept in `shared` (its byte bound, its counters: a stream
    that starts a broadcast is a computation, one that follows one in flight has joined, one served a kept one is a
    hit)."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.flying: dict[Hashable, Broadcast] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def follow(
        self,
        key: Hashable | None,
        step: Stepper,
        send: Callable[[list[Message]], Awaitable[None]],
        first: Callable[[], None],
        anchor: object = None,
    ) -> None:
        """Follow the broadcast for `key` (Broadcast.follow), started by `step` if none is kept or in flight. The
        follower is counted before the stepper first runs (no await between), so a new stepper never finds itself
        abandoned."""
        await self._get(key, step, anchor).follow(send, first)

    def _get(self, key: Hashable | None, step: Stepper, anchor: object) -> Broadcast:
        """The broadcast for `key`: kept, in flight, or started now by `step` (a task of its own: the first asker
        leaving must not stop it while others follow). key None (or sharing off): one of its own."""
        if key is None or not self.shared.enabled:
            return self._start(None, step, anchor)
        kept = self.shared.kept(key)
        if kept is not None:
            assert isinstance(kept, Broadcast)
            return kept
        flying = self.flying.get(key)
        if flying is not None:
            self.shared.joined += 1
            return flying
        self.shared.computed += 1
        broadcast = self.flying[key] = self._start(key, step, anchor)
        return broadcast

    def _start(self, key: Hashable | None, step: Stepper, anchor: object) -> Broadcast:
        broadcast = Broadcast()
        task = asyncio.ensure_future(self._run(key, broadcast, step, anchor))
        self._tasks.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)
        return broadcast

    async def _run(self, key: Hashable | None, broadcast: Broadcast, step: Stepper, anchor: object) -> None:
        try:
            await step(broadcast)
        except asyncio.CancelledError:
            broadcast.end(Abandoned("the server is shutting down"))
            raise
        except Exception as e:  # every follower's error (busy, a bad request found while stepping, …)
            broadcast.end(e)
        else:
            broadcast.end()
        finally:
            if key is not None and self.flying.get(key) is broadcast:
                del self.flying[key]
        if key is not None and broadcast.error is None:
            self.shared.keep(key, broadcast, broadcast.size(), anchor)

    async def close(self) -> None:
        """Stop every stepper (the server's shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
