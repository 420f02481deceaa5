"""Model work runs off the event loop: at most max_concurrent at once, at most max_queue waiting in line.

Past that, callers get Overloaded (503 with Retry-After) at once instead of queueing without end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio
import anyio.to_thread

from app import memory
from app.api.errors import Overloaded

T = TypeVar("T")


class Compute:
    def __init__(self, max_concurrent: int, max_queue: int) -> None:
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.admitted = 0  # running or waiting for a slot
        self._limiter = anyio.CapacityLimiter(max_concurrent)

    @property
    def running(self) -> int:
        return int(self._limiter.borrowed_tokens)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the max_concurrent slots, waiting in a bounded, first-come line for it."""
        if self.admitted >= self.max_concurrent + self.max_queue:
            raise Overloaded(
                f"the server is busy ({self.max_concurrent} computations running, {self.max_queue} waiting); "
                f"retry in {Overloaded.retry_after} s"
            )
        self.admitted += 1
        try:
            async with self._limiter:
                yield
        finally:
            self.admitted -= 1
            if self.admitted == 0 and memory.trim_due():  # idle: give freed memory back, off the event loop
                asyncio.get_running_loop().run_in_executor(None, memory.trim_when_idle)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run fn(*args) in a worker thread, in a slot."""
        async with self.slot():
            return await self.run_in_slot(fn, *args)

    async def step(self, fn: Callable[..., T], *args: object) -> T:
        """One step of admitted work (a generation): wait for a slot, without a place in the admission line."""
        async with self._limiter:
            return await self.run_in_slot(fn, *args)

    @staticmethod
    async def run_in_slot(fn: Callable[..., T], *args: object) -> T:
        """Run fn(*args) in a worker thread, for a caller that already holds a slot."""
        return await anyio.to_thread.run_sync(fn, *args)
