"""The engine behind ``run_jobs`` and ``stream_jobs``: bounded, paced, isolated fan-out.

Shape of a run: one *feeder* task pulls requests from the input only when
there is room (fewer than ``max_concurrency`` tasks in flight and fewer than
``max_concurrency`` finished outcomes waiting to be consumed), so the input
is consumed lazily and memory stays bounded whatever its length. Each pulled
request gets a *job* task: take a submission token (pacing), submit, call
``on_submitted``, wait through the session's shared poll scheduler, and hand
back a :class:`JobOutcome`. A job's slot is freed when its task is seen
terminal (or its submission or wait fails). The consumer (the async generator
:meth:`FanOut.outcomes`) yields outcomes as they arrive; when it stops for any
reason (end, error, ``aclose()``, cancellation) it cancels the feeder and every
job task and waits for them, so nothing is left pending.

Errors: anything a single request's submission or wait raises that is a
:class:`KooDriveError` becomes that request's outcome; the others go on.
A create is sent once: the transport alone retries it (within the session's
``RetryPolicy``), so a :class:`RateLimitError` that reaches the fan-out is
that request's outcome, never a reason to send it again. The 429 still slows
the pacer down and holds later submissions back for its ``Retry-After``; a
request that would have to wait for that hold longer than it may
(``max_retry_after``, and the run's ``timeout``) is not sent and gets a
:class:`RateLimitError` saying so, rather than stalling the run.
Three things end the whole run instead, because carrying on would lose
track of work: an exception from ``on_submitted`` (the caller's journal is
broken, and the task it could not record already exists), an exception from
the input iterable, and any non-``KooDriveError`` (a bug). The run stops
submitting, cancels its waits (never the tasks on the server) and re-raises.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Hashable,
    Iterable,
    Iterator,
)
from typing import Any, Protocol

from ._exceptions import (
    KooDriveError,
    RateLimitError,
    TaskFailedError,
    TaskTimeoutError,
)
from ._models import JobOutcome, Request, Task
from ._policies import PollPolicy

__all__ = ["FanOut", "SubmissionPacer", "request_kind"]

#: Lowest submission rate the back-off goes down to (per second).
MIN_RATE = 0.2


class _Session(Protocol):
    async def submit(self, request: Request) -> str: ...

    async def _wait_task(
        self,
        task_id: str,
        *,
        timeout: float | None,
        poll: PollPolicy,
        on_status: Callable[[Task], Any] | None,
        kind: Hashable | None,
        started: float | None,
    ) -> Task: ...


def request_kind(request: object) -> Hashable:
    """Key under which durations of tasks like this one are learned.

    Args:
        request: A request model.

    Returns:
        ``(model class name, task_type, action_type)``.
    """
    return (
        type(request).__name__,
        getattr(request, "task_type", None),
        getattr(request, "action_type", None),
    )


class SubmissionPacer:
    """Paces submissions: at most ``max_per_second``, halved on 429, recovering slowly (AIMD).

    Submissions are spaced ``1 / rate`` apart (no bursts), so in any window of
    ``w`` seconds at most ``w * rate + 1`` go out. With no cap the pacer does
    nothing until the first 429; then it starts from half the rate measured
    over the last second, and once recovered to twice that it lifts itself.
    Recovery is additive: a tenth of the cap (or of the rate at the first
    back-off) per second without a 429.

    A 429 with a ``Retry-After`` also *holds* every submission until it has
    passed. :meth:`acquire` waits for a hold only up to ``max_hold`` (and the
    caller's own limit); a longer one fails that submission with
    :class:`RateLimitError` at once, before anything is sent, so that a
    server asking for an hour ends the waiting requests rather than stalling
    them for an hour.

    Args:
        max_per_second: The cap, or None for none.
        clock: Monotonic time source (seconds).
        max_hold: Longest a submission waits for a Retry-After hold, in
            seconds (the session's ``RetryPolicy.max_retry_after``).
    """

    def __init__(
        self,
        max_per_second: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_hold: float = math.inf,
    ) -> None:
        self._ceiling = max_per_second
        self._rate: float | None = max_per_second
        self._clock = clock
        self._max_hold = max_hold
        self._next = -math.inf
        # The server's Retry-After hold: no submission before _hold_until.
        self._hold_until = -math.inf
        self._hold_cause: RateLimitError | None = None
        self._last_cut = -math.inf
        self._last_recover = -math.inf
        self._increase = (max_per_second / 10.0) if max_per_second else 0.0
        self._lift_at = math.inf
        # Submissions counted in the current and previous one-second buckets,
        # to know the actual rate when there is no cap.
        self._bucket = 0
        self._count = 0
        self._previous = 0
        #: How many times the rate was cut (tests and benchmarks read it).
        self.backoffs = 0

    @property
    def rate(self) -> float | None:
        """The current submission rate per second (None: unpaced)."""
        return self._rate

    def _count_submission(self, now: float) -> None:
        bucket = int(now)
        if bucket != self._bucket:
            self._previous = self._count if bucket == self._bucket + 1 else 0
            self._bucket = bucket
            self._count = 0
        self._count += 1

    def _measured_rate(self, now: float) -> float:
        fraction = now - int(now)
        return self._count + self._previous * (1.0 - fraction)

    def _recover(self, now: float) -> None:
        if self._rate is None or self._last_cut == -math.inf:
            return
        elapsed = now - self._last_recover
        if elapsed <= 0:
            return
        rate = self._rate + self._increase * elapsed
        self._last_recover = now
        if self._ceiling is not None:
            self._rate = min(rate, self._ceiling)
        elif rate >= self._lift_at:
            self._rate = None

    def reserve(self) -> float:
        """Book the next submission slot.

        Returns:
            Seconds to wait before submitting (0 when it may go now).
        """
        now = self._clock()
        self._recover(now)
        at = max(now, self._next, self._hold_until)
        if self._rate is not None:
            self._next = at + 1.0 / self._rate
        self._count_submission(at)
        return at - now

    async def acquire(self, *, max_wait: float | None = None) -> float:
        """Wait for the next submission slot.

        Args:
            max_wait: Longest this submission may wait for a Retry-After
                hold (on top of ``max_hold``), in seconds, or None.

        Returns:
            The clock time the slot was granted (pass it to :meth:`rate_limited`).

        Raises:
            RateLimitError: A hold longer than allowed is in force; nothing
                may be sent (``possibly_created`` is False, ``retry_after``
                is what is left of the hold).
        """
        limit = self._max_hold if max_wait is None else min(self._max_hold, max_wait)
        while True:
            now = self._clock()
            held = self._hold_until - now
            if held > limit:
                raise self._held(held, limit)
            hold = self._hold_until
            delay = self.reserve()  # a slot after that hold
            if delay > 0:
                await asyncio.sleep(delay)
            # A 429 that came back while this one slept holds it back too.
            if self._hold_until == hold:
                return self._clock()

    def _held(self, held: float, limit: float) -> RateLimitError:
        cause = self._hold_cause
        return RateLimitError(
            f"not sent: the service answered an earlier create with 429 and asked to hold "
            f"submissions for {held:.3g}s more, longer than this request may wait "
            f"({limit:.3g}s; see RetryPolicy.max_retry_after and timeout)",
            retry_after=held,
            status_code=429,
            code=cause.code if cause is not None else None,
            msg=cause.msg if cause is not None else None,
            trace_id=cause.trace_id if cause is not None else None,
            method=cause.method if cause is not None else None,
            path=cause.path if cause is not None else None,
            possibly_created=False,
        )

    def rate_limited(
        self, sent_at: float, retry_after: float | None, cause: RateLimitError | None = None
    ) -> None:
        """Record a 429 answer to a submission sent at ``sent_at``.

        Halves the rate, unless this submission went out before the previous
        cut (a burst of 429s for requests already in flight counts once), and
        holds every submission back for ``retry_after`` seconds if given
        (the whole of it, however long: :meth:`acquire` decides who may wait).

        Args:
            sent_at: What :meth:`acquire` returned for that submission.
            retry_after: The server's Retry-After, in seconds, or None.
            cause: The error, quoted by the submissions a long hold refuses.
        """
        now = self._clock()
        if sent_at >= self._last_cut:
            current = self._rate
            if current is None:
                current = max(self._measured_rate(now), 2.0 * MIN_RATE)
                self._lift_at = 2.0 * current
                self._increase = max(current / 10.0, MIN_RATE)
            self._rate = max(MIN_RATE, current / 2.0)
            self._last_cut = self._last_recover = now
            self.backoffs += 1
        if retry_after is None:
            self._next = max(self._next, now + 1.0 / (self._rate or 1.0))
        elif now + retry_after > self._hold_until:
            self._hold_until = now + retry_after
            self._hold_cause = cause


class FanOut:
    """One run of ``run_jobs`` / ``stream_jobs``.

    Args:
        session: Provides ``submit`` and ``_wait_task``.
        requests: Iterable or async iterable of request models, consumed lazily.
        max_concurrency: Most tasks in flight (a submission in progress counts).
        max_per_second: Cap on submissions per second, or None.
        timeout: Deadline of each task's wait, in seconds, or None; also the
            longest a request waits for a Retry-After hold before it is sent.
        poll: Poll policy for the waits.
        on_submitted: Called (and awaited if async) with ``(request, task_id)``
            as soon as each id is known, before waiting starts.
        max_hold: Longest a request waits for a Retry-After hold (the
            session's ``RetryPolicy.max_retry_after``), in seconds.
    """

    def __init__(
        self,
        session: _Session,
        requests: Iterable[Request] | AsyncIterable[Request],
        *,
        max_concurrency: int,
        max_per_second: float | None,
        timeout: float | None,
        poll: PollPolicy,
        on_submitted: Callable[[Request, str], Any] | None,
        max_hold: float = math.inf,
    ) -> None:
        self._session = session
        self._requests = requests
        self._max = max_concurrency
        self._timeout = timeout
        self._poll = poll
        self._on_submitted = on_submitted
        self.pacer = SubmissionPacer(max_per_second, max_hold=max_hold)
        self._loop = asyncio.get_running_loop()
        self._ready: deque[tuple[int, JobOutcome]] = deque()
        self._jobs: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._feed_done = False
        self._fatal: BaseException | None = None
        self._feeder: asyncio.Task[None] | None = None
        self._consumer_wake: asyncio.Future[None] | None = None
        self._feeder_wake: asyncio.Future[None] | None = None
        self._input: Iterator[Request] | AsyncIterator[Request] | None = None

    # ------------------------------------------------------------------ consumer

    async def outcomes(self) -> AsyncGenerator[tuple[int, JobOutcome], None]:
        """Yield ``(input index, outcome)`` pairs in completion order.

        Raises:
            Exception: Whatever ended the run (see the module docstring).
        """
        self._feeder = self._loop.create_task(self._feed())
        try:
            while True:
                if self._fatal is not None:
                    raise self._fatal
                if self._ready:
                    item = self._ready.popleft()
                    # Room in the outcome buffer may let the feeder go on.
                    self._wake_feeder()
                    yield item
                    continue
                if self._feed_done and self._in_flight == 0:
                    return
                self._consumer_wake = wake = self._loop.create_future()
                try:
                    await wake
                finally:
                    self._consumer_wake = None
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        tasks: list[asyncio.Task[None]] = list(self._jobs)
        if self._feeder is not None:
            tasks.append(self._feeder)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._jobs.clear()
        await self._close_input()

    async def _close_input(self) -> None:
        # Close an input generator we stopped consuming early, now rather than
        # whenever the garbage collector gets to it.
        source = self._input
        self._input = None
        if source is None:
            return
        try:
            if inspect.isasyncgen(source):
                await source.aclose()
            elif inspect.isgenerator(source):
                source.close()
        except Exception:  # noqa: BLE001 - a broken generator cannot stop our cleanup
            pass

    def _wake_consumer(self) -> None:
        wake = self._consumer_wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _wake_feeder(self) -> None:
        wake = self._feeder_wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _set_fatal(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
        self._wake_consumer()

    # ------------------------------------------------------------------ feeder

    async def _feed(self) -> None:
        try:
            requests = self._requests
            index = 0
            if isinstance(requests, AsyncIterable):
                ait = requests.__aiter__()
                self._input = ait
                while True:
                    await self._room()
                    try:
                        request = await ait.__anext__()
                    except StopAsyncIteration:
                        break
                    self._start(index, request)
                    index += 1
            else:
                it = iter(requests)
                self._input = it
                while True:
                    await self._room()
                    try:
                        request = next(it)
                    except StopIteration:
                        break
                    self._start(index, request)
                    index += 1
            self._input = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the input failed: end the run with its error
            self._set_fatal(exc)
        finally:
            self._feed_done = True
            self._wake_consumer()

    async def _room(self) -> None:
        while self._in_flight >= self._max or len(self._ready) >= self._max:
            self._feeder_wake = wake = self._loop.create_future()
            try:
                await wake
            finally:
                self._feeder_wake = None

    def _start(self, index: int, request: Request) -> None:
        self._in_flight += 1
        task = self._loop.create_task(self._job(index, request))
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    # ------------------------------------------------------------------ jobs

    async def _job(self, index: int, request: Request) -> None:
        outcome: JobOutcome | None = None
        try:
            outcome = await self._run_one(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - fatal to the run, see the module docstring
            self._set_fatal(exc)
        finally:
            self._in_flight -= 1
            if outcome is not None:
                self._ready.append((index, outcome))
            self._wake_consumer()
            self._wake_feeder()

    async def _submit(self, request: Request) -> str:
        sent_at = await self.pacer.acquire(max_wait=self._timeout)
        try:
            return await self._session.submit(request)
        except RateLimitError as exc:
            # Slow down and hold the others back, but do not send this one
            # again: the transport already spent its retry budget on it.
            self.pacer.rate_limited(sent_at, exc.retry_after, exc)
            raise

    async def _run_one(self, request: Request) -> JobOutcome:
        try:
            task_id = await self._submit(request)
        except KooDriveError as exc:
            return JobOutcome(request, None, None, exc)
        started = self._loop.time()
        if self._on_submitted is not None:
            # Not caught here: a failing journal ends the run (module docstring).
            result = self._on_submitted(request, task_id)
            if inspect.isawaitable(result):
                await result
        try:
            task = await self._session._wait_task(
                task_id,
                timeout=self._timeout,
                poll=self._poll,
                on_status=None,
                kind=request_kind(request),
                started=started,
            )
        except TaskFailedError as exc:
            return JobOutcome(request, task_id, exc.task, exc)
        except TaskTimeoutError as exc:
            return JobOutcome(request, task_id, exc.last, exc)
        except KooDriveError as exc:
            return JobOutcome(request, task_id, None, exc)
        return JobOutcome(request, task_id, task, None)
