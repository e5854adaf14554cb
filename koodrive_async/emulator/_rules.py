"""Request checks, read from the five endpoint pages (no stricter than they are).

Pure functions of the request's parts, apart from any I/O, so they can be
fuzzed alone (tests/emulator/test_emulator_fuzz.py) and the route modules stay
a few lines each. Each ``check_*`` function takes a parsed JSON body and either
returns the task type it creates or raises :class:`Invalid`;
:func:`parse_body` and :func:`require_object` come before them, and
:func:`parse_list_query` reads ``task/list``'s query. The job and share-task
reads of API-EXTRA.md (``GET jobs``, ``POST cancel``, ``POST share/taskDetail``)
have :func:`parse_job_list_query`, :func:`check_cancel` and
:func:`check_share_detail`. Types are JSON types: an Integer
field must be a JSON integer (not a bool, a float or a string), a String field
a JSON string. ``null`` counts as absent. A mandatory String must not be empty.
Unknown fields are ignored, as the service ignores them.
"""

from __future__ import annotations

import calendar
import json
import re
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    # Annotations only: multidict comes with aiohttp and is no dependency of ours.
    from multidict import MultiMapping

__all__ = [
    "BAD_REQUEST",
    "JOB_ACTIONS",
    "MAX_PAGE_SIZE",
    "NOT_JSON",
    "NO_BODY",
    "PARAMETER_INVALID",
    "TASK_STATUSES",
    "Invalid",
    "JobListQuery",
    "ListQuery",
    "check_cancel",
    "check_create_task",
    "check_job",
    "check_refresh_token",
    "check_session",
    "check_share_detail",
    "check_share_task",
    "parse_body",
    "parse_job_list_query",
    "parse_list_query",
    "parse_x_date",
    "require_object",
]

#: Business codes of the pages: unparseable input, and a rule violation.
BAD_REQUEST = 13000101
PARAMETER_INVALID = 13000102

#: ``pageSize`` bounds of ``task/list`` ("Default and maximum value: 100").
MAX_PAGE_SIZE = 100

#: ``fileIds`` bounds of ``share/tasks``.
MAX_SHARE_FILE_IDS = 1000

#: The actionType values each jobs taskType accepts (the page's enumeration).
JOB_ACTIONS: dict[int, frozenset[int]] = {
    1: frozenset({101}),
    2: frozenset({201, 202}),
    3: frozenset({301}),
    4: frozenset(),
    5: frozenset({501, 502, 503}),
    6: frozenset(),
    7: frozenset({701}),
}

#: ``limit`` bounds of ``GET jobs`` ("1 to 100").
MAX_JOB_LIMIT = 100

#: Job statuses of ``GET jobs``: 0 pending, 1 processing, 2 completed, 3 cancelled.
JOB_STATUSES = frozenset({0, 1, 2, 3})

#: The task statuses of the pages: 0 NEW, 1 EXECUTING, 2 SUCCESS, 3 FAILED.
TASK_STATUSES = frozenset({0, 1, 2, 3})

_X_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_QUERY_INT = re.compile(r"[+-]?[0-9]{1,19}")


class Invalid(Exception):
    """A request the service would refuse with 400.

    Args:
        msg: What is wrong (no secret is ever quoted).
        code: The business code (PARAMETER_INVALID unless the input is unparseable).
    """

    def __init__(self, msg: str, code: int = PARAMETER_INVALID) -> None:
        super().__init__(msg)
        self.msg = msg
        self.code = code


class _Marker:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: What :func:`parse_body` returns for an empty body, and for one that is not JSON
#: (markers, not exceptions: the ledger records the request either way, and
#: only a route that needs a body refuses it).
NO_BODY: Any = _Marker("<no body>")
NOT_JSON: Any = _Marker("<not JSON>")


def parse_body(raw: bytes) -> Any:
    """Parse a request body.

    Args:
        raw: The body's bytes.

    Returns:
        The JSON value, :data:`NO_BODY` (empty or blank) or :data:`NOT_JSON`.
    """
    if not raw.strip():
        return NO_BODY
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and bytes that are not UTF-8/16/32.
        return NOT_JSON


def require_object(body: Any) -> dict[str, Any]:
    """Return a parsed body that must be a JSON object (every create route).

    Args:
        body: What :func:`parse_body` returned.

    Returns:
        The object.

    Raises:
        Invalid: BAD_REQUEST: no body, not JSON, or not an object.
    """
    if body is NO_BODY:
        raise Invalid("request body is missing", BAD_REQUEST)
    if body is NOT_JSON:
        raise Invalid("request body is not valid JSON", BAD_REQUEST)
    if not isinstance(body, dict):
        raise Invalid("request body must be a JSON object", BAD_REQUEST)
    return body


def parse_x_date(value: str) -> float:
    """Parse ``yyyyMMdd'T'HHmmss'Z'`` (UTC) to epoch seconds.

    Args:
        value: The ``X-Date`` header.

    Returns:
        Epoch seconds.

    Raises:
        Invalid: Not in that exact format, or not a real date/time.
    """
    if _X_DATE.fullmatch(value) is None:
        raise Invalid("X-Date must be in the format yyyyMMdd'T'HHmmss'Z'")
    year, month, day = int(value[0:4]), int(value[4:6]), int(value[6:8])
    hour, minute, second = int(value[9:11]), int(value[11:13]), int(value[13:15])
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        raise Invalid("X-Date is not a valid date")
    if hour > 23 or minute > 59 or second > 59 or year < 1970:
        raise Invalid("X-Date is not a valid time")
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


def _int(body: dict[str, Any], key: str, *, required: bool) -> int | None:
    value = body.get(key)
    if value is None:
        if required:
            raise Invalid(f"{key} is mandatory")
        return None
    # bool is a JSON true/false, never an Integer.
    if type(value) is not int:
        raise Invalid(f"{key} must be an integer")
    return value


def _str(body: dict[str, Any], key: str, *, required: bool, where: str = "") -> str | None:
    value = body.get(key)
    name = f"{where}{key}"
    if value is None:
        if required:
            raise Invalid(f"{name} is mandatory")
        return None
    if not isinstance(value, str):
        raise Invalid(f"{name} must be a string")
    if required and not value:
        raise Invalid(f"{name} must not be empty")
    return value


def _obj(body: dict[str, Any], key: str, *, required: bool) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None:
        if required:
            raise Invalid(f"{key} is mandatory")
        return None
    if not isinstance(value, dict):
        raise Invalid(f"{key} must be an object")
    return value


def _str_list(
    body: dict[str, Any], key: str, *, required: bool, where: str = ""
) -> list[str] | None:
    value = body.get(key)
    name = f"{where}{key}"
    if value is None:
        if required:
            raise Invalid(f"{name} is mandatory")
        return None
    if not isinstance(value, list):
        raise Invalid(f"{name} must be an array of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise Invalid(f"{name}[{i}] must be a string")
    return value


def check_create_task(body: dict[str, Any]) -> int:
    """Check a ``POST task/create`` body.

    ``taskType`` is optional on the page; absent means 0 (transfer), the only
    type the rest of the page describes by default. 0 needs ``srcUserId`` and
    ``dstUserId``; 1 needs ``orgId`` and ``orgUserId`` (``resultId`` optional);
    any other type is refused.

    Args:
        body: Parsed JSON object.

    Returns:
        The task type.

    Raises:
        Invalid: A rule is broken.
    """
    task_type = _int(body, "taskType", required=False)
    if task_type is None:
        task_type = 0
    if task_type not in (0, 1):
        raise Invalid("taskType must be 0 (transfer) or 1 (batch import)")
    required = {"srcUserId", "dstUserId"} if task_type == 0 else {"orgId", "orgUserId"}
    for key in ("srcUserId", "dstUserId", "resultId", "orgId", "orgUserId"):
        _str(body, key, required=key in required)
    return task_type


def check_share_task(body: dict[str, Any]) -> int:
    """Check a ``POST share/tasks`` body.

    ``taskType`` 1 (package download) needs ``zipName``; 2 (save) needs
    ``targetFileId`` with a ``fileId`` (``containerId`` optional); ``containerId``,
    ``shareId`` and 1..1000 ``fileIds`` are always needed.

    Args:
        body: Parsed JSON object.

    Returns:
        The task type.

    Raises:
        Invalid: A rule is broken.
    """
    task_type = _int(body, "taskType", required=True)
    if task_type not in (1, 2):
        raise Invalid("taskType must be 1 (package download) or 2 (save)")
    _str(body, "containerId", required=True)
    _str(body, "shareId", required=True)
    _str(body, "kdstoken", required=False)
    file_ids = _str_list(body, "fileIds", required=True)
    assert file_ids is not None
    if not 1 <= len(file_ids) <= MAX_SHARE_FILE_IDS:
        raise Invalid(f"fileIds must hold 1 to {MAX_SHARE_FILE_IDS} file ids")
    for i, file_id in enumerate(file_ids):
        if not file_id:
            raise Invalid(f"fileIds[{i}] must not be empty")
    target = _obj(body, "targetFileId", required=task_type == 2)
    if target is not None:
        _str(target, "fileId", required=True, where="targetFileId.")
        _str(target, "containerId", required=False, where="targetFileId.")
    _str(body, "zipName", required=task_type == 1)
    return task_type


def check_job(body: dict[str, Any]) -> int:
    """Check a ``POST jobs`` body.

    ``taskType`` 1..7; ``actionType`` optional but, when sent, only 1->101,
    2->201/202, 3->301, 5->501/502/503, 7->701. ``dstContainerId`` and
    ``taskInfo.srcContainerId`` are mandatory; ``taskInfo.fileInfo`` is mandatory
    and non-empty, each item with a ``fileId``, except for taskType 7; a
    ``filePath`` is mandatory on every item for actionType 201. ``password`` must be
    a string, and is accepted (and ignored) whatever the task type.

    Args:
        body: Parsed JSON object.

    Returns:
        The task type.

    Raises:
        Invalid: A rule is broken.
    """
    task_type = _int(body, "taskType", required=True)
    assert task_type is not None
    if task_type not in JOB_ACTIONS:
        raise Invalid("taskType must be within 1..7")
    action = _int(body, "actionType", required=False)
    if action is not None and action not in JOB_ACTIONS[task_type]:
        raise Invalid(f"actionType {action} is not allowed with taskType {task_type}")
    _str(body, "dstContainerId", required=True)
    _str(body, "password", required=False)
    info = _obj(body, "taskInfo", required=True)
    assert info is not None
    _str(info, "srcContainerId", required=True, where="taskInfo.")
    _str(info, "newFilePath", required=False, where="taskInfo.")
    _str_list(info, "uncompressFilePaths", required=False, where="taskInfo.")
    optional_files = task_type == 7
    files = info.get("fileInfo")
    if files is None:
        if not optional_files:
            raise Invalid("taskInfo.fileInfo is mandatory")
        files = []
    if not isinstance(files, list):
        raise Invalid("taskInfo.fileInfo must be an array of objects")
    if not files and not optional_files:
        raise Invalid("taskInfo.fileInfo must not be empty")
    for i, item in enumerate(files):
        where = f"taskInfo.fileInfo[{i}]."
        if not isinstance(item, dict):
            raise Invalid(f"taskInfo.fileInfo[{i}] must be an object")
        _str(item, "fileId", required=not optional_files, where=where)
        _str(item, "filePath", required=action == 201, where=where)
    return task_type


class ListQuery(NamedTuple):
    """The checked query of ``task/list`` (None: not given)."""

    task_type: int | None
    statuses: frozenset[int] | None
    page_size: int
    cursor: int | None


def parse_list_query(query: MultiMapping[str]) -> ListQuery:
    """Check ``task/list``'s query: ``taskType``, ``status``, ``pageSize``, ``pageCursor``.

    Args:
        query: The query string's parameters, repeated ones included.

    Returns:
        The checked values; ``pageSize`` defaults to :data:`MAX_PAGE_SIZE`.

    Raises:
        Invalid: A parameter is not an integer or out of range.
    """
    getall = query.getall
    task_type = _query_int(getall("taskType", []), "taskType")
    # Listed tasks carry the type they were created with (0..7 across the
    # three create endpoints); a negative one cannot match anything.
    if task_type is not None and task_type < 0:
        raise Invalid("taskType must not be negative")
    statuses: set[int] = set()
    # Both spellings of a list the pages allow: status=1&status=2 and status=1,2.
    for part in (p.strip() for value in getall("status", []) for p in value.split(",")):
        if not part:
            continue
        if _QUERY_INT.fullmatch(part) is None:
            raise Invalid("status must be integers (status=1&status=2 or status=1,2)")
        if int(part) not in TASK_STATUSES:
            raise Invalid("status must be 0 (NEW), 1 (EXECUTING), 2 (SUCCESS) or 3 (FAILED)")
        statuses.add(int(part))
    page_size = _query_int(getall("pageSize", []), "pageSize")
    if page_size is None:
        page_size = MAX_PAGE_SIZE
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise Invalid(f"pageSize must be within 1..{MAX_PAGE_SIZE}")
    cursor = _query_int(getall("pageCursor", []), "pageCursor")
    if cursor is not None and cursor < 0:
        raise Invalid("pageCursor is not a valid cursor")
    return ListQuery(task_type, frozenset(statuses) if statuses else None, page_size, cursor)


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


def check_session(body: dict[str, Any]) -> str:
    """Check a ``POST session`` body: ``code`` (mandatory), ``domain`` (optional, the ZH example's).

    Args:
        body: The request object.

    Returns:
        The authorization code.

    Raises:
        Invalid: A field is missing or of the wrong type (the code is never quoted).
    """
    code = _str(body, "code", required=True)
    _str(body, "domain", required=False)
    assert code is not None
    if not code.strip():
        raise Invalid("code must not be blank")
    return code


def check_refresh_token(body: dict[str, Any]) -> str:
    """Check a ``POST auth/refreshToken`` body: ``refreshToken`` (mandatory).

    Args:
        body: The request object.

    Returns:
        The refresh token.

    Raises:
        Invalid: It is missing, empty or not a string (never quoted).
    """
    token = _str(body, "refreshToken", required=True)
    assert token is not None
    if not token.strip():
        raise Invalid("refreshToken must not be blank")
    return token


def check_cancel(body: Any) -> str:
    """Check a ``POST cancel`` body: ``{"jobId": "..."}``.

    Args:
        body: What :func:`parse_body` returned.

    Returns:
        The job id.

    Raises:
        Invalid: Not an object, or no non-empty string ``jobId``.
    """
    job_id = _str(require_object(body), "jobId", required=True)
    assert job_id is not None
    return job_id


def check_share_detail(body: Any) -> tuple[str, str, str | None]:
    """Check a ``POST share/taskDetail`` body: ``taskId``, ``shareId``, ``kdstoken``.

    Args:
        body: What :func:`parse_body` returned.

    Returns:
        (task id, share id, share token or None).

    Raises:
        Invalid: A rule is broken (the token is never quoted).
    """
    obj = require_object(body)
    task_id = _str(obj, "taskId", required=True)
    share_id = _str(obj, "shareId", required=True)
    token = _str(obj, "kdstoken", required=False)
    assert task_id is not None and share_id is not None
    return task_id, share_id, token or None


class JobListQuery(NamedTuple):
    """The checked query of ``GET jobs`` (None: not given)."""

    task_type: int | None
    status: int | None
    offset: int
    limit: int


def parse_job_list_query(query: MultiMapping[str]) -> JobListQuery:
    """Check ``GET jobs``' query: ``type``, ``status``, ``offset``, ``limit``.

    ``offset`` counts jobs (not pages) and starts at 0 (one page says "minimum
    0", another "larger than 0": 0 is accepted); both it and ``limit`` are
    mandatory on the pages.

    Args:
        query: The query string's parameters.

    Returns:
        The checked values.

    Raises:
        Invalid: A parameter is missing, not an integer or out of range.
    """
    getall = query.getall
    task_type = _query_int(getall("type", []), "type")
    if task_type is not None and task_type not in JOB_ACTIONS:
        raise Invalid("type must be within 1..7")
    status = _query_int(getall("status", []), "status")
    if status is not None and status not in JOB_STATUSES:
        raise Invalid("status must be 0, 1, 2 or 3")
    offset = _query_int(getall("offset", []), "offset")
    if offset is None:
        raise Invalid("offset is mandatory")
    if offset < 0:
        raise Invalid("offset must be >= 0")
    limit = _query_int(getall("limit", []), "limit")
    if limit is None:
        raise Invalid("limit is mandatory")
    if not 1 <= limit <= MAX_JOB_LIMIT:
        raise Invalid(f"limit must be within 1..{MAX_JOB_LIMIT}")
    return JobListQuery(task_type, status, offset, limit)
