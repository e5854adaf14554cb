"""The task routes: ``POST task/create``, ``GET task/{task_id}``, ``GET task/list``.

Also the task/list cursor, which is this group's own format. ``task/{id}`` is
the hot path of every poller, so its answer is serialised once per change of
the task (``core.rendered``) rather than once per request. The list and detail
answers show tasks of every create route, as the service is assumed to list
share tasks and jobs there too; ``EmulatorConfig(task_routes_show_jobs=False)``
limits them to the tasks of ``task/create`` (the reference pages track jobs and
share tasks elsewhere).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ._core import EmulatorCore
from ._headers import locale
from ._ledger import redact_body
from ._pipeline import PREFIX, Reply, Route
from ._render import TASK_NOT_FOUND, ApiError, Rendered, ok
from ._rules import check_create_task, parse_list_query, require_object
from ._state import EmulatedTask

__all__ = ["ROUTES"]

# task/list cursors pack (last listed creation counter, page number, "this page
# was empty") into one Long, so they are stateless and survive new tasks.
_PAGE_BITS = 20
_PAGE_MASK = (1 << _PAGE_BITS) - 1


def _encode_cursor(after_seq: int, page_no: int, empty: bool) -> int:
    return (after_seq << (_PAGE_BITS + 1)) | ((page_no & _PAGE_MASK) << 1) | int(empty)


def _decode_cursor(cursor: int) -> tuple[int, int, bool]:
    return cursor >> (_PAGE_BITS + 1), (cursor >> 1) & _PAGE_MASK, bool(cursor & 1)


def create_task(core: EmulatorCore, request: web.Request, user_id: str, body: Any) -> Reply:
    """Handle ``POST task/create``: a transfer task between two users.

    Args:
        core: The emulator.
        request: The request.
        user_id: The authenticated ``X-User-Id``.
        body: The parsed body.

    Returns:
        The reply, with the new ``taskId``.
    """
    task_type = check_create_task(require_object(body))
    task = core.state.create(
        user_id=user_id,
        route="create_task",
        task_type=task_type,
        body=redact_body(body),
        locale=locale(request),
    )
    return 200, ok(core, {"taskId": task.task_id}), task.task_id


def get_task(core: EmulatorCore, request: web.Request, user_id: str, _body: Any) -> Reply:
    """Handle ``GET task/{task_id}``: the task as of the virtual clock, if the user owns it.

    Args:
        core: The emulator.
        request: The request.
        user_id: The authenticated ``X-User-Id``.
        _body: Unused.

    Returns:
        The reply (a pre-serialised payload).

    Raises:
        ApiError: 404 for an unknown task or one of another user.
    """
    task = core.state.get(request.match_info["task_id"])
    if (
        task is None
        or task.user_id != user_id
        or (task.route != "create_task" and not core.config.task_routes_show_jobs)
    ):
        raise ApiError(404, TASK_NOT_FOUND, "task does not exist")
    now = core.clock.now()
    # A task's answer only changes with its status (or a forced finish).
    key = (task.status_at(now), task.forced_at, task.result_code)
    cached = core.rendered.get(task.task_id)
    if cached is not None and cached[0] == key:
        return 200, cached[1], None
    payload = Rendered(task.to_json(now))
    ok(core, payload)
    payload.raw = json.dumps(payload, separators=(",", ":")).encode()
    core.rendered[task.task_id] = (key, payload)
    return 200, payload, None


def list_tasks(core: EmulatorCore, request: web.Request, user_id: str, _body: Any) -> Reply:
    """Handle ``GET task/list``: filters, pageSize 1..100 and stateless cursors.

    Args:
        core: The emulator.
        request: The request.
        user_id: The authenticated ``X-User-Id``.
        _body: Unused.

    Returns:
        The reply: one page, and ``nextCursor`` unless it is the last.

    Raises:
        Invalid: A query parameter is broken.
    """
    query = parse_list_query(request.query)
    after_seq, page_no, was_empty = _decode_cursor(query.cursor or 0)
    page_no += 1
    config = core.config
    limit = min(query.page_size, config.page_size_cap)
    if config.partial_pages:
        limit = max(1, (limit + 1) // 2)
    now = core.clock.now()
    only_tasks = not config.task_routes_show_jobs
    matched: list[EmulatedTask] = []
    # One more than the page holds tells whether another page follows.
    for task in core.state.tasks_after(user_id, after_seq):
        if only_tasks and task.route != "create_task":
            continue
        if query.task_type is not None and task.task_type != query.task_type:
            continue
        if query.statuses is not None and task.status_at(now) not in query.statuses:
            continue
        matched.append(task)
        if len(matched) > limit:
            break
    every = config.empty_page_every
    next_cursor: int | None
    if matched and every and page_no % every == 0 and not was_empty:
        # An empty page before the end, as the page warns the service may send.
        page: list[EmulatedTask] = []
        next_cursor = _encode_cursor(after_seq, page_no, True)
    else:
        page = matched[:limit]
        more = len(matched) > limit
        next_cursor = _encode_cursor(page[-1].seq, page_no, False) if more else None
    variant = config.response_variant
    payload: dict[str, Any] = {variant.list_key: [t.to_json(now) for t in page]}
    if next_cursor is not None:
        payload["nextCursor"] = str(next_cursor) if variant.cursor_as == "str" else next_cursor
    return 200, ok(core, payload), None


#: ``list`` before ``{task_id}``: aiohttp versions before 3.10 match in
#: registration order (later ones prefer the plain path anyway).
ROUTES = (
    Route("POST", f"{PREFIX}/task/create", "create_task", create_task),
    Route("GET", f"{PREFIX}/task/list", "list_tasks", list_tasks),
    Route("GET", f"{PREFIX}/task/{{task_id}}", "get_task", get_task),
)
