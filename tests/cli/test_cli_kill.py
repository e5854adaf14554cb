"""kill -9 of a running ``run`` at random points, then resume: nothing twice, nothing lost.

Every kill lands while the emulator holds the answers of creates it has
already carried out (the CREATED_THEN_HELD fault): the task exists, the
journal has no id for it, the window a resume must settle from the listing.
With a task list that carries the request bodies (the emulator's default), the
resume settles every line the kills left in doubt: each plan line ends
succeeded or failed and was created exactly once. With a task list that does
not, the lines that cannot be settled stay in doubt and are reported, and none
is created twice.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest
from cli_helpers import (
    POLL,
    created_by_marker,
    finish,
    job_line,
    journal_rows,
    start_cli,
    write_plan,
)

from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator

LINES = 200

#: kill -9 runs of real subprocesses: CI runs them once, on Python 3.11 (see .ci/run).
pytestmark = pytest.mark.slow


@pytest.fixture
def emulator_config(request: pytest.FixtureRequest) -> EmulatorConfig:
    """Task durations vary (so completions interleave with submissions); 5% fail."""
    return EmulatorConfig(
        task_duration=lambda rng: rng.uniform(0.2, 2.0),
        clock_speed=25.0,
        failure_rate=0.05,
        seed=11,
        echo_init_params=getattr(request, "param", True),
    )


async def _kill_three_times(
    emu: KooDriveEmulator,
    args: tuple[str, ...],
    env: dict[str, str],
    rng: random.Random,
    journal: Path,
) -> tuple[int, set[int], int]:
    """Start and SIGKILL the run three times, each time while created tasks are unanswered.

    Returns:
        (kills, lines reported in doubt, lines left "submitting" by the kills in all).
    """
    kills = 0
    unanswered = 0
    window = 0  # lines whose task existed at the kill while the journal had no id
    reported_in_doubt: set[int] = set()
    for _ in range(3):
        proc = await start_cli(*args, env=env)
        assert proc.stdout is not None
        # Kill after a random number of finished lines, at a moment when the
        # emulator has carried out creates and holds their answers, so every
        # kill leaves lines in doubt whose task exists (the case the resume
        # must settle from the listing) whatever the machine's load.
        target = rng.randint(5, 60)
        finished = 0
        while finished < target:
            line = await proc.stdout.readline()
            if not line:
                break
            if b'"in_doubt"' in line:
                reported_in_doubt.add(int(line.split(b'"line": ')[1].split(b",")[0]))
            finished += 1
        # The hold outlasts the kill: the killed run never sees these answers.
        # Creates still on their way when it dies land (and are held) too,
        # within the runs' --settle-time, before any resume may conclude.
        hold = emu.inject(FaultKind.CREATED_THEN_HELD, route="create_job", latency=5.0)
        # The create comes from another process: poll (bounded) for it to arrive.
        deadline = time.monotonic() + 10
        while hold.hits == 0 and proc.returncode is None and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        created_at_kill = set(created_by_marker(emu))
        if proc.returncode is None:
            proc.kill()
            kills += 1
        await proc.wait()
        emu.clear_faults()
        rows = journal_rows(journal)
        unanswered += sum(r["state"] == "submitting" for r in rows.values())
        window += sum(
            r["state"] == "submitting" and f"F{n}" in created_at_kill for n, r in rows.items()
        )
    # The window was really reached: tasks existed that the journal had no id for.
    assert window > 0
    return kills, reported_in_doubt, unanswered


async def test_killed_three_times_then_resumed_settles_everything(
    emu: KooDriveEmulator, cli_env: dict[str, str], tmp_path: Path
) -> None:
    rng = random.Random(20240812)
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, LINES + 1)])
    journal = tmp_path / "plan.journal.sqlite"
    args = ("run", str(plan), "--concurrency", "16", "--json", *POLL)
    kills, _, unanswered = await _kill_three_times(emu, args, cli_env, rng, journal)
    assert kills == 3
    # The kills left creates without a recorded answer (the point of the test).
    assert unanswered > 0

    final = await finish(await start_cli(*args, env=cli_env))
    rows = journal_rows(journal)
    assert sorted(rows) == list(range(1, LINES + 1))
    states = {r["state"] for r in rows.values()}
    assert states <= {"succeeded", "failed"}, states
    assert final.code == (1 if "failed" in states else 0), final.err
    # Every line was created exactly once, with the task id the journal holds.
    created = created_by_marker(emu)
    assert sorted(created) == sorted(f"F{i}" for i in range(1, LINES + 1))
    for number, row in rows.items():
        assert created[f"F{number}"] == [row["task_id"]], (number, row)
    assert not any(o["state"] == "in_doubt" for o in final.json_lines())


@pytest.mark.parametrize("emulator_config", [False], indirect=True)
async def test_killed_without_bodies_in_the_listing_reports_what_it_cannot_settle(
    emu: KooDriveEmulator, cli_env: dict[str, str], tmp_path: Path
) -> None:
    rng = random.Random(20240813)
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, LINES + 1)])
    journal = tmp_path / "plan.journal.sqlite"
    args = ("run", str(plan), "--concurrency", "16", "--json", "--settle-time", "0.3", *POLL)
    kills, reported_in_doubt, unanswered = await _kill_three_times(emu, args, cli_env, rng, journal)
    assert kills == 3 and unanswered > 0

    final = await finish(await start_cli(*args, env=cli_env))
    rows = journal_rows(journal)
    assert sorted(rows) == list(range(1, LINES + 1))
    in_doubt = {n for n, r in rows.items() if r["state"] == "in_doubt"}
    failed = any(r["state"] == "failed" for r in rows.values())
    assert final.code == (3 if in_doubt else (1 if failed else 0)), final.err
    created = created_by_marker(emu)
    for number, row in rows.items():
        ids = created.get(f"F{number}", [])
        if number in in_doubt:
            assert len(ids) <= 1, (number, ids)
            continue
        assert row["state"] in ("succeeded", "failed"), row
        assert ids == [row["task_id"]], (number, ids, row)
    # In-doubt lines are reported, by line number, in the final run's output.
    json_in_doubt = {o["line"] for o in final.json_lines() if o["state"] == "in_doubt"}
    assert json_in_doubt == in_doubt
    if in_doubt:
        assert "in doubt" in final.err
    assert set(created) <= {f"F{i}" for i in range(1, LINES + 1)}
    assert reported_in_doubt <= in_doubt
