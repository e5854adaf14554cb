"""Waiting for tasks: the session's shared poll scheduler, and the argument checks of the waits.

Owns :class:`Waiting`, the one object per session that holds its
:class:`~koodrive_async._polling.PollScheduler` (made lazily in the running
event loop, replaced for a new loop, stopped by :meth:`Waiting.aclose`),
implements the :class:`~koodrive_async._interfaces.Waits` seam fan-out uses,
and builds the :class:`~koodrive_async._fanout.FanOut` of ``run_jobs`` and
``stream_jobs``. It reaches the service only through a
:class:`~koodrive_async._interfaces.TaskAPI` (the session), by composition:
the session delegates ``wait_for_task``, ``run_jobs`` and ``stream_jobs``
here and keeps their documentation.

Also owns the argument checks of those three methods (``check_*``), each a
small function raising :class:`InvalidRequestError` with the public field's
name, before anything is sent.

Must never import the session, the transport or aiohttp.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterable, Callable, Hashable, Iterable
from typing import Any

from ._exceptions import InvalidRequestError
from ._fanout import FanOut
from ._interfaces import TaskAPI
from ._lifecycle import Lifecycle
from ._models import Request, Task
from ._policies import PollPolicy
from ._polling import DEFAULT_MAX_POLLS, PollScheduler
from ._tracing import Tracing

__all__ = [
    "DEFAULT_POLL",
    "Waiting",
    "check_fanout_args",
    "check_wait_args",
]

#: The default polling policy (frozen, so one shared instance is safe).
DEFAULT_POLL = PollPolicy()


# ---------------------------------------------------------------------- argument checks


def check_positive_number(value: object, field: str, *, optional: bool = True) -> None:
    """Refuse anything but a finite number > 0 (a bool is not a number here), or None.

    Raises:
        InvalidRequestError: Naming ``field``.
    """
    if value is None and optional:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidRequestError(
            f"{field} must be a positive number{' or None' if optional else ''}, got {value!r}",
            field=field,
        )


def check_task_id(task_id: object) -> None:
    """Refuse a task id that is not a non-empty string.

    Raises:
        InvalidRequestError: ``field="task_id"``.
    """
    if not isinstance(task_id, str) or not task_id.strip():
        raise InvalidRequestError(
            f"task_id must be a non-empty string, got {task_id!r}", field="task_id"
        )


def check_poll_policy(poll: object) -> None:
    """Refuse anything but a :class:`PollPolicy`.

    Raises:
        InvalidRequestError: ``field="poll"``.
    """
    if not isinstance(poll, PollPolicy):
        raise InvalidRequestError(
            f"poll must be a PollPolicy, got {type(poll).__name__}", field="poll"
        )


def check_callback(callback: object, field: str) -> None:
    """Refuse a callback that is neither callable nor None.

    Raises:
        InvalidRequestError: Naming ``field``.
    """
    if callback is not None and not callable(callback):
        raise InvalidRequestError(f"{field} must be callable or None", field=field)


def check_requests(requests: object) -> None:
    """Refuse an input that is not an (async) iterable, or is a str/bytes.

    Raises:
        InvalidRequestError: ``field="requests"``.
    """
    if not isinstance(requests, Iterable | AsyncIterable) or isinstance(requests, str | bytes):
        raise InvalidRequestError(
            "requests must be an iterable or async iterable of request models", field="requests"
        )


def check_max_concurrency(max_concurrency: object) -> None:
    """Refuse anything but an int >= 1 (a bool is not an int here).

    Raises:
        InvalidRequestError: ``field="max_concurrency"``.
    """
    if (
        isinstance(max_concurrency, bool)
        or not isinstance(max_concurrency, int)
        or max_concurrency < 1
    ):
        raise InvalidRequestError(
            f"max_concurrency must be an int >= 1, got {max_concurrency!r}",
            field="max_concurrency",
        )


def check_wait_args(task_id: object, timeout: object, poll: object, on_status: object) -> None:
    """The checks of ``wait_for_task``, in the order they have always run.

    Raises:
        InvalidRequestError: The first bad argument.
    """
    check_task_id(task_id)
    check_positive_number(timeout, "timeout")
    check_poll_policy(poll)
    check_callback(on_status, "on_status")


def check_fanout_args(
    requests: object,
    max_concurrency: object,
    max_per_second: object,
    timeout: object,
    poll: object,
    on_submitted: object,
) -> None:
    """The checks of ``run_jobs`` and ``stream_jobs``, in the order they have always run.

    Raises:
        InvalidRequestError: The first bad argument.
    """
    check_requests(requests)
    check_max_concurrency(max_concurrency)
    check_positive_number(max_per_second, "max_per_second")
    check_positive_number(timeout, "timeout")
    check_poll_policy(poll)
    check_callback(on_submitted, "on_submitted")


# ---------------------------------------------------------------------- waiting


class Waiting:
    """The waits of one session: its shared poll scheduler and its fan-outs.

    Args:
        api: Reads and creates tasks (the session).
        lifecycle: The session's state; no wait starts once it is closed.
        max_pause: Longest pause of every poll, and longest Retry-After hold
            of a submission, after a 429 (the session's
            ``RetryPolicy.max_retry_after``), in seconds.
        tracing: The session's spans: when on, each wait's polls run in the
            waiting caller's context (their spans are its children).
    """

    def __init__(
        self,
        api: TaskAPI,
        *,
        lifecycle: Lifecycle,
        max_pause: float = math.inf,
        tracing: Tracing | None = None,
    ) -> None:
        self._api = api
        self._tracing = tracing if tracing is not None else Tracing()
        self._lifecycle = lifecycle
        self._max_pause = max_pause
        self._scheduler: PollScheduler | None = None
        #: Most GETs the shared poll scheduler runs at once; read when the
        #: scheduler is made (first wait in each event loop).
        self.max_polls = DEFAULT_MAX_POLLS

    @property
    def closed(self) -> bool:
        """True once the session is closed."""
        return self._lifecycle.closed

    def scheduler(self) -> PollScheduler:
        """The poll scheduler of the running event loop, made on first use.

        Returns:
            The scheduler every wait in this loop shares.

        Raises:
            RuntimeError: The session is closed (a closed session would
                otherwise start a driver task nobody stops).
        """
        self._lifecycle.check_open()
        scheduler = self._scheduler
        if scheduler is None or scheduler.loop is not asyncio.get_running_loop():
            # A session used from a new event loop (e.g. one asyncio.run per
            # call) gets a fresh scheduler; the old loop's one is dead anyway.
            scheduler = PollScheduler(
                self._api.get_task, max_polls=self.max_polls, max_pause=self._max_pause
            )
            self._scheduler = scheduler
        return scheduler

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
        """Wait until the task is terminal (the :class:`~koodrive_async._interfaces.Waits` seam).

        Arguments are not checked here: ``wait_for_task`` checks a caller's,
        fan-out passes its own.

        Args:
            task_id: The task.
            timeout: Deadline in seconds from now, or None.
            poll: The polling intervals.
            on_status: Called with the Task on every status change.
            kind: Key to learn durations under, or None (no learning).
            started: Loop time the task was submitted (with ``kind``).

        Returns:
            The Task once it is SUCCESS.

        Raises:
            TaskFailedError: It reached FAILED.
            TaskTimeoutError: The deadline passed first.
            KooDriveError: A permanent polling error.
            RuntimeError: The session was closed.
        """
        scheduler = self.scheduler()
        waiter = scheduler.add(
            task_id,
            policy=poll,
            timeout=timeout,
            on_status=on_status,
            kind=kind,
            started=started,
            context=self._tracing.capture(),
        )
        try:
            return await waiter.future
        finally:
            # Runs on cancellation too: the waiter leaves the scheduler at once
            # (an in-flight GET for it is cancelled), the server task is untouched.
            scheduler.discard(waiter)

    def fan_out(
        self,
        requests: Iterable[Request] | AsyncIterable[Request],
        *,
        max_concurrency: int,
        max_per_second: float | None,
        timeout: float | None,
        poll: PollPolicy,
        on_submitted: Callable[[Request, str], Any] | None,
        api: TaskAPI | None = None,
    ) -> FanOut:
        """A fan-out over this session, not started yet (see :class:`FanOut`).

        ``api`` submits instead of the session's (a ``with_options`` view).

        Returns:
            The run; drive it with ``results()`` or ``stream()``.
        """
        return FanOut(
            self._api if api is None else api,
            self,
            requests,
            max_concurrency=max_concurrency,
            max_per_second=max_per_second,
            timeout=timeout,
            poll=poll,
            on_submitted=on_submitted,
            max_hold=self._max_pause,
        )

    async def aclose(self) -> None:
        """Stop the shared poll scheduler (idempotent); the session closes its lifecycle first.

        Waits still pending fail with RuntimeError. Tasks on the server are
        never touched.
        """
        scheduler = self._scheduler
        if scheduler is not None:
            await scheduler.close()
