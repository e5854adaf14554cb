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
:class:`PlanError`); :class:`Journal` is the interface a journal backend
implements, :class:`SQLiteJournal` the embedded one; :func:`reconcile` is the
pure reconciliation rule over a complete task listing, and
:func:`reconcile_in_doubt` applies it to a journal; :class:`PlanRun` is one
invocation (prepare, execute, interrupt) reporting through a
:class:`Progress`; :func:`run_plan` does it all in one call; :func:`cancel_plan` cancels the
batch jobs of a plan still running and records it (:class:`Outcome`: how a
job line ended).

Nothing in this package prints, parses arguments or exits, and it never
imports ``koodrive_async.cli``, ``rich`` or ``argparse``.
"""

from ._cancel import CancelResult, cancel_plan
from ._journal import (
    AttemptRecord,
    Journal,
    JournalBusyError,
    JournalError,
    JournalMismatchError,
    LineRecord,
    Outcome,
    ReconciliationRow,
    State,
)
from ._listing import MAX_LIST_PAGES, Reconciled, list_every_task, reconcile_in_doubt
from ._options import (
    DRAIN_SECONDS,
    UNREACHABLE_LIMIT,
    RunOptions,
    RunResult,
    Stop,
    StopReason,
)
from ._plan import Plan, PlanError, PlanLine, load_plan
from ._progress import NoProgress, Progress, RunStats
from ._reconcile import SETTLE_SECONDS, Decision, KnownLine, LineInDoubt
from ._reconcile import decide as reconcile
from ._runner import PlanRun, attach_plan, run_plan
from ._session import BulkSession
from ._sqlite import SQLiteJournal, default_journal_path

__all__ = [
    "DRAIN_SECONDS",
    "MAX_LIST_PAGES",
    "SETTLE_SECONDS",
    "UNREACHABLE_LIMIT",
    "AttemptRecord",
    "BulkSession",
    "CancelResult",
    "Decision",
    "Journal",
    "JournalBusyError",
    "JournalError",
    "JournalMismatchError",
    "KnownLine",
    "LineInDoubt",
    "LineRecord",
    "NoProgress",
    "Outcome",
    "Plan",
    "PlanError",
    "PlanLine",
    "PlanRun",
    "Progress",
    "Reconciled",
    "ReconciliationRow",
    "RunOptions",
    "RunResult",
    "RunStats",
    "SQLiteJournal",
    "State",
    "Stop",
    "StopReason",
    "attach_plan",
    "cancel_plan",
    "default_journal_path",
    "list_every_task",
    "load_plan",
    "reconcile",
    "reconcile_in_doubt",
    "run_plan",
]
