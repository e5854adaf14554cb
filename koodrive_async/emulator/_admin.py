"""The ``/_emulator/`` admin routes: inspect and steer an emulator over HTTP.

For tests and demos in another process (``python -m koodrive_async.emulator``):
the ledger, the tasks, faults, the per-user quota, the virtual clock, forced finishes, reset, a
health check, the session and refresh counters and the OpenAPI document;
and the package downloads a job's ``downloadUrl`` points to (``_downloads``).
They are not the service: no authentication, no faults, no ledger entry, and
answers are plain JSON
(``{"error": ...}`` on a refusal, never ``{code, msg}``). A wrong method or an
unknown path under ``/_emulator/`` is refused here too (405 / 404), so it never
reaches the API's catch-all and its ledger.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web

from ._core import EmulatorCore
from ._downloads import DOWNLOAD_PATH, serve_download
from ._quota import make_quota
from ._rules import NO_BODY, parse_body

__all__ = ["AdminRoutes"]

#: The OpenAPI document served at ``GET /_emulator/openapi.json``.
_OPENAPI_PATH = Path(__file__).with_name("openapi.json")

_FAULT_FIELDS = frozenset({"kind", "route", "method", "count", "rate", "latency", "retry_after"})


def _bad(msg: str, status: int = 400) -> web.Response:
    return web.json_response({"error": msg}, status=status)


async def _json_object(request: web.Request) -> dict[str, Any]:
    # An empty body is an empty object: every admin field is optional or checked.
    body = parse_body(await request.read())
    if body is NO_BODY:
        return {}
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be a JSON object"}),
            content_type="application/json",
        )
    return body


class AdminRoutes:
    """The admin handlers of one emulator.

    Args:
        core: The emulator they inspect and steer.
    """

    def __init__(self, core: EmulatorCore) -> None:
        self._core = core
        get, post, delete = "GET", "POST", "DELETE"
        self._table = (
            (get, "/_emulator/requests", self.get_requests),
            (delete, "/_emulator/requests", self.delete_requests),
            (get, "/_emulator/tasks", self.get_tasks),
            (post, "/_emulator/tasks/{task_id}/finish", self.post_finish),
            (get, "/_emulator/faults", self.get_faults),
            (post, "/_emulator/faults", self.post_fault),
            (delete, "/_emulator/faults", self.delete_faults),
            (post, "/_emulator/clock", self.post_clock),
            (get, "/_emulator/quota", self.get_quota),
            (post, "/_emulator/quota", self.post_quota),
            (get, "/_emulator/failures", self.get_failures),
            (post, "/_emulator/failures", self.post_failures),
            (post, "/_emulator/reset", self.post_reset),
            (get, "/_emulator/health", self.health),
            (get, "/_emulator/auth", self.get_auth),
            (get, "/_emulator/openapi.json", self.get_openapi),
            (get, DOWNLOAD_PATH, self.get_download),
        )

    def routes(self) -> list[web.RouteDef]:
        """Return the route definitions, the 405/404 fallback last.

        Returns:
            Route definitions for ``app.add_routes``.
        """
        # web.get also answers HEAD, as admin GETs always have.
        defs = [
            web.get(path, handler) if method == "GET" else web.route(method, path, handler)
            for method, path, handler in self._table
        ]
        defs.append(web.route("*", "/_emulator/{tail:.*}", self.refuse))
        return defs

    async def refuse(self, request: web.Request) -> web.Response:
        """Answer 405 (with ``Allow``) for a known path and another method, else 404."""
        allowed = {m for m, path, _ in self._table if _same_path(path, request.path)}
        if not allowed:
            return _bad(f"no such admin route: {request.path}", status=404)
        if "GET" in allowed:
            allowed.add("HEAD")
        response = _bad(f"method {request.method} not allowed here", status=405)
        response.headers["Allow"] = ", ".join(sorted(allowed))
        return response

    async def get_requests(self, _request: web.Request) -> web.Response:
        """``GET /_emulator/requests``: the ledger, oldest first."""
        return web.json_response([e.to_json() for e in self._core.ledger])

    async def delete_requests(self, _request: web.Request) -> web.Response:
        """``DELETE /_emulator/requests``: empty the ledger."""
        count = len(self._core.ledger)
        self._core.ledger.clear()
        return web.json_response({"cleared": count})

    async def get_tasks(self, _request: web.Request) -> web.Response:
        """``GET /_emulator/tasks``: every task, with what a client cannot see."""
        now = self._core.clock.now()
        out = []
        for task in self._core.state.tasks():
            item = task.to_json(now)
            item.update(route=task.route, willFail=task.will_fail, duration=task.duration)
            out.append(item)
        return web.json_response(out)

    async def post_finish(self, request: web.Request) -> web.Response:
        """``POST /_emulator/tasks/{task_id}/finish``: end a task now (``failed``, ``result_code``).

        An empty body finishes it successfully.
        """
        body = await _json_object(request)
        failed = body.get("failed", False)
        code = body.get("result_code")
        if not isinstance(failed, bool) or not (code is None or isinstance(code, str)):
            return _bad("failed must be a bool and result_code a string")
        try:
            task = self._core.state.finish(request.match_info["task_id"], failed, code)
        except KeyError:
            return _bad("no such task", status=404)
        return web.json_response(task.to_json(self._core.clock.now()))

    async def get_faults(self, _request: web.Request) -> web.Response:
        """``GET /_emulator/faults``: the injected faults and their counters."""
        return web.json_response([f.to_json() for f in self._core.faults.faults])

    async def post_fault(self, request: web.Request) -> web.Response:
        """``POST /_emulator/faults``: inject one (the fields of ``KooDriveEmulator.inject``)."""
        body = await _json_object(request)
        unknown = set(body) - _FAULT_FIELDS
        if unknown:
            return _bad(f"unknown fields: {sorted(unknown)}")
        if "kind" not in body:
            return _bad("kind is mandatory")
        kwargs = {k: v for k, v in body.items() if k != "kind"}
        try:
            fault = self._core.inject(body["kind"], **kwargs)
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        return web.json_response(fault.to_json(), status=201)

    async def delete_faults(self, _request: web.Request) -> web.Response:
        """``DELETE /_emulator/faults``: remove every fault."""
        self._core.faults.clear()
        return web.json_response({"cleared": True})

    async def post_clock(self, request: web.Request) -> web.Response:
        """``POST /_emulator/clock``: set the virtual clock's ``speed``, ``advance`` it."""
        body = await _json_object(request)
        clock = self._core.clock
        try:
            if "speed" in body:
                clock.speed = body["speed"]
            if "advance" in body:
                clock.advance(body["advance"])
        except (ValueError, TypeError) as exc:
            return _bad(str(exc))
        return web.json_response({"now": clock.now(), "speed": clock.speed})

    async def get_quota(self, _request: web.Request) -> web.Response:
        """``GET /_emulator/quota``: the quota in force (or null) and the per-user counters."""
        book = self._core.quota
        return web.json_response(
            {
                "quota": None if book.quota is None else book.quota.to_json(),
                "counters": {
                    user: {"accepted": c.accepted, "throttled": c.throttled}
                    for user, c in book.counters.items()
                },
            }
        )

    async def post_quota(self, request: web.Request) -> web.Response:
        """``POST /_emulator/quota``: set the quota (``rate``, ``burst``, ``scope``, ...).

        ``{"quota": null}`` lifts it; every bucket starts full.
        """
        body = await _json_object(request)
        value: object = body.get("quota") if set(body) == {"quota"} else body
        try:
            quota = make_quota(value)
        except ValueError as exc:
            return _bad(str(exc))
        self._core.quota.set(quota)
        return web.json_response({"quota": None if quota is None else quota.to_json()})

    def _failures(self) -> web.Response:
        config = self._core.config
        return web.json_response(
            {"failure_rate": config.failure_rate, "file_failure_rate": config.file_failure_rate}
        )

    async def get_failures(self, _request: web.Request) -> web.Response:
        """``GET /_emulator/failures``: how often new tasks and their files fail."""
        return self._failures()

    async def post_failures(self, request: web.Request) -> web.Response:
        """``POST /_emulator/failures``: set ``failure_rate`` / ``file_failure_rate`` (0..1).

        For the tasks created from now on; ``{"failure_rate": 0,
        "file_failure_rate": 0}`` stops failing.
        """
        body = await _json_object(request)
        unknown = set(body) - {"failure_rate", "file_failure_rate"}
        if unknown:
            return _bad(f"unknown fields: {sorted(unknown)}")
        rates = {}
        for name, value in body.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                return _bad(f"{name} must be a number within 0..1")
            rates[name] = float(value)
        try:
            self._core.set_failure_rates(**rates)
        except ValueError as exc:
            return _bad(str(exc))
        return self._failures()

    async def post_reset(self, _request: web.Request) -> web.Response:
        """``POST /_emulator/reset``: forget tasks, ledger and faults."""
        self._core.reset()
        return web.json_response({"reset": True})

    async def health(self, _request: web.Request) -> web.Response:
        """``GET /_emulator/health``: liveness and the task count."""
        return web.json_response({"status": "ok", "tasks": len(self._core.state)})

    async def get_auth(self, _request: web.Request) -> web.Response:
        """``GET /_emulator/auth``: the session and refresh counters (never a token)."""
        book = self._core.auth
        return web.json_response(
            {
                "counters": dict(book.counters),
                "sessions": len(book.sessions),
                "issued_tokens": len(book.tokens),
            }
        )

    async def get_download(self, request: web.Request) -> web.Response:
        """``GET /_emulator/downloads/{task_id}.zip?token=...``: a package's zip."""
        return await serve_download(self._core, request)

    async def get_openapi(self, _request: web.Request) -> web.Response:
        """``GET /_emulator/openapi.json``: the OpenAPI 3 document of the API routes."""
        text = _OPENAPI_PATH.read_text(encoding="utf-8")
        return web.Response(text=text, content_type="application/json")


def _same_path(template: str, path: str) -> bool:
    # Segment by segment; a "{name}" segment matches any one non-empty segment.
    want, got = template.split("/"), path.split("/")
    return len(want) == len(got) and all(
        w == g or (w.startswith("{") and bool(g)) for w, g in zip(want, got, strict=True)
    )
