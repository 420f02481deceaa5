"""Rooms in Redis (UNROLLED_REDIS_URL), for several workers or replicas: a room's record, state, votes and
suggestions are keys that expire with the room, and its frames travel by PUBLISH to every server, each of which
passes them on to its own students. The few commands needed are spoken here in RESP over asyncio streams
(https://redis.io/docs/latest/develop/reference/protocol-spec/), not through a client library.

Keys (P = unrolled:room:{code}): P a hash (key_hash, tour, state); P:votes:{scene} a hash student → choice;
P:sugg:{scene} a hash key → {"text", "last"} and P:suggn:{scene} key → count; unrolled:rate:{bucket} a counter
with the window as its expiry. Frames: the channel unrolled:live:{code}, read with one PSUBSCRIBE per server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import unquote, urlsplit

import orjson

from app.web.rooms.room import RoomError
from app.web.rooms.store import Deliver, RoomRecord, Suggestion

log = logging.getLogger("unrolled.rooms")

Reply = bytes | int | list["Reply"] | None
COMMAND_TIMEOUT = 10.0  # seconds for a connection or a reply: a Redis that stalls is an error, never a hang


class RedisError(RoomError):
    """An error reply, or a connection that failed: a 503 (a WebSocket's 4503) naming it, as any refused request."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "unavailable", f"the rooms' store (Redis) failed: {message}")


def encode(*args: str | bytes | int | float) -> bytes:
    """A command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


async def read_reply(reader: asyncio.StreamReader) -> Reply:
    line = await reader.readuntil(b"\r\n")
    prefix, rest = line[:1], line[1:-2]  # RESP's first byte says what follows
    if prefix == b"+":
        return rest
    if prefix == b"-":
        raise RedisError(rest.decode(errors="replace"))
    if prefix == b":":
        return int(rest)
    if prefix == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = await reader.readexactly(n + 2)
        return data[:-2]
    if prefix == b"*":
        n = int(rest)
        return None if n < 0 else [await read_reply(reader) for _ in range(n)]
    raise RedisError(f"unexpected reply {line[:40]!r}")


class Connection:
    """One connection, one command at a time (a lock): enough for a room's rate of commands."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(f"UNROLLED_REDIS_URL must be redis://host:port/db, not {url!r}")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.password = unquote(parts.password) if parts.password else None
        self.db = int(parts.path.strip("/") or 0)
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), COMMAND_TIMEOUT)
        for command in ([b"AUTH", self.password] if self.password else None, [b"SELECT", self.db] if self.db else None):
            if command:
                writer.write(encode(*command))
                await writer.drain()
                await asyncio.wait_for(read_reply(reader), COMMAND_TIMEOUT)
        return reader, writer

    async def call(self, *args: str | bytes | int | float) -> Reply:
        async with self._lock:
            for attempt in (1, 2):  # a connection that dropped (Redis restarted) is opened again, once
                try:
                    if self._streams is None:
                        self._streams = await self.open()
                    reader, writer = self._streams
                    writer.write(encode(*args))
                    await writer.drain()
                    return await asyncio.wait_for(read_reply(reader), COMMAND_TIMEOUT)
                except (OSError, asyncio.IncompleteReadError, TimeoutError) as e:
                    self.close()
                    if attempt == 2:
                        raise RedisError(f"Redis at {self.host}:{self.port}: {e}") from e
            raise AssertionError("unreachable")

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


def _int(reply: Reply) -> int:
    return reply if isinstance(reply, int) else 0


def _pairs(reply: Reply) -> dict[bytes, bytes]:
    items = reply if isinstance(reply, list) else []
    return {k: v for k, v in zip(items[::2], items[1::2], strict=True) if isinstance(k, bytes) and isinstance(v, bytes)}


class RedisStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.redis = Connection(url)
        self._listener: asyncio.Task[None] | None = None

    @staticmethod
    def key(code: str) -> str:
        return f"unrolled:room:{code}"

    async def start(self, deliver: Deliver) -> None:
        await self.redis.call("PING")  # a wrong URL fails the start, not the first room
        ready = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(deliver, ready))
        await asyncio.wait_for(ready.wait(), 10)

    async def _listen(self, deliver: Deliver, ready: asyncio.Event) -> None:
        """Every room's frames, from the one subscription of this server; again after a lost connection."""
        connection = Connection(self.url)
        while True:
            writer = None
            try:
                reader, writer = await connection.open()
                writer.write(encode("PSUBSCRIBE", "unrolled:live:*"))
                await writer.drain()
                await asyncio.wait_for(read_reply(reader), COMMAND_TIMEOUT)
                ready.set()
                while True:
                    message = await read_reply(reader)
                    if isinstance(message, list) and len(message) == 4 and message[0] == b"pmessage":
                        channel, data = message[2], message[3]
                        if isinstance(channel, bytes) and isinstance(data, bytes):
                            deliver(channel.decode().rsplit(":", 1)[1], data.decode())
            except asyncio.CancelledError:
                raise
            except (OSError, asyncio.IncompleteReadError, RedisError, TimeoutError) as e:
                log.warning("the rooms' subscription to Redis failed (%s); again in 1 s", e)
                await asyncio.sleep(1)
            finally:
                if writer is not None:
                    writer.close()

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        self.redis.close()

    async def create(self, room: RoomRecord, ttl: float) -> bool:
        k = self.key(room.code)
        if _int(await self.redis.call("HSETNX", k, "key_hash", room.key_hash)) != 1:
            return False
        await self.redis.call("HSET", k, "tour", room.tour)
        await self.redis.call("EXPIRE", k, int(ttl))
        return True

    async def get(self, code: str) -> RoomRecord | None:
        fields = _pairs(await self.redis.call("HGETALL", self.key(code)))
        if b"key_hash" not in fields or b"tour" not in fields:
            return None
        return RoomRecord(code, fields[b"key_hash"].decode(), fields[b"tour"].decode())

    async def remove(self, code: str) -> None:
        await self.redis.call("DEL", self.key(code))

    async def touch(self, code: str, ttl: float) -> None:
        await self.redis.call("EXPIRE", self.key(code), int(ttl))

    async def rooms(self) -> int | None:
        return None  # shared by every server: limited by the rate of openings per address instead

    async def get_state(self, code: str) -> str | None:
        reply = await self.redis.call("HGET", self.key(code), "state")
        return reply.decode() if isinstance(reply, bytes) else None

    async def set_state(self, code: str, state: str) -> None:
        await self.redis.call("HSET", self.key(code), "state", state)

    async def _expire_with_room(self, code: str, key: str) -> None:
        ttl = _int(await self.redis.call("TTL", self.key(code)))
        await self.redis.call("EXPIRE", key, max(ttl, 60))

    async def vote(self, code: str, scene: int, student: str, choice: int) -> dict[int, int]:
        k = f"{self.key(code)}:votes:{scene}"
        if _int(await self.redis.call("HSET", k, student, choice)) == 1:
            await self._expire_with_room(code, k)
        return await self.votes(code, scene)

    async def votes(self, code: str, scene: int) -> dict[int, int]:
        reply = await self.redis.call("HVALS", f"{self.key(code)}:votes:{scene}")
        out: dict[int, int] = {}
        for v in reply if isinstance(reply, list) else []:
            if isinstance(v, bytes):
                out[int(v)] = out.get(int(v), 0) + 1
        return out

    async def suggest(self, code: str, scene: int, key: str, text: str, now: float) -> None:
        texts, counts = f"{self.key(code)}:sugg:{scene}", f"{self.key(code)}:suggn:{scene}"
        old = await self.redis.call("HGET", texts, key)
        first = orjson.loads(old)["text"] if isinstance(old, bytes) else text  # a duplicate keeps the first text
        await self.redis.call("HSET", texts, key, orjson.dumps({"text": first, "last": now}))
        if _int(await self.redis.call("HINCRBY", counts, key, 1)) == 1:
            await self._expire_with_room(code, texts)
            await self._expire_with_room(code, counts)

    async def suggestions(self, code: str, scene: int) -> list[Suggestion]:
        texts = _pairs(await self.redis.call("HGETALL", f"{self.key(code)}:sugg:{scene}"))
        counts = _pairs(await self.redis.call("HGETALL", f"{self.key(code)}:suggn:{scene}"))
        out = []
        for k, v in texts.items():
            item = orjson.loads(v)
            out.append(Suggestion(k.decode(), item["text"], int(counts.get(k, b"1")), float(item["last"])))
        return out

    async def drop(self, code: str, scene: int, key: str) -> None:
        await self.redis.call("HDEL", f"{self.key(code)}:sugg:{scene}", key)
        await self.redis.call("HDEL", f"{self.key(code)}:suggn:{scene}", key)

    async def hit(self, bucket: str, window: float) -> int:
        k = f"unrolled:rate:{bucket}"
        count = _int(await self.redis.call("INCR", k))
        if count == 1:
            await self.redis.call("EXPIRE", k, max(1, int(window)))
        return count

    async def publish(self, code: str, message: str) -> None:
        await self.redis.call("PUBLISH", f"unrolled:live:{code}", message)
