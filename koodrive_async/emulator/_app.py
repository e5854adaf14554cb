"""The aiohttp application: the five API routes, their checks, faults, the ledger and admin routes.

Status codes and business codes the emulator answers with (``code`` is an int
or a str per ``ResponseVariant.code_as``):

=====  ============  =========================================================
HTTP   code          when
=====  ============  =========================================================
200    0             success (``msg`` "Success.")
400    13000101      unparseable input: body missing, not JSON, not an object
400    13000102      PARAMETER_INVALID: a header or body rule is broken
                     (X-User-Id, X-Date, X-Hw-Agentname, field rules, query)
401    13000103      Authorization missing, without a scheme word, or an
                     unknown token
404    13000305      unknown task id, or a task of another user; unknown path
429    APIGW.0308    RATE_LIMIT fault
500    13000201      SERVER_ERROR / CREATED_BUT_500 faults (or an emulator bug)
502    (HTML page)   BAD_GATEWAY_HTML fault
503    APIGW.0503    UNAVAILABLE fault
=====  ============  =========================================================
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

from aiohttp import web

from ._clock import EmulatorClock
from ._config import EmulatorConfig
from ._faults import Fault, FaultBook, FaultKind, make_fault
from ._ledger import LedgerEntry, redact_body, redact_headers
from ._rules import (
    BAD_REQUEST,
    MAX_PAGE_SIZE,
    PARAMETER_INVALID,
    Invalid,
    check_create_task,
    check_job,
    check_share_task,
    parse_x_date,
)
from ._state import EmulatorState

__all__ = ["CORE_KEY", "EmulatorCore", "create_app"]

logger = logging.getLogger("koodrive_async.emulator")

PREFIX = "/koodrive/ose/v1"

UNAUTHORIZED = 13000103
TASK_NOT_FOUND = 13000305
INNER_INVOKE_FAILURE = 13000201

#: How far in the past an X-Date may be (the pages: within 15 minutes).
X_DATE_MAX_AGE = 15 * 60.0

#: The task statuses of the pages: 0 NEW, 1 EXECUTING, 2 SUCCESS, 3 FAILED.
_TASK_STATUSES = frozenset({0, 1, 2, 3})

_AUTH = re.compile(r"(bearer|at)[ +]+(.*)", re.IGNORECASE | re.DOTALL)
_QUERY_INT = re.compile(r"[+-]?[0-9]{1,19}")

# Faults answered before the request is handled (nothing is created).
_PRE_FAULTS = frozenset(
    {
        FaultKind.RATE_LIMIT,
        FaultKind.SERVER_ERROR,
        FaultKind.UNAVAILABLE,
        FaultKind.BAD_GATEWAY_HTML,
        FaultKind.DROP,
    }
)

_BAD_GATEWAY_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>apig</center>\r\n"
    b"</body>\r\n</html>\r\n"
)

# task/list cursors pack (last listed creation counter, page number, "this page
# was empty") into one Long, so they are stateless and survive new tasks.
_PAGE_BITS = 20
_PAGE_MASK = (1 << _PAGE_BITS) - 1


def _encode_cursor(after_seq: int, page_no: int, empty: bool) -> int:
    return (after_seq << (_PAGE_BITS + 1)) | ((page_no & _PAGE_MASK) << 1) | int(empty)


def _decode_cursor(cursor: int) -> tuple[int, int, bool]:
    return cursor >> (_PAGE_BITS + 1), (cursor >> 1) & _PAGE_MASK, bool(cursor & 1)


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


def _retry_after(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class EmulatorCore:
    """Everything one emulator instance holds: config, clock, tasks, faults, ledger.

    Args:
        config: The configuration.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = EmulatorClock(config.clock_speed, offset=config.clock_skew)
        self.state = EmulatorState(config, self.clock)
        self.faults = FaultBook(config.seed)
        self.ledger: deque[LedgerEntry] = deque(maxlen=config.ledger_limit)
        #: Unexpected exceptions caught in handlers (each became a 500); should stay 0.
        self.internal_errors = 0
        self._closing: asyncio.Event | None = None
        self._date_cache: tuple[int, str] = (-1, "")
        self._x_date_cache: tuple[str, float] = ("", 0.0)
        self._rendered: dict[str, tuple[tuple[int, float | None, str | None], _Rendered]] = {}
        if config.response_variant.code_as == "str":
            self.code: Callable[[int | str], int | str] = str
        else:
            self.code = lambda c: c
        self.ok_code = self.code(0)

    # ---------------------------------------------------------------- controls

    def inject(self, kind: FaultKind | str, **kwargs: Any) -> Fault:
        """Register a fault (see ``KooDriveEmulator.inject``).

        Args:
            kind: The fault kind.
            **kwargs: route, method, count, rate, latency, retry_after.

        Returns:
            The fault.
        """
        return self.faults.add(make_fault(kind, **kwargs))

    def reset(self) -> None:
        """Forget tasks, ledger and faults; put the clock back to real time."""
        self.clock.reset()
        self.state.clear()
        self._rendered.clear()
        self.faults.clear()
        self.ledger.clear()

    def begin_close(self) -> None:
        """Wake handlers sleeping on a LATENCY fault, so shutdown does not wait for them."""
        self._closing_event().set()

    def reopen(self) -> None:
        """Forget a previous close, before the application is served again."""
        self._closing = None

    def _closing_event(self) -> asyncio.Event:
        if self._closing is None:
            self._closing = asyncio.Event()
        return self._closing

    # ----------------------------------------------------------------- helpers

    def server_now(self) -> float:
        """Return the server's wall clock (real UTC time plus ``clock_skew``).

        Returns:
            Epoch seconds.
        """
        return time.time() + self.config.clock_skew

    def date_header(self) -> str:
        """Return the ``Date`` response header for now (skewed), cached per second.

        Returns:
            An RFC 7231 date.
        """
        second = math.floor(self.server_now())
        cached = self._date_cache
        if cached[0] != second:
            cached = (second, formatdate(second, usegmt=True))
            self._date_cache = cached
        return cached[1]

    def error_payload(self, code: int | str, msg: str) -> dict[str, Any]:
        """Build a ``{code, msg}`` error body.

        Args:
            code: Business code.
            msg: Message.

        Returns:
            The body.
        """
        return {"code": self.code(code), "msg": msg}

    def authenticate(self, request: web.Request, *, agent_name: bool = False) -> str:
        """Run the header checks every API route shares.

        Args:
            request: The request.
            agent_name: Whether ``X-Hw-Agentname`` is mandatory (share/tasks).

        Returns:
            The ``X-User-Id``.

        Raises:
            ApiError: 401 for the token, 400 for the other headers.
        """
        headers = request.headers
        auth = headers.get("Authorization", "")
        match = _AUTH.fullmatch(auth.strip())
        if match is None:
            raise ApiError(
                401, UNAUTHORIZED, "Authorization is missing or not in the form Bearer+{token}"
            )
        token = match.group(2).strip()
        if not token or (self.config.tokens and token not in self.config.tokens):
            raise ApiError(401, UNAUTHORIZED, "invalid access token")
        user_id = headers.get("X-User-Id", "").strip()
        if not user_id:
            raise ApiError(400, PARAMETER_INVALID, "X-User-Id is mandatory")
        # Host is mandatory on the pages; aiohttp's parser already refuses an
        # HTTP/1.1 request without one, an empty one gets here.
        if not headers.get("Host", "").strip():
            raise ApiError(400, PARAMETER_INVALID, "Host is mandatory")
        x_date = headers.get("X-Date", "").strip()
        if not x_date:
            raise ApiError(400, PARAMETER_INVALID, "X-Date is mandatory")
        cached = self._x_date_cache
        if cached[0] == x_date:
            stamped = cached[1]
        else:
            try:
                stamped = parse_x_date(x_date)
            except Invalid as exc:
                raise ApiError(400, PARAMETER_INVALID, exc.msg) from None
            self._x_date_cache = (x_date, stamped)
        now = self.server_now()
        # Compare at X-Date's own one-second resolution, so a stamp exactly
        # 15 minutes old is still "within 15 minutes".
        if math.floor(now) - stamped > X_DATE_MAX_AGE:
            raise ApiError(400, PARAMETER_INVALID, "X-Date is more than 15 minutes old")
        # "Cannot be later than the current time", at X-Date's own resolution: the
        # current second is fine (a client stamping floored seconds always passes),
        # the next one is already later.
        if stamped > math.floor(now):
            raise ApiError(400, PARAMETER_INVALID, "X-Date is later than the current time")
        if agent_name and not headers.get("X-Hw-Agentname", "").strip():
            raise ApiError(400, PARAMETER_INVALID, "X-Hw-Agentname is mandatory")
        return user_id

    # ---------------------------------------------------------------- handlers
    # Each returns (status, payload, created task id); raising ApiError/Invalid
    # is a refusal.

    def _create(
        self,
        request: web.Request,
        body: Any,
        route: str,
        check: Callable[[dict[str, Any]], int],
        id_field: str,
        *,
        agent_name: bool = False,
    ) -> tuple[int, dict[str, Any], str | None]:
        user_id = self.authenticate(request, agent_name=agent_name)
        if body is _NO_BODY:
            raise Invalid("request body is missing", BAD_REQUEST)
        if body is _NOT_JSON:
            raise Invalid("request body is not valid JSON", BAD_REQUEST)
        if not isinstance(body, dict):
            raise Invalid("request body must be a JSON object", BAD_REQUEST)
        task_type = check(body)
        task = self.state.create(
            user_id=user_id,
            route=route,
            task_type=task_type,
            body=redact_body(body),
            locale=request.headers.get("language", "").strip() or "en-US",
        )
        return 200, {id_field: task.task_id, "code": self.ok_code, "msg": "Success."}, task.task_id

    def create_task(self, request: web.Request, body: Any) -> tuple[int, Any, str | None]:
        """Handle ``POST task/create``.

        Args:
            request: The request.
            body: The parsed body (or a marker for none / not JSON).

        Returns:
            (HTTP status, JSON payload, id of the task created or None).

        Raises:
            ApiError: A header check failed (401/400) or the task is unknown (404).
            Invalid: A body or query rule is broken (400).
        """
        return self._create(request, body, "create_task", check_create_task, "taskId")

    def create_share_task(self, request: web.Request, body: Any) -> tuple[int, Any, str | None]:
        """Handle ``POST share/tasks`` (``X-Hw-Agentname`` mandatory).

        Args:
            request: The request.
            body: The parsed body (or a marker for none / not JSON).

        Returns:
            (HTTP status, JSON payload, id of the task created or None).

        Raises:
            ApiError: A header check failed (401/400) or the task is unknown (404).
            Invalid: A body or query rule is broken (400).
        """
        return self._create(
            request, body, "create_share_task", check_share_task, "taskId", agent_name=True
        )

    def create_job(self, request: web.Request, body: Any) -> tuple[int, Any, str | None]:
        """Handle ``POST jobs``.

        Args:
            request: The request.
            body: The parsed body (or a marker for none / not JSON).

        Returns:
            (HTTP status, JSON payload, id of the task created or None).

        Raises:
            ApiError: A header check failed (401/400) or the task is unknown (404).
            Invalid: A body or query rule is broken (400).
        """
        return self._create(request, body, "create_job", check_job, "data")

    def get_task(self, request: web.Request, _body: Any) -> tuple[int, Any, str | None]:
        """Handle ``GET task/{task_id}``: the task as of the virtual clock, if the user owns it.

        Args:
            request: The request.
            _body: The parsed body (or a marker for none / not JSON).

        Returns:
            (HTTP status, JSON payload, id of the task created or None).

        Raises:
            ApiError: A header check failed (401/400) or the task is unknown (404).
            Invalid: A body or query rule is broken (400).
        """
        user_id = self.authenticate(request)
        task = self.state.get(request.match_info["task_id"])
        if task is None or task.user_id != user_id:
            raise ApiError(404, TASK_NOT_FOUND, "task does not exist")
        now = self.clock.now()
        # The hot path of every poller: a task's answer only changes with its
        # status (or a forced finish), so it is rendered once per change.
        key = (task.status_at(now), task.forced_at, task.result_code)
        cached = self._rendered.get(task.task_id)
        if cached is not None and cached[0] == key:
            return 200, cached[1], None
        payload = _Rendered(task.to_json(now))
        payload["code"] = self.ok_code
        payload["msg"] = "Success."
        payload.raw = json.dumps(payload, separators=(",", ":")).encode()
        self._rendered[task.task_id] = (key, payload)
        return 200, payload, None

    @staticmethod
    def _query_int(values: list[str], name: str) -> int | None:
        # A repeated scalar parameter: the first non-empty value counts. An empty
        # value is absent (the page's own example sends a bare "pageCursor").
        for value in values:
            value = value.strip()
            if value:
                if _QUERY_INT.fullmatch(value) is None:
                    raise Invalid(f"{name} must be an integer")
                return int(value)
        return None

    def list_tasks(self, request: web.Request, _body: Any) -> tuple[int, Any, str | None]:
        """Handle ``GET task/list``: filters, pageSize 1..100 and stateless cursors.

        Args:
            request: The request.
            _body: The parsed body (or a marker for none / not JSON).

        Returns:
            (HTTP status, JSON payload, id of the task created or None).

        Raises:
            ApiError: A header check failed (401/400) or the task is unknown (404).
            Invalid: A body or query rule is broken (400).
        """
        user_id = self.authenticate(request)
        query = request.query
        task_type = self._query_int(query.getall("taskType", []), "taskType")
        # Listed tasks carry the type they were created with (0..7 across the
        # three create endpoints); a negative one cannot match anything.
        if task_type is not None and task_type < 0:
            raise Invalid("taskType must not be negative")
        statuses: set[int] | None = None
        for value in query.getall("status", []):
            for part in value.split(","):
                part = part.strip()
                if not part:
                    continue
                if _QUERY_INT.fullmatch(part) is None:
                    raise Invalid("status must be integers (status=1&status=2 or status=1,2)")
                if int(part) not in _TASK_STATUSES:
                    raise Invalid(
                        "status must be 0 (NEW), 1 (EXECUTING), 2 (SUCCESS) or 3 (FAILED)"
                    )
                statuses = statuses or set()
                statuses.add(int(part))
        page_size = self._query_int(query.getall("pageSize", []), "pageSize")
        if page_size is None:
            page_size = MAX_PAGE_SIZE
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise Invalid(f"pageSize must be within 1..{MAX_PAGE_SIZE}")
        cursor = self._query_int(query.getall("pageCursor", []), "pageCursor")
        if cursor is not None and cursor < 0:
            raise Invalid("pageCursor is not a valid cursor")
        after_seq, page_no, was_empty = _decode_cursor(cursor or 0)
        page_no += 1

        limit = min(page_size, self.config.page_size_cap)
        if self.config.partial_pages:
            limit = max(1, (limit + 1) // 2)
        now = self.clock.now()
        matched = []
        # One more than the page holds tells whether another page follows.
        for task in self.state.tasks_after(user_id, after_seq):
            if task_type is not None and task.task_type != task_type:
                continue
            if statuses is not None and task.status_at(now) not in statuses:
                continue
            matched.append(task)
            if len(matched) > limit:
                break

        every = self.config.empty_page_every
        next_cursor: int | None
        if matched and every and page_no % every == 0 and not was_empty:
            # An empty page before the end, as the page warns the service may send.
            page: list[Any] = []
            next_cursor = _encode_cursor(after_seq, page_no, True)
        else:
            page = matched[:limit]
            more = len(matched) > limit
            next_cursor = _encode_cursor(page[-1].seq, page_no, False) if more else None
        payload: dict[str, Any] = {
            self.config.response_variant.list_key: [t.to_json(now) for t in page]
        }
        if next_cursor is not None:
            payload["nextCursor"] = (
                str(next_cursor) if self.config.response_variant.cursor_as == "str" else next_cursor
            )
        payload["code"] = self.ok_code
        payload["msg"] = "Success."
        return 200, payload, None

    # ------------------------------------------------------------------ wiring

    def json_response(
        self, status: int, payload: Any, request: web.Request, *, body: bytes | None = None
    ) -> web.Response:
        """Serialise a response, with the skewed ``Date`` and the echoed ``X-Traceid``.

        Args:
            status: HTTP status.
            payload: JSON-ready body (ignored when ``body`` is given).
            request: The request (for its trace id).
            body: Raw bytes to send instead of ``payload``.

        Returns:
            The response.
        """
        headers = {"Date": self.date_header()}
        trace = request.headers.get("X-Traceid")
        if trace:
            headers["X-Traceid"] = trace
        if body is None:
            body = (
                getattr(payload, "raw", None) or json.dumps(payload, separators=(",", ":")).encode()
            )
        return web.Response(
            status=status, body=body, content_type="application/json", headers=headers
        )

    def api_handler(
        self, route: str | None, fn: Callable[[web.Request, Any], tuple[int, Any, str | None]]
    ) -> Callable[[web.Request], Any]:
        """Wrap an endpoint function with faults, error mapping and the ledger.

        Args:
            route: Route name (None for unknown paths).
            fn: The endpoint function.

        Returns:
            An aiohttp handler.
        """

        async def handler(request: web.Request) -> web.StreamResponse:
            arrival = time.monotonic()
            method = request.method
            applied: FaultKind | None = None
            body: Any = _NO_BODY
            status: int | None = 500
            payload: Any = None
            raw_out: bytes | None = None
            task_id: str | None = None
            extra: dict[str, str] = {}
            response: web.StreamResponse | None = None
            try:
                delay, fault = (0.0, None) if route is None else self.faults.select(route, method)
                if fault is not None:
                    applied = fault.kind
                elif delay:
                    applied = FaultKind.LATENCY
                if delay:
                    try:
                        await asyncio.wait_for(self._closing_event().wait(), delay)
                    except TimeoutError:
                        pass
                if request.body_exists:
                    body = _parse_body(await request.read())
                kind = None if fault is None else fault.kind
                if (
                    kind in (FaultKind.CREATED_BUT_500, FaultKind.CREATED_BUT_504)
                    and method == "GET"
                ):
                    kind = FaultKind.SERVER_ERROR
                if kind in _PRE_FAULTS:
                    assert fault is not None
                    status, payload, raw_out, extra = self._pre_fault(fault)
                    if kind is FaultKind.DROP:
                        status = None
                        transport = request.transport
                        if transport is not None:
                            transport.abort()
                        response = web.Response()
                else:
                    try:
                        status, payload, task_id = fn(request, body)
                    except Invalid as exc:
                        status, payload = 400, self.error_payload(exc.code, exc.msg)
                    except ApiError as exc:
                        status, payload = exc.status, self.error_payload(exc.code, exc.msg)
                    if kind is FaultKind.CREATED_BUT_500:
                        status = 500
                        payload = self.error_payload(INNER_INVOKE_FAILURE, "INNER_INVOKE_FAILURE")
                    elif kind is FaultKind.CREATED_BUT_504 and task_id is not None:
                        status, payload = 504, {"code": "APIGW.0504", "msg": "Gateway Timeout"}
                    elif kind is FaultKind.MALFORMED_JSON:
                        full = json.dumps(payload, separators=(",", ":")).encode()
                        raw_out = full[: max(1, len(full) // 2)]
                        payload = None
            except web.HTTPException as exc:
                # e.g. a body over client_max_size: keep the status, answer JSON.
                status = exc.status
                payload = self.error_payload(BAD_REQUEST, exc.reason)
            except asyncio.CancelledError:
                status, payload = None, None
                self._record(arrival, request, route, body, None, None, task_id, applied)
                raise
            except ConnectionResetError:
                # The client hung up before its body was read (say it timed out
                # during a LATENCY fault): nothing was handled, nobody is listening.
                self._record(arrival, request, route, body, None, None, task_id, applied)
                return web.Response()
            except Exception:
                # Never let a bug look like the service: count it, log it, answer 500.
                self.internal_errors += 1
                logger.exception("emulator bug while handling %s %s", method, request.path)
                status, payload, raw_out = 500, None, None
                payload = self.error_payload(INNER_INVOKE_FAILURE, "emulator internal error")
            self._record(arrival, request, route, body, status, payload, task_id, applied)
            if response is not None:
                return response
            assert status is not None
            if raw_out is not None and payload is None and applied is FaultKind.BAD_GATEWAY_HTML:
                resp = web.Response(
                    status=status, body=raw_out, content_type="text/html", headers=extra
                )
                resp.headers["Date"] = self.date_header()
                return resp
            resp = self.json_response(status, payload, request, body=raw_out)
            resp.headers.update(extra)
            return resp

        return handler

    def _pre_fault(self, fault: Fault) -> tuple[int, Any, bytes | None, dict[str, str]]:
        extra: dict[str, str] = {}
        if fault.retry_after is not None and fault.kind in (
            FaultKind.RATE_LIMIT,
            FaultKind.UNAVAILABLE,
        ):
            extra["Retry-After"] = _retry_after(fault.retry_after)
        if fault.kind is FaultKind.RATE_LIMIT:
            return (
                429,
                {"code": "APIGW.0308", "msg": "The throttling threshold has been reached"},
                None,
                extra,
            )
        if fault.kind is FaultKind.UNAVAILABLE:
            return 503, {"code": "APIGW.0503", "msg": "Service Unavailable"}, None, extra
        if fault.kind is FaultKind.BAD_GATEWAY_HTML:
            return 502, None, _BAD_GATEWAY_PAGE, extra
        if fault.kind is FaultKind.DROP:
            return 0, None, None, extra
        return 500, self.error_payload(INNER_INVOKE_FAILURE, "INNER_INVOKE_FAILURE"), None, extra

    def _record(
        self,
        arrival: float,
        request: web.Request,
        route: str | None,
        body: Any,
        status: int | None,
        payload: Any,
        task_id: str | None,
        fault: FaultKind | None,
    ) -> None:
        try:
            entry = self._entry(arrival, request, route, body, status, payload, task_id, fault)
        except Exception:
            # The ledger must never cost the client its answer; keep what is safe.
            self.internal_errors += 1
            logger.exception("emulator bug while recording %s %s", request.method, request.path)
            entry = self._entry(arrival, request, route, _NO_BODY, status, None, task_id, fault)
        self.ledger.append(entry)

    def _entry(
        self,
        arrival: float,
        request: web.Request,
        route: str | None,
        body: Any,
        status: int | None,
        payload: Any,
        task_id: str | None,
        fault: FaultKind | None,
    ) -> LedgerEntry:
        return LedgerEntry(
            time=arrival,
            method=request.method,
            path=request.path,
            route=route,
            query=tuple(request.query.items()),
            headers=redact_headers(request.headers),
            body=None if body is _NO_BODY or body is _NOT_JSON else redact_body(body),
            status=status,
            response=payload,
            task_id=task_id,
            fault=fault,
        )

    def not_found(self, request: web.Request, _body: Any) -> tuple[int, Any, str | None]:
        """Answer 404 with a JSON body for any path that is no API route.

        Args:
            request: The request.
            _body: The parsed body (or a marker for none / not JSON).

        Returns:
            (HTTP status, JSON payload, id of the task created or None).

        Raises:
            ApiError: A header check failed (401/400) or the task is unknown (404).
            Invalid: A body or query rule is broken (400).
        """
        return 404, self.error_payload(TASK_NOT_FOUND, f"no such API: {request.path}"), None


class _Rendered(dict[str, Any]):
    """A response payload that carries its own serialisation (``raw``)."""

    __slots__ = ("raw",)

    raw: bytes


class _Marker:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


_NO_BODY: Any = _Marker("<no body>")
_NOT_JSON: Any = _Marker("<not JSON>")


def _parse_body(raw: bytes) -> Any:
    if not raw.strip():
        return _NO_BODY
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and bytes that are not UTF-8/16/32.
        return _NOT_JSON


# ----------------------------------------------------------------- admin routes


def _admin_routes(core: EmulatorCore) -> list[web.RouteDef]:
    async def get_requests(_request: web.Request) -> web.Response:
        return web.json_response([e.to_json() for e in core.ledger])

    async def delete_requests(_request: web.Request) -> web.Response:
        count = len(core.ledger)
        core.ledger.clear()
        return web.json_response({"cleared": count})

    async def get_tasks(_request: web.Request) -> web.Response:
        now = core.clock.now()
        out = []
        for task in core.state.tasks():
            item = task.to_json(now)
            item.update(route=task.route, willFail=task.will_fail, duration=task.duration)
            out.append(item)
        return web.json_response(out)

    async def _json_object(request: web.Request) -> dict[str, Any]:
        body = _parse_body(await request.read())
        if body is _NO_BODY:
            return {}
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "body must be a JSON object"}),
                content_type="application/json",
            )
        return body

    def _bad(msg: str) -> web.Response:
        return web.json_response({"error": msg}, status=400)

    async def post_fault(request: web.Request) -> web.Response:
        body = await _json_object(request)
        allowed = {"kind", "route", "method", "count", "rate", "latency", "retry_after"}
        unknown = set(body) - allowed
        if unknown:
            return _bad(f"unknown fields: {sorted(unknown)}")
        if "kind" not in body:
            return _bad("kind is mandatory")
        kwargs = {k: v for k, v in body.items() if k != "kind"}
        try:
            fault = core.inject(body["kind"], **kwargs)
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        return web.json_response(fault.to_json(), status=201)

    async def get_faults(_request: web.Request) -> web.Response:
        return web.json_response([f.to_json() for f in core.faults.faults])

    async def delete_faults(_request: web.Request) -> web.Response:
        core.faults.clear()
        return web.json_response({"cleared": True})

    async def post_clock(request: web.Request) -> web.Response:
        body = await _json_object(request)
        try:
            if "speed" in body:
                core.clock.speed = body["speed"]
            if "advance" in body:
                core.clock.advance(body["advance"])
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        return web.json_response({"now": core.clock.now(), "speed": core.clock.speed})

    async def post_finish(request: web.Request) -> web.Response:
        body = await _json_object(request)
        failed = body.get("failed", False)
        code = body.get("result_code")
        if not isinstance(failed, bool) or not (code is None or isinstance(code, str)):
            return _bad("failed must be a bool and result_code a string")
        try:
            task = core.state.finish(request.match_info["task_id"], failed, code)
        except KeyError:
            return web.json_response({"error": "no such task"}, status=404)
        return web.json_response(task.to_json(core.clock.now()))

    async def post_reset(_request: web.Request) -> web.Response:
        core.reset()
        return web.json_response({"reset": True})

    async def get_openapi(_request: web.Request) -> web.Response:
        # The OpenAPI 3 document of the five endpoints, shipped beside this module.
        text = _OPENAPI_PATH.read_text(encoding="utf-8")
        return web.Response(text=text, content_type="application/json")

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "tasks": len(core.state)})

    return [
        web.get("/_emulator/requests", get_requests),
        web.delete("/_emulator/requests", delete_requests),
        web.get("/_emulator/tasks", get_tasks),
        web.post("/_emulator/tasks/{task_id}/finish", post_finish),
        web.get("/_emulator/faults", get_faults),
        web.post("/_emulator/faults", post_fault),
        web.delete("/_emulator/faults", delete_faults),
        web.post("/_emulator/clock", post_clock),
        web.post("/_emulator/reset", post_reset),
        web.get("/_emulator/health", health),
        web.get("/_emulator/openapi.json", get_openapi),
    ]


#: The OpenAPI document served at ``GET /_emulator/openapi.json``.
_OPENAPI_PATH = Path(__file__).with_name("openapi.json")

#: Where :func:`create_app` keeps the :class:`EmulatorCore` of an application.
CORE_KEY = web.AppKey("koodrive_emulator_core", EmulatorCore)


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    """Build the emulator as an ``aiohttp.web.Application``, for embedding.

    The application's :class:`EmulatorCore` (clock, state, faults, ledger) is
    ``app[CORE_KEY]``.

    Args:
        config: The configuration (default ``EmulatorConfig()``).

    Returns:
        The application, not yet started.
    """
    core = EmulatorCore(config or EmulatorConfig())
    # Share and job bodies with 1000 file ids are well under this.
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[CORE_KEY] = core
    api = core.api_handler
    app.add_routes(
        [
            web.post(f"{PREFIX}/task/create", api("create_task", core.create_task)),
            web.post(f"{PREFIX}/share/tasks", api("create_share_task", core.create_share_task)),
            web.post(f"{PREFIX}/jobs", api("create_job", core.create_job)),
            # list before {task_id}: routes match in registration order.
            web.get(f"{PREFIX}/task/list", api("list_tasks", core.list_tasks), allow_head=False),
            web.get(f"{PREFIX}/task/{{task_id}}", api("get_task", core.get_task), allow_head=False),
        ]
    )
    app.add_routes(_admin_routes(core))
    app.router.add_route("*", "/{tail:.*}", api(None, core.not_found))
    return app
