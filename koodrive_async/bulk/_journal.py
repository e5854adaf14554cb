"""The journal interface: what a bulk run needs to remember about each plan line.

Owns the line :class:`State` machine, :class:`LineRecord` (one line as the
runner and the reports see it), :class:`ReconciliationRow` and the
:class:`Journal` protocol, the operations the runner, the reconciliation and
the summary call. Backends implement it (the SQLite one is ``_sqlite.py``; a
PostgreSQL one can follow) so that the runner never knows where the rows live.

Per plan line the journal holds a state::

    pending ──► submitting ──► submitted(task id) ──► succeeded
                    │                    └──────────► failed
                    ├──► failed       (the create was refused: nothing was created)
                    ├──► pending      (provably not sent: could not connect, the
                    │                  token provider failed, the service asked
                    │                  to wait longer than the policy allows)
                    └──► in_doubt     (no answer, or one that does not prove the
                                       server did nothing: the task may exist)

``submitting`` must be durable *before* the create request is sent and the
task id right after the answer: a line found in ``submitting`` when a run
starts was interrupted between the two and becomes ``in_doubt``. A backend
never stores the plan lines themselves (they may carry archive passwords),
only line numbers, per-line hashes (secrets redacted), task ids, result codes
and masked error texts, and, for a finished job or share task, how it ended
(:class:`Outcome`), the ids of its failed files and its download link. The
link carries a token of its own in its query: the journal keeps it whole (it
is the operator's local state, and the link is what a package download is
for), and everything that prints or logs it masks its query.

Must never import: ``cli/``, ``rich``, ``argparse``, a database driver (that
belongs in the backend's own module).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import NamedTuple, Protocol

import attrs

__all__ = [
    "Claim",
    "Journal",
    "JournalBusyError",
    "JournalError",
    "JournalMismatchError",
    "LeaseLostError",
    "LineRecord",
    "Outcome",
    "PlanEntry",
    "ReconciliationRow",
    "State",
]


class State:
    """The states of a plan line (plain strings, as stored)."""

    PENDING = "pending"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"
    INVALID = "invalid"


class Outcome:
    """How a finished job or share task ended, beyond its line's state (plain strings).

    A line whose job ran records one: ``succeeded``; ``partially_failed`` or
    ``all_failed`` (it completed with some or every file failed; the failed
    file ids are recorded); ``failed`` (it failed, no per-file result says how
    far); ``cancelled``. Lines of transfers and imports, and lines that never
    ran, record none.
    """

    SUCCEEDED = "succeeded"
    PARTIALLY_FAILED = "partially_failed"
    ALL_FAILED = "all_failed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JournalError(Exception):
    """The journal cannot be used (unreadable, wrong schema, ...)."""


class JournalBusyError(JournalError):
    """Another process holds the journal (a run of the same plan is in progress)."""


class JournalMismatchError(JournalError):
    """The journal was written for a different plan: a line it recorded differs.

    Attributes:
        line: The first plan line that differs from the recorded one (None: unknown).
    """

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class LeaseLostError(JournalError):
    """This worker no longer holds the lease on a line: another worker took it over.

    Raised by a shared journal's guarded writes (and its lease check right
    before a create): the line must not be worked any further by this worker.

    Attributes:
        line: The plan line whose lease was lost.
    """

    def __init__(self, message: str, *, line: int) -> None:
        super().__init__(message)
        self.line = line


@attrs.frozen
class LineRecord:
    """One row of the journal.

    Attributes:
        line: The 1-based line number in the plan file.
        kind: The plan line's kind, or None for an invalid line.
        state: One of the :class:`State` values.
        task_id: The task id once known.
        result_code: The failed task's resultCode.
        error_type: A short grouping key of the error (class and business code).
        error: The error message (secrets masked).
        attempts: How many times the line was marked submitting.
        outcome: How its job or share task ended (an :class:`Outcome`), or None.
        failed_files: The ids of the files that failed (partial or whole failures).
        download_url: The package's download link (its query holds a token:
            mask it before printing, see ``_mask.mask_url``).
    """

    line: int
    kind: str | None
    state: str
    task_id: str | None
    result_code: str | None
    error_type: str | None
    error: str | None
    attempts: int
    outcome: str | None = None
    failed_files: tuple[str, ...] = ()
    download_url: str | None = attrs.field(default=None, repr=False)


class ReconciliationRow(NamedTuple):
    """What a reconciliation reads of one in-doubt line or line holding a task id.

    Attributes:
        line: The plan line number.
        kind: The line's kind (None for an invalid line).
        state: Its state.
        task_id: Its task id, if any.
        submitting_at: When it was last marked "submitting" (this machine's clock).
        changed_at: When it last changed (this machine's clock).
        clock_offset: The service's clock minus ours at the "submitting"
            mark, in seconds (None: unknown).
        fence_until: For a line taken over from a stopped worker while it was
            "submitting": until when (this machine's clock) a create that worker
            may still send would be accepted by the service; the line must not
            be declared not created before then (None: no such fence).
    """

    line: int
    kind: str | None
    state: str
    task_id: str | None
    submitting_at: datetime | None
    changed_at: datetime | None
    clock_offset: float | None
    fence_until: datetime | None = None


@attrs.frozen
class Claim:
    """The lines one claim of a shared journal gave this worker (its lease held on each).

    Attributes:
        pending: Lines to submit.
        submitted: Lines holding a task id to wait on (taken over from a
            stopped worker, or resumed).
        in_doubt: Lines a stopped worker left "submitting": now in doubt,
            fenced (see :attr:`ReconciliationRow.fence_until`), for the
            reconciliation to settle.
    """

    pending: tuple[int, ...] = ()
    submitted: tuple[LineRecord, ...] = ()
    in_doubt: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the claim gave nothing."""
        return not (self.pending or self.submitted or self.in_doubt)


#: ``(line, line_hash, kind, error)`` of one plan line, as a journal records it.
PlanEntry = tuple[int, str, str | None, str | None]


class Journal(Protocol):
    """What a bulk run needs from a journal backend.

    Every method commits before returning. The transitions that guard against
    sending a create twice (:meth:`mark_submitting`, :meth:`mark_submitted`,
    :meth:`apply_reconciliation`, :meth:`mark_interrupted_in_doubt`) must be
    durable when they return; losing the others only means a finished task
    is looked up once more on the next run.
    """

    @property
    def location(self) -> str:
        """Where the journal lives, for messages (a path, a URL without secrets)."""
        ...

    @property
    def is_new(self) -> bool:
        """True while the journal holds no plan yet."""
        ...

    def close(self) -> None:
        """Release the journal (and any lock on it)."""

    # ------------------------------------------------------------------ plan

    def initialize(self, *, plan_hash: str, plan_name: str, lines: Iterable[PlanEntry]) -> None:
        """Record a plan in a new journal (invalid lines as ``invalid``), atomically."""

    def check_plan(self, plan_hash: str) -> None:
        """Raise :class:`JournalMismatchError` when the journal holds another plan."""

    def line_hashes(self) -> dict[int, str]:
        """``{line: line_hash}`` of every recorded plan line."""
        ...

    def extend_plan(self, *, plan_hash: str, plan_name: str, lines: Iterable[PlanEntry]) -> None:
        """Record lines appended at the end of the plan (as in :meth:`initialize`), atomically."""

    # ------------------------------------------------------------------ runs

    def begin_run(self) -> int:
        """Record the start of a run and return its number."""
        ...

    def end_run(self, run: int, *, outcome: str, requests: int) -> None:
        """Record how run number ``run`` ended (completed, interrupted, aborted)."""

    # ------------------------------------------------------------------ resume

    def mark_interrupted_in_doubt(self) -> list[int]:
        """Turn lines left in ``submitting`` into ``in_doubt``; return their numbers."""
        ...

    def last_activity(self, state: str | None = None) -> datetime | None:
        """When a line (of ``state``, or any) last changed, or None."""
        ...

    def reconciliation_rows(self) -> list[ReconciliationRow]:
        """The in-doubt lines and the lines holding a task id, by line number."""
        ...

    def apply_reconciliation(self, matched: dict[int, str], not_created: Iterable[int]) -> None:
        """Matched in-doubt lines become ``submitted``, proven not created ``pending``."""

    def reset_in_doubt(self) -> int:
        """Put every ``in_doubt`` line back to ``pending``; return how many."""
        ...

    def reset_rejected(self) -> int:
        """Put failed lines without a task id back to ``pending``; return how many."""
        ...

    # ------------------------------------------------------------------ transitions

    def mark_submitting(self, line: int, *, clock_offset: float | None = None) -> None:
        """Durably record that ``line``'s create is about to be sent."""

    def mark_submitted(self, line: int, task_id: str) -> None:
        """Durably record the task id the create returned for ``line``."""

    def mark_not_sent(self, line: int, *, error_type: str, error: str) -> None:
        """Put ``line`` back to ``pending``: its create provably was not acted on."""

    def mark_finished(
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
        """Record the end of a line (succeeded, failed or in doubt), and how its job ended."""

    def note_error(self, line: int, *, error_type: str, error: str) -> None:
        """Record an error on a line without changing its state (a lost wait)."""

    # ------------------------------------------------------------------ queries

    def lines_in(self, state: str) -> list[int]:
        """The line numbers in ``state``, ascending."""
        ...

    def records(self, state: str | None = None) -> Iterator[LineRecord]:
        """The rows (of one state, or all), by line number."""
        ...

    def counts(self) -> dict[str, int]:
        """The number of lines per state."""
        ...

    def line_times(self) -> dict[int, tuple[datetime | None, datetime | None, datetime | None]]:
        """``{line: (submitting_at, submitted_at, finished_at)}`` for the reports."""
        ...

    def failure_groups(self) -> list[tuple[str, int]]:
        """``(reason, count)`` of the failed and invalid lines, most frequent first."""
        ...

    def outcome_counts(self) -> dict[str, int]:
        """The number of finished lines per :class:`Outcome` (lines without one left out)."""
        ...
