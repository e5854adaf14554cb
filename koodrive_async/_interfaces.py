"""The small typed seams waiting and fan-out depend on, instead of the session itself.

Owns three ``typing.Protocol`` classes, in the manner of gidgethub's
``abc.GitHubAPI``:

- :class:`TaskAPI`: what waiting and fan-out need from a client (create a
  task, read a task). ``KooDriveSession`` satisfies it; a test may pass
  anything that does.
- :class:`Tracker`: how the poll scheduler reads one kind of unit of work and
  tells when it is done. ``_trackers.TaskTracker`` is the one kind today
  (``GET task/{id}``); batch jobs and share tasks, read at their own
  endpoints, become one more tracker each.
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

from ._models import Request, Task
from ._policies import PollPolicy

__all__ = ["TaskAPI", "Tracker", "UnitT", "Waits"]

#: The model of one unit of work a tracker reads (``Task`` today).
UnitT = TypeVar("UnitT")


class TaskAPI(Protocol):
    """The two calls waiting and fan-out make on a client."""

    async def submit(self, request: Request) -> str:
        """Create the task ``request`` describes and return its id."""
        ...

    async def get_task(self, task_id: str) -> Task:
        """Read one task (``GET task/{task_id}``)."""
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

    def keep(self, unit: UnitT, unit_id: str) -> UnitT:
        """Return the copy of ``unit`` a waiter holds on to (its strings shared)."""
        ...

    def changed(self, previous: UnitT | None, unit: UnitT) -> bool:
        """Tell whether ``on_status`` is due: the first answer, or a change worth reporting."""
        ...

    def finished(self, unit: UnitT) -> bool:
        """Tell whether the unit reached a terminal state (polling stops)."""
        ...

    def failure(self, unit: UnitT) -> Exception | None:
        """For a finished unit: the error its wait ends with, or None on success."""
        ...

    def server_duration(self, unit: UnitT) -> float | None:
        """Seconds from creation to the end by the service's own times, if it gives them."""
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
    ) -> Task:
        """Wait until the task is terminal.

        Args:
            task_id: The task.
            timeout: Deadline in seconds from now, or None.
            poll: The polling intervals.
            on_status: Called on every status change.
            kind: Key to learn durations under (see ``_estimator.duration_key``).
            started: Loop time the task was submitted (with ``kind``).

        Returns:
            The task once it succeeded.
        """
        ...
