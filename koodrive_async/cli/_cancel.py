"""The ``cancel PLAN`` command: cancel the plan's batch jobs still running, and record it.

Owns the command around :func:`koodrive_async.bulk.cancel_plan`: the plan and
its existing journal (never a new one), the session, and what is printed
(one line per job line dealt with, then the counts; ``--json``: one object
per line). Exit codes: 0 every running job was cancelled or had ended; 1 some
could not be cancelled (they stay running in the journal); 2 usage (no
journal, a run of the plan holds it, another plan's journal).

Must never import: ``rich``, ``argparse`` (it gets its values as arguments).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from ..bulk import (
    JournalBusyError,
    JournalError,
    PlanError,
    SQLiteJournal,
    cancel_plan,
    default_journal_path,
    load_plan,
)
from ..bulk._mask import mask
from ._codes import EXIT_FAILED, EXIT_OK, UsageError
from ._connect import Connection, open_session

__all__ = ["cancel_command"]


def _open_journal(path: Path) -> SQLiteJournal:
    if not path.exists():
        raise UsageError(
            f"no journal at {path}: the plan has not been run yet (or pass --journal PATH)"
        )
    try:
        return SQLiteJournal.open(path)
    except JournalBusyError as exc:
        raise UsageError(
            f"{exc}; stop that run first (Ctrl-C), then cancel: the run would wait for the "
            "jobs again otherwise"
        ) from exc
    except JournalError as exc:
        raise UsageError(str(exc)) from exc


async def cancel_command(
    plan_path: Path,
    *,
    journal: Path | None,
    json_output: bool,
    connection: Connection,
    out: IO[str],
) -> int:
    """``cancel PLAN [--journal J] [--json]``.

    Returns:
        0 when every running job was cancelled (or had ended), 1 otherwise.

    Raises:
        UsageError: Bad plan, no journal, or one in use or of another plan.
    """
    try:
        plan = load_plan(plan_path)
    except PlanError as exc:
        raise UsageError(str(exc)) from exc
    with _open_journal(journal or default_journal_path(plan_path)) as opened:
        session, _, close = await open_session(connection)
        try:
            result = await cancel_plan(plan, opened, session)
        except JournalError as exc:
            raise UsageError(str(exc)) from exc
        finally:
            await close()
        records = {r.line: r for r in opened.records()}

    def emit(line: int, what: str, text: str) -> None:
        record = records.get(line)
        task_id = record.task_id if record is not None else None
        if json_output:
            data = {
                "line": line,
                "action": what,
                "task_id": task_id,
                "state": record.state if record is not None else None,
                "outcome": record.outcome if record is not None else None,
            }
            out.write(json.dumps(mask(data)) + "\n")
        else:
            out.write(mask(f"line {line}: job {task_id} {text}") + "\n")

    for line in result.cancelled:
        emit(line, "cancelled", "cancelled")
    for line in result.finished:
        record = records.get(line)
        ended = record.outcome or record.state if record is not None else "?"
        emit(line, "finished", f"had already ended ({ended})")
    for line, error in result.errors:
        emit(line, "error", f"could not be cancelled: {error}")
    if not json_output:
        out.write(
            f"{len(result.cancelled)} cancelled, {len(result.finished)} had already ended, "
            f"{len(result.errors)} could not be cancelled"
            + (
                f"; {len(result.not_cancellable)} line(s) of other kinds still running (only "
                "batch jobs can be cancelled)"
                if result.not_cancellable
                else ""
            )
            + (
                f"; {len(result.in_doubt)} job line(s) in doubt (no job id known: run the plan "
                "again to reconcile them)"
                if result.in_doubt
                else ""
            )
            + "\n"
        )
    return EXIT_FAILED if result.errors else EXIT_OK
