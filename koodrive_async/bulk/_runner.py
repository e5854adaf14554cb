"""The run-and-resume loop of a bulk run, over a plan, a journal and a session.

Owns :class:`PlanRun` (one invocation: resume what an earlier run left,
reconcile the in-doubt lines, run rounds until nothing more can be settled,
and say what the journal holds at the end) and the one-call
:func:`run_plan` for library callers. One round's mechanics are in
``_round.py``; the reconciliation in ``_reconcile.py`` / ``_listing.py``.

On resume: lines left in "submitting" become ``in_doubt``, "submitted" lines
are waited on (never sent again), finished lines are skipped. In-doubt lines
are reconciled with the service's task list at the start of a run that finds
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
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from .._exceptions import KooDriveError
from ._growth import compare_plan
from ._journal import Journal, JournalMismatchError, LineRecord, State
from ._listing import Reconciled, reconcile_in_doubt
from ._options import MAX_RECONCILIATIONS, RunOptions, RunResult
from ._plan import Plan, PlanError, load_plan
from ._progress import NoProgress, Progress, RunStats
from ._round import Control, LineBook, Submissions, run_round
from ._session import BulkSession
from ._verdict import error_type

__all__ = ["PlanRun", "attach_plan", "run_plan"]


def attach_plan(journal: Journal, plan: Plan) -> int:
    """Record ``plan`` in a new journal, or check that the journal holds this plan.

    A plan may grow: lines appended after the last line the journal recorded
    are added to it (pending, or invalid). Every recorded line must be
    unchanged (see ``_growth.py``).

    Returns:
        How many lines were appended to the journal's plan (0 for a new journal).

    Raises:
        JournalMismatchError: A line the journal recorded differs (named in
            the message and in ``line``).
        JournalError: The journal cannot record it.
    """
    entries = ((ln.number, ln.line_hash, ln.kind, ln.error) for ln in plan.lines)
    if journal.is_new:
        journal.initialize(plan_hash=plan.plan_hash, plan_name=plan.path.name, lines=entries)
        return 0
    comparison = compare_plan(journal.line_hashes(), plan)
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
        journal.extend_plan(
            plan_hash=plan.plan_hash, plan_name=plan.path.name, lines=comparison.appended
        )
    return len(comparison.appended)


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


class PlanRun:
    """One invocation of a plan against its journal (attached with :func:`attach_plan`).

    Call :meth:`prepare` (journal only: resumes what an earlier run left),
    then, if :attr:`needs_session`, :meth:`execute` with an open session (or
    ``execute(None)`` when it does not). :meth:`interrupt` may be called at
    any time from the event loop's thread (a signal handler).

    Args:
        plan: The loaded plan.
        journal: The open journal holding that plan.
        options: How to run.
        progress: Where progress goes (default: nowhere).
    """

    def __init__(
        self,
        plan: Plan,
        journal: Journal,
        options: RunOptions | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.plan = plan
        self.journal = journal
        self.options = options if options is not None else RunOptions()
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

    def prepare(self) -> None:
        """Resume: lines an earlier run left "submitting" go in doubt; record the run's start."""
        journal = self.journal
        # The interrupted run's last journal write: any create it sent was sent before.
        last_activity = journal.last_activity()
        newly_in_doubt = journal.mark_interrupted_in_doubt()
        if last_activity is not None:
            self._sent_before = {line: last_activity for line in newly_in_doubt}
        if self.options.retry_rejected:
            journal.reset_rejected()
        if self.options.retry_failed:
            retried = journal.reset_failed()
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
        self._run_no = journal.begin_run()

    @property
    def needs_session(self) -> bool:
        """True when there is something to submit, wait for or reconcile."""
        journal, options = self.journal, self.options
        in_doubt = bool(journal.lines_in(State.IN_DOUBT))
        return bool(
            journal.lines_in(State.PENDING)
            or journal.lines_in(State.SUBMITTED)
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
            self.prepare()
        had_work = self.needs_session
        error: BaseException | None = None
        if had_work:
            if session is None:
                raise ValueError("this run has work to do: execute() needs a session")
            try:
                error = await self._rounds(session)
            finally:
                self._report_in_doubt()
                self.progress.stop()
        else:
            self._report_in_doubt()
        self.stats.requests = requests_made() if requests_made is not None else 0
        return self._result(error, had_work)

    # ---------------------------------------------------------------- internals

    def _report_in_doubt(self) -> None:
        for record in self.journal.records(State.IN_DOUBT):
            self.progress.line_done(record)

    async def _reconcile(self, session: BulkSession, *, wait: bool) -> Reconciled | None:
        count = len(self.journal.lines_in(State.IN_DOUBT))
        self.progress.message(
            f"reconciling {count} in-doubt line(s) with the service's task list (all pages)"
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
                f"could not list the tasks ({error_type(exc)}: {exc}); the in-doubt lines stay "
                "in doubt"
            )
            return None
        self.progress.message("reconciliation: " + done.decision.describe(len(done.deferred)))
        return done

    async def _start(self, session: BulkSession) -> tuple[Reconciled | None, int]:
        """The reconciliation and forced resubmissions before the first round."""
        done: Reconciled | None = None
        looks = 0
        if self.journal.lines_in(State.IN_DOUBT) and self.options.reconcile:
            looks += 1
            done = await self._reconcile(session, wait=False)
        if self.options.resubmit_in_doubt:
            forced = self.journal.reset_in_doubt()
            if forced:
                self.progress.message(
                    f"--resubmit-in-doubt: sending {forced} in-doubt line(s) again (they "
                    "may then exist twice)"
                )
        return done, looks

    async def _rounds(self, session: BulkSession) -> BaseException | None:
        subs = self._subs = Submissions(self.plan, session, self.options, self._book, self.control)
        # Every state: a retry in doubt now may be proven not created and sent again.
        subs.retry_files = {r.line: r.retry_files for r in self.journal.records() if r.retry_files}
        done, looks = await self._start(session)
        stats, journal = self.stats, self.journal
        pending = journal.lines_in(State.PENDING)
        resumed = list(journal.records(State.SUBMITTED))
        stats.total = len(pending) + len(resumed)
        self.progress.start(stats)
        while True:
            submitted_before = stats.submitted
            self._book.doubted.clear()
            error = await run_round(subs, pending, resumed)
            if error is not None or self.control.closed or not self.options.reconcile:
                return error
            if looks >= MAX_RECONCILIATIONS or not (
                self._book.doubted
                or _worth_another_look(done, journal, stats.submitted - submitted_before)
            ):
                return None
            looks += 1
            done = await self._reconcile(session, wait=True)
            if done is None:
                return None
            next_round = self._after_reconciliation(done)
            if next_round is None:
                return None
            pending, resumed = next_round

    def _after_reconciliation(self, done: Reconciled) -> tuple[list[int], list[LineRecord]] | None:
        """The next round's lines after a reconciliation, or None when it settled nothing."""
        settled = set(done.decision.matched) | set(done.resent)
        if not settled and not done.deferred:
            return None
        # Lines this round counted as in doubt are counted again when they
        # finish; lines left in doubt before this round are new work.
        ours = settled & self._book.doubted
        self.stats.in_doubt -= len(ours)
        self.stats.total += len(settled - ours)
        resumed = [
            r for r in self.journal.records(State.SUBMITTED) if r.line in done.decision.matched
        ]
        return list(done.resent), resumed

    def _result(self, error: BaseException | None, had_work: bool) -> RunResult:
        journal, control = self.journal, self.control
        assert self._run_no is not None
        outcome = "interrupted" if control.interrupted else ("aborted" if error else "completed")
        journal.end_run(self._run_no, outcome=outcome, requests=self.stats.requests)
        stats = self.stats
        cut_short = control.interrupted or error is not None
        return RunResult(
            counts=journal.counts(),
            failures=journal.failure_groups(),
            in_doubt=list(journal.records(State.IN_DOUBT)),
            in_flight=list(journal.records(State.SUBMITTED)) if cut_short else [],
            unacknowledged=journal.lines_in(State.SUBMITTING),
            finished_now=stats.succeeded + stats.failed + stats.in_doubt,
            requests=stats.requests,
            wall_time=time.monotonic() - self._started,
            interrupted=control.interrupted,
            error=error,
            stop=control.notice,
            had_work=had_work,
            submitted_now=stats.submitted,
            outcomes=journal.outcome_counts(),
        )


async def run_plan(
    plan: Plan | str | Path,
    session: BulkSession,
    *,
    journal: Journal | str | Path | None = None,
    options: RunOptions | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Run (or resume) a plan, exactly once per line, from Python (provisional API).

    Running it again with the same journal resumes: finished lines are
    skipped, submitted ones waited for, in-doubt ones reconciled.

    Args:
        plan: A loaded :class:`Plan` or the plan file's path.
        session: An open session (``KooDriveSession``); it is not closed.
        journal: An open journal, or the SQLite journal file (default:
            ``PLAN.journal.sqlite`` beside the plan), opened and closed here.
        options: How to run.
        progress: Where progress goes (default: nowhere).

    Returns:
        What the run did and what the journal holds.

    Raises:
        PlanError: The plan cannot be read, or has invalid lines.
        JournalError: The journal cannot be used or belongs to another plan.
    """
    from ._sqlite import SQLiteJournal, default_journal_path

    loaded = plan if isinstance(plan, Plan) else load_plan(plan)
    if loaded.errors:
        first = loaded.errors[0]
        raise PlanError(
            f"{len(loaded.errors)} invalid line(s) in {loaded.path} (line {first.number}: "
            f"{first.error})"
        )
    if journal is None or isinstance(journal, str | Path):
        path = Path(journal) if journal is not None else default_journal_path(loaded.path)
        with SQLiteJournal.open(path) as opened:
            return await run_plan(
                loaded, session, journal=opened, options=options, progress=progress
            )
    attach_plan(journal, loaded)
    run = PlanRun(loaded, journal, options, progress)
    run.prepare()
    return await run.execute(session)
