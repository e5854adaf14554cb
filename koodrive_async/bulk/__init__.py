"""Journaled bulk runs as a library: plans, journals, reconciliation, the run loop.

**Provisional API.** These names let Python code (an Airflow or Celery task,
a script) do what ``koodrive-async run`` does, without the command line. They
may change in a minor release until they are declared stable; they are not
part of ``koodrive_async.__all__``.

::

    from koodrive_async import KooDriveSession
    from koodrive_async.bulk import RunOptions, run_plan

    async with KooDriveSession(base_url, user_id=user_id, token=token) as session:
        result = await run_plan("plan.jsonl", session, options=RunOptions(concurrency=32))
    if result.has_doubt:
        ...  # some lines may or may not have been created (see result.in_doubt)

The pieces: :func:`load_plan` reads and validates a plan (:class:`Plan`,
:class:`PlanError`); :class:`Journal` is the (async) interface the runner uses
and :func:`open_journal` opens one by where it lives: :class:`SQLiteJournal`
(the embedded one, blocking, seen through :class:`SyncJournalAdapter`) or the
PostgreSQL one many workers share (``koodrive-async[postgres]``); :func:`reconcile` is the
pure reconciliation rule over a complete task listing (for transfers and
imports), :func:`reconcile_jobs` the one over the job list and job details
(for batch jobs), and :func:`reconcile_in_doubt` applies both to a journal;
:func:`reconcile_outcomes` applies them to the in-doubt outcomes of
``run_jobs`` / ``stream_jobs``, no journal needed (:class:`Reconciliation`,
:class:`ReconciliationResult`); :class:`PlanRun` is one
invocation (prepare, execute, interrupt) reporting through a
:class:`Progress`; :func:`run_plan` does it all in one call; :func:`cancel_plan` cancels the
batch jobs of a plan still running and records it (:class:`Outcome`: how a
job line ended).

Nothing in this package prints, parses arguments or exits, and it never
imports ``koodrive_async.cli``, ``rich`` or ``argparse``.
"""

from ._cancel import CancelResult, cancel_plan
from ._job_match import JobDecision, JobKey, JobLine, JobWitness
from ._job_match import decide_jobs as reconcile_jobs
from ._journal import (
    AttemptRecord,
    Claim,
    Journal,
    JournalBusyError,
    JournalError,
    JournalMismatchError,
    LeaseLostError,
    LineRecord,
    Outcome,
    Pacer,
    PlanCounts,
    ReconciliationRow,
    State,
    SyncJournal,
)
from ._listing import (
    MAX_JOB_DETAILS,
    MAX_LIST_PAGES,
    JobListing,
    Reconciled,
    list_every_job,
    list_every_task,
    reconcile_in_doubt,
)
from ._open import DEFAULT_LEASE, is_database_url, open_journal
from ._options import (
    DRAIN_SECONDS,
    UNREACHABLE_LIMIT,
    RunOptions,
    RunResult,
    Stop,
    StopReason,
)
from ._outcomes import Reconciliation, ReconciliationResult, reconcile_outcomes
from ._plan import Plan, PlanError, PlanLine, load_plan
from ._progress import NoProgress, Progress, RunStats
from ._reconcile import SETTLE_SECONDS, Decision, KnownLine, LineInDoubt
from ._reconcile import decide as reconcile
from ._runner import PlanRun, attach_plan, run_plan
from ._session import BulkSession
from ._sqlite import SQLiteJournal, default_journal_path
from ._sync_adapter import SyncJournalAdapter, as_async

__all__ = [
    "DEFAULT_LEASE",
    "DRAIN_SECONDS",
    "MAX_JOB_DETAILS",
    "MAX_LIST_PAGES",
    "SETTLE_SECONDS",
    "UNREACHABLE_LIMIT",
    "AttemptRecord",
    "BulkSession",
    "CancelResult",
    "Claim",
    "Decision",
    "Journal",
    "JournalBusyError",
    "JournalError",
    "JobDecision",
    "JobKey",
    "JobLine",
    "JobListing",
    "JobWitness",
    "JournalMismatchError",
    "KnownLine",
    "LeaseLostError",
    "LineInDoubt",
    "LineRecord",
    "NoProgress",
    "Outcome",
    "Pacer",
    "Plan",
    "PlanCounts",
    "PlanError",
    "PlanLine",
    "PlanRun",
    "Progress",
    "Reconciled",
    "Reconciliation",
    "ReconciliationResult",
    "ReconciliationRow",
    "RunOptions",
    "RunResult",
    "RunStats",
    "SQLiteJournal",
    "State",
    "Stop",
    "StopReason",
    "SyncJournal",
    "SyncJournalAdapter",
    "as_async",
    "attach_plan",
    "cancel_plan",
    "default_journal_path",
    "is_database_url",
    "list_every_job",
    "list_every_task",
    "load_plan",
    "open_journal",
    "reconcile",
    "reconcile_in_doubt",
    "reconcile_jobs",
    "reconcile_outcomes",
    "run_plan",
]
