"""The session routes: ``POST session``, ``session/refresh``, ``auth/refreshToken``.

API-EXTRA.md section D. ``session`` trades an authorization ``code`` for a
session (access token, session id, user id, user info); ``session/refresh``
gives a session a new access token (``Authorization`` + ``x-session-id``, no
body); ``auth/refreshToken`` trades a carrier refresh token for a new access
token (and, rotating, a new refresh token). The tokens they issue live in
``core.auth`` (``_tokens``) and expire on the virtual clock.

These routes check their own callers (``auth=None`` on their :class:`Route`):
they take no ``X-User-Id`` or ``X-Date`` (the pages list neither), accept an
access token that has expired (that is when one refreshes), and do not
support app authentication (section A.0). Their answers carry secrets, so the
ledger records them redacted (``secret_response``).
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from ._core import EmulatorCore
from ._headers import access_token
from ._pipeline import PREFIX, Handler, Reply, Route
from ._render import PARAMETER_INVALID, UNAUTHORIZED, ApiError, ok
from ._rules import check_refresh_token, check_session, require_object
from ._tokens import IssuedToken, user_id_for_code

__all__ = ["ROUTES"]

_FORMS = {"bare": "", "bearer_space": "Bearer ", "bearer_plus": "Bearer+", "at_space": "AT "}


def _written(core: EmulatorCore, token: IssuedToken, documented: str) -> str:
    # Each page's example writes the token with its scheme word its own way.
    form = core.config.response_variant.token_form
    prefix = documented if form == "documented" else _FORMS[form]
    return prefix + token.token


def _user_info(user_id: str) -> dict[str, Any]:
    # SessionUserInfo (ZH page); values are made up, the shape is the page's.
    return {
        "role": "1",
        "userName": f"emulated-{user_id[-4:]}",
        "innerUserId": f"inner-{user_id}",
        "userId": user_id,
        "tenantId": "emulated-tenant",
        "orgId": "emulated-org",
        "orgName": "Emulated organisation",
        "xHwSchema": "emulated_schema",
        "userCount": 1,
        "deptId": "emulated-dept",
    }


def create_session(core: EmulatorCore, _request: web.Request, _user_id: str, body: Any) -> Reply:
    """Handle ``POST session``: an authorization code for a session.

    Args:
        core: The emulator.
        _request: The request (no header is needed).
        _user_id: Unused (no authenticator).
        body: ``{"code": ..., "domain": ...}``.

    Returns:
        The reply: ``accessToken``, ``sessionId``, ``userId``, ``userInfo``.

    Raises:
        ApiError: 401 for a code the emulator does not accept.
    """
    code = check_session(require_object(body))
    codes = core.config.session_codes
    if codes:
        user_id = codes.get(code)
        if user_id is None:
            raise ApiError(401, UNAUTHORIZED, "invalid authorization code")
    else:
        user_id = user_id_for_code(code)
    session = core.auth.open_session(user_id, core.clock.now(), core.config.session_idle_timeout)
    fields = {
        "accessToken": _written(core, session.token, "Bearer "),
        "sessionId": session.session_id,
        "userId": user_id,
        "userInfo": _user_info(user_id),
    }
    flat = core.config.response_variant.session_shape == "flat"
    return 200, ok(core, fields if flat else {"data": fields}), None


def refresh_session(core: EmulatorCore, request: web.Request, _user_id: str, _body: Any) -> Reply:
    """Handle ``POST session/refresh``: a new access token for a session.

    Args:
        core: The emulator.
        request: The request (``Authorization``, ``x-session-id``).
        _user_id: Unused (no authenticator).
        _body: Ignored (the page sends none).

    Returns:
        The reply: ``accessToken``.

    Raises:
        ApiError: 401 for an unknown session or a token not its own, 400 without ``x-session-id``.
    """
    token = access_token(request)
    session_id = request.headers.get("x-session-id", "").strip()
    if not session_id:
        raise ApiError(400, PARAMETER_INVALID, "x-session-id is mandatory")
    config = core.config
    issued = core.auth.refresh_session(
        session_id,
        token,
        core.clock.now(),
        idle=config.session_idle_timeout,
        revoke=config.revoke_replaced_tokens,
    )
    if isinstance(issued, str):
        raise ApiError(401, UNAUTHORIZED, issued)
    fields = {"accessToken": _written(core, issued, "Bearer+")}
    nested = config.response_variant.session_shape == "data"
    return 200, ok(core, {"data": fields} if nested else fields), None


def refresh_carrier_token(
    core: EmulatorCore, request: web.Request, _user_id: str, body: Any
) -> Reply:
    """Handle ``POST auth/refreshToken``: a carrier refresh token for a new access token.

    Args:
        core: The emulator.
        request: The request (``Authorization: AT+{access_token}``; the token may have expired).
        _user_id: Unused (no authenticator).
        body: ``{"refreshToken": ...}``.

    Returns:
        The reply: ``accessToken``, ``expiresIn``, ``issuedAt``, ``refreshToken``
        in ``data.sessionInfo`` or ``data``.

    Raises:
        ApiError: 401 for the access or the refresh token.
    """
    token = access_token(request)
    config = core.config
    if token not in core.auth.tokens and config.tokens and token not in config.tokens:
        raise ApiError(401, UNAUTHORIZED, "invalid access token")
    refresh_token = check_refresh_token(require_object(body))
    now = core.clock.now()
    issued = core.auth.refresh_carrier(
        refresh_token,
        token,
        now,
        expires_in=config.carrier_expires_in,
        rotate=config.rotate_refresh_tokens,
        revoke=config.revoke_replaced_tokens,
    )
    if isinstance(issued, str):
        raise ApiError(401, UNAUTHORIZED, issued)
    new, next_refresh = issued
    expires_in = config.carrier_expires_in
    info = {
        "accessToken": _written(core, new, "AT "),
        # Long on the page: a whole number of seconds when it is one.
        "expiresIn": int(expires_in) if float(expires_in).is_integer() else expires_in,
        "issuedAt": str(math.floor(now * 1000)),
        "refreshToken": next_refresh,
    }
    nested = config.response_variant.carrier_shape == "session_info"
    return 200, ok(core, {"data": {"sessionInfo": info} if nested else info}), None


def _route(path: str, name: str, handle: Handler) -> Route:
    return Route("POST", PREFIX + path, name, handle, auth=None, secret_response=True)


#: ``session`` with or without the trailing slash the EN page shows: one route.
ROUTES = (
    _route("/session{slash:/?}", "create_session", create_session),
    _route("/session/refresh", "refresh_session", refresh_session),
    _route("/auth/refreshToken", "refresh_carrier_token", refresh_carrier_token),
)
