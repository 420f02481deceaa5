"""The people of each room connected to this server, and the frames passed on to them.

A message published to a room (by this server or, through Redis, by another) starts with its audience: "A" all,
"P" the presenter's pages, "S" the students'. Each connection has a small outbox and one task that sends it: a
student that reads slowly loses its oldest frames (a newer state replaces them), never the room's time."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Protocol

OUTBOX = 32  # frames waiting for one connection; beyond, the oldest go


class Socket(Protocol):
    """What a member needs of its WebSocket (Starlette's): to send a text frame and to close."""

    async def send_text(self, data: str) -> None: ...
    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class Member:
    """One connection of a room: a presenter's page or a student's."""

    def __init__(self, ws: Socket, presenter: bool, student: str, send_timeout: float) -> None:
        self.ws = ws
        self.presenter = presenter
        self.student = student  # a random id for this connection's votes: nothing about the person
        self.outbox: deque[str] = deque(maxlen=OUTBOX)
        self.wake = asyncio.Event()
        self.send_timeout = send_timeout
        self.votes: dict[int, int] = {}  # scene → how many times this connection voted on it
        self.suggested: deque[float] = deque()  # when it suggested, within the window
        self.closing: tuple[int, str] | None = None  # (code, reason): close once the outbox is sent
        self.sender = asyncio.create_task(self._send())

    def push(self, frame: str) -> None:
        if self.closing is None:  # after the last frame (an error), nothing: it stays the last the client reads
            self.outbox.append(frame)
            self.wake.set()

    async def _send(self) -> None:
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while self.outbox:
                    await asyncio.wait_for(self.ws.send_text(self.outbox.popleft()), self.send_timeout)
                if self.closing is not None:
                    await self.ws.close(code=self.closing[0], reason=self.closing[1])
                    return
        except (TimeoutError, RuntimeError, OSError):
            with contextlib.suppress(RuntimeError, OSError):
                await self.ws.close(code=1008, reason="not reading")

    async def finish(self, frame: str, code: int, reason: str) -> None:
        """A last frame (an error) after those waiting, then the close; never cut into a frame being sent.

        The sender gives each frame send_timeout, so it is done within that per frame waiting (it closes the
        socket itself, with 1008, on a client that stops reading). Only past that bound is it cancelled, and the
        socket closed here: a member's socket is closed whatever its client does."""
        if self.closing is None:
            self.outbox.append(frame)
            self.closing = (code, reason)
            self.wake.set()
        bound = self.send_timeout * (len(self.outbox) + 2)  # every frame, and the close
        await asyncio.wait({self.sender}, timeout=bound)  # waits without cancelling it, nor raising
        if not self.sender.done():
            await self.stop()
            with contextlib.suppress(RuntimeError, OSError):
                await self.ws.close(code=code, reason=reason)

    async def stop(self) -> None:
        self.sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.sender


class Hub:
    def __init__(self) -> None:
        self.rooms: dict[str, set[Member]] = {}

    def join(self, code: str, member: Member) -> None:
        self.rooms.setdefault(code, set()).add(member)

    def leave(self, code: str, member: Member) -> None:
        members = self.rooms.get(code)
        if members is not None:
            members.discard(member)
            if not members:
                del self.rooms[code]

    def people(self, code: str) -> int:
        return len(self.rooms.get(code, ()))

    def deliver(self, code: str, message: str) -> None:
        """A room's message, to its connections on this server that are its audience."""
        audience, frame = message[:1], message[1:]
        for m in self.rooms.get(code, ()):
            if audience == "A" or (audience == "P") == m.presenter:
                m.push(frame)
