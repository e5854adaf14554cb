"""One round of a bulk run: submit the pending lines, wait for the submitted ones.

Exactly-once bookkeeping, per plan line:

1. The request iterable handed to ``stream_jobs`` is an async generator
   (:meth:`Submissions.feed`). The fan-out pulls from it only when it has
   room and submits a pulled request at once, so the generator commits
   "submitting" for a line right before yielding its request: the journal
   always knows about a create before it can be sent. Pacing (``rate``)
   happens in the generator too, *before* that commit, so that a line never
   sits in "submitting" waiting for its turn.
2. ``on_submitted`` commits the task id as soon as the create returns.
3. Outcomes come back in completion order and are mapped to their line by
   the identity of the request object (each line is parsed into a fresh
   object, so two identical lines stay two requests).

A create that failed with ``possibly_created`` becomes ``in_doubt`` (never
retried blindly); one refused in a way that proves nothing was created is
``failed``, but a 429: the transport hands it back at once
(``defer_throttled_creates``), its line goes back to pending and is sent
again after the hold, which :class:`Pace` shares with every worker of the
plan (with or without ``rate``) and which backs this worker off. Three
create errors stop the submissions of the whole run
(:class:`~._options.StopReason`); the lines not sent stay pending:

* refused or unobtainable credentials (401, 403, ``CredentialsError``): the
  other lines would be refused too. The run then stops at once (the waits
  would be refused as well); a ``CredentialsError`` line itself is pending
  (nothing was sent), a 401/403 line failed (``retry_rejected``).
* a dead endpoint: :data:`~._options.UNREACHABLE_LIMIT` creates in a row
  that could not connect, none getting through. A create that could not
  connect but was followed by one that got through is failed.
* a 429 asking to wait longer than ``RetryPolicy.max_retry_after``, or a
  line throttled :data:`MAX_THROTTLES` times: that line and those refused
  unsent for the same hold go back to pending; the submitted lines are
  still waited for.

An interruption (:meth:`Control.interrupt`): no new line is submitted; the
creates already pulled may get their answer for up to
:data:`~._options.DRAIN_SECONDS`, then the waits are cancelled (never the
tasks on the service). A create still unanswered then stays "submitting"
(in doubt on the next run). A second interruption stops at once.

Must never import: ``cli/``, ``rich``, ``argparse``, a journal backend.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from typing import Any

from .._call import defer_throttled_creates
from .._exceptions import (
    CreateVetoedError,
    CredentialsError,
    KooDriveError,
    RateLimitError,
    TaskFailedError,
)
from .._models import Job, JobOutcome, Request, ShareTask, Task
from .._pacing import SubmissionPacer
from .._policies import RetryPolicy
from ._claims import Claimer
from ._journal import AttemptRecord, Journal, LeaseLostError, LineRecord, Pacer, State
from ._options import DRAIN_SECONDS, UNREACHABLE_LIMIT, RunOptions, Stop, StopReason
from ._plan import Plan
from ._progress import Progress, RunStats, wants_history
from ._retry import cut_request
from ._session import BulkSession
from ._verdict import (
    LineVerdict,
    asks_to_wait,
    could_not_connect,
    credentials_refused,
    line_verdict,
)
from ._waits import wait_for_line

__all__ = ["MAX_THROTTLES", "Control", "LineBook", "Pace", "Submissions", "run_round"]


class Control:
    """How a run is stopped: by the caller (interrupt, force) or by itself (a :class:`Stop`)."""

    def __init__(self) -> None:
        #: Set to end the round: no new line, drain the answers, cancel the waits.
        self.stop = asyncio.Event()
        #: Set to end the drain at once.
        self.force = asyncio.Event()
        self.interrupted = False
        #: No new line is submitted (set with every stop, and alone for a soft one).
        self.closed = False
        #: Why the run stopped submitting by itself, if it did.
        self.notice: Stop | None = None

    def interrupt(self) -> bool:
        """Stop the run (a second call: stop at once); True on the first call."""
        if self.stop.is_set():
            self.force.set()
            return False
        self.interrupted = True
        self.closed = True
        self.stop.set()
        return True

    def halt(self, notice: Stop, *, soft: bool, progress: Progress) -> None:
        """Stop submitting for ``notice`` (first one wins); ``soft`` keeps the waits going."""
        if self.closed:
            return  # stopping already (an interruption, another stop)
        self.closed = True
        self.notice = notice
        if not soft:
            self.stop.set()
        progress.stopping(notice)


class LineBook:
    """Records the verdicts of one run's lines in the journal and the counters."""

    def __init__(
        self,
        journal: Journal,
        progress: Progress,
        stats: RunStats,
        kinds: Mapping[int, str | None] | None = None,
    ) -> None:
        self.journal = journal
        self.progress = progress
        self.stats = stats
        #: ``{line: kind}`` of the plan, for the records the progress is told about.
        self.kinds: Mapping[int, str | None] = kinds or {}
        #: Lines that went in doubt since the runner last cleared it.
        self.doubted: set[int] = set()
        #: Lines another worker took over from this one during the run.
        self.lost: set[int] = set()
        # A finished line's attempts cost a journal read (a round trip on
        # PostgreSQL): only for a progress that shows them.
        self._history = wants_history(progress)

    def lose(self, line: int) -> None:
        """``line`` is another worker's now: record nothing more about it."""
        self.lost.add(line)
        self.progress.update()

    async def finish(self, line: int, verdict: LineVerdict, *, was_in_flight: bool) -> None:
        """Record ``verdict`` for ``line`` and tell the progress."""
        stats = self.stats
        if was_in_flight:
            stats.in_flight -= 1
        try:
            await self._write(line, verdict)
        except LeaseLostError:
            self.lose(line)
            return
        if verdict.state == State.SUBMITTED:
            stats.unresolved += 1
        elif verdict.state == State.SUCCEEDED:
            stats.succeeded += 1
        elif verdict.state == State.FAILED:
            stats.failed += 1
        else:
            stats.in_doubt += 1
            self.doubted.add(line)
        if verdict.state != State.IN_DOUBT:
            # In-doubt lines are reported at the end, if no reconciliation settles them.
            history = tuple(await self.journal.attempts(line)) if self._history else ()
            self.progress.line_done(_record(line, verdict, self.kinds.get(line), history))
        self.progress.update()

    async def _write(self, line: int, verdict: LineVerdict) -> None:
        if verdict.state == State.SUBMITTED:
            if verdict.error_type is not None and verdict.error is not None:
                await self.journal.note_error(
                    line, error_type=verdict.error_type, error=verdict.error
                )
        else:
            await self.journal.mark_finished(
                line,
                state=verdict.state,
                task_id=verdict.task_id,
                result_code=verdict.result_code,
                error_type=verdict.error_type,
                error=verdict.error,
                outcome=verdict.outcome,
                failed_files=verdict.failed_files,
                download_url=verdict.download_url,
            )

    async def not_sent(self, line: int, verdict: LineVerdict) -> None:
        """Put ``line`` back to pending: its create provably was not acted on."""
        assert verdict.error_type is not None and verdict.error is not None
        try:
            await self.journal.mark_not_sent(
                line, error_type=verdict.error_type, error=verdict.error
            )
        except LeaseLostError:
            self.lose(line)
            return
        self.progress.update()


def _record(
    line: int, verdict: LineVerdict, kind: str | None, history: tuple[AttemptRecord, ...]
) -> LineRecord:
    last = history[-1] if history else None
    return LineRecord(
        line=line,
        kind=kind,
        state=verdict.state,
        task_id=verdict.task_id,
        result_code=verdict.result_code,
        error_type=verdict.error_type,
        error=verdict.error,
        attempts=last.attempt if last is not None else 0,
        outcome=verdict.outcome,
        failed_files=verdict.failed_files,
        download_url=verdict.download_url,
        retry_files=last.sent_files if last is not None else (),
        history=history,
    )


#: Longest a 429 seen by one worker holds back the others: the transport's
#: own cap on a Retry-After it waits (``RetryPolicy.max_retry_after``).
_HOLD_CAP = RetryPolicy().max_retry_after

#: Times one line may be throttled (429) in a run before the run stops
#: submitting (its lines stay pending): a service that throttles every create
#: for ever must not keep the run going for ever.
MAX_THROTTLES = 20

#: Shortest time between two cuts of a worker's pace on 429s (seconds).
CUT_INTERVAL = 1.0


class Pace:
    """This worker's pace: its own back-off on 429s, under the plan's shared rate and hold.

    A 429 on a create is proof nothing was created: its line goes back to
    pending and is sent again after the hold. The hold is this process's
    (:class:`SubmissionPacer`) and, with a many-worker journal, every
    worker's (``shared``): recorded once on the database's clock, and learnt
    by the others from the "submitting" write they make anyway
    (:meth:`learn`), so waiting for it costs no round trip when there is none.

    Args:
        rate: This process's cap (creates per second), when no pace is shared.
        shared: The pace shared by every worker of the plan, or None.
    """

    def __init__(self, rate: float | None, shared: Pacer | None) -> None:
        # With a shared pace the cap is the shared bucket's; this one only backs off.
        self.local = SubmissionPacer(rate if shared is None else None)
        self.shared = shared
        self._hold_end = -math.inf
        self._cut_at = -math.inf

    async def acquire(self) -> float:
        """Wait for this worker's next create; the moment to pass to :meth:`throttled`."""
        if self.shared is not None:
            await self.shared.acquire()
        await self.wait_hold()
        return await self.local.acquire()

    def learn(self, left: float | None) -> None:
        """A shared hold has ``left`` seconds more (read with a "submitting" write)."""
        if left is not None and left > 0:
            end = asyncio.get_running_loop().time() + min(left, _HOLD_CAP)
            self._hold_end = max(self._hold_end, end)

    async def wait_hold(self) -> None:
        """Sleep out the holds in force: the shared one last learnt, and this process's own.

        A turn taken early (while the previous line was being marked) may
        predate a 429 answered since: it must not send through that hold.
        """
        loop = asyncio.get_running_loop()
        while True:
            left = max(self._hold_end - loop.time(), self.local.hold_left())
            if left <= 0:
                return
            await asyncio.sleep(left)

    async def throttled(self, sent_at: float, seconds: float | None) -> None:
        """A create sent at ``sent_at`` was answered 429 asking for ``seconds`` (or nothing)."""
        wait = None if seconds is None else min(seconds, _HOLD_CAP)
        # Every 429 reaches the run now, not only a create's last one: the
        # pace is cut at most once a second (each hold is kept), or a few 429s
        # in a row would take it to its floor.
        now = time.monotonic()
        if now - self._cut_at >= CUT_INTERVAL:
            self._cut_at = now
            self.local.rate_limited(sent_at, wait)
        elif wait is not None:
            self.local.hold(wait)
        if wait is not None and wait > 0 and self.shared is not None:
            # Every worker of the plan holds back, not only this one.
            self.learn(await self.shared.hold(wait))


class Submissions:
    """The new lines of a run: feed them to the fan-out and record what comes back.

    Args:
        plan: The plan.
        session: The open session.
        options: How to run.
        book: Where verdicts are recorded.
        control: How the run stops.
        pacer: The pace shared by every worker of the plan (default: none,
            ``options.rate`` in this process).
    """

    def __init__(
        self,
        plan: Plan,
        session: BulkSession,
        options: RunOptions,
        book: LineBook,
        control: Control,
        pacer: Pacer | None = None,
    ) -> None:
        self.plan = plan
        self.session = session
        self.options = options
        self.book = book
        self.control = control
        # The run's pace (``rate``, and the holds of 429s): the journal's shared
        # one when many workers share the plan, under this process's back-off.
        self.pace = Pace(options.rate, pacer)
        # id(request) -> when the pace let it go (for its back-off on a 429).
        self.sent_at: dict[int, float] = {}
        # Lines throttled in this run, and how often.
        self.throttles: dict[int, int] = {}
        self._claimer: Claimer | None = None
        # id(request) -> (line, request): keeps the objects alive (so ids stay
        # unique) while they are in the fan-out.
        self.pulled: dict[int, tuple[int, Request]] = {}
        # ids pulled whose create has no answer yet (neither a task id nor an outcome).
        self.unacked: set[int] = set()
        self.drained = asyncio.Event()
        self.drained.set()
        # Creates that could not connect since the last one that got through:
        # pending in the journal; failed once another create gets through.
        self.unreachable: list[tuple[int, LineVerdict]] = []
        self.dead_endpoint = False
        #: ``{line: files}``: the lines a retry sends only some files of (the runner sets it).
        self.retry_files: dict[int, tuple[str, ...]] = {}

    async def feed(self, claimer: Claimer) -> AsyncIterator[Request]:
        """The claimed lines' requests, each marked "submitting" right before it is handed over."""
        pace = self.pace
        self._claimer = claimer
        first = True
        # The next create's turn, taken while this one is marked "submitting":
        # with a shared rate both are round trips to the database, and a line
        # then costs one on the critical path, not two. Only a turn is taken
        # early, never a line marked: a crash leaves nothing more in doubt.
        turn: asyncio.Future[float] | None = None
        try:
            while True:
                if not first:
                    # The fan-out pulls requests in a tight loop while it has room.
                    # Yield first, so the request just handed over is on the wire
                    # before the next line is marked: a crash then leaves in doubt
                    # only lines that were really being sent, not a whole burst.
                    await asyncio.sleep(0)
                first = False
                if self.control.closed:
                    return
                line = await claimer.next_line()
                if line is None or self.control.closed:
                    # A line claimed and not marked stays pending (released at the end).
                    return
                if turn is None:
                    turn = asyncio.ensure_future(pace.acquire())
                sent_at = await turn
                turn = None
                # A hold learnt while this turn was being taken holds it too.
                await pace.wait_hold()
                if self.control.closed:
                    return
                request = self.plan.request(line)
                files = self.retry_files.get(line)
                if files:
                    # A retry of a partial failure: the same job, only the failed files.
                    cut = cut_request(request, files)
                    if cut is None:
                        await self._not_retried(line, files)
                        continue
                    request = cut
                key = id(request)
                turn = asyncio.ensure_future(pace.acquire())
                try:
                    # The offset known now: the create is sent after this, so its
                    # task's createTime is later than this moment in the service's clock.
                    held = await self.book.journal.mark_submitting(
                        line, clock_offset=self.session.clock_offset
                    )
                except LeaseLostError:
                    self.book.lose(line)
                    continue
                if held:
                    # Another worker was throttled since this one last looked.
                    # Nothing is sent for this line: it goes back to pending
                    # (not left "submitting" through the hold, where a crash or
                    # a stop would leave it in doubt) and comes back after it.
                    pace.learn(held)
                    verdict = LineVerdict(
                        State.PENDING,
                        error_type="RateLimitHold",
                        error=f"plan line {line}: not sent yet: the plan's creates are "
                        f"held for {held:.3g}s more after a 429",
                    )
                    await self.book.not_sent(line, verdict)
                    claimer.again(line)
                    continue
                self.sent_at[key] = sent_at
                self.pulled[key] = (line, request)
                self.unacked.add(key)
                self.drained.clear()
                yield request
        finally:
            if turn is not None:
                turn.cancel()
                await asyncio.gather(turn, return_exceptions=True)
            claimer.finish()

    async def _not_retried(self, line: int, files: tuple[str, ...]) -> None:
        """A retry whose failed files are none of the line's: failed again, nothing sent."""
        verdict = LineVerdict(
            State.FAILED,
            None,
            None,
            "RetryNotCut",
            f"plan line {line}: not sent again: the failed files the service named "
            f"({', '.join(files[:3])}{', ...' if len(files) > 3 else ''}) are not in its "
            "request, and sending the whole line would repeat the files that succeeded",
        )
        await self.book.finish(line, verdict, was_in_flight=False)

    async def guard(self, request: Request) -> None:
        """Right before each attempt of a line's create: is the line still this worker's?

        Raises:
            CreateVetoedError: Another worker took the line over; the attempt
                must not be sent.
        """
        entry = self.pulled.get(id(request))
        if entry is None or entry[1] is not request:
            return
        try:
            await self.book.journal.check_lease(entry[0])
        except LeaseLostError as exc:
            raise CreateVetoedError(
                f"plan line {entry[0]}: not sent, another worker holds it now ({exc})"
            ) from None

    async def on_submitted(self, request: Request, task_id: str) -> None:
        """Commit the task id of a create as soon as it returns."""
        key = id(request)
        entry = self.pulled.get(key)
        if entry is None or entry[1] is not request:
            raise RuntimeError("on_submitted for a request this run did not submit")
        await self.book.journal.mark_submitted(entry[0], task_id)
        self._ack(key)
        await self.reached()
        self.book.stats.submitted += 1
        self.book.stats.in_flight += 1
        self.book.progress.update()

    def _ack(self, key: int) -> None:
        self.unacked.discard(key)
        if not self.unacked:
            self.drained.set()

    async def consume(self, claimer: Claimer) -> None:
        """Submit the claimed lines through the session's fan-out and record every outcome."""
        # A throttled create comes back at once (not waited on in the
        # transport): its line is sent again after the hold all workers share.
        defer_throttled_creates.set(True)
        stream = self.session.stream_jobs(
            self.feed(claimer),
            max_concurrency=self.options.concurrency,
            # Pacing is done by feed(), before a line is marked submitting.
            max_per_second=None,
            timeout=self.options.timeout,
            poll=self.options.poll,
            on_submitted=self.on_submitted,
            before_create=self.guard,
        )
        async for outcome in stream:
            await self.outcome(outcome)

    async def outcome(self, outcome: JobOutcome) -> None:
        """Record one outcome of the fan-out."""
        key = id(outcome.request)
        entry = self.pulled.pop(key, None)
        if entry is None or entry[1] is not outcome.request:
            raise RuntimeError("an outcome for a request this run did not submit")
        line = entry[0]
        had_id = key not in self.unacked
        sent_at = self.sent_at.pop(key, -math.inf)
        error = outcome.error
        if outcome.task_id is None and isinstance(error, RateLimitError):
            if not error.possibly_created:
                # Acknowledged only once its line is pending again and handed
                # back: the last unanswered create's ack lets the claimer end
                # the round, which must not happen before the line returns.
                try:
                    verdict = line_verdict(outcome.task_id, outcome.task, error)
                    await self._throttled(line, verdict, error, sent_at)
                finally:
                    self._ack(key)
                return
        self._ack(key)
        if isinstance(outcome.error, CreateVetoedError):
            # Lost to another worker before the create was sent: its line now.
            self.book.lose(line)
            return
        verdict = line_verdict(outcome.task_id, outcome.task, outcome.error)
        if outcome.task_id is not None or outcome.error is None:
            await self.book.finish(line, verdict, was_in_flight=had_id)
        elif could_not_connect(outcome.error):
            await self._unreachable(line, verdict)
        else:
            await self._refused(line, verdict, outcome.error)

    async def _throttled(
        self, line: int, verdict: LineVerdict, error: RateLimitError, sent_at: float
    ) -> None:
        """A create answered 429 (or refused unsent for a hold): nothing was created.

        The line goes back to pending, and is sent again after the hold
        (:meth:`Pace.throttled`), by this worker or another. A 429 asking to
        wait longer than the run may (``asks_to_wait``), or a line throttled
        :data:`MAX_THROTTLES` times, stops the submissions instead.
        """
        await self.reached()  # the service answered a create
        wait = asks_to_wait(error)
        await self.pace.throttled(sent_at, error.retry_after if wait is None else wait)
        await self.book.not_sent(line, verdict)
        count = self.throttles[line] = self.throttles.get(line, 0) + 1
        if wait is not None or count >= MAX_THROTTLES:
            notice = self._notice(StopReason.RATE_LIMITED, verdict, retry_after=wait)
            self.control.halt(notice, soft=True, progress=self.book.progress)
        elif self._claimer is not None:
            self._claimer.again(line)

    async def _refused(self, line: int, verdict: LineVerdict, error: KooDriveError) -> None:
        """A create answered (or not sent) without a task id."""
        if isinstance(error, CredentialsError):
            await self.book.not_sent(line, verdict)  # nothing was sent for it
        else:
            await self.reached()
            await self.book.finish(line, verdict, was_in_flight=False)
        if credentials_refused(error):
            notice = self._notice(StopReason.CREDENTIALS, verdict)
            self.control.halt(notice, soft=False, progress=self.book.progress)

    def _notice(self, reason: StopReason, verdict: LineVerdict, **extra: object) -> Stop:
        return Stop(
            reason,
            verdict.error_type or "",
            verdict.error or "",
            base_url=self.session.base_url,
            **extra,  # type: ignore[arg-type]
        )

    async def _unreachable(self, line: int, verdict: LineVerdict) -> None:
        """A create that could not connect: pending until the endpoint proves alive."""
        await self.book.not_sent(line, verdict)
        self.unreachable.append((line, verdict))
        if self.dead_endpoint or len(self.unreachable) < UNREACHABLE_LIMIT:
            return
        self.dead_endpoint = True
        notice = self._notice(StopReason.UNREACHABLE, verdict, count=len(self.unreachable))
        self.control.halt(notice, soft=False, progress=self.book.progress)

    async def reached(self) -> None:
        """A create got an answer: the creates before it that could not connect fail."""
        if self.dead_endpoint or not self.unreachable:
            return
        held, self.unreachable = self.unreachable, []
        for line, verdict in held:
            await self.book.finish(line, verdict, was_in_flight=False)


async def wait_resumed(
    records: AsyncIterable[LineRecord],
    plan: Plan,
    session: BulkSession,
    options: RunOptions,
    book: LineBook,
    control: Control,
) -> None:
    """Wait for the lines an earlier run (or a reconciliation) left "submitted".

    Each at the endpoint of its kind (:func:`~._waits.wait_for_line`): a job
    line at job detail, a share line at share-task detail, as the fan-out does.
    """
    limit = asyncio.Semaphore(max(1, options.concurrency))

    async def wait_one(record: LineRecord) -> None:
        async with limit:
            if control.stop.is_set():
                return
            task_id = record.task_id
            assert task_id is not None
            task: Task | Job | ShareTask | None = None
            error: KooDriveError | None = None
            try:
                task = await wait_for_line(
                    session,
                    plan.request(record.line),
                    task_id,
                    timeout=options.timeout,
                    poll=options.poll,
                )
            except TaskFailedError as exc:
                task, error = exc.task, exc
            except KooDriveError as exc:
                error = exc
            await book.finish(record.line, line_verdict(task_id, task, error), was_in_flight=True)

    waits: list[asyncio.Task[None]] = []
    async for record in records:
        book.stats.in_flight += 1
        book.progress.update()
        waits.append(asyncio.create_task(wait_one(record)))
    await asyncio.gather(*waits)


def _first_error(
    done: Iterable[asyncio.Task[Any]], work: set[asyncio.Task[None]]
) -> BaseException | None:
    """Take the finished ``done`` out of ``work``; return the first exception one raised."""
    error: BaseException | None = None
    for task in work.intersection(done):
        work.discard(task)
        if error is None and not task.cancelled():
            error = task.exception()
    return error


async def _drain(subs: Submissions, work: set[asyncio.Task[None]]) -> BaseException | None:
    """Stopping: let the creates already sent get their answers (their task ids recorded).

    Bounded by :data:`DRAIN_SECONDS`: a create the transport is retrying (a
    429 asking for a minute, say) must not hold the stop up; its line stays
    "submitting", which the next run treats as in doubt.
    """
    control = subs.control
    drained = asyncio.create_task(subs.drained.wait())
    forced = asyncio.create_task(control.force.wait())
    loop = asyncio.get_running_loop()
    give_up = loop.time() + DRAIN_SECONDS
    error: BaseException | None = None
    try:
        while not subs.drained.is_set() and not control.force.is_set() and work:
            left = give_up - loop.time()
            if left <= 0:
                break
            done, _ = await asyncio.wait(
                work | {drained, forced}, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            error = error or _first_error(done, work)
    finally:
        drained.cancel()
        forced.cancel()
    return error


async def run_round(subs: Submissions, claimer: Claimer) -> BaseException | None:
    """Submit the claimed lines, wait for the claimed submitted ones; return what aborted it."""
    control = subs.control
    consumer = asyncio.create_task(subs.consume(claimer))
    waiter = asyncio.create_task(
        wait_resumed(claimer.waits(), subs.plan, subs.session, subs.options, subs.book, control)
    )
    stopper = asyncio.create_task(control.stop.wait())
    work: set[asyncio.Task[None]] = {consumer, waiter}
    error: BaseException | None = None
    try:
        while work and error is None and not control.stop.is_set():
            done, _ = await asyncio.wait(work | {stopper}, return_when=asyncio.FIRST_COMPLETED)
            error = _first_error(done, work)
        if work and error is None:
            error = await _drain(subs, work)
    finally:
        for task in work:
            task.cancel()
        await asyncio.gather(*work, return_exceptions=True)
        stopper.cancel()
        await asyncio.gather(stopper, return_exceptions=True)
    # Fewer than UNREACHABLE_LIMIT at the end of the plan: refused creates, as before.
    await subs.reached()
    return error
