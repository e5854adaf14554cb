"""Issue 14 item 5: the command line's friction fixes, as child processes against the emulator."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from cli_helpers import POLL, TOKEN, USER_ID, job_line, write_plan

from koodrive_async.cli._app import build_parser
from koodrive_async.cli._connect import connection_from, open_session
from koodrive_async.emulator import KooDriveEmulator

Cli = Callable[..., Any]


def _bare_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith("KOODRIVE_")}


async def test_connection_flags_before_or_after_the_subcommand(
    emu: KooDriveEmulator, cli: Cli, cli_env: dict[str, str]
) -> None:
    flags = ("--base-url", emu.url, "--user-id", USER_ID, "--token", TOKEN)
    env = _bare_env(cli_env)
    before = await cli(*flags, "task", "list", env=env)
    after = await cli("task", "list", *flags, env=env)
    split = await cli("--base-url", emu.url, "task", "list", "--user-id", USER_ID, "--token",
                      TOKEN, env=env)  # fmt: skip
    for result in (before, after, split):
        assert result.code == 0, result.err
        assert "0 task(s)" in result.out
    missing = await cli("--base-url", emu.url, "task", "list", env=env)
    assert missing.code == 2 and "--user-id" in missing.err


async def test_plain_http_to_another_host_names_the_flag(cli: Cli, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "KOODRIVE_BASE_URL": "http://koodrive.example.com"}
    refused = await cli("task", "list", env=env)
    assert refused.code == 2
    assert "--allow-insecure-http" in refused.err
    assert "allow_insecure_http=True" not in refused.err and TOKEN not in refused.err


async def test_allow_insecure_http_reaches_the_session() -> None:
    # In-process: with the flag the session is built (nothing is sent by building it).
    args = build_parser().parse_args(
        ["task", "list", "--allow-insecure-http", "--base-url", "http://koodrive.example.com",
         "--user-id", USER_ID, "--token", TOKEN]
    )  # fmt: skip
    connection = connection_from(args, env={})
    assert connection.allow_insecure_http
    session, _, close = await open_session(connection)
    try:
        assert session is not None
    finally:
        await close()
    before = build_parser().parse_args(["--allow-insecure-http", "task", "list"])
    assert before.allow_insecure_http is True
    assert build_parser().parse_args(["task", "list"]).allow_insecure_http is False


async def test_task_list_into_a_closed_pipe_ends_quietly(
    emu: KooDriveEmulator, cli_env: dict[str, str]
) -> None:
    # More rows than a pipe buffer holds, so the child is still writing when the
    # reader goes away (as `| head -1` does).
    for i in range(1200):
        emu.state.create(user_id=USER_ID, route="task/create", task_type=0,
                         body={"srcUserId": f"u{i}", "dstUserId": "d"})  # fmt: skip
    read_end, write_end = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "koodrive_async", "task", "list", "--page-size", "100",
        env=cli_env, stdin=asyncio.subprocess.DEVNULL, stdout=write_end,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    os.close(write_end)
    loop = asyncio.get_running_loop()
    first = await loop.run_in_executor(None, os.read, read_end, 200)
    os.close(read_end)
    assert first.startswith(b"TASK ID")
    assert proc.stderr is not None
    err = await asyncio.wait_for(proc.stderr.read(), 30)
    code = await asyncio.wait_for(proc.wait(), 30)
    assert err.decode() == "", err.decode()
    assert code == 141


async def test_plan_errors_use_the_plans_json_names(cli: Cli, tmp_path: Path) -> None:
    recycle = job_line("F1", taskType=2, actionType=201)  # RECYCLE needs filePath
    wrong_action = job_line("F2", actionType=301)
    plan = write_plan(tmp_path / "plan.jsonl", [recycle, wrong_action])
    result = await cli("run", str(plan), *POLL)
    assert result.code == 2
    assert "taskInfo.fileInfo[0].filePath is required" in result.err, result.err
    assert "actionType 301" in result.err and "taskType 1" in result.err
    assert "file_path" not in result.err and "action_type" not in result.err


async def test_a_multi_line_body_says_one_request_per_line(cli: Cli, tmp_path: Path) -> None:
    plan = tmp_path / "plan.jsonl"
    plan.write_text('{\n  "kind": "job",\n  "taskType": 1\n}\n', encoding="utf-8")
    result = await cli("run", str(plan), *POLL)
    assert result.code == 2
    assert f"{plan}:1: " in result.err and "one request per line" in result.err, result.err


async def _refusing_server() -> web.AppRunner:
    """A service that refuses every request with 400 (a create refused: nothing created)."""

    async def refuse(_request: web.Request) -> web.Response:
        return web.json_response({"code": "18000402", "msg": "refused"}, status=400)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def test_a_run_whose_lines_were_all_refused_reports_no_rate(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    runner = await _refusing_server()
    try:
        (site,) = runner.sites
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        env = {**cli_env, "KOODRIVE_BASE_URL": f"http://127.0.0.1:{port}"}
        plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(3)])
        result = await cli("run", str(plan), "--progress", "plain", *POLL, env=env)
        assert result.code == 1, result.err
        assert "failed" in result.out and "jobs per second" not in result.out, result.out
        again = await cli("run", str(plan), "--progress", "plain", *POLL, env=env)
    finally:
        await runner.cleanup()
    text = again.out + again.err
    assert "nothing to do" in text
    assert "--retry-rejected sends the 3 refused line(s) again" in text
    assert f"report {plan}" in text
