"""The bulk wing from Python, without the command line (``koodrive_async.bulk``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cli_helpers import TOKEN, USER_ID, created_by_marker, job_line, write_plan

from koodrive_async import KooDriveSession, PollPolicy
from koodrive_async.bulk import (
    AttemptRecord,
    LineRecord,
    NoProgress,
    PlanRun,
    RunOptions,
    RunStats,
    SQLiteJournal,
    State,
    attach_plan,
    load_plan,
    run_plan,
)
from koodrive_async.emulator import KooDriveEmulator


async def test_run_plan_from_python_and_resume(emu: KooDriveEmulator, tmp_path: Path) -> None:
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, 13)])
    options = RunOptions(concurrency=4, poll=PollPolicy(initial=0.02))
    async with KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN) as session:
        result = await run_plan(plan, session, options=options)
        assert result.succeeded and result.had_work, result
        assert result.counts == {State.SUCCEEDED: 12}
        again = await run_plan(plan, session, options=options)
    # The second call resumed from the journal: nothing to do, nothing sent twice.
    assert not again.had_work and again.succeeded
    assert sorted(len(ids) for ids in created_by_marker(emu).values()) == [1] * 12


async def test_an_interrupted_plan_run_sends_nothing_new(
    emu: KooDriveEmulator, tmp_path: Path
) -> None:
    plan = load_plan(write_plan(tmp_path / "plan.jsonl", [job_line("F1"), job_line("F2")]))
    with SQLiteJournal.open(tmp_path / "j.sqlite") as journal:
        await attach_plan(journal, plan)
        run = PlanRun(plan, journal, RunOptions(poll=PollPolicy(initial=0.02)))
        await run.prepare()
        assert await run.needs_session()
        assert run.interrupt() and not run.interrupt()  # the second call forces
        async with KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN) as session:
            result = await run.execute(session)
        assert result.interrupted
        assert journal.lines_in(State.PENDING) == [1, 2]
    assert not [e for e in emu.requests if e.method == "POST"]


def test_the_bulk_wing_imports_no_cli_rich_or_argparse() -> None:
    code = (
        "import sys, koodrive_async.bulk; "
        "bad = [m for m in sys.modules if m == 'argparse' or m.startswith(('rich', "
        "'koodrive_async.cli'))]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


class _CountingJournal(SQLiteJournal):
    """Counts the reads of attempts (one journal round trip each on PostgreSQL)."""

    reads = 0

    def attempts(self, line: int | None = None) -> list[AttemptRecord]:
        type(self).reads += 1
        return super().attempts(line)


class _Lines(NoProgress):
    def __init__(self, *, history: bool) -> None:
        self.wants_history = history
        self.records: list[LineRecord] = []
        self.stats: RunStats | None = None

    def start(self, stats: RunStats) -> None:
        self.stats = stats

    def line_done(self, record: LineRecord) -> None:
        self.records.append(record)


async def test_a_finished_lines_attempts_are_read_only_for_a_progress_that_shows_them(
    emu: KooDriveEmulator, tmp_path: Path
) -> None:
    plan = load_plan(write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in (1, 2, 3)]))
    options = RunOptions(poll=PollPolicy(initial=0.02))
    seen: dict[bool, list[LineRecord]] = {}
    async with KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN) as session:
        for history in (False, True):
            _CountingJournal.reads = 0
            with _CountingJournal.open(tmp_path / f"j-{history}.sqlite") as journal:
                await attach_plan(journal, plan)
                progress = _Lines(history=history)
                result = await run_plan(
                    plan, session, journal=journal, options=options, progress=progress
                )
            assert result.counts == {State.SUCCEEDED: 3}
            assert _CountingJournal.reads == (3 if history else 0)
            # One machine: this run's counters are the plan's; nothing else is read.
            assert progress.stats is not None and progress.stats.plan is None
            seen[history] = sorted(progress.records, key=lambda r: r.line)
    # The display's records: the verdict, no attempts read.
    assert [(r.state, r.history, r.attempts) for r in seen[False]] == [(State.SUCCEEDED, (), 0)] * 3
    # A manifest's (or a log's): every attempt, with the task it made.
    for record in seen[True]:
        (attempt,) = record.history
        assert (record.attempts, attempt.attempt, attempt.task_id) == (1, 1, record.task_id)
