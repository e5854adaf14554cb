"""How long tasks of each kind take: the pure statistics the poll scheduler plans with.

Owns :class:`DurationEstimator` (a ring buffer of recent durations per kind
and their quantiles, which a previous run's durations may seed; and a ring
of how far progress-based predictions of the finish were off, per kind),
:func:`bracket_duration` (what to learn from an interval-censored
observation) and :func:`duration_key`, the key durations are learned under.
Kept apart from ``_polling.py`` because it is pure arithmetic, tested
without an event loop. Must never import asyncio, aiohttp, the transport or
the session: nothing here does I/O or knows about time sources.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable

__all__ = [
    "MIN_SAMPLES",
    "WINDOW",
    "DurationEstimator",
    "bracket_duration",
    "duration_key",
    "remaining_from_progress",
]

#: Observations needed before a kind's estimate is trusted: a few, not many,
#: so that a short run (or a service waiting on a handful of tasks) leaves
#: the blind policy schedule after its first completions.
MIN_SAMPLES = 3
#: Recent observations kept per kind (a ring buffer; old ones fall out so the
#: estimate follows a drifting service).
WINDOW = 64
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


def bracket_duration(lower: float, upper: float, bounds: tuple[float, float] | None) -> float:
    """The duration to learn from what the client saw and what the service said.

    The client knows the unit ended in ``[lower, upper]`` (the last poll
    that saw it unfinished was sent, the answer that saw it finished came
    back); the service's own times may narrow that (exact times: a point;
    whole seconds: a one-second window). The midpoint of what both allow is
    learnt. When they disagree (a skewed or virtual service clock), the
    client's bracket wins, at its end nearest the service's bounds.

    Args:
        lower: Earliest the unit can have ended, seconds from its start.
        upper: Latest, likewise (``>= lower``).
        bounds: ``(low, high)`` by the service's times, or None.

    Returns:
        Seconds from its start.
    """
    if bounds is None:
        return (lower + upper) / 2.0
    low = max(lower, bounds[0])
    high = min(upper, bounds[1])
    if low <= high:
        return (low + high) / 2.0
    return lower if bounds[1] < lower else upper


def _quantile(sorted_values: list[float], q: float) -> float:
    # Nearest-rank on a small sorted list; good enough for a schedule.
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


class _KindStats:
    __slots__ = ("low", "median", "high", "ring", "count", "dirty", "ratios", "ratio_count")

    def __init__(self) -> None:
        self.ring: list[float] = []
        self.count = 0
        self.dirty = True
        self.low = self.median = self.high = 0.0
        # Actual remaining time / predicted by progress, of finished units.
        self.ratios: list[float] = []
        self.ratio_count = 0


def _push(ring: list[float], count: int, value: float, window: int) -> None:
    if len(ring) < window:
        ring.append(value)
    else:
        ring[count % window] = value


class DurationEstimator:
    """Recent task durations per kind, and the quantiles the schedule needs.

    Args:
        window: How many recent observations to keep per kind.
    """

    def __init__(self, window: int = WINDOW) -> None:
        self._window = window
        self._kinds: dict[Hashable, _KindStats] = {}

    def observe(self, kind: Hashable, duration: float) -> None:
        """Record that a task of ``kind`` took ``duration`` seconds.

        Args:
            kind: Any hashable key naming the kind of task.
            duration: Seconds from submission to the terminal state (>= 0).
        """
        if not math.isfinite(duration) or duration < 0:
            return
        stats = self._stats(kind)
        _push(stats.ring, stats.count, duration, self._window)
        stats.count += 1
        stats.dirty = True

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
        return min(len(kept), self._window)

    def _stats(self, kind: Hashable) -> _KindStats:
        stats = self._kinds.get(kind)
        if stats is None:
            stats = self._kinds[kind] = _KindStats()
        return stats

    def observe_ratio(self, kind: Hashable, ratio: float) -> None:
        """Record how a progress-based prediction did: actual remaining ÷ predicted.

        Args:
            kind: The kind key.
            ratio: ``>= 0``; 1 means the prediction was right.
        """
        if not math.isfinite(ratio) or ratio < 0:
            return
        stats = self._stats(kind)
        _push(stats.ratios, stats.ratio_count, ratio, self._window)
        stats.ratio_count += 1

    def ratio_quantile(self, kind: Hashable, q: float) -> float | None:
        """The ``q`` quantile of the recorded ratios, or None before :data:`MIN_SAMPLES`.

        Args:
            kind: The kind key.
            q: 0 to 1.
        """
        stats = self._kinds.get(kind)
        if stats is None or stats.ratio_count < MIN_SAMPLES:
            return None
        return _quantile(sorted(stats.ratios), q)

    def estimate(self, kind: Hashable) -> tuple[float, float, float] | None:
        """Return ``(low, median, high)`` durations of ``kind``, or None if too little is known.

        Args:
            kind: The kind key.

        Returns:
            The 5th percentile, median and 95th percentile of recent
            durations, or None before :data:`MIN_SAMPLES` observations.
        """
        stats = self._kinds.get(kind)
        if stats is None or stats.count < MIN_SAMPLES:
            return None
        if stats.dirty:
            values = sorted(stats.ring)
            stats.low = _quantile(values, LOW_QUANTILE)
            stats.median = _quantile(values, 0.5)
            stats.high = _quantile(values, HIGH_QUANTILE)
            stats.dirty = False
        return stats.low, stats.median, stats.high
