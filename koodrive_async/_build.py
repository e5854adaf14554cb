"""Building requests: one pure function per endpoint, each returning a :class:`Call`.

A call is everything known before any I/O: method, percent-encoded path and
query, the endpoint's own headers and the JSON body bytes (from ``_codec``).
The sender adds what belongs to the session (:func:`session_headers`,
Authorization) and to each attempt (X-Date, from ``_clock``). Arguments are
checked here (with ``_validate``), so a bad one raises
:class:`~koodrive_async.InvalidRequestError` before anything is sent.

Each endpoint (job detail, job list, cancel and share-task detail among
them) is one ``build_*`` function here, one decoder in ``_decode`` and one
thin method on the session. Whether a call may be repeated is decided here
too, as ``Call.idempotent``: the reads and the cancel, even those sent as
POST, are retried like GETs.

Never imports aiohttp, the sender or the session: no I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import quote

from . import _validate as check
from ._call import Call, read_call
from ._codec import encode_json, request_body
from ._enums import JobStatus, JobType, TaskStatus, TaskType
from ._exceptions import InvalidRequestError
from ._models import (
    ImportTaskRequest,
    JobRequest,
    Request,
    ShareTaskRequest,
    TransferTaskRequest,
)

__all__ = [
    "API_PREFIX",
    "MAX_PAGE_SIZE",
    "PATH_CANCEL",
    "PATH_JOBS",
    "PATH_SHARE_TASKS",
    "PATH_SHARE_TASK_DETAIL",
    "PATH_TASK",
    "PATH_TASK_CREATE",
    "PATH_TASK_LIST",
    "build_cancel_job",
    "build_create",
    "build_get_job",
    "build_get_share_task",
    "build_get_task",
    "build_list_jobs",
    "build_list_tasks",
    "check_header_value",
    "request_kind",
    "session_headers",
    "status_filter",
]

API_PREFIX: Final = "/koodrive/ose/v1"
PATH_TASK_CREATE: Final = API_PREFIX + "/task/create"
PATH_SHARE_TASKS: Final = API_PREFIX + "/share/tasks"
PATH_JOBS: Final = API_PREFIX + "/jobs"
PATH_TASK_LIST: Final = API_PREFIX + "/task/list"
#: ``GET task/{id}``: this prefix and the encoded id.
PATH_TASK: Final = API_PREFIX + "/task/"
PATH_CANCEL: Final = API_PREFIX + "/cancel"
PATH_SHARE_TASK_DETAIL: Final = API_PREFIX + "/share/taskDetail"
#: Path segments right under the prefix that name an endpoint, not a job:
#: ``GET /{job_id}`` with one of them would reach that endpoint instead.
_RESERVED_JOB_IDS: Final = frozenset(
    {"jobs", "task", "cancel", "share", "session", "auth", "archive"}
)

_TASK_TEMPLATE: Final = PATH_TASK + "{taskId}"
_JOB_TEMPLATE: Final = API_PREFIX + "/{jobId}"

#: Largest (and default) pageSize of task/list.
MAX_PAGE_SIZE: Final = 100
_JSON_HEADERS: Final = {"Content-Type": "application/json"}

# --------------------------------------------------------------------------- headers

# RFC 9110 section 5.5: no control characters but horizontal tab in a field value.
_FORBIDDEN_HEADER_CHARS: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _check_unicode(value: str, field: str) -> None:
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidRequestError(
            f"{field} is not valid Unicode text (it holds a lone surrogate)", field=field
        ) from None


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


def session_headers(*, user_id: str, language: str, user_agent: str) -> dict[str, str]:
    """The headers every call of one session sends (Authorization aside).

    Args:
        user_id: The X-User-Id.
        language: The language code (``en-US``).
        user_agent: The User-Agent.

    Returns:
        A new dict.
    """
    return {"X-User-Id": user_id, "language": language, "User-Agent": user_agent}


# --------------------------------------------------------------------------- creates


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


_KIND_OF: Final[Mapping[type, str]] = {
    TransferTaskRequest: "transfer",
    ImportTaskRequest: "import",
    ShareTaskRequest: "share",
    JobRequest: "job",
}

#: Path and route name of each kind's create endpoint.
_CREATE_ROUTES: Final[Mapping[str, tuple[str, str]]] = {
    "transfer": (PATH_TASK_CREATE, "create_task"),
    "import": (PATH_TASK_CREATE, "create_task"),
    "share": (PATH_SHARE_TASKS, "create_share_task"),
    "job": (PATH_JOBS, "create_job"),
}


def build_create(request: Request, *, agent_name: str | None) -> Call:
    """Build the POST call that creates the task a request model describes.

    Args:
        request: One of the four request models.
        agent_name: The session's X-Hw-Agentname (needed for share tasks).

    Returns:
        The call.

    Raises:
        InvalidRequestError: Not a request model; a share task without an
            agent name; a share folder id that cannot be a header value; a
            string that is not valid Unicode.
    """
    path, route = _CREATE_ROUTES[request_kind(request)]
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
    return Call("POST", path, route, headers=headers, body=encode_json(request_body(request)))


# --------------------------------------------------------------------------- reads


def _path_segment(value: str, field: str = "task_id") -> str:
    if value.isascii() and value.isalnum():
        # The usual id (19 digits): nothing to encode, skip quote().
        return value
    _check_unicode(value, field)
    encoded = quote(value, safe="")
    # "." and ".." survive quote() but would be folded away by URL normalisation.
    if encoded in (".", ".."):
        encoded = encoded.replace(".", "%2E")
    return encoded


def build_get_task(task_id: str) -> Call:
    """Build ``GET task/{task_id}``; the id is percent-encoded into one path segment.

    Args:
        task_id: The task id.

    Returns:
        The call.

    Raises:
        InvalidRequestError: The id is not a non-empty string.
    """
    if task_id.__class__ is str and task_id.isascii() and task_id.isalnum():
        # The usual id (19 digits): valid, and nothing to encode.
        return read_call(PATH_TASK + task_id, "get_task", _TASK_TEMPLATE)
    check.text(task_id, "task_id")
    return read_call(PATH_TASK + _path_segment(task_id), "get_task", _TASK_TEMPLATE)


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
    elif not check.is_collection(status):
        raise InvalidRequestError(
            f"status must be a TaskStatus, an int or an iterable of them, got {status!r}",
            field="status",
        )
    else:
        items = status
    seen: list[int] = []
    for item in items:
        value = int(check.enum_member(TaskStatus, item, "status"))
        if value not in seen:
            seen.append(value)
    return tuple(seen)


def build_list_tasks(
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
        params.append(("taskType", str(int(check.enum_member(TaskType, task_type, "task_type")))))
    statuses = status_filter(status)
    if statuses is not None:
        params.extend(("status", str(value)) for value in statuses)
    check.int_in_range(page_size, "page_size", low=1, high=MAX_PAGE_SIZE)
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


# --------------------------------------------------------------------------- jobs and share tasks


def _job_type_value(task_type: JobType | int | None) -> int | None:
    if task_type is None:
        return None
    return int(check.enum_member(JobType, task_type, "task_type"))


def build_get_job(job_id: str) -> Call:
    """Build ``GET /koodrive/ose/v1/{job_id}`` (job detail).

    Args:
        job_id: The id ``create_job`` returned.

    Returns:
        The call.

    Raises:
        InvalidRequestError: Not a non-empty string, or a name of another
            endpoint (``jobs``, ``cancel``, ...), which that path would reach.
    """
    check.text(job_id, "job_id")
    if job_id.strip().lower() in _RESERVED_JOB_IDS:
        raise InvalidRequestError(
            f"job_id {job_id!r} names another endpoint, not a job", field="job_id"
        )
    path = f"{API_PREFIX}/{_path_segment(job_id, 'job_id')}"
    return Call("GET", path, "get_job", template=_JOB_TEMPLATE)


def build_list_jobs(
    *,
    task_type: JobType | int | None = None,
    status: JobStatus | int | None = None,
    offset: int = 0,
    limit: int = MAX_PAGE_SIZE,
) -> Call:
    """Build ``GET /koodrive/ose/v1/jobs`` (one page of batch jobs).

    Args:
        task_type: Only jobs of this JobType (sent as ``type``).
        status: Only jobs in this JobStatus.
        offset: Jobs to skip (it counts items, not pages); 0 for the first page.
        limit: 1 to 100.

    Returns:
        The call.

    Raises:
        InvalidRequestError: A value out of range or of the wrong type.
    """
    params: list[tuple[str, int]] = []
    job_type = _job_type_value(task_type)
    if job_type is not None:
        params.append(("type", job_type))
    if status is not None:
        params.append(("status", int(check.enum_member(JobStatus, status, "status"))))
    check.int_in_range(offset, "offset", low=0)
    check.int_in_range(limit, "limit", low=1, high=MAX_PAGE_SIZE)
    params.extend((("offset", offset), ("limit", limit)))
    query = "&".join(f"{key}={value}" for key, value in params)
    return Call("GET", PATH_JOBS, "list_jobs", query=query)


def build_cancel_job(job_id: str) -> Call:
    """Build ``POST /koodrive/ose/v1/cancel`` ``{"jobId"}``.

    Idempotent: cancelling twice cannot do anything twice, so it is retried
    like a read.

    Args:
        job_id: The job to cancel.

    Returns:
        The call.

    Raises:
        InvalidRequestError: Not a non-empty string (or not valid Unicode).
    """
    check.text(job_id, "job_id")
    body = encode_json({"jobId": job_id})
    return Call(
        "POST", PATH_CANCEL, "cancel_job", headers=_JSON_HEADERS, body=body, idempotent=True
    )


def build_get_share_task(
    task_id: str, *, share_id: str, kdstoken: str | None, agent_name: str | None
) -> Call:
    """Build ``POST /koodrive/ose/v1/share/taskDetail`` (a read, sent as a POST).

    Args:
        task_id: The id ``create_share_task`` returned.
        share_id: The share.
        kdstoken: The share's temporary token, if it needs one (a secret:
            never in a message).
        agent_name: The session's X-Hw-Agentname (the carrier pages mark it
            mandatory, as for share-task creation).

    Returns:
        The call (idempotent: retried like a GET).

    Raises:
        InvalidRequestError: An empty id, a kdstoken that is not a non-empty
            string, or a session without an agent name.
    """
    check.text(task_id, "task_id")
    check.text(share_id, "share_id")
    check.optional_text(kdstoken, "kdstoken", secret=True)
    if not agent_name:
        raise InvalidRequestError(
            "share tasks need the session's agent_name (sent as X-Hw-Agentname)",
            field="agent_name",
        )
    check_header_value(agent_name, "agent_name")
    payload: dict[str, str] = {"taskId": task_id, "shareId": share_id}
    if kdstoken is not None:
        payload["kdstoken"] = kdstoken
    return Call(
        "POST",
        PATH_SHARE_TASK_DETAIL,
        "get_share_task",
        headers={**_JSON_HEADERS, "X-Hw-Agentname": agent_name},
        body=encode_json(payload),
        idempotent=True,
    )
