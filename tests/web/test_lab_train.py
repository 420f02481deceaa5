"""Live training in the lab (WebSocket /api/lab/train, app/training/live.py) against a real uvicorn: the frames, stop,
a client that leaves, one run at a time, bad requests; the store of models trained live, and grad_ratio against
the float64 reference of app/training/tasks/memory.py."""

from __future__ import annotations

import asyncio
import math
import re
import signal
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import torch
from fastapi.testclient import TestClient
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from app.engine.card import LoadedModel
from app.engine.layers import Cell
from app.engine.token.generate import generate
from app.training.live import (
    BUDGET,
    CELLS,
    LESSON_N,
    LESSON_STEP_CAP,
    LESSON_STEPS,
    RECORDING,
    CellRun,
    LabModels,
    LabRequest,
    Training,
)
from app.training.tasks import memory
from app.web.app import create_app
from app.web.config import ROOT, Settings
from app.web.routes.lab_train import RETRY_MAX, Outbox, thin
from app.zoo.zoo import UnknownModel, Zoo
from tests.conftest import LiveServer

TOKEN = "lab-test-token"
ID = re.compile(r"lab-[0-9a-f]{8}-(rnn|lstm|gru)")
WAIT = 30.0  # a bound on every wait, so that a broken server fails the test instead of hanging it


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings, UNROLLED_ADMIN_TOKEN=TOKEN, UNROLLED_LAB_MAX_GAP="60") as live:
        yield live


def open_lab(live: LiveServer) -> ClientConnection:
    return connect(f"{live.ws_url}/api/lab/train", open_timeout=10)


def recv(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = orjson.loads(ws.recv(timeout=WAIT))
    return frame


def until_closed(ws: ClientConnection) -> tuple[list[dict[str, Any]], int | None]:
    frames = []
    try:
        while True:
            frames.append(recv(ws))
    except ConnectionClosed:
        pass
    return frames, ws.close_code


def running(live: LiveServer) -> float:
    for line in httpx.get(f"{live.url}/metrics").text.splitlines():
        if line.startswith("unrolled_computations_running "):
            return float(line.split()[1])
    raise AssertionError("no unrolled_computations_running gauge")


def wait_idle(live: LiveServer) -> None:
    deadline = time.monotonic() + WAIT
    while running(live) != 0:
        assert time.monotonic() < deadline, "the run's compute slot was not released"
        time.sleep(0.05)


def test_a_short_run_streams_each_cells_steps_and_its_models_open_everywhere(server: LiveServer) -> None:
    """Start, each cell's steps, done; then every trained model opens in the card, trace (final weights and the
    initial ones), Jacobian, diff, stream, model page and learning page, and cannot be deleted (not on disk)."""
    wait_idle(server)
    with open_lab(server) as ws:
        ws.send(orjson.dumps({"task": "memory", "n": 5, "cells": ["rnn", "lstm", "gru"], "seconds": 2}).decode())
        frames, code = until_closed(ws)
    start, steps, done = frames[0], frames[1:-1], frames[-1]
    assert start["type"] == "start" and re.fullmatch(r"[0-9a-f]{8}", start["run"])
    assert (start["task"], start["n"], start["cells"], start["seconds"]) == ("memory", 5, ["rnn", "lstm", "gru"], 2)
    assert start["batch_size"] > 0 and start["hidden_size"] > 0 and start["embed_size"] > 0
    assert start["lesson_steps"] is None and start["recording"] is None  # measured, and recorded, at N = 100 only
    assert code == 1000 and done["type"] == "done" and done["reason"] == "time"
    for cell in CELLS:
        mine = [f for f in steps if f["cell"] == cell]
        assert [f["step"] for f in mine] == list(range(1, len(mine) + 1))  # a reader this fast misses none
        assert len(mine) >= 2 and done["steps"][cell] == len(mine)
        for f in mine:
            assert f["type"] == "step" and math.isfinite(f["loss"]) and 0 <= f["accuracy"] <= 1
            assert f["grad_ratio"] is None or (math.isfinite(f["grad_ratio"]) and f["grad_ratio"] >= 0)
        assert [f["elapsed"] for f in mine] == sorted(f["elapsed"] for f in mine)
        assert done["models"][cell] == f"lab-{start['run']}-{cell}"
        assert 0 <= done["accuracy"][cell] <= 1
    assert {f["type"] for f in steps} == {"step"}

    with httpx.Client(base_url=server.url, timeout=WAIT) as http:
        for cell, model_id in done["models"].items():
            card = http.get(f"/api/models/{model_id}").json()
            assert (card["task"], card["cell"], card["kind"]) == ("memory", cell, "classify")
            assert "lab" in card["description"] and card["labels"] == list(memory.SYMBOLS)
            trace = http.post(f"/api/models/{model_id}/trace", json={"text": "E 31415 ?"})
            assert trace.status_code == 200, trace.text
            assert trace.json()["tokens"] == list("E31415?")
            page = http.get(f"/models/{model_id}")
            assert page.status_code == 200 and "text/html" in page.headers["content-type"] and model_id in page.text
            jacobian = http.post(f"/api/models/{model_id}/jacobian", json={"text": "E 31415 ?"})
            assert jacobian.status_code == 200 and len(jacobian.json()["norms"]) == 7, jacobian.text
            diff = http.post(f"/api/models/{model_id}/diff", json={"text": "E 31415 ?", "edited": "A 31415 ?"})
            assert diff.status_code == 200 and diff.json()["changed"] == [0], diff.text
            learning = http.get(f"/models/{model_id}/learning")
            assert learning.status_code == 200
            at_start = http.post(f"/api/models/{model_id}/trace", json={"text": "E 31415 ?", "checkpoint": "0"})
            assert at_start.status_code == 200, at_start.text
            # not on disk: the upload's DELETE says so instead of "does not exist"
            gone = http.delete(f"/api/models/{model_id}", headers={"Authorization": f"Bearer {TOKEN}"})
            assert gone.status_code == 409 and gone.json()["error"] == "lab_model"
        # this folder has no memory models: the lab's are listed, so that their task is there for their pages
        listed = {m["id"] for m in http.get("/api/models").json()["models"]}
        assert set(done["models"].values()) <= listed
        home = http.get("/")
        assert home.status_code == 200 and all(i in home.text for i in done["models"].values())
    with connect(f"{server.ws_url}/api/models/{done['models']['lstm']}/stream", open_timeout=10) as ws:
        ws.send(orjson.dumps({"text": "E 31415 ?"}).decode())
        assert recv(ws)["type"] == "meta"


def test_a_stop_frame_ends_the_run_with_reason_stopped(server: LiveServer) -> None:
    wait_idle(server)
    with open_lab(server) as ws:
        ws.send(orjson.dumps({"task": "memory", "n": 10, "cells": ["lstm"], "seconds": 60}).decode())
        assert recv(ws)["type"] == "start"
        while recv(ws)["type"] != "step":
            pass
        asked = time.monotonic()
        ws.send(orjson.dumps({"type": "stop"}).decode())
        frames, code = until_closed(ws)
        took = time.monotonic() - asked
    done = frames[-1]
    assert done["type"] == "done" and done["reason"] == "stopped" and code == 1000
    assert took < WAIT  # stopped, not run out (a bound, not a speed claim)
    assert set(done["models"]) == {"lstm"} and done["steps"]["lstm"] >= 1


@pytest.mark.parametrize("how", ["close", "drop"])
def test_a_run_stops_when_its_client_leaves(server: LiveServer, how: str) -> None:
    """A client that closes, or whose connection simply drops, ends the run (it asked for 60 s): the slot is free
    again, so the training thread has returned; a new run may start (one run at a time); the abandoned run stored
    no models."""
    wait_idle(server)
    with open_lab(server) as ws:
        ws.send(orjson.dumps({"task": "memory", "n": 20, "cells": ["rnn", "gru"], "seconds": 60}).decode())
        run = recv(ws)["run"]
        for _ in range(3):
            assert recv(ws)["type"] == "step"
        assert running(server) == 1
        if how == "drop":
            ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame: the TCP connection just ends
        else:
            ws.close()
    # the slot is released only once the training thread has returned
    wait_idle(server)
    with open_lab(server) as again:
        again.send(orjson.dumps({"task": "memory", "n": 2, "cells": ["rnn"], "seconds": 0.5}).decode())
        frames, code = until_closed(again)
    assert frames[0]["type"] == "start" and frames[-1]["type"] == "done" and code == 1000
    assert httpx.get(f"{server.url}/api/models/lab-{run}-rnn").status_code == 404


def test_a_client_that_closes_mid_run_and_reconnects_at_once_starts_a_new_run_five_times(server: LiveServer) -> None:
    """Leaving the training scene and coming back at once (issue 22, item 1): the run whose client left holds its
    slot until its thread has returned, within one step; the new request waits for it instead of being refused
    ("busy") or failing (500). Each reconnection gets a new run that streams steps, no error frame."""
    wait_idle(server)
    request = orjson.dumps({"task": "memory", "n": 60, "cells": ["rnn", "lstm", "gru"], "seconds": 60}).decode()
    runs = []
    for _ in range(5):
        with open_lab(server) as ws:
            ws.send(request)
            frames = [recv(ws) for _ in range(4)]
        # closed: the next connection opens at once
        assert [f["type"] for f in frames] == ["start", "step", "step", "step"], frames
        runs.append(frames[0]["run"])
    assert len(set(runs)) == 5
    wait_idle(server)


def test_a_run_trains_in_a_worker_thread_that_other_work_left_without_grad_mode() -> None:
    """Grad mode is per thread and the pool's threads also run inference: a run must not inherit it (it failed
    with "can't retain_grad" when a generation had left its thread in no_grad)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(torch.set_grad_enabled, False).result()
        training = Training("00000000", LabRequest("memory", 4, ("rnn",), 0.5), threading.Event(), lambda _: None)
        assert pool.submit(training.train).result() == "time"
        assert training.cells[0].steps >= 1 and not pool.submit(torch.is_grad_enabled).result()


def test_a_generation_stepped_from_several_threads_leaves_each_ones_grad_mode_alone(models_dir: Path) -> None:
    """A stream's generation steps in whichever pool thread is free: no step may leave no_grad on behind it."""
    loaded = Zoo.load(models_dir).get("chars-lstm")
    steps = generate(loaded.model, [1, 2, 3], 4, 0.0, 0)
    with ThreadPoolExecutor(1) as first, ThreadPoolExecutor(1) as second:
        first.submit(next, steps).result()
        second.submit(next, steps).result()
        assert first.submit(torch.is_grad_enabled).result() and second.submit(torch.is_grad_enabled).result()
        assert len(list(steps)) == 5  # and the rest still computes without gradients
    assert all(not s.probs.requires_grad for s in generate(loaded.model, [1, 2], 2, 0.0, 0))


def test_a_run_ends_when_the_server_shuts_down(settings: Settings) -> None:
    """SIGTERM during a 60 s run: the server exits long before the run would have ended, the run's thread stopped
    with it (the process waits for its threads), and the client sees the connection end."""
    live = LiveServer(settings, UNROLLED_SHUTDOWN_GRACE="1")
    with live, open_lab(live) as ws:
        ws.send(orjson.dumps({"task": "memory", "n": 20, "cells": ["lstm"], "seconds": 60}).decode())
        assert recv(ws)["type"] == "start" and recv(ws)["type"] == "step"
        assert live.proc is not None
        live.proc.terminate()
        assert live.proc.wait(timeout=WAIT) in (0, -signal.SIGTERM)  # uvicorn re-raises it once shut down
        with pytest.raises(ConnectionClosed):
            while True:
                recv(ws)


def test_one_run_at_a_time_a_second_is_refused_at_once(server: LiveServer) -> None:
    wait_idle(server)
    with open_lab(server) as first:
        first.send(orjson.dumps({"task": "memory", "n": 10, "cells": ["rnn"], "seconds": 60}).decode())
        assert recv(first)["type"] == "start"
        with open_lab(server) as second:
            second.send(orjson.dumps({"task": "memory", "n": 10, "cells": ["gru"], "seconds": 5}).decode())
            frames, code = until_closed(second)
        assert frames == [{"type": "error", "error": "busy", "message": frames[0]["message"], "retry_after": RETRY_MAX}]
        assert code == 4503 and "max_training_runs" in frames[0]["message"]  # of its 60 s, at most RETRY_MAX
        first.send(orjson.dumps({"type": "stop"}).decode())
        frames, code = until_closed(first)
        assert frames[-1]["type"] == "done" and code == 1000


def test_the_same_request_while_its_run_goes_watches_that_run_frame_for_frame(server: LiveServer) -> None:
    """A room opening the training scene: the second asker of the same request is shown the first's run (every
    frame from its start frame, then its done frame), not refused; it takes no compute slot of its own."""
    wait_idle(server)
    request = orjson.dumps({"task": "memory", "n": 10, "cells": ["rnn", "gru"], "seconds": 60, "steps": 200}).decode()
    with open_lab(server) as owner:
        owner.send(request)
        start = recv(owner)
        assert start["type"] == "start"
        seen = [start, recv(owner)]  # the run has taken a step: the watcher joins a run in flight
        with open_lab(server) as watcher:
            watcher.send(request)
            watched, code = until_closed(watcher)
        mine, owner_code = until_closed(owner)
    assert code == 1000 and owner_code == 1000
    assert watched == seen + mine  # the very frames the owner got, in order, the done frame with its models
    assert watched[0]["run"] == start["run"] and watched[-1]["type"] == "done"
    assert watched[-1]["steps"] == {"rnn": 200, "gru": 200} and set(watched[-1]["models"]) == {"rnn", "gru"}


def test_a_watcher_that_stops_stops_watching_and_the_run_goes_on(server: LiveServer) -> None:
    wait_idle(server)
    request = orjson.dumps({"task": "memory", "n": 10, "cells": ["lstm"], "seconds": 60, "steps": 400}).decode()
    with open_lab(server) as owner:
        owner.send(request)
        assert recv(owner)["type"] == "start"
        with open_lab(server) as watcher:
            watcher.send(request)
            assert recv(watcher)["type"] == "start"
            watcher.send(orjson.dumps({"type": "stop"}).decode())
            watched, code = until_closed(watcher)
        assert code == 1000 and watched[-1]["type"] == "done" and watched[-1]["reason"] == "stopped"
        assert watched[-1]["models"] == {}  # a watcher's stop trains nothing of its own
        mine, _ = until_closed(owner)
    assert mine[-1]["type"] == "done" and mine[-1]["reason"] == "steps" and mine[-1]["steps"] == {"lstm": 400}


def test_a_run_holds_a_compute_slot_for_long_work_and_is_refused_when_none_is_free(settings: Settings) -> None:
    """Two runs allowed, one slot for long work: the second run is refused at once (503), while small requests
    still find the other slot."""
    env = {"UNROLLED_MAX_CONCURRENT": "2", "UNROLLED_MAX_EXPENSIVE": "1", "UNROLLED_MAX_TRAINING_RUNS": "2"}
    with LiveServer(settings, **env) as live, open_lab(live) as first:
        first.send(orjson.dumps({"task": "memory", "n": 10, "cells": ["lstm"], "seconds": 60}).decode())
        assert recv(first)["type"] == "start"
        assert running(live) == 1
        with open_lab(live) as second:
            second.send(orjson.dumps({"task": "memory", "n": 10, "cells": ["rnn"], "seconds": 5}).decode())
            frames, code = until_closed(second)
        assert code == 4503 and frames[0]["error"] == "busy" and "compute slot" in frames[0]["message"]
        trace = httpx.post(f"{live.url}/api/models/chars-lstm/trace", json={"text": "hello"}, timeout=WAIT)
        assert trace.status_code == 200
        first.send(orjson.dumps({"type": "stop"}).decode())
        frames, code = until_closed(first)
        assert frames[-1]["type"] == "done" and code == 1000


GOOD: dict[str, Any] = {"task": "memory", "n": 5, "cells": ["rnn"], "seconds": 1}


@pytest.mark.parametrize(
    ("request_", "named"),
    [
        ({**GOOD, "n": 0}, "n:"),
        ({**GOOD, "n": 61}, "lab_max_gap"),
        ({**GOOD, "n": 2.5}, "n:"),
        ({**GOOD, "n": True}, "n:"),
        ({**GOOD, "seconds": 61}, "lab_max_seconds"),
        ({**GOOD, "seconds": 0}, "seconds:"),
        ({**GOOD, "seconds": "ten"}, "seconds:"),
        ({**GOOD, "cells": ["rnn", "transformer"]}, "cells:"),
        ({**GOOD, "cells": ["lstm", "lstm"]}, "cells:"),
        ({**GOOD, "cells": []}, "cells:"),
        ({**GOOD, "cells": "rnn"}, "cells:"),
        ({**GOOD, "task": "charlm"}, "task:"),
        ({k: v for k, v in GOOD.items() if k != "n"}, "n:"),
        ({**GOOD, "batch_size": 4096}, "batch_size:"),
        ({**GOOD, "steps": 0}, "steps:"),
        ({**GOOD, "steps": 2.5}, "steps:"),
        ([GOOD], "request:"),
        ("not json {", "request:"),
    ],
)
def test_a_bad_request_is_a_422_naming_its_field(server: LiveServer, request_: Any, named: str) -> None:
    with open_lab(server) as ws:
        ws.send(request_ if isinstance(request_, str) else orjson.dumps(request_).decode())
        frames, code = until_closed(ws)
    assert code == 4422 and len(frames) == 1
    assert frames[0]["type"] == "error" and frames[0]["error"] == "invalid" and named in frames[0]["message"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def trained() -> dict[str, LoadedModel]:
    """Three tiny models trained for a moment, as a run stores them."""
    training = Training("0badcafe", LabRequest("memory", 3, CELLS, 0.2), threading.Event(), lambda _: None)
    return training.finish(training.train()).models


def renamed(m: LoadedModel, model_id: str) -> LoadedModel:
    return LoadedModel(card=type(m.card)(**{**m.card.__dict__, "id": model_id}), vocab=m.vocab, model=m.model)


def test_lab_models_keep_the_newest_up_to_their_number(trained: dict[str, LoadedModel]) -> None:
    lab = LabModels(kept=4, ttl=60, clock=FakeClock())
    first = [renamed(trained["rnn"], f"lab-0000000{i}-rnn") for i in range(3)]
    lab.add(first)
    lab.add([renamed(trained["lstm"], "lab-00000009-lstm"), renamed(trained["gru"], "lab-00000009-gru")])
    assert list(lab.snapshot()) == ["lab-00000001-rnn", "lab-00000002-rnn", "lab-00000009-lstm", "lab-00000009-gru"]
    assert "lab-00000000-rnn" not in lab and len(lab) == 4


def test_lab_models_expire_after_their_ttl(trained: dict[str, LoadedModel]) -> None:
    clock = FakeClock()
    lab = LabModels(kept=12, ttl=100, clock=clock)
    lab.add([trained["rnn"]])
    clock.now += 60
    lab.add([trained["lstm"]])
    clock.now += 39.9
    assert set(lab.snapshot()) == {trained["rnn"].card.id, trained["lstm"].card.id}
    clock.now += 0.2  # the first is 100.1 s old, the second 40.1 s
    assert set(lab.snapshot()) == {trained["lstm"].card.id}
    clock.now += 60
    assert lab.snapshot() == {}


def test_the_zoo_serves_lab_models_by_id_and_lists_them_only_beside_no_model_of_their_task(
    trained: dict[str, LoadedModel],
) -> None:
    lab = {m.card.id: m for m in trained.values()}
    with_memory = Zoo({"memory-lstm": renamed(trained["lstm"], "memory-lstm")}).with_models(lab)
    assert [m.card.id for m in with_memory] == ["memory-lstm"] and len(with_memory) == 1
    for model_id in lab:
        assert with_memory.get(model_id) is lab[model_id]
    without = Zoo({}).with_models(lab)
    assert sorted(m.card.id for m in without) == sorted(lab)
    with pytest.raises(UnknownModel):
        Zoo({}).get(next(iter(lab)))


def test_beside_the_zoos_memory_models_lab_models_open_by_id_but_leave_its_lists_alone(
    settings: Settings, trained: dict[str, LoadedModel]
) -> None:
    """With the real zoo: the home page, /api/models and the compare page show the zoo's own memory models (a
    run's half-trained ones would otherwise take their place: "lab-…" sorts first); the lab's open by id."""
    with TestClient(create_app(settings.model_copy(update={"models_dir": ROOT / "models"}))) as http:
        http.app.state.lab_models.add(list(trained.values()))  # type: ignore[attr-defined]
        ids = [m.card.id for m in trained.values()]
        listed = [m["id"] for m in http.get("/api/models").json()["models"]]
        assert {"memory-rnn", "memory-lstm", "memory-gru"} <= set(listed) and not set(ids) & set(listed)
        for page in ("/", "/compare?task=memory"):
            text = http.get(page).text
            assert "memory-lstm" in text and not any(i in text for i in ids)
        for model_id in ids:
            assert http.get(f"/models/{model_id}").status_code == 200
            assert http.get(f"/api/models/{model_id}").json()["id"] == model_id


def test_thinning_keeps_every_other_frame_of_each_cell_and_its_newest() -> None:
    frames = [{"cell": c, "step": k} for k in range(1, 6) for c in ("rnn", "lstm")]
    kept = thin(frames)
    assert [(f["cell"], f["step"]) for f in kept] == [("rnn", 2), ("lstm", 2), ("rnn", 4), ("lstm", 4),
                                                      ("rnn", 5), ("lstm", 5)]  # fmt: skip


def in_own_loop(coro: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run in a thread of its own (Playwright's loop may be running in this one)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def produce(box: Outbox, steps: int) -> None:
    for k in range(1, steps + 1):
        for cell in ("rnn", "lstm"):
            box.put({"cell": cell, "step": k})


def test_the_outbox_passes_every_frame_in_order_to_a_reader_that_keeps_up() -> None:
    async def main() -> list[dict[str, Any]]:
        box = Outbox(asyncio.get_running_loop(), limit=100_000)
        got: list[dict[str, Any]] = []

        async def read() -> None:
            while (frames := await box.take()) is not None:
                got.extend(frames)

        reader = asyncio.create_task(read())
        await asyncio.to_thread(produce, box, 5000)
        box.close()
        await asyncio.wait_for(reader, WAIT)
        return got

    got = in_own_loop(main())
    assert got == [{"cell": c, "step": k} for k in range(1, 5001) for c in ("rnn", "lstm")]


def test_the_outbox_thins_what_a_reader_has_not_taken_and_keeps_each_cells_newest() -> None:
    async def main() -> tuple[list[dict[str, Any]], int]:
        box = Outbox(asyncio.get_running_loop(), limit=100)
        await asyncio.to_thread(produce, box, 1000)  # the trainer never waits: no one reads meanwhile
        box.close()
        got: list[dict[str, Any]] = []
        while (frames := await box.take()) is not None:
            got.extend(frames)
        return got, box.thinned

    got, thinned = in_own_loop(main())
    assert len(got) <= 100 and thinned == 2000 - len(got)
    for cell in ("rnn", "lstm"):
        steps = [f["step"] for f in got if f["cell"] == cell]
        assert steps == sorted(set(steps)) and steps[-1] == 1000 and len(steps) > 10


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("n", "gain"), [(4, 1.6), (30, 1.6), (100, 1.0)])
def test_grad_ratio_is_the_float64_references_over_the_batch(cell: Cell, n: int, gain: float) -> None:
    """A training step's ‖∂L/∂h_1‖/‖∂L/∂h_T‖ of the batch (Frobenius norms) from the per-sequence float64 norms
    of memory.hidden_grad_norms: a mean loss scales each sequence's gradient alike, so the ratio is
    √Σ‖∂L_b/∂h_1‖² / √Σ‖∂L_b/∂h_T‖². At N = 100 the plain RNN's, from its initial weights, is ~1e-26: the
    squares of its gradient's entries are below float32's range."""
    training = Training("00000000", LabRequest("memory", n, (cell,), 0.0), threading.Event(), lambda _: None)
    training.train()
    run = training.cells[0]
    with torch.no_grad():  # recurrent weights away from the initial ones, so the ratio is not a special case
        for p in run.model.rnn.parameters():
            p.mul_(gain)
    ids, labels = memory.sequences(np.random.default_rng(0), BUDGET.batch_size, n)
    rows = zip(ids, labels, strict=True)
    norms = [memory.hidden_grad_norms(run.model, row.tolist(), int(label)) for row, label in rows]
    want = math.sqrt(sum(g[0] ** 2 for g in norms)) / math.sqrt(sum(g[-1] ** 2 for g in norms))
    got = run.step(torch.from_numpy(ids), torch.from_numpy(labels))[2]
    assert got is not None and got == pytest.approx(want, rel=1e-4, abs=0)
    if cell == "rnn" and n == 100:
        assert want < 1e-20


class StepClock:
    """Time that moves on only when read: a run of a fixed number of steps whatever the machine's speed."""

    def __init__(self, tick: float) -> None:
        self.now = 0.0
        self.tick = tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_a_run_with_a_step_cap_ends_when_every_cell_has_taken_it() -> None:
    frames: list[dict[str, Any]] = []
    training = Training("00000000", LabRequest("memory", 4, CELLS, 600.0, steps=3), threading.Event(), frames.append)
    assert training.train() == "steps"
    assert {cell: [f["step"] for f in frames if f["cell"] == cell] for cell in CELLS} == {c: [1, 2, 3] for c in CELLS}


def test_each_step_frame_names_the_gap_of_the_batch_it_trained_on() -> None:
    """The frame's gap is the number of digits between the letter and the '?' in the batch the step trained on
    (its loss is that batch's, as a model stepped on the run's batches in turn gives it): one batch in ten or so
    is short (1-3), the others have the chosen N."""
    n = 30
    frames: list[dict[str, Any]] = []
    training = Training("00000000", LabRequest("memory", n, ("gru",), 1.0), threading.Event(), frames.append,
                        clock=StepClock(1 / 120))  # fmt: skip
    training.train()
    assert len(frames) >= 30
    again = CellRun.start("gru")
    for frame, (_, ids, labels) in zip(frames, Training("x", training.request, threading.Event(), frames.append)
                                       .batches(), strict=False):  # fmt: skip
        digits = ids[:, 1:-1]
        assert bool(((digits >= min(memory.DIGIT_IDS)) & (digits <= max(memory.DIGIT_IDS))).all())
        assert bool((ids[:, -1] == memory.QUERY_ID).all())
        assert frame["gap"] == digits.shape[1]
        assert frame["loss"] == pytest.approx(again.step(ids, labels)[0], rel=1e-5)
    gaps = [f["gap"] for f in frames]
    assert n in gaps and any(1 <= g <= 3 for g in gaps) and set(gaps) <= {1, 2, 3, n}


RECORDED = ROOT / "models" / RECORDING


def recorded_frames() -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    rec = orjson.loads(RECORDED.read_bytes())
    cells = rec["start"]["cells"]
    steps = [dict(zip(rec["columns"], row, strict=True)) for row in rec["rows"]]
    for f in steps:
        f["cell"] = cells[f["cell"]]
    return rec["start"], steps, rec["done"]


def test_the_recorded_run_is_this_codes_run_at_the_lessons_gap_with_each_batchs_gap() -> None:
    """The committed recording (`unrolled lab-record`) is a run of this code: the lesson's gap, all three cells,
    every cell's steps in order on the run's own batches (each row's gap is its batch's), done with each cell's
    held-out accuracy; and it shows the lesson the tour's caption claims on the long-gap batches, by LESSON_STEPS:
    the GRU and the LSTM have learned the letter, the RNN is near chance (1 in 8)."""
    start, steps, done = recorded_frames()
    assert (start["n"], start["cells"], start["lesson_steps"]) == (LESSON_N, list(CELLS), LESSON_STEPS)
    training = Training("x", LabRequest("memory", LESSON_N, CELLS, start["seconds"]), threading.Event(), print)
    batches = training.batches()
    for cell in CELLS:
        mine = [f for f in steps if f["cell"] == cell]
        assert [f["step"] for f in mine] == list(range(1, len(mine) + 1)) and done["steps"][cell] == len(mine)
        assert len(mine) >= LESSON_STEPS  # the lesson is reached
    gaps = [next(batches)[0] for _ in range(max(done["steps"].values()))]
    assert all(f["gap"] == gaps[f["step"] - 1] for f in steps)
    assert [f["elapsed"] for f in steps] == sorted(f["elapsed"] for f in steps)

    def accuracy_near_the_lesson(cell: str) -> float:
        """The mean batch accuracy over its long-gap batches of the 100 steps up to LESSON_STEPS."""
        mine = [float(f["accuracy"]) for f in steps if f["cell"] == cell and f["gap"] == LESSON_N
                and LESSON_STEPS - 100 < f["step"] <= LESSON_STEPS]  # fmt: skip
        return sum(mine) / len(mine)

    assert accuracy_near_the_lesson("gru") > 0.9 and accuracy_near_the_lesson("lstm") > 0.5
    assert accuracy_near_the_lesson("rnn") < 0.25 and done["accuracy"]["gru"] > 0.9
    # capped at the tour's steps, the run ends on the lesson too: the held-out table the page shows at the end
    assert start["steps"] == LESSON_STEP_CAP and done["reason"] == "steps"
    assert set(done["steps"].values()) == {LESSON_STEP_CAP}
    assert done["accuracy"]["rnn"] < 0.3 < done["accuracy"]["lstm"] and done["accuracy"]["lstm"] > 0.5


def test_the_recording_is_served_where_it_is_and_a_404_naming_the_command_where_it_is_not(
    settings: Settings,
) -> None:
    with TestClient(create_app(settings.model_copy(update={"models_dir": ROOT / "models"}))) as http:
        got = http.get("/api/lab/recording")
        assert got.status_code == 200 and got.json() == orjson.loads(RECORDED.read_bytes())
    with TestClient(create_app(settings)) as http:
        got = http.get("/api/lab/recording")
        assert got.status_code == 404 and "unrolled lab-record" in got.json()["message"]
