"""The compiled-kernel cache is used read-only where the server may not write it (the image: root's files, the
server's user), so that a compromised server cannot plant machine code for its next start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.web.config import ROOT

# Warms every kernel, then reports the cache mode and numba's own hit and miss counts over all of them.
PROBE = """
import json, numba
from app.engine.lab import jacobian
from app.engine import kernels
kernels.warm_up(); jacobian.warm_up()
hits = misses = 0
for module in (kernels, jacobian):
    for f in vars(module).values():
        if isinstance(f, numba.core.registry.CPUDispatcher):
            hits += sum(f.stats.cache_hits.values()); misses += sum(f.stats.cache_misses.values())
print(json.dumps({"mode": kernels.CACHE_MODE, "hits": hits, "misses": misses}))
"""


def probe(cache: Path) -> dict[str, object]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, check=True, text=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A cache folder, and the same folder mounted read-only (a read-only mount is read-only for root too)."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root (CI runs as root)")
    cache, view = tmp_path / "cache", tmp_path / "view"
    cache.mkdir()
    view.mkdir()
    subprocess.run(["mount", "--bind", str(cache), str(view)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
    try:
        yield cache, view
    finally:
        subprocess.run(["umount", str(view)], check=True)


def test_a_read_only_cache_is_loaded_and_never_written(read_only: tuple[Path, Path]) -> None:
    cache, view = read_only
    written = probe(cache)  # the build step: compiles and saves
    assert written["mode"] == "write" and written["misses"] and not written["hits"]
    saved = files(cache)
    loaded = probe(view)
    assert loaded["mode"] == "read" and loaded["hits"] and loaded["misses"] == 0  # all loaded, none compiled
    assert files(cache) == saved


def test_an_empty_read_only_cache_compiles_in_memory(read_only: tuple[Path, Path]) -> None:
    cache, view = read_only
    result = probe(view)
    assert result["mode"] == "read" and not result["hits"] and result["misses"]
    assert files(cache) == {}
