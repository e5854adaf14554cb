"""Helpers of the command-line tests (plans, ledger and journal inspection, CLI invocations)."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import os
import sqlite3
import sys
import threading
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
from aiohttp import web

from koodrive_async.emulator import EmulatorConfig, KooDriveEmulator

#: The token handed to the CLI; the tests check it never shows up anywhere.
TOKEN = "tok-S3CRET-7c1f0e9d2b"
USER_ID = "1397687227244555008"
#: Virtual seconds per task and the clock speed-up: 1.0 / 25 = 40 ms real.
TASK_DURATION = 1.0
CLOCK_SPEED = 25.0
POLL = ("--poll-interval", "0.02")


@attrs.frozen
class Result:
    """A finished invocation of the CLI (in process or a child process)."""

    code: int
    out: str
    err: str

    def json_lines(self) -> list[dict[str, Any]]:
        """The stdout lines that are JSON objects."""
        return [json.loads(line) for line in self.out.splitlines() if line.startswith("{")]


async def start_cli(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    """Start ``python -m koodrive_async *args`` with pipes on stdout and stderr."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "koodrive_async",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process, timeout: float = 150.0) -> Result:
    """Wait for a child and collect its output.

    ``timeout`` only guards against a hang (a 3,000-line run takes about 15 s
    on a quiet machine, several times that when CI runs three suites at once).
    """
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


# --------------------------------------------------------------------------- in process

#: One in-process invocation at a time: it borrows the process's environment
#: and standard streams for its duration.
_IN_PROCESS = threading.Lock()

#: The default bound of an in-process call: below pytest's per-test timeout
#: (``timeout = 60`` in pyproject.toml), so that a hang fails with this
#: module's message and the state restored, not with pytest-timeout's dump. A
#: caller passing a longer ``timeout`` carries a ``pytest.mark.timeout`` above it.
IN_PROCESS_TIMEOUT = 50.0


@attrs.frozen
class _Hung:
    """An in-process call that outlived its timeout: its thread still runs."""

    command: str
    thread: threading.Thread


#: The call that never ended, if any: a thread cannot be killed, and while it
#: runs another call would share the process's streams and environment with
#: it. Cleared by the next call once the thread has ended.
_hung: _Hung | None = None


def _command_of(args: tuple[str, ...]) -> str:
    # The subcommand only: the rest of argv may carry a --token.
    name = args[0] if args and not args[0].startswith("-") else "(options)"
    return f"koodrive-async {name}"


class _LastResort(logging.Handler):
    """What a child's logging does with no handler configured: WARNING+ records on stderr.

    As ``logging.lastResort`` does: the default format, the message followed by
    the traceback of ``exc_info`` and the stack of ``stack_info`` (where a
    secret in an exception's text would show). Records of the test's own
    thread (the emulator's) are left out: in the child's place they would
    have been in another process.
    """

    def __init__(self, err: io.StringIO) -> None:
        super().__init__(logging.WARNING)
        self._err = err
        self._test_thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self._test_thread:
            self._err.write(self.format(record) + "\n")


def _exit_code(code: object, err: io.StringIO) -> int:
    # As the interpreter maps ``sys.exit(code)``: None is 0, an int is itself,
    # anything else is printed on stderr and is 1.
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    err.write(f"{code}\n")
    return 1


def _set_environ(target: dict[str, str]) -> None:
    """Make ``os.environ`` equal ``target``, setting and unsetting only the keys that differ.

    Each change is a setenv/unsetenv, which glibc does not make safe against
    a getenv in another thread (a resolver thread of the test's loop): the
    fewer, the smaller that window.
    """
    for key in [k for k in os.environ if k not in target]:
        del os.environ[key]
    for key, value in target.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _call_main(argv: list[str], err: io.StringIO) -> int:
    """``koodrive_async.cli.main(argv)``'s exit code, as the interpreter would make it."""
    from koodrive_async import cli

    try:
        return cli.main(argv)
    except SystemExit as exc:
        return _exit_code(exc.code, err)
    except Exception:  # what the interpreter does with an uncaught exception
        traceback.print_exc(file=err)
        return 1


async def run_in_process(
    *args: str, env: dict[str, str], timeout: float = IN_PROCESS_TIMEOUT
) -> Result:
    """Run the CLI's entry point in a worker thread, as ``python -m koodrive_async *args`` would.

    The test's event loop keeps serving the emulator while the CLI runs its
    own ``asyncio.run`` in the thread. For the call's duration ``os.environ``
    is exactly ``env``, stdin is empty (not a terminal), stdout and stderr are
    captured; the exit code is ``main``'s return value or the ``SystemExit``'s.
    Signals, kills and anything about the process itself need a child:
    :func:`start_cli`.

    The environment and the streams are set and restored here, on the test's
    thread, before the worker starts and after it ends (or once ``timeout``
    has passed): no setenv runs in the worker while the test's loop is
    serving. The streams are the process's, so what the test's own thread
    prints during the call lands in the capture too. A call that times out
    is remembered: every later one fails at once until its thread has ended.
    """
    global _hung
    if _hung is not None:
        if _hung.thread.is_alive():
            raise AssertionError(
                f"an earlier in-process call ({_hung.command}) never ended: its thread still "
                "shares the process's streams and environment"
            )
        _hung = None
    if not _IN_PROCESS.acquire(blocking=False):
        raise AssertionError("in-process CLI invocations cannot overlap: use start_cli")
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()

    def settle(code: int | None, error: BaseException | None) -> None:
        if done.done():  # the test gave up on it (timeout)
            return
        if error is not None:
            done.set_exception(error)
        elif code is not None:
            done.set_result(code)

    def call() -> None:
        code: int | None = None
        error: BaseException | None = None
        try:
            code = _call_main(list(args), err)
        except BaseException as exc:  # handed to the test, which re-raises it
            error = exc
        try:
            loop.call_soon_threadsafe(settle, code, error)
        except RuntimeError:  # the test's loop is gone
            pass

    out, err = io.StringIO(), io.StringIO()
    saved_env = dict(os.environ)
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    handler = _LastResort(err)
    root = logging.getLogger()
    # A daemon thread, so that a call that never ends cannot hold up the
    # interpreter's exit; an empty context, as a child starts with: no context
    # variable the test set (a trace, a create guard) reaches the CLI.
    worker = threading.Thread(
        target=contextvars.Context().run, args=(call,), name="koodrive-cli", daemon=True
    )
    try:
        _set_environ(env)
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(), out, err
        root.addHandler(handler)
        worker.start()
        try:
            code = await asyncio.wait_for(done, timeout)
        except TimeoutError:
            raise AssertionError(f"{_command_of(args)} did not end within {timeout} s") from None
    finally:
        root.removeHandler(handler)
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        _set_environ(saved_env)
        # Not settled (timed out, or the test was cancelled): the thread goes
        # on, as a thread cannot be killed. Settled, it is only returning.
        if worker.is_alive() and (done.cancelled() or not done.done()):
            _hung = _Hung(_command_of(args), worker)
        _IN_PROCESS.release()
    return Result(code, out.getvalue(), err.getvalue())


def job_line(marker: str, **extra: Any) -> dict[str, Any]:
    """A copy job whose first file id is ``marker`` (to find it in the ledger)."""
    return {
        "kind": "job",
        "taskType": 1,
        "actionType": 101,
        "dstContainerId": "IAABdst",
        "taskInfo": {"srcContainerId": "IAABsrc", "fileInfo": [{"fileId": marker}]},
        **extra,
    }


def write_plan(path: Path, lines: list[dict[str, Any] | str]) -> Path:
    """Write plan lines (dicts as JSON, strings verbatim)."""
    path.write_text(
        "".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines),
        encoding="utf-8",
    )
    return path


def marker_of(body: Any) -> str | None:
    """The marker of a create request body in the ledger (see job_line)."""
    if not isinstance(body, dict):
        return None
    info = body.get("taskInfo")
    if isinstance(info, dict) and info.get("fileInfo"):
        return str(info["fileInfo"][0].get("fileId"))
    if "srcUserId" in body:
        return str(body["srcUserId"])
    if body.get("fileIds"):
        return str(body["fileIds"][0])
    return None


def created_by_marker(emu: KooDriveEmulator) -> dict[str, list[str]]:
    """``{marker: [task ids created]}`` from the emulator's ledger."""
    created: dict[str, list[str]] = {}
    for entry in emu.requests:
        if entry.task_id is not None:
            marker = marker_of(entry.body)
            assert marker is not None, entry
            created.setdefault(marker, []).append(entry.task_id)
    return created


def creates_sent(emu: KooDriveEmulator) -> int:
    """How many create requests reached the emulator."""
    return sum(1 for e in emu.requests if e.method == "POST")


def journal_rows(path: Path) -> dict[int, dict[str, Any]]:
    """``{line: row}`` of a journal file."""
    conn = sqlite3.connect(path)
    try:
        conn.row_factory = sqlite3.Row
        return {int(r["line"]): dict(r) for r in conn.execute("SELECT * FROM lines")}
    finally:
        conn.close()


# --------------------------------------------------------------------------- retries of failed jobs

#: Files per job line of the ``--retry-failed`` tests.
FILES_PER_LINE = 4


def partial_failures_config() -> EmulatorConfig:
    """Fast tasks; a few whole jobs fail, and some files of others (partial failures)."""
    return EmulatorConfig(
        task_duration=1.0, clock_speed=200.0, seed=5, failure_rate=0.03, file_failure_rate=0.04
    )


def files_line(n: int) -> dict[str, Any]:
    """A job line of :data:`FILES_PER_LINE` files ``L{n}F1``, ``L{n}F2``..."""
    files = [{"fileId": f"L{n}F{j}"} for j in range(1, FILES_PER_LINE + 1)]
    return {
        "kind": "job",
        "taskType": 1,
        "actionType": 101,
        "dstContainerId": "IAABdst",
        "taskInfo": {"srcContainerId": "IAABsrc", "fileInfo": files},
    }


def jobs_sent(emu: KooDriveEmulator) -> list[tuple[str, list[str]]]:
    """``(task id, file ids)`` of every job the emulator created, in order."""
    return [
        (e.task_id, [f["fileId"] for f in e.body["taskInfo"]["fileInfo"]])
        for e in emu.requests
        if e.route == "create_job" and e.task_id is not None
    ]


def assert_no_file_repeated_after_success(emu: KooDriveEmulator) -> dict[str, int]:
    """No job holds a file an earlier job already did; returns ``{file: jobs that held it}``."""
    done: set[str] = set()
    held: dict[str, int] = {}
    for task_id, file_ids in jobs_sent(emu):
        task = emu.state.get(task_id)
        assert task is not None
        repeated = done.intersection(file_ids)
        assert not repeated, f"job {task_id} sent again files that had succeeded: {repeated}"
        for file in task.files:
            held[file.file_id] = held.get(file.file_id, 0) + 1
            if not file.failed:
                done.add(file.file_id)
    return held


#: A request handler for :func:`custom_server`.
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def custom_server(handler: Handler) -> AsyncIterator[str]:
    """Serve every path with ``handler`` on a loopback port; yield the base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
