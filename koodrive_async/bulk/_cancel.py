"""Cancelling the batch jobs of a plan that are still running, and recording what became of them.

Owns :func:`cancel_plan` (what ``koodrive-async cancel PLAN`` does) and its
:class:`CancelResult`. The candidates are the job lines the journal holds as
"submitted" (a job id, no end recorded). Each is cancelled (``POST cancel``,
which treats a job found cancelled already as a success), then read once at
job detail, and its line records what the job became: cancelled, or, for a
job that completed before the cancel reached it, its real end. A job the
service still shows running after an accepted cancel is recorded cancelled:
the service accepted to stop it.

Share tasks, transfers and imports have no cancel endpoint and in-doubt job
lines have no id: they are counted, never touched. Nothing is ever created or sent twice.

Must never import: ``cli/``, ``rich``, ``argparse``, a journal backend.
"""

from __future__ import annotations

import asyncio

import attrs

from .._enums import State as UnitState
from .._exceptions import JobCancelledError, JobFailedError, KooDriveError
from .._models import Job
from ._growth import compare_plan
from ._journal import (
    Journal,
    JournalMismatchError,
    LeaseLostError,
    LineRecord,
    Outcome,
    State,
    SyncJournal,
)
from ._plan import Plan
from ._session import BulkSession
from ._sync_adapter import as_async
from ._verdict import LineVerdict, error_type, line_verdict, masked_text

__all__ = ["CANCEL_CONCURRENCY", "CancelResult", "cancel_plan"]

#: Most cancel requests in flight at once.
CANCEL_CONCURRENCY = 16


@attrs.frozen
class CancelResult:
    """What :func:`cancel_plan` did.

    Attributes:
        cancelled: Lines whose job is now cancelled (recorded ``failed``,
            outcome ``cancelled``).
        finished: Lines whose job had already ended before the cancel took
            effect (their real end is recorded).
        errors: ``(line, error text)`` of the jobs that could not be
            cancelled nor read; they stay "submitted" (the next run waits for them).
        not_cancellable: Lines of other kinds still running (share tasks,
            transfers and imports cannot be cancelled).
        in_doubt: Job lines in doubt (no job id known: nothing to cancel).
    """

    cancelled: list[int] = attrs.field(factory=list)
    finished: list[int] = attrs.field(factory=list)
    errors: list[tuple[int, str]] = attrs.field(factory=list)
    not_cancellable: list[int] = attrs.field(factory=list)
    in_doubt: list[int] = attrs.field(factory=list)


async def _check_plan(journal: Journal, plan: Plan) -> None:
    if await journal.is_new():
        return
    comparison = compare_plan(await journal.line_hashes(), plan)
    if comparison.first_difference is not None:
        line = comparison.first_difference
        raise JournalMismatchError(
            f"journal {journal.location} was written for another version of this plan: line "
            f"{line} is {comparison.why}",
            line=line,
        )


def _ended(job_id: str, job: Job) -> LineVerdict | None:
    """The verdict of a job read after a cancel, None while it still runs."""
    if not job.is_terminal:
        return None
    error: KooDriveError | None = None
    if job.state is UnitState.CANCELLED:
        error = JobCancelledError(job)
    elif not job.succeeded:
        error = JobFailedError(job)
    return line_verdict(job_id, job, error)


async def _record(journal: Journal, line: int, verdict: LineVerdict) -> None:
    await journal.mark_finished(
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


async def _cancel_one(
    record: LineRecord, journal: Journal, session: BulkSession, result: CancelResult
) -> None:
    job_id = record.task_id
    assert job_id is not None
    try:
        await session.cancel_job(job_id)
    except KooDriveError as refused:
        # Refused: most likely it completed meanwhile. Its detail tells.
        try:
            verdict = _ended(job_id, await session.get_job(job_id))
        except KooDriveError:
            verdict = None
        if verdict is None:
            text = masked_text(refused)
            await journal.note_error(record.line, error_type=error_type(refused), error=text)
            result.errors.append((record.line, text))
            return
        await _record(journal, record.line, verdict)
        (result.cancelled if verdict.outcome == Outcome.CANCELLED else result.finished).append(
            record.line
        )
        return
    try:
        verdict = _ended(job_id, await session.get_job(job_id))
    except KooDriveError:
        verdict = None
    if verdict is None:
        # Accepted, not shown yet: the service agreed to stop it.
        verdict = LineVerdict(
            State.FAILED,
            job_id,
            None,
            "cancelled",
            f"job {job_id} was cancelled on request",
            outcome=Outcome.CANCELLED,
        )
    await _record(journal, record.line, verdict)
    (result.cancelled if verdict.outcome == Outcome.CANCELLED else result.finished).append(
        record.line
    )


async def cancel_plan(
    plan: Plan,
    journal: Journal | SyncJournal,
    session: BulkSession,
    *,
    concurrency: int = CANCEL_CONCURRENCY,
) -> CancelResult:
    """Cancel every batch job of ``plan`` the journal holds as still running, and record it.

    Args:
        plan: The plan (checked against the journal; lines appended since the
            last run are fine, they were never sent).
        journal: Its journal (no run of the plan may be going on: a line a
            running worker holds is reported in ``errors``, not recorded).
        session: An open session.
        concurrency: Most cancels in flight.

    Returns:
        What was cancelled, what had finished, what could not be cancelled.

    Raises:
        JournalMismatchError: The journal was written for another plan.
    """
    journal = as_async(journal)
    await _check_plan(journal, plan)
    result = CancelResult()
    running: list[LineRecord] = []
    for record in await journal.records(State.SUBMITTED):
        if record.kind == "job" and record.task_id is not None:
            running.append(record)
        else:
            result.not_cancellable.append(record.line)
    for state in (State.IN_DOUBT, State.SUBMITTING):
        result.in_doubt.extend(r.line for r in await journal.records(state) if r.kind == "job")
    result.in_doubt.sort()
    limit = asyncio.Semaphore(max(1, concurrency))

    async def one(record: LineRecord) -> None:
        async with limit:
            try:
                await _cancel_one(record, journal, session, result)
            except LeaseLostError as exc:
                result.errors.append((record.line, str(exc)))

    await asyncio.gather(*(one(r) for r in running))
    result.cancelled.sort()
    result.finished.sort()
    result.errors.sort()
    return result
