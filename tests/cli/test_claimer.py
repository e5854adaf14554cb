"""The claimer of a many-worker run: when it stops waiting for other workers' leases."""

from __future__ import annotations

import asyncio

import pytest

from koodrive_async.bulk import _claims
from koodrive_async.bulk._claims import Claimer
from koodrive_async.bulk._journal import Claim, State


class _Idle:
    """A journal where another worker holds unfinished lines, renewed for ever."""

    lease = 0.05

    def __init__(self, finished: list[int]) -> None:
        self.finished = finished
        self.claims = 0

    async def claim(self, _limit: int) -> Claim:
        self.claims += 1
        return Claim()

    async def next_expiry(self) -> float | None:
        return 0.01

    async def counts(self) -> dict[str, int]:
        return {State.SUBMITTED: 2, State.SUCCEEDED: self.finished[0]}


async def test_a_worker_stops_waiting_when_nothing_finishes_anywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two idle workers holding unresolved lines renew their leases for ever:
    # waiting on each other would never end.
    monkeypatch.setattr(_claims, "MIN_IDLE_SECONDS", 0.2)
    journal = _Idle([5])
    claimer = Claimer(journal, 8, asyncio.Event())  # type: ignore[arg-type]
    assert await asyncio.wait_for(claimer.next_line(), 5) is None
    assert journal.claims >= 2


async def test_a_worker_keeps_waiting_while_the_plan_moves_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A second without progress ends the wait; a line finishes every 0.1 s.
    monkeypatch.setattr(_claims, "MIN_IDLE_SECONDS", 1.0)
    finished = [0]
    journal = _Idle(finished)
    claimer = Claimer(journal, 8, asyncio.Event())  # type: ignore[arg-type]
    waiting = asyncio.ensure_future(claimer.next_line())

    # Another worker finishes a line every 0.1 s for about 0.6 s, then stops.
    for _ in range(6):
        await asyncio.sleep(0.1)
        assert not waiting.done()
        finished[0] += 1
    assert await asyncio.wait_for(waiting, 5) is None


async def test_a_worker_waiting_on_its_own_tasks_keeps_claiming(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Long jobs: nothing finishes for a while, but this worker still waits on
    # its own; it must keep looking for a dying worker's lines meanwhile.
    monkeypatch.setattr(_claims, "MIN_IDLE_SECONDS", 0.2)
    busy = [True]
    journal = _Idle([5])
    claimer = Claimer(journal, 8, asyncio.Event(), busy=lambda: busy[0])  # type: ignore[arg-type]
    waiting = asyncio.ensure_future(claimer.next_line())
    await asyncio.sleep(0.6)
    assert not waiting.done()
    busy[0] = False
    assert await asyncio.wait_for(waiting, 5) is None
