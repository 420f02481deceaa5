"""Supply chain: every package the project and its tests run on is pinned, at the version installed, in the one
lock file that `make install` and the Dockerfile both use; weights are never unpickled."""

from __future__ import annotations

import re
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from app.web.config import ROOT


def pinned() -> dict[str, str]:
    lock = (ROOT / "requirements.lock").read_text().splitlines()
    pins = [line.split("==") for line in lock if line and not line.startswith("#")]
    return {canonicalize_name(name): version for name, version in pins}


def closure(root: str, extras: set[str]) -> set[str]:
    """The installed distributions `root[extras]` depends on, recursively."""
    seen: set[str] = set()
    todo = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        for spec in metadata.requires(name) or []:
            req = Requirement(spec)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in wanted | {""}):
                continue
            dep = canonicalize_name(req.name)
            if dep not in seen:
                seen.add(dep)
                todo.append((dep, set(req.extras)))
    return seen


def test_every_dependency_is_locked_at_the_installed_version() -> None:
    pins = pinned()
    needed = closure("unrolled", {"test"})
    assert {"torch", "fastapi", "numba", "schemathesis", "playwright"} <= needed
    missing = sorted(d for d in needed if d not in pins)
    assert not missing, f"not in requirements.lock: {missing} (run make lock)"
    wrong = {d: (pins[d], metadata.version(d)) for d in needed if pins[d] != metadata.version(d)}
    assert not wrong, f"locked vs installed: {wrong}"
    assert pins["torch"].endswith("+cpu")


def test_no_pickle_anywhere_in_the_app() -> None:
    # torch.load only with weights_only=True (people's own state dicts: tensors, never pickled code); no pickle.
    pattern = re.compile(r"torch\.load\((?![^)]*weights_only=True)|pickle\.load|import pickle|from pickle")
    offenders = [str(p) for p in (ROOT / "app").rglob("*.py") if pattern.search(p.read_text())]
    assert not offenders
