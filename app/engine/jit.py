"""Numba's on-disk cache of compiled kernels: written where the process may write it, only read where it may not.

Compiled code in the cache is machine code the server loads and runs, so in the image the cache belongs to root
and the server's user can only read it: a compromised server cannot plant code for its next start. Numba itself
refuses a cache it cannot write (and would compile everything at each start-up, for seconds); here a cache that is
present but read-only is loaded all the same, and a kernel it lacks is compiled in memory and never saved.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import numba
from numba.core.caching import CompileResultCacheImpl, FunctionCache, UserProvidedCacheLocator

F = TypeVar("F", bound=Callable[..., Any])
Mode = Literal["write", "read", "off"]


def cache_mode(default_dir: Path) -> Mode:
    """How this process may use the cache: NUMBA_CACHE_DIR if set (as in the image), else beside the code."""
    folder = Path(os.environ.get("NUMBA_CACHE_DIR") or default_dir)
    if folder.is_dir():
        return "write" if os.access(folder, os.W_OK) else "read"
    return "write" if os.access(folder.parent, os.W_OK) else "off"


class _ReadOnlyLocator(UserProvidedCacheLocator):
    def ensure_cache_path(self) -> None:
        path = self._cache_path  # numba's own check writes a file here: only look
        if not os.path.isdir(path):
            raise OSError(f"no cache at {path}")


class _ReadOnlyImpl(CompileResultCacheImpl):
    _locator_classes = [_ReadOnlyLocator]  # noqa: RUF012 (numba's own attribute, read per instance)


class ReadOnlyCache(FunctionCache):
    _impl_class = _ReadOnlyImpl

    def save_overload(self, sig: Any, data: Any) -> None:
        pass  # never written: a kernel the cache lacks lives in this process's memory only


def njit(mode: Mode, **options: Any) -> Callable[[F], F]:
    """numba.njit with the cache used as `mode` allows (mode "read" needs NUMBA_CACHE_DIR, as in the image)."""

    def compile_lazily(fn: F) -> F:
        dispatcher = numba.njit(cache=mode == "write", **options)(fn)
        if mode == "read" and os.environ.get("NUMBA_CACHE_DIR"):
            with contextlib.suppress(RuntimeError):  # no cache folder for this source file: compiled at first use
                dispatcher._cache = ReadOnlyCache(fn)  # type: ignore[no-untyped-call]
        return cast(F, dispatcher)

    return compile_lazily
