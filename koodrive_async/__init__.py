"""koodrive_async: an asyncio client for KooDrive's task and batch-job Open API.

Quick start::

    async with KooDriveSession(base_url, user_id="...", token="...") as s:
        task_id = await s.create_job(JobType.COPY, src_container_id="...",
                                     dst_container_id="...", files=[FileInfo("F1")])
        job = await s.wait_for_job(task_id)

The embedded emulator (``koodrive_async.emulator``) serves the same API on
loopback for tests and demos.
"""

from ._credentials import AppAuth, CarrierCredentials, SessionCredentials, create_session
from ._enums import (
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
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CreateVetoedError,
    CredentialsError,
    InvalidRequestError,
    JobCancelledError,
    JobFailedError,
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
    FileResult,
    ImportTaskRequest,
    Job,
    JobOutcome,
    JobRequest,
    Request,
    ShareTask,
    ShareTaskRequest,
    Task,
    TaskPage,
    TransferTaskRequest,
    UncompressedFile,
)
from ._policies import PollPolicy, RetryPolicy
from ._session import KooDriveSession
from ._session_api import SessionInfo
from ._utils import chunked
from ._version import __version__

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AppAuth",
    "AuthenticationError",
    "BadRequestError",
    "CarrierCredentials",
    "CreateVetoedError",
    "CredentialsError",
    "FileInfo",
    "FileRef",
    "FileResult",
    "FileStatus",
    "ImportTaskRequest",
    "InvalidRequestError",
    "Job",
    "JobAction",
    "JobCancelledError",
    "JobFailedError",
    "JobOutcome",
    "JobRequest",
    "JobResult",
    "JobStatus",
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
    "SessionCredentials",
    "SessionInfo",
    "ShareTask",
    "ShareTaskRequest",
    "ShareTaskType",
    "State",
    "Task",
    "TaskFailedError",
    "TaskPage",
    "TaskStatus",
    "TaskTimeoutError",
    "TaskType",
    "TransferTaskRequest",
    "UncompressedFile",
    "Verdict",
    "__version__",
    "chunked",
    "create_session",
]
