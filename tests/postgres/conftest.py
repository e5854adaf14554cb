"""A real PostgreSQL for the journal's tests: ``KOODRIVE_TEST_PG_URL``, or one started here.

The session starts a throwaway server with ``.ci/postgres`` (initdb + pg_ctl on
loopback) unless ``KOODRIVE_TEST_PG_URL`` names one, and every test gets a
database of its own (``CREATE DATABASE … TEMPLATE template0``), dropped after.
When no server can be had the tests are skipped, but only outside CI: with
``CI`` set they fail, so that a CI run never passes without them.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The many-worker tests run the command line against an emulator, as tests/cli does.
sys.path.insert(0, str(ROOT / "tests" / "cli"))
SCRIPT = ROOT / ".ci" / "postgres"

#: With CI set, nothing is skipped: a missing driver or server fails the run.
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

psycopg = __import__("psycopg") if IN_CI else pytest.importorskip("psycopg")

from cli_fixtures import cli_env, emu, emulator_config  # noqa: E402
from pg_helpers import JournalOpener  # noqa: E402

from koodrive_async.bulk._postgres import PostgresJournal  # noqa: E402

__all__ = ["cli_env", "emu", "emulator_config", "open_journal", "pg_server", "pg_url"]


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"PostgreSQL is required in CI: {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL: {reason} (set KOODRIVE_TEST_PG_URL, or install PostgreSQL)")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of a PostgreSQL server for the whole session."""
    url = os.environ.get("KOODRIVE_TEST_PG_URL")
    if url:
        yield url
        return
    # Not pytest's tmp_path: its folders are private to root, and the server
    # runs as the postgres user when the tests run as root.
    folder = tempfile.mkdtemp(prefix="koodrive-pg-")
    os.chmod(folder, 0o755)
    try:
        started = subprocess.run(
            ["bash", str(SCRIPT), "start", folder],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f".ci/postgres start failed: {exc}")
    if started.returncode != 0:
        _unavailable(f".ci/postgres start exited {started.returncode}: {started.stderr.strip()}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", folder], timeout=120, check=False)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty database for one test (dropped after it)."""
    name = f"koodrive_test_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(pg_server, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    except psycopg.Error as exc:
        _unavailable(f"cannot create a database on {pg_server}: {exc}")
    try:
        yield _with_database(pg_server, name)
    finally:
        with psycopg.connect(pg_server, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def open_journal(pg_url: str) -> AsyncIterator[JournalOpener]:
    """Opens journals on the test's database; closes every one after the test."""
    opened: list[PostgresJournal] = []

    async def opener(**kwargs: object) -> PostgresJournal:
        journal = await PostgresJournal.open(pg_url, **kwargs)  # type: ignore[arg-type]
        opened.append(journal)
        return journal

    yield opener
    for journal in opened:
        await journal.close()
