"""The retry rules: what to do after each attempt of a call, decided without I/O.

Owns the documented retry table (docs/errors-and-retries.md, "Retries"):

* a GET is retried on connection errors, timeouts, 429 and 5xx;
* a POST (a create) only when the server cannot have acted: not sent, 429,
  503; never after a 500/502/504, a read timeout or a dropped connection
  (the error then says ``possibly_created``);
* TLS failures are not retried (they do not go away);
* Retry-After (seconds, or an HTTP date measured on the server's clock) is
  honoured up to ``RetryPolicy.max_retry_after``; longer, the call stops;
* otherwise the wait is exponential backoff with full jitter (``backoff``),
  drawn through an injectable function so that tests can fix it;
* ``RetryPolicy.max_attempts`` is the one budget; the two extra tries below
  do not use it: a 400/401 to an attempt whose X-Date the server's ``Date``
  shows was out of its window gets one re-stamped try, and a 401 with
  refreshable credentials one refresh.

Everything here is a function of its arguments (the call's method, how the
attempt ended, the attempt number, the policy, the server's time), returning a
small frozen :data:`Decision`. Pure: imports no I/O library (no aiohttp, no
asyncio), does no logging; the sender acts on the decision and logs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Final

import attrs
import backoff

from ._policies import RetryPolicy

__all__ = [
    "BROKEN",
    "NOT_SENT",
    "TIMED_OUT",
    "Decision",
    "Refresh",
    "Restamp",
    "Retry",
    "Stop",
    "backoff_bound",
    "decide_answer",
    "decide_failure",
    "parse_retry_after",
    "x_date_refused",
]

# How an attempt that got no answer ended.
#: No connection was made, or the request headers never started going out:
#: safe to repeat anything.
NOT_SENT: Final = "not sent"
#: Sent (or maybe sent), no full answer in time.
TIMED_OUT: Final = "timed out"
#: Dropped or reset after (maybe) sending.
BROKEN: Final = "connection failed"

_GET_RETRY_STATUSES: Final = frozenset({429, *range(500, 600)})
# A POST answered 500/502/504 may have been carried out: never repeat it.
_POST_RETRY_STATUSES: Final = frozenset({429, 503})
# The pages: X-Date "must be within 15 minutes from the current time and cannot
# be later than" it. A refused stamp this close to the edge counts as the cause
# (the Date header is rounded and a little late).
_X_DATE_MAX_AGE: Final = 15 * 60.0
_X_DATE_SLACK: Final = 2.0
# 2 ** 64 times any positive initial_backoff is past any max_backoff.
_MAX_EXPONENT: Final = 64

#: ``draw(upper_bound) -> seconds``: the jitter (full jitter: uniform in [0, bound]).
Draw = Callable[[float], float]


@attrs.frozen(slots=True)
class Retry:
    """Wait ``delay`` seconds, then try again (uses one attempt of the budget).

    Attributes:
        delay: Seconds to wait.
        retry_after: True when the delay is the server's Retry-After.
    """

    delay: float
    retry_after: bool = False


@attrs.frozen(slots=True)
class Restamp:
    """Try again at once with a corrected X-Date (does not use the budget)."""


@attrs.frozen(slots=True)
class Refresh:
    """Refresh the credentials, then try again at once (does not use the budget)."""


@attrs.frozen(slots=True)
class Stop:
    """End the call with this attempt's outcome.

    Attributes:
        why: ``"not retried"``, ``"budget spent"`` or ``"retry-after too long"``.
        retry_after: The server's Retry-After in seconds, when it gave one.
        possibly_created: The failed attempt was a POST that may have reached
            the server (only for attempts without an answer).
    """

    why: str
    retry_after: float | None = None
    possibly_created: bool = False


#: What the sender does next.
Decision = Retry | Restamp | Refresh | Stop

_ACCEPT: Final = Stop("success")
_NOT_RETRIED: Final = Stop("not retried")
_NOT_RETRIED_MAYBE_SENT: Final = Stop("not retried", possibly_created=True)
_BUDGET_SPENT: Final = Stop("budget spent")
_BUDGET_SPENT_MAYBE_SENT: Final = Stop("budget spent", possibly_created=True)
_RESTAMP: Final = Restamp()
_REFRESH: Final = Refresh()


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date).

    Args:
        value: The header value, or None.
        now: The current epoch time (for dates); defaults to ``time.time()``.

    Returns:
        Seconds (>= 0), or None when absent or unparseable.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds == float("inf"):  # NaN or inf
        return None
    return max(0.0, seconds)


def backoff_bound(policy: RetryPolicy, step: int) -> float:
    """The upper bound of the ``step``-th (0-based) jittered wait: capped exponential.

    The same sequence as ``backoff.expo(base=2, factor=initial_backoff,
    max_value=max_backoff)``, computed from the step instead of a generator.
    """
    return min(policy.initial_backoff * 2.0 ** min(step, _MAX_EXPONENT), policy.max_backoff)


def x_date_refused(status: int, stamped_second: int, server_time: float | None) -> bool:
    """True when a 400/401 is best explained by the attempt's X-Date being out of window.

    Judged by the stamp the attempt carried against the server's own clock
    (its ``Date`` on this answer), not by whether the answer changed the
    learnt offset: so every call in flight when a skew shows gets its one
    corrected try, and a 400/401 to a good stamp is not sent twice.
    """
    return (
        status in (400, 401)
        and server_time is not None
        and (
            stamped_second > server_time // 1
            or server_time - stamped_second > _X_DATE_MAX_AGE - _X_DATE_SLACK
        )
    )


def decide_failure(
    method: str,
    kind: str,
    *,
    tls: bool,
    attempt: int,
    backoffs: int,
    policy: RetryPolicy,
    draw: Draw = backoff.full_jitter,
) -> Retry | Stop:
    """What to do after an attempt that got no answer.

    Args:
        method: ``GET`` or ``POST``.
        kind: :data:`NOT_SENT`, :data:`TIMED_OUT` or :data:`BROKEN`.
        tls: It was a certificate or TLS failure.
        attempt: This attempt's number in the budget (1 for the first).
        backoffs: Jittered waits the call already made.
        policy: The retry policy.
        draw: The jitter.

    Returns:
        Retry (after a jittered wait) or Stop (``possibly_created`` when a
        POST may have reached the server).
    """
    maybe_sent = method == "POST" and kind != NOT_SENT
    if tls or maybe_sent:
        return _NOT_RETRIED_MAYBE_SENT if maybe_sent else _NOT_RETRIED
    if attempt >= policy.max_attempts:
        return _BUDGET_SPENT
    return Retry(draw(backoff_bound(policy, backoffs)))


def decide_answer(
    method: str,
    status: int,
    *,
    retry_after: str | None,
    server_time: float | None,
    stamped_second: int,
    attempt: int,
    backoffs: int,
    policy: RetryPolicy,
    restamped: bool,
    may_refresh: bool,
    now: Callable[[], float],
    draw: Draw = backoff.full_jitter,
) -> Decision:
    """What to do after an attempt that got an answer.

    Args:
        method: ``GET`` or ``POST``.
        status: The HTTP status.
        retry_after: The Retry-After header, or None.
        server_time: The server's time from this answer's ``Date``, or None.
        stamped_second: The epoch second the attempt's X-Date carried.
        attempt: This attempt's number in the budget (1 for the first).
        backoffs: Jittered waits the call already made.
        policy: The retry policy.
        restamped: The call already had its re-stamped try.
        may_refresh: The credentials can be refreshed, and were not yet for this call.
        now: The server's time as far as known (used when ``server_time`` is None).
        draw: The jitter.

    Returns:
        The decision; ``Stop("success")`` for a status below 400.
    """
    if status < 400:
        return _ACCEPT
    if not restamped and x_date_refused(status, stamped_second, server_time):
        return _RESTAMP  # a refused request did nothing: safe for a POST too
    if status == 401 and may_refresh:
        return _REFRESH
    if status not in (_GET_RETRY_STATUSES if method == "GET" else _POST_RETRY_STATUSES):
        return _NOT_RETRIED
    # An HTTP date is the server's time: measured against its clock (this
    # answer's Date, else the learnt offset), not ours.
    seconds = parse_retry_after(retry_after, now=server_time if server_time is not None else now())
    if attempt >= policy.max_attempts:
        return Stop("budget spent", retry_after=seconds) if seconds is not None else _BUDGET_SPENT
    if seconds is not None and seconds > policy.max_retry_after:
        return Stop("retry-after too long", retry_after=seconds)
    if seconds is None:
        return Retry(draw(backoff_bound(policy, backoffs)))
    return Retry(seconds, retry_after=True)
