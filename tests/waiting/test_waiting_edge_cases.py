"""Edge cases of the poll scheduler: replanned waiters, closed sessions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from waiting_helpers import job

from koodrive_async import PollPolicy, Task
from koodrive_async._estimator import MIN_SAMPLES
from koodrive_async._polling import PollScheduler
from koodrive_async._session import KooDriveSession

STEADY = PollPolicy(initial=0.01, multiplier=1.0, max_interval=0.01, jitter=0.0)


async def _until(condition: Callable[[], bool]) -> None:
    # The scheduler runs on the loop's real clock; give it time, boundedly.
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never became true")


async def test_wait_on_a_closed_session_fails_at_once_and_starts_nothing(
    session: KooDriveSession,
) -> None:
    await session.close()
    before = asyncio.all_tasks()
    try:
        await asyncio.wait_for(session.wait_for_task("123", poll=PollPolicy(initial=30.0)), 1.0)
    except RuntimeError as exc:
        assert "closed" in str(exc)
    else:  # pragma: no cover - the failure being tested
        raise AssertionError("wait_for_task on a closed session returned")
    started = [
        t.get_coro().__qualname__  # type: ignore[union-attr]
        for t in asyncio.all_tasks() - before
        if not t.done()
    ]
    assert started == []


async def test_replanned_waiter_is_never_polled_twice_at_once(session: KooDriveSession) -> None:
    # Two slow GETs fill both slots, so the cold waiter C sits in the ready
    # queue; then an estimate for its kind arrives and C is re-planned, which
    # gives it a heap entry while it is still queued. That entry must not
    # start a second GET while C's first one is in flight.
    ids = [await session.submit(job(i)) for i in range(3)]
    blocker_a, blocker_b, cold = ids
    gates = {task_id: asyncio.Event() for task_id in ids}
    in_flight = dict.fromkeys(ids, 0)
    most = dict.fromkeys(ids, 0)

    async def get_task(task_id: str) -> Task:
        in_flight[task_id] += 1
        most[task_id] = max(most[task_id], in_flight[task_id])
        try:
            await gates[task_id].wait()
            return await session.get_task(task_id)
        finally:
            in_flight[task_id] -= 1

    scheduler = PollScheduler(get_task, max_polls=2)
    loop = asyncio.get_running_loop()
    waiters = [scheduler.add(blocker_a, policy=STEADY), scheduler.add(blocker_b, policy=STEADY)]
    waiters.append(scheduler.add(cold, policy=STEADY, kind="K", started=loop.time()))
    try:
        await _until(lambda: in_flight[blocker_a] == in_flight[blocker_b] == 1)
        await _until(lambda: any(w.task_id == cold for w in scheduler._ready))
        for _ in range(MIN_SAMPLES):
            # Durations C's age has not reached: the re-plan gives it a heap entry.
            scheduler.estimator.observe("K", 0.5)
        scheduler._replan_cold("K", loop.time())
        # Queued for a poll already: the re-plan leaves it there (it is placed
        # again after that poll), so no second heap entry can poll it twice.
        assert not waiters[2].in_heap and waiters[2].step == 0
        gates[blocker_a].set()
        gates[blocker_b].set()
        await _until(lambda: in_flight[cold] >= 1)
        # Past where a re-plan would have put its first poll (0.5 s after its start).
        await asyncio.sleep(max(0.0, waiters[2].started + 0.55 - loop.time()))
        assert most[cold] == 1
        gates[cold].set()
        await _until(lambda: scheduler.gets >= 6)
        assert most[cold] == 1
    finally:
        for waiter in waiters:
            scheduler.discard(waiter)
        await scheduler.close()
