"""A per-user service quota: one token bucket per ``X-User-Id`` on the emulator's clock.

The service throttles each user: above a rate, requests are answered 429 with
``Retry-After``. :class:`Quota` says how (Q requests per second, a burst of B,
creates only or every request); :class:`QuotaBook` holds the buckets and the
counters a test or a benchmark reads (how many were accepted and throttled).

The buckets refill on :class:`EmulatorClock` time, so they are deterministic
when a test freezes the clock (``clock_speed=0``) and moves it with
``advance()``, and they follow real time at the default speed of 1. The
``Retry-After`` it answers is in those clock seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import attrs

__all__ = ["CREATE_ROUTES", "Quota", "QuotaBook", "QuotaCounters", "make_quota"]

#: The routes a ``scope="creates"`` quota counts: the ones that create a task.
CREATE_ROUTES = frozenset({"create_task", "create_share_task", "create_job"})


def _check_rate(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not 0 < value < math.inf:
        raise ValueError(f"quota {attr.name} must be a finite number > 0, got {value!r}")


def _check_burst(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not 1 <= value < math.inf:
        raise ValueError(f"quota {attr.name} must be a finite number >= 1, got {value!r}")


def _to_float(value: object) -> float:
    # bool is an int: refuse it rather than read True as 1 request per second.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"quota numbers must be numbers, got {value!r}")
    return float(value)


@attrs.frozen
class Quota:
    """A per-user quota: ``rate`` requests per second with a burst of ``burst``.

    Args:
        rate: Requests per second each user may make (> 0), on the emulator's clock.
        burst: How many a user may make at once after a quiet spell (>= 1;
            the bucket's size). Default: one second's worth, at least 1.
        scope: ``"creates"`` (the default) counts the three create routes
            only; ``"all"`` counts every API request of the user.
        whole_seconds: When True, ``Retry-After`` is rounded up to whole
            seconds (as RFC 9110 writes it); when False (the default) it is
            the exact wait, rounded up to the millisecond.

    Raises:
        ValueError: A value is out of range.
    """

    rate: float = attrs.field(converter=_to_float, validator=_check_rate)
    burst: float = attrs.field(
        default=attrs.Factory(lambda self: max(1.0, self.rate), takes_self=True),
        converter=_to_float,
        validator=_check_burst,
    )
    scope: Literal["creates", "all"] = attrs.field(
        default="creates", validator=attrs.validators.in_(("creates", "all"))
    )
    whole_seconds: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    def counts(self, route: str) -> bool:
        """Whether a request on ``route`` spends the quota.

        Args:
            route: Route name (``_faults.API_ROUTES``).

        Returns:
            True when it is debited.
        """
        return self.scope == "all" or route in CREATE_ROUTES

    def retry_after_header(self, seconds: float) -> str:
        """Write a wait as the ``Retry-After`` value this quota answers.

        Args:
            seconds: Clock seconds until the bucket holds a token again.

        Returns:
            The header value (never "0": a throttled request always waits).
        """
        if self.whole_seconds:
            return str(max(1, math.ceil(seconds)))
        millis = max(1, math.ceil(seconds * 1000 - 1e-6))
        return str(millis // 1000) if millis % 1000 == 0 else f"{millis / 1000:.3f}"

    def to_json(self) -> dict[str, Any]:
        """Return the quota as the admin route shows it.

        Returns:
            A JSON-ready dict.
        """
        return {
            "rate": self.rate,
            "burst": self.burst,
            "scope": self.scope,
            "whole_seconds": self.whole_seconds,
        }


def make_quota(value: object) -> Quota | None:
    """Read a quota given as a :class:`Quota`, a dict of its fields, or None.

    Args:
        value: The quota (``{"rate": 5, "burst": 10}``), or None for no quota.

    Returns:
        The quota, or None.

    Raises:
        ValueError: Unknown fields or a bad value.
    """
    if value is None or isinstance(value, Quota):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"a quota is a Quota, a dict of its fields or None, got {value!r}")
    unknown = set(value) - {"rate", "burst", "scope", "whole_seconds"}
    if unknown:
        raise ValueError(f"unknown quota fields: {sorted(unknown)}")
    if "rate" not in value:
        raise ValueError("a quota needs a rate")
    try:
        return Quota(**value)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


@attrs.define
class QuotaCounters:
    """What one user's bucket did.

    Args:
        accepted: Requests that spent a token (and went on to be handled).
        throttled: Requests answered 429 by the quota.
    """

    accepted: int = 0
    throttled: int = 0


@attrs.define
class _Bucket:
    tokens: float
    stamp: float


class QuotaBook:
    """The buckets of every user under the current quota, and their counters.

    Args:
        quota: The quota, or None (nothing is throttled).
        now: The clock the buckets refill on (``EmulatorClock.now``).
    """

    def __init__(self, quota: Quota | None, now: Callable[[], float]) -> None:
        self._initial = quota
        self.quota = quota
        self._now = now
        self._buckets: dict[str, _Bucket] = {}
        #: Per user id: accepted and throttled counts (kept when the quota changes).
        self.counters: dict[str, QuotaCounters] = {}

    def set(self, quota: Quota | None) -> None:
        """Put a new quota in force; every bucket starts full again.

        Args:
            quota: The quota, or None to stop throttling.
        """
        self.quota = quota
        self._buckets.clear()

    def reset(self) -> None:
        """Back to the configured quota, full buckets and zero counters."""
        self.set(self._initial)
        self.counters.clear()

    def take(self, route: str, user_id: str) -> str | None:
        """Spend one token of ``user_id``'s bucket for a request on ``route``.

        Args:
            route: Route name of the request.
            user_id: Its ``X-User-Id`` (empty when absent: one shared bucket).

        Returns:
            None when the request may go on (or is not counted), else the
            ``Retry-After`` to answer: the clock seconds until a token is
            there again.
        """
        quota = self.quota
        if quota is None or not quota.counts(route):
            return None
        now = self._now()
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = self._buckets[user_id] = _Bucket(quota.burst, now)
        elif now > bucket.stamp:
            bucket.tokens = min(quota.burst, bucket.tokens + (now - bucket.stamp) * quota.rate)
            bucket.stamp = now
        counters = self.counters.get(user_id)
        if counters is None:
            counters = self.counters[user_id] = QuotaCounters()
        # A hair of tolerance: refills computed from float clock readings may
        # land a few ulps short of the whole token a Retry-After promised.
        if bucket.tokens >= 1.0 - 1e-9:
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
            counters.accepted += 1
            return None
        counters.throttled += 1
        return quota.retry_after_header((1.0 - bucket.tokens) / quota.rate)
