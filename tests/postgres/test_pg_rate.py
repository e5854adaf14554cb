"""The shared rate limit: one token bucket in PostgreSQL for every worker of a plan.

Real time, kept short: three pacers pace for about two seconds.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from pg_helpers import JournalOpener

from koodrive_async.bulk._pg_rate import SharedPacer

RATE = 25.0
WINDOW = 2.0


async def test_three_workers_together_hold_the_shared_rate(open_journal: JournalOpener) -> None:
    journals = [await open_journal(worker_id=f"w{i}") for i in range(3)]
    pacers = [j.shared_pacer(RATE) for j in journals]
    grants: list[float] = []

    async def pace(pacer: SharedPacer, deadline: float) -> None:
        while True:
            await pacer.acquire()
            now = time.monotonic()
            if now >= deadline:
                return
            grants.append(now)

    # Four concurrent callers per worker, as a fan-out would have.
    start = time.monotonic()
    deadline = start + WINDOW
    await asyncio.gather(*(pace(p, deadline) for p in pacers for _ in range(4)))
    # The bucket starts with one token (no burst): RATE per second after it.
    expected = RATE * WINDOW + 1
    assert expected * 0.9 <= len(grants) <= expected * 1.1, (len(grants), expected)
    # And no second held more than its share (within the same 10%).
    for second in range(int(WINDOW)):
        in_second = [g for g in grants if start + second <= g < start + second + 1]
        assert len(in_second) <= RATE * 1.1 + 1, (second, len(in_second))


async def test_a_hold_one_worker_saw_holds_back_the_others(open_journal: JournalOpener) -> None:
    seer, other = await open_journal(worker_id="seer"), await open_journal(worker_id="other")
    await other.shared_pacer(RATE).acquire()  # the bucket exists, its token spent
    await seer.shared_pacer(RATE).hold(0.6)
    started = time.monotonic()
    await other.shared_pacer(RATE).acquire()
    assert time.monotonic() - started >= 0.5
    # A shorter hold seen later does not cut the longer one short.
    await seer.shared_pacer(RATE).hold(5.0)
    await seer.shared_pacer(RATE).hold(0.1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(other.shared_pacer(RATE).acquire(), timeout=0.5)


def test_a_pacer_refuses_a_rate_that_is_not_positive() -> None:
    async def fetch(_sql: str, _params: object) -> None:
        return None

    for rate in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            SharedPacer(fetch, rate)  # type: ignore[arg-type]
