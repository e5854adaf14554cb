"""The shared poll scheduler behind ``wait_for_task``, ``run_jobs`` and ``stream_jobs``.

One :class:`PollScheduler` per session (per event loop) serves every waiter.
A waiting task costs one small ``__slots__`` object, which is its own future
and its own heap entry (plus one small tuple in a second heap when it has a
deadline); there is no sleeping coroutine or timer per waiter. A single
driver task sleeps until the earliest due time, moves due waiters to a ready
queue and starts their GETs, never more than ``max_polls`` at once, so even
10,000 waiters registered together never fire in lockstep (their intervals
are jittered too).

Learning: for waiters whose *kind* (request type and task type) and start
time are known (the fan-out knows both), the scheduler records how long
finished tasks of that kind took, and which tenth of progress they
reported when they had used each share of their time, and places every poll
with ``_estimator.place_next``: a budget (a share of the median duration)
after the fast end of what is still possible for this unit (its kind's
durations longer than its age, weighed by how likely each was to give the
progress it last reported). The first poll
thus lands just after the fast end of the distribution, and progress skips
the polls that could only see the unit unfinished. A unit that outlived
every known duration and reports no progress backs off per the
:class:`PollPolicy`. A task of a kind never seen, or a ``wait_for_task`` on
an id of unknown age, follows the policy alone (``initial``, ×``multiplier``
up to ``max_interval``), closing in on the end its progress predicts if it
reports one.

Errors while polling: the transport already retries each GET according to
the session's ``RetryPolicy`` (connection errors, timeouts, 429, 5xx). When it
gives up with such a *transient* error (or the body cannot be parsed, which
for a GET is as harmless to retry), the waiter does not fail: its next poll is
rescheduled with the policy's backoff, until the deadline. Unparseable bodies
are tolerated only ``PollPolicy.max_invalid_responses`` times in a row, then
the waiter fails with that error (a task this client can never read would
otherwise be polled forever). A 429 also pauses every poll of the session
until its ``Retry-After`` (or the backoff) passes, but never for longer than
the session's ``RetryPolicy.max_retry_after``: one task's throttled poll must
not freeze every other wait for as long as a server cares to ask. And a
waiter whose deadline falls inside a pause still gets one last poll just
before it, so a wait never times out without having polled when it could.
*Permanent* errors (401 after refresh, 400, 403, 404, any other API error)
fail the waiter at once.

What a unit of work looks like (how to read it, when it is done, what its
failure is) is the tracker's business (``_trackers.py``, through the
``_interfaces.Tracker`` protocol); the learning statistics are
``_estimator.py``'s. This module owns only the heap, the driver, the slots
and the backoff. It must never import the session, the transport or
aiohttp: it polls through the tracker and nothing else.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import inspect
import logging
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Hashable, Iterable
from typing import Any

from ._estimator import DurationEstimator, bracket_duration, bracket_window, place_next
from ._exceptions import (
    APIConnectionError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    TaskTimeoutError,
)
from ._interfaces import Tracker
from ._lifecycle import closed_error
from ._models import Task
from ._policies import PollPolicy
from ._trackers import TaskTracker

__all__ = ["PollScheduler", "is_transient"]

logger = logging.getLogger("koodrive_async.polling")

#: Never poll one task more often than this, whatever was learned.
MIN_STEP = 0.01
#: Most waiters per kind remembered for re-planning when the first estimate arrives.
MAX_COLD = 1024
#: Default bound on concurrent GETs issued by the scheduler.
DEFAULT_MAX_POLLS = 32
#: How long before its deadline a waiter caught in a pause gets its last
#: poll (at least; more when GETs are slow), so the answer can still count.
LAST_POLL_LEAD = 0.25
#: A waiter's outcome before it has one.
_PENDING: Any = object()

GetTask = Callable[[str], Awaitable[Task]]
OnStatus = Callable[[Any], Any]


def is_transient(exc: BaseException) -> bool:
    """Tell whether a polling error may go away if the GET is simply retried later.

    Args:
        exc: The exception a ``get_task`` call raised.

    Returns:
        True for connection errors and timeouts, 429, 5xx and unparseable
        bodies; False for everything else (401, 400, 403, 404, other API
        errors, programming errors).
    """
    return isinstance(
        exc, APIConnectionError | RateLimitError | ServerError | ResponseValidationError
    )


class _Waiter:
    """One task being waited for. Kept small: 100,000 of them may exist at once.

    It is its own heap entry (ordered by ``due``) and its own future: the
    caller's task awaits it directly (``await waiter``, or ``waiter.future``),
    through the same duck-typed protocol asyncio uses for any future-like
    object (``_asyncio_future_blocking``, ``add_done_callback``, ``result``,
    ``cancel``), so no ``asyncio.Future`` (~145 bytes) is made per waiter.
    """

    __slots__ = (
        "task_id",
        "policy",
        "on_status",
        "deadline",
        "timeout",
        "interval",
        "last",
        "due",
        "in_heap",
        "poll",
        "kind",
        "started",
        "step",
        "prev_poll",
        "seen",
        "invalid",
        "final",
        "cohort",
        "held",
        "tracker",
        "context",
        "_loop",
        "_result",
        "_error",
        "_callback",
        "_callback_context",
        "_more_callbacks",
    )

    def __init__(
        self,
        task_id: str,
        loop: asyncio.AbstractEventLoop,
        policy: PollPolicy,
        on_status: OnStatus | None,
        deadline: float | None,
        timeout: float | None,
        kind: Hashable | None,
        started: float | None,
        tracker: Tracker[Any],
        context: contextvars.Context | None = None,
    ) -> None:
        self.task_id = task_id
        self.policy = policy
        self.on_status = on_status
        self.deadline = deadline
        self.timeout = timeout
        self.interval = 0.0
        # Of the last answer, what this waiter may still need: the whole model
        # (a Task, Job or ShareTask) when it has a deadline, for
        # TaskTimeoutError.last; otherwise only its tracker's mark (what
        # on_status changes are judged by). None before any answer.
        self.last: Any = None
        # When its next poll is due: its key in the scheduler's heap, where it
        # sits at most once (``in_heap``), so no entry tuple is made per poll.
        self.due = 0.0
        self.in_heap = False
        self.poll: asyncio.Task[None] | None = None
        self.kind = kind
        self.started = started
        # The delay budget of its placed polls (0: on the policy's schedule).
        self.step = 0.0
        self.prev_poll = -1.0
        # Progress seen: (elapsed, fraction) of its latest answer that
        # reported one, then those of the one before (if any); or None.
        self.seen: tuple[float, ...] | None = None
        # Unparseable answers in a row (PollPolicy.max_invalid_responses).
        self.invalid = 0
        # It had its last poll before a deadline that falls inside a pause.
        self.final = False
        # It is counted in its kind's first cohort (DurationEstimator.join_cohort).
        self.cohort = False
        # Its first poll waits for its kind's first cohort to say where it
        # goes (DurationEstimator.scouting); ``due`` is only a fallback.
        self.held = False
        # How this unit is read and judged (shared by every waiter of a kind).
        self.tracker = tracker
        # The context its polls run in (the waiting caller's, for tracing), or
        # None for the driver's.
        self.context = context
        # Its future's state: a result, or an error (CancelledError once
        # cancelled), and who to call back once there is one.
        self._loop = loop
        self._result: Any = _PENDING
        self._error: BaseException | None = None
        self._callback: Callable[[Any], object] | None = None
        self._callback_context: contextvars.Context | None = None
        self._more_callbacks: list[tuple[Callable[[Any], object], contextvars.Context]] | None = (
            None
        )

    def __lt__(self, other: _Waiter) -> bool:
        return self.due < other.due

    # -------------------------------------------------------------- future protocol

    @property
    def future(self) -> Awaitable[Any]:
        """The waiter itself: what a wait awaits (kept for the callers that await ``.future``)."""
        return self

    @property
    def _asyncio_future_blocking(self) -> bool:
        # asyncio's Task sees a future-like object by this attribute and sets
        # it to False when it starts waiting; nothing else reads it back.
        return True

    @_asyncio_future_blocking.setter
    def _asyncio_future_blocking(self, value: bool) -> None:
        pass

    def __await__(self) -> Generator[Any, None, Any]:
        # The waiter is its own await iterator: a generator here would cost
        # ~190 bytes per waiting task, as much as the future it replaces.
        return self  # type: ignore[return-value]

    def __next__(self) -> _Waiter:
        if not self.done():
            return self  # yielded to the awaiting task, which waits on it
        raise StopIteration(self.result())

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the waiter lives in."""
        return self._loop

    def done(self) -> bool:
        """True once the wait has a result or an error, or was cancelled."""
        return self._error is not None or self._result is not _PENDING

    def cancelled(self) -> bool:
        """True once :meth:`cancel` ran before any outcome."""
        return isinstance(self._error, asyncio.CancelledError)

    def result(self) -> Any:
        """The final model; raises the wait's error (or CancelledError) instead if it has one."""
        if self._error is not None:
            raise self._error
        if self._result is _PENDING:
            raise asyncio.InvalidStateError("the wait is not over")
        return self._result

    def exception(self) -> BaseException | None:
        """The wait's error, None for a result (raises CancelledError once cancelled)."""
        if self.cancelled():
            assert self._error is not None
            raise self._error
        if not self.done():
            raise asyncio.InvalidStateError("the wait is not over")
        return self._error

    def add_done_callback(
        self, fn: Callable[[Any], object], *, context: contextvars.Context | None = None
    ) -> None:
        """Call ``fn(waiter)`` (in ``context``) once the wait is over."""
        if context is None:
            context = contextvars.copy_context()
        if self.done():
            self._loop.call_soon(fn, self, context=context)
        elif self._callback is None:
            # The one callback almost every waiter gets (the awaiting task's
            # wake-up) is kept in two slots, not a list.
            self._callback = fn
            self._callback_context = context
        else:
            if self._more_callbacks is None:
                self._more_callbacks = []
            self._more_callbacks.append((fn, context))

    def remove_done_callback(self, fn: Callable[[Any], object]) -> int:
        """Forget every registration of ``fn``; returns how many there were."""
        removed = 0
        if self._callback is not None and self._callback == fn:
            self._callback = self._callback_context = None
            removed += 1
        if self._more_callbacks:
            kept = [(f, c) for f, c in self._more_callbacks if f != fn]
            removed += len(self._more_callbacks) - len(kept)
            self._more_callbacks = kept
        return removed

    @property
    def _cancel_message(self) -> Any:
        # Read by asyncio.gather (with _make_cancelled_error) from a cancelled child.
        error = self._error
        if isinstance(error, asyncio.CancelledError) and error.args:
            return error.args[0]
        return None

    def _make_cancelled_error(self) -> asyncio.CancelledError:
        # asyncio.gather asks a cancelled child for its CancelledError this way.
        error = self._error
        return error if isinstance(error, asyncio.CancelledError) else asyncio.CancelledError()

    def cancel(self, msg: Any | None = None) -> bool:
        """Cancel the wait (the server task is untouched); False if it was over already."""
        if self.done():
            return False
        self._error = asyncio.CancelledError() if msg is None else asyncio.CancelledError(msg)
        self._call_back()
        return True

    def set_result(self, result: Any) -> None:
        """End the wait with ``result`` (the final model)."""
        if self.done():
            raise asyncio.InvalidStateError("the wait is over already")
        self._result = result
        self._call_back()

    def set_exception(self, exc: BaseException) -> None:
        """End the wait with ``exc``."""
        if self.done():
            raise asyncio.InvalidStateError("the wait is over already")
        self._error = exc
        self._call_back()

    def _call_back(self) -> None:
        fn, context = self._callback, self._callback_context
        self._callback = self._callback_context = None
        if fn is not None:
            self._loop.call_soon(fn, self, context=context)
        more, self._more_callbacks = self._more_callbacks, None
        for fn, context in more or ():
            self._loop.call_soon(fn, self, context=context)


class PollScheduler:
    """Polls every waited-on task of one session from one driver task.

    Each waiter is read through its own tracker (one ``_Waiter`` slot, a
    reference to a tracker shared by every waiter of its kind): by default
    the scheduler's :class:`~koodrive_async._trackers.TaskTracker` over
    ``get_task``; a job's ``JobTracker``, a share's ``ShareTaskTracker``.

    Args:
        get_task: The session's ``get_task`` coroutine function.
        max_polls: Most GETs in flight at once.
        max_pause: Longest pause of every poll after a 429, in seconds (the
            session's ``RetryPolicy.max_retry_after``).
        rng: Random source for jitter (seeded in tests).
    """

    def __init__(
        self,
        get_task: GetTask,
        *,
        max_polls: int = DEFAULT_MAX_POLLS,
        max_pause: float = math.inf,
        rng: random.Random | None = None,
    ) -> None:
        self._tracker: Tracker[Task] = TaskTracker(get_task)
        self._max_polls = max_polls
        self._max_pause = max_pause
        self._rng = rng or random.Random()
        self._loop = asyncio.get_running_loop()
        # Waiters whose next poll is due at ``waiter.due`` (each at most once).
        self._heap: list[_Waiter] = []
        # (deadline, waiter) of every waiter with a deadline, wherever it is
        # (in the heap, queued for a slot or being polled).
        self._deadlines: list[tuple[float, _Waiter]] = []
        self._ready: deque[_Waiter] = deque()
        # Waiters whose last poll before their deadline may not wait for a pause.
        self._urgent: deque[_Waiter] = deque()
        self._polls: dict[asyncio.Task[None], _Waiter] = {}
        # Waiters of a kind with no estimate yet, to re-plan once there is one.
        self._cold: dict[Hashable, list[_Waiter]] = {}
        # Kinds whose cold waiters not polled yet wait for the kind's first
        # poll (held, or scouts not polled yet): re-planned once it is known.
        self._held: set[Hashable] = set()
        # Per kind, a re-check of its held waiters due when its cohort's
        # quantile stops being held back (see _recheck_later).
        self._rechecks: dict[Hashable, asyncio.TimerHandle] = {}
        self._inflight = 0
        self._stale = 0
        self._pause_until = 0.0
        self._wake: asyncio.Future[None] | None = None
        self._sleep_until = math.inf
        self._closed = False
        self._driver: asyncio.Task[None] | None = None
        self.estimator = DurationEstimator()
        #: GETs issued so far (benchmarks and tests read it).
        self.gets = 0
        #: Highest number of GETs seen in flight at once.
        self.max_inflight_seen = 0
        # GET round-trip estimate: no point polling one task faster than this.
        self._rtt = 0.0

    # ------------------------------------------------------------------ public

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this scheduler lives in."""
        return self._loop

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def __len__(self) -> int:
        """Number of heap entries, polls and deadlines (live and stale), for tests."""
        return len(self._heap) + len(self._deadlines)

    def add(
        self,
        task_id: str,
        *,
        policy: PollPolicy,
        timeout: float | None = None,
        on_status: OnStatus | None = None,
        kind: Hashable | None = None,
        started: float | None = None,
        tracker: Tracker[Any] | None = None,
        context: contextvars.Context | None = None,
    ) -> _Waiter:
        """Register a waiter; its future resolves with the final model or an error.

        Args:
            task_id: The task to poll.
            policy: Intervals for this waiter.
            timeout: Seconds from now until :class:`TaskTimeoutError`, or None.
            on_status: Called with the Task on every status change.
            kind: Kind key for learning durations, or None (no learning).
            started: Loop time the task was submitted (with ``kind``).
            tracker: How to read the unit and judge it; None for tasks
                (``GET task/{id}``).
            context: The context to run its polls (and ``on_status``) in, so
                that their spans are children of the wait's; None for the
                scheduler's own.

        Returns:
            The waiter; await it (or ``waiter.future``, the same object), and
            pass it to :meth:`discard` when the wait ends for any reason.

        Raises:
            RuntimeError: The scheduler was closed.
        """
        if self._closed:
            raise closed_error()
        now = self._loop.time()
        deadline = None if timeout is None else now + timeout
        waiter = _Waiter(
            task_id,
            self._loop,
            policy,
            on_status,
            deadline,
            timeout,
            kind,
            started if kind is not None else None,
            self._tracker if tracker is None else tracker,
            context,
        )
        first = self._first_due(waiter, now)
        if deadline is not None:
            heapq.heappush(self._deadlines, (deadline, waiter))
        self._push_poll(waiter, first)
        self._ensure_driver()
        return waiter

    def discard(self, waiter: _Waiter) -> None:
        """Forget a waiter whose wait ended (or was cancelled): no GET is made for it again.

        Args:
            waiter: What :meth:`add` returned.
        """
        poll = waiter.poll
        if poll is not None:
            waiter.poll = None
            poll.cancel()
        waiter.cancel()
        if waiter.cohort:
            # It will not end here: the first cohort's quantile must not wait for it.
            waiter.cohort = False
            kind = waiter.kind
            self.estimator.leave_cohort(kind)
            now = self._loop.time()
            if kind in self._held:
                self._settle_held(kind, now)  # placed, replaced or let go
        # Its heap entries stay until they surface (lazy deletion); count them
        # so a heap full of abandoned entries gets compacted.
        if waiter.in_heap:
            self._stale += 1  # its next poll
        if waiter.deadline is not None and self._loop.time() < waiter.deadline:
            self._stale += 1  # its deadline
        if self._stale > 1024 and self._stale > len(self) // 2:
            self._compact()

    def seed_durations(self, kind: Hashable, durations: Iterable[float]) -> int:
        """Plan waiters of ``kind`` from durations known before any of them finished.

        A previous run of the same plan recorded them; waiters of that kind
        already waiting on the policy's blind schedule are re-planned at once.

        Args:
            kind: The kind key (``_estimator.duration_key`` of the request).
            durations: Seconds from submission to the end, oldest first.

        Returns:
            How many were taken (non-finite and negative values are skipped).
        """
        taken = self.estimator.seed(kind, durations)
        if taken and kind in self._cold and self.estimator.estimate(kind) is not None:
            self._replan_cold(kind, self._loop.time())
        return taken

    async def close(self) -> None:
        """Stop polling; pending waiters fail with RuntimeError."""
        if self._closed:
            return
        self._closed = True
        for handle in self._rechecks.values():
            handle.cancel()
        self._rechecks.clear()
        pending: list[_Waiter] = list(self._heap)
        pending.extend(waiter for _, waiter in self._deadlines)
        pending.extend(self._ready)
        pending.extend(self._urgent)
        pending.extend(self._polls.values())
        self._heap.clear()
        self._deadlines.clear()
        self._ready.clear()
        self._urgent.clear()
        tasks: list[asyncio.Task[None]] = list(self._polls)
        if self._driver is not None:
            tasks.append(self._driver)
        if self._loop.is_closed():
            # A session closed from a later event loop (one asyncio.run per
            # call): this loop's shutdown already cancelled everything, and
            # nothing can be scheduled on it any more.
            self._polls.clear()
            return
        for task in tasks:
            task.cancel()
        for waiter in pending:
            waiter.in_heap = False
            if not waiter.done():
                waiter.set_exception(RuntimeError("the session was closed while waiting"))
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._polls.clear()

    # ------------------------------------------------------------------ scheduling

    def _jittered(self, interval: float, policy: PollPolicy) -> float:
        if policy.jitter:
            interval *= 1.0 + policy.jitter * (2.0 * self._rng.random() - 1.0)
        return interval

    def _shortened(self, step: float, policy: PollPolicy) -> float:
        # Inside the learned window the jitter only ever shortens the step, so
        # the step stays a bound on the detection delay.
        return step * (1.0 - policy.jitter * self._rng.random())

    def _first_due(self, waiter: _Waiter, now: float) -> float:
        policy = waiter.policy
        if waiter.kind is not None and waiter.started is not None:
            due = self._placed(waiter, now)
            if due is not None:
                return due
            # Nothing learned yet (or not yet where a first poll goes): follow
            # the policy for now, but remember the waiter so it can be
            # re-planned as soon as an estimate exists. (Blind ones are
            # bounded: past the cap, they re-plan at their next poll anyway.)
            kind = waiter.kind
            estimator = self.estimator
            waiter.cohort = estimator.join_cohort(kind, waiter.started)
            cold = self._cold.setdefault(kind, [])
            if not waiter.cohort and estimator.scouting(kind):
                # The cohort's units are out on the blind schedule; this one
                # waits, unpolled, for where they put the first poll
                # (re-planned then). Not capped like the blind waiters below:
                # this list is the only way it is re-planned.
                cold.append(waiter)
                waiter.held = True
                self._held.add(kind)
                self._recheck_later(kind)
                # A kind that has not ended by the fallback is polled at that
                # gap after it, not from the policy's first interval again.
                waiter.interval = policy.max_interval
                return self._fallback(waiter, now)
            if len(cold) >= MAX_COLD:
                cold[:] = [w for w in cold if not w.done()]
            if len(cold) < MAX_COLD:
                cold.append(waiter)
        waiter.interval = policy.initial
        return now + self._jittered(policy.initial, policy)

    def _last_poll_lead(self) -> float:
        # How long before its deadline a waiter's last poll must be sent for
        # its answer to count (LAST_POLL_LEAD, more when GETs are slow).
        return max(LAST_POLL_LEAD, 4.0 * self._rtt)

    def _fallback(self, waiter: _Waiter, now: float) -> float:
        # When a held waiter is polled if its kind's cohort has not placed it
        # by then: the longest gap its policy allows (jittered shorter, so
        # that the held do not all fall due at once), and early enough before
        # its deadline for the answer to count (this may be its only poll).
        policy = waiter.policy
        due = now + self._shortened(policy.max_interval, policy)
        deadline = waiter.deadline
        if deadline is not None:
            due = min(due, max(now, deadline - self._last_poll_lead()))
        return due

    def _placed(self, waiter: _Waiter, now: float) -> float | None:
        # The decision is place_next's (pure); this applies the policy's bounds
        # and jitter, which only ever shortens the gap so the budget holds.
        assert waiter.started is not None
        kind = waiter.kind
        seen = waiter.seen
        latest = None if seen is None else (seen[0], seen[1])
        estimator = self.estimator
        table = estimator.progress_table(kind) if seen is not None else None
        unpolled = waiter.last is None and waiter.prev_poll < 0
        first = estimator.first_poll(kind, now) if unpolled else None
        if unpolled and first is None:
            # Where a first poll goes is not known yet (nothing ended, or too
            # little of the first cohort): the blind schedule, re-planned later.
            return None
        elapsed = now - waiter.started
        floor = max(MIN_STEP, 2.0 * self._rtt)
        placed = place_next(
            elapsed, estimator.durations(kind), latest, table, first, min_budget=floor
        )
        if placed is None:
            return None
        at, budget = placed
        policy = waiter.policy
        waiter.step = waiter.interval = min(budget, policy.max_interval)
        due = max(waiter.started + at - waiter.step * policy.jitter * self._rng.random(), now)
        if unpolled:
            # max_interval bounds the gap between two polls; before the first
            # there is none, and the kind says when a unit can first have ended.
            return due
        return min(max(due, now + MIN_STEP), now + policy.max_interval)

    def _replan_cold(self, kind: Hashable, now: float) -> None:
        waiters = self._cold.pop(kind, None)
        if not waiters or not self.estimator.durations(kind):
            return
        moved = False
        held: list[_Waiter] = []
        # Whether the kind's first poll is still unknown: the same for every
        # waiter below (placing one does not change it).
        pending = self.estimator.first_poll(kind, now) is None
        for waiter in waiters:
            if waiter.done() or not waiter.in_heap or waiter.step:
                # Finished, queued or being polled (it re-plans itself after
                # that poll), or placed already.
                continue
            due = self._placed(waiter, now)
            if due is None:
                if pending and waiter.last is None and waiter.prev_poll < 0:
                    held.append(waiter)  # waits for its kind's first poll
                    continue
                if not waiter.held:
                    # Older than its kind's first poll and nothing places it
                    # yet: it re-plans itself after its blind poll.
                    continue
                # Held past where its first poll goes, and its due is only
                # the fallback: poll it now.
                due = now
                waiter.interval = waiter.policy.initial
            waiter.held = False
            # Its key changes in place: the heap is put in order once, below.
            self._move(waiter, due, now)
            moved = True
        if held:
            # Re-planned once the kind's first poll is known, not at every
            # completion before (each would only find them held again).
            self._cold[kind] = held
            self._held.add(kind)
            self._recheck_later(kind)
        else:
            self._held.discard(kind)
        if moved:
            self._reorder()

    def _settle_held(self, kind: Hashable, now: float) -> None:
        # A unit of a kind with held units ended or left: place them once the
        # kind's first poll is known; until then a held unit takes the place
        # of a unit of the cohort that left, and once none of the cohort is
        # left running, none is held any longer.
        estimator = self.estimator
        if estimator.durations(kind) and estimator.first_poll(kind, now) is not None:
            self._replan_cold(kind, now)
            return
        cold = self._cold.get(kind)
        if cold is None:
            self._held.discard(kind)
            return
        moved = False
        released = False
        for waiter in cold:
            if not waiter.held or waiter.done() or not waiter.in_heap:
                continue
            if estimator.join_cohort(kind, waiter.started):
                waiter.cohort = True
            elif estimator.scouting(kind):
                break
            else:
                released = True
            waiter.held = False
            policy = waiter.policy
            waiter.interval = policy.initial
            self._move(waiter, now + self._jittered(policy.initial, policy), now)
            moved = True
        if released or not estimator.scouting(kind):
            # Nobody is held any longer: the list is cold waiters again, kept
            # for re-planning up to the cap (past it, they re-plan at their
            # polls).
            cold[:] = [w for w in cold if not w.done()][:MAX_COLD]
            self._held.discard(kind)
        else:
            self._recheck_later(kind)
        if moved:
            self._reorder()

    def _recheck_later(self, kind: Hashable) -> None:
        # The cohort's quantile may be known but held back until its youngest
        # unit is as old as it (DurationEstimator.first_poll): nothing else
        # may happen by then to look again (the held are not polled). That
        # moment only comes sooner as the cohort's units end or leave.
        if self._closed:
            return
        at = self.estimator.first_poll_after(kind)
        if at is None:
            return
        handle = self._rechecks.get(kind)
        if handle is not None:
            if handle.when() <= at:
                return
            handle.cancel()
        self._rechecks[kind] = self._loop.call_at(at, self._recheck, kind, at)

    def _recheck(self, kind: Hashable, at: float) -> None:
        self._rechecks.pop(kind, None)
        if not self._closed and kind in self._held:
            # Never before the moment asked for: a timer may run a little
            # early, and the same check would only arm it again.
            self._settle_held(kind, max(self._loop.time(), at))

    def _move(self, waiter: _Waiter, due: float, now: float) -> None:
        # A new due for a waiter in the heap; the caller puts the heap in
        # order once (_reorder), after moving all it moves.
        deadline = waiter.deadline
        if deadline is None:
            pass
        elif waiter.last is None and waiter.prev_poll < 0:
            # Never polled, this may be its only poll before the deadline:
            # early enough for the answer to count, as in _fallback.
            lead = self._last_poll_lead()
            if due > deadline - lead:
                due = max(deadline - lead, now)
        elif due >= deadline:
            due = max(deadline - max(2.0 * self._rtt, 0.001), now)
        waiter.due = due

    def _reorder(self) -> None:
        heapq.heapify(self._heap)
        if self._heap[0].due < self._sleep_until:
            self._kick()

    def _next_due(self, waiter: _Waiter, now: float) -> float:
        policy = waiter.policy
        if waiter.kind is not None and waiter.started is not None:
            due = self._placed(waiter, now)
            if due is not None:
                return due
            waiter.step = 0.0
        # The cap first: once reached, the policy's own float is kept (min
        # returns its first argument on a tie), not a new one per waiter.
        waiter.interval = min(policy.max_interval, waiter.interval * policy.multiplier)
        return now + self._jittered(waiter.interval, policy)

    def _push_poll(self, waiter: _Waiter, due: float) -> None:
        deadline = waiter.deadline
        if deadline is not None and due >= deadline:
            # A poll landing on or after the deadline is useless; poll once more
            # just before it instead, if a GET still fits.
            due = deadline - max(2.0 * self._rtt, 0.001)
            if due <= self._loop.time():
                return  # its deadline will end the wait
        # Only a waiter out of the heap gets here (popped, or new): its key
        # may change without breaking the heap's order.
        assert not waiter.in_heap
        waiter.due = due
        waiter.in_heap = True
        heapq.heappush(self._heap, waiter)
        if due < self._sleep_until:
            self._kick()

    def _compact(self) -> None:
        for waiter in self._heap:
            if waiter.done():
                waiter.in_heap = False
        self._heap = [waiter for waiter in self._heap if waiter.in_heap]
        heapq.heapify(self._heap)
        self._deadlines = [entry for entry in self._deadlines if not entry[1].done()]
        heapq.heapify(self._deadlines)
        self._stale = 0

    def _kick(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _ensure_driver(self) -> None:
        if self._driver is None or self._driver.done():
            self._driver = self._loop.create_task(self._drive())

    async def _drive(self) -> None:
        loop = self._loop
        while True:
            heap = self._heap  # _compact may have replaced the lists
            deadlines = self._deadlines
            now = loop.time()
            # Deadlines first: a waiter whose deadline and poll fall on the
            # same instant times out, it is not polled.
            while deadlines and deadlines[0][0] <= now:
                waiter = heapq.heappop(deadlines)[1]
                if not waiter.done():
                    self._expire(waiter)
            while heap and heap[0].due <= now:
                waiter = heapq.heappop(heap)
                waiter.in_heap = False
                if not waiter.done():
                    self._make_ready(waiter, now)
            self._launch_ready(now)
            wake_at = heap[0].due if heap else math.inf
            if deadlines and deadlines[0][0] < wake_at:
                wake_at = deadlines[0][0]
            if self._ready and self._inflight < self._max_polls:
                wake_at = min(wake_at, self._pause_until)
            self._sleep_until = wake_at
            self._wake = wake = loop.create_future()
            handle = None if wake_at == math.inf else loop.call_at(wake_at, self._kick)
            try:
                await wake
            finally:
                self._wake = None
                self._sleep_until = -math.inf
                if handle is not None:
                    handle.cancel()

    def _make_ready(self, waiter: _Waiter, now: float) -> None:
        deadline = waiter.deadline
        if (
            now < self._pause_until
            and deadline is not None
            and deadline <= self._pause_until
            and not waiter.final
        ):
            # Paused past this waiter's deadline: waiting for the pause would
            # end it in TaskTimeoutError without a poll. Give it one last
            # poll, as late as still lets the answer arrive in time.
            lead = self._last_poll_lead()
            last = deadline - lead
            if now < last:
                waiter.due = last
                waiter.in_heap = True
                heapq.heappush(self._heap, waiter)
                return
            waiter.final = True
            self._urgent.append(waiter)
            return
        self._ready.append(waiter)

    def _launch_ready(self, now: float) -> None:
        urgent = self._urgent
        while urgent and self._inflight < self._max_polls:
            self._launch(urgent.popleft())
        if now < self._pause_until:
            return
        ready = self._ready
        while ready and self._inflight < self._max_polls:
            self._launch(ready.popleft())

    def _launch(self, waiter: _Waiter) -> None:
        if waiter.done() or waiter.poll is not None:
            # A re-planned waiter may come due while its GET is in flight:
            # that GET reschedules it, a second one would only duplicate it.
            return
        waiter.held = False  # polled now, fallback or not
        self._inflight += 1
        self.gets += 1
        if self._inflight > self.max_inflight_seen:
            self.max_inflight_seen = self._inflight
        task = self._loop.create_task(self._poll(waiter), context=waiter.context)
        waiter.poll = task
        self._polls[task] = waiter
        task.add_done_callback(self._poll_done)

    def _poll_done(self, task: asyncio.Task[None]) -> None:
        self._polls.pop(task, None)
        if not task.cancelled():
            # _poll handles every Exception itself; retrieve anything else
            # (KeyboardInterrupt-like) so asyncio does not warn about it.
            task.exception()

    def _expire(self, waiter: _Waiter) -> None:
        poll = waiter.poll
        if poll is not None:
            # The deadline passed mid-request: abandon the GET.
            waiter.poll = None
            poll.cancel()
        last = waiter.last
        if last is not None:
            last = waiter.tracker.restore(last, waiter.task_id)
        waiter.set_exception(TaskTimeoutError(waiter.task_id, last, timeout=waiter.timeout))

    def _fail(self, waiter: _Waiter, exc: BaseException) -> None:
        if not waiter.done():
            waiter.set_exception(exc)

    async def _poll(self, waiter: _Waiter) -> None:
        loop = self._loop
        started = loop.time()
        tracker = waiter.tracker
        try:
            try:
                task = await tracker.fetch(waiter.task_id)
            finally:
                self._release_slot()
            now = loop.time()
            rtt = now - started
            self._rtt = rtt if not self._rtt else 0.9 * self._rtt + 0.1 * rtt
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - sorted by _poll_failed, never swallowed
            waiter.poll = None
            self._poll_failed(waiter, exc)
            return
        waiter.invalid = 0
        previous = waiter.last
        if waiter.deadline is not None:
            # TaskTimeoutError.last may need it (restored only then).
            waiter.last = tracker.keep(task, waiter.task_id)
            if previous is not None and waiter.on_status is not None:
                previous = tracker.mark(tracker.restore(previous, waiter.task_id))
        else:
            # No deadline, no TaskTimeoutError: the mark is all it will use.
            waiter.last = tracker.mark(task)
        finished = tracker.finished(task)
        if waiter.kind is not None and waiter.started is not None:
            read = (started + now) / 2.0
            if previous is None and waiter.step:
                # Its first answer: where its kind's first poll should go.
                elapsed = read - waiter.started
                self.estimator.observe_first(waiter.kind, finished, elapsed, waiter.step)
            if not finished:
                # A unit that ended (failed part way, say) is not "at" its
                # last progress: the table would learn a wrong share.
                self._saw_progress(waiter, tracker.progress(task), read)
        try:
            if waiter.on_status is not None and tracker.changed(previous, task):
                result = waiter.on_status(task)
                if inspect.isawaitable(result):
                    await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the callback's error ends this wait
            waiter.poll = None
            self._fail(waiter, exc)
            return
        waiter.poll = None
        if waiter.done():
            return
        if finished:
            self._settle(waiter, task, now)
            return
        if waiter.kind is not None:
            waiter.prev_poll = started  # only learning needs it (no float per plain wait)
        self._push_poll(waiter, self._next_due(waiter, loop.time()))

    def _saw_progress(self, waiter: _Waiter, fraction: float | None, at: float) -> None:
        assert waiter.started is not None
        if fraction is None or not 0.0 <= fraction < 1.0:
            return
        # Every answer, moved or not: the table learns what a unit reports
        # at each share of its time, and a progress that stalled says so.
        seen = waiter.seen
        elapsed = at - waiter.started
        waiter.seen = (elapsed, fraction) if seen is None else (elapsed, fraction, seen[0], seen[1])

    def _poll_failed(self, waiter: _Waiter, exc: Exception) -> None:
        if not is_transient(exc):
            self._fail(waiter, exc)
            return
        if isinstance(exc, ResponseValidationError):
            waiter.invalid += 1
            if waiter.invalid >= waiter.policy.max_invalid_responses:
                # Harmless to retry once or twice, but a task the service
                # always describes unreadably would be polled forever.
                self._fail(waiter, exc)
                return
        else:
            waiter.invalid = 0
        self._transient(waiter, exc)

    def _settle(self, waiter: _Waiter, task: Any, now: float) -> None:
        self._learn(waiter, task, now)
        failure = waiter.tracker.failure(task)
        if failure is None:
            waiter.set_result(task)
        else:
            waiter.set_exception(failure)

    def _release_slot(self) -> None:
        self._inflight -= 1
        if self._ready or self._urgent:
            self._kick()

    def _transient(self, waiter: _Waiter, exc: Exception) -> None:
        policy = waiter.policy
        now = self._loop.time()
        # Leave the learned window: something is wrong, back off instead.
        waiter.step = 0.0
        waiter.interval = min(
            max(waiter.interval, policy.initial) * policy.multiplier, policy.max_interval
        )
        due = now + self._jittered(waiter.interval, policy)
        if isinstance(exc, RateLimitError):
            pause = exc.retry_after if exc.retry_after is not None else waiter.interval
            # Capped like the transport's own waits: a Retry-After of a day on
            # one task must not freeze every wait of the session for a day.
            pause = min(pause, self._max_pause)
            due = max(due, now + pause)
            if now + pause > self._pause_until:
                # Throttled: hold back every poll of the session, not just this one.
                self._pause_until = now + pause
                self._rescue_ready(now)
        logger.debug(
            "polling task %s failed (%s); next poll in %.3gs",
            waiter.task_id,
            type(exc).__name__,
            due - now,
        )
        self._push_poll(waiter, due)

    def _rescue_ready(self, now: float) -> None:
        # Waiters already queued for a slot when a pause began: those whose
        # deadline falls inside it get their last poll (see _make_ready).
        ready = self._ready
        if not ready:
            return
        self._ready = deque()
        for waiter in ready:
            if not waiter.done():
                self._make_ready(waiter, now)
        self._kick()

    def _learn(self, waiter: _Waiter, task: Any, now: float) -> None:
        if waiter.kind is None or waiter.started is None:
            return
        # The unit finished after the previous (non-terminal) poll was sent and
        # before this answer came back. The service's own times narrow that
        # bracket (tasks: exact; jobs: whole seconds read against our clock);
        # the bracket bounds them, so a skewed or virtual clock cannot mislead.
        started = waiter.started
        kind = waiter.kind
        running = waiter.prev_poll if waiter.prev_poll >= 0 else None
        lower = max(0.0, running - started) if running is not None else 0.0
        upper = max(lower, now - started)
        bounds = waiter.tracker.server_bounds(task, started, running, now)
        duration = bracket_duration(lower, upper, bounds)
        estimator = self.estimator
        # Never seen running: all that is known is that it ended by the end
        # of its window (exact times for tasks: the duration itself).
        unseen_before = bracket_window(lower, upper, bounds)[1] if running is None else None
        estimator.observe(kind, duration, cohort=waiter.cohort, unseen_before=unseen_before)
        waiter.cohort = False
        seen = waiter.seen
        if seen is not None and duration > 0.0:
            # Both answers it keeps: what it reported at each share of its time.
            for index in range(0, len(seen), 2):
                estimator.observe_progress(kind, seen[index + 1], seen[index] / duration)
        if kind in self._held:
            self._settle_held(kind, now)
        elif kind in self._cold and estimator.durations(kind):
            self._replan_cold(kind, now)
