"""The run engine in process (same event loop as the emulator): progress displays.

And a run started from a worker thread, as the ``cli`` fixture starts every
in-process invocation: it leaves the signals to the main thread.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import cli_helpers
import pytest
from aiohttp import web
from cli_helpers import (
    TOKEN,
    USER_ID,
    created_by_marker,
    custom_server,
    job_line,
    journal_rows,
    run_in_process,
    write_plan,
)

import koodrive_async.cli
from koodrive_async import KooDriveSession, PollPolicy
from koodrive_async.cli._connect import Connection, OpenedSession
from koodrive_async.cli._run import RunCommand as RunOptions
from koodrive_async.cli._run import run_command as run_plan
from koodrive_async.emulator import EmulatorConfig, KooDriveEmulator


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _options(plan: Path, output: str) -> RunOptions:
    return RunOptions(plan=plan, concurrency=8, poll=PollPolicy(initial=0.02), output=output)


async def test_rich_progress_and_table(emu: KooDriveEmulator, tmp_path: Path) -> None:
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, 21)])
    out, err = io.StringIO(), io.StringIO()
    code = await run_plan(
        _options(plan, "rich"), Connection(emu.url, USER_ID, TOKEN), out=out, err=err
    )
    assert code == 0, err.getvalue()
    text = out.getvalue()
    assert "20/20" in text and "20 succeeded" in text and "0 in flight" in text
    assert "│ succeeded" in text and "jobs per second" in text  # the rich table
    assert TOKEN not in text + err.getvalue()
    assert len(created_by_marker(emu)) == 20


async def test_plain_status_line_on_a_terminal(emu: KooDriveEmulator, tmp_path: Path) -> None:
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, 11)])
    out, err = _Terminal(), io.StringIO()
    code = await run_plan(
        _options(plan, "plain"), Connection(emu.url, USER_ID, TOKEN), out=out, err=err
    )
    assert code == 0, err.getvalue()
    text = out.getvalue()
    assert "\r\x1b[2K10/10 done" in text and "10 succeeded" in text
    assert "succeeded" in text.split("summary:")[1]


async def test_refused_credentials_stop_the_run(tmp_path: Path) -> None:
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, 31)])
    config = EmulatorConfig(tokens=frozenset({"the-right-token"}))
    async with KooDriveEmulator(config, host="127.0.0.1", port=0) as emu:
        out, err = io.StringIO(), io.StringIO()
        options = RunOptions(plan=plan, concurrency=2, output="plain")
        code = await run_plan(options, Connection(emu.url, USER_ID, TOKEN), out=out, err=err)
        assert code == 1
        posts = sum(1 for e in emu.requests if e.method == "POST")
        assert 1 <= posts <= 4  # not one per line
    assert "refused the credentials" in err.getvalue()
    rows = journal_rows(tmp_path / "plan.journal.sqlite")
    assert sum(1 for r in rows.values() if r["state"] == "pending") >= 26
    assert "not started" in out.getvalue()
    assert TOKEN not in out.getvalue() + err.getvalue()


async def test_a_failing_token_provider_stops_the_run_and_leaves_the_lines_pending(
    emu: KooDriveEmulator, tmp_path: Path
) -> None:
    # A CredentialsError on a create (the token provider failed; nothing was
    # sent) stops the submissions as a 401 does: every other create would
    # fail the same way. Before the fix each line called the provider, failed
    # ("failed", no task id) and the run went on to the end of the plan.
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, 31)])
    calls = 0

    def provider(_refresh: bool) -> str:
        nonlocal calls
        calls += 1
        raise OSError("the vault is unreachable")

    async def factory(connection: Connection, size: int) -> OpenedSession:
        session = KooDriveSession(
            connection.base_url,
            user_id=connection.user_id,
            token_provider=provider,
            max_connections=size,
            allow_insecure_http=True,
        )
        return session, (lambda: 0), session.close

    out, err = io.StringIO(), io.StringIO()
    options = RunOptions(plan=plan, concurrency=2, output="plain")
    code = await run_plan(
        options, Connection(emu.url, USER_ID, TOKEN), out=out, err=err, session_factory=factory
    )
    assert code == 1, err.getvalue()
    assert "stopping: no token could be obtained" in err.getvalue()
    assert not [e for e in emu.requests if e.method == "POST"]  # nothing was sent
    assert 1 <= calls <= 4  # not one per line
    rows = journal_rows(tmp_path / "plan.journal.sqlite")
    # Nothing was sent for any line, the failing one included: all pending.
    assert {r["state"] for r in rows.values()} == {"pending"}, rows
    assert "not started" in out.getvalue()


async def test_a_run_in_a_worker_thread_leaves_the_signals_to_the_main_thread(
    emu: KooDriveEmulator, tmp_path: Path
) -> None:
    # Only the main thread may handle signals (loop.add_signal_handler raises
    # elsewhere): run_command() called from another thread runs without them
    # and leaves the main thread's handlers as they were.
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, 11)])
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    out, err = io.StringIO(), io.StringIO()

    def in_a_thread() -> int:
        run = run_plan(
            _options(plan, "plain"), Connection(emu.url, USER_ID, TOKEN), out=out, err=err
        )
        return asyncio.run(run)

    assert await asyncio.to_thread(in_a_thread) == 0, err.getvalue()
    assert "summary:" in out.getvalue()
    rows = journal_rows(tmp_path / "plan.journal.sqlite")
    assert {r["state"] for r in rows.values()} == {"succeeded"}, rows
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    assert sorted(created_by_marker(emu)) == sorted(f"F{i}" for i in range(1, 11))


# --------------------------------------------------------------------------- the in-process helper


async def test_a_hung_call_restores_the_process_and_fails_the_next_call_at_once(
    cli_env: dict[str, str],
) -> None:
    # Before the fix the restore sat in the hung thread, which also held the
    # lock: the test's prints vanished into a StringIO, os.environ stayed the
    # CLI's, and every later call failed with "cannot overlap: use start_cli".
    environ, stdout = dict(os.environ), sys.stdout
    answer = asyncio.Event()

    async def silent(_request: web.Request) -> web.StreamResponse:
        # Accepts the request and answers nothing until told to (then a 400).
        await answer.wait()
        return web.json_response({"code": "13000311", "message": "bad"}, status=400)

    async with custom_server(silent) as url:
        try:
            env = {**cli_env, "KOODRIVE_BASE_URL": url, "MARK_OF_THE_CALL": "1"}
            with pytest.raises(AssertionError, match="koodrive-async task did not end") as hang:
                await run_in_process("task", "get", "7001", "--token", TOKEN, env=env, timeout=0.5)
            assert TOKEN not in str(hang.value)
            assert dict(os.environ) == environ and sys.stdout is stdout
            hung = cli_helpers._hung
            assert hung is not None and hung.thread.is_alive()
            with pytest.raises(
                AssertionError, match=r"earlier in-process call \(koodrive-async task\)"
            ):
                await run_in_process("task", "list", env=env)
            # The server answers: the CLI's call fails and its thread ends.
            answer.set()
            await asyncio.to_thread(hung.thread.join, 20)
            assert not hung.thread.is_alive()
            # The marker clears itself: the next call runs.
            result = await run_in_process("task", "get", "7001", env=env)
        finally:
            answer.set()  # a failed check must not leave a request hanging in cleanup
    assert result.code != 0 and cli_helpers._hung is None
    assert dict(os.environ) == environ


async def test_a_logged_traceback_is_on_the_captured_stderr(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A child's logging.lastResort prints a record's traceback: a secret in an
    # exception's text would show there, so the capture must have it too.
    def main(_argv: list[str]) -> int:
        try:
            raise ValueError("the-text-of-the-exception")
        except ValueError:
            logging.getLogger("koodrive_async.test").warning("it failed", exc_info=True)
        return 0

    monkeypatch.setattr(koodrive_async.cli, "main", main)
    result = await run_in_process("task", "list", env=cli_env)
    assert result.code == 0
    assert "it failed\nTraceback (most recent call last):" in result.err, result.err
    assert "ValueError: the-text-of-the-exception" in result.err


async def test_the_environment_is_changed_from_the_calling_thread_key_by_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # setenv/unsetenv race a getenv in another thread (glibc): the worker must
    # not call them while the test's loop serves, and only the keys that
    # differ change.
    env = {k: v for k, v in os.environ.items() if k != "HOME"}
    env["MARK_OF_THE_CALL"] = "1"
    seen: dict[str, str] = {}
    changes: list[tuple[str, int]] = []
    putenv, unsetenv = os.putenv, os.unsetenv

    def recording_putenv(key: str | bytes, value: str | bytes) -> None:
        changes.append((os.fsdecode(key), threading.get_ident()))
        putenv(key, value)

    def recording_unsetenv(key: str | bytes) -> None:
        changes.append((os.fsdecode(key), threading.get_ident()))
        unsetenv(key)

    def main(_argv: list[str]) -> int:
        seen.update(os.environ)
        return 0

    monkeypatch.setattr(koodrive_async.cli, "main", main)
    monkeypatch.setattr(os, "putenv", recording_putenv)
    monkeypatch.setattr(os, "unsetenv", recording_unsetenv)
    had_home = "HOME" in os.environ
    result = await run_in_process("task", "list", env=env)
    assert result.code == 0 and seen == env
    here = threading.get_ident()
    assert {thread for _key, thread in changes} <= {here}
    expected = ["MARK_OF_THE_CALL"] * 2 + (["HOME"] * 2 if had_home else [])
    assert sorted(key for key, _thread in changes) == sorted(expected)
