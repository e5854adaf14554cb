"""wait_for_task, run_jobs and stream_jobs, mixed into KooDriveSession.

The mechanics live in ``_polling.py`` (the shared poll scheduler) and
``_fanout.py`` (bounded, paced fan-out); this module holds the public
methods, their argument checks and their documentation.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
)
from typing import Any

from ._exceptions import InvalidRequestError
from ._fanout import FanOut
from ._models import JobOutcome, Request, Task
from ._policies import PollPolicy, RetryPolicy
from ._polling import PollScheduler

__all__ = ["WaitingMixin"]

#: The default polling policy (frozen, so one shared instance is safe).
DEFAULT_POLL = PollPolicy()

StatusCallback = Callable[[Task], Awaitable[None] | None]
SubmittedCallback = Callable[[Request, str], Awaitable[None] | None]


def _check_positive_number(value: object, field: str, *, optional: bool = True) -> None:
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


def _check_common(timeout: object, poll: object, callback: object, callback_name: str) -> None:
    _check_positive_number(timeout, "timeout")
    if not isinstance(poll, PollPolicy):
        raise InvalidRequestError(
            f"poll must be a PollPolicy, got {type(poll).__name__}", field="poll"
        )
    if callback is not None and not callable(callback):
        raise InvalidRequestError(f"{callback_name} must be callable or None", field=callback_name)


def _check_fanout(
    requests: object,
    max_concurrency: object,
    max_per_second: object,
    timeout: object,
    poll: object,
    on_submitted: object,
) -> None:
    if not isinstance(requests, Iterable | AsyncIterable) or isinstance(requests, str | bytes):
        raise InvalidRequestError(
            "requests must be an iterable or async iterable of request models", field="requests"
        )
    if (
        isinstance(max_concurrency, bool)
        or not isinstance(max_concurrency, int)
        or max_concurrency < 1
    ):
        raise InvalidRequestError(
            f"max_concurrency must be an int >= 1, got {max_concurrency!r}",
            field="max_concurrency",
        )
    _check_positive_number(max_per_second, "max_per_second")
    _check_common(timeout, poll, on_submitted, "on_submitted")


class WaitingMixin:
    """Polling and fan-out helpers; needs ``get_task`` and ``submit`` from the session.

    All waits of one session share one :class:`~koodrive_async._polling.PollScheduler`,
    created on first use in the running event loop and stopped by the
    session's ``close()``.
    """

    #: Most GETs the shared poll scheduler runs at once (per session).
    max_concurrent_polls: int = 32

    _poll_scheduler: PollScheduler | None = None
    #: Set by the session's close(); no scheduler may be started after it.
    _closed: bool = False
    #: The session's retry policy (set by its __init__): its max_retry_after
    #: also bounds the pauses of polls and submissions after a 429.
    _retry: RetryPolicy = RetryPolicy()

    async def get_task(self, task_id: str) -> Task:  # pragma: no cover - provided by the session
        raise NotImplementedError

    async def submit(self, request: Request) -> str:  # pragma: no cover - provided by the session
        raise NotImplementedError

    def _scheduler(self) -> PollScheduler:
        if self._closed:
            # Else a closed session would start a driver task nobody stops.
            raise RuntimeError("the KooDriveSession is closed")
        scheduler = self._poll_scheduler
        if scheduler is None or scheduler.loop is not asyncio.get_running_loop():
            if scheduler is not None and scheduler.closed:
                raise RuntimeError("the session is closed")
            # A session used from a new event loop (e.g. one asyncio.run per
            # call) gets a fresh scheduler; the old loop's one is dead anyway.
            scheduler = PollScheduler(
                self.get_task,
                max_polls=self.max_concurrent_polls,
                max_pause=self._retry.max_retry_after,
            )
            self._poll_scheduler = scheduler
        return scheduler

    async def _close_waiting(self) -> None:
        """Stop the shared poll scheduler; called by the session's close().

        Waits still pending fail with RuntimeError. Tasks on the server are
        never touched.
        """
        scheduler = self._poll_scheduler
        if scheduler is not None:
            await scheduler.close()

    async def _wait_task(
        self,
        task_id: str,
        *,
        timeout: float | None,
        poll: PollPolicy,
        on_status: Callable[[Task], Any] | None,
        kind: Hashable | None,
        started: float | None,
    ) -> Task:
        scheduler = self._scheduler()
        waiter = scheduler.add(
            task_id, policy=poll, timeout=timeout, on_status=on_status, kind=kind, started=started
        )
        try:
            return await waiter.future
        finally:
            # Runs on cancellation too: the waiter leaves the scheduler at once
            # (an in-flight GET for it is cancelled), the server task is untouched.
            scheduler.discard(waiter)

    async def wait_for_task(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        poll: PollPolicy = DEFAULT_POLL,
        on_status: Callable[[Task], Any] | None = None,
    ) -> Task:
        """Wait until a task succeeds, polling it through the session's shared scheduler.

        The first poll comes ``poll.initial`` seconds after the call, then the
        interval grows by ``poll.multiplier`` up to ``poll.max_interval``, each
        one jittered by ``±poll.jitter``. Transient polling errors (connection
        errors, timeouts, 429, 5xx, unparseable bodies), which the transport has
        already retried per the session's RetryPolicy, do not end the wait: the
        poll is retried later with the same backoff, within the deadline. Only
        ``poll.max_invalid_responses`` unparseable answers in a row are
        tolerated. A 429 pauses every poll of the session for its Retry-After,
        at most ``RetryPolicy.max_retry_after``; a wait whose deadline falls
        inside such a pause still makes one last poll shortly before it.

        Args:
            task_id: The task to wait for.
            timeout: One deadline, in seconds, for the whole wait (monotonic
                clock), or None to wait as long as it takes. A GET still in
                flight when it passes is abandoned.
            poll: The polling intervals.
            on_status: Called with the Task on every status change, the first
                status seen included; may be a coroutine function (awaited).
                If it raises, the wait ends with that exception.

        Returns:
            The Task, once its status is SUCCESS.

        Raises:
            InvalidRequestError: Bad arguments (nothing is sent).
            TaskFailedError: The task reached FAILED (``.task``, ``.result_code``).
            TaskTimeoutError: The deadline passed first (``.task_id``, ``.last``).
            ResponseValidationError: ``poll.max_invalid_responses`` answers in
                a row could not be parsed.
            AuthenticationError: 401 (after any token refresh).
            BadRequestError: 400.
            PermissionDeniedError: 403.
            NotFoundError: 404: no such task for this user.
            APIError: Any other non-transient API error.
            RuntimeError: The session was closed.
        """
        if not isinstance(task_id, str) or not task_id.strip():
            raise InvalidRequestError(
                f"task_id must be a non-empty string, got {task_id!r}", field="task_id"
            )
        _check_common(timeout, poll, on_status, "on_status")
        # Same as _wait_task, inlined: one coroutine frame less per waiter
        # (~300 bytes, which matters with 100,000 waiters).
        scheduler = self._scheduler()
        waiter = scheduler.add(task_id, policy=poll, timeout=timeout, on_status=on_status)
        try:
            return await waiter.future
        finally:
            scheduler.discard(waiter)

    async def run_jobs(
        self,
        requests: Iterable[Request] | AsyncIterable[Request],
        *,
        max_concurrency: int = 16,
        max_per_second: float | None = None,
        timeout: float | None = None,
        poll: PollPolicy = DEFAULT_POLL,
        on_submitted: Callable[[Request, str], Any] | None = None,
    ) -> list[JobOutcome]:
        """Submit every request, wait for every task, and report each one.

        The input is consumed lazily (a request is pulled only when there is
        room for it), so a generator works and is never materialised. At most
        ``max_concurrency`` tasks are in flight: submitted (or being submitted)
        and not yet seen terminal. Submissions are paced to ``max_per_second``.
        Each create is retried by the session's transport only (one
        ``RetryPolicy`` budget per request); a 429 that outlasts those retries
        is that request's outcome (:class:`RateLimitError`, nothing created)
        and also halves the submission rate, which then recovers by a tenth of
        the cap per second, and holds the next submissions back for its
        ``Retry-After``. A request that would have to wait for that hold
        longer than ``RetryPolicy.max_retry_after`` (or ``timeout``) is not
        sent: its outcome is a :class:`RateLimitError` whose ``retry_after``
        says how long the service still asks to wait. A failure of one
        request (its submission, its task, its wait) is that request's
        outcome and never stops the others.

        Args:
            requests: Iterable or async iterable of request models.
            max_concurrency: Most tasks in flight at once.
            max_per_second: Most submissions per second, or None for no cap.
            timeout: Deadline in seconds of each task's wait (from its
                submission), or None. Also the longest a request waits for a
                429's Retry-After hold before it is sent.
            poll: Polling intervals; after a few tasks of a kind have finished
                the scheduler learns their typical duration and polls new ones
                around it instead (see ``_polling.py``).
            on_submitted: ``(request, task_id)``, called (and awaited if it
                returns an awaitable) as soon as each task id is known and
                before waiting starts, to journal it. If it raises, the whole
                run stops (no more submissions, waits cancelled; tasks already
                created keep running on the server) and the exception
                propagates: carrying on with a broken journal would lose track
                of work.

        Returns:
            One :class:`JobOutcome` per request, in input order. A failed
            submission has ``task_id`` None and the error (check
            ``error.possibly_created``: the task may exist); a failed task has
            :class:`TaskFailedError`; a wait past ``timeout`` has
            :class:`TaskTimeoutError` with the last Task seen.

        Raises:
            InvalidRequestError: Bad arguments (nothing is sent).
            Exception: Whatever ``on_submitted`` or the input iterable raised.
        """
        _check_fanout(requests, max_concurrency, max_per_second, timeout, poll, on_submitted)
        fan = FanOut(
            self,
            requests,
            max_concurrency=max_concurrency,
            max_per_second=max_per_second,
            timeout=timeout,
            poll=poll,
            on_submitted=on_submitted,
            max_hold=self._retry.max_retry_after,
        )
        results: list[JobOutcome | None] = []
        stream = fan.outcomes()
        try:
            async for index, outcome in stream:
                if index >= len(results):
                    results.extend([None] * (index + 1 - len(results)))
                results[index] = outcome
        finally:
            await stream.aclose()
        return [outcome for outcome in results if outcome is not None]

    def stream_jobs(
        self,
        requests: Iterable[Request] | AsyncIterable[Request],
        *,
        max_concurrency: int = 16,
        max_per_second: float | None = None,
        timeout: float | None = None,
        poll: PollPolicy = DEFAULT_POLL,
        on_submitted: Callable[[Request, str], Any] | None = None,
    ) -> AsyncIterator[JobOutcome]:
        """Like :meth:`run_jobs`, but yield each outcome as soon as it is known.

        Nothing starts until the first ``__anext__``. Memory stays bounded
        whatever the input's length: at most ``max_concurrency`` tasks are in
        flight and at most ``max_concurrency`` finished outcomes wait for the
        consumer (a slow consumer slows submissions down). Stopping early
        (``break``, ``aclose()``, cancellation) stops submitting and waiting
        and cancels every helper task; prefer
        ``async with contextlib.aclosing(s.stream_jobs(...)) as outcomes:`` so
        that this happens at once rather than when the iterator is collected.
        Arguments, outcomes and errors are those of :meth:`run_jobs`.

        Args:
            requests: Iterable or async iterable of request models.
            max_concurrency: Most tasks in flight at once.
            max_per_second: Most submissions per second, or None for no cap.
            timeout: Deadline in seconds of each task's wait, or None.
            poll: Polling intervals.
            on_submitted: Journal callback, as in :meth:`run_jobs`.

        Returns:
            An async iterator of :class:`JobOutcome`, in completion order.

        Raises:
            InvalidRequestError: Bad arguments, raised by this call itself.
        """
        _check_fanout(requests, max_concurrency, max_per_second, timeout, poll, on_submitted)
        return self._stream_jobs(
            requests,
            max_concurrency=max_concurrency,
            max_per_second=max_per_second,
            timeout=timeout,
            poll=poll,
            on_submitted=on_submitted,
        )

    async def _stream_jobs(
        self,
        requests: Iterable[Request] | AsyncIterable[Request],
        *,
        max_concurrency: int,
        max_per_second: float | None,
        timeout: float | None,
        poll: PollPolicy,
        on_submitted: Callable[[Request, str], Any] | None,
    ) -> AsyncGenerator[JobOutcome, None]:
        fan = FanOut(
            self,
            requests,
            max_concurrency=max_concurrency,
            max_per_second=max_per_second,
            timeout=timeout,
            poll=poll,
            on_submitted=on_submitted,
            max_hold=self._retry.max_retry_after,
        )
        stream = fan.outcomes()
        try:
            async for _index, outcome in stream:
                yield outcome
        finally:
            await stream.aclose()
