"""Credentials that last: session and carrier tokens that renew themselves, and app signing.

Each is an :class:`~koodrive_async._auth.AuthFlow` passed as
``KooDriveSession(..., auth=...)``; the session binds it (its base URL, and a
way to send a call without credentials), and the sender asks it for a
credential per call, lets it stamp each attempt and tells it about a 401.

* :class:`SessionCredentials` renews through ``POST session/refresh`` shortly
  before the 20-minute idle limit (measured from the last attempt sent with
  the token) and after a 401.
* :class:`CarrierCredentials` renews through ``POST auth/refreshToken`` ahead
  of ``expiresIn`` and after a 401, and keeps the newest refresh token.
* :class:`AppAuth` signs every attempt (``_signing``); it never refreshes.

A renewal is single-flight per credentials object: calls that meet the same
expiry share one refresh request. It is bounded by the session's timeout and
ends a call with :class:`~koodrive_async.CredentialsError` when it fails; the
refresh call itself is not idempotent (a refresh replaces the token it was
sent with), so it is retried only when the service cannot have acted.

No token, session id, refresh token or secret appears in a repr, a log line
or an exception message.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Final

from . import _validate as check
from ._auth import AuthFlow, NoAuth, SendCall, authorization_value
from ._call import Call, Response
from ._exceptions import CredentialsError, InvalidRequestError, KooDriveError
from ._http import DEFAULT_MAX_RESPONSE_BYTES, HTTP
from ._lifecycle import Lifecycle
from ._policies import RetryPolicy
from ._sender import Sender, logger
from ._session import _check_base_url
from ._session_api import (
    SessionInfo,
    bare_token,
    build_create_session,
    build_refresh_carrier,
    build_refresh_session,
    decode_carrier_refresh,
    decode_session,
    decode_session_refresh,
)
from ._signing import DEFAULT_SIGNED_HEADERS, Signer

__all__ = [
    "AppAuth",
    "CarrierCredentials",
    "OnRefresh",
    "SessionCredentials",
    "create_session",
]

#: ``on_refresh(credentials)``, a plain or an async function, called after each renewal.
OnRefresh = Callable[[Any], Awaitable[None] | None]
#: The pages' idle limit of a session access token.
SESSION_IDLE_TIMEOUT: Final = 20 * 60.0


class _Renewing(AuthFlow):
    """A token that renews itself: single-flight, bounded, with a hook."""

    __slots__ = (
        "_clock",
        "_header",
        "_on_refresh",
        "_pending",
        "_pending_loop",
        "_send",
        "refreshes",
    )

    _what: str = "credentials"

    def __init__(self, access_token: str, on_refresh: OnRefresh | None, clock: Callable[[], float]):
        if on_refresh is not None and not callable(on_refresh):
            raise InvalidRequestError("on_refresh must be callable", field="on_refresh")
        if not callable(clock):
            raise InvalidRequestError("clock must be callable", field="clock")
        self._header = authorization_value(access_token, field="access_token")
        self._on_refresh = on_refresh
        self._clock = clock
        self._send: SendCall | None = None
        # The refresh in flight (one per event loop), shared by every caller.
        self._pending: asyncio.Task[str] | None = None
        self._pending_loop: asyncio.AbstractEventLoop | None = None
        #: Renewals made (successful refresh requests).
        self.refreshes = 0

    @property
    def access_token(self) -> str:
        """The current access token (without its scheme word)."""
        return bare_token(self._header)

    @property
    def can_refresh(self) -> bool:
        """True: a 401 is answered with one renewal."""
        return True

    def bind(self, *, base_url: str, send: SendCall) -> None:  # noqa: ARG002
        """Use the session's sender for the refresh calls (the last session bound wins)."""
        self._send = send

    def current(self) -> str | None:
        """The Authorization value, or None when it is due for renewal."""
        return None if self._due() else self._header

    async def obtain(self, *, timeout: float) -> str:
        """Renew ahead of expiry (one refresh for all callers), then the new value."""
        return await self._renew(self._header, timeout=timeout, after_401=False)

    async def refresh(self, refused: str, *, timeout: float) -> str | None:
        """Renew after ``refused`` met a 401, unless another call already did."""
        return await self._renew(refused, timeout=timeout, after_401=True)

    # The parts each kind of token has its own way.
    def _due(self) -> bool:
        raise NotImplementedError

    def _build(self) -> Call:
        raise NotImplementedError

    def _accept(self, call: Call, response: Response) -> None:
        raise NotImplementedError

    async def _renew(self, stale: str, *, timeout: float, after_401: bool) -> str:
        """Single-flight: join the refresh in flight, or start one.

        The refresh runs as a task of its own, awaited through a shield: a
        caller cancelled meanwhile (a poll abandoned at its deadline, Ctrl-C)
        does not cancel a refresh that may already have reached the service,
        which could rotate the refresh token and lose its answer; the next
        caller shares that same refresh instead of sending another.
        """
        if self._send is None:
            raise CredentialsError(
                f"{type(self).__name__} is not attached to a KooDriveSession (pass it as auth=)",
                refresh=after_401,
            )
        loop = asyncio.get_running_loop()
        while True:
            # Another call renewed meanwhile: use its token.
            if self._header != stale and not self._due():
                return self._header
            pending = self._pending if self._pending_loop is loop else None
            if pending is None or pending.done():
                pending = loop.create_task(self._refresh(timeout=timeout, after_401=after_401))
                pending.add_done_callback(_retrieve)
                self._pending, self._pending_loop = pending, loop
                return await asyncio.shield(pending)
            await asyncio.shield(pending)

    async def _refresh(self, *, timeout: float, after_401: bool) -> str:
        """One refresh request and the hook; every failure as CredentialsError."""
        send = self._send
        assert send is not None
        sent = (
            "; the request was refused with HTTP 401 and not sent again, nothing was created"
            if after_401
            else "; the request was not sent"
        )
        stage = "refresh"
        try:
            # The request is bounded by the sender (its per-attempt timeout, and
            # retries only while nothing was sent), so that a slow refresh ends
            # as a timeout that says it may have acted, not as a cancellation.
            call = self._build()
            response = await send(call)
            self._accept(call, response)
            self.refreshes += 1
            logger.debug(
                "%s renewed (%s)", self._what, "after HTTP 401" if after_401 else "ahead of expiry"
            )
            stage = "on_refresh"
            if self._on_refresh is not None:
                async with asyncio.timeout(timeout):
                    answer = self._on_refresh(self)
                    if inspect.isawaitable(answer):
                        await answer
            return self._header
        except Exception as exc:
            if stage == "on_refresh":
                # The new token is in use; only persisting it failed.
                why = (
                    f"on_refresh raised {type(exc).__name__} (the renewed token is kept in memory)"
                )
            elif isinstance(exc, KooDriveError):
                why = _refresh_failure(exc)
            else:
                why = f"raised {type(exc).__name__}"
            # Only the kind of failure: a message could quote a token.
            raise CredentialsError(
                f"the {self._what} {stage} failed: {why}{sent}", refresh=after_401
            ) from exc


def _retrieve(task: asyncio.Task[str]) -> None:
    # A refresh whose callers were all cancelled must not log "never retrieved".
    if not task.cancelled():
        task.exception()


def _refresh_failure(exc: KooDriveError) -> str:
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "code", None)
    parts = [type(exc).__name__]
    if status is not None:
        parts.append(f"HTTP {status}")
    if code is not None:
        parts.append(f"code {code}")
    text = " ".join(parts)
    if getattr(exc, "possibly_created", False):
        text += "; the service may have acted on it (the old token may be spent)"
    return text


class SessionCredentials(_Renewing):
    """A session access token renewed through ``POST session/refresh``.

    The service's token lives 20 minutes without use (sliding). This one is
    renewed when it has not been used for ``idle_timeout - refresh_margin``
    seconds (before the limit can bite) and after a 401.

    Args:
        access_token: The token (``SessionInfo.access_token``), with or
            without its ``Bearer`` scheme word.
        session_id: The session id (sent as ``x-session-id``).
        on_refresh: ``(credentials) -> None``, plain or async, called after
            each renewal (read ``access_token`` to persist it).
        idle_timeout: Seconds the service keeps an unused token (20 minutes).
        refresh_margin: Renew this long before the idle limit (at most half of it).
        clock: A monotonic clock in seconds (``time.monotonic``; tests pass
            the emulator's virtual clock).

    Raises:
        InvalidRequestError: An empty token or session id, or bad numbers.
    """

    __slots__ = ("_idle", "_last_used", "_session_id")

    _what = "session token"

    def __init__(
        self,
        access_token: str,
        session_id: str,
        *,
        on_refresh: OnRefresh | None = None,
        idle_timeout: float = SESSION_IDLE_TIMEOUT,
        refresh_margin: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(access_token, on_refresh, clock)
        self._session_id = check.text(session_id, "session_id", secret=True).strip()
        check.positive_number(idle_timeout, "idle_timeout")
        check.non_negative_number(refresh_margin, "refresh_margin")
        self._idle = float(idle_timeout) - min(float(refresh_margin), idle_timeout / 2)
        self._last_used = clock()

    def __repr__(self) -> str:
        return f"SessionCredentials(refreshes={self.refreshes})"

    @property
    def session_id(self) -> str:
        """The session id."""
        return self._session_id

    def apply(self, credential: str, call: Call, headers: MutableMapping[str, str]) -> None:  # noqa: ARG002
        """Send the token; every attempt starts the idle window again."""
        headers["Authorization"] = credential
        self._last_used = self._clock()

    def _due(self) -> bool:
        return self._clock() - self._last_used >= self._idle

    def _build(self) -> Call:
        return build_refresh_session(self._header, self._session_id)

    def _accept(self, call: Call, response: Response) -> None:
        token = decode_session_refresh(call, response)
        self._header = authorization_value(token, field="access_token")
        self._last_used = self._clock()


class CarrierCredentials(_Renewing):
    """A carrier access token renewed through ``POST auth/refreshToken``.

    Renewed ahead of its ``expiresIn`` (``refresh_margin`` before, at most a
    quarter of the lifetime) and after a 401; the newest refresh token the
    service answered is kept. A refresh is retried only when it was not
    sent: the refresh token may have been rotated by one whose answer was lost.

    Args:
        access_token: The access token (``AT ...`` or bare).
        refresh_token: The refresh token.
        expires_in: Seconds the access token still lives; None when unknown
            (then it is renewed only after a 401).
        on_refresh: ``(credentials) -> None``, plain or async, called after
            each renewal (read ``access_token`` and ``refresh_token``).
        refresh_margin: Renew this long before expiry.
        clock: A monotonic clock in seconds (``time.monotonic``).

    Raises:
        InvalidRequestError: An empty token, or bad numbers.
    """

    __slots__ = ("_expires_at", "_lifetime", "_margin", "_refresh_token")

    _what = "carrier token"

    def __init__(
        self,
        access_token: str,
        refresh_token: str,
        *,
        expires_in: float | None = None,
        on_refresh: OnRefresh | None = None,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(access_token, on_refresh, clock)
        self._refresh_token = check.text(refresh_token, "refresh_token", secret=True).strip()
        if expires_in is not None:
            check.positive_number(expires_in, "expires_in")
        check.non_negative_number(refresh_margin, "refresh_margin")
        self._margin = float(refresh_margin)
        self._set_expiry(expires_in)

    def __repr__(self) -> str:
        return f"CarrierCredentials(expires_in={self._lifetime!r}, refreshes={self.refreshes})"

    @property
    def refresh_token(self) -> str:
        """The newest refresh token."""
        return self._refresh_token

    @property
    def expires_in(self) -> float | None:
        """Seconds the current access token has left (None when unknown)."""
        return None if self._expires_at is None else max(0.0, self._expires_at - self._clock())

    def _set_expiry(self, expires_in: float | None) -> None:
        self._lifetime = None if expires_in is None else float(expires_in)
        self._expires_at = None if expires_in is None else self._clock() + float(expires_in)

    def _due(self) -> bool:
        if self._expires_at is None or self._lifetime is None:
            return False
        ahead = min(self._margin, self._lifetime / 4)
        return self._clock() >= self._expires_at - ahead

    def _build(self) -> Call:
        return build_refresh_carrier(self._header, self._refresh_token)

    def _accept(self, call: Call, response: Response) -> None:
        tokens = decode_carrier_refresh(call, response)
        self._header = authorization_value(tokens.access_token, field="access_token")
        if tokens.refresh_token is not None:
            self._refresh_token = tokens.refresh_token
        self._set_expiry(tokens.expires_in)


class AppAuth(AuthFlow):
    """App authentication: every attempt signed with an AppId and AppSecret (HMAC-SHA256).

    Each attempt (a retry too, with its new X-Date) is signed over its
    method, path, query, the signed headers and the body bytes, as
    ``docs/credentials.md`` describes. At DEBUG the canonical request and
    the string to sign are logged (they hold no secret).

    Args:
        app_id: The AppId.
        app_secret: The AppSecret (never shown).
        signed_headers: The headers signed (``host``, ``x-date`` and
            ``x-user-id`` by default; Host is ``host[:port]`` of the base URL).

    Raises:
        InvalidRequestError: A bad id, secret or header list (the secret is
            never quoted).
    """

    __slots__ = ("_base_url", "_signer")

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        *,
        signed_headers: Iterable[str] = DEFAULT_SIGNED_HEADERS,
    ) -> None:
        self._signer = Signer(app_id, app_secret, signed_headers=signed_headers)
        self._base_url: str | None = None

    def __repr__(self) -> str:
        signer = self._signer
        return f"AppAuth(app_id={signer.app_id!r}, signed_headers={signer.signed_headers!r})"

    @property
    def app_id(self) -> str:
        """The AppId."""
        return self._signer.app_id

    @property
    def signed_headers(self) -> tuple[str, ...]:
        """The signed headers (lower case, sorted)."""
        return self._signer.signed_headers

    def bind(self, *, base_url: str, send: SendCall) -> None:  # noqa: ARG002
        """Sign for the session's base URL (its host, port and path prefix)."""
        self._base_url = base_url

    def current(self) -> str:
        """No credential per call: each attempt is signed in :meth:`apply`."""
        return ""

    def apply(self, credential: str, call: Call, headers: MutableMapping[str, str]) -> None:  # noqa: ARG002
        """Sign this attempt (its X-Date is already stamped).

        Raises:
            InvalidRequestError: A signed header is missing, or the flow is
                not attached to a session.
        """
        if self._base_url is None:
            raise InvalidRequestError("AppAuth is not attached to a KooDriveSession", field="auth")
        signature = self._signer.sign(call.method, self._base_url + call.target, headers, call.body)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "signed %s %s trace_id=%s\ncanonical request:\n%s\nstring to sign:\n%s",
                call.method,
                call.target,
                headers.get("X-Traceid", ""),
                signature.canonical_request,
                signature.string_to_sign,
            )
        headers["Authorization"] = signature.authorization


async def create_session(
    base_url: str,
    *,
    code: str,
    domain: str | None = None,
    language: str = "en-US",
    timeout: float = 30.0,
    retry: RetryPolicy | None = None,
    allow_insecure_http: bool = False,
) -> SessionInfo:
    """Open a session with an authorization code (``POST session``).

    Args:
        base_url: As for :class:`KooDriveSession`.
        code: The authorization code (never shown).
        domain: The console domain the code was issued for, when needed.
        language: The ``language`` header.
        timeout: Seconds per attempt.
        retry: The retry policy (a create: retried only when the service
            cannot have acted).
        allow_insecure_http: Allow ``http://`` to a non-loopback host.

    Returns:
        The session: pass ``SessionCredentials(info.access_token,
        info.session_id)`` as ``auth=`` and ``info.user_id`` as ``user_id=``.

    Raises:
        InvalidRequestError: A bad argument; nothing was sent.
        AuthenticationError: The service refused the code (401).
        APIError: Another refusal.
        APIConnectionError: No answer.
        ResponseValidationError: The answer has no token or session id.
    """
    url = _check_base_url(base_url, allow_insecure_http)
    call = build_create_session(code, domain)
    check.positive_number(timeout, "timeout")
    lifecycle = Lifecycle()
    http = HTTP(
        lifecycle=lifecycle,
        timeout=float(timeout),
        max_connections=1,
        session=None,
        max_response_bytes=DEFAULT_MAX_RESPONSE_BYTES,
    )
    check.text(language, "language")
    headers = {"language": language}  # no user yet: no X-User-Id
    sender = Sender(
        base_url=url,
        static_headers=headers,
        auth=NoAuth(),
        timeout=float(timeout),
        retry=retry if retry is not None else RetryPolicy(),
        http=http,
        lifecycle=lifecycle,
    )
    try:
        return decode_session(call, await sender.send(call))
    finally:
        lifecycle.close()
        await http.close()
