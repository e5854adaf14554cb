"""wait_for_task, run_jobs and stream_jobs, mixed into KooDriveSession.

PLACEHOLDER: the polling/fan-out work (issue 4) replaces the bodies below.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from ._models import JobOutcome, Request, Task, TaskStatus
from ._policies import PollPolicy

__all__ = ["WaitingMixin"]

StatusCallback = Callable[[Task], Awaitable[None] | None]
SubmittedCallback = Callable[[Request, str], Awaitable[None] | None]


class WaitingMixin:
    """Polling and fan-out helpers; needs ``get_task`` and ``submit`` from the session."""

    async def get_task(self, task_id: str) -> Task:  # pragma: no cover - provided by the session
        raise NotImplementedError

    async def submit(self, request: Request) -> str:  # pragma: no cover - provided by the session
        raise NotImplementedError

    async def _close_waiting(self) -> None:
        """Stop the shared poll scheduler; called by the session's close()."""

    async def wait_for_task(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        poll: PollPolicy = PollPolicy(),
        on_status: Callable[[Task], Any] | None = None,
    ) -> Task:
        """Wait until the task is SUCCESS (returned) or FAILED (TaskFailedError)."""
        raise NotImplementedError

    async def run_jobs(
        self,
        requests: Iterable[Request] | AsyncIterable[Request],
        *,
        max_concurrency: int = 16,
        max_per_second: float | None = None,
        timeout: float | None = None,
        poll: PollPolicy = PollPolicy(),
        on_submitted: Callable[[Request, str], Any] | None = None,
    ) -> list[JobOutcome]:
        """Submit and wait for every request; outcomes in input order."""
        raise NotImplementedError

    def stream_jobs(
        self,
        requests: Iterable[Request] | AsyncIterable[Request],
        *,
        max_concurrency: int = 16,
        max_per_second: float | None = None,
        timeout: float | None = None,
        poll: PollPolicy = PollPolicy(),
        on_submitted: Callable[[Request, str], Any] | None = None,
    ) -> AsyncIterator[JobOutcome]:
        """Like run_jobs, yielding outcomes as they finish."""
        raise NotImplementedError


_ = TaskStatus
