"""Reconciling a fan-out's in-doubt outcomes, for library users (no journal needed).

Owns :func:`reconcile_outcomes`: given a session and the outcomes of
``run_jobs`` / ``stream_jobs``, it says of each outcome whose ``verdict`` is
IN_DOUBT whether its work was FOUND on the service (with its id),
NOT_CREATED (safe to send again), or is STILL_IN_DOUBT, by the same rules
the bulk runner applies to its journal: the task list for transfers and
imports (``_reconcile.py``), the job list and job detail for batch jobs
(``_job_match.py``); share tasks cannot be looked up and stay in doubt. The
other outcomes are the witnesses: their ids are claimed, and they calibrate
the job clock and the trust in the task list.

Must never import: ``cli/``, ``rich``, ``argparse``, a journal backend.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import attrs

from .._enums import Verdict
from .._models import (
    ImportTaskRequest,
    JobOutcome,
    JobRequest,
    Request,
    ShareTaskRequest,
    TransferTaskRequest,
)
from ._job_match import JobLine, JobWitness, decide_jobs, job_key, jobs_to_read
from ._listing import (
    MAX_JOB_DETAILS,
    MAX_LIST_PAGES,
    list_every_job,
    list_every_task,
    looked_up_as,
    read_job_details,
)
from ._reconcile import (
    CLOCK_MARGIN,
    SETTLE_SECONDS,
    WITNESSES_PER_KIND,
    KnownLine,
    LineInDoubt,
    decide,
    request_identity,
    request_key,
)
from ._session import BulkSession

__all__ = ["Reconciliation", "ReconciliationResult", "reconcile_outcomes"]


class ReconciliationResult(enum.Enum):
    """What became of an in-doubt outcome's create."""

    FOUND = "found"
    """The work exists: :attr:`Reconciliation.task_id` is its task or job id (wait for it)."""
    NOT_CREATED = "not_created"
    """Proven not created: sending the request again cannot make it twice."""
    STILL_IN_DOUBT = "still_in_doubt"
    """Nothing could be proven (look for it by hand before sending it again)."""


@attrs.frozen
class Reconciliation:
    """The reconciliation of one in-doubt outcome.

    Attributes:
        index: The outcome's position in the outcomes given.
        outcome: The outcome.
        result: FOUND, NOT_CREATED or STILL_IN_DOUBT.
        task_id: The task or job id, when FOUND.
    """

    index: int
    outcome: JobOutcome
    result: ReconciliationResult
    task_id: str | None = None


def _kind(request: Request) -> str:
    if isinstance(request, JobRequest):
        return "job"
    if isinstance(request, ShareTaskRequest):
        return "share"
    if isinstance(request, TransferTaskRequest):
        return "transfer"
    assert isinstance(request, ImportTaskRequest)
    return "import"


def _shifted(moment: datetime | None, offset: float | None) -> datetime | None:
    if moment is None or offset is None:
        return None
    return moment + timedelta(seconds=offset)


def _recent(witnesses: list[tuple[int, JobOutcome]]) -> list[tuple[int, JobOutcome]]:
    """The :data:`WITNESSES_PER_KIND` most recently submitted, as the journal's runner takes."""
    floor = datetime.min.replace(tzinfo=UTC)
    ordered = sorted(witnesses, key=lambda w: w[1].submitted_at or floor, reverse=True)
    return ordered[:WITNESSES_PER_KIND]


async def reconcile_outcomes(
    session: BulkSession,
    outcomes: Iterable[JobOutcome],
    *,
    settle: float = SETTLE_SECONDS,
    wait: bool = True,
    max_pages: int = MAX_LIST_PAGES,
    max_details: int = MAX_JOB_DETAILS,
    margin: timedelta = CLOCK_MARGIN,
) -> list[Reconciliation]:
    """Look for the work of a fan-out's in-doubt outcomes on the service.

    ::

        outcomes = [o async for o in session.stream_jobs(requests)]
        for r in await reconcile_outcomes(session, outcomes):
            if r.result is ReconciliationResult.NOT_CREATED:
                ...  # safe to submit r.outcome.request again

    An in-doubt outcome that holds an id (created, but its wait failed) is
    FOUND at once. The others are looked up: transfers and imports in the
    task list (the "submitting" time read on the service's clock with the
    session's learnt ``clock_offset``), batch jobs in the job list and their
    candidates' details (``createTime`` calibrated on the outcomes that hold
    a job id), share tasks nowhere (STILL_IN_DOUBT). Every outcome given
    takes part as a witness: give them all, not only the in-doubt ones.
    An outcome is NOT_CREATED only by a listing that started ``settle``
    seconds after its create ended (``JobOutcome.answered_at``; when unknown,
    the time of this call).

    Args:
        session: An open session (``KooDriveSession``).
        outcomes: The outcomes of ``run_jobs`` / ``stream_jobs`` (all of them).
        settle: See :data:`SETTLE_SECONDS`.
        wait: Sleep first (at most ``settle`` seconds) until every in-doubt
            create is past its settle time; otherwise such an outcome stays
            STILL_IN_DOUBT.
        max_pages: Most pages of each listing read; a job list cut short
            proves nothing absent, a task list too long fails.
        max_details: Most candidate job details read.
        margin: The clock margin of the time windows.

    Returns:
        One :class:`Reconciliation` per in-doubt outcome, in the given order.

    Raises:
        KooDriveError: A listing or a job detail could not be read.
        ResponseValidationError: The task list cycles or never ends.
    """
    called = datetime.now(UTC)
    given = list(outcomes)
    offset = session.clock_offset
    claimed = {o.task_id for o in given if o.task_id is not None}
    settled: dict[int, Reconciliation] = {}
    task_lines: list[LineInDoubt] = []
    job_lines: list[JobLine] = []
    sent_by: dict[int, datetime] = {}
    doubt = [(i, o) for i, o in enumerate(given) if o.verdict is Verdict.IN_DOUBT]
    for i, outcome in doubt:
        request = outcome.request
        where = looked_up_as(session, request)
        if outcome.task_id is not None:
            settled[i] = Reconciliation(i, outcome, ReconciliationResult.FOUND, outcome.task_id)
        elif where is None:
            settled[i] = Reconciliation(i, outcome, ReconciliationResult.STILL_IN_DOUBT)
        else:
            sent_by[i] = outcome.answered_at or called
            identity = request_identity(request)
            if where == "job":
                assert isinstance(request, JobRequest)
                job_lines.append(JobLine(i, job_key(request), identity, outcome.submitted_at))
            else:
                task_lines.append(
                    LineInDoubt(
                        i,
                        _kind(request),
                        request_key(request),
                        identity,
                        _shifted(outcome.submitted_at, offset),
                    )
                )
    if wait and sent_by:
        remaining = settle - (datetime.now(UTC) - max(sent_by.values())).total_seconds()
        if remaining > 0:
            await asyncio.sleep(min(remaining, settle))
    listing_started = datetime.now(UTC)
    matched: dict[int, str] = {}
    not_created: list[int] = []
    with_id = [(i, o) for i, o in enumerate(given) if o.task_id is not None]
    if task_lines:
        tasks = await list_every_task(session, max_pages=max_pages)
        listed = {t.task_id for t in tasks}
        known: dict[str, KnownLine] = {}
        for i, o in _recent([w for w in with_id if looked_up_as(session, w[1].request) == "task"]):
            if o.task_id in listed:
                assert o.task_id is not None
                known[o.task_id] = KnownLine(
                    i, _kind(o.request), request_key(o.request), _shifted(o.submitted_at, offset)
                )
        decision = decide(task_lines, known, tasks, claimed=claimed, margin=margin)
        matched.update(decision.matched)
        not_created += decision.not_created
    if job_lines:
        listing = await list_every_job(session, max_pages=max_pages)
        ids = {j.job_id for j in listing.jobs}
        witnesses: list[JobWitness] = []
        for _i, o in _recent([w for w in with_id if looked_up_as(session, w[1].request) == "job"]):
            if o.task_id is not None and o.task_id in ids and isinstance(o.request, JobRequest):
                witnesses.append(JobWitness(o.task_id, job_key(o.request), o.submitted_at))
        candidates = jobs_to_read(
            job_lines, witnesses, listing.jobs, claimed=claimed, margin=margin
        )
        details = await read_job_details(session, candidates, limit=max_details)
        jobs = decide_jobs(
            job_lines,
            witnesses,
            listing.jobs,
            details,
            complete=listing.complete,
            claimed=claimed,
            margin=margin,
        )
        matched.update(jobs.matched)
        not_created += jobs.not_created
    for i, outcome in doubt:
        if i in settled:
            continue
        if i in matched:
            settled[i] = Reconciliation(i, outcome, ReconciliationResult.FOUND, matched[i])
        elif i in not_created and (listing_started - sent_by[i]).total_seconds() >= settle:
            settled[i] = Reconciliation(i, outcome, ReconciliationResult.NOT_CREATED)
        else:
            settled[i] = Reconciliation(i, outcome, ReconciliationResult.STILL_IN_DOUBT)
    return [settled[i] for i, _o in doubt]
