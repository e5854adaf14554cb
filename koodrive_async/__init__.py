"""koodrive_async: an asyncio client for KooDrive's task and batch-job Open API.

Quick start::

    async with KooDriveSession(base_url, user_id="...", token="...") as s:
        task_id = await s.create_job(JobType.COPY, src_container_id="...",
                                     dst_container_id="...", files=[FileInfo("F1")])
        task = await s.wait_for_task(task_id)

The embedded emulator (``koodrive_async.emulator``) serves the same API on
loopback for tests and demos.
"""

from ._enums import JobAction, JobType, ShareTaskType, TaskStatus, TaskType
from ._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CredentialsError,
    InvalidRequestError,
    KooDriveError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    TaskFailedError,
    TaskTimeoutError,
)
from ._models import (
    FileInfo,
    FileRef,
    ImportTaskRequest,
    JobOutcome,
    JobRequest,
    Request,
    ShareTaskRequest,
    Task,
    TaskPage,
    TransferTaskRequest,
)
from ._policies import PollPolicy, RetryPolicy
from ._session import KooDriveSession
from ._utils import chunked
from ._version import __version__

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CredentialsError",
    "FileInfo",
    "FileRef",
    "ImportTaskRequest",
    "InvalidRequestError",
    "JobAction",
    "JobOutcome",
    "JobRequest",
    "JobType",
    "KooDriveError",
    "KooDriveSession",
    "NotFoundError",
    "PermissionDeniedError",
    "PollPolicy",
    "RateLimitError",
    "Request",
    "ResponseValidationError",
    "RetryPolicy",
    "ServerError",
    "ShareTaskRequest",
    "ShareTaskType",
    "Task",
    "TaskFailedError",
    "TaskPage",
    "TaskStatus",
    "TaskTimeoutError",
    "TaskType",
    "TransferTaskRequest",
    "__version__",
    "chunked",
]
