"""create_app: the emulator as an aiohttp application, composed from its route groups.

Start reading here. A request to an API path goes through the pipeline
(``_pipeline``: faults, body, authentication from ``_headers``, the handler,
``{code, msg}`` rendering from ``_render``, the ledger) into one handler of a
route group (``_routes_tasks``, ``_routes_share``, ``_routes_jobs``), which
checks the body with the pure rules of ``_rules`` and reads or changes the
task store of ``_state`` (job and share-task detail answers are shaped by
``_detail``); the session routes (``_routes_session``) issue access tokens
into ``_tokens``, which authentication consults, and app signatures are
checked by ``_signature``. ``/_emulator/`` paths go to ``_admin`` instead
(package downloads, ``_downloads``, among them), and anything else to the
pipeline's 404. All of an instance's state is one
:class:`~._core.EmulatorCore`.

A new route group is a ``_routes_<group>.py`` with handlers and a ``ROUTES``
tuple, added to :data:`ROUTE_GROUPS` (and its route names to
``_faults.API_ROUTES``, so faults can target them).
"""

from __future__ import annotations

from aiohttp import web

from . import _routes_jobs, _routes_session, _routes_share, _routes_tasks
from ._admin import AdminRoutes
from ._config import EmulatorConfig
from ._core import CORE_KEY, EmulatorCore
from ._pipeline import NOT_FOUND, Route, api_handler

__all__ = ["CORE_KEY", "ROUTE_GROUPS", "EmulatorCore", "create_app"]

#: Every API route, per group, in registration order.
ROUTE_GROUPS: tuple[tuple[Route, ...], ...] = (
    _routes_tasks.ROUTES,
    _routes_share.ROUTES,
    _routes_jobs.ROUTES,
    _routes_session.ROUTES,
)


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    """Build the emulator as an ``aiohttp.web.Application``, for embedding.

    The application's :class:`EmulatorCore` (clock, state, faults, ledger) is
    ``app[CORE_KEY]``.

    Args:
        config: The configuration (default ``EmulatorConfig()``).

    Returns:
        The application, not yet started.
    """
    core = EmulatorCore(config or EmulatorConfig())
    # Share and job bodies with 1000 file ids are well under this.
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[CORE_KEY] = core
    for group in ROUTE_GROUPS:
        for route in group:
            # add_route, not web.get: an API GET answers no HEAD (the catch-all's 404).
            app.router.add_route(route.method, route.path, api_handler(core, route))
    app.add_routes(AdminRoutes(core).routes())
    # Last, so it only gets what nothing else matched.
    app.router.add_route(NOT_FOUND.method, NOT_FOUND.path, api_handler(core, NOT_FOUND))
    return app
