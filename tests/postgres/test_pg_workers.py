"""Many workers, one plan, one PostgreSQL journal: every line once, whoever dies.

Real child processes (``koodrive-async run PLAN --journal postgresql://…``)
share one plan through a real PostgreSQL (see ``tests/conftest.py``) against
one emulator served by the test's event loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import POLL, created_by_marker, finish, job_line, start_cli, write_plan

from koodrive_async.bulk import State, open_journal
from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator

pytestmark = pytest.mark.slow


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Short uneven jobs, 3% of them fail; X-Dates are refused after 3 s (the fence's core)."""
    return EmulatorConfig(
        task_duration=lambda rng: rng.uniform(0.2, 2.0),
        clock_speed=25.0,
        failure_rate=0.03,
        seed=5,
        x_date_max_age=3.0,
    )


def worker_args(plan: Path, url: str, worker: str, *extra: str) -> tuple[str, ...]:
    return (
        "run", str(plan), "--journal", url, "--worker-id", worker, "--json",
        "--lease", "1", "--x-date-window", "3", "--fence-margin", "1", "--settle-time", "0.5",
        *POLL, *extra,
    )  # fmt: skip


async def journal_states(url: str) -> dict[int, Any]:
    async with open_journal(url) as journal:
        return {r.line: r for r in await journal.records()}


def assert_every_line_once(emu: KooDriveEmulator, rows: dict[int, Any], lines: int) -> None:
    assert sorted(rows) == list(range(1, lines + 1))
    states = {r.state for r in rows.values()}
    assert states <= {State.SUCCEEDED, State.FAILED}, states
    created = created_by_marker(emu)
    assert sorted(created) == sorted(f"F{i}" for i in range(1, lines + 1))
    for number, row in rows.items():
        assert created[f"F{number}"] == [row.task_id], (number, row)


async def test_three_workers_with_faults_send_every_line_once(
    emu: KooDriveEmulator, cli_env: dict[str, str], tmp_path: Path, pg_url: str
) -> None:
    lines = 3000
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, lines + 1)])
    emu.inject(FaultKind.CREATED_BUT_504, route="create_job", rate=0.01)
    emu.inject(FaultKind.UNAVAILABLE, route="create_job", rate=0.02)
    emu.inject(FaultKind.SERVER_ERROR, route="get_job", rate=0.02)
    procs = [
        await start_cli(*worker_args(plan, pg_url, f"w{n}", "--concurrency", "32"), env=cli_env)
        for n in range(3)
    ]
    results = await asyncio.gather(*(finish(p, timeout=240) for p in procs))
    assert all(r.code in (0, 1) for r in results), [r.err[-2000:] for r in results]
    rows = await journal_states(pg_url)
    assert_every_line_once(emu, rows, lines)
    # Each worker did a share of the plan.
    assert all(sum(o.get("state") != "in_doubt" for o in r.json_lines()) > 0 for r in results)
