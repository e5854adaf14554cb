"""No blind first wave: prior durations, progress, the first few completions (issue 17).

The statistics are pure (tested without I/O); the scheduler's placement is
read off the waiters it plans, for units read from the emulator over loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from waiting_helpers import job

from koodrive_async import (
    FileInfo,
    InvalidRequestError,
    Job,
    JobCancelledError,
    JobRequest,
    JobType,
    PollPolicy,
)
from koodrive_async._enums import JobStatus
from koodrive_async._estimator import (
    COLD_RATIO,
    COLD_REACH,
    DELAY_FRACTION,
    FAST_QUANTILE,
    FIRST_GAIN,
    FIRST_QUANTILE,
    FIRST_SPREAD,
    MIN_SAMPLES,
    POSTERIOR_DELAY,
    SCOUTS,
    TABLE_HALVE,
    TABLE_MIN,
    USED_BINS,
    WINDOW,
    DurationEstimator,
    ProgressTable,
    duration_key,
    place_next,
    remaining_from_progress,
)
from koodrive_async._models import Request, Task
from koodrive_async._polling import LAST_POLL_LEAD, MAX_COLD
from koodrive_async._session import KooDriveSession
from koodrive_async._trackers import JobTracker
from koodrive_async.bulk._priors import MAX_SEEDED_LINES, seed_from_journal
from koodrive_async.emulator import KooDriveEmulator

#: A policy whose blind schedule is far from every learnt placement below.
BLIND = PollPolicy(initial=30.0, multiplier=2.0, max_interval=60.0, jitter=0.0)


# ------------------------------------------------------------------ pure statistics


def test_a_few_completions_are_enough_for_an_estimate() -> None:
    est = DurationEstimator()
    for _ in range(3):
        est.observe("k", 1.0)
    assert MIN_SAMPLES <= 3
    assert est.estimate("k") == (1.0, 1.0, 1.0)


def test_seed_gives_an_estimate_before_any_completion_and_keeps_the_newest() -> None:
    est = DurationEstimator()
    taken = est.seed("k", [math.nan, -1.0, *[100.0] * WINDOW, 2.0, 2.0, 2.0])
    assert taken == WINDOW
    assert est.estimate("k") is not None
    # The oldest valid values fell out; the three newest are among the kept.
    ring = est._kinds["k"].ring
    assert len(ring) == WINDOW and ring.count(2.0) == 3
    assert est.seed("other", [math.inf, -3.0]) == 0
    assert est.estimate("other") is None


def test_remaining_from_progress_uses_the_rate_between_two_answers() -> None:
    # 25% after 1 s since the start: 3 s to go at that rate.
    assert remaining_from_progress(1.0, 0.25) == pytest.approx(3.0)
    # A pending phase made the first answer show 10% at 2 s, then 60% at 3 s:
    # 50% per second since then, so 0.8 s to go (the start-based rate says 2 s).
    assert remaining_from_progress(3.0, 0.6, (2.0, 0.1)) == pytest.approx(0.8)
    # Progress that did not move, or says nothing, is ignored.
    assert remaining_from_progress(3.0, 0.6, (2.0, 0.6)) == pytest.approx(2.0)
    for fraction in (0.0, 1.0, -0.5, 1.5):
        assert remaining_from_progress(2.0, fraction) is None


def test_the_progress_table_is_learnt_from_a_few_finished_units() -> None:
    est = DurationEstimator()
    for _ in range(TABLE_MIN - 1):
        est.observe_progress("k", 0.55, 0.6)
    est.observe_progress("k", 0.52, math.nan)  # ignored
    est.observe_progress("k", 1.0, 0.9)  # not progress: ignored
    assert est.progress_table("k") is None  # not enough answers yet
    est.observe_progress("k", 0.0, 1.7)  # no progress yet, at the end (a late midpoint): kept
    table = est.progress_table("k")
    assert table is not None and table.answers == TABLE_MIN
    assert est.progress_table("other") is None
    # At 60% of their time units said 50%-59%: that answer is likely there,
    # any other ruled out. A share nothing was seen at says what the kind
    # says everywhere (31 of 32 answers said 50%-59%): it weighs no
    # candidate duration against another.
    assert table.likelihood(5, 0.6) > 0.95
    assert table.likelihood(9, 0.6) == 0.0
    assert table.likelihood(0, 0.999) == table.likelihood(0, 5.0) > 0.5
    assert table.likelihood(5, 0.2) == pytest.approx((TABLE_MIN - 1) / TABLE_MIN)
    assert table.likelihood(0, 0.2) == pytest.approx(1 / TABLE_MIN)


def test_the_progress_table_forgets_old_answers() -> None:
    table = ProgressTable()
    for _ in range(TABLE_HALVE - 1):
        table.add(0.1, 0.5)
    assert table.likelihood(1, 0.5) > 0.99
    # The service changed: its units now report 90% at half their time.
    for _ in range(TABLE_HALVE):
        table.add(0.9, 0.5)
    assert table.answers < TABLE_HALVE
    assert table.likelihood(9, 0.5) > 0.6 > table.likelihood(1, 0.5)


def test_the_first_poll_starts_at_a_quantile_and_follows_what_first_answers_found() -> None:
    est = DurationEstimator()
    assert est.first_poll("k") is None
    for i in range(10):
        est.observe("k", 1.0 + i / 10)  # 1.0 .. 1.9, median 1.4
    start = est.first_poll("k")
    q = FIRST_QUANTILE
    assert start == pytest.approx(1.0 + (math.ceil(q * 10) - 1) / 10)  # that quantile
    # Found finished: earlier, by (1 - q) of the gain; found running: later, by q.
    est.observe_first("k", True, at=start, within=0.2)
    assert est.first_poll("k") == pytest.approx(start - FIRST_GAIN * 1.4 * (1 - q))
    est.observe_first("k", False, at=start + 0.1, within=0.2)
    moved = start - FIRST_GAIN * 1.4 * (1 - q) + FIRST_GAIN * 1.4 * q
    assert est.first_poll("k") == pytest.approx(moved)
    # An answer read far from that point (a queue of polls behind a slow
    # service) says nothing about it.
    est.observe_first("k", True, at=3.0, within=0.2)
    assert est.first_poll("k") == pytest.approx(moved)


def test_the_first_poll_waits_for_its_share_of_the_first_cohort() -> None:
    # Twenty units wait before anything of their kind is known. The first
    # to end are the fast ones: a quantile of them would put every later
    # unit's first poll at the fast end. The cohort's own 25% quantile (its
    # 5th shortest) is known once five of them ended.
    est = DurationEstimator()
    assert [est.join_cohort("k") for _ in range(20)] == [True] * 20
    rank = math.ceil(FIRST_QUANTILE * 20)
    ended = [0.50, 0.55, 0.60, 0.70, 0.80]
    for duration in ended[: rank - 1]:
        est.observe("k", duration, cohort=True)
    assert est.durations("k")  # the durations are known...
    assert est.first_poll("k") is None  # ...but not yet where a first poll goes
    # A unit that starts now is not part of the cohort (it closed at the
    # first duration learnt).
    assert est.join_cohort("k") is False
    est.observe("k", ended[rank - 1], cohort=True)
    assert est.first_poll("k") == pytest.approx(ended[rank - 1])
    # Without the cohort, the same durations would have put it at their own
    # quantile, the second of them.
    plain = DurationEstimator()
    for duration in ended:
        plain.observe("k", duration)
    assert plain.first_poll("k") == pytest.approx(ended[math.ceil(FIRST_QUANTILE * 5) - 1])


def test_units_that_leave_the_cohort_unfinished_are_not_waited_for() -> None:
    est = DurationEstimator()
    for _ in range(16):
        est.join_cohort("k")
    for duration in (1.0, 1.1, 1.2):
        est.observe("k", duration, cohort=True)
    assert est.first_poll("k") is None  # 3 of 16 ended: its quantile is the 4th
    for _ in range(4):
        est.leave_cohort("k")  # cancelled waits: 12 remain, whose quantile is the 3rd
    assert est.first_poll("k") == pytest.approx(1.2)


def test_a_cohort_whose_slow_units_outlast_many_later_ones_is_not_waited_for() -> None:
    # Thirty units wait; three end fast and the rest take an hour. Thirty
    # later units (as many as the cohort) end fast meanwhile: the kind's
    # durations decide, not a quarter of a cohort that will take an hour to end.
    est = DurationEstimator()
    for _ in range(30):
        assert est.join_cohort("k")
    for duration in (1.0, 1.1, 1.2):
        est.observe("k", duration, cohort=True)
    for _ in range(29):
        est.observe("k", 1.0)
    assert est.first_poll("k") is None
    est.observe("k", 1.0)
    assert est.first_poll("k") == pytest.approx(1.0)


def test_with_staggered_starts_the_cohorts_quantile_waits_until_its_youngest_is_as_old() -> None:
    # Twenty units started over 2 s; the FIRST_QUANTILE share of them that
    # ended first (the early starters) took up to 0.9-1.0 s. A unit started
    # at 2.0 s that is still running may yet end sooner: at 2.5 s that is not
    # yet the cohort's quantile; at 3.0 s every unit still running has run
    # 1.0 s.
    est = DurationEstimator()
    for i in range(20):
        est.join_cohort("k", started=i / 10 * (20 / 19) if i < 19 else 2.0)
    rank = math.ceil(FIRST_QUANTILE * 20)
    assert 4 <= rank <= 5
    ended = [0.6, 0.7, 0.8, 0.9, 1.0][-rank:]
    for duration in ended:
        est.observe("k", duration, cohort=True)
    assert est.first_poll("k", now=2.5) is None
    assert est.first_poll("k", now=3.0) == pytest.approx(ended[-1])


def test_the_first_cohort_is_its_first_scouts_and_the_rest_wait_for_them() -> None:
    est = DurationEstimator()
    assert not est.scouting("k")  # nobody out: nothing to wait for
    joined = [est.join_cohort("k") for _ in range(SCOUTS + 5)]
    assert joined == [True] * SCOUTS + [False] * 5
    assert est.scouting("k")
    est.leave_cohort("k")  # one left unfinished: room for another
    assert est.join_cohort("k")
    assert not est.join_cohort("k")
    rank = math.ceil(FIRST_QUANTILE * SCOUTS)
    for i in range(rank - 1):
        est.observe("k", 1.0 + i / 100, cohort=True)
    assert est.scouting("k") and est.first_poll("k") is None
    est.observe("k", 1.5, cohort=True)
    assert est.first_poll("k") == pytest.approx(1.5)
    assert not est.scouting("k")  # placed: nobody waits any longer


def test_once_all_of_the_cohort_ended_its_quantile_is_known_whatever_its_youngest() -> None:
    # Eight units: seven started at 0 s, the youngest at 5 s. While the
    # youngest runs, a quantile of the others may be too late for it; once
    # it ended (sooner than all of them), the whole cohort is known and
    # nobody is left to wait.
    est = DurationEstimator()
    for started in [0.0] * 7 + [5.0]:
        est.join_cohort("k", started)
    for duration in (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6):
        est.observe("k", duration, cohort=True)
    assert est.scouting("k")
    assert est.first_poll("k", now=5.3) is None  # the youngest, 0.3 s in, may end sooner
    est.observe("k", 0.9, cohort=True)
    assert not est.scouting("k")
    assert est.first_poll("k", now=5.3) == pytest.approx(1.0)  # the 2nd shortest of 8


def test_seeded_durations_do_not_wait_for_a_cohort() -> None:
    est = DurationEstimator()
    for _ in range(40):
        est.join_cohort("k")
    est.seed("k", [2.0, 2.0, 2.0, 2.0])
    assert est.first_poll("k") == pytest.approx(2.0)


def test_the_first_poll_of_a_widely_spread_kind_stays_near_its_fast_end() -> None:
    # Durations from 0.1 s to 10 s: the 25% quantile (2.5 s) would keep a
    # unit that ended at 0.1 s waiting 24 times its duration. The first poll
    # comes FIRST_SPREAD times past the fast end instead, and is tracked at
    # the share of units that end before it.
    est = DurationEstimator()
    count = SCOUTS
    durations = [0.1 + 9.9 * i / (count - 1) for i in range(count)]  # 0.1 .. 10.0
    for _ in durations:
        assert est.join_cohort("k")
    for duration in durations[: count // 3]:
        est.observe("k", duration, cohort=True)
    fast = durations[math.ceil(0.05 * count) - 1]
    start = est.first_poll("k")
    assert start == pytest.approx(fast * (1 + FIRST_SPREAD))
    assert start < durations[math.ceil(FIRST_QUANTILE * count) - 1] / 2
    # Found running there, it moves later by the share that ends before it,
    # not by FIRST_QUANTILE.
    share = sum(1 for d in durations if d <= start) / count
    assert share < FIRST_QUANTILE / 2
    median = est.estimate("k")[1]  # type: ignore[index]
    est.observe_first("k", False, at=start, within=0.5)
    assert est.first_poll("k") == pytest.approx(start + FIRST_GAIN * median * share)


def test_a_unit_found_ended_at_a_blind_first_poll_does_not_pull_the_fast_end_in() -> None:
    # One unit was found ended at a blind first poll at 0.5 s: it is learnt
    # at a guess (here 0.05 s), but only "before 0.5 s" is known. The fast
    # end is read as 0.5 s, so the first poll may come up to 1 s; taking the
    # guess for the fast end would have capped it at 0.1 s.
    est = DurationEstimator()
    for _ in range(20):
        est.join_cohort("k")
    est.observe("k", 0.05, cohort=True, unseen_before=0.5)
    for duration in (0.9, 1.0, 1.1, 1.2):
        est.observe("k", duration, cohort=True)
    assert est.first_poll("k") == pytest.approx(0.5 * (1 + FIRST_SPREAD))


#: Durations 0.50, 0.51, ..., 1.50 (median 1.0): the benchmark's distribution.
UNIFORM = [0.5 + i / 100 for i in range(101)]
BUDGET = DELAY_FRACTION * 1.0
#: The fast end of UNIFORM, and of its 50 durations longer than 1.0 s.
FAST_END = 0.5 + (math.ceil(FAST_QUANTILE * 101) - 1) / 100
FAST_AFTER_1S = 1.01 + (math.ceil(FAST_QUANTILE * 50) - 1) / 100


@pytest.mark.parametrize(
    ("elapsed", "durations", "seen", "table", "first", "expected"),
    [
        # Nothing known, no progress: nothing places it (the policy's schedule).
        (0.0, [], None, None, None, None),
        # First poll, tracked point ahead: there.
        (0.0, UNIFORM, None, None, 0.7, (0.7, BUDGET)),
        # No tracked point: after the fast end of the durations.
        (0.0, UNIFORM, None, None, None, (FAST_END + BUDGET, BUDGET)),
        # Seen running at 1.0: after the fast end of the durations longer than 1.0.
        (1.0, UNIFORM, None, None, None, (FAST_AFTER_1S + BUDGET, BUDGET)),
        # The tracked point passed already (re-planned late): as any later poll.
        (1.0, UNIFORM, None, None, 0.7, (FAST_AFTER_1S + BUDGET, BUDGET)),
        # Durations all alike: the first poll just after them, not before.
        (0.0, [1.0, 1.0, 1.0], None, None, 0.9, (1.0 + BUDGET, BUDGET)),
        # Outlived every known duration, no progress: back off.
        (2.0, UNIFORM, None, None, None, None),
        # Outlived, progress not learnt, but its own says where the end is;
        # the budget is its own scale then (the durations say nothing of
        # it): a share of the 4 s its progress predicts, the end no sooner
        # than COLD_RATIO of the way (2.0 + 0.3 * 2.0).
        (2.0, UNIFORM, (2.0, 0.5), None, None, (2.6 + 4.0 * BUDGET, 4.0 * BUDGET)),
    ],
)
def test_place_next(
    elapsed: float,
    durations: list[float],
    seen: tuple[float, float] | None,
    table: ProgressTable | None,
    first: float | None,
    expected: tuple[float, float] | None,
) -> None:
    placed = place_next(elapsed, durations, seen, table, first)
    if expected is None:
        assert placed is None
    else:
        assert placed == pytest.approx(expected)


def test_place_next_before_anything_was_learnt_follows_progress_cautiously() -> None:
    # 50% after 2 s: the straight line says 2 s to go. Budget: a share of the
    # whole it predicts; the end no sooner than COLD_RATIO of the way there,
    # and never further than COLD_REACH of the elapsed time.
    at, budget = place_next(2.0, [], (2.0, 0.5))  # type: ignore[misc]
    assert budget == pytest.approx(DELAY_FRACTION * 4.0)
    assert at == pytest.approx(min(2.0 + COLD_RATIO * 2.0, 2.0 * (1 + COLD_REACH)) + budget)
    # 10% after 1 s (9 s to go by the straight line): at most 3× the elapsed
    # time sets the budget, and the end is not pushed past COLD_REACH.
    at, budget = place_next(1.0, [], (1.0, 0.1))  # type: ignore[misc]
    assert budget == pytest.approx(DELAY_FRACTION * 3.0)
    assert at == pytest.approx(1.0 * (1 + COLD_REACH) + budget)


def _straight_table(answers_per_bin: int = 20) -> ProgressTable:
    # Units whose progress is the share of their time they have used.
    table = ProgressTable()
    for row in range(USED_BINS):
        share = (row + 0.5) / USED_BINS
        for _ in range(answers_per_bin):
            table.add(min(share, 0.99), share)
    return table


def test_place_next_weighs_the_durations_by_the_progress_reported() -> None:
    table = _straight_table()
    # 50% at 0.6 s: by the table it had used 50-60% of its time, so it ends
    # in (1.0, 1.2]; the durations below are nearly ruled out, whatever
    # their number, and the poll comes the posterior budget after its fast end.
    at, budget = place_next(0.6, UNIFORM, (0.6, 0.5), table)  # type: ignore[misc]
    assert budget == pytest.approx(POSTERIOR_DELAY * 1.0)
    assert 1.0 < at - budget < 1.1
    # Without the table, only the durations longer than 0.6 s and the
    # cautious cold rule: an earlier poll, which would find it running.
    cold_at, _ = place_next(0.6, UNIFORM, (0.6, 0.5))  # type: ignore[misc]
    assert cold_at < at - budget
    # 90% at 0.6 s: it is nearly done (0.6-0.67 s), and the poll comes then.
    soon, _ = place_next(0.6, UNIFORM, (0.6, 0.9), table)  # type: ignore[misc]
    assert soon - budget < 0.7


def test_place_next_finds_the_end_of_a_unit_older_than_every_duration() -> None:
    # Early in a first wave only fast units ended: a unit older than all of
    # them is placed by the table alone, between its age and a few times it.
    table = _straight_table()
    at, budget = place_next(2.0, [0.5, 0.6, 0.7], (2.0, 0.5), table)  # type: ignore[misc]
    # 50% at 2 s: it had used 50-60% of its time, so it ends in (3.3, 4.0].
    assert 3.3 < at - budget <= 4.0
    assert budget == pytest.approx(POSTERIOR_DELAY * (2.0 / 0.525), rel=0.1)
    # An answer the table puts beyond the reach (5% at 1 s: 20 s) is bounded.
    far, _ = place_next(1.0, [], (1.0, 0.05), table)  # type: ignore[misc]
    assert far <= 3.0 * 1.0 + POSTERIOR_DELAY * 3.0


def test_an_answer_that_says_nothing_places_as_the_durations_alone() -> None:
    # A kind that reports no progress until its end: its table learns that
    # every share of its time says 0. Such an answer weighs no duration
    # against another, and the placement is the durations' own.
    table = ProgressTable()
    for row in range(USED_BINS):
        for _ in range(5):
            table.add(0.0, (row + 0.5) / USED_BINS)
    for elapsed in (0.6, 0.9, 1.2):
        alone = place_next(elapsed, UNIFORM)
        assert alone is not None
        assert place_next(elapsed, UNIFORM, (elapsed, 0.0), table) == pytest.approx(alone)
    # A unit that outlived them all, with no progress: backs off, as without it.
    assert place_next(2.0, UNIFORM, (2.0, 0.0), table) is None
    # Durations that tie (most jobs of one length): still nothing moves.
    tied = sorted([0.5 + 0.4 * i / 38 for i in range(38)] + [1.0] * 218)
    for elapsed in (0.3, 0.6):
        assert place_next(elapsed, tied, (elapsed, 0.0), table) == place_next(elapsed, tied)
    # A tenth the kind never reported: as if nothing were learnt of progress.
    unlearnt = place_next(0.9, UNIFORM, (0.9, 0.5))
    assert place_next(0.9, UNIFORM, (0.9, 0.5), table) == pytest.approx(unlearnt)


def test_place_next_never_budgets_less_than_a_get_takes() -> None:
    assert place_next(0.0, [1.0, 1.0, 1.0], min_budget=0.5) == (1.0 + 0.5, 0.5)


# ------------------------------------------------------------------ the scheduler


def _job(progress: int, status: JobStatus = JobStatus.PROCESSING) -> Job:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    return Job("J1", status=status, progress=progress, create_time=created)


async def test_seeded_durations_plan_the_first_waiter_of_a_kind(
    session: KooDriveSession,
) -> None:
    like = job()
    assert session.seed_durations(like, [2.0, 2.0, 2.0, math.nan]) == 3
    task_id = await session.submit(like)
    scheduler = session._scheduler()
    now = scheduler.loop.time()
    waiter = scheduler.add(task_id, policy=BLIND, kind=duration_key(like), started=now)
    try:
        # Planned from the seeded 2 s (all alike: its first poll one budget
        # after them), not on the blind 30 s schedule.
        assert waiter.step == pytest.approx(DELAY_FRACTION * 2.0)
        assert waiter.in_heap
        assert waiter.due == pytest.approx(now + 2.0 + waiter.step, abs=0.01)
    finally:
        scheduler.discard(waiter)


async def test_seeding_replans_a_waiter_already_on_the_blind_schedule(
    session: KooDriveSession,
) -> None:
    like = job()
    task_id = await session.submit(like)
    scheduler = session._scheduler()
    now = scheduler.loop.time()
    waiter = scheduler.add(task_id, policy=BLIND, kind=duration_key(like), started=now)
    try:
        assert waiter.in_heap and waiter.due == pytest.approx(now + 30.0, abs=0.1)
        session.seed_durations(like, [1.0] * MIN_SAMPLES)
        assert waiter.step > 0
        assert waiter.in_heap and waiter.due < now + 2.0
    finally:
        scheduler.discard(waiter)


@contextlib.contextmanager
def _cohort(scheduler: Any, size: int, started: float) -> Iterator[list[Any]]:
    # ``size`` waiters of kind "K" on the blind schedule, started together;
    # every waiter in the list (the test may add more) is discarded after.
    waiters = [scheduler.add(f"C{i}", policy=BLIND, kind="K", started=started) for i in range(size)]
    try:
        yield waiters
    finally:
        for waiter in waiters:
            scheduler.discard(waiter)


def _end(scheduler: Any, waiter: Any, duration: float) -> None:
    # What _settle does for a unit seen running just before ``duration``.
    assert waiter.started is not None
    waiter.prev_poll = waiter.started + duration - 0.02
    scheduler._learn(waiter, Task(waiter.task_id), waiter.started + duration + 0.02)
    waiter.set_result(None)


async def test_a_waiter_that_starts_after_the_first_completions_waits_for_the_cohorts_quantile(
    session: KooDriveSession,
) -> None:
    scheduler = session._scheduler()
    now = scheduler.loop.time()
    with _cohort(scheduler, 20, now) as cohort:
        for waiter, duration in zip(cohort, (0.5, 0.6, 0.7), strict=False):
            _end(scheduler, waiter, duration)
        assert scheduler.estimator.durations("K")
        # Three of twenty ended: their quantile (0.6 s) is only the fast end.
        # A unit that starts now is not polled there: it is held, unpolled,
        # until the cohort's quantile is known (its due only a fallback).
        later = scheduler.add("L1", policy=BLIND, kind="K", started=now + 0.8)
        cohort.append(later)
        assert later.step == 0.0 and later.held
        assert later.due == pytest.approx(scheduler.loop.time() + BLIND.max_interval, abs=0.1)
        rank = math.ceil(FIRST_QUANTILE * 20)
        assert 4 <= rank <= 5
        more = [0.9, 1.0][: rank - 3]
        for waiter, duration in zip(cohort[3:rank], more, strict=True):
            _end(scheduler, waiter, duration)
        # The cohort's FIRST_QUANTILE is known: its rank-th shortest. The
        # held unit is re-planned there, from its own start.
        assert scheduler.estimator.first_poll("K") == pytest.approx(more[-1])
        assert later.step > 0.0 and not later.held
        assert later.due == pytest.approx(now + 0.8 + more[-1])


async def test_a_cancelled_wait_leaves_its_kinds_first_cohort(session: KooDriveSession) -> None:
    scheduler = session._scheduler()
    with _cohort(scheduler, 16, scheduler.loop.time()) as cohort:
        for waiter, duration in zip(cohort, (0.5, 0.6, 0.7), strict=False):
            _end(scheduler, waiter, duration)
        assert scheduler.estimator.first_poll("K") is None  # 3 of 16
        for waiter in cohort[3:7]:
            scheduler.discard(waiter)  # 12 left: three of them is its FIRST_QUANTILE share
        assert scheduler.estimator.first_poll("K") == pytest.approx(0.7)


async def test_a_cancelled_wait_that_completes_the_cohorts_share_replans_the_held(
    session: KooDriveSession,
) -> None:
    scheduler = session._scheduler()
    now = scheduler.loop.time()
    # Started a second ago: every unit of it still running has run longer
    # than the quantile below.
    with _cohort(scheduler, 16, now - 1.0) as cohort:
        for waiter, duration in zip(cohort, (0.5, 0.6, 0.7), strict=False):
            _end(scheduler, waiter, duration)
        late = scheduler.add("L2", policy=BLIND, kind="K", started=now + 0.1)
        cohort.append(late)
        assert late.step == 0.0  # held: 3 of 16 ended
        for waiter in cohort[3:7]:
            scheduler.discard(waiter)  # 12 left: its FIRST_QUANTILE is known, 0.7 s
        assert late.step > 0.0
        assert late.due == pytest.approx(now + 0.1 + 0.7)


async def test_units_beyond_the_scouts_wait_unpolled_and_are_placed_by_them(
    session: KooDriveSession,
) -> None:
    scheduler = session._scheduler()
    now = scheduler.loop.time()
    with _cohort(scheduler, SCOUTS, now) as cohort:
        assert all(w.cohort and not w.held for w in cohort)
        assert all(w.due == pytest.approx(now + BLIND.initial, abs=0.1) for w in cohort)
        # Eight more, half a second later: held, their due only the fallback.
        held = [scheduler.add(f"H{i}", policy=BLIND, kind="K", started=now + 0.5) for i in range(8)]
        cohort.extend(held)
        assert all(w.held and not w.cohort and w.step == 0.0 for w in held)
        assert all(w.due == pytest.approx(now + BLIND.max_interval, abs=0.1) for w in held)
        rank = math.ceil(FIRST_QUANTILE * SCOUTS)
        for index, waiter in enumerate(cohort[:rank]):
            _end(scheduler, waiter, 0.5 + index / 100)
        first = scheduler.estimator.first_poll("K")
        assert first == pytest.approx(0.5 + (rank - 1) / 100)
        # Placed from their own start, like every later unit (place_next's
        # first poll: the quantile, or the fast end plus a budget if later).
        placed = place_next(0.0, scheduler.estimator.durations("K"), first=first)
        assert placed is not None
        for waiter in held:
            assert not waiter.held and waiter.step > 0.0
            assert waiter.due == pytest.approx(now + 0.5 + placed[0])


async def test_a_unit_held_past_where_the_first_poll_goes_is_polled_at_once(
    session: KooDriveSession,
) -> None:
    scheduler = session._scheduler()
    now = scheduler.loop.time()
    with _cohort(scheduler, SCOUTS + 1, now) as cohort:
        late = cohort[-1]
        assert late.held
        rank = math.ceil(FIRST_QUANTILE * SCOUTS)
        for index, waiter in enumerate(cohort[:rank]):
            _end(scheduler, waiter, 0.5 + index / 100)
        # It started with the cohort: by the answer that placed the first
        # poll it is older than it, and nothing else places it yet.
        answered = now + 0.5 + (rank - 1) / 100 + 0.02
        assert not late.held and late.interval == BLIND.initial
        assert late.due == pytest.approx(answered)


async def test_a_scout_that_leaves_unfinished_is_replaced_by_a_held_unit(
    session: KooDriveSession,
) -> None:
    scheduler = session._scheduler()
    now = scheduler.loop.time()
    with _cohort(scheduler, SCOUTS + 2, now) as cohort:
        first_held, second_held = cohort[SCOUTS:]
        scheduler.discard(cohort[0])  # cancelled before anything ended
        assert first_held.cohort and not first_held.held
        assert first_held.interval == BLIND.initial
        assert first_held.due == pytest.approx(scheduler.loop.time() + BLIND.initial, abs=0.1)
        assert second_held.held and not second_held.cohort


async def test_the_held_go_blind_when_no_scout_is_left_to_place_them(
    session: KooDriveSession,
) -> None:
    scheduler = session._scheduler()
    now = scheduler.loop.time()
    with _cohort(scheduler, SCOUTS + 2, now) as cohort:
        held = cohort[SCOUTS:]
        _end(scheduler, cohort[0], 0.5)  # one duration: too few to place anything
        for waiter in cohort[1:SCOUTS]:
            scheduler.discard(waiter)
        assert scheduler.estimator.first_poll("K") is None
        for waiter in held:
            assert not waiter.held and waiter.interval == BLIND.initial
            assert waiter.due == pytest.approx(scheduler.loop.time() + BLIND.initial, abs=0.1)


async def test_a_held_unit_with_a_deadline_is_polled_in_time_for_the_answer(
    session: KooDriveSession,
) -> None:
    # Its fallback may be its only poll: it comes early enough before the
    # deadline for the answer to count (a GET sent 1 ms before it would be
    # abandoned by the deadline, and a finished task reported as timed out).
    scheduler = session._scheduler()
    now = scheduler.loop.time()
    with _cohort(scheduler, SCOUTS, now) as cohort:
        late = scheduler.add("D1", policy=BLIND, kind="K", started=now, timeout=5.0)
        cohort.append(late)
        assert late.held
        assert late.due == pytest.approx(now + 5.0 - LAST_POLL_LEAD, abs=0.01)


async def test_after_its_fallback_poll_a_held_unit_keeps_the_policys_longest_gap(
    session: KooDriveSession,
) -> None:
    # Nothing of its kind ended in max_interval: it is polled then, and then
    # at that gap, not from the policy's first interval again.
    growing = PollPolicy(initial=1.0, multiplier=2.0, max_interval=60.0, jitter=0.0)
    scheduler = session._scheduler()
    now = scheduler.loop.time()
    with _cohort(scheduler, SCOUTS, now) as cohort:
        late = scheduler.add("G1", policy=growing, kind="K", started=now)
        cohort.append(late)
        assert late.held and late.due == pytest.approx(now + 60.0, abs=0.01)
        assert scheduler._next_due(late, now + 60.0) == pytest.approx(now + 120.0)


async def test_held_units_go_blind_when_the_cohort_ended_with_too_few_durations(
    session: KooDriveSession,
) -> None:
    # Two units wait; one ends (the cohort closes at two), then more come and
    # are held for the other. When it ends too, two durations place nothing
    # and nobody is left to wait for: the held go onto the blind schedule.
    scheduler = session._scheduler()
    now = scheduler.loop.time()
    with _cohort(scheduler, 2, now) as cohort:
        _end(scheduler, cohort[0], 0.5)
        held = [scheduler.add(f"H{i}", policy=BLIND, kind="K", started=now) for i in range(5)]
        cohort.extend(held)
        assert all(w.held for w in held)
        _end(scheduler, cohort[1], 0.6)
        assert scheduler.estimator.first_poll("K") is None
        answered = now + 0.6 + 0.02  # when _end says the second one's answer came
        for waiter in held:
            assert not waiter.held and waiter.interval == BLIND.initial
            assert waiter.due == pytest.approx(answered + BLIND.initial)


async def test_a_first_wave_past_the_cold_cap_is_held_all_the_same(
    session: KooDriveSession,
) -> None:
    # Units past the cap of remembered cold waiters used to be polled blind;
    # their completions then counted against the cohort and put the first
    # poll at the fast end of what ended first.
    scheduler = session._scheduler()
    now = scheduler.loop.time()
    with _cohort(scheduler, SCOUTS + MAX_COLD + 10, now) as cohort:
        assert all(w.held for w in cohort[SCOUTS:])
        rank = math.ceil(FIRST_QUANTILE * SCOUTS)
        for index, waiter in enumerate(cohort[:rank]):
            _end(scheduler, waiter, 0.5 + index / 100)
        assert not any(w.held for w in cohort[SCOUTS:])


async def test_the_held_are_placed_when_only_time_held_the_cohorts_quantile_back(
    session: KooDriveSession,
) -> None:
    # The cohort's quantile is known, but its youngest unit (started last) is
    # not yet as old as it: first_poll waits. Held units are not polled, so
    # nothing else would look again; a timer does, at the moment it passes.
    scheduler = session._scheduler()
    loop = scheduler.loop
    now = loop.time()
    rank = math.ceil(FIRST_QUANTILE * SCOUTS)
    quantile = 0.5 + (rank - 1) / 100
    youngest = now - quantile + 0.15  # as old as the quantile 0.15 s from now
    with _cohort(scheduler, SCOUTS - 1, now - 5.0) as cohort:
        cohort.append(scheduler.add("Y", policy=BLIND, kind="K", started=youngest))
        held = scheduler.add("H", policy=BLIND, kind="K", started=now)
        cohort.append(held)
        assert held.held
        for index, waiter in enumerate(cohort[:rank]):
            _end(scheduler, waiter, 0.5 + index / 100)
        assert held.held and scheduler.estimator.first_poll("K", loop.time()) is None
        handle = scheduler._rechecks["K"]
        assert handle.when() == pytest.approx(youngest + quantile, abs=1e-6)
        await asyncio.sleep(max(0.0, handle.when() - loop.time()) + 0.05)
        assert not held.held and held.step > 0.0
        assert "K" not in scheduler._rechecks


async def test_the_recheck_comes_sooner_when_a_later_end_lowers_the_quantile(
    session: KooDriveSession,
) -> None:
    scheduler = session._scheduler()
    now = scheduler.loop.time()
    rank = math.ceil(FIRST_QUANTILE * SCOUTS)
    youngest = now + 5.0
    with _cohort(scheduler, SCOUTS - 1, now - 5.0) as cohort:
        cohort.append(scheduler.add("Y", policy=BLIND, kind="K", started=youngest))
        cohort.append(scheduler.add("H", policy=BLIND, kind="K", started=now))
        for index, waiter in enumerate(cohort[:rank]):
            _end(scheduler, waiter, 0.5 + index / 100)
        first = youngest + 0.5 + (rank - 1) / 100
        assert scheduler._rechecks["K"].when() == pytest.approx(first, abs=1e-6)
        # A shorter one ends: the rank-th shortest is one step earlier.
        _end(scheduler, cohort[rank], 0.3)
        sooner = youngest + 0.5 + (rank - 2) / 100
        assert scheduler._rechecks["K"].when() == pytest.approx(sooner, abs=1e-6)


async def test_the_recheck_is_armed_as_soon_as_units_wait_for_the_cohort_and_not_after_close(
    session: KooDriveSession,
) -> None:
    # A cohort of ten (no unit held yet) whose quantile only time holds back:
    # the unpolled wait for it, and so does a unit held after it.
    scheduler = session._scheduler()
    now = scheduler.loop.time()
    rank = math.ceil(FIRST_QUANTILE * 10)
    with _cohort(scheduler, 9, now - 5.0) as cohort:
        cohort.append(scheduler.add("Y", policy=BLIND, kind="K", started=now + 5.0))
        for index, waiter in enumerate(cohort[: max(rank, MIN_SAMPLES)]):
            _end(scheduler, waiter, 0.5 + index / 100)
        assert scheduler.estimator.first_poll("K", now) is None
        assert "K" in scheduler._rechecks
        late = scheduler.add("H", policy=BLIND, kind="K", started=now)
        cohort.append(late)
        assert late.held and "K" in scheduler._rechecks
        await scheduler.close()
        assert not scheduler._rechecks
    assert not scheduler._rechecks  # the discards after close armed nothing


async def test_a_unit_never_polled_is_moved_early_enough_before_its_deadline(
    session: KooDriveSession,
) -> None:
    scheduler = session._scheduler()
    now = scheduler.loop.time()
    with _cohort(scheduler, SCOUTS, now) as cohort:
        late = scheduler.add("D2", policy=BLIND, kind="K", started=now, timeout=5.0)
        cohort.append(late)
        scheduler._move(late, now + 10.0, now)
        assert late.due == pytest.approx(now + 5.0 - LAST_POLL_LEAD)
        late.prev_poll = now  # polled once: the old, tighter lead
        scheduler._move(late, now + 10.0, now)
        assert now + 5.0 - LAST_POLL_LEAD < late.due < now + 5.0


async def test_a_task_found_ended_at_a_blind_first_poll_bounds_the_fast_end_by_its_exact_times(
    session: KooDriveSession,
) -> None:
    # Tasks carry exact create and end times: one found ended at a blind
    # first poll 2 s in took 0.1 s, and that (not "before 2 s") is the fast
    # end the first poll is held near: twice it, not the 8 s quantile.
    scheduler = session._scheduler()
    now = scheduler.loop.time()
    with _cohort(scheduler, 20, now) as cohort:
        created = datetime(2026, 1, 1, tzinfo=UTC)
        quick = cohort[0]
        scheduler._learn(
            quick,
            Task(quick.task_id, create_time=created, end_time=created + timedelta(seconds=0.1)),
            now + 2.0,
        )
        quick.set_result(None)
        for waiter, duration in zip(cohort[1:5], (5.0, 6.0, 7.0, 8.0), strict=False):
            _end(scheduler, waiter, duration)
        assert scheduler.estimator.first_poll("K") == pytest.approx(0.1 * (1 + FIRST_SPREAD))


async def test_the_progress_of_a_unit_that_ended_part_way_is_not_learnt(
    session: KooDriveSession,
) -> None:
    async def get_job(job_id: str) -> Job:
        # Cancelled at 40%: it is not "at 40%" of its time when it ends.
        return Job(job_id, status=JobStatus.CANCELLED, progress=40, create_time=_job(0).create_time)

    scheduler = session._scheduler()
    for _ in range(TABLE_MIN - 1):
        scheduler.estimator.observe_progress("K", 0.9, 0.95)
    scheduler.estimator.seed("K", [1.0] * MIN_SAMPLES)
    fast = PollPolicy(initial=0.01, multiplier=1.5, max_interval=0.05, jitter=0.0)
    started = scheduler.loop.time() - 2.0
    tracker = JobTracker(get_job)
    waiter = scheduler.add("J1", policy=fast, kind="K", started=started, tracker=tracker)
    with pytest.raises(JobCancelledError):
        await asyncio.wait_for(waiter, timeout=10)
    # One more answer would have made the table usable: none was learnt.
    assert scheduler.estimator.progress_table("K") is None


def test_seed_durations_refuses_what_is_not_a_request(session: KooDriveSession) -> None:
    with pytest.raises(InvalidRequestError) as info:
        session.seed_durations("job", [1.0])  # type: ignore[arg-type]
    assert info.value.field == "like"


async def test_progress_closes_in_on_the_end_before_anything_was_learnt(
    session: KooDriveSession,
) -> None:
    scheduler = session._scheduler()
    tracker = JobTracker(session.get_job)
    now = scheduler.loop.time()
    waiter = scheduler.add("J1", policy=BLIND, kind="cold", started=now - 2.0, tracker=tracker)
    try:
        waiter.last = _job(50)
        # 50% after 2 s: 2 s to go by the straight line; the next poll comes
        # about a second on (place_next's cautious cold rule), not 60 s on.
        scheduler._saw_progress(waiter, tracker.progress(_job(50)), now)
        due = scheduler._next_due(waiter, now)
        assert due == pytest.approx(now + 0.6 + DELAY_FRACTION * 4.0, abs=0.01)
        # Progress that stalled past that point: the gaps grow with the time
        # it has been running (a share of it), not a poll every few milliseconds.
        later = now + 5.0
        assert scheduler._next_due(waiter, later) >= later + DELAY_FRACTION * 7.0 - 0.01
    finally:
        scheduler.discard(waiter)


async def test_progress_skips_the_polls_a_unit_far_from_its_end_does_not_need(
    session: KooDriveSession,
) -> None:
    scheduler = session._scheduler()
    tracker = JobTracker(session.get_job)
    for duration in (4.0, 10.0, 10.0):
        scheduler.estimator.observe("K", duration)
    for _ in range(TABLE_MIN):
        # Units of the kind reported 10% when a tenth of their time had gone,
        # and 30% at a quarter.
        scheduler.estimator.observe_progress("K", 0.1, 0.1)
        scheduler.estimator.observe_progress("K", 0.3, 0.25)
    now = scheduler.loop.time()
    policy = PollPolicy(initial=0.5, multiplier=1.5, max_interval=15.0, jitter=0.0)
    waiter = scheduler.add("J1", policy=policy, kind="K", started=now - 1.0, tracker=tracker)
    try:
        step = waiter.step
        assert step == pytest.approx(DELAY_FRACTION * 10.0)
        waiter.last = _job(0)
        # No progress yet: after the fast end of the durations (4 s from its start).
        assert scheduler._next_due(waiter, now) == pytest.approx(now + 3.0 + step)
        # 10% after 1 s: a tenth of its time, so 10 s (4 s is unlikely); the
        # polls before are skipped.
        scheduler._saw_progress(waiter, tracker.progress(_job(10)), now)
        due = scheduler._next_due(waiter, now)
        assert due == pytest.approx(now + 9.0 + POSTERIOR_DELAY * 10.0, abs=0.01)
        # Every answer is kept, moved or not: the latest two.
        scheduler._saw_progress(waiter, 0.1, now + 1.0)
        assert waiter.seen == pytest.approx((2.0, 0.1, 1.0, 0.1))
    finally:
        scheduler.discard(waiter)


async def test_a_fan_out_of_jobs_reporting_progress_still_sees_every_end(
    session: KooDriveSession, emu: KooDriveEmulator
) -> None:
    # Jobs of several files (their progress rises in uneven steps), a fast
    # policy: every outcome arrives, each job read at job detail.
    requests = [
        JobRequest(JobType.COPY, "src", "dst", [FileInfo(f"f{i}-{k}") for k in range(5)])
        for i in range(8)
    ]
    emu.clock.speed = 50.0  # 10 s jobs end within 0.2 s of real time
    fast = PollPolicy(initial=0.01, multiplier=1.5, max_interval=0.05, jitter=0.1)
    outcomes = await asyncio.wait_for(
        session.run_jobs(requests, max_concurrency=4, poll=fast), timeout=30
    )
    assert [o.ok for o in outcomes] == [True] * 8


# ------------------------------------------------------------------ bulk: a previous run's journal


class _Journal:
    """Answers ``finished_times`` as a backend does (no ``line_times``: never the whole plan)."""

    def __init__(self, times: dict[int, tuple[datetime | None, ...]]) -> None:
        self._times = times
        self.limits: list[int] = []

    def finished_times(self, limit: int) -> list[tuple[int, datetime, datetime]]:
        self.limits.append(limit)
        done = [
            (line, submitted, finished)
            for line, (_at, submitted, finished) in self._times.items()
            if submitted is not None and finished is not None
        ]
        return sorted(done, key=lambda t: t[2], reverse=True)[:limit]


class _Seeds:
    def __init__(self) -> None:
        self.got: list[tuple[object, list[float]]] = []

    def seed_durations(self, like: Request, durations: Iterable[float]) -> int:
        values = list(durations)
        self.got.append((duration_key(like), values))
        return len(values)


async def test_seed_from_journal_gives_each_kind_its_durations_oldest_first() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def at(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    journal = _Journal(
        {
            1: (at(0), at(0), at(5)),  # 5 s, ended second
            2: (at(0), at(1), at(3)),  # 2 s, ended first
            3: (at(0), at(1), None),  # never seen ending
            4: (at(0), at(9), at(8)),  # the clock was set back
            5: (at(0), at(0), at(1)),  # no request given for it
        }
    )
    copy = job()
    move = JobRequest(JobType.MOVE, "src", "dst", [FileInfo("f")])
    seeds = _Seeds()
    taken = await seed_from_journal(seeds, journal, {1: copy, 2: copy, 3: move, 4: move})  # type: ignore[arg-type]
    assert taken == 2
    assert seeds.got == [(duration_key(copy), [2.0, 5.0])]
    assert journal.limits == [MAX_SEEDED_LINES]
