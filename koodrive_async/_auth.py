"""Credentials: a fixed bearer token, or an async token provider.

The Authorization value follows API-NOTES.md: a token that already starts
with a scheme word (``Bearer`` or ``AT``, followed by a space or the pages'
``+``) is sent verbatim; any other token is sent as ``Bearer <token>``.

The token never appears in a repr, a log line or an exception message: this
module is the only one that sees it, and it says nothing about it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Final

from ._exceptions import InvalidRequestError
from ._protocol import check_header_value

__all__ = ["TokenAuth", "TokenProvider", "authorization_value"]

#: ``async def provider(force_refresh: bool) -> str``.
TokenProvider = Callable[[bool], Awaitable[str]]

_SCHEME: Final = re.compile(r"(?i)(?:bearer|at)[ +]\S")


def authorization_value(token: str, *, field: str = "token") -> str:
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


class TokenAuth:
    """Supplies the Authorization header, refreshing it through a provider.

    Args:
        token: A fixed token.
        token_provider: ``async (force_refresh: bool) -> str``; called with
            False for the first token (which is cached) and with True once
            after a 401.

    Raises:
        InvalidRequestError: Neither or both were given.
    """

    __slots__ = ("_lock", "_provider", "header")

    def __init__(self, token: str | None, token_provider: TokenProvider | None) -> None:
        if (token is None) == (token_provider is None):
            raise InvalidRequestError("give exactly one of token and token_provider", field="token")
        if token_provider is not None and not callable(token_provider):
            raise InvalidRequestError("token_provider must be callable", field="token_provider")
        #: The current header value, or None until the provider was asked.
        self.header: str | None = None if token is None else authorization_value(token)
        self._provider = token_provider
        self._lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"TokenAuth(provider={self._provider is not None})"

    @property
    def can_refresh(self) -> bool:
        """True when a provider can supply a fresh token after a 401."""
        return self._provider is not None

    async def get(self) -> str:
        """The header value, asking the provider (once) on first use.

        Returns:
            The Authorization value.
        """
        header = self.header
        if header is not None:
            return header
        return await self._fetch(force=False, stale=None)

    async def refresh(self, stale: str) -> str | None:
        """A fresh header after ``stale`` was refused with a 401.

        Concurrent callers that saw the same stale value share one provider call.

        Args:
            stale: The value the refused request carried.

        Returns:
            The new value, or None when there is no provider to ask.
        """
        if self._provider is None:
            return None
        return await self._fetch(force=True, stale=stale)

    async def _fetch(self, *, force: bool, stale: str | None) -> str:
        assert self._provider is not None
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            # Someone else fetched while we waited for the lock.
            if self.header is not None and (not force or self.header != stale):
                return self.header
            token = await self._provider(force)
            self.header = authorization_value(token, field="token_provider")
            return self.header
