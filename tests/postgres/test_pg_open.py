"""Opening the PostgreSQL journal: the versioned schema, concurrent openers, masking, the driver."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from pg_helpers import JournalOpener

from koodrive_async.bulk._journal import JournalError
from koodrive_async.bulk._pg_schema import SCHEMA_VERSION
from koodrive_async.bulk._postgres import PostgresJournal, mask_database_url

SECRET = "S3cr3t-pw-9f1c"


async def test_open_creates_the_versioned_schema_and_opening_again_keeps_it(
    open_journal: JournalOpener,
) -> None:
    first = await open_journal(worker_id="w1")
    assert await first.get_meta("schema_version") == SCHEMA_VERSION == "1"
    assert await first.is_new()
    await first.close()
    again = await open_journal(worker_id="w1")
    assert await again.get_meta("schema_version") == "1"
    assert await again.counts() == {}


async def test_three_workers_opening_at_once_create_the_schema_once(
    open_journal: JournalOpener,
) -> None:
    journals = await asyncio.gather(*(open_journal(worker_id=f"w{i}") for i in range(3)))
    versions = await asyncio.gather(*(j.get_meta("schema_version") for j in journals))
    assert versions == ["1", "1", "1"]


async def test_a_database_of_a_later_schema_version_is_refused(
    open_journal: JournalOpener, pg_url: str
) -> None:
    await (await open_journal()).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE koodrive_meta SET value = '2' WHERE key = 'schema_version'")
    with pytest.raises(JournalError, match="schema version 2.*later release"):
        await PostgresJournal.open(pg_url)


async def test_bad_arguments_are_refused_before_connecting(pg_url: str) -> None:
    for kwargs in ({"lease": 0}, {"lease": float("nan")}, {"pool_size": 1}, {"worker_id": " "}):
        with pytest.raises(ValueError):
            await PostgresJournal.open(pg_url, **kwargs)  # type: ignore[arg-type]


def test_the_location_never_holds_the_password() -> None:
    url = f"postgresql://alice:{SECRET}@db.example:5433/plans?sslmode=require&password={SECRET}"
    masked = mask_database_url(url)
    assert SECRET not in masked
    assert masked == "postgresql://alice@db.example:5433/plans?sslmode=require"
    conninfo = mask_database_url(f"host=db.example dbname=plans password={SECRET} user=alice")
    assert SECRET not in conninfo and "db.example" in conninfo


def _with_password(url: str, user: str, password: str, database: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
    path = "/" + database if database else parts.path
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))


def _chain(exc: BaseException | None) -> str:
    texts = []
    while exc is not None:
        texts.append(f"{type(exc).__name__}: {exc} {exc.args!r}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(texts)


async def test_a_bad_password_does_not_leak_into_the_error(pg_url: str) -> None:
    # .ci/postgres asks this role (alone) for its password.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS koodrive_password")
        conn.execute("CREATE ROLE koodrive_password LOGIN PASSWORD 'the-right-one'")
    try:
        url = _with_password(pg_url, "koodrive_password", SECRET)
        with pytest.raises(JournalError) as caught:
            await PostgresJournal.open(url, connect_timeout=5)
        assert "password authentication failed" in str(caught.value)
        assert SECRET not in _chain(caught.value)
        assert SECRET not in repr(caught.value)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP ROLE IF EXISTS koodrive_password")


async def test_an_error_after_opening_and_the_repr_hold_no_password(pg_url: str) -> None:
    url = _with_password(pg_url, "postgres", SECRET)  # trusted: the password is not checked
    journal = await PostgresJournal.open(url, worker_id="w1")
    try:
        assert SECRET not in journal.location and SECRET not in repr(journal)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP TABLE koodrive_lines")
        with pytest.raises(JournalError) as caught:
            await journal.counts()
        assert "koodrive_lines" in str(caught.value)
        assert SECRET not in _chain(caught.value)
    finally:
        await journal.close()
    missing = _with_password(pg_url, "postgres", SECRET, database="no_such_database")
    with pytest.raises(JournalError) as caught:
        await PostgresJournal.open(missing, connect_timeout=5)
    assert "no_such_database" in str(caught.value) and SECRET not in _chain(caught.value)


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_importing_the_bulk_package_does_not_import_the_driver() -> None:
    done = _python(
        "import sys, koodrive_async.bulk, koodrive_async.bulk._postgres\n"
        "assert 'psycopg' not in sys.modules, 'psycopg imported'\n"
        "assert 'psycopg_pool' not in sys.modules, 'psycopg_pool imported'\n"
    )
    assert done.returncode == 0, done.stderr


def test_without_the_driver_opening_says_which_extra_to_install() -> None:
    done = _python(
        "import asyncio, sys\n"
        "sys.modules['psycopg'] = None  # as if it were not installed\n"
        "from koodrive_async.bulk._journal import JournalError\n"
        "from koodrive_async.bulk._postgres import PostgresJournal\n"
        "try:\n"
        "    asyncio.run(PostgresJournal.open('postgresql://u@127.0.0.1:1/x'))\n"
        "except JournalError as exc:\n"
        "    print(exc)\n"
    )
    assert done.returncode == 0, done.stderr
    assert "koodrive-async[postgres]" in done.stdout


async def test_commits_stay_durable_when_the_database_default_is_not(
    open_journal: JournalOpener, pg_url: str
) -> None:
    database = urlsplit(pg_url).path.lstrip("/")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" SET synchronous_commit = off')
    journal = await open_journal(worker_id="w1")
    (setting,) = await journal._one("SELECT current_setting('synchronous_commit')")
    assert setting == "on"
