"""Model work runs off the event loop: at most max_concurrent at once, at most max_queue waiting in line.

Past that, callers get Overloaded (503 with Retry-After) at once instead of queueing without end.

The line is fair between clients, not first come, first served: when a slot frees, it goes to the waiting client
that has the fewest computations running, and among those to the one served least recently. So one client's
backlog of twelve long generations does not make a visitor's five-letter trace wait for all of them. A client may
hold at most max_queue_per_client places, so one client cannot fill the line either. Expensive work (estimated at
expensive_seconds of CPU or more: app.web.capacity.cost) has its own budget of max_expensive slots, below
max_concurrent, so a slot is always left for small requests however much expensive work is waiting.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import anyio.to_thread

from app.web.capacity import memory
from app.web.errors import Overloaded

T = TypeVar("T")


@dataclass(frozen=True)
class Work:
    """Who asks for a computation, and whether it is expensive (it then counts against max_expensive)."""

    client: str
    expensive: bool = False


@dataclass(eq=False)
class _Waiter:
    work: Work
    granted: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Compute:
    def __init__(
        self, max_concurrent: int, max_queue: int, max_queue_per_client: int | None = None, max_expensive: int = 0
    ) -> None:
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.max_per_client = max_queue_per_client or max_concurrent + max_queue
        # 0: all slots but one (with a single slot, expensive work may take it: nothing else could run anyway)
        self.max_expensive = max_expensive or max(1, max_concurrent - 1)
        self.admitted = 0  # running or waiting for a slot
        self.running = 0
        self.running_expensive = 0
        self._admitted_by: dict[str, int] = defaultdict(int)
        self._running_by: dict[str, int] = defaultdict(int)
        self._waiting: dict[str, deque[_Waiter]] = {}  # client → its waiters, in arrival order
        self._last_served: dict[str, int] = {}
        self._turn = itertools.count(1)

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    @asynccontextmanager
    async def admitted_for(self, work: Work) -> AsyncIterator[None]:
        """A place in the bounded line, for the block's duration: Overloaded if the line, or the client's share
        of it, is full."""
        if self.admitted >= self.max_concurrent + self.max_queue:
            raise Overloaded(
                f"the server is busy ({self.max_concurrent} computations running, {self.max_queue} waiting); "
                f"retry in {Overloaded.retry_after} s"
            )
        if self._admitted_by[work.client] >= self.max_per_client:
            raise Overloaded(
                f"this client already has {self.max_per_client} computations running or waiting "
                f"(max_queue_per_client); retry in {Overloaded.retry_after} s"
            )
        self.admitted += 1
        self._admitted_by[work.client] += 1
        try:
            yield
        finally:
            self.admitted -= 1
            self._admitted_by[work.client] -= 1
            if not self._admitted_by[work.client]:
                del self._admitted_by[work.client]
            if self.admitted == 0:  # idle: give freed memory back, off the event loop
                memory.trim_soon()

    @asynccontextmanager
    async def slot(self, work: Work) -> AsyncIterator[None]:
        """A place in the line, then a slot, for the block's duration."""
        async with self.admitted_for(work), self._slot(work):
            yield

    async def run(self, work: Work, fn: Callable[..., T], *args: object) -> T:
        """Run fn(*args) in a worker thread, in a slot, after a place in the line."""
        async with self.admitted_for(work):
            return await self.run_in_slot(work, fn, *args)

    async def run_in_slot(self, work: Work, fn: Callable[..., T], *args: object) -> T:
        """Wait for a slot (fairly), then run fn(*args) in a worker thread. For admitted work, and for each step
        of a generation, which is admitted once but takes a slot only while a step computes."""
        async with self._slot(work):
            return await anyio.to_thread.run_sync(fn, *args)

    def slot_for(self, work: Work) -> AbstractAsyncContextManager[None]:
        """A slot, waited for fairly, for the block's duration: for admitted work (admitted_for) whose caller acts
        when the slot is granted (a stream takes its place among max_streams then, not while it waits)."""
        return self._slot(work)

    @asynccontextmanager
    async def _slot(self, work: Work) -> AsyncIterator[None]:
        # After every change, _dispatch leaves no free slot that a waiter could take; so work that may start now
        # overtakes no one who could.
        if self._may_start(work):
            self._start(work)
        else:
            waiter = _Waiter(work)
            self._waiting.setdefault(work.client, deque()).append(waiter)
            try:
                await waiter.granted
            except asyncio.CancelledError:
                if waiter.granted.done() and not waiter.granted.cancelled():
                    self._finish(work)  # granted just as the caller left: hand the slot on
                else:
                    self._forget(waiter)
                raise
        try:
            yield
        finally:
            self._finish(work)

    def _may_start(self, work: Work) -> bool:
        return self.running < self.max_concurrent and (
            not work.expensive or self.running_expensive < self.max_expensive
        )

    def _start(self, work: Work) -> None:
        self.running += 1
        self.running_expensive += work.expensive
        self._running_by[work.client] += 1
        self._last_served[work.client] = next(self._turn)

    def _finish(self, work: Work) -> None:
        self.running -= 1
        self.running_expensive -= work.expensive
        self._running_by[work.client] -= 1
        if not self._running_by[work.client]:
            del self._running_by[work.client]
            if work.client not in self._waiting:
                self._last_served.pop(work.client, None)
        self._dispatch()

    def _forget(self, waiter: _Waiter) -> None:
        queue = self._waiting.get(waiter.work.client)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del self._waiting[waiter.work.client]
                if waiter.work.client not in self._running_by:
                    self._last_served.pop(waiter.work.client, None)
        self._dispatch()  # an expensive waiter that left may have been holding cheap ones back in its client's line

    def _dispatch(self) -> None:
        """Give free slots to waiters: the client with the fewest running, then the least recently served; within
        a client, its first waiter that may start (expensive work waits for an expensive slot, cheap work not)."""
        while self.running < self.max_concurrent and self._waiting:
            best: tuple[int, int, str, _Waiter] | None = None
            for client, queue in self._waiting.items():
                waiter = next((w for w in queue if self._may_start(w.work)), None)
                if waiter is None:
                    continue
                rank = (self._running_by.get(client, 0), self._last_served.get(client, 0), client, waiter)
                if best is None or rank[:2] < best[:2]:
                    best = rank
            if best is None:
                return  # only expensive work waits, and the expensive slots are taken
            client, waiter = best[2], best[3]
            queue = self._waiting[client]
            queue.remove(waiter)
            if not queue:
                del self._waiting[client]
            self._start(waiter.work)
            waiter.granted.set_result(None)
