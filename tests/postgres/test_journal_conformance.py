"""What every async journal backend does alike: the line states, the queries, the reconciliation.

Parametrized over ``journal_factory``: the PostgreSQL backend here; the SQLite
one joins through its async adapter (``bulk/_sync_adapter.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pg_helpers import JournalOpener, entries

from koodrive_async.bulk._journal import Outcome, State

Factory = Callable[[], Awaitable[Any]]


# TODO(lead): add "sqlite" once bulk/_sync_adapter.py wraps SQLiteJournal in the
# async interface: open it on tmp_path / "plan.journal.sqlite" in journal_factory.
@pytest.fixture(params=["postgresql"])
async def journal_factory(
    request: pytest.FixtureRequest, open_journal: JournalOpener
) -> AsyncIterator[Factory]:
    """Opens a journal of the backend under test (each call: one more worker on it)."""
    assert request.param == "postgresql"
    yield lambda: open_journal(lease=30)


async def _plan(factory: Factory, count: int = 6) -> Any:
    journal = await factory()
    lines = entries(count) + [(count + 1, "bad", None, "not JSON")]
    await journal.initialize(plan_hash="plan", plan_name="plan.jsonl", lines=lines)
    claim = await journal.claim(100)
    assert claim.pending == tuple(range(1, count + 1))  # invalid lines are never claimed
    return journal


async def test_a_line_goes_through_its_states_and_the_queries_follow(
    journal_factory: Factory,
) -> None:
    journal = await _plan(journal_factory)
    before = datetime.now(UTC) - timedelta(seconds=5)
    await journal.mark_submitting(1, clock_offset=1.5)
    assert await journal.lines_in(State.SUBMITTING) == [1]
    await journal.mark_submitted(1, "T1")
    await journal.note_error(1, error_type="wait lost", error="timeout")
    await journal.mark_finished(
        1,
        state=State.SUCCEEDED,
        outcome=Outcome.PARTIALLY_FAILED,
        failed_files=("f1", "f2"),
        download_url="https://dl.example/p?token=x",
    )
    await journal.mark_submitting(2)
    await journal.mark_finished(2, state=State.FAILED, error_type="refused 123", error="no")
    await journal.mark_submitting(3)
    await journal.mark_submitted(3, "T3")
    await journal.mark_finished(3, state=State.FAILED, result_code="18000001")
    await journal.mark_submitting(4)
    await journal.mark_not_sent(4, error_type="connect", error="refused")
    await journal.mark_submitting(5)
    await journal.mark_finished(5, state=State.IN_DOUBT, error_type="timeout", error="no answer")

    assert await journal.counts() == {
        State.SUCCEEDED: 1,
        State.FAILED: 2,
        State.PENDING: 2,
        State.IN_DOUBT: 1,
        State.INVALID: 1,
    }
    first = await journal.record(1)
    assert (first.state, first.task_id, first.attempts) == (State.SUCCEEDED, "T1", 1)
    assert first.failed_files == ("f1", "f2") and first.outcome == Outcome.PARTIALLY_FAILED
    assert first.download_url == "https://dl.example/p?token=x"
    assert [r.line for r in await journal.records(State.FAILED)] == [2, 3]
    assert (await journal.record(4)).error == "refused"
    assert await journal.outcome_counts() == {Outcome.PARTIALLY_FAILED: 1}
    assert await journal.failure_groups() == [
        ("invalid plan line", 1),
        ("refused 123", 1),
        ("resultCode 18000001", 1),
    ]
    submitting, submitted, finished = (await journal.line_times())[1]
    assert submitting is not None and submitted is not None and finished is not None
    assert before < submitting <= submitted <= finished < datetime.now(UTC) + timedelta(seconds=5)
    last = await journal.last_activity()
    assert last is not None and before < last
    assert await journal.last_activity(State.SUBMITTING) is None


async def test_reconciliation_reads_and_commits_the_decision(journal_factory: Factory) -> None:
    journal = await _plan(journal_factory)
    for line in (1, 2, 3):
        await journal.mark_submitting(line, clock_offset=-2.0)
    await journal.mark_submitted(1, "T1")
    await journal.mark_finished(2, state=State.IN_DOUBT, error="no answer")
    await journal.mark_finished(3, state=State.IN_DOUBT, error="no answer")
    rows = await journal.reconciliation_rows()
    assert [(r.line, r.state, r.task_id) for r in rows] == [
        (1, State.SUBMITTED, "T1"),
        (2, State.IN_DOUBT, None),
        (3, State.IN_DOUBT, None),
    ]
    assert rows[1].clock_offset == pytest.approx(-2.0, abs=0.5)
    assert rows[1].submitting_at is not None and rows[1].fence_until is None
    # Line 1 is not in doubt: untouched, and not among the lines to send again.
    assert await journal.apply_reconciliation({2: "T2"}, [3, 1]) == [3]
    assert [(r.line, r.state, r.task_id) for r in await journal.records()][:3] == [
        (1, State.SUBMITTED, "T1"),
        (2, State.SUBMITTED, "T2"),
        (3, State.PENDING, None),
    ]
    await journal.mark_submitting(3)  # resent by the run that reconciled


async def test_resets_put_in_doubt_and_refused_lines_back_to_pending(
    journal_factory: Factory,
) -> None:
    journal = await _plan(journal_factory)
    await journal.mark_submitting(1)
    await journal.mark_finished(1, state=State.IN_DOUBT)
    await journal.mark_submitting(2)
    await journal.mark_finished(2, state=State.FAILED, error="refused")
    await journal.mark_submitting(3)
    await journal.mark_submitted(3, "T3")
    await journal.mark_finished(3, state=State.FAILED, result_code="18000001")
    assert await journal.reset_in_doubt() == 1
    assert await journal.reset_rejected() == 1  # line 3 ran: it stays failed
    assert await journal.lines_in(State.PENDING) == [1, 2, 4, 5, 6]
    # Reset lines are free for whichever worker claims them.
    other = await journal_factory()
    assert (await other.claim(10)).pending == (1, 2)


async def test_runs_are_numbered_and_their_ends_recorded(journal_factory: Factory) -> None:
    journal = await _plan(journal_factory)
    first = await journal.begin_run()
    await journal.end_run(first, outcome="completed", requests=12)
    assert await journal.begin_run() == first + 1
