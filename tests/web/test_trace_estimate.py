"""A modern cell's request is admitted at what computing it takes: the estimate the server takes from its byte budget
before computing (a trace's, app/wire/token.py's estimate_working_bytes through the family's own job and stream
plan; the triangle's and the diff's, their routes') holds over the peak resident memory the real computation adds,
measured in a fresh process (VmHWM, reset just before it). The process allocates every block over 128 kB by mmap (a
fixed MALLOC_MMAP_THRESHOLD_), so that its peak is the computation's own bytes: with glibc's sliding threshold the
same trace peaked anywhere from 271 to 382 MB, what the heap kept of freed blocks, which is the allocator's slack
that the byte budget's bound allows beside it (tests/web/test_faults.py), not the computation's.

S6 sends H numbers a step but works on its whole D × N state (16 H), its BPTT in float64: counted by the numbers it
sends, a 2,000-step trace of a hidden-64 S6 was estimated at 11 MB and took 261 MB.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app.engine.card import LoadedModel
from app.engine.family import load_model
from app.engine.lab.diff import diff_ids
from app.engine.lab.jacobian import jacobian_norms
from app.engine.token.model import SeqModel
from app.web.config import ROOT, Settings
from app.web.families.base import TraceStream
from app.web.families.token import TokenWeb
from app.web.routes.jacobian import working_bytes
from app.web.routes.lab import diff_working_bytes
from app.web.schemas.models import StreamTraceRequest, TraceRequest
from app.wire.frames import dumps
from tests.conftest import LETTERS, write_model

HIDDEN = 64
CLEAR_REFS = Path("/proc/self/clear_refs")


def resident(field: str) -> int:
    """VmRSS or VmHWM (the peak since the last reset) of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def plan(loaded: LoadedModel, what: str, text: str) -> tuple[int, Callable[[], object]]:
    """(the server's estimate, the computation) of one request on `text`, as its route plans it: a trace's REST
    body or stream ("trace rest", "trace json", "trace binary"), the triangle ("jacobian") or the diff ("diff")."""
    settings = Settings(models_dir=Path("."))
    model = loaded.model
    assert isinstance(model, SeqModel)
    ids = loaded.vocab.encode(text).ids
    if what == "jacobian":
        estimate = working_bytes(len(ids), loaded.card.hidden_size, loaded.card.cell)
        return estimate, lambda: dumps(jacobian_norms(model, ids, 0, "frobenius").norms.numpy())
    if what == "diff":
        edited = [*ids[:3], ids[4], *ids[4:]]
        return diff_working_bytes(model, len(ids)), lambda: diff_ids(model, ids, edited).state_change.tolist()
    form = what.split()[1]
    if form == "rest":
        job = TokenWeb().trace_job(loaded, TraceRequest(text=text), settings)
        return job.estimate, job.work
    stream = TokenWeb().stream(loaded, StreamTraceRequest(text=text, encoding=form), settings)
    assert isinstance(stream, TraceStream)
    return stream.estimate, stream.wire


def probe(folder: str, model_id: str, what: str, steps: int) -> None:
    """In a fresh process: one request of `steps` random letters (see plan), printed as [peak resident rise,
    the server's estimate] in bytes."""
    loaded = load_model(Path(folder), model_id)
    text = "".join(random.Random(1).choice(LETTERS[1:]) for _ in range(steps))
    plan(loaded, what, text[:20])[1]()  # torch's and the app's one-off allocations, before the reset
    CLEAR_REFS.write_text("5")  # VmHWM := VmRSS
    before = resident("VmRSS")
    estimate, compute = plan(loaded, what, text)
    result = compute()
    peak = resident("VmHWM")
    del result
    print(json.dumps([peak - before, estimate]))


@pytest.mark.slow
@pytest.mark.skipif(not CLEAR_REFS.exists(), reason="reads Linux's peak resident memory")
@pytest.mark.parametrize(
    ("cell", "layers", "what", "steps"),
    [
        ("s6", 1, "trace rest", 2000),
        ("s6", 1, "trace binary", 2000),
        ("s6", 2, "trace json", 2000),
        ("mingru", 2, "trace rest", 2000),
        ("minlstm", 1, "trace binary", 2000),
        ("s6", 1, "jacobian", 300),  # jacobian_max_steps
        ("s6", 2, "diff", 2000),
        ("mingru", 1, "diff", 2000),
    ],
)
def test_the_estimate_of_a_modern_cells_request_holds_over_what_computing_it_takes(
    tmp_path: Path, cell: str, layers: int, what: str, steps: int
) -> None:
    model_id = f"chars-{cell}"
    write_model(tmp_path, model_id, cell, "next_token", layers=layers, hidden=HIDDEN)
    code = f"from tests.web.test_trace_estimate import probe; probe({str(tmp_path)!r}, {model_id!r}, {what!r}, {steps})"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "UNROLLED_TORCH_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "131072"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rise, estimate = json.loads(done.stdout.splitlines()[-1])
    mb = 1e-6
    assert rise <= estimate, f"computing it took {rise * mb:.0f} MB, estimated {estimate * mb:.0f} MB"
    # and it counts the state, not a blanket: what the estimate adds over the real is refused to other requests
    assert estimate <= 2 * rise, f"estimated {estimate * mb:.0f} MB for {rise * mb:.0f} MB"
