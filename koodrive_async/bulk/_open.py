"""Opening a journal by where it lives: a SQLite file, or a PostgreSQL URL for many workers.

Owns :func:`open_journal` (an async context manager giving the runner's async
:class:`~._journal.Journal`) and :func:`is_database_url`. The PostgreSQL
backend (``_postgres.py``, the ``koodrive-async[postgres]`` extra) is imported
only when a URL asks for it, so a one-machine run never needs its driver.

Must never import: ``cli/``, ``rich``, ``argparse``; a database driver only
through the backend's module, lazily.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

from ._journal import Journal, JournalError
from ._sqlite import SQLiteJournal, default_journal_path
from ._sync_adapter import SyncJournalAdapter

__all__ = ["DEFAULT_LEASE", "is_database_url", "open_journal"]

#: Seconds a worker's claim on a line lasts unless renewed (``--lease``).
DEFAULT_LEASE = 60.0

_URL_SCHEMES = ("postgresql://", "postgres://")
#: A libpq ``key=value`` connection string (``host=db dbname=plans ...``).
_CONNINFO = re.compile(r"^\s*[A-Za-z_]+\s*=")


def is_database_url(target: str | Path | None) -> bool:
    """True when ``target`` names a PostgreSQL journal, not a file.

    A ``postgresql://`` or ``postgres://`` URL (any case), or a libpq
    ``key=value`` connection string: never taken for a file name, which would
    put a password in a file name and give each machine a journal of its own.
    """
    if not isinstance(target, str):
        return False
    return target.strip().lower().startswith(_URL_SCHEMES) or bool(_CONNINFO.match(target))


@contextlib.asynccontextmanager
async def open_journal(
    target: str | Path | None,
    *,
    plan: str | Path | None = None,
    worker_id: str | None = None,
    lease: float = DEFAULT_LEASE,
    x_date_window: float | None = None,
    fence_margin: float | None = None,
) -> AsyncIterator[Journal]:
    """Open the journal at ``target`` for a run, and close it at the end.

    Args:
        target: A ``postgresql://`` URL (many workers share it), a SQLite
            file's path, or None for ``PLAN.journal.sqlite`` beside ``plan``.
        plan: The plan file (for the default SQLite path).
        worker_id: This worker's name in a PostgreSQL journal (default: host,
            process id and a random part).
        lease: Seconds a PostgreSQL claim lasts unless renewed.
        x_date_window: How old an X-Date the service accepts (default: the
            pages' 15 minutes): a line a stopped worker left "submitting" is
            declared not created only this long (plus ``fence_margin``) after
            that worker's lease ended.
        fence_margin: Seconds added to that window for the clocks' disagreement
            (default 120).

    Yields:
        The open journal.

    Raises:
        JournalError: It cannot be opened (busy, another schema, no driver).
        ValueError: Neither ``target`` nor ``plan`` was given.
    """
    if is_database_url(target):
        from ._postgres import PostgresJournal

        assert isinstance(target, str)
        from ._postgres import FENCE_MARGIN, X_DATE_WINDOW

        try:
            journal = await PostgresJournal.open(
                target,
                worker_id=worker_id,
                lease=lease,
                x_date_window=X_DATE_WINDOW if x_date_window is None else x_date_window,
                fence_margin=FENCE_MARGIN if fence_margin is None else fence_margin,
            )
        except ValueError as exc:
            raise JournalError(str(exc)) from None
        try:
            yield journal
        finally:
            await journal.close()
        return
    if target is None:
        if plan is None:
            raise ValueError("open_journal needs a target or the plan's path")
        target = default_journal_path(Path(plan))
    with SQLiteJournal.open(Path(target)) as sqlite:
        yield SyncJournalAdapter(sqlite)
