"""The one codec between the models and the pages' JSON, written out by hand.

Model fields are snake_case; on the wire they are camelCase (``src_user_id``
↔ ``srcUserId``), with two renames where the pages chose another name
(``ShareTaskRequest.target`` is ``targetFileId``; ``JobRequest.files`` is
``fileInfo``). Each direction is spelled out per model, so the keys can be
read next to the pages; the round-trip tests (bodies → plan bodies → models)
keep this file and ``bulk/_bodies.py`` in step.

Encoding (:func:`request_body`) leaves out every optional field that is None
(and a job's empty file list), as the pages' example bodies do.

Decoding a :class:`~koodrive_async.Task` (:func:`parse_task`) is tolerant,
because it reads what the server sends: unknown keys are ignored, an enum
value no member knows is kept as the plain int, ids sent as numbers become
strings, and a time that does not parse becomes None. A value of a shape that
cannot be a task field at all (a list where a string belongs, say) raises
:class:`ResponseFieldError`, which ``_decode`` turns into
:class:`~koodrive_async.ResponseValidationError`. It runs for every poll, so
each field costs one ``dict.get`` and one class check for the usual value.

Never imports aiohttp, the session or the sender: pure data in, data out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

import attrs

from ._enums import (
    FileStatus,
    JobAction,
    JobResult,
    JobStatus,
    JobType,
    ShareTaskType,
    TaskStatus,
    TaskType,
)
from ._exceptions import InvalidRequestError
from ._models import (
    FileInfo,
    FileRef,
    FileResult,
    ImportTaskRequest,
    Job,
    JobRequest,
    Request,
    ShareTask,
    ShareTaskRequest,
    Task,
    TransferTaskRequest,
    UncompressedFile,
)

__all__ = [
    "ResponseFieldError",
    "encode_json",
    "enum_or_int",
    "file_info_json",
    "file_ref_json",
    "parse_file_results",
    "parse_job",
    "parse_share_task",
    "parse_stamp",
    "parse_task",
    "parse_time",
    "request_body",
]


class ResponseFieldError(ValueError):
    """A response field has a value that cannot be a value of that field.

    Args:
        message: What is wrong, naming the JSON key.
        key: The JSON key at fault.
    """

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


# --------------------------------------------------------------------------- requests -> JSON


def file_ref_json(ref: FileRef) -> dict[str, Any]:
    """A FileRef as the pages spell it (``targetFileId``, ``FileIdInfo``)."""
    return {"fileId": ref.file_id, "containerId": ref.container_id}


def file_info_json(info: FileInfo) -> dict[str, Any]:
    """One ``fileInfo`` entry of a job (absent ids left out)."""
    body: dict[str, Any] = {}
    if info.file_id is not None:
        body["fileId"] = info.file_id
    if info.file_path is not None:
        body["filePath"] = info.file_path
    return body


def _put(body: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        body[key] = value


def _share_body(r: ShareTaskRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "taskType": int(r.task_type),
        "containerId": r.container_id,
        "fileIds": list(r.file_ids),
        "shareId": r.share_id,
    }
    _put(body, "kdstoken", r.kdstoken)
    if r.target is not None:
        body["targetFileId"] = file_ref_json(r.target)
    _put(body, "zipName", r.zip_name)
    return body


def _job_body(r: JobRequest) -> dict[str, Any]:
    # The share folder travels as the x-hw-share-folder-id header, not here.
    task_info: dict[str, Any] = {"srcContainerId": r.src_container_id}
    _put(task_info, "newFilePath", r.new_file_path)
    if r.files:
        task_info["fileInfo"] = [file_info_json(info) for info in r.files]
    if r.uncompress_file_paths is not None:
        task_info["uncompressFilePaths"] = list(r.uncompress_file_paths)
    body: dict[str, Any] = {
        "taskType": int(r.task_type),
        "dstContainerId": r.dst_container_id,
        "taskInfo": task_info,
    }
    if r.action_type is not None:
        body["actionType"] = int(r.action_type)
    _put(body, "password", r.password)
    return body


def request_body(request: Request) -> dict[str, Any]:
    """The JSON body the endpoint page specifies for a request.

    task/create carries its ``taskType`` (0 transfer, 1 import) explicitly; a
    job nests ``srcContainerId``, ``newFilePath``, ``fileInfo`` and
    ``uncompressFilePaths`` in ``taskInfo`` and sends its share folder as a
    header, not in the body.

    Args:
        request: One of the four request models.

    Returns:
        A new dict, ready for :func:`encode_json`.

    Raises:
        InvalidRequestError: ``request`` is not a request model.
    """
    if isinstance(request, TransferTaskRequest):
        return {
            "taskType": int(TaskType.TRANSFER),
            "srcUserId": request.src_user_id,
            "dstUserId": request.dst_user_id,
        }
    if isinstance(request, ImportTaskRequest):
        body = {
            "taskType": int(TaskType.BATCH_IMPORT),
            "orgId": request.org_id,
            "orgUserId": request.org_user_id,
        }
        _put(body, "resultId", request.result_id)
        return body
    if isinstance(request, ShareTaskRequest):
        return _share_body(request)
    if isinstance(request, JobRequest):
        return _job_body(request)
    raise InvalidRequestError(
        "request must be a TransferTaskRequest, ImportTaskRequest, ShareTaskRequest or "
        f"JobRequest, got {type(request).__name__}",
        field="request",
    )


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


def encode_json(body: Mapping[str, Any]) -> bytes:
    """The UTF-8 bytes of a request body (compact, non-ASCII kept as is).

    Args:
        body: A body from :func:`request_body`.

    Returns:
        The bytes to send.

    Raises:
        InvalidRequestError: A string in it holds a lone surrogate (it names
            the field, by its JSON path).
    """
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        field = _bad_text_path(body, "") or "body"
        raise InvalidRequestError(
            f"{field} is not valid Unicode text (it holds a lone surrogate)", field=field
        ) from None


# --------------------------------------------------------------------------- JSON -> values


def parse_time(value: object) -> datetime | None:
    """Parse a time the server sent; None when it is absent or unparseable.

    Accepts ISO 8601 with ``Z`` or an offset (``2024-08-12T07:22:33.000Z``);
    a time without a zone is taken as UTC, and a bare number as epoch
    milliseconds (what the service uses for cursors), so every result is
    timezone-aware.

    Args:
        value: The JSON value.

    Returns:
        An aware datetime, or None.
    """
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _text(key: str, value: object) -> str | None:
    """A text field that was not sent as a str (the slow path of :func:`parse_task`)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # Ids and codes are strings in the tables but numbers in some examples.
        return str(value)
    if key != "taskId" and isinstance(value, dict | list | float | bool):
        # A descriptive field (initParams is an "Extended field") sent as JSON
        # rather than a string must not sink the task, or a whole list page:
        # keep its JSON text.
        try:
            return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)
        except ValueError:  # NaN/Infinity inside (Python's json reads them)
            return None
    raise ResponseFieldError(f"{key} must be a string, got {type(value).__name__}", key=key)


def enum_or_int(members: Mapping[int, Any], key: str, value: object) -> Any:
    """An enum field: its member when known, else the plain int.

    A value the service adds later stays an int instead of failing; an
    integer sent as a string (``"2"``) or a float (``2.0``) is read as one.

    Args:
        members: The enum's ``_value2member_map_``.
        key: The JSON key (for the error).
        value: The JSON value (not None).

    Returns:
        The member, or the int.

    Raises:
        ResponseFieldError: It cannot be an integer.
    """
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        try:
            value = int(value)
        except ValueError:  # "--1", or a digit int() refuses ("²")
            raise ResponseFieldError(f"{key} must be an integer, got {value!r}", key=key) from None
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return members.get(value, value)
    raise ResponseFieldError(f"{key} must be an integer, got {type(value).__name__}", key=key)


def _task_id_missing() -> ResponseFieldError:
    return ResponseFieldError("the task has no taskId", key="taskId")


_TASK_TYPES: Final[Mapping[int, Any]] = TaskType._value2member_map_
_STATUSES: Final[Mapping[int, Any]] = TaskStatus._value2member_map_


# The setters of Task's slots, in field order. A frozen attrs class's __init__
# sets each field through a bound object.__setattr__ (argument unpacking and an
# attribute lookup per field); the slot's own setter skips both, and a Task is
# made on every poll (Task has no validator or converter to skip). Unpacked so
# that a field added to Task (and not here) fails at import, not silently.
(
    _set_task_id,
    _set_task_name,
    _set_task_type,
    _set_tenant_id,
    _set_user_id,
    _set_status,
    _set_result_code,
    _set_init_params,
    _set_locale,
    _set_create_time,
    _set_start_time,
    _set_end_time,
    _set_trace_id,
) = (Task.__dict__[field.name].__set__ for field in attrs.fields(Task))
_new: Final = object.__new__


def parse_task(data: Mapping[str, Any], trace_id: str | None = None) -> Task:
    """Build a Task from one task object of a response.

    Each field takes the fast path when it has its usual type (a str, an
    int) and :func:`_text` / :func:`enum_or_int` otherwise; fields are read
    in the model's order, so the first bad one is the one reported.

    Args:
        data: The task object.
        trace_id: The X-Traceid of the call that read it (``Task.trace_id``).

    Returns:
        The task.

    Raises:
        ResponseFieldError: ``taskId`` is missing, empty or blank, or a
            field has an impossible shape.
    """
    get = data.get
    # Each check tests the usual type first: most fields are present, as str.
    task_id = get("taskId")
    if task_id is None:
        raise _task_id_missing()
    if task_id.__class__ is not str:
        task_id = _text("taskId", task_id)
    # A blank id names no task: it could never be polled or matched.
    if not task_id or task_id.isspace():
        raise _task_id_missing()
    task_name = get("taskName")
    if task_name.__class__ is not str and task_name is not None:
        task_name = _text("taskName", task_name)
    task_type = get("taskType")
    if task_type is not None:
        if task_type.__class__ is int:
            task_type = _TASK_TYPES.get(task_type, task_type)
        else:
            task_type = enum_or_int(_TASK_TYPES, "taskType", task_type)
    tenant_id = get("tenantId")
    if tenant_id.__class__ is not str and tenant_id is not None:
        tenant_id = _text("tenantId", tenant_id)
    user_id = get("userId")
    if user_id.__class__ is not str and user_id is not None:
        user_id = _text("userId", user_id)
    status = get("status")
    if status is not None:
        if status.__class__ is int:
            status = _STATUSES.get(status, status)
        else:
            status = enum_or_int(_STATUSES, "status", status)
    result_code = get("resultCode")
    if result_code.__class__ is not str and result_code is not None:
        result_code = _text("resultCode", result_code)
    init_params = get("initParams")
    if init_params.__class__ is not str and init_params is not None:
        init_params = _text("initParams", init_params)
    locale = get("locale")
    if locale.__class__ is not str and locale is not None:
        locale = _text("locale", locale)
    create_time = parse_time(get("createTime"))
    start_time = parse_time(get("startTime"))
    end_time = parse_time(get("endTime"))
    # What Task(task_id, ..., end_time, trace_id=trace_id) makes, a third cheaper.
    task: Task = _new(Task)
    _set_task_id(task, task_id)
    _set_task_name(task, task_name)
    _set_task_type(task, task_type)
    _set_tenant_id(task, tenant_id)
    _set_user_id(task, user_id)
    _set_status(task, status)
    _set_result_code(task, result_code)
    _set_init_params(task, init_params)
    _set_locale(task, locale)
    _set_create_time(task, create_time)
    _set_start_time(task, start_time)
    _set_end_time(task, end_time)
    _set_trace_id(task, trace_id)
    return task


# --------------------------------------------------------------------------- jobs and share tasks

_JOB_TYPES: Final[Mapping[int, Any]] = JobType._value2member_map_
_JOB_ACTIONS: Final[Mapping[int, Any]] = JobAction._value2member_map_
_JOB_STATUSES: Final[Mapping[int, Any]] = JobStatus._value2member_map_
_JOB_RESULTS: Final[Mapping[int, Any]] = JobResult._value2member_map_
_FILE_STATUSES: Final[Mapping[int, Any]] = FileStatus._value2member_map_
_SHARE_TYPES: Final[Mapping[int, Any]] = ShareTaskType._value2member_map_
# 14 digits: yyyyMMddHHmmss; epoch milliseconds have 13 digits until 2286.
_STAMP_DIGITS: Final = 14


def parse_stamp(value: object, tz: tzinfo = UTC) -> datetime | None:
    """Parse a job time: 14-digit ``yyyyMMddHHmmss`` in ``tz``; None when unparseable.

    The pages name no zone for these times, so the session's
    ``service_time_zone`` (UTC unless set) is assumed. A 14-digit number is
    read as the same digits; anything else goes to :func:`parse_time` (ISO
    8601, epoch milliseconds).

    Args:
        value: The JSON value.
        tz: The zone the service writes the digits in.

    Returns:
        An aware datetime, or None.
    """
    if isinstance(value, int) and not isinstance(value, bool) and len(str(value)) == _STAMP_DIGITS:
        value = str(value)
    if isinstance(value, str):
        digits = value.strip()
        if len(digits) == _STAMP_DIGITS and digits.isascii() and digits.isdigit():
            try:
                return datetime.strptime(digits, "%Y%m%d%H%M%S").replace(tzinfo=tz)
            except ValueError:  # month 13, second 61, ...
                return None
    return parse_time(value)


def _opt_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value.__class__ is str:
        return value
    return _text(key, value)


def _opt_enum(data: Mapping[str, Any], key: str, members: Mapping[int, Any]) -> Any:
    value = data.get(key)
    if value is None:
        return None
    if value.__class__ is int:
        return members.get(value, value)
    return enum_or_int(members, key, value)


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    result = enum_or_int({}, key, value)
    assert isinstance(result, int)
    return result


def _first(data: Mapping[str, Any], *keys: str) -> str:
    """The first of ``keys`` the object holds (the two pages spell some fields differently)."""
    for key in keys:
        if data.get(key) is not None:
            return key
    return keys[0]


def _unit_id(data: Mapping[str, Any]) -> str:
    value = _opt_text(data, "taskId")
    # A blank id names nothing that could be polled or matched.
    if not value or value.isspace():
        raise ResponseFieldError("the job has no taskId", key="taskId")
    return value


def parse_file_results(value: object) -> tuple[FileResult, ...]:
    """The per-file results of ``taskInfos``: an array of objects, or one object.

    Args:
        value: The JSON value (None gives an empty tuple).

    Returns:
        One FileResult per entry.

    Raises:
        ResponseFieldError: Not an object nor an array of objects, or an
            entry with a field of an impossible shape.
    """
    if value is None:
        return ()
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, list):
        raise ResponseFieldError("taskInfos is neither an array nor an object", key="taskInfos")
    files = []
    for item in items:
        if not isinstance(item, dict):
            raise ResponseFieldError("a taskInfos entry is not an object", key="taskInfos")
        try:
            status = _opt_enum(item, "status", _FILE_STATUSES)
        except ResponseFieldError:
            status = None  # a status no enum can hold ("done"): unknown, not fatal
        files.append(
            FileResult(
                _opt_text(item, "fileId"),
                status,
                _opt_text(item, "newFileId"),
                _opt_text(item, "srcContainerId"),
            )
        )
    return tuple(files)


def _millis(value: object) -> object:
    # updateAt: "String (ms timestamp)", digits in a string.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return value


def _uncompressed(value: object) -> tuple[UncompressedFile, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, list):
        raise ResponseFieldError("uncompressedFileList is not an array", key="uncompressedFileList")
    entries = []
    for item in items:
        if not isinstance(item, dict):
            raise ResponseFieldError(
                "an uncompressedFileList entry is not an object", key="uncompressedFileList"
            )
        size = item.get("fileSize")
        try:
            file_size = None if size is None else _opt_int(item, "fileSize")
        except ResponseFieldError:
            file_size = None  # a descriptive field: never sink the job for it
        entries.append(
            UncompressedFile(
                _opt_text(item, "name"),
                _opt_text(item, "type"),
                _opt_text(item, "code"),
                parse_time(_millis(item.get("updateAt"))),
                file_size,
            )
        )
    return tuple(entries)


def parse_job(
    info: Mapping[str, Any],
    *,
    task_infos: object = None,
    uncompressed: object = None,
    tz: tzinfo = UTC,
) -> Job:
    """Build a Job from a ``jobInfo`` object (job detail) or a ``GET jobs`` item.

    Both spellings of the fields that the job and share pages name
    differently are read (``status``/``taskStatus``, ``beginTime``/``startTime``).

    Args:
        info: The job object.
        task_infos: The detail's ``taskInfos`` (an array or one object), if any.
        uncompressed: The detail's ``uncompressedFileList``, if any.
        tz: The zone of the 14-digit times.

    Returns:
        The job.

    Raises:
        ResponseFieldError: No ``taskId``, or a field of an impossible shape.
    """
    status_key = _first(info, "status", "taskStatus")
    start_key = _first(info, "beginTime", "startTime")
    return Job(
        _unit_id(info),
        _opt_text(info, "taskName"),
        _opt_text(info, "userId"),
        _opt_enum(info, "taskType", _JOB_TYPES),
        _opt_enum(info, "actionType", _JOB_ACTIONS),
        _opt_enum(info, status_key, _JOB_STATUSES),
        _opt_enum(info, "taskResultCode", _JOB_RESULTS),
        _opt_text(info, "resultCode"),
        _opt_int(info, "progress"),
        _opt_text(info, "downloadUrl"),
        _opt_int(info, "contentNum"),
        _opt_text(info, "containerId"),
        _opt_text(info, "tenantId"),
        parse_stamp(info.get("createTime"), tz),
        parse_stamp(info.get(start_key), tz),
        parse_stamp(info.get("endTime"), tz),
        parse_file_results(task_infos),
        _uncompressed(uncompressed),
    )


def parse_share_task(
    info: Mapping[str, Any], *, task_infos: object = None, tz: tzinfo = UTC
) -> ShareTask:
    """Build a ShareTask from the ``jobInfo`` of a ``share/taskDetail`` answer.

    Args:
        info: The ``jobInfo`` object.
        task_infos: The answer's ``taskInfos`` (an array or one object), if any.
        tz: The zone of the 14-digit times.

    Returns:
        The share task.

    Raises:
        ResponseFieldError: No ``taskId``, or a field of an impossible shape.
    """
    status_key = _first(info, "taskStatus", "status")
    start_key = _first(info, "startTime", "beginTime")
    return ShareTask(
        _unit_id(info),
        _opt_text(info, "userId"),
        _opt_enum(info, "taskType", _SHARE_TYPES),
        _opt_enum(info, status_key, _JOB_STATUSES),
        _opt_enum(info, "taskResultCode", _JOB_RESULTS),
        _opt_text(info, "resultCode"),
        _opt_int(info, "progress"),
        _opt_text(info, "downloadUrl"),
        parse_stamp(info.get("createTime"), tz),
        parse_stamp(info.get(start_key), tz),
        parse_stamp(info.get("endTime"), tz),
        parse_file_results(task_infos),
    )
