"""Loading a plan into the PostgreSQL journal: one plan, loaded once, by the first worker."""

from __future__ import annotations

import asyncio

import pytest
from pg_helpers import JournalOpener, entries, load

from koodrive_async.bulk._journal import JournalError, JournalMismatchError, State


async def test_three_workers_loading_at_once_record_one_plan(open_journal: JournalOpener) -> None:
    journals = await asyncio.gather(*(open_journal(worker_id=f"w{i}") for i in range(3)))
    lines = entries(500)
    outcomes = await asyncio.gather(*(load(j, lines, "plan-a") for j in journals))
    assert sorted(outcomes) == ["initialized", "verified", "verified"]
    assert await journals[0].counts() == {State.PENDING: 500}
    assert await journals[2].line_hashes() == {n: h for n, h, _k, _e in lines}


async def test_a_plan_with_lines_appended_is_extended(open_journal: JournalOpener) -> None:
    first, second = await open_journal(worker_id="w1"), await open_journal(worker_id="w2")
    assert await load(first, entries(10), "plan-a") == "initialized"
    grown = entries(10) + entries(5, start=11) + [(16, "h16", None, "not JSON")]
    assert await load(second, grown, "plan-a-grown") == "extended"
    assert await first.counts() == {State.PENDING: 15, State.INVALID: 1}
    assert await first.get_meta("plan_hash") == "plan-a-grown"
    # The grown plan is now the journal's plan: loading it again verifies it.
    assert await load(first, grown, "plan-a-grown") == "verified"
    (invalid,) = await first.records(State.INVALID)
    assert (invalid.line, invalid.error) == (16, "not JSON")
    assert invalid.error_type == "invalid plan line"


async def test_a_journal_of_another_plan_is_refused(open_journal: JournalOpener) -> None:
    journal = await open_journal()
    await load(journal, entries(10), "plan-a")
    with pytest.raises(JournalMismatchError, match="different plan"):
        await journal.check_plan("plan-b")
    with pytest.raises(JournalMismatchError) as caught:
        await load(journal, entries(10, salt="other"), "plan-b")
    assert caught.value.line == 1


async def test_a_plan_is_initialised_once_and_a_line_recorded_once(
    open_journal: JournalOpener,
) -> None:
    journal = await open_journal()
    with pytest.raises(JournalError, match="no plan to extend"):
        await journal.extend_plan(plan_hash="x", plan_name="p", lines=entries(1))
    await journal.initialize(plan_hash="plan-a", plan_name="p", lines=entries(3))
    with pytest.raises(JournalError, match="already holds a plan"):
        await journal.initialize(plan_hash="plan-a", plan_name="p", lines=entries(3))
    with pytest.raises(JournalError, match="already records such a line"):
        await journal.extend_plan(plan_hash="plan-b", plan_name="p", lines=entries(2, start=3))
    # Both refusals were atomic: nothing of them was kept.
    assert await journal.counts() == {State.PENDING: 3}
    assert await journal.get_meta("plan_hash") == "plan-a"


async def test_two_plans_live_in_one_database_in_two_schemas(pg_url: str) -> None:
    import psycopg

    from koodrive_async.bulk._postgres import PostgresJournal

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA moves")
        conn.execute("CREATE SCHEMA copies")
    moves = await PostgresJournal.open(pg_url + "?options=-csearch_path%3Dmoves")
    copies = await PostgresJournal.open(pg_url + "?options=-csearch_path%3Dcopies")
    try:
        await load(moves, entries(3), "plan-moves")
        await load(copies, entries(5, salt="c"), "plan-copies")
        assert await moves.counts() == {State.PENDING: 3}
        assert await copies.counts() == {State.PENDING: 5}
        assert "search_path" in moves.location
    finally:
        await moves.close()
        await copies.close()
