"""Authentication and the header checks the API routes share.

Each :class:`~._pipeline.Route` names its authenticator; the pipeline runs it
before the route's handler, so a handler only ever sees a caller that passed.
An authenticator is a plain function ``(core, request, raw body) -> user id``
that raises ``ApiError`` (401 for the token, 400 for the other headers). The
raw body is passed because an app signature (API-EXTRA.md section A,
HMAC-SHA256 over the canonical request, checked by ``_signature``) hashes it.
Access tokens the session routes issued expire on the virtual clock
(``_tokens``); the session routes check their own callers
(``_routes_session``) with :func:`access_token`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from ._render import PARAMETER_INVALID, UNAUTHORIZED, ApiError
from ._rules import Invalid, parse_x_date
from ._signature import verify
from ._tokens import TokenState

if TYPE_CHECKING:
    from ._core import EmulatorCore

__all__ = [
    "X_DATE_MAX_AGE",
    "Authenticate",
    "access_token",
    "app_signature",
    "bearer",
    "bearer_and_agent",
    "locale",
]

#: How a route checks its caller: returns the ``X-User-Id`` or raises ApiError.
Authenticate = Callable[["EmulatorCore", web.Request, bytes], str]

#: How far in the past an X-Date may be (the pages: within 15 minutes).
X_DATE_MAX_AGE = 15 * 60.0

# The pages write "Bearer+{token}"; examples and clients also send a space,
# and the carrier pages use "AT+{token}".
_AUTH = re.compile(r"(bearer|at)[ +]+(.*)", re.IGNORECASE | re.DOTALL)
_APP_SCHEME = "HMAC-SHA256 "


def access_token(request: web.Request) -> str:
    """Return the bare token of ``Authorization: Bearer+{token}`` (or ``AT``, ``+`` or a space).

    Args:
        request: The request.

    Returns:
        The token, without its scheme word.

    Raises:
        ApiError: 401 when the header is missing, has no scheme word or no token.
    """
    match = _AUTH.fullmatch(request.headers.get("Authorization", "").strip())
    if match is None:
        raise ApiError(
            401, UNAUTHORIZED, "Authorization is missing or not in the form Bearer+{token}"
        )
    token = match.group(2).strip()
    if not token:
        raise ApiError(401, UNAUTHORIZED, "invalid access token")
    return token


def bearer(core: EmulatorCore, request: web.Request, raw: bytes) -> str:
    """Check the token, ``X-User-Id``, ``Host`` and ``X-Date`` (every task and job route).

    A token the session routes issued must not have expired on the virtual
    clock (and counts as used); any other token is checked against
    ``EmulatorConfig.tokens``. An ``HMAC-SHA256`` Authorization is an app
    signature instead (:func:`app_signature`).

    Args:
        core: The emulator (accepted tokens, server clock, X-Date cache).
        request: The request.
        raw: The raw body (hashed by an app signature).

    Returns:
        The ``X-User-Id``.

    Raises:
        ApiError: 401 for the token, 400 for the other headers.
    """
    headers = request.headers
    if headers.get("Authorization", "").startswith(_APP_SCHEME):
        return app_signature(core, request, raw)
    token = access_token(request)
    # No clock read on the polling hot path unless some token was issued.
    state = core.auth.check(token, core.clock.now()) if core.auth.tokens else None
    if state is not None:
        if state is not TokenState.VALID:
            raise ApiError(401, UNAUTHORIZED, f"access token {state.value}")
    elif core.config.tokens and token not in core.config.tokens:
        raise ApiError(401, UNAUTHORIZED, "invalid access token")
    return _caller(core, request)


def app_signature(core: EmulatorCore, request: web.Request, raw: bytes) -> str:
    """Check an app signature (``Authorization: HMAC-SHA256 AppId=..``), then the headers.

    The signature is rebuilt by ``_signature.verify`` from the request as it
    arrived (raw path and query, headers, body bytes) with the secrets of
    ``EmulatorConfig.apps``. The signing time is ``X-Date``: older than 15
    minutes or later than the server's now, the signature is stale (401).

    Args:
        core: The emulator.
        request: The request.
        raw: The body bytes as received.

    Returns:
        The ``X-User-Id`` (a signed header).

    Raises:
        ApiError: 401 for the signature (bad, unknown app, stale), 400 for the other headers.
    """
    # The raw path carries the query still encoded: verify reads it from there.
    result = verify(core.config.apps, request.method, request.raw_path, "", request.headers, raw)
    if not result.ok:
        raise ApiError(401, UNAUTHORIZED, f"app authentication failed: {result.detail}")
    return _caller(core, request, stale_status=401)


def _caller(core: EmulatorCore, request: web.Request, *, stale_status: int = 400) -> str:
    headers = request.headers
    user_id = headers.get("X-User-Id", "").strip()
    if not user_id:
        raise ApiError(400, PARAMETER_INVALID, "X-User-Id is mandatory")
    # Host is mandatory on the pages; aiohttp's parser already refuses an
    # HTTP/1.1 request without one, an empty one gets here.
    if not headers.get("Host", "").strip():
        raise ApiError(400, PARAMETER_INVALID, "Host is mandatory")
    _check_x_date(core, headers.get("X-Date", "").strip(), stale_status)
    return user_id


def bearer_and_agent(core: EmulatorCore, request: web.Request, raw: bytes) -> str:
    """Run :func:`bearer`, then require ``X-Hw-Agentname`` (the share routes).

    Args:
        core: The emulator.
        request: The request.
        raw: The raw body.

    Returns:
        The ``X-User-Id``.

    Raises:
        ApiError: 401 for the token, 400 for the other headers.
    """
    user_id = bearer(core, request, raw)
    if not request.headers.get("X-Hw-Agentname", "").strip():
        raise ApiError(400, PARAMETER_INVALID, "X-Hw-Agentname is mandatory")
    return user_id


def _check_x_date(core: EmulatorCore, x_date: str, stale_status: int = 400) -> None:
    if not x_date:
        raise ApiError(400, PARAMETER_INVALID, "X-Date is mandatory")
    cached = core.x_date_cache
    if cached[0] == x_date:
        stamped = cached[1]
    else:
        try:
            stamped = parse_x_date(x_date)
        except Invalid as exc:
            raise ApiError(400, PARAMETER_INVALID, exc.msg) from None
        core.x_date_cache = (x_date, stamped)
    # Both bounds at X-Date's own one-second resolution: a stamp exactly 15
    # minutes old is still "within 15 minutes", and the current second is not
    # "later than the current time" (a client stamping floored seconds passes).
    now = math.floor(core.server_now())
    max_age = core.config.x_date_max_age
    if now - stamped > max_age:
        raise _stale(
            stale_status,
            "X-Date is more than 15 minutes old"
            if max_age == X_DATE_MAX_AGE
            else f"X-Date is more than {max_age:g} seconds old",
        )
    if stamped > now:
        raise _stale(stale_status, "X-Date is later than the current time")


def _stale(status: int, msg: str) -> ApiError:
    # For a token X-Date is one more header (400); for an app signature it is
    # the signing time, and a stale signature is an authentication failure.
    return ApiError(status, UNAUTHORIZED if status == 401 else PARAMETER_INVALID, msg)


def locale(request: web.Request) -> str:
    """Return the request's ``language`` header, ``en-US`` when absent (the pages' default).

    Args:
        request: The request.

    Returns:
        The locale.
    """
    return request.headers.get("language", "").strip() or "en-US"
