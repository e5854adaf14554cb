"""The ``run`` command: its options, then the bulk wing's runner, then the output.

Owns :class:`RunCommand` (what ``run`` and ``demo`` ask for), the checks
that refuse a run before anything is sent (exit code 2), the journal file
beside the plan, SIGINT / SIGTERM (they call
:meth:`~koodrive_async.bulk.PlanRun.interrupt`: no new line, the answers to
creates already sent awaited for up to ``DRAIN_SECONDS``, then the waits
cancelled and exit code 130; a second signal stops at once), and the
summary. The exactly-once bookkeeping itself is ``koodrive_async.bulk``'s.

Must never import: ``argparse`` (options arrive as a :class:`RunCommand`).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import IO

import attrs

from .._exceptions import InvalidRequestError
from .._policies import PollPolicy
from ..bulk import (
    DRAIN_SECONDS,
    MAX_LIST_PAGES,
    SETTLE_SECONDS,
    Journal,
    JournalError,
    Plan,
    PlanError,
    PlanRun,
    Progress,
    RunOptions,
    RunResult,
    State,
    attach_plan,
    load_plan,
    open_journal,
)
from ..bulk._mask import mask
from ..bulk._open import DEFAULT_LEASE
from ..bulk._retry import retryable
from ._codes import PROG, UsageError, run_exit_code
from ._connect import Connection, OpenedSession, open_session
from ._dryrun import print_dry_run
from ._jsonlog import JsonLogReporter
from ._progress import Summary, make_reporter, print_summary, rich_available
from ._report import ManifestProgress, RowWriter, row_format

__all__ = ["RunCommand", "SessionFactory", "run_command"]

#: Opens the session of a run: ``(connection, pool size) -> (session, requests_made, close)``.
SessionFactory = Callable[[Connection, int], Awaitable[OpenedSession]]


#: The flag of each RunOptions field, for the messages of a value out of range.
_FLAGS = {
    "concurrency": "--concurrency",
    "rate": "--rate",
    "timeout": "--timeout",
    "settle": "--settle-time",
    "max_list_pages": "--max-list-pages",
}


@attrs.frozen
class RunCommand:
    """What ``run`` (and ``demo``) should do.

    Attributes:
        plan: The plan file.
        journal: The journal: a SQLite file (default: ``PLAN.journal.sqlite``
            beside the plan) or a ``postgresql://`` URL shared by many workers.
        worker_id: This worker's name in a PostgreSQL journal.
        lease: Seconds a PostgreSQL claim lasts unless renewed.
        x_date_window, fence_margin: The fence of lines taken over from a
            stopped worker (see :func:`koodrive_async.bulk.open_journal`).
        output: ``auto`` (rich bar on a terminal, plain otherwise), ``json``,
            ``plain`` or ``rich``.
        skip_invalid: Run the valid lines even when some are invalid.
        dry_run: Validate and show what would be sent; send nothing, write no journal.
        report: A manifest file written as the lines finish (``.jsonl`` or ``.csv``).
        log_format: ``text``, or ``json`` (one JSON log object per event on stderr).
        concurrency, rate, timeout, poll, resubmit_in_doubt, retry_rejected,
        retry_failed, reconcile, settle, max_list_pages: As
            :class:`koodrive_async.bulk.RunOptions`.
    """

    plan: Path
    journal: Path | str | None = None
    worker_id: str | None = None
    lease: float = DEFAULT_LEASE
    x_date_window: float | None = None
    fence_margin: float | None = None
    concurrency: int = 16
    rate: float | None = None
    timeout: float | None = None
    poll: PollPolicy = PollPolicy()
    output: str = "auto"
    skip_invalid: bool = False
    resubmit_in_doubt: bool = False
    retry_rejected: bool = False
    retry_failed: bool = False
    reconcile: bool = True
    settle: float = SETTLE_SECONDS
    max_list_pages: int = MAX_LIST_PAGES
    dry_run: bool = False
    report: Path | None = None
    log_format: str = "text"

    def options(self) -> RunOptions:
        """The bulk wing's options.

        Raises:
            UsageError: A value out of range (named by its flag).
        """
        try:
            return RunOptions(
                concurrency=self.concurrency,
                rate=self.rate,
                timeout=self.timeout,
                poll=self.poll,
                resubmit_in_doubt=self.resubmit_in_doubt,
                retry_rejected=self.retry_rejected,
                retry_failed=self.retry_failed,
                reconcile=self.reconcile,
                settle=self.settle,
                max_list_pages=self.max_list_pages,
            )
        except InvalidRequestError as exc:
            # "concurrency must be ..." -> "--concurrency must be ...": the flag's name.
            field = exc.field or ""
            flag = _FLAGS.get(field, field)
            raise UsageError(str(exc).replace(field, flag, 1)) from exc


def _report_plan_errors(plan: Plan, err: IO[str], *, skipping: bool) -> None:
    errors = plan.errors
    for line in errors:
        err.write(mask(f"{plan.path}:{line.number}: {line.error}") + "\n")
    if skipping:
        err.write(f"{len(errors)} invalid line(s) skipped (--skip-invalid)\n")
    else:
        err.write(
            f"{len(errors)} invalid line(s) in {plan.path}; nothing was submitted "
            "(fix them, or run with --skip-invalid)\n"
        )
    err.flush()


def _checked_plan(command: RunCommand, connection: Connection | None, err: IO[str]) -> Plan:
    """Load the plan and refuse it (UsageError) when it cannot run as asked."""
    try:
        plan = load_plan(command.plan)
    except PlanError as exc:
        raise UsageError(str(exc)) from exc
    if plan.errors:
        _report_plan_errors(plan, err, skipping=command.skip_invalid)
        if not command.skip_invalid:
            raise UsageError(f"{len(plan.errors)} invalid line(s) in the plan")
    if connection is not None and "share" in plan.kinds and not connection.agent_name:
        raise UsageError(
            "the plan has share lines, which need an agent name: set --agent-name or "
            "KOODRIVE_AGENT_NAME"
        )
    return plan


def _reporter(command: RunCommand, out: IO[str], err: IO[str]) -> tuple[Progress, bool]:
    """The display: ``--log-format json`` logs on stderr (and ``--json`` lines on stdout)."""
    if command.log_format == "json":
        return JsonLogReporter(err, out if command.output == "json" else None), False
    return make_reporter(command.output, out=out, err=err)


@contextmanager
def _manifest(path: Path | None, progress: Progress) -> Iterator[Progress]:
    """``--report FILE``: the progress that also writes each finished line's row to FILE."""
    if path is None:
        yield progress
        return
    try:
        handle = path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise UsageError(f"cannot write the report {path}: {exc.strerror or exc}") from exc
    with handle:
        yield ManifestProgress(progress, RowWriter(handle, row_format(path)))


async def _nothing_to_do(journal: Journal, plan: Path) -> str:
    """The "nothing to do" message, with what the user can do next."""
    failed = await journal.records(State.FAILED)
    refused = sum(1 for r in failed if r.task_id is None)
    # Cancelled jobs and vanished tasks are neither: the flags leave them alone.
    again = sum(1 for r in failed if retryable(r))
    steps = []
    if again:
        steps.append(f"--retry-failed sends the {again} line(s) whose task failed again")
    if refused:
        steps.append(f"--retry-rejected sends the {refused} refused line(s) again")
    steps.append(f"`{PROG} report {plan}` lists every line (--failed: the failed ones)")
    return "nothing to do: every line of the plan has already been dealt with; " + "; ".join(steps)


@contextmanager
def _signals(run: PlanRun, progress: Progress) -> Iterator[None]:
    """SIGINT / SIGTERM interrupt the run while it lasts (main thread only, where the loop can)."""
    loop = asyncio.get_running_loop()

    def on_signal(signame: str) -> None:
        if run.interrupt():
            progress.message(
                f"{signame}: stopping; no new line is submitted. Waiting up to "
                f"{DRAIN_SECONDS:g}s for the answers to {run.unanswered} create request(s) "
                f"already sent ({signame} again to stop at once; unanswered ones are then in "
                "doubt)."
            )

    installed: list[signal.Signals] = []
    # Only the main thread may handle signals: a run started from another
    # thread (main() or run_command() called in a worker thread) goes on
    # without them, as the main thread's own handlers stay in charge.
    in_main_thread = threading.current_thread() is threading.main_thread()
    for sig in (signal.SIGINT, signal.SIGTERM) if in_main_thread else ():
        try:
            loop.add_signal_handler(sig, on_signal, sig.name)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _execute(
    run: PlanRun, connection: Connection, progress: Progress, factory: SessionFactory | None
) -> RunResult:
    """Open a session only when the run has work, run it, close the session."""
    if not await run.needs_session():
        return await run.execute(None)
    opener = factory or (lambda c, n: open_session(c, max_connections=n))
    session, requests_made, close = await opener(connection, max(run.options.concurrency + 4, 16))
    try:
        with _signals(run, progress):
            return await run.execute(session, requests_made=requests_made)
    finally:
        await close()


async def run_command(
    command: RunCommand,
    connection: Connection | None,
    *,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    session_factory: SessionFactory | None = None,
) -> int:
    """Run (or resume) a plan and print its summary.

    Args:
        command: What to run and how.
        connection: Where and as whom (None only for a dry run).
        out: Standard output (default ``sys.stdout``).
        err: Standard error (default ``sys.stderr``).
        session_factory: Replaces :func:`open_session` (for embedding).

    Returns:
        The exit code (see ``_codes.py``).

    Raises:
        UsageError: Bad plan, configuration or journal (exit code 2).
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    options = command.options()
    if command.dry_run:
        return print_dry_run(_checked_plan(command, connection, err), command, options, out)
    if command.output == "rich" and not rich_available():
        raise UsageError("--progress rich needs rich: pip install 'koodrive-async[cli]'")
    if connection is None:
        raise UsageError("a run needs the connection settings (--base-url, --user-id, --token)")
    started = time.monotonic()
    plan = _checked_plan(command, connection, err)
    async with AsyncExitStack() as stack:
        try:
            journal = await stack.enter_async_context(
                open_journal(
                    command.journal,
                    plan=command.plan,
                    worker_id=command.worker_id,
                    lease=command.lease,
                    x_date_window=command.x_date_window,
                    fence_margin=command.fence_margin,
                )
            )
            appended = await attach_plan(journal, plan)
        except JournalError as exc:
            raise UsageError(str(exc)) from exc
        progress, use_rich = _reporter(command, out, err)
        display = progress
        if appended:
            progress.message(f"{appended} line(s) appended to the plan since the last run")
        with _manifest(command.report, progress) as progress:
            run = PlanRun(plan, journal, options, progress)
            await run.prepare()
            result = await _execute(run, connection, progress, session_factory)
            if not result.had_work and not result.in_doubt:
                progress.message(await _nothing_to_do(journal, command.plan))
        # Many workers: who still holds lines of the plan (other workers, or
        # this one's unanswered creates until their lease runs out).
        holders = await journal.holders()
    code = run_exit_code(result)
    if result.error is not None:
        err.write(mask(f"run aborted: {type(result.error).__name__}: {result.error}") + "\n")
    summary = Summary.of(
        result,
        plan=plan.path.name,
        journal=journal.location,
        lines=len(plan.lines),
        wall_time=time.monotonic() - started,
        exit_code=code,
        holders=holders,
    )
    if isinstance(display, JsonLogReporter):
        display.log("summary", exit_code=code, **{k.strip(): v for k, v in summary.rows()})
    else:
        print_summary(summary, use_rich=use_rich, out=err if command.output == "json" else out)
    return code
