"""kill -9 of a running ``run`` at random points, then resume: nothing twice, nothing lost."""

from __future__ import annotations

import asyncio
import random
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

from koodrive_async.emulator import EmulatorConfig, KooDriveEmulator

LINES = 200


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Task durations vary (so completions interleave with submissions); 5% fail."""
    return EmulatorConfig(
        task_duration=lambda rng: rng.uniform(0.2, 2.0),
        clock_speed=25.0,
        failure_rate=0.05,
        seed=11,
    )


async def test_killed_three_times_then_resumed(
    emu: KooDriveEmulator, cli_env: dict[str, str], tmp_path: Path
) -> None:
    rng = random.Random(20240812)
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, LINES + 1)])
    args = ("run", str(plan), "--concurrency", "16", "--json", *POLL)
    kills = 0
    reported_in_doubt: set[int] = set()
    for _ in range(3):
        proc = await start_cli(*args, env=cli_env)
        assert proc.stdout is not None
        # Kill after a random number of finished lines, then a random number of
        # event-loop turns of the emulator: lands before, during or after the
        # next creates, with no wall-clock sleeping.
        target = rng.randint(5, 60)
        finished = 0
        while finished < target:
            line = await proc.stdout.readline()
            if not line:
                break
            if b'"in_doubt"' in line:
                reported_in_doubt.add(int(line.split(b'"line": ')[1].split(b",")[0]))
            finished += 1
        for _ in range(rng.randint(0, 40)):
            await asyncio.sleep(0)
        if proc.returncode is None:
            proc.kill()
            kills += 1
        await proc.wait()
    assert kills == 3

    final = await finish(await start_cli(*args, env=cli_env))
    assert final.code in (0, 1, 3), final.err
    rows = journal_rows(tmp_path / "plan.journal.sqlite")
    assert sorted(rows) == list(range(1, LINES + 1))
    in_doubt = {n for n, r in rows.items() if r["state"] == "in_doubt"}
    assert final.code == (3 if in_doubt else (1 if any(
        r["state"] == "failed" for r in rows.values()) else 0))  # fmt: skip
    # Every other line ended succeeded or failed, with the task id the emulator created.
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
    # The emulator saw no create that is not a plan line's.
    assert set(created) <= {f"F{i}" for i in range(1, LINES + 1)}
    assert reported_in_doubt <= in_doubt
