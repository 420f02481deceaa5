"""API fuzzing: schemathesis against the live OpenAPI schema, every check, hundreds of generated cases."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import LiveServer

MIN_CASES = 500


def test_schemathesis_finds_no_failure(live: LiveServer, tmp_path: Path) -> None:
    # One worker: hypothesis parses source with CPython's ast, which is not thread-safe on 3.11.
    # A fixed seed makes a failure reproducible; run with another --seed (or none) to explore further.
    cmd = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{live.url}/openapi.json",
           "--checks", "all", "--max-examples", "80", "--workers", "1", "--seed", "20261126"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    out = result.stdout + result.stderr
    cases = re.search(r"(\d+) generated", out)
    assert cases is not None, out[-3000:]
    assert int(cases.group(1)) >= MIN_CASES, out[-3000:]
    assert result.returncode == 0 and "No issues found" in out, out[-6000:]
