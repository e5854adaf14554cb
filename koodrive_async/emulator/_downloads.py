"""Package downloads: the zip behind a completed package task's ``downloadUrl``.

A package download (job type 6, share type 1) that completed hands out a link
the emulator serves itself: ``/_emulator/downloads/{task_id}.zip?token=...``,
a capability URL like a storage service's signed link (no Authorization
header, no ``X-User-Id``). The token is an HMAC of the task id under a key of
this emulator instance, so a link cannot be guessed or carried to another
instance. The zip is real (``zipfile``), holding one small placeholder file
named after each file that was packed. Served through the admin routes: no
faults, no ledger entry.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import zipfile
from typing import TYPE_CHECKING

from aiohttp import web

from ._detail import has_package
from ._state import FILE_SUCCEEDED, EmulatedTask

if TYPE_CHECKING:
    from ._core import EmulatorCore

__all__ = ["DOWNLOAD_PATH", "build_zip", "download_url", "serve_download"]

#: aiohttp path template of the download route.
DOWNLOAD_PATH = "/_emulator/downloads/{name}"

# A fixed timestamp on every member: the same task always zips to the same bytes.
_ZIP_DATE = (2024, 1, 1, 0, 0, 0)


def _token(core: EmulatorCore, task_id: str) -> str:
    return hmac.new(core.download_key, task_id.encode(), hashlib.sha256).hexdigest()[:32]


def download_url(core: EmulatorCore, request: web.Request, task: EmulatedTask) -> str:
    """Return the ``downloadUrl`` of a task's package.

    Args:
        core: The emulator (its link key).
        request: The request being answered: the link uses the scheme and
            authority the client reached the emulator at.
        task: The package task.

    Returns:
        An absolute URL.
    """
    base = f"{request.scheme}://{request.host}"
    return f"{base}/_emulator/downloads/{task.task_id}.zip?token={_token(core, task.task_id)}"


def build_zip(task: EmulatedTask, now: float) -> bytes:
    """Build the package: one placeholder member per file that was packed.

    Args:
        task: The package task.
        now: Virtual epoch seconds (which files succeeded).

    Returns:
        The zip's bytes.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in task.files:
            if task.file_status_at(file, now) != FILE_SUCCEEDED:
                continue
            member = zipfile.ZipInfo(f"{file.file_id}.txt", date_time=_ZIP_DATE)
            member.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(member, f"placeholder content of file {file.file_id}\n")
    return buffer.getvalue()


def _zip_name(task: EmulatedTask) -> str:
    name = task.body.get("zipName")
    if isinstance(name, str) and name.strip():
        cleaned = "".join(c for c in name if c.isalnum() or c in "-_. ")
        if cleaned.strip():
            return cleaned if cleaned.lower().endswith(".zip") else f"{cleaned}.zip"
    return f"{task.task_id}.zip"


async def serve_download(core: EmulatorCore, request: web.Request) -> web.Response:
    """Answer ``GET /_emulator/downloads/{task_id}.zip?token=...`` with the zip.

    Args:
        core: The emulator.
        request: The request.

    Returns:
        200 ``application/zip``; 403 for a wrong token; 404 when there is no
        such task or no package (yet).
    """
    name = request.match_info["name"]
    task_id = name.removesuffix(".zip")
    given = request.query.get("token", "")
    if not name.endswith(".zip") or not hmac.compare_digest(given, _token(core, task_id)):
        return web.json_response({"error": "invalid download link"}, status=403)
    task = core.state.get(task_id)
    now = core.clock.now()
    if task is None or not has_package(task, now):
        return web.json_response({"error": "no package to download"}, status=404)
    return web.Response(
        body=build_zip(task, now),
        content_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{_zip_name(task)}"'},
    )
