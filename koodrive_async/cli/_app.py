"""Argument parsing and the ``task`` and ``emulator`` subcommands."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from .. import __version__
from .._exceptions import KooDriveError, TaskFailedError, TaskTimeoutError
from .._models import Task, TaskStatus, TaskType
from .._policies import PollPolicy
from ._mask import mask
from ._reconcile import SETTLE_SECONDS
from ._runner import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    MAX_LIST_PAGES,
    Connection,
    RunOptions,
    UsageError,
    open_session,
    run_plan,
)

__all__ = ["build_parser", "main"]

PROG = "koodrive-async"

ENV_BASE_URL = "KOODRIVE_BASE_URL"
ENV_USER_ID = "KOODRIVE_USER_ID"
ENV_TOKEN = "KOODRIVE_TOKEN"
ENV_AGENT_NAME = "KOODRIVE_AGENT_NAME"

EPILOG = f"""\
connection settings come from the flags or the environment: {ENV_BASE_URL}, {ENV_USER_ID},
{ENV_TOKEN} (prefer the environment for the token: command lines are visible to other users),
{ENV_AGENT_NAME} (needed by share tasks). The token is never printed.

exit codes of run: 0 every line succeeded; 1 some failed (or were skipped or not finished);
2 usage or plan error (nothing was sent); 3 some lines are in doubt; 130 interrupted.
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _float_arg(text: str, *, low: float, high: float, low_open: bool, what: str) -> float:
    """Parse a number for argparse and keep it within [low, high] (low excluded if low_open)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    # Written so that NaN, which compares false with everything, is refused too.
    above_low = value > low if low_open else value >= low
    if not (above_low and value <= high):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value


def _positive_float(text: str) -> float:
    return _float_arg(
        text, low=0.0, high=sys.float_info.max, low_open=True, what="a positive number"
    )


def _non_negative_float(text: str) -> float:
    return _float_arg(text, low=0.0, high=sys.float_info.max, low_open=False, what="a number >= 0")


def _fraction(text: str) -> float:
    return _float_arg(text, low=0.0, high=1.0, low_open=False, what="within 0..1")


def _enum_value(enum_cls: type[TaskStatus] | type[TaskType], text: str) -> int:
    try:
        return int(enum_cls[text.upper()])
    except KeyError:
        pass
    try:
        return int(enum_cls(int(text)))
    except ValueError:
        allowed = ", ".join(f"{m.name} ({m.value})" for m in enum_cls)
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {allowed}") from None


def _status(text: str) -> int:
    return _enum_value(TaskStatus, text)


def _task_type(text: str) -> int:
    return _enum_value(TaskType, text)


def _connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection (default: the environment)")
    group.add_argument("--base-url", help=f"service root URL (env {ENV_BASE_URL})")
    group.add_argument("--user-id", help=f"the X-User-Id (env {ENV_USER_ID})")
    group.add_argument("--token", help=f"access token (env {ENV_TOKEN}; the environment is safer)")
    group.add_argument(
        "--agent-name", help=f"X-Hw-Agentname for share tasks (env {ENV_AGENT_NAME})"
    )


def _poll_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--poll-interval",
        type=_positive_float,
        default=None,
        metavar="S",
        help="first interval between two status checks of a task (default 0.5; grows x1.5)",
    )


def build_parser() -> argparse.ArgumentParser:
    """Build the ``koodrive-async`` argument parser.

    Returns:
        The parser (the ``emulator`` subcommand is dispatched before parsing).
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Bulk runs, a demo and task lookups for KooDrive's task/batch-job Open API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo",
        help="run a realistic plan on the embedded emulator",
        description="Start the emulator on loopback, write a realistic plan (copies, moves, "
        "recycle-bin deletes, a transfer, a share package; a few percent of the tasks fail "
        "on purpose) and run it exactly as `run` would, with the progress bar and the "
        "summary. Exits 0 when the run completed, failed tasks included.",
    )
    demo.add_argument(
        "--jobs", type=_positive_int, default=1000, metavar="N", help="plan lines (default 1000)"
    )
    demo.add_argument(
        "--concurrency",
        type=_positive_int,
        default=64,
        metavar="N",
        help="tasks in flight (default 64)",
    )
    demo.add_argument("--seed", type=int, default=None, help="seed (default: random)")
    demo.add_argument(
        "--failure-rate",
        type=_fraction,
        default=0.03,
        help="share of the tasks the emulator fails (default 0.03)",
    )
    demo.add_argument(
        "--keep", type=Path, default=None, metavar="DIR", help="write plan and journal to DIR"
    )
    demo.add_argument(
        "--progress",
        choices=("auto", "plain", "rich", "json"),
        default="auto",
        help="progress display (default: a bar on a terminal)",
    )

    run = sub.add_parser(
        "run",
        help="run (or resume) a JSON Lines plan, exactly once per line",
        description="Validate every line of PLAN, then submit each line once and wait for "
        "it, recording everything in a SQLite journal. Running the same command again "
        "resumes: finished lines are skipped, submitted ones are waited for, and lines "
        "interrupted between sending and recording (in doubt) are looked up in the "
        "service's task list: found ones are waited for, ones proven not created are sent, "
        "the others are reported as in doubt.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("plan", type=Path, metavar="PLAN.jsonl")
    run.add_argument(
        "--journal",
        type=Path,
        default=None,
        metavar="PATH",
        help="the journal (default: PLAN.journal.sqlite beside the plan)",
    )
    run.add_argument(
        "--concurrency",
        type=_positive_int,
        default=16,
        metavar="N",
        help="tasks in flight (default 16)",
    )
    run.add_argument(
        "--rate", type=_positive_float, default=None, metavar="R", help="most submissions/second"
    )
    run.add_argument(
        "--timeout",
        type=_positive_float,
        default=None,
        metavar="S",
        help="longest wait for one task (it is waited for again on the next run)",
    )
    run.add_argument(
        "--json", action="store_true", help="one JSON object per finished line on stdout"
    )
    run.add_argument(
        "--progress",
        choices=("auto", "plain", "rich"),
        default="auto",
        help="progress display (default: a bar on a terminal)",
    )
    run.add_argument(
        "--skip-invalid", action="store_true", help="run the valid lines despite invalid ones"
    )
    run.add_argument(
        "--resubmit-in-doubt",
        action="store_true",
        help="send again the in-doubt lines the reconciliation could not settle (they may "
        "then exist twice)",
    )
    run.add_argument(
        "--settle-time",
        type=_non_negative_float,
        default=SETTLE_SECONDS,
        metavar="S",
        help="seconds after a create may have been sent before the task list may show it "
        f"was not created (default {SETTLE_SECONDS:g}; raise it behind a slow proxy)",
    )
    run.add_argument(
        "--max-list-pages",
        type=_positive_int,
        default=MAX_LIST_PAGES,
        metavar="N",
        help="most task-list pages (of up to 100 tasks) one reconciliation reads; a longer "
        f"listing leaves the in-doubt lines in doubt (default {MAX_LIST_PAGES})",
    )
    run.add_argument(
        "--no-reconcile",
        dest="reconcile",
        action="store_false",
        help="do not look for the in-doubt lines' tasks in the service's task list; leave "
        "them in doubt",
    )
    run.add_argument(
        "--retry-rejected",
        action="store_true",
        help="send again the lines whose create was refused (nothing was created for them)",
    )
    _poll_option(run)
    _connection_options(run)

    task = sub.add_parser("task", help="look up and wait for tasks")
    task_sub = task.add_subparsers(dest="task_command", metavar="ACTION", required=True)
    get = task_sub.add_parser("get", help="show one task")
    get.add_argument("task_id", metavar="ID")
    get.add_argument("--json", action="store_true", help="print the task as JSON")
    _connection_options(get)

    lst = task_sub.add_parser("list", help="list tasks (all pages)")
    lst.add_argument(
        "--type",
        dest="task_type",
        type=_task_type,
        default=None,
        help="TRANSFER (0) or BATCH_IMPORT (1)",
    )
    lst.add_argument(
        "--status",
        type=_status,
        nargs="+",
        action="extend",
        default=None,
        help="NEW, EXECUTING, SUCCESS, FAILED (or 0-3); several allowed",
    )
    lst.add_argument(
        "--page-size", type=_positive_int, default=100, metavar="N", help="tasks per page (max 100)"
    )
    lst.add_argument("--json", action="store_true", help="one JSON object per task")
    _connection_options(lst)

    wait = task_sub.add_parser("wait", help="wait for tasks to finish")
    wait.add_argument("task_ids", metavar="ID", nargs="+")
    wait.add_argument(
        "--timeout", type=_positive_float, default=None, metavar="S", help="longest wait"
    )
    wait.add_argument("--json", action="store_true", help="one JSON object per task")
    _poll_option(wait)
    _connection_options(wait)

    sub.add_parser(
        "emulator",
        help="serve the emulator (same options as python -m koodrive_async.emulator)",
        add_help=False,
    )
    return parser


def _connection(args: argparse.Namespace, *, env: dict[str, str] | None = None) -> Connection:
    env = dict(os.environ) if env is None else env

    def pick(flag: str | None, name: str, option: str, *, required: bool = True) -> str | None:
        value = flag if flag else env.get(name) or None
        if required and not value:
            raise UsageError(f"missing {option} (or the {name} environment variable)")
        return value

    base_url = pick(args.base_url, ENV_BASE_URL, "--base-url")
    user_id = pick(args.user_id, ENV_USER_ID, "--user-id")
    token = pick(args.token, ENV_TOKEN, "--token")
    agent_name = pick(args.agent_name, ENV_AGENT_NAME, "--agent-name", required=False)
    assert base_url is not None and user_id is not None and token is not None
    return Connection(base_url=base_url, user_id=user_id, token=token, agent_name=agent_name)


def _poll(args: argparse.Namespace) -> PollPolicy:
    interval = getattr(args, "poll_interval", None)
    if interval is None:
        return PollPolicy()
    return PollPolicy(initial=interval, max_interval=max(interval, 15.0))


# ---------------------------------------------------------------------- task commands


def _name(enum_cls: type[TaskStatus] | type[TaskType], value: object) -> str:
    if isinstance(value, enum_cls):
        return value.name
    return "-" if value is None else str(value)


def task_json(task: Task) -> dict[str, Any]:
    """A task as a JSON-ready dict (enums as their ints, times as ISO 8601), secrets masked.

    ``initParams`` is what the service sends; it may echo a request body,
    archive password or kdstoken included: those are masked (see ``_mask.py``).
    """
    result: dict[str, Any] = {}
    for field in (
        "task_id",
        "task_name",
        "task_type",
        "tenant_id",
        "user_id",
        "status",
        "result_code",
        "init_params",
        "locale",
        "create_time",
        "start_time",
        "end_time",
    ):
        value = getattr(task, field)
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        elif isinstance(value, int):
            value = int(value)
        result[field] = value
    if isinstance(task.status, TaskStatus):
        result["status_name"] = task.status.name
    masked: dict[str, Any] = mask(result)
    return masked


def _print_task(task: Task, out: IO[str]) -> None:
    data = task_json(task)
    data["status"] = _name(TaskStatus, task.status)
    data["task_type"] = _name(TaskType, task.task_type)
    data.pop("status_name", None)
    width = max(len(k) for k in data)
    for key, value in data.items():
        if value is not None:
            out.write(mask(f"{key.ljust(width)}  {value}") + "\n")


async def _task_get(args: argparse.Namespace, connection: Connection, out: IO[str]) -> int:
    session, _, close = await open_session(connection)
    try:
        task = await session.get_task(args.task_id)
    finally:
        await close()
    if args.json:
        out.write(json.dumps(task_json(task)) + "\n")
    else:
        _print_task(task, out)
    return EXIT_OK


async def _task_list(args: argparse.Namespace, connection: Connection, out: IO[str]) -> int:
    session, _, close = await open_session(connection)
    count = 0
    try:
        if not args.json:
            out.write(f"{'TASK ID':<20} {'TYPE':<12} {'STATUS':<9} {'RESULT':<9} CREATED\n")
        statuses = [TaskStatus(s) for s in args.status] if args.status else None
        task_type = TaskType(args.task_type) if args.task_type is not None else None
        async for task in session.iter_tasks(
            task_type=task_type, status=statuses, page_size=args.page_size
        ):
            count += 1
            if args.json:
                out.write(json.dumps(task_json(task)) + "\n")
            else:
                created = task.create_time.isoformat() if task.create_time else "-"
                row = (
                    f"{task.task_id:<20} {_name(TaskType, task.task_type):<12} "
                    f"{_name(TaskStatus, task.status):<9} {task.result_code or '-':<9} {created}"
                )
                out.write(mask(row) + "\n")
    finally:
        await close()
    if not args.json:
        out.write(f"{count} task(s)\n")
    return EXIT_OK


async def _task_wait(args: argparse.Namespace, connection: Connection, out: IO[str]) -> int:
    session, _, close = await open_session(connection)
    poll = _poll(args)
    failures = 0

    async def wait_one(task_id: str) -> None:
        nonlocal failures
        record: dict[str, Any] = {"task_id": task_id}
        try:
            await session.wait_for_task(task_id, timeout=args.timeout, poll=poll)
            record.update(state="succeeded")
            text = f"{task_id} SUCCESS"
        except TaskFailedError as exc:
            failures += 1
            record.update(state="failed", result_code=exc.result_code)
            text = f"{task_id} FAILED" + (
                f" resultCode {exc.result_code}" if exc.result_code else ""
            )
        except TaskTimeoutError as exc:
            failures += 1
            last = _name(TaskStatus, exc.last.status) if exc.last is not None else None
            record.update(state="timeout", last_status=last)
            text = f"{task_id} not finished after {args.timeout}s (last status {last})"
        except KooDriveError as exc:
            failures += 1
            record.update(state="error", error=str(exc))
            text = f"{task_id} error: {exc}"
        out.write((json.dumps(mask(record)) if args.json else mask(text)) + "\n")
        out.flush()

    try:
        await asyncio.gather(*(wait_one(t) for t in dict.fromkeys(args.task_ids)))
    finally:
        await close()
    return EXIT_FAILED if failures else EXIT_OK


# ---------------------------------------------------------------------- main


def _dispatch(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    if args.command == "demo":
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
    connection = _connection(args)
    if args.command == "run":
        options = RunOptions(
            plan=args.plan,
            journal=args.journal,
            concurrency=args.concurrency,
            rate=args.rate,
            timeout=args.timeout,
            poll=_poll(args),
            output="json" if args.json else args.progress,
            skip_invalid=args.skip_invalid,
            resubmit_in_doubt=args.resubmit_in_doubt,
            retry_rejected=args.retry_rejected,
            reconcile=args.reconcile,
            settle=args.settle_time,
            max_list_pages=args.max_list_pages,
        )
        return asyncio.run(run_plan(options, connection, out=out, err=err))
    handler = {"get": _task_get, "list": _task_list, "wait": _task_wait}[args.task_command]
    try:
        return asyncio.run(handler(args, connection, out))
    except KooDriveError as exc:
        err.write(mask(f"{PROG}: {exc}") + "\n")
        return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """The ``koodrive-async`` command.

    Args:
        argv: The arguments (default ``sys.argv[1:]``).

    Returns:
        The exit code: 0 success, 1 some failed, 2 usage or plan error,
        3 some in doubt (``run``), 130 interrupted.
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
        return _dispatch(args, out, err)
    except UsageError as exc:
        err.write(mask(f"{PROG}: error: {exc}") + "\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.write(f"{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
