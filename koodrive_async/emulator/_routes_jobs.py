"""The batch-job routes: ``POST jobs`` (copy, move, compress, decompress, ... in one job).

A job is a task like the others (``task/{id}`` and ``task/list`` show it); its
create answer names the id ``data``, not ``taskId``. Job detail, job list and
cancel (``GET {job_id}``, ``GET jobs``, ``POST cancel``, API-EXTRA.md section B)
belong here next; register ``GET jobs`` before ``GET {job_id}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ._core import EmulatorCore
from ._headers import locale
from ._ledger import redact_body
from ._pipeline import PREFIX, Reply, Route
from ._render import ok
from ._rules import check_job, require_object

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


ROUTES = (Route("POST", f"{PREFIX}/jobs", "create_job", create_job),)
