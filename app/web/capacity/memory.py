"""The C allocator's share of the server's memory (glibc): fewer arenas, and free pages handed back when idle.

glibc gives each thread that allocates its own heap ("arena") and keeps freed memory for reuse: under load from
many worker threads the server's resident memory would creep up and stay there. bench.load measures the effect.
Both functions are no-ops where the C library is not glibc.
"""

from __future__ import annotations

import asyncio
import ctypes
import time
from functools import cache

M_ARENA_MAX = -8  # from glibc's malloc.h
TRIM_INTERVAL = 2.0  # seconds: at most one malloc_trim this often


@cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def limit_arenas(arenas: int = 2) -> None:
    """Cap glibc's arenas; run it before worker threads start."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, arenas)


_last_trim = 0.0


def trim_due() -> bool:
    """Whether trim_when_idle would trim now: checked before handing it to a thread, which costs a thread hop."""
    return _libc() is not None and time.monotonic() - _last_trim >= TRIM_INTERVAL


def trim_when_idle() -> None:
    """Hand free heap pages back to the system (at most every TRIM_INTERVAL seconds): called when the last
    computation in flight ends, so resident memory returns to its baseline between bursts of load."""
    global _last_trim
    libc = _libc()
    if libc is None or not trim_due():
        return
    _last_trim = time.monotonic()
    libc.malloc_trim(0)


_pending: asyncio.TimerHandle | None = None


def trim_soon() -> None:
    """From the event loop: trim in a worker thread now, or, if one ran within TRIM_INTERVAL, once that has
    passed. A release that comes just after a trim would otherwise leave its pages resident until the next one."""
    global _pending
    if _libc() is None or _pending is not None:
        return
    loop = asyncio.get_running_loop()
    wait = TRIM_INTERVAL - (time.monotonic() - _last_trim)
    if wait <= 0:
        loop.run_in_executor(None, trim_when_idle)
        return

    def later() -> None:
        global _pending
        _pending = None
        trim_soon()

    _pending = loop.call_later(wait, later)
