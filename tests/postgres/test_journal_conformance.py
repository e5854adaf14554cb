"""What every journal backend does alike, seen through the runner's async ``Journal``.

Parametrized over ``journal_factory``: the SQLite backend (through
``SyncJournalAdapter``, as the runner sees it) and the PostgreSQL one. The
assertions are the same for both: the runner, the reconciliation and the
reports must not be able to tell which backend they run on. Where the two
must differ it is because of what a backend is for, and the test says so:
a SQLite journal belongs to one run at a time (its file lock refuses a second
one), a PostgreSQL journal to any number of workers at once, each holding its
own lines under a lease.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import job_line, write_plan
from pg_helpers import entries

from koodrive_async.bulk import SQLiteJournal, SyncJournalAdapter, attach_plan, load_plan
from koodrive_async.bulk._journal import (
    Journal,
    JournalBusyError,
    JournalError,
    JournalMismatchError,
    LineRecord,
    Outcome,
    PlanEntry,
    State,
)
from koodrive_async.bulk._postgres import PostgresJournal

BACKENDS = ["sqlite", "postgresql"]


class Backend:
    """Opens journals of one backend on one plan's journal, and closes them after the test."""

    def __init__(self, name: str, opener: Callable[..., Awaitable[Journal]], path: Path) -> None:
        self.name = name
        self._opener = opener
        self._path = path

    async def __call__(self) -> Journal:
        """A journal on the test's plan: a run (SQLite) or one more worker (PostgreSQL)."""
        return await self._opener()

    async def another(self, journal: Journal) -> Journal:
        """The journal the next run (SQLite) or another worker (PostgreSQL) sees.

        They differ here by design: a SQLite journal is one run's at a time,
        so a second run is refused while ``journal``'s holds the file lock,
        and starts once it closes; PostgreSQL workers share the plan at once
        (``journal`` stays open, holding the lines it claimed).
        """
        if self.name == "sqlite":
            with pytest.raises(JournalBusyError):
                SQLiteJournal.open(self._path)
            assert isinstance(journal, SyncJournalAdapter)
            journal.inner.close()
        return await self()

    async def restart(self, journal: Journal) -> Journal:
        """The journal of the same run (SQLite) or worker (PostgreSQL) started again.

        For PostgreSQL: a worker of the same worker id (a different one takes
        over only after the lease ends; see ``test_pg_claims.py``).
        """
        if self.name == "sqlite":
            return await self.another(journal)
        return await self._opener(worker_id=journal.worker_id)


@pytest.fixture(params=BACKENDS)
async def journal_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """The backend under test (the PostgreSQL server is started only for its own param)."""
    path = tmp_path / "plan.journal.sqlite"
    sqlite: list[SQLiteJournal] = []
    postgres: list[PostgresJournal] = []
    if request.param == "sqlite":

        async def opener() -> Journal:
            inner = SQLiteJournal.open(path)
            sqlite.append(inner)
            return SyncJournalAdapter(inner)

    else:
        url = request.getfixturevalue("pg_url")

        async def opener(**kwargs: Any) -> Journal:
            journal = await PostgresJournal.open(url, lease=30, **kwargs)
            postgres.append(journal)
            return journal

    yield Backend(request.param, opener, path)
    for journal in postgres:
        await journal.close()
    for inner in sqlite:
        inner.close()


async def _record(journal: Journal, line: int) -> LineRecord:
    (record,) = [r for r in await journal.records() if r.line == line]
    return record


async def _plan(factory: Backend, count: int = 6, *, kinds: dict[int, str] | None = None) -> Any:
    journal = await factory()
    lines: list[PlanEntry] = [
        (n, line_hash, (kinds or {}).get(n, kind), error)
        for n, line_hash, kind, error in entries(count)
    ]
    lines.append((count + 1, "bad", None, "not JSON"))
    await journal.initialize(plan_hash="plan", plan_name="plan.jsonl", lines=lines)
    claim = await journal.claim(100)
    assert claim.pending == tuple(range(1, count + 1))  # invalid lines are never claimed
    return journal


# --------------------------------------------------------------------------- plan


async def test_a_plan_is_loaded_grown_and_refused_when_a_recorded_line_changed(
    journal_factory: Backend, tmp_path: Path
) -> None:
    journal = await journal_factory()
    lines = [job_line(f"F{n}") for n in range(1, 6)]
    first = load_plan(write_plan(tmp_path / "a.jsonl", lines[:3]))
    assert await journal.is_new()
    assert await attach_plan(journal, first) == 0
    assert not await journal.is_new()
    assert await journal.counts() == {State.PENDING: 3}
    assert await journal.line_hashes() == {ln.number: ln.line_hash for ln in first.lines}
    # The same plan again: nothing to add; with two lines (one invalid) appended: added.
    assert await attach_plan(journal, first) == 0
    grown = load_plan(write_plan(tmp_path / "b.jsonl", [*lines[:4], "{not json"]))
    assert await attach_plan(journal, grown) == 2
    assert await journal.counts() == {State.PENDING: 4, State.INVALID: 1}
    (invalid,) = await journal.records(State.INVALID)
    assert (invalid.line, invalid.kind, invalid.error_type) == (5, None, "invalid plan line")
    assert await attach_plan(journal, grown) == 0
    # A recorded line changed: refused, naming it, and nothing recorded.
    edited = load_plan(write_plan(tmp_path / "c.jsonl", [lines[0], lines[4], *lines[2:4]]))
    with pytest.raises(JournalMismatchError, match="line 2 is changed") as caught:
        await attach_plan(journal, edited)
    assert caught.value.line == 2
    assert await journal.counts() == {State.PENDING: 4, State.INVALID: 1}


async def test_a_plan_is_initialised_once_and_a_line_recorded_once(
    journal_factory: Backend,
) -> None:
    journal = await journal_factory()
    with pytest.raises(JournalError, match="no plan to extend"):
        await journal.extend_plan(plan_hash="x", plan_name="p", lines=entries(1))
    await journal.initialize(plan_hash="plan-a", plan_name="p", lines=entries(3))
    with pytest.raises(JournalError, match="already holds a plan"):
        await journal.initialize(plan_hash="plan-a", plan_name="p", lines=entries(3))
    with pytest.raises(JournalError, match="already records such a line"):
        await journal.extend_plan(plan_hash="plan-b", plan_name="p", lines=entries(2, start=3))
    # Both refusals were atomic: nothing of them was kept.
    assert await journal.counts() == {State.PENDING: 3}
    await journal.extend_plan(plan_hash="plan-b", plan_name="p", lines=entries(2, start=4))
    assert sorted(await journal.line_hashes()) == [1, 2, 3, 4, 5]


# --------------------------------------------------------------------------- states


async def test_a_line_goes_through_its_states_and_the_queries_follow(
    journal_factory: Backend,
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
    first = await _record(journal, 1)
    assert (first.state, first.task_id, first.attempts) == (State.SUCCEEDED, "T1", 1)
    assert first.failed_files == ("f1", "f2") and first.outcome == Outcome.PARTIALLY_FAILED
    assert first.download_url == "https://dl.example/p?token=x"
    assert first.retry_files == ()
    assert [r.line for r in await journal.records(State.FAILED)] == [2, 3]
    assert (await _record(journal, 4)).error == "refused"
    assert await journal.lines_in(State.PENDING) == [4, 6]
    assert await journal.outcome_counts() == {Outcome.PARTIALLY_FAILED: 1}
    assert await journal.failure_groups() == [
        ("invalid plan line", 1),
        ("refused 123", 1),
        ("resultCode 18000001", 1),
    ]
    times = await journal.line_times()
    submitting, submitted, finished = times[1]
    assert submitting is not None and submitted is not None and finished is not None
    assert before < submitting <= submitted <= finished < datetime.now(UTC) + timedelta(seconds=5)
    assert times[6] == (None, None, None)
    assert times[2][0] is not None and times[2][1] is None and times[2][2] is not None
    last = await journal.last_activity()
    assert last is not None and before < last
    assert await journal.last_activity(State.SUBMITTING) is None
    in_doubt_at = await journal.last_activity(State.IN_DOUBT)
    assert in_doubt_at is not None and before < in_doubt_at <= last


async def test_finished_times_are_the_newest_of_each_kind_a_bounded_read(
    journal_factory: Backend,
) -> None:
    # Lines 1-8 jobs, 9-10 transfers; 8 never submitted, 10 submitted and not finished.
    journal = await _plan(journal_factory, 10, kinds={9: "transfer", 10: "transfer"})
    for line in range(1, 11):
        if line == 8:
            await journal.mark_finished(line, state=State.FAILED, error="refused")
            continue
        await journal.mark_submitting(line)
        await journal.mark_submitted(line, f"T{line}")
        if line != 10:
            await journal.mark_finished(line, state=State.SUCCEEDED)
    got = await journal.finished_times(3)
    times = await journal.line_times()
    # At most 3 of each kind, newest first, only lines with both times.
    assert [t[2] for t in got] == sorted((t[2] for t in got), reverse=True)
    jobs = [line for line, _at, _end in got if line <= 8]
    assert len(jobs) == 3 and [line for line, _at, _end in got if line > 8] == [9]
    for line, submitted, finished in got:
        assert (submitted, finished) == times[line][1:]
    # The 3 jobs are the newest (ties on a clock tick aside).
    oldest_kept = min(times[line][2] for line in jobs)  # type: ignore[type-var]
    assert all(times[n][2] <= oldest_kept for n in range(1, 8) if n not in jobs)  # type: ignore[operator]
    assert await journal.finished_times(0) == []


async def test_plan_counts_are_the_counts_and_the_holders_in_one_read(
    journal_factory: Backend,
) -> None:
    journal = await _plan(journal_factory, 4)  # holds lines 1-4 (a SQLite run holds no lease)
    await journal.mark_submitting(1)
    await journal.mark_submitted(1, "T1")
    await journal.mark_finished(1, state=State.SUCCEEDED)
    counts = await journal.plan_counts()
    assert counts.states == await journal.counts()
    assert counts.states == {State.SUCCEEDED: 1, State.PENDING: 3, State.INVALID: 1}
    assert (counts.total, counts.finished) == (4, 1)
    assert counts.holders == await journal.holders()
    assert counts.holders == ({} if journal_factory.name == "sqlite" else {journal.worker_id: 3})


async def test_a_line_left_submitting_by_an_earlier_run_is_in_doubt(
    journal_factory: Backend,
) -> None:
    journal = await _plan(journal_factory, 2)
    await journal.mark_submitting(1)
    # The run stops here; the next one (or a restart of the same worker) resumes.
    resumed = await journal_factory.restart(journal)
    assert await resumed.mark_interrupted_in_doubt() == [1]
    record = await _record(resumed, 1)
    assert (record.state, record.error_type) == (State.IN_DOUBT, "interrupted")
    (attempt,) = await resumed.attempts(1)
    assert (attempt.state, attempt.error_type) == (State.IN_DOUBT, "interrupted")
    assert await resumed.mark_interrupted_in_doubt() == []


async def test_reconciliation_reads_and_commits_the_decision(journal_factory: Backend) -> None:
    journal = await _plan(journal_factory)
    for line in (1, 2, 3):
        await journal.mark_submitting(line, clock_offset=-2.0)
    await journal.mark_submitted(1, "T1")
    await journal.mark_finished(2, state=State.IN_DOUBT, error="no answer")
    await journal.mark_finished(3, state=State.IN_DOUBT, error="no answer")
    rows = await journal.reconciliation_rows()
    assert [(r.line, r.state, r.task_id, r.retry_files) for r in rows] == [
        (1, State.SUBMITTED, "T1", ()),
        (2, State.IN_DOUBT, None, ()),
        (3, State.IN_DOUBT, None, ()),
    ]
    assert rows[1].clock_offset == pytest.approx(-2.0, abs=0.5)
    assert rows[1].submitting_at is not None and rows[1].changed_at is not None
    assert rows[1].submitting_at <= rows[1].changed_at
    assert rows[1].fence_until is None  # only a takeover from a stopped worker is fenced
    assert await journal.apply_reconciliation({2: "T2"}, [3]) == [3]
    assert [(r.line, r.state, r.task_id) for r in await journal.records()][:3] == [
        (1, State.SUBMITTED, "T1"),
        (2, State.SUBMITTED, "T2"),
        (3, State.PENDING, None),
    ]
    # Each attempt says what became of it: line 2's made T2, line 3's nothing.
    assert [(a.state, a.task_id) for a in await journal.attempts(2)] == [(State.SUBMITTED, "T2")]
    assert [(a.state, a.task_id) for a in await journal.attempts(3)] == [(State.PENDING, None)]
    await journal.mark_submitting(3)  # resent by the run that reconciled
    assert [a.attempt for a in await journal.attempts(3)] == [1, 2]


async def test_reconciliation_changes_only_lines_still_in_doubt(
    journal_factory: Backend,
) -> None:
    journal = await _plan(journal_factory, 2)
    await journal.mark_submitting(1)
    await journal.mark_submitted(1, "T1")
    await journal.mark_submitting(2)
    await journal.mark_finished(2, state=State.IN_DOUBT)
    resent = await journal.apply_reconciliation({1: "OTHER"}, [1, 2])
    assert [(r.line, r.state, r.task_id) for r in await journal.records()][:2] == [
        (1, State.SUBMITTED, "T1"),
        (2, State.PENDING, None),
    ]
    assert resent == [2]


async def test_resets_put_in_doubt_and_refused_lines_back_to_pending(
    journal_factory: Backend,
) -> None:
    journal = await _plan(journal_factory)
    await journal.mark_submitting(1)
    await journal.mark_finished(1, state=State.IN_DOUBT)
    await journal.mark_submitting(2)
    await journal.mark_finished(2, state=State.FAILED, error="refused")
    await journal.mark_submitting(3)
    await journal.mark_submitted(3, "T3")
    await journal.mark_finished(3, state=State.FAILED, result_code="18000001")
    for line in (4, 5, 6):
        await journal.mark_submitting(line)
        await journal.mark_submitted(line, f"T{line}")
        await journal.mark_finished(line, state=State.SUCCEEDED)
    assert await journal.reset_in_doubt() == 1
    assert await journal.reset_rejected() == 1  # line 3 ran: it stays failed
    assert await journal.lines_in(State.PENDING) == [1, 2]
    # A reset changes the line only: each attempt keeps how it ended.
    assert [a.state for a in await journal.attempts(1)] == [State.IN_DOUBT]
    assert [a.state for a in await journal.attempts(2)] == [State.FAILED]
    # Reset lines are held by nobody: the next run, or any worker, takes them.
    assert await journal.holders() == {}
    other = await journal_factory.another(journal)
    assert (await other.claim(10)).pending == (1, 2)


# --------------------------------------------------------------------------- retry-failed


async def _finish_failed_plan(journal: Journal) -> None:
    """Lines 1..7 of ``_plan(..., 7)`` end in every way ``reset_failed`` must tell apart."""
    for line in range(1, 8):
        await journal.mark_submitting(line)
    for line in (1, 2, 3, 4, 7):
        await journal.mark_submitted(line, f"T{line}")
    await journal.mark_finished(
        1,
        state=State.FAILED,
        outcome=Outcome.PARTIALLY_FAILED,
        failed_files=("B", "C"),
        result_code="18000205",
        error_type="JobFailed",
        error="2 of 4 files failed",
    )
    await journal.mark_finished(
        2, state=State.FAILED, outcome=Outcome.ALL_FAILED, failed_files=("A", "B")
    )
    await journal.mark_finished(3, state=State.FAILED, outcome=Outcome.CANCELLED)
    await journal.mark_finished(4, state=State.SUCCEEDED, outcome=Outcome.SUCCEEDED)
    await journal.mark_finished(5, state=State.FAILED, error_type="BadRequestError", error="no")
    await journal.mark_finished(6, state=State.IN_DOUBT, error_type="ServerError", error="500")
    await journal.mark_finished(7, state=State.FAILED, result_code="18000404")  # a transfer


async def test_reset_failed_moves_only_the_lines_whose_task_failed(
    journal_factory: Backend,
) -> None:
    journal = await _plan(journal_factory, 7, kinds={7: "transfer"})
    await _finish_failed_plan(journal)
    assert await journal.reset_failed() == 3
    assert await journal.lines_in(State.PENDING) == [1, 2, 7]
    one, two, seven = [await _record(journal, n) for n in (1, 2, 7)]
    # After a partial failure the next create sends the failed files only;
    # after a whole failure, the whole line again.
    assert (one.retry_files, two.retry_files, seven.retry_files) == (("B", "C"), (), ())
    for record in (one, two, seven):
        assert record.state == State.PENDING and record.task_id is None
        assert (record.outcome, record.failed_files, record.result_code) == (None, (), None)
        assert (record.error_type, record.error, record.download_url) == (None, None, None)
        assert record.attempts == 1
    assert [(r.line, r.state) for r in await journal.records()] == [
        (1, State.PENDING),
        (2, State.PENDING),
        (3, State.FAILED),  # cancelled on purpose
        (4, State.SUCCEEDED),
        (5, State.FAILED),  # refused: --retry-rejected's
        (6, State.IN_DOUBT),  # may exist: never by this flag
        (7, State.PENDING),
        (8, State.INVALID),
    ]
    assert await journal.outcome_counts() == {Outcome.CANCELLED: 1, Outcome.SUCCEEDED: 1}
    assert await journal.failure_groups() == [
        ("BadRequestError", 1),
        ("invalid plan line", 1),
        ("unknown", 1),
    ]
    # The finished attempt stays as it ended.
    (first,) = await journal.attempts(1)
    assert (first.state, first.task_id, first.outcome) == (
        State.FAILED,
        "T1",
        Outcome.PARTIALLY_FAILED,
    )
    assert (first.failed_files, first.result_code) == (("B", "C"), "18000205")
    assert (first.error_type, first.error, first.sent_files) == (
        "JobFailed",
        "2 of 4 files failed",
        (),
    )
    assert await journal.reset_failed() == 0  # nothing failed with a task any more
    # Moved lines are held by nobody: the next run, or any worker, takes them.
    assert await journal.holders() == {}
    other = await journal_factory.another(journal)
    assert (await other.claim(10)).pending == (1, 2, 7)


async def test_every_attempt_is_kept_with_its_task_and_what_it_sent(
    journal_factory: Backend,
) -> None:
    journal = await _plan(journal_factory, 7, kinds={7: "transfer"})
    before = datetime.now(UTC) - timedelta(seconds=5)
    await _finish_failed_plan(journal)
    run2 = await journal_factory.another(journal)
    assert await run2.reset_failed() == 3
    assert (await run2.claim(10)).pending == (1, 2, 7)
    # Line 1: its retry sends the failed files and is answered.
    await run2.mark_submitting(1)
    await run2.mark_submitted(1, "T1b")
    # What the reconciliation reads of it: the files its current attempt sent.
    (row,) = [r for r in await run2.reconciliation_rows() if r.line == 1]
    assert (row.state, row.task_id, row.retry_files) == (State.SUBMITTED, "T1b", ("B", "C"))
    await run2.mark_finished(
        1, state=State.FAILED, outcome=Outcome.PARTIALLY_FAILED, failed_files=("C",)
    )
    # Line 2: not sent (no connection), then in doubt, then proven not created.
    await run2.mark_submitting(2)
    await run2.mark_not_sent(2, error_type="APIConnectionError", error="refused")
    if journal_factory.name == "postgresql":
        # A line not sent is given back (any worker may send it): claimed again
        # first. The one run of a SQLite journal keeps it.
        assert (await run2.claim(10)).pending == (2,)
    await run2.mark_submitting(2)
    await run2.mark_finished(2, state=State.IN_DOUBT, error_type="ServerError", error="500")
    (row,) = [r for r in await run2.reconciliation_rows() if r.line == 2]
    assert row.state == State.IN_DOUBT and row.retry_files == ()
    assert await run2.apply_reconciliation({}, [2]) == [2]

    history = await run2.attempts(1)
    assert [(a.attempt, a.state, a.task_id, a.sent_files) for a in history] == [
        (1, State.FAILED, "T1", ()),
        (2, State.FAILED, "T1b", ("B", "C")),
    ]
    assert history[1].failed_files == ("C",) and history[1].outcome == Outcome.PARTIALLY_FAILED
    for attempt in history:
        assert attempt.submitting_at is not None and attempt.submitted_at is not None
        assert attempt.finished_at is not None
        assert before < attempt.submitting_at <= attempt.submitted_at <= attempt.finished_at
    assert history[0].finished_at is not None and history[1].submitting_at is not None
    assert history[0].finished_at <= history[1].submitting_at
    line2 = await run2.attempts(2)
    assert [(a.attempt, a.state, a.error_type) for a in line2] == [
        (1, State.FAILED, None),
        (2, State.PENDING, "APIConnectionError"),
        (3, State.PENDING, None),
    ]
    assert (await _record(run2, 2)).attempts == 3
    # A second retry of the partial failure: within what the first retry sent.
    assert await run2.reset_failed() == 1  # line 7 is still pending: never resent
    assert (await _record(run2, 1)).retry_files == ("C",)
    # Every attempt of every line, by line then attempt number.
    assert [(a.line, a.attempt) for a in await run2.attempts()] == [
        (1, 1),
        (1, 2),
        (2, 1),
        (2, 2),
        (2, 3),
        (3, 1),
        (4, 1),
        (5, 1),
        (6, 1),
        (7, 1),
    ]
    assert await run2.attempts(8) == []  # an invalid line never had one


async def test_runs_are_numbered_and_their_ends_recorded(journal_factory: Backend) -> None:
    journal = await _plan(journal_factory)
    first = await journal.begin_run()
    await journal.end_run(first, outcome="completed", requests=12)
    assert await journal.begin_run() == first + 1
