"""Typed models: the request models (validated on construction), the value
types they hold and the response models.

Fields are snake_case; the one codec in ``_codec.py`` maps them to the pages'
camelCase names. Request models are frozen and check every rule of the
endpoint pages (and ``API-NOTES.md``) in ``__attrs_post_init__``, with the
shared validators of ``_validate.py``, so an invalid request cannot even be
built, let alone sent. The enums live in ``_enums.py``.

Imports only the enums, the validators and the exceptions: never the codec,
the wire layer or aiohttp.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TypeAlias

import attrs

from . import _validate as check
from ._enums import (
    JOB_ACTIONS,
    TERMINAL_STATUSES,
    FileStatus,
    JobAction,
    JobResult,
    JobStatus,
    JobType,
    ShareTaskType,
    State,
    TaskStatus,
    TaskType,
    Verdict,
)
from ._exceptions import (
    InvalidRequestError,
    KooDriveError,
    TaskFailedError,
    TaskTimeoutError,
)
from ._validate import is_collection

__all__ = [
    "FileInfo",
    "FileRef",
    "FileResult",
    "ImportTaskRequest",
    "Job",
    "JobOutcome",
    "JobRequest",
    "Request",
    "ShareTask",
    "ShareTaskRequest",
    "Task",
    "TaskPage",
    "TransferTaskRequest",
    "UncompressedFile",
]

#: Most file ids one share task may name (the share/tasks page: 1 to 1000).
MAX_SHARE_FILE_IDS = 1000


def _to_tuple(value: Iterable[object] | None) -> tuple[object, ...] | None:
    """attrs converter: any collection becomes a tuple; anything else (a bare
    str, a number, a dict, a single FileInfo, ...) is kept as is so that
    validation rejects it with the field's name instead of a TypeError from
    ``tuple()``."""
    if not is_collection(value):
        return value  # type: ignore[return-value]
    return tuple(value)


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
        check.optional_text(self.file_id, "file_id")
        check.optional_text(self.file_path, "file_path")


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
        check.text(self.file_id, "target.file_id")
        check.text(self.container_id, "target.container_id")


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
        check.text(self.src_user_id, "src_user_id")
        check.text(self.dst_user_id, "dst_user_id")


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
        check.text(self.org_id, "org_id")
        check.text(self.org_user_id, "org_user_id")
        check.optional_text(self.result_id, "result_id")


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
    file_ids: tuple[str, ...] = attrs.field(converter=_to_tuple)
    share_id: str
    kdstoken: str | None = attrs.field(default=None, repr=False)
    target: FileRef | None = None
    zip_name: str | None = None

    def __attrs_post_init__(self) -> None:
        object.__setattr__(
            self, "task_type", check.enum_member(ShareTaskType, self.task_type, "task_type")
        )
        check.text(self.container_id, "container_id")
        check.text(self.share_id, "share_id")
        check.optional_text(self.kdstoken, "kdstoken", secret=True)
        check.optional_text(self.zip_name, "zip_name")
        if isinstance(self.file_ids, tuple) and len(self.file_ids) > MAX_SHARE_FILE_IDS:
            raise InvalidRequestError(
                f"file_ids holds {len(self.file_ids)} ids; a share task takes at most "
                f"{MAX_SHARE_FILE_IDS} (split them with chunked())",
                field="file_ids",
            )
        check.str_sequence(self.file_ids, "file_ids", non_empty=True)
        check.instance_of(FileRef, self.target, "target", optional=True)
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
    uncompress_file_paths: tuple[str, ...] | None = attrs.field(default=None, converter=_to_tuple)
    password: str | None = attrs.field(default=None, repr=False)
    share_folder_id: str | None = None

    def __attrs_post_init__(self) -> None:
        task_type = check.enum_member(JobType, self.task_type, "task_type")
        object.__setattr__(self, "task_type", task_type)
        check.text(self.src_container_id, "src_container_id")
        check.text(self.dst_container_id, "dst_container_id")
        check.optional_text(self.new_file_path, "new_file_path")
        check.optional_text(self.share_folder_id, "share_folder_id")
        if self.action_type is not None:
            action = check.enum_member(JobAction, self.action_type, "action_type")
            object.__setattr__(self, "action_type", action)
            _check_action(task_type, action)
        check.sequence_of(
            FileInfo,
            self.files,
            "files",
            hint=" (a single file goes in a list: files=[FileInfo(...)])",
        )
        _check_files(task_type, self.action_type, self.files)
        if self.password is not None:
            if task_type is not JobType.DECOMPRESS:
                raise InvalidRequestError(
                    "password is only sent with DECOMPRESS jobs", field="password"
                )
            # A password may be blank, but not empty.
            check.text(self.password, "password", secret=True, blank=True)
        if self.uncompress_file_paths is not None:
            if (
                isinstance(self.uncompress_file_paths, tuple)
                and task_type is not JobType.DECOMPRESS
            ):
                raise InvalidRequestError(
                    "uncompress_file_paths is only used by DECOMPRESS jobs",
                    field="uncompress_file_paths",
                )
            check.str_sequence(self.uncompress_file_paths, "uncompress_file_paths")


def _check_action(task_type: JobType, action: JobAction) -> None:
    allowed = JOB_ACTIONS.get(task_type, frozenset())
    if action not in allowed:
        raise InvalidRequestError(
            f"action_type {action.value} ({action.name}) does not go with task_type "
            f"{task_type.value} ({task_type.name}); allowed: "
            + (", ".join(f"{a.value} ({a.name})" for a in sorted(allowed)) or "none"),
            field="action_type",
        )


def _check_files(task_type: JobType, action: JobAction | None, files: tuple[FileInfo, ...]) -> None:
    if task_type is not JobType.CLEAR_RECYCLE_BIN:
        if not files:
            raise InvalidRequestError(
                f"a {task_type.name} job needs at least one file in files", field="files"
            )
        for i, info in enumerate(files):
            if info.file_id is None:
                raise InvalidRequestError(
                    f"files[{i}].file_id is required for a {task_type.name} job", field="files"
                )
    if action is JobAction.RECYCLE:
        for i, info in enumerate(files):
            if info.file_path is None:
                raise InvalidRequestError(
                    f"files[{i}].file_path is required for logical deletion (RECYCLE), "
                    "so that the file can be restored",
                    field="files",
                )


#: Any request model that :meth:`KooDriveSession.submit` accepts.
Request: TypeAlias = TransferTaskRequest | ImportTaskRequest | ShareTaskRequest | JobRequest


# --------------------------------------------------------------------------- responses


@attrs.frozen
class Task:
    """A task as ``GET task/{id}`` or ``GET task/list`` reports it.

    Only ``task_id`` is always present. Enum fields hold the enum member when
    the value is known and the plain int otherwise, so a status or type the
    service adds later never breaks parsing. Unparseable times are None.

    ``trace_id`` is the X-Traceid of the call that returned this Task (for a
    support ticket), or None for a Task you made yourself. It is not part of
    equality, hashing or the repr: the same task read twice is equal.
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
    trace_id: str | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)

    @property
    def state(self) -> State | None:
        """The status in the vocabulary every unit of work shares (None if unknown)."""
        return _TASK_STATES.get(self.status)

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
        trace_id: The X-Traceid of the call that returned this page (each
            of its tasks carries it too); not part of equality or the repr.
    """

    tasks: tuple[Task, ...]
    next_cursor: str | None = None
    trace_id: str | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)

    @property
    def is_last(self) -> bool:
        """True when there is no next page."""
        return self.next_cursor is None


_TASK_STATES: dict[object, State] = {
    TaskStatus.NEW: State.NEW,
    TaskStatus.EXECUTING: State.EXECUTING,
    TaskStatus.SUCCESS: State.SUCCESS,
    TaskStatus.FAILED: State.FAILED,
}


@attrs.frozen
class FileResult:
    """One file of a batch job or share task, as its detail lists it (``taskInfos``).

    Attributes:
        file_id: The (source) file id.
        status: PENDING, SUCCEEDED or FAILED; a value the service adds later
            stays a plain int.
        new_file_id: The id of the file the job made (a copy), when it made one.
        src_container_id: The space the file came from.
    """

    file_id: str | None = None
    status: FileStatus | int | None = None
    new_file_id: str | None = None
    src_container_id: str | None = None

    @property
    def succeeded(self) -> bool:
        """True when this file was done successfully."""
        return self.status == FileStatus.SUCCEEDED

    @property
    def failed(self) -> bool:
        """True when this file failed."""
        return self.status == FileStatus.FAILED


@attrs.frozen
class UncompressedFile:
    """One entry of a decompression job's ``uncompressedFileList``.

    The page gives no table for it; the fields follow the archive listing API
    (``archive/listFile``) and are unverified. Absent or unreadable values are None.

    Attributes:
        name: The path inside the archive.
        type: ``"1"`` a file, ``"2"`` a directory.
        code: The entry's error code (``"0"`` for none).
        update_time: When the entry was last changed.
        file_size: Its size in bytes.
    """

    name: str | None = None
    type: str | None = None
    code: str | None = None
    update_time: datetime | None = None
    file_size: int | None = None


def job_state(status: object, result: object, files: tuple[FileResult, ...] = ()) -> State | None:
    """The :class:`State` of a job or share task from its ``status`` and ``taskResultCode``.

    A completed unit without a ``taskResultCode`` is FAILED if any file
    failed and SUCCESS otherwise; with a result value this client does not
    know, it is FAILED (never reported as a success it may not be).

    Args:
        status: The job status (a JobStatus, an int or None).
        result: The JobResult (or int, or None).
        files: The per-file results.

    Returns:
        The state, or None for a status this client does not know.
    """
    if status == JobStatus.PENDING:
        return State.NEW
    if status == JobStatus.PROCESSING:
        return State.EXECUTING
    if status == JobStatus.CANCELLED:
        return State.CANCELLED
    if status != JobStatus.COMPLETED:
        return None
    if result == JobResult.ALL_SUCCEEDED:
        return State.SUCCESS
    if result is None and not any(f.failed for f in files):
        return State.SUCCESS
    return State.FAILED


@attrs.frozen
class Job:
    """A batch job as its detail (``GET /{job_id}``) or ``GET jobs`` reports it.

    Only ``job_id`` is always present. Enum fields hold the member when the
    value is known and the plain int otherwise; times (14-digit
    ``yyyyMMddHHmmss`` on the wire) are read in the session's
    ``service_time_zone``; unparseable ones are None. ``files`` and
    ``uncompressed_files`` are empty in listings.

    Attributes:
        job_id: The job id (``taskId``; the id ``create_job`` returned).
        name: ``taskName``.
        user_id: The creator.
        task_type: The JobType.
        action_type: The JobAction.
        status: The JobStatus.
        result: The JobResult, once completed.
        result_code: The job's result code (an error code when files failed).
        progress: Percent done (0..100).
        download_url: The package's link (package downloads only). It carries
            a token: never shown in the repr; do not log it.
        file_count: ``contentNum``, the number of files requested.
        container_id: The target space.
        tenant_id: The tenant.
        create_time: When it was created.
        start_time: When it began (``beginTime``; ``startTime`` accepted too).
        end_time: When it completed or was cancelled.
        files: One FileResult per file (``taskInfos``).
        uncompressed_files: The archive's files (decompression jobs).
    """

    job_id: str
    name: str | None = None
    user_id: str | None = None
    task_type: JobType | int | None = None
    action_type: JobAction | int | None = None
    status: JobStatus | int | None = None
    result: JobResult | int | None = None
    result_code: str | None = None
    progress: int | None = None
    download_url: str | None = attrs.field(default=None, repr=False)
    file_count: int | None = None
    container_id: str | None = None
    tenant_id: str | None = None
    create_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    files: tuple[FileResult, ...] = ()
    uncompressed_files: tuple[UncompressedFile, ...] = ()

    @property
    def task_id(self) -> str:
        """The job id, under the name every unit of work shares."""
        return self.job_id

    @property
    def state(self) -> State | None:
        """NEW, EXECUTING, SUCCESS, FAILED (partly or wholly) or CANCELLED; None if unknown."""
        return job_state(self.status, self.result, self.files)

    @property
    def is_terminal(self) -> bool:
        """True once the job completed or was cancelled."""
        state = self.state
        return state is not None and state.is_final

    @property
    def succeeded(self) -> bool:
        """True when the job completed and every file succeeded."""
        return self.state is State.SUCCESS

    @property
    def failed_files(self) -> tuple[FileResult, ...]:
        """The files whose status is FAILED."""
        return tuple(f for f in self.files if f.failed)


@attrs.frozen
class ShareTask:
    """A share task as ``share/taskDetail`` reports it.

    The same vocabulary as :class:`Job` (``taskStatus`` is read as the status,
    ``startTime`` or ``beginTime`` as the start).

    Attributes:
        task_id: The task id ``create_share_task`` returned.
        user_id: The creator.
        task_type: PACKAGE or SAVE.
        status: The JobStatus.
        result: The JobResult, once completed.
        result_code: A result code, when the service sends one.
        progress: Percent done (0..100).
        download_url: The zip's link (PACKAGE only). It carries a token:
            never shown in the repr; do not log it.
        create_time: When it was created.
        start_time: When it began.
        end_time: When it completed or was cancelled.
        files: One FileResult per file (``taskInfos``, an array or one object).
    """

    task_id: str
    user_id: str | None = None
    task_type: ShareTaskType | int | None = None
    status: JobStatus | int | None = None
    result: JobResult | int | None = None
    result_code: str | None = None
    progress: int | None = None
    download_url: str | None = attrs.field(default=None, repr=False)
    create_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    files: tuple[FileResult, ...] = ()

    @property
    def state(self) -> State | None:
        """NEW, EXECUTING, SUCCESS, FAILED (partly or wholly) or CANCELLED; None if unknown."""
        return job_state(self.status, self.result, self.files)

    @property
    def is_terminal(self) -> bool:
        """True once the share task completed or was cancelled."""
        state = self.state
        return state is not None and state.is_final

    @property
    def succeeded(self) -> bool:
        """True when it completed and every file succeeded."""
        return self.state is State.SUCCESS

    @property
    def failed_files(self) -> tuple[FileResult, ...]:
        """The files whose status is FAILED."""
        return tuple(f for f in self.files if f.failed)


#: Any model of a unit of work: what ``JobOutcome.task`` holds.
Unit: TypeAlias = Task | Job | ShareTask


@attrs.frozen
class JobOutcome:
    """What became of one request in :meth:`KooDriveSession.run_jobs`.

    Attributes:
        request: The request, as given.
        task_id: The task id, once the create call returned one (None if
            submission failed).
        task: The last model seen, of the request's kind: a :class:`Job` for
            a JobRequest, a :class:`ShareTask` for a ShareTaskRequest, a
            :class:`Task` for transfers and imports (and for every kind with
            ``job_tracking="task"``). Final unless the wait was cut short.
        error: None on success; otherwise the exception: a submission error,
            :class:`TaskFailedError` (:class:`JobFailedError` for a job or
            share task with failed files, :class:`JobCancelledError` when it
            was cancelled), :class:`TaskTimeoutError`, or a polling error.
        submitted_at: When the create was about to be sent (this machine's
            clock, UTC; after any rate-limit hold), or None when it never was
            (or the outcome was made by hand). ``reconcile_outcomes`` reads it.
        answered_at: When the create call ended, with an answer or an error
            (every attempt of it was sent before), or None.
    """

    request: Request
    task_id: str | None = None
    task: Unit | None = None
    error: KooDriveError | None = None
    submitted_at: datetime | None = attrs.field(default=None, kw_only=True, eq=False)
    answered_at: datetime | None = attrs.field(default=None, kw_only=True, eq=False)

    @property
    def state(self) -> State | None:
        """The state of the last model seen (None before any was)."""
        return None if self.task is None else self.task.state

    @property
    def ok(self) -> bool:
        """True only when the work was created and fully succeeded."""
        return self.error is None and self.task is not None and self.task.state is State.SUCCESS

    @property
    def failed_files(self) -> tuple[FileResult, ...]:
        """The files that failed (jobs and share tasks; empty otherwise)."""
        task = self.task
        return () if task is None or isinstance(task, Task) else task.failed_files

    @property
    def verdict(self) -> Verdict:
        """SUCCEEDED, FAILED, REFUSED, IN_DOUBT or TIMED_OUT (see :class:`Verdict`)."""
        error = self.error
        if error is None:
            return Verdict.SUCCEEDED if self.ok else Verdict.IN_DOUBT
        if self.task_id is None:
            # The create failed: only an ambiguous failure may have created it.
            maybe = getattr(error, "possibly_created", False)
            return Verdict.IN_DOUBT if maybe else Verdict.REFUSED
        if isinstance(error, TaskFailedError):
            return Verdict.FAILED
        if isinstance(error, TaskTimeoutError):
            return Verdict.TIMED_OUT
        # Created, but polling it failed: its end is unknown.
        return Verdict.IN_DOUBT
