"""Rooms (issue 27): POST /api/rooms opens one, GET /api/rooms/{code} finds it, /api/rooms/{code}/qr.svg draws
its join URL, /join/{code} is a student's page, and WebSocket /api/rooms/{code}/live carries the room.

The live protocol: the client's first frame is {"type": "join"} (a student) or {"type": "join", "key"} (the
presenter); the server answers {"type": "welcome", "role", "code", "tour", "state", "votes"?, "queue"?}. Then the
presenter sends {"type": "state", "state": {scene, step, phase, playing, speed, inputs}}, {"type": "reveal"},
{"type": "take" | "dismiss", "key"} and {"type": "close"}; a student sends {"type": "vote", "scene", "choice"} and
{"type": "suggest", "text"}. Students receive "state" and "reveal"; the presenter "tally" and "queue"; everyone
"closed". A frame over a limit is answered {"type": "refused", "message"}; a bad one {"type": "error", "error",
"message"} and a close with 4000 + the HTTP status (4400 not JSON, 4403 a student's presenter frame or a wrong
key, 4404 no such room, 4408 no join frame in time, 4422 invalid, 4429 too many unknown codes, 4503 room full
or its store unreachable)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, WebSocket
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect, WebSocketState

from app.tour.tours import NAME_RE, current_tours
from app.web.deps import SettingsDep, ZooDep
from app.web.rooms.hub import Member
from app.web.rooms.qr import QrCode
from app.web.rooms.room import JOIN_FRAMES, RoomError, Rooms, frame, parse
from app.web.routes.pages import not_found, page
from app.web.routes.stream import origin_allowed
from app.web.routes.tour import tour_payload
from app.web.schemas.models import ErrorBody

router = APIRouter(tags=["rooms"])

# What a room's REST routes answer besides success, each an ErrorBody naming the problem (app/web/errors.py)
FIND_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no room has that join code (it may have closed or expired)"},
    429: {"model": ErrorBody, "description": "too many unknown codes from this address: wait before trying again"},
    503: {"model": ErrorBody, "description": "the rooms' store (Redis) is unreachable"},
}
OPEN_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the body is not JSON in UTF-8"},
    404: {"model": ErrorBody, "description": "no such tour"},
    413: {"model": ErrorBody, "description": "the body is over max_body_bytes"},
    422: {"model": ErrorBody, "description": "the body is malformed or names no tour"},
    429: {"model": ErrorBody, "description": "this address opened room_openings rooms this hour"},
    503: {"model": ErrorBody, "description": "max_rooms are open, several workers without Redis, or Redis unreachable"},
}
pages = APIRouter(include_in_schema=False)


async def get_rooms(conn: HTTPConnection) -> Rooms:
    rooms: Rooms = conn.app.state.rooms
    return rooms


RoomsDep = Annotated[Rooms, Depends(get_rooms)]


def address(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "unknown"


class RoomRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tour: str | None = Field(None, max_length=64, description="the tour the room follows; default: the built-in one")


class RoomAnswer(BaseModel):
    code: str = Field(description="the join code students type (or scan)")
    key: str = Field(description="the presenter's key: only it drives the room; shown once, keep it")
    join_url: str
    tour: str
    expires_in: float = Field(description="seconds the room lives after the presenter's last action")


class RoomInfo(BaseModel):
    code: str
    tour: str
    join_url: str
    scenes: int


def join_url(request: Request, code: str) -> str:
    return str(request.base_url).rstrip("/") + f"/join/{code}"


@router.post("/api/rooms", status_code=201, responses=OPEN_ERRORS)
async def open_room(
    request: Request, rooms: RoomsDep, settings: SettingsDep, body: RoomRequest | None = None
) -> RoomAnswer:
    """Open a room on a tour: its join code, and the presenter's key (in this answer only)."""
    tour = body.tour if body else None
    if tour is not None and not NAME_RE.fullmatch(tour):
        raise RoomError(422, "invalid", f"tour: {tour[:64]!r} is not a tour name (a-z, 0-9, - and _)")
    record, key = await rooms.open(tour, address(request))  # a RoomError is its status (app/web/errors.py)
    return RoomAnswer(
        code=record.code,
        key=key,
        join_url=join_url(request, record.code),
        tour=record.tour,
        expires_in=settings.room_ttl,
    )


@router.get("/api/rooms/{code}", responses=FIND_ERRORS)
async def find_room(code: str, request: Request, rooms: RoomsDep) -> RoomInfo:
    """A room by its join code (unknown codes are rate-limited per address)."""
    record = await rooms.find(code, address(request))
    return RoomInfo(
        code=record.code, tour=record.tour, join_url=join_url(request, record.code), scenes=len(rooms.scenes(record))
    )


@router.get("/api/rooms/{code}/qr.svg", response_class=Response, responses=FIND_ERRORS)
async def room_qr(code: str, request: Request, rooms: RoomsDep) -> Response:
    """The room's join URL as a QR code (an SVG drawn here), for the projector."""
    record = await rooms.find(code, address(request))
    svg = QrCode(join_url(request, record.code)).svg()
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


@pages.get("/join/{code}", response_class=HTMLResponse)
async def join_page(code: str, request: Request, rooms: RoomsDep, zoo: ZooDep, settings: SettingsDep) -> HTMLResponse:
    """A student's page: the presenter's tour, followed live."""
    try:
        record = await rooms.find(code, address(request))
    except RoomError as e:
        if e.status == 404:
            return not_found(request, str(e))
        raise
    loaded = current_tours(settings.tour_dir).tours.get(record.tour)
    if loaded is None:
        return not_found(request, f"the room's tour {record.tour!r} is no longer installed")
    state = await rooms.state(record.code)
    payload = tour_payload(loaded, zoo)
    index = min(max(1, int(state["scene"])), len(payload["scenes"]))
    return page(
        request, "join.html", tour=payload, index=index, current=payload["scenes"][index - 1],
        others=[], room={"code": record.code, "role": "student"},
    )  # fmt: skip


async def refuse(ws: WebSocket, e: RoomError) -> None:
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        await ws.send_text(frame("error", error=e.error, message=str(e)))
        await ws.close(code=4000 + e.status, reason=e.error)


@router.websocket("/api/rooms/{code}/live")
async def live(ws: WebSocket, code: str) -> None:
    rooms: Rooms = ws.app.state.rooms
    settings = rooms.settings
    await ws.accept()
    member: Member | None = None
    record = None
    error: RoomError | None = None
    try:
        try:
            if not origin_allowed(ws.headers.get("origin"), ws.headers.get("host"), settings.cors_origins):
                raise RoomError(403, "forbidden_origin", "rooms are open to this server's own pages (and cors_origins)")
            record = await rooms.find(code, address(ws))
            try:
                raw = await asyncio.wait_for(ws.receive_text(), settings.request_timeout)
            except TimeoutError as e:
                raise RoomError(408, "timeout", f'send {{"type": "join"}} within {settings.request_timeout} s') from e
            join = parse(JOIN_FRAMES, raw)
            presenter = rooms.is_presenter(record, join.key)
            if rooms.hub.people(record.code) >= settings.room_max_people:
                raise RoomError(503, "full", f"the room holds {settings.room_max_people} people (room_max_people)")
            member = Member(ws, presenter, secrets.token_hex(8), settings.send_timeout)
            rooms.hub.join(record.code, member)
            member.push(await rooms.welcome(record, member))
            while True:
                raw = await ws.receive_text()
                if presenter:
                    await rooms.presenter_frame(record, raw)
                elif (refused := await rooms.student_frame(record, member, raw)) is not None:
                    member.push(frame("refused", message=refused))
        except RoomError as e:
            error = e
        except (WebSocketDisconnect, RuntimeError, KeyError):  # RuntimeError/KeyError: a binary frame, a closed socket
            if ws.client_state == WebSocketState.CONNECTED:
                error = RoomError(400, "malformed", "frames are JSON text")
        if error is not None and member is not None:  # after the frames on their way, by the member's sender
            await member.finish(frame("error", error=error.error, message=str(error)), 4000 + error.status, error.error)
        elif error is not None:
            await refuse(ws, error)
    finally:
        if member is not None and record is not None:
            rooms.hub.leave(record.code, member)
            await member.stop()
        if ws.client_state == WebSocketState.CONNECTED and ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, OSError):  # an error not foreseen above: closed all the same
                await ws.close(code=1011, reason="internal error")
