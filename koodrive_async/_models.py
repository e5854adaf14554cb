"""Typed models: the enums, the request models (validated on construction)
and the response models.

Fields are snake_case; the one converter in ``_converter.py`` maps them to the
pages' camelCase names. Request models are frozen and check every rule of the
endpoint pages (and ``API-NOTES.md``) in ``__attrs_post_init__``, so an
invalid request cannot even be built, let alone sent.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TypeAlias

import attrs

from ._exceptions import InvalidRequestError, KooDriveError

__all__ = [
    "FileInfo",
    "FileRef",
    "ImportTaskRequest",
    "JobAction",
    "JobOutcome",
    "JobRequest",
    "JobType",
    "Request",
    "ShareTaskRequest",
    "ShareTaskType",
    "Task",
    "TaskPage",
    "TaskStatus",
    "TaskType",
    "TransferTaskRequest",
]

#: Most file ids one share task may name (the share/tasks page: 1 to 1000).
MAX_SHARE_FILE_IDS = 1000


class TaskStatus(enum.IntEnum):
    """Status of a task: NEW → EXECUTING → SUCCESS / FAILED."""

    NEW = 0
    EXECUTING = 1
    SUCCESS = 2
    FAILED = 3

    @property
    def is_terminal(self) -> bool:
        """True for SUCCESS and FAILED."""
        return self in TERMINAL_STATUSES


#: The states a task never leaves.
TERMINAL_STATUSES: frozenset[TaskStatus] = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED})


class TaskType(enum.IntEnum):
    """``taskType`` of ``task/create`` (and of tasks in listings)."""

    TRANSFER = 0
    BATCH_IMPORT = 1


class ShareTaskType(enum.IntEnum):
    """``taskType`` of ``share/tasks``."""

    PACKAGE = 1
    """Package download: needs ``zip_name``."""
    SAVE = 2
    """Save to a folder: needs ``target``."""


class JobType(enum.IntEnum):
    """``taskType`` of ``jobs`` (batch jobs)."""

    COPY = 1
    DELETE = 2
    MOVE = 3
    RESTORE = 4
    DECOMPRESS = 5
    PACKAGE_DOWNLOAD = 6
    CLEAR_RECYCLE_BIN = 7


class JobAction(enum.IntEnum):
    """``actionType`` of ``jobs``: a refinement of the job type."""

    COPY = 101
    RECYCLE = 201
    DELETE_PERMANENTLY = 202
    MOVE = 301
    PREVIEW_ARCHIVE = 501
    DECOMPRESS_ALL = 502
    DECOMPRESS_PARTIAL = 503
    CLEAR_RECYCLE_BIN = 701


#: The only actionType values each job type accepts (absent = none may be sent).
JOB_ACTIONS: dict[JobType, frozenset[JobAction]] = {
    JobType.COPY: frozenset({JobAction.COPY}),
    JobType.DELETE: frozenset({JobAction.RECYCLE, JobAction.DELETE_PERMANENTLY}),
    JobType.MOVE: frozenset({JobAction.MOVE}),
    JobType.DECOMPRESS: frozenset(
        {JobAction.PREVIEW_ARCHIVE, JobAction.DECOMPRESS_ALL, JobAction.DECOMPRESS_PARTIAL}
    ),
    JobType.CLEAR_RECYCLE_BIN: frozenset({JobAction.CLEAR_RECYCLE_BIN}),
}


# --------------------------------------------------------------------------- helpers


def _require_text(value: object, field: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(f"{field} must be a non-empty string, got {value!r}", field=field)


def _optional_text(value: object, field: str) -> None:
    if value is not None:
        _require_text(value, field)


def _enum_member(enum_cls: type[enum.IntEnum], value: object, field: str) -> None:
    # bool is an int; True as a task type is a bug, not a 1.
    known = enum_cls._value2member_map_
    if isinstance(value, bool) or not isinstance(value, int) or value not in known:
        allowed = ", ".join(f"{m.value} ({m.name})" for m in enum_cls)
        raise InvalidRequestError(f"{field} must be one of {allowed}; got {value!r}", field=field)


def _is_collection(value: object) -> bool:
    # A str or bytes is iterable but iterating it gives characters (or ints),
    # and a dict gives its keys: none of them is a list of items.
    return isinstance(value, Iterable) and not isinstance(
        value, str | bytes | bytearray | memoryview | Mapping
    )


def _to_str_tuple(value: Iterable[str] | None) -> tuple[str, ...] | None:
    """attrs converter: any collection of ids becomes a tuple; anything else
    (a bare str, a number, a dict, ...) is kept as is so that validation
    rejects it with the field's name instead of a TypeError from ``tuple()``."""
    if not _is_collection(value):
        return value  # type: ignore[return-value]
    return tuple(value)  # type: ignore[arg-type]


def _to_tuple(value: Iterable[object]) -> tuple[object, ...]:
    """attrs converter: as :func:`_to_str_tuple` (a single FileInfo is kept
    as is, to be rejected by name)."""
    if not _is_collection(value):
        return value  # type: ignore[return-value]
    return tuple(value)


def _type_name(value: object) -> str:
    return type(value).__name__


# --------------------------------------------------------------------------- value types


@attrs.frozen
class FileInfo:
    """One file or directory of a batch job (``fileInfo`` in the jobs page).

    Args:
        file_id: The file's id. Needed by every job type except clearing the recycle bin.
        file_path: The file's full path, including its id. Needed for logical
            deletion (moving to the recycle bin), so that it can be restored.
    """

    file_id: str | None = None
    file_path: str | None = None

    def __attrs_post_init__(self) -> None:
        _optional_text(self.file_id, "file_id")
        _optional_text(self.file_path, "file_path")


@attrs.frozen
class FileRef:
    """A file in a container (``targetFileId`` of share tasks, a ``FileIdInfo``).

    Args:
        file_id: The file or folder id; ``"root"`` for the root folder.
        container_id: The space the file lives in.
    """

    file_id: str
    container_id: str

    def __attrs_post_init__(self) -> None:
        _require_text(self.file_id, "target.file_id")
        _require_text(self.container_id, "target.container_id")


# --------------------------------------------------------------------------- requests


@attrs.frozen
class TransferTaskRequest:
    """``POST task/create`` with taskType 0: hand one user's data over to another.

    Args:
        src_user_id: The user whose data is transferred.
        dst_user_id: The user who receives it.
    """

    src_user_id: str
    dst_user_id: str

    def __attrs_post_init__(self) -> None:
        _require_text(self.src_user_id, "src_user_id")
        _require_text(self.dst_user_id, "dst_user_id")


@attrs.frozen
class ImportTaskRequest:
    """``POST task/create`` with taskType 1: a batch import.

    Args:
        org_id: The organization.
        org_user_id: The orgUserId of the creator.
        result_id: Optional result id.
    """

    org_id: str
    org_user_id: str
    result_id: str | None = None

    def __attrs_post_init__(self) -> None:
        _require_text(self.org_id, "org_id")
        _require_text(self.org_user_id, "org_user_id")
        _optional_text(self.result_id, "result_id")


@attrs.frozen
class ShareTaskRequest:
    """``POST share/tasks``: act on files of a share.

    Args:
        task_type: PACKAGE (needs ``zip_name``) or SAVE (needs ``target``).
        container_id: The space the files are in.
        file_ids: 1 to 1000 file ids (see :func:`koodrive_async.chunked`).
        share_id: The share.
        kdstoken: Temporary share token, if the share needs one. Never shown in reprs.
        target: Where SAVE puts the files (``FileRef("root", ...)`` for the root).
        zip_name: The package name for PACKAGE.
    """

    task_type: ShareTaskType
    container_id: str
    file_ids: tuple[str, ...] = attrs.field(converter=_to_str_tuple)
    share_id: str
    kdstoken: str | None = attrs.field(default=None, repr=False)
    target: FileRef | None = None
    zip_name: str | None = None

    def __attrs_post_init__(self) -> None:
        _enum_member(ShareTaskType, self.task_type, "task_type")
        object.__setattr__(self, "task_type", ShareTaskType(self.task_type))
        _require_text(self.container_id, "container_id")
        _require_text(self.share_id, "share_id")
        if self.kdstoken is not None and (
            not isinstance(self.kdstoken, str) or not self.kdstoken.strip()
        ):
            # Not _optional_text: its message shows the value, and this one is a secret.
            raise InvalidRequestError("kdstoken must be a non-empty string", field="kdstoken")
        _optional_text(self.zip_name, "zip_name")
        if not isinstance(self.file_ids, tuple) or not self.file_ids:
            got = "" if isinstance(self.file_ids, tuple) else f", got {_type_name(self.file_ids)}"
            raise InvalidRequestError(
                f"file_ids must be a non-empty sequence of file id strings{got}", field="file_ids"
            )
        if len(self.file_ids) > MAX_SHARE_FILE_IDS:
            raise InvalidRequestError(
                f"file_ids holds {len(self.file_ids)} ids; a share task takes at most "
                f"{MAX_SHARE_FILE_IDS} (split them with chunked())",
                field="file_ids",
            )
        for i, file_id in enumerate(self.file_ids):
            _require_text(file_id, f"file_ids[{i}]")
        if self.target is not None and not isinstance(self.target, FileRef):
            raise InvalidRequestError(
                f"target must be a FileRef, got {_type_name(self.target)}", field="target"
            )
        if self.task_type is ShareTaskType.SAVE and self.target is None:
            raise InvalidRequestError(
                "a SAVE share task needs target (FileRef('root', container_id) for the root)",
                field="target",
            )
        if self.task_type is ShareTaskType.PACKAGE and self.zip_name is None:
            raise InvalidRequestError("a PACKAGE share task needs zip_name", field="zip_name")


@attrs.frozen
class JobRequest:
    """``POST jobs``: a batch job (copy, delete, move, restore, decompress, ...).

    Args:
        task_type: The job type.
        src_container_id: The source space.
        dst_container_id: The target space.
        files: The files and folders to act on; required except for CLEAR_RECYCLE_BIN.
        action_type: Refines the job type; only the documented pairs are allowed
            (COPY→COPY, DELETE→RECYCLE/DELETE_PERMANENTLY, MOVE→MOVE,
            DECOMPRESS→PREVIEW_ARCHIVE/DECOMPRESS_ALL/DECOMPRESS_PARTIAL,
            CLEAR_RECYCLE_BIN→CLEAR_RECYCLE_BIN).
        new_file_path: The destination path, where the job type uses one.
        uncompress_file_paths: Paths inside the archive, for DECOMPRESS_PARTIAL.
        password: The archive password, for DECOMPRESS only. Never shown in reprs or logs.
        share_folder_id: Run the job inside this shared folder
            (sent as the ``x-hw-share-folder-id`` header).
    """

    task_type: JobType
    src_container_id: str
    dst_container_id: str
    files: tuple[FileInfo, ...] = attrs.field(default=(), converter=_to_tuple)
    action_type: JobAction | None = None
    new_file_path: str | None = None
    uncompress_file_paths: tuple[str, ...] | None = attrs.field(
        default=None, converter=_to_str_tuple
    )
    password: str | None = attrs.field(default=None, repr=False)
    share_folder_id: str | None = None

    def __attrs_post_init__(self) -> None:
        _enum_member(JobType, self.task_type, "task_type")
        task_type = JobType(self.task_type)
        object.__setattr__(self, "task_type", task_type)
        _require_text(self.src_container_id, "src_container_id")
        _require_text(self.dst_container_id, "dst_container_id")
        _optional_text(self.new_file_path, "new_file_path")
        _optional_text(self.share_folder_id, "share_folder_id")
        if self.action_type is not None:
            _enum_member(JobAction, self.action_type, "action_type")
            action = JobAction(self.action_type)
            object.__setattr__(self, "action_type", action)
            if action not in JOB_ACTIONS.get(task_type, frozenset()):
                allowed = sorted(JOB_ACTIONS.get(task_type, frozenset()))
                raise InvalidRequestError(
                    f"action_type {action.value} ({action.name}) does not go with task_type "
                    f"{task_type.value} ({task_type.name}); allowed: "
                    + (", ".join(f"{a.value} ({a.name})" for a in allowed) or "none"),
                    field="action_type",
                )
        if not isinstance(self.files, tuple):
            raise InvalidRequestError(
                f"files must be a sequence of FileInfo, got {_type_name(self.files)} "
                "(a single file goes in a list: files=[FileInfo(...)])",
                field="files",
            )
        for i, info in enumerate(self.files):
            if not isinstance(info, FileInfo):
                raise InvalidRequestError(
                    f"files[{i}] must be a FileInfo, got {type(info).__name__}", field="files"
                )
        if task_type is not JobType.CLEAR_RECYCLE_BIN:
            if not self.files:
                raise InvalidRequestError(
                    f"a {task_type.name} job needs at least one file in files", field="files"
                )
            for i, info in enumerate(self.files):
                if info.file_id is None:
                    raise InvalidRequestError(
                        f"files[{i}].file_id is required for a {task_type.name} job",
                        field="files",
                    )
        if self.action_type is JobAction.RECYCLE:
            for i, info in enumerate(self.files):
                if info.file_path is None:
                    raise InvalidRequestError(
                        f"files[{i}].file_path is required for logical deletion (RECYCLE), "
                        "so that the file can be restored",
                        field="files",
                    )
        if self.password is not None:
            if task_type is not JobType.DECOMPRESS:
                raise InvalidRequestError(
                    "password is only sent with DECOMPRESS jobs", field="password"
                )
            if not isinstance(self.password, str) or not self.password:
                raise InvalidRequestError("password must be a non-empty string", field="password")
        if self.uncompress_file_paths is not None:
            if not isinstance(self.uncompress_file_paths, tuple):
                raise InvalidRequestError(
                    "uncompress_file_paths must be a sequence of path strings, got "
                    f"{_type_name(self.uncompress_file_paths)}",
                    field="uncompress_file_paths",
                )
            if task_type is not JobType.DECOMPRESS:
                raise InvalidRequestError(
                    "uncompress_file_paths is only used by DECOMPRESS jobs",
                    field="uncompress_file_paths",
                )
            for i, path in enumerate(self.uncompress_file_paths):
                _require_text(path, f"uncompress_file_paths[{i}]")


#: Any request model that :meth:`KooDriveSession.submit` accepts.
Request: TypeAlias = TransferTaskRequest | ImportTaskRequest | ShareTaskRequest | JobRequest


# --------------------------------------------------------------------------- responses


@attrs.frozen
class Task:
    """A task as ``GET task/{id}`` or ``GET task/list`` reports it.

    Only ``task_id`` is always present. Enum fields hold the enum member when
    the value is known and the plain int otherwise, so a status or type the
    service adds later never breaks parsing. Unparseable times are None.
    """

    task_id: str
    task_name: str | None = None
    task_type: TaskType | int | None = None
    tenant_id: str | None = None
    user_id: str | None = None
    status: TaskStatus | int | None = None
    result_code: str | None = None
    init_params: str | None = None
    locale: str | None = None
    create_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        """True when the task is SUCCESS or FAILED."""
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        """True when the task is SUCCESS."""
        return self.status == TaskStatus.SUCCESS

    @property
    def failed(self) -> bool:
        """True when the task is FAILED."""
        return self.status == TaskStatus.FAILED


@attrs.frozen
class TaskPage:
    """One page of ``GET task/list``.

    Args:
        tasks: The tasks on this page (may be empty before the end).
        next_cursor: Pass back as ``cursor`` for the next page; None at the end.
    """

    tasks: tuple[Task, ...]
    next_cursor: str | None = None

    @property
    def is_last(self) -> bool:
        """True when there is no next page."""
        return self.next_cursor is None


@attrs.frozen
class JobOutcome:
    """What became of one request in :meth:`KooDriveSession.run_jobs`.

    Attributes:
        request: The request, as given.
        task_id: The task id, once the create call returned one (None if
            submission failed).
        task: The last Task seen (terminal unless the wait was cut short).
        error: None on success; otherwise the exception: a submission error,
            :class:`TaskFailedError`, :class:`TaskTimeoutError`, or a polling error.
    """

    request: Request
    task_id: str | None = None
    task: Task | None = None
    error: KooDriveError | None = None

    @property
    def ok(self) -> bool:
        """True when the task was created and reached SUCCESS."""
        return self.error is None and self.task is not None and self.task.succeeded
