"""Trackers: how each kind of unit of work is read and when it is done.

Owns the :class:`~koodrive_async._interfaces.Tracker` of each kind:

* :class:`TaskTracker`, tasks read at ``GET task/{id}``: SUCCESS and FAILED
  are terminal, FAILED ends the wait with :class:`TaskFailedError`,
  ``on_status`` fires on a change of status;
* :class:`JobTracker`, batch jobs read at ``GET /{job_id}``, and
  :class:`ShareTaskTracker`, share tasks read at ``share/taskDetail`` (one
  per share, since the read needs its share id and kdstoken): their
  :class:`State` decides; SUCCESS returns, FAILED (some or all files) ends
  the wait with :class:`JobFailedError`, CANCELLED with
  :class:`JobCancelledError`; ``on_status`` fires on a change of status or
  progress.

Each tracker also says what a waiter holds of the last answer: its
``mark`` (what ``on_status`` changes are judged by) when the wait has no
deadline, else what ``keep`` returns (for tasks, the Task packed into one
bytes object by :func:`pack_task`), which ``restore`` turns back into the
model ``TaskTimeoutError.last`` carries.

Kept out of ``_polling.py`` so the scheduler knows nothing of a model's
fields. Must never import the scheduler, the session, the transport or aiohttp.
"""

from __future__ import annotations

import marshal
from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from ._coarse import SecondClock
from ._enums import State, TaskStatus, TaskType
from ._exceptions import JobCancelledError, JobFailedError, TaskFailedError
from ._models import Job, ShareTask, Task

__all__ = ["JobTracker", "ShareTaskTracker", "TaskTracker", "pack_task", "unpack_task"]

#: Above this many distinct shared strings the table starts afresh.
MAX_SHARED_STRINGS = 4096
#: The mark of a task without a status: a mark is never None (None means "no answer yet").
_NO_STATUS = "no status"
#: marshal's format for the packed Tasks (they never leave the process).
_MARSHAL_VERSION = 4
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


def _pack_time(value: object) -> tuple[int, int | None] | None:
    # Whole microseconds from the epoch and the UTC offset in seconds (None
    # for a naive time): exact, unlike a float timestamp.
    if value is None:
        return None
    if type(value) is not datetime:
        raise TypeError
    tz = value.tzinfo
    if tz is None:
        return (value - _NAIVE_EPOCH) // _MICROSECOND, None
    if type(tz) is not timezone:
        raise TypeError  # a zone with rules (DST) is not one fixed offset
    offset = value.utcoffset()
    assert offset is not None
    if tz.tzname(None) != timezone(offset).tzname(None):
        raise TypeError  # a named fixed offset: the name would be lost
    # The wall time and its offset, not the UTC instant: a time near the
    # limits (0001-01-01T00:00+05:00) has no UTC instant datetime can hold.
    return (value.replace(tzinfo=None) - _NAIVE_EPOCH) // _MICROSECOND, offset // _MICROSECOND


def _unpack_time(packed: tuple[int, int | None] | None) -> datetime | None:
    if packed is None:
        return None
    micros, offset = packed
    if offset is None:
        return _NAIVE_EPOCH + micros * _MICROSECOND
    tz = timezone.utc if offset == 0 else timezone(offset * _MICROSECOND)
    return (_NAIVE_EPOCH + micros * _MICROSECOND).replace(tzinfo=tz)


def _pack_code(value: object, enum: type[TaskType] | type[TaskStatus]) -> tuple[bool, int] | None:
    # (True, value) for a member of ``enum``, (False, value) for a plain int.
    if value is None:
        return None
    if type(value) is enum:
        return True, value.value
    if type(value) is not int:
        raise TypeError
    return False, value


def _unpack_code(packed: tuple[bool, int] | None, enum: type[TaskType] | type[TaskStatus]) -> Any:
    if packed is None:
        return None
    member, value = packed
    return enum(value) if member else value


def _text(value: object) -> str | None:
    if value is not None and type(value) is not str:
        raise TypeError
    return value


def pack_task(task: Task) -> bytes | Task:
    """An exact, compact form of ``task`` without its id: what a waiter with a deadline keeps.

    One bytes object (~330 bytes for a copy task, against ~590 for the Task,
    its strings and datetimes); :func:`unpack_task` gives back an equal Task,
    field by field, trace id included.

    Returns:
        The packed bytes, or ``task`` itself when a field holds something
        this form cannot carry exactly (a subclass, a time zone with rules).
    """
    try:
        fields = (
            _text(task.task_name),
            _pack_code(task.task_type, TaskType),
            _text(task.tenant_id),
            _text(task.user_id),
            _pack_code(task.status, TaskStatus),
            _text(task.result_code),
            _text(task.init_params),
            _text(task.locale),
            _pack_time(task.create_time),
            _pack_time(task.start_time),
            _pack_time(task.end_time),
            _text(task.trace_id),
        )
    except TypeError:
        return task
    return marshal.dumps(fields, _MARSHAL_VERSION)


def unpack_task(packed: bytes | Task, task_id: str) -> Task:
    """The Task :func:`pack_task` packed, with ``task_id`` (the waiter's) as its id."""
    if isinstance(packed, Task):
        return packed
    (name, kind, tenant, user, status, code, params, locale, created, started, ended, trace) = (
        marshal.loads(packed)
    )
    return Task(
        task_id,
        task_name=name,
        task_type=_unpack_code(kind, TaskType),
        tenant_id=tenant,
        user_id=user,
        status=_unpack_code(status, TaskStatus),
        result_code=code,
        init_params=params,
        locale=locale,
        create_time=_unpack_time(created),
        start_time=_unpack_time(started),
        end_time=_unpack_time(ended),
        trace_id=trace,
    )


class TaskTracker:
    """Tracks tasks through ``get_task``.

    Args:
        get_task: Reads one task (the session's ``get_task``).
    """

    __slots__ = ("fetch",)

    def __init__(self, get_task: Callable[[str], Awaitable[Task]]) -> None:
        #: Reads one task: the session's ``get_task`` itself, not a wrapper,
        #: so a poll costs no extra coroutine.
        self.fetch = get_task

    def keep(self, unit: Task, unit_id: str) -> bytes | Task:
        """The compact form of ``unit`` a waiter with a deadline holds (:func:`pack_task`).

        ``TaskTimeoutError.last`` needs the last Task; with 100,000 waiters,
        one bytes object instead of the Task, its strings and datetimes
        saves ~250 bytes each (:meth:`restore` rebuilds it on a timeout).

        Args:
            unit: The Task just read.
            unit_id: The id the waiter holds (the packed form omits it).

        Returns:
            The packed Task, or ``unit`` itself if it cannot be packed exactly.
        """
        if unit.task_id != unit_id:
            return unit  # not the id asked for: keep it as the service said it
        return pack_task(unit)

    def restore(self, kept: bytes | Task, unit_id: str) -> Task:
        """The Task :meth:`keep` kept, equal field by field to the one read."""
        return unpack_task(kept, unit_id)

    def mark(self, unit: Task) -> Hashable:
        """Its status (an enum member or int: nothing allocated per waiter)."""
        status = unit.status
        return _NO_STATUS if status is None else status

    def changed(self, previous: Hashable | None, unit: Task) -> bool:
        """True on the first answer and whenever the status changed."""
        return previous is None or previous != self.mark(unit)

    def finished(self, unit: Task) -> bool:
        """True once the task is SUCCESS or FAILED."""
        status = unit.status
        return status == TaskStatus.SUCCESS or status == TaskStatus.FAILED

    def failure(self, unit: Task) -> Exception | None:
        """:class:`TaskFailedError` for a FAILED task, None for SUCCESS."""
        return None if unit.status == TaskStatus.SUCCESS else TaskFailedError(unit)

    def progress(self, unit: Task) -> float | None:  # noqa: ARG002 - tasks report none
        """None: task detail has no progress field."""
        return None

    def server_bounds(
        self,
        unit: Task,
        started: float,  # noqa: ARG002 - exact times need no loop clock
        running: float | None,  # noqa: ARG002
        done: float,  # noqa: ARG002
    ) -> tuple[float, float] | None:
        """``end_time - create_time`` (exact, so both bounds), when the service gave both."""
        if unit.create_time is None or unit.end_time is None:
            return None
        seconds = (unit.end_time - unit.create_time).total_seconds()
        return seconds, seconds


def _share(strings: dict[str, str], unit: Any, names: tuple[str, ...]) -> dict[str, Any]:
    if len(strings) > MAX_SHARED_STRINGS:
        strings.clear()
    changes: dict[str, Any] = {}
    for name in names:
        value = getattr(unit, name)
        if value is not None:
            shared = strings.setdefault(value, value)
            if shared is not value:
                changes[name] = shared
    return changes


def _bounds(
    clock: SecondClock, unit: Job | ShareTask, started: float, running: float | None, done: float
) -> tuple[float, float] | None:
    # Whole-second times: on their own, end - create of a short unit is
    # 0, 1 or 2 and would mislead; read against the loop clock (learnt over
    # every unit of the tracker) they bound when it ended to one second.
    if unit.create_time is None or unit.end_time is None:
        return None
    created = unit.create_time.timestamp()
    ended = unit.end_time.timestamp()
    return clock.window(created, ended, started, running, done)


def _job_failure(unit: Job | ShareTask) -> Exception | None:
    state = unit.state
    if state is State.SUCCESS:
        return None
    if state is State.CANCELLED:
        return JobCancelledError(unit)
    return JobFailedError(unit)


def _final(unit: Job | ShareTask) -> bool:
    state = unit.state
    return state is State.SUCCESS or state is State.FAILED or state is State.CANCELLED


def _progress(unit: Job | ShareTask) -> float | None:
    value = unit.progress
    if value is None or not 0 <= value <= 100:
        return None
    return value / 100.0


def _mark(unit: Job | ShareTask) -> Hashable:
    return (unit.status, unit.progress, unit.result)


def _moved(previous: Hashable | None, unit: Job | ShareTask) -> bool:
    return previous is None or previous != _mark(unit)


class JobTracker:
    """Tracks batch jobs through job detail (``get_job``).

    Args:
        get_job: Reads one job (the session's ``get_job``).
    """

    __slots__ = ("fetch", "_clock", "_strings")

    def __init__(self, get_job: Callable[[str], Awaitable[Job]]) -> None:
        #: Reads one job: the session's ``get_job`` itself.
        self.fetch = get_job
        self._strings: dict[str, str] = {}
        self._clock = SecondClock()

    def keep(self, unit: Job, unit_id: str) -> Job:
        """Return ``unit`` with the strings all jobs share (user, tenant, container) stored once."""
        changes = _share(self._strings, unit, ("user_id", "tenant_id", "container_id"))
        if unit.job_id == unit_id and unit.job_id is not unit_id:
            changes["job_id"] = unit_id
        return attrs.evolve(unit, **changes) if changes else unit

    def restore(self, kept: Job, unit_id: str) -> Job:  # noqa: ARG002 - kept whole
        """The Job :meth:`keep` kept (the model itself)."""
        return kept

    def mark(self, unit: Job) -> Hashable:
        """Its status, progress and result (what :meth:`changed` compares)."""
        return _mark(unit)

    def changed(self, previous: Hashable | None, unit: Job) -> bool:
        """True on the first answer and whenever the status, result or progress changed."""
        return _moved(previous, unit)

    def finished(self, unit: Job) -> bool:
        """True once the job is SUCCESS, FAILED or CANCELLED."""
        return _final(unit)

    def failure(self, unit: Job) -> Exception | None:
        """JobFailedError (FAILED), JobCancelledError (CANCELLED), None for SUCCESS."""
        return _job_failure(unit)

    def progress(self, unit: Job) -> float | None:
        """Its ``progress`` as a fraction (0 to 1), or None when absent or out of range."""
        return _progress(unit)

    def server_bounds(
        self, unit: Job, started: float, running: float | None, done: float
    ) -> tuple[float, float] | None:
        """When the job ended, from its whole-second times read against the loop clock."""
        return _bounds(self._clock, unit, started, running, done)


class ShareTaskTracker:
    """Tracks the share tasks of one share through ``share/taskDetail``.

    Args:
        get_share_task: ``(task_id, *, share_id, kdstoken) -> ShareTask``
            (the session's ``get_share_task``).
        share_id: The share the tasks belong to.
        kdstoken: The share's temporary token, if it needs one (never shown).
    """

    __slots__ = ("_clock", "_get", "_kdstoken", "_share_id", "_strings")

    def __init__(
        self,
        get_share_task: Callable[..., Awaitable[ShareTask]],
        *,
        share_id: str,
        kdstoken: str | None,
    ) -> None:
        self._get = get_share_task
        self._share_id = share_id
        self._kdstoken = kdstoken
        self._strings: dict[str, str] = {}
        self._clock = SecondClock()

    def __repr__(self) -> str:
        return f"ShareTaskTracker(share_id={self._share_id!r})"

    def fetch(self, unit_id: str) -> Awaitable[ShareTask]:
        """Read one share task of this share."""
        return self._get(unit_id, share_id=self._share_id, kdstoken=self._kdstoken)

    def keep(self, unit: ShareTask, unit_id: str) -> ShareTask:
        """Return ``unit`` with its user id shared and the waiter's id reused."""
        changes = _share(self._strings, unit, ("user_id",))
        if unit.task_id == unit_id and unit.task_id is not unit_id:
            changes["task_id"] = unit_id
        return attrs.evolve(unit, **changes) if changes else unit

    def restore(self, kept: ShareTask, unit_id: str) -> ShareTask:  # noqa: ARG002 - kept whole
        """The ShareTask :meth:`keep` kept (the model itself)."""
        return kept

    def mark(self, unit: ShareTask) -> Hashable:
        """Its status, progress and result (what :meth:`changed` compares)."""
        return _mark(unit)

    def changed(self, previous: Hashable | None, unit: ShareTask) -> bool:
        """True on the first answer and whenever the status, result or progress changed."""
        return _moved(previous, unit)

    def finished(self, unit: ShareTask) -> bool:
        """True once the share task is SUCCESS, FAILED or CANCELLED."""
        return _final(unit)

    def failure(self, unit: ShareTask) -> Exception | None:
        """JobFailedError (FAILED), JobCancelledError (CANCELLED), None for SUCCESS."""
        return _job_failure(unit)

    def progress(self, unit: ShareTask) -> float | None:
        """Its ``progress`` as a fraction (0 to 1), or None when absent or out of range."""
        return _progress(unit)

    def server_bounds(
        self, unit: ShareTask, started: float, running: float | None, done: float
    ) -> tuple[float, float] | None:
        """When the share task ended, from its whole-second times read against the loop clock."""
        return _bounds(self._clock, unit, started, running, done)
