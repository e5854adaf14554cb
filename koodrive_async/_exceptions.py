"""The exceptions raised by koodrive_async.

Every error the public API raises is a :class:`KooDriveError`; no aiohttp,
cattrs or json exception ever escapes. The hierarchy::

    KooDriveError
    ├── InvalidRequestError (also ValueError)   bad input, caught before any request is sent
    ├── CredentialsError                        the token provider failed; nothing was sent
    ├── APIConnectionError                      could not get a response
    │   └── APITimeoutError (also TimeoutError)
    ├── APIError   the server said no: status_code, code (str), msg, trace_id, body
    │   ├── BadRequestError 400
    │   ├── AuthenticationError 401
    │   ├── PermissionDeniedError 403
    │   ├── NotFoundError 404
    │   ├── RateLimitError 429 (.retry_after, .attempts, .retries_exhausted)
    │   └── ServerError 5xx
    ├── ResponseValidationError                 a body we cannot understand
    ├── TaskFailedError   .task (final Task, Job or ShareTask), .result_code
    │   ├── JobFailedError      a job or share task ended with failed files (.failed_files)
    │   └── JobCancelledError   a job or share task was cancelled (.job)
    └── TaskTimeoutError (also TimeoutError)    .task_id, .last

Messages name the method, the path, the HTTP status, the business code, the
server's message and the trace id. They never contain the token, the app
secret or an archive password: the places that build them only ever see the
request's method and path, never its headers or body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._models import FileResult, Job, ShareTask, Task

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CreateVetoedError",
    "CredentialsError",
    "InvalidRequestError",
    "JobCancelledError",
    "JobFailedError",
    "KooDriveError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseValidationError",
    "ServerError",
    "TaskFailedError",
    "TaskTimeoutError",
]


def _where(method: str | None, path: str | None) -> str:
    if method and path:
        return f"{method} {path}"
    return path or method or ""


def _join(*parts: str | None) -> str:
    return "; ".join(p for p in parts if p)


class KooDriveError(Exception):
    """Base class of every exception raised by koodrive_async."""


class CreateVetoedError(KooDriveError):
    """A create's ``before_create`` guard refused to let an attempt be sent; that attempt was not.

    Raised by the guard a caller gives ``run_jobs`` / ``stream_jobs``
    (``before_create``), to stop a create at the last moment: a bulk worker
    that lost its lease on a plan line to another worker, say. Attempts made
    before it were refused by the service in a way that proves it did not
    act (only those are retried), so nothing was created.
    """


class InvalidRequestError(KooDriveError, ValueError):
    """The arguments cannot make a valid request; nothing was sent.

    Args:
        message: What is wrong, naming the offending field.
        field: The (snake_case) argument or field at fault, when there is one.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CredentialsError(KooDriveError):
    """The ``token_provider`` could not supply a token; nothing was sent with it.

    Raised when the provider raises, returns something that is not a usable
    token, or does not answer within the session's ``timeout``. The request
    the token was for was not sent, so nothing was created and it is safe to
    try again. When it happens on the one refresh after a 401 (``refresh`` is
    True), the earlier attempt was sent and refused with 401, which also
    proves nothing was created. The message names the kind of failure (the
    provider's exception type), never a token; the provider's own exception
    is the ``__cause__``.

    Attributes:
        refresh: True when the failure was on the forced refresh after a 401.
        possibly_created: Always False (the same attribute as the other
            errors of a create, for code that checks it on any error).
    """

    possibly_created = False

    def __init__(self, message: str, *, refresh: bool = False) -> None:
        super().__init__(message)
        self.refresh = refresh


class APIConnectionError(KooDriveError):
    """No usable HTTP response was received (DNS, refused, reset, TLS, ...).

    Attributes:
        method: HTTP method of the call.
        path: URL path of the call.
        trace_id: The X-Traceid sent with every attempt of the call.
        possibly_created: True when the request was a create (POST) that may
            have reached the server before the connection failed, so the task
            may exist even though no id came back. Such a call is never retried.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        path: str | None = None,
        trace_id: str | None = None,
        possibly_created: bool = False,
    ) -> None:
        self.method = method
        self.path = path
        self.trace_id = trace_id
        self.possibly_created = possibly_created
        self.message = message
        super().__init__(
            _join(
                _where(method, path),
                message,
                "the task may have been created" if possibly_created else None,
                f"trace_id={trace_id}" if trace_id else None,
            )
        )


class APITimeoutError(APIConnectionError, TimeoutError):
    """The request timed out before a full response arrived."""


class APIError(KooDriveError):
    """The server answered, and the answer was an error.

    Raised for any HTTP status >= 400 and for a 200 whose body ``code`` is not 0.
    The subclass is chosen by the HTTP status.

    Attributes:
        status_code: The HTTP status.
        code: The business code from the body (always a str), or None.
        msg: The server's message from the body, or None.
        trace_id: The X-Traceid of the call.
        body: The raw response body (decoded text, possibly an HTML page).
        method: HTTP method of the call.
        path: URL path of the call.
        possibly_created: True when a create (POST) was answered with an error
            that does not prove the server did nothing (500, 502, 504): the
            task may exist. Such a call is never retried.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        status_code: int,
        code: str | None = None,
        msg: str | None = None,
        trace_id: str | None = None,
        body: str | None = None,
        method: str | None = None,
        path: str | None = None,
        possibly_created: bool = False,
    ) -> None:
        self.status_code = status_code
        self.code = code
        self.msg = msg
        self.trace_id = trace_id
        self.body = body
        self.method = method
        self.path = path
        self.possibly_created = possibly_created
        super().__init__(
            _join(
                _where(method, path),
                f"HTTP {status_code}",
                f"code={code}" if code is not None else None,
                f"msg={msg!r}" if msg is not None else None,
                message,
                "the task may have been created" if possibly_created else None,
                f"trace_id={trace_id}" if trace_id else None,
            )
        )


class BadRequestError(APIError):
    """HTTP 400: the service rejected the request (also used for failed app auth)."""


class AuthenticationError(APIError):
    """HTTP 401: the token is missing, invalid or expired."""


class PermissionDeniedError(APIError):
    """HTTP 403: the gateway or the service refused access."""


class NotFoundError(APIError):
    """HTTP 404: no such resource (for example an unknown task id)."""


class RateLimitError(APIError):
    """HTTP 429: throttled, and retrying within policy did not help.

    The transport already spent the call's one retry budget
    (``RetryPolicy.max_attempts``) on it, or stopped early because the
    server asked for a wait longer than ``RetryPolicy.max_retry_after``.
    A 429 proves nothing was created, but the error is final for this call:
    code that resubmits would multiply the budget.

    Attributes:
        retry_after: Seconds the server asked us to wait, if it said, measured
            on the server's clock (an HTTP-date ``Retry-After`` is compared
            with the response's ``Date``), so a skewed local clock does not
            change it.
        attempts: How many attempts the call made (None when unknown).
        retries_exhausted: True when every attempt of the retry budget was
            used; False when the transport stopped early because
            ``retry_after`` exceeded ``RetryPolicy.max_retry_after``.
        deferred: True when the transport did not wait at all because its
            caller sends throttled creates again itself, after a hold it
            shares (a bulk run's lines go back to pending).
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        attempts: int | None = None,
        retries_exhausted: bool = False,
        deferred: bool = False,
        **kwargs: object,
    ) -> None:
        self.retry_after = retry_after
        self.attempts = attempts
        self.retries_exhausted = retries_exhausted
        self.deferred = deferred
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class ServerError(APIError):
    """HTTP 5xx: the service or its gateway failed."""


class ResponseValidationError(KooDriveError):
    """A success response whose body cannot be understood.

    Examples: an HTML page with status 200, invalid JSON, a create response
    without a task id, a task without ``taskId``.

    Attributes:
        method: HTTP method of the call.
        path: URL path of the call.
        status_code: The HTTP status of the response.
        trace_id: The X-Traceid of the call.
        body: The raw response body, truncated to a few KiB.
        possibly_created: True when the call was a create (POST) that the
            server answered with a success status: the task probably exists
            even though no usable id came back. Such a call is never retried.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        path: str | None = None,
        status_code: int | None = None,
        trace_id: str | None = None,
        body: str | None = None,
        possibly_created: bool = False,
    ) -> None:
        self.method = method
        self.path = path
        self.status_code = status_code
        self.trace_id = trace_id
        self.body = body
        self.possibly_created = possibly_created
        super().__init__(
            _join(
                _where(method, path),
                f"HTTP {status_code}" if status_code is not None else None,
                message,
                "the task may have been created" if possibly_created else None,
                f"trace_id={trace_id}" if trace_id else None,
            )
        )


class TaskFailedError(KooDriveError):
    """The task reached FAILED. A failed task is not an HTTP error.

    Attributes:
        task: The final model as the server reported it: a Task, or for the
            subclasses a Job or ShareTask.
        result_code: The task's 18xxxxxx result code, if the server gave one.
    """

    def __init__(self, task: Task | Job | ShareTask, message: str | None = None) -> None:
        self.task = task
        self.result_code = task.result_code
        super().__init__(
            message
            or (
                f"task {task.task_id} failed"
                + (f" with resultCode {task.result_code}" if task.result_code else "")
            )
        )


#: Most failed file ids an error message names.
_MAX_FILES_SHOWN = 10


class JobFailedError(TaskFailedError):
    """A batch job or share task completed with some or all of its files failed.

    Attributes:
        job: The final Job or ShareTask (also ``.task``).
        failed_files: The FileResult of every file that failed (may be empty
            when the service reported a failure without per-file results).
        result: The JobResult (PARTIALLY_FAILED or ALL_FAILED), or the int
            the service sent.
    """

    def __init__(self, job: Job | ShareTask) -> None:
        self.job = job
        self.failed_files: tuple[FileResult, ...] = job.failed_files
        self.result = job.result
        kind = "share task" if type(job).__name__ == "ShareTask" else "job"
        ids = [f.file_id or "?" for f in self.failed_files[:_MAX_FILES_SHOWN]]
        more = len(self.failed_files) - len(ids)
        files = ""
        if self.failed_files:
            files = (
                f": {len(self.failed_files)} of {len(job.files)} files failed ("
                + ", ".join(ids)
                + (f", and {more} more" if more > 0 else "")
                + ")"
            )
        result = getattr(job.result, "name", job.result)
        super().__init__(
            job,
            f"{kind} {job.task_id} failed"
            + (f" ({result})" if result is not None else "")
            + files
            + (f"; resultCode {job.result_code}" if job.result_code else ""),
        )


class JobCancelledError(TaskFailedError):
    """A batch job or share task was cancelled before it completed.

    Attributes:
        job: The final Job or ShareTask (also ``.task``); its ``files`` say
            which files were done before the cancellation.
    """

    def __init__(self, job: Job | ShareTask) -> None:
        self.job = job
        kind = "share task" if type(job).__name__ == "ShareTask" else "job"
        super().__init__(job, f"{kind} {job.task_id} was cancelled")


class TaskTimeoutError(KooDriveError, TimeoutError):
    """The wait's deadline passed before the task reached a terminal state.

    The task itself is untouched on the server and may still finish.

    Attributes:
        task_id: The id of the task being waited for.
        last: The last model seen while polling (a Task, Job or ShareTask),
            or None if none was seen.
    """

    def __init__(
        self,
        task_id: str,
        last: Task | Job | ShareTask | None = None,
        *,
        timeout: float | None = None,
    ):
        self.task_id = task_id
        self.last = last
        self.timeout = timeout
        status = getattr(last.status, "name", last.status) if last is not None else None
        super().__init__(
            f"task {task_id} did not finish"
            + (f" within {timeout:g}s" if timeout is not None else "")
            + (f"; last status {status}" if status is not None else "; never observed")
        )
