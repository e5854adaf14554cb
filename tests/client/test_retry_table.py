"""The documented retry table (docs/errors-and-retries.md, "Retries"), row by row.

The decisions are pure functions of (method, how the attempt ended, attempt
number, policy, server time), so every row is one line of data here; the
jitter is fixed by an injected draw that returns its upper bound.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from koodrive_async import RetryPolicy
from koodrive_async._retry import (
    BROKEN,
    NOT_SENT,
    TIMED_OUT,
    Decision,
    Refresh,
    Restamp,
    Retry,
    Stop,
    backoff_bound,
    decide_answer,
    decide_failure,
)

POLICY = RetryPolicy(max_attempts=4, initial_backoff=0.25, max_backoff=8.0, max_retry_after=60.0)
NOW = 1_762_153_300.0  # the server's time in these rows
GOOD_STAMP = int(NOW)


def _bound(bound: float) -> float:
    return bound


def _answer(
    method: str,
    status: int,
    *,
    retry_after: str | None = None,
    server_time: float | None = NOW,
    stamped: int = GOOD_STAMP,
    attempt: int = 1,
    backoffs: int = 0,
    restamped: bool = False,
    may_refresh: bool = False,
) -> Decision:
    return decide_answer(
        method,
        status,
        retry_after=retry_after,
        server_time=server_time,
        stamped_second=stamped,
        attempt=attempt,
        backoffs=backoffs,
        policy=POLICY,
        restamped=restamped,
        may_refresh=may_refresh,
        now=lambda: NOW + 100,  # the learnt clock, only used without a Date
        draw=_bound,
    )


# ------------------------------------------------------------ attempts without an answer

FAILURE_ROWS = [
    # method, kind, tls, expected
    ("GET", NOT_SENT, False, Retry(0.25)),
    ("GET", TIMED_OUT, False, Retry(0.25)),
    ("GET", BROKEN, False, Retry(0.25)),
    ("POST", NOT_SENT, False, Retry(0.25)),
    ("POST", TIMED_OUT, False, Stop("not retried", possibly_created=True)),
    ("POST", BROKEN, False, Stop("not retried", possibly_created=True)),
    # A certificate or TLS failure does not go away by trying again.
    ("GET", BROKEN, True, Stop("not retried")),
    ("GET", NOT_SENT, True, Stop("not retried")),
    ("POST", NOT_SENT, True, Stop("not retried")),
    ("POST", BROKEN, True, Stop("not retried", possibly_created=True)),
]


@pytest.mark.parametrize(("method", "kind", "tls", "expected"), FAILURE_ROWS)
def test_failure_rows(method: str, kind: str, tls: bool, expected: Decision) -> None:
    decision = decide_failure(
        method, kind, tls=tls, attempt=1, backoffs=0, policy=POLICY, draw=_bound
    )
    assert decision == expected


@pytest.mark.parametrize(
    ("method", "kind"), [("GET", NOT_SENT), ("GET", TIMED_OUT), ("POST", NOT_SENT)]
)
def test_a_failure_on_the_last_attempt_of_the_budget_stops(method: str, kind: str) -> None:
    decision = decide_failure(
        method, kind, tls=False, attempt=POLICY.max_attempts, backoffs=3, policy=POLICY
    )
    assert decision == Stop("budget spent")


# ------------------------------------------------------------ answers

STATUS_ROWS = [
    # method, status, expected (first attempt, no Retry-After)
    ("GET", 200, Stop("success")),
    ("POST", 200, Stop("success")),
    ("GET", 404, Stop("not retried")),
    ("POST", 400, Stop("not retried")),
    ("GET", 401, Stop("not retried")),
    ("GET", 429, Retry(0.25)),
    ("GET", 500, Retry(0.25)),
    ("GET", 502, Retry(0.25)),
    ("GET", 503, Retry(0.25)),
    ("GET", 504, Retry(0.25)),
    ("POST", 429, Retry(0.25)),
    ("POST", 503, Retry(0.25)),
    # A create answered 500/502/504 may have been carried out: never repeated.
    ("POST", 500, Stop("not retried")),
    ("POST", 502, Stop("not retried")),
    ("POST", 504, Stop("not retried")),
]


@pytest.mark.parametrize(("method", "status", "expected"), STATUS_ROWS)
def test_status_rows(method: str, status: int, expected: Decision) -> None:
    assert _answer(method, status) == expected


@pytest.mark.parametrize(("method", "status"), [("GET", 503), ("GET", 429), ("POST", 429)])
def test_retry_after_seconds_within_the_cap_is_the_wait(method: str, status: int) -> None:
    assert _answer(method, status, retry_after="7") == Retry(7.0, retry_after=True)


@pytest.mark.parametrize(("method", "status"), [("GET", 503), ("POST", 429), ("POST", 503)])
def test_retry_after_above_the_cap_stops_with_it(method: str, status: int) -> None:
    assert _answer(method, status, retry_after="3600") == Stop(
        "retry-after too long", retry_after=3600.0
    )


def test_retry_after_is_not_read_for_a_status_that_is_not_retried() -> None:
    assert _answer("POST", 500, retry_after="1") == Stop("not retried")


def test_an_http_date_retry_after_is_measured_on_the_answers_date() -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True)
    assert _answer("GET", 429, retry_after=when) == Retry(30.0, retry_after=True)


def test_an_http_date_retry_after_without_a_date_uses_the_learnt_clock() -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + 130, UTC), usegmt=True)
    # now() gives NOW + 100: 30 s to wait, not 130.
    assert _answer("GET", 429, retry_after=when, server_time=None) == Retry(30.0, retry_after=True)


def test_the_last_attempt_of_the_budget_stops_and_keeps_the_retry_after() -> None:
    assert _answer("GET", 429, attempt=4, retry_after="2") == Stop("budget spent", retry_after=2.0)
    assert _answer("POST", 503, attempt=4) == Stop("budget spent")


def test_the_backoff_is_capped_exponential_over_the_jittered_waits() -> None:
    assert [backoff_bound(POLICY, n) for n in range(8)] == [0.25, 0.5, 1, 2, 4, 8, 8, 8]
    assert backoff_bound(POLICY, 10_000) == 8.0
    assert _answer("GET", 503, attempt=3, backoffs=2) == Retry(1.0)


def test_the_jitter_is_drawn_through_the_injected_function() -> None:
    seen: list[float] = []

    def draw(bound: float) -> float:
        seen.append(bound)
        return bound / 2

    decision = decide_failure(
        "GET", BROKEN, tls=False, attempt=2, backoffs=1, policy=POLICY, draw=draw
    )
    assert decision == Retry(0.25)
    assert seen == [0.5]


# ------------------------------------------------------------ the extra tries

SKEW_ROWS = [
    # status, stamp, expected
    (400, GOOD_STAMP + 1, Restamp()),  # later than the server's current second
    (401, GOOD_STAMP + 1, Restamp()),
    (400, GOOD_STAMP - 15 * 60, Restamp()),  # about 15 minutes old
    (400, GOOD_STAMP - 60, Stop("not retried")),  # a good stamp: the 400 is real
    (403, GOOD_STAMP + 1, Stop("not retried")),  # only 400/401 refuse a stamp
]


@pytest.mark.parametrize(("status", "stamped", "expected"), SKEW_ROWS)
def test_a_stale_or_future_x_date_gets_one_restamped_try(
    status: int, stamped: int, expected: Decision
) -> None:
    assert _answer("POST", status, stamped=stamped) == expected


def test_the_restamped_try_is_made_once_and_does_not_need_budget() -> None:
    assert _answer("GET", 400, stamped=GOOD_STAMP + 1, restamped=True) == Stop("not retried")
    assert _answer("GET", 400, stamped=GOOD_STAMP + 1, attempt=4) == Restamp()
    # Without the server's Date nothing shows the stamp was the cause.
    assert _answer("GET", 400, stamped=GOOD_STAMP + 1, server_time=None) == Stop("not retried")


def test_a_401_with_refreshable_credentials_gets_one_refresh() -> None:
    assert _answer("POST", 401, may_refresh=True) == Refresh()
    assert _answer("GET", 401, may_refresh=True, attempt=4) == Refresh()
    assert _answer("GET", 401, may_refresh=False) == Stop("not retried")
    # A skewed stamp is corrected first: the refresh may not be needed.
    assert _answer("GET", 401, stamped=GOOD_STAMP + 1, may_refresh=True) == Restamp()
