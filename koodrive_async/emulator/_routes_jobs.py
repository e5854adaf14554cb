"""The batch-job routes: create, detail, list and cancel (API-EXTRA.md section B).

``POST jobs`` creates a job (copy, move, delete, restore, decompress, package
download, empty the recycle bin); its answer names the id ``data``, not
``taskId``. ``GET {job_id}`` is the job's detail (``jobInfo``, one
``taskInfos`` entry per file, ``uncompressedFileList`` for decompression),
``GET jobs`` lists a user's jobs by ``offset`` and ``limit`` (oldest first, so
new jobs never shift a page already read), and ``POST cancel`` ends a job that
is still pending or processing. ``GET jobs`` is registered before
``GET {job_id}``: a single-segment template would otherwise also take ``jobs``.
Job detail is polled like ``task/{id}``, so its answer is serialised once per
change (``_render.render_cached``).
"""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import web

from ._core import EmulatorCore
from ._detail import has_package, job_info, task_infos, uncompressed_files
from ._downloads import download_url
from ._headers import locale
from ._ledger import redact_body
from ._pipeline import PREFIX, Reply, Route
from ._render import (
    JOB_NOT_CANCELLABLE,
    RESOURCE_NOT_FOUND,
    TASK_NOT_FOUND,
    ApiError,
    ok,
    render_cached,
)
from ._rules import check_cancel, check_job, parse_job_list_query, require_object
from ._state import CANCELLED, EmulatedTask

__all__ = ["ROUTES"]


def create_job(core: EmulatorCore, request: web.Request, user_id: str, body: Any) -> Reply:
    """Handle ``POST jobs``.

    Args:
        core: The emulator.
        request: The request.
        user_id: The authenticated ``X-User-Id``.
        body: The parsed body (its archive ``password`` is never kept).

    Returns:
        The reply, with the new job id in ``data``.
    """
    task_type = check_job(require_object(body))
    task = core.state.create(
        user_id=user_id,
        route="create_job",
        task_type=task_type,
        body=redact_body(body),
        locale=locale(request),
    )
    return 200, ok(core, {"data": task.task_id}), task.task_id


def _job_of(core: EmulatorCore, user_id: str, job_id: str) -> EmulatedTask | None:
    task = core.state.get(job_id)
    if task is None or task.user_id != user_id or task.route != "create_job":
        return None
    return task


def _info(core: EmulatorCore, request: web.Request, task: EmulatedTask, now: float) -> Any:
    url = download_url(core, request, task) if has_package(task, now) else None
    return job_info(task, now, core.config, "job", url)


def get_job(core: EmulatorCore, request: web.Request, user_id: str, _body: Any) -> Reply:
    """Handle ``GET {job_id}``: the job and its files as of the virtual clock.

    Args:
        core: The emulator.
        request: The request.
        user_id: The authenticated ``X-User-Id``.
        _body: Unused.

    Returns:
        The reply: ``data`` with ``jobInfo``, ``taskInfos`` and, for cloud
        decompression, ``uncompressedFileList``.

    Raises:
        ApiError: 404 for an unknown job or one of another user.
    """
    task = _job_of(core, user_id, request.match_info["job_id"])
    if task is None:
        raise ApiError(404, TASK_NOT_FOUND, "job does not exist")
    now = core.clock.now()

    def build() -> dict[str, Any]:
        data: dict[str, Any] = {
            "jobInfo": _info(core, request, task, now),
            "taskInfos": task_infos(task, now, core.config),
        }
        if task.task_type == 5:
            data["uncompressedFileList"] = uncompressed_files(task, now)
        return {"data": data}

    key = (
        task.job_status_at(now),
        task.files_done_at(now),
        task.forced_status,
        task.began_at(now) is not None,
        request.host,
    )
    return 200, render_cached(core, task.task_id, key, build), None


def list_jobs(core: EmulatorCore, request: web.Request, user_id: str, _body: Any) -> Reply:
    """Handle ``GET jobs``: a user's jobs, ``offset`` items in, at most ``limit``.

    Args:
        core: The emulator.
        request: The request.
        user_id: The authenticated ``X-User-Id``.
        _body: Unused.

    Returns:
        The reply: ``data``, an array of ``jobInfo`` items (empty past the end).

    Raises:
        Invalid: A query parameter is missing or out of range.
    """
    query = parse_job_list_query(request.query)
    now = core.clock.now()
    jobs = core.state.jobs_for(user_id)
    task_type, status = query.task_type, query.status
    selected = (
        t
        for t in jobs
        if (task_type is None or t.task_type == task_type)
        and (status is None or t.job_status_at(now) == status)
    )
    page = itertools.islice(selected, query.offset, query.offset + query.limit)
    return 200, ok(core, {"data": [_info(core, request, t, now) for t in page]}), None


def cancel_job(core: EmulatorCore, _request: web.Request, user_id: str, body: Any) -> Reply:
    """Handle ``POST cancel``: end a job that is pending or processing.

    Args:
        core: The emulator.
        _request: Unused.
        user_id: The authenticated ``X-User-Id``.
        body: The parsed body, ``{"jobId": ...}``.

    Returns:
        The reply: ``code`` and ``msg`` only, as the page's example.

    Raises:
        ApiError: 400 RESOURCE_NOT_FOUND for an unknown job (or another
            user's), 400 JOB_NOT_CANCELLABLE once it completed or was cancelled.
    """
    job_id = check_cancel(body)
    task = _job_of(core, user_id, job_id)
    if task is None:
        raise ApiError(400, RESOURCE_NOT_FOUND, "job does not exist")
    if not core.state.cancel(task):
        if task.job_status_at(core.clock.now()) == CANCELLED:
            raise ApiError(400, JOB_NOT_CANCELLABLE, "the job is already cancelled")
        raise ApiError(400, JOB_NOT_CANCELLABLE, "the job has already completed")
    return 200, ok(core, {}), None


#: ``GET jobs`` right after ``POST jobs`` (one resource) and before ``GET {job_id}``.
ROUTES = (
    Route("POST", f"{PREFIX}/jobs", "create_job", create_job),
    Route("GET", f"{PREFIX}/jobs", "list_jobs", list_jobs),
    Route("POST", f"{PREFIX}/cancel", "cancel_job", cancel_job),
    Route("GET", f"{PREFIX}/{{job_id}}", "get_job", get_job),
)
