"""The waiter record: what it keeps of the last answer, and the future it is to its caller.

A waiter without a deadline keeps only its tracker's mark of the last answer
(what ``on_status`` changes are judged by); one with a deadline keeps the
model ``TaskTimeoutError.last`` hands back. The waiter is its own future: the
awaiting task's wake-up, its context and cancellation go through it.
"""

from __future__ import annotations

import asyncio
import contextvars
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import attrs
import pytest
from waiting_helpers import FAST, gets_for, job, library_tasks

from koodrive_async import Job, State, Task, TaskStatus, TaskTimeoutError, TaskType
from koodrive_async._polling import PollScheduler
from koodrive_async._session import KooDriveSession
from koodrive_async._trackers import TaskTracker, pack_task, unpack_task
from koodrive_async.emulator import KooDriveEmulator

_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("waiter_record_test")


async def _polled(emu: KooDriveEmulator, task_id: str, count: int) -> None:
    async def enough() -> None:
        while len(gets_for(emu, task_id)) < count:
            await asyncio.sleep(0.005)

    await asyncio.wait_for(enough(), 5)


async def test_timeout_last_is_the_last_task_read_field_by_field(
    session: KooDriveSession,
) -> None:
    task_id = await session.submit(job())
    reads: list[Task] = []

    async def get_task(unit_id: str) -> Task:
        task = await session.get_task(unit_id)
        reads.append(task)
        return task

    scheduler = PollScheduler(get_task)
    try:
        waiter = scheduler.add(task_id, policy=FAST, timeout=0.3)
        with pytest.raises(TaskTimeoutError) as info:
            await waiter
        scheduler.discard(waiter)
    finally:
        await scheduler.close()
    last = info.value.last
    assert len(reads) >= 2 and isinstance(last, Task)
    assert attrs.asdict(last) == attrs.asdict(reads[-1])
    assert last.trace_id is not None and last.trace_id == reads[-1].trace_id


async def test_a_timed_wait_reports_each_status_change_once(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    # With a deadline the waiter keeps the model, and judges changes by its mark.
    task_id = await session.submit(job())
    statuses: list[object] = []
    waiter = asyncio.create_task(
        session.wait_for_task(
            task_id, timeout=60.0, poll=FAST, on_status=lambda t: statuses.append(t.status)
        )
    )
    await _polled(emu, task_id, 3)
    assert statuses == [TaskStatus.NEW]
    emu.clock.advance(2.0)
    emu.clock.advance(10.0)
    task = await asyncio.wait_for(waiter, 5)
    assert task.succeeded
    assert statuses[0] == TaskStatus.NEW and statuses[-1] == TaskStatus.SUCCESS
    assert len(statuses) == len(set(statuses))  # no change reported twice


async def test_an_untimed_waiter_keeps_only_the_mark_of_its_last_answer(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    task_id = await session.submit(job())
    job_id = await session.submit(job(1))
    scheduler = session._scheduler()
    plain = scheduler.add(task_id, policy=FAST)
    tracked = scheduler.add(job_id, policy=FAST, tracker=session._waiting.job_tracker())
    timed = scheduler.add(task_id, policy=FAST, timeout=60.0)
    try:
        await _polled(emu, task_id, 4)
        await _polled(emu, job_id, 2)
        assert plain.last is TaskStatus.NEW  # no TaskTimeoutError can need the Task
        assert isinstance(tracked.last, tuple) and not isinstance(tracked.last, Job)
        # With one, its packed form (restored only when TaskTimeoutError needs it).
        assert isinstance(timed.last, bytes)
        restored = scheduler._tracker.restore(timed.last, task_id)
        assert restored.task_id == task_id and restored.status is TaskStatus.NEW
    finally:
        for waiter in (plain, tracked, timed):
            scheduler.discard(waiter)


async def test_a_job_wait_without_deadline_reports_progress_by_its_mark(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    job_id = await session.submit(job())
    seen: list[tuple[object, object]] = []
    waiter = asyncio.create_task(
        session.wait_for_job(
            job_id, poll=FAST, on_status=lambda j: seen.append((j.state, j.progress))
        )
    )
    await _polled(emu, job_id, 3)
    assert len(seen) == 1
    emu.clock.advance(12.0)
    final = await asyncio.wait_for(waiter, 5)
    assert final.state is State.SUCCESS
    assert seen[-1][0] is State.SUCCESS and len(seen) == len(set(seen))


async def test_the_caller_resumes_in_its_own_context(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    task_id = await session.submit(job())

    async def caller() -> str:
        _VAR.set("before")
        await session.wait_for_task(task_id, poll=FAST)
        _VAR.set("after")  # must land in this task's context, not a copy
        await asyncio.sleep(0)
        return _VAR.get()

    running = asyncio.create_task(caller())
    await _polled(emu, task_id, 2)
    emu.clock.advance(12.0)
    assert await asyncio.wait_for(running, 5) == "after"


async def test_cancelling_the_caller_cancels_its_waiter_and_its_polls(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    task_id = await session.submit(job())
    running = asyncio.create_task(session.wait_for_task(task_id, poll=FAST))
    await _polled(emu, task_id, 2)
    running.cancel("caller gave up")
    with pytest.raises(asyncio.CancelledError):
        await running
    polls = len(gets_for(emu, task_id))
    await asyncio.sleep(0.1)  # several FAST intervals
    assert len(gets_for(emu, task_id)) == polls
    assert library_tasks() == []


async def test_the_waiter_is_a_future_to_asyncio(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    task_id = await session.submit(job())
    scheduler = session._scheduler()
    waiter = scheduler.add(task_id, policy=FAST)
    called: list[object] = []
    try:
        assert asyncio.isfuture(waiter) and asyncio.ensure_future(waiter) is waiter
        assert waiter.get_loop() is asyncio.get_running_loop() and not waiter.done()
        with pytest.raises(asyncio.InvalidStateError):
            waiter.result()

        def dropped(_: object) -> None:
            called.append("dropped")

        waiter.add_done_callback(called.append)
        waiter.add_done_callback(dropped)
        waiter.add_done_callback(dropped)
        assert waiter.remove_done_callback(dropped) == 2
        both = asyncio.gather(waiter, asyncio.shield(waiter))
        emu.clock.advance(12.0)
        first, second = await asyncio.wait_for(both, 5)
        assert first is second and first.succeeded and waiter.exception() is None
        await asyncio.sleep(0)
        assert called == [waiter]
        assert not waiter.cancel()  # over already
    finally:
        scheduler.discard(waiter)


def _same(a: Task, b: Task) -> bool:
    return (
        attrs.asdict(a) == attrs.asdict(b)
        and a.trace_id == b.trace_id
        and all(type(getattr(a, f.name)) is type(getattr(b, f.name)) for f in attrs.fields(Task))
    )


@pytest.mark.parametrize(
    "task",
    [
        Task("t1"),
        Task(
            "t1",
            task_name="batch-copy",
            task_type=TaskType.BATCH_IMPORT,
            tenant_id="tenant",
            user_id="user",
            status=TaskStatus.FAILED,
            result_code="18000123",
            init_params='{"taskType":1,"名前":"ß"}',
            locale="en-US",
            create_time=datetime(2026, 12, 1, 16, 7, 16, 132000, tzinfo=timezone.utc),
            start_time=datetime(1969, 7, 20, 20, 17, 40, 1, tzinfo=timezone(timedelta(hours=-5))),
            end_time=datetime(2026, 12, 1, 17, 0, 0, 999999),
            trace_id="83391401ec0da71b103c787d3727bd3e3abe5d973b461ea3356102c515",
        ),
        Task("t1", task_type=77, status=99),  # codes this client does not know yet
    ],
)
def test_a_packed_task_unpacks_equal_field_by_field(task: Task) -> None:
    packed = pack_task(task)
    assert isinstance(packed, bytes)
    assert _same(unpack_task(packed, "t1"), task)
    tz = unpack_task(packed, "t1").create_time
    assert tz is None or tz.utcoffset() == task.create_time.utcoffset()  # type: ignore[union-attr]


def test_what_cannot_be_packed_exactly_is_kept_whole() -> None:
    zoned = Task("t1", create_time=datetime(2026, 3, 29, 3, tzinfo=ZoneInfo("Europe/Paris")))
    assert pack_task(zoned) is zoned
    assert unpack_task(zoned, "t1") is zoned
    tracker = TaskTracker(session_less)
    other = Task("someone-else", status=TaskStatus.NEW)
    assert tracker.keep(other, "t1") is other  # not the id asked for: as the service said it
    assert tracker.restore(tracker.keep(other, "t1"), "t1") is other


async def session_less(task_id: str) -> Task:  # pragma: no cover - never polled
    raise AssertionError(task_id)


@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59.999999-05:00"]
)
def test_a_time_at_the_limits_packs_and_unpacks_exactly(moment: str) -> None:
    # Its UTC instant is outside what datetime can hold: packed as the wall
    # time and its offset, it still comes back (it used to overflow on unpack,
    # inside the poll driver, and every timed wait of the session hung).
    task = Task("t1", status=TaskStatus.EXECUTING, create_time=datetime.fromisoformat(moment))
    packed = pack_task(task)
    assert isinstance(packed, bytes)
    back = unpack_task(packed, "t1")
    assert back == task and back.create_time is not None and task.create_time is not None
    assert back.create_time.utcoffset() == task.create_time.utcoffset()


async def test_a_timed_wait_on_a_task_dated_at_the_limits_times_out() -> None:
    async def get_task(task_id: str) -> Task:
        moment = datetime.fromisoformat("0001-01-01T00:00:00+05:00")
        return Task(task_id, status=TaskStatus.EXECUTING, create_time=moment)

    scheduler = PollScheduler(get_task)
    try:
        waiter = scheduler.add("t1", policy=FAST, timeout=0.2)
        with pytest.raises(TaskTimeoutError) as info:
            await asyncio.wait_for(waiter.future, 5)
        assert isinstance(info.value.last, Task) and info.value.last.task_id == "t1"
    finally:
        await scheduler.close()


async def test_gathering_a_waiter_and_cancelling_the_gather_ends_it() -> None:
    # asyncio.gather asks a cancelled child for _make_cancelled_error().
    async def get_task(task_id: str) -> Task:
        return Task(task_id, status=TaskStatus.EXECUTING)

    scheduler = PollScheduler(get_task)
    try:
        waiter = scheduler.add("t1", policy=FAST)
        gathered = asyncio.gather(waiter.future)
        asyncio.get_running_loop().call_soon(gathered.cancel)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(gathered, 5)
        assert waiter.cancelled()
    finally:
        await scheduler.close()
