"""The share-task routes: ``POST share/tasks`` (save or package files shared by a link).

Share routes are the carrier-facing ones: they also require ``X-Hw-Agentname``
(:func:`~._headers.bearer_and_agent`). The share-task detail route
(``POST share/taskDetail``, API-EXTRA.md section C) belongs here next.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ._core import EmulatorCore
from ._headers import bearer_and_agent, locale
from ._ledger import redact_body
from ._pipeline import PREFIX, Reply, Route
from ._render import ok
from ._rules import check_share_task, require_object

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
    task = core.state.create(
        user_id=user_id,
        route="create_share_task",
        task_type=task_type,
        body=redact_body(body),
        locale=locale(request),
    )
    return 200, ok(core, {"taskId": task.task_id}), task.task_id


ROUTES = (
    Route(
        "POST", f"{PREFIX}/share/tasks", "create_share_task", create_share_task, bearer_and_agent
    ),
)
