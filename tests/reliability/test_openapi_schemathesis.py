"""schemathesis against the emulator, with the OpenAPI document it ships.

For every operation of ``koodrive_async/emulator/openapi.json``, schemathesis
generates requests (examples, coverage cases and fuzzed ones, valid and
invalid) and sends them over loopback to a real emulator. Every response must
be documented: no 5xx, a documented status, a documented content type, and a
body matching the schema. Requests that are valid and authenticated must be
accepted (200; 404 for a task id that does not exist).

Authentication needs a known token and an X-Date within the last 15 minutes,
which no generator can guess: most cases get ``Authorization: Bearer t0k`` and
the current X-Date stamped in place of the generated ones (so they reach the
body checks), the rest keep what was generated (so the 401/400 paths are hit
too). A header schemathesis left out or malformed on purpose (negative cases)
is never repaired. The session routes are stamped likewise: a session's token
and id on ``session/refresh``, a static token and a known refresh token on
``auth/refreshToken`` (neither emulator rotates or revokes, so they stay
valid); ``session`` accepts any code.

The emulator runs in a background thread with its own event loop, because
schemathesis sends its requests synchronously (requests) from the test thread.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import zlib
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from functools import partial
from importlib import resources
from typing import Any, TypeVar

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from koodrive_async.emulator import EmulatorConfig, KooDriveEmulator, ResponseVariant

T = TypeVar("T")

TOKEN = "t0k"
OWNER = "openapi-owner"
REFRESH = "openapi-refresh-token"
SESSION_AUTH = {"rotate_refresh_tokens": False, "revoke_replaced_tokens": False}
X_DATE = re.compile(r"\d{8}T\d{6}Z")
PREFIX = "/koodrive/ose/v1"

SCHEMA = schemathesis.openapi.from_path(
    str(resources.files("koodrive_async.emulator").joinpath("openapi.json"))
)
SCHEMA.config.generation.update(modes=["positive", "negative"], deterministic=True)
# An explicit seed (mixed with each operation's label by schemathesis) makes
# every run generate the same cases, whatever the module is called.
SCHEMA.config.seed = 20240812
# Do not feed values seen in responses back into generation: task ids are
# time-based, so that would make runs differ. Known ids are put in by hand below.
SCHEMA.config.phases.fuzzing.extra_data_sources.responses = False
SCHEMA.config.phases.fuzzing.error_feedback.is_enabled = False
SCHEMA.config.phases.update(phases=["examples", "coverage", "fuzzing"])

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

# Two emulators: the pages' example shapes (int code, taskListDtos, numeric
# cursor), and the table shapes (str code, taskList, str cursor) with partial
# and empty pages before the end.
VARIANTS = {
    "example-shapes": EmulatorConfig(
        tokens=frozenset({TOKEN}),
        task_duration=lambda rng: rng.uniform(0.5, 20.0),
        failure_rate=0.5,
        seed=7,
        refresh_tokens={REFRESH: OWNER},
        **SESSION_AUTH,
    ),
    "table-shapes": EmulatorConfig(
        tokens=frozenset({TOKEN}),
        task_duration=lambda rng: rng.uniform(0.5, 20.0),
        failure_rate=0.5,
        seed=11,
        response_variant=ResponseVariant(
            list_key="taskList",
            code_as="str",
            cursor_as="str",
            token_form="bare",
            session_shape="data",
            carrier_shape="flat",
            detail_names="share",
            file_status_as="int",
            task_infos_as="object",
        ),
        file_failure_rate=0.3,
        empty_page_every=2,
        partial_pages=True,
        refresh_tokens={REFRESH: OWNER},
        **SESSION_AUTH,
    ),
}


class EmulatorThread:
    """A KooDriveEmulator served from its own event loop in a background thread.

    Args:
        config: The emulator configuration.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="openapi-emulator", daemon=True
        )
        self.emulator = KooDriveEmulator(config)
        self.session = requests.Session()
        self.task_ids: list[str] = []
        #: A session opened at start: (Authorization value, session id).
        self.session_auth: tuple[str, str] = ("", "")
        self.job_ids: list[str] = []
        self.share_tasks: list[tuple[str, str]] = []

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the emulator's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def call(self, fn: Callable[[], T]) -> T:
        """Run a plain function on the emulator's loop (its state is not thread-safe)."""

        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())

    def start(self) -> None:
        """Start the loop thread and the server."""
        self._thread.start()
        self.run(self.emulator.start())

    def stop(self) -> None:
        """Stop the server, then the loop; close everything (no ResourceWarning)."""
        self.session.close()
        try:
            self.run(self.emulator.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    @property
    def url(self) -> str:
        """The emulator's base URL."""
        return self.emulator.url


def _now_x_date() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _headers(user_id: str = OWNER) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {TOKEN}",
        "X-User-Id": user_id,
        "X-Date": _now_x_date(),
        "X-Hw-Agentname": "openapi-test",
    }


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def emulator(request: pytest.FixtureRequest) -> Iterator[EmulatorThread]:
    """A running emulator holding a few tasks of OWNER in mixed states."""
    server = EmulatorThread(VARIANTS[request.param])
    server.start()
    try:
        s = server.session
        for i in range(6):
            body = {"taskType": 0, "srcUserId": f"src{i}", "dstUserId": f"dst{i}"}
            r = s.post(f"{server.url}{PREFIX}/task/create", json=body, headers=_headers())
            assert r.status_code == 200, r.text
            server.task_ids.append(r.json()["taskId"])
        job = {
            "taskType": 7,
            "actionType": 701,
            "dstContainerId": "c",
            "taskInfo": {"srcContainerId": "c"},
        }
        r = s.post(f"{server.url}{PREFIX}/jobs", json=job, headers=_headers())
        assert r.status_code == 200, r.text
        server.task_ids.append(r.json()["data"])
        # Jobs with files (a package download among them) and share tasks, for
        # the job and share-task reads.
        for i in range(4):
            body = {**VALID_BODIES["/jobs"], "taskType": 6 if i % 2 else 1}
            if i % 2:
                del body["actionType"]
            body["taskInfo"] = {
                "srcContainerId": "c",
                "fileInfo": [{"fileId": f"F{i}-{n}"} for n in range(1 + i)],
            }
            r = s.post(f"{server.url}{PREFIX}/jobs", json=body, headers=_headers())
            assert r.status_code == 200, r.text
            server.job_ids.append(r.json()["data"])
        for body in (
            VALID_BODIES["/share/tasks"],
            {**VALID_BODIES["/share/tasks"], "fileIds": ["x"]},
        ):
            r = s.post(f"{server.url}{PREFIX}/share/tasks", json=body, headers=_headers())
            assert r.status_code == 200, r.text
            server.share_tasks.append((r.json()["taskId"], body["shareId"]))
        r = s.post(f"{server.url}{PREFIX}/session", json={"code": "openapi-code"})
        assert r.status_code == 200, r.text
        fields = r.json()["data"]
        token = fields["accessToken"]
        server.session_auth = (token if " " in token else f"Bearer {token}", fields["sessionId"])
        # Some tasks finished (SUCCESS or FAILED with a resultCode), some running, some new.
        server.call(lambda: server.emulator.clock.advance(6.0))
        yield server
    finally:
        server.stop()


def _pick(case: Any, salt: str, modulo: int) -> int:
    """A choice per case that depends only on the case's content (seeded runs repeat)."""
    # No repr() of schemathesis objects: a missing body's repr carries a memory address.
    body = case.body if isinstance(case.body, dict | list | str | int | float | bool) else None
    headers = {k: v for k, v in (case.headers or {}).items() if k != "X-Date"}
    parts = [salt, case.operation.label, case.path_parameters, case.query, headers, body]
    key = json.dumps(parts, sort_keys=True, default=str)
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % modulo


def _authenticate(case: Any, server: EmulatorThread) -> bool:
    """Stamp a known token and a fresh X-Date on most cases (in place).

    Args:
        case: The generated case.
        server: The emulator (for the ids of its seeded tasks).

    Returns:
        True when both the token and the X-Date were stamped, so that only the
        rest of the request decides whether it is accepted.
    """
    headers = case.headers
    if case.operation.path in SESSION_PATHS:
        return _authenticate_session(case, server)
    if headers is None:
        return False
    stamped = True
    # A generated token is never the known one: replace it on 4 cases out of 5.
    if "Authorization" in headers and _pick(case, "auth", 5):
        headers["Authorization"] = f"Bearer {TOKEN}"
    else:
        stamped = False
    # A well-formed generated X-Date is almost surely not within the last 15 minutes.
    if X_DATE.fullmatch(str(headers.get("X-Date", ""))) and _pick(case, "date", 5):
        headers["X-Date"] = _now_x_date()
    else:
        stamped = False
    # The owner of the seeded tasks, so that get and list find something.
    if case.operation.path != f"{PREFIX}/task/create" and headers.get("X-User-Id", "").strip():
        headers["X-User-Id"] = OWNER
    if case.operation.path.endswith("{task_id}"):
        if case.path_parameters.get("task_id") in ("list", "create"):
            # GET task/list is the list operation, not the task "list": the API's
            # own URL design, not something the emulator could answer otherwise.
            case.path_parameters["task_id"] = "1000000000000000000"
        elif _pick(case, "id", 4):
            case.path_parameters["task_id"] = server.task_ids[_pick(case, "which", 7)]
    if case.operation.path.endswith("{job_id}"):
        if case.path_parameters.get("job_id") in ("jobs", "cancel"):
            case.path_parameters["job_id"] = "1000000000000000000"  # as task/list above
        elif _pick(case, "id", 4):
            case.path_parameters["job_id"] = server.job_ids[_pick(case, "which", 4)]
    body = case.body
    if isinstance(body, dict) and _pick(case, "known", 4):
        if case.operation.path.endswith("/taskDetail") and isinstance(body.get("taskId"), str):
            body["taskId"], body["shareId"] = server.share_tasks[_pick(case, "which", 2)]
            body.pop("kdstoken", None)
        elif case.operation.path.endswith("/cancel") and isinstance(body.get("jobId"), str):
            body["jobId"] = server.job_ids[_pick(case, "which", 4)]
    return stamped


SESSION_PATHS = {
    f"{PREFIX}/session",
    f"{PREFIX}/session/",
    f"{PREFIX}/session/refresh",
    f"{PREFIX}/auth/refreshToken",
}


def _authenticate_session(case: Any, server: EmulatorThread) -> bool:
    """Stamp known credentials on most session-route cases (in place); True when stamped."""
    path = case.operation.path
    if path.endswith(("/session", "/session/")):
        return True  # the emulator accepts any code: the body alone decides
    headers = case.headers
    if headers is None or "Authorization" not in headers or not _pick(case, "auth", 5):
        return False
    if path.endswith("/refresh"):
        if not headers.get("x-session-id") or not _pick(case, "session", 5):
            return False
        headers["Authorization"], headers["x-session-id"] = server.session_auth
        return True
    headers["Authorization"] = f"AT+{TOKEN}"
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("refreshToken"), str):
        return False
    if not _pick(case, "refresh", 5):
        return False
    body["refreshToken"] = REFRESH
    return True


@SCHEMA.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_emulator_conforms_to_openapi_document(case: Any, emulator: EmulatorThread) -> None:
    """No 5xx, every response documented; valid authenticated requests accepted."""
    # schemathesis may hand the same case object to the second emulator variant:
    # put back what was generated, so each run starts from the same cases.
    generated_headers = dict(case.headers) if case.headers is not None else None
    generated_path = dict(case.path_parameters or {})
    generated_body = dict(case.body) if isinstance(case.body, dict) else None
    try:
        _check_case(case, emulator)
    finally:
        if generated_body is not None and isinstance(case.body, dict):
            case.body.clear()
            case.body.update(generated_body)
        if generated_headers is not None:
            case.headers.clear()
            case.headers.update(generated_headers)
        if case.path_parameters:
            case.path_parameters.clear()
            case.path_parameters.update(generated_path)
        if generated_body is not None:
            case.body.clear()
            case.body.update(generated_body)


def _check_case(case: Any, emulator: EmulatorThread) -> None:
    """Send one case and check the answer against the document (and acceptance)."""
    stamped = _authenticate(case, emulator)
    response = case.call(base_url=emulator.url, session=emulator.session, timeout=10)
    case.validate_response(response, checks=CHECKS)
    # A handler exception the emulator turned into a documented-looking 500.
    assert emulator.emulator.internal_errors == 0, case.as_curl_command()
    # Read after the call: schemathesis re-labels a case whose values were edited.
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if stamped and positive:
        expected = {200}
        path = case.operation.path
        if path.endswith("{task_id}"):
            known = case.path_parameters["task_id"] in emulator.task_ids
            expected = {200} if known else {404}
        elif path.endswith("{job_id}"):
            expected = {200} if case.path_parameters["job_id"] in emulator.job_ids else {404}
        elif path.endswith("/taskDetail"):
            known = (case.body.get("taskId"), case.body.get("shareId")) in emulator.share_tasks
            expected = {200} if known else {404}
        elif path.endswith("/cancel"):
            # A known job that is still running is cancelled; anything else is refused.
            expected = {200, 400} if case.body.get("jobId") in emulator.job_ids else {400}
        assert response.status_code in expected, (case.as_curl_command(), response.text)


# A hostile body the generators do not reach: JSON nested 500 levels deep,
# deeper than any real request but well within what json.loads accepts. It is
# sent as raw bytes: schemathesis' own request rendering recurses once per level.
NESTED_BODY = (
    '{"taskType":0,"srcUserId":"a","dstUserId":"b","extra":'
    + '{"x":[' * 250
    + "null"
    + "]}" * 250
    + "}"
).encode()


@pytest.mark.parametrize("authenticated", [True, False], ids=["token", "no-token"])
def test_deeply_nested_body_is_answered_as_documented(
    emulator: EmulatorThread, authenticated: bool
) -> None:
    """A body nested 500 levels deep is refused or accepted as documented, never a 5xx."""
    operation = SCHEMA[f"{PREFIX}/task/create"]["POST"]
    headers = {**_headers("nested-user"), "Content-Type": "application/json"}
    if not authenticated:
        del headers["Authorization"]
    response = emulator.session.post(
        f"{emulator.url}{PREFIX}/task/create", data=NESTED_BODY, headers=headers, timeout=10
    )
    summary = (response.status_code, response.headers.get("Content-Type"), response.text[:200])
    assert response.status_code < 500, summary
    assert response.status_code in (200, 400, 401), summary
    assert response.headers.get("Content-Type", "").startswith("application/json"), summary
    operation.validate_response(response)
    assert emulator.emulator.internal_errors == 0


# One valid request per operation, from the pages' examples.
VALID_BODIES: dict[str, Any] = {
    "/task/create": {"taskType": 0, "srcUserId": "1397687227244555008", "dstUserId": "15079"},
    "/share/tasks": {
        "taskType": 1,
        "containerId": "IAABh_RdhS8bOg0cA1684711052660690818",
        "fileIds": ["Fk63FCWhcDAga2puvYKRG1oTMjs-m30sI"],
        "shareId": "1689765568237837824",
        "zipName": "photos.zip",
    },
    "/jobs": {
        "taskType": 1,
        "actionType": 101,
        "dstContainerId": "IAADfsBFCO6WtAtuA315074383680425b8aa9a130cba2d4",
        "taskInfo": {
            "srcContainerId": "IAADfsBFCO6WtAtuA315074383680425b8aa9a130cba2d4",
            "fileInfo": [{"fileId": "FuZmQ66CF0DdpKRG1Y29Iwajbq04Nhwu3"}],
        },
    },
    "/session": {"code": "openapi-code"},
    "/auth/refreshToken": {"refreshToken": REFRESH},
}
OPERATIONS = [
    ("POST", "/task/create"),
    ("POST", "/share/tasks"),
    ("GET", "/task/{task_id}"),
    ("POST", "/jobs"),
    ("GET", "/task/list"),
    ("POST", "/session"),
    ("POST", "/session/refresh"),
    ("POST", "/auth/refreshToken"),
    ("GET", "/{job_id}"),
    ("GET", "/jobs"),
    ("POST", "/cancel"),
    ("POST", "/share/taskDetail"),
]
GATEWAY_FAULTS = {
    "rate_limit": 429,
    "server_error": 500,
    "created_but_500": 500,
    "bad_gateway_html": 502,
    "unavailable": 503,
}


@pytest.mark.parametrize("fault", sorted(GATEWAY_FAULTS))
def test_gateway_answers_are_documented(emulator: EmulatorThread, fault: str) -> None:
    """429 / 500 / 502 (HTML) / 503 answers match the document's responses."""
    try:
        for method, path in OPERATIONS:
            operation = SCHEMA[PREFIX + path][method]
            kwargs: dict[str, Any] = {"headers": _headers()}
            if path == "/session/refresh":
                token, session_id = emulator.session_auth
                kwargs["headers"] = {"Authorization": token, "x-session-id": session_id}
            elif path == "/auth/refreshToken":
                kwargs["headers"] = {"Authorization": f"AT+{TOKEN}"}
            # Not every POST has a body (session/refresh), and GET jobs shares
            # its path with POST jobs but sends none.
            if method == "POST" and path in VALID_BODIES:
                kwargs["body"] = VALID_BODIES[path]
            if path.endswith("{task_id}"):
                kwargs["path_parameters"] = {"task_id": emulator.task_ids[0]}
            elif path.endswith("{job_id}"):
                kwargs["path_parameters"] = {"job_id": emulator.job_ids[0]}
            elif path == "/jobs" and method == "GET":
                kwargs["query"] = {"offset": 0, "limit": 10}
            elif path == "/cancel":
                kwargs["body"] = {"jobId": emulator.job_ids[0]}
            elif path == "/share/taskDetail":
                task_id, share_id = emulator.share_tasks[0]
                kwargs["body"] = {"taskId": task_id, "shareId": share_id}
            case = operation.Case(**kwargs)
            # An integer Retry-After: HTTP has no fractional delay-seconds.
            inject = partial(emulator.emulator.inject, fault, method=method, count=1, retry_after=1)
            emulator.call(inject)
            response = case.call(base_url=emulator.url, session=emulator.session, timeout=10)
            assert response.status_code == GATEWAY_FAULTS[fault], (method, path, response.text)
            # not_a_server_error left out: these 5xx are the gateway's, on purpose.
            case.validate_response(response, checks=CHECKS[1:])
    finally:
        emulator.call(emulator.emulator.clear_faults)
