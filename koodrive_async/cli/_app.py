"""``main()``: parse the command line, dispatch to a subcommand, map errors to exit codes.

Owns the entry point (``koodrive-async``, ``python -m koodrive_async``), the
dispatch from parsed arguments to ``_run.py``, ``_demo.py``, ``_tasks.py``,
``_jobs.py``, ``_cancel.py`` and the emulator's own ``main``, and the errors
that end any command (usage errors: 2, KooDrive errors of ``task``, ``job``,
``share`` and ``cancel``: 1, Ctrl-C outside a run: 130).

Must never import: ``rich`` (``_progress.py`` does, lazily).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from .._exceptions import KooDriveError
from ..bulk._mask import mask
from ..bulk._open import is_database_url
from ._codes import EXIT_BROKEN_PIPE, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from ._connect import Connection, connection_from
from ._jobs import job_command, share_command
from ._parser import PROG, build_parser
from ._run import RunCommand, run_command
from ._tasks import poll_policy, task_get, task_list, task_wait

__all__ = ["build_parser", "main"]


def journal_target(given: str | None, env: Mapping[str, str] | None = None) -> Path | str | None:
    """Where the journal is: ``--journal``, else ``KOODRIVE_JOURNAL_URL``, else None (default).

    A ``postgresql://`` URL stays a string; anything else is a file path.
    """
    env = os.environ if env is None else env
    target = given if given is not None else (env.get("KOODRIVE_JOURNAL_URL") or None)
    if target is None or is_database_url(target):
        return target
    return Path(target)


def _run_command(args: argparse.Namespace) -> RunCommand:
    return RunCommand(
        plan=args.plan,
        journal=journal_target(args.journal),
        worker_id=args.worker_id,
        lease=args.lease,
        x_date_window=args.x_date_window,
        fence_margin=args.fence_margin,
        concurrency=args.concurrency,
        rate=args.rate,
        timeout=args.timeout,
        poll=poll_policy(args),
        output="json" if args.json else args.progress,
        skip_invalid=args.skip_invalid,
        resubmit_in_doubt=args.resubmit_in_doubt,
        retry_rejected=args.retry_rejected,
        retry_failed=args.retry_failed,
        reconcile=args.reconcile,
        settle=args.settle_time,
        max_list_pages=args.max_list_pages,
        dry_run=args.dry_run,
        report=args.report,
        log_format=args.log_format,
    )


def _demo(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from ._demo import run_demo

    return asyncio.run(
        run_demo(
            jobs=args.jobs,
            concurrency=args.concurrency,
            seed=args.seed,
            failure_rate=args.failure_rate,
            keep=args.keep,
            progress=args.progress,
            out=out,
            err=err,
        )
    )


def _dispatch(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    if args.command == "demo":
        return _demo(args, out, err)
    if args.command == "report":
        from ._report import report_command

        return report_command(
            args.plan, journal=journal_target(args.journal), failed=args.failed, fmt=args.fmt,
            html=args.html, out=out, err=err,
        )  # fmt: skip
    if args.command == "run" and args.dry_run:
        # A dry run talks to no service: the settings are used when present
        # (the agent name of share lines), not required.
        try:
            dry: Connection | None = connection_from(args)
        except UsageError:
            dry = None
        return asyncio.run(run_command(_run_command(args), dry, out=out, err=err))
    connection = connection_from(args)
    if args.command == "run":
        return asyncio.run(run_command(_run_command(args), connection, out=out, err=err))
    if args.command == "cancel":
        from ._cancel import cancel_command

        command = cancel_command(
            args.plan, journal=args.journal, json_output=args.json, connection=connection, out=out
        )
    elif args.command == "job":
        command = job_command(args, connection, out)
    elif args.command == "share":
        command = share_command(args, connection, out)
    else:
        handler = {"get": task_get, "list": task_list, "wait": task_wait}[args.task_command]
        command = handler(args, connection, out)
    try:
        return asyncio.run(command)
    except KooDriveError as exc:
        err.write(mask(f"{PROG}: {exc}") + "\n")
        return EXIT_FAILED


def _reader_gone() -> int:
    """stdout's reader went away (``| head``): end quietly, as tools killed by SIGPIPE do."""
    # Point stdout at /dev/null: the interpreter flushes it again at exit, and
    # that flush would print a BrokenPipeError of its own.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """The ``koodrive-async`` command.

    Args:
        argv: The arguments (default ``sys.argv[1:]``).

    Returns:
        The exit code: 0 success, 1 some failed, 2 usage or plan error,
        3 some in doubt (``run``), 130 interrupted, 141 the reader of stdout went
        away (``| head``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "emulator":
        from ..emulator.__main__ import main as emulator_main

        return emulator_main(argv[1:])
    out, err = sys.stdout, sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on errors, 0 on --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        code = _dispatch(args, out, err)
        out.flush()  # here, where a closed pipe can still be told apart
        return code
    except BrokenPipeError:
        return _reader_gone()
    except UsageError as exc:
        err.write(mask(f"{PROG}: error: {exc}") + "\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.write(f"{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
