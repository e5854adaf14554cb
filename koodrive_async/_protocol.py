"""The wire format of the five endpoints, as pure functions (no I/O).

Building: a request model (or the arguments of a listing) becomes a
:class:`Call` - method, encoded path and query, the endpoint's own headers and
the JSON body bytes. The session adds the per-session and per-attempt headers
(:func:`session_headers`, :func:`format_x_date`, :func:`new_trace_id`).

Decoding: ``(status, headers, body bytes)`` becomes a model or a typed
exception (:func:`decode_create`, :func:`decode_task`, :func:`decode_task_page`,
:func:`api_error`). Nothing here raises anything but
:class:`~koodrive_async.KooDriveError` subclasses.

Reading plans: :func:`request_from_body` is the exact inverse of
:func:`build_body` (plus ``shareFolderId`` for jobs, see :func:`plan_body`), so
the pages' own JSON bodies can describe requests in files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, TypeVar
from urllib.parse import quote

from ._call import Call, new_trace_id
from ._clock import format_x_date
from ._converter import ResponseFieldError, converter, json_name, structure_task
from ._exceptions import (
    APIError,
    AuthenticationError,
    BadRequestError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
)
from ._models import (
    FileInfo,
    FileRef,
    ImportTaskRequest,
    JobAction,
    JobRequest,
    JobType,
    Request,
    ShareTaskRequest,
    ShareTaskType,
    Task,
    TaskPage,
    TaskStatus,
    TaskType,
    TransferTaskRequest,
)
from ._retry import parse_retry_after

__all__ = [
    "API_PREFIX",
    "MAX_PAGE_SIZE",
    "Call",
    "CursorTracker",
    "api_error",
    "build_body",
    "check_header_value",
    "cursor_cycle_message",
    "decode_create",
    "decode_task",
    "decode_task_page",
    "format_x_date",
    "new_trace_id",
    "parse_retry_after",
    "plan_body",
    "prepare_create",
    "prepare_get_task",
    "prepare_list_tasks",
    "request_from_body",
    "request_kind",
    "session_headers",
    "status_filter",
]

API_PREFIX: Final = "/koodrive/ose/v1"
PATH_TASK_CREATE: Final = API_PREFIX + "/task/create"
PATH_SHARE_TASKS: Final = API_PREFIX + "/share/tasks"
PATH_JOBS: Final = API_PREFIX + "/jobs"
PATH_TASK_LIST: Final = API_PREFIX + "/task/list"
_PATH_TASK: Final = API_PREFIX + "/task/"

#: Largest (and default) pageSize of task/list.
MAX_PAGE_SIZE: Final = 100
#: Longest response text kept on an exception.
MAX_BODY_CHARS: Final = 4096
_JSON_HEADERS: Final = {"Content-Type": "application/json"}

# --------------------------------------------------------------------------- calls


def check_header_value(value: str, field: str) -> None:
    """Refuse a header value that could break out of its header line.

    Args:
        value: The value to send.
        field: The argument it came from (named in the error).

    Raises:
        InvalidRequestError: The value holds a control character (CR, LF, NUL,
            ...) or a lone surrogate.
    """
    if _FORBIDDEN_HEADER_CHARS.search(value):
        raise InvalidRequestError(
            f"{field} must not contain control characters (line breaks, NUL, ...)", field=field
        )
    _check_unicode(value, field)


# RFC 9110 section 5.5: no control characters but horizontal tab in a field value.
_FORBIDDEN_HEADER_CHARS: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def session_headers(*, user_id: str, language: str) -> dict[str, str]:
    """The headers every call of one session sends (Authorization aside).

    Args:
        user_id: The X-User-Id.
        language: The language code (``en-US``).

    Returns:
        A new dict.
    """
    return {"X-User-Id": user_id, "language": language}


# --------------------------------------------------------------------------- bodies


def request_kind(request: object) -> str:
    """The plan kind of a request model: ``transfer``, ``import``, ``share`` or ``job``.

    Args:
        request: A request model.

    Returns:
        The kind.

    Raises:
        InvalidRequestError: It is not one of the four request models.
    """
    kind = _KIND_OF.get(type(request))
    if kind is None:
        raise InvalidRequestError(
            "request must be a TransferTaskRequest, ImportTaskRequest, ShareTaskRequest or "
            f"JobRequest, got {type(request).__name__}",
            field="request",
        )
    return kind


_KIND_OF: Final[dict[type, str]] = {
    TransferTaskRequest: "transfer",
    ImportTaskRequest: "import",
    ShareTaskRequest: "share",
    JobRequest: "job",
}

_TASK_INFO_FIELDS: Final = ("src_container_id", "new_file_path", "files", "uncompress_file_paths")


def build_body(request: Request) -> dict[str, Any]:
    """The JSON body the endpoint page specifies for a request.

    Fields that are None are left out; task/create carries its ``taskType``
    (0 transfer, 1 import) explicitly; a job nests ``srcContainerId``,
    ``newFilePath``, ``fileInfo`` and ``uncompressFilePaths`` in ``taskInfo``
    and sends its share folder as a header, not in the body.

    Args:
        request: One of the four request models.

    Returns:
        A new dict, ready for ``json.dumps``.

    Raises:
        InvalidRequestError: ``request`` is not a request model.
    """
    kind = request_kind(request)
    flat: dict[str, Any] = converter.unstructure(request)
    if kind == "transfer":
        return {"taskType": int(TaskType.TRANSFER), **flat}
    if kind == "import":
        return {"taskType": int(TaskType.BATCH_IMPORT), **flat}
    if kind == "share":
        return flat
    flat.pop(json_name(JobRequest, "share_folder_id"), None)
    task_info = {
        key: flat.pop(key)
        for key in (json_name(JobRequest, name) for name in _TASK_INFO_FIELDS)
        if key in flat
    }
    body: dict[str, Any] = {}
    for key, value in flat.items():
        body[key] = value
        if key == "dstContainerId":
            body["taskInfo"] = task_info
    return body


def plan_body(request: Request) -> dict[str, Any]:
    """The body of a request as a plan file holds it (inverse of :func:`request_from_body`).

    It is :func:`build_body` plus, for a job with a share folder, a top-level
    ``shareFolderId`` (sent as the ``x-hw-share-folder-id`` header).

    Args:
        request: One of the four request models.

    Returns:
        A new dict.
    """
    body = build_body(request)
    if isinstance(request, JobRequest) and request.share_folder_id is not None:
        body[json_name(JobRequest, "share_folder_id")] = request.share_folder_id
    return body


# ---- the inverse: request_from_body


class _Fields:
    """Reads the fields of one JSON object, remembering which were used."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, Mapping):
            raise InvalidRequestError(
                f"{where or 'the body'} must be a JSON object, got {type(data).__name__}",
                field=where or "body",
            )
        self.data: Mapping[Any, Any] = data
        self.where = where
        self.used: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _get(self, key: str, required: bool) -> Any:
        self.used.add(key)
        value = self.data.get(key)
        if value is None and required:
            raise InvalidRequestError(f"{self._name(key)} is required", field=self._name(key))
        return value

    def opt_text(self, key: str) -> str | None:
        value = self._get(key, False)
        if value is not None and not isinstance(value, str):
            raise InvalidRequestError(
                f"{self._name(key)} must be a string, got {type(value).__name__}",
                field=self._name(key),
            )
        return value

    def text(self, key: str) -> str:
        self._get(key, True)
        value = self.opt_text(key)
        assert value is not None
        return value

    def opt_integer(self, key: str) -> int | None:
        value = self._get(key, False)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidRequestError(
                f"{self._name(key)} must be an integer, got {type(value).__name__}",
                field=self._name(key),
            )
        return value

    def integer(self, key: str) -> int:
        self._get(key, True)
        value = self.opt_integer(key)
        assert value is not None
        return value

    def array(self, key: str, *, required: bool = True) -> list[Any] | None:
        value = self._get(key, required)
        if value is not None and not isinstance(value, list | tuple):
            raise InvalidRequestError(
                f"{self._name(key)} must be an array, got {type(value).__name__}",
                field=self._name(key),
            )
        return None if value is None else list(value)

    def opt_texts(self, key: str) -> list[str] | None:
        values = self.array(key, required=False)
        if values is not None:
            for i, item in enumerate(values):
                if not isinstance(item, str):
                    name = f"{self._name(key)}[{i}]"
                    raise InvalidRequestError(
                        f"{name} must be a string, got {type(item).__name__}", field=name
                    )
        return values

    def texts(self, key: str) -> list[str]:
        self._get(key, True)
        values = self.opt_texts(key)
        assert values is not None
        return values

    def obj(self, key: str, *, required: bool = True) -> _Fields | None:
        value = self._get(key, required)
        return None if value is None else _Fields(value, self._name(key))

    def done(self) -> None:
        for key in self.data:
            if key not in self.used:
                name = self._name(str(key))
                raise InvalidRequestError(f"unknown field {name}", field=name)


_E = TypeVar("_E", ShareTaskType, JobType, JobAction)


def _opt_member(enum_cls: type[_E], fields: _Fields, key: str) -> _E | None:
    value = fields.opt_integer(key)
    if value is None:
        return None
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(f"{m.value} ({m.name})" for m in enum_cls)
        raise InvalidRequestError(
            f"{fields._name(key)} must be one of {allowed}; got {value!r}",
            field=fields._name(key),
        ) from None


def _member(enum_cls: type[_E], fields: _Fields, key: str) -> _E:
    fields.integer(key)
    value = _opt_member(enum_cls, fields, key)
    assert value is not None
    return value


def _fixed_task_type(fields: _Fields, expected: TaskType) -> None:
    value = fields.opt_integer("taskType")
    if value is not None and value != expected:
        raise InvalidRequestError(
            f"taskType must be {int(expected)} for this kind of request, got {value}",
            field="taskType",
        )


def _request_from_fields(kind: str, f: _Fields) -> Request:
    # Every field is read (shape and type checked) and every object checked for
    # unknown keys before any model is built, so the error names the first
    # structural problem rather than a rule it happens to break.
    name = json_name  # every key below comes from the converter's names
    if kind == "transfer":
        _fixed_task_type(f, TaskType.TRANSFER)
        src = f.text(name(TransferTaskRequest, "src_user_id"))
        dst = f.text(name(TransferTaskRequest, "dst_user_id"))
        f.done()
        return TransferTaskRequest(src_user_id=src, dst_user_id=dst)
    if kind == "import":
        _fixed_task_type(f, TaskType.BATCH_IMPORT)
        org_id = f.text(name(ImportTaskRequest, "org_id"))
        org_user_id = f.text(name(ImportTaskRequest, "org_user_id"))
        result_id = f.opt_text(name(ImportTaskRequest, "result_id"))
        f.done()
        return ImportTaskRequest(org_id=org_id, org_user_id=org_user_id, result_id=result_id)
    if kind == "share":
        target_fields = f.obj(name(ShareTaskRequest, "target"), required=False)
        target_args: tuple[str, str] | None = None
        if target_fields is not None:
            target_args = (
                target_fields.text(name(FileRef, "file_id")),
                target_fields.text(name(FileRef, "container_id")),
            )
            target_fields.done()
        share_type = _member(ShareTaskType, f, name(ShareTaskRequest, "task_type"))
        container_id = f.text(name(ShareTaskRequest, "container_id"))
        file_ids = f.texts(name(ShareTaskRequest, "file_ids"))
        share_id = f.text(name(ShareTaskRequest, "share_id"))
        kdstoken = f.opt_text(name(ShareTaskRequest, "kdstoken"))
        zip_name = f.opt_text(name(ShareTaskRequest, "zip_name"))
        f.done()
        return ShareTaskRequest(
            task_type=share_type,
            container_id=container_id,
            file_ids=file_ids,
            share_id=share_id,
            kdstoken=kdstoken,
            target=None if target_args is None else FileRef(*target_args),
            zip_name=zip_name,
        )
    info = f.obj("taskInfo")
    assert info is not None  # required=True
    file_args: list[tuple[str | None, str | None]] = []
    for i, item in enumerate(info.array(name(JobRequest, "files"), required=False) or ()):
        item_fields = _Fields(item, f"{info.where}.{name(JobRequest, 'files')}[{i}]")
        file_args.append(
            (
                item_fields.opt_text(name(FileInfo, "file_id")),
                item_fields.opt_text(name(FileInfo, "file_path")),
            )
        )
        item_fields.done()
    src_container_id = info.text(name(JobRequest, "src_container_id"))
    new_file_path = info.opt_text(name(JobRequest, "new_file_path"))
    uncompress_file_paths = info.opt_texts(name(JobRequest, "uncompress_file_paths"))
    info.done()
    job_type = _member(JobType, f, name(JobRequest, "task_type"))
    dst_container_id = f.text(name(JobRequest, "dst_container_id"))
    action_type = _opt_member(JobAction, f, name(JobRequest, "action_type"))
    password = f.opt_text(name(JobRequest, "password"))
    share_folder_id = f.opt_text(name(JobRequest, "share_folder_id"))
    f.done()
    return JobRequest(
        task_type=job_type,
        src_container_id=src_container_id,
        dst_container_id=dst_container_id,
        files=[FileInfo(file_id, file_path) for file_id, file_path in file_args],
        action_type=action_type,
        new_file_path=new_file_path,
        uncompress_file_paths=uncompress_file_paths,
        password=password,
        share_folder_id=share_folder_id,
    )


def request_from_body(kind: str, body: Mapping[str, Any]) -> Request:
    """Read a request model from the endpoint's own JSON request body.

    The exact inverse of :func:`build_body` (and of :func:`plan_body`): for a
    job the body may also hold a top-level ``shareFolderId``. The share
    task's agent name is not accepted here: it belongs to the session.

    Args:
        kind: ``"transfer"`` or ``"import"`` (task/create; ``taskType`` may be
            left out, and if present must be 0 or 1 respectively), ``"share"``
            (share/tasks) or ``"job"`` (jobs).
        body: The camelCase body, as in the pages' example requests.

    Returns:
        The request model, validated.

    Raises:
        InvalidRequestError: Unknown kind, unknown field, wrong type, missing
            field, or any rule of the request model; the error names the field.
    """
    if kind not in ("transfer", "import", "share", "job"):
        raise InvalidRequestError(
            f"kind must be one of transfer, import, share, job; got {kind!r}", field="kind"
        )
    return _request_from_fields(kind, _Fields(body, ""))


# --------------------------------------------------------------------------- building calls

_CREATE_ROUTES: Final[dict[str, tuple[str, str]]] = {
    "transfer": (PATH_TASK_CREATE, "create_task"),
    "import": (PATH_TASK_CREATE, "create_task"),
    "share": (PATH_SHARE_TASKS, "create_share_task"),
    "job": (PATH_JOBS, "create_job"),
}


def _bad_text_path(value: object, path: str) -> str | None:
    """The JSON path of the first string that is not valid Unicode (a lone surrogate)."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return path or "body"
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = _bad_text_path(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = _bad_text_path(item, f"{path}[{i}]")
            if found:
                return found
    return None


def _dump(body: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        field = _bad_text_path(body, "") or "body"
        raise InvalidRequestError(
            f"{field} is not valid Unicode text (it holds a lone surrogate)", field=field
        ) from None


def _check_unicode(value: str, field: str) -> None:
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidRequestError(
            f"{field} is not valid Unicode text (it holds a lone surrogate)", field=field
        ) from None


def prepare_create(request: Request, *, agent_name: str | None) -> Call:
    """Build the POST call that creates the task a request model describes.

    Args:
        request: One of the four request models.
        agent_name: The session's X-Hw-Agentname (needed for share tasks).

    Returns:
        The call.

    Raises:
        InvalidRequestError: Not a request model; a share task without an
            agent name; a share folder id that cannot be a header value.
    """
    kind = request_kind(request)
    path, route = _CREATE_ROUTES[kind]
    headers = _JSON_HEADERS
    if isinstance(request, ShareTaskRequest):
        if not agent_name:
            raise InvalidRequestError(
                "share tasks need the session's agent_name (sent as X-Hw-Agentname)",
                field="agent_name",
            )
        check_header_value(agent_name, "agent_name")
        headers = {**_JSON_HEADERS, "X-Hw-Agentname": agent_name}
    elif isinstance(request, JobRequest) and request.share_folder_id is not None:
        check_header_value(request.share_folder_id, "share_folder_id")
        headers = {**_JSON_HEADERS, "x-hw-share-folder-id": request.share_folder_id}
    return Call("POST", path, route, headers=headers, body=_dump(build_body(request)))


def _path_segment(value: str) -> str:
    if value.isascii() and value.isalnum():
        # The usual id (19 digits): nothing to encode, skip quote().
        return value
    _check_unicode(value, "task_id")
    encoded = quote(value, safe="")
    # "." and ".." survive quote() but would be folded away by URL normalisation.
    if encoded in (".", ".."):
        encoded = encoded.replace(".", "%2E")
    return encoded


def prepare_get_task(task_id: str) -> Call:
    """Build ``GET task/{task_id}``; the id is percent-encoded into one path segment.

    Args:
        task_id: The task id.

    Returns:
        The call.

    Raises:
        InvalidRequestError: The id is not a non-empty string.
    """
    if not isinstance(task_id, str) or not task_id.strip():
        raise InvalidRequestError(
            f"task_id must be a non-empty string, got {task_id!r}", field="task_id"
        )
    return Call("GET", _PATH_TASK + _path_segment(task_id), "get_task")


_ENUM_VALUES: Final[dict[type, frozenset[int]]] = {
    TaskType: frozenset(int(m) for m in TaskType),
    TaskStatus: frozenset(int(m) for m in TaskStatus),
}


def _enum_value(enum_cls: type[TaskType] | type[TaskStatus], value: object, field: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or int(value) not in _ENUM_VALUES[enum_cls]
    ):
        allowed = ", ".join(f"{m.value} ({m.name})" for m in enum_cls)
        raise InvalidRequestError(f"{field} must be one of {allowed}; got {value!r}", field=field)
    return int(value)


def status_filter(
    status: TaskStatus | int | Iterable[TaskStatus | int] | None,
) -> tuple[int, ...] | None:
    """The ``status`` argument of a listing as the values to send.

    Read once, so that a one-pass iterable can be sent with every page.

    Args:
        status: None, one TaskStatus (or int) or an iterable of them.

    Returns:
        None for no filter, else the distinct values in their order (an
        empty iterable gives an empty tuple: no filter either).

    Raises:
        InvalidRequestError: Not a status nor a collection of statuses (a str,
            bytes and a dict are refused, not iterated).
    """
    if status is None:
        return None
    if isinstance(status, int):
        items: Iterable[object] = (status,)
    elif isinstance(status, str | bytes | bytearray | Mapping) or not isinstance(status, Iterable):
        raise InvalidRequestError(
            f"status must be a TaskStatus, an int or an iterable of them, got {status!r}",
            field="status",
        )
    else:
        items = status
    seen: list[int] = []
    for item in items:
        value = _enum_value(TaskStatus, item, "status")
        if value not in seen:
            seen.append(value)
    return tuple(seen)


def prepare_list_tasks(
    *,
    task_type: TaskType | int | None = None,
    status: TaskStatus | int | Iterable[TaskStatus | int] | None = None,
    page_size: int = MAX_PAGE_SIZE,
    cursor: str | int | None = None,
) -> Call:
    """Build ``GET task/list``.

    Args:
        task_type: Only tasks of this type.
        status: One status or several; sent as repeated ``status=`` parameters.
            An empty iterable means no filter.
        page_size: 1 to 100.
        cursor: The previous page's ``next_cursor`` (sent as ``pageCursor``);
            None or "" for the first page.

    Returns:
        The call.

    Raises:
        InvalidRequestError: A value out of range or of the wrong type.
    """
    params: list[tuple[str, str]] = []
    if task_type is not None:
        params.append(("taskType", str(_enum_value(TaskType, task_type, "task_type"))))
    statuses = status_filter(status)
    if statuses is not None:
        params.extend(("status", str(value)) for value in statuses)
    if (
        isinstance(page_size, bool)
        or not isinstance(page_size, int)
        or not 1 <= page_size <= MAX_PAGE_SIZE
    ):
        raise InvalidRequestError(
            f"page_size must be an int from 1 to {MAX_PAGE_SIZE}, got {page_size!r}",
            field="page_size",
        )
    params.append(("pageSize", str(page_size)))
    if cursor is not None and cursor != "":
        if isinstance(cursor, bool) or not isinstance(cursor, str | int):
            raise InvalidRequestError(
                f"cursor must be a str (a page's next_cursor), got {cursor!r}", field="cursor"
            )
        _check_unicode(str(cursor), "cursor")
        params.append(("pageCursor", str(cursor)))
    query = "&".join(f"{key}={quote(value, safe='')}" for key, value in params)
    return Call("GET", PATH_TASK_LIST, "list_tasks", query=query)


# --------------------------------------------------------------------------- decoding


def _text_of(body: bytes) -> str:
    return body[: MAX_BODY_CHARS * 4].decode("utf-8", "replace")[:MAX_BODY_CHARS]


def _code_str(code: object) -> str | None:
    if code is None:
        return None
    return code if isinstance(code, str) else str(code)


def _is_success(code: object) -> bool:
    if code is None:
        return True
    if isinstance(code, str):
        return code.strip() == "0"
    return not isinstance(code, bool) and isinstance(code, int | float) and code == 0


_ERROR_BY_STATUS: Final[dict[int, type[APIError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


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


def api_error(
    call: Call,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    trace_id: str | None,
    *,
    message: str | None = None,
) -> APIError:
    """The exception for an error response (any status >= 300).

    The class is chosen by status (400, 401, 403, 404, 429, 5xx, else
    APIError); ``code`` and ``msg`` come from a JSON ``{code, msg}`` body when
    there is one, and the body text is kept either way (an HTML gateway page).

    Args:
        call: The call that was answered.
        status: The HTTP status.
        headers: The response headers (Retry-After is read for 429).
        body: The response body.
        trace_id: The call's X-Traceid.
        message: Extra explanation for the message.

    Returns:
        The exception (not raised).
    """
    code: str | None = None
    msg: str | None = None
    data: object = None
    if body:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            data = None
    if isinstance(data, dict):
        code = _code_str(data.get("code"))
        raw_msg = data.get("msg")
        msg = None if raw_msg is None else str(raw_msg)
    elif message is None:
        content_type = headers.get("Content-Type", "")
        message = (
            "empty body"
            if not body
            else f"the body is not JSON ({content_type.split(';')[0] or 'no content type'})"
        )
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
        "trace_id": trace_id,
        "body": _text_of(body),
        "method": call.method,
        "path": call.path,
        "possibly_created": possibly_created(call.method, status),
    }
    if cls is RateLimitError:
        return RateLimitError(
            message, retry_after=parse_retry_after(headers.get("Retry-After")), **common
        )
    return cls(message, **common)


class _DuplicateKeyError(ValueError):
    """A JSON object of an answer names the same key twice."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys; for a task id that silently
    # picks one of two answers. Comparing lengths is the cheapest check that
    # still sees every object (nested ones too), which matters on every poll.
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _DuplicateKeyError(key)
            seen.add(key)
    return data


# One decoder for every success body: json.loads(..., object_pairs_hook=...)
# would build a new one per call.
_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique_keys)


def _loads(body: bytes) -> Any:
    # What json.loads does with bytes (UTF-8/16/32 detection), with _DECODER.
    return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))


def _success_object(
    call: Call, status: int, headers: Mapping[str, str], body: bytes, trace_id: str | None
) -> dict[str, Any]:
    if not 200 <= status < 300:
        raise api_error(call, status, headers, body, trace_id)
    try:
        data = _loads(body)
    except _DuplicateKeyError as exc:
        raise _invalid(
            call,
            status,
            body,
            trace_id,
            f"the answer is ambiguous: a JSON object holds the key {str(exc)[:100]!r} twice",
        ) from None
    except (ValueError, RecursionError):
        raise _invalid(
            call, status, body, trace_id, "the body is empty" if not body else "invalid JSON"
        ) from None
    if not isinstance(data, dict):
        raise _invalid(call, status, body, trace_id, "the body is not a JSON object")
    code = data.get("code")
    if not (code.__class__ is int and code == 0) and not _is_success(code):
        msg = data.get("msg")
        raise APIError(
            status_code=status,
            code=_code_str(code),
            msg=None if msg is None else str(msg),
            trace_id=trace_id,
            body=_text_of(body),
            method=call.method,
            path=call.path,
        )
    return data


def _invalid(
    call: Call, status: int, body: bytes, trace_id: str | None, message: str
) -> ResponseValidationError:
    return ResponseValidationError(
        message,
        method=call.method,
        path=call.path,
        status_code=status,
        trace_id=trace_id,
        body=_text_of(body),
        possibly_created=call.is_create,
    )


_TASK_ID: Final = json_name(Task, "task_id")
_ID_FIELD: Final = {"create_task": "taskId", "create_share_task": "taskId", "create_job": "data"}


def decode_create(
    call: Call, status: int, headers: Mapping[str, str], body: bytes, trace_id: str | None
) -> str:
    """The task id from a create response (``taskId``, or ``data`` for jobs).

    Args:
        call: The create call.
        status: The HTTP status.
        headers: The response headers.
        body: The response body.
        trace_id: The call's X-Traceid.

    Returns:
        The task id.

    Raises:
        APIError: An error status, or a 200 with a non-zero code.
        ResponseValidationError: Not a JSON object, or no task id in it.
    """
    data = _success_object(call, status, headers, body, trace_id)
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
        raise _invalid(call, status, body, trace_id, f"the response has no task id ({key})")
    return value


def decode_task(
    call: Call, status: int, headers: Mapping[str, str], body: bytes, trace_id: str | None
) -> Task:
    """The Task from a ``GET task/{id}`` response.

    Args:
        call: The get call.
        status: The HTTP status.
        headers: The response headers.
        body: The response body.
        trace_id: The call's X-Traceid.

    Returns:
        The task.

    Raises:
        APIError: An error status, or a 200 with a non-zero code.
        ResponseValidationError: Not a JSON object, no ``taskId``, or a field
            of an impossible shape.
    """
    data = _success_object(call, status, headers, body, trace_id)
    nested = data.get("data")
    if _TASK_ID not in data and isinstance(nested, dict):
        # Tolerate the task wrapped in "data", as the jobs endpoint wraps its id.
        data = nested
    try:
        return structure_task(data)
    except ResponseFieldError as exc:
        raise _invalid(call, status, body, trace_id, str(exc)) from None


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


def decode_task_page(
    call: Call,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    trace_id: str | None,
    *,
    cursors: CursorTracker | None = None,
) -> TaskPage:
    """The TaskPage from a ``GET task/list`` response.

    The list is read from ``taskList`` or ``taskListDtos`` (neither means an
    empty page); ``nextCursor`` may be a number or a string and is kept as a
    str, with missing, null and "" all meaning the end.

    Args:
        call: The list call.
        status: The HTTP status.
        headers: The response headers.
        body: The response body.
        trace_id: The call's X-Traceid.
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
    data = _success_object(call, status, headers, body, trace_id)
    items = data.get("taskList")
    if items is None:
        items = data.get("taskListDtos")
    if items is None:
        items = []
    try:
        if not isinstance(items, list):
            raise ResponseFieldError("the task list is not an array", key="taskList")
        tasks = []
        for item in items:
            if not isinstance(item, dict):
                raise ResponseFieldError("a task list entry is not an object", key="taskList")
            tasks.append(structure_task(item))
        next_cursor = _cursor(data.get("nextCursor"))
    except ResponseFieldError as exc:
        raise _invalid(call, status, body, trace_id, str(exc)) from None
    if next_cursor is not None and cursors is not None and not cursors.add(next_cursor):
        raise _invalid(call, status, body, trace_id, cursor_cycle_message(next_cursor))
    return TaskPage(tuple(tasks), next_cursor)
