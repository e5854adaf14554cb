"""The sender: every attempt of one call, under one retry budget.

For each attempt it stamps the headers (the session's static ones, the
call's own, a fresh X-Date on the server's clock, the call's one X-Traceid),
lets the auth flow put its credential on them, makes one attempt through
``_http``, learns the server's clock from the answer, asks ``_retry`` what
to do, sleeps if told to, and logs the decision. A 429 that ends the budget
(or asks to wait too long) ends the call here with
:class:`~koodrive_async.RateLimitError`; every other answer goes back to the
caller for decoding.

Every attempt and decision is logged at DEBUG on the library's logger
(:data:`logger`, the one place it is defined) with the trace id; headers and
bodies are never logged.

Must never import aiohttp (that is ``_http``), ``_session`` or the waiting code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, Final

import backoff
from yarl import URL

from ._auth import AuthFlow
from ._call import (
    DEFERRED_ROUTES,
    Call,
    Response,
    create_guard,
    defer_throttled_creates,
    last_trace,
    new_trace_id,
)
from ._clock import MIN_CLOCK_OFFSET, ServerClock
from ._decode import error_from_response
from ._exceptions import RateLimitError
from ._http import HTTP, Failure
from ._lifecycle import ClientState, Lifecycle, closed_error
from ._policies import RetryPolicy
from ._retry import Decision, Draw, Refresh, Restamp, Retry, Stop, decide_answer, decide_failure
from ._tracing import Target, Tracing

__all__ = ["ASK", "Sender", "logger"]

#: The library's logger; DEBUG shows every attempt and retry decision.
logger: Final = logging.getLogger("koodrive_async")

#: ``Sender.send``'s default ``tracer``: ask the session's tracing for it.
ASK: Final[Any] = object()

# The waits between attempts go through this name, so that tests can record
# them instead of sleeping.
_sleep = asyncio.sleep


class Sender:
    """Sends calls with retries, credentials and the server's clock.

    Args:
        base_url: ``scheme://host[:port][/prefix]`` without a trailing slash.
        static_headers: Headers every call sends (X-User-Id, language).
        auth: The auth flow.
        timeout: Seconds per attempt, and for obtaining a credential.
        retry: The retry policy.
        http: The attempt maker.
        lifecycle: The session's state: nothing is sent once it is closed.
        clock: The server clock (a new one by default).
        draw: The jitter of the backoff waits (full jitter by default).
        tracing: The session's spans (off by default).
        trace_id: The X-Traceid of every call (a new one per call by default).
    """

    def __init__(
        self,
        *,
        base_url: str,
        static_headers: Mapping[str, str],
        auth: AuthFlow,
        timeout: float,
        retry: RetryPolicy,
        http: HTTP,
        lifecycle: Lifecycle,
        clock: ServerClock | None = None,
        draw: Draw = backoff.full_jitter,
        tracing: Tracing | None = None,
        trace_id: str | None = None,
    ) -> None:
        self._base_url = base_url
        self._static_headers = dict(static_headers)
        self._auth = auth
        self._timeout = timeout
        self._retry = retry
        #: The attempt maker (its owned ClientSession, the body cap).
        self.http = http
        self._lifecycle = lifecycle
        #: The server's clock, learnt from the answers' Date headers.
        self.clock = clock if clock is not None else ServerClock()
        self._draw = draw
        self._tracing = tracing if tracing is not None else Tracing()
        self._target = Target(base_url)
        # The base URL parsed once: a call's URL is then the base with its path
        # (yarl's with_path, a third cheaper than parsing the whole string), kept
        # only where the two are proven the same for this base.
        base = URL(base_url, encoded=True)
        self._url_prefix = base.raw_path.rstrip("/")
        probe = "/koodrive/ose/v1/task/1"
        self._url_base: URL | None = (
            base
            if base.with_path(self._url_prefix + probe, encoded=True)
            == URL(base_url + probe, encoded=True)
            else None
        )
        self._trace_id = trace_id
        # The per-attempt timeout handed to http, when it differs from its own.
        self._attempt_timeout: float | None = None
        # A flow that keeps the base class's apply() only sets Authorization to
        # the credential: the static headers with it are then built once per
        # credential (a token that renews builds them anew), not per attempt.
        self._plain_auth = type(auth).apply is AuthFlow.apply
        self._authorized: tuple[str, dict[str, str]] | None = None
        # Those headers less the ones the ClientSession sends by default
        # (aiohttp copies each header given per request, one by one, twice).
        defaults = http.default_headers
        self._attempt_headers = {
            name: value
            for name, value in self._static_headers.items()
            if defaults.get(name) != value
        }

    def with_options(
        self, *, timeout: float | None, retry: RetryPolicy | None, trace_id: str | None
    ) -> Sender:
        """A sender sharing everything with this one but the options given (not None)."""
        other = Sender(
            base_url=self._base_url,
            static_headers=self._static_headers,
            auth=self._auth,
            timeout=self._timeout if timeout is None else timeout,
            retry=self._retry if retry is None else retry,
            http=self.http,
            lifecycle=self._lifecycle,
            clock=self.clock,
            draw=self._draw,
            tracing=self._tracing,
            trace_id=self._trace_id if trace_id is None else trace_id,
        )
        other._attempt_timeout = self._attempt_timeout if timeout is None else timeout
        return other

    async def send(self, call: Call, tracer: Any = ASK) -> Response:
        """Send a call, retrying per policy; return the final response.

        ``tracer`` is the session's tracer when the caller has just asked
        (None: tracing is off); by default the sender asks.

        Returns:
            The last response received (any status but a final 429).

        Raises:
            RuntimeError: The session is closed (also while waiting to retry).
            APIConnectionError: No response (``possibly_created`` when a POST
                may have reached the server).
            APITimeoutError: No full response in time.
            RateLimitError: 429, and the call stopped retrying.
            ResponseValidationError: The body is longer than ``max_response_bytes``.
            InvalidRequestError: aiohttp refused to send a header or the body.
            CredentialsError: The credentials could not be had or refreshed.
            CreateVetoedError: The create's ``before_create`` guard refused an
                attempt (that attempt was not sent).
        """
        lifecycle, http, clock, auth = self._lifecycle, self.http, self.clock, self._auth
        if lifecycle.state is not ClientState.OPENED:
            lifecycle.open()  # first use, or closed: raises
        session = http.ready_client()
        if session is None:
            session = await http.client()
        trace_id = self._trace_id or new_trace_id()
        last_trace.set((lifecycle, trace_id))
        if tracer is ASK:
            tracer = self._tracing.tracer()
        path, query = call.path, call.query
        if query or self._url_base is None:
            # call.target, without the property call.
            url = URL(
                f"{self._base_url}{path}?{query}" if query else self._base_url + path, encoded=True
            )
        else:
            url = self._url_base.with_path(self._url_prefix + path, encoded=True)
        credential = auth.current()
        if credential is None:
            credential = await auth.obtain(timeout=self._timeout)
        debug = logger.isEnabledFor(logging.DEBUG)
        # The credential already in ``base`` (None: apply() puts it on each attempt).
        authorized: str | None = None
        if call.headers:
            base = {**self._static_headers, **call.headers}
        elif self._plain_auth:
            cached = self._authorized
            if cached is None or cached[0] != credential:
                cached = self._authorized = (
                    credential,
                    {**self._attempt_headers, "Authorization": credential},
                )
            authorized, base = cached
        else:
            base = self._static_headers
        attempt, backoffs = 1, 0  # the attempt's number in the budget; jittered waits made
        sends = 0  # attempts made (a restamp or a refresh is one more, outside the budget)
        restamped = refreshed = False
        guard = None if call.idempotent else create_guard.get()
        while True:
            if lifecycle.state is ClientState.CLOSED:
                # Closed while this call was waiting to retry: do not reopen a session.
                raise closed_error()
            headers = {**base, "X-Date": clock.x_date(), "X-Traceid": trace_id}
            # Kept per attempt: the clock is shared with the calls in flight.
            stamped = clock.stamped_second
            if credential is not authorized:
                auth.apply(credential, call, headers)
            if guard is not None:
                # After the X-Date is stamped: an attempt the guard lets through
                # carries an X-Date no later than the guard's check (a lease
                # check then fences it: the service refuses a stale X-Date).
                await guard()
            if debug:
                _log_attempt(call, attempt, self._retry.max_attempts, trace_id)
                started = time.monotonic()
            if tracer is None:
                result = await http.attempt(
                    session, call.method, url, headers, call.body, self._attempt_timeout, trace_id
                )
            else:
                with self._tracing.attempt(
                    tracer, call.method, call.url_template, str(url), self._target, sends, trace_id
                ) as record:
                    result = await http.attempt(
                        session,
                        call.method,
                        url,
                        headers,
                        call.body,
                        self._attempt_timeout,
                        trace_id,
                    )
                    record(
                        result.status,
                        None if isinstance(result, Response) else result.name or result.kind,
                    )
            sends += 1
            if type(result) is Response:
                if debug:
                    _log_answer(call, result.status, started, trace_id)
                before = clock.offset
                server_time = clock.learn(result.headers.get("Date"))
                if clock.offset != before:
                    _log_clock(before, clock.offset, trace_id)
                decision = (
                    None
                    if result.status < 400
                    else self._after_answer(
                        call,
                        result,
                        server_time,
                        stamped,
                        attempt,
                        backoffs,
                        restamped,
                        refreshed,
                        trace_id,
                    )
                )
                if decision is None:
                    return result
            else:
                assert isinstance(result, Failure)
                decision = self._after_failure(call, result, attempt, backoffs, trace_id)
            if type(decision) is Retry:
                attempt += 1
                backoffs += not decision.retry_after
                await _sleep(decision.delay)
            elif type(decision) is Restamp:
                restamped = True
            else:
                refreshed = True
                fresh = await auth.refresh(credential, timeout=self._timeout)
                if fresh is not None:
                    credential = fresh

    def _after_failure(
        self, call: Call, failure: Failure, attempt: int, backoffs: int, trace_id: str
    ) -> Retry:
        """The retry after a failed attempt; raises the call's error when there is none."""
        if failure.final:
            decision: Decision = Stop("final")
        else:
            decision = decide_failure(
                call,
                failure.kind,
                tls=failure.tls,
                attempt=attempt,
                backoffs=backoffs,
                policy=self._retry,
                draw=self._draw,
            )
        _log_decision(
            call,
            _failure_text(failure, self.http.max_response_bytes),
            decision,
            attempt,
            self._retry,
            trace_id,
        )
        if type(decision) is Retry:
            return decision
        assert isinstance(decision, Stop)
        # Raised here, outside any except block: the error carries neither a
        # cause nor a context (aiohttp's exceptions keep the request headers).
        raise failure.error(
            call,
            trace_id,
            cap=self.http.max_response_bytes,
            maybe_sent=decision.possibly_created,
        )

    def _after_answer(
        self,
        call: Call,
        answer: Response,
        server_time: float | None,
        stamped: int,
        attempt: int,
        backoffs: int,
        restamped: bool,
        refreshed: bool,
        trace_id: str,
    ) -> Retry | Restamp | Refresh | None:
        """What to do after an error answer: None to return it; raises a final 429."""
        clock = self.clock
        status = answer.status
        decision = decide_answer(
            call,
            status,
            retry_after=answer.headers.get("Retry-After"),
            server_time=server_time,
            stamped_second=stamped,
            attempt=attempt,
            backoffs=backoffs,
            policy=self._retry,
            restamped=restamped,
            may_refresh=not refreshed and self._auth.can_refresh,
            now=clock.now,
            draw=self._draw,
        )
        if (
            status == 429
            and type(decision) is Retry
            and not call.idempotent
            and call.route in DEFERRED_ROUTES
            and defer_throttled_creates.get()
        ):
            # The caller sends this create again itself, after a hold it shares.
            seconds = decision.delay if decision.retry_after else None
            decision = Stop("deferred", retry_after=seconds)
        _log_decision(call, f"HTTP {status}", decision, attempt, self._retry, trace_id)
        if not isinstance(decision, Stop):
            return decision
        if status == 429:
            raise _rate_limit_error(call, answer, decision, attempt)
        return None


def _failure_text(failure: Failure, cap: int) -> str:
    if failure.status:
        return f"HTTP {failure.status} body longer than {cap} bytes; not read"
    return f"{failure.kind} ({failure.name})"


def _log_clock(before: float, after: float, trace_id: str) -> None:
    if abs(after - before) >= MIN_CLOCK_OFFSET:
        logger.debug("server clock differs by %.1fs; X-Date corrected trace_id=%s", after, trace_id)


def _log_attempt(call: Call, attempt: int, max_attempts: int, trace_id: str) -> None:
    logger.debug(
        "%s %s attempt %d/%d trace_id=%s", call.method, call.target, attempt, max_attempts, trace_id
    )


def _log_answer(call: Call, status: int, started: float, trace_id: str) -> None:
    logger.debug(
        "%s %s HTTP %d in %.1f ms trace_id=%s",
        call.method,
        call.target,
        status,
        (time.monotonic() - started) * 1000,
        trace_id,
    )


def _log_decision(
    call: Call, outcome: str, decision: Decision, attempt: int, policy: RetryPolicy, trace_id: str
) -> None:
    """The one place a retry decision is logged (never headers or bodies)."""
    if not logger.isEnabledFor(logging.DEBUG):
        return
    if type(decision) is Retry:
        what = f"; retrying in {decision.delay:.3f}s" + (
            " (Retry-After)" if decision.retry_after else ""
        )
    elif type(decision) is Restamp:
        what = " with a skewed clock; retrying with a corrected X-Date"
    elif type(decision) is Refresh:
        what = "; refreshing the credentials and retrying once"
    else:
        assert isinstance(decision, Stop)
        what = _stop_text(call, outcome, decision, attempt, policy)
    logger.debug("%s %s %s%s trace_id=%s", call.method, call.target, outcome, what, trace_id)


def _stop_text(call: Call, outcome: str, stop: Stop, attempt: int, policy: RetryPolicy) -> str:
    if stop.why == "budget spent":
        return f"; giving up after {attempt} attempt(s)"
    if stop.why == "retry-after too long":
        return (
            f" asks to wait {stop.retry_after:.1f}s, more than max_retry_after "
            f"{policy.max_retry_after:.1f}s; giving up"
        )
    if stop.why == "final":
        return ""
    if stop.why == "deferred":
        return "; handed back to the caller, which sends it again after the hold"
    maybe = stop.possibly_created or (call.is_create and outcome.startswith("HTTP 5"))
    return " is not retried" + (" (a POST that may have been carried out)" if maybe else "")


def _rate_limit_error(call: Call, answer: Response, stop: Stop, attempts: int) -> RateLimitError:
    """The RateLimitError a 429 ends a call with, with what the sender knows of it."""
    error = error_from_response(call, answer)
    assert isinstance(error, RateLimitError)
    # The decoder read Retry-After on the local clock; this one is on the server's.
    error.retry_after = stop.retry_after
    error.attempts = attempts
    error.retries_exhausted = stop.why == "budget spent"
    error.deferred = stop.why == "deferred"
    return error
