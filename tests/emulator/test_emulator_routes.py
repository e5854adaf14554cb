"""The route table: admin refusals stay out of the ledger; route groups and fault names agree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from emu_helpers import JOB_ROUTES, PREFIX, ROUTES, SESSION_ROUTES

import koodrive_async.emulator as emulator
from koodrive_async.emulator._app import ROUTE_GROUPS
from koodrive_async.emulator._faults import API_ROUTES

PACKAGE_DIR = Path(emulator.__file__).parent


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/_emulator/health", "GET, HEAD"),
        ("PUT", "/_emulator/requests", "DELETE, GET, HEAD"),
        ("GET", "/_emulator/tasks/123/finish", "POST"),
        ("PATCH", "/_emulator/faults", "DELETE, GET, HEAD, POST"),
    ],
)
async def test_a_wrong_method_on_an_admin_path_is_a_405_and_not_recorded(
    api, koodrive_emulator, method, path, allow
) -> None:
    reply = await api.request(method, path)
    assert reply.status == 405, reply.text
    assert reply.headers["Allow"] == allow
    assert reply.headers["Content-Type"].startswith("application/json")
    assert set(reply.json) == {"error"}
    assert koodrive_emulator.requests == []


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_an_unknown_admin_path_is_a_404_and_not_recorded(
    api, koodrive_emulator, method
) -> None:
    reply = await api.request(method, "/_emulator/no-such-thing")
    assert reply.status == 404, reply.text
    assert "no-such-thing" in reply.json["error"]
    assert koodrive_emulator.requests == []


async def test_admin_gets_still_answer_head(api, koodrive_emulator) -> None:
    reply = await api.request("HEAD", "/_emulator/health")
    assert reply.status == 200
    assert koodrive_emulator.requests == []


async def test_an_unknown_api_path_is_still_a_recorded_404(api, koodrive_emulator) -> None:
    reply = await api.request("DELETE", f"{PREFIX}/task/create")
    assert reply.status == 404 and reply.json["code"] == 13000305
    assert [(e.method, e.route, e.status) for e in koodrive_emulator.requests] == [
        ("DELETE", None, 404)
    ]


def test_every_api_route_is_declared_once_and_can_be_faulted() -> None:
    routes = [route for group in ROUTE_GROUPS for route in group]
    names = [route.name for route in routes]
    assert len(names) == len(set(names))
    # A fault targets a route by name: a route that faults cannot name is untestable.
    assert set(names) == API_ROUTES
    assert {r.name: (r.method, r.path) for r in routes} == {
        name: (method, path)
        for name, (method, path, _) in (ROUTES | JOB_ROUTES | SESSION_ROUTES).items()
    }


def test_every_emulator_module_opens_with_a_docstring() -> None:
    for source in sorted(PACKAGE_DIR.glob("*.py")):
        tree = ast.parse(source.read_text(), filename=str(source))
        assert ast.get_docstring(tree), f"{source.name} has no opening docstring"
