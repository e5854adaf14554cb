"""The reconciliation's driver: read the listings, apply the rules, commit.

Owns the I/O around the pure rules of ``_reconcile.py`` (tasks) and
``_job_match.py`` (batch jobs): a bounded reading of every ``task/list`` page
(:func:`list_every_task`), of every ``GET /jobs`` page
(:func:`list_every_job`) and of the candidates' job details
(:func:`read_job_details`), the gathering of the journal's in-doubt lines and
witnesses, the settle-time check, and the one journal transaction that
commits the decision (:func:`reconcile_in_doubt`). In-doubt job lines are
looked up in the job list (unless the session's ``job_tracking`` is
``"task"``: a deployment that shows jobs in the task list), transfers and
imports in the task list; share lines cannot be looked up and stay in doubt.

Must never import: ``cli/``, ``rich``, ``argparse``, a journal backend (it
works on the :class:`~._journal.Journal` protocol).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

import attrs

from .._build import MAX_PAGE_SIZE, PATH_TASK_LIST
from .._exceptions import NotFoundError, ResponseValidationError
from .._models import Job, JobRequest, Request, ShareTaskRequest, Task
from ._job_match import JobDecision, JobLine, JobWitness, decide_jobs, job_key, jobs_to_read
from ._journal import Journal, ReconciliationRow, State, SyncJournal
from ._plan import Plan
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
from ._retry import subset_request
from ._session import BulkSession
from ._sync_adapter import as_async
from ._waits import job_tracking_of

__all__ = [
    "MAX_JOB_DETAILS",
    "merge_decisions",
    "MAX_LIST_PAGES",
    "JobListing",
    "Reconciled",
    "list_every_job",
    "list_every_task",
    "looked_up_as",
    "read_job_details",
    "reconcile_in_doubt",
]

#: Most ``task/list`` (or ``GET /jobs``) pages one reconciliation reads
#: (``--max-list-pages``); it also holds at most this many times
#: :data:`MAX_PAGE_SIZE` tasks (or jobs) in memory.
MAX_LIST_PAGES = 5000

#: Most candidate job details one reconciliation reads; candidates beyond it
#: are unreadable (the lines they could be stay in doubt).
MAX_JOB_DETAILS = 2000

#: Job details read at once.
_DETAIL_CONCURRENCY = 8


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


def _shown(cursor: str) -> str:
    return repr(cursor if len(cursor) <= 80 else cursor[:77] + "...")


def _listing_error(message: str) -> ResponseValidationError:
    return ResponseValidationError(message, method="GET", path=PATH_TASK_LIST, status_code=200)


async def list_every_task(session: BulkSession, *, max_pages: int = MAX_LIST_PAGES) -> list[Task]:
    """Read the whole task listing, refusing one that would never end.

    A cursor the listing already returned (A -> B -> A ...) would loop
    forever, and a listing longer than ``max_pages`` pages (or holding more
    than ``max_pages`` x :data:`MAX_PAGE_SIZE` tasks) would hold unbounded
    memory: both end the listing with an error, and nothing is decided on it.

    Args:
        session: An open session.
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


@attrs.frozen
class JobListing:
    """The batch jobs ``GET /jobs`` returned, and whether every page was read.

    Attributes:
        jobs: The jobs, in the service's order (a job seen twice, once).
        complete: False when the page cap ended the reading first.
        pages: Pages read.
    """

    jobs: list[Job]
    complete: bool
    pages: int


async def list_every_job(session: BulkSession, *, max_pages: int = MAX_LIST_PAGES) -> JobListing:
    """Read the job list page after page by offset, at most ``max_pages`` pages.

    The listing ends at the first page shorter than a full one. A listing the
    cap cuts short is returned with ``complete`` False: nothing may be proven
    absent from it.

    Args:
        session: An open session.
        max_pages: Most pages read.

    Returns:
        The jobs and whether the listing is complete.

    Raises:
        KooDriveError: As :meth:`KooDriveSession.list_jobs`.
    """
    jobs: dict[str, Job] = {}
    offset = 0
    pages = 0
    while pages < max_pages:
        page = await session.list_jobs(offset=offset, limit=MAX_PAGE_SIZE)
        pages += 1
        for job in page:
            jobs.setdefault(job.job_id, job)
        if len(page) < MAX_PAGE_SIZE:
            return JobListing(list(jobs.values()), True, pages)
        offset += len(page)
    return JobListing(list(jobs.values()), False, pages)


async def read_job_details(
    session: BulkSession, job_ids: Iterable[str], *, limit: int = MAX_JOB_DETAILS
) -> dict[str, Job | None]:
    """Read the detail of (at most ``limit`` of) these jobs, a few at a time.

    Args:
        session: An open session.
        job_ids: The candidates, in the order they are wanted.
        limit: Most details read; the others are left out.

    Returns:
        ``{job id: detail}``; None for a job its detail no longer knows (404).

    Raises:
        KooDriveError: A detail could not be read for another reason.
    """
    wanted = list(job_ids)[:limit]
    details: dict[str, Job | None] = {}
    gate = asyncio.Semaphore(_DETAIL_CONCURRENCY)

    async def read(job_id: str) -> None:
        async with gate:
            try:
                details[job_id] = await session.get_job(job_id)
            except NotFoundError:
                details[job_id] = None

    await asyncio.gather(*(read(j) for j in wanted))
    return details


def looked_up_as(session: BulkSession, request: Request) -> str | None:
    """Where an in-doubt request is looked up: ``"job"``, ``"task"``, or None (share).

    Args:
        session: The session (its ``job_tracking``).
        request: The request.

    Returns:
        ``"job"``: the job list and job detail; ``"task"``: the task list;
        None: nowhere (a share task's detail needs its id). With
        ``job_tracking="task"`` everything is looked up in the task list.
    """
    if job_tracking_of(session) == "task":
        return "task"  # the deployment shows jobs and share tasks in the task list
    if isinstance(request, ShareTaskRequest):
        return None
    return "job" if isinstance(request, JobRequest) else "task"


#: Where each plan kind is looked up (see :func:`looked_up_as`).
_KIND_OF_LOOKUP = {"job": "job", "share": None, "transfer": "task", "import": "task"}


def _looked_up_by_kind(session: BulkSession, kind: str) -> str | None:
    """:func:`looked_up_as` from a journal line's kind (no request rebuilt: ~0.1 ms each)."""
    if job_tracking_of(session) == "task":
        return "task"
    return _KIND_OF_LOOKUP.get(kind, "task")


def _in_service_time(moment: datetime | None, offset: float | None) -> datetime | None:
    """A time of this machine in the service's clock, or None when the offset was unknown."""
    if moment is None or offset is None:
        return None
    return moment + timedelta(seconds=offset)


@attrs.frozen
class _Evidence:
    """The journal's side of a reconciliation, ready for the rules."""

    in_doubt: list[LineInDoubt]
    known: dict[str, KnownLine]
    claimed: set[str]
    job_lines: list[JobLine]
    job_witnesses: list[JobWitness]
    # In-doubt lines no listing can settle (share tasks).
    unsearchable: list[int]


def _most_recent(entries: list[tuple[datetime | None, int, str]]) -> list[tuple[int, str]]:
    # Rebuilding every line's body costs ~0.1 ms a line: the most recent
    # witnesses of each kind say what the service does now, and suffice.
    entries.sort(key=lambda e: (e[0] is not None, e[0], e[1]), reverse=True)
    return [(line, task_id) for _at, line, task_id in entries[:WITNESSES_PER_KIND]]


def _evidence(
    plan: Plan,
    session: BulkSession,
    rows: list[ReconciliationRow],
    listed_tasks: set[str],
    listed_jobs: set[str],
) -> _Evidence:
    """The in-doubt lines, the witnesses (lines whose task or job is listed), the claimed ids."""
    evidence = _Evidence([], {}, set(), [], [], [])
    witnesses: dict[str, list[tuple[datetime | None, int, str]]] = {}
    job_witnesses: list[tuple[datetime | None, int, str]] = []
    by_line = {row.line: row for row in rows}
    for row in rows:
        if row.task_id is not None:
            evidence.claimed.add(row.task_id)
        if row.kind is None:
            continue
        where = _looked_up_by_kind(session, row.kind)
        if row.state == State.IN_DOUBT:
            # The body its attempt sent: a retry may have sent only some files.
            request = subset_request(plan.request(row.line), row.retry_files)
            if where is None:
                evidence.unsearchable.append(row.line)
            elif where == "job":
                assert isinstance(request, JobRequest)
                evidence.job_lines.append(
                    JobLine(
                        row.line,
                        job_key(request),
                        request_identity(request),
                        row.submitting_at,
                    )
                )
            else:
                # createTime is the service's clock: compare it with the "submitting"
                # time in the service's clock, or not at all.
                evidence.in_doubt.append(
                    LineInDoubt(
                        row.line,
                        row.kind,
                        request_key(request),
                        request_identity(request),
                        _in_service_time(row.submitting_at, row.clock_offset),
                    )
                )
        elif row.task_id is not None:
            if where == "job" and row.task_id in listed_jobs:
                job_witnesses.append((row.submitting_at, row.line, row.task_id))
            elif where == "task" and row.task_id in listed_tasks:
                witnesses.setdefault(row.kind, []).append(
                    (row.submitting_at, row.line, row.task_id)
                )
    for kind, entries in witnesses.items():
        for line, task_id in _most_recent(entries):
            row = by_line[line]
            evidence.known[task_id] = KnownLine(
                line,
                kind,
                request_key(subset_request(plan.request(line), row.retry_files)),
                _in_service_time(row.submitting_at, row.clock_offset),
            )
    for line, job_id in _most_recent(job_witnesses):
        request = subset_request(plan.request(line), by_line[line].retry_files)
        assert isinstance(request, JobRequest)
        evidence.job_witnesses.append(
            JobWitness(job_id, job_key(request), by_line[line].submitting_at)
        )
    return evidence


def _sent_by(
    rows: list[ReconciliationRow], sent_before: Mapping[int, datetime]
) -> dict[int, datetime]:
    """``{in-doubt line: the moment by which its create was sent}``.

    What the caller knows (``sent_before``: an interrupted run's last write,
    earlier than the moment the line was put in doubt), else when the line
    last changed.
    """
    since: dict[int, datetime] = {}
    for row in rows:
        if row.state != State.IN_DOUBT:
            continue
        moment = sent_before.get(row.line) or row.changed_at
        if moment is not None:
            since[row.line] = moment
    return since


def _seconds_since(moment: datetime) -> float:
    return (datetime.now(UTC) - moment).total_seconds()


def merge_decisions(
    tasks: Decision | None, jobs: JobDecision | None, unsearchable: Iterable[int] = ()
) -> Decision:
    """One :class:`Decision` of the task rule's, the job rule's and the lines no rule settles.

    Args:
        tasks: The task rule's decision (None: no task line was in doubt).
        jobs: The job rule's decision (None: no job line was in doubt).
        unsearchable: In-doubt lines no listing can settle (share tasks).

    Returns:
        The merged decision (its ``jobs`` part is the job rule's).
    """
    base = tasks or decide((), {}, ())
    matched = dict(base.matched)
    not_created = list(base.not_created)
    in_doubt = list(base.in_doubt) + list(unsearchable)
    trusted = set(base.trusted_kinds) if tasks is not None else set()
    if jobs is not None:
        matched.update(jobs.matched)
        not_created += jobs.not_created
        in_doubt += jobs.in_doubt
        if jobs.offset is not None:
            trusted.add("job")
    return attrs.evolve(
        base,
        matched=matched,
        not_created=sorted(not_created),
        in_doubt=sorted(in_doubt),
        trusted_kinds=frozenset(trusted),
        jobs=jobs,
        tasks_listed=tasks is not None,
    )


async def reconcile_in_doubt(
    plan: Plan,
    journal: Journal | SyncJournal,
    session: BulkSession,
    *,
    sent_before: Mapping[int, datetime] | None = None,
    settle: float = SETTLE_SECONDS,
    wait: bool = False,
    max_pages: int = MAX_LIST_PAGES,
) -> Reconciled:
    """Look for the in-doubt lines' tasks and jobs on the service and commit the decision.

    Transfers and imports: lists every task (all pages, :func:`list_every_task`)
    and applies :func:`._reconcile.decide`. Batch jobs: lists every job
    (:func:`list_every_job`), reads the candidates' details
    (:func:`read_job_details`) and applies :func:`._job_match.decide_jobs`.
    Share lines stay in doubt. Each listing is read only when a line needs
    it. Then commits in one transaction: matched lines become ``submitted``
    with their task id; lines proven not created go back to ``pending``, but
    only when the listing started at least ``settle`` seconds after the
    line's create may last have been sent (a create the service was still
    handling must show); the others stay ``in_doubt``.

    Args:
        plan: The plan (to rebuild the lines' request bodies).
        journal: The open journal.
        session: An open session.
        sent_before: ``{line: time}`` before which the line's create was sent,
            when it is earlier than the time the line went in doubt (the
            interrupted run's last journal write, for lines it left
            "submitting"). Default: the time the line last changed.
        settle: See :data:`._reconcile.SETTLE_SECONDS`.
        wait: Sleep first, for as long as it takes for every in-doubt line
            to be past its settle time (at most ``settle`` seconds).
        max_pages: See :func:`list_every_task` and :func:`list_every_job`.

    Returns:
        What was done.

    Raises:
        KooDriveError: A listing or a job detail failed (nothing was changed).
    """
    journal = as_async(journal)
    sent_before = sent_before or {}
    rows = await journal.reconciliation_rows()
    since = _sent_by(rows, sent_before)
    wanted = {
        _looked_up_by_kind(session, row.kind)
        for row in rows
        if row.state == State.IN_DOUBT and row.kind is not None
    }
    if wait and since:
        remaining = settle - _seconds_since(max(since.values()))
        if remaining > 0:
            await asyncio.sleep(min(remaining, settle))
    listing_started = datetime.now(UTC)
    tasks = await list_every_task(session, max_pages=max_pages) if "task" in wanted else None
    jobs = await list_every_job(session, max_pages=max_pages) if "job" in wanted else None
    # Read again (other workers may have written meanwhile): decide on what is there now.
    rows = await journal.reconciliation_rows()
    since = _sent_by(rows, sent_before)
    # A line that went in doubt (again) while the listing was read (another
    # worker's create, a second attempt) may have been created after the
    # listing looked: it is deferred, never declared not created by it.
    changed_late = {
        row.line for row in rows if row.changed_at is not None and row.changed_at >= listing_started
    }
    # A line taken over from a stopped worker may be declared not created only
    # once any create that worker could still send carries a refused X-Date.
    fenced = {
        row.line
        for row in rows
        if row.fence_until is not None and row.fence_until > listing_started
    }
    evidence = _evidence(
        plan,
        session,
        rows,
        {t.task_id for t in tasks or ()},
        {j.job_id for j in jobs.jobs} if jobs is not None else set(),
    )
    # The tasks of earlier attempts (a line retried after its task failed) are
    # the line's, never a match for another in-doubt line.
    evidence.claimed.update(
        attempt.task_id for attempt in await journal.attempts() if attempt.task_id is not None
    )
    task_decision = (
        decide(evidence.in_doubt, evidence.known, tasks, claimed=evidence.claimed)
        if tasks is not None
        else None
    )
    job_decision = None
    if jobs is not None:
        candidates = jobs_to_read(
            evidence.job_lines, evidence.job_witnesses, jobs.jobs, claimed=evidence.claimed
        )
        details = await read_job_details(session, candidates)
        job_decision = decide_jobs(
            evidence.job_lines,
            evidence.job_witnesses,
            jobs.jobs,
            details,
            complete=jobs.complete,
            claimed=evidence.claimed,
        )
    decision = merge_decisions(task_decision, job_decision, evidence.unsearchable)
    resent: list[int] = []
    deferred: list[int] = []
    for line in decision.not_created:
        moment = since.get(line)
        if line in fenced:
            continue  # stays in doubt until its fence; a later run settles it
        if line in changed_late:
            deferred.append(line)
        elif moment is None or (listing_started - moment).total_seconds() >= settle:
            resent.append(line)
        else:
            deferred.append(line)
    # With many workers, only the lines this one now holds are its to send.
    resent = await journal.apply_reconciliation(decision.matched, resent)
    return Reconciled(decision, resent, deferred)
