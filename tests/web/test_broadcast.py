"""A stepped computation broadcast to every stream of its key (app/web/capacity/broadcast.py): the class's rules,
with a stepper that publishes numbered messages and followers that collect them. The room against a real uvicorn is
in test_shared.py (a room of seeded generation streams from one address)."""

from __future__ import annotations

import asyncio

from app.web.capacity.broadcast import Abandoned, Broadcast, Broadcasts
from app.web.capacity.shared import Shared
from tests.conftest import run_coroutine


def message(i: int) -> dict[str, str]:
    return {"type": "websocket.send", "text": f"step {i}"}


class Stepper:
    """Publishes `steps` messages, waiting before each for a follower to have sent the last (as the stream's
    stepper does); counts its runs and the steps it computed."""

    def __init__(self, steps: int, fail_at: int | None = None, hold_at: int | None = None) -> None:
        self.steps, self.fail_at, self.hold_at = steps, fail_at, hold_at
        self.runs = 0
        self.computed = 0
        self.holding = asyncio.Event()  # it has reached hold_at
        self.go = asyncio.Event()  # and goes on when this is set

    async def __call__(self, broadcast: Broadcast) -> None:
        self.runs += 1
        for i in range(self.steps):
            if i == self.hold_at:
                self.holding.set()
                await self.go.wait()
            if i == self.fail_at:
                raise ValueError(f"step {i} failed")
            self.computed += 1
            broadcast.publish(message(i))
            await broadcast.sent_by_one()
            if broadcast.abandoned():
                raise Abandoned("every follower has gone")


class Follower:
    """Collects what it is sent; stops reading (raises, as a gone client's send does) after `leave_after` sends."""

    def __init__(self, leave_after: int | None = None) -> None:
        self.got: list[str] = []
        self.leave_after = leave_after
        self.first_calls = 0

    async def send(self, messages: list[dict[str, str]]) -> None:
        if self.leave_after is not None and len(self.got) >= self.leave_after:
            raise ConnectionError("the client has gone")
        self.got.extend(m["text"] for m in messages)
        await asyncio.sleep(0)

    def first(self) -> None:
        self.first_calls += 1


def test_followers_of_one_key_get_every_message_from_one_stepping_and_a_later_one_the_kept_whole() -> None:
    async def main() -> None:
        shared = Shared(10_000)
        broadcasts = Broadcasts(shared)
        stepper = Stepper(50, hold_at=25)
        followers = [Follower() for _ in range(20)]
        runs = [asyncio.ensure_future(broadcasts.follow("k", stepper, f.send, f.first)) for f in followers[:10]]
        await stepper.holding.wait()
        # half of them arrive halfway through: they catch up from the first message
        runs += [asyncio.ensure_future(broadcasts.follow("k", stepper, f.send, f.first)) for f in followers[10:]]
        await asyncio.sleep(0.01)
        stepper.go.set()
        await asyncio.gather(*runs)
        whole = [f"step {i}" for i in range(50)]
        assert all(f.got == whole and f.first_calls == 1 for f in followers)
        assert (stepper.runs, shared.computed, shared.joined) == (1, 1, 19)
        later = Follower()
        await broadcasts.follow("k", stepper, later.send, later.first)  # kept: nothing stepped again
        assert later.got == whole and (stepper.runs, shared.hits) == (1, 1)
        other = Follower()
        await broadcasts.follow(None, stepper, other.send, other.first)  # no key: stepped for itself
        assert other.got == whole and stepper.runs == 2 and broadcasts.flying == {}

    run_coroutine(main())


def test_when_every_follower_has_gone_the_stepping_stops_and_nothing_is_kept() -> None:
    async def main() -> None:
        shared = Shared(10_000)
        broadcasts = Broadcasts(shared)
        stepper = Stepper(1000)
        leavers = [Follower(leave_after=5), Follower(leave_after=8)]
        results = await asyncio.gather(
            *(broadcasts.follow("k", stepper, f.send, f.first) for f in leavers), return_exceptions=True
        )
        assert [type(r) for r in results] == [ConnectionError] * 2
        await asyncio.sleep(0.01)
        # paced by its furthest follower: it stepped one past what that one took, not the thousand
        assert stepper.runs == 1 and stepper.computed == 9
        assert broadcasts.flying == {} and shared.held == 0
        again = Follower()
        await broadcasts.follow("k", stepper, again.send, again.first)  # the next asker steps anew
        assert stepper.runs == 2 and len(again.got) == 1000

    run_coroutine(main())


def test_one_follower_that_stops_reading_does_not_hold_back_the_others() -> None:
    async def main() -> None:
        broadcasts = Broadcasts(Shared(10_000))
        stepper = Stepper(30)
        stuck = asyncio.Event()

        async def never(messages: list[dict[str, str]]) -> None:
            await stuck.wait()  # a client that reads nothing: its send never returns

        reader = Follower()
        slow = asyncio.ensure_future(broadcasts.follow("k", stepper, never, lambda: None))
        await broadcasts.follow("k", stepper, reader.send, reader.first)
        assert reader.got == [f"step {i}" for i in range(30)]
        slow.cancel()

    run_coroutine(main())


def test_a_stepping_error_reaches_every_follower_after_what_came_before_it_and_is_not_kept() -> None:
    async def main() -> None:
        shared = Shared(10_000)
        broadcasts = Broadcasts(shared)
        stepper = Stepper(10, fail_at=4)
        followers = [Follower() for _ in range(3)]
        results = await asyncio.gather(
            *(broadcasts.follow("k", stepper, f.send, f.first) for f in followers), return_exceptions=True
        )
        assert [str(r) for r in results] == ["step 4 failed"] * 3
        assert all(f.got == [f"step {i}" for i in range(4)] for f in followers)
        assert shared.held == 0 and broadcasts.flying == {}

    run_coroutine(main())
