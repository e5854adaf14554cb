"""Waiting for a line an earlier run submitted, at the endpoint where its kind is reported.

Owns :func:`wait_for_line`: a resumed job line is waited for at job detail
(``wait_for_job``), a share line at share-task detail with the line's share id
and kdstoken (``wait_for_share_task``), a transfer or import at task detail
(``wait_for_task``): the same split the fan-out makes for the lines it sends
itself. A session whose ``job_tracking`` is ``"task"`` (a deployment that
answers job ids at ``GET task/{id}``) waits for every kind there, as its
fan-out does.

Must never import: ``cli/``, ``rich``, ``argparse``, a journal backend.
"""

from __future__ import annotations

from .._models import Job, JobRequest, Request, ShareTask, ShareTaskRequest, Task
from .._policies import PollPolicy
from ._session import BulkSession

__all__ = ["job_tracking_of", "wait_for_line"]


def job_tracking_of(session: BulkSession) -> str:
    """The session's ``job_tracking`` (``"job"`` or ``"task"``), ``"job"`` when it has none.

    The same session must wait for resumed lines where its fan-out would; a
    session-like object without the setting reads jobs at their detail.
    """
    value = getattr(session, "job_tracking", None)
    return value if value in ("job", "task") else "job"


async def wait_for_line(
    session: BulkSession,
    request: Request,
    task_id: str,
    *,
    timeout: float | None,
    poll: PollPolicy,
) -> Task | Job | ShareTask:
    """Wait until the work ``request`` created (``task_id``) succeeds.

    Args:
        session: The session.
        request: The plan line's request (its kind, and a share line's share
            id and kdstoken).
        task_id: The id the create returned.
        timeout: One deadline for the wait, or None.
        poll: The polling intervals.

    Returns:
        The final model of its kind.

    Raises:
        TaskFailedError: It failed (JobFailedError: files failed;
            JobCancelledError: cancelled).
        KooDriveError: As the session's waits.
    """
    if job_tracking_of(session) == "job":
        if isinstance(request, JobRequest):
            return await session.wait_for_job(task_id, timeout=timeout, poll=poll)
        if isinstance(request, ShareTaskRequest):
            return await session.wait_for_share_task(
                task_id,
                share_id=request.share_id,
                kdstoken=request.kdstoken,
                timeout=timeout,
                poll=poll,
            )
    return await session.wait_for_task(task_id, timeout=timeout, poll=poll)
