"""The run-and-resume loop of a bulk run, over a plan, a journal and a session.

Owns :class:`PlanRun` (one invocation: resume what an earlier run left,
reconcile the in-doubt lines, run rounds until nothing more can be settled,
and say what the journal holds at the end) and the one-call
:func:`run_plan` for library callers. One round's mechanics are in
``_round.py``; the reconciliation in ``_reconcile.py`` / ``_listing.py``.

On resume: lines left in "submitting" become ``in_doubt``, "submitted" lines
are waited on (never sent again), finished lines are skipped. In-doubt lines
are reconciled with the service's task and job lists at the start of a run that finds
them, and again after a round that left new lines in doubt (at most
:data:`~._options.MAX_RECONCILIATIONS` times per run), so a
``possibly_created`` create is usually settled by the run that sent it.

Nothing here prints, parses arguments, installs signal handlers or exits:
progress goes through :class:`~._progress.Progress`, a stop comes from
:meth:`PlanRun.interrupt` (the command line calls it on SIGINT / SIGTERM).

Must never import: ``cli/``, ``rich``, ``argparse``, a journal backend (but
:func:`run_plan`, which opens the default SQLite one when given a path).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from .._exceptions import KooDriveError
from ._claims import Claimer
from ._growth import compare_plan
from ._journal import Journal, JournalMismatchError, LineRecord, Pacer, State, SyncJournal
from ._listing import Reconciled, reconcile_in_doubt
from ._options import MAX_RECONCILIATIONS, RunOptions, RunResult
from ._plan import Plan, PlanError, load_plan
from ._priors import seed_from_journal
from ._progress import PLAN_REFRESH, NoProgress, Progress, RunStats
from ._round import Control, LineBook, Submissions, run_round
from ._session import BulkSession
from ._sync_adapter import as_async
from ._verdict import error_type

__all__ = ["PlanRun", "attach_plan", "run_plan"]


async def attach_plan(journal: Journal | SyncJournal, plan: Plan) -> int:
    """Record ``plan`` in a new journal, or check that the journal holds this plan.

    A plan may grow: lines appended after the last line the journal recorded
    are added to it (pending, or invalid). Every recorded line must be
    unchanged (see ``_growth.py``). Workers sharing a journal do this under
    its attach lock: the first one loads the plan, the others check it.

    Returns:
        How many lines were appended to the journal's plan (0 for a new journal).

    Raises:
        JournalMismatchError: A line the journal recorded differs (named in
            the message and in ``line``).
        JournalError: The journal cannot record it.
    """
    journal = as_async(journal)
    async with journal.attach_lock():
        return await _attach(journal, plan)


async def _attach(journal: Journal, plan: Plan) -> int:
    entries = ((ln.number, ln.line_hash, ln.kind, ln.error) for ln in plan.lines)
    if await journal.is_new():
        await journal.initialize(plan_hash=plan.plan_hash, plan_name=plan.path.name, lines=entries)
        return 0
    comparison = compare_plan(await journal.line_hashes(), plan)
    if comparison.first_difference is not None:
        line = comparison.first_difference
        raise JournalMismatchError(
            f"journal {journal.location} was written for another version of this plan: line "
            f"{line} is {comparison.why}. A journal accepts its plan with lines appended at the "
            f"end, never with recorded lines changed; restore line {line}, or put new requests "
            "at the end, or use another --journal path",
            line=line,
        )
    if comparison.appended:
        await journal.extend_plan(
            plan_hash=plan.plan_hash, plan_name=plan.path.name, lines=comparison.appended
        )
    return len(comparison.appended)


async def _worth_another_look(done: Reconciled | None, journal: Journal, new_ids: int) -> bool:
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
    kinds = {r.kind for r in await journal.records(State.IN_DOUBT)}
    return any(kind not in decision.trusted_kinds for kind in kinds)


class PlanRun:
    """One invocation of a plan against its journal (attached with :func:`attach_plan`).

    Await :meth:`prepare` (journal only: resumes what an earlier run left),
    then, if :meth:`needs_session`, :meth:`execute` with an open session (or
    ``execute(None)`` when it does not). :meth:`interrupt` may be called at
    any time from the event loop's thread (a signal handler).

    Args:
        plan: The loaded plan.
        journal: The open journal holding that plan (a blocking one, such as
            :class:`~._sqlite.SQLiteJournal`, is wrapped).
        options: How to run.
        progress: Where progress goes (default: nowhere).
        pacer: The pace of the submissions shared by every worker of the plan
            (a many-worker journal's); default: ``options.rate`` in this process.
    """

    def __init__(
        self,
        plan: Plan,
        journal: Journal | SyncJournal,
        options: RunOptions | None = None,
        progress: Progress | None = None,
        *,
        pacer: Pacer | None = None,
    ) -> None:
        self.plan = plan
        self.journal = journal = as_async(journal)
        self.options = options if options is not None else RunOptions()
        if pacer is None:
            # Many workers share one budget and the holds of 429s (None for a
            # one-machine journal: the run paces itself).
            pacer = journal.shared_pacer(self.options.rate)
        self._pacer = pacer
        self.progress: Progress = progress if progress is not None else NoProgress()
        self.control = Control()
        self.stats = RunStats()
        self._book = LineBook(
            journal, self.progress, self.stats, {ln.number: ln.kind for ln in plan.lines}
        )
        self._subs: Submissions | None = None
        self._sent_before: dict[int, datetime] = {}
        self._run_no: int | None = None
        self._started = time.monotonic()

    # ---------------------------------------------------------------- control

    def interrupt(self) -> bool:
        """Stop: no new line, answers drained for a moment, waits cancelled.

        Returns:
            True on the first call; a second call stops at once (False).
        """
        return self.control.interrupt()

    @property
    def unanswered(self) -> int:
        """Creates sent (or about to be) whose answer has not come back yet."""
        return len(self._subs.unacked) if self._subs is not None else 0

    # ---------------------------------------------------------------- phases

    async def prepare(self) -> None:
        """Resume: lines an earlier run left "submitting" go in doubt; record the run's start."""
        journal = self.journal
        # The interrupted run's last journal write: any create it sent was sent before.
        last_activity = await journal.last_activity()
        newly_in_doubt = await journal.mark_interrupted_in_doubt()
        if last_activity is not None:
            self._sent_before = {line: last_activity for line in newly_in_doubt}
        if self.options.retry_rejected:
            await journal.reset_rejected()
        if self.options.retry_failed:
            retried = await journal.reset_failed()
            if retried:
                self.progress.message(
                    f"--retry-failed: sending {retried} line(s) whose task failed again "
                    "(after a partial failure, only its failed files)"
                )
        if newly_in_doubt:
            self.progress.message(
                f"{len(newly_in_doubt)} line(s) were interrupted between sending and recording "
                "the answer; they are in doubt"
            )
        self._run_no = await journal.begin_run()

    async def needs_session(self) -> bool:
        """True when there is something to submit, wait for or reconcile.

        With many workers, lines another worker is still sending count too:
        this one may have to take them over.
        """
        journal, options = self.journal, self.options
        counts = await journal.counts()
        in_doubt = bool(counts.get(State.IN_DOUBT))
        return bool(
            counts.get(State.PENDING)
            or counts.get(State.SUBMITTED)
            or counts.get(State.SUBMITTING)
            or (in_doubt and (options.reconcile or options.resubmit_in_doubt))
        )

    async def execute(
        self, session: BulkSession | None, *, requests_made: Callable[[], int] | None = None
    ) -> RunResult:
        """Run the rounds (when there is work) and record the end of the run.

        Args:
            session: An open session; may be None only when not :attr:`needs_session`.
            requests_made: Counts the HTTP requests made (for the journal and
                the result), when the caller can.

        Returns:
            The result. A broken journal aborts the run: it is in
            :attr:`RunResult.error`, not raised.
        """
        if self._run_no is None:
            await self.prepare()
        had_work = await self.needs_session()
        error: BaseException | None = None
        if had_work:
            if session is None:
                raise ValueError("this run has work to do: execute() needs a session")
            try:
                error = await self._rounds(session)
            finally:
                await self._report_in_doubt()
                # The display's last word on the plan: every worker's lines now.
                await self._read_plan()
                self.progress.stop()
        else:
            await self._report_in_doubt()
        self.stats.requests = requests_made() if requests_made is not None else 0
        return await self._result(error, had_work)

    # ---------------------------------------------------------------- internals

    async def _report_in_doubt(self) -> None:
        for record in await self.journal.records(State.IN_DOUBT):
            self.progress.line_done(record)

    async def _reconcile(self, session: BulkSession, *, wait: bool) -> Reconciled | None:
        count = len(await self.journal.lines_in(State.IN_DOUBT))
        self.progress.message(
            f"reconciling {count} in-doubt line(s) with the service's task and job lists "
            "(all pages)"
        )
        listing = asyncio.ensure_future(
            reconcile_in_doubt(
                self.plan,
                self.journal,
                session,
                sent_before=self._sent_before,
                settle=self.options.settle,
                wait=wait,
                max_pages=self.options.max_list_pages,
            )
        )
        stopper = asyncio.ensure_future(self.control.stop.wait())
        try:
            await asyncio.wait({listing, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not listing.done():
                # Interrupted: nothing is committed before the listing is complete.
                listing.cancel()
            await asyncio.gather(listing, stopper, return_exceptions=True)
        if listing.cancelled():
            self.progress.message("reconciliation cancelled; the in-doubt lines stay in doubt")
            return None
        try:
            done = listing.result()
        except KooDriveError as exc:
            self.progress.message(
                f"could not list the tasks or jobs ({error_type(exc)}: {exc}); the in-doubt "
                "lines stay in doubt"
            )
            return None
        self.progress.message("reconciliation: " + done.decision.describe(len(done.deferred)))
        return done

    async def _start(self, session: BulkSession) -> tuple[Reconciled | None, int]:
        """The reconciliation and forced resubmissions before the first round."""
        done: Reconciled | None = None
        looks = 0
        if await self.journal.lines_in(State.IN_DOUBT) and self.options.reconcile:
            looks += 1
            done = await self._reconcile(session, wait=False)
        if self.options.resubmit_in_doubt:
            forced = await self.journal.reset_in_doubt()
            if forced:
                self.progress.message(
                    f"--resubmit-in-doubt: sending {forced} in-doubt line(s) again (they "
                    "may then exist twice)"
                )
        return done, looks

    async def _rounds(self, session: BulkSession) -> BaseException | None:
        lease = self.journal.lease
        background: list[asyncio.Task[None]] = []
        if lease is not None:
            # Many workers: keep the leases alive, and the display's view of the plan.
            self.stats.worker = self.journal.worker_id
            background = [
                asyncio.create_task(self._renew_leases(lease)),
                asyncio.create_task(self._watch_plan()),
            ]
        try:
            return await self._rounds_leased(session)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            # Lines claimed and never started go back to the other workers at once.
            with contextlib.suppress(Exception):
                await self.journal.release()

    async def _renew_leases(self, lease: float) -> None:
        """Keep this worker's leases alive while it runs (a third of the lease apart)."""
        while True:
            await asyncio.sleep(lease / 3)
            try:
                held = await self.journal.renew()
            except Exception as exc:  # noqa: BLE001 - a lost database: the lease guard stops the creates
                self.progress.message(f"could not renew the leases ({type(exc).__name__}: {exc})")
                continue
            if not held:
                self.progress.message(
                    "another worker took over some of this worker's lines (their lease expired); "
                    "they are its now"
                )

    async def _read_plan(self, *, tell: bool = True) -> None:
        """Read the whole plan's counts for the display (a shared journal only; best effort).

        Bounded (:data:`PLAN_REFRESH`): a database that stopped answering must
        not hold up the end of a run for the sake of its display.
        """
        if self.journal.lease is None:
            return
        try:
            self.stats.plan = await asyncio.wait_for(self.journal.plan_counts(), PLAN_REFRESH)
        except Exception:  # noqa: BLE001 - the display only: the run's own writes report a lost database
            return
        if tell:
            self.progress.update()

    async def _watch_plan(self) -> None:
        """Read the whole plan's counts again and again while the run lasts.

        One aggregate query every :data:`~._progress.PLAN_REFRESH` seconds,
        or ten times as long as the last one took, whichever is longer: on a
        plan of millions of lines the display never costs the database more
        than a tenth of a connection.
        """
        loop = asyncio.get_running_loop()
        took = 0.0
        while True:
            await asyncio.sleep(max(PLAN_REFRESH, 10 * took))
            began = loop.time()
            await self._read_plan()
            took = loop.time() - began

    def _claimer(self, pending: Sequence[int] = (), resumed: Sequence[LineRecord] = ()) -> Claimer:
        # A claim of a few times the concurrency keeps the fan-out fed without
        # taking from the other workers lines this one cannot start soon.
        return Claimer(
            self.journal,
            self.options.concurrency * 2,
            self.control.stop,
            pending=pending,
            submitted=resumed,
            busy=lambda: self.stats.in_flight > 0,
            answered=self._subs.drained if self._subs is not None else None,
        )

    async def _rounds_leased(self, session: BulkSession) -> BaseException | None:
        subs = self._subs = Submissions(
            self.plan, session, self.options, self._book, self.control, self._pacer
        )
        # Every state: a retry in doubt now may be proven not created and sent again.
        subs.retry_files = {
            r.line: r.retry_files for r in await self.journal.records() if r.retry_files
        }
        # The durations an earlier run of this plan saw place this run's first
        # polls (no blind first wave); nothing is sent for it.
        await seed_from_journal(session, self.journal, self.plan.request)
        done, looks = await self._start(session)
        stats, journal = self.stats, self.journal
        counts = await journal.counts()
        stats.total = counts.get(State.PENDING, 0) + counts.get(State.SUBMITTED, 0)
        await self._read_plan(tell=False)
        self.progress.start(stats)
        # Lines the first reconciliation settled are this run's: those proven
        # not created to send, those found to wait on. The journal hands them
        # out through the reconciliation, not a claim: a claim never returns a
        # line this worker already holds, so they would sit leased and unwatched.
        for line in done.resent if done is not None else ():
            self._sent_before.pop(line, None)  # sent again now (see _after_reconciliation)
        claimer = (
            self._claimer(list(done.resent), await self._matched(done))
            if done is not None
            else self._claimer()
        )
        while True:
            submitted_before = stats.submitted
            self._book.doubted.clear()
            error = await run_round(subs, claimer)
            # Lines taken over in "submitting" from a stopped worker: in doubt, to reconcile.
            self._book.doubted.update(claimer.in_doubt)
            stats.in_doubt += len(claimer.in_doubt)
            stats.total += len(claimer.in_doubt)
            if error is not None or self.control.closed or not self.options.reconcile:
                return error
            if looks >= MAX_RECONCILIATIONS or not (
                self._book.doubted
                or await _worth_another_look(done, journal, stats.submitted - submitted_before)
            ):
                return None
            looks += 1
            done = await self._reconcile(session, wait=True)
            if done is None:
                return None
            next_round = await self._after_reconciliation(done)
            if next_round is None:
                return None
            claimer = self._claimer(*next_round)

    async def _after_reconciliation(
        self, done: Reconciled
    ) -> tuple[list[int], list[LineRecord]] | None:
        """The next round's lines after a reconciliation, or None when it settled nothing."""
        for line in done.resent:
            # Sent again now: what the interrupted run's last write said about
            # when its create was sent no longer holds for the next attempt.
            self._sent_before.pop(line, None)
        settled = set(done.decision.matched) | set(done.resent)
        if not settled and not done.deferred:
            return None
        # Lines this round counted as in doubt are counted again when they
        # finish; lines left in doubt before this round are new work.
        ours = settled & self._book.doubted
        self.stats.in_doubt -= len(ours)
        self.stats.total += len(settled - ours)
        return list(done.resent), await self._matched(done)

    async def _matched(self, done: Reconciled) -> list[LineRecord]:
        """The lines a reconciliation found on the service, now "submitted": to wait on."""
        return [
            r
            for r in await self.journal.records(State.SUBMITTED)
            if r.line in done.decision.matched
        ]

    async def _result(self, error: BaseException | None, had_work: bool) -> RunResult:
        journal, control = self.journal, self.control
        assert self._run_no is not None
        outcome = "interrupted" if control.interrupted else ("aborted" if error else "completed")
        await journal.end_run(self._run_no, outcome=outcome, requests=self.stats.requests)
        stats = self.stats
        cut_short = control.interrupted or error is not None
        return RunResult(
            counts=await journal.counts(),
            failures=await journal.failure_groups(),
            in_doubt=await journal.records(State.IN_DOUBT),
            in_flight=await journal.records(State.SUBMITTED) if cut_short else [],
            unacknowledged=await journal.lines_in(State.SUBMITTING),
            finished_now=stats.succeeded + stats.failed + stats.in_doubt,
            requests=stats.requests,
            wall_time=time.monotonic() - self._started,
            interrupted=control.interrupted,
            error=error,
            stop=control.notice,
            had_work=had_work,
            submitted_now=stats.submitted,
            outcomes=await journal.outcome_counts(),
        )


async def run_plan(
    plan: Plan | str | Path,
    session: BulkSession,
    *,
    journal: Journal | SyncJournal | str | Path | None = None,
    options: RunOptions | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run (or resume) a plan, exactly once per line, from Python (provisional API).

    Running it again with the same journal resumes: finished lines are
    skipped, submitted ones waited for, in-doubt ones reconciled.

    Args:
        plan: A loaded :class:`Plan` or the plan file's path.
        session: An open session (``KooDriveSession``); it is not closed.
        journal: An open journal (SQLite, or PostgreSQL for many workers:
            see :func:`~._open.open_journal`), or where one lives (a SQLite
            file, default ``PLAN.journal.sqlite`` beside the plan, or a
            ``postgresql://`` URL), then opened and closed here.
        options: How to run.
        progress: Where progress goes (default: nowhere).

    Returns:
        What the run did and what the journal holds.

    Raises:
        PlanError: The plan cannot be read, or has invalid lines.
        JournalError: The journal cannot be used or belongs to another plan.
    """
    from ._open import open_journal

    loaded = plan if isinstance(plan, Plan) else load_plan(plan)
    if loaded.errors:
        first = loaded.errors[0]
        raise PlanError(
            f"{len(loaded.errors)} invalid line(s) in {loaded.path} (line {first.number}: "
            f"{first.error})"
        )
    if journal is None or isinstance(journal, str | Path):
        async with open_journal(journal, plan=loaded.path) as opened:
            return await run_plan(
                loaded, session, journal=opened, options=options, progress=progress
            )
    await attach_plan(journal, loaded)
    run = PlanRun(loaded, journal, options, progress)
    await run.prepare()
    return await run.execute(session)
