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
    "JOB_ACTIONS",
    "TERMINAL_STATUSES",
    "JobAction",
    "JobType",
    "ShareTaskType",
    "TaskStatus",
    "TaskType",
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
