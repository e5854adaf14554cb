"""The PostgreSQL journal's schema: its tables, version and migration (SQL text only).

Owns the DDL of :class:`~._postgres.PostgresJournal` and the one rule of its
versions: ``open`` creates the tables when missing and records
:data:`SCHEMA_VERSION` in ``koodrive_meta``, inside one transaction holding a
transaction-scoped advisory lock, so that any number of workers opening the
same database at once create it exactly once; a database recording a later
version is refused. Later versions add their migrations here.

The tables live in the connection's current schema (the first of its
``search_path``): one plan per database, or per schema with
``?options=-csearch_path%3Dmy_plan`` in the URL.

``koodrive_attempts`` holds one row per attempt of a line (what the SQLite
journal's ``attempts`` table holds, see ``_sqlite.py``); ``retry_files`` on a
line, the files its next create sends after a partial failure.

Times are the database's clock (``timestamptz``): one clock for every worker.
Nothing here stores a plan line, a password or a token (see ``_journal.py``).

Must never import: ``cli/``, ``rich``, ``argparse``, a database driver.
"""

from __future__ import annotations

__all__ = [
    "ATTACH_LOCK",
    "MIGRATION_LOCK",
    "SCHEMA_VERSION",
    "STATEMENTS",
]

#: The schema this release writes; a database recording a later one is refused.
SCHEMA_VERSION = "1"

#: Advisory lock keys (class, then a hash of the current schema: one lock per plan).
MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(1802465135, hashtext(current_schema()))"
ATTACH_LOCK = "SELECT pg_advisory_xact_lock(1802465136, hashtext(current_schema()))"

#: The version 1 schema, each statement idempotent.
STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS koodrive_meta (
        key   text PRIMARY KEY,
        value text NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS koodrive_lines (
        line          integer PRIMARY KEY,   -- 1-based line number in the plan file
        line_hash     text NOT NULL,         -- sha256 of the line, secrets redacted
        kind          text,                  -- job | share | transfer | import (NULL if invalid)
        state         text NOT NULL,
        task_id       text,
        result_code   text,
        error_type    text,
        error         text,                  -- masked: never a token or a password
        attempts      integer NOT NULL DEFAULT 0,
        submitting_at timestamptz,
        clock_offset  double precision,      -- the service's clock minus the database's (s)
        submitted_at  timestamptz,
        finished_at   timestamptz,
        updated_at    timestamptz NOT NULL DEFAULT now(),
        outcome       text,
        failed_files  text[],
        download_url  text,                  -- a package's link (its query holds a token)
        retry_files   text[],                -- the next create's files (NULL: the whole line)
        worker        text,                  -- the worker id that last held the line
        holder        text,                  -- the journal instance holding its lease
        lease_until   timestamptz,           -- the lease's end (database clock)
        fence_until   timestamptz            -- in doubt: not "not created" before this
    )""",
    "CREATE INDEX IF NOT EXISTS koodrive_lines_by_state ON koodrive_lines (state, line)",
    # The finished lines of a kind by when they finished: a worker's start reads
    # the newest few to seed its poll scheduler (finished_times), not the plan.
    "CREATE INDEX IF NOT EXISTS koodrive_lines_by_finish ON koodrive_lines (kind, finished_at)"
    " WHERE finished_at IS NOT NULL",
    # The lines under a lease (few: a claim's worth per worker), by the lease's end.
    "CREATE INDEX IF NOT EXISTS koodrive_lines_leased ON koodrive_lines (lease_until)"
    " WHERE holder IS NOT NULL",
    # One row per "submitting" mark (inserted with it); the line's later
    # changes update the row of its current attempt (line.attempts).
    """CREATE TABLE IF NOT EXISTS koodrive_attempts (
        line          integer NOT NULL,      -- the plan line (koodrive_lines.line)
        attempt       integer NOT NULL,      -- the line's attempts count when it was marked
        state         text NOT NULL,         -- the line's state when the attempt last changed
        task_id       text,
        outcome       text,
        result_code   text,
        error_type    text,
        error         text,                  -- masked: never a token or a password
        failed_files  text[],
        sent_files    text[],                -- the files its create sent (NULL: the whole line)
        download_url  text,                  -- a package's link (its query holds a token)
        submitting_at timestamptz,
        submitted_at  timestamptz,
        finished_at   timestamptz,
        PRIMARY KEY (line, attempt)
    )""",
    """CREATE TABLE IF NOT EXISTS koodrive_runs (
        run        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        worker     text,
        started_at timestamptz NOT NULL DEFAULT now(),
        ended_at   timestamptz,
        outcome    text,
        requests   integer
    )""",
    """CREATE TABLE IF NOT EXISTS koodrive_rate (
        name       text PRIMARY KEY,
        tokens     double precision NOT NULL,
        stamp      timestamptz NOT NULL,
        hold_until timestamptz NOT NULL DEFAULT '-infinity',
        granted    boolean NOT NULL DEFAULT false
    )""",
)
