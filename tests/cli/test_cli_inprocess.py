"""The run engine in process (same event loop as the emulator): progress displays.

And a run started from a worker thread, as the ``cli`` fixture starts every
in-process invocation: it leaves the signals to the main thread.
"""

from __future__ import annotations

import asyncio
import io
import signal
from pathlib import Path

from cli_helpers import TOKEN, USER_ID, created_by_marker, job_line, journal_rows, write_plan

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
