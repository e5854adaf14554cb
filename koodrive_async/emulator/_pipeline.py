"""The request pipeline: what every API request goes through, around its route's handler.

A route module declares :class:`Route` values (method, path, name, handler,
authenticator); :func:`api_handler` turns one into an aiohttp handler that, in
this order:

1. picks the injected faults for the route (LATENCY waits here);
2. reads and parses the body (a parse failure is a marker, not an error);
3. answers a refusing fault (429, 500, 502 page, 503, dropped connection), or
   a 429 of the per-user quota (``_quota``), or authenticates and runs the
   handler, rendering ``Invalid`` / ``ApiError`` as ``{code, msg}``; then
   applies an after-the-fact fault (CREATED_BUT_500, CREATED_BUT_504,
   MALFORMED_JSON, CREATED_THEN_HELD's hold, after which its ``Date`` is
   stamped again: a ``Date`` says when the answer was sent);
4. records the request in the ledger (secrets redacted), whatever happened
   (CREATED_THEN_HELD records it before its hold).

Keeping this in one place means a new route group is a file of handlers and a
``ROUTES`` tuple, and cannot forget the ledger or the faults. The common case
(no fault, a polled ``GET task/{id}``) costs one fault-book check, one
authenticator call, one handler call and one ledger entry: keep it so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from aiohttp import web

from ._core import EmulatorCore
from ._faults import Fault, FaultKind
from ._headers import Authenticate, bearer
from ._ledger import CREDENTIAL_FIELDS, LedgerEntry, redact_body, redact_headers
from ._render import (
    BAD_REQUEST,
    INNER_INVOKE_FAILURE,
    TASK_NOT_FOUND,
    ApiError,
    fault_refusal,
    json_response,
    quota_refusal,
)
from ._rules import NO_BODY, NOT_JSON, Invalid, parse_body

__all__ = ["NOT_FOUND", "PREFIX", "Handler", "Reply", "Route", "api_handler"]

logger = logging.getLogger("koodrive_async.emulator")

#: The path prefix of every Open API route.
PREFIX = "/koodrive/ose/v1"

#: What a handler returns: (HTTP status, JSON payload, id of the task it created or None).
Reply = tuple[int, Any, str | None]

#: A route's handler: ``(core, request, X-User-Id, parsed body) -> Reply``. It
#: raises ``_rules.Invalid`` (400) or ``_render.ApiError`` to refuse.
Handler = Callable[[EmulatorCore, web.Request, str, Any], Reply]

# Faults that answer before the request is handled (nothing is created).
_REFUSING = frozenset(
    {
        FaultKind.RATE_LIMIT,
        FaultKind.SERVER_ERROR,
        FaultKind.UNAVAILABLE,
        FaultKind.BAD_GATEWAY_HTML,
        FaultKind.DROP,
    }
)


@attrs.frozen
class Route:
    """One API endpoint, as a route module declares it.

    Args:
        method: HTTP method (``*`` for any).
        path: aiohttp path template, from the root (``PREFIX + "/task/{task_id}"``).
        name: Route name of faults and ledger entries (``_faults.API_ROUTES``),
            or None for a path that is no endpoint (no fault applies).
        handle: The handler.
        auth: How the caller is checked, or None for no check (the handler
            then gets an empty user id).
        secret_response: True when the answers carry credentials (the session
            routes): the ledger records them redacted.
    """

    method: str
    path: str
    name: str | None
    handle: Handler
    auth: Authenticate | None = bearer
    secret_response: bool = False


def api_handler(
    core: EmulatorCore, route: Route
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a route's handler with faults, authentication, error rendering and the ledger.

    Args:
        core: The emulator.
        route: The route.

    Returns:
        An aiohttp handler.
    """
    name = route.name
    secret = route.secret_response

    async def handler(request: web.Request) -> web.StreamResponse:
        arrival = time.monotonic()
        kind: FaultKind | None = None  # what the ledger records
        body: Any = NO_BODY
        status: int | None = None
        payload: Any = None
        task_id: str | None = None
        throttled = False
        recorded = False
        response: web.StreamResponse
        try:
            fault: Fault | None = None
            if name is not None:
                delay, fault = core.faults.select(name, request.method)
                if delay:
                    kind = FaultKind.LATENCY
                    await core.sleep(delay)
                if fault is not None:
                    kind = fault.kind
            raw = b""
            if request.body_exists:
                raw = await request.read()
                body = parse_body(raw)
            wait: str | None = None
            if name is not None and (fault is None or fault.kind not in _REFUSING):
                # The quota sits in front of the service: a refusing fault
                # (the network, the gateway) answers first and spends nothing.
                wait = core.quota.take(name, request.headers.get("X-User-Id", ""))
            if wait is not None:
                throttled, kind = True, None
                status, payload, response = quota_refusal(core, request, wait)
            elif fault is None:
                status, payload, task_id = _handle(core, route, request, raw, body)
                response = json_response(status, payload, request, core.date_header())
            else:
                status, payload, task_id, response = _faulted(
                    core, route, request, raw, body, fault
                )
                if fault.kind is FaultKind.CREATED_THEN_HELD:
                    # Carried out and in the ledger before the hold: a client
                    # that dies during it leaves a task it never heard of.
                    recorded = True
                    _record(
                        core, arrival, request, name, body, status, payload, task_id, kind, secret
                    )
                    await core.sleep(fault.latency)
                    # Stamped when the answer goes out, as a server's Date is:
                    # one stamped before the hold would make a client that
                    # learns the server's clock from it run slow by the hold.
                    response.headers["Date"] = core.date_header()
        except web.HTTPException as exc:
            # e.g. a body over client_max_size: keep the status, answer JSON.
            status, payload = exc.status, core.error_payload(BAD_REQUEST, exc.reason)
            response = json_response(status, payload, request, core.date_header())
        except asyncio.CancelledError:
            if not recorded:
                _record(core, arrival, request, name, body, None, None, task_id, kind, secret)
            raise
        except ConnectionResetError:
            # The client hung up before its body was read (say it timed out
            # during a LATENCY fault): nothing was handled, nobody is listening.
            _record(core, arrival, request, name, body, None, None, task_id, kind, secret)
            return web.Response()
        except Exception:
            # Never let a bug look like the service: count it, log it, answer 500.
            core.internal_errors += 1
            logger.exception("emulator bug while handling %s %s", request.method, request.path)
            status = 500
            payload = core.error_payload(INNER_INVOKE_FAILURE, "emulator internal error")
            response = json_response(status, payload, request, core.date_header())
        if not recorded:
            _record(
                core,
                arrival,
                request,
                name,
                body,
                status,
                payload,
                task_id,
                kind,
                secret,
                throttled=throttled,
            )
        return response

    return handler


def _handle(core: EmulatorCore, route: Route, request: web.Request, raw: bytes, body: Any) -> Reply:
    # Authentication comes first, so a bad token is a 401 whatever the body.
    try:
        user_id = "" if route.auth is None else route.auth(core, request, raw)
        return route.handle(core, request, user_id, body)
    except Invalid as exc:
        return 400, core.error_payload(exc.code, exc.msg), None
    except ApiError as exc:
        return exc.status, core.error_payload(exc.code, exc.msg), None


def _faulted(
    core: EmulatorCore, route: Route, request: web.Request, raw: bytes, body: Any, fault: Fault
) -> tuple[int | None, Any, str | None, web.StreamResponse]:
    # (status, payload and created task id for the ledger, the response).
    kind = fault.kind
    if kind in (FaultKind.CREATED_BUT_500, FaultKind.CREATED_BUT_504) and request.method == "GET":
        # Nothing to create on a GET: it is a plain server error.
        kind = FaultKind.SERVER_ERROR
    if kind is FaultKind.DROP:
        transport = request.transport
        if transport is not None:
            transport.abort()
        return None, None, None, web.Response()
    if kind in _REFUSING:
        status, payload, response = fault_refusal(core, request, fault, kind)
        return status, payload, None, response
    status, payload, task_id = _handle(core, route, request, raw, body)
    cut: bytes | None = None
    if kind is FaultKind.CREATED_BUT_500:
        status = 500
        payload = core.error_payload(INNER_INVOKE_FAILURE, "INNER_INVOKE_FAILURE")
    elif kind is FaultKind.CREATED_BUT_504 and status == 200:
        # A gateway that gave up waiting on something carried out (a create, a
        # token refresh); a request that was refused keeps its refusal.
        status, payload = 504, {"code": "APIGW.0504", "msg": "Gateway Timeout"}
    elif kind is FaultKind.MALFORMED_JSON:
        full = json.dumps(payload, separators=(",", ":")).encode()
        cut = full[: max(1, len(full) // 2)]
        payload = None  # the ledger holds what the client could not parse: nothing
    response = json_response(status, payload, request, core.date_header(), body=cut)
    return status, payload, task_id, response


def not_found(core: EmulatorCore, request: web.Request, _user_id: str, _body: Any) -> Reply:
    """Answer 404 with a JSON body for any path that is no API route.

    Args:
        core: The emulator.
        request: The request.
        _user_id: Unused (the route has no authenticator).
        _body: Unused.

    Returns:
        The reply.
    """
    return 404, core.error_payload(TASK_NOT_FOUND, f"no such API: {request.path}"), None


#: The catch-all route, registered last: unknown paths are recorded, not faulted.
NOT_FOUND = Route("*", "/{tail:.*}", None, not_found, auth=None)


def _record(
    core: EmulatorCore,
    arrival: float,
    request: web.Request,
    route: str | None,
    body: Any,
    status: int | None,
    payload: Any,
    task_id: str | None,
    fault: FaultKind | None,
    secret: bool,
    *,
    throttled: bool = False,
) -> None:
    try:
        entry = _entry(arrival, request, route, body, status, payload, task_id, fault, secret)
        if throttled:
            entry = attrs.evolve(entry, throttled=True)
    except Exception:
        # The ledger must never cost the client its answer; keep what is safe.
        core.internal_errors += 1
        logger.exception("emulator bug while recording %s %s", request.method, request.path)
        entry = _entry(arrival, request, route, NO_BODY, status, None, task_id, fault, False)
    core.ledger.append(entry)


def _entry(
    arrival: float,
    request: web.Request,
    route: str | None,
    body: Any,
    status: int | None,
    payload: Any,
    task_id: str | None,
    fault: FaultKind | None,
    secret: bool,
) -> LedgerEntry:
    if secret:
        # A session route: its request's ``code`` and its answer's tokens are credentials.
        body = (
            NO_BODY
            if body is NO_BODY or body is NOT_JSON
            else redact_body(body, fields=CREDENTIAL_FIELDS)
        )
        payload = redact_body(payload)
    return LedgerEntry(
        time=arrival,
        method=request.method,
        path=request.path,
        route=route,
        query=tuple(request.query.items()),
        headers=redact_headers(request.headers),
        body=None if body is NO_BODY or body is NOT_JSON else redact_body(body),
        status=status,
        response=payload,
        task_id=task_id,
        fault=fault,
    )
