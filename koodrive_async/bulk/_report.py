"""The report of a plan: one row per plan line, from its journal (pure over the journal).

Owns :class:`ReportRow` (what ``koodrive-async report`` and ``run --report``
show of a line), the verdict words rows use, :func:`report_rows` (every row,
or the failed ones) and :func:`row_from_record` (one row, as a run finishes a
line). Rows carry masked texts only: the journal never holds a secret, and
the error texts are masked again here since a row may be written anywhere.

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

from ._journal import Journal, LineRecord, State, SyncJournal
from ._mask import mask
from ._meanings import code_of, meaning

__all__ = [
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
        values = attrs.asdict(self)
        for key in ("submitting_at", "submitted_at", "finished_at"):
            value = values[key]
            values[key] = value.isoformat() if value is not None else None
        values["failed_files"] = list(self.failed_files)
        return {key: values[key] for key in FIELDS}


def row_from_record(record: LineRecord, times: _TimeTriple = (None, None, None)) -> ReportRow:
    """The report row of one journal row (and its times)."""
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
    for record in journal.records():
        row = row_from_record(record, times.get(record.line, (None, None, None)))
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
    rows = (
        row_from_record(record, times.get(record.line, (None, None, None)))
        for record in await journal.records()
    )
    return [row for row in rows if not failed_only or row.failed]
