"""``koodrive-async run`` as a child process against the emulator."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli_helpers import (
    POLL,
    TOKEN,
    created_by_marker,
    finish,
    job_line,
    journal_rows,
    start_cli,
    write_plan,
)

from koodrive_async.emulator import FaultKind, KooDriveEmulator

Cli = Callable[..., Any]


def _plan(tmp_path: Path, n: int, prefix: str = "F") -> Path:
    return write_plan(tmp_path / "plan.jsonl", [job_line(f"{prefix}{i}") for i in range(1, n + 1)])


async def test_run_then_resume_does_nothing(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    lines: list[dict[str, Any] | str] = [job_line(f"F{i}") for i in range(1, 26)]
    lines.insert(3, "")
    lines += [
        {"kind": "transfer", "srcUserId": "U-transfer", "dstUserId": "1507947856550550784"},
        {
            "kind": "share",
            "taskType": 1,
            "containerId": "IAABc",
            "fileIds": ["S-share", "S2"],
            "shareId": "1689765568237837824",
            "zipName": "a.zip",
            "kdstoken": "kds-secret-token",
        },
    ]
    plan = write_plan(tmp_path / "plan.jsonl", lines)
    first = await cli("run", str(plan), "--concurrency", "8", *POLL)
    assert first.code == 0, first.err
    assert "succeeded" in first.out and "27" in first.out

    created = created_by_marker(emu)
    assert sorted(created) == sorted([f"F{i}" for i in range(1, 26)] + ["U-transfer", "S-share"])
    assert all(len(ids) == 1 for ids in created.values())
    rows = journal_rows(tmp_path / "plan.journal.sqlite")
    assert len(rows) == 27 and 4 not in rows  # the blank line 4 is no plan line
    assert {r["state"] for r in rows.values()} == {"succeeded"}
    ledger_ids = {ids[0] for ids in created.values()}
    assert {r["task_id"] for r in rows.values()} == ledger_ids
    assert all(r["attempts"] == 1 for r in rows.values())

    before = len(emu.requests)
    again = await cli("run", str(plan), "--concurrency", "8", *POLL)
    assert again.code == 0, again.err
    assert "nothing to do" in again.err + again.out
    assert len(emu.requests) == before  # not a single request

    # The token and the share token never appear: not in output, not in the journal.
    for text in (first.out, first.err, again.out, again.err):
        assert TOKEN not in text and "kds-secret-token" not in text
    for f in tmp_path.iterdir():
        if f.name.startswith("plan.journal"):
            data = f.read_bytes()
            assert TOKEN.encode() not in data and b"kds-secret-token" not in data


async def test_invalid_plan_sends_nothing(emu: KooDriveEmulator, cli: Cli, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path / "plan.jsonl",
        [
            job_line("F1"),
            "{not json",
            {**job_line("F3"), "taskType": 9},
            job_line("F4"),
            {"kind": "import", "orgId": "o"},
        ],
    )
    result = await cli("run", str(plan), *POLL)
    assert result.code == 2
    for number in (2, 3, 5):
        assert f"plan.jsonl:{number}:" in result.err
    assert "plan.jsonl:1:" not in result.err and "plan.jsonl:4:" not in result.err
    assert "3 invalid line(s)" in result.err
    assert emu.requests == []
    assert not (tmp_path / "plan.journal.sqlite").exists()

    skipped = await cli("run", str(plan), "--skip-invalid", "--json", *POLL)
    assert skipped.code == 1  # invalid lines skipped: not everything was done
    assert sorted(created_by_marker(emu)) == ["F1", "F4"]
    assert sorted(o["line"] for o in skipped.json_lines()) == [1, 4]
    states = {n: r["state"] for n, r in journal_rows(tmp_path / "plan.journal.sqlite").items()}
    assert states == {1: "succeeded", 2: "invalid", 3: "invalid", 4: "succeeded", 5: "invalid"}


async def test_usage_errors_exit_2(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    plan = _plan(tmp_path, 2)
    no_token = {k: v for k, v in cli_env.items() if k != "KOODRIVE_TOKEN"}
    result = await cli("run", str(plan), env=no_token)
    assert result.code == 2 and "KOODRIVE_TOKEN" in result.err
    bad = await cli("run", str(plan), "--concurrency", "0")
    assert bad.code == 2 and "concurrency" in bad.err
    share = write_plan(
        tmp_path / "share.jsonl",
        [{"kind": "share", "taskType": 1, "containerId": "c", "fileIds": ["f"], "shareId": "s",
          "zipName": "z.zip"}],
    )  # fmt: skip
    no_agent = {k: v for k, v in cli_env.items() if k != "KOODRIVE_AGENT_NAME"}
    result = await cli("run", str(share), env=no_agent)
    assert result.code == 2 and "agent" in result.err
    missing = await cli("run", str(tmp_path / "nope.jsonl"))
    assert missing.code == 2 and "cannot read" in missing.err
    assert emu.requests == []


async def test_journal_of_another_plan_is_refused(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    first = _plan(tmp_path, 3)
    journal = tmp_path / "shared.sqlite"
    assert (await cli("run", str(first), "--journal", str(journal), *POLL)).code == 0
    sent = len(emu.requests)
    other = write_plan(tmp_path / "other.jsonl", [job_line("G1"), job_line("G2")])
    result = await cli("run", str(other), "--journal", str(journal), *POLL)
    assert result.code == 2
    assert "line 1 is changed" in result.err and "another --journal" in result.err
    assert len(emu.requests) == sent


async def test_refused_creates_fail_and_can_be_retried(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    plan = _plan(tmp_path, 4)
    # A 503 proves nothing was created: once the transport's retries are spent
    # (4 attempts), the line fails without a task id; it is not in doubt.
    emu.inject(FaultKind.UNAVAILABLE, route="create_job", count=4)
    result = await cli("run", str(plan), "--concurrency", "1", "--json", *POLL)
    emu.clear_faults()
    assert result.code == 1, result.err
    failed = [o for o in result.json_lines() if o["state"] == "failed"]
    assert [o["line"] for o in failed] == [1] and failed[0]["task_id"] is None
    assert "ServerError (HTTP 503" in result.err
    retried = await cli("run", str(plan), "--retry-rejected", *POLL)
    assert retried.code == 0, retried.err
    assert sorted(created_by_marker(emu)) == ["F1", "F2", "F3", "F4"]
    assert all(len(v) == 1 for v in created_by_marker(emu).values())


async def test_sigint_stops_cleanly_and_resume_finishes(
    emu: KooDriveEmulator, cli_env: dict[str, str], tmp_path: Path
) -> None:
    plan = _plan(tmp_path, 60)
    args = ("run", str(plan), "--concurrency", "8", "--json", *POLL)
    proc = await start_cli(*args, env=cli_env)
    assert proc.stdout is not None
    seen = 0
    while seen < 10:
        line = await proc.stdout.readline()
        assert line, "the run ended before it could be interrupted"
        seen += 1
    proc.send_signal(signal.SIGINT)
    result = await finish(proc)
    assert result.code == 130, result.err
    assert "stopping" in result.err and "interrupted" in result.err
    rows = journal_rows(tmp_path / "plan.journal.sqlite")
    states = [r["state"] for r in rows.values()]
    # Every create that was sent got its answer recorded: nothing in doubt.
    assert "submitting" not in states and "in_doubt" not in states
    running = [n for n, r in rows.items() if r["state"] == "submitted"]
    assert running and states.count("pending") > 0
    for n in running[:20]:
        assert f"line {n} task {rows[n]['task_id']}" in result.err

    resumed = await finish(await start_cli(*args, env=cli_env))
    assert resumed.code == 0, resumed.err
    created = created_by_marker(emu)
    assert sorted(created) == sorted(f"F{i}" for i in range(1, 61))
    assert all(len(v) == 1 for v in created.values())
    final = journal_rows(tmp_path / "plan.journal.sqlite")
    assert {r["state"] for r in final.values()} == {"succeeded"}
    assert {o["line"] for o in resumed.json_lines()} >= set(running)
    assert json.dumps(final).count(TOKEN) == 0
