"""Issued credentials: sessions, their access tokens, carrier refresh tokens, on the virtual clock.

The session routes (``_routes_session``) open sessions and refresh tokens
here; the authenticators (``_headers``) ask :meth:`TokenBook.check` whether an
access token the book issued is still valid. Tokens the book never issued are
not its business (the static ``EmulatorConfig.tokens`` rules apply to them).

Lifetimes run on the virtual clock, so a test moves time instead of sleeping:

* a session access token is valid until ``session_idle_timeout`` seconds pass
  without an accepted request using it (sliding, the pages' 20 minutes);
* a carrier access token is valid for ``carrier_expires_in`` seconds after
  its issue (its ``expiresIn``), however much it is used.

A refresh may make the token it replaces invalid at once
(``revoke_replaced_tokens``), and a carrier refresh may rotate the refresh
token (``rotate_refresh_tokens``; the old one is refused from then on). Nothing
here does I/O or reads a clock itself: every method takes ``now``.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from collections import Counter
from collections.abc import Mapping

import attrs

__all__ = ["COUNTERS", "IssuedToken", "RefreshGrant", "Session", "TokenBook", "TokenState"]

#: The counters :attr:`TokenBook.counters` always holds (the admin route shows them).
COUNTERS = (
    "sessions_created",
    "session_refreshes",
    "carrier_refreshes",
    "expired_token_refusals",
    "refused_refreshes",
)


class TokenState(enum.Enum):
    """What :meth:`TokenBook.check` found."""

    VALID = "valid"
    EXPIRED = "expired"
    REVOKED = "revoked"


@attrs.define(eq=False)
class IssuedToken:
    """One access token the book issued.

    Args:
        token: The bare token (no scheme word).
        kind: ``"session"`` or ``"carrier"``.
        user_id: Whose it is.
        issued_at: Virtual time of issue.
        expires_at: Virtual time it stops being valid (moves on use when ``idle``).
        idle: The sliding window (session tokens), or None for a fixed expiry.
        session_id: The session it belongs to (session tokens).
        revoked: True once a refresh replaced it (``revoke_replaced_tokens``).
    """

    token: str = attrs.field(repr=False)
    kind: str
    user_id: str
    issued_at: float
    expires_at: float
    idle: float | None = None
    session_id: str | None = attrs.field(default=None, repr=False)
    revoked: bool = False


@attrs.define(eq=False)
class Session:
    """A session ``POST session`` opened.

    Args:
        session_id: Its id (the ``x-session-id`` of refreshes).
        user_id: Whose it is.
        token: Its newest access token.
    """

    session_id: str = attrs.field(repr=False)
    user_id: str
    token: IssuedToken


@attrs.define(eq=False)
class RefreshGrant:
    """A carrier refresh token the book accepts.

    Args:
        refresh_token: The token.
        user_id: Whose it is.
        access: The access token issued with it last, or None (a configured one).
    """

    refresh_token: str = attrs.field(repr=False)
    user_id: str
    access: IssuedToken | None = None


def _new_token() -> str:
    # 48 lower-case hex digits, like the pages' examples.
    return secrets.token_hex(24)


def user_id_for_code(code: str) -> str:
    """Derive a stable 19-digit user id from an authorization code (any code is accepted).

    Args:
        code: The authorization code.

    Returns:
        The user id.
    """
    digest = int(hashlib.sha256(code.encode("utf-8", "surrogateescape")).hexdigest()[:15], 16)
    return "10086" + str(digest % 10**14).zfill(14)


class TokenBook:
    """Every session, access token and refresh token an emulator issued.

    Args:
        refresh_tokens: Carrier refresh tokens accepted from the start, with their user ids.
    """

    def __init__(self, refresh_tokens: Mapping[str, str]) -> None:
        self._configured = dict(refresh_tokens)
        self.tokens: dict[str, IssuedToken] = {}
        self.sessions: dict[str, Session] = {}
        self.grants: dict[str, RefreshGrant] = {}
        #: How many times each thing happened (:data:`COUNTERS`).
        self.counters: Counter[str] = Counter()
        self.clear()

    def clear(self) -> None:
        """Forget everything issued and zero the counters (configured refresh tokens return)."""
        self.tokens.clear()
        self.sessions.clear()
        self.grants = {rt: RefreshGrant(rt, user) for rt, user in self._configured.items()}
        self.counters = Counter(dict.fromkeys(COUNTERS, 0))

    # ------------------------------------------------------------------ checks

    def check(self, token: str, now: float) -> TokenState | None:
        """Check an access token and, when valid, count it as used (sliding windows move).

        Args:
            token: The bare token.
            now: Virtual time.

        Returns:
            Its state, or None when the book never issued it.
        """
        issued = self.tokens.get(token)
        if issued is None:
            return None
        if issued.revoked:
            self.counters["expired_token_refusals"] += 1
            return TokenState.REVOKED
        if now >= issued.expires_at:
            self.counters["expired_token_refusals"] += 1
            return TokenState.EXPIRED
        if issued.idle is not None:
            issued.expires_at = now + issued.idle
        return TokenState.VALID

    # ---------------------------------------------------------------- sessions

    def open_session(self, user_id: str, now: float, idle: float) -> Session:
        """Open a session with a fresh access token.

        Args:
            user_id: Whose.
            now: Virtual time.
            idle: The sliding idle timeout.

        Returns:
            The session.
        """
        session_id = _new_token()
        token = self._issue("session", user_id, now, now + idle, idle, session_id)
        session = Session(session_id, user_id, token)
        self.sessions[session_id] = session
        self.counters["sessions_created"] += 1
        return session

    def refresh_session(
        self, session_id: str, token: str, now: float, *, idle: float, revoke: bool
    ) -> IssuedToken | str:
        """Give a session a new access token.

        The token presented may have expired (that is when one refreshes); it
        must be one this session was given and not revoked.

        Args:
            session_id: The ``x-session-id``.
            token: The bare token of the ``Authorization`` header.
            now: Virtual time.
            idle: The sliding idle timeout of the new token.
            revoke: Make the replaced token invalid now.

        Returns:
            The new token, or why not (a sentence without any secret).
        """
        session = self.sessions.get(session_id)
        presented = self.tokens.get(token)
        if session is None:
            why = "unknown session"
        elif presented is None or presented.session_id != session_id:
            why = "the access token does not belong to this session"
        elif presented.revoked:
            why = "the access token was replaced by a refresh"
        else:
            new = self._issue("session", session.user_id, now, now + idle, idle, session_id)
            if revoke:
                session.token.revoked = True
            session.token = new
            self.counters["session_refreshes"] += 1
            return new
        self.counters["refused_refreshes"] += 1
        return why

    # ----------------------------------------------------------------- carrier

    def refresh_carrier(
        self,
        refresh_token: str,
        token: str,
        now: float,
        *,
        expires_in: float,
        rotate: bool,
        revoke: bool,
    ) -> tuple[IssuedToken, str] | str:
        """Issue a carrier access token for a refresh token.

        Args:
            refresh_token: The ``refreshToken`` of the body.
            token: The bare token of the ``Authorization`` header (may have expired).
            now: Virtual time.
            expires_in: Lifetime of the new access token.
            rotate: Replace the refresh token (the old one is refused from now on).
            revoke: Make the access token issued with it last invalid now.

        Returns:
            (the new access token, the refresh token to use next), or why not.
        """
        grant = self.grants.get(refresh_token)
        presented = self.tokens.get(token)
        if grant is None:
            why = "invalid refresh token"
        elif presented is not None and (
            presented.kind != "carrier" or presented.user_id != grant.user_id
        ):
            why = "the access token does not belong to this refresh token"
        else:
            new = self._issue("carrier", grant.user_id, now, now + expires_in, None, None)
            if revoke and grant.access is not None:
                grant.access.revoked = True
            grant.access = new
            if rotate:
                del self.grants[refresh_token]
                grant.refresh_token = _new_token()
                self.grants[grant.refresh_token] = grant
            self.counters["carrier_refreshes"] += 1
            return new, grant.refresh_token
        self.counters["refused_refreshes"] += 1
        return why

    def _issue(
        self,
        kind: str,
        user_id: str,
        now: float,
        expires_at: float,
        idle: float | None,
        session_id: str | None,
    ) -> IssuedToken:
        issued = IssuedToken(_new_token(), kind, user_id, now, expires_at, idle, session_id)
        self.tokens[issued.token] = issued
        return issued
