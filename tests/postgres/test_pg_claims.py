"""Claims and leases of the PostgreSQL journal: sharing lines, taking over a stopped worker's.

Leases are real time on the database's clock: the tests use leases of a
fraction of a second and wait for their end with short, bounded sleeps.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from pg_helpers import JournalOpener, entries, load

from koodrive_async.bulk._journal import LeaseLostError, State
from koodrive_async.bulk._postgres import FENCE_MARGIN, X_DATE_WINDOW, PostgresJournal

LEASE = 0.6


async def _expire(*journals: PostgresJournal) -> None:
    """Wait (bounded) until no lease of these journals is live any more."""
    await asyncio.sleep(LEASE + 0.15)
    for journal in journals:
        assert journal.worker_id not in await journal.holders()


async def test_three_workers_claiming_at_once_share_every_line_without_overlap(
    open_journal: JournalOpener,
) -> None:
    journals = [await open_journal(worker_id=f"w{i}") for i in range(3)]
    await load(journals[0], entries(600), "plan")

    async def drain(journal: PostgresJournal) -> list[int]:
        got: list[int] = []
        while not (claim := await journal.claim(25)).empty:
            got += claim.pending
            await asyncio.sleep(0)
        return got

    shares = await asyncio.gather(*(drain(j) for j in journals))
    every = [line for share in shares for line in share]
    assert sorted(every) == list(range(1, 601))  # each line once, none left out
    assert all(shares), "every worker got a share"
    assert await journals[0].holders() == {f"w{i}": len(s) for i, s in enumerate(shares)}


async def test_a_claim_does_not_return_the_lines_this_journal_already_holds(
    open_journal: JournalOpener,
) -> None:
    journal = await open_journal(worker_id="w1")
    await load(journal, entries(5), "plan")
    assert (await journal.claim(3)).pending == (1, 2, 3)
    assert (await journal.claim(10)).pending == (4, 5)
    assert (await journal.claim(10)).empty
    await journal.check_lease(1)


async def test_a_stopped_workers_lines_are_taken_over_with_the_right_states(
    open_journal: JournalOpener,
) -> None:
    stopped = await open_journal(worker_id="stopped", lease=LEASE)
    taker = await open_journal(worker_id="taker", lease=30)
    await load(stopped, entries(4), "plan")
    assert (await stopped.claim(4)).pending == (1, 2, 3, 4)
    await stopped.mark_submitting(1, clock_offset=2.0)  # stopped before its answer
    await stopped.mark_submitting(2, clock_offset=2.0)
    await stopped.mark_submitted(2, "TASK-2")  # stopped while waiting
    await stopped.mark_finished(4, state=State.SUCCEEDED, task_id="TASK-4")
    # Held by a live lease: nothing to take yet.
    assert (await taker.claim(10)).empty
    await _expire(stopped)

    claim = await taker.claim(10)
    assert claim.pending == (3,)
    assert [(r.line, r.state, r.task_id) for r in claim.submitted] == [(2, "submitted", "TASK-2")]
    assert claim.in_doubt == (1,)
    assert await taker.holders() == {"taker": 2}
    (row,) = [r for r in await taker.reconciliation_rows() if r.line == 1]
    assert row.state == State.IN_DOUBT and row.task_id is None
    # The fence: the stopped worker's lease end + the X-Date window + the margin.
    assert row.fence_until is not None
    expected = datetime.now(UTC) + timedelta(seconds=X_DATE_WINDOW + FENCE_MARGIN - LEASE)
    assert abs((row.fence_until - expected).total_seconds()) < 5
    record = await taker.record(1)
    assert record is not None and record.error_type == "interrupted"


async def test_guarded_writes_of_a_worker_whose_lines_were_taken_over_raise(
    open_journal: JournalOpener,
) -> None:
    stopped = await open_journal(worker_id="stopped", lease=LEASE)
    taker = await open_journal(worker_id="taker", lease=30)
    await load(stopped, entries(3), "plan")
    await stopped.claim(3)
    await _expire(stopped)
    assert (await taker.claim(10)).pending == (1, 2, 3)

    assert await stopped.renew() is False
    with pytest.raises(LeaseLostError) as caught:
        await stopped.check_lease(1)
    assert caught.value.line == 1
    with pytest.raises(LeaseLostError):
        await stopped.mark_submitting(1)
    with pytest.raises(LeaseLostError):
        await stopped.mark_not_sent(2, error_type="x", error="y")
    with pytest.raises(LeaseLostError):
        await stopped.mark_finished(3, state=State.FAILED, error="z")
    with pytest.raises(LeaseLostError):
        await stopped.note_error(3, error_type="x", error="y")
    # None of them wrote anything: the taker's lines are as it claimed them.
    assert [(r.line, r.state, r.error) for r in await taker.records()] == [
        (1, State.PENDING, None),
        (2, State.PENDING, None),
        (3, State.PENDING, None),
    ]
    await taker.mark_submitting(1)  # the taker's own writes pass the guard


async def test_a_lease_that_merely_ran_out_also_fails_the_guard(
    open_journal: JournalOpener,
) -> None:
    journal = await open_journal(worker_id="slow", lease=LEASE)
    await load(journal, entries(1), "plan")
    await journal.claim(1)
    await _expire(journal)
    with pytest.raises(LeaseLostError):
        await journal.check_lease(1)  # right before a create: not sent


async def test_a_task_id_that_comes_back_after_a_takeover_is_recorded(
    open_journal: JournalOpener,
) -> None:
    stopped = await open_journal(worker_id="stopped", lease=LEASE)
    taker = await open_journal(worker_id="taker", lease=30)
    await load(stopped, entries(2), "plan")
    await stopped.claim(2)
    await stopped.mark_submitting(1)
    await stopped.mark_submitting(2)
    await _expire(stopped)
    assert (await taker.claim(10)).in_doubt == (1, 2)
    # The stopped worker resumes and records the id its create returned: the
    # truth about the line, so it is kept, and the line is its to wait on again.
    await stopped.mark_submitted(1, "TASK-1")
    record = await taker.record(1)
    assert record is not None and (record.state, record.task_id) == (State.SUBMITTED, "TASK-1")
    await stopped.check_lease(1)
    # A line another worker settled meanwhile keeps what it settled.
    await taker.apply_reconciliation({2: "TASK-2-FOUND"}, [])
    with pytest.raises(LeaseLostError):
        await stopped.mark_submitted(2, "TASK-2-LATE")
    record = await taker.record(2)
    assert record is not None and record.task_id == "TASK-2-FOUND"


async def test_a_fenced_line_is_not_declared_not_created_before_its_fence(
    open_journal: JournalOpener, pg_url: str
) -> None:
    stopped = await open_journal(worker_id="stopped", lease=LEASE)
    taker = await open_journal(worker_id="taker", lease=30)
    await load(stopped, entries(3), "plan")
    await stopped.claim(3)
    await stopped.mark_submitting(1)
    await stopped.mark_finished(2, state=State.IN_DOUBT, error="no answer")  # no fence
    await _expire(stopped)
    assert (await taker.claim(10)).in_doubt == (1,)

    assert await taker.apply_reconciliation({}, [1, 2]) == [2]
    assert (await taker.record(1)).state == State.IN_DOUBT  # type: ignore[union-attr]
    assert (await taker.record(2)).state == State.PENDING  # type: ignore[union-attr]
    await taker.check_lease(2)  # the reconciling worker goes on with it
    # Once the fence has passed (moved back here, as 17 minutes would), it may.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE koodrive_lines SET fence_until = now() - interval '1 s'")
    assert await taker.apply_reconciliation({}, [1]) == [1]
    assert (await taker.record(1)).state == State.PENDING  # type: ignore[union-attr]


async def test_a_worker_holding_row_locks_does_not_block_another_claim(
    open_journal: JournalOpener, pg_url: str
) -> None:
    journal = await open_journal(worker_id="w1")
    await load(journal, entries(10), "plan")
    # A transaction holding row locks, as a stopped worker mid-transaction would.
    with psycopg.connect(pg_url) as blocker:
        blocker.execute("SELECT line FROM koodrive_lines WHERE line <= 5 FOR UPDATE")
        claim = await asyncio.wait_for(journal.claim(10), timeout=10)
        assert claim.pending == (6, 7, 8, 9, 10)
        blocker.rollback()
    assert (await journal.claim(10)).pending == (1, 2, 3, 4, 5)


async def test_renewing_keeps_the_lines_and_release_gives_back_the_unworked_ones(
    open_journal: JournalOpener,
) -> None:
    worker = await open_journal(worker_id="w1", lease=LEASE)
    other = await open_journal(worker_id="w2", lease=30)
    await load(worker, entries(4), "plan")
    await worker.claim(4)
    await worker.mark_submitting(1)
    await worker.mark_submitting(2)
    await worker.mark_submitted(2, "TASK-2")
    for _ in range(3):  # past two lease lengths, renewed every half lease
        await asyncio.sleep(LEASE / 2)
        assert await worker.renew() is True
    assert (await other.claim(10)).empty
    await worker.release()
    # Pending and submitted lines go at once; the "submitting" one keeps its
    # lease until it runs out (then it is taken over in doubt).
    claim = await other.claim(10)
    assert claim.pending == (3, 4)
    assert [r.line for r in claim.submitted] == [2]
    assert await other.holders() == {"w1": 1, "w2": 3}


async def test_a_restarted_worker_with_the_same_id_resumes_its_lines(
    open_journal: JournalOpener,
) -> None:
    before = await open_journal(worker_id="pod-7", lease=30)
    await load(before, entries(3), "plan")
    await before.claim(3)
    await before.mark_submitting(1)
    await before.mark_submitting(2)
    await before.mark_submitted(2, "TASK-2")
    await before._pool.close()  # killed (no release): its leases are live for 30 s more

    after = await open_journal(worker_id="pod-7", lease=30)
    assert await after.mark_interrupted_in_doubt() == [1]
    (row,) = [r for r in await after.reconciliation_rows() if r.line == 1]
    assert row.state == State.IN_DOUBT and row.fence_until is not None
    # The fence starts at the end of the old lease, which was still live.
    assert row.fence_until > datetime.now(UTC) + timedelta(seconds=X_DATE_WINDOW + 20)
    claim = await after.claim(10)  # no waiting for its own old leases
    assert claim.pending == (3,) and [r.line for r in claim.submitted] == [2]
    # Another worker's live lines are not taken by a worker id of its own.
    other = await open_journal(worker_id="pod-8", lease=30)
    assert await other.mark_interrupted_in_doubt() == []
    assert (await other.claim(10)).empty


async def test_next_expiry_says_when_another_workers_lease_ends(
    open_journal: JournalOpener,
) -> None:
    holder = await open_journal(worker_id="w1", lease=30)
    idle = await open_journal(worker_id="w2", lease=30)
    await load(holder, entries(2), "plan")
    assert await idle.next_expiry() is None  # nothing held: nothing to wait for
    await holder.claim(1)
    expiry = await idle.next_expiry()
    assert expiry is not None and 25 < expiry <= 30
    assert await holder.next_expiry() is None  # its own leases do not count
    await holder.mark_finished(1, state=State.SUCCEEDED)
    assert await idle.next_expiry() is None  # finished work holds no lease


async def test_closing_gives_back_the_lines_not_started(open_journal: JournalOpener) -> None:
    leaving = await open_journal(worker_id="w1", lease=30)
    staying = await open_journal(worker_id="w2", lease=30)
    await load(leaving, entries(3), "plan")
    await leaving.claim(3)
    await leaving.mark_submitting(1)
    await leaving.close()
    assert (await staying.claim(10)).pending == (2, 3)
    assert await staying.holders() == {"w1": 1, "w2": 2}
