"""Retry and polling policies (frozen attrs, validated on construction)."""

from __future__ import annotations

import math

import attrs

from ._exceptions import InvalidRequestError

__all__ = ["PollPolicy", "RetryPolicy"]


def _is_number(value: object) -> bool:
    # bool is an int, and NaN or infinity slip through every comparison.
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _positive(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not _is_number(value) or value <= 0:
        raise InvalidRequestError(
            f"{attribute.name} must be a positive finite number, got {value!r}",
            field=attribute.name,
        )


def _non_negative(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not _is_number(value) or value < 0:
        raise InvalidRequestError(
            f"{attribute.name} must be a non-negative finite number, got {value!r}",
            field=attribute.name,
        )


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

    max_attempts: int = attrs.field(default=4)
    initial_backoff: float = attrs.field(default=0.25, validator=_positive)
    max_backoff: float = attrs.field(default=8.0, validator=_positive)
    max_retry_after: float = attrs.field(default=60.0, validator=_non_negative)

    @max_attempts.validator
    def _check_attempts(self, _attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidRequestError(
                f"max_attempts must be an int >= 1, got {value!r}", field="max_attempts"
            )


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
    multiplier: float = attrs.field(default=1.5)
    max_interval: float = attrs.field(default=15.0, validator=_positive)
    jitter: float = attrs.field(default=0.1)
    max_invalid_responses: int = attrs.field(default=5)

    @multiplier.validator
    def _check_multiplier(self, _attribute: attrs.Attribute[float], value: float) -> None:
        if not _is_number(value) or value < 1:
            raise InvalidRequestError(
                f"multiplier must be a finite number >= 1, got {value!r}", field="multiplier"
            )

    @jitter.validator
    def _check_jitter(self, _attribute: attrs.Attribute[float], value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            raise InvalidRequestError(f"jitter must be in [0, 1), got {value!r}", field="jitter")

    @max_invalid_responses.validator
    def _check_max_invalid(self, _attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidRequestError(
                f"max_invalid_responses must be an int >= 1, got {value!r}",
                field="max_invalid_responses",
            )
