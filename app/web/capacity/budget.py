"""The bytes a server holds for its clients, bounded: a REST body waiting to be read, a stream's trace.

A client that asks for a 90 MB body and never reads it would otherwise keep those bytes for as long as it stays
connected; twenty such clients passed a pod's memory limit. Every body and stream takes its size from one
process-wide budget (max_bytes_in_flight) while it is being sent, and gives it back when it is sent, when the
client leaves, or when the client has not read for send_timeout. Past the budget, a request is answered 503
with Retry-After, before or instead of holding more.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.web.capacity import memory
from app.web.errors import Overloaded

# A release this big trims at once even while others are held: under steady load the budget is never empty, and
# a computation's freed working memory would stay resident.
TRIM_AFTER = 32_000_000


class ByteBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> Held:
        """Hold `size` bytes until the returned Held is released; Overloaded if they do not fit beside the rest."""
        if self.held + size > self.limit:
            raise self._over(size)
        self.held += size
        return Held(self, size)

    @contextmanager
    def hold(self, size: int) -> Iterator[Held]:
        """Hold `size` bytes for as long as the block runs."""
        held = self.take(size)
        try:
            yield held
        finally:
            held.release()

    def _give_back(self, size: int) -> None:
        self.held -= size
        if self.held == 0 or size >= TRIM_AFTER:  # big texts are free: hand their pages back
            memory.trim_soon()

    def _over(self, size: int) -> Overloaded:
        mb = 1 / 1e6
        return Overloaded(
            f"the server holds {self.held * mb:.0f} MB for clients still reading (max_bytes_in_flight "
            f"{self.limit * mb:.0f} MB){f'; this answer needs {size * mb:.0f} MB' if size else ''}; "
            f"retry in {Overloaded.retry_after} s"
        )


class Held:
    """Bytes taken from a budget; release() gives them back, once."""

    def __init__(self, budget: ByteBudget, size: int) -> None:
        self.budget, self.size = budget, size

    def release(self) -> None:
        if self.size:
            size, self.size = self.size, 0
            self.budget._give_back(size)

    def resize(self, size: int) -> None:
        """Hold `size` bytes instead (an estimate made exact); Overloaded, holding nothing, if they do not fit."""
        budget = self.budget
        if budget.held - self.size + size > budget.limit:
            self.release()
            raise budget._over(size)
        shrunk = self.size - size
        budget.held += size - self.size
        self.size = size
        if shrunk >= TRIM_AFTER:  # the working memory of a computation is free now
            memory.trim_soon()
