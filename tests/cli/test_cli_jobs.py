"""``job get/list/cancel/wait``, ``share get/wait`` and ``cancel PLAN``, as child processes.

The jobs are created by the test's own session over loopback; the emulator's
clock is frozen (``clock.speed = 0``) where a job must stay running, and
fast otherwise. Every output is checked for the token, the kdstoken and the
download link's token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import CLOCK_SPEED, POLL, TOKEN, USER_ID, write_plan

from koodrive_async import (
    FileInfo,
    JobAction,
    JobFailedError,
    JobType,
    KooDriveSession,
    ShareTaskType,
)
from koodrive_async.emulator import EmulatorConfig, KooDriveEmulator

SHARE_ID = "1689765568237837824"
KDSTOKEN = "kds-S3CRET-91ab"


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Files fail now and then (partial failures); tasks do not show jobs (job detail only)."""
    return EmulatorConfig(
        task_duration=1.0,
        clock_speed=CLOCK_SPEED,
        seed=11,
        file_failure_rate=0.4,
        task_routes_show_jobs=False,
    )


def session_for(emu: KooDriveEmulator) -> KooDriveSession:
    return KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN, agent_name="cli-tests")


async def copy_job(s: KooDriveSession, files: int, marker: str = "F") -> str:
    return await s.create_job(
        JobType.COPY,
        action_type=JobAction.COPY,
        src_container_id="IAABsrc",
        dst_container_id="IAABdst",
        files=[FileInfo(f"{marker}{i}") for i in range(files)],
    )


def assert_clean(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text and KDSTOKEN not in text
        assert "token=" not in text.replace("token=***", "")


def routes(emu: KooDriveEmulator) -> list[str]:
    return [e.route or "" for e in emu.requests]


# --------------------------------------------------------------------------- job


async def test_job_get_and_list_show_state_files_and_a_masked_link(emu, cli) -> None:
    emu.clock.speed = 0.0
    async with session_for(emu) as s:
        copies = [await copy_job(s, 8, marker=f"C{n}-") for n in range(4)]
        package = await s.create_job(
            JobType.PACKAGE_DOWNLOAD,
            src_container_id="IAABsrc",
            dst_container_id="IAABsrc",
            files=[FileInfo("P1")],
        )
        emu.clock.advance(5.0)
        partial = None
        for job_id in copies:
            job = await s.get_job(job_id)
            if job.failed_files and len(job.failed_files) < len(job.files):
                partial = job
        assert partial is not None, "the seed gives a partial failure"
        link = (await s.get_job(package)).download_url
    assert link is not None and "token=" in link
    # A job created after the advance stays pending.
    async with session_for(emu) as s:
        pending = await copy_job(s, 1, marker="pending")

    got = await cli("job", "get", partial.job_id, "--json")
    assert got.code == 0, got.err
    data = json.loads(got.out)
    assert data["job_id"] == partial.job_id and data["state"] == "failed"
    assert data["result_name"] == "PARTIALLY_FAILED" and data["task_type_name"] == "COPY"
    assert data["failed_files"] == [f.file_id for f in partial.failed_files]
    assert len(data["files"]) == 8

    text = await cli("job", "get", partial.job_id)
    assert text.code == 0 and "PARTIALLY_FAILED" in text.out
    assert f"{len(partial.failed_files)} failed: {partial.failed_files[0].file_id}" in text.out

    pkg = await cli("job", "get", package, "--json")
    shown = json.loads(pkg.out)["download_url"]
    assert shown == link.split("?")[0] + "?***"
    pkg_text = await cli("job", "get", package)
    assert link.split("?")[0] in pkg_text.out

    listed = await cli("job", "list", "--type", "COPY", "--json", "--page-size", "2")
    assert listed.code == 0, listed.err
    ids = [json.loads(line)["job_id"] for line in listed.out.splitlines()]
    assert set(ids) == {*copies, pending}
    completed = await cli("job", "list", "--status", "completed")
    assert completed.code == 0 and pending not in completed.out
    assert package in completed.out and "job(s)" in completed.out
    bad = await cli("job", "list", "--status", "DONE")
    assert bad.code == 2 and "PENDING" in bad.err
    assert_clean(got.out, text.out, pkg.out, pkg_text.out, listed.out, completed.out)
    assert "get_task" not in routes(emu) and "list_tasks" not in routes(emu)


async def test_job_cancel_and_wait_exit_codes(emu, cli) -> None:
    emu.clock.speed = 0.0
    async with session_for(emu) as s:
        done = await copy_job(s, 1, marker="D")
        emu.clock.advance(2.0)
        running = await copy_job(s, 2, marker="R")
        late = await copy_job(s, 1, marker="L")
    cancelled = await cli("job", "cancel", running)
    assert cancelled.code == 0 and f"job {running} cancelled" in cancelled.out
    again = await cli("job", "cancel", running)  # already cancelled: a success
    assert again.code == 0, again.err
    refused = await cli("job", "cancel", done)  # completed: the service refuses
    assert refused.code == 1 and "already completed" in refused.err
    sent = routes(emu).count("cancel_job")
    empty = await cli("job", "cancel", " ")
    assert empty.code == 1 and routes(emu).count("cancel_job") == sent  # refused unsent

    waited = await cli("job", "wait", running, done, "--json", *POLL)
    assert waited.code == 1
    records = {r["task_id"]: r for r in waited.json_lines()}
    assert records[running]["state"] == "cancelled"
    assert records[done]["state"] in ("succeeded", "failed")

    timed = await cli("job", "wait", late, "--timeout", "0.2", *POLL)
    assert timed.code == 1 and "not finished after 0.2s (last state NEW)" in timed.out
    emu.clock.speed = CLOCK_SPEED
    ended = await cli("job", "wait", late, *POLL)
    assert (ended.code == 0) == ("SUCCESS" in ended.out), ended.out
    assert "get_task" not in routes(emu)


async def test_job_wait_reports_partial_failures_with_their_files(emu, cli) -> None:
    async with session_for(emu) as s:
        ids = [await copy_job(s, 6, marker=f"W{n}-") for n in range(6)]
        expected: dict[str, list[str]] = {}
        for job_id in ids:
            try:
                await s.wait_for_job(job_id, timeout=30)
                expected[job_id] = []
            except JobFailedError as exc:
                expected[job_id] = [f.file_id or "?" for f in exc.failed_files]
    assert any(expected.values()) and any(not v for v in expected.values())
    emu.clear_requests()
    result = await cli("job", "wait", *ids, "--json", *POLL)
    assert result.code == 1
    records = {r["task_id"]: r for r in result.json_lines()}
    for job_id, failed in expected.items():
        assert records[job_id]["state"] == ("failed" if failed else "succeeded")
        assert records[job_id].get("failed_files", []) == failed
    assert set(routes(emu)) == {"get_job"}
    ok_ids = [j for j, failed in expected.items() if not failed]
    only_ok = await cli("job", "wait", *ok_ids, *POLL)
    assert only_ok.code == 0 and only_ok.out.count("SUCCESS") == len(ok_ids)


# --------------------------------------------------------------------------- share


async def test_share_get_and_wait(emu, cli) -> None:
    async with session_for(emu) as s:
        task_id = await s.create_share_task(
            ShareTaskType.PACKAGE,
            container_id="IAABc",
            file_ids=["S1"],
            share_id=SHARE_ID,
            zip_name="photos",
            kdstoken=KDSTOKEN,
        )
    emu.clear_requests()
    waited = await cli(
        "share", "wait", task_id, "--share-id", SHARE_ID, "--kdstoken", KDSTOKEN, "--json", *POLL
    )
    record = waited.json_lines()[0]
    if waited.code == 0:
        assert record["state"] == "succeeded"
        assert record["download_url"].endswith("?***")
    else:
        assert record["state"] == "failed" and record["failed_files"] == ["S1"]
    got = await cli("share", "get", task_id, "--share-id", SHARE_ID, "--json")
    assert got.code == 0, got.err
    data = json.loads(got.out)
    assert data["task_id"] == task_id and data["state"] in ("success", "failed")
    text = await cli("share", "get", task_id, "--share-id", SHARE_ID)
    assert text.code == 0 and task_id in text.out
    details = [e for e in emu.requests if e.route == "get_share_task"]
    assert details and all(e.body["shareId"] == SHARE_ID for e in details)
    assert {e.headers.get("X-Hw-Agentname") for e in details} == {"cli-tests"}
    no_share = await cli("share", "get", task_id)
    assert no_share.code == 2 and "--share-id" in no_share.err
    assert_clean(waited.out, waited.err, got.out, text.out)
    assert "get_task" not in routes(emu)


# --------------------------------------------------------------------------- cancel PLAN


def _plan(tmp_path: Path, lines: list[dict[str, Any]]) -> Path:
    return write_plan(tmp_path / "plan.jsonl", lines)  # type: ignore[arg-type]


async def test_cancel_plan_cancels_the_running_jobs_and_records_it(
    emu, cli, tmp_path: Path
) -> None:
    from cli_helpers import job_line, journal_rows

    emu.clock.speed = 0.0
    plan = _plan(tmp_path, [job_line(f"X{n}") for n in range(3)])
    journal = tmp_path / "plan.journal.sqlite"
    first = await cli("run", str(plan), "--timeout", "0.2", *POLL)
    assert first.code == 1, first.out + first.err  # still running at the timeout
    rows = journal_rows(journal)
    assert {r["state"] for r in rows.values()} == {"submitted"}
    emu.clear_requests()

    cancelled = await cli("cancel", str(plan), "--json")
    assert cancelled.code == 0, cancelled.err
    records = cancelled.json_lines()
    assert sorted(r["line"] for r in records) == [1, 2, 3]
    assert {r["action"] for r in records} == {"cancelled"}
    assert [e.route for e in emu.requests].count("cancel_job") == 3
    rows = journal_rows(journal)
    assert {(r["state"], r["outcome"]) for r in rows.values()} == {("failed", "cancelled")}

    again = await cli("cancel", str(plan))
    assert again.code == 0 and "0 cancelled" in again.out
    resumed = await cli("run", str(plan), "--json", *POLL)
    assert resumed.code == 1  # cancelled lines are failed lines
    summary = await cli("report", str(plan), "--format", "jsonl")
    assert {json.loads(x)["outcome"] for x in summary.out.splitlines()} == {"cancelled"}
    nothing = await cli("cancel", str(tmp_path / "other.jsonl"))
    assert nothing.code == 2
    write_plan(tmp_path / "other.jsonl", [job_line("Y")])
    no_journal = await cli("cancel", str(tmp_path / "other.jsonl"))
    assert no_journal.code == 2 and "no journal" in no_journal.err


# --------------------------------------------------------------------------- run


async def test_run_records_partial_failures_and_download_links(emu, cli, tmp_path: Path) -> None:
    from cli_helpers import journal_rows

    def copy(n: int) -> dict[str, Any]:
        files = [{"fileId": f"M{n}-{i}"} for i in range(6)]
        return {"kind": "job", "taskType": 1, "actionType": 101, "dstContainerId": "IAABdst",
                "taskInfo": {"srcContainerId": "IAABsrc", "fileInfo": files}}  # fmt: skip

    info = {"srcContainerId": "IAABsrc", "fileInfo": [{"fileId": "PK"}]}
    package = {"kind": "job", "taskType": 6, "dstContainerId": "IAABsrc", "taskInfo": info}
    plan = _plan(tmp_path, [copy(n) for n in range(8)] + [package])
    result = await cli("run", str(plan), "--json", *POLL)
    assert result.code == 1, result.err  # some files failed
    lines = {r["line"]: r for r in result.json_lines()}
    rows = journal_rows(tmp_path / "plan.journal.sqlite")
    outcomes = {r["outcome"] for r in rows.values()}
    assert "partially_failed" in outcomes and "succeeded" in outcomes
    for number, row in rows.items():
        shown = lines[number]
        assert shown["outcome"] == row["outcome"]
        files = json.loads(row["failed_files"]) if row["failed_files"] else []
        assert shown["failed_files"] == files
        if row["outcome"] == "partially_failed":
            assert row["state"] == "failed" and 0 < len(files) < 6
            assert all(f.startswith(f"M{number - 1}-") for f in files)
    pkg = rows[9]
    assert pkg["outcome"] == "succeeded"  # the seed lets the package through
    # The journal keeps the link whole; what is printed keeps its address only.
    assert "?token=" in pkg["download_url"]
    assert lines[9]["download_url"] == pkg["download_url"].split("?")[0] + "?***"
    partial = sum(1 for r in rows.values() if r["outcome"] == "partially_failed")
    assert "of which partially failed jobs" in result.err
    assert any(line.split()[-1] == str(partial) for line in result.err.splitlines()
               if "partially failed" in line)  # fmt: skip
    assert_clean(result.out, result.err)
    assert "get_task" not in routes(emu)
