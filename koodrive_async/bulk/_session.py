"""The part of :class:`~koodrive_async.KooDriveSession` a bulk run uses, as a Protocol.

Owns :class:`BulkSession`: the members the runner, the reconciliation and
:func:`~._cancel.cancel_plan` call. Typing the runner against it (rather than ``Any``, or
the whole session) says exactly what a bulk run needs, lets a test hand in a
small fake, and keeps the wing independent of how the session is built
inside. ``KooDriveSession`` satisfies it as it is.

Must never import: ``cli/``, ``rich``, ``argparse``, aiohttp.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol

from .._enums import JobStatus, JobType
from .._models import Job, JobOutcome, Request, ShareTask, Task, TaskPage
from .._policies import PollPolicy

__all__ = ["BulkSession"]


class BulkSession(Protocol):
    """What a bulk run calls on its session (``KooDriveSession`` is one)."""

    @property
    def base_url(self) -> str:
        """The service root (named when the endpoint cannot be reached)."""
        ...

    @property
    def clock_offset(self) -> float | None:
        """The service's clock minus ours, in seconds, or None while unknown."""
        ...

    async def list_tasks(self, *, page_size: int = ..., cursor: str | None = None) -> TaskPage:
        """One page of the task listing (the reconciliation reads them all)."""
        ...

    async def wait_for_task(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        poll: PollPolicy = ...,
        on_status: Callable[[Task], Any] | None = None,
    ) -> Task:
        """Wait for a task a previous run submitted."""
        ...

    async def wait_for_job(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        poll: PollPolicy = ...,
        on_status: Callable[[Job], Any] | None = None,
    ) -> Job:
        """Wait for a batch job a previous run submitted (at job detail)."""
        ...

    async def wait_for_share_task(
        self,
        task_id: str,
        *,
        share_id: str,
        kdstoken: str | None = None,
        timeout: float | None = None,
        poll: PollPolicy = ...,
        on_status: Callable[[ShareTask], Any] | None = None,
    ) -> ShareTask:
        """Wait for a share task a previous run submitted (at share-task detail)."""
        ...

    async def get_job(self, job_id: str) -> Job:
        """One batch job's detail (what a cancelled job became, an in-doubt job's files)."""
        ...

    async def list_jobs(
        self,
        *,
        task_type: JobType | int | None = None,
        status: JobStatus | int | None = None,
        offset: int = 0,
        limit: int = ...,
    ) -> list[Job]:
        """One page of the job list (the reconciliation of job lines reads them all)."""
        ...

    async def cancel_job(self, job_id: str) -> None:
        """Cancel a batch job that is pending or processing."""
        ...

    def seed_durations(self, like: Request, durations: Iterable[float]) -> int:
        """Plan the first waits of tasks like ``like`` from a previous run's durations."""
        ...

    def stream_jobs(
        self,
        requests: Iterable[Request] | AsyncIterable[Request],
        *,
        max_concurrency: int = 16,
        max_per_second: float | None = None,
        timeout: float | None = None,
        poll: PollPolicy = ...,
        on_submitted: Callable[[Request, str], Any] | None = None,
        before_create: Callable[[Request], Awaitable[None]] | None = None,
    ) -> AsyncIterator[JobOutcome]:
        """Submit the lines' requests and yield each outcome as it is known."""
        ...
