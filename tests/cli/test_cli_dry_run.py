"""Issue 14 item 4: ``run --dry-run`` validates, shows, and sends / reads / writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli_helpers import POLL, TOKEN, job_line, write_plan

from koodrive_async.emulator import KooDriveEmulator

Cli = Callable[..., Any]

SECRET = "arch1ve-PASSW0RD"


def _plan(tmp_path: Path) -> Path:
    decompress = {
        "kind": "job",
        "taskType": 5,
        "actionType": 502,
        "dstContainerId": "IAABdst",
        "password": SECRET,
        "taskInfo": {"srcContainerId": "IAABsrc", "fileInfo": [{"fileId": "ZIP1"}]},
    }
    lines: list[dict[str, Any] | str] = [decompress]
    lines += [job_line(f"F{i}") for i in range(5)]
    lines += [{"kind": "transfer", "srcUserId": "u1", "dstUserId": "u2"}]
    return write_plan(tmp_path / "plan.jsonl", lines)


async def test_dry_run_shows_what_would_be_sent_and_touches_nothing(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    plan = _plan(tmp_path)
    result = await cli("run", str(plan), "--dry-run", "--concurrency", "7", "--rate", "12", *POLL)
    assert result.code == 0, result.err
    out = result.out
    assert "dry run" in out and "7 line(s), 7 would be sent" in out
    assert "job COPY/COPY" in out and "job DECOMPRESS/DECOMPRESS_ALL" in out
    assert "transfer transfer" in out
    assert "concurrency 7" in out and "12 submissions/s" in out
    assert "line 1 (job)" in out and '"password": "***"' in out
    assert SECRET not in out + result.err and TOKEN not in out + result.err
    assert "would be created" in out
    # Nothing reached the service, and no journal (nor its WAL files) was written.
    assert list(emu.requests) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.jsonl"]


async def test_dry_run_needs_no_connection_settings(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in cli_env.items() if not k.startswith("KOODRIVE_")}
    result = await cli("run", str(_plan(tmp_path)), "--dry-run", env=env)
    assert result.code == 0, result.err
    assert "would be sent" in result.out


async def test_dry_run_refuses_an_invalid_plan_like_a_run(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    plan = write_plan(tmp_path / "plan.jsonl", [job_line("F1"), '{"kind": "job"}'])
    refused = await cli("run", str(plan), "--dry-run")
    assert refused.code == 2 and f"{plan}:2:" in refused.err
    skipped = await cli("run", str(plan), "--dry-run", "--skip-invalid")
    assert skipped.code == 0 and "1 invalid (skipped)" in skipped.out
    assert list(emu.requests) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.jsonl"]


async def test_dry_run_says_a_journal_would_be_resumed(cli: Cli, tmp_path: Path) -> None:
    plan = write_plan(tmp_path / "plan.jsonl", [job_line("F1")])
    done = await cli("run", str(plan), *POLL)
    assert done.code == 0, done.err
    result = await cli("run", str(plan), "--dry-run")
    assert result.code == 0 and "exists: a real run resumes it" in result.out
