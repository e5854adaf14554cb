"""``run --retry-failed`` and the history of attempts on the PostgreSQL journal.

End to end first (the command line against the emulator, a real PostgreSQL
journal: the SQLite twin is ``tests/cli/test_cli_retry_failed.py``), then what
only a journal shared by many workers has to get right: an attempt is
started under the lease (a worker that lost it adds none), a line taken over
from a stopped worker has its attempt in doubt too, and two workers starting
``--retry-failed`` at once move each failed line once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cli_helpers import (
    FILES_PER_LINE,
    POLL,
    Result,
    assert_no_file_repeated_after_success,
    files_line,
    finish,
    jobs_sent,
    partial_failures_config,
    run_in_process,
    start_cli,
    write_plan,
)
from pg_helpers import JournalOpener, entries, load

from koodrive_async.bulk import AttemptRecord, LineRecord, Outcome, State, open_journal
from koodrive_async.bulk._journal import LeaseLostError
from koodrive_async.emulator import EmulatorConfig, KooDriveEmulator

LINES = 200


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Fast tasks; a few whole jobs fail, and some files of others (partial failures)."""
    return partial_failures_config()


async def _journal(url: str) -> tuple[dict[int, LineRecord], dict[int, list[AttemptRecord]]]:
    async with open_journal(url) as journal:
        records = {r.line: r for r in await journal.records()}
        history: dict[int, list[AttemptRecord]] = {}
        for attempt in await journal.attempts():
            history.setdefault(attempt.line, []).append(attempt)
    return records, history


async def _run(env: dict[str, str], *args: str) -> Result:
    """A worker in a child process (two of them run at once)."""
    return await finish(await start_cli(*args, env=env), timeout=120)


async def _run_here(env: dict[str, str], *args: str) -> Result:
    """One invocation on its own: in process (see ``cli_helpers.run_in_process``)."""
    return await run_in_process(*args, env=env, timeout=120)


@pytest.mark.slow
@pytest.mark.timeout(180)  # two child processes and four runs on a machine the suite shares
async def test_retry_failed_with_a_postgresql_journal_resubmits_only_what_failed(
    emu: KooDriveEmulator, cli_env: dict[str, str], tmp_path: Path, pg_url: str
) -> None:
    plan = write_plan(tmp_path / "plan.jsonl", [files_line(n) for n in range(1, LINES + 1)])
    common = ("--journal", pg_url, "--lease", "2", *POLL)
    first = await _run_here(cli_env, "run", str(plan), "--concurrency", "64", *common)
    assert first.code == 1, first.err
    records, _ = await _journal(pg_url)
    failed = {n: r for n, r in records.items() if r.state == State.FAILED}
    outcomes = {r.outcome for r in failed.values()}
    assert {Outcome.PARTIALLY_FAILED, Outcome.ALL_FAILED} <= outcomes, outcomes
    report = await _run_here(
        cli_env, "report", str(plan), "--journal", pg_url, "--failed", "--format", "jsonl"
    )
    assert report.code == 0, report.err
    assert [r["line"] for r in report.json_lines()] == sorted(failed)

    # The service stops failing. Two workers start with --retry-failed at once:
    # the failed lines go again, each once, and nothing else.
    emu.set_failure_rates(failure_rate=0.0, file_failure_rate=0.0)
    jobs_before = len(jobs_sent(emu))
    retried = await asyncio.gather(
        *(
            _run(cli_env, "run", str(plan), "--retry-failed", "--worker-id", w, "--json", *common)
            for w in ("w1", "w2")
        )
    )
    assert [r.code for r in retried] == [0, 0], [r.err[-2000:] for r in retried]
    # Whichever worker reset them said so; the other found them pending.
    assert sum(f"--retry-failed: sending {len(failed)} line(s)" in r.err for r in retried) == 1
    done = sorted(o["line"] for r in retried for o in r.json_lines())
    assert done == sorted(failed)
    assert {o["state"] for r in retried for o in r.json_lines()} == {State.SUCCEEDED}
    new_jobs = jobs_sent(emu)[jobs_before:]
    assert len(new_jobs) == len(failed)
    assert_no_file_repeated_after_success(emu)
    # A partial failure sent its failed files only; an all-failed job every file.
    sent = {ids[0].split("F")[0]: ids for _task, ids in new_jobs}
    for line, record in failed.items():
        files = sent[f"L{line}"]
        if record.outcome == Outcome.PARTIALLY_FAILED:
            assert sorted(files) == sorted(record.failed_files)
            assert len(files) < FILES_PER_LINE
        else:
            assert len(files) == FILES_PER_LINE

    # The journal holds both attempts of each retried line, and which task did what.
    now, history = await _journal(pg_url)
    assert {r.state for r in now.values()} == {State.SUCCEEDED}
    for line, record in failed.items():
        one, two = history[line]
        assert (one.attempt, one.state, one.task_id) == (1, State.FAILED, record.task_id)
        assert one.outcome == record.outcome and one.failed_files == record.failed_files
        assert one.sent_files == ()
        assert (two.attempt, two.state) == (2, State.SUCCEEDED)
        assert two.task_id == now[line].task_id != record.task_id
        assert sorted(two.sent_files) == (
            sorted(record.failed_files) if record.outcome == Outcome.PARTIALLY_FAILED else []
        )
        assert now[line].attempts == 2 and now[line].retry_files == two.sent_files
    assert all(len(history[n]) == 1 for n in now if n not in failed)
    rows = {
        r["line"]: r
        for r in (
            await _run_here(cli_env, "report", str(plan), "--journal", pg_url, "--format", "jsonl")
        ).json_lines()
    }
    line, record = next(iter(failed.items()))
    assert rows[line]["attempts"] == 2 and rows[line]["previous_task_ids"] == [record.task_id]

    # Nothing failed any more: a second --retry-failed has nothing to do.
    creates = len(jobs_sent(emu))
    again = await _run_here(cli_env, "run", str(plan), "--retry-failed", *common)
    assert again.code == 0, again.err
    assert "nothing to do" in again.out + again.err
    assert len(jobs_sent(emu)) == creates


# --------------------------------------------------------------------------- leases


async def test_an_attempt_starts_only_under_the_lease(open_journal: JournalOpener) -> None:
    holder = await open_journal(worker_id="holder", lease=30)
    other = await open_journal(worker_id="other", lease=30)
    await load(holder, entries(2), "plan")
    assert (await holder.claim(10)).pending == (1, 2)
    # A worker that does not hold the line neither marks it nor starts an attempt.
    with pytest.raises(LeaseLostError):
        await other.mark_submitting(1)
    assert await other.attempts(1) == []
    assert (await other.record(1)).attempts == 0  # type: ignore[union-attr]
    await holder.mark_submitting(1)
    (attempt,) = await other.attempts(1)
    assert (attempt.attempt, attempt.state) == (1, State.SUBMITTING)
    # Nor does it change the holder's attempt.
    with pytest.raises(LeaseLostError):
        await other.mark_finished(1, state=State.FAILED, error="not mine")
    assert [a.state for a in await holder.attempts(1)] == [State.SUBMITTING]


async def test_a_takeover_puts_the_stopped_workers_attempt_in_doubt(
    open_journal: JournalOpener,
) -> None:
    stopped = await open_journal(worker_id="stopped", lease=0.5)
    taker = await open_journal(worker_id="taker", lease=30)
    await load(stopped, entries(1), "plan")
    await stopped.claim(1)
    await stopped.mark_submitting(1)
    await asyncio.sleep(0.65)  # the stopped worker's lease runs out (database clock)
    assert (await taker.claim(10)).in_doubt == (1,)
    (attempt,) = await taker.attempts(1)
    assert (attempt.state, attempt.error_type) == (State.IN_DOUBT, "interrupted")
    # The stopped worker wakes with its create's answer: the id is the truth of
    # that attempt, recorded on it.
    await stopped.mark_submitted(1, "T1")
    (attempt,) = await taker.attempts(1)
    assert (attempt.attempt, attempt.state, attempt.task_id) == (1, State.SUBMITTED, "T1")
    assert attempt.submitted_at is not None


async def test_two_workers_resetting_failed_lines_at_once_move_each_once(
    open_journal: JournalOpener,
) -> None:
    first = await open_journal(worker_id="w1")
    await load(first, entries(40), "plan")
    await first.claim(40)
    for line in range(1, 41):
        await first.mark_submitting(line)
        await first.mark_submitted(line, f"T{line}")
        partial = line % 2 == 0
        await first.mark_finished(
            line,
            state=State.FAILED,
            outcome=Outcome.PARTIALLY_FAILED if partial else Outcome.ALL_FAILED,
            failed_files=(f"L{line}B",) if partial else (),
        )
    workers = [await open_journal(worker_id=f"r{i}") for i in range(3)]
    moved = await asyncio.gather(*(w.reset_failed() for w in workers))
    assert sum(moved) == 40  # each line once, whichever worker moved it
    records = {r.line: r for r in await first.records()}
    assert {r.state for r in records.values()} == {State.PENDING}
    assert records[2].retry_files == ("L2B",) and records[1].retry_files == ()
    assert await first.holders() == {}
    assert [len(await first.attempts(n)) for n in (1, 2, 40)] == [1, 1, 1]
