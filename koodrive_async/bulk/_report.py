"""The report of a plan: one row per plan line, from its journal (pure over the journal).

Owns :class:`ReportRow` (what ``koodrive-async report`` and ``run --report``
show of a line, with its attempts history: the task ids of the attempts
before the last one, and in JSON every attempt), the verdict words rows
use, :func:`report_rows` (every row, or the failed ones) and
:func:`row_from_record` (one row, as a run finishes a line). Rows carry
masked texts only: the journal never holds a secret, and the error texts are
masked again here since a row may be written anywhere.

Verdicts (the ``verdict`` column): ``succeeded``; ``failed`` (the task ran and
FAILED); ``refused`` (the create was refused: nothing was created); ``in_doubt``
(possibly created); ``running`` (submitted, not seen finished); ``not_started``;
``invalid`` (a plan line that could not be read).

Must never import: ``cli/``, ``rich``, ``argparse``, a journal backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import attrs

from ._journal import AttemptRecord, Journal, LineRecord, State, SyncJournal
from ._mask import mask
from ._meanings import code_of, meaning

__all__ = [
    "ATTEMPT_FIELDS",
    "FIELDS",
    "ReportRow",
    "Verdict",
    "collect_rows",
    "report_rows",
    "row_from_record",
    "verdict_of",
]


class Verdict:
    """The verdict words of a report row (plain strings)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"
    IN_DOUBT = "in_doubt"
    RUNNING = "running"
    NOT_STARTED = "not_started"
    INVALID = "invalid"


#: The columns of a row, in order (CSV header, JSON keys).
FIELDS = (
    "line",
    "kind",
    "state",
    "verdict",
    "task_id",
    "code",
    "meaning",
    "error",
    "attempts",
    "submitting_at",
    "submitted_at",
    "finished_at",
    "outcome",
    "failed_files",
    "sent_files",
    "previous_task_ids",
)

#: The keys of one attempt in a JSON row's ``history``.
ATTEMPT_FIELDS = (
    "attempt",
    "state",
    "task_id",
    "outcome",
    "code",
    "failed_files",
    "sent_files",
    "submitting_at",
    "finished_at",
)

_TimeTriple = tuple[datetime | None, datetime | None, datetime | None]


def verdict_of(record: LineRecord) -> str:
    """The verdict word of a journal row."""
    state = record.state
    if state == State.FAILED:
        return Verdict.FAILED if record.task_id else Verdict.REFUSED
    if state in (State.IN_DOUBT, State.SUBMITTING):
        return Verdict.IN_DOUBT
    return {
        State.SUCCEEDED: Verdict.SUCCEEDED,
        State.SUBMITTED: Verdict.RUNNING,
        State.PENDING: Verdict.NOT_STARTED,
        State.INVALID: Verdict.INVALID,
    }.get(state, state)


@attrs.frozen
class ReportRow:
    """One plan line in a report.

    Attributes:
        line: The plan line number.
        kind: The line's kind (None: invalid line).
        state: The journal state.
        verdict: One of the :class:`Verdict` words.
        task_id: The task id, once known.
        code: A failed task's resultCode, or a refused create's business code.
        meaning: What the docs say the code means (None: undocumented).
        error: The error text, masked.
        attempts: How many times the line was sent.
        submitting_at, submitted_at, finished_at: When (this machine's clock).
        outcome: How its job or share task ended (``bulk.Outcome``), or None.
        failed_files: The ids of its failed files (partial or whole failures).
        sent_files: The files its current (or, pending, its next) attempt
            sends, for a retry of a partial failure; empty: the whole line.
        history: Every attempt, oldest first (see ``Journal.attempts``).
    """

    line: int
    kind: str | None
    state: str
    verdict: str
    task_id: str | None
    code: str | None
    meaning: str | None
    error: str | None
    attempts: int
    submitting_at: datetime | None = None
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: str | None = None
    failed_files: tuple[str, ...] = ()
    sent_files: tuple[str, ...] = ()
    history: tuple[AttemptRecord, ...] = ()

    @property
    def previous_task_ids(self) -> tuple[str, ...]:
        """The task ids the attempts before the line's current task made, oldest first."""
        return tuple(
            a.task_id for a in self.history if a.task_id is not None and a.task_id != self.task_id
        )

    @property
    def retried(self) -> bool:
        """True when the line was sent more than once."""
        return len(self.history) > 1 or self.attempts > 1

    @property
    def failed(self) -> bool:
        """True for the lines a report's ``--failed`` lists (failed, refused, invalid)."""
        return self.state in (State.FAILED, State.INVALID)

    @property
    def duration(self) -> float | None:
        """Seconds from the create being sent to the verdict, when both are known."""
        if self.submitting_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.submitting_at).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-ready values (times as ISO 8601), in :data:`FIELDS` order."""
        values = attrs.asdict(self, recurse=False)
        for key in ("submitting_at", "submitted_at", "finished_at"):
            values[key] = _iso(values[key])
        values["failed_files"] = list(self.failed_files)
        values["sent_files"] = list(self.sent_files)
        values["previous_task_ids"] = list(self.previous_task_ids)
        return {key: values[key] for key in FIELDS}

    def history_dicts(self) -> list[dict[str, Any]]:
        """Every attempt as JSON-ready values (:data:`ATTEMPT_FIELDS`), oldest first."""
        return [
            {
                "attempt": a.attempt,
                "state": a.state,
                "task_id": a.task_id,
                "outcome": a.outcome,
                "code": code_of(a.result_code, a.error_type),
                "failed_files": list(a.failed_files),
                "sent_files": list(a.sent_files),
                "submitting_at": _iso(a.submitting_at),
                "finished_at": _iso(a.finished_at),
            }
            for a in self.history
        ]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def row_from_record(
    record: LineRecord,
    times: _TimeTriple = (None, None, None),
    history: tuple[AttemptRecord, ...] = (),
) -> ReportRow:
    """The report row of one journal row (and its times and attempts)."""
    code = code_of(record.result_code, record.error_type)
    error = record.error
    return ReportRow(
        line=record.line,
        kind=record.kind,
        state=record.state,
        verdict=verdict_of(record),
        task_id=record.task_id,
        code=code,
        meaning=meaning(code),
        error=str(mask(error)) if error is not None else None,
        attempts=record.attempts,
        submitting_at=times[0],
        submitted_at=times[1],
        finished_at=times[2],
        outcome=record.outcome,
        failed_files=record.failed_files,
        sent_files=record.retry_files,
        history=history,
    )


def report_rows(journal: SyncJournal, *, failed_only: bool = False) -> Iterator[ReportRow]:
    """The report of a journal's plan, by line number.

    Args:
        journal: The journal.
        failed_only: Only the failed, refused and invalid lines.

    Yields:
        One row per plan line.
    """
    times = journal.line_times()
    history: dict[int, list[AttemptRecord]] = {}
    for attempt in journal.attempts():
        history.setdefault(attempt.line, []).append(attempt)
    for record in journal.records():
        row = row_from_record(
            record,
            times.get(record.line, (None, None, None)),
            tuple(history.get(record.line, ())),
        )
        if not failed_only or row.failed:
            yield row


async def collect_rows(journal: Journal, *, failed_only: bool = False) -> list[ReportRow]:
    """The report of a journal's plan, by line number, through the async interface.

    The whole plan, every worker's lines (a PostgreSQL journal shared by many).

    Args:
        journal: The open journal.
        failed_only: Only the failed, refused and invalid lines.

    Returns:
        One row per plan line.
    """
    times = await journal.line_times()
    history: dict[int, list[AttemptRecord]] = {}
    for attempt in await journal.attempts():
        history.setdefault(attempt.line, []).append(attempt)
    rows = (
        row_from_record(
            record,
            times.get(record.line, (None, None, None)),
            tuple(history.get(record.line, ())),
        )
        for record in await journal.records()
    )
    return [row for row in rows if not failed_only or row.failed]
