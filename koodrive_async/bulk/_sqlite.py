"""The SQLite journal: one file per plan, the embedded default backend of :class:`Journal`.

Owns the schema (versions and migrations, each when the journal is opened:
version 1, without ``clock_offset``, to 2; version 2, without the columns of
how a job ended, to 3; version 3, without the ``attempts`` history and
``retry_files``, to 4; a later version is refused), the durability levels
and the file lock.

Attempts: every "submitting" mark inserts a row in ``attempts`` (line,
attempt number, the files it sends) in the same transaction, and every later
transition of the line updates that row too (task id, state, how it ended),
so the table holds what each attempt did and which task did it, even when
the line is sent again. A reset (``reset_failed`` and the others) changes
only the line: the attempt it ends keeps its final state. The states and
the interface are in ``_journal.py``.

``submitting`` is committed *before* the create request is sent and the task id
right after the response, both with ``synchronous=FULL`` so that they survive
a power cut, not only a killed process. The reconciliation's decision is
committed in one durable transaction (:meth:`SQLiteJournal.apply_reconciliation`).
Lines the plan could not parse are recorded as ``invalid`` (only with
``--skip-invalid``).

The journal never holds the plan lines themselves (decompress lines carry
archive passwords): only line numbers, a hash per line computed with the
secrets redacted, the plan's hash, task ids, result codes and error texts,
and how each job or share task ended (``outcome``, ``failed_files``, and the
``download_url`` of a package: kept whole, since the link is what the
operator ran the line for; its query holds a token, so the journal file is as
private as the plan). Nothing about the credentials is stored.

The connection uses ``locking_mode=EXCLUSIVE``: while a run holds the journal,
a second run of the same plan is refused instead of submitting the same lines
again. The lock dies with the process, so a ``kill -9`` leaves nothing stale.

Must never import: ``cli/``, ``rich``, ``argparse``, the client's transport.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from ._journal import (
    AttemptRecord,
    JournalBusyError,
    JournalError,
    JournalMismatchError,
    LineRecord,
    PlanEntry,
    ReconciliationRow,
    State,
)
from ._plan import KINDS
from ._retry import next_files, retryable

__all__ = ["SCHEMA_VERSION", "SQLiteJournal", "default_journal_path"]

#: The schema this release writes. Versions 1 (no ``clock_offset``), 2 (no
#: ``outcome``, ``failed_files``, ``download_url``) and 3 (no ``attempts``
#: table, no ``retry_files``) are migrated to it when opened; a journal of a
#: later version is refused.
SCHEMA_VERSION = "4"
_READABLE_VERSIONS = frozenset({"1", "2", "3", SCHEMA_VERSION})


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lines (
    line          INTEGER PRIMARY KEY,  -- 1-based line number in the plan file
    line_hash     TEXT NOT NULL,        -- sha256 of the line, secrets redacted
    kind          TEXT,                 -- job | share | transfer | import (NULL if invalid)
    state         TEXT NOT NULL,
    task_id       TEXT,
    result_code   TEXT,                 -- the task's 18xxxxxx resultCode when it failed
    error_type    TEXT,                 -- short error class (+ business code) for grouping
    error         TEXT,                 -- the error message (never a token or a password)
    attempts      INTEGER NOT NULL DEFAULT 0,  -- times the line went to "submitting"
    submitting_at TEXT,
    clock_offset  REAL,                 -- service clock minus ours (s) then, NULL if unknown
    submitted_at  TEXT,
    finished_at   TEXT,
    updated_at    TEXT NOT NULL,
    outcome       TEXT,                 -- how a job or share task ended (bulk Outcome), or NULL
    failed_files  TEXT,                 -- JSON array of the ids of its failed files, or NULL
    download_url  TEXT,                 -- a package's link (its query holds a token), or NULL
    retry_files   TEXT                  -- JSON array of the files the next create sends, or NULL
);
CREATE INDEX IF NOT EXISTS lines_by_state ON lines (state);
-- The lines of a kind by when they finished: a rerun's first wave reads the newest.
CREATE INDEX IF NOT EXISTS lines_by_finish ON lines (kind, finished_at);
CREATE TABLE IF NOT EXISTS attempts (
    line          INTEGER NOT NULL,     -- the plan line
    attempt       INTEGER NOT NULL,     -- the line's attempts count when it was marked
    state         TEXT NOT NULL,        -- the line's state when the attempt last changed
    task_id       TEXT,
    outcome       TEXT,
    result_code   TEXT,
    error_type    TEXT,
    error         TEXT,
    failed_files  TEXT,                 -- JSON array, or NULL
    sent_files    TEXT,                 -- JSON array of the files it sent, NULL: the whole line
    download_url  TEXT,
    submitting_at TEXT,
    submitted_at  TEXT,
    finished_at   TEXT,
    PRIMARY KEY (line, attempt)
);
CREATE TABLE IF NOT EXISTS runs (
    run        INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    ended_at   TEXT,
    outcome    TEXT,                    -- completed | interrupted | aborted
    requests   INTEGER
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _offset(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    offset = float(value)
    return offset if math.isfinite(offset) else None


_COLUMNS = (
    "line, kind, state, task_id, result_code, error_type, error, attempts, outcome,"
    " failed_files, download_url, retry_files"
)

_ATTEMPT_COLUMNS = (
    "line, attempt, state, task_id, outcome, result_code, error_type, error, failed_files,"
    " sent_files, submitting_at, submitted_at, finished_at, download_url"
)

#: The current attempt of a line takes what the line now holds (run after
#: each transition, in its transaction). Parameters: the line, twice.
_SYNC_ATTEMPT = (
    "UPDATE attempts SET (state, task_id, outcome, result_code, error_type, error,"
    " failed_files, download_url, submitted_at, finished_at) = (SELECT state, task_id,"
    " outcome, result_code, error_type, error, failed_files, download_url, submitted_at,"
    " finished_at FROM lines WHERE lines.line = attempts.line)"
    " WHERE line = ? AND attempt = (SELECT attempts FROM lines WHERE line = ?)"
)

#: The attempt a "submitting" mark starts (after the line's update). Parameter: the line.
_NEW_ATTEMPT = (
    "INSERT OR REPLACE INTO attempts (line, attempt, state, sent_files, submitting_at)"
    " SELECT line, attempts, state, retry_files, submitting_at FROM lines WHERE line = ?"
)

#: Columns added by version 3, with their types, in the order they are added.
_V3_COLUMNS = (("outcome", "TEXT"), ("failed_files", "TEXT"), ("download_url", "TEXT"))


def _file_ids(value: object) -> tuple[str, ...]:
    """The failed file ids of a ``failed_files`` cell (a JSON array), () if unreadable."""
    if not isinstance(value, str):
        return ()
    try:
        ids = json.loads(value)
    except ValueError:
        return ()
    return tuple(str(i) for i in ids) if isinstance(ids, list) else ()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _attempt(row: tuple[object, ...]) -> AttemptRecord:
    line, attempt, state, task_id, outcome, result_code, error_type, error = row[:8]
    failed_files, sent_files, submitting_at, submitted_at, finished_at, download_url = row[8:]
    return AttemptRecord(
        line=int(line),  # type: ignore[call-overload]
        attempt=int(attempt),  # type: ignore[call-overload]
        state=str(state),
        task_id=_text(task_id),
        outcome=_text(outcome),
        result_code=_text(result_code),
        error_type=_text(error_type),
        error=_text(error),
        failed_files=_file_ids(failed_files),
        sent_files=_file_ids(sent_files),
        submitting_at=_parse_time(submitting_at),
        submitted_at=_parse_time(submitted_at),
        finished_at=_parse_time(finished_at),
        download_url=_text(download_url),
    )


def _record(row: tuple[object, ...]) -> LineRecord:
    line, kind, state, task_id, result_code, error_type, error, attempts = row[:8]
    outcome, failed_files, download_url, retry_files = row[8:]
    return LineRecord(
        line=int(line),  # type: ignore[call-overload]
        kind=kind,  # type: ignore[arg-type]
        state=str(state),
        task_id=task_id,  # type: ignore[arg-type]
        result_code=result_code,  # type: ignore[arg-type]
        error_type=error_type,  # type: ignore[arg-type]
        error=error,  # type: ignore[arg-type]
        attempts=int(attempts),  # type: ignore[call-overload]
        outcome=outcome if isinstance(outcome, str) else None,
        failed_files=_file_ids(failed_files),
        download_url=download_url if isinstance(download_url, str) else None,
        retry_files=_file_ids(retry_files),
    )


def _migrate(conn: sqlite3.Connection) -> str | None:
    """Bring a journal of an earlier schema version to :data:`SCHEMA_VERSION`.

    Runs inside :meth:`SQLiteJournal.open`'s transaction, so a migration is all or
    nothing. Judged by the columns present, not only by the recorded version:
    a journal created by an earlier release but never initialised has no
    version yet.

    Returns:
        The schema version now recorded (None for a journal holding no plan),
        or a later, unreadable version untouched.
    """
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = None if row is None else str(row[0])
    if version is not None and version not in _READABLE_VERSIONS:
        return version
    columns = {str(r[1]) for r in conn.execute("PRAGMA table_info(lines)").fetchall()}
    if "clock_offset" not in columns:
        # 1 -> 2: the clock offset at the "submitting" mark. Lines marked by a
        # version 1 release have none (unknown): their createTime bound is dropped.
        conn.execute("ALTER TABLE lines ADD COLUMN clock_offset REAL")
    for name, kind in _V3_COLUMNS:
        if name not in columns:
            # 2 -> 3: how a job or share task ended. Lines finished by an
            # earlier release have none (NULL: not recorded).
            conn.execute(f"ALTER TABLE lines ADD COLUMN {name} {kind}")
    if "retry_files" not in columns:
        # 3 -> 4: the attempts history. An earlier release kept only a line's
        # last attempt: it becomes the line's one known attempt (its number
        # the attempts count), as having sent the whole line.
        conn.execute("ALTER TABLE lines ADD COLUMN retry_files TEXT")
        conn.execute(
            "INSERT OR IGNORE INTO attempts (line, attempt, state, task_id, outcome, result_code,"
            " error_type, error, failed_files, download_url, submitting_at, submitted_at,"
            " finished_at) SELECT line, attempts, state, task_id, outcome, result_code,"
            " error_type, error, failed_files, download_url, submitting_at, submitted_at,"
            " finished_at FROM lines WHERE attempts > 0"
        )
    if version is not None and version != SCHEMA_VERSION:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))
        version = SCHEMA_VERSION
    return version


class SQLiteJournal:
    """The SQLite journal of one plan (implements :class:`~._journal.Journal`).

    Open it with :meth:`open`; it is a context manager. All methods commit
    before returning. The transitions that guard against double submission
    (:meth:`mark_submitting`, :meth:`mark_submitted`) are committed with
    ``synchronous=FULL``; the others with ``NORMAL`` since losing them only
    means a finished task is looked up once more on the next run.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._sync = ""

    @property
    def location(self) -> str:
        """The journal file's path, as text."""
        return str(self.path)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, path: str | Path) -> SQLiteJournal:
        """Open (creating if needed) the journal at ``path`` and lock it.

        Args:
            path: The journal file.

        Returns:
            The journal, holding an exclusive lock until :meth:`close`.

        Raises:
            JournalBusyError: Another process holds the journal.
            JournalError: The file is not a usable journal.
        """
        path = Path(path)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves so that each
            # transition is exactly one transaction.
            conn = sqlite3.connect(path, timeout=0.5, isolation_level=None)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open journal {path}: {exc}") from exc
        journal = cls(conn, path)
        try:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise JournalError(f"cannot switch journal {path} to WAL mode")
            # Take the write lock now, so that a concurrent run is refused before
            # it reads anything, and keep it for the life of the connection.
            conn.execute("BEGIN IMMEDIATE")
            # Not executescript(): it would commit first, releasing nothing but
            # splitting the schema creation from the lock acquisition.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            version = _migrate(conn)
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            conn.close()
            if "locked" in str(exc) or "busy" in str(exc):
                raise JournalBusyError(
                    f"journal {path} is in use by another run of this plan"
                ) from exc
            raise JournalError(f"cannot use journal {path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise JournalError(f"{path} is not a koodrive-async journal: {exc}") from exc
        except JournalError:
            conn.close()
            raise
        if version is not None and version != SCHEMA_VERSION:
            conn.close()
            raise JournalError(
                f"journal {path} has schema version {version}, which this release cannot read "
                f"(it reads versions {', '.join(sorted(_READABLE_VERSIONS))}): it was written "
                "by a later release"
            )
        return journal

    def close(self) -> None:
        """Close the connection and release the lock."""
        self._conn.close()

    def __enter__(self) -> SQLiteJournal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers

    def _synchronous(self, level: str) -> None:
        # PRAGMA synchronous applies per connection, between transactions.
        if self._sync != level:
            self._conn.execute(f"PRAGMA synchronous={level}")
            self._sync = level

    def _write(self, level: str, sql: str, params: Iterable[object] = ()) -> int:
        self._synchronous(level)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = self._conn.execute(sql, tuple(params))
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return cursor.rowcount

    def _write_line(self, level: str, line: int, sql: str, params: Iterable[object]) -> int:
        """One change of ``line``, and its current attempt following it, in one transaction."""
        self._synchronous(level)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = self._conn.execute(sql, tuple(params))
            self._conn.execute(_SYNC_ATTEMPT, (line, line))
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return cursor.rowcount

    def get_meta(self, key: str) -> str | None:
        """Return the meta value stored under ``key``, or None."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # ------------------------------------------------------------------ setup

    @property
    def is_new(self) -> bool:
        """True while the journal holds no plan yet."""
        return self.get_meta("plan_hash") is None

    def initialize(
        self,
        *,
        plan_hash: str,
        plan_name: str,
        lines: Iterable[PlanEntry],
    ) -> None:
        """Record a plan in a new journal, in one transaction.

        Args:
            plan_hash: The plan's content hash.
            plan_name: The plan file's name (informational).
            lines: ``(line, line_hash, kind, error)`` per plan line; a line
                with an error is stored as ``invalid``, the others as ``pending``.

        Raises:
            JournalError: The journal already holds a plan.
        """
        if not self.is_new:
            raise JournalError(f"journal {self.path} already holds a plan")
        now = _now()
        self._synchronous("FULL")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("schema_version", SCHEMA_VERSION),
                    ("plan_hash", plan_hash),
                    ("plan_name", plan_name),
                    ("created_at", now),
                ],
            )
            self._insert_lines(lines, now)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def extend_plan(self, *, plan_hash: str, plan_name: str, lines: Iterable[PlanEntry]) -> None:
        """Record lines appended at the end of the plan, and the plan's new hash, atomically.

        Args:
            plan_hash: The grown plan's content hash.
            plan_name: The plan file's name (informational).
            lines: ``(line, line_hash, kind, error)`` of the new lines only.

        Raises:
            JournalError: The journal holds no plan yet, or already has such a line.
        """
        if self.is_new:
            raise JournalError(f"journal {self.path} holds no plan to extend")
        now = _now()
        self._synchronous("FULL")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._insert_lines(lines, now)
            self._conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("plan_hash", plan_hash), ("plan_name", plan_name), ("extended_at", now)],
            )
            self._conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            self._conn.execute("ROLLBACK")
            raise JournalError(f"journal {self.path} already records such a line: {exc}") from exc
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def _insert_lines(self, lines: Iterable[PlanEntry], now: str) -> None:
        """Insert plan lines (inside the caller's transaction): valid pending, others invalid."""
        self._conn.executemany(
            "INSERT INTO lines (line, line_hash, kind, state, error, error_type, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    number,
                    line_hash,
                    kind,
                    State.INVALID if error is not None else State.PENDING,
                    error,
                    "invalid plan line" if error is not None else None,
                    now,
                )
                for number, line_hash, kind, error in lines
            ),
        )

    def check_plan(self, plan_hash: str) -> None:
        """Refuse a journal that belongs to another plan.

        Args:
            plan_hash: The content hash of the plan about to be run.

        Raises:
            JournalMismatchError: The journal was written for another plan.
        """
        stored = self.get_meta("plan_hash")
        if stored is not None and stored != plan_hash:
            name = self.get_meta("plan_name") or "another plan"
            raise JournalMismatchError(
                f"journal {self.path} belongs to a different plan ({name}, content hash "
                f"{stored[:12]}…, this plan {plan_hash[:12]}…); use another --journal path, "
                "or delete the journal to start this plan from scratch"
            )

    # ------------------------------------------------------------------ runs

    def begin_run(self) -> int:
        """Record the start of a run and return its number."""
        self._synchronous("NORMAL")
        self._conn.execute("BEGIN IMMEDIATE")
        cursor = self._conn.execute("INSERT INTO runs (started_at) VALUES (?)", (_now(),))
        self._conn.execute("COMMIT")
        return int(cursor.lastrowid or 0)

    def end_run(self, run: int, *, outcome: str, requests: int) -> None:
        """Record how run number ``run`` ended."""
        self._write(
            "NORMAL",
            "UPDATE runs SET ended_at = ?, outcome = ?, requests = ? WHERE run = ?",
            (_now(), outcome, requests, run),
        )

    # ------------------------------------------------------------------ resume

    def mark_interrupted_in_doubt(self) -> list[int]:
        """Turn lines left in ``submitting`` by an earlier run into ``in_doubt``.

        Returns:
            Their line numbers.
        """
        lines = self.lines_in(State.SUBMITTING)
        if lines:
            self._synchronous("FULL")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "UPDATE lines SET state = ?, error_type = ?, error = ?, updated_at = ?"
                    " WHERE state = ?",
                    (
                        State.IN_DOUBT,
                        "interrupted",
                        "the run stopped after the create request was sent (or about to be) "
                        "and before its answer was recorded: the task may or may not exist",
                        _now(),
                        State.SUBMITTING,
                    ),
                )
                self._conn.executemany(_SYNC_ATTEMPT, ((line, line) for line in lines))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return lines

    def last_activity(self, state: str | None = None) -> datetime | None:
        """Return when a line (of ``state``, or any) was last changed, or None."""
        if state is None:
            row = self._conn.execute("SELECT MAX(updated_at) FROM lines").fetchone()
        else:
            row = self._conn.execute(
                "SELECT MAX(updated_at) FROM lines WHERE state = ?", (state,)
            ).fetchone()
        return _parse_time(row[0] if row else None)

    def reconciliation_rows(self) -> list[ReconciliationRow]:
        """Return what a reconciliation needs: the in-doubt lines and those with a task id.

        Returns:
            One :class:`ReconciliationRow` per such line, by line number; the
            times are this machine's, ``clock_offset`` is the one recorded with
            ``submitting_at`` (None: unknown).
        """
        rows = self._conn.execute(
            "SELECT line, kind, state, task_id, submitting_at, updated_at, clock_offset,"
            " retry_files FROM lines WHERE state = ? OR task_id IS NOT NULL ORDER BY line",
            (State.IN_DOUBT,),
        ).fetchall()
        return [
            ReconciliationRow(
                int(r[0]),
                r[1],
                str(r[2]),
                r[3],
                _parse_time(r[4]),
                _parse_time(r[5]),
                _offset(r[6]),
                retry_files=_file_ids(r[7]),
            )
            for r in rows
        ]

    def apply_reconciliation(self, matched: dict[int, str], not_created: Iterable[int]) -> None:
        """Commit (durably, in one transaction) what a reconciliation decided.

        Args:
            matched: ``{line: task id}``: in-doubt lines whose task was found
                become ``submitted`` with that id.
            not_created: In-doubt lines proven not created go back to ``pending``.

        Only lines still ``in_doubt`` are changed.
        """
        not_created = list(not_created)
        now = _now()
        self._synchronous("FULL")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(
                "UPDATE lines SET state = ?, task_id = ?, submitted_at = ?, error_type = NULL,"
                " error = NULL, updated_at = ? WHERE line = ? AND state = ?",
                (
                    (State.SUBMITTED, task_id, now, now, line, State.IN_DOUBT)
                    for line, task_id in matched.items()
                ),
            )
            self._conn.executemany(
                "UPDATE lines SET state = ?, error_type = NULL, error = NULL, updated_at = ?"
                " WHERE line = ? AND state = ?",
                ((State.PENDING, now, line, State.IN_DOUBT) for line in not_created),
            )
            # Their attempts: matched ones made that task, the others created nothing.
            self._conn.executemany(
                _SYNC_ATTEMPT, ((line, line) for line in [*matched, *not_created])
            )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def reset_in_doubt(self) -> int:
        """Put every ``in_doubt`` line back to ``pending`` (``--resubmit-in-doubt``).

        Returns:
            How many lines were reset.
        """
        return self._write(
            "FULL",
            "UPDATE lines SET state = ?, updated_at = ? WHERE state = ?",
            (State.PENDING, _now(), State.IN_DOUBT),
        )

    def reset_rejected(self) -> int:
        """Put failed lines whose create was refused (no task id) back to ``pending``.

        Such a create provably created nothing, so sending it again is safe.

        Returns:
            How many lines were reset.
        """
        return self._write(
            "FULL",
            "UPDATE lines SET state = ?, updated_at = ?"
            " WHERE state = ? AND task_id IS NULL AND kind IS NOT NULL",
            (State.PENDING, _now(), State.FAILED),
        )

    def reset_failed(self) -> int:
        """Put the lines whose task the service reported FAILED back to ``pending``.

        For ``--retry-failed``.

        Which lines: ``_retry.retryable`` (never in doubt, refused or
        cancelled). The finished attempt stays as it is in ``attempts``; the
        line forgets its task and outcome, and its ``retry_files`` become
        the files the next create sends (``_retry.next_files``: after a
        partial failure the failed files only). One durable transaction.

        Returns:
            How many lines were reset.
        """
        moves = [(next_files(r), r.line) for r in self.records(State.FAILED) if retryable(r)]
        if not moves:
            return 0
        now = _now()
        self._synchronous("FULL")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(
                "UPDATE lines SET state = ?, retry_files = ?, task_id = NULL, result_code = NULL,"
                " error_type = NULL, error = NULL, outcome = NULL, failed_files = NULL,"
                " download_url = NULL, updated_at = ? WHERE line = ? AND state = ?",
                (
                    (
                        State.PENDING,
                        json.dumps(list(files)) if files else None,
                        now,
                        line,
                        State.FAILED,
                    )
                    for files, line in moves
                ),  # fmt: skip
            )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return len(moves)

    # ------------------------------------------------------------------ transitions

    def mark_submitting(self, line: int, *, clock_offset: float | None = None) -> None:
        """Commit (durably) that ``line`` is about to be sent.

        Args:
            line: The plan line.
            clock_offset: The service's clock minus ours, in seconds, as the
                session knows it now (None: not known yet). It puts the
                "submitting" time in the service's clock, to compare with the
                ``createTime`` of listed tasks.
        """
        now = _now()
        self._synchronous("FULL")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(
                "UPDATE lines SET state = ?, attempts = attempts + 1, submitting_at = ?,"
                " clock_offset = ?, task_id = NULL, result_code = NULL, error_type = NULL,"
                " error = NULL, outcome = NULL, failed_files = NULL, download_url = NULL,"
                " submitted_at = NULL, finished_at = NULL, updated_at = ? WHERE line = ?",
                (State.SUBMITTING, now, clock_offset, now, line),
            )
            self._conn.execute(_NEW_ATTEMPT, (line,))
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def mark_submitted(self, line: int, task_id: str) -> None:
        """Commit (durably) the task id the create call returned for ``line``."""
        now = _now()
        self._write_line(
            "FULL",
            line,
            "UPDATE lines SET state = ?, task_id = ?, submitted_at = ?, updated_at = ?"
            " WHERE line = ?",
            (State.SUBMITTED, task_id, now, now, line),
        )

    def mark_not_sent(self, line: int, *, error_type: str, error: str) -> None:
        """Put ``line`` back to ``pending``: its create provably never left (no connection).

        The error is kept, to say why it is pending.
        """
        self._write_line(
            "FULL",
            line,
            "UPDATE lines SET state = ?, error_type = ?, error = ?, updated_at = ?"
            " WHERE line = ? AND task_id IS NULL",
            (State.PENDING, error_type, error, _now(), line),
        )

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
        """Record the end of a line (succeeded, failed or in doubt), and how its job ended.

        A task id already recorded is kept when ``task_id`` is None.

        Args:
            line: The plan line.
            state: SUCCEEDED, FAILED or IN_DOUBT.
            task_id: Its task id, if known now.
            result_code: The failed task's resultCode.
            error_type: A short grouping key of the error.
            error: The error text (masked).
            outcome: How its job or share task ended (an ``Outcome``), if it ran.
            failed_files: The ids of its failed files.
            download_url: A package's link (stored whole; see the module docstring).
        """
        if state not in (State.SUCCEEDED, State.FAILED, State.IN_DOUBT):
            raise ValueError(f"not a final state: {state!r}")
        now = _now()
        files = json.dumps(list(failed_files)) if failed_files else None
        self._write_line(
            "NORMAL" if state != State.IN_DOUBT else "FULL",
            line,
            "UPDATE lines SET state = ?, task_id = COALESCE(?, task_id), result_code = ?,"
            " error_type = ?, error = ?, outcome = ?, failed_files = ?, download_url = ?,"
            " finished_at = ?, updated_at = ? WHERE line = ?",
            (
                state,
                task_id,
                result_code,
                error_type,
                error,
                outcome,
                files,
                download_url,
                now,
                now,
                line,
            ),  # fmt: skip
        )

    def note_error(self, line: int, *, error_type: str, error: str) -> None:
        """Record an error on a line without changing its state (a lost wait)."""
        self._write_line(
            "NORMAL",
            line,
            "UPDATE lines SET error_type = ?, error = ?, updated_at = ? WHERE line = ?",
            (error_type, error, _now(), line),
        )

    # ------------------------------------------------------------------ queries

    def lines_in(self, state: str) -> list[int]:
        """Return the line numbers in ``state``, ascending."""
        rows = self._conn.execute(
            "SELECT line FROM lines WHERE state = ? ORDER BY line", (state,)
        ).fetchall()
        return [int(r[0]) for r in rows]

    def records(self, state: str | None = None) -> Iterator[LineRecord]:
        """Iterate over the rows (of one state, or all), by line number."""
        if state is None:
            cursor = self._conn.execute(f"SELECT {_COLUMNS} FROM lines ORDER BY line")
        else:
            cursor = self._conn.execute(
                f"SELECT {_COLUMNS} FROM lines WHERE state = ? ORDER BY line", (state,)
            )
        for row in cursor.fetchall():
            yield _record(row)

    def record(self, line: int) -> LineRecord | None:
        """Return the row of ``line``, or None."""
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM lines WHERE line = ?", (line,)).fetchone()
        return None if row is None else _record(row)

    def line_times(self) -> dict[int, tuple[datetime | None, datetime | None, datetime | None]]:
        """Return ``{line: (submitting_at, submitted_at, finished_at)}`` (this machine's clock)."""
        rows = self._conn.execute(
            "SELECT line, submitting_at, submitted_at, finished_at FROM lines"
        ).fetchall()
        return {int(r[0]): (_parse_time(r[1]), _parse_time(r[2]), _parse_time(r[3])) for r in rows}

    def finished_times(self, limit: int) -> list[tuple[int, datetime, datetime]]:
        """``(line, submitted_at, finished_at)`` of the lines that finished last, newest first.

        At most ``limit`` of each kind (one range of ``lines_by_finish`` per kind).
        """
        found: list[tuple[int, datetime, datetime]] = []
        for kind in KINDS:
            rows = self._conn.execute(
                "SELECT line, submitted_at, finished_at FROM lines WHERE kind = ?"
                " AND finished_at IS NOT NULL AND submitted_at IS NOT NULL"
                " ORDER BY finished_at DESC LIMIT ?",
                (kind, max(0, int(limit))),
            ).fetchall()
            for line, submitted, finished in rows:
                at, end = _parse_time(submitted), _parse_time(finished)
                if at is not None and end is not None:
                    found.append((int(line), at, end))
        found.sort(key=lambda t: t[2], reverse=True)
        return found

    def line_hashes(self) -> dict[int, str]:
        """Return ``{line: line_hash}`` for every line."""
        rows = self._conn.execute("SELECT line, line_hash FROM lines").fetchall()
        return {int(r[0]): str(r[1]) for r in rows}

    def counts(self) -> dict[str, int]:
        """Return the number of lines per state."""
        rows = self._conn.execute("SELECT state, COUNT(*) FROM lines GROUP BY state").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def failure_groups(self) -> list[tuple[str, int]]:
        """Return ``(reason, count)`` for the failed lines, most frequent first.

        The reason is ``resultCode <code>`` for a failed task, the error type for
        a refused create, and ``invalid plan line`` for skipped invalid lines.
        """
        rows = self._conn.execute(
            "SELECT CASE WHEN result_code IS NOT NULL THEN 'resultCode ' || result_code"
            " ELSE COALESCE(error_type, 'unknown') END AS reason, COUNT(*)"
            " FROM lines WHERE state IN (?, ?) GROUP BY reason ORDER BY 2 DESC, 1",
            (State.FAILED, State.INVALID),
        ).fetchall()
        return [(str(r[0]), int(r[1])) for r in rows]

    def outcome_counts(self) -> dict[str, int]:
        """Return the number of lines per recorded outcome (lines without one left out)."""
        rows = self._conn.execute(
            "SELECT outcome, COUNT(*) FROM lines WHERE outcome IS NOT NULL GROUP BY outcome"
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def attempts(self, line: int | None = None) -> list[AttemptRecord]:
        """Return every attempt (of ``line``, or of every line), by line then attempt number."""
        if line is None:
            rows = self._conn.execute(
                f"SELECT {_ATTEMPT_COLUMNS} FROM attempts ORDER BY line, attempt"
            ).fetchall()
        else:
            rows = self._conn.execute(
                f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE line = ? ORDER BY attempt",
                (line,),
            ).fetchall()
        return [_attempt(r) for r in rows]


def default_journal_path(plan: Path) -> Path:
    """``PLAN.journal.sqlite`` beside ``PLAN.jsonl``."""
    name = plan.name[: -len(plan.suffix)] if plan.suffix else plan.name
    return plan.with_name(f"{name}.journal.sqlite")
