"""One HTTP attempt over aiohttp: the only module that does client I/O.

Owns:

* the owned ``aiohttp.ClientSession``: made lazily inside the running loop,
  closed when that loop shuts down (``asyncio.run`` ends) and made anew on
  the next one; a caller's session is used on its own loop only;
* the per-request options that override a caller's session defaults (status
  mapping, timeouts, redirects, decompression, middlewares);
* the timeout of an attempt as a whole (pool wait, connect, send, the full
  response);
* whether a failed attempt was sent: an owned session knows it from its
  request class (``_MarkingRequest``), a caller's one only from the
  exception's type;
* the body size cap, and the "cannot be sent" refusal of a header HTTP
  cannot carry.

:meth:`HTTP.attempt` returns a :class:`~koodrive_async._call.Response` (the
answer, with the call's trace id) or a :class:`Failure`; it
decides nothing about retries (that is ``_retry``) and adds no header of its
own (that is ``_sender``). A Failure never keeps the aiohttp exception:
aiohttp's exceptions hold the request's headers (``request_info``), the
Authorization included.

Must never import ``_sender``, ``_session`` or the waiting code.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import platform
import re
import ssl as _ssl
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Mapping
from typing import Any, Final

import aiohttp
from yarl import URL

from ._call import Call, Response, response_of
from ._decode import MAX_BODY_CHARS, error_from_response
from ._exceptions import (
    APIConnectionError,
    APITimeoutError,
    InvalidRequestError,
    KooDriveError,
)
from ._lifecycle import Lifecycle, closed_error
from ._retry import BROKEN, NOT_SENT, TIMED_OUT
from ._version import __version__

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_USER_AGENT",
    "HTTP",
    "Failure",
    "StreamFailure",
    "stream_body",
]

#: The User-Agent of every request unless the session is given another.
DEFAULT_USER_AGENT: Final = (
    f"koodrive-async/{__version__} aiohttp/{aiohttp.__version__} Python/{platform.python_version()}"
)

#: Default of ``max_response_bytes``: far above any answer of the API (a page of
#: 100 tasks is some 100 KiB), far below what would hurt.
DEFAULT_MAX_RESPONSE_BYTES: Final = 8 * 1024 * 1024

#: The user:password@ of a URL quoted in an error's text (a proxy URL's, in aiohttp's).
_USERINFO: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@'\"]+@")

#: Failure kinds that end the call whatever the retry rules say.
TOO_LARGE: Final = "too large"
UNSENDABLE: Final = "cannot be sent"

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
_running_loop: Final = asyncio.get_running_loop


class Failure:
    """How an attempt without a usable answer ended; holds no header and no exception.

    Attributes:
        kind: ``not sent``, ``timed out``, ``connection failed`` (the retry
            rules' kinds), ``too large`` or ``cannot be sent``.
        tls: A certificate or TLS failure.
        timeout: It was a timeout (the error is then an APITimeoutError).
        name: The cause's type name.
        cause: The cause's type name and text (no headers in either).
        status: The status, for ``too large``.
        head: The first bytes of a body, for ``too large``.
    """

    __slots__ = ("cause", "head", "kind", "name", "status", "timeout", "tls")

    def __init__(
        self,
        kind: str,
        name: str,
        cause: str,
        *,
        tls: bool = False,
        timeout: bool = False,
        status: int = 0,
        head: bytes = b"",
    ) -> None:
        self.kind = kind
        self.name = name
        self.cause = cause
        self.tls = tls
        self.timeout = timeout
        self.status = status
        self.head = head

    @property
    def final(self) -> bool:
        """True when no retry rule applies (``too large``, ``cannot be sent``)."""
        return self.kind in (TOO_LARGE, UNSENDABLE)

    def error(self, call: Call, trace_id: str, *, cap: int, maybe_sent: bool) -> KooDriveError:
        """The error the call ends with after this failure."""
        if self.kind == UNSENDABLE:
            # Not the cause's text: aiohttp's message may quote the offending
            # header value, which can be the token.
            return InvalidRequestError(
                f"{call.method} {call.path}: the request cannot be sent: a header or the "
                "body holds a value HTTP cannot carry"
            )
        if self.kind == TOO_LARGE:
            # The one error factory decides possibly_created: the server answered.
            head = Response(self.status, {}, self.head, trace_id)
            problem = f"the response body is longer than max_response_bytes ({cap}); not read"
            return error_from_response(call, head, problem=problem)
        # A timeout is an APITimeoutError whether or not it was sent (a pool
        # wait that ran out is one too); possibly_created says which.
        error_cls = APITimeoutError if self.timeout else APIConnectionError
        return error_cls(
            f"{self.kind}: {self.cause}",
            method=call.method,
            path=call.path,
            trace_id=trace_id,
            possibly_created=maybe_sent,
        )


def _describe(exc: BaseException, sent: _Sent | None) -> Failure:
    """The Failure of an aiohttp/OS error; ``sent`` is None when not traced (a caller's session)."""
    if sent is not None and not sent.sent:
        kind = NOT_SENT
    elif sent is None and isinstance(exc, (*_CONNECT_TIMEOUT, aiohttp.ClientConnectorError)):
        kind = NOT_SENT
    elif isinstance(exc, TimeoutError):
        kind = TIMED_OUT
    else:
        kind = BROKEN
    # The cause's type and text carry no headers, but may quote a URL with
    # credentials in it (a proxy's user:password@): those never leave.
    cause = _USERINFO.sub(r"\1***@", f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc))
    return Failure(
        kind,
        type(exc).__name__,
        cause,
        tls=isinstance(exc, aiohttp.ClientSSLError),
        timeout=isinstance(exc, TimeoutError),
    )


class _Sent:
    """Per-attempt trace context: did the request headers start going out?"""

    # A class default and no __init__: one is made per attempt, and a Python
    # __init__ would cost more than the rest of the marking together.
    sent = False


#: The _Sent of the attempt this task is making (set around ``session.request``).
_ATTEMPT_SENT: Final[contextvars.ContextVar[_Sent | None]] = contextvars.ContextVar(
    "koodrive_attempt_sent", default=None
)


_send: Final = aiohttp.ClientRequest.send


class _MarkingRequest(aiohttp.ClientRequest):
    """A ClientRequest that marks its attempt as sent when it starts writing it.

    ``send`` is the one place aiohttp writes a request on its connection, so
    "not marked" proves nothing reached the server, whatever the exception.
    An aiohttp trace hook (``on_request_headers_sent``) could tell the same,
    but any trace config makes aiohttp build and await a trace event at
    every step of every request: about a sixth of a call's instructions.
    """

    def send(self, conn: Any) -> Coroutine[Any, Any, aiohttp.ClientResponse]:
        # Not a coroutine of its own (one more frame per request): aiohttp
        # awaits what send() returns at once (``await req.send(conn)``), so
        # marking when it is called is marking when the writing starts.
        sent = _ATTEMPT_SENT.get()
        if sent is not None:
            sent.sent = True
        return _send(self, conn)


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


class _TooLarge(Exception):
    """The response body is longer than the cap (internal)."""

    def __init__(self, head: bytes) -> None:
        super().__init__()
        self.head = head


async def _read_rest(
    content: aiohttp.StreamReader, chunk: bytes, length: int | None, cap: int
) -> bytes:
    """The body after a first read ``chunk`` that was not all of it, or _TooLarge
    after reading at most ``cap + 1`` bytes."""
    chunks = [chunk]
    size = len(chunk)
    while True:
        if size > cap:
            raise _TooLarge(b"".join(chunks)[: MAX_BODY_CHARS * 4])
        if size == length:
            return b"".join(chunks)
        chunk = await content.read(cap + 1 - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)


class HTTP:
    """Sends single attempts over one aiohttp.ClientSession per event loop.

    Args:
        lifecycle: The session's state (no owned ClientSession is made once closed).
        timeout: Seconds per attempt, from asking for a connection to the full response.
        max_connections: Connection pool size of an owned session.
        session: A caller-owned ClientSession (never closed here), or None
            to create one on first use (and again on each new event loop).
        max_response_bytes: The longest response body read.
        trace_configs: More aiohttp trace configs for an owned session.
        proxy: The proxy of every request (``http://host:port``), or None.
        ssl: The TLS context of every request (a custom CA bundle), or None
            for aiohttp's default (the system's CAs).
        trust_env: An owned session reads ``HTTP(S)_PROXY``/``NO_PROXY``
            (and ``.netrc``) from the environment.
        default_headers: Headers an owned session sends with every request,
            downloads included (the User-Agent; nothing that names the user),
            so that the sender need not pass them per attempt.
    """

    def __init__(
        self,
        *,
        lifecycle: Lifecycle,
        timeout: float,
        max_connections: int,
        session: aiohttp.ClientSession | None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        trace_configs: tuple[aiohttp.TraceConfig, ...] = (),
        proxy: str | None = None,
        ssl: _ssl.SSLContext | None = None,
        trust_env: bool = False,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        self._lifecycle = lifecycle
        self._trace_configs = trace_configs
        self._trust_env = trust_env
        #: What every request of the ClientSession carries without being given
        #: it: the owned session's default headers, none of a caller's.
        self.default_headers: Mapping[str, str] = (
            dict(default_headers or {}) if session is None else {}
        )
        # Per request, so that they apply to a caller's session too; an owned
        # session is made with the defaults the others pin.
        self._options: dict[str, Any] = (
            dict(_PINNED) if session is not None else {"allow_redirects": False}
        )
        if proxy is not None:
            self._options["proxy"] = proxy
        if ssl is not None:
            self._options["ssl"] = ssl
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        # One timer per attempt (total), plus sock_connect for new connections.
        # Every field is given: a per-request ClientTimeout replaces the
        # session's, so a caller's session default (sock_read=...) cannot
        # apply. Whether a failed attempt was sent is told by _MarkingRequest.
        self._timeout = aiohttp.ClientTimeout(
            total=timeout, connect=None, sock_connect=timeout, sock_read=None
        )
        # An attempt's: an owned session is made with this timeout, so that a
        # GET of its passes no more than allow_redirects (each keyword argument
        # costs every request some work in aiohttp's two layers of **kwargs).
        self._attempt_options: dict[str, Any] = (
            {**self._options, "timeout": self._timeout} if session is not None else self._options
        )
        self._max_connections = max_connections
        #: The body size cap.
        self.max_response_bytes = max_response_bytes
        self._session = session
        self._owns_session = session is None
        # The loop the session serves: the owned one is replaced on a new
        # loop; a caller's one is refused there (it cannot be moved).
        self._session_loop: asyncio.AbstractEventLoop | None = (
            None if session is None else getattr(session, "_loop", None)
        )
        self._session_lifetime: AsyncGenerator[None, None] | None = None

    def ready_client(self) -> aiohttp.ClientSession | None:
        """The ClientSession when it already serves the running loop, else None.

        The sender's check before every call; only on None does it await
        :meth:`client` (a coroutine of its own, for the rare rebinding).
        """
        session = self._session
        if session is not None and self._session_loop is _running_loop():
            return session
        return None

    async def client(self) -> aiohttp.ClientSession:
        """The ClientSession for the running loop (an owned one is made on first use).

        Raises:
            RuntimeError: The caller's session belongs to another loop, or the
                KooDriveSession is closed.
        """
        session = self._session
        if session is not None and self._session_loop is asyncio.get_running_loop():
            return session
        return await self._rebind(session)

    async def _rebind(self, session: aiohttp.ClientSession | None) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if session is not None:
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
        if self._lifecycle.closed:
            raise closed_error()
        # Created lazily, inside the running loop (aiohttp wants one).
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_connections),
            # No cookies: a service API needs none, and a shared jar costs per response.
            cookie_jar=aiohttp.DummyCookieJar(),
            trace_configs=list(self._trace_configs) or None,
            request_class=_MarkingRequest,
            headers=dict(self.default_headers) or None,
            timeout=self._timeout,
            trust_env=self._trust_env,
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
        """Close the ClientSession if it is an owned one (idempotent)."""
        if self._owns_session:
            await self._discard_owned()
        self._session = None

    def _timeout_of(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(
                total=seconds, connect=None, sock_connect=seconds, sock_read=None
            )
        return timeout

    async def stream(
        self, url: URL, *, read_timeout: float, chunk_size: int = 1 << 16
    ) -> AsyncIterator[tuple[int, Mapping[str, str], bytes]]:
        """:func:`stream_body` over this session's pool and per-request options (proxy, TLS)."""
        session = await self.client()
        async for part in stream_body(
            session,
            url,
            # A package link may redirect to the storage that holds the zip:
            # follow it (no Authorization travels with a download).
            options={**self._options, "allow_redirects": True},
            read_timeout=read_timeout,
            chunk_size=chunk_size,
        ):
            yield part

    async def attempt(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float | None,
        trace_id: str,
    ) -> Response | Failure:
        """Send one attempt and read its answer (up to the cap).

        ``timeout``, when not None, replaces the session's seconds per attempt
        (a ``with_options`` view's); ``trace_id`` is the call's, for the Response.

        Returns:
            The Response, or the Failure (nothing of the aiohttp exception kept).
        """
        # Only an owned session makes its requests with _MarkingRequest; a
        # caller's session tells nothing (None).
        sent = _Sent() if self._owns_session else None
        options = self._attempt_options
        if body is not None or timeout is not None:
            options = {
                **options,
                "data": body,
                "timeout": self._timeout if timeout is None else self._timeout_of(timeout),
            }
        marking = _ATTEMPT_SENT.set(sent)
        try:
            async with session.request(method, url, headers=headers, **options) as resp:
                status, answer_headers = resp.status, resp.headers
                cap = self.max_response_bytes
                # resp.content_length, without its property call.
                sent_length = answer_headers.get("Content-Length")
                length = None if sent_length is None else int(sent_length)
                if length is not None and answer_headers.get("Content-Encoding"):
                    length = None  # the length of the compressed body, not of what is read
                try:
                    if length is not None and length > cap:
                        raise _TooLarge(b"")
                    content = resp.content
                    answer = await content.read(cap + 1)
                    if len(answer) != length and answer:
                        answer = await _read_rest(content, answer, length, cap)
                    # Else the usual answer: the whole body in one read (aiohttp's
                    # parser stops a body at its Content-Length and fails a short
                    # one, so there is no read to wait for EOF), read without a
                    # coroutine of ours around aiohttp's.
                    return response_of(status, answer_headers, answer, trace_id)
                except _TooLarge as exc:
                    resp.close()  # the rest is never read: drop the connection
                    return Failure(TOO_LARGE, "", "", status=status, head=exc.head)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return _describe(exc, sent)
        except ValueError:
            # aiohttp refuses to serialise the request (a header value it will
            # not send); the session validates its inputs, so this is a last
            # line of defence. Nothing was sent.
            return Failure(UNSENDABLE, "ValueError", "")
        finally:
            _ATTEMPT_SENT.reset(marking)


class StreamFailure(Exception):
    """A download stream ended without its whole body (carries a Failure, not aiohttp's error)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.cause)
        self.failure = failure


async def stream_body(
    session: aiohttp.ClientSession,
    url: URL,
    *,
    options: Mapping[str, Any],
    read_timeout: float,
    chunk_size: int,
) -> AsyncIterator[tuple[int, Mapping[str, str], bytes]]:
    """GET ``url`` and yield ``(status, headers, chunk)`` as the body arrives, without a size cap.

    For package downloads only: no Authorization is sent (the link is a
    capability of its own, and may point at another host), the whole body is
    not held, and the timeout bounds each read, not the transfer.

    Raises:
        StreamFailure: The connection failed or a read timed out.
    """
    timeout = aiohttp.ClientTimeout(
        total=None, connect=None, sock_connect=read_timeout, sock_read=read_timeout
    )
    try:
        async with session.get(url, timeout=timeout, **options) as resp:
            status, headers = resp.status, resp.headers
            if status != 200:
                yield status, headers, await resp.content.read(MAX_BODY_CHARS)
                return
            async for chunk in resp.content.iter_chunked(chunk_size):
                yield status, headers, chunk
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise StreamFailure(_describe(exc, None)) from None
