"""``report`` and ``run --report``: one row per plan line, as a table, JSON Lines or CSV.

Owns the three text forms of :class:`~koodrive_async.bulk._report.ReportRow`
(:func:`write_rows`), the ``report`` command (read the journal, print the
rows, optionally write the HTML page of ``_html.py``) and
:class:`ManifestProgress`, the :class:`~koodrive_async.bulk.Progress` that
``run --report FILE`` puts in front of the display: it writes each line's
row to FILE as the line finishes, flushed per line, so the file is a
manifest of the run even when the run is killed.

Must never import: ``argparse`` (options arrive as arguments), ``rich``.
"""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from ..bulk import (
    JournalBusyError,
    JournalError,
    LineRecord,
    Progress,
    RunStats,
    Stop,
    default_journal_path,
    open_journal,
)
from ..bulk._mask import mask
from ..bulk._report import FIELDS, ReportRow, collect_rows, row_from_record
from ._codes import EXIT_OK, UsageError

__all__ = ["FORMATS", "ManifestProgress", "RowWriter", "report_command", "row_format"]

#: The ``--format`` values of ``report``.
FORMATS = ("table", "jsonl", "csv")


def row_format(path: Path) -> str:
    """The format of a ``--report`` file, by its suffix (``.csv``: CSV, else JSON Lines)."""
    return "csv" if path.suffix.lower() == ".csv" else "jsonl"


def _cell(value: object) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return "" if value is None else str(value)


class RowWriter:
    """Writes report rows in one of :data:`FORMATS`, flushing after each."""

    def __init__(self, out: IO[str], fmt: str) -> None:
        self._out = out
        self._fmt = fmt
        self._csv = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
        self._started = False

    def header(self) -> None:
        """Write the header (CSV and table), once."""
        if self._started:
            return
        self._started = True
        if self._csv is not None:
            self._csv.writerow(FIELDS)
        elif self._fmt == "table":
            self._out.write(
                f"{'LINE':>6}  {'KIND':<8} {'VERDICT':<11} {'TASK ID':<20} {'CODE':<9} "
                "ATTEMPTS  DETAIL\n"
            )

    def write(self, row: ReportRow) -> None:
        """Write one row (masked) and flush."""
        self.header()
        data = mask(row.as_dict())
        if self._csv is not None:
            self._csv.writerow([_cell(data[k]) for k in FIELDS])
        elif self._fmt == "jsonl":
            # JSON holds every attempt; CSV and the table the earlier task ids.
            data["history"] = mask(row.history_dicts())
            self._out.write(json.dumps(data, ensure_ascii=False) + "\n")
        else:
            ended = data["outcome"] if data["outcome"] not in (None, "succeeded") else None
            earlier = data["previous_task_ids"]
            before = f"earlier tasks {' '.join(earlier)}" if earlier else None
            detail = " - ".join(t for t in (ended, data["meaning"], data["error"], before) if t)
            self._out.write(
                f"{row.line:>6}  {_cell(row.kind):<8} {row.verdict:<11} "
                f"{_cell(row.task_id) or '-':<20} {_cell(row.code) or '-':<9} "
                f"{row.attempts:>8}  {detail}\n"
            )
        self._out.flush()


class ManifestProgress:
    """``run --report FILE``: each finished line's row goes to FILE, then to ``inner``.

    A row's earlier attempts come with its record (``LineRecord.history``),
    which the run reads for it (``wants_history``).
    """

    #: The rows hold every attempt: the run reads them per finished line.
    wants_history = True

    def __init__(self, inner: Progress, writer: RowWriter) -> None:
        self._inner = inner
        self._writer = writer
        self._writer.header()

    def start(self, stats: RunStats) -> None:
        """Pass on."""
        self._inner.start(stats)

    def update(self) -> None:
        """Pass on."""
        self._inner.update()

    def line_done(self, record: LineRecord) -> None:
        """Write the line's row (finished now), then pass on."""
        now = datetime.now(UTC)
        self._writer.write(row_from_record(record, (None, None, now), record.history))
        self._inner.line_done(record)

    def message(self, text: str) -> None:
        """Pass on."""
        self._inner.message(text)

    def stopping(self, notice: Stop) -> None:
        """Pass on."""
        self._inner.stopping(notice)

    def stop(self) -> None:
        """Pass on."""
        self._inner.stop()


async def _read_report(
    target: Path | str, *, failed: bool
) -> tuple[list[ReportRow], list[ReportRow], str, dict[str, int]]:
    """``(rows shown, every row, where the journal is, {worker: lines held})``."""
    try:
        async with open_journal(target) as journal:
            every = await collect_rows(journal)
            holders = await journal.holders()
            location = journal.location
    except JournalBusyError as exc:
        raise UsageError(f"{exc}; report again when it ends") from exc
    except JournalError as exc:
        raise UsageError(str(exc)) from exc
    shown = [row for row in every if row.failed] if failed else every
    return shown, every, location, holders


def report_command(
    plan: Path,
    *,
    journal: Path | str | None,
    failed: bool,
    fmt: str,
    html: Path | None,
    out: IO[str],
    err: IO[str] | None = None,
) -> int:
    """``report PLAN [--journal J] [--failed] [--format F] [--html FILE]``.

    A PostgreSQL journal (``--journal postgresql://…``) shows the whole plan,
    every worker's lines, and which worker holds how many lines now (on
    standard error).

    Returns:
        0 (the report was written).

    Raises:
        UsageError: No journal, or one in use by a run (SQLite).
    """
    target: Path | str = journal if journal is not None else default_journal_path(plan)
    if isinstance(target, Path) and not target.exists():
        raise UsageError(
            f"no journal at {target}: the plan has not been run yet (or pass --journal PATH)"
        )
    rows, every, location, holders = asyncio.run(_read_report(target, failed=failed))
    if html is not None:
        from ._html import write_html

        write_html(html, every, plan_name=plan.name, journal_name=location)
    if holders and err is not None:
        for worker, count in sorted(holders.items()):
            err.write(f"worker {worker} holds {count} line(s)\n")
    writer = RowWriter(out, fmt)
    writer.header()
    for row in rows:
        writer.write(row)
    return EXIT_OK
