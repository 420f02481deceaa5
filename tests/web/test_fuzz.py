"""API fuzzing: schemathesis against the live OpenAPI schema, every check, hundreds of generated cases."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from schemathesis.core.warnings import SchemathesisWarning

from app.web.config import Settings
from tests.conftest import LiveServer

MIN_CASES = 500
TOKEN = "fuzz-admin-token"
# Every warning but two that DELETE /api/models/{id} raises by design: the zoo's models are read-only (403 with the
# token: "missing_auth"), and the fuzzer has no uploaded model to delete (404s: "missing_test_data").
WARNINGS = ",".join(
    sorted(
        set(SchemathesisWarning)
        - {SchemathesisWarning.MISSING_AUTH, SchemathesisWarning.MISSING_TEST_DATA, SchemathesisWarning.LOW_VALID_RATE}
    )
)  # fmt: skip (opt-in)
# A schema-valid upload is any bytes as weights and vocabulary: that they hold a model the schema cannot say, and a
# bad one is refused by name (422). Only for that operation is 422 an expected answer to schema-valid data, and
# mostly 422s no sign that the schema and the validation disagree (validation_mismatch).
# So is a WAV body: any bytes are schema-valid, and a clip that is no WAV is refused by name (422); the zoo here has
# no speech model, so the others answer 409 (or 404 for a made-up id). An image body (caption) likewise.
CONFIG = """
[[operations]]
include-path = "/api/models"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]
warnings = {}

[[operations]]
include-path-regex = "/transcribe$"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "404", "409", "413", "422"]
warnings = {}

[[operations]]
include-path-regex = "/caption$"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "404", "409", "413", "422"]
warnings = {}
""".format(*[[w for w in WARNINGS.split(",") if w != SchemathesisWarning.VALIDATION_MISMATCH]] * 3)


# A WAV or image body is bytes: schemathesis sends them as it sends application/octet-stream.
HOOKS = """
import schemathesis

for media_type in ("audio/wav", "audio/x-wav", "audio/wave", "image/png", "image/jpeg"):
    schemathesis.serializer.alias(media_type, "application/octet-stream")
"""


@pytest.fixture(scope="module")
def live_admin(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with an admin token, on a copy of the models: the upload and delete routes are fuzzed too (with
    the token; without it, the ignored_auth check sees them refused)."""
    models = tmp_path_factory.mktemp("fuzz-models")
    shutil.copytree(settings.models_dir, models, dirs_exist_ok=True)
    # the fuzzer opens a room per example, all from one address: the hourly limit (tested in tests/web/test_rooms.py)
    # would answer 429 to valid requests after 20
    rooms = {"UNROLLED_ROOM_OPENINGS": "100000", "UNROLLED_MAX_ROOMS": "100000"}
    with LiveServer(settings.model_copy(update={"models_dir": models}), UNROLLED_ADMIN_TOKEN=TOKEN, **rooms) as server:
        yield server


def test_schemathesis_finds_no_failure(live_admin: LiveServer, tmp_path: Path) -> None:
    # One worker: hypothesis parses source with CPython's ast, which is not thread-safe on 3.11.
    # A fixed seed makes a failure reproducible; run with another --seed (or none) to explore further.
    cmd = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{live_admin.url}/openapi.json",
           "--checks", "all", "--max-examples", "80", "--workers", "1", "--seed", "20261126",
           "--header", f"Authorization: Bearer {TOKEN}", "--warnings", WARNINGS]  # fmt: skip
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    cmd[1:1] = ["--config-file", str(tmp_path / "schemathesis.toml")]  # an option of schemathesis, before run
    (tmp_path / "fuzz_hooks.py").write_text(HOOKS)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "fuzz_hooks", "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600, env=env)
    out = result.stdout + result.stderr
    cases = re.search(r"(\d+) generated", out)
    assert cases is not None, out[-3000:]
    assert int(cases.group(1)) >= MIN_CASES, out[-3000:]
    assert result.returncode == 0 and "No issues found" in out, out[-6000:]
