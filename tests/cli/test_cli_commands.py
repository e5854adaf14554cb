"""``task get|list|wait``, ``emulator``, ``demo`` and the parser, as child processes."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import aiohttp
from cli_helpers import POLL, TOKEN, USER_ID, finish, start_cli

from koodrive_async import FileInfo, JobAction, JobType, KooDriveSession
from koodrive_async.emulator import KooDriveEmulator

Cli = Callable[..., Any]


async def _create(emu: KooDriveEmulator, transfers: int = 0, jobs: int = 0) -> list[str]:
    async with KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN) as session:
        ids = [
            await session.create_transfer_task(src_user_id=f"u{i}", dst_user_id="u-dst")
            for i in range(transfers)
        ]
        ids += [
            await session.create_job(
                JobType.COPY,
                src_container_id="c1",
                dst_container_id="c2",
                files=[FileInfo(f"F{i}")],
                action_type=JobAction.COPY,
            )
            for i in range(jobs)
        ]
    return ids


async def test_task_get(emu: KooDriveEmulator, cli: Cli) -> None:
    (task_id,) = await _create(emu, transfers=1)
    emu.state.finish(task_id, failed=True, result_code="18000205")
    shown = await cli("task", "get", task_id)
    assert shown.code == 0, shown.err
    assert task_id in shown.out and "FAILED" in shown.out and "18000205" in shown.out
    as_json = await cli("task", "get", task_id, "--json")
    data = json.loads(as_json.out)
    assert data["task_id"] == task_id and data["status"] == 3 and data["result_code"] == "18000205"
    missing = await cli("task", "get", "1234567890123456789")
    assert missing.code == 1 and "404" in missing.err
    assert all(TOKEN not in t for t in (shown.out, shown.err, missing.out, missing.err))


async def test_task_list_reads_every_page_and_filters(emu: KooDriveEmulator, cli: Cli) -> None:
    emu.clock.speed = 0.0  # only the tasks finished by hand finish
    transfers = await _create(emu, transfers=5)
    await _create(emu, jobs=2)
    emu.state.finish(transfers[0], failed=True, result_code="18000301")
    for task_id in transfers[1:3]:
        emu.state.finish(task_id)
    emu.clear_requests()
    everything = await cli("task", "list", "--page-size", "2", "--json")
    assert everything.code == 0, everything.err
    listed = [json.loads(line) for line in everything.out.splitlines()]
    assert len(listed) == 7
    assert sum(1 for e in emu.requests if e.route == "list_tasks") >= 4
    done = await cli(
        "task", "list", "--type", "TRANSFER", "--status", "SUCCESS", "3", "--page-size", "2"
    )
    assert done.code == 0, done.err
    listed_ids = [line.split()[0] for line in done.out.splitlines()[1:-1]]  # header, count
    assert sorted(listed_ids) == sorted(transfers[:3])
    assert "3 task(s)" in done.out
    bad = await cli("task", "list", "--status", "DONE")
    assert bad.code == 2 and "DONE" in bad.err


async def test_task_wait(emu: KooDriveEmulator, cli: Cli) -> None:
    ok, failing = await _create(emu, transfers=2)
    emu.state.finish(failing, failed=True, result_code="18000404")
    result = await cli("task", "wait", ok, failing, "--json", *POLL)
    assert result.code == 1, result.err
    states = {o["task_id"]: o for o in map(json.loads, result.out.splitlines())}
    assert states[ok]["state"] == "succeeded"
    assert states[failing] == {"task_id": failing, "state": "failed", "result_code": "18000404"}
    only_ok = await cli("task", "wait", ok, *POLL)
    assert only_ok.code == 0 and f"{ok} SUCCESS" in only_ok.out

    emu.clock.speed = 0.0  # nothing finishes any more
    (stuck,) = await _create(emu, transfers=1)
    timed_out = await cli("task", "wait", stuck, "--timeout", "0.3", *POLL)
    assert timed_out.code == 1
    assert "not finished" in timed_out.out


async def test_emulator_subcommand_serves_until_sigterm() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOODRIVE_")}
    proc = await start_cli("emulator", "--port", "0", "--task-duration", "0.5", env=env)
    assert proc.stdout is not None
    url = (await proc.stdout.readline()).decode().strip()
    assert url.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as http, http.get(f"{url}/_emulator/health") as resp:
        assert resp.status == 200
    proc.send_signal(signal.SIGTERM)
    assert (await finish(proc)).code == 0


async def test_demo_runs_and_exits_0(cli: Cli) -> None:
    result = await cli("demo", "--jobs", "100", "--concurrency", "50", "--seed", "3")
    assert result.code == 0, result.err
    assert "KooDrive emulator on http://127.0.0.1:" in result.out
    assert "lines in plan" in result.out and "100" in result.out
    assert "succeeded" in result.out and "jobs per second" in result.out


def test_parser_errors_and_help(capsys: Any) -> None:
    from koodrive_async.cli import main

    assert main(["--help"]) == 0
    assert "demo" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert "koodrive-async" in capsys.readouterr().out
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert main(["task", "get"]) == 2
    assert main(["run", "plan.jsonl", "--rate", "-1"]) == 2
    assert "--rate" in capsys.readouterr().err


def test_library_never_imports_rich() -> None:
    import subprocess

    code = (
        "import sys, koodrive_async, koodrive_async.emulator;"
        "sys.exit(1 if any(m == 'rich' or m.startswith('rich.') for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_demo_refuses_a_failure_rate_outside_0_1(capsys: Any) -> None:
    from koodrive_async.cli import main

    # A usage error (exit 2, named option), not an EmulatorConfig traceback.
    assert main(["demo", "--jobs", "1", "--failure-rate", "2"]) == 2
    assert "--failure-rate" in capsys.readouterr().err
    assert main(["demo", "--jobs", "1", "--failure-rate", "nan"]) == 2


def test_progress_rich_without_rich_is_a_usage_error(
    tmp_path: Any, monkeypatch: Any, capsys: Any
) -> None:
    from koodrive_async.cli import main

    plan = tmp_path / "plan.jsonl"
    plan.write_text(json.dumps({"kind": "transfer", "srcUserId": "a", "dstUserId": "b"}) + "\n")
    # None in sys.modules makes every "import rich..." raise ImportError.
    monkeypatch.setitem(sys.modules, "rich", None)
    args = ["run", str(plan), "--progress", "rich", "--base-url", "http://127.0.0.1:9"]
    args += ["--user-id", USER_ID, "--token", TOKEN]
    assert main(args) == 2
    assert "rich" in capsys.readouterr().err
    assert not (tmp_path / "plan.journal.sqlite").exists()
