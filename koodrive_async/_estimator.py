"""How long tasks of each kind take: the pure statistics the poll scheduler plans with.

Owns :class:`DurationEstimator` (a ring buffer of recent durations per kind
and their quantiles) and :func:`duration_key`, the key durations are learned
under. Kept apart from ``_polling.py`` because it is pure arithmetic, tested
without an event loop. Must never import asyncio, aiohttp, the transport or
the session: nothing here does I/O or knows about time sources.
"""

from __future__ import annotations

import math
from collections.abc import Hashable

__all__ = ["MIN_SAMPLES", "WINDOW", "DurationEstimator", "bracket_duration", "duration_key"]

#: Observations needed before a kind's estimate is trusted.
MIN_SAMPLES = 5
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
    __slots__ = ("low", "median", "high", "ring", "count", "dirty")

    def __init__(self) -> None:
        self.ring: list[float] = []
        self.count = 0
        self.dirty = True
        self.low = self.median = self.high = 0.0


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
        stats = self._kinds.get(kind)
        if stats is None:
            stats = self._kinds[kind] = _KindStats()
        if len(stats.ring) < self._window:
            stats.ring.append(duration)
        else:
            stats.ring[stats.count % self._window] = duration
        stats.count += 1
        stats.dirty = True

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
