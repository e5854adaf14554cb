"""The ``task get``, ``task list`` and ``task wait`` commands.

Owns looking tasks up and waiting for them from the command line, and how a
task is printed (:func:`task_json`, the aligned text form), every output
masked. Must never import: ``rich``, the bulk runner.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import IO, Any

from .._enums import TaskStatus, TaskType
from .._exceptions import KooDriveError, TaskFailedError, TaskTimeoutError
from .._models import Task
from .._policies import PollPolicy
from .._session import KooDriveSession
from ..bulk._mask import mask
from ._codes import EXIT_FAILED, EXIT_OK
from ._connect import Connection, open_session

__all__ = ["poll_policy", "task_get", "task_json", "task_list", "task_wait"]

_TASK_FIELDS = (
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
)


def poll_policy(args: argparse.Namespace) -> PollPolicy:
    """The poll policy of ``--poll-interval`` (the default policy without it)."""
    interval = getattr(args, "poll_interval", None)
    if interval is None:
        return PollPolicy()
    return PollPolicy(initial=interval, max_interval=max(interval, 15.0))


def _name(enum_cls: type[TaskStatus] | type[TaskType], value: object) -> str:
    if isinstance(value, enum_cls):
        return value.name
    return "-" if value is None else str(value)


def task_json(task: Task) -> dict[str, Any]:
    """A task as a JSON-ready dict (enums as their ints, times as ISO 8601), secrets masked.

    ``initParams`` is what the service sends; it may echo a request body,
    archive password or kdstoken included: those are masked (see ``bulk/_mask.py``).
    """
    result: dict[str, Any] = {}
    for field in _TASK_FIELDS:
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


async def task_get(args: argparse.Namespace, connection: Connection, out: IO[str]) -> int:
    """``task get ID [--json]``."""
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


def _row(task: Task) -> str:
    created = task.create_time.isoformat() if task.create_time else "-"
    return (
        f"{task.task_id:<20} {_name(TaskType, task.task_type):<12} "
        f"{_name(TaskStatus, task.status):<9} {task.result_code or '-':<9} {created}"
    )


async def task_list(args: argparse.Namespace, connection: Connection, out: IO[str]) -> int:
    """``task list [--type T] [--status S ...] [--page-size N] [--json]`` (all pages)."""
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
            text = json.dumps(task_json(task)) if args.json else mask(_row(task))
            out.write(text + "\n")
    finally:
        await close()
    if not args.json:
        out.write(f"{count} task(s)\n")
    return EXIT_OK


async def _wait_one(
    session: KooDriveSession, task_id: str, args: argparse.Namespace, poll: PollPolicy
) -> tuple[dict[str, Any], str, bool]:
    """Wait for one task: ``(JSON record, text line, failed?)``."""
    record: dict[str, Any] = {"task_id": task_id}
    try:
        await session.wait_for_task(task_id, timeout=args.timeout, poll=poll)
    except TaskFailedError as exc:
        record.update(state="failed", result_code=exc.result_code)
        code = f" resultCode {exc.result_code}" if exc.result_code else ""
        return record, f"{task_id} FAILED{code}", True
    except TaskTimeoutError as exc:
        last = _name(TaskStatus, exc.last.status) if exc.last is not None else None
        record.update(state="timeout", last_status=last)
        return record, f"{task_id} not finished after {args.timeout}s (last status {last})", True
    except KooDriveError as exc:
        record.update(state="error", error=str(exc))
        return record, f"{task_id} error: {exc}", True
    record.update(state="succeeded")
    return record, f"{task_id} SUCCESS", False


async def task_wait(args: argparse.Namespace, connection: Connection, out: IO[str]) -> int:
    """``task wait ID... [--timeout S] [--json]``: one line per task as it ends."""
    session, _, close = await open_session(connection)
    poll = poll_policy(args)
    failures = 0

    async def wait_one(task_id: str) -> None:
        nonlocal failures
        record, text, failed = await _wait_one(session, task_id, args, poll)
        failures += failed
        out.write((json.dumps(mask(record)) if args.json else mask(text)) + "\n")
        out.flush()

    try:
        await asyncio.gather(*(wait_one(t) for t in dict.fromkeys(args.task_ids)))
    finally:
        await close()
    return EXIT_FAILED if failures else EXIT_OK
