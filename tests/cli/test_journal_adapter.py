"""The one-machine journal behind the runner's async interface, and choosing a journal."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import job_line, write_plan

from koodrive_async.bulk import (
    SQLiteJournal,
    State,
    SyncJournalAdapter,
    as_async,
    attach_plan,
    is_database_url,
    load_plan,
    open_journal,
)
from koodrive_async.cli._app import journal_target


async def test_the_first_claim_hands_out_everything_and_later_ones_nothing(
    tmp_path: Path,
) -> None:
    plan = load_plan(write_plan(tmp_path / "p.jsonl", [job_line(f"F{i}") for i in range(4)]))
    with SQLiteJournal.open(tmp_path / "j.sqlite") as sqlite:
        await attach_plan(sqlite, plan)
        sqlite.mark_submitting(2)
        sqlite.mark_submitted(2, "job-2")
        journal = as_async(sqlite)
        assert isinstance(journal, SyncJournalAdapter) and as_async(journal) is journal
        assert journal.worker_id == "local" and journal.lease is None
        first = await journal.claim(1)
        assert first.pending == (1, 3, 4)
        assert [r.line for r in first.submitted] == [2] and first.in_doubt == ()
        assert (await journal.claim(10)).empty
        assert await journal.next_expiry() is None and await journal.holders() == {}
        await journal.check_lease(1)  # never lost
        assert await journal.renew()


async def test_lines_a_reconciliation_resends_are_never_claimed_again(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path / "p.jsonl", [job_line("A"), job_line("B")]))
    with SQLiteJournal.open(tmp_path / "j.sqlite") as sqlite:
        await attach_plan(sqlite, plan)
        journal = as_async(sqlite)
        assert (await journal.claim(10)).pending == (1, 2)
        for line in (1, 2):
            await journal.mark_submitting(line)
        assert await journal.mark_interrupted_in_doubt() == [1, 2]
        # The reconciliation gives line 2 back: the caller sends it, no claim does.
        assert await journal.apply_reconciliation({1: "job-1"}, [2]) == [2]
        assert await journal.lines_in(State.PENDING) == [2]
        assert (await journal.claim(10)).empty


async def test_open_journal_by_path_or_beside_the_plan(tmp_path: Path) -> None:
    plan = write_plan(tmp_path / "p.jsonl", [job_line("A")])
    async with open_journal(None, plan=plan) as journal:
        assert journal.location.endswith("p.journal.sqlite")
        assert await journal.is_new()
    async with open_journal(tmp_path / "other.sqlite") as journal:
        assert journal.location.endswith("other.sqlite")
    with pytest.raises(ValueError, match="target or the plan"):
        async with open_journal(None):
            pass


def test_the_journal_flag_and_the_environment() -> None:
    url = "postgresql://koo@db.example/plans"
    assert is_database_url(url) and is_database_url("postgres://x/y")
    assert not is_database_url("journal.sqlite") and not is_database_url(Path("postgresql:"))
    # Any case, and libpq's key=value form: never a file (it would hold the password).
    assert is_database_url("POSTGRESQL://koo@db/plans")
    assert is_database_url("host=db user=kd password=s3cret dbname=kd")
    assert journal_target("host=db dbname=kd", {}) == "host=db dbname=kd"
    assert not is_database_url("plans/journal=1.sqlite")
    assert journal_target(None, {}) is None
    assert journal_target("j.sqlite", {"KOODRIVE_JOURNAL_URL": url}) == Path("j.sqlite")
    assert journal_target(None, {"KOODRIVE_JOURNAL_URL": url}) == url
    assert journal_target(url, {}) == url
    assert journal_target(None, {"KOODRIVE_JOURNAL_URL": ""}) is None
