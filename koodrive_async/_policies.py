"""Retry and polling policies (frozen attrs, validated on construction).

Only values: the sender reads RetryPolicy, the waiting code PollPolicy. Every
check goes through ``_validate``. Imports nothing but attrs and the validators.
"""

from __future__ import annotations

from typing import Any

import attrs

from . import _validate as check

__all__ = ["PollPolicy", "RetryPolicy"]


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check.positive_number(value, attribute.name)


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check.non_negative_number(value, attribute.name)


def _count(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check.int_in_range(value, attribute.name, low=1)


def _multiplier(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check.number_in_range(value, attribute.name, low=1)


def _jitter(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check.number_in_range(value, attribute.name, low=0, high=1, high_open=True)


@attrs.frozen
class RetryPolicy:
    """How one HTTP call is retried (by the transport, and only there).

    GET is retried on connection errors, timeouts, 429 and 5xx. A create
    (POST) is retried only when the server cannot have acted: the connection
    was refused or the request was never sent, 429, 503. The wait between
    attempts is exponential with full jitter, capped; a Retry-After header is
    honoured up to ``max_retry_after``, beyond which the call fails with
    :class:`RateLimitError` (or the error at hand) instead of waiting.

    Args:
        max_attempts: Attempts in all, the first included (1 disables retries).
        initial_backoff: Upper bound of the first jittered wait, in seconds.
        max_backoff: Cap on the upper bound of any jittered wait, in seconds.
        max_retry_after: Longest Retry-After (seconds) we are willing to wait.
    """

    max_attempts: int = attrs.field(default=4, validator=_count)
    initial_backoff: float = attrs.field(default=0.25, validator=_positive)
    max_backoff: float = attrs.field(default=8.0, validator=_positive)
    max_retry_after: float = attrs.field(default=60.0, validator=_non_negative)


@attrs.frozen
class PollPolicy:
    """How often a waited-on task is polled.

    The interval starts at ``initial`` and grows by ``multiplier`` after each
    poll up to ``max_interval``; every interval is spread by ±``jitter``
    (a fraction) so that many waiters never poll in lockstep.

    An answer whose body cannot be parsed is polled again later, but only
    ``max_invalid_responses`` times in a row: a task the service keeps
    describing in a way this client cannot read would otherwise be polled
    forever (with no timeout), so the wait then ends with that
    :class:`~koodrive_async.ResponseValidationError`.

    Args:
        initial: First interval, in seconds.
        multiplier: Growth factor per poll (>= 1).
        max_interval: Largest interval, in seconds.
        jitter: Relative spread of each interval, 0 to 1 (0.1 = ±10%).
        max_invalid_responses: Consecutive unparseable answers after which
            the wait fails (an int >= 1).
    """

    initial: float = attrs.field(default=0.5, validator=_positive)
    multiplier: float = attrs.field(default=1.5, validator=_multiplier)
    max_interval: float = attrs.field(default=15.0, validator=_positive)
    jitter: float = attrs.field(default=0.1, validator=_jitter)
    max_invalid_responses: int = attrs.field(default=5, validator=_count)
