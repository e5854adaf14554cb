"""The ``job get/list/cancel/wait`` and ``share get/wait`` commands.

Owns looking batch jobs and share tasks up, cancelling a job and waiting for
them from the command line, and how a job or share task is printed
(:func:`unit_json`, the aligned text form). Every output is masked: secrets
by name, and a download link keeps its address and loses its query (it
carries a token). Exit codes follow ``task ...``: 0 done (``wait``: every one
succeeded), 1 a refusal or an error (``wait``: some failed, were cancelled or
did not finish), 2 usage.

Must never import: ``rich``, the bulk runner.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import json
import os
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import IO, Any

import attrs

from .._enums import JobStatus, JobType
from .._exceptions import JobCancelledError, JobFailedError, KooDriveError, TaskTimeoutError
from .._models import Job, ShareTask
from .._policies import PollPolicy
from ..bulk._mask import mask, mask_url
from ._codes import EXIT_FAILED, EXIT_OK
from ._connect import Connection, open_session
from ._tasks import poll_policy

__all__ = ["ENV_KDSTOKEN", "job_command", "share_command", "unit_json"]

#: The environment variable ``--kdstoken`` falls back to (safer than the command line).
ENV_KDSTOKEN = "KOODRIVE_KDSTOKEN"

#: Failed file ids shown in a text line before "and N more".
_SHOWN_FILES = 10


def _plain(value: Any) -> Any:
    """A model's field as JSON: enums as their ints, times as ISO 8601, models as dicts."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if attrs.has(type(value)):
        return {f.name: _plain(getattr(value, f.name)) for f in attrs.fields(type(value))}
    return value


def unit_json(unit: Job | ShareTask) -> dict[str, Any]:
    """A job or share task as a JSON-ready dict, masked.

    Enum fields are their ints with a ``<field>_name`` beside them; ``state``
    is the one vocabulary of every unit of work (``new``, ``executing``,
    ``success``, ``failed``, ``cancelled``); ``failed_files`` lists the ids of
    the failed files; ``download_url`` keeps its address only.
    """
    data: dict[str, Any] = {}
    for field in attrs.fields(type(unit)):
        value = getattr(unit, field.name)
        data[field.name] = _plain(value)
        if isinstance(value, enum.Enum):
            data[f"{field.name}_name"] = value.name
    data["state"] = unit.state.value if unit.state is not None else None
    data["failed_files"] = [f.file_id for f in unit.failed_files]
    masked: dict[str, Any] = mask(data)
    return masked


def _files_text(unit: Job | ShareTask) -> str:
    failed = [f.file_id or "?" for f in unit.failed_files]
    text = f"{len(unit.files)}"
    if failed:
        shown = ", ".join(failed[:_SHOWN_FILES])
        more = len(failed) - _SHOWN_FILES
        text += f" ({len(failed)} failed: {shown}" + (f", and {more} more)" if more > 0 else ")")
    return text


def _print_unit(unit: Job | ShareTask, out: IO[str]) -> None:
    data = unit_json(unit)
    for key in list(data):
        if key.endswith("_name") and key[: -len("_name")] in data:
            data[key[: -len("_name")]] = data.pop(key)
    data["files"] = _files_text(unit)
    data.pop("failed_files")
    if not unit.files:
        data.pop("files")
    if isinstance(unit, Job) and unit.uncompressed_files:
        data["uncompressed_files"] = str(len(unit.uncompressed_files))
    else:
        data.pop("uncompressed_files", None)
    width = max(len(k) for k in data)
    for key, value in data.items():
        if value is not None:
            out.write(mask(f"{key.ljust(width)}  {value}") + "\n")


def _name(value: object) -> str:
    if isinstance(value, enum.Enum):
        return value.name
    return "-" if value is None else str(value)


def _row(job: Job) -> str:
    created = job.create_time.isoformat() if job.create_time else "-"
    state = job.state.name if job.state is not None else _name(job.status)
    progress = "-" if job.progress is None else f"{job.progress}%"
    return (
        f"{job.job_id:<20} {_name(job.task_type):<18} {state:<9} {progress:>8} "
        f"{job.file_count if job.file_count is not None else '-':>5} {created}"
    )


# ---------------------------------------------------------------------- waiting


async def _wait_text(
    wait: Callable[[], Awaitable[Job | ShareTask]], unit_id: str, kind: str, timeout: float | None
) -> tuple[dict[str, Any], str, bool]:
    """Wait for one unit: ``(JSON record, text line, failed?)``."""
    record: dict[str, Any] = {"task_id": unit_id}
    try:
        unit = await wait()
    except JobCancelledError:
        record.update(state="cancelled")
        return record, f"{kind} {unit_id} CANCELLED", True
    except JobFailedError as exc:
        ids = [f.file_id or "?" for f in exc.failed_files]
        result = getattr(exc.result, "name", exc.result)
        record.update(state="failed", result=result, result_code=exc.result_code, failed_files=ids)
        return record, f"{kind} {unit_id} FAILED: {exc}", True
    except TaskTimeoutError as exc:
        last = exc.last
        state = last.state.name if last is not None and last.state is not None else None
        record.update(state="timeout", last_state=state)
        return record, f"{kind} {unit_id} not finished after {timeout}s (last state {state})", True
    except KooDriveError as exc:
        record.update(state="error", error=str(exc))
        return record, f"{kind} {unit_id} error: {exc}", True
    record.update(state="succeeded", download_url=unit.download_url)
    link = f" (download: {mask_url(unit.download_url)})" if unit.download_url else ""
    return record, f"{kind} {unit_id} SUCCESS{link}", False


async def _wait_all(
    ids: list[str],
    wait_for: Callable[[str], Awaitable[Job | ShareTask]],
    *,
    kind: str,
    args: argparse.Namespace,
    out: IO[str],
) -> int:
    failures = 0

    async def one(unit_id: str) -> None:
        nonlocal failures
        record, text, failed = await _wait_text(
            lambda: wait_for(unit_id), unit_id, kind, args.timeout
        )
        failures += failed
        out.write((json.dumps(mask(record)) if args.json else mask(text)) + "\n")
        out.flush()

    await asyncio.gather(*(one(i) for i in dict.fromkeys(ids)))
    return EXIT_FAILED if failures else EXIT_OK


# ---------------------------------------------------------------------- job


async def job_command(args: argparse.Namespace, connection: Connection, out: IO[str]) -> int:
    """``job get|list|cancel|wait``."""
    session, _, close = await open_session(connection)
    try:
        action = args.job_command
        if action == "get":
            job = await session.get_job(args.job_id)
            if args.json:
                out.write(json.dumps(unit_json(job)) + "\n")
            else:
                _print_unit(job, out)
            return EXIT_OK
        if action == "list":
            return await _job_list(session.iter_jobs, args, out)
        if action == "cancel":
            await session.cancel_job(args.job_id)
            out.write(mask(f"job {args.job_id} cancelled") + "\n")
            return EXIT_OK
        poll: PollPolicy = poll_policy(args)
        return await _wait_all(
            args.job_ids,
            lambda i: session.wait_for_job(i, timeout=args.timeout, poll=poll),
            kind="job",
            args=args,
            out=out,
        )
    finally:
        await close()


async def _job_list(iter_jobs: Any, args: argparse.Namespace, out: IO[str]) -> int:
    """``job list [--type T] [--status S] [--page-size N] [--json]`` (every page)."""
    task_type = JobType(args.job_type) if args.job_type is not None else None
    status = JobStatus(args.job_status) if args.job_status is not None else None
    if not args.json:
        out.write(
            f"{'JOB ID':<20} {'TYPE':<18} {'STATE':<9} {'PROGRESS':>8} {'FILES':>5} CREATED\n"
        )
    count = 0
    async for job in iter_jobs(task_type=task_type, status=status, page_size=args.page_size):
        count += 1
        out.write((json.dumps(unit_json(job)) if args.json else mask(_row(job))) + "\n")
    if not args.json:
        out.write(f"{count} job(s)\n")
    return EXIT_OK


# ---------------------------------------------------------------------- share


async def share_command(args: argparse.Namespace, connection: Connection, out: IO[str]) -> int:
    """``share get|wait``: share tasks, read at share-task detail."""
    kdstoken = args.kdstoken or os.environ.get(ENV_KDSTOKEN) or None
    session, _, close = await open_session(connection)
    try:
        if args.share_command == "get":
            task = await session.get_share_task(
                args.task_id, share_id=args.share_id, kdstoken=kdstoken
            )
            if args.json:
                out.write(json.dumps(unit_json(task)) + "\n")
            else:
                _print_unit(task, out)
            return EXIT_OK
        poll = poll_policy(args)
        return await _wait_all(
            args.task_ids,
            lambda i: session.wait_for_share_task(
                i, share_id=args.share_id, kdstoken=kdstoken, timeout=args.timeout, poll=poll
            ),
            kind="share task",
            args=args,
            out=out,
        )
    finally:
        await close()
