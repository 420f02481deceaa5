"""Model work runs off the event loop, with a bounded number in flight; past that, callers get Overloaded."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread

from app.api.errors import Overloaded

T = TypeVar("T")


class Compute:
    def __init__(self, max_concurrent: int) -> None:
        self.max_concurrent = max_concurrent
        self.in_flight = 0
        # Worker threads are dedicated to model work, so that file and socket I/O never waits behind it.
        self._limiter = anyio.CapacityLimiter(max_concurrent)

    def slot(self) -> _Slot:
        """Take a slot now or raise Overloaded: `with compute.slot(): ...`."""
        if self.in_flight >= self.max_concurrent:
            raise Overloaded(
                f"the server is busy ({self.max_concurrent} computations in flight); retry in "
                f"{Overloaded.retry_after} s"
            )
        return _Slot(self)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run fn(*args) in a worker thread, in a slot taken now (or Overloaded)."""
        with self.slot():
            return await self.run_in_slot(fn, *args)

    async def run_in_slot(self, fn: Callable[..., T], *args: object) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)


class _Slot:
    def __init__(self, compute: Compute) -> None:
        self._compute = compute
        compute.in_flight += 1

    def __enter__(self) -> _Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self._compute.in_flight -= 1
