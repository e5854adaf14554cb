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

Collaborators, all typed in ``_interfaces.py``: the :class:`TaskAPI` submits,
the :class:`Waits` waits (``_waiting.Waiting.wait``: the session's shared poll
scheduler), the :class:`SubmissionPacer` (``_pacing.py``) paces. This module
must never import the session, the transport or aiohttp, nor reach into any
collaborator's private names.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from datetime import UTC, datetime
from typing import Any

from ._call import create_guard
from ._estimator import duration_key
from ._exceptions import (
    KooDriveError,
    RateLimitError,
    TaskFailedError,
    TaskTimeoutError,
)
from ._interfaces import TaskAPI, Waits
from ._models import JobOutcome, Request
from ._pacing import SubmissionPacer
from ._policies import PollPolicy

__all__ = ["FanOut"]


class FanOut:
    """One run of ``run_jobs`` / ``stream_jobs``.

    Build it anywhere (nothing starts, no event loop is needed), then drive
    it once with :meth:`results` or :meth:`stream` (or :meth:`outcomes`).

    Args:
        api: Submits each request (``TaskAPI.submit``).
        waits: Waits for each submitted task (``Waits.wait``).
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
        before_create: Awaited with the request right before each attempt of
            its create (see ``_call.create_guard``), or None.
    """

    def __init__(
        self,
        api: TaskAPI,
        waits: Waits,
        requests: Iterable[Request] | AsyncIterable[Request],
        *,
        max_concurrency: int,
        max_per_second: float | None,
        timeout: float | None,
        poll: PollPolicy,
        on_submitted: Callable[[Request, str], Any] | None,
        max_hold: float = math.inf,
        before_create: Callable[[Request], Awaitable[None]] | None = None,
    ) -> None:
        self._api = api
        self._waits = waits
        self._requests = requests
        self._max = max_concurrency
        self._timeout = timeout
        self._poll = poll
        self._on_submitted = on_submitted
        self._before_create = before_create
        self.pacer = SubmissionPacer(max_per_second, max_hold=max_hold)
        # Set by outcomes(): the loop that drives the run, known only then.
        self._loop: asyncio.AbstractEventLoop
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
        self._loop = asyncio.get_running_loop()
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

    async def results(self) -> list[JobOutcome]:
        """Run to the end and return every outcome in input order (``run_jobs``).

        Returns:
            One :class:`JobOutcome` per request pulled from the input.

        Raises:
            Exception: Whatever ended the run (see the module docstring).
        """
        results: list[JobOutcome | None] = []
        stream = self.outcomes()
        try:
            async for index, outcome in stream:
                if index >= len(results):
                    results.extend([None] * (index + 1 - len(results)))
                results[index] = outcome
        finally:
            await stream.aclose()
        return [outcome for outcome in results if outcome is not None]

    async def stream(self) -> AsyncGenerator[JobOutcome, None]:
        """Yield each outcome as soon as it is known (``stream_jobs``).

        Nothing starts until the first ``__anext__``; closing the generator
        stops the run (see :meth:`outcomes`).

        Yields:
            :class:`JobOutcome` in completion order.

        Raises:
            Exception: Whatever ended the run (see the module docstring).
        """
        stream = self.outcomes()
        try:
            async for _index, outcome in stream:
                yield outcome
        finally:
            await stream.aclose()

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
                    await asyncio.sleep(0)  # as below
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
                    # Let the job just started go as far as its first wait, and
                    # the loop read its sockets, before the next is started:
                    # 200 started back to back were all prepared before the
                    # first create was sent (it reached the service 0.12 s
                    # late, the last of them 0.25 s late; now 0.02 s and 0.14 s).
                    await asyncio.sleep(0)
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

    async def _submit(self, request: Request, times: list[datetime]) -> str:
        sent_at = await self.pacer.acquire(max_wait=self._timeout)
        # After the pacer's hold: the create is sent after this moment.
        times.append(datetime.now(UTC))
        if self._before_create is not None:
            # This job's own task: the guard reaches this create's attempts only.
            guard = self._before_create
            create_guard.set(lambda: guard(request))
        try:
            return await self._api.submit(request)
        except RateLimitError as exc:
            # Slow down and hold the others back, but do not send this one
            # again: the transport already spent its retry budget on it. A
            # deferred one's caller sends it again and paces itself.
            if not exc.deferred:
                self.pacer.rate_limited(sent_at, exc.retry_after, exc)
            raise

    async def _run_one(self, request: Request) -> JobOutcome:
        sent: list[datetime] = []
        try:
            task_id = await self._submit(request, sent)
        except KooDriveError as exc:
            return JobOutcome(
                request,
                None,
                None,
                exc,
                submitted_at=sent[0] if sent else None,
                answered_at=datetime.now(UTC) if sent else None,
            )
        times = {"submitted_at": sent[0], "answered_at": datetime.now(UTC)}
        # When the answer was read: the whole-second clock of jobs and share
        # tasks (_coarse.SecondClock) needs a moment after the service made
        # the unit, and the moment before sending is not one when the
        # transport waited (a 429's Retry-After, a free connection, a lease
        # check) before the attempt that made it.
        started = self._loop.time()
        if self._on_submitted is not None:
            # Not caught here: a failing journal ends the run (module docstring).
            result = self._on_submitted(request, task_id)
            if inspect.isawaitable(result):
                await result
        try:
            task = await self._waits.wait(
                task_id,
                timeout=self._timeout,
                poll=self._poll,
                kind=duration_key(request),
                started=started,
                # Each kind is read where the service reports it (job detail,
                # share-task detail, task detail).
                tracker=self._waits.tracker_for(request),
            )
        except TaskFailedError as exc:
            return JobOutcome(request, task_id, exc.task, exc, **times)
        except TaskTimeoutError as exc:
            return JobOutcome(request, task_id, exc.last, exc, **times)
        except KooDriveError as exc:
            return JobOutcome(request, task_id, None, exc, **times)
        return JobOutcome(request, task_id, task, None, **times)
