"""A one-machine journal (SQLite) seen through the runner's async :class:`~._journal.Journal`.

Owns :class:`SyncJournalAdapter` and :func:`as_async`. A one-machine backend
holds its journal exclusively (SQLite's file lock), so the many-worker part of
the interface is trivial here: the first :meth:`~SyncJournalAdapter.claim`
hands out every pending and submitted line, later ones only lines that became
pending without being handed out (none, in practice), leases never expire, and
:meth:`~SyncJournalAdapter.check_lease` always passes. Its calls block for the
length of a local commit, as they did before the interface was async: an
SQLite commit on a local disk is shorter than a network round trip, and a
thread per call would cost more than it saves.

Must never import: ``cli/``, ``rich``, ``argparse``, a database driver.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import cast

from ._journal import (
    AttemptRecord,
    Claim,
    Journal,
    LineRecord,
    PlanCounts,
    PlanEntry,
    ReconciliationRow,
    State,
    SyncJournal,
)

__all__ = ["LOCAL_WORKER", "SyncJournalAdapter", "as_async"]

#: The worker id of a one-machine journal.
LOCAL_WORKER = "local"


class SyncJournalAdapter:
    """A :class:`~._journal.SyncJournal` behind the async :class:`~._journal.Journal` interface.

    Closing the adapter does not close the journal it wraps: whoever opened
    that journal closes it.

    Args:
        inner: The blocking journal (an open :class:`~._sqlite.SQLiteJournal`).
    """

    def __init__(self, inner: SyncJournal) -> None:
        self.inner = inner
        # Lines this run has been given (by a claim, or back from a reconciliation).
        self._handed: set[int] = set()
        self._claimed_once = False

    def __repr__(self) -> str:
        return f"SyncJournalAdapter({self.inner.location!r})"

    @property
    def location(self) -> str:
        """Where the journal lives."""
        return self.inner.location

    @property
    def worker_id(self) -> str:
        """Always :data:`LOCAL_WORKER`."""
        return LOCAL_WORKER

    def shared_pacer(self, rate: float | None) -> None:
        """None: one process paces itself."""
        del rate
        return None

    @property
    def lease(self) -> float | None:
        """None: a one-machine journal's lines never change hands."""
        return None

    async def close(self) -> None:
        """Nothing to release: the wrapped journal is closed by its opener."""

    @contextlib.asynccontextmanager
    async def _no_lock(self) -> AsyncIterator[None]:
        yield

    def attach_lock(self) -> contextlib.AbstractAsyncContextManager[None]:
        """No lock is needed: the file lock already keeps other runs out."""
        return self._no_lock()

    async def is_new(self) -> bool:
        """True while the journal holds no plan yet."""
        return self.inner.is_new

    async def initialize(
        self, *, plan_hash: str, plan_name: str, lines: Iterable[PlanEntry]
    ) -> None:
        """Record a plan in a new journal."""
        self.inner.initialize(plan_hash=plan_hash, plan_name=plan_name, lines=lines)

    async def line_hashes(self) -> dict[int, str]:
        """``{line: line_hash}`` of every recorded line."""
        return self.inner.line_hashes()

    async def extend_plan(
        self, *, plan_hash: str, plan_name: str, lines: Iterable[PlanEntry]
    ) -> None:
        """Record lines appended at the end of the plan."""
        self.inner.extend_plan(plan_hash=plan_hash, plan_name=plan_name, lines=lines)

    async def begin_run(self) -> int:
        """Record the start of a run."""
        return self.inner.begin_run()

    async def end_run(self, run: int, *, outcome: str, requests: int) -> None:
        """Record how a run ended."""
        self.inner.end_run(run, outcome=outcome, requests=requests)

    async def claim(self, limit: int) -> Claim:
        """Every pending line not handed out yet (all of them: ``limit`` is not needed here).

        The first claim also hands out every submitted line, to be waited on.
        """
        del limit  # one process owns the whole journal: no reason to split it
        pending = tuple(ln for ln in self.inner.lines_in(State.PENDING) if ln not in self._handed)
        self._handed.update(pending)
        submitted: tuple[LineRecord, ...] = ()
        if not self._claimed_once:
            self._claimed_once = True
            submitted = tuple(self.inner.records(State.SUBMITTED))
        return Claim(pending=pending, submitted=submitted)

    async def renew(self) -> bool:
        """Leases of a one-machine journal never expire."""
        return True

    async def check_lease(self, line: int) -> None:
        """Always held."""

    async def next_expiry(self) -> float | None:
        """No other worker: None."""
        return None

    async def release(self) -> None:
        """Nothing is leased."""

    async def mark_interrupted_in_doubt(self) -> list[int]:
        """Lines left "submitting" become in doubt."""
        return self.inner.mark_interrupted_in_doubt()

    async def last_activity(self, state: str | None = None) -> datetime | None:
        """When a line last changed."""
        return self.inner.last_activity(state)

    async def reconciliation_rows(self) -> list[ReconciliationRow]:
        """The in-doubt lines and the lines holding a task id."""
        return self.inner.reconciliation_rows()

    async def apply_reconciliation(
        self, matched: dict[int, str], not_created: Iterable[int]
    ) -> list[int]:
        """Commit a reconciliation; the lines it put back to pending are this run's to send.

        Only lines that were in doubt move: any other line given is left alone
        and not returned (it must not be sent again).
        """
        wanted = list(not_created)
        in_doubt = set(self.inner.lines_in(State.IN_DOUBT))
        self.inner.apply_reconciliation(matched, wanted)
        resent = [line for line in wanted if line in in_doubt]
        self._handed.update(resent)
        return resent

    async def reset_in_doubt(self) -> int:
        """Every in-doubt line back to pending."""
        return self.inner.reset_in_doubt()

    async def reset_rejected(self) -> int:
        """Failed lines without a task id back to pending."""
        return self.inner.reset_rejected()

    async def reset_failed(self) -> int:
        """Lines whose task failed back to pending (``--retry-failed``)."""
        return self.inner.reset_failed()

    async def mark_submitting(self, line: int, *, clock_offset: float | None = None) -> None:
        """Durably record that a create is about to be sent."""
        self.inner.mark_submitting(line, clock_offset=clock_offset)

    async def mark_submitted(self, line: int, task_id: str) -> None:
        """Durably record a task id."""
        self.inner.mark_submitted(line, task_id)

    async def mark_not_sent(self, line: int, *, error_type: str, error: str) -> None:
        """Back to pending: the create provably was not acted on."""
        self.inner.mark_not_sent(line, error_type=error_type, error=error)

    async def mark_finished(
        self,
        line: int,
        *,
        state: str,
        task_id: str | None = None,
        result_code: str | None = None,
        error_type: str | None = None,
        error: str | None = None,
        outcome: str | None = None,
        failed_files: tuple[str, ...] = (),
        download_url: str | None = None,
    ) -> None:
        """Record the end of a line."""
        self.inner.mark_finished(
            line,
            state=state,
            task_id=task_id,
            result_code=result_code,
            error_type=error_type,
            error=error,
            outcome=outcome,
            failed_files=failed_files,
            download_url=download_url,
        )

    async def note_error(self, line: int, *, error_type: str, error: str) -> None:
        """Record an error without changing the state."""
        self.inner.note_error(line, error_type=error_type, error=error)

    async def lines_in(self, state: str) -> list[int]:
        """The line numbers in ``state``."""
        return self.inner.lines_in(state)

    async def records(self, state: str | None = None) -> list[LineRecord]:
        """The rows, by line number."""
        return list(self.inner.records(state))

    async def counts(self) -> dict[str, int]:
        """Lines per state."""
        return self.inner.counts()

    async def line_times(
        self,
    ) -> dict[int, tuple[datetime | None, datetime | None, datetime | None]]:
        """Each line's times."""
        return self.inner.line_times()

    async def finished_times(self, limit: int) -> list[tuple[int, datetime, datetime]]:
        """The lines that finished last, at most ``limit`` of each kind."""
        return self.inner.finished_times(limit)

    async def failure_groups(self) -> list[tuple[str, int]]:
        """The failure reasons, most frequent first."""
        return self.inner.failure_groups()

    async def outcome_counts(self) -> dict[str, int]:
        """Finished lines per outcome."""
        return self.inner.outcome_counts()

    async def attempts(self, line: int | None = None) -> list[AttemptRecord]:
        """Every attempt (of ``line``, or of every line)."""
        return self.inner.attempts(line)

    async def holders(self) -> dict[str, int]:
        """No leases: empty."""
        return {}

    async def plan_counts(self) -> PlanCounts:
        """Lines per state; no holders."""
        return PlanCounts(self.inner.counts())


def as_async(journal: SyncJournal | Journal) -> Journal:
    """``journal`` as the runner's async :class:`~._journal.Journal` (wrapped when it blocks)."""
    if isinstance(journal, SyncJournalAdapter) or inspect.iscoroutinefunction(
        getattr(journal, "claim", None)
    ):
        return cast(Journal, journal)
    return SyncJournalAdapter(cast(SyncJournal, journal))
