"""The bulk wing from Python, without the command line (``koodrive_async.bulk``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cli_helpers import TOKEN, USER_ID, created_by_marker, job_line, write_plan

from koodrive_async import KooDriveSession, PollPolicy
from koodrive_async.bulk import (
    PlanRun,
    RunOptions,
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
