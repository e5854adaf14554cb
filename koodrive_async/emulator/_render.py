"""What the emulator answers with: status and business codes, ``{code, msg}``, response bytes.

Route modules return payloads (dicts) or raise :class:`ApiError` /
``_rules.Invalid``; this module alone decides how those become a response, so
every route group answers in the same shape: the ``code`` type of the chosen
``ResponseVariant``, the skewed ``Date`` header, the echoed ``X-Traceid``, and
the gateway's own bodies for injected faults (which are not the service's
``{code, msg}``, and a client must cope with them).

Status codes and business codes the emulator answers with (``code`` is an int
or a str per ``ResponseVariant.code_as``):

=====  ============  =========================================================
HTTP   code          when
=====  ============  =========================================================
200    0             success (``msg`` "Success.")
400    13000101      unparseable input: body missing, not JSON, not an object
400    13000102      PARAMETER_INVALID: a header or body rule is broken
                     (X-User-Id, X-Date, X-Hw-Agentname, field rules, query);
                     also ``POST cancel`` of a job that is no longer pending
                     or processing, and a ``kdstoken`` that is not the share's
400    13000309      ``POST cancel`` of an unknown job (or another user's)
401    13000103      Authorization missing, without a scheme word, or an
                     unknown, expired or replaced token; a bad, unknown-app
                     or stale app signature; on the session routes an
                     unknown code, session or refresh token
404    13000305      unknown task id, or a task of another user; unknown path;
                     unknown job id (``GET {job_id}``) or share task
                     (``share/taskDetail``, also with another ``shareId``)
429    APIGW.0308    RATE_LIMIT fault
500    13000201      SERVER_ERROR / CREATED_BUT_500 faults (or an emulator bug)
502    (HTML page)   BAD_GATEWAY_HTML fault
503    APIGW.0503    UNAVAILABLE fault
=====  ============  =========================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ._faults import Fault, FaultKind
from ._rules import BAD_REQUEST, PARAMETER_INVALID

if TYPE_CHECKING:
    from ._core import EmulatorCore

__all__ = [
    "BAD_REQUEST",
    "INNER_INVOKE_FAILURE",
    "JOB_NOT_CANCELLABLE",
    "PARAMETER_INVALID",
    "RESOURCE_NOT_FOUND",
    "TASK_NOT_FOUND",
    "UNAUTHORIZED",
    "ApiError",
    "Rendered",
    "fault_refusal",
    "json_response",
    "ok",
    "quota_refusal",
    "render_cached",
]

UNAUTHORIZED = 13000103
TASK_NOT_FOUND = 13000305
INNER_INVOKE_FAILURE = 13000201
#: "Resource not found." (the carrier error table): cancel of an unknown job.
RESOURCE_NOT_FOUND = 13000309
#: The pages give no code for a cancel that comes too late: a rule of the request is broken.
JOB_NOT_CANCELLABLE = PARAMETER_INVALID

_BAD_GATEWAY_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>apig</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


class ApiError(Exception):
    """A refusal with an HTTP status and a business code.

    Args:
        status: HTTP status.
        code: Business code.
        msg: Message.
    """

    def __init__(self, status: int, code: int | str, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


class Rendered(dict[str, Any]):
    """A response payload that carries its own serialisation (``raw``).

    A payload answered many times unchanged (a polled task) is serialised once;
    it stays a dict so the ledger records it like any other payload.
    """

    __slots__ = ("raw",)

    raw: bytes


def ok(core: EmulatorCore, payload: dict[str, Any]) -> dict[str, Any]:
    """Complete a success payload with ``code`` and ``msg``, after its own fields.

    Args:
        core: The emulator (for the ``code`` type).
        payload: The endpoint's fields; completed in place.

    Returns:
        The same dict.
    """
    payload["code"] = core.ok_code
    payload["msg"] = "Success."
    return payload


def render_cached(
    core: EmulatorCore, task_id: str, key: tuple[Hashable, ...], build: Callable[[], dict[str, Any]]
) -> Rendered:
    """Return a detail answer serialised once per ``key`` (what it depends on).

    Job and share-task details are polled like ``task/{id}``; their answer only
    changes when the task's status, files or links do.

    Args:
        core: The emulator (its ``rendered_details`` cache and ``code`` type).
        task_id: The task the answer is about.
        key: Everything the answer depends on.
        build: Makes the endpoint's fields (``code``/``msg`` are added here).

    Returns:
        The payload, with its ``raw`` bytes.
    """
    cached = core.rendered_details.get(task_id)
    if cached is not None and cached[0] == key:
        return cached[1]
    payload = Rendered(build())
    ok(core, payload)
    payload.raw = json.dumps(payload, separators=(",", ":")).encode()
    core.rendered_details[task_id] = (key, payload)
    return payload


def json_response(
    status: int, payload: Any, request: web.Request, date: str, *, body: bytes | None = None
) -> web.Response:
    """Serialise a response, with the skewed ``Date`` and the echoed ``X-Traceid``.

    Args:
        status: HTTP status.
        payload: JSON-ready body (ignored when ``body`` is given).
        request: The request (for its trace id).
        date: The ``Date`` header (``EmulatorCore.date_header()``).
        body: Raw bytes to send instead of ``payload``.

    Returns:
        The response.
    """
    headers = {"Date": date}
    trace = request.headers.get("X-Traceid")
    if trace:
        headers["X-Traceid"] = trace
    if body is None:
        body = getattr(payload, "raw", None) or json.dumps(payload, separators=(",", ":")).encode()
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def fault_refusal(
    core: EmulatorCore, request: web.Request, fault: Fault, kind: FaultKind
) -> tuple[int, Any, web.Response]:
    """Answer for a fault that refuses the request before it is handled.

    Args:
        core: The emulator.
        request: The request.
        fault: The fault (for its ``retry_after``).
        kind: What to answer as: RATE_LIMIT, UNAVAILABLE, BAD_GATEWAY_HTML or
            anything else as SERVER_ERROR.

    Returns:
        (status, payload for the ledger or None, the response).
    """
    extra: dict[str, str] = {}
    if fault.retry_after is not None and kind in (FaultKind.RATE_LIMIT, FaultKind.UNAVAILABLE):
        value = float(fault.retry_after)
        extra["Retry-After"] = str(int(value)) if value.is_integer() else repr(value)
    if kind is FaultKind.BAD_GATEWAY_HTML:
        # The gateway's own page: no JSON, no trace id echoed.
        page = web.Response(status=502, body=_BAD_GATEWAY_PAGE, content_type="text/html")
        page.headers.update(extra)
        page.headers["Date"] = core.date_header()
        return 502, None, page
    status: int
    payload: dict[str, Any]
    if kind is FaultKind.RATE_LIMIT:
        status = 429
        payload = {"code": "APIGW.0308", "msg": "The throttling threshold has been reached"}
    elif kind is FaultKind.UNAVAILABLE:
        status, payload = 503, {"code": "APIGW.0503", "msg": "Service Unavailable"}
    else:
        status = 500
        payload = core.error_payload(INNER_INVOKE_FAILURE, "INNER_INVOKE_FAILURE")
    response = json_response(status, payload, request, core.date_header())
    response.headers.update(extra)
    return status, payload, response


def quota_refusal(
    core: EmulatorCore, request: web.Request, retry_after: str
) -> tuple[int, Any, web.Response]:
    """Answer 429 for a request the per-user quota throttles.

    Args:
        core: The emulator.
        request: The request.
        retry_after: The ``Retry-After`` value (``QuotaBook.take``).

    Returns:
        (429, payload for the ledger, the response).
    """
    payload = {"code": "APIGW.0308", "msg": "The throttling threshold has been reached"}
    response = json_response(429, payload, request, core.date_header())
    response.headers["Retry-After"] = retry_after
    return 429, payload, response
