"""What an outcome means for its plan line (pure): the verdict and the stop signals.

Owns the mapping from the fan-out's ``(task id, task, error)`` to the state
the journal records (:func:`line_verdict`: the line's state, and for a job or
share task how it ended, its failed files and its download link), and the three facts about a
create's error that change the whole run rather than its line: it never
reached a server (:func:`could_not_connect`), the credentials were refused
or could not be produced (:func:`credentials_refused`), or the service asked
to wait longer than the policy allows (:func:`asks_to_wait`). No I/O, so
every row can be tested apart from the runner.

Must never import: ``cli/``, ``rich``, ``argparse``, the journal backends.
"""

from __future__ import annotations

import attrs

from .._enums import JobResult
from .._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    CredentialsError,
    JobCancelledError,
    JobFailedError,
    KooDriveError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TaskFailedError,
)
from .._models import Job, ShareTask, Task
from ._journal import Outcome, State
from ._mask import mask

__all__ = [
    "LineVerdict",
    "asks_to_wait",
    "could_not_connect",
    "credentials_refused",
    "error_type",
    "line_verdict",
    "masked_text",
]


@attrs.frozen
class LineVerdict:
    """What to record for a line whose outcome came back.

    Attributes:
        state: SUCCEEDED, FAILED, IN_DOUBT, or SUBMITTED (no verdict: the
            task exists and is waited for again on the next run).
        task_id: The task id, if known.
        result_code: The failed task's resultCode.
        error_type: A short grouping key of the error.
        error: The error text, secrets masked.
        outcome: How its job or share task ended (an :class:`Outcome`), or None
            (a transfer or import, or no end seen).
        failed_files: The ids of the job's failed files.
        download_url: A package's download link (a token in its query).
    """

    state: str
    task_id: str | None = None
    result_code: str | None = None
    error_type: str | None = None
    error: str | None = None
    outcome: str | None = None
    failed_files: tuple[str, ...] = ()
    download_url: str | None = attrs.field(default=None, repr=False)


def error_type(exc: BaseException) -> str:
    """A short grouping key of an error: its class, and the HTTP status and code of an API error."""
    name = type(exc).__name__
    if isinstance(exc, APIError):
        return f"{name} (HTTP {exc.status_code}" + (f", code {exc.code})" if exc.code else ")")
    return name


def masked_text(error: BaseException) -> str:
    """An error's text as the journal keeps it and the CLI shows it: secrets masked."""
    return str(mask(str(error)))


def could_not_connect(error: KooDriveError | None) -> bool:
    """True for a create that provably never reached a server (no connection was made)."""
    return (
        isinstance(error, APIConnectionError)
        and not isinstance(error, APITimeoutError)
        and not error.possibly_created
    )


def credentials_refused(error: KooDriveError | None) -> bool:
    """True when every other create would fail the same way: bad or unobtainable credentials.

    A 401 or 403 (the service refused them) or a :class:`CredentialsError`
    (the token provider failed, nothing was sent).
    """
    return isinstance(error, AuthenticationError | PermissionDeniedError | CredentialsError)


def asks_to_wait(error: KooDriveError | None) -> float | None:
    """The wait, in seconds, a 429 asks for when it is longer than the run may wait.

    The transport gives up early on a ``Retry-After`` above
    ``RetryPolicy.max_retry_after``, and the fan-out refuses, unsent, the
    creates that would have to wait for it: neither created anything, and
    neither is the line's fault. A 429 that used up the whole retry budget
    (``retries_exhausted``) is not one of them, nor one the transport handed
    back at once for the run to send again after a shared hold (``deferred``):
    their lines are pending again and sent after the hold.

    Returns:
        The seconds the service asks for, or None.
    """
    if not isinstance(error, RateLimitError) or error.retries_exhausted or error.deferred:
        return None
    return error.retry_after


def line_verdict(
    task_id: str | None, task: Task | Job | ShareTask | None, error: KooDriveError | None
) -> LineVerdict:
    """The verdict of one outcome of the fan-out (or of a resumed wait).

    Args:
        task_id: The task id, when the create returned one.
        task: The last task seen, if any.
        error: The error that ended the create or the wait, if any.

    Returns:
        What to record.
    """
    if error is None:
        if task is not None and task.succeeded:
            if isinstance(task, Job | ShareTask):
                return LineVerdict(
                    State.SUCCEEDED,
                    task_id,
                    outcome=Outcome.SUCCEEDED,
                    download_url=task.download_url,
                )
            return LineVerdict(State.SUCCEEDED, task_id)
        status = task.status if task is not None else None
        return LineVerdict(
            State.SUBMITTED, task_id, None, "NoVerdict", f"the wait ended with status {status}"
        )
    if isinstance(error, JobFailedError | JobCancelledError):
        return _job_failed(task_id, error)
    if isinstance(error, TaskFailedError):
        return LineVerdict(
            State.FAILED,
            task_id or error.task.task_id,
            error.result_code,
            "TaskFailed" if error.result_code is None else None,
            masked_text(error),
        )
    if task_id is None:
        state = State.IN_DOUBT if getattr(error, "possibly_created", False) else State.FAILED
        return LineVerdict(state, None, None, error_type(error), masked_text(error))
    if isinstance(error, NotFoundError):
        return LineVerdict(State.FAILED, task_id, None, error_type(error), masked_text(error))
    # A timeout or a polling error: the task exists and goes on; the next run
    # waits for it again.
    return LineVerdict(State.SUBMITTED, task_id, None, error_type(error), masked_text(error))


def _job_outcome(error: JobFailedError | JobCancelledError) -> str:
    if isinstance(error, JobCancelledError):
        return Outcome.CANCELLED
    if error.result == JobResult.PARTIALLY_FAILED:
        return Outcome.PARTIALLY_FAILED
    if error.result == JobResult.ALL_FAILED:
        return Outcome.ALL_FAILED
    return Outcome.FAILED


def _job_failed(task_id: str | None, error: JobFailedError | JobCancelledError) -> LineVerdict:
    """A job or share task that completed with failed files, or was cancelled."""
    job = error.job
    outcome = _job_outcome(error)
    return LineVerdict(
        State.FAILED,
        task_id or job.task_id,
        error.result_code,
        # Grouped by what happened when the service gives no result code.
        outcome.replace("_", " ") if error.result_code is None else None,
        masked_text(error),
        outcome=outcome,
        failed_files=tuple(f.file_id or "?" for f in job.failed_files),
        download_url=job.download_url,
    )
