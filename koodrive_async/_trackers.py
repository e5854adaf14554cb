"""Trackers: how each kind of unit of work is read and when it is done.

Owns :class:`TaskTracker`, the :class:`~koodrive_async._interfaces.Tracker`
for tasks read at ``GET task/{id}``: SUCCESS and FAILED are terminal, FAILED
ends the wait with :class:`TaskFailedError`, ``on_status`` fires on a change
of status. Kept out of ``_polling.py`` so the scheduler knows nothing of a
Task's fields; batch jobs (``GET /{job_id}``) and share tasks
(``share/taskDetail``) become one more class here each. Must never import
the scheduler, the session, the transport or aiohttp.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from ._enums import TaskStatus
from ._exceptions import TaskFailedError
from ._models import Task

__all__ = ["TaskTracker"]

#: Above this many distinct shared strings the table starts afresh.
MAX_SHARED_STRINGS = 4096


class TaskTracker:
    """Tracks tasks through ``get_task``.

    Args:
        get_task: Reads one task (the session's ``get_task``).
    """

    __slots__ = ("fetch", "_strings")

    def __init__(self, get_task: Callable[[str], Awaitable[Task]]) -> None:
        #: Reads one task: the session's ``get_task`` itself, not a wrapper,
        #: so a poll costs no extra coroutine.
        self.fetch = get_task
        self._strings: dict[str, str] = {}

    def keep(self, unit: Task, unit_id: str) -> Task:
        """Return ``unit`` with the strings all tasks share stored once.

        Every waiter keeps its last Task (``TaskTimeoutError.last`` needs
        it); with 100,000 waiters, one copy of the user, tenant, locale and
        of the id the waiter already holds saves ~250 bytes each.

        Args:
            unit: The Task just read.
            unit_id: The id the waiter holds.

        Returns:
            The same Task, or an equal one sharing those strings.
        """
        strings = self._strings
        if len(strings) > MAX_SHARED_STRINGS:
            strings.clear()
        changes: dict[str, Any] = {}
        if unit.task_id == unit_id and unit.task_id is not unit_id:
            changes["task_id"] = unit_id
        for name in ("user_id", "tenant_id", "locale"):
            value = getattr(unit, name)
            if value is not None:
                shared = strings.setdefault(value, value)
                if shared is not value:
                    changes[name] = shared
        return attrs.evolve(unit, **changes) if changes else unit

    def changed(self, previous: Task | None, unit: Task) -> bool:
        """True on the first answer and whenever the status changed."""
        return previous is None or previous.status != unit.status

    def finished(self, unit: Task) -> bool:
        """True once the task is SUCCESS or FAILED."""
        status = unit.status
        return status == TaskStatus.SUCCESS or status == TaskStatus.FAILED

    def failure(self, unit: Task) -> Exception | None:
        """:class:`TaskFailedError` for a FAILED task, None for SUCCESS."""
        return None if unit.status == TaskStatus.SUCCESS else TaskFailedError(unit)

    def server_duration(self, unit: Task) -> float | None:
        """``end_time - create_time`` in seconds, when the service gave both."""
        if unit.create_time is None or unit.end_time is None:
            return None
        return (unit.end_time - unit.create_time).total_seconds()
