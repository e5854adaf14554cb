"""The run engine shared by ``koodrive-async run`` and ``koodrive-async demo``.

Exactly-once bookkeeping, per plan line (see ``_journal.py`` for the states):

1. The request iterable handed to :meth:`KooDriveSession.stream_jobs` is an
   async generator. The fan-out pulls from it only when it has room and
   submits a pulled request at once, so the generator commits "submitting"
   for a line (``synchronous=FULL``) right before yielding its request: the
   journal always knows about a create before it can be sent. Pacing
   (``--rate``) happens in the generator too, *before* that commit, so that a
   line never sits in "submitting" waiting for its turn.
2. ``on_submitted`` commits the task id as soon as the create returns.
3. Outcomes come back in completion order and are mapped to their line by
   the identity of the request object (each line is parsed into a fresh
   object, so two identical lines stay two requests).

A create that failed with ``possibly_created`` (a 500 to a POST, a
connection lost after sending) becomes ``in_doubt``: never retried blindly.
A create refused in a way that proves nothing was created is ``failed`` (no
task id; ``--retry-rejected`` sends it again on the next run).

On resume: lines left in "submitting" become ``in_doubt``, "submitted" lines
are waited on (never sent again), finished lines are skipped.

In-doubt lines are *reconciled* (``_reconcile.py`` states the rule): the
service's task list is read (all pages) and each in-doubt line is either
matched to its task (then "submitted" and waited on), proven not created
(then "pending" and sent again), or left in doubt (reported; sent again only
with ``--resubmit-in-doubt``). This happens at the start of a run that finds
in-doubt lines, and again after a round of submissions that left new lines in
doubt (at most :data:`MAX_RECONCILIATIONS` times per run), so a
``possibly_created`` create is usually settled by the run that sent it.
``--no-reconcile`` turns it off.

SIGINT / SIGTERM: no new line is submitted; the creates already pulled by the
fan-out are allowed to get their answer for up to :data:`DRAIN_SECONDS` (so
their task ids are usually committed and nothing is left in doubt), then the
waits are cancelled (never the tasks on the service), the in-flight lines are
printed and the exit code is 130. A create still unanswered by then (one the
transport is retrying after a 429, say) is abandoned: its line stays
"submitting", is reported, and is in doubt on the next run. A second signal
stops at once.

A create refused for its credentials (401, 403) stops the submissions: the
other lines would be refused too; they stay pending for the next run.

A dead endpoint stops them too: after :data:`UNREACHABLE_LIMIT` creates in a
row that could not connect (refused, DNS, TLS, connect timeout: provably
nothing sent) with none getting through, no new line is submitted, the URL
and the error are printed, and those lines and the ones not yet sent stay
pending (exit code 1). A create that could not connect but was followed by
one that got through is failed, as any refused create.

Exit codes: 0 every line succeeded; 1 some line failed, was skipped as
invalid, was not finished (wait timed out) or not started; 2 usage or plan
error (nothing sent); 3 some line is in doubt; 130 interrupted.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import attrs

from .._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    KooDriveError,
    NotFoundError,
    PermissionDeniedError,
    ResponseValidationError,
    TaskFailedError,
)
from .._models import JobOutcome, Request, Task
from .._policies import PollPolicy, RetryPolicy
from .._protocol import MAX_PAGE_SIZE, prepare_list_tasks
from ._journal import (
    Journal,
    JournalError,
    LineRecord,
    State,
)
from ._mask import mask
from ._plan import Plan, PlanError, load_plan
from ._progress import (
    Reporter,
    RunStats,
    Summary,
    make_reporter,
    print_summary,
    rich_available,
)
from ._reconcile import (
    SETTLE_SECONDS,
    WITNESSES_PER_KIND,
    Decision,
    KnownLine,
    LineInDoubt,
    decide,
    request_identity,
    request_key,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_IN_DOUBT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "MAX_LIST_PAGES",
    "UNREACHABLE_LIMIT",
    "Connection",
    "RunOptions",
    "UsageError",
    "default_journal_path",
    "list_every_task",
    "open_session",
    "run_plan",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_IN_DOUBT = 3
EXIT_INTERRUPTED = 130

#: Longest a stop (SIGINT / SIGTERM) waits for the answers to creates already
#: sent, in seconds: long enough for a normal answer, short enough that a stop
#: is never held up by a create the transport keeps retrying.
DRAIN_SECONDS = 3.0

#: Most reconciliations one invocation makes (one at the start, then one after
#: each round that left new lines in doubt).
MAX_RECONCILIATIONS = 3

#: Creates in a row that could not connect, none getting through, after which
#: the endpoint is taken for dead and no new line is submitted.
UNREACHABLE_LIMIT = 8

#: Most ``task/list`` pages one reconciliation reads (``--max-list-pages``); it
#: also holds at most this many times :data:`MAX_PAGE_SIZE` tasks in memory.
MAX_LIST_PAGES = 5000


class UsageError(Exception):
    """Bad arguments, configuration or plan: reported, exit code 2, nothing sent."""


@attrs.frozen
class Connection:
    """Where and as whom to call the API.

    Attributes:
        base_url: The service root, e.g. ``https://intl.myhuaweicloud-koodrive.com``.
        user_id: The X-User-Id.
        token: The access token (never shown in reprs, logs or output).
        agent_name: The X-Hw-Agentname (needed by share tasks).
    """

    base_url: str
    user_id: str
    token: str = attrs.field(repr=False)
    agent_name: str | None = None


@attrs.frozen
class RunOptions:
    """What ``run`` (and ``demo``) should do.

    Attributes:
        plan: The plan file.
        journal: The journal file (default: next to the plan, see
            :func:`default_journal_path`).
        concurrency: Most tasks in flight at once.
        rate: Most submissions per second, or None.
        timeout: Longest wait for one task, in seconds, or None.
        poll: How the tasks are polled.
        output: ``auto`` (rich bar on a terminal, plain otherwise), ``json``,
            ``plain`` or ``rich``.
        skip_invalid: Run the valid lines even when some are invalid.
        resubmit_in_doubt: Send again the in-doubt lines the reconciliation
            could not settle.
        retry_rejected: Send again the lines whose create was refused.
        reconcile: Settle in-doubt lines from the service's task list
            (see ``_reconcile.py``); False leaves them all in doubt.
        settle: Seconds after a create may have been sent before a listing
            may declare it not created (``--settle-time``).
        max_list_pages: Most ``task/list`` pages a reconciliation reads (and
            100 times as many tasks); a longer listing leaves the lines in
            doubt (``--max-list-pages``).
    """

    plan: Path
    journal: Path | None = None
    concurrency: int = 16
    rate: float | None = None
    timeout: float | None = None
    poll: PollPolicy = PollPolicy()
    output: str = "auto"
    skip_invalid: bool = False
    resubmit_in_doubt: bool = False
    retry_rejected: bool = False
    reconcile: bool = True
    settle: float = SETTLE_SECONDS
    max_list_pages: int = MAX_LIST_PAGES


def default_journal_path(plan: Path) -> Path:
    """``PLAN.journal.sqlite`` beside ``PLAN.jsonl``."""
    name = plan.name[: -len(plan.suffix)] if plan.suffix else plan.name
    return plan.with_name(f"{name}.journal.sqlite")


class _RequestCounter:
    """Counts the HTTP requests an aiohttp session starts (retries and polls included)."""

    def __init__(self) -> None:
        self.count = 0

    def trace_config(self) -> Any:
        import aiohttp

        config = aiohttp.TraceConfig()

        async def on_request_start(*_args: object) -> None:
            self.count += 1

        config.on_request_start.append(on_request_start)
        return config


async def open_session(
    connection: Connection, *, max_connections: int = 100
) -> tuple[Any, Callable[[], int], Callable[[], Any]]:
    """Open a KooDriveSession that counts its HTTP requests.

    Args:
        connection: Where and as whom.
        max_connections: The connection pool size.

    Returns:
        ``(session, requests_made, close)``; ``await close()`` when done.

    Raises:
        UsageError: The connection settings are invalid.
    """
    import aiohttp

    from .._session import KooDriveSession

    counter = _RequestCounter()
    http = aiohttp.ClientSession(
        trace_configs=[counter.trace_config()],
        connector=aiohttp.TCPConnector(limit=max_connections),
    )
    try:
        session = KooDriveSession(
            connection.base_url,
            user_id=connection.user_id,
            token=connection.token,
            agent_name=connection.agent_name,
            max_connections=max_connections,
            retry=RetryPolicy(),
            session=http,
        )
    except KooDriveError as exc:
        await http.close()
        raise UsageError(str(exc)) from exc

    async def close() -> None:
        try:
            await session.close()
        finally:
            await http.close()

    return session, (lambda: counter.count), close


def _error_type(exc: BaseException) -> str:
    name = type(exc).__name__
    if isinstance(exc, APIError):
        return f"{name} (HTTP {exc.status_code}" + (f", code {exc.code})" if exc.code else ")")
    return name


@attrs.frozen
class _Verdict:
    state: str  # SUCCEEDED, FAILED, IN_DOUBT, or SUBMITTED (no verdict: wait again next run)
    task_id: str | None = None
    result_code: str | None = None
    error_type: str | None = None
    error: str | None = None


def _could_not_connect(error: KooDriveError | None) -> bool:
    """True for a create that provably never reached a server (no connection was made)."""
    return (
        isinstance(error, APIConnectionError)
        and not isinstance(error, APITimeoutError)
        and not error.possibly_created
    )


def _text(error: BaseException) -> str:
    """An error's text as the journal keeps it and the CLI shows it: secrets masked."""
    return str(mask(str(error)))


def _verdict(task_id: str | None, task: Task | None, error: KooDriveError | None) -> _Verdict:
    if error is None:
        if task is not None and task.succeeded:
            return _Verdict(State.SUCCEEDED, task_id)
        status = getattr(task, "status", None) if task is not None else None
        return _Verdict(
            State.SUBMITTED, task_id, None, "NoVerdict", f"the wait ended with status {status}"
        )
    if isinstance(error, TaskFailedError):
        return _Verdict(
            State.FAILED,
            task_id or error.task.task_id,
            error.result_code,
            "TaskFailed" if error.result_code is None else None,
            _text(error),
        )
    if task_id is None:
        if getattr(error, "possibly_created", False):
            return _Verdict(State.IN_DOUBT, None, None, _error_type(error), _text(error))
        return _Verdict(State.FAILED, None, None, _error_type(error), _text(error))
    if isinstance(error, NotFoundError):
        return _Verdict(State.FAILED, task_id, None, _error_type(error), _text(error))
    # A timeout or a polling error: the task exists and goes on; the next run
    # waits for it again.
    return _Verdict(State.SUBMITTED, task_id, None, _error_type(error), _text(error))


class _Run:
    """One execution of a plan against an open journal and session."""

    def __init__(
        self,
        plan: Plan,
        journal: Journal,
        session: Any,
        options: RunOptions,
        reporter: Reporter,
        stats: RunStats,
    ) -> None:
        self.plan = plan
        self.journal = journal
        self.session = session
        self.options = options
        self.reporter = reporter
        self.stats = stats
        self.stop = asyncio.Event()
        self.force = asyncio.Event()
        self.interrupted = False
        # id(request) -> (line, request): keeps the objects alive (so ids stay
        # unique) while they are in the fan-out.
        self.pulled: dict[int, tuple[int, Request]] = {}
        # ids pulled whose create has no answer yet (neither a task id nor an outcome).
        self.unacked: set[int] = set()
        self.drained = asyncio.Event()
        self.drained.set()
        # Lines that went in doubt (possibly_created) since the runner last cleared it.
        self.doubted: set[int] = set()
        # Creates that could not connect since the last one that got through:
        # pending in the journal; failed once another create gets through.
        self.unreachable: list[tuple[int, _Verdict]] = []
        # Set when the endpoint was taken for dead (UNREACHABLE_LIMIT).
        self.dead_endpoint = False

    # ---------------------------------------------------------------- signals

    def _on_signal(self, signame: str) -> None:
        if not self.stop.is_set():
            self.interrupted = True
            self.stop.set()
            self.reporter.message(
                f"{signame}: stopping; no new line is submitted. Waiting up to "
                f"{DRAIN_SECONDS:g}s for the answers to {len(self.unacked)} create request(s) "
                f"already sent ({signame} again to stop at once; unanswered ones are then in "
                "doubt)."
            )
        else:
            self.force.set()

    def _install_signals(self) -> list[int]:
        loop = asyncio.get_running_loop()
        installed: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig.name)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            installed.append(sig)
        return installed

    # ---------------------------------------------------------------- recording

    def _finish(self, line: int, verdict: _Verdict, *, was_in_flight: bool) -> None:
        if was_in_flight:
            self.stats.in_flight -= 1
        if verdict.state == State.SUBMITTED:
            if verdict.error_type is not None and verdict.error is not None:
                self.journal.note_error(line, error_type=verdict.error_type, error=verdict.error)
            self.stats.unresolved += 1
        else:
            self.journal.mark_finished(
                line,
                state=verdict.state,
                task_id=verdict.task_id,
                result_code=verdict.result_code,
                error_type=verdict.error_type,
                error=verdict.error,
            )
            if verdict.state == State.SUCCEEDED:
                self.stats.succeeded += 1
            elif verdict.state == State.FAILED:
                self.stats.failed += 1
            else:
                self.stats.in_doubt += 1
                self.doubted.add(line)
        if verdict.state == State.IN_DOUBT:
            # Reported at the end of the run, if the reconciliation cannot settle it.
            self.reporter.update()
            return
        self.reporter.line_done(
            LineRecord(
                line=line,
                kind=None,
                state=verdict.state,
                task_id=verdict.task_id,
                result_code=verdict.result_code,
                error_type=verdict.error_type,
                error=verdict.error,
                attempts=0,
            )
        )
        self.reporter.update()

    def _ack(self, key: int) -> None:
        self.unacked.discard(key)
        if not self.unacked:
            self.drained.set()

    # ---------------------------------------------------------------- new lines

    async def _feed(self, lines: list[int]) -> AsyncIterator[Request]:
        pacer = None
        if self.options.rate is not None:
            from .._fanout import SubmissionPacer

            pacer = SubmissionPacer(self.options.rate)
        first = True
        for line in lines:
            if not first:
                # The fan-out pulls requests in a tight loop while it has room.
                # Yield first, so the request just handed over is on the wire
                # before the next line is marked: a crash then leaves in doubt
                # only lines that were really being sent, not a whole burst.
                await asyncio.sleep(0)
            first = False
            if self.stop.is_set():
                return
            if pacer is not None:
                await pacer.acquire()
                if self.stop.is_set():
                    return
            request = self.plan.request(line)
            key = id(request)
            # The offset known now: the create is sent after this, so its task's
            # createTime is later than this moment in the service's clock.
            self.journal.mark_submitting(line, clock_offset=self.session.clock_offset)
            self.pulled[key] = (line, request)
            self.unacked.add(key)
            self.drained.clear()
            yield request

    async def _on_submitted(self, request: Request, task_id: str) -> None:
        key = id(request)
        entry = self.pulled.get(key)
        if entry is None or entry[1] is not request:
            raise RuntimeError("on_submitted for a request this run did not submit")
        self.journal.mark_submitted(entry[0], task_id)
        self._ack(key)
        self._reached()
        self.stats.submitted += 1
        self.stats.in_flight += 1
        self.reporter.update()

    async def _consume(self, lines: list[int]) -> None:
        if not lines:
            return
        stream = self.session.stream_jobs(
            self._feed(lines),
            max_concurrency=self.options.concurrency,
            # Pacing is done by _feed, before a line is marked submitting.
            max_per_second=None,
            timeout=self.options.timeout,
            poll=self.options.poll,
            on_submitted=self._on_submitted,
        )
        async for outcome in stream:
            self._outcome(outcome)

    def _outcome(self, outcome: JobOutcome) -> None:
        key = id(outcome.request)
        entry = self.pulled.pop(key, None)
        if entry is None or entry[1] is not outcome.request:
            raise RuntimeError("an outcome for a request this run did not submit")
        line = entry[0]
        had_id = key not in self.unacked
        self._ack(key)
        verdict = _verdict(outcome.task_id, outcome.task, outcome.error)
        if outcome.task_id is None and _could_not_connect(outcome.error):
            self._unreachable(line, verdict)
            return
        if outcome.task_id is None:
            self._reached()  # the service answered this create
        self._finish(line, verdict, was_in_flight=had_id)
        if (
            outcome.task_id is None
            and isinstance(outcome.error, AuthenticationError | PermissionDeniedError)
            and not self.stop.is_set()
        ):
            # Every other line would be refused the same way: stop submitting
            # (not an interruption: the exit code says "failed", 1).
            self.stop.set()
            self.reporter.message(
                f"stopping: the service refused the credentials ({outcome.error}); the lines "
                "not yet sent stay pending. Fix the token or user id and run again with "
                "--retry-rejected."
            )

    def _unreachable(self, line: int, verdict: _Verdict) -> None:
        """A create that could not connect: pending until the endpoint proves alive."""
        assert verdict.error_type is not None and verdict.error is not None
        self.journal.mark_not_sent(line, error_type=verdict.error_type, error=verdict.error)
        self.unreachable.append((line, verdict))
        self.reporter.update()
        if self.dead_endpoint or len(self.unreachable) < UNREACHABLE_LIMIT:
            return
        self.dead_endpoint = True
        if self.stop.is_set():
            return  # stopping already (a signal, refused credentials)
        self.stop.set()
        self.reporter.message(
            f"stopping: cannot connect to {self.session.base_url}: {len(self.unreachable)} "
            f"create requests in a row could not connect and none got through (last: "
            f"{verdict.error_type}: {verdict.error}). Nothing was sent for them; they and the "
            "lines not yet sent stay pending. Check the URL (--base-url or KOODRIVE_BASE_URL) "
            "and the network, then run again."
        )

    def _reached(self) -> None:
        """A create got an answer: the creates before it that could not connect fail."""
        if self.dead_endpoint or not self.unreachable:
            return
        held, self.unreachable = self.unreachable, []
        for line, verdict in held:
            self._finish(line, verdict, was_in_flight=False)

    # ---------------------------------------------------------------- resumed lines

    async def _wait_resumed(self, records: list[LineRecord]) -> None:
        if not records:
            return
        limit = asyncio.Semaphore(max(1, self.options.concurrency))

        async def wait_one(record: LineRecord) -> None:
            async with limit:
                if self.stop.is_set():
                    return
                task_id = record.task_id
                assert task_id is not None
                task: Task | None = None
                error: KooDriveError | None = None
                try:
                    task = await self.session.wait_for_task(
                        task_id, timeout=self.options.timeout, poll=self.options.poll
                    )
                except TaskFailedError as exc:
                    task, error = exc.task, exc
                except KooDriveError as exc:
                    error = exc
                self._finish(record.line, _verdict(task_id, task, error), was_in_flight=True)

        self.stats.in_flight += len(records)
        self.reporter.update()
        await asyncio.gather(*(wait_one(r) for r in records))

    # ---------------------------------------------------------------- main

    async def execute(
        self, new_lines: list[int], resumed: list[LineRecord]
    ) -> BaseException | None:
        """Run everything; return the exception that aborted the run, if any."""
        installed = self._install_signals()
        consumer = asyncio.create_task(self._consume(new_lines))
        waiter = asyncio.create_task(self._wait_resumed(resumed))
        stopper = asyncio.create_task(self.stop.wait())
        work: set[asyncio.Task[None]] = {consumer, waiter}
        error: BaseException | None = None
        try:
            while work:
                done, _ = await asyncio.wait(work | {stopper}, return_when=asyncio.FIRST_COMPLETED)
                for task in done & work:
                    work.discard(task)
                    if not task.cancelled() and task.exception() is not None:
                        error = task.exception()
                if error is not None or self.stop.is_set():
                    break
            if work and error is None:
                # Stopping: let the creates already sent get their answers, so
                # that their task ids are recorded rather than left in doubt.
                drained = asyncio.create_task(self.drained.wait())
                forced = asyncio.create_task(self.force.wait())
                # Bounded: a create the transport is retrying (a 429 asking for
                # a minute, say) must not hold the stop up; its line stays
                # "submitting", which the next run treats as in doubt.
                give_up = asyncio.get_running_loop().time() + DRAIN_SECONDS
                try:
                    while not self.drained.is_set() and not self.force.is_set() and work:
                        left = give_up - asyncio.get_running_loop().time()
                        if left <= 0:
                            break
                        done, _ = await asyncio.wait(
                            work | {drained, forced},
                            timeout=left,
                            return_when=asyncio.FIRST_COMPLETED,
                        )
                        for task in done & work:
                            work.discard(task)
                            if not task.cancelled() and task.exception() is not None:
                                error = task.exception()
                finally:
                    drained.cancel()
                    forced.cancel()
        finally:
            for task in work:
                task.cancel()
            await asyncio.gather(*work, return_exceptions=True)
            stopper.cancel()
            await asyncio.gather(stopper, return_exceptions=True)
            loop = asyncio.get_running_loop()
            for sig in installed:
                loop.remove_signal_handler(sig)
        # Fewer than UNREACHABLE_LIMIT at the end of the plan: refused creates, as before.
        self._reached()
        return error


def _check_settings(plan: Plan, connection: Connection | None) -> None:
    if connection is None:
        return
    if "share" in plan.kinds and not connection.agent_name:
        raise UsageError(
            "the plan has share lines, which need an agent name: set --agent-name or "
            "KOODRIVE_AGENT_NAME"
        )


def _report_plan_errors(plan: Plan, err: IO[str], *, skipping: bool) -> None:
    errors = plan.errors
    for line in errors:
        err.write(mask(f"{plan.path}:{line.number}: {line.error}") + "\n")
    if skipping:
        err.write(f"{len(errors)} invalid line(s) skipped (--skip-invalid)\n")
    else:
        err.write(
            f"{len(errors)} invalid line(s) in {plan.path}; nothing was submitted "
            "(fix them, or run with --skip-invalid)\n"
        )
    err.flush()


def _exit_code(counts: dict[str, int], *, interrupted: bool) -> int:
    if interrupted:
        return EXIT_INTERRUPTED
    if counts.get(State.IN_DOUBT, 0) or counts.get(State.SUBMITTING, 0):
        return EXIT_IN_DOUBT
    unfinished = (State.FAILED, State.INVALID, State.SUBMITTED, State.PENDING)
    if any(counts.get(s, 0) for s in unfinished):
        return EXIT_FAILED
    return EXIT_OK


async def run_plan(
    options: RunOptions,
    connection: Connection,
    *,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    session_factory: Callable[[Connection, int], Any] | None = None,
) -> int:
    """Run (or resume) a plan and print its summary.

    Args:
        options: What to run and how.
        connection: Where and as whom.
        out: Standard output (default ``sys.stdout``).
        err: Standard error (default ``sys.stderr``).
        session_factory: Replaces :func:`open_session` (for embedding).

    Returns:
        The exit code (see the module docstring).

    Raises:
        UsageError: Bad plan, configuration or journal (exit code 2).
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    if options.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if options.rate is not None and options.rate <= 0:
        raise UsageError("--rate must be a positive number")
    if options.timeout is not None and options.timeout <= 0:
        raise UsageError("--timeout must be a positive number")
    if options.max_list_pages < 1:
        raise UsageError("--max-list-pages must be at least 1")
    if not 0 <= options.settle < float("inf"):
        raise UsageError("--settle-time must be a number >= 0")
    if options.output == "rich" and not rich_available():
        raise UsageError("--progress rich needs rich: pip install 'koodrive-async[cli]'")
    started = time.monotonic()
    try:
        plan = load_plan(options.plan)
    except PlanError as exc:
        raise UsageError(str(exc)) from exc
    if plan.errors:
        _report_plan_errors(plan, err, skipping=options.skip_invalid)
        if not options.skip_invalid:
            raise UsageError(f"{len(plan.errors)} invalid line(s) in the plan")
    _check_settings(plan, connection)
    journal_path = options.journal or default_journal_path(options.plan)
    try:
        journal = Journal.open(journal_path)
    except JournalError as exc:
        raise UsageError(str(exc)) from exc
    with journal:
        try:
            if journal.is_new:
                journal.initialize(
                    plan_hash=plan.plan_hash,
                    plan_name=plan.path.name,
                    lines=((ln.number, ln.line_hash, ln.kind, ln.error) for ln in plan.lines),
                )
            else:
                journal.check_plan(plan.plan_hash)
        except JournalError as exc:
            raise UsageError(str(exc)) from exc
        return await _resume(plan, journal, options, connection, out, err, started, session_factory)


@attrs.frozen
class Reconciled:
    """What one reconciliation did.

    Attributes:
        decision: The rule's decision (see ``_reconcile.py``).
        resent: Lines proven not created and put back to ``pending`` now.
        deferred: Lines proven not created by a listing made too soon after
            their create may have been sent (:data:`SETTLE_SECONDS`): they stay
            in doubt until a later listing confirms it.
    """

    decision: Decision
    resent: list[int]
    deferred: list[int]


def _in_service_time(moment: datetime | None, offset: float | None) -> datetime | None:
    """A time of this machine in the service's clock, or None when the offset was unknown."""
    if moment is None or offset is None:
        return None
    return moment + timedelta(seconds=offset)


def _shown(cursor: str) -> str:
    return repr(cursor if len(cursor) <= 80 else cursor[:77] + "...")


async def list_every_task(session: Any, *, max_pages: int = MAX_LIST_PAGES) -> list[Task]:
    """Read the whole task listing, refusing one that would never end.

    A cursor the listing already returned (A -> B -> A ...) would loop
    forever, and a listing longer than ``max_pages`` pages (or holding more
    than ``max_pages`` x :data:`MAX_PAGE_SIZE` tasks) would hold unbounded
    memory: both end the listing with an error, and nothing is decided on it.

    Args:
        session: An open KooDriveSession.
        max_pages: Most pages read.

    Returns:
        Every task listed, in the service's order.

    Raises:
        ResponseValidationError: A repeated cursor, or too long a listing
            (the message names the cursor).
        KooDriveError: As :meth:`KooDriveSession.list_tasks`.
    """
    max_tasks = max_pages * MAX_PAGE_SIZE
    tasks: list[Task] = []
    seen: set[str] = set()
    cursor: str | None = None
    pages = 0
    while True:
        page = await session.list_tasks(page_size=MAX_PAGE_SIZE, cursor=cursor)
        pages += 1
        tasks.extend(page.tasks)
        following = page.next_cursor
        if following is None:
            return tasks
        if following in seen or following == cursor:
            raise _listing_error(
                f"the task listing returned the cursor {_shown(following)} a second time "
                f"(after {pages} page(s)): it would loop forever"
            )
        if pages >= max_pages or len(tasks) > max_tasks:
            raise _listing_error(
                f"the task listing did not end within {pages} page(s) and {len(tasks)} "
                f"task(s) (next cursor {_shown(following)}; --max-list-pages is {max_pages})"
            )
        seen.add(following)
        cursor = following


def _listing_error(message: str) -> ResponseValidationError:
    return ResponseValidationError(
        message, method="GET", path=prepare_list_tasks().path, status_code=200
    )


def _seconds_since(moment: datetime) -> float:
    return (datetime.now(UTC) - moment).total_seconds()


async def reconcile_in_doubt(
    plan: Plan,
    journal: Journal,
    session: Any,
    *,
    sent_before: Mapping[int, datetime] | None = None,
    settle: float = SETTLE_SECONDS,
    wait: bool = False,
    max_pages: int = MAX_LIST_PAGES,
) -> Reconciled:
    """Look for the in-doubt lines' tasks on the service and commit the decision.

    Lists every task (all pages, :func:`list_every_task`) and applies
    :func:`._reconcile.decide`, then commits in one transaction: matched lines
    become ``submitted`` with their task id; lines proven not created go back
    to ``pending``, but only when the listing started at least ``settle``
    seconds after the line's create may last have been sent (a create the
    service was still handling must show); the others stay ``in_doubt``.

    Args:
        plan: The plan (to rebuild the lines' request bodies).
        journal: The open journal.
        session: An open KooDriveSession.
        sent_before: ``{line: time}`` before which the line's create was sent,
            when it is earlier than the time the line went in doubt (the
            interrupted run's last journal write, for lines it left
            "submitting"). Default: the time the line last changed.
        settle: See :data:`._reconcile.SETTLE_SECONDS`.
        wait: Sleep first, for as long as it takes for every in-doubt line
            to be past its settle time (at most ``settle`` seconds).
        max_pages: See :func:`list_every_task`.

    Returns:
        What was done.

    Raises:
        KooDriveError: The listing failed (nothing was changed).
    """
    sent_before = sent_before or {}
    rows = journal.reconciliation_rows()
    since = {
        line: sent_before.get(line) or changed
        for line, _kind, state, _task, _submitting, changed, _offset in rows
        if state == State.IN_DOUBT and changed is not None
    }
    if wait and since:
        remaining = settle - _seconds_since(max(since.values()))
        if remaining > 0:
            await asyncio.sleep(min(remaining, settle))
    listing_started = datetime.now(UTC)
    tasks = await list_every_task(session, max_pages=max_pages)
    # Read again: nothing else writes the journal, but be exact about what we decide on.
    rows = journal.reconciliation_rows()
    listed_ids = {t.task_id for t in tasks}
    in_doubt: list[LineInDoubt] = []
    witnesses: dict[str, list[tuple[datetime | None, int, str, datetime | None]]] = {}
    claimed: set[str] = set()
    for line, kind, state, task_id, submitting_at, _changed, offset in rows:
        if task_id is not None:
            claimed.add(task_id)
        if kind is None:
            continue
        # createTime is the service's clock: compare it with the "submitting"
        # time in the service's clock, or not at all.
        service_submitting = _in_service_time(submitting_at, offset)
        if state == State.IN_DOUBT:
            request = plan.request(line)
            in_doubt.append(
                LineInDoubt(
                    line,
                    kind,
                    request_key(request),
                    request_identity(request),
                    service_submitting,
                )
            )
        elif task_id is not None and task_id in listed_ids:
            witnesses.setdefault(kind, []).append(
                (submitting_at, line, task_id, service_submitting)
            )
    # Rebuilding every line's body costs ~0.1 ms a line: the most recent
    # witnesses of each kind say what the service does now, and suffice.
    known: dict[str, KnownLine] = {}
    for kind, entries in witnesses.items():
        entries.sort(key=lambda e: (e[0] is not None, e[0], e[1]), reverse=True)
        for _submitting, line, task_id, service_submitting in entries[:WITNESSES_PER_KIND]:
            known[task_id] = KnownLine(
                line, kind, request_key(plan.request(line)), service_submitting
            )
    decision = decide(in_doubt, known, tasks, claimed=claimed)
    resent: list[int] = []
    deferred: list[int] = []
    for line in decision.not_created:
        moment = since.get(line)
        if moment is None or (listing_started - moment).total_seconds() >= settle:
            resent.append(line)
        else:
            deferred.append(line)
    journal.apply_reconciliation(decision.matched, resent)
    return Reconciled(decision, resent, deferred)


async def _reconcile_step(
    plan: Plan,
    journal: Journal,
    session: Any,
    reporter: Reporter,
    *,
    sent_before: Mapping[int, datetime] | None = None,
    settle: float,
    wait: bool,
    max_pages: int,
) -> Reconciled | None:
    count = len(journal.lines_in(State.IN_DOUBT))
    reporter.message(
        f"reconciling {count} in-doubt line(s) with the service's task list (all pages)"
    )
    try:
        done = await reconcile_in_doubt(
            plan,
            journal,
            session,
            sent_before=sent_before,
            settle=settle,
            wait=wait,
            max_pages=max_pages,
        )
    except KooDriveError as exc:
        reporter.message(
            f"could not list the tasks ({_error_type(exc)}: {exc}); the in-doubt lines stay "
            "in doubt"
        )
        return None
    reporter.message("reconciliation: " + done.decision.describe(len(done.deferred)))
    return done


def _worth_another_look(done: Reconciled | None, journal: Journal, new_ids: int) -> bool:
    """After a round: may a new reconciliation settle lines the last one could not?

    Yes when it deferred lines, or left lines in doubt for want of a witness of
    their kind (not for a contradiction) and the round recorded new task ids.
    """
    if done is None:
        return False
    if done.deferred:
        return True
    decision = done.decision
    if not decision.in_doubt or decision.contradicting or not new_ids:
        return False
    kinds = {r.kind for r in journal.records(State.IN_DOUBT)}
    return any(kind not in decision.trusted_kinds for kind in kinds)


async def _resume(
    plan: Plan,
    journal: Journal,
    options: RunOptions,
    connection: Connection,
    out: IO[str],
    err: IO[str],
    started: float,
    session_factory: Callable[[Connection, int], Any] | None,
) -> int:
    reporter, use_rich = make_reporter(options.output, out=out, err=err)
    summary_out = err if options.output == "json" else out

    # The interrupted run's last journal write: any create it sent was sent before.
    last_activity = journal.last_activity()
    newly_in_doubt = journal.mark_interrupted_in_doubt()
    sent_before = (
        {line: last_activity for line in newly_in_doubt} if last_activity is not None else {}
    )
    if options.retry_rejected:
        journal.reset_rejected()
    in_doubt_count = len(journal.lines_in(State.IN_DOUBT))
    if newly_in_doubt:
        reporter.message(
            f"{len(newly_in_doubt)} line(s) were interrupted between sending and recording "
            "the answer; they are in doubt"
        )
    reconcile = options.reconcile

    stats = RunStats()
    requests_made: Callable[[], int] = lambda: 0  # noqa: E731 - replaced when a session opens
    run_no = journal.begin_run()
    error: BaseException | None = None
    interrupted = False
    pending = journal.lines_in(State.PENDING)
    resumed = list(journal.records(State.SUBMITTED))
    if pending or resumed or (in_doubt_count and (reconcile or options.resubmit_in_doubt)):
        factory = session_factory or (lambda c, n: open_session(c, max_connections=n))
        session, requests_made, close = await factory(connection, max(options.concurrency + 4, 16))
        run = _Run(plan, journal, session, options, reporter, stats)
        try:
            done: Reconciled | None = None
            looks = 0
            if in_doubt_count and reconcile:
                looks += 1
                done = await _reconcile_step(
                    plan,
                    journal,
                    session,
                    reporter,
                    sent_before=sent_before,
                    settle=options.settle,
                    max_pages=options.max_list_pages,
                    wait=False,
                )
            if options.resubmit_in_doubt:
                forced = journal.reset_in_doubt()
                if forced:
                    reporter.message(
                        f"--resubmit-in-doubt: sending {forced} in-doubt line(s) again (they "
                        "may then exist twice)"
                    )
            pending = journal.lines_in(State.PENDING)
            resumed = list(journal.records(State.SUBMITTED))
            stats.total = len(pending) + len(resumed)
            reporter.start(stats)
            while True:
                submitted_before = stats.submitted
                run.doubted.clear()
                error = await run.execute(pending, resumed)
                if error is not None or run.stop.is_set() or not reconcile:
                    break
                if looks >= MAX_RECONCILIATIONS:
                    break
                if not run.doubted and not _worth_another_look(
                    done, journal, stats.submitted - submitted_before
                ):
                    break
                looks += 1
                done = await _reconcile_step(
                    plan,
                    journal,
                    session,
                    reporter,
                    sent_before=sent_before,
                    settle=options.settle,
                    max_pages=options.max_list_pages,
                    wait=True,
                )
                if done is None:
                    break
                settled = set(done.decision.matched) | set(done.resent)
                if not settled and not done.deferred:
                    break
                # Lines this round counted as in doubt are counted again when they
                # finish; lines left in doubt before this round are new work.
                ours = settled & run.doubted
                stats.in_doubt -= len(ours)
                stats.total += len(settled - ours)
                pending = list(done.resent)
                resumed = [
                    r for r in journal.records(State.SUBMITTED) if r.line in done.decision.matched
                ]
        finally:
            interrupted = run.interrupted
            for record in journal.records(State.IN_DOUBT):
                reporter.line_done(record)
            reporter.stop()
            await close()
    else:
        for record in journal.records(State.IN_DOUBT):
            reporter.line_done(record)
        if not in_doubt_count:
            reporter.message("nothing to do: every line of the plan has already been dealt with")
    stats.requests = requests_made()
    counts = journal.counts()
    code = _exit_code(counts, interrupted=interrupted)
    if error is not None:
        err.write(mask(f"run aborted: {type(error).__name__}: {error}") + "\n")
        code = max(code, EXIT_FAILED) if code != EXIT_INTERRUPTED else code
    journal.end_run(
        run_no,
        outcome="interrupted" if interrupted else ("aborted" if error else "completed"),
        requests=stats.requests,
    )
    summary = Summary(
        plan=plan.path.name,
        journal=str(journal.path),
        lines=len(plan.lines),
        counts=counts,
        failures=journal.failure_groups(),
        in_doubt=list(journal.records(State.IN_DOUBT)),
        in_flight=list(journal.records(State.SUBMITTED)) if interrupted or error else [],
        unacknowledged=journal.lines_in(State.SUBMITTING),
        finished_now=stats.succeeded + stats.failed + stats.in_doubt,
        requests=stats.requests,
        wall_time=time.monotonic() - started,
        interrupted=interrupted,
        exit_code=code,
    )
    print_summary(summary, use_rich=use_rich, out=summary_out)
    return code
