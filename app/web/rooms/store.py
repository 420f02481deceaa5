"""Where rooms live: the Store protocol, and the store of one process (rooms in memory).

A store keeps a room's record (its presenter's key, as a hash, and its tour), the presenter's last state, the
votes of each scene's question (a student's random id → the choice) and each scene's suggested inputs, and
counts requests for the rate limits. It publishes a room's frames to every server's Hub (one process: at once)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

Deliver = Callable[[str, str], None]  # (room code, message) → the local connections of the room


@dataclass(frozen=True)
class RoomRecord:
    code: str
    key_hash: str  # sha-256 of the presenter's key: the key itself is only in the presenter's answer
    tour: str


@dataclass
class Suggestion:
    key: str  # the text folded (case, spaces): a duplicate merges into the first
    text: str
    count: int
    last: float  # when it was last suggested (newest first)


class Store(Protocol):
    async def start(self, deliver: Deliver) -> None: ...
    async def stop(self) -> None: ...
    async def create(self, room: RoomRecord, ttl: float) -> bool: ...
    async def get(self, code: str) -> RoomRecord | None: ...
    async def remove(self, code: str) -> None: ...
    async def touch(self, code: str, ttl: float) -> None: ...
    async def rooms(self) -> int | None: ...
    async def get_state(self, code: str) -> str | None: ...
    async def set_state(self, code: str, state: str) -> None: ...
    async def vote(self, code: str, scene: int, student: str, choice: int) -> dict[int, int]: ...
    async def votes(self, code: str, scene: int) -> dict[int, int]: ...
    async def suggest(self, code: str, scene: int, key: str, text: str, now: float) -> None: ...
    async def suggestions(self, code: str, scene: int) -> list[Suggestion]: ...
    async def drop(self, code: str, scene: int, key: str) -> None: ...
    async def hit(self, bucket: str, window: float) -> int: ...
    async def publish(self, code: str, message: str) -> None: ...


def tally(choices: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for c in choices:
        out[c] = out.get(c, 0) + 1
    return out


@dataclass
class _Room:
    record: RoomRecord
    expires: float
    state: str | None = None
    votes: dict[int, dict[str, int]] = field(default_factory=dict)
    suggestions: dict[int, dict[str, Suggestion]] = field(default_factory=dict)


class MemoryStore:
    """Rooms in this process's memory: right for one worker (with several, a room is only on the worker that
    opened it; UNROLLED_REDIS_URL shares them)."""

    def __init__(self) -> None:
        self._rooms: dict[str, _Room] = {}
        self._hits: dict[str, tuple[float, int]] = {}  # bucket → (window's end, count)
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def stop(self) -> None:
        self._deliver = None

    def _room(self, code: str) -> _Room | None:
        room = self._rooms.get(code)
        if room is not None and room.expires < time.monotonic():
            del self._rooms[code]
            return None
        return room

    async def create(self, room: RoomRecord, ttl: float) -> bool:
        if self._room(room.code) is not None:
            return False
        self._rooms[room.code] = _Room(room, time.monotonic() + ttl)
        return True

    async def get(self, code: str) -> RoomRecord | None:
        room = self._room(code)
        return room.record if room else None

    async def remove(self, code: str) -> None:
        self._rooms.pop(code, None)

    async def touch(self, code: str, ttl: float) -> None:
        if (room := self._room(code)) is not None:
            room.expires = time.monotonic() + ttl

    async def rooms(self) -> int | None:
        for code in list(self._rooms):
            self._room(code)  # the expired go
        return len(self._rooms)

    async def get_state(self, code: str) -> str | None:
        room = self._room(code)
        return room.state if room else None

    async def set_state(self, code: str, state: str) -> None:
        if (room := self._room(code)) is not None:
            room.state = state

    async def vote(self, code: str, scene: int, student: str, choice: int) -> dict[int, int]:
        room = self._room(code)
        if room is None:
            return {}
        room.votes.setdefault(scene, {})[student] = choice
        return tally(list(room.votes[scene].values()))

    async def votes(self, code: str, scene: int) -> dict[int, int]:
        room = self._room(code)
        return tally(list(room.votes.get(scene, {}).values())) if room else {}

    async def suggest(self, code: str, scene: int, key: str, text: str, now: float) -> None:
        if (room := self._room(code)) is None:
            return
        queue = room.suggestions.setdefault(scene, {})
        if key in queue:
            queue[key].count += 1
            queue[key].last = now
        else:
            queue[key] = Suggestion(key, text, 1, now)

    async def suggestions(self, code: str, scene: int) -> list[Suggestion]:
        room = self._room(code)
        return list(room.suggestions.get(scene, {}).values()) if room else []

    async def drop(self, code: str, scene: int, key: str) -> None:
        if (room := self._room(code)) is not None:
            room.suggestions.get(scene, {}).pop(key, None)

    async def hit(self, bucket: str, window: float) -> int:
        now = time.monotonic()
        if len(self._hits) > 10_000:  # forget the windows that ended (a scan now and then, not per request)
            self._hits = {b: v for b, v in self._hits.items() if v[0] > now}
        end, count = self._hits.get(bucket, (0.0, 0))
        if end <= now:
            end, count = now + window, 0
        self._hits[bucket] = (end, count + 1)
        return count + 1

    async def publish(self, code: str, message: str) -> None:
        if self._deliver is not None:
            self._deliver(code, message)
        await asyncio.sleep(0)
