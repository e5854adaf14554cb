"""Credentials as an auth flow: what the sender asks for each call and attempt.

In the manner of httpx's ``Auth.async_auth_flow``, the sender knows nothing
about tokens: for each call it asks :class:`AuthFlow` for a credential
(:meth:`~AuthFlow.current`, else :meth:`~AuthFlow.obtain`), for each attempt
it lets the flow put its headers on the request (:meth:`~AuthFlow.apply`,
given the call's method, path, query and body and the headers being sent, so
that a signer such as the app authentication can sign every attempt), and on
a 401 it tells the flow (:meth:`~AuthFlow.refresh`), which decides whether
there is a fresh credential and so one more try. Session and carrier
credentials that renew themselves plug in as further flows.

Today's flow, :class:`TokenAuth`: a fixed bearer token, or a (sync or async)
token provider.

The Authorization value follows API-NOTES.md: a token that already starts
with a scheme word (``Bearer`` or ``AT``, followed by a space or the pages'
``+``) is sent verbatim; any other token is sent as ``Bearer <token>``.

The token never appears in a repr, a log line or an exception message: this
module is the only one that sees it, and it says nothing about it.

Must never import aiohttp, ``_http``, ``_sender`` or ``_session``.

A provider is the caller's code (a vault, an OAuth refresh): whatever it does
wrong - raises, returns a bad value, hangs - ends the call with
:class:`~koodrive_async.CredentialsError` within the call's timeout, before
anything is sent with the token it did not give.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Final

from ._build import check_header_value
from ._call import Call, Response
from ._exceptions import CredentialsError, InvalidRequestError

__all__ = ["AuthFlow", "NoAuth", "SendCall", "TokenAuth", "TokenProvider", "authorization_value"]

#: How a flow that renews itself sends its refresh call: the session's
#: sender without credentials of its own (the call carries its Authorization).
SendCall = Callable[[Call], Awaitable[Response]]

#: ``async def provider(force_refresh: bool) -> str``, or the same as a plain function.
TokenProvider = Callable[[bool], Awaitable[str] | str]

_SCHEME: Final = re.compile(r"(?i)(?:bearer|at)[ +]\S")


def authorization_value(token: object, *, field: str = "token") -> str:
    """The Authorization header value for a token.

    Args:
        token: The access token, with or without its scheme word.
        field: The argument name for error messages.

    Returns:
        The token verbatim when it starts with ``Bearer``/``AT`` and a
        separator, else ``"Bearer " + token``.

    Raises:
        InvalidRequestError: The token is not a non-empty string, or holds
            characters that cannot go in a header (the token is not shown).
    """
    if not isinstance(token, str) or not token.strip():
        raise InvalidRequestError(f"{field} must be a non-empty string", field=field)
    # The value itself is never shown: the error only says what kind of problem it has.
    check_header_value(token, field)
    token = token.strip()
    return token if _SCHEME.match(token) else f"Bearer {token}"


class AuthFlow:
    """The credentials of a session, as the sender uses them.

    A credential is an opaque string the flow hands out per call and gets
    back with each attempt and with a 401; it never appears in a log.
    """

    __slots__ = ()

    @property
    def can_refresh(self) -> bool:
        """True when a 401 may be answered with a fresh credential (one more try)."""
        return False

    def bind(self, *, base_url: str, send: SendCall) -> None:  # noqa: ARG002
        """Attach the flow to the session that uses it (called by the session).

        Args:
            base_url: The session's base URL (a signer needs its host).
            send: Sends a call without credentials (a renewing flow's refresh).
        """
        return None

    def current(self) -> str | None:
        """The credential for a call when it is known without waiting, else None."""
        raise NotImplementedError

    async def obtain(self, *, timeout: float) -> str:
        """The credential for a call when :meth:`current` gave None.

        Args:
            timeout: Seconds it may take.

        Raises:
            CredentialsError: It could not be had; nothing was sent.
        """
        raise NotImplementedError

    def apply(
        self,
        credential: str,
        call: Call,  # noqa: ARG002 - a signer needs it
        headers: MutableMapping[str, str],
    ) -> None:
        """Put the credential on one attempt's headers (a signer signs here).

        Args:
            credential: What :meth:`current` or :meth:`obtain` gave.
            call: The call (method, path, query, body bytes as sent).
            headers: The attempt's headers so far (X-Date included).
        """
        headers["Authorization"] = credential

    async def refresh(self, refused: str, *, timeout: float) -> str | None:  # noqa: ARG002
        """A fresh credential after ``refused`` was answered with 401.

        Args:
            refused: The credential the refused attempt carried.
            timeout: Seconds it may take.

        Returns:
            The new credential (one more try is made with it), or None.

        Raises:
            CredentialsError: The refresh failed.
        """
        return None


class NoAuth(AuthFlow):
    """The flow of a call that carries its own Authorization (or needs none)."""

    __slots__ = ()

    def current(self) -> str:
        """An empty credential: nothing to add."""
        return ""

    def apply(self, credential: str, call: Call, headers: MutableMapping[str, str]) -> None:  # noqa: ARG002
        """Add nothing."""
        return None


class TokenAuth(AuthFlow):
    """Supplies the Authorization header, refreshing it through a provider.

    Args:
        token: A fixed token.
        token_provider: ``(force_refresh: bool) -> str``, sync or async;
            called with False for the first token (which is cached) and with
            True once after a 401.

    Raises:
        InvalidRequestError: Neither or both were given.
    """

    __slots__ = ("_pending", "_pending_loop", "_provider", "header")

    def __init__(self, token: str | None, token_provider: TokenProvider | None) -> None:
        if (token is None) == (token_provider is None):
            raise InvalidRequestError("give exactly one of token and token_provider", field="token")
        if token_provider is not None and not callable(token_provider):
            raise InvalidRequestError("token_provider must be callable", field="token_provider")
        #: The current header value, or None until the provider was asked.
        self.header: str | None = None if token is None else authorization_value(token)
        self._provider = token_provider
        # The provider call in flight (one per event loop), which every caller
        # needing a token meanwhile shares: its answer, or its failure.
        self._pending: asyncio.Task[str] | None = None
        self._pending_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"TokenAuth(provider={self._provider is not None})"

    @property
    def can_refresh(self) -> bool:
        """True when a provider can supply a fresh token after a 401."""
        return self._provider is not None

    def current(self) -> str | None:
        """The cached header value, or None until the provider was asked."""
        return self.header

    async def obtain(self, *, timeout: float) -> str:
        """The header value, asking the provider (see :meth:`get`)."""
        return await self.get(timeout=timeout)

    async def get(self, *, timeout: float) -> str:
        """The header value, asking the provider (once) on first use.

        Args:
            timeout: Seconds the provider may take (waiting for a concurrent
                call of it included).

        Returns:
            The Authorization value.

        Raises:
            CredentialsError: The provider raised, returned a bad value or
                did not answer in time.
        """
        header = self.header
        if header is not None:
            return header
        return await self._fetch(force=False, stale=None, timeout=timeout)

    async def refresh(self, refused: str, *, timeout: float) -> str | None:
        """A fresh header after ``refused`` was answered with a 401.

        Concurrent callers that saw the same stale value share one provider call.

        Args:
            refused: The value the refused request carried.
            timeout: Seconds the provider may take.

        Returns:
            The new value, or None when there is no provider to ask.

        Raises:
            CredentialsError: The provider raised, returned a bad value or
                did not answer in time (``refresh`` is True).
        """
        if self._provider is None:
            return None
        return await self._fetch(force=True, stale=refused, timeout=timeout)

    async def _fetch(self, *, force: bool, stale: str | None, timeout: float) -> str:
        """Single-flight: join the provider call in flight, or start one.

        Callers that arrive while a call is in flight share its outcome, its
        failure and its deadline included: a hung provider costs all of them
        one timeout and one call, not one each in turn.
        """
        loop = asyncio.get_running_loop()
        while True:
            header = self.header
            if header is not None and (not force or header != stale):
                return header  # someone else fetched what this caller needs
            pending = self._pending if self._pending_loop is loop else None
            if pending is None or pending.done():
                pending = loop.create_task(self._call(force=force, timeout=timeout))
                # Retrieved here too, so that a call whose callers were all
                # cancelled does not log "exception never retrieved".
                pending.add_done_callback(_retrieve)
                self._pending, self._pending_loop = pending, loop
                return await asyncio.shield(pending)
            # Joined another caller's call; if it fetched a token this caller
            # cannot use (a refresh that needs a newer one), go round once more.
            await asyncio.shield(pending)

    async def _call(self, *, force: bool, timeout: float) -> str:
        """One provider call, bounded by ``timeout``; its failures as CredentialsError."""
        assert self._provider is not None
        after = " while refreshing the token after HTTP 401" if force else ""
        # What was sent: nothing with the missing token; on a refresh, the
        # earlier attempt was refused with 401, so nothing was created either.
        sent = (
            "; the request was refused with HTTP 401 and not sent again, nothing was created"
            if force
            else "; nothing was sent"
        )
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                answer = self._provider(force)
                token: object = await answer if inspect.isawaitable(answer) else answer
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline.expired():
                raise CredentialsError(
                    f"token_provider did not answer within {timeout:g}s{after}{sent}",
                    refresh=force,
                ) from None
            # Only the type: the provider's message is the caller's text and
            # may quote a secret; the exception itself stays the cause.
            raise CredentialsError(
                f"token_provider raised {type(exc).__name__}{after}{sent}", refresh=force
            ) from exc
        try:
            header = authorization_value(token, field="token_provider")
        except InvalidRequestError as exc:
            raise CredentialsError(
                f"token_provider returned an unusable token ({exc}){after}{sent}", refresh=force
            ) from None
        self.header = header
        return header


def _retrieve(task: asyncio.Task[str]) -> None:
    if not task.cancelled():
        task.exception()
