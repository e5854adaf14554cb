"""Cancellation and shutdown leave nothing behind.

After cancelling ``run_jobs`` or ``wait_for_task``, breaking out of
``stream_jobs``, cancelling a create in flight, or closing the session while
all of that is going on:

* no asyncio task is left over (``asyncio.all_tasks()`` before and after);
* nothing reaches the ``asyncio`` logger or the loop's exception handler
  ("Task exception was never retrieved", "Future exception was never
  retrieved", "Unclosed client session", "Unclosed connector"), checked after
  ``gc.collect()`` so that ``__del__`` reports are flushed;
* no warning (pytest runs with warnings as errors; ResourceWarnings raised in
  ``__del__`` surface as unraisable-exception warnings);
* the tasks on the server are never cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from koodrive_async import (
    FileInfo,
    JobRequest,
    JobType,
    KooDriveError,
    KooDriveSession,
    PollPolicy,
    RetryPolicy,
    TaskStatus,
)
from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator

FAST_POLL = PollPolicy(initial=0.01, multiplier=1.0, max_interval=0.01, jitter=0.0)
FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.002)


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
async def clean_loop() -> AsyncIterator[list[str]]:
    """Fail the test if the asyncio logger or the loop's exception handler hears anything."""
    collector = _Collector()
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_logger.addHandler(collector)
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    reported: list[str] = []

    def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        reported.append(str(context.get("message")))

    loop.set_exception_handler(handler)
    try:
        yield reported
        # Flush __del__-time reports (unclosed sessions, unretrieved exceptions).
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0)
        assert reported == [], reported
        assert collector.messages == [], collector.messages
    finally:
        loop.set_exception_handler(previous)
        asyncio_logger.removeHandler(collector)


def _jobs(count: int, prefix: str = "f") -> Iterator[JobRequest]:
    for i in range(count):
        yield JobRequest(
            JobType.COPY,
            src_container_id="c1",
            dst_container_id="c2",
            files=[FileInfo(f"{prefix}{i}")],
        )


@contextlib.asynccontextmanager
async def _world(**config: Any) -> AsyncIterator[tuple[KooDriveEmulator, KooDriveSession]]:
    async with KooDriveEmulator(EmulatorConfig(**config)) as emu:
        session = KooDriveSession(
            emu.url, user_id="u", token="tok", agent_name="a", retry=FAST_RETRY, timeout=5.0
        )
        try:
            yield emu, session
        finally:
            await session.close()


def _leftovers(before: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t not in before and t is not current}


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.usefixtures("clean_loop")
async def test_cancelling_run_jobs() -> None:
    before = set(asyncio.all_tasks())
    async with _world(task_duration=3600.0) as (emu, s):
        submitted: list[str] = []
        enough = asyncio.Event()

        def on_submitted(_request: object, task_id: str) -> None:
            submitted.append(task_id)
            if len(submitted) >= 10:
                enough.set()

        run = asyncio.create_task(
            s.run_jobs(_jobs(50), max_concurrency=10, poll=FAST_POLL, on_submitted=on_submitted)
        )
        await asyncio.wait_for(enough.wait(), 10)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        await _settle()
        # Only the waits stopped: the tasks on the server run on.
        assert len(emu.state.tasks()) == len(submitted) == 10
        now = emu.clock.now()
        assert all(t.status_at(now) != TaskStatus.SUCCESS for t in emu.state.tasks())
        # Nothing of the run is left in the loop while the session stays open.
        assert _leftovers(before) <= _emulator_and_scheduler_tasks(before)
    assert _leftovers(before) == set()


def _emulator_and_scheduler_tasks(before: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    """Tasks allowed to outlive a cancelled run while the session is open: the
    session's poll-scheduler driver and the emulator's connection handlers."""
    allowed = set()
    for task in _leftovers(before):
        name = repr(task.get_coro())
        if "PollScheduler" in name or "_drive" in name or "RequestHandler" in name:
            allowed.add(task)
    return allowed


@pytest.mark.usefixtures("clean_loop")
async def test_cancelling_wait_for_task() -> None:
    before = set(asyncio.all_tasks())
    async with _world(task_duration=3600.0) as (emu, s):
        task_id = await s.create_job(
            JobType.COPY, src_container_id="a", dst_container_id="b", files=[FileInfo("w")]
        )
        waits = [asyncio.create_task(s.wait_for_task(task_id, poll=FAST_POLL)) for _ in range(5)]
        # Let some polls happen (the ledger shows them), then cancel mid-flight.
        while sum(1 for e in emu.requests if e.route == "get_task") < 5:
            await asyncio.sleep(0.005)
        for wait in waits:
            wait.cancel()
        results = await asyncio.gather(*waits, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        # A new wait on the same session still works after the cancellations.
        emu.state.finish(task_id)
        task = await asyncio.wait_for(s.wait_for_task(task_id, poll=FAST_POLL), 5)
        assert task.status == TaskStatus.SUCCESS
    assert _leftovers(before) == set()


@pytest.mark.usefixtures("clean_loop")
async def test_a_timed_out_wait_for_task_leaves_nothing() -> None:
    before = set(asyncio.all_tasks())
    async with _world(task_duration=3600.0) as (_emu, s):
        task_id = await s.create_job(
            JobType.COPY, src_container_id="a", dst_container_id="b", files=[FileInfo("t")]
        )
        with pytest.raises(asyncio.TimeoutError):
            async with asyncio.timeout(0.05):
                await s.wait_for_task(task_id, poll=FAST_POLL)
        with pytest.raises(KooDriveError):  # TaskTimeoutError, the library's own deadline
            await s.wait_for_task(task_id, poll=FAST_POLL, timeout=0.05)
    assert _leftovers(before) == set()


@pytest.mark.usefixtures("clean_loop")
@pytest.mark.parametrize("closing", ["aclosing", "garbage-collected"])
async def test_breaking_out_of_stream_jobs(closing: str) -> None:
    before = set(asyncio.all_tasks())
    async with _world(task_duration=0.5, clock_speed=50.0) as (emu, s):
        if closing == "aclosing":
            async with contextlib.aclosing(
                s.stream_jobs(_jobs(100), max_concurrency=8, poll=FAST_POLL)  # type: ignore[type-var]
            ) as stream:
                async for outcome in stream:
                    assert outcome.ok
                    break
        else:
            stream = s.stream_jobs(_jobs(100), max_concurrency=8, poll=FAST_POLL)
            async for outcome in stream:
                assert outcome.ok
                break
            # No aclose(): the loop's async-generator hook finalises it once collected.
            del stream
            for _ in range(3):
                gc.collect()
                await _settle()
            # The finaliser runs as a task of its own; let it finish.
            for _ in range(100):
                if not _leftovers(before) - _emulator_and_scheduler_tasks(before):
                    break
                await asyncio.sleep(0.01)
        created = len(emu.state.tasks())
        if closing == "aclosing":
            # At most the slots in flight, and the one being refilled.
            assert created <= 8 + 1
        await asyncio.sleep(0.05)
        # Stopped submitting once closed: no new creates afterwards.
        assert len(emu.state.tasks()) == created
        assert _leftovers(before) <= _emulator_and_scheduler_tasks(before)
    assert _leftovers(before) == set()


@pytest.mark.usefixtures("clean_loop")
async def test_cancelling_a_create_in_flight() -> None:
    before = set(asyncio.all_tasks())
    async with _world() as (emu, s):
        emu.inject(FaultKind.LATENCY, route="create_job", latency=10.0, count=1)
        create = asyncio.create_task(
            s.create_job(
                JobType.COPY, src_container_id="a", dst_container_id="b", files=[FileInfo("x")]
            )
        )
        while not emu.faults[0].hits:
            await asyncio.sleep(0.005)
        create.cancel()
        with pytest.raises(asyncio.CancelledError):
            await create
        # The session is still usable afterwards.
        assert await s.create_job(
            JobType.COPY, src_container_id="a", dst_container_id="b", files=[FileInfo("y")]
        )
    assert _leftovers(before) == set()


@pytest.mark.usefixtures("clean_loop")
async def test_closing_the_session_mid_flight() -> None:
    before = set(asyncio.all_tasks())
    async with _world(task_duration=3600.0) as (emu, s):
        task_id = await s.create_job(
            JobType.COPY, src_container_id="a", dst_container_id="b", files=[FileInfo("z")]
        )
        # Some creates hang (slow server) while the session closes.
        emu.inject(FaultKind.LATENCY, route="create_job", latency=10.0, rate=0.3)
        run = asyncio.create_task(s.run_jobs(_jobs(40), max_concurrency=10, poll=FAST_POLL))
        wait = asyncio.create_task(s.wait_for_task(task_id, poll=FAST_POLL))
        while len(emu.state.tasks()) < 5:
            await asyncio.sleep(0.005)
        await s.close()
        results = await asyncio.wait_for(asyncio.gather(run, wait, return_exceptions=True), 10)
        for result in results:
            # Documented: using a closed session raises RuntimeError; a request cut
            # short may also surface as a KooDriveError outcome. Never anything else.
            if isinstance(result, BaseException):
                assert isinstance(result, RuntimeError | KooDriveError), repr(result)
            else:
                assert isinstance(result, list)
        with pytest.raises(RuntimeError):
            await s.get_task(task_id)
    assert _leftovers(before) == set()


@pytest.mark.usefixtures("clean_loop")
async def test_a_session_that_is_never_used_needs_no_close() -> None:
    """The HTTP session is created lazily: an unused KooDriveSession owns nothing to leak."""
    session = KooDriveSession("http://127.0.0.1:9", user_id="u", token="t")
    assert repr(session)
    del session
    gc.collect()
