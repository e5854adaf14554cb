"""How a batch job and a share task look in their detail answers (API-EXTRA.md B and C).

Pure functions of a task, the virtual time and the configuration; the route
modules add ``code``/``msg``, the download link and the render cache. The
two pages name the same things differently (job detail ``status`` and
``beginTime``, share taskDetail ``taskStatus`` and ``startTime``); which names
an answer uses is ``ResponseVariant.detail_names``. Times are 14-digit
``yyyyMMddHHmmss`` in ``EmulatorConfig.job_time_utc_offset`` (the pages name no
zone). ``taskResultCode`` and ``resultCode`` appear once a task completed,
``beginTime`` once it began, ``endTime`` once it completed or was cancelled.
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

from ._config import EmulatorConfig
from ._state import COMPLETED, FAILED, FILE_FAILED, FILE_SUCCEEDED, EmulatedTask

__all__ = [
    "ALL_FAILED",
    "ALL_SUCCEEDED",
    "PARTIALLY_FAILED",
    "Page",
    "has_package",
    "job_info",
    "job_time",
    "result_of",
    "task_infos",
    "uncompressed_files",
]

#: ``taskResultCode`` values of the pages.
ALL_SUCCEEDED = 1
PARTIALLY_FAILED = 2
ALL_FAILED = 3

#: Which page's answer is being built.
Page = Literal["job", "share"]

# (status field, begin-time field) per page, for detail_names "per_page".
_NAMES: dict[str, tuple[str, str]] = {
    "job": ("status", "beginTime"),
    "share": ("taskStatus", "startTime"),
}


def job_time(epoch: float, utc_offset_hours: float) -> str:
    """Format epoch seconds as the pages' 14-digit ``yyyyMMddHHmmss``.

    Args:
        epoch: Seconds since the epoch.
        utc_offset_hours: Hours east of UTC to write the time in.

    Returns:
        The 14 digits.
    """
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(math.floor(epoch + utc_offset_hours * 3600)))


def result_of(task: EmulatedTask, now: float) -> int | None:
    """Return the ``taskResultCode`` at ``now``: None until the task completed.

    Args:
        task: A job or share task.
        now: Virtual epoch seconds.

    Returns:
        1 all succeeded, 2 partially failed, 3 all failed, or None.
    """
    if task.job_status_at(now) != COMPLETED:
        return None
    total = len(task.files)
    if total == 0:
        return ALL_FAILED if task.status_at(now) == FAILED else ALL_SUCCEEDED
    failed = sum(1 for f in task.files if task.file_status_at(f, now) == FILE_FAILED)
    if failed == 0:
        return ALL_SUCCEEDED
    return ALL_FAILED if failed == total else PARTIALLY_FAILED


def has_package(task: EmulatedTask, now: float) -> bool:
    """Whether the task has a zip to download at ``now``.

    A package download (job type 6, share type 1) that completed with at least
    one file packed.

    Args:
        task: A job or share task.
        now: Virtual epoch seconds.

    Returns:
        True when a ``downloadUrl`` is due.
    """
    package = (task.route, task.task_type) in (("create_job", 6), ("create_share_task", 1))
    return (
        package
        and task.job_status_at(now) == COMPLETED
        and any(task.file_status_at(f, now) == FILE_SUCCEEDED for f in task.files)
    )


def job_info(
    task: EmulatedTask,
    now: float,
    config: EmulatorConfig,
    page: Page,
    download_url: str | None = None,
) -> dict[str, Any]:
    """Return ``jobInfo`` as one page shows it (also a ``GET jobs`` item).

    Args:
        task: A job or share task.
        now: Virtual epoch seconds.
        config: The emulator configuration (names, time zone).
        page: ``"job"`` (job detail and job list) or ``"share"`` (taskDetail).
        download_url: The zip's link, when :func:`has_package`.

    Returns:
        A JSON-ready dict.
    """
    names = config.response_variant.detail_names
    status_key, begin_key = _NAMES[page if names == "per_page" else names]
    offset = config.job_time_utc_offset
    status = task.job_status_at(now)
    total = len(task.files)
    if status == COMPLETED:
        progress = 100
    elif total:
        # Never 100 before the end: the last file ends the task.
        progress = min(99, 100 * task.files_done_at(now) // total)
    else:
        progress = 0
    out: dict[str, Any] = {"taskId": task.task_id, "userId": task.user_id}
    if page == "job":
        out.update(taskName=task.name, tenantId=task.tenant_id)
        container = task.body.get("dstContainerId")
        if isinstance(container, str):
            out["containerId"] = container
        action = task.body.get("actionType")
        if isinstance(action, int):
            out["actionType"] = action
        out["contentNum"] = total
    out["taskType"] = task.task_type
    out[status_key] = status
    out["progress"] = progress
    result = result_of(task, now)
    if result is not None:
        out["taskResultCode"] = result
        if page == "job" and result != ALL_SUCCEEDED and task.result_code is not None:
            out["resultCode"] = int(task.result_code)
    if download_url is not None:
        out["downloadUrl"] = download_url
    out["createTime"] = job_time(task.shown(task.created_at), offset)
    began = task.began_at(now)
    if began is not None:
        out[begin_key] = job_time(task.shown(began), offset)
    if status == COMPLETED or task.cancelled:
        out["endTime"] = job_time(task.shown(task.ended_at), offset)
    return out


def task_infos(task: EmulatedTask, now: float, config: EmulatorConfig) -> Any:
    """Return ``taskInfos``: one entry per file, as an array or (variant) one object.

    Args:
        task: A job or share task.
        now: Virtual epoch seconds.
        config: The emulator configuration (file status type, array or object).

    Returns:
        A list of dicts, or one dict when the variant asks for an object and
        there is exactly one file.
    """
    variant = config.response_variant
    as_str = variant.file_status_as == "str"
    entries = []
    for file in task.files:
        status = task.file_status_at(file, now)
        entry: dict[str, Any] = {
            "fileId": file.file_id,
            "status": str(status) if as_str else status,
            "srcContainerId": file.src_container_id,
        }
        if status == FILE_SUCCEEDED and file.new_file_id is not None:
            entry["newFileId"] = file.new_file_id
        entries.append(entry)
    if variant.task_infos_as == "object" and len(entries) == 1:
        return entries[0]
    return entries


def uncompressed_files(task: EmulatedTask, now: float) -> list[dict[str, Any]]:
    """Return ``uncompressedFileList`` of a cloud decompression job (type 5).

    Each archive that was extracted lists the paths asked for
    (``uncompressFilePaths``), or a file and a folder of its own.

    Args:
        task: A type-5 job.
        now: Virtual epoch seconds.

    Returns:
        The entries (code, name, type 1 file / 2 folder, updateAt in epoch
        milliseconds, fileSize in bytes; all strings, as the listFile page).
    """
    info = task.body.get("taskInfo")
    paths = info.get("uncompressFilePaths") if isinstance(info, dict) else None
    out: list[dict[str, Any]] = []
    for file in task.files:
        if task.file_status_at(file, now) != FILE_SUCCEEDED:
            continue
        names = paths if paths else [f"{file.file_id}/readme.txt", f"{file.file_id}/docs"]
        stamp = str(int(file.done_at * 1000))
        for name in names:
            folder = not paths and name.endswith("/docs")
            out.append(
                {
                    "code": "0",
                    "name": str(name),
                    "type": "2" if folder else "1",
                    "updateAt": stamp,
                    "fileSize": "0" if folder else "1024",
                }
            )
    return out
