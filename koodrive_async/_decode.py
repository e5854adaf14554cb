"""Decoding answers: a :class:`Response` becomes a model or a typed exception.

Three layers, each a pure function of the call and its final response:

* JSON loading (:func:`load_json`) that refuses an object naming a key twice
  (``json.loads`` would silently keep the last of two task ids);
* the success envelope (:func:`success_object`): a 2xx whose body is a JSON
  object with ``code`` 0 (or none);
* one decoder per endpoint (:func:`decode_create`, :func:`decode_task`,
  :func:`decode_task_page`), reading the fields with ``_codec``.

Every exception for an answer is built by THE one factory,
:func:`error_from_response`: an error status, a 200 with a non-zero
``code``, and a body that cannot be understood alike. Nothing here raises
anything but :class:`~koodrive_async.KooDriveError` subclasses.

Never imports aiohttp, the sender or the session: no I/O here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, tzinfo
from typing import Any, Final

from ._call import Call, Response
from ._codec import ResponseFieldError, parse_job, parse_share_task, parse_task
from ._exceptions import (
    APIError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
)
from ._models import Job, ShareTask, Task, TaskPage
from ._retry import parse_retry_after

__all__ = [
    "MAX_BODY_CHARS",
    "AmbiguousJSONError",
    "CursorTracker",
    "body_text",
    "cursor_cycle_message",
    "decode_cancel",
    "decode_create",
    "decode_job",
    "decode_job_list",
    "decode_share_task",
    "decode_task",
    "decode_task_page",
    "error_from_response",
    "load_json",
    "possibly_created",
    "success_object",
]

#: Longest response text kept on an exception.
MAX_BODY_CHARS: Final = 4096

# --------------------------------------------------------------------------- JSON


class AmbiguousJSONError(ValueError):
    """A JSON object of an answer names the same key twice (the message names it)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Comparing lengths is the cheapest check that still sees every object
    # (nested ones too), which matters on every poll.
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise AmbiguousJSONError(
                    f"the answer is ambiguous: a JSON object holds the key {key[:100]!r} twice"
                )
            seen.add(key)
    return data


# One decoder for every success body: json.loads(..., object_pairs_hook=...)
# would build a new one per call.
_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique_keys)
# Its scanner (the C one; typeshed does not declare the attribute): what
# decode() runs after its Python-level steps.
_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = _DECODER.scan_once  # type: ignore[attr-defined]


def load_json(body: bytes) -> Any:
    """Parse a body as ``json.loads`` does (UTF-8/16/32), refusing duplicate keys.

    Args:
        body: The raw body.

    Returns:
        The JSON value.

    Raises:
        AmbiguousJSONError: An object names a key twice.
        ValueError: Not JSON.
        RecursionError: Nested too deeply.
    """
    if body[:2] == b'{"':
        # Every answer of the API: a compact object, so UTF-8 (no BOM and no
        # NUL byte for json.detect_encoding to find) and nothing to skip before
        # it. The scanner alone then does what decode() would, minus a quarter
        # of a poll's JSON cost in Python-level steps; anything after the object
        # (whitespace, or the "Extra data" error) is left to decode().
        text = body.decode("utf-8", "surrogatepass")
        try:
            data, end = _SCAN(text, 0)
        except StopIteration:  # pragma: no cover - a '{' always starts a value
            pass
        else:
            if end == len(text):
                return data
    return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))


# --------------------------------------------------------------------------- errors


def _kept_body(call: Call, body: bytes) -> str:
    """The body text an error keeps: none of an answer that holds credentials."""
    return "" if call.secret_answer else body_text(body)


def body_text(body: bytes) -> str:
    """The start of a body as text, as an exception keeps it (4096 characters at most).

    Args:
        body: The raw body (or its first bytes).

    Returns:
        The text (invalid UTF-8 replaced).
    """
    return body[: MAX_BODY_CHARS * 4].decode("utf-8", "replace")[:MAX_BODY_CHARS]


def possibly_created(method: str, status: int) -> bool:
    """Whether an error answer to a create leaves the task possibly created.

    A 5xx other than 503 does not prove the server did nothing.

    Args:
        method: The HTTP method.
        status: The HTTP status.

    Returns:
        True when the task may exist.
    """
    return method == "POST" and status >= 500 and status != 503


_ERROR_BY_STATUS: Final[dict[int, type[APIError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


def _code_str(code: object) -> str | None:
    if code is None:
        return None
    return code if isinstance(code, str) else str(code)


def _problem_error(call: Call, response: Response, problem: str) -> ResponseValidationError:
    status = response.status
    return ResponseValidationError(
        problem,
        method=call.method,
        path=call.path,
        status_code=status,
        trace_id=response.trace_id,
        body=_kept_body(call, response.body),
        # The server answered: a create may have been carried out, unless
        # the status itself proves it was not.
        possibly_created=call.is_create
        and (200 <= status < 300 or possibly_created(call.method, status)),
    )


def _no_json_message(response: Response) -> str:
    if not response.body:
        return "empty body"
    content_type = response.headers.get("Content-Type", "").split(";")[0]
    return f"the body is not JSON ({content_type or 'no content type'})"


def error_from_response(
    call: Call, response: Response, *, problem: str | None = None
) -> APIError | ResponseValidationError:
    """THE exception for an answer that is not a usable success.

    With ``problem``: the answer could not be understood (a success body of
    the wrong shape, a body too long to read), giving
    :class:`ResponseValidationError`. Otherwise the service said no: the
    class is chosen by status (400, 401, 403, 404, 429, 5xx, else APIError,
    which is also what a 200 with a non-zero ``code`` gives); ``code`` and
    ``msg`` come from a JSON ``{code, msg}`` body when there is one, and the
    body text is kept either way (an HTML gateway page).

    Args:
        call: The call that was answered.
        response: Its final response.
        problem: What makes a body unusable, for ResponseValidationError.

    Returns:
        The exception (not raised).
    """
    if problem is not None:
        return _problem_error(call, response, problem)
    status, headers, body = response.status, response.headers, response.body
    message: str | None = None
    data: object = None
    if body:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            data = None
    code = msg = None
    if isinstance(data, dict):
        code = _code_str(data.get("code"))
        msg = None if data.get("msg") is None else str(data.get("msg"))
    else:
        message = _no_json_message(response)
    if 300 <= status < 400:
        # Redirects are never followed (the Authorization header must not travel).
        location = headers.get("Location")
        redirect = "unexpected redirect (not followed)" + (f" to {location}" if location else "")
        message = redirect if message is None else f"{redirect}; {message}"
    cls = _ERROR_BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    common: dict[str, Any] = {
        "status_code": status,
        "code": code,
        "msg": msg,
        "trace_id": response.trace_id,
        "body": _kept_body(call, body),
        "method": call.method,
        "path": call.path,
        # An idempotent call (a read, a cancel) creates nothing, whatever its status.
        "possibly_created": call.is_create and possibly_created(call.method, status),
    }
    if cls is RateLimitError:
        return RateLimitError(
            message, retry_after=parse_retry_after(headers.get("Retry-After")), **common
        )
    return cls(message, **common)


# --------------------------------------------------------------------------- the envelope


def _is_success(code: object) -> bool:
    if code is None or code.__class__ is int and code == 0:
        return True
    if isinstance(code, str):
        return code.strip() == "0"
    return not isinstance(code, bool) and isinstance(code, int | float) and code == 0


def success_object(call: Call, response: Response) -> dict[str, Any]:
    """The JSON object of a success answer.

    Args:
        call: The call.
        response: Its final response.

    Returns:
        The body's object.

    Raises:
        APIError: An error status, or a 200 with a non-zero ``code``.
        ResponseValidationError: The body is not one JSON object (or names a
            key twice).
    """
    if not 200 <= response.status < 300:
        raise error_from_response(call, response)
    body = response.body
    try:
        data = None
        if body[:2] == b'{"':
            # load_json's usual case, inline (this runs on every poll).
            text = body.decode("utf-8", "surrogatepass")
            try:
                data, end = _SCAN(text, 0)
            except StopIteration:  # pragma: no cover - a '{' always starts a value
                data, end = None, -1
            if end != len(text):
                data = None
        if data is None:
            data = load_json(body)
    except AmbiguousJSONError as exc:
        raise error_from_response(call, response, problem=str(exc)) from None
    except (ValueError, RecursionError):
        problem = "the body is empty" if not body else "invalid JSON"
        raise error_from_response(call, response, problem=problem) from None
    if data.__class__ is not dict:
        raise error_from_response(call, response, problem="the body is not a JSON object")
    code = data.get("code")
    # The usual code (the int 0, or none) is told without a call.
    if code.__class__ is int and code == 0 or code is None or _is_success(code):
        return data
    raise error_from_response(call, response)


# --------------------------------------------------------------------------- endpoints

_ID_FIELD: Final = {"create_task": "taskId", "create_share_task": "taskId", "create_job": "data"}


def decode_create(call: Call, response: Response) -> str:
    """The task id from a create response (``taskId``, or ``data`` for jobs).

    Args:
        call: The create call.
        response: Its final response.

    Returns:
        The task id.

    Raises:
        APIError: An error status, or a 200 with a non-zero code.
        ResponseValidationError: Not a JSON object, or no task id in it.
    """
    data = success_object(call, response)
    key = _ID_FIELD[call.route]
    value = data.get(key)
    if isinstance(value, dict):
        # Tolerate {"data": {"taskId": ...}}, a shape other job APIs use.
        value = value.get("taskId")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or value.isspace():
        # A blank id names no task: it could never be polled or reconciled,
        # yet the 200 says the service may have created one.
        raise error_from_response(call, response, problem=f"the response has no task id ({key})")
    return value


def decode_task(call: Call, response: Response) -> Task:
    """The Task from a ``GET task/{id}`` response.

    Args:
        call: The get call.
        response: Its final response.

    Returns:
        The task.

    Raises:
        APIError: An error status, or a 200 with a non-zero code.
        ResponseValidationError: Not a JSON object, no ``taskId``, or a field
            of an impossible shape.
    """
    data = success_object(call, response)
    if "taskId" not in data:
        nested = data.get("data")
        if isinstance(nested, dict):
            # Tolerate the task wrapped in "data", as the jobs endpoint wraps its id.
            data = nested
    try:
        return parse_task(data, response.trace_id)
    except ResponseFieldError as exc:
        raise error_from_response(call, response, problem=str(exc)) from None


def _cursor(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise ResponseFieldError(
        f"nextCursor must be a string or a number, got {type(value).__name__}", key="nextCursor"
    )


class CursorTracker:
    """The cursors one listing was handed, so that a cycle can end it.

    A service that hands back a cursor it gave before (``A -> B -> A ...``,
    or the very cursor it was sent) would keep a listing going forever. One
    str per page is all it takes to notice; pass one tracker per listing to
    :func:`decode_task_page` (``cursors=``), or call :meth:`add` yourself.
    """

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __len__(self) -> int:
        """How many distinct cursors the listing was handed so far."""
        return len(self._seen)

    def add(self, cursor: str) -> bool:
        """Record the ``nextCursor`` of a page.

        Args:
            cursor: The page's next cursor.

        Returns:
            False when the listing was handed this cursor before (a cycle).
        """
        if cursor in self._seen:
            return False
        self._seen.add(cursor)
        return True


#: Longest part of a cursor shown in an error message.
_MAX_CURSOR_CHARS: Final = 100


def cursor_cycle_message(cursor: str) -> str:
    """The message of the error that ends a listing whose cursor came back.

    Args:
        cursor: The cursor handed out a second time.

    Returns:
        The message, naming the cursor (cut to 100 characters).
    """
    shown = repr(cursor[:_MAX_CURSOR_CHARS]) + ("..." if len(cursor) > _MAX_CURSOR_CHARS else "")
    return (
        f"the listing handed back the cursor {shown}, which it had already given "
        "(a cursor cycle); stopping instead of looping forever"
    )


def _page_tasks(data: dict[str, Any], trace_id: str) -> list[Task]:
    items = data.get("taskList")
    if items is None:
        items = data.get("taskListDtos")
    if items is None:
        return []
    if not isinstance(items, list):
        raise ResponseFieldError("the task list is not an array", key="taskList")
    tasks = []
    for item in items:
        if not isinstance(item, dict):
            raise ResponseFieldError("a task list entry is not an object", key="taskList")
        tasks.append(parse_task(item, trace_id))
    return tasks


def decode_task_page(
    call: Call, response: Response, *, cursors: CursorTracker | None = None
) -> TaskPage:
    """The TaskPage from a ``GET task/list`` response.

    The list is read from ``taskList`` or ``taskListDtos`` (neither means an
    empty page); ``nextCursor`` may be a number or a string and is kept as a
    str, with missing, null and "" all meaning the end.

    Args:
        call: The list call.
        response: Its final response.
        cursors: The listing's tracker: a ``nextCursor`` it already holds
            ends the listing with ResponseValidationError (the page's tasks,
            a repeat of earlier ones, are not returned).

    Returns:
        The page.

    Raises:
        APIError: An error status, or a 200 with a non-zero code.
        ResponseValidationError: Not a JSON object, a list that is not an
            array of task objects, a task without ``taskId``, a bad cursor,
            a cursor ``cursors`` already holds.
    """
    data = success_object(call, response)
    try:
        tasks = _page_tasks(data, response.trace_id)
        next_cursor = _cursor(data.get("nextCursor"))
    except ResponseFieldError as exc:
        raise error_from_response(call, response, problem=str(exc)) from None
    if next_cursor is not None and cursors is not None and not cursors.add(next_cursor):
        raise error_from_response(call, response, problem=cursor_cycle_message(next_cursor))
    return TaskPage(tuple(tasks), next_cursor, trace_id=response.trace_id)


# --------------------------------------------------------------------------- jobs and share tasks


def _detail(data: dict[str, Any]) -> dict[str, Any]:
    """The object holding ``jobInfo``: the body itself, or its ``data`` (the job page)."""
    if "jobInfo" not in data and isinstance(data.get("data"), dict):
        return data["data"]  # type: ignore[no-any-return]
    return data


def _job_info(detail: dict[str, Any]) -> dict[str, Any]:
    info = detail.get("jobInfo")
    if info is None and "taskId" in detail:
        return detail  # the fields unwrapped
    if not isinstance(info, dict):
        raise ResponseFieldError("the answer has no jobInfo object", key="jobInfo")
    return info


def decode_job(call: Call, response: Response, *, tz: tzinfo = UTC) -> Job:
    """The Job from a ``GET /{job_id}`` (job detail) response.

    Args:
        call: The detail call.
        response: Its final response.
        tz: The zone of the 14-digit times (the session's ``service_time_zone``).

    Returns:
        The job, with its per-file results.

    Raises:
        APIError: An error status, or a 200 with a non-zero code.
        ResponseValidationError: Not a JSON object, no ``jobInfo``/``taskId``,
            or a field of an impossible shape.
    """
    detail = _detail(success_object(call, response))
    try:
        return parse_job(
            _job_info(detail),
            task_infos=detail.get("taskInfos"),
            uncompressed=detail.get("uncompressedFileList"),
            tz=tz,
        )
    except ResponseFieldError as exc:
        raise error_from_response(call, response, problem=str(exc)) from None


def decode_job_list(call: Call, response: Response, *, tz: tzinfo = UTC) -> list[Job]:
    """The jobs of a ``GET jobs`` response (``data``: an array of job objects).

    A missing or null ``data`` is an empty page.

    Args:
        call: The list call.
        response: Its final response.
        tz: The zone of the 14-digit times.

    Returns:
        The jobs, in the service's order.

    Raises:
        APIError: An error status, or a 200 with a non-zero code.
        ResponseValidationError: ``data`` is not an array of job objects.
    """
    data = success_object(call, response)
    items = data.get("data")
    if items is None:
        return []
    try:
        if not isinstance(items, list):
            raise ResponseFieldError("data is not an array of jobs", key="data")
        jobs = []
        for item in items:
            if not isinstance(item, dict):
                raise ResponseFieldError("a job list entry is not an object", key="data")
            jobs.append(parse_job(_job_info(item) if "jobInfo" in item else item, tz=tz))
        return jobs
    except ResponseFieldError as exc:
        raise error_from_response(call, response, problem=str(exc)) from None


def decode_cancel(call: Call, response: Response) -> None:
    """Check a ``POST cancel`` response (a bare ``{code, msg}`` on success).

    Args:
        call: The cancel call.
        response: Its final response.

    Raises:
        BadRequestError: The job cannot be cancelled (no such job, or it is
            no longer pending or processing).
        APIError: Any other refusal.
        ResponseValidationError: The body is not a JSON object.
    """
    success_object(call, response)


def decode_share_task(call: Call, response: Response, *, tz: tzinfo = UTC) -> ShareTask:
    """The ShareTask from a ``POST share/taskDetail`` response.

    ``taskInfos`` may be an array or a single object (the page types it as one).

    Args:
        call: The detail call.
        response: Its final response.
        tz: The zone of the 14-digit times.

    Returns:
        The share task, with its per-file results.

    Raises:
        APIError: An error status, or a 200 with a non-zero code.
        ResponseValidationError: Not a JSON object, no ``jobInfo``/``taskId``,
            or a field of an impossible shape.
    """
    detail = _detail(success_object(call, response))
    try:
        return parse_share_task(_job_info(detail), task_infos=detail.get("taskInfos"), tz=tz)
    except ResponseFieldError as exc:
        raise error_from_response(call, response, problem=str(exc)) from None
