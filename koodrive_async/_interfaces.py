"""The small typed seams waiting and fan-out depend on, instead of the session itself.

Owns three ``typing.Protocol`` classes, in the manner of gidgethub's
``abc.GitHubAPI``:

- :class:`TaskAPI`: what waiting and fan-out need from a client (create a
  task, read a task, a job, a share task). ``KooDriveSession`` satisfies it;
  a test may pass anything that does.
- :class:`Tracker`: how the poll scheduler reads one kind of unit of work and
  tells when it is done (``_trackers``: tasks at ``GET task/{id}``, batch
  jobs at job detail, share tasks at ``share/taskDetail``).
- :class:`Waits`: the one call fan-out makes to wait for what it submitted
  (``_waiting.Waiting.wait``), so that it reaches into nothing private.

Why: waiting and fan-out used to be a mixin that stubbed ``get_task`` and
``submit`` and reached into the session's private methods. This module must
never import the session, the transport, aiohttp or the scheduler: it is
imported by all of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Protocol, TypeVar

from ._models import Job, Request, ShareTask, Task
from ._policies import PollPolicy

__all__ = ["TaskAPI", "Tracker", "UnitT", "Waits"]

#: The model of one unit of work a tracker reads (``Task``, ``Job`` or ``ShareTask``).
UnitT = TypeVar("UnitT")


class TaskAPI(Protocol):
    """The two calls waiting and fan-out make on a client."""

    async def submit(self, request: Request) -> str:
        """Create the task ``request`` describes and return its id."""
        ...

    async def get_task(self, task_id: str) -> Task:
        """Read one task (``GET task/{task_id}``)."""
        ...

    async def get_job(self, job_id: str) -> Job:
        """Read one batch job (``GET /{job_id}``)."""
        ...

    async def get_share_task(
        self, task_id: str, *, share_id: str, kdstoken: str | None = None
    ) -> ShareTask:
        """Read one share task (``POST share/taskDetail``)."""
        ...


class Tracker(Protocol[UnitT]):
    """How to read one kind of unit of work, and whether it is done.

    The poll scheduler calls :meth:`fetch` for every poll; everything it
    knows about the unit's fields goes through the other methods, which are
    pure and called once per answer.
    """

    def fetch(self, unit_id: str) -> Awaitable[UnitT]:
        """Read the unit once (one API call, already retried by the transport)."""
        ...

    def keep(self, unit: UnitT, unit_id: str) -> Any:
        """What a waiter with a deadline holds on to of ``unit`` (compact, or strings shared)."""
        ...

    def restore(self, kept: Any, unit_id: str) -> UnitT:
        """The model :meth:`keep` kept, equal field by field (for ``TaskTimeoutError.last``)."""
        ...

    def mark(self, unit: UnitT) -> Hashable:
        """What :meth:`changed` compares of ``unit`` (small, never None).

        A waiter without a deadline can never raise ``TaskTimeoutError``, so
        it keeps only this of its last answer, not the whole model.
        """
        ...

    def changed(self, previous: Hashable | None, unit: UnitT) -> bool:
        """Tell whether ``on_status`` is due: ``previous`` (the :meth:`mark` of the
        answer before, None for the first) differs from ``unit``'s."""
        ...

    def finished(self, unit: UnitT) -> bool:
        """Tell whether the unit reached a terminal state (polling stops)."""
        ...

    def failure(self, unit: UnitT) -> Exception | None:
        """For a finished unit: the error its wait ends with, or None on success."""
        ...

    def progress(self, unit: UnitT) -> float | None:
        """How far an unfinished unit got, 0 to 1, or None if its kind reports no progress."""
        ...

    def server_bounds(
        self, unit: UnitT, started: float, running: float | None, done: float
    ) -> tuple[float, float] | None:
        """Bounds of a finished unit's duration by the service's own times, if it gives them.

        ``started`` (its creation answer arrived), ``running`` (the last
        poll that saw it unfinished was sent, or None) and ``done`` (the
        finished answer arrived) are loop times; the bounds are seconds
        from ``started``, equal when the service's times are exact.
        """
        ...


class Waits(Protocol):
    """The wait fan-out uses: one task, through the session's shared scheduler."""

    async def wait(
        self,
        task_id: str,
        *,
        timeout: float | None,
        poll: PollPolicy,
        on_status: Callable[[Task], Any] | None = None,
        kind: Hashable | None = None,
        started: float | None = None,
        tracker: Tracker[Any] | None = None,
    ) -> Any:
        """Wait until the unit is terminal.

        Args:
            task_id: The task (or job, or share task) id.
            timeout: Deadline in seconds from now, or None.
            poll: The polling intervals.
            on_status: Called on every status change.
            kind: Key to learn durations under (see ``_estimator.duration_key``).
            started: Loop time the task was submitted (with ``kind``).
            tracker: How to read it (from :meth:`tracker_for`); None for a task.

        Returns:
            The final model once it succeeded.
        """
        ...

    def tracker_for(self, request: Request) -> Tracker[Any] | None:
        """The tracker that reads what ``request`` creates (None: a task, ``GET task/{id}``)."""
        ...
