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
from collections.abc import AsyncIterable, Awaitable, Callable, Hashable, Iterable
from typing import Any

from . import _validate as check
from ._estimator import WINDOW
from ._exceptions import InvalidRequestError
from ._fanout import FanOut
from ._interfaces import TaskAPI, Tracker
from ._lifecycle import Lifecycle
from ._models import JobRequest, Request, ShareTaskRequest
from ._policies import PollPolicy
from ._polling import DEFAULT_MAX_POLLS, PollScheduler
from ._tracing import Tracing
from ._trackers import JobTracker, ShareTaskTracker

__all__ = [
    "DEFAULT_POLL",
    "JOB_TRACKING",
    "Waiting",
    "check_fanout_args",
    "check_wait_args",
]

#: The default polling policy (frozen, so one shared instance is safe).
DEFAULT_POLL = PollPolicy()

#: Where batch jobs and share tasks are read: ``"job"`` at their own detail
#: endpoints (what the reference pages say), ``"task"`` at ``GET task/{id}``.
JOB_TRACKING = ("job", "task")
#: Share trackers kept for reuse (one per share id and kdstoken) before starting afresh.
_MAX_SHARE_TRACKERS = 1024
#: Kinds whose prior durations are kept (a plan has a handful).
_MAX_PRIOR_KINDS = 256


# ---------------------------------------------------------------------- argument checks


def check_requests(requests: object) -> None:
    """Refuse an input that is not an (async) iterable, or is a str/bytes.

    Raises:
        InvalidRequestError: ``field="requests"``.
    """
    # Not check.is_collection: an async iterable is welcome here too.
    if not isinstance(requests, Iterable | AsyncIterable) or isinstance(requests, str | bytes):
        raise InvalidRequestError(
            "requests must be an iterable or async iterable of request models", field="requests"
        )


def check_wait_args(task_id: object, timeout: object, poll: object, on_status: object) -> None:
    """The checks of ``wait_for_task``, in the order they have always run.

    Raises:
        InvalidRequestError: The first bad argument.
    """
    check.text(task_id, "task_id")
    check.positive_number(timeout, "timeout", optional=True)
    check.instance_of(PollPolicy, poll, "poll")
    check.callable_or_none(on_status, "on_status")


def check_fanout_args(
    requests: object,
    max_concurrency: object,
    max_per_second: object,
    timeout: object,
    poll: object,
    on_submitted: object,
    before_create: object = None,
) -> None:
    """The checks of ``run_jobs`` and ``stream_jobs``, in the order they have always run.

    Raises:
        InvalidRequestError: The first bad argument.
    """
    check_requests(requests)
    check.int_in_range(max_concurrency, "max_concurrency", low=1)
    check.positive_number(max_per_second, "max_per_second", optional=True)
    check.positive_number(timeout, "timeout", optional=True)
    check.instance_of(PollPolicy, poll, "poll")
    check.callable_or_none(on_submitted, "on_submitted")
    check.callable_or_none(before_create, "before_create")


# ---------------------------------------------------------------------- waiting


class Waiting:
    """The waits of one session: its shared poll scheduler and its fan-outs.

    Args:
        api: Reads and creates tasks (the session).
        lifecycle: The session's state; no wait starts once it is closed.
        max_pause: Longest pause of every poll, and longest Retry-After hold
            of a submission, after a 429 (the session's
            ``RetryPolicy.max_retry_after``), in seconds.
        job_tracking: ``"job"``: fan-out reads batch jobs and share tasks at
            their detail endpoints; ``"task"``: at ``GET task/{id}``.
        tracing: The session's spans: when on, each wait's polls run in the
            waiting caller's context (their spans are its children).
    """

    def __init__(
        self,
        api: TaskAPI,
        *,
        lifecycle: Lifecycle,
        max_pause: float = math.inf,
        job_tracking: str = "job",
        tracing: Tracing | None = None,
    ) -> None:
        self._api = api
        self._tracing = tracing if tracing is not None else Tracing()
        self._lifecycle = lifecycle
        self._max_pause = max_pause
        self._job_tracking = job_tracking
        self._job_tracker: JobTracker | None = None
        self._share_trackers: dict[tuple[str, str | None], ShareTaskTracker] = {}
        self._scheduler: PollScheduler | None = None
        # Durations known before this session saw any unit end (a previous
        # run's), per kind: every scheduler this session makes starts from them.
        self._priors: dict[Hashable, list[float]] = {}
        #: Most GETs the shared poll scheduler runs at once; read when the
        #: scheduler is made (first wait in each event loop).
        self.max_polls = DEFAULT_MAX_POLLS

    @property
    def job_tracking(self) -> str:
        """``"job"`` or ``"task"``: where fan-out reads batch jobs and share tasks."""
        return self._job_tracking

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
            for kind, durations in self._priors.items():
                scheduler.seed_durations(kind, durations)
            self._scheduler = scheduler
        return scheduler

    def seed_durations(self, kind: Hashable, durations: Iterable[float]) -> int:
        """Plan the waits of ``kind`` from durations a previous run recorded.

        Kept for every scheduler this session makes (one per event loop),
        and given to the current one at once.

        Args:
            kind: ``_estimator.duration_key`` of the request.
            durations: Seconds from submission to the end, oldest first.

        Returns:
            How many were taken.
        """
        kept = [float(d) for d in durations if isinstance(d, int | float) and math.isfinite(d)]
        kept = [d for d in kept if d >= 0][-WINDOW:]
        if not kept:
            return 0
        if kind not in self._priors and len(self._priors) >= _MAX_PRIOR_KINDS:
            self._priors.clear()
        self._priors[kind] = kept
        scheduler = self._scheduler
        if scheduler is not None and not scheduler.closed:
            scheduler.seed_durations(kind, kept)
        return len(kept)

    def job_tracker(self) -> JobTracker:
        """The tracker of every batch job of this session (job detail)."""
        tracker = self._job_tracker
        if tracker is None:
            tracker = self._job_tracker = JobTracker(self._api.get_job)
        return tracker

    def share_tracker(self, share_id: str, kdstoken: str | None) -> ShareTaskTracker:
        """The tracker of the share tasks of one share (``share/taskDetail``)."""
        key = (share_id, kdstoken)
        tracker = self._share_trackers.get(key)
        if tracker is None:
            if len(self._share_trackers) >= _MAX_SHARE_TRACKERS:
                self._share_trackers.clear()
            tracker = ShareTaskTracker(
                self._api.get_share_task, share_id=share_id, kdstoken=kdstoken
            )
            self._share_trackers[key] = tracker
        return tracker

    def tracker_for(self, request: Request) -> Tracker[Any] | None:
        """The tracker that reads what ``request`` creates.

        Returns:
            The job tracker for a JobRequest, the share's tracker for a
            ShareTaskRequest, None (``GET task/{id}``) for transfers and
            imports, and for every kind with ``job_tracking="task"``.
        """
        if self._job_tracking == "task":
            return None
        if isinstance(request, JobRequest):
            return self.job_tracker()
        if isinstance(request, ShareTaskRequest):
            return self.share_tracker(request.share_id, request.kdstoken)
        return None

    async def wait(
        self,
        task_id: str,
        *,
        timeout: float | None,
        poll: PollPolicy,
        on_status: Callable[[Any], Any] | None = None,
        kind: Hashable | None = None,
        started: float | None = None,
        tracker: Tracker[Any] | None = None,
    ) -> Any:
        """Wait until the unit is terminal (the :class:`~koodrive_async._interfaces.Waits` seam).

        Arguments are not checked here: ``wait_for_task`` checks a caller's,
        fan-out passes its own.

        Args:
            task_id: The task.
            timeout: Deadline in seconds from now, or None.
            poll: The polling intervals.
            on_status: Called with the Task on every status change.
            kind: Key to learn durations under, or None (no learning).
            started: Loop time the task was submitted (with ``kind``).
            tracker: How to read it; None for a task (``GET task/{id}``).

        Returns:
            The final model once it is SUCCESS.

        Raises:
            TaskFailedError: It reached FAILED (JobFailedError, JobCancelledError
                for jobs and share tasks).
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
            tracker=tracker,
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
        before_create: Callable[[Request], Awaitable[None]] | None = None,
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
            before_create=before_create,
        )

    async def aclose(self) -> None:
        """Stop the shared poll scheduler (idempotent); the session closes its lifecycle first.

        Waits still pending fail with RuntimeError. Tasks on the server are
        never touched.
        """
        scheduler = self._scheduler
        if scheduler is not None:
            await scheduler.close()
