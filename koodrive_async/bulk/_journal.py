"""The journal interface: what a bulk run needs to remember about each plan line.

Owns the line :class:`State` machine, :class:`LineRecord` (one line as the
runner and the reports see it), :class:`ReconciliationRow` and the
:class:`Journal` protocol, the operations the runner, the reconciliation and
the summary call. Backends implement it (the SQLite one is ``_sqlite.py``,
through ``_sync_adapter.py``; the PostgreSQL one is ``_postgres.py``) so that
the runner never knows where the rows live.

Per plan line the journal holds a state::

    pending ──► submitting ──► submitted(task id) ──► succeeded
                    │                    └──────────► failed
                    ├──► failed       (the create was refused: nothing was created)
                    ├──► pending      (provably not sent: could not connect, the
                    │                  token provider failed, the service asked
                    │                  to wait longer than the policy allows)
                    └──► in_doubt     (no answer, or one that does not prove the
                                       server did nothing: the task may exist)

A line is sent again only by a new *attempt* (a refused create with
``--retry-rejected``, an in-doubt line proven not created or forced, a task
the service reported FAILED with ``--retry-failed``); the journal keeps one
:class:`AttemptRecord` per attempt (which task it made and how it ended),
and a line retried after a partial failure remembers the files its next
create sends (:attr:`LineRecord.retry_files`).

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

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import NamedTuple, Protocol

import attrs

__all__ = [
    "AttemptRecord",
    "Claim",
    "Journal",
    "JournalBusyError",
    "JournalError",
    "JournalMismatchError",
    "LeaseLostError",
    "LineRecord",
    "Outcome",
    "Pacer",
    "PlanCounts",
    "PlanEntry",
    "ReconciliationRow",
    "State",
    "SyncJournal",
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
    """This worker no longer holds the lease on a line (another worker took it over).

    Raised by a guarded write or a lease check of a many-worker journal: the
    line is another worker's now, so this one must not send its create or
    record anything more about it.

    Attributes:
        line: The line whose lease was lost.
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
        retry_files: The file ids the line's next (or current) create sends,
            when it is a retry of a partial failure; empty: the whole line.
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
    retry_files: tuple[str, ...] = ()
    #: The line's attempts, oldest first, when whoever made the record read them
    #: (the run's records of finished lines do for a progress that asks for
    #: them: ``Progress.wants_history``); empty otherwise.
    history: tuple[AttemptRecord, ...] = attrs.field(default=(), repr=False)


@attrs.frozen
class AttemptRecord:
    """One attempt of a plan line: one "submitting" mark and what became of it.

    Attributes:
        line: The plan line number.
        attempt: Its number (1 for the first; the line's ``attempts`` count
            when it was made).
        state: The line's state when the attempt last changed: ``submitting``,
            ``submitted``, ``succeeded``, ``failed``, ``in_doubt``, or
            ``pending`` (provably not sent, or proven not created).
        task_id: The task it made, once known.
        outcome: How its job or share task ended (an :class:`Outcome`), or None.
        result_code: The failed task's resultCode.
        error_type: A short grouping key of its error.
        error: Its error text (masked).
        failed_files: The ids of its failed files.
        sent_files: The file ids its create sent; empty: the whole line.
        submitting_at: When it was marked submitting (this machine's clock).
        submitted_at: When its task id was recorded.
        finished_at: When its end was recorded.
        download_url: A package's link (its query holds a token: mask it).
    """

    line: int
    attempt: int
    state: str
    task_id: str | None = None
    outcome: str | None = None
    result_code: str | None = None
    error_type: str | None = None
    error: str | None = None
    failed_files: tuple[str, ...] = ()
    sent_files: tuple[str, ...] = ()
    submitting_at: datetime | None = None
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
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
        retry_files: The files its current attempt sent (empty: the whole
            line), to rebuild the body that attempt sent.
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
    #: A line taken over from a stopped worker (many-worker journals) may be
    #: declared not created only after this time (this machine's clock): any
    #: create that worker could still send then carries an X-Date the service
    #: refuses. None: no such bound (the line's own process is gone).
    fence_until: datetime | None = None
    retry_files: tuple[str, ...] = ()


#: ``(line, line_hash, kind, error)`` of one plan line, as a journal records it.
PlanEntry = tuple[int, str, str | None, str | None]


class SyncJournal(Protocol):
    """A journal backend with blocking methods (SQLite); ``as_async`` wraps it for the runner.

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

    def reset_failed(self) -> int:
        """Put the lines whose task the service reported FAILED back to ``pending``.

        Only the lines ``_retry.retryable`` accepts (never an in-doubt,
        refused or cancelled line). Their finished attempt stays in
        :meth:`attempts`; after a partial failure the line's ``retry_files``
        become the failed files (``_retry.next_files``). Returns how many.
        """
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

    def finished_times(self, limit: int) -> list[tuple[int, datetime, datetime]]:
        """``(line, submitted_at, finished_at)`` of the lines that finished last, newest first.

        At most ``limit`` lines of each kind, and only lines with both times:
        a bounded read (an index range per kind), whatever the plan's size.
        """
        ...

    def failure_groups(self) -> list[tuple[str, int]]:
        """``(reason, count)`` of the failed and invalid lines, most frequent first."""
        ...

    def outcome_counts(self) -> dict[str, int]:
        """The number of finished lines per :class:`Outcome` (lines without one left out)."""
        ...

    def attempts(self, line: int | None = None) -> list[AttemptRecord]:
        """Every attempt (of ``line``, or of every line), by line then attempt number."""


class Pacer(Protocol):
    """Paces the creates of a run (this process's, or one budget shared by every worker)."""

    async def acquire(self) -> object:
        """Wait for the next create's turn."""

    async def hold(self, seconds: float) -> float:
        """A 429 asked to wait ``seconds``: hold every create back until then.

        Returns the seconds the hold now has left (a longer one may be in force).
        """


@attrs.frozen
class Claim:
    """The lines a worker took from the journal with one :meth:`Journal.claim`.

    Attributes:
        pending: Lines to submit (the worker now holds their lease).
        submitted: Lines holding a task id to wait on (resumed, or taken over
            from a stopped worker).
        in_doubt: Lines taken over in "submitting" from a stopped worker: now
            in doubt, for the reconciliation.
    """

    pending: tuple[int, ...] = ()
    submitted: tuple[LineRecord, ...] = ()
    in_doubt: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        """True when nothing was claimed."""
        return not (self.pending or self.submitted or self.in_doubt)


@attrs.frozen
class PlanCounts:
    """The whole plan at one moment: lines per state, and how many each worker holds.

    What :meth:`Journal.plan_counts` reads in one aggregate query, for a
    progress display of a plan that many workers share.

    Attributes:
        states: Lines per :class:`State` (every line of the plan, every worker's).
        holders: ``{worker id: lines it holds under a live lease}`` (empty for
            a one-machine journal).
    """

    states: Mapping[str, int] = attrs.field(factory=dict)
    holders: Mapping[str, int] = attrs.field(factory=dict)

    def count(self, state: str) -> int:
        """Lines in ``state``."""
        return int(self.states.get(state, 0))

    @property
    def total(self) -> int:
        """Lines of the plan to bring to an end (every line but the invalid ones)."""
        return sum(self.states.values()) - self.count(State.INVALID)

    @property
    def finished(self) -> int:
        """Lines with a verdict: succeeded, failed or in doubt."""
        return sum(self.count(s) for s in (State.SUCCEEDED, State.FAILED, State.IN_DOUBT))


class Journal(Protocol):
    """What a bulk run needs from a journal backend (the runner's view: every call awaited).

    The same operations as :class:`SyncJournal`, awaited, plus what many
    workers sharing one plan need: :meth:`claim` with leases, :meth:`renew`,
    :meth:`check_lease` (the guard right before each attempt of a create) and
    :meth:`release`. A one-machine backend (SQLite, through
    :func:`~._sync_adapter.as_async`) holds the whole journal exclusively, so
    its claims hand out everything at once and its leases never expire.

    Every method commits before returning; the transitions that guard against
    sending a create twice (:meth:`mark_submitting`, :meth:`mark_submitted`,
    :meth:`apply_reconciliation`, :meth:`mark_interrupted_in_doubt`) are
    durable when they return. A guarded write of a line this worker no longer
    holds raises :class:`LeaseLostError`.
    """

    @property
    def location(self) -> str:
        """Where the journal lives, for messages (a path, a URL without its password)."""
        ...

    @property
    def worker_id(self) -> str:
        """This worker's name in the journal (``local`` for a one-machine journal)."""
        ...

    def shared_pacer(self, rate: float | None) -> Pacer | None:
        """A pace of ``rate`` creates per second shared by every worker of the plan, or None.

        With ``rate`` None, the pacer shares only the holds of 429s. None for a
        one-machine journal: the run paces itself.
        """
        ...

    @property
    def lease(self) -> float | None:
        """Seconds a claim's lease lasts (renewed while the worker runs), or None: no expiry."""
        ...

    async def close(self) -> None:
        """Release the journal (its leases, locks and connections)."""

    # ------------------------------------------------------------------ plan

    def attach_lock(self) -> AbstractAsyncContextManager[None]:
        """Held while a plan is loaded or checked, so that workers load it once."""
        ...

    async def is_new(self) -> bool:
        """True while the journal holds no plan yet."""
        ...

    async def initialize(
        self, *, plan_hash: str, plan_name: str, lines: Iterable[PlanEntry]
    ) -> None:
        """As :meth:`SyncJournal.initialize`."""

    async def line_hashes(self) -> dict[int, str]:
        """As :meth:`SyncJournal.line_hashes`."""
        ...

    async def extend_plan(
        self, *, plan_hash: str, plan_name: str, lines: Iterable[PlanEntry]
    ) -> None:
        """As :meth:`SyncJournal.extend_plan`."""

    # ------------------------------------------------------------------ runs

    async def begin_run(self) -> int:
        """As :meth:`SyncJournal.begin_run`."""
        ...

    async def end_run(self, run: int, *, outcome: str, requests: int) -> None:
        """As :meth:`SyncJournal.end_run`."""

    # ------------------------------------------------------------------ work

    async def claim(self, limit: int) -> Claim:
        """Take up to ``limit`` lines to work on, under this worker's lease."""
        ...

    async def renew(self) -> bool:
        """Extend this worker's leases; False when one was lost to another worker."""
        ...

    async def check_lease(self, line: int) -> None:
        """Raise :class:`LeaseLostError` unless this worker holds a live lease on ``line``."""

    async def next_expiry(self) -> float | None:
        """Seconds until a lease another worker holds on unfinished work expires, or None."""
        ...

    async def release(self) -> None:
        """Give back the leases of lines this worker holds but did not start."""

    # ------------------------------------------------------------------ resume

    async def mark_interrupted_in_doubt(self) -> list[int]:
        """As :meth:`SyncJournal.mark_interrupted_in_doubt` (this worker's lines)."""
        ...

    async def last_activity(self, state: str | None = None) -> datetime | None:
        """As :meth:`SyncJournal.last_activity`."""
        ...

    async def reconciliation_rows(self) -> list[ReconciliationRow]:
        """As :meth:`SyncJournal.reconciliation_rows`."""
        ...

    async def apply_reconciliation(
        self, matched: dict[int, str], not_created: Iterable[int]
    ) -> list[int]:
        """As :meth:`SyncJournal.apply_reconciliation`; returns the lines now pending and held.

        Only those may be sent again by the caller: with many workers, a line
        another reconciliation settled first is not among them.
        """
        ...

    async def reset_in_doubt(self) -> int:
        """As :meth:`SyncJournal.reset_in_doubt`."""
        ...

    async def reset_rejected(self) -> int:
        """As :meth:`SyncJournal.reset_rejected`."""
        ...

    async def reset_failed(self) -> int:
        """As :meth:`SyncJournal.reset_failed` (``--retry-failed``)."""
        ...

    # ------------------------------------------------------------------ transitions

    async def mark_submitting(
        self, line: int, *, clock_offset: float | None = None
    ) -> float | None:
        """As :meth:`SyncJournal.mark_submitting` (guarded by the lease).

        Returns the seconds the plan's shared 429 hold still has (read in the
        same statement), or None when the backend shares none.
        """

    async def mark_submitted(self, line: int, task_id: str) -> None:
        """As :meth:`SyncJournal.mark_submitted`."""

    async def mark_not_sent(self, line: int, *, error_type: str, error: str) -> None:
        """As :meth:`SyncJournal.mark_not_sent` (guarded by the lease)."""

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
        """As :meth:`SyncJournal.mark_finished` (guarded by the lease)."""

    async def note_error(self, line: int, *, error_type: str, error: str) -> None:
        """As :meth:`SyncJournal.note_error`."""

    # ------------------------------------------------------------------ queries

    async def lines_in(self, state: str) -> list[int]:
        """As :meth:`SyncJournal.lines_in` (the whole plan, every worker's lines)."""
        ...

    async def records(self, state: str | None = None) -> list[LineRecord]:
        """As :meth:`SyncJournal.records`, as a list."""
        ...

    async def counts(self) -> dict[str, int]:
        """As :meth:`SyncJournal.counts`."""
        ...

    async def line_times(
        self,
    ) -> dict[int, tuple[datetime | None, datetime | None, datetime | None]]:
        """As :meth:`SyncJournal.line_times`."""
        ...

    async def finished_times(self, limit: int) -> list[tuple[int, datetime, datetime]]:
        """As :meth:`SyncJournal.finished_times`."""
        ...

    async def failure_groups(self) -> list[tuple[str, int]]:
        """As :meth:`SyncJournal.failure_groups`."""
        ...

    async def outcome_counts(self) -> dict[str, int]:
        """As :meth:`SyncJournal.outcome_counts`."""
        ...

    async def attempts(self, line: int | None = None) -> list[AttemptRecord]:
        """As :meth:`SyncJournal.attempts`."""
        ...

    async def holders(self) -> dict[str, int]:
        """``{worker id: lines it holds under a live lease}`` (empty for a one-machine journal)."""
        ...

    async def plan_counts(self) -> PlanCounts:
        """:meth:`counts` and :meth:`holders` together, in one cheap read (for progress)."""
        ...
