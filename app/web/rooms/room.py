"""A room's rules: join codes and keys, the frames each side may send, the limits, and what each frame does.

Only the presenter's key drives a room (its state, the reveal, the queue). Join codes are 6 characters of 31
(8.9 × 10⁸ codes) and an address may miss 20 times in 10 minutes: guessing a room takes years. A student may vote
once on a scene's question (and change it twice) until the reveal, and suggest 5 inputs in 10 minutes, each at
most 200 characters. Nothing personal is stored: a connection's votes are kept under a random id, addresses only
as a hash inside the rate limits' counters, for their window."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import unicodedata
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from app.tour.tours import LAB_VIEWS, Scene, current_tours
from app.web.config import Settings
from app.web.rooms.hub import Hub, Member
from app.web.rooms.store import RoomRecord, Store

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read off a projector and typed on a phone
CODE_LENGTH = 6
CODE_RE = re.compile(f"[{ALPHABET}]{{{CODE_LENGTH}}}")
MISSES, MISS_WINDOW = 20, 600.0  # unknown codes an address may try per window
OPENING_WINDOW = 3600.0  # an address may open settings.room_openings rooms per window
VOTE_CHANGES = 3  # votes per student per question: the first and two changes of mind
SUGGESTIONS, SUGGESTION_WINDOW = 5, 600.0  # inputs a student may suggest per window
MAX_SUGGESTION = 200  # characters
QUEUE_SHOWN = 30  # the newest suggestions the presenter is sent


class RoomError(Exception):
    """A request a room refuses: its HTTP status (a WebSocket closes with 4000 + it), a name and why."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def address_bucket(kind: str, address: str) -> str:
    """A rate limit's counter for an address: a hash, not the address."""
    return f"{kind}:{hashlib.sha256(address.encode()).hexdigest()[:24]}"


def fold(text: str) -> str:
    """A suggestion as duplicates share it: case and runs of spaces do not count."""
    return " ".join(text.casefold().split())


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FollowState(Strict):
    """What a student's page follows: the presenter's scene, input, cursor and play."""

    scene: int = Field(ge=1, le=100)
    step: int = Field(0, ge=0, le=1_000_000, description="the cursor's step, from 0")
    phase: Literal["forward", "backward"] = "forward"
    playing: bool = False
    speed: float = Field(8.0, gt=0, le=480)
    inputs: list[Annotated[str, Field(max_length=5000)]] = Field(default_factory=list, max_length=4)


class JoinFrame(Strict):
    type: Literal["join"]
    key: str | None = Field(None, max_length=200)


class StateFrame(Strict):
    type: Literal["state"]
    state: FollowState


class RevealFrame(Strict):
    type: Literal["reveal"]


class QueueFrame(Strict):
    type: Literal["take", "dismiss"]
    key: str = Field(max_length=2 * MAX_SUGGESTION)


class CloseFrame(Strict):
    type: Literal["close"]


class VoteFrame(Strict):
    type: Literal["vote"]
    scene: int = Field(ge=1, le=100)
    choice: int = Field(ge=0, le=5)


class SuggestFrame(Strict):
    type: Literal["suggest"]
    text: str = Field(max_length=MAX_SUGGESTION)


PresenterFrame = Annotated[StateFrame | RevealFrame | QueueFrame | CloseFrame, Field(discriminator="type")]
StudentFrame = Annotated[VoteFrame | SuggestFrame, Field(discriminator="type")]
JOIN_FRAMES: TypeAdapter[JoinFrame] = TypeAdapter(JoinFrame)
PRESENTER_FRAMES: TypeAdapter[PresenterFrame] = TypeAdapter(PresenterFrame)
STUDENT_FRAMES: TypeAdapter[StudentFrame] = TypeAdapter(StudentFrame)
PRESENTER_ONLY = {"state", "reveal", "take", "dismiss", "close"}


def parse(adapter: TypeAdapter[Any], raw: str) -> Any:
    """A frame, or a 4422 naming what is wrong with it (4400 if it is not JSON)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise RoomError(400, "malformed", f"a frame is one JSON object: {e}") from e
    try:
        return adapter.validate_python(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = list(first["loc"])
        if loc and isinstance(data, dict) and loc[0] == data.get("type"):
            loc = loc[1:]  # the union's tag: "state.inputs.0", not "state.state.inputs.0"
        where = ".".join(str(p) for p in loc) or "frame"
        raise RoomError(422, "invalid", f"{where}: {first['msg']}") from e


def frame(kind: str, **fields: Any) -> str:
    return orjson.dumps({"type": kind, **fields}, option=orjson.OPT_NON_STR_KEYS).decode()  # votes: choice → count


class Rooms:
    """The rooms of this server: the store (memory or Redis) and the hub of its connections."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.hub = Hub()

    async def start(self) -> None:
        await self.store.start(self.hub.deliver)

    async def stop(self) -> None:
        await self.store.stop()

    def scenes(self, record: RoomRecord) -> list[Scene]:
        loaded = current_tours(self.settings.tour_dir).tours.get(record.tour)
        return loaded.tour.scenes if loaded else []

    async def open(self, tour: str | None, address: str) -> tuple[RoomRecord, str]:
        tours = current_tours(self.settings.tour_dir)
        loaded = tours.tours.get(tour) if tour else tours.default()
        if loaded is None:
            known = ", ".join(tours.tours) or "none"
            raise RoomError(404, "not_found", f"no tour {tour!r}; the tours are: {known}")
        if self.settings.workers > 1 and self.settings.redis_url is None:  # a room on one worker is lost to the rest
            raise RoomError(
                503, "no_store", "with several workers (UNROLLED_WORKERS) rooms live in Redis: set UNROLLED_REDIS_URL"
            )
        most = self.settings.room_openings
        if await self.store.hit(address_bucket("open", address), OPENING_WINDOW) > most:
            raise RoomError(429, "too_many", f"an address may open {most} rooms an hour (room_openings)")
        rooms = await self.store.rooms()
        if rooms is not None and rooms >= self.settings.max_rooms:
            raise RoomError(503, "busy", f"{rooms} rooms are open (max_rooms); one expires or closes first")
        key = secrets.token_urlsafe(24)
        for _ in range(8):
            record = RoomRecord(new_code(), hash_key(key), loaded.name)
            if await self.store.create(record, self.settings.room_ttl):
                initial = FollowState(scene=1)
                await self.store.set_state(record.code, initial.model_dump_json())
                return record, key
        raise RoomError(503, "busy", "no free join code was found; try again")

    async def find(self, code: str, address: str) -> RoomRecord:
        """The room of a join code; an address that tries too many unknown codes is refused for a while."""
        bucket = address_bucket("miss", address)
        normal = code.strip().upper()
        record = await self.store.get(normal) if CODE_RE.fullmatch(normal) else None
        if record is None:
            if await self.store.hit(bucket, MISS_WINDOW) > MISSES:
                raise RoomError(
                    429,
                    "too_many",
                    f"too many unknown join codes from this address; wait {MISS_WINDOW / 60:.0f} minutes",
                )
            raise RoomError(
                404,
                "not_found",
                f"no room has the join code {code[:12]!r}: check it on the projector (it may have closed)",
            )
        return record

    def is_presenter(self, record: RoomRecord, key: str | None) -> bool:
        if key is None:
            return False
        if not hmac.compare_digest(hash_key(key), record.key_hash):
            raise RoomError(403, "wrong_key", "that is not this room's presenter key")
        return True

    async def state(self, code: str) -> dict[str, Any]:
        raw = await self.store.get_state(code)
        state: dict[str, Any] = orjson.loads(raw) if raw else {**FollowState(scene=1).model_dump(), "revealed": False}
        return state

    async def welcome(self, record: RoomRecord, member: Member) -> str:
        state = await self.state(record.code)
        extra: dict[str, Any] = {}
        if member.presenter or state.get("revealed"):
            extra["votes"] = await self.store.votes(record.code, state["scene"])
        if member.presenter:
            extra["queue"] = await self.queue(record.code, state["scene"])
        return frame(
            "welcome",
            role="presenter" if member.presenter else "student",
            code=record.code,
            tour=record.tour,
            state=state,
            **extra,
        )

    async def queue(self, code: str, scene: int) -> list[dict[str, Any]]:
        items = sorted(await self.store.suggestions(code, scene), key=lambda s: -s.last)[:QUEUE_SHOWN]
        return [{"key": s.key, "text": s.text, "count": s.count} for s in items]

    async def publish_queue(self, code: str, scene: int) -> None:
        await self.store.publish(code, "P" + frame("queue", scene=scene, items=await self.queue(code, scene)))

    async def presenter_frame(self, record: RoomRecord, raw: str) -> None:
        f = parse(PRESENTER_FRAMES, raw)
        code = record.code
        scenes = self.scenes(record)
        old = await self.state(code)
        await self.store.touch(code, self.settings.room_ttl)
        if isinstance(f, StateFrame):
            if f.state.scene > len(scenes):
                raise RoomError(422, "invalid", f"state.scene: the tour has {len(scenes)} scenes, not {f.state.scene}")
            moved = f.state.scene != old["scene"]
            state = {**f.state.model_dump(), "revealed": False if moved else bool(old.get("revealed"))}
            await self.store.set_state(code, orjson.dumps(state).decode())
            await self.store.publish(code, "S" + frame("state", state=state))
            if moved:  # the presenter's page shows the new scene's count and queue
                votes = await self.store.votes(code, f.state.scene)
                await self.store.publish(code, "P" + frame("tally", scene=f.state.scene, votes=votes))
                await self.store.publish(
                    code, "P" + frame("queue", scene=f.state.scene, items=await self.queue(code, f.state.scene))
                )
        elif isinstance(f, RevealFrame):
            scene = old["scene"]
            if scene > len(scenes) or scenes[scene - 1].question is None:
                raise RoomError(422, "invalid", f"scene {scene} asks no question: there is nothing to reveal")
            state = {**old, "revealed": True}
            await self.store.set_state(code, orjson.dumps(state).decode())
            votes = await self.store.votes(code, scene)
            await self.store.publish(code, "A" + frame("reveal", scene=scene, votes=votes))
        elif isinstance(f, QueueFrame):
            await self.store.drop(code, old["scene"], f.key)
            await self.store.publish(
                code, "P" + frame("queue", scene=old["scene"], items=await self.queue(code, old["scene"]))
            )
        else:
            await self.store.remove(code)
            await self.store.publish(code, "A" + frame("closed", message="the presenter closed the room"))

    async def student_frame(self, record: RoomRecord, member: Member, raw: str) -> str | None:
        """A student's vote or suggestion; the answer when it is refused by a limit (None: taken)."""
        try:
            kind = orjson.loads(raw).get("type")
        except (orjson.JSONDecodeError, AttributeError):
            kind = None
        if kind in PRESENTER_ONLY:
            raise RoomError(
                403, "not_presenter", f"only the presenter's key drives the room ({kind!r} is the presenter's)"
            )
        f = parse(STUDENT_FRAMES, raw)
        code = record.code
        state = await self.state(code)
        scenes = self.scenes(record)
        scene = scenes[state["scene"] - 1] if state["scene"] <= len(scenes) else None
        if isinstance(f, VoteFrame):
            if f.scene != state["scene"] or scene is None or scene.question is None:
                return f"scene {f.scene} is not asking a question now"
            if f.choice >= len(scene.question.choices):
                raise RoomError(
                    422, "invalid", f"choice: the question has {len(scene.question.choices)} choices, from 0"
                )
            if state.get("revealed"):
                return "the answer is out: votes are closed"
            if member.votes.get(f.scene, 0) >= VOTE_CHANGES:
                return f"a student may vote {VOTE_CHANGES} times on a question"
            member.votes[f.scene] = member.votes.get(f.scene, 0) + 1
            votes = await self.store.vote(code, f.scene, member.student, f.choice)
            await self.store.publish(code, "P" + frame("tally", scene=f.scene, votes=votes))
            return None
        text = " ".join(unicodedata.normalize("NFC", f.text).split())  # one line, single spaces
        if not text:
            raise RoomError(422, "invalid", "text: a suggestion is not empty")
        if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in text):
            raise RoomError(422, "invalid", "text: a suggestion is one line of text, without control characters")
        if scene is None or scene.view in LAB_VIEWS:
            return "this scene takes no input"
        now = time.monotonic()
        while member.suggested and member.suggested[0] < now - SUGGESTION_WINDOW:
            member.suggested.popleft()
        if len(member.suggested) >= SUGGESTIONS:
            return f"a student may suggest {SUGGESTIONS} inputs in {SUGGESTION_WINDOW / 60:.0f} minutes"
        member.suggested.append(now)
        await self.store.suggest(code, state["scene"], fold(text), text, time.time())
        await self.store.publish(
            code, "P" + frame("queue", scene=state["scene"], items=await self.queue(code, state["scene"]))
        )
        return None
