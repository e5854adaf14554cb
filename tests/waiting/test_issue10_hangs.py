"""Hangs found by the adversarial review (issue 10): long Retry-Afters, unreadable bodies.

Every wait here is bounded by ``asyncio.wait_for``: before the fixes these
runs stalled for an hour, a day, or forever, so the bound is what fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from waiting_helpers import FAST, gets_for, job

from koodrive_async import (
    InvalidRequestError,
    JobOutcome,
    PollPolicy,
    RateLimitError,
    ResponseValidationError,
    RetryPolicy,
    TaskTimeoutError,
)
from koodrive_async._session import KooDriveSession
from koodrive_async.emulator import FaultKind, KooDriveEmulator

#: A bound no fixed run below comes near, far below the stalls they had.
BOUND = 10.0


def creates(emu: KooDriveEmulator) -> int:
    """Create requests the emulator received."""
    return sum(1 for e in emu.requests if e.route == "create_job")


async def run_all(session: KooDriveSession, how: str, n: int, **kwargs: object) -> list[JobOutcome]:
    """``run_jobs`` or ``stream_jobs`` over ``n`` jobs, bounded by BOUND."""
    requests = [job(i) for i in range(n)]
    if how == "run":
        return await asyncio.wait_for(session.run_jobs(requests, **kwargs), BOUND)  # type: ignore[arg-type]

    async def collect() -> list[JobOutcome]:
        stream = session.stream_jobs(requests, **kwargs)  # type: ignore[arg-type]
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            return [outcome async for outcome in stream]

    return await asyncio.wait_for(collect(), BOUND)


# ---------------------------------------------------------------- item 2: fan-out


@pytest.mark.parametrize("how", ["run", "stream"])
async def test_a_retry_after_beyond_the_cap_ends_the_waiting_requests_not_the_run(
    emu: KooDriveEmulator, make_session: Callable[..., KooDriveSession], how: str
) -> None:
    # The transport gives up at once (3600 s > max_retry_after); before the
    # fix the fan-out then booked the next submission an hour out.
    session = make_session(retry=RetryPolicy(max_retry_after=60.0))
    emu.clock.speed = 1000.0
    emu.inject(FaultKind.RATE_LIMIT, route="create_job", count=1, retry_after=3600)
    outcomes = await run_all(session, how, 4, max_concurrency=1, poll=FAST)
    assert len(outcomes) == 4
    for outcome in outcomes:
        assert isinstance(outcome.error, RateLimitError), outcome
        assert outcome.task_id is None and not outcome.error.possibly_created
        # What is left of the service's hour, for the caller to act on.
        assert outcome.error.retry_after is not None and outcome.error.retry_after > 3500
    # Only the first was sent: the others would only have been refused.
    assert creates(emu) == 1
    assert emu.state.tasks() == []


async def test_a_hold_within_the_cap_is_waited_for_then_the_others_go(
    emu: KooDriveEmulator, make_session: Callable[..., KooDriveSession]
) -> None:
    session = make_session(retry=RetryPolicy(max_attempts=1, max_retry_after=60.0))
    emu.clock.speed = 1000.0
    emu.inject(FaultKind.RATE_LIMIT, route="create_job", count=1, retry_after=0.2)
    outcomes = await run_all(session, "run", 3, max_concurrency=1, poll=FAST)
    assert isinstance(outcomes[0].error, RateLimitError)
    assert [o.ok for o in outcomes[1:]] == [True, True]
    times = sorted(e.time for e in emu.requests if e.route == "create_job")
    assert len(times) == 3  # nothing sent twice
    # The second went out after the hold (ledger times are the server's, real).
    assert times[1] - times[0] >= 0.15


async def test_a_hold_longer_than_the_timeout_is_not_waited_for(
    emu: KooDriveEmulator, make_session: Callable[..., KooDriveSession]
) -> None:
    # 30 s is within max_retry_after, but the run's timeout is 0.5 s.
    session = make_session(retry=RetryPolicy(max_attempts=1, max_retry_after=60.0))
    emu.inject(FaultKind.RATE_LIMIT, route="create_job", count=1, retry_after=30)
    outcomes = await run_all(session, "run", 3, max_concurrency=1, timeout=0.5, poll=FAST)
    assert all(isinstance(o.error, RateLimitError) for o in outcomes)
    assert creates(emu) == 1


# ---------------------------------------------------------------- item 9: one retry budget


async def test_a_create_rate_limited_every_time_is_sent_max_attempts_times(
    emu: KooDriveEmulator, make_session: Callable[..., KooDriveSession]
) -> None:
    retry = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.002)
    session = make_session(retry=retry)
    emu.inject(FaultKind.RATE_LIMIT, route="create_job", retry_after=0)
    [outcome] = await run_all(session, "run", 1, poll=FAST)
    assert isinstance(outcome.error, RateLimitError)
    assert outcome.task_id is None and not outcome.error.possibly_created
    # The transport's budget, and no second one in the fan-out (was 3 x 9 = 27).
    assert creates(emu) == retry.max_attempts


# ---------------------------------------------------------------- item 3: polling


class _Seen(logging.Handler):
    """Sets an event when the poll scheduler logs a throttled poll."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "RateLimitError" in record.getMessage():
            self.event.set()


@pytest.fixture
def throttled() -> Iterator[asyncio.Event]:
    """An event set once a poll of the session was answered 429."""
    logger = logging.getLogger("koodrive_async.polling")
    handler = _Seen()
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler.event
    logger.removeHandler(handler)
    logger.setLevel(level)


@contextlib.asynccontextmanager
async def throttled_wait_on(
    emu: KooDriveEmulator, session: KooDriveSession, seen: asyncio.Event
) -> AsyncIterator[str]:
    """Wait on a task A whose poll gets ``Retry-After: 86400``; yield a finished task B."""
    task_a = await session.submit(job(1))
    task_b = await session.submit(job(2))
    emu.clock.advance(20.0)  # both finished
    emu.inject(FaultKind.RATE_LIMIT, route="get_task", count=1, retry_after=86400)
    wait_a = asyncio.create_task(session.wait_for_task(task_a, poll=FAST))
    try:
        await asyncio.wait_for(seen.wait(), BOUND)
        assert [g.status for g in gets_for(emu, task_a)] == [429]
        yield task_b
    finally:
        wait_a.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await wait_a


async def test_a_day_long_retry_after_on_one_poll_pauses_the_others_only_up_to_the_cap(
    emu: KooDriveEmulator,
    make_session: Callable[..., KooDriveSession],
    throttled: asyncio.Event,
) -> None:
    session = make_session(retry=RetryPolicy(max_attempts=1, max_retry_after=0.3))
    async with throttled_wait_on(emu, session, throttled) as task_b:
        task = await asyncio.wait_for(session.wait_for_task(task_b, poll=FAST), BOUND)
    assert task.succeeded
    assert len(gets_for(emu, task_b)) == 1


async def test_a_wait_whose_deadline_falls_in_the_pause_still_makes_its_last_poll(
    emu: KooDriveEmulator,
    make_session: Callable[..., KooDriveSession],
    throttled: asyncio.Event,
) -> None:
    # The pause lasts max_retry_after (60 s); B's deadline is 1 s away.
    session = make_session(retry=RetryPolicy(max_attempts=1, max_retry_after=60.0))
    async with throttled_wait_on(emu, session, throttled) as task_b:
        task = await asyncio.wait_for(session.wait_for_task(task_b, timeout=1.0, poll=FAST), BOUND)
    # Before the fix: TaskTimeoutError and not one GET for B.
    assert task.succeeded
    assert len(gets_for(emu, task_b)) == 1


async def test_a_wait_in_the_pause_times_out_after_one_last_poll_if_unfinished(
    emu: KooDriveEmulator,
    make_session: Callable[..., KooDriveSession],
    throttled: asyncio.Event,
) -> None:
    session = make_session(retry=RetryPolicy(max_attempts=1, max_retry_after=60.0))
    async with throttled_wait_on(emu, session, throttled):
        unfinished = await session.submit(job(3))  # the clock is frozen: it stays NEW
        with pytest.raises(TaskTimeoutError) as caught:
            await asyncio.wait_for(session.wait_for_task(unfinished, timeout=1.0, poll=FAST), BOUND)
    assert caught.value.last is not None  # it was polled, once, within the pause
    assert len(gets_for(emu, unfinished)) == 1


# ---------------------------------------------------------------- item 9: unreadable task


async def test_a_task_never_readable_fails_after_max_invalid_responses(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    task_id = await session.submit(job())
    emu.inject(FaultKind.MALFORMED_JSON, route="get_task")
    poll = PollPolicy(initial=0.01, multiplier=1.0, max_interval=0.01, max_invalid_responses=3)
    with pytest.raises(ResponseValidationError):
        # No timeout: before the fix this polled forever.
        await asyncio.wait_for(session.wait_for_task(task_id, poll=poll), BOUND)
    assert len(gets_for(emu, task_id)) == 3


async def test_the_default_tolerates_five_unreadable_answers_in_a_run(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    emu.clock.speed = 1000.0
    emu.inject(FaultKind.MALFORMED_JSON, route="get_job")  # fan-out reads jobs at job detail
    [outcome] = await run_all(session, "run", 1, poll=FAST)
    assert isinstance(outcome.error, ResponseValidationError)
    assert outcome.task_id is not None  # created; only its answers were unreadable
    assert len(gets_for(emu, outcome.task_id)) == PollPolicy().max_invalid_responses == 5


async def test_unreadable_answers_are_counted_in_a_row_only(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    task_id = await session.submit(job())
    poll = PollPolicy(initial=0.01, multiplier=1.0, max_interval=0.01, max_invalid_responses=2)
    # One bad, one good (still NEW: the clock is frozen), one bad, then done.
    emu.inject(FaultKind.MALFORMED_JSON, route="get_task", count=1)
    read = asyncio.Event()
    wait = asyncio.create_task(
        session.wait_for_task(task_id, poll=poll, on_status=lambda _task: read.set())
    )
    await asyncio.wait_for(read.wait(), BOUND)
    emu.inject(FaultKind.MALFORMED_JSON, route="get_task", count=1)
    emu.clock.advance(20.0)
    task = await asyncio.wait_for(wait, BOUND)
    assert task.succeeded
    faults = [g.fault for g in gets_for(emu, task_id)]  # type: ignore[attr-defined]
    assert faults.count(FaultKind.MALFORMED_JSON) == 2


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "5", None])
def test_max_invalid_responses_must_be_a_positive_int(value: object) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        PollPolicy(max_invalid_responses=value)  # type: ignore[arg-type]
    assert caught.value.field == "max_invalid_responses"
