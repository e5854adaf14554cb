"""Request checks, read from the five endpoint pages (no stricter than they are).

Each ``check_*`` function takes a parsed JSON body and either returns the task
type it creates or raises :class:`Invalid`. Types are JSON types: an Integer
field must be a JSON integer (not a bool, a float or a string), a String field
a JSON string. ``null`` counts as absent. A mandatory String must not be empty.
Unknown fields are ignored, as the service ignores them.
"""

from __future__ import annotations

import calendar
import re
from typing import Any

__all__ = [
    "BAD_REQUEST",
    "JOB_ACTIONS",
    "MAX_PAGE_SIZE",
    "PARAMETER_INVALID",
    "Invalid",
    "check_create_task",
    "check_job",
    "check_share_task",
    "parse_x_date",
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

_X_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")


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
