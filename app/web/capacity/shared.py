"""Identical computations shared: one computation for every request in flight that asks for the same thing, and a
small cache, bounded in bytes, of the last results for the requests that follow.

A room of 200 students opening the same tour scene asks 200 times for byte-identical traces: without sharing each
was computed 200 times, and a room behind one NAT address was refused by its own share of the compute line
(max_queue_per_client). A request that joins a computation in flight, or is served from the cache, takes no place
in the compute line (app.web.capacity.compute): only the computation does, once, as its first asker's. The
fairness rules hold for different requests as before.

A key names what is computed: the operation, the model (the very object the zoo loaded: a rescanned or retrained
model is another key), its checkpoint and the request in canonical form (app.web.routes.trace.Jobs.share_key). Only
requests whose answer is a function of the key are shared: a generation that samples afresh is not.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

T = TypeVar("T")


class Shared:
    """Coalesces computations by key and keeps their results, least recently used first out, within max_bytes.
    max_bytes 0 keeps none; enabled False shares nothing (each request computes its own: the baseline)."""

    def __init__(self, max_bytes: int, enabled: bool = True) -> None:
        self.max_bytes = max_bytes
        self.enabled = enabled
        self.held = 0  # bytes of the results kept
        # key → (result, its size, the objects the key names by identity: kept alive so their ids stay theirs)
        self._kept: OrderedDict[Hashable, tuple[Any, int, object]] = OrderedDict()
        self._flying: dict[Hashable, asyncio.Future[Any]] = {}
        self.computed = 0  # computations run for shared keys
        self.joined = 0  # requests that waited on one in flight
        self.hits = 0  # requests answered from what was kept

    @property
    def flying(self) -> int:
        return len(self._flying)

    async def get(
        self,
        key: Hashable | None,
        compute: Callable[[], Awaitable[T]],
        size: Callable[[T], int],
        anchor: object = None,
    ) -> T:
        """compute()'s result, shared with every request of the same key: kept from an earlier one, or awaited
        with those in flight, or computed now (for them too). `size` gives the bytes a result holds; `anchor`,
        what the key names by identity. An error is every waiter's, and nothing is kept."""
        if key is None or not self.enabled:
            return await compute()
        if key in self._kept:
            return cast(T, self.kept(key))
        flying = self._flying.get(key)
        if flying is None:
            # A task of its own: the first asker leaving (a closed socket, a cancelled request) must not cancel
            # the computation the others wait for.
            flying = asyncio.ensure_future(self._compute(key, compute, size, anchor))
            self._flying[key] = flying
            flying.add_done_callback(_retrieve)
        else:
            self.joined += 1
        return cast(T, await asyncio.shield(flying))

    def kept(self, key: Hashable) -> Any:
        """The result kept for key (counted as served), or None."""
        kept = self._kept.get(key)
        if kept is None:
            return None
        self._kept.move_to_end(key)
        self.hits += 1
        return kept[0]

    def keep(self, key: Hashable, result: object, size: int, anchor: object = None) -> None:
        """Keep a result computed elsewhere (app.web.capacity.broadcast's, once its stepping is over)."""
        if self.enabled:
            self._keep(key, result, size, anchor)

    async def _compute(
        self, key: Hashable, compute: Callable[[], Awaitable[T]], size: Callable[[T], int], anchor: object
    ) -> T:
        try:
            self.computed += 1
            result = await compute()
            self._keep(key, result, size(result), anchor)
            return result
        finally:
            del self._flying[key]

    def _keep(self, key: Hashable, result: object, size: int, anchor: object) -> None:
        if size > self.max_bytes // 4:  # one big result would push out everything the room shares
            return
        while self._kept and self.held + size > self.max_bytes:
            _, (_, dropped, _) = self._kept.popitem(last=False)
            self.held -= dropped
        self._kept[key] = (result, size, anchor)
        self.held += size

    def clear(self) -> None:
        self._kept.clear()
        self.held = 0


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Every waiter may have left: the error is read here, so asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()
