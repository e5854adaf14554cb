"""The transport: the only module that does client I/O (aiohttp).

It sends one :class:`~koodrive_async._protocol.Call` and returns the final
``(status, headers, body)``; the protocol decodes it. In between it owns
every attempt:

* headers: the session's static ones, Authorization, and per attempt a fresh
  X-Date (UTC, seconds floored, corrected by the offset learnt from the
  server's ``Date`` header) and the call's one X-Traceid;
* timeouts: ``timeout`` bounds each attempt as a whole (waiting for a pooled
  connection, connecting, sending, the full response) and the token
  provider; an attempt that failed before its request headers were written
  (a pool wait or a TCP connect that timed out, a refused connection) counts
  as "not sent" - an owned session knows it from an aiohttp trace hook, a
  caller's session only from the exception's type;
* requests never depend on a caller's ClientSession defaults: the status
  mapping, timeouts, redirects and decompression are set per request;
* the body is read up to ``max_response_bytes``; a longer one ends the call
  with :class:`~koodrive_async.ResponseValidationError`;
* retries (:class:`~koodrive_async.RetryPolicy`, exponential backoff with full
  jitter from ``backoff``, capped): a GET on connection errors, timeouts, 429
  and 5xx; a POST only when the server cannot have acted - the connection was
  never made, 429, 503. A POST that failed in a way that may have reached the
  server (500/502/504, a read timeout, a dropped connection) is never retried
  and its error says ``possibly_created``;
* Retry-After (seconds, or an HTTP date measured on the server's clock: the
  response's ``Date``, else the learnt offset) is honoured up to
  ``RetryPolicy.max_retry_after``; longer, the call stops and the protocol
  raises the error at hand;
* a 429 the call stops retrying (budget spent, or Retry-After too long) ends
  it here with :class:`~koodrive_async.RateLimitError` carrying
  ``retry_after``, ``attempts`` and ``retries_exhausted``:
  ``RetryPolicy.max_attempts`` is the one retry budget of a request;
* a 401 with a token provider: one forced refresh and one more try;
* the owned ClientSession lives as long as the event loop it was made in: it
  is closed when that loop shuts down (``asyncio.run`` ends) and a new one is
  made on the next loop, so one session can serve one ``asyncio.run`` per call;
* a 400/401 to an attempt whose X-Date the server's ``Date`` shows was out
  of its window (later than its current second, or about 15 minutes old):
  one more try with a corrected X-Date.

Every attempt and decision is logged at DEBUG on the ``koodrive_async``
logger with the trace id; headers and bodies are never logged.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Final

import aiohttp
import backoff
from yarl import URL

from ._auth import TokenAuth
from ._call import Call, Response, new_trace_id
from ._clock import format_x_date
from ._exceptions import (
    APIConnectionError,
    APITimeoutError,
    InvalidRequestError,
    KooDriveError,
    RateLimitError,
    ResponseValidationError,
)
from ._policies import RetryPolicy
from ._protocol import MAX_BODY_CHARS, api_error, possibly_created
from ._retry import parse_retry_after

__all__ = ["Transport", "logger"]

#: The library's logger; DEBUG shows every attempt and retry decision.
logger: Final = logging.getLogger("koodrive_async")

_GET_RETRY_STATUSES: Final = frozenset({429, *range(500, 600)})
# A POST answered 500/502/504 may have been carried out: never repeat it.
_POST_RETRY_STATUSES: Final = frozenset({429, 503})
# The offset learnt from a Date header only ever goes down by small steps (each
# reading is a lower bound of the true offset); it goes up only by a jump this
# big (the clock of one side was reset), so it does not flap with the rounding.
_MIN_CLOCK_OFFSET: Final = 1.0
# The pages: X-Date "must be within 15 minutes from the current time and cannot
# be later than" it. A refused stamp this close to the edge counts as the cause
# (the Date header is rounded and a little late).
_X_DATE_MAX_AGE: Final = 15 * 60.0
_X_DATE_SLACK: Final = 2.0

# How a failed attempt ended, for the retry rules.
# The waits between attempts go through this name, so that tests can record
# them instead of sleeping.
_sleep = asyncio.sleep

_NOT_SENT: Final = "not sent"  # no connection was made: safe to repeat anything
_TIMED_OUT: Final = "timed out"  # sent (or maybe sent), no full answer in time
_BROKEN: Final = "connection failed"  # dropped/reset after (maybe) sending

#: Default of ``max_response_bytes``: far above any answer of the API (a page of
#: 100 tasks is some 100 KiB), far below what would hurt.
DEFAULT_MAX_RESPONSE_BYTES: Final = 8 * 1024 * 1024

# aiohttp >= 3.10 raises this for a connect (pool wait + TCP connect) timeout;
# 3.9 raises its base class ServerTimeoutError for it and for read timeouts alike.
_CONNECT_TIMEOUT: Final[tuple[type[BaseException], ...]] = tuple(
    cls for cls in (getattr(aiohttp, "ConnectionTimeoutError", None),) if cls is not None
)


def _pinned_options() -> dict[str, Any]:
    """Per-request arguments that override whatever a caller's ClientSession defaults to.

    A session made with ``raise_for_status=True`` would turn a 404 into a
    ClientResponseError (retried as a broken connection) and a 503 to a
    create into "possibly created"; ``auto_decompress=False`` would hand the
    decoder gzip bytes; a retrying middleware would multiply the budget.
    """
    accepted = inspect.signature(aiohttp.ClientSession._request).parameters
    options: dict[str, Any] = {"allow_redirects": False, "raise_for_status": False}
    if "auto_decompress" in accepted:  # aiohttp >= 3.10
        options["auto_decompress"] = True
    if "middlewares" in accepted:  # aiohttp >= 3.12
        options["middlewares"] = ()
    return options


_PINNED: Final = _pinned_options()


class _Attempt:
    """Per-attempt trace context: did the request headers start going out?"""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


async def _on_headers_sent(_session: object, context: Any, _params: object) -> None:
    # Called by aiohttp before the first byte of the request is written, so
    # "not set" proves nothing reached the server, whatever the exception.
    attempt = context.trace_request_ctx
    if isinstance(attempt, _Attempt):
        attempt.sent = True


def _trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_request_headers_sent.append(_on_headers_sent)
    return config


async def _lifetime(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Close ``session`` when its event loop shuts down, or when closed first.

    An async generator, because a loop finalizes the ones still open when it
    shuts down (``asyncio.run``, ``asyncio.Runner``, pytest-asyncio all call
    ``shutdown_asyncgens``) while it can still run the close, and unlike a
    task it is invisible to ``asyncio.all_tasks()``.
    """
    try:
        yield
    finally:
        await session.close()


def _failure_kind(exc: BaseException, attempt: _Attempt | None) -> str:
    """How a failed attempt ended; ``attempt`` is None when not traced (a caller's session)."""
    if attempt is not None and not attempt.sent:
        return _NOT_SENT
    if attempt is None and isinstance(exc, (*_CONNECT_TIMEOUT, aiohttp.ClientConnectorError)):
        return _NOT_SENT
    if isinstance(exc, TimeoutError):
        return _TIMED_OUT
    return _BROKEN


class _TooLarge(Exception):
    """The response body is longer than the cap (internal)."""

    def __init__(self, head: bytes) -> None:
        super().__init__()
        self.head = head


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    """The body, or _TooLarge after reading at most ``cap + 1`` bytes."""
    length = resp.content_length
    if length is not None and length > cap and not resp.headers.get("Content-Encoding"):
        raise _TooLarge(b"")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await resp.content.read(cap + 1 - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            raise _TooLarge(b"".join(chunks)[: MAX_BODY_CHARS * 4])


class Transport:
    """Sends calls with retries over one aiohttp.ClientSession.

    Args:
        base_url: ``scheme://host[:port][/prefix]`` without a trailing slash.
        static_headers: Headers every call sends (X-User-Id, language).
        auth: The credentials.
        timeout: Seconds per attempt, from asking for a connection to the full response.
        retry: The retry policy.
        max_connections: Connection pool size of an owned session.
        session: A caller-owned ClientSession (never closed here), or None
            to create one on first use (and again on each new event loop).
        max_response_bytes: The longest response body read.
    """

    def __init__(
        self,
        *,
        base_url: str,
        static_headers: Mapping[str, str],
        auth: TokenAuth,
        timeout: float,
        retry: RetryPolicy,
        max_connections: int,
        session: aiohttp.ClientSession | None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._base_url = base_url
        self._static_headers = dict(static_headers)
        self._auth = auth
        # One timer per attempt (total), plus sock_connect for new connections.
        # Every field is given: a per-request ClientTimeout replaces the
        # session's, so a caller's session default (sock_read=...) cannot
        # apply. Whether a failed attempt was sent is told by the trace hook.
        self._timeout_seconds = timeout
        self._timeout = aiohttp.ClientTimeout(
            total=timeout, connect=None, sock_connect=timeout, sock_read=None
        )
        self._retry = retry
        self._max_connections = max_connections
        self._max_response_bytes = max_response_bytes
        self._session = session
        self._owns_session = session is None
        # The loop the session serves: the owned one is replaced on a new
        # loop; a caller's one is refused there (it cannot be moved).
        self._session_loop: asyncio.AbstractEventLoop | None = (
            None if session is None else getattr(session, "_loop", None)
        )
        self._session_lifetime: AsyncGenerator[None, None] | None = None
        self._closed = False
        # X-Date is the same string for a whole second: format it once per second.
        self._date_second = -1
        self._date_value = ""
        self.clock_offset = 0.0
        self._clock_learnt = False
        #: The wall clock X-Date is stamped from (replaceable in tests).
        self.wall_clock: Callable[[], float] = time.time
        self._last_server_date: str | None = None
        self._last_server_time: float | None = None

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    async def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and self._session_loop is not loop:
            if not self._owns_session:
                if self._session_loop is None:
                    self._session_loop = loop  # no way to tell its loop: trust the first use
                    return session
                raise RuntimeError(
                    "the aiohttp.ClientSession given as session= belongs to another event "
                    f"loop ({self._session_loop!r}"
                    f"{', closed' if self._session_loop.is_closed() else ''}) than the "
                    f"running one ({loop!r}); make the ClientSession inside the loop that "
                    "uses the KooDriveSession, or pass none and let it manage its own"
                )
            # An owned session of a loop that ended (one asyncio.run per
            # call): its connections cannot serve this loop; make a new one.
            await self._discard_owned()
            session = None
        if session is None:
            if self._closed:
                raise RuntimeError("the KooDriveSession is closed")
            # Created lazily, inside the running loop (aiohttp wants one).
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                # No cookies: a service API needs none, and a shared jar costs per response.
                cookie_jar=aiohttp.DummyCookieJar(),
                trace_configs=[_trace_config()],
            )
            lifetime = _lifetime(session)
            await anext(lifetime)  # registers it with this loop's async-generator hooks
            self._session, self._session_loop, self._session_lifetime = session, loop, lifetime
        return session

    async def _discard_owned(self) -> None:
        session, self._session = self._session, None
        lifetime, self._session_lifetime = self._session_lifetime, None
        old_loop, self._session_loop = self._session_loop, None
        if session is None or lifetime is None:
            return
        if old_loop is None or old_loop is asyncio.get_running_loop() or old_loop.is_closed():
            # Its loop is this one, or gone: closing here is safe (aiohttp only
            # marks the connector of a closed loop closed). Usually the loop's
            # shutdown already did it and this is a no-op.
            await lifetime.aclose()
        # Else its loop still runs (another thread): dropping the generator
        # lets that loop's async-generator finalizer close it there.

    async def close(self) -> None:
        """Close the session if this transport created it (idempotent)."""
        self._closed = True
        if self._owns_session:
            await self._discard_owned()
        self._session = None

    def x_date(self) -> str:
        """The X-Date for an attempt now (clock offset applied)."""
        second = int(self.wall_clock() + self.clock_offset)
        if second != self._date_second:
            self._date_value = format_x_date(second)
            self._date_second = second
        return self._date_value

    @property
    def learnt_clock_offset(self) -> float | None:
        """:attr:`clock_offset` once a server's ``Date`` was read, else None (unknown)."""
        return self.clock_offset if self._clock_learnt else None

    def _learn_clock(self, server_date: str | None, trace_id: str) -> float | None:
        """Update the clock offset from a server's Date header.

        Returns:
            The server's time the header gives (epoch seconds), or None.
        """
        if server_date is None:
            return None
        if server_date == self._last_server_date:
            return self._last_server_time
        self._last_server_date = server_date
        try:
            server_time = parsedate_to_datetime(server_date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            self._last_server_time = None
            return None
        self._last_server_time = server_time
        # Date is floored to the second and read after it was sent, so this is a
        # lower bound of the true offset: a stamp made with it is never later
        # than the server's now. Small readings are kept too: a clock only a
        # fraction of a second fast would otherwise stamp the server's next
        # second during part of every second, and "later than now" is refused.
        offset = server_time - self.wall_clock()
        self._clock_learnt = True
        if offset < self.clock_offset or offset - self.clock_offset >= _MIN_CLOCK_OFFSET:
            if abs(offset - self.clock_offset) >= _MIN_CLOCK_OFFSET:
                logger.debug(
                    "server clock differs by %.1fs; X-Date corrected trace_id=%s",
                    offset,
                    trace_id,
                )
            self.clock_offset = offset
        return server_time

    async def send(self, call: Call) -> Response:
        """Send a call, retrying per policy; return the final response.

        Args:
            call: The call.

        Returns:
            The last response received (any status; the protocol maps it).

        Raises:
            RuntimeError: The transport is closed.
            APIConnectionError: No response (``possibly_created`` when a POST
                may have reached the server).
            APITimeoutError: No full response in time.
            RateLimitError: 429, and the call stopped retrying.
            ResponseValidationError: The body is longer than ``max_response_bytes``.
            CredentialsError: The token provider failed.
        """
        if self._closed:
            raise RuntimeError("the KooDriveSession is closed")
        session = await self._client()
        trace_id = new_trace_id()
        url = URL(self._base_url + call.target, encoded=True)
        auth = self._auth
        authorization = auth.header
        if authorization is None:
            authorization = await auth.get(timeout=self._timeout_seconds)
        traced = self._owns_session
        cap = self._max_response_bytes
        retry = self._retry
        max_attempts = retry.max_attempts
        debug = logger.isEnabledFor(logging.DEBUG)
        method = call.method
        retry_statuses = _GET_RETRY_STATUSES if method == "GET" else _POST_RETRY_STATUSES
        waits: Generator[Any, Any, None] | None = None
        attempt = 0
        extra_tries = 0  # the 401 refresh and the clock correction do not use up attempts
        refreshed = clock_fixed = False
        base_headers = (
            {**self._static_headers, **call.headers} if call.headers else self._static_headers
        )
        while True:
            if self._closed:
                # Closed while this call was waiting to retry: do not reopen a session.
                raise RuntimeError("the KooDriveSession is closed")
            attempt += 1
            headers = {
                **base_headers,
                "Authorization": authorization,
                "X-Date": self.x_date(),
                "X-Traceid": trace_id,
            }
            stamped = self._date_second
            if debug:
                logger.debug(
                    "%s %s attempt %d/%d trace_id=%s",
                    method,
                    call.target,
                    attempt - extra_tries,
                    max_attempts,
                    trace_id,
                )
                started = time.monotonic()
            # Raised after the except blocks, not inside them, so that it
            # carries neither a cause nor a context: aiohttp's exceptions keep
            # the request's headers (request_info), Authorization included, and
            # anything printing reprs or locals of a chain would show them.
            failure: KooDriveError | None = None
            # Only an owned session carries our trace hook; a caller's
            # trace configs would get an object they do not expect.
            sent = _Attempt() if traced else None
            try:
                async with session.request(
                    method,
                    url,
                    headers=headers,
                    data=call.body,
                    timeout=self._timeout,
                    trace_request_ctx=sent,
                    **_PINNED,
                ) as resp:
                    status = resp.status
                    resp_headers = resp.headers
                    body = await _read_capped(resp, cap)
            except _TooLarge as exc:
                resp.close()  # the rest is never read: drop the connection
                logger.debug(
                    "%s %s HTTP %d body longer than %d bytes; not read trace_id=%s",
                    method,
                    call.target,
                    status,
                    cap,
                    trace_id,
                )
                failure = ResponseValidationError(
                    f"the response body is longer than max_response_bytes ({cap}); not read",
                    method=method,
                    path=call.path,
                    status_code=status,
                    trace_id=trace_id,
                    body=exc.head.decode("utf-8", "replace")[:MAX_BODY_CHARS] or None,
                    # The server answered: a create may have been carried out,
                    # unless the status itself proves it was not.
                    possibly_created=call.is_create
                    and (200 <= status < 300 or possibly_created(method, status)),
                )
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                kind = _failure_kind(exc, sent)
                # A certificate or TLS failure will not go away by trying again.
                can_retry = (kind == _NOT_SENT or method == "GET") and not isinstance(
                    exc, aiohttp.ClientSSLError
                )
                if can_retry and attempt - extra_tries < max_attempts:
                    if waits is None:
                        waits = _waits(retry)
                    delay = backoff.full_jitter(next(waits))
                    logger.debug(
                        "%s %s %s (%s); retrying in %.3fs trace_id=%s",
                        method,
                        call.target,
                        kind,
                        type(exc).__name__,
                        delay,
                        trace_id,
                    )
                    await _sleep(delay)
                    continue
                maybe = method == "POST" and kind != _NOT_SENT
                logger.debug(
                    "%s %s %s (%s); giving up after %d attempt(s)%s trace_id=%s",
                    method,
                    call.target,
                    kind,
                    type(exc).__name__,
                    attempt - extra_tries,
                    "; a POST that may have arrived is never repeated" if maybe else "",
                    trace_id,
                )
                # A timeout is an APITimeoutError whether or not it was sent (a
                # pool wait that ran out is one too); possibly_created says which.
                error_cls = APITimeoutError if isinstance(exc, TimeoutError) else APIConnectionError
                # The message keeps the cause's type and text, which carry no headers.
                failure = error_cls(
                    f"{kind}: {type(exc).__name__}: {exc}" if str(exc) else f"{kind}: {exc!r}",
                    method=method,
                    path=call.path,
                    trace_id=trace_id,
                    possibly_created=maybe,
                )
            except ValueError:
                # aiohttp refuses to serialise the request (a header value it
                # will not send); the session validates its inputs, so this is
                # a last line of defence. Nothing was sent.
                # Not the cause's text: aiohttp's message may quote the offending
                # header value, which can be the token.
                failure = InvalidRequestError(
                    f"{method} {call.path}: the request cannot be sent: a header or the "
                    "body holds a value HTTP cannot carry"
                )
            if failure is not None:
                raise failure
            if debug:
                logger.debug(
                    "%s %s HTTP %d in %.1f ms trace_id=%s",
                    method,
                    call.target,
                    status,
                    (time.monotonic() - started) * 1000,
                    trace_id,
                )
            server_time = self._learn_clock(resp_headers.get("Date"), trace_id)
            if status < 400:
                return Response(status, resp_headers, body, trace_id)
            # Judged by the stamp this attempt carried against the server's own
            # clock (not by "did this answer change the offset"), so that every
            # call in flight when the skew was discovered gets its one corrected
            # retry, and a 400/401 with a good stamp is not sent twice.
            if (
                status in (400, 401)
                and not clock_fixed
                and server_time is not None
                and (
                    stamped > server_time // 1
                    or server_time - stamped > _X_DATE_MAX_AGE - _X_DATE_SLACK
                )
            ):
                # Probably our X-Date was refused; a rejected request did nothing.
                clock_fixed = True
                extra_tries += 1
                logger.debug(
                    "%s %s HTTP %d with a skewed clock; retrying with a corrected X-Date "
                    "trace_id=%s",
                    method,
                    call.target,
                    status,
                    trace_id,
                )
                continue
            if status == 401 and not refreshed and auth.can_refresh:
                refreshed = True
                extra_tries += 1
                logger.debug(
                    "%s %s HTTP 401; refreshing the token and retrying once trace_id=%s",
                    method,
                    call.target,
                    trace_id,
                )
                fresh = await auth.refresh(authorization, timeout=self._timeout_seconds)
                if fresh is not None:
                    authorization = fresh
                continue
            if status not in retry_statuses:
                if debug:
                    logger.debug(
                        "%s %s HTTP %d is not retried%s trace_id=%s",
                        method,
                        call.target,
                        status,
                        " (a POST that may have been carried out)"
                        if method == "POST" and status >= 500
                        else "",
                        trace_id,
                    )
                return Response(status, resp_headers, body, trace_id)
            # An HTTP date is the server's time: measured against its clock
            # (this answer's Date, else the learnt offset), not ours.
            retry_after = parse_retry_after(
                resp_headers.get("Retry-After"),
                now=server_time
                if server_time is not None
                else self.wall_clock() + self.clock_offset,
            )
            if attempt - extra_tries >= max_attempts:
                logger.debug(
                    "%s %s HTTP %d; giving up after %d attempt(s) trace_id=%s",
                    method,
                    call.target,
                    status,
                    attempt - extra_tries,
                    trace_id,
                )
                response = Response(status, resp_headers, body, trace_id)
                if status == 429:
                    raise _rate_limit_error(
                        call, response, retry_after, attempt - extra_tries, exhausted=True
                    )
                return response
            if retry_after is not None and retry_after > retry.max_retry_after:
                logger.debug(
                    "%s %s HTTP %d asks to wait %.1fs, more than max_retry_after %.1fs; "
                    "giving up trace_id=%s",
                    method,
                    call.target,
                    status,
                    retry_after,
                    retry.max_retry_after,
                    trace_id,
                )
                response = Response(status, resp_headers, body, trace_id)
                if status == 429:
                    raise _rate_limit_error(
                        call, response, retry_after, attempt - extra_tries, exhausted=False
                    )
                return response
            if retry_after is None:
                if waits is None:
                    waits = _waits(retry)
                delay = backoff.full_jitter(next(waits))
            else:
                delay = retry_after
            logger.debug(
                "%s %s HTTP %d; retrying in %.3fs%s trace_id=%s",
                method,
                call.target,
                status,
                delay,
                " (Retry-After)" if retry_after is not None else "",
                trace_id,
            )
            await _sleep(delay)


def _rate_limit_error(
    call: Call,
    response: Response,
    retry_after: float | None,
    attempts: int,
    exhausted: bool,
) -> RateLimitError:
    """The RateLimitError a 429 ends a call with, with what the transport knows of it."""
    error = api_error(call, response.status, response.headers, response.body, response.trace_id)
    assert isinstance(error, RateLimitError)
    # The protocol read Retry-After on the local clock; this one is on the server's.
    error.retry_after = retry_after
    error.attempts = attempts
    error.retries_exhausted = exhausted
    return error


def _waits(retry: RetryPolicy) -> Generator[Any, Any, None]:
    """The capped exponential upper bounds of the jittered waits."""
    waits = backoff.expo(base=2, factor=retry.initial_backoff, max_value=retry.max_backoff)
    next(waits)  # backoff's generators start with a bare yield
    return waits
