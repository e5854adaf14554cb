"""wait_for_task through the real session against the emulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from waiting_helpers import FAST, NO_RETRY, USER, gets_for, job, library_tasks

from koodrive_async import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PollPolicy,
    Task,
    TaskFailedError,
    TaskStatus,
    TaskTimeoutError,
)
from koodrive_async._session import KooDriveSession
from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator


class StatusLog:
    """on_status callback that records statuses and lets a test await the next one."""

    def __init__(self) -> None:
        self.statuses: list[int | None] = []
        self._changed = asyncio.Event()

    def __call__(self, task: Task) -> None:
        self.statuses.append(task.status)
        self._changed.set()

    async def next(self) -> None:
        await asyncio.wait_for(self._changed.wait(), 5)
        self._changed.clear()


async def test_state_walk_calls_on_status_once_per_change(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    task_id = await session.submit(job())
    log = StatusLog()
    waiter = asyncio.create_task(session.wait_for_task(task_id, poll=FAST, on_status=log))
    await log.next()
    assert log.statuses == [TaskStatus.NEW]
    await asyncio.sleep(0.1)  # several polls while nothing changes: no callback
    assert len(gets_for(emu, task_id)) >= 3
    assert log.statuses == [TaskStatus.NEW]
    emu.clock.advance(2.0)  # past the NEW share of a 10 s task
    await log.next()
    assert log.statuses == [TaskStatus.NEW, TaskStatus.EXECUTING]
    emu.clock.advance(10.0)
    task = await asyncio.wait_for(waiter, 5)
    assert log.statuses == [TaskStatus.NEW, TaskStatus.EXECUTING, TaskStatus.SUCCESS]
    assert task.task_id == task_id and task.succeeded
    assert task.end_time is not None


async def test_async_on_status_is_awaited(emu: KooDriveEmulator, session: KooDriveSession) -> None:
    task_id = await session.submit(job())
    seen: list[int | None] = []

    async def on_status(task: Task) -> None:
        await asyncio.sleep(0)
        seen.append(task.status)
        if task.status == TaskStatus.NEW:
            emu.clock.advance(20.0)

    task = await asyncio.wait_for(session.wait_for_task(task_id, poll=FAST, on_status=on_status), 5)
    assert task.succeeded
    assert seen == [TaskStatus.NEW, TaskStatus.SUCCESS]


async def test_failed_task_raises_task_failed_error(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    task_id = await session.submit(job())
    emu.state.finish(task_id, failed=True, result_code="18000123")
    with pytest.raises(TaskFailedError) as info:
        await asyncio.wait_for(session.wait_for_task(task_id, poll=FAST), 5)
    assert info.value.result_code == "18000123"
    assert info.value.task.task_id == task_id
    assert info.value.task.status == TaskStatus.FAILED


async def test_deadline_raises_task_timeout_error_with_last_seen(session: KooDriveSession) -> None:
    task_id = await session.submit(job())
    start = time.monotonic()
    with pytest.raises(TaskTimeoutError) as info:
        await session.wait_for_task(task_id, timeout=0.3, poll=FAST)
    elapsed = time.monotonic() - start
    assert 0.29 <= elapsed < 2.0
    assert isinstance(info.value, TimeoutError)
    assert info.value.task_id == task_id
    assert info.value.last is not None and info.value.last.status == TaskStatus.NEW
    assert library_tasks() == []  # nothing left polling for it


async def test_deadline_passing_during_a_slow_get_abandons_it(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    task_id = await session.submit(job())
    emu.inject(FaultKind.LATENCY, route="get_task", latency=10.0)
    start = time.monotonic()
    with pytest.raises(TaskTimeoutError) as info:
        await session.wait_for_task(task_id, timeout=0.4, poll=FAST)
    assert time.monotonic() - start < 2.0  # not the 10 s the GET would have taken
    assert info.value.last is None  # no answer was ever seen
    assert library_tasks() == []


async def test_transient_errors_are_ridden_out(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    # The transport is told not to retry, so each fault reaches the scheduler.
    task_id = await session.submit(job())
    emu.inject(FaultKind.SERVER_ERROR, route="get_task", count=2)
    emu.inject(FaultKind.UNAVAILABLE, route="get_task", count=1)
    emu.inject(FaultKind.DROP, route="get_task", count=1)
    emu.inject(FaultKind.BAD_GATEWAY_HTML, route="get_task", count=1)
    emu.inject(FaultKind.RATE_LIMIT, route="get_task", count=1)
    emu.inject(FaultKind.MALFORMED_JSON, route="get_task", count=1)
    emu.clock.advance(20.0)
    poll = PollPolicy(initial=0.01, multiplier=1.2, max_interval=0.05)
    task = await asyncio.wait_for(session.wait_for_task(task_id, timeout=10, poll=poll), 10)
    assert task.succeeded
    gets = gets_for(emu, task_id)
    faults = [g.fault for g in gets]  # type: ignore[attr-defined]
    assert faults[:7] == [
        FaultKind.SERVER_ERROR,
        FaultKind.SERVER_ERROR,
        FaultKind.UNAVAILABLE,
        FaultKind.DROP,
        FaultKind.BAD_GATEWAY_HTML,
        FaultKind.RATE_LIMIT,
        FaultKind.MALFORMED_JSON,
    ]
    assert faults[7] is None and len(gets) == 8


async def test_transient_errors_until_the_deadline_end_in_timeout(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    task_id = await session.submit(job())
    emu.inject(FaultKind.SERVER_ERROR, route="get_task")
    with pytest.raises(TaskTimeoutError):
        await session.wait_for_task(task_id, timeout=0.3, poll=FAST)
    assert len(gets_for(emu, task_id)) >= 2


async def test_not_found_raises_at_once(emu: KooDriveEmulator, session: KooDriveSession) -> None:
    with pytest.raises(NotFoundError):
        await asyncio.wait_for(session.wait_for_task("1234567890123456789", poll=FAST), 5)
    assert len(emu.requests) == 1


async def test_other_users_task_is_not_found_at_once(
    emu: KooDriveEmulator, make_session: Callable[..., KooDriveSession]
) -> None:
    task_id = await make_session().submit(job())
    stranger = make_session(user_id="someone-else")
    with pytest.raises(NotFoundError):
        await asyncio.wait_for(stranger.wait_for_task(task_id, poll=FAST), 5)
    assert len(gets_for(emu, task_id)) == 1


async def test_authentication_error_after_refresh_raises_at_once() -> None:
    config = EmulatorConfig(tokens=frozenset({"good-token"}))
    async with KooDriveEmulator(config) as emu:
        refreshes: list[bool] = []

        async def provider(force_refresh: bool) -> str:
            refreshes.append(force_refresh)
            return "revoked-token"

        async with KooDriveSession(
            emu.url, user_id=USER, token_provider=provider, retry=NO_RETRY
        ) as session:
            with pytest.raises(AuthenticationError):
                await asyncio.wait_for(session.wait_for_task("1234567890123456789", poll=FAST), 5)
        assert True in refreshes  # the token was refreshed once, then we gave up
        assert len(emu.requests) <= 2


async def test_cancelling_the_waiter_stops_polling_and_leaves_the_task(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    task_id = await session.submit(job())
    log = StatusLog()
    waiter = asyncio.create_task(session.wait_for_task(task_id, poll=FAST, on_status=log))
    await log.next()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    count = len(emu.requests)
    assert library_tasks() == []
    await asyncio.sleep(0.2)  # 20 poll intervals: none may come
    assert len(emu.requests) == count
    assert all(r.route == "get_task" for r in emu.requests[1:])  # nothing but GETs, ever
    task = emu.state.get(task_id)
    assert task is not None and task.forced_status is None


async def test_cancelling_during_an_in_flight_get_abandons_it(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    task_id = await session.submit(job())
    emu.inject(FaultKind.LATENCY, route="get_task", latency=10.0)
    waiter = asyncio.create_task(session.wait_for_task(task_id, poll=FAST))
    scheduler = session._scheduler()
    while scheduler.gets == 0:
        await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert library_tasks() == []  # the in-flight GET was cancelled with it


async def test_on_status_error_ends_the_wait(session: KooDriveSession) -> None:
    task_id = await session.submit(job())

    def broken(task: Task) -> None:
        raise LookupError(f"journal full at {task.task_id}")

    with pytest.raises(LookupError, match="journal full"):
        await asyncio.wait_for(session.wait_for_task(task_id, poll=FAST, on_status=broken), 5)
    assert library_tasks() == []


async def test_closing_the_session_fails_pending_waits(session: KooDriveSession) -> None:
    task_id = await session.submit(job())
    log = StatusLog()
    waiter = asyncio.create_task(session.wait_for_task(task_id, poll=FAST, on_status=log))
    await log.next()
    await session.close()
    with pytest.raises(RuntimeError):
        await waiter
    with pytest.raises(RuntimeError):
        await session.wait_for_task(task_id)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"task_id": ""},
        {"task_id": 123},
        {"timeout": 0},
        {"timeout": -1.0},
        {"timeout": True},
        {"poll": 0.5},
        {"on_status": "print"},
    ],
)
async def test_bad_arguments_send_nothing(
    emu: KooDriveEmulator, session: KooDriveSession, kwargs: dict[str, object]
) -> None:
    args: dict[str, object] = {"task_id": "1234567890123456789", **kwargs}
    with pytest.raises(InvalidRequestError):
        await session.wait_for_task(**args)  # type: ignore[arg-type]
    assert emu.requests == []


async def test_many_waiters_share_one_scheduler_with_bounded_jittered_gets(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    session.max_concurrent_polls = 8
    ids = [await session.submit(job(i)) for i in range(200)]
    emu.clear_requests()
    before = len(asyncio.all_tasks())
    poll = PollPolicy(initial=0.2, multiplier=1.0, max_interval=0.2, jitter=0.2)
    waiters = [asyncio.create_task(session.wait_for_task(t, poll=poll)) for t in ids]
    await asyncio.sleep(0)
    # One task per caller, plus one driver: no sleeping timer coroutine per waiter.
    assert len(asyncio.all_tasks()) - before <= len(ids) + 1
    scheduler = session._scheduler()
    while scheduler.gets < 3 * len(ids):
        await asyncio.sleep(0.05)
    assert scheduler.max_inflight_seen <= 8
    # Not in lockstep: the first polls of tasks registered at the same
    # instant spread over a good part of the ±20% jitter window.
    first = {}
    for entry in emu.requests:
        first.setdefault(entry.path, entry.time)
    spread = max(first.values()) - min(first.values())
    assert len(first) == len(ids) and spread > 0.02
    emu.clock.advance(20.0)
    tasks = await asyncio.wait_for(asyncio.gather(*waiters), 10)
    assert all(t.succeeded for t in tasks)
    assert len(scheduler) == 0 or all(waiter.done() for waiter in scheduler._heap)
