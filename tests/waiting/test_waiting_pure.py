"""The pure parts of polling and fan-out: duration learning, the submission pacer,
error classification and argument checks. No I/O here; everything that talks
to a server is tested against the emulator in the other files."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from koodrive_async import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    FileInfo,
    ImportTaskRequest,
    InvalidRequestError,
    JobAction,
    JobRequest,
    JobType,
    NotFoundError,
    PermissionDeniedError,
    PollPolicy,
    RateLimitError,
    ResponseValidationError,
    ServerError,
)
from koodrive_async._estimator import MIN_SAMPLES, DurationEstimator
from koodrive_async._estimator import duration_key as request_kind
from koodrive_async._pacing import MIN_RATE, SubmissionPacer
from koodrive_async._polling import is_transient


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------ estimator


def test_estimator_needs_min_samples_then_reports_quantiles() -> None:
    est = DurationEstimator(window=100)
    for i in range(MIN_SAMPLES - 1):
        est.observe("k", 1.0 + i)
        assert est.estimate("k") is None
    est = DurationEstimator(window=100)
    for i in range(100):
        est.observe("k", 0.5 + i / 100)  # 0.50 .. 1.49
    low, median, high = est.estimate("k")  # type: ignore[misc]
    assert low == pytest.approx(0.54)
    assert median == pytest.approx(0.99)
    assert high == pytest.approx(1.44)
    assert est.estimate("other") is None


def test_estimator_window_follows_drift_and_ignores_garbage() -> None:
    est = DurationEstimator(window=8)
    for _ in range(8):
        est.observe("k", 10.0)
    for _ in range(8):
        est.observe("k", 2.0)
    est.observe("k", math.nan)
    est.observe("k", -1.0)
    assert est.estimate("k") == (2.0, 2.0, 2.0)


# ------------------------------------------------------------------ pacer


def test_pacer_without_cap_never_waits() -> None:
    clock = FakeClock()
    pacer = SubmissionPacer(None, clock=clock)
    assert all(pacer.reserve() == 0 for _ in range(1000))
    assert pacer.rate is None


def test_pacer_spaces_submissions_at_the_cap() -> None:
    clock = FakeClock()
    pacer = SubmissionPacer(10.0, clock=clock)
    delays = [pacer.reserve() for _ in range(5)]
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    # In any window of w seconds at most w * rate + 1 submissions go out.
    clock.now += 10.0
    times = []
    for _ in range(200):
        times.append(clock.now + pacer.reserve())
    for i in range(len(times)):
        in_window = sum(1 for t in times if times[i] <= t < times[i] + 1.0)
        assert in_window <= 11


def test_pacer_halves_on_429_and_recovers_additively_up_to_the_cap() -> None:
    clock = FakeClock()
    pacer = SubmissionPacer(20.0, clock=clock)
    sent = clock.now
    pacer.reserve()
    pacer.rate_limited(sent, retry_after=None)
    assert pacer.rate == pytest.approx(10.0)
    assert pacer.backoffs == 1
    # A second 429 for a submission sent before the cut does not cut again.
    pacer.rate_limited(sent - 0.01, retry_after=None)
    assert pacer.rate == pytest.approx(10.0)
    # One for a submission sent after the cut does.
    clock.now += 0.5
    pacer.rate_limited(clock.now, retry_after=None)
    assert pacer.rate == pytest.approx(5.0)
    assert pacer.backoffs == 2
    # Recovery: +cap/10 per second, never above the cap.
    clock.now += 1.0
    pacer.reserve()
    assert pacer.rate == pytest.approx(7.0)
    clock.now += 100.0
    pacer.reserve()
    assert pacer.rate == pytest.approx(20.0)


def test_pacer_honours_retry_after_for_everyone() -> None:
    clock = FakeClock()
    pacer = SubmissionPacer(None, clock=clock)
    pacer.reserve()
    pacer.rate_limited(clock.now, retry_after=3.0)
    assert pacer.reserve() >= 3.0
    assert pacer.rate is not None and pacer.rate >= MIN_RATE


def test_uncapped_pacer_starts_from_measured_rate_and_lifts_itself() -> None:
    clock = FakeClock()
    pacer = SubmissionPacer(None, clock=clock)
    for _ in range(100):  # 100 submissions within one second
        pacer.reserve()
        clock.now += 0.005
    pacer.rate_limited(clock.now, retry_after=None)
    assert pacer.rate is not None
    assert 25.0 <= pacer.rate <= 100.0  # half the measured rate, roughly
    clock.now += 1000.0
    pacer.reserve()
    assert pacer.rate is None  # recovered well past the rate that was throttled


def test_pacer_never_goes_below_min_rate() -> None:
    clock = FakeClock()
    pacer = SubmissionPacer(1.0, clock=clock)
    for _ in range(20):
        clock.now += 0.001
        pacer.rate_limited(clock.now, retry_after=None)
    assert pacer.rate == pytest.approx(MIN_RATE)


def _most_in_a_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


def test_pacer_lets_late_wakers_go_one_slot_apart_not_together() -> None:
    # Ten submissions book their slots 0.1 s apart; the loop is then busy for
    # a second, so all ten wake at once. They are let go one by one.
    clock = FakeClock()
    pacer = SubmissionPacer(10.0, clock=clock)
    for _ in range(10):
        pacer.reserve()
    clock.now += 1.0
    granted: list[float] = []
    waiting = 10
    while waiting:
        wait = pacer.spacing_wait(clock.now)
        if wait > 0:
            clock.now += wait
            continue
        pacer.granted(clock.now)
        granted.append(clock.now)
        waiting -= 1
    # At most w * rate + 1.5 in any window of w: the first two half a slot
    # apart, then a slot apart.
    assert _most_in_a_window(granted, 0.5) <= 6
    assert _most_in_a_window(granted, 0.1) <= 2
    assert granted[-1] - granted[0] == pytest.approx(0.05 + 8 * 0.1)


def test_pacer_does_not_drift_when_every_waker_is_a_little_late() -> None:
    # Timer lateness below half a slot never adds a wait: 100 submissions at
    # 50/s, each woken 0-9 ms after its slot, all go at once on waking.
    clock = FakeClock()
    pacer = SubmissionPacer(50.0, clock=clock)
    start = clock.now
    slots = [start + pacer.reserve() for _ in range(100)]
    for index, slot in enumerate(slots):
        woke = slot + (index * 7 % 10) / 1000.0
        assert pacer.spacing_wait(woke) == 0.0
        pacer.granted(woke)


async def test_pacer_spaces_what_it_lets_go_after_the_loop_was_busy() -> None:
    # The real loop: twelve acquirers book slots 10 ms apart, then the loop
    # is blocked for 80 ms (a long callback elsewhere). What acquire returns
    # is when each went: never more than w * rate + 1.5 in a window of w.
    pacer = SubmissionPacer(100.0)
    waiters = [asyncio.ensure_future(pacer.acquire()) for _ in range(12)]
    await asyncio.sleep(0)  # every one has booked its slot
    time.sleep(0.08)
    granted = sorted(await asyncio.gather(*waiters))
    assert _most_in_a_window(granted, 0.05) <= 6
    assert granted[-1] - granted[0] >= 0.1


async def _backlog(pacer: SubmissionPacer, count: int, block: float) -> list[asyncio.Task[float]]:
    # ``count`` acquirers book their slots, then the loop is blocked for
    # ``block`` seconds (a long callback elsewhere): their slots pass unseen.
    waiters = [asyncio.ensure_future(pacer.acquire()) for _ in range(count)]
    await asyncio.sleep(0)
    time.sleep(block)
    return waiters


async def test_pacer_lets_a_backlog_go_in_the_order_of_its_slots() -> None:
    pacer = SubmissionPacer(100.0)
    waiters = await _backlog(pacer, 12, 0.08)
    granted = await asyncio.gather(*waiters)
    assert granted == sorted(granted)
    assert len(set(granted)) == len(granted)


async def test_pacer_sends_nothing_during_a_hold_that_comes_while_a_backlog_drains() -> None:
    pacer = SubmissionPacer(100.0)
    window: list[float] = []

    def hold() -> None:
        window.append(time.monotonic())
        pacer.hold(0.05)
        window.append(time.monotonic() + 0.05)

    waiters = await _backlog(pacer, 12, 0.08)
    # Wait for the third to go, so that the hold comes in the backlog's middle.
    while sum(w.done() for w in waiters) < 3:
        await asyncio.sleep(0)
    hold()
    granted = await asyncio.gather(*waiters)
    start, end = window
    assert not [t for t in granted if start < t < end - 1e-3]
    assert sum(1 for t in granted if t >= end - 1e-3) >= 1


async def test_a_waiter_cancelled_at_the_gate_lets_the_others_through() -> None:
    pacer = SubmissionPacer(100.0)
    waiters = await _backlog(pacer, 8, 0.05)
    # Two have gone: the third sleeps at the gate's head, the rest wait on it.
    while sum(w.done() for w in waiters) < 2:
        await asyncio.sleep(0)
    at_the_gate = [w for w in waiters if not w.done()]
    at_the_gate[0].cancel()  # the one holding the gate, asleep
    at_the_gate[2].cancel()  # one queued behind it
    # A gate left locked by a cancelled holder would hang the rest.
    results = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), 2.0)
    assert sum(isinstance(r, asyncio.CancelledError) for r in results) == 2
    assert sum(isinstance(r, float) for r in results) == 6


@pytest.mark.parametrize("rate", [50.0, 1000.0])
def test_pacer_forgives_timer_lateness_up_to_its_slack(rate: float) -> None:
    # At 1,000/s half a slot is 0.5 ms, below what the loop's millisecond
    # timers hit: lateness up to TIMER_SLACK (2 ms) adds no wait either.
    clock = FakeClock()
    pacer = SubmissionPacer(rate, clock=clock)
    late = max(0.5 / rate, 0.002) * 0.9
    slots = [clock.now + pacer.reserve() for _ in range(50)]
    for index, slot in enumerate(slots):
        woke = slot + (late if index % 2 else 0.0)
        assert pacer.spacing_wait(woke) == 0.0, index
        pacer.granted(woke)


def test_pacer_lets_no_two_go_together_after_its_rate_rose() -> None:
    # Cut to 25/s, a submission let go late (its nominal time half an old,
    # longer slot back), then the rate recovers to the cap of 50/s: the next
    # still waits half a new slot, not nothing.
    clock = FakeClock()
    pacer = SubmissionPacer(50.0, clock=clock)
    pacer.rate_limited(clock.now, retry_after=None)
    assert pacer.rate == pytest.approx(25.0)
    clock.now += 5.0
    pacer.granted(clock.now)
    pacer.reserve()  # the booking that recovers the rate
    assert pacer.rate == pytest.approx(50.0)
    assert pacer.spacing_wait(clock.now) >= 0.01 - 1e-9


# ------------------------------------------------------------------ errors and kinds


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (APIConnectionError("reset"), True),
        (APITimeoutError("slow"), True),
        (RateLimitError(status_code=429), True),
        (ServerError(status_code=503), True),
        (ResponseValidationError("bad json"), True),
        (AuthenticationError(status_code=401), False),
        (BadRequestError(status_code=400), False),
        (NotFoundError(status_code=404), False),
        (PermissionDeniedError(status_code=403), False),
        (ValueError("bug"), False),
    ],
)
def test_transient_classification(exc: Exception, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_request_kind_separates_types_and_actions() -> None:
    copy = JobRequest(JobType.COPY, "a", "b", [FileInfo("f")])
    recycle = JobRequest(JobType.DELETE, "a", "b", [FileInfo("f", "/f")], JobAction.RECYCLE)
    purge = JobRequest(
        JobType.DELETE, "a", "b", [FileInfo("f", "/f")], JobAction.DELETE_PERMANENTLY
    )
    kinds = {request_kind(r) for r in (copy, recycle, purge, ImportTaskRequest("o", "u"))}
    assert len(kinds) == 4
    assert request_kind(copy) == request_kind(JobRequest(JobType.COPY, "x", "y", [FileInfo("g")]))


def test_poll_policy_validation() -> None:
    with pytest.raises(InvalidRequestError):
        PollPolicy(initial=0)
    with pytest.raises(InvalidRequestError):
        PollPolicy(multiplier=0.5)
    with pytest.raises(InvalidRequestError):
        PollPolicy(jitter=1.0)
