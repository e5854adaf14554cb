"""The session endpoints (API-EXTRA.md D): pure builders and decoders.

``POST session`` (an authorization code for a session), ``POST
session/refresh`` (a new session access token) and ``POST
auth/refreshToken`` (a carrier access token for a refresh token). Their
answers hold secrets (tokens, the session id), so an answer that cannot be
understood gives an error WITHOUT its body, unlike every other endpoint.

Never imports aiohttp, asyncio, the sender or the session: no I/O here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

from . import _validate as check
from ._build import API_PREFIX, check_header_value
from ._call import Call, Response
from ._codec import encode_json
from ._decode import error_from_response, success_object
from ._exceptions import ResponseValidationError

__all__ = [
    "CarrierTokens",
    "SessionInfo",
    "bare_token",
    "build_create_session",
    "build_refresh_carrier",
    "build_refresh_session",
    "decode_carrier_refresh",
    "decode_session",
    "decode_session_refresh",
]

PATH_SESSION: Final = API_PREFIX + "/session"
PATH_SESSION_REFRESH: Final = API_PREFIX + "/session/refresh"
PATH_CARRIER_REFRESH: Final = API_PREFIX + "/auth/refreshToken"
_JSON_HEADERS: Final = {"Content-Type": "application/json"}
# A scheme word the service may write before a token: "Bearer x", "Bearer+x", "AT x", "AT+x".
_SCHEME: Final = re.compile(r"(?i)(?:bearer|at)[ +](?=\S)")


def bare_token(token: str) -> str:
    """The token without a leading ``Bearer``/``AT`` scheme word (space or ``+``).

    Args:
        token: A token as the service or the caller wrote it.

    Returns:
        The token itself.
    """
    token = token.strip()
    match = _SCHEME.match(token)
    return token[match.end() :] if match else token


@attrs.frozen
class SessionInfo:
    """A session opened with an authorization code (``POST session``).

    Attributes:
        access_token: The access token, as the service wrote it (it may carry
            its ``Bearer`` scheme word). Not shown in the repr.
        session_id: The session id, needed to refresh the token. Not shown
            in the repr.
        user_id: The user the session is for (the X-User-Id of later calls).
        user_info: The ``userInfo`` object as the service sent it (role,
            userName, tenantId, ...), or None.
    """

    access_token: str = attrs.field(repr=False)
    session_id: str = attrs.field(repr=False)
    user_id: str | None = None
    user_info: Mapping[str, Any] | None = None


@attrs.frozen
class CarrierTokens:
    """What a carrier refresh answered.

    Attributes:
        access_token: The new access token (scheme word kept when sent).
        refresh_token: The refresh token to use next time, or None when the
            answer named none (the old one stays).
        expires_in: Seconds the access token lives, or None when not said.
        issued_at: The ``issuedAt`` string (epoch milliseconds), or None.
    """

    access_token: str = attrs.field(repr=False)
    refresh_token: str | None = attrs.field(repr=False)
    expires_in: float | None = None
    issued_at: str | None = None


# --------------------------------------------------------------------------- builders


def build_create_session(code: str, domain: str | None) -> Call:
    """Build ``POST /koodrive/ose/v1/session`` ``{"code", "domain"}``.

    Not idempotent: each call opens a session, so it is retried only when
    the service cannot have acted.

    Raises:
        InvalidRequestError: An empty code or domain (the code is not shown).
    """
    check.text(code, "code", secret=True)
    payload = {"code": code}
    if domain is not None:
        payload["domain"] = check.text(domain, "domain")
    return Call(
        "POST",
        PATH_SESSION,
        "create_session",
        headers=_JSON_HEADERS,
        body=encode_json(payload),
        idempotent=False,
        secret_answer=True,
    )


def build_refresh_session(authorization: str, session_id: str) -> Call:
    """Build ``POST /koodrive/ose/v1/session/refresh``: Authorization and x-session-id, no body.

    Not idempotent: a refresh replaces the token it was sent with, so one
    whose answer was lost must not be sent again with that token.
    """
    check_header_value(session_id, "session_id")
    return Call(
        "POST",
        PATH_SESSION_REFRESH,
        "refresh_session",
        headers={"Authorization": authorization, "x-session-id": session_id},
        idempotent=False,
        secret_answer=True,
    )


def build_refresh_carrier(access_token: str, refresh_token: str) -> Call:
    """Build ``POST /koodrive/ose/v1/auth/refreshToken`` with ``Authorization: AT+{token}``.

    Not idempotent: the refresh token may be rotated by a refresh whose
    answer was lost, so it is retried only when it was not sent.
    """
    return Call(
        "POST",
        PATH_CARRIER_REFRESH,
        "refresh_carrier_token",
        headers={**_JSON_HEADERS, "Authorization": f"AT+{bare_token(access_token)}"},
        body=encode_json({"refreshToken": refresh_token}),
        idempotent=False,
        secret_answer=True,
    )


# --------------------------------------------------------------------------- decoders


def _unreadable(call: Call, response: Response, problem: str) -> ResponseValidationError:
    # The body of a session answer holds tokens: the call says so
    # (secret_answer), and the one error factory keeps none of it.
    return error_from_response(call, response, problem=problem)  # type: ignore[return-value]


def _object(call: Call, response: Response) -> dict[str, Any]:
    if 200 <= response.status < 300:
        try:
            return success_object(call, response)
        except ResponseValidationError as exc:
            raise _unreadable(call, response, exc.args[0] if exc.args else "unreadable") from None
    return success_object(call, response)  # raises the service's error ({code, msg})


def _token(call: Call, response: Response, data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _unreadable(call, response, f"the response has no {key}")
    return value.strip()


def _inner(data: dict[str, Any], key: str) -> dict[str, Any]:
    nested = data.get("data")
    if key not in data and isinstance(nested, dict):
        return nested
    return data


def decode_session(call: Call, response: Response) -> SessionInfo:
    """The session from a ``POST session`` answer (``data`` or flat).

    Raises:
        APIError: The service refused (an unknown code is a 401).
        ResponseValidationError: No access token or session id (the body is
            not kept: it holds secrets).
    """
    data = _inner(_object(call, response), "accessToken")
    info = data.get("userInfo")
    user = data.get("userId")
    return SessionInfo(
        access_token=_token(call, response, data, "accessToken"),
        session_id=_token(call, response, data, "sessionId"),
        user_id=str(user) if isinstance(user, str | int) and not isinstance(user, bool) else None,
        user_info=dict(info) if isinstance(info, dict) else None,
    )


def decode_session_refresh(call: Call, response: Response) -> str:
    """The new access token from a ``POST session/refresh`` answer (flat or in ``data``).

    Raises:
        APIError: The service refused.
        ResponseValidationError: No access token (the body is not kept).
    """
    return _token(call, response, _inner(_object(call, response), "accessToken"), "accessToken")


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        seconds = float(value) if isinstance(value, int | float | str) else math.nan
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def decode_carrier_refresh(call: Call, response: Response) -> CarrierTokens:
    """The tokens from a ``POST auth/refreshToken`` answer.

    ``data.sessionInfo`` (the page's example) or the fields right in
    ``data`` (the page's table). ``expiresIn`` is read as seconds (the page
    does not name the unit; its example is 1800).

    Raises:
        APIError: The service refused.
        ResponseValidationError: No access token (the body is not kept).
    """
    data = _inner(_object(call, response), "accessToken")
    nested = data.get("sessionInfo")
    if "accessToken" not in data and isinstance(nested, dict):
        data = nested
    refresh = data.get("refreshToken")
    issued = data.get("issuedAt")
    return CarrierTokens(
        access_token=_token(call, response, data, "accessToken"),
        refresh_token=refresh.strip() if isinstance(refresh, str) and refresh.strip() else None,
        expires_in=_seconds(data.get("expiresIn")),
        issued_at=None if issued is None else str(issued),
    )
