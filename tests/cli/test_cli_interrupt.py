"""A stop (SIGINT / SIGTERM) is never held up by a throttled create (issue 10, item 2).

The CLI runs as a child process against the emulator. Tasks are very long
here, so a run only ends by itself when every line has an outcome; the
bounded ``finish`` is what fails when a create stalls the run or the stop.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import POLL, creates_sent, finish, job_line, journal_rows, start_cli, write_plan

from koodrive_async.bulk import DRAIN_SECONDS
from koodrive_async.cli._codes import EXIT_FAILED, EXIT_INTERRUPTED
from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator

#: How long the child may take to stop after the signal (the drain bound,
#: plus start-up slack for a loaded machine); the stalls were 30 s to 1 h.
STOP_BOUND = DRAIN_SECONDS + 7.0


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Tasks that do not finish during a test (a run is stopped, not completed)."""
    return EmulatorConfig(task_duration=100_000.0, clock_speed=1.0, seed=7)


async def _until(condition: Callable[[], bool], proc: asyncio.subprocess.Process) -> None:
    # The requests come from another process: poll (bounded) for them to arrive.
    deadline = time.monotonic() + 20
    while not condition() and proc.returncode is None:
        assert time.monotonic() < deadline, "the child never sent what the test waits for"
        await asyncio.sleep(0.005)


async def test_an_hour_long_retry_after_on_a_create_does_not_stall_the_run(
    emu: KooDriveEmulator, cli_env: dict[str, str], tmp_path: Path
) -> None:
    # Every create is answered 429 "come back in an hour": the first line
    # gets it, the others are not sent (they would have to wait an hour), and
    # the run ends by itself (before issue 10's fix: an hour per line). None
    # of the lines failed: nothing was created and the service only asked to
    # wait, so all stay pending for the next run (before issue 11: "failed").
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, 4)])
    emu.inject(FaultKind.RATE_LIMIT, route="create_job", retry_after=3600)
    args = ("run", str(plan), "--concurrency", "1", "--json", *POLL)
    result = await finish(await start_cli(*args, env=cli_env), timeout=STOP_BOUND)
    assert result.code == EXIT_FAILED, result.err
    rows = journal_rows(tmp_path / "plan.journal.sqlite")
    assert {r["state"] for r in rows.values()} == {"pending"}, rows
    assert rows[1]["error_type"].startswith("RateLimitError")
    assert "stopping: the service asks to wait 3600 s" in result.err
    assert "not started" in result.err  # the summary (on stderr with --json)
    assert result.json_lines() == []  # no line reached a verdict
    assert creates_sent(emu) == 1
    assert emu.state.tasks() == []


async def test_sigint_after_an_hour_long_retry_after_stops_at_once(
    emu: KooDriveEmulator, cli_env: dict[str, str], tmp_path: Path
) -> None:
    # Two creates go out together; the one that arrives first is held 0.5 s
    # and answered 429 "in an hour", the other creates a (long) task. Then
    # SIGINT: before the fix the stop waited for the throttled line, whose
    # resubmission the fan-out had booked an hour out. The 429 stops the
    # submissions, not the wait for the task already created.
    plan = write_plan(tmp_path / "plan.jsonl", [job_line("F1"), job_line("F2")])
    emu.inject(FaultKind.LATENCY, route="create_job", count=1, latency=0.5)
    emu.inject(FaultKind.RATE_LIMIT, route="create_job", count=1, retry_after=3600)
    args = ("run", str(plan), "--concurrency", "2", "--json", *POLL)
    proc = await start_cli(*args, env=cli_env)

    def both_answered() -> bool:
        return sorted(e.status or 0 for e in emu.requests if e.method == "POST") == [200, 429]

    await _until(both_answered, proc)
    proc.send_signal(signal.SIGINT)
    result = await finish(proc, timeout=STOP_BOUND)
    assert result.code == EXIT_INTERRUPTED, result.err
    rows = journal_rows(tmp_path / "plan.journal.sqlite")
    states = sorted(r["state"] for r in rows.values())
    # The throttled line is pending (nothing created), the other is still running.
    assert states == ["pending", "submitted"], rows
    assert creates_sent(emu) == 2 and len(emu.state.tasks()) == 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_stop_does_not_wait_long_for_a_create_held_by_a_429(
    emu: KooDriveEmulator, cli_env: dict[str, str], tmp_path: Path, sig: signal.Signals
) -> None:
    # 30 s is within max_retry_after. The run does not let the transport sleep
    # on it with the line marked "submitting": the 429 proves nothing was
    # created, so the line is pending again and waits for the hold unmarked.
    # A stop then has nothing to drain: the line stays pending, nothing in doubt.
    plan = write_plan(tmp_path / "plan.jsonl", [job_line("F1")])
    emu.inject(FaultKind.RATE_LIMIT, route="create_job", retry_after=30)
    args = ("run", str(plan), "--json", *POLL)
    proc = await start_cli(*args, env=cli_env)
    await _until(lambda: creates_sent(emu) >= 1, proc)
    proc.send_signal(sig)
    result = await finish(proc, timeout=STOP_BOUND)
    assert result.code == EXIT_INTERRUPTED, result.err
    rows = journal_rows(tmp_path / "plan.journal.sqlite")
    assert rows[1]["state"] == "pending"
    assert creates_sent(emu) == 1
    assert "in doubt on the next run" not in result.err
