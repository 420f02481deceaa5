"""The compute line: bounded, fair between clients, with a slot always left for small work."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from app.web.capacity.compute import Compute, Work
from app.web.errors import Overloaded

T = TypeVar("T")


class Holder:
    """Holds a slot for a piece of work until released, and records when it got it."""

    def __init__(self, compute: Compute, work: Work, started: list[str], name: str) -> None:
        self.release = asyncio.Event()
        self.got = asyncio.Event()
        self.after_release: list[asyncio.Task[None]] = []  # tasks to cancel the moment the slot is handed on
        self.task = asyncio.ensure_future(self._hold(compute, work, started, name))

    async def _hold(self, compute: Compute, work: Work, started: list[str], name: str) -> None:
        async with compute.slot(work):
            started.append(name)
            self.got.set()
            await self.release.wait()
        for task in self.after_release:  # no await since the slot was handed on: the next holder has not resumed
            task.cancel()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run in a thread of its own: other tests (Playwright's sync API) may leave an event loop running in
    this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_greedy_clients_backlog_does_not_make_a_visitor_wait_for_all_of_it() -> None:
    async def main() -> list[str]:
        compute = Compute(max_concurrent=1, max_queue=20)
        started: list[str] = []
        greedy = [Holder(compute, Work("10.0.0.1"), started, f"greedy{i}") for i in range(6)]
        await settle()
        visitor = Holder(compute, Work("10.0.0.2"), started, "visitor")
        await settle()
        for h in [*greedy, visitor]:
            h.release.set()
            await settle()
        await asyncio.gather(*(h.task for h in [*greedy, visitor]))
        return started

    started = run(main())
    # first come, first served would give ["greedy0", …, "greedy5", "visitor"]
    assert started[:2] == ["greedy0", "visitor"]
    assert started[2:] == [f"greedy{i}" for i in range(1, 6)]


def test_expensive_work_leaves_a_slot_for_small_work() -> None:
    async def main() -> tuple[list[str], int]:
        compute = Compute(max_concurrent=2, max_queue=20)  # max_expensive: all but one slot
        started: list[str] = []
        heavy = [Holder(compute, Work("10.0.0.1", expensive=True), started, f"heavy{i}") for i in range(3)]
        await settle()
        running_heavy = compute.running_expensive
        small = Holder(compute, Work("10.0.0.1"), started, "small")
        await asyncio.wait_for(small.got.wait(), 5)  # starts at once, beside the one heavy computation
        for h in [small, *heavy]:
            h.release.set()
            await settle()
        await asyncio.gather(*(h.task for h in [*heavy, small]))
        return started, running_heavy

    started, running_heavy = run(main())
    assert running_heavy == 1
    assert started == ["heavy0", "small", "heavy1", "heavy2"]


def test_one_client_cannot_fill_the_line() -> None:
    async def main() -> tuple[int, bool]:
        compute = Compute(max_concurrent=1, max_queue=10, max_queue_per_client=3)
        started: list[str] = []
        mine = [Holder(compute, Work("10.0.0.1"), started, f"a{i}") for i in range(3)]
        await settle()
        refused = 0
        try:
            async with compute.admitted_for(Work("10.0.0.1")):
                pass
        except Overloaded as e:
            refused += "max_queue_per_client" in str(e)
        other = Holder(compute, Work("10.0.0.2"), started, "b")
        await settle()
        admitted_other = compute.admitted == 4
        for h in [*mine, other]:
            h.release.set()
            await settle()
        await asyncio.gather(*(h.task for h in [*mine, other]))
        return refused, admitted_other

    assert run(main()) == (1, True)


@pytest.mark.parametrize("when", ["waiting", "just granted"])
def test_a_caller_that_leaves_gives_its_place_or_slot_on(when: str) -> None:
    async def main() -> tuple[list[str], int, int, int]:
        compute = Compute(max_concurrent=1, max_queue=10)
        started: list[str] = []
        first = Holder(compute, Work("a"), started, "first")
        await settle()
        leaver = Holder(compute, Work("b"), started, "leaver")
        last = Holder(compute, Work("c"), started, "last")
        await settle()
        if when == "just granted":  # the slot is granted to the leaver, which is cancelled before it resumes
            first.after_release.append(leaver.task)
        else:
            leaver.task.cancel()
            await settle()
        first.release.set()
        await asyncio.wait_for(last.got.wait(), 5)
        last.release.set()
        await asyncio.gather(first.task, last.task)
        with contextlib.suppress(asyncio.CancelledError):
            await leaver.task
        return started, compute.running, compute.admitted, compute.waiting

    started, running, admitted, waiting = run(main())
    assert started == ["first", "last"]
    assert (running, admitted, waiting) == (0, 0, 0)
