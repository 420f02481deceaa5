"""Rooms over HTTP and the live WebSocket (issue 27): a presenter's state reaches every student; only the
presenter's key drives the room; votes and suggestions are counted, merged and limited per student; every bad
input is a 4xx with a JSON message, or an error frame and a close with 4000 + that status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from app.tour.tours import BUILTIN_TOURS, DEFAULT_TOUR, load_tour
from app.web.app import create_app
from app.web.config import Settings
from app.web.rooms.hub import Member
from app.web.rooms.room import ALPHABET, CODE_RE, MISSES, SUGGESTIONS, VOTE_CHANGES
from app.web.rooms.store import MemoryStore, RoomRecord
from tests.conftest import run_coroutine

SCENES = load_tour(BUILTIN_TOURS / f"{DEFAULT_TOUR}.json").scenes
ASKS = next(i + 1 for i, s in enumerate(SCENES) if s.question is not None)  # the first scene with a question
CHOICES = len(SCENES[ASKS - 1].question.choices)  # type: ignore[union-attr]
SILENT = next(i + 1 for i, s in enumerate(SCENES) if i > 0 and s.question is None and s.view not in ("knobs", "train"))
LAB = next(i + 1 for i, s in enumerate(SCENES) if s.view == "knobs")
DEADLINE = 60.0  # seconds a test waits for a frame before it fails: a hang guard on a loaded machine, not a speed


def receive(ws: WebSocketTestSession) -> Any:
    """The next frame (WebSocketDisconnect on a close), or a failed test after DEADLINE: Starlette's session would
    wait forever for a frame the server never sends (a socket never closed hung CI once)."""

    async def next_message() -> Any:
        with anyio.fail_after(DEADLINE):
            return await ws._send_rx.receive()

    try:
        message = ws.portal.call(next_message)
    except TimeoutError:
        pytest.fail(f"no frame from the server in {DEADLINE} s", pytrace=False)
    ws._raise_on_close(message)
    return json.loads(message["text"])


def fresh_app(settings: Settings, **changes: Any) -> FastAPI:
    return create_app(settings.model_copy(update={"request_timeout": 1.0, **changes}))


@pytest.fixture(scope="module")
def rooms_client(settings: Settings) -> Iterator[TestClient]:
    """An app of its own (the rate limits count per app) that lets this module open many rooms."""
    with TestClient(fresh_app(settings, room_openings=1000)) as c:
        yield c


def open_room(client: TestClient) -> tuple[str, str]:
    r = client.post("/api/rooms", json={})
    assert r.status_code == 201, r.text
    return r.json()["code"], r.json()["key"]


OPEN: list[WebSocketTestSession] = []
WELCOMES: dict[int, dict[str, Any]] = {}  # id(session) → the welcome frame it was sent


@pytest.fixture(autouse=True)
def _leave() -> Iterator[None]:
    """Every session a test joined is left at its end (the app's shutdown waits for them)."""
    yield
    leave_all()


def leave_all() -> None:
    while OPEN:
        OPEN.pop().__exit__(None, None, None)


def join(client: TestClient, code: str, key: str | None = None) -> WebSocketTestSession:
    ws = client.websocket_connect(f"/api/rooms/{code}/live").__enter__()
    OPEN.append(ws)
    ws.send_json({"type": "join", "key": key} if key else {"type": "join"})
    welcome = receive(ws)
    assert welcome["type"] == "welcome", welcome
    WELCOMES[id(ws)] = welcome
    assert welcome["role"] == ("presenter" if key else "student")
    return ws


def until(
    ws: WebSocketTestSession, kind: str, where: Callable[[dict[str, Any]], bool] = lambda f: True
) -> dict[str, Any]:
    """The next frame of a kind (and condition): a presenter also receives the tallies and queues of each scene."""
    for _ in range(50):
        f: dict[str, Any] = receive(ws)
        if f["type"] == kind and where(f):
            return f
    raise AssertionError(f"no {kind} frame")


def closed_with(ws: WebSocketTestSession, status: int, error: str) -> str:
    """The error frame's message, after checking its name and that the socket closed with 4000 + status."""
    f = until(ws, "error")  # after any state, tally or queue frames already on their way
    assert f["error"] == error, f
    with pytest.raises(WebSocketDisconnect) as e:
        receive(ws)
    assert e.value.code == 4000 + status
    message: str = f["message"]
    return message


def state(scene: int, **fields: Any) -> dict[str, Any]:
    return {"type": "state", "state": {"scene": scene, **fields}}


def move(presenter: WebSocketTestSession, scene: int) -> None:
    """The presenter goes to another scene, and the room has it (the presenter is sent that scene's tally)."""
    presenter.send_json(state(scene))
    until(presenter, "tally", lambda f: f["scene"] == scene)


# ---- opening and finding a room ----


def test_a_room_answers_its_code_key_and_join_url(rooms_client: TestClient) -> None:
    r = rooms_client.post("/api/rooms", json={"tour": DEFAULT_TOUR})
    assert r.status_code == 201
    body = r.json()
    assert CODE_RE.fullmatch(body["code"])
    assert len(body["key"]) >= 32
    assert body["join_url"].endswith(f"/join/{body['code']}") and body["tour"] == DEFAULT_TOUR
    found = rooms_client.get(f"/api/rooms/{body['code'].lower()}")  # typed on a phone: the case does not matter
    assert found.status_code == 200
    assert found.json() == {
        "code": body["code"],
        "tour": DEFAULT_TOUR,
        "join_url": body["join_url"],
        "scenes": len(SCENES),
    }
    assert "key" not in found.text and body["key"] not in found.text


def test_the_join_page_and_the_qr_code_are_served(rooms_client: TestClient) -> None:
    code, _ = open_room(rooms_client)
    page = rooms_client.get(f"/join/{code}")
    assert page.status_code == 200 and f'"code": "{code}"' in page.text and '"role": "student"' in page.text
    qr = rooms_client.get(f"/api/rooms/{code}/qr.svg")
    assert qr.status_code == 200 and qr.headers["content-type"].startswith("image/svg+xml")


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"tour": "no-such-tour"}, 404, "the tours are: deep-learning-for-sequences"),
        ({"tour": "Not A Name!"}, 422, "is not a tour name"),
        ({"tour": 7}, 422, "tour"),
        ({"colour": "red"}, 422, "colour"),
    ],
)
def test_a_bad_room_request_is_a_4xx_naming_it(rooms_client: TestClient, body: Any, status: int, says: str) -> None:
    r = rooms_client.post("/api/rooms", json=body)
    assert r.status_code == status
    assert says in r.json()["message"] or says in str(r.json().get("detail")), r.json()


def test_a_body_that_is_not_json_is_a_422(rooms_client: TestClient) -> None:
    r = rooms_client.post("/api/rooms", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid"


@pytest.mark.parametrize("path", ["/api/rooms/ZZZZZZ", "/api/rooms/ZZZZZZ/qr.svg", "/api/rooms/%3Cscript%3E"])
def test_an_unknown_code_is_a_404_naming_it(rooms_client: TestClient, path: str) -> None:
    r = rooms_client.get(path)
    assert r.status_code == 404 and "no room has the join code" in r.json()["message"]


def test_an_unknown_join_page_is_the_not_found_page(rooms_client: TestClient) -> None:
    r = rooms_client.get("/join/ZZZZZZ")
    assert r.status_code == 404 and "no room has the join code" in r.text


def test_guessing_codes_is_refused_after_a_few_misses(settings: Settings) -> None:
    app = fresh_app(settings)
    with TestClient(app) as client:
        code, _ = open_room(client)
        answers = [client.get(f"/api/rooms/ZZZZZ{ch}").status_code for ch in ALPHABET[: MISSES + 1]]
        assert answers == [404] * MISSES + [429]
        r = client.get("/api/rooms/YYYYYY")
        assert r.status_code == 429 and "too many unknown join codes" in r.json()["message"]
        assert r.headers["retry-after"]
        with client.websocket_connect("/api/rooms/YYYYYY/live") as ws:
            closed_with(ws, 429, "too_many")
        assert client.get(f"/api/rooms/{code}").status_code == 200  # a student with the real code still gets in
        store = app.state.rooms.store
        assert isinstance(store, MemoryStore)
        assert store._hits and not any("testclient" in bucket for bucket in store._hits)  # a hash, not the address


def test_opening_rooms_is_limited_per_address(settings: Settings) -> None:
    with TestClient(fresh_app(settings)) as client:
        answers = [client.post("/api/rooms", json={}).status_code for _ in range(settings.room_openings + 1)]
        assert answers == [201] * settings.room_openings + [429]


def test_rooms_beyond_max_rooms_are_a_503(settings: Settings) -> None:
    with TestClient(fresh_app(settings, max_rooms=2)) as client:
        answers = [client.post("/api/rooms", json={}).status_code for _ in range(3)]
        assert answers == [201, 201, 503]


def test_several_workers_without_redis_open_no_room(settings: Settings) -> None:
    """Each worker would hold its own rooms: a student sent to another worker than the presenter's would not
    find the room, so none is opened, and the answer names the setting that shares them."""
    with TestClient(fresh_app(settings, workers=2)) as client:
        r = client.post("/api/rooms", json={})
        assert r.status_code == 503 and "UNROLLED_REDIS_URL" in r.json()["message"]


# ---- following the presenter ----


def test_every_student_follows_the_presenters_state(rooms_client: TestClient) -> None:
    code, key = open_room(rooms_client)
    presenter = join(rooms_client, code, key)
    students = [join(rooms_client, code) for _ in range(3)]
    sent = {"scene": 3, "step": 7, "phase": "backward", "playing": True, "speed": 4.0, "inputs": ["a typed input"]}
    presenter.send_json({"type": "state", "state": sent})
    for s in students:
        assert receive(s) == {"type": "state", "state": {**sent, "revealed": False}}
    late = join(rooms_client, code)  # a student who arrives later starts where the presenter is
    assert WELCOMES[id(late)]["state"] == {**sent, "revealed": False}
    assert 'data-scene="3"' in rooms_client.get(f"/join/{code}").text


def test_a_student_cannot_drive_the_room(rooms_client: TestClient) -> None:
    code, key = open_room(rooms_client)
    presenter = join(rooms_client, code, key)
    other = join(rooms_client, code)
    presenter.send_json(state(2, step=1))
    assert receive(other)["state"]["scene"] == 2
    for frame in (state(5), {"type": "reveal"}, {"type": "close"}, {"type": "take", "key": "x"}):
        student = join(rooms_client, code)
        student.send_json(frame)
        assert "only the presenter's key drives the room" in closed_with(student, 403, "not_presenter")
    presenter.send_json(state(3))
    assert receive(other)["state"]["scene"] == 3  # the student's frames reached no one; the presenter's did


def test_a_wrong_key_is_refused(rooms_client: TestClient) -> None:
    code, _ = open_room(rooms_client)
    _, other_key = open_room(rooms_client)
    with rooms_client.websocket_connect(f"/api/rooms/{code}/live") as ws:
        ws.send_json({"type": "join", "key": other_key})  # another room's key
        assert "not this room's presenter key" in closed_with(ws, 403, "wrong_key")


@pytest.mark.parametrize(
    ("first", "status", "error"),
    [
        ("hello", 400, "malformed"),
        ('{"type": "hello"}', 422, "invalid"),
        ('{"type": "join", "key": 7}', 422, "invalid"),
        ('{"type": "join", "name": "Ada"}', 422, "invalid"),
        ("[1, 2]", 422, "invalid"),
    ],
)
def test_a_bad_join_frame_is_an_error_frame_and_a_close(
    rooms_client: TestClient, first: str, status: int, error: str
) -> None:
    code, _ = open_room(rooms_client)
    with rooms_client.websocket_connect(f"/api/rooms/{code}/live") as ws:
        ws.send_text(first)
        closed_with(ws, status, error)


def test_a_binary_frame_is_refused(rooms_client: TestClient) -> None:
    code, _ = open_room(rooms_client)
    with rooms_client.websocket_connect(f"/api/rooms/{code}/live") as ws:
        ws.send_bytes(b"\x00\x01")
        closed_with(ws, 400, "malformed")


def test_no_join_frame_in_time_is_a_4408(rooms_client: TestClient) -> None:
    code, _ = open_room(rooms_client)
    with rooms_client.websocket_connect(f"/api/rooms/{code}/live") as ws:
        assert "within" in closed_with(ws, 408, "timeout")


def test_an_unknown_room_is_a_4404(rooms_client: TestClient) -> None:
    with rooms_client.websocket_connect("/api/rooms/QQQQQQ/live") as ws:
        closed_with(ws, 404, "not_found")


def test_another_sites_page_may_not_join(rooms_client: TestClient) -> None:
    code, _ = open_room(rooms_client)
    with rooms_client.websocket_connect(f"/api/rooms/{code}/live", headers={"origin": "https://evil.example"}) as ws:
        closed_with(ws, 403, "forbidden_origin")


@pytest.mark.parametrize(
    ("frame", "says"),
    [
        (state(len(SCENES) + 1), f"the tour has {len(SCENES)} scenes"),
        (state(0), "state.scene"),
        (state(2, step=-1), "state.step"),
        (state(2, phase="sideways"), "state.phase"),
        (state(2, speed=0), "state.speed"),
        (state(2, inputs=["a"] * 5), "state.inputs"),
        (state(2, inputs=["x" * 5001]), "state.inputs.0"),
        (state(2, colour="red"), "state.colour"),
        ({"type": "state"}, "state"),
        ({"type": "launch"}, "type"),
        ({"type": "take"}, "key"),
    ],
)
def test_a_bad_presenter_frame_is_a_4422_naming_it(rooms_client: TestClient, frame: Any, says: str) -> None:
    code, key = open_room(rooms_client)
    with rooms_client.websocket_connect(f"/api/rooms/{code}/live") as ws:
        ws.send_json({"type": "join", "key": key})
        receive(ws)
        ws.send_json(frame)
        assert says in closed_with(ws, 422, "invalid")


def test_revealing_a_scene_without_a_question_is_a_4422(rooms_client: TestClient) -> None:
    code, key = open_room(rooms_client)
    presenter = join(rooms_client, code, key)
    move(presenter, SILENT)
    presenter.send_json({"type": "reveal"})
    assert "asks no question" in closed_with(presenter, 422, "invalid")


def test_a_full_room_refuses_the_next_person(settings: Settings) -> None:
    with TestClient(fresh_app(settings, room_max_people=2)) as client:
        code, key = open_room(client)
        join(client, code, key), join(client, code)
        with client.websocket_connect(f"/api/rooms/{code}/live") as ws:
            ws.send_json({"type": "join"})
            closed_with(ws, 503, "full")
        leave_all()  # before this app's shutdown, which waits for them


def test_a_closed_room_tells_its_students_and_is_gone(rooms_client: TestClient) -> None:
    code, key = open_room(rooms_client)
    presenter, student = join(rooms_client, code, key), join(rooms_client, code)
    presenter.send_json({"type": "close"})
    assert receive(student)["type"] == "closed"
    assert rooms_client.get(f"/api/rooms/{code}").status_code == 404


# ---- predict, then reveal ----


def test_votes_are_counted_shown_to_the_presenter_and_revealed_to_all(rooms_client: TestClient) -> None:
    code, key = open_room(rooms_client)
    presenter = join(rooms_client, code, key)
    move(presenter, ASKS)
    students = [join(rooms_client, code) for _ in range(3)]
    for s, choice in zip(students, (1, 1, 0), strict=True):
        s.send_json({"type": "vote", "scene": ASKS, "choice": choice})
    tally = until(presenter, "tally", lambda f: sum(f["votes"].values()) == 3)
    assert tally == {"type": "tally", "scene": ASKS, "votes": {"1": 2, "0": 1}}
    students[2].send_json({"type": "vote", "scene": ASKS, "choice": 1})  # a change of mind replaces the vote
    assert until(presenter, "tally", lambda f: f["votes"] != {"1": 2, "0": 1})["votes"] == {"1": 3}
    presenter.send_json({"type": "reveal"})
    for s in students:
        assert until(s, "reveal") == {"type": "reveal", "scene": ASKS, "votes": {"1": 3}}
    late = join(rooms_client, code)  # a student who arrives after the reveal sees the count
    assert WELCOMES[id(late)]["votes"] == {"1": 3} and WELCOMES[id(late)]["state"]["revealed"]
    students[0].send_json({"type": "vote", "scene": ASKS, "choice": 0})
    assert until(students[0], "refused")["message"] == "the answer is out: votes are closed"


def test_a_student_may_change_a_vote_twice(rooms_client: TestClient) -> None:
    code, key = open_room(rooms_client)
    presenter = join(rooms_client, code, key)
    move(presenter, ASKS)
    student = join(rooms_client, code)
    for k in range(VOTE_CHANGES + 1):
        student.send_json({"type": "vote", "scene": ASKS, "choice": k % CHOICES})
    refused = until(student, "refused")
    assert refused["message"] == f"a student may vote {VOTE_CHANGES} times on a question"


def test_a_vote_for_another_scene_is_refused_and_one_out_of_range_closes(rooms_client: TestClient) -> None:
    code, key = open_room(rooms_client)
    presenter = join(rooms_client, code, key)
    move(presenter, SILENT)
    student = join(rooms_client, code)
    student.send_json({"type": "vote", "scene": SILENT, "choice": 0})
    assert until(student, "refused")["message"] == f"scene {SILENT} is not asking a question now"
    move(presenter, ASKS)
    student.send_json({"type": "vote", "scene": ASKS, "choice": CHOICES})
    assert f"the question has {CHOICES} choices" in closed_with(student, 422, "invalid")


@pytest.mark.parametrize(
    ("frame", "says"),
    [
        ({"type": "vote", "scene": 2, "choice": -1}, "choice"),
        ({"type": "vote", "scene": 2, "choice": "B"}, "choice"),
        ({"type": "vote", "scene": 2}, "choice"),
        ({"type": "suggest", "text": "x" * 201}, "text"),
        ({"type": "suggest", "text": "   "}, "a suggestion is not empty"),
        ({"type": "suggest", "text": "null\x00byte"}, "without control characters"),
        ({"type": "suggest", "text": "right\u202eto left"}, "without control characters"),
        ({"type": "suggest", "text": ["a"]}, "text"),
        ({"type": "suggest", "text": "ok", "name": "Ada"}, "name"),
    ],
)
def test_a_bad_student_frame_is_a_4422_naming_it(rooms_client: TestClient, frame: Any, says: str) -> None:
    code, _ = open_room(rooms_client)
    student = join(rooms_client, code)
    student.send_json(frame)
    assert says in closed_with(student, 422, "invalid")


# ---- suggested inputs ----


def test_suggestions_are_merged_newest_first_and_leave_the_queue_when_taken(rooms_client: TestClient) -> None:
    code, key = open_room(rooms_client)
    presenter = join(rooms_client, code, key)
    move(presenter, SILENT)
    a, b = join(rooms_client, code), join(rooms_client, code)

    def queue_of(suggested: int) -> list[dict[str, Any]]:
        """The presenter's queue once it counts that many suggestions."""
        frame = until(presenter, "queue", lambda f: sum(i["count"] for i in f["items"]) == suggested)
        items: list[dict[str, Any]] = frame["items"]
        return items

    a.send_json({"type": "suggest", "text": "A  terrible <b>film</b>"})
    queue_of(1)
    b.send_json({"type": "suggest", "text": "a lovely film"})
    queue_of(2)
    b.send_json({"type": "suggest", "text": "a TERRIBLE <b>film</b>  "})  # the same, typed otherwise: merged
    items = queue_of(3)
    assert [(i["text"], i["count"]) for i in items] == [("A terrible <b>film</b>", 2), ("a lovely film", 1)]
    presenter.send_json({"type": "take", "key": items[0]["key"]})
    assert [i["text"] for i in queue_of(1)] == ["a lovely film"]


def test_suggestions_are_limited_per_student_and_need_a_scene_that_reads_input(rooms_client: TestClient) -> None:
    code, key = open_room(rooms_client)
    presenter = join(rooms_client, code, key)
    move(presenter, LAB)
    student = join(rooms_client, code)
    student.send_json({"type": "suggest", "text": "hello"})
    assert until(student, "refused")["message"] == "this scene takes no input"
    move(presenter, SILENT)
    for k in range(SUGGESTIONS + 1):
        student.send_json({"type": "suggest", "text": f"input {k}"})
    assert until(student, "refused")["message"].startswith(f"a student may suggest {SUGGESTIONS} inputs")


# ---- the store ----


def test_a_room_expires() -> None:
    async def check() -> None:
        store = MemoryStore()
        assert await store.create(RoomRecord("ABCDEF", "h", DEFAULT_TOUR), ttl=0.05)
        assert not await store.create(RoomRecord("ABCDEF", "h2", DEFAULT_TOUR), ttl=60)  # a code is never reused
        assert await store.get("ABCDEF") is not None
        await asyncio.sleep(0.1)
        assert await store.get("ABCDEF") is None
        assert await store.rooms() == 0

    run_coroutine(check())


# ---- one connection's sender ----


class SlowReader:
    """A client's socket as a member sees it, read slowly: each frame takes a fifth of the send timeout."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.frames: list[str] = []
        self.closed: tuple[int, str | None] | None = None

    async def send_text(self, data: str) -> None:
        await asyncio.sleep(self.delay)
        self.frames.append(data)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = (code, reason)


def test_an_error_reaches_a_slow_reader_after_its_frames_and_then_the_close() -> None:
    """The frames on their way take longer than one send timeout in all (each well within it): the error frame
    still follows them and the socket is closed with its code (the old finish gave up after one send timeout and
    cancelled the sender: no error frame and a socket never closed)."""

    async def check() -> None:
        socket = SlowReader(delay=0.2)
        member = Member(socket, presenter=False, student="s", send_timeout=1.0)
        for k in range(8):
            member.push(f"state {k}")
        await asyncio.wait_for(member.finish("error", 4422, "invalid"), DEADLINE)
        member.push("too late")  # after the close, nothing more is queued
        await member.stop()
        assert socket.frames == [f"state {k}" for k in range(8)] + ["error"]
        assert socket.closed == (4422, "invalid")

    run_coroutine(check())
