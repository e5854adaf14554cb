"""The PostgreSQL journal: one plan shared by many workers, on any machines.

Owns :class:`PostgresJournal` (the async journal interface of ``_journal.py``
on psycopg 3 and ``psycopg_pool``), its leases, claims and fence, and the
masking of the database URL. The schema is in ``_pg_schema.py``, the shared
rate limit in ``_pg_rate.py``.

Work is shared through leases: :meth:`PostgresJournal.claim` takes up to
``limit`` lines in one short transaction (``SELECT … FOR UPDATE SKIP LOCKED``,
so a worker holding row locks never blocks another) and stamps them with this
journal's holder token and ``lease_until = clock_timestamp() + lease``: the
database's clock, one clock for every worker. It takes lines that are
pending or submitted with no live lease (or whose lease belongs to an earlier
process of the same worker id), and lines a stopped worker left "submitting"
with an expired lease: those become ``in_doubt`` with a fence,
``fence_until = lease_until + 15 min + margin``. The service refuses an
X-Date more than 15 minutes old, and a worker stamps X-Date before its last
lease check, so no create that stopped worker could still send is accepted
after the fence: only then may the reconciliation declare the line not
created (:meth:`PostgresJournal.apply_reconciliation` skips fenced lines).

Attempts are kept as in the SQLite journal: each "submitting" mark inserts a
row in ``koodrive_attempts`` in the same statement as the line's update (so
under the same lease guard), and every later change of the line updates its
current attempt in the same statement; a reset changes only the line, so the
attempt it ends keeps how it ended. ``--retry-failed`` (:meth:`reset_failed`)
applies the rules of ``_retry.py``.

Every write of a line's fate is guarded by the lease (``holder = me AND
lease_until > clock_timestamp()``) and raises :class:`LeaseLostError` when it
fails, except :meth:`PostgresJournal.mark_submitted` (see there). No
transaction stays open across a request to the service: each method is one
short transaction, committed durably (the server's ``synchronous_commit``).
Prepared statements are off (``prepare_threshold=None``) so the journal works
behind PgBouncer's transaction pooling.

Times are stored on the database's clock and handed out on this machine's
(the offset between the two is measured when the journal opens), so the
reconciliation compares them with ``datetime.now()`` as it does with SQLite.

The URL's password never appears in :attr:`PostgresJournal.location`, a repr
or an error. psycopg is imported only when a journal is opened: importing
``koodrive_async.bulk`` does not need it.

Must never import: ``cli/``, ``rich``, ``argparse``, the client's transport.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._journal import (
    AttemptRecord,
    Claim,
    JournalError,
    JournalMismatchError,
    LeaseLostError,
    LineRecord,
    PlanCounts,
    PlanEntry,
    ReconciliationRow,
    State,
)
from ._pg_rate import HOLD_LEFT, SharedPacer
from ._pg_schema import ATTACH_LOCK, MIGRATION_LOCK, SCHEMA_VERSION, STATEMENTS
from ._plan import KINDS
from ._retry import next_files, retryable

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

__all__ = ["FENCE_MARGIN", "X_DATE_WINDOW", "PostgresJournal", "mask_database_url"]

#: How old an X-Date the service still accepts (seconds): the fence's core.
X_DATE_WINDOW = 15 * 60.0
#: Added to the fence for the clocks' disagreement (database, worker, service).
FENCE_MARGIN = 120.0

_COLUMNS = (
    "line, kind, state, task_id, result_code, error_type, error, attempts, outcome,"
    " failed_files, download_url, retry_files"
)
_ATTEMPT_COLUMNS = (
    "line, attempt, state, task_id, outcome, result_code, error_type, error, failed_files,"
    " sent_files, submitting_at, submitted_at, finished_at, download_url"
)
#: What a line's current attempt takes from the line after each change (as in
#: the SQLite journal): everything but when it was marked and what it sent.
_ATTEMPT_FOLLOWS = (
    "state",
    "task_id",
    "outcome",
    "result_code",
    "error_type",
    "error",
    "failed_files",
    "download_url",
    "submitted_at",
    "finished_at",
)
_LEASED = "holder = %(me)s AND lease_until > clock_timestamp()"
#: Not held by this journal, and with no live lease (or one of an earlier process
#: of the same worker id: a restarted worker takes its lines back at once).
_FREE = (
    "holder IS DISTINCT FROM %(me)s AND (lease_until IS NULL"
    " OR lease_until <= clock_timestamp() OR worker = %(worker)s)"
)
_LEASE = "clock_timestamp() + %(lease)s::float8 * interval '1 second'"
_INTERRUPTED = (
    "the worker stopped after the create request was sent (or about to be) and before its "
    "answer was recorded: the task may or may not exist"
)


def _password(url: str) -> str | None:
    """The password a URL or a ``key=value`` conninfo carries, or None."""
    if "://" in url:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        return parts.password or query.get("password") or None
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return None
    try:
        value = conninfo_to_dict(url).get("password")
    except Exception:
        return None
    return str(value) if value else None


def mask_database_url(url: str) -> str:
    """``url`` without its password (in the authority or the query), for messages."""
    if "://" not in url:
        try:
            from psycopg.conninfo import conninfo_to_dict, make_conninfo
        except ImportError:
            return "<database>"
        try:
            params = conninfo_to_dict(url)
        except Exception:
            return "<database>"
        params.pop("password", None)
        return make_conninfo(**{k: str(v) for k, v in params.items()})
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.hostname and ":" in parts.hostname:
        netloc = f"[{parts.hostname}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _following(update: str, table: str = "koodrive_lines") -> str:
    """``update`` of lines (no RETURNING), their current attempts following it, one statement.

    The attempts change in the same statement, so with the same guard and in
    the same transaction as the lines: an attempt never says more than its
    line. The statement returns the numbers of the lines it changed. ``table``
    is how ``update`` names ``koodrive_lines`` (its alias, if it has one).
    """
    returned = ", ".join(f"{table}.{c}" for c in ("line", "attempts", *_ATTEMPT_FOLLOWS))
    return (
        f"WITH changed AS ({update} RETURNING {returned}),"
        f" followed AS (UPDATE koodrive_attempts AS a SET ({', '.join(_ATTEMPT_FOLLOWS)})"
        f" = ({', '.join('c.' + c for c in _ATTEMPT_FOLLOWS)}) FROM changed AS c"
        "  WHERE a.line = c.line AND a.attempt = c.attempts)"
        " SELECT line FROM changed"
    )


def _starting(update: str) -> str:
    """``update`` (a "submitting" mark, no RETURNING) and the attempt it starts, one statement.

    The new attempt is the line's attempts count after the mark, sending the
    line's ``retry_files``. One of that number cannot exist (the count only
    grows); if one did, the new attempt replaces it, as in the SQLite journal.
    The statement returns the marked line's number and the seconds the shared
    429 hold still has (:data:`~._pg_rate.HOLD_LEFT`: the worker learns of a
    hold with no round trip of its own).
    """
    return (
        f"WITH changed AS ({update} RETURNING line, attempts, state, retry_files,"
        " submitting_at),"
        " started AS (INSERT INTO koodrive_attempts (line, attempt, state, sent_files,"
        "  submitting_at) SELECT line, attempts, state, retry_files, submitting_at FROM changed"
        "  ON CONFLICT (line, attempt) DO UPDATE SET state = EXCLUDED.state, task_id = NULL,"
        "  outcome = NULL, result_code = NULL, error_type = NULL, error = NULL,"
        "  failed_files = NULL, sent_files = EXCLUDED.sent_files, download_url = NULL,"
        "  submitting_at = EXCLUDED.submitting_at, submitted_at = NULL, finished_at = NULL)"
        f" SELECT line, {HOLD_LEFT} FROM changed"
    )


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and value > 0 and value < float("inf")):
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")


class PostgresJournal:
    """The journal of one plan in a PostgreSQL database, shared by many workers.

    Open it with :meth:`open` (it creates or migrates the schema) and close it
    with :meth:`close` (or ``async with``). Methods are coroutines, but
    :attr:`location`, :attr:`worker_id`, :attr:`lease` and :meth:`shared_pacer`.

    Attributes:
        worker_id: This worker's name (shown in reports: who holds what).
        lease: How long a claim or a renewal holds a line (seconds).
        fence_margin: Added to the X-Date window in a fence.
        x_date_window: How old an X-Date the service still accepts (seconds).
    """

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        url: str,
        *,
        worker_id: str,
        lease: float,
        fence_margin: float,
        skew: float,
        force_sync: bool = False,
        x_date_window: float = X_DATE_WINDOW,
    ) -> None:
        self._pool = pool
        self._location = mask_database_url(url)
        self._secret = _password(url)
        self.worker_id = worker_id
        self.lease = float(lease)
        self.fence_margin = float(fence_margin)
        self.x_date_window = float(x_date_window)
        # The database's clock minus ours (seconds), measured when opened.
        self._skew = skew
        self._force_sync = force_sync
        # This instance's lease token: a restarted worker with the same id is
        # another holder, so the guards never mistake one process for the other.
        self._holder = f"{worker_id}/{secrets.token_hex(8)}"
        self._held: set[int] = set()

    def __repr__(self) -> str:
        return f"PostgresJournal({self._location!r}, worker_id={self.worker_id!r})"

    @property
    def location(self) -> str:
        """The database URL, without its password."""
        return self._location

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        worker_id: str | None = None,
        lease: float = 60.0,
        pool_size: int = 4,
        fence_margin: float = FENCE_MARGIN,
        connect_timeout: float = 10.0,
        x_date_window: float = X_DATE_WINDOW,
    ) -> PostgresJournal:
        """Connect, create or migrate the schema, and open a pool of connections.

        Args:
            url: ``postgresql://user[:password]@host[:port]/database[?…]`` (or a
                libpq ``key=value`` string).
            worker_id: This worker's name (default: ``host-pid-random``).
            lease: Seconds a claimed line stays this worker's without a renewal.
            pool_size: Most connections held (at least 2: :meth:`attach_lock`
                holds one while the others load the plan).
            fence_margin: Seconds added to the X-Date window in a fence.
            connect_timeout: Seconds to wait for the database.
            x_date_window: How old (seconds) an X-Date the service still
                accepts: the pages' 15 minutes. A fence is this plus the margin
                after the stopped worker's lease ended.

        Raises:
            JournalError: psycopg is not installed, the database cannot be
                reached, or it records a later schema version.
            ValueError: A bad ``lease``, ``pool_size`` or ``fence_margin``.
        """
        _check_positive("lease", lease)
        _check_positive("connect_timeout", connect_timeout)
        _check_positive("x_date_window", x_date_window)
        if not (isinstance(fence_margin, int | float) and fence_margin >= 0):
            raise ValueError(f"fence_margin must be >= 0 seconds, not {fence_margin!r}")
        if not isinstance(pool_size, int) or pool_size < 2:
            raise ValueError(f"pool_size must be an integer >= 2, not {pool_size!r}")
        if worker_id is not None and (not worker_id.strip() or len(worker_id) > 200):
            raise ValueError("worker_id must be a non-blank text of at most 200 characters")
        try:
            import psycopg
            from psycopg_pool import AsyncConnectionPool
        except ImportError as exc:
            raise JournalError(
                "the PostgreSQL journal needs psycopg 3 and psycopg-pool: "
                "pip install 'koodrive-async[postgres]'"
            ) from exc
        secret = _password(url)
        location = mask_database_url(url)
        kwargs: dict[str, Any] = {"prepare_threshold": None, "autocommit": False}
        try:
            conn = await psycopg.AsyncConnection.connect(
                url, connect_timeout=max(1, round(connect_timeout)), **kwargs
            )
        except psycopg.Error as exc:
            raise _masked(
                f"cannot connect to the journal database {location}", exc, secret
            ) from _cause(exc, secret)
        try:
            async with conn:
                skew, synchronous = await _migrate(conn, location)
        except psycopg.Error as exc:
            raise _masked(
                f"cannot prepare the journal database {location}", exc, secret
            ) from _cause(exc, secret)
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs=kwargs,
            open=False,
            timeout=connect_timeout,
            name="koodrive-journal",
        )
        try:
            await pool.open(wait=True, timeout=connect_timeout)
        except psycopg.Error as exc:
            await pool.close()
            raise _masked(
                f"cannot connect to the journal database {location}", exc, secret
            ) from _cause(exc, secret)
        return cls(
            pool,
            url,
            worker_id=worker_id or _default_worker_id(),
            lease=lease,
            fence_margin=fence_margin,
            skew=skew,
            force_sync=synchronous == "off",
            x_date_window=x_date_window,
        )

    async def close(self) -> None:
        """Give back the lines not started (:meth:`release`, best effort), close the pool.

        Lines left "submitting" keep their lease until it runs out.
        """
        try:
            if self._held and not self._pool.closed:
                await self.release()
        except JournalError:
            pass  # the database is gone: the leases run out by themselves
        finally:
            await self._pool.close()

    async def __aenter__(self) -> PostgresJournal:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ helpers

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        import psycopg

        try:
            yield
        except psycopg.Error as exc:
            raise _masked(f"journal database {self._location}", exc, self._secret) from _cause(
                exc, self._secret
            )

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        """A pooled connection in a transaction, committed durably when it ends."""
        async with self._pool.connection() as conn, conn.transaction():
            if self._force_sync:
                # The server's default was changed to "off": durable anyway,
                # and SET LOCAL lasts one transaction (PgBouncer-safe).
                await conn.execute("SET LOCAL synchronous_commit = on")
            yield conn

    async def _run(self, sql: str, params: Mapping[str, object] | None = None) -> list[Any]:
        """Run one statement in its own transaction; its rows (none for a statement without)."""
        with self._errors():
            async with self._transaction() as conn:
                cursor = await conn.execute(sql, params)
                return await cursor.fetchall() if cursor.description is not None else []

    async def _one(self, sql: str, params: Mapping[str, object] | None = None) -> Any:
        rows = await self._run(sql, params)
        return rows[0] if rows else None

    def _p(self, **params: object) -> dict[str, object]:
        return {"me": self._holder, "worker": self.worker_id, "lease": self.lease, **params}

    def _local(self, value: object) -> datetime | None:
        """A database time on this machine's clock."""
        if not isinstance(value, datetime):
            return None
        return value.astimezone(UTC) - timedelta(seconds=self._skew)

    def _fence_window(self) -> float:
        return self.x_date_window + self.fence_margin

    async def get_meta(self, key: str) -> str | None:
        """Return the meta value stored under ``key``, or None."""
        row = await self._one("SELECT value FROM koodrive_meta WHERE key = %(k)s", {"k": key})
        return None if row is None else str(row[0])

    # ------------------------------------------------------------------ plan

    @contextlib.asynccontextmanager
    async def attach_lock(self) -> AsyncIterator[None]:
        """Serialise plan loading across workers (a transaction-scoped advisory lock).

        Held on one pooled connection, in a transaction that nothing else uses,
        while :func:`attach_plan` runs on the others; the first worker loads
        the plan, the next ones verify it. The lock goes with the connection
        if the process dies.
        """
        with self._errors():
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(ATTACH_LOCK)
                yield

    async def is_new(self) -> bool:
        """True while the journal holds no plan yet."""
        return await self.get_meta("plan_hash") is None

    async def initialize(
        self, *, plan_hash: str, plan_name: str, lines: Iterable[PlanEntry]
    ) -> None:
        """Record a plan in a new journal (invalid lines as ``invalid``), atomically.

        Raises:
            JournalError: The journal already holds a plan.
        """
        import psycopg

        try:
            async with self._transaction() as conn:
                await conn.execute(
                    "INSERT INTO koodrive_meta (key, value) VALUES ('plan_hash', %(h)s),"
                    " ('plan_name', %(n)s), ('created_at', clock_timestamp()::text)",
                    {"h": plan_hash, "n": plan_name},
                )
                await _copy_lines(conn, lines)
        except psycopg.errors.UniqueViolation:
            raise JournalError(f"journal {self._location} already holds a plan") from None
        except psycopg.Error as exc:
            raise _masked(f"journal database {self._location}", exc, self._secret) from _cause(
                exc, self._secret
            )

    async def extend_plan(
        self, *, plan_hash: str, plan_name: str, lines: Iterable[PlanEntry]
    ) -> None:
        """Record lines appended at the end of the plan, and its new hash, atomically.

        Raises:
            JournalError: The journal holds no plan yet, or already has such a line.
        """
        import psycopg

        if await self.is_new():
            raise JournalError(f"journal {self._location} holds no plan to extend")
        try:
            async with self._transaction() as conn:
                await _copy_lines(conn, lines)
                await conn.execute(
                    "INSERT INTO koodrive_meta (key, value) VALUES ('plan_hash', %(h)s),"
                    " ('plan_name', %(n)s), ('extended_at', clock_timestamp()::text)"
                    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    {"h": plan_hash, "n": plan_name},
                )
        except psycopg.errors.UniqueViolation as exc:
            raise JournalError(
                f"journal {self._location} already records such a line: {exc.diag.message_detail}"
            ) from None
        except psycopg.Error as exc:
            raise _masked(f"journal database {self._location}", exc, self._secret) from _cause(
                exc, self._secret
            )

    async def check_plan(self, plan_hash: str) -> None:
        """Raise :class:`JournalMismatchError` when the journal holds another plan."""
        stored = await self.get_meta("plan_hash")
        if stored is not None and stored != plan_hash:
            name = await self.get_meta("plan_name") or "another plan"
            raise JournalMismatchError(
                f"journal {self._location} belongs to a different plan ({name}, content hash "
                f"{stored[:12]}…, this plan {plan_hash[:12]}…); use another database (or "
                "schema) for this plan"
            )

    async def line_hashes(self) -> dict[int, str]:
        """``{line: line_hash}`` of every recorded plan line."""
        rows = await self._run("SELECT line, line_hash FROM koodrive_lines")
        return {int(r[0]): str(r[1]) for r in rows}

    # ------------------------------------------------------------------ runs

    async def begin_run(self) -> int:
        """Record the start of this worker's run and return its number."""
        row = await self._one(
            "INSERT INTO koodrive_runs (worker) VALUES (%(worker)s) RETURNING run", self._p()
        )
        return int(row[0])

    async def end_run(self, run: int, *, outcome: str, requests: int) -> None:
        """Record how run number ``run`` ended (completed, interrupted, aborted)."""
        await self._run(
            "UPDATE koodrive_runs SET ended_at = clock_timestamp(), outcome = %(o)s,"
            " requests = %(r)s WHERE run = %(run)s",
            {"o": outcome, "r": requests, "run": run},
        )

    # ------------------------------------------------------------------ leases

    async def claim(self, limit: int) -> Claim:
        """Take up to ``limit`` lines for this worker, in one short transaction.

        Pending and submitted lines with no live lease (or one of an earlier
        process of this worker id) become this worker's; lines a stopped
        worker left "submitting" with an expired lease become ``in_doubt``,
        fenced (see the module docstring), and are held by nobody. Lines this
        journal already holds are not returned again. Row locks are skipped,
        never waited for.
        """
        if limit <= 0:
            return Claim()
        rows = await self._run(
            # One index range per state (koodrive_lines_by_state), so a claim
            # reads about `limit` rows, not the whole plan; the lines a stopped
            # worker left "submitting" first, then those with a task id.
            "WITH doubt AS (SELECT line, state, lease_until, 0 AS rank FROM koodrive_lines"
            "  WHERE state = 'submitting' AND lease_until <= clock_timestamp()"
            "  ORDER BY line LIMIT %(limit)s FOR UPDATE SKIP LOCKED),"
            " waits AS (SELECT line, state, lease_until, 1 AS rank FROM koodrive_lines"
            f"  WHERE state = 'submitted' AND {_FREE}"
            "  ORDER BY line LIMIT %(limit)s FOR UPDATE SKIP LOCKED),"
            " sends AS (SELECT line, state, lease_until, 2 AS rank FROM koodrive_lines"
            f"  WHERE state = 'pending' AND {_FREE}"
            "  ORDER BY line LIMIT %(limit)s FOR UPDATE SKIP LOCKED),"
            " picked AS (SELECT line, state AS was, lease_until AS old_lease FROM"
            "  (SELECT * FROM doubt UNION ALL SELECT * FROM waits UNION ALL SELECT * FROM sends)"
            "  AS u ORDER BY rank, line LIMIT %(limit)s),"
            " claimed AS (UPDATE koodrive_lines AS l SET"
            "  state = CASE WHEN p.was = 'submitting' THEN 'in_doubt' ELSE l.state END,"
            "  fence_until = CASE WHEN p.was = 'submitting'"
            "    THEN p.old_lease + %(fence)s::float8 * interval '1 second' ELSE l.fence_until END,"
            "  error_type = CASE WHEN p.was = 'submitting' THEN 'interrupted'"
            "    ELSE l.error_type END,"
            "  error = CASE WHEN p.was = 'submitting' THEN %(why)s ELSE l.error END,"
            "  holder = CASE WHEN p.was = 'submitting' THEN NULL ELSE %(me)s END,"
            "  worker = CASE WHEN p.was = 'submitting' THEN l.worker ELSE %(worker)s END,"
            f"  lease_until = CASE WHEN p.was = 'submitting' THEN NULL ELSE {_LEASE} END,"
            "  updated_at = CASE WHEN p.was = 'submitting' THEN clock_timestamp()"
            "    ELSE l.updated_at END"
            " FROM picked AS p WHERE l.line = p.line"
            f"  RETURNING p.was, {', '.join('l.' + c.strip() for c in _COLUMNS.split(','))}),"
            # The attempt a stopped worker left "submitting" is in doubt too.
            " followed AS (UPDATE koodrive_attempts AS a SET (state, error_type, error)"
            "  = (c.state, c.error_type, c.error) FROM claimed AS c"
            "  WHERE c.was = 'submitting' AND a.line = c.line AND a.attempt = c.attempts)"
            f" SELECT was, {_COLUMNS} FROM claimed",
            self._p(limit=limit, fence=self._fence_window(), why=_INTERRUPTED),
        )
        pending: list[int] = []
        submitted: list[LineRecord] = []
        in_doubt: list[int] = []
        for row in sorted(rows, key=lambda r: int(r[1])):
            was, record = row[0], _record(row[1:])
            if was == State.SUBMITTING:
                in_doubt.append(record.line)
            elif was == State.SUBMITTED:
                submitted.append(record)
                self._held.add(record.line)
            else:
                pending.append(record.line)
                self._held.add(record.line)
        return Claim(tuple(pending), tuple(submitted), tuple(in_doubt))

    async def renew(self) -> bool:
        """Extend every lease this journal holds; False when any was lost to another worker."""
        if not self._held:
            return True
        rows = await self._run(
            f"UPDATE koodrive_lines SET lease_until = {_LEASE}"
            " WHERE holder = %(me)s AND line = ANY(%(lines)s) RETURNING line",
            self._p(lines=sorted(self._held)),
        )
        kept = {int(r[0]) for r in rows}
        lost = self._held - kept
        self._held = kept
        return not lost

    async def check_lease(self, line: int) -> None:
        """Raise :class:`LeaseLostError` unless this journal holds a live lease on ``line``."""
        row = await self._one(
            f"SELECT 1 FROM koodrive_lines WHERE line = %(line)s AND {_LEASED}", self._p(line=line)
        )
        if row is None:
            self._lost(line)

    async def release(self) -> None:
        """End of a run: give back the pending and submitted lines this journal holds.

        Lines left "submitting" keep their lease: it must expire (and fence them).
        """
        await self._run(
            "UPDATE koodrive_lines SET holder = NULL, lease_until = NULL"
            " WHERE holder = %(me)s AND state IN ('pending', 'submitted')",
            self._p(),
        )
        self._held.clear()

    async def next_expiry(self) -> float | None:
        """Seconds until the first lease another worker holds on unfinished work ends, or None.

        A worker that has nothing left to claim waits that long (then claims
        again) rather than ending while a stopped worker's lines may still move.
        """
        row = await self._one(
            "SELECT extract(epoch FROM min(lease_until) - clock_timestamp())::float8"
            " FROM koodrive_lines WHERE holder IS NOT NULL AND holder <> %(me)s"
            " AND lease_until > clock_timestamp()"
            " AND state IN ('pending', 'submitting', 'submitted')",
            self._p(),
        )
        return None if row is None or row[0] is None else max(0.0, float(row[0]))

    async def holders(self) -> dict[str, int]:
        """``{worker id: lines it holds with a live lease}``, for progress and reports."""
        rows = await self._run(
            "SELECT worker, count(*) FROM koodrive_lines WHERE holder IS NOT NULL"
            " AND lease_until > clock_timestamp() GROUP BY worker ORDER BY worker"
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def plan_counts(self) -> PlanCounts:
        """Lines per state of the whole plan and who holds how many, in one statement.

        For the progress display of every worker: an index-only count per
        state and the few leased lines (``koodrive_lines_leased``).
        """
        rows = await self._run(
            "SELECT 's', state, count(*) FROM koodrive_lines GROUP BY state"
            " UNION ALL SELECT 'w', worker, count(*) FROM koodrive_lines"
            " WHERE holder IS NOT NULL AND lease_until > clock_timestamp() GROUP BY worker"
        )
        states = {str(r[1]): int(r[2]) for r in rows if r[0] == "s"}
        holders = {str(r[1]): int(r[2]) for r in rows if r[0] == "w"}
        return PlanCounts(states, dict(sorted(holders.items())))

    def _lost(self, line: int) -> None:
        self._held.discard(line)
        raise LeaseLostError(
            f"line {line}: this worker ({self.worker_id}) no longer holds its lease; another "
            "worker took it over",
            line=line,
        )

    async def _guarded(
        self, line: int, update: str, *, starts: bool = False, **params: object
    ) -> list[Any]:
        """Run ``update`` of ``line`` (no WHERE) if this journal holds its lease, else lose it.

        The line's current attempt follows the change, or, when ``starts``
        (a "submitting" mark), a new attempt begins, in the same statement.
        """
        guarded = f"{update} WHERE line = %(line)s AND {_LEASED}"
        sql = _starting(guarded) if starts else _following(guarded)
        rows = await self._run(sql, self._p(line=line, **params))
        if not rows:
            self._lost(line)
        return rows

    # ------------------------------------------------------------------ resume

    async def mark_interrupted_in_doubt(self) -> list[int]:
        """Lines an earlier process of this worker id left "submitting" become ``in_doubt``.

        They are fenced like a takeover (``lease_until`` + X-Date window +
        margin). Returns their numbers.
        """
        rows = await self._run(
            _following(
                "UPDATE koodrive_lines SET state = 'in_doubt', error_type = 'interrupted',"
                " error = %(why)s, updated_at = clock_timestamp(), holder = NULL,"
                " fence_until = coalesce(lease_until, clock_timestamp())"
                "   + %(fence)s::float8 * interval '1 second', lease_until = NULL"
                " WHERE state = 'submitting' AND worker = %(worker)s"
                " AND holder IS DISTINCT FROM %(me)s"
            ),
            self._p(why=_INTERRUPTED, fence=self._fence_window()),
        )
        lines = sorted(int(r[0]) for r in rows)
        self._held.difference_update(lines)
        return lines

    async def last_activity(self, state: str | None = None) -> datetime | None:
        """When a line (of ``state``, or any) last changed (this machine's clock), or None."""
        if state is None:
            row = await self._one("SELECT max(updated_at) FROM koodrive_lines")
        else:
            row = await self._one(
                "SELECT max(updated_at) FROM koodrive_lines WHERE state = %(s)s", {"s": state}
            )
        return self._local(row[0] if row else None)

    async def reconciliation_rows(self) -> list[ReconciliationRow]:
        """The in-doubt lines and the lines holding a task id, by line number (with fences)."""
        rows = await self._run(
            "SELECT line, kind, state, task_id, submitting_at, updated_at, clock_offset,"
            " fence_until, retry_files FROM koodrive_lines"
            " WHERE state = 'in_doubt' OR task_id IS NOT NULL ORDER BY line"
        )
        return [
            ReconciliationRow(
                int(r[0]),
                r[1],
                str(r[2]),
                r[3],
                self._local(r[4]),
                self._local(r[5]),
                None if r[6] is None else float(r[6]) + self._skew,
                fence_until=self._local(r[7]),
                retry_files=_files(r[8]),
            )
            for r in rows
        ]

    async def apply_reconciliation(
        self, matched: dict[int, str], not_created: Iterable[int]
    ) -> list[int]:
        """Commit a reconciliation's decision (durably, in one transaction).

        Matched in-doubt lines become ``submitted`` with their task id, proven
        not created ones ``pending``; both become this worker's (leased), as
        the run goes on with them. A line whose fence has not passed yet stays
        ``in_doubt`` (skipped, not an error): a stopped worker's create could
        still be accepted. Only lines still ``in_doubt`` are changed (another
        worker's reconciliation may have settled some first).

        Returns:
            The lines now pending and held by this worker: only those may be
            sent again.
        """
        resent = sorted(set(not_created))
        pending: list[int] = []
        with self._errors():
            async with self._transaction() as conn:
                if matched:
                    # Their attempts made those tasks; the others' created nothing.
                    cursor = await conn.execute(
                        _following(
                            "UPDATE koodrive_lines AS l SET state = 'submitted',"
                            " task_id = m.task_id, submitted_at = clock_timestamp(),"
                            " error_type = NULL, error = NULL, fence_until = NULL,"
                            " updated_at = clock_timestamp(), holder = %(me)s,"
                            f" worker = %(worker)s, lease_until = {_LEASE}"
                            " FROM unnest(%(lines)s::integer[], %(ids)s::text[])"
                            " AS m(line, task_id) WHERE l.line = m.line AND l.state = 'in_doubt'",
                            table="l",
                        ),
                        self._p(lines=list(matched), ids=list(matched.values())),
                    )
                    self._held.update(int(r[0]) for r in await cursor.fetchall())
                if resent:
                    cursor = await conn.execute(
                        _following(
                            "UPDATE koodrive_lines SET state = 'pending', error_type = NULL,"
                            " error = NULL, fence_until = NULL, updated_at = clock_timestamp(),"
                            f" holder = %(me)s, worker = %(worker)s, lease_until = {_LEASE}"
                            " WHERE line = ANY(%(lines)s) AND state = 'in_doubt'"
                            " AND (fence_until IS NULL OR fence_until <= clock_timestamp())"
                        ),
                        self._p(lines=resent),
                    )
                    pending = sorted(int(r[0]) for r in await cursor.fetchall())
        self._held.update(pending)
        return pending

    async def reset_in_doubt(self) -> int:
        """Put every ``in_doubt`` line back to ``pending`` (forced, fences ignored); how many."""
        rows = await self._run(
            "UPDATE koodrive_lines SET state = 'pending', fence_until = NULL, holder = NULL,"
            " lease_until = NULL, updated_at = clock_timestamp() WHERE state = 'in_doubt'"
            " RETURNING line"
        )
        return len(rows)

    async def reset_rejected(self) -> int:
        """Put failed lines without a task id back to ``pending``; return how many."""
        rows = await self._run(
            "UPDATE koodrive_lines SET state = 'pending', holder = NULL, lease_until = NULL,"
            " updated_at = clock_timestamp()"
            " WHERE state = 'failed' AND task_id IS NULL AND kind IS NOT NULL RETURNING line"
        )
        return len(rows)

    async def reset_failed(self) -> int:
        """Put the lines whose task the service reported FAILED back to ``pending`` (released).

        For ``--retry-failed``; the same rule as the SQLite journal
        (``_retry.retryable``, never in doubt, refused or cancelled). The
        finished attempt stays as it ended in :meth:`attempts`; the line
        forgets its task and outcome, its ``retry_files`` become the files
        the next create sends (``_retry.next_files``: after a partial failure
        the failed files only), and nobody holds it: any worker may claim it.
        One transaction; the failed lines are locked while it decides, so two
        workers starting with ``--retry-failed`` at once move each line once.

        Returns:
            How many lines were reset.
        """
        with self._errors():
            async with self._transaction() as conn:
                cursor = await conn.execute(
                    f"SELECT {_COLUMNS} FROM koodrive_lines WHERE state = 'failed'"
                    " ORDER BY line FOR UPDATE"
                )
                records = [_record(r) for r in await cursor.fetchall()]
                moves = [(r.line, next_files(r)) for r in records if retryable(r)]
                if moves:
                    await conn.cursor().executemany(
                        "UPDATE koodrive_lines SET state = 'pending', retry_files = %(files)s,"
                        " task_id = NULL, result_code = NULL, error_type = NULL, error = NULL,"
                        " outcome = NULL, failed_files = NULL, download_url = NULL,"
                        " fence_until = NULL, holder = NULL, lease_until = NULL,"
                        " updated_at = clock_timestamp() WHERE line = %(line)s",
                        [{"line": line, "files": list(files) or None} for line, files in moves],
                    )
        return len(moves)

    async def attempts(self, line: int | None = None) -> list[AttemptRecord]:
        """Every attempt (of ``line``, or of every line), by line then attempt number."""
        if line is None:
            rows = await self._run(
                f"SELECT {_ATTEMPT_COLUMNS} FROM koodrive_attempts ORDER BY line, attempt"
            )
        else:
            rows = await self._run(
                f"SELECT {_ATTEMPT_COLUMNS} FROM koodrive_attempts WHERE line = %(l)s"
                " ORDER BY attempt",
                {"l": line},
            )
        return [self._attempt(r) for r in rows]

    def _attempt(self, row: tuple[Any, ...] | list[Any]) -> AttemptRecord:
        line, attempt, state, task_id, outcome, result_code, error_type, error = row[:8]
        failed_files, sent_files, submitting_at, submitted_at, finished_at, download_url = row[8:]
        return AttemptRecord(
            line=int(line),
            attempt=int(attempt),
            state=str(state),
            task_id=task_id,
            outcome=outcome,
            result_code=result_code,
            error_type=error_type,
            error=error,
            failed_files=_files(failed_files),
            sent_files=_files(sent_files),
            submitting_at=self._local(submitting_at),
            submitted_at=self._local(submitted_at),
            finished_at=self._local(finished_at),
            download_url=download_url,
        )

    # ------------------------------------------------------------------ transitions

    async def mark_submitting(
        self, line: int, *, clock_offset: float | None = None
    ) -> float | None:
        """Durably record that ``line``'s create is about to be sent (lease guarded).

        Returns:
            The seconds the plan's shared 429 hold still has (0: none).

        Raises:
            LeaseLostError: This worker no longer holds the line.
        """
        # Stored as the service's clock minus the database's.
        offset = None if clock_offset is None else float(clock_offset) - self._skew
        rows = await self._guarded(
            line,
            "UPDATE koodrive_lines SET state = 'submitting', attempts = attempts + 1,"
            " submitting_at = clock_timestamp(), clock_offset = %(offset)s, task_id = NULL,"
            " result_code = NULL, error_type = NULL, error = NULL, outcome = NULL,"
            " failed_files = NULL, download_url = NULL, fence_until = NULL,"
            " submitted_at = NULL, finished_at = NULL, updated_at = clock_timestamp()",
            starts=True,
            offset=offset,
        )
        left = rows[0][1]
        return 0.0 if left is None else max(0.0, float(left))

    async def mark_submitted(self, line: int, task_id: str) -> None:
        """Durably record the task id the create returned for ``line``.

        Not guarded like the others: a task id is the truth about the line,
        so it is recorded while the line is still this journal's (even with
        its lease run out), and also when another worker took it over and it
        is still ``in_doubt``; it then becomes ``submitted`` and this worker's
        again (leased), which waits on it as it meant to.

        Raises:
            LeaseLostError: Another worker holds the line, or settled it: the
                id was not recorded (the line already holds its truth).
        """
        rows = await self._run(
            _following(
                "UPDATE koodrive_lines SET state = 'submitted', task_id = %(task)s,"
                " submitted_at = clock_timestamp(), updated_at = clock_timestamp(),"
                f" fence_until = NULL, holder = %(me)s, worker = %(worker)s,"
                f" lease_until = {_LEASE}"
                " WHERE line = %(line)s AND (holder = %(me)s OR state = 'in_doubt')"
            ),
            self._p(line=line, task=task_id),
        )
        if not rows:
            self._lost(line)
        self._held.add(line)

    async def mark_not_sent(self, line: int, *, error_type: str, error: str) -> None:
        """Put ``line`` back to ``pending`` (its create provably was not acted on), unheld.

        Raises:
            LeaseLostError: This worker no longer holds the line.
        """
        await self._guarded(
            line,
            "UPDATE koodrive_lines SET state = 'pending', error_type = %(et)s, error = %(e)s,"
            " updated_at = clock_timestamp(), holder = NULL, lease_until = NULL",
            et=error_type,
            e=error,
        )
        self._held.discard(line)

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
        """Record the end of a line (succeeded, failed or in doubt) and release it.

        Raises:
            ValueError: ``state`` is not a final state.
            LeaseLostError: This worker no longer holds the line.
        """
        if state not in (State.SUCCEEDED, State.FAILED, State.IN_DOUBT):
            raise ValueError(f"not a final state: {state!r}")
        await self._guarded(
            line,
            "UPDATE koodrive_lines SET state = %(state)s, task_id = coalesce(%(task)s, task_id),"
            " result_code = %(rc)s, error_type = %(et)s, error = %(e)s, outcome = %(o)s,"
            " failed_files = %(ff)s, download_url = %(url)s, finished_at = clock_timestamp(),"
            " updated_at = clock_timestamp(), holder = NULL, lease_until = NULL",
            state=state,
            task=task_id,
            rc=result_code,
            et=error_type,
            e=error,
            o=outcome,
            ff=list(failed_files) if failed_files else None,
            url=download_url,
        )
        self._held.discard(line)

    async def note_error(self, line: int, *, error_type: str, error: str) -> None:
        """Record an error on a line without changing its state (lease guarded)."""
        await self._guarded(
            line,
            "UPDATE koodrive_lines SET error_type = %(et)s, error = %(e)s,"
            " updated_at = clock_timestamp()",
            et=error_type,
            e=error,
        )

    # ------------------------------------------------------------------ queries

    async def lines_in(self, state: str) -> list[int]:
        """The line numbers in ``state``, ascending (all workers)."""
        rows = await self._run(
            "SELECT line FROM koodrive_lines WHERE state = %(s)s ORDER BY line", {"s": state}
        )
        return [int(r[0]) for r in rows]

    async def records(self, state: str | None = None) -> list[LineRecord]:
        """The rows (of one state, or all), by line number."""
        if state is None:
            rows = await self._run(f"SELECT {_COLUMNS} FROM koodrive_lines ORDER BY line")
        else:
            rows = await self._run(
                f"SELECT {_COLUMNS} FROM koodrive_lines WHERE state = %(s)s ORDER BY line",
                {"s": state},
            )
        return [_record(r) for r in rows]

    async def record(self, line: int) -> LineRecord | None:
        """The row of ``line``, or None."""
        row = await self._one(
            f"SELECT {_COLUMNS} FROM koodrive_lines WHERE line = %(l)s", {"l": line}
        )
        return None if row is None else _record(row)

    async def counts(self) -> dict[str, int]:
        """The number of lines per state (the whole plan, all workers)."""
        rows = await self._run("SELECT state, count(*) FROM koodrive_lines GROUP BY state")
        return {str(r[0]): int(r[1]) for r in rows}

    async def line_times(
        self,
    ) -> dict[int, tuple[datetime | None, datetime | None, datetime | None]]:
        """``{line: (submitting_at, submitted_at, finished_at)}`` (this machine's clock)."""
        rows = await self._run(
            "SELECT line, submitting_at, submitted_at, finished_at FROM koodrive_lines"
        )
        return {int(r[0]): (self._local(r[1]), self._local(r[2]), self._local(r[3])) for r in rows}

    async def finished_times(self, limit: int) -> list[tuple[int, datetime, datetime]]:
        """``(line, submitted_at, finished_at)`` of the lines that finished last, newest first.

        At most ``limit`` of each kind: one range of ``koodrive_lines_by_finish``
        per kind, however many lines the plan has (this machine's clock).
        """
        rows = await self._run(
            "SELECT t.line, t.submitted_at, t.finished_at FROM unnest(%(kinds)s::text[]) AS k(kind)"
            " CROSS JOIN LATERAL (SELECT line, submitted_at, finished_at FROM koodrive_lines"
            "  WHERE kind = k.kind AND finished_at IS NOT NULL AND submitted_at IS NOT NULL"
            "  ORDER BY finished_at DESC LIMIT %(n)s) AS t ORDER BY t.finished_at DESC",
            {"kinds": list(KINDS), "n": max(0, int(limit))},
        )
        found: list[tuple[int, datetime, datetime]] = []
        for line, submitted, finished in rows:
            at, end = self._local(submitted), self._local(finished)
            if at is not None and end is not None:
                found.append((int(line), at, end))
        return found

    async def failure_groups(self) -> list[tuple[str, int]]:
        """``(reason, count)`` of the failed and invalid lines, most frequent first."""
        rows = await self._run(
            "SELECT CASE WHEN result_code IS NOT NULL THEN 'resultCode ' || result_code"
            " ELSE coalesce(error_type, 'unknown') END AS reason, count(*)"
            " FROM koodrive_lines WHERE state IN ('failed', 'invalid') GROUP BY reason"
            " ORDER BY 2 DESC, 1"
        )
        return [(str(r[0]), int(r[1])) for r in rows]

    async def outcome_counts(self) -> dict[str, int]:
        """The number of finished lines per outcome (lines without one left out)."""
        rows = await self._run(
            "SELECT outcome, count(*) FROM koodrive_lines WHERE outcome IS NOT NULL"
            " GROUP BY outcome"
        )
        return {str(r[0]): int(r[1]) for r in rows}

    # ------------------------------------------------------------------ rate

    def shared_pacer(self, rate: float | None, burst: float | None = None) -> SharedPacer:
        """A token bucket in this database: ``rate`` creates per second for all workers.

        With ``rate`` None: the shared hold of a 429 only.
        """
        return SharedPacer(self._one, rate, burst)


def _files(value: object) -> tuple[str, ...]:
    """The file ids of a ``text[]`` cell (NULL: none)."""
    return tuple(str(f) for f in value) if isinstance(value, list | tuple) else ()


def _record(row: tuple[Any, ...] | list[Any]) -> LineRecord:
    line, kind, state, task_id, result_code, error_type, error, attempts = row[:8]
    outcome, failed_files, download_url, retry_files = row[8:12]
    return LineRecord(
        line=int(line),
        kind=kind,
        state=str(state),
        task_id=task_id,
        result_code=result_code,
        error_type=error_type,
        error=error,
        attempts=int(attempts),
        outcome=outcome,
        failed_files=_files(failed_files),
        download_url=download_url,
        retry_files=_files(retry_files),
    )


async def _copy_lines(conn: Any, lines: Iterable[PlanEntry]) -> None:
    """Insert plan lines with COPY (in the caller's transaction): valid pending, others invalid."""
    cursor = conn.cursor()
    async with cursor.copy(
        "COPY koodrive_lines (line, line_hash, kind, state, error, error_type) FROM STDIN"
    ) as copy:
        for number, line_hash, kind, error in lines:
            invalid = error is not None
            await copy.write_row(
                (
                    number,
                    line_hash,
                    kind,
                    State.INVALID if invalid else State.PENDING,
                    error,
                    "invalid plan line" if invalid else None,
                )
            )


async def _migrate(conn: Any, location: str) -> tuple[float, str]:
    """Create or check the schema under the migration lock; read the clock and durability.

    Returns:
        The database's clock minus this machine's, in seconds, and the
        session's ``synchronous_commit``.
    """
    async with conn.transaction():
        await conn.execute(MIGRATION_LOCK)
        for statement in STATEMENTS:
            await conn.execute(statement)
        cursor = await conn.execute(
            "INSERT INTO koodrive_meta (key, value) VALUES ('schema_version', %(v)s)"
            " ON CONFLICT (key) DO NOTHING",
            {"v": SCHEMA_VERSION},
        )
        cursor = await conn.execute("SELECT value FROM koodrive_meta WHERE key = 'schema_version'")
        row = await cursor.fetchone()
    version = str(row[0])
    if version != SCHEMA_VERSION:
        raise JournalError(
            f"journal database {location} has schema version {version}, which this release "
            f"cannot read (it reads version {SCHEMA_VERSION}): it was written by a later release"
        )
    before = time.time()
    cursor = await conn.execute("SELECT clock_timestamp(), current_setting('synchronous_commit')")
    row = await cursor.fetchone()
    after = time.time()
    await conn.rollback()
    return float(row[0].timestamp()) - (before + after) / 2, str(row[1])


def _masked(context: str, exc: BaseException, secret: str | None) -> JournalError:
    """A :class:`JournalError` for a driver error, the password cut out of its text."""
    text = str(exc).strip() or type(exc).__name__
    if secret:
        text = text.replace(secret, "***")
    return JournalError(f"{context}: {text}")


def _cause(exc: BaseException, secret: str | None) -> BaseException | None:
    """The driver's error to chain, unless its text quotes the password."""
    return None if secret and secret in str(exc) else exc
