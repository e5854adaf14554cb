"""How long tasks of each kind take: the pure statistics the poll scheduler plans with.

Owns :class:`DurationEstimator` (a ring buffer of recent durations per kind,
which a previous run's durations may seed, and where a kind's first poll
goes: the quantile of its first cohort, then tracked), :class:`ProgressTable` (per kind,
how often a unit reported each tenth of progress when it had used a given
share of its duration: the learnt likelihood of an answer), :func:`place_next`
(where the next poll of one unit goes, from those), :func:`bracket_window` and
:func:`bracket_duration` (what to learn from an interval-censored observation) and
:func:`duration_key`, the key durations are learned under.
Kept apart from ``_polling.py`` because it is pure arithmetic, tested
without an event loop. Must never import asyncio, aiohttp, the transport or
the session: nothing here does I/O or knows about time sources.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Hashable, Iterable, Sequence

__all__ = [
    "COLD_RATIO",
    "COLD_REACH",
    "DELAY_FRACTION",
    "FAST_QUANTILE",
    "FIRST_GAIN",
    "FIRST_QUANTILE",
    "FIRST_SPREAD",
    "MIN_SAMPLES",
    "NARROWING_GAIN",
    "POSTERIOR_DELAY",
    "POSTERIOR_QUANTILE",
    "PROGRESS_BUCKETS",
    "SCOUTS",
    "TABLE_HALVE",
    "TABLE_MIN",
    "USED_BINS",
    "WINDOW",
    "DurationEstimator",
    "ProgressTable",
    "bracket_duration",
    "bracket_window",
    "duration_key",
    "place_next",
    "remaining_from_progress",
]

#: Observations needed before a kind's estimate is trusted: a few, not many,
#: so that a short run (or a service waiting on a handful of tasks) leaves
#: the blind policy schedule after its first completions.
MIN_SAMPLES = 3
#: Recent observations kept per kind (a ring buffer; old ones fall out so the
#: estimate follows a drifting service). Not much smaller: the units that
#: finished last are the ones whose durations fit the moment (in a wave of
#: submissions, at 1.4 s the last 64 to end are mostly the long ones of the
#: first wave), so a short ring sees a biased slice of the distribution.
WINDOW = 256
#: Progress is learnt per bucket of this width (a tenth).
PROGRESS_BUCKETS = 10
#: The share of its duration a unit had used when it answered is learnt in
#: bins of this width (a twentieth).
USED_BINS = 20
#: Answers of finished units a kind's :class:`ProgressTable` needs before
#: placements trust it (a few finished units: each gives its last two).
TABLE_MIN = 32
#: When a table holds this many answers every count is halved, so that old
#: answers fade and a service whose progress changed is followed.
TABLE_HALVE = 4096
#: Answers' worth of the kind's overall frequency of each tenth added to each
#: bin: small, so that one answer in a bin already says much; non-zero, so
#: that a progress never seen at a share rules nothing out; the overall
#: frequency, so that a bin never seen (a share at which no unit was polled)
#: says what the kind says everywhere. Candidates in such bins are weighed
#: alike among themselves, and against a bin that was seen by how common
#: that progress is overall: early shares are seldom polled, so a young unit's
#: long candidates may weigh a little less than they should, which polls it
#: sooner, never later.
TABLE_SMOOTHING = 0.5
#: Where the posterior of a unit's end puts the "earliest plausible end":
#: this share of the units that report what it reported end sooner.
POSTERIOR_QUANTILE = 0.2
#: The budget after that end, as a fraction of the median duration: tighter
#: than :data:`DELAY_FRACTION`, since the posterior is sharper than the
#: durations alone, so a short budget costs few polls that find the unit
#: still running. Tuned with :data:`FIRST_QUANTILE` once the first wave no
#: longer polled blind (:data:`SCOUTS`): what that saved paid for 0.11
#: (against 0.12) and a first poll at 0.2 (against 0.25). In the fan-out
#: benchmark (``benchmarks/bench_fanout.py``, where a job's times are the
#: service's whole seconds) 0.11 gave 2.47 GETs per job and a p95 delay of
#: 0.207 of the mean duration at 10,000 jobs, and 2.43-2.52 GETs at 1,000;
#: 0.10 gave 2.51 / 0.203 and 2.50-2.56; 0.09 with a first poll at 0.22 gave
#: 2.51 / 0.211 and 2.47-2.49 (each with the constants edited for the run:
#: the benchmark has no ``--set``). At 0.11 the simulation (``sim_placement.py``,
#: seven seeds) is within 0.03 GETs per job of the benchmark and its p95 is
#: 0.02-0.03 higher: it has no whole seconds to narrow what a finished unit
#: teaches.
POSTERIOR_DELAY = 0.11
#: Before the kind's durations reach past a unit's age, its end is looked
#: for up to this many times its age at its latest answer.
POSTERIOR_REACH = 3.0
#: How far an answer moves the placement from the durations' own
#: (:data:`FAST_QUANTILE`, :data:`DELAY_FRACTION`) to the posterior's
#: (:data:`POSTERIOR_QUANTILE`, :data:`POSTERIOR_DELAY`): this many times how
#: far the posterior is from weighing every candidate alike (the total
#: variation distance, 0 to 1), at most all the way. An answer that says
#: nothing moves nothing, whatever the durations (ties included). Tuned in
#: ``benchmarks/sim_placement.py`` over every ``--durations`` shape: a smaller
#: gain polls more, a larger one moved the p95 delay of the two-speed and the
#: hundredfold kinds up.
NARROWING_GAIN = 4.0
#: The detection delay a placement allows, as a fraction of the kind's median
#: duration: the next poll comes this long after the earliest moment the unit
#: may plausibly have ended.
DELAY_FRACTION = 0.14
#: "Plausibly": the fast-end quantile of what is still possible. The units
#: that end before it (about this share at each poll) wait longer than the
#: budget; the rest are seen within it.
FAST_QUANTILE = 0.05
#: The first poll of a unit comes at this quantile of its kind's durations.
#: It starts at that quantile of the kind's first cohort (the units that
#: started before any of them ended: :meth:`DurationEstimator.join_cohort`),
#: known once that share of them ended; not of the durations learnt first,
#: which are only the cohort's fast end. Later it is not read off the
#: learnt durations either: a unit found finished at its first poll only
#: says it ended before it (its learnt duration is a guess), so the first
#: poll is tracked by stochastic approximation instead: each unit found
#: finished at it moves it earlier, each found running moves it later,
#: until this share of units end before it (see :data:`POSTERIOR_DELAY` for
#: how it was tuned).
FIRST_QUANTILE = 0.2
#: How far one such answer moves it, as a fraction of the median duration:
#: small, since a wave of answers to polls placed earlier arrives at once.
FIRST_GAIN = 0.01
#: The first poll starts no more than this many times the fast end (the
#: :data:`LOW_QUANTILE` duration) past that fast end: for a kind whose
#: durations spread widely, that quantile is several times the shortest,
#: and a unit that ends before its first poll would wait that long. Its
#: first poll then starts at this bound and is tracked at the share of units
#: that end before it. The benchmark's kind (0.5-1.5 s) and the narrower
#: ones are not affected.
FIRST_SPREAD = 1.0
#: Units of a kind's first cohort, at most: the first to wait before anything
#: of the kind is known poll on the policy's blind schedule, and their
#: completions say where everyone's first poll goes; a unit that comes while
#: they are out is held, unpolled, until they say it
#: (:meth:`DurationEstimator.scouting`). Blind polls are the costliest of a
#: run: in the fan-out simulation (``benchmarks/sim_placement.py``, 1,000
#: jobs, five seeds) a first wave of 200 all polled blind took 3.15 GETs a
#: unit (2.60 for the run); with 8 to 64 scouts it took 2.17-2.46 (2.40-2.45
#: for the run). Fewer place the first poll from fewer durations, more poll
#: blindly longer; 32 know their 20% quantile once 7 of them ended.
SCOUTS = 32
#: Before a kind's progress is learnt (:data:`TABLE_MIN`): the
#: share of the straight-line remaining time (``remaining_from_progress``)
#: the unit is assumed to need at least...
COLD_RATIO = 0.3
#: ...and never more than this share of its elapsed time to the next poll
#: (nothing calibrated yet: grow the gap geometrically, never jump ahead).
COLD_REACH = 0.3
#: The fast and slow ends of the distribution the step schedule covers.
LOW_QUANTILE = 0.05
HIGH_QUANTILE = 0.95


def duration_key(request: object) -> Hashable:
    """Key under which durations of tasks like this one are learned.

    Not the plan kind of ``_build.request_kind`` (a name like ``"job"``):
    two jobs of different types or actions take very different times, so
    they are learned apart.

    Args:
        request: A request model.

    Returns:
        ``(model class name, task_type, action_type)``.
    """
    return (
        type(request).__name__,
        getattr(request, "task_type", None),
        getattr(request, "action_type", None),
    )


def remaining_from_progress(
    elapsed: float, progress: float, before: tuple[float, float] | None = None
) -> float | None:
    """Seconds a unit still needs, by the progress it reported (before calibration).

    The rate is the progress made between two answers when it moved (so a
    pending phase before the work began does not count), else the progress
    since the start. Steps are uneven (files finish at random times), which
    is why the scheduler scales this by quantiles of how far off it was
    for finished units of the kind, rather than trusting it as it is.

    Args:
        elapsed: Seconds from the unit's start to the latest answer.
        progress: Its progress in that answer, 0 to 1.
        before: ``(elapsed, progress)`` of an earlier answer, or None.

    Returns:
        Seconds, or None when the progress says nothing (0, 1 or out of range).
    """
    if not 0.0 < progress < 1.0 or elapsed <= 0.0:
        return None
    if before is not None and before[1] < progress and before[0] < elapsed:
        return (1.0 - progress) * (elapsed - before[0]) / (progress - before[1])
    return elapsed * (1.0 - progress) / progress


def bracket_window(
    lower: float, upper: float, bounds: tuple[float, float] | None
) -> tuple[float, float]:
    """When a unit ended, from what the client saw and what the service said.

    The client knows the unit ended in ``[lower, upper]`` (the last poll
    that saw it unfinished was sent, the answer that saw it finished came
    back); the service's own times may narrow that (exact times: a point;
    whole seconds: a one-second window). When they disagree (a skewed or
    virtual service clock), the client's bracket wins, at its end nearest
    the service's bounds.

    Args:
        lower: Earliest the unit can have ended, seconds from its start.
        upper: Latest, likewise (``>= lower``).
        bounds: ``(low, high)`` by the service's times, or None.

    Returns:
        ``(earliest, latest)``, seconds from its start.
    """
    if bounds is None:
        return lower, upper
    low = max(lower, bounds[0])
    high = min(upper, bounds[1])
    if low <= high:
        return low, high
    point = lower if bounds[1] < lower else upper
    return point, point


def bracket_duration(lower: float, upper: float, bounds: tuple[float, float] | None) -> float:
    """The duration to learn: the middle of :func:`bracket_window`.

    A unit found finished at its first poll is bounded below by its start
    only, and the midpoint is then shorter than it took. It is learnt all
    the same: imputing it from the kind's shorter durations instead (which
    no poll ever sees below the first poll) freezes that end of the
    distribution, and with a kind of two very different speeds stopped the
    first poll from ever coming before the slower ones' fast end (the
    faster ones were then seen a whole budget late).

    Args:
        lower: Earliest the unit can have ended, seconds from its start.
        upper: Latest, likewise (``>= lower``).
        bounds: ``(low, high)`` by the service's times, or None.

    Returns:
        Seconds from its start.
    """
    earliest, latest = bracket_window(lower, upper, bounds)
    return (earliest + latest) / 2.0


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    # Nearest-rank on a small sorted list; good enough for a schedule.
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


class ProgressTable:
    """What progress units of one kind report when they have used a share of their time.

    A count per (bin of the share used, tenth of progress) from finished
    units' answers: the likelihood of an answer given the unit's duration,
    learnt, never assumed (steps may be uneven, a pending phase may come
    first, the last file may take longest). :func:`place_next` weighs the
    kind's durations by it. Pure; counts halve past :data:`TABLE_HALVE`.
    """

    __slots__ = ("_counts", "_totals", "_overall", "answers")

    def __init__(self) -> None:
        self._counts = [[0.0] * PROGRESS_BUCKETS for _ in range(USED_BINS)]
        self._totals = [0.0] * USED_BINS
        # Per tenth, over every bin: what the smoothing adds.
        self._overall = [0.0] * PROGRESS_BUCKETS
        #: Answers recorded (after halvings: their weight).
        self.answers = 0.0

    def add(self, progress: float, used: float) -> None:
        """Record that a unit reported ``progress`` when it had used ``used`` of its time.

        Args:
            progress: 0 to 1 (exclusive of 1).
            used: Elapsed at that answer ÷ its duration, 0 to 1.
        """
        if not 0.0 <= progress < 1.0 or not 0.0 < used <= 1.0:
            return
        row = min(USED_BINS - 1, int(used * USED_BINS))
        bucket = _bucket(progress)
        self._counts[row][bucket] += 1.0
        self._totals[row] += 1.0
        self._overall[bucket] += 1.0
        self.answers += 1.0
        if self.answers >= TABLE_HALVE:
            for counts in self._counts:
                counts[:] = [c / 2.0 for c in counts]
            self._totals = [t / 2.0 for t in self._totals]
            self._overall = [c / 2.0 for c in self._overall]
            self.answers /= 2.0

    def likelihood(self, bucket: int, used: float) -> float:
        """How likely a unit that had used ``used`` of its time is to report ``bucket``.

        Args:
            bucket: The tenth of progress, 0 to :data:`PROGRESS_BUCKETS` - 1.
            used: The share of its duration, above 0 (1 or more: the last bin).

        Returns:
            A smoothed frequency (0 only for a tenth no unit ever reported).
        """
        return self.at_row(bucket, min(USED_BINS - 1, int(used * USED_BINS)))

    def at_row(self, bucket: int, row: int) -> float:
        """:meth:`likelihood` by the bin of the share used, 0 to :data:`USED_BINS` - 1.

        Args:
            bucket: The tenth of progress.
            row: The bin of the share used.

        Returns:
            A smoothed frequency (0 only for a tenth no unit ever reported).
        """
        answers = self.answers
        overall = self._overall[bucket] / answers if answers else 1.0 / PROGRESS_BUCKETS
        return (self._counts[row][bucket] + TABLE_SMOOTHING * overall) / (
            self._totals[row] + TABLE_SMOOTHING
        )


class _KindStats:
    __slots__ = (
        "low",
        "median",
        "high",
        "ring",
        "count",
        "ordered",
        "table",
        "first",
        "cohort",
        "cohort_durations",
        "cohort_latest",
        "cohort_youngest",
        "after_cohort",
        "target",
    )

    def __init__(self) -> None:
        self.ring: list[float] = []
        self.count = 0
        # The ring sorted, or None when it changed since.
        self.ordered: list[float] | None = None
        self.low = self.median = self.high = 0.0
        self.table = ProgressTable()
        # Seconds from the start to the first poll of a unit (FIRST_QUANTILE).
        self.first: float | None = None
        # The share of units that end before it (FIRST_QUANTILE, or less for
        # a kind of widely spread durations: see _first_point).
        self.target = FIRST_QUANTILE
        # The first cohort (see DurationEstimator.join_cohort): how many of
        # its units are still counted, and the durations of those that ended,
        # sorted; None once the first poll no longer waits for it.
        self.cohort = 0
        self.cohort_durations: list[float] | None = []
        # The latest each of those can have ended (the same, but for a unit
        # found ended at its first poll: that poll), sorted.
        self.cohort_latest: list[float] = []
        # The latest start of a unit that joined it (on the caller's clock),
        # or None when a unit joined without one.
        self.cohort_youngest: float | None = -math.inf
        # Units outside it that ended while it was still waited for.
        self.after_cohort = 0


def _first_point(
    shortest: Sequence[float], latest: Sequence[float], count: int
) -> tuple[float, float]:
    # Where a kind's first poll starts, and the share of units it lets end
    # before it, from the shortest durations of a sample of ``count`` (sorted,
    # at least its FIRST_QUANTILE share of them) and the latest each can have
    # ended (sorted): that quantile, but no later than FIRST_SPREAD times past
    # the fast end. The units that end before the first poll wait for it;
    # with a hundredfold spread the quantile is far past the fast end, and
    # they would wait several times their own duration. The fast end is read
    # from the latest bounds: a unit found ended at a blind first poll only
    # says it ended before that poll, and its guessed duration (half of it)
    # would put the fast end, and so the first poll, too early.
    rank = max(1, math.ceil(FIRST_QUANTILE * count))
    point = shortest[min(rank, len(shortest)) - 1]
    fast = latest[min(max(1, math.ceil(LOW_QUANTILE * count)), len(latest)) - 1]
    limit = fast * (1.0 + FIRST_SPREAD)
    if point <= limit:
        return point, FIRST_QUANTILE
    before = bisect.bisect_right(shortest, limit)
    return limit, max(LOW_QUANTILE, before / count)


def _cohort_rank(stats: _KindStats) -> int:
    # The cohort's FIRST_QUANTILE is its rank-th shortest duration.
    return max(1, math.ceil(FIRST_QUANTILE * stats.cohort))


def _cohort_gate(stats: _KindStats) -> float | None:
    # While a kind's first poll waits for its cohort and that many of it
    # ended: the moment (on the clock the starts were given on) from which
    # every unit of it still running has run longer than its quantile. With
    # starts spread out, the first to end are the early starters, and the
    # rank-th of them alone may be later than the cohort's. None when
    # nothing but that many ending holds it: all of it ended (its quantile
    # is known), or a unit joined without a start.
    ended = stats.cohort_durations
    youngest = stats.cohort_youngest
    if (
        ended is None
        or youngest is None
        or not 0 < stats.cohort
        or stats.after_cohort >= stats.cohort
        or len(ended) >= stats.cohort
    ):
        return None
    rank = _cohort_rank(stats)
    if len(ended) < rank:
        return None
    return youngest + ended[rank - 1]


def _bucket(progress: float) -> int:
    return min(PROGRESS_BUCKETS - 1, max(0, int(progress * PROGRESS_BUCKETS)))


def _push(ring: list[float], count: int, value: float, window: int) -> None:
    if len(ring) < window:
        ring.append(value)
    else:
        ring[count % window] = value


#: The middle of each bin of :data:`USED_BINS`, largest first: the shares a
#: unit's latest answer may stand at when nothing bounds its duration.
_BIN_MIDDLES = [(row + 0.5) / USED_BINS for row in reversed(range(USED_BINS))]


class DurationEstimator:
    """Recent task durations per kind, and the quantiles the schedule needs.

    Args:
        window: How many recent observations to keep per kind.
    """

    def __init__(self, window: int = WINDOW) -> None:
        self._window = window
        self._kinds: dict[Hashable, _KindStats] = {}

    def observe(
        self,
        kind: Hashable,
        duration: float,
        *,
        cohort: bool = False,
        unseen_before: float | None = None,
    ) -> None:
        """Record that a task of ``kind`` took ``duration`` seconds.

        Args:
            kind: Any hashable key naming the kind of task.
            duration: Seconds from submission to the terminal state (>= 0).
            cohort: The unit had joined the kind's first cohort
                (:meth:`join_cohort`).
            unseen_before: For a unit never seen running (found ended at
                its first poll), the latest it can have ended, seconds; its
                ``duration`` is then only a guess inside that bound.
        """
        if not math.isfinite(duration) or duration < 0:
            if cohort:
                self.leave_cohort(kind)
            return
        stats = self._stats(kind)
        _push(stats.ring, stats.count, duration, self._window)
        stats.count += 1
        stats.ordered = None
        if stats.cohort_durations is None:
            return
        if cohort:
            bisect.insort(stats.cohort_durations, duration)
            # Where its fast end can be: a guess is only bounded above.
            latest = duration if unseen_before is None else max(duration, unseen_before)
            bisect.insort(stats.cohort_latest, latest)
        elif stats.cohort:
            stats.after_cohort += 1

    def join_cohort(self, kind: Hashable, started: float | None = None) -> bool:
        """Count a unit waiting before anything of ``kind`` is known into its first cohort.

        The units that started before the kind's first duration was learnt
        are a sample that no selection has touched: the fast ones end first,
        but the rest are still there, running. The first durations learnt
        are only the fast end of it (in a wave of submissions, the first
        wave's fastest), so a quantile of them is far too early a first poll
        for every later unit; the cohort's own quantile is right as soon as
        that share of the cohort has ended. :meth:`first_poll` waits for it.
        Once a duration is known, the cohort is closed; it holds at most
        :data:`SCOUTS` units at once (a unit that leaves makes room for
        another), and a unit that does not join while it is still waited for
        is better held (:meth:`scouting`).

        Args:
            kind: The kind key.
            started: When the unit started, on the clock :meth:`first_poll`
                is given ``now`` on (or None: then its quantile is taken as
                soon as enough of it ended, as if every unit started at once).

        Returns:
            Whether it joined (then pass ``cohort=True`` to :meth:`observe`
            when it ends, or call :meth:`leave_cohort` if it never does).
        """
        stats = self._stats(kind)
        if stats.count or stats.cohort_durations is None or stats.cohort >= SCOUTS:
            return False
        stats.cohort += 1
        youngest = stats.cohort_youngest
        if started is None or youngest is None:
            stats.cohort_youngest = None
        elif started > youngest:
            stats.cohort_youngest = started
        return True

    def scouting(self, kind: Hashable) -> bool:
        """Whether a unit of ``kind`` that nothing places yet should wait unpolled.

        True while units of the kind's first cohort are still out
        (:meth:`join_cohort`) and its first poll is not known
        (:meth:`first_poll`): their completions will say where it goes, and
        a blind poll before that would mostly find the unit running. False
        once the first poll is known, and when no unit of the cohort is left
        running to say it (then :meth:`first_poll` knows it, or the policy's
        blind schedule is all there is).

        Args:
            kind: The kind key.
        """
        stats = self._kinds.get(kind)
        if stats is None or stats.first is not None or stats.cohort_durations is None:
            return False
        return stats.cohort > len(stats.cohort_durations)

    def first_poll_after(self, kind: Hashable) -> float | None:
        """When :meth:`first_poll` may know its answer if time alone holds it back, or None.

        Its cohort's quantile may be known but held back until the youngest
        unit that joined the cohort is as old as it; this is that moment, on
        the clock the units' starts were given on.

        Args:
            kind: The kind key.
        """
        stats = self._kinds.get(kind)
        if stats is None or stats.first is not None or stats.count < MIN_SAMPLES:
            return None
        return _cohort_gate(stats)

    def leave_cohort(self, kind: Hashable) -> None:
        """Stop counting a unit of the first cohort that will not end here (its wait ended).

        Args:
            kind: The kind key.
        """
        stats = self._kinds.get(kind)
        if stats is not None and stats.cohort > 0:
            stats.cohort -= 1

    def seed(self, kind: Hashable, durations: Iterable[float]) -> int:
        """Start ``kind`` from durations known before any unit of it finished here.

        A previous run of the same plan recorded them (its journal): with
        them the first wave is planned like every later one instead of
        blindly. They count as observations and leave the ring as this
        run's own arrive, so a service that got faster or slower since is
        followed within :data:`WINDOW` completions.

        Args:
            kind: The kind key.
            durations: Seconds each (the newest last); non-finite or negative
                values are skipped, and only the newest ``window`` are kept.

        Returns:
            How many were taken.
        """
        kept = [d for d in durations if isinstance(d, int | float) and math.isfinite(d) and d >= 0]
        for duration in kept[-self._window :]:
            self.observe(kind, float(duration))
        if kept:
            # A whole previous run is no biased sample: plan from it at once.
            self._stats(kind).cohort_durations = None
        return min(len(kept), self._window)

    def _stats(self, kind: Hashable) -> _KindStats:
        stats = self._kinds.get(kind)
        if stats is None:
            stats = self._kinds[kind] = _KindStats()
        return stats

    def observe_progress(self, kind: Hashable, progress: float, used: float) -> None:
        """Record that a finished unit reported ``progress`` having used ``used`` of its time.

        Args:
            kind: The kind key.
            progress: The progress it reported, 0 to 1 (exclusive of 1).
            used: Elapsed at that answer ÷ its duration (above 1 is taken as 1:
                the learnt duration is a bracket's midpoint).
        """
        if not math.isfinite(used) or used <= 0.0:
            return
        self._stats(kind).table.add(progress, min(used, 1.0))

    def progress_table(self, kind: Hashable) -> ProgressTable | None:
        """The kind's learnt progress table, or None before :data:`TABLE_MIN` answers.

        Args:
            kind: The kind key.
        """
        stats = self._kinds.get(kind)
        if stats is None or stats.table.answers < TABLE_MIN:
            return None
        return stats.table

    def durations(self, kind: Hashable) -> list[float]:
        """The recent durations of ``kind``, sorted (do not modify).

        Args:
            kind: The kind key.

        Returns:
            Empty before :data:`MIN_SAMPLES` observations.
        """
        stats = self._kinds.get(kind)
        if stats is None or stats.count < MIN_SAMPLES:
            return []
        if stats.ordered is None:
            stats.ordered = values = sorted(stats.ring)
            stats.low = _quantile(values, LOW_QUANTILE)
            stats.median = _quantile(values, 0.5)
            stats.high = _quantile(values, HIGH_QUANTILE)
        return stats.ordered

    def first_poll(self, kind: Hashable, now: float | None = None) -> float | None:
        """Seconds from a unit's start to its first poll, or None while that is not known.

        Starts at the :data:`FIRST_QUANTILE` of the kind's first cohort
        (:meth:`join_cohort`) once that share of it has ended and every unit
        of it still running is known to be longer, or of the durations
        first known when there was no cohort (seeded, or learnt from units
        that all ended); then follows :meth:`observe_first`. None before
        durations are known, and while the cohort's quantile is not: a unit
        not polled yet is then better on the blind schedule (and re-planned)
        than polled at the fast end of what ended first. A cohort whose
        slow units outlast as many completions of later units as it has
        units is not waited for any longer: the kind's durations decide.

        Args:
            kind: The kind key.
            now: The clock the cohort's starts were given on (None: not
                checked).
        """
        durations = self.durations(kind)
        if not durations:
            return None
        stats = self._kinds[kind]
        if stats.first is None:
            ended = stats.cohort_durations
            if ended is not None and stats.cohort > 0 and stats.after_cohort < stats.cohort:
                if len(ended) < _cohort_rank(stats):
                    return None
                gate = _cohort_gate(stats)
                if now is not None and gate is not None and now < gate:
                    return None
                stats.first, stats.target = _first_point(ended, stats.cohort_latest, stats.cohort)
            else:
                stats.first, stats.target = _first_point(durations, durations, len(durations))
            stats.cohort_durations = None
            stats.cohort_latest = []
        return stats.first

    def observe_first(self, kind: Hashable, finished: bool, at: float, within: float) -> None:
        """Record what the first answer about a unit said, ``at`` seconds after its start.

        Only an answer read within ``within`` of the tracked point moves it:
        one read much later (polls queued behind a slow service) or earlier
        says nothing about the share of units ended by that point, and
        counting only one side of them would drag it.

        Args:
            kind: The kind key.
            finished: The unit had ended.
            at: Seconds from its start to when the answer was read.
            within: The tolerance, seconds (the unit's delay budget).
        """
        stats = self._kinds.get(kind)
        if stats is None or stats.first is None or abs(at - stats.first) > within:
            return
        median = _quantile(self.durations(kind), 0.5)
        step = FIRST_GAIN * median * (stats.target - (1.0 if finished else 0.0))
        stats.first = max(0.0, stats.first + step)

    def estimate(self, kind: Hashable) -> tuple[float, float, float] | None:
        """Return ``(low, median, high)`` durations of ``kind``, or None if too little is known.

        Args:
            kind: The kind key.

        Returns:
            The 5th percentile, median and 95th percentile of recent
            durations, or None before :data:`MIN_SAMPLES` observations.
        """
        if not self.durations(kind):
            return None
        stats = self._kinds[kind]
        return stats.low, stats.median, stats.high


def place_next(
    elapsed: float,
    durations: Sequence[float],
    latest: tuple[float, float] | None = None,
    table: ProgressTable | None = None,
    first: float | None = None,
    *,
    min_budget: float = 0.0,
) -> tuple[float, float] | None:
    """Where the next poll of one unit goes: after the fast end of what is still possible.

    What is still possible is the kind's durations longer than ``elapsed``
    (the unit has not ended yet), each weighed, when the unit reported
    progress and the kind's ``table`` is learnt, by how likely a unit of
    that duration was to report that progress at that moment: the posterior
    of its end, with the shape of progress over time learnt, never assumed
    (see :class:`ProgressTable`). The poll comes a budget after the
    earliest plausible end: the :data:`FAST_QUANTILE` of the durations and
    :data:`DELAY_FRACTION` of their median when no progress weighs them,
    moving to the :data:`POSTERIOR_QUANTILE` of the posterior and
    :data:`POSTERIOR_DELAY` as far as the answer narrowed them
    (:data:`NARROWING_GAIN`): an answer that says nothing (a kind that
    reports no progress until its end) changes nothing. A unit that ends
    after that point is seen within the budget, and the polls that could
    only see it unfinished are skipped. The first poll lands at
    ``first`` (the kind's tracked :data:`FIRST_QUANTILE`) when it is still
    ahead.

    When the durations say nothing of the unit (fewer than
    :data:`MIN_SAMPLES` are longer than its age: early in a first wave only
    the fast units have ended), its end is looked for between its age and
    :data:`POSTERIOR_REACH` times it, by the table alone; before the table is
    learnt, by its straight-line prediction, cautiously (:data:`COLD_RATIO`,
    :data:`COLD_REACH`). A unit with neither gets None.

    Args:
        elapsed: Seconds from the unit's start to now (the last answer).
        durations: The kind's recent durations, sorted (empty: unknown).
        latest: ``(elapsed, progress)`` of its latest answer (progress 0 to
            1, exclusive of 1), or None when it reported none.
        table: The kind's learnt :class:`ProgressTable`, or None (not learnt).
        first: For a unit not polled yet, where its kind's first poll goes
            (``DurationEstimator.first_poll``), or None.
        min_budget: The shortest budget (no use polling faster than a GET
            takes), seconds.

    Returns:
        ``(elapsed at which to poll, the delay budget)`` in seconds, or None
        when nothing places it (no durations and no progress, or the unit
        outlived every known duration and reports no progress): back off.
    """
    elapsed = max(elapsed, 0.0)  # a clock read before the start says no more than the start
    known = len(durations) >= MIN_SAMPLES
    median = _quantile(durations, 0.5) if known else 0.0
    if known and first is not None:
        # Never before the fast end plus the budget: with durations all alike
        # the tracked quantile sits just before them all, and every unit
        # would need a second poll.
        budget = max(DELAY_FRACTION * median, min_budget)
        first = max(first, _quantile(durations, FAST_QUANTILE) + budget)
        if first > elapsed:
            return first, budget
    longer = durations[bisect.bisect_right(durations, elapsed) :] if known else ()
    if latest is not None and table is not None:
        placed = _posterior(elapsed, longer, median, latest, table)
        if placed is not None:
            earliest, budget = placed
            budget = max(budget, min_budget)
            return earliest + budget, budget
    if len(longer) >= MIN_SAMPLES:
        budget = DELAY_FRACTION * median
        earliest = max(elapsed, _quantile(longer, FAST_QUANTILE))
    elif latest is not None and latest[1] > 0.0:
        # The durations say nothing of a unit that outlived (nearly) all of
        # them and nothing is learnt of progress yet: its own progress sets
        # the scale, a straight line but at least the time it has been
        # running and at most a few times it.
        straight = latest[0] / latest[1]
        budget = DELAY_FRACTION * max(min(straight, 3.0 * elapsed), elapsed, median)
        earliest = elapsed
    else:
        return None
    budget = max(budget, min_budget)
    remaining = None if latest is None else remaining_from_progress(*latest)
    if latest is not None and remaining is not None:
        reach = elapsed * (1 + COLD_REACH)
        earliest = max(earliest, min(latest[0] + COLD_RATIO * remaining, reach))
    if not budget > 0.0:
        return None
    return earliest + budget, budget


def _posterior(
    elapsed: float,
    longer: Sequence[float],
    median: float,
    latest: tuple[float, float],
    table: ProgressTable,
) -> tuple[float, float] | None:
    # The earliest plausible end of a unit and its budget, from the posterior
    # of its duration given its latest answer: the durations longer than its
    # age weighed by the table (or, when too few reach past its age, the
    # durations at which that answer would stand at each bin's middle).
    at, progress = latest
    if at <= 0.0:
        return None
    bucket = _bucket(progress)
    if len(longer) >= MIN_SAMPLES:
        candidates: Sequence[float] = longer
    elif progress <= 0.0:
        # No durations to weigh and no progress to scale: nothing places it.
        return None
    else:
        reach = POSTERIOR_REACH * elapsed
        candidates = [at / share for share in _BIN_MIDDLES if elapsed < at / share <= reach]
        if not candidates:
            return None
        median = 0.0
    # The candidates are sorted, so the share ``at / duration`` falls as they
    # grow and each bin of the table holds one run of them: one likelihood
    # per run (at most USED_BINS), not one per candidate.
    count = len(candidates)
    runs: list[tuple[int, int, float, float]] = []  # (first, end, weight each, cumulative)
    total = 0.0
    first = 0
    while first < count:
        row = min(USED_BINS - 1, int(at / candidates[first] * USED_BINS))
        # This row's shares are at least row / USED_BINS: durations up to at * USED_BINS / row.
        end = count if row == 0 else bisect.bisect_right(candidates, at * USED_BINS / row, first)
        end = max(end, first + 1)
        weight = table.at_row(bucket, row)
        total += weight * (end - first)
        runs.append((first, end, weight, total))
        first = end
    if not total > 0.0:
        return None  # a tenth no unit of the kind ever reported: nothing to weigh by

    def posterior(q: float) -> float:
        # The first candidate at which the cumulative weight reaches q of it all.
        target = q * total
        before = 0.0
        for begin, end, weight, cumulative in runs:
            if cumulative >= target and weight > 0.0:
                offset = max(0, math.ceil((target - before) / weight) - 1)
                return candidates[min(begin + offset, end - 1)]
            before = cumulative
        return candidates[-1]

    # How much the answer said: how far the posterior is from weighing every
    # candidate alike (half the sum of the differences of their shares: 0
    # for an answer that weighs nothing, such as a kind that reports no
    # progress until its end, whose table says 0 at every share; near 1 for
    # one that rules out all but a few). Nothing said keeps the durations'
    # fast end; much said may skip further ahead, to POSTERIOR_QUANTILE.
    even = 1.0 / count
    apart = sum(abs(weight / total - even) * (end - begin) for begin, end, weight, _ in runs)
    said = min(1.0, NARROWING_GAIN * 0.5 * apart)
    earliest = posterior(FAST_QUANTILE + (POSTERIOR_QUANTILE - FAST_QUANTILE) * said)
    # The budget's scale: the kind's median; the unit's own when the
    # durations say nothing of it. Its share likewise goes from the
    # durations' own to the posterior's as the answer narrows them.
    share = DELAY_FRACTION + (POSTERIOR_DELAY - DELAY_FRACTION) * said
    return max(elapsed, earliest), share * (median or posterior(0.5))
