"""Authentication and the header checks the API routes share.

Each :class:`~._pipeline.Route` names its authenticator; the pipeline runs it
before the route's handler, so a handler only ever sees a caller that passed.
An authenticator is a plain function ``(core, request, raw body) -> user id``
that raises ``ApiError`` (401 for the token, 400 for the other headers). The
raw body is passed although the bearer checks ignore it: an app signature
(API-EXTRA.md, HMAC-SHA256 over the canonical request) hashes it. New schemes
(``AT+`` carrier tokens, ``x-session-id`` on session refresh, app signatures)
are one more function here each.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from ._render import PARAMETER_INVALID, UNAUTHORIZED, ApiError
from ._rules import Invalid, parse_x_date

if TYPE_CHECKING:
    from ._core import EmulatorCore

__all__ = ["X_DATE_MAX_AGE", "Authenticate", "bearer", "bearer_and_agent", "locale"]

#: How a route checks its caller: returns the ``X-User-Id`` or raises ApiError.
Authenticate = Callable[["EmulatorCore", web.Request, bytes], str]

#: How far in the past an X-Date may be (the pages: within 15 minutes).
X_DATE_MAX_AGE = 15 * 60.0

# The pages write "Bearer+{token}"; examples and clients also send a space,
# and the carrier pages use "AT+{token}".
_AUTH = re.compile(r"(bearer|at)[ +]+(.*)", re.IGNORECASE | re.DOTALL)


def bearer(core: EmulatorCore, request: web.Request, _raw: bytes) -> str:
    """Check the token, ``X-User-Id``, ``Host`` and ``X-Date`` (every task and job route).

    Args:
        core: The emulator (accepted tokens, server clock, X-Date cache).
        request: The request.
        _raw: The raw body (unused by token auth).

    Returns:
        The ``X-User-Id``.

    Raises:
        ApiError: 401 for the token, 400 for the other headers.
    """
    headers = request.headers
    match = _AUTH.fullmatch(headers.get("Authorization", "").strip())
    if match is None:
        raise ApiError(
            401, UNAUTHORIZED, "Authorization is missing or not in the form Bearer+{token}"
        )
    token = match.group(2).strip()
    if not token or (core.config.tokens and token not in core.config.tokens):
        raise ApiError(401, UNAUTHORIZED, "invalid access token")
    user_id = headers.get("X-User-Id", "").strip()
    if not user_id:
        raise ApiError(400, PARAMETER_INVALID, "X-User-Id is mandatory")
    # Host is mandatory on the pages; aiohttp's parser already refuses an
    # HTTP/1.1 request without one, an empty one gets here.
    if not headers.get("Host", "").strip():
        raise ApiError(400, PARAMETER_INVALID, "Host is mandatory")
    _check_x_date(core, headers.get("X-Date", "").strip())
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


def _check_x_date(core: EmulatorCore, x_date: str) -> None:
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
    if now - stamped > X_DATE_MAX_AGE:
        raise ApiError(400, PARAMETER_INVALID, "X-Date is more than 15 minutes old")
    if stamped > now:
        raise ApiError(400, PARAMETER_INVALID, "X-Date is later than the current time")


def locale(request: web.Request) -> str:
    """Return the request's ``language`` header, ``en-US`` when absent (the pages' default).

    Args:
        request: The request.

    Returns:
        The locale.
    """
    return request.headers.get("language", "").strip() or "en-US"
