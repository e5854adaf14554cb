"""The share-task routes: ``POST share/tasks`` and ``POST share/taskDetail``.

``share/tasks`` saves or packages files shared by a link; ``share/taskDetail``
(API-EXTRA.md section C, a read although a POST) shows one such task:
``jobInfo`` (``taskStatus``, ``taskResultCode``, ``progress``, the zip's
``downloadUrl``) and ``taskInfos`` next to ``code`` and ``msg``, not under
``data``. Share routes are the carrier-facing ones: they also require
``X-Hw-Agentname`` (:func:`~._headers.bearer_and_agent`). The share token
(``kdstoken``) is never kept: a task remembers its SHA-256 only, to refuse a
detail request that brings another token.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from aiohttp import web

from ._core import EmulatorCore
from ._detail import has_package, job_info, task_infos
from ._downloads import download_url
from ._headers import bearer_and_agent, locale
from ._ledger import redact_body
from ._pipeline import PREFIX, Reply, Route
from ._render import PARAMETER_INVALID, TASK_NOT_FOUND, ApiError, ok, render_cached
from ._rules import check_share_detail, check_share_task, require_object

__all__ = ["ROUTES"]


def create_share_task(core: EmulatorCore, request: web.Request, user_id: str, body: Any) -> Reply:
    """Handle ``POST share/tasks``.

    Args:
        core: The emulator.
        request: The request.
        user_id: The authenticated ``X-User-Id``.
        body: The parsed body (its ``kdstoken`` and ``password`` are never kept).

    Returns:
        The reply, with the new ``taskId``.
    """
    task_type = check_share_task(require_object(body))
    token = body.get("kdstoken")
    task = core.state.create(
        user_id=user_id,
        route="create_share_task",
        task_type=task_type,
        body=redact_body(body),
        locale=locale(request),
        kdstoken_digest=_digest(token) if isinstance(token, str) and token else None,
    )
    return 200, ok(core, {"taskId": task.task_id}), task.task_id


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def get_share_task(core: EmulatorCore, request: web.Request, user_id: str, body: Any) -> Reply:
    """Handle ``POST share/taskDetail``: a share task and its files as of the virtual clock.

    Args:
        core: The emulator.
        request: The request.
        user_id: The authenticated ``X-User-Id``.
        body: The parsed body: ``taskId``, ``shareId``, optional ``kdstoken``.

    Returns:
        The reply: ``jobInfo`` and ``taskInfos``.

    Raises:
        Invalid: A body rule is broken.
        ApiError: 404 for an unknown share task, one of another user or
            another share; 400 for a ``kdstoken`` that is not the share's.
    """
    task_id, share_id, token = check_share_detail(body)
    task = core.state.get(task_id)
    if (
        task is None
        or task.user_id != user_id
        or task.route != "create_share_task"
        or task.body.get("shareId") != share_id
    ):
        raise ApiError(404, TASK_NOT_FOUND, "share task does not exist")
    digest = task.kdstoken_digest
    if token is not None and digest is not None and not hmac.compare_digest(_digest(token), digest):
        raise ApiError(400, PARAMETER_INVALID, "kdstoken is not valid for this share")
    now = core.clock.now()

    def build() -> dict[str, Any]:
        url = download_url(core, request, task) if has_package(task, now) else None
        return {
            "jobInfo": job_info(task, now, core.config, "share", url),
            "taskInfos": task_infos(task, now, core.config),
        }

    key = (
        task.job_status_at(now),
        task.files_done_at(now),
        task.forced_status,
        task.began_at(now) is not None,
        request.host,
    )
    return 200, render_cached(core, task.task_id, key, build), None


ROUTES = (
    Route(
        "POST", f"{PREFIX}/share/tasks", "create_share_task", create_share_task, bearer_and_agent
    ),
    Route("POST", f"{PREFIX}/share/taskDetail", "get_share_task", get_share_task, bearer_and_agent),
)
