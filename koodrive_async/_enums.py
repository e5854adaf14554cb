"""The integer enums of the endpoint pages (``taskType``, ``status``, ``actionType``).

They live apart from the attrs models so that the codec, the builders and the
validators can name them without importing the models. The rule which
``actionType`` goes with which job type is here too: it is a fact about the
enums, read by the JobRequest validation.

Never imports another module of the package: everything else may import this.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "FINAL_STATES",
    "JOB_ACTIONS",
    "TERMINAL_STATUSES",
    "FileStatus",
    "JobAction",
    "JobResult",
    "JobStatus",
    "JobType",
    "ShareTaskType",
    "State",
    "TaskStatus",
    "TaskType",
    "Verdict",
]


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
TERMINAL_STATUSES: Final[frozenset[TaskStatus]] = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED})


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
JOB_ACTIONS: Final[dict[JobType, frozenset[JobAction]]] = {
    JobType.COPY: frozenset({JobAction.COPY}),
    JobType.DELETE: frozenset({JobAction.RECYCLE, JobAction.DELETE_PERMANENTLY}),
    JobType.MOVE: frozenset({JobAction.MOVE}),
    JobType.DECOMPRESS: frozenset(
        {JobAction.PREVIEW_ARCHIVE, JobAction.DECOMPRESS_ALL, JobAction.DECOMPRESS_PARTIAL}
    ),
    JobType.CLEAR_RECYCLE_BIN: frozenset({JobAction.CLEAR_RECYCLE_BIN}),
}


class JobStatus(enum.IntEnum):
    """``status`` of a batch job (``taskStatus`` of a share task)."""

    PENDING = 0
    PROCESSING = 1
    COMPLETED = 2
    """Done: ``JobResult`` says whether every file succeeded."""
    CANCELLED = 3


class JobResult(enum.IntEnum):
    """``taskResultCode`` of a completed batch job or share task."""

    ALL_SUCCEEDED = 1
    PARTIALLY_FAILED = 2
    ALL_FAILED = 3


class FileStatus(enum.IntEnum):
    """``status`` of one file of a job or share task (``taskInfos``)."""

    PENDING = 0
    SUCCEEDED = 1
    FAILED = 2


class State(enum.Enum):
    """Where a unit of work (Task, Job, ShareTask) stands, in one vocabulary.

    A task's status maps one to one; a job or share task maps pending → NEW,
    processing → EXECUTING, completed with every file succeeded → SUCCESS,
    completed with some or all files failed → FAILED, cancelled → CANCELLED.
    """

    NEW = "new"
    EXECUTING = "executing"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True for SUCCESS, FAILED and CANCELLED (the unit never changes again)."""
        return self in FINAL_STATES


#: The states a unit of work never leaves.
FINAL_STATES: Final[frozenset[State]] = frozenset({State.SUCCESS, State.FAILED, State.CANCELLED})


class Verdict(enum.Enum):
    """What became of one request of a fan-out (``JobOutcome.verdict``).

    The same words the bulk journal, ``--json`` and reports use.
    """

    SUCCEEDED = "succeeded"
    """Created and fully succeeded."""
    FAILED = "failed"
    """Created and ended failed (some or all files) or cancelled."""
    REFUSED = "refused"
    """The create was refused or never sent: nothing was created."""
    IN_DOUBT = "in_doubt"
    """The create may have been carried out (no answer, or a 500/502/504), or
    the work exists but polling it failed: look it up before sending again."""
    TIMED_OUT = "timed_out"
    """Created, and still not finished when the wait's deadline passed."""
