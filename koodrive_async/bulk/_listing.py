"""The reconciliation's driver: read the whole task listing, apply the rule, commit.

Owns the I/O around the pure rule of ``_reconcile.py``: a bounded reading of
every ``task/list`` page (:func:`list_every_task`), the gathering of the
journal's in-doubt lines and witnesses, the settle-time check, and the one
journal transaction that commits the decision (:func:`reconcile_in_doubt`).

Must never import: ``cli/``, ``rich``, ``argparse``, a journal backend (it
works on the :class:`~._journal.Journal` protocol).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import attrs

from .._build import MAX_PAGE_SIZE, PATH_TASK_LIST
from .._exceptions import ResponseValidationError
from .._models import Task
from ._journal import Journal, ReconciliationRow, State
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

__all__ = ["MAX_LIST_PAGES", "Reconciled", "list_every_task", "reconcile_in_doubt"]

#: Most ``task/list`` pages one reconciliation reads (``--max-list-pages``); it
#: also holds at most this many times :data:`MAX_PAGE_SIZE` tasks in memory.
MAX_LIST_PAGES = 5000


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


def _in_service_time(moment: datetime | None, offset: float | None) -> datetime | None:
    """A time of this machine in the service's clock, or None when the offset was unknown."""
    if moment is None or offset is None:
        return None
    return moment + timedelta(seconds=offset)


@attrs.frozen
class _Evidence:
    """The journal's side of a reconciliation, ready for :func:`decide`."""

    in_doubt: list[LineInDoubt]
    known: dict[str, KnownLine]
    claimed: set[str]


def _evidence(plan: Plan, rows: list[ReconciliationRow], listed_ids: set[str]) -> _Evidence:
    """The in-doubt lines, the witnesses (lines whose task is listed) and the claimed ids."""
    in_doubt: list[LineInDoubt] = []
    witnesses: dict[str, list[tuple[datetime | None, int, str, datetime | None]]] = {}
    claimed: set[str] = set()
    for row in rows:
        if row.task_id is not None:
            claimed.add(row.task_id)
        if row.kind is None:
            continue
        # createTime is the service's clock: compare it with the "submitting"
        # time in the service's clock, or not at all.
        service_submitting = _in_service_time(row.submitting_at, row.clock_offset)
        if row.state == State.IN_DOUBT:
            # The body its attempt sent: a retry may have sent only some files.
            request = subset_request(plan.request(row.line), row.retry_files)
            in_doubt.append(
                LineInDoubt(
                    row.line,
                    row.kind,
                    request_key(request),
                    request_identity(request),
                    service_submitting,
                )
            )
        elif row.task_id is not None and row.task_id in listed_ids:
            witnesses.setdefault(row.kind, []).append(
                (row.submitting_at, row.line, row.task_id, service_submitting)
            )
    # Rebuilding every line's body costs ~0.1 ms a line: the most recent
    # witnesses of each kind say what the service does now, and suffice.
    known: dict[str, KnownLine] = {}
    files = {row.line: row.retry_files for row in rows}
    for kind, entries in witnesses.items():
        entries.sort(key=lambda e: (e[0] is not None, e[0], e[1]), reverse=True)
        for _submitting, line, task_id, service_submitting in entries[:WITNESSES_PER_KIND]:
            sent = subset_request(plan.request(line), files.get(line, ()))
            known[task_id] = KnownLine(line, kind, request_key(sent), service_submitting)
    return _Evidence(in_doubt, known, claimed)


def _seconds_since(moment: datetime) -> float:
    return (datetime.now(UTC) - moment).total_seconds()


async def reconcile_in_doubt(
    plan: Plan,
    journal: Journal,
    session: BulkSession,
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
        session: An open session.
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
    since = {
        row.line: sent_before.get(row.line) or row.changed_at
        for row in journal.reconciliation_rows()
        if row.state == State.IN_DOUBT and row.changed_at is not None
    }
    if wait and since:
        remaining = settle - _seconds_since(max(since.values()))
        if remaining > 0:
            await asyncio.sleep(min(remaining, settle))
    listing_started = datetime.now(UTC)
    tasks = await list_every_task(session, max_pages=max_pages)
    # Read again: nothing else writes the journal, but be exact about what we decide on.
    evidence = _evidence(plan, journal.reconciliation_rows(), {t.task_id for t in tasks})
    # The tasks of earlier attempts (a line retried after its task failed) are
    # the line's, never a match for another in-doubt line.
    evidence.claimed.update(a.task_id for a in journal.attempts() if a.task_id is not None)
    decision = decide(evidence.in_doubt, evidence.known, tasks, claimed=evidence.claimed)
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
