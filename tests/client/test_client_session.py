"""KooDriveSession against the emulator over loopback: every endpoint, headers,
validation (nothing sent), response variants, listing, lifecycle, auth."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from client_helpers import TOKEN, make_session

from koodrive_async import (
    AuthenticationError,
    CredentialsError,
    FileInfo,
    FileRef,
    ImportTaskRequest,
    InvalidRequestError,
    JobAction,
    JobRequest,
    JobType,
    KooDriveSession,
    NotFoundError,
    ResponseValidationError,
    RetryPolicy,
    ShareTaskType,
    TaskStatus,
    TaskType,
    TransferTaskRequest,
)
from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator, ResponseVariant

X_DATE = re.compile(r"^\d{8}T\d{6}Z$")


def _fresh_x_date(value: str) -> bool:
    stamped = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return abs((datetime.now(UTC) - stamped).total_seconds()) < 5


# ---- every endpoint ---------------------------------------------------------------------


async def test_transfer_task_round_trip(koodrive_emulator: KooDriveEmulator) -> None:
    emu = koodrive_emulator
    async with make_session(emu.url) as s:
        task_id = await s.create_transfer_task(src_user_id="u-src", dst_user_id="u-dst")
        assert task_id.isdigit()
        (entry,) = emu.requests
        assert (entry.method, entry.path, entry.route, entry.status) == (
            "POST",
            "/koodrive/ose/v1/task/create",
            "create_task",
            200,
        )
        assert entry.body == {"taskType": 0, "srcUserId": "u-src", "dstUserId": "u-dst"}
        assert entry.task_id == task_id
        headers = entry.headers
        assert headers["Authorization"] == "Bearer ***"
        assert headers["X-User-Id"] == "user-1"
        assert headers["language"] == "en-US"
        assert X_DATE.match(headers["X-Date"]) and _fresh_x_date(headers["X-Date"])
        assert re.fullmatch(r"[0-9a-f]{58}", headers["X-Traceid"])
        assert "X-Hw-Agentname" not in headers
        task = await s.get_task(task_id)
        assert task.task_id == task_id
        assert task.status == TaskStatus.NEW
        assert task.task_type == TaskType.TRANSFER
        assert task.user_id == "user-1"
        assert task.create_time is not None and task.create_time.tzinfo is not None
        emu.clock.advance(10)
        done = await s.get_task(task_id)
        assert done.status == TaskStatus.SUCCESS and done.succeeded
        assert done.end_time is not None


async def test_import_task(koodrive_emulator: KooDriveEmulator) -> None:
    async with make_session(koodrive_emulator.url) as s:
        task_id = await s.create_import_task(org_id="org", org_user_id="ou", result_id="r1")
    (entry,) = koodrive_emulator.requests
    assert entry.body == {"taskType": 1, "orgId": "org", "orgUserId": "ou", "resultId": "r1"}
    assert entry.task_id == task_id


async def test_share_task_sends_agent_name(koodrive_emulator: KooDriveEmulator) -> None:
    async with make_session(koodrive_emulator.url) as s:
        task_id = await s.create_share_task(
            ShareTaskType.SAVE,
            container_id="C1",
            file_ids=["F1", "F2"],
            share_id="S1",
            kdstoken="share-token-zz",
            target=FileRef("root", "C2"),
        )
    (entry,) = koodrive_emulator.requests
    assert entry.path == "/koodrive/ose/v1/share/tasks"
    assert entry.headers["X-Hw-Agentname"] == "agent-x"
    assert entry.body == {
        "taskType": 2,
        "containerId": "C1",
        "fileIds": ["F1", "F2"],
        "shareId": "S1",
        "kdstoken": "***",
        "targetFileId": {"fileId": "root", "containerId": "C2"},
    }
    assert entry.task_id == task_id


async def test_job_with_share_folder_header(koodrive_emulator: KooDriveEmulator) -> None:
    async with make_session(koodrive_emulator.url) as s:
        task_id = await s.create_job(
            JobType.DELETE,
            src_container_id="A",
            dst_container_id="B",
            files=[FileInfo("F1", "/F0/F1")],
            action_type=JobAction.RECYCLE,
            share_folder_id="SF-9",
        )
    (entry,) = koodrive_emulator.requests
    assert entry.path == "/koodrive/ose/v1/jobs"
    assert entry.headers["x-hw-share-folder-id"] == "SF-9"
    assert entry.body == {
        "taskType": 2,
        "actionType": 201,
        "dstContainerId": "B",
        "taskInfo": {"srcContainerId": "A", "fileInfo": [{"fileId": "F1", "filePath": "/F0/F1"}]},
    }
    assert entry.response["data"] == task_id


async def test_submit_accepts_each_request_model(koodrive_emulator: KooDriveEmulator) -> None:
    requests = [
        TransferTaskRequest("a", "b"),
        ImportTaskRequest("o", "u"),
        JobRequest(
            JobType.DECOMPRESS,
            src_container_id="s",
            dst_container_id="d",
            files=[FileInfo("zip1")],
            action_type=JobAction.DECOMPRESS_ALL,
            password="archive-pw-55",
        ),
        JobRequest(JobType.CLEAR_RECYCLE_BIN, src_container_id="s", dst_container_id="d"),
    ]
    async with make_session(koodrive_emulator.url) as s:
        ids = [await s.submit(r) for r in requests]
    assert len(set(ids)) == 4
    assert [e.task_id for e in koodrive_emulator.requests] == ids
    assert koodrive_emulator.requests[2].body["password"] == "***"


async def test_get_task_percent_encodes_the_id(koodrive_emulator: KooDriveEmulator) -> None:
    async with make_session(koodrive_emulator.url) as s:
        for bad in ("../list", "a/b", "x?pageSize=1", ".."):
            with pytest.raises(NotFoundError):
                await s.get_task(bad)
    routes = [(e.route, e.status) for e in koodrive_emulator.requests]
    # Each id stayed one path segment of task/{task_id}: none reached task/list.
    assert routes == [("get_task", 404)] * 4


# ---- listing ----------------------------------------------------------------------------


async def test_list_tasks_filters_and_query(koodrive_emulator: KooDriveEmulator) -> None:
    emu = koodrive_emulator
    async with make_session(emu.url) as s:
        first = await s.create_transfer_task(src_user_id="a", dst_user_id="b")
        await s.create_import_task(org_id="o", org_user_id="u")
        emu.state.finish(first)
        emu.clear_requests()
        page = await s.list_tasks(
            task_type=TaskType.TRANSFER, status=[TaskStatus.SUCCESS, TaskStatus.FAILED]
        )
        assert [t.task_id for t in page.tasks] == [first]
        assert page.is_last
        (entry,) = emu.requests
        assert entry.query == (
            ("taskType", "0"),
            ("status", "2"),
            ("status", "3"),
            ("pageSize", "100"),
        )
        assert (await s.list_tasks(status=TaskStatus.NEW)).tasks[0].task_type == 1


@pytest.mark.parametrize("list_key", ["taskList", "taskListDtos"])
@pytest.mark.parametrize("code_as", ["int", "str"])
@pytest.mark.parametrize("cursor_as", ["number", "str"])
async def test_response_variants(list_key: Any, code_as: Any, cursor_as: Any) -> None:
    variant = ResponseVariant(list_key=list_key, code_as=code_as, cursor_as=cursor_as)
    async with KooDriveEmulator(EmulatorConfig(response_variant=variant)) as emu:
        async with make_session(emu.url) as s:
            ids = [await s.create_transfer_task(src_user_id="a", dst_user_id="b")]
            ids.append(await s.create_import_task(org_id="o", org_user_id="u"))
            ids.append(
                await s.create_job(
                    JobType.COPY,
                    src_container_id="s",
                    dst_container_id="d",
                    files=[FileInfo("f")],
                    action_type=JobAction.COPY,
                )
            )
            ids.append(
                await s.create_share_task(
                    ShareTaskType.PACKAGE,
                    container_id="c",
                    file_ids=["f"],
                    share_id="s",
                    zip_name="z.zip",
                )
            )
            page = await s.list_tasks(page_size=3)
            assert len(page.tasks) == 3 and page.next_cursor is not None
            assert [t.task_id async for t in s.iter_tasks(page_size=3)] == ids
            assert (await s.get_task(ids[0])).task_id == ids[0]
            with pytest.raises(NotFoundError) as info:
                await s.get_task("4040404040404040404")
            assert info.value.code == "13000305"
    list_responses = [e.response for e in emu.requests if e.route == "list_tasks"]
    assert all(list_key in r for r in list_responses)
    assert isinstance(list_responses[0]["code"], int if code_as == "int" else str)


async def test_iter_tasks_skips_empty_and_partial_pages() -> None:
    config = EmulatorConfig(empty_page_every=2, partial_pages=True)
    async with KooDriveEmulator(config) as emu:
        async with make_session(emu.url) as s:
            ids = [
                await s.create_transfer_task(src_user_id=f"s{i}", dst_user_id="d")
                for i in range(12)
            ]
            emu.clear_requests()
            seen = [t.task_id async for t in s.iter_tasks(page_size=4)]
    assert seen == ids
    pages = [e.response for e in emu.requests]
    assert any(p["taskListDtos"] == [] and "nextCursor" in p for p in pages)
    assert "nextCursor" not in pages[-1]


async def test_iter_tasks_stops_on_a_repeating_cursor() -> None:
    from aiohttp import web
    from client_helpers import custom_server

    calls: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.query.get("pageCursor"))
        return web.json_response(
            {"taskList": [{"taskId": str(len(calls))}], "nextCursor": "7", "code": 0}
        )

    async with custom_server(handler) as url, make_session(url) as s:
        with pytest.raises(ResponseValidationError, match="cursor '7'"):
            async for _ in s.iter_tasks():
                pass
    # The page sent with "7" that hands "7" back again is a cycle at once.
    assert calls == [None, "7"]


@pytest.mark.parametrize("end", [None, "", "absent"])
async def test_iter_tasks_end_markers(end: str | None) -> None:
    from aiohttp import web
    from client_helpers import custom_server

    async def handler(request: web.Request) -> web.Response:
        cursor = request.query.get("pageCursor")
        if cursor is None:
            return web.json_response({"taskList": [], "nextCursor": 123, "code": "0"})
        body: dict[str, Any] = {"taskListDtos": [{"taskId": "9"}], "code": 0}
        if end != "absent":
            body["nextCursor"] = end
        return web.json_response(body)

    async with custom_server(handler) as url, make_session(url) as s:
        assert [t.task_id async for t in s.iter_tasks()] == ["9"]


# ---- validation: nothing is sent ---------------------------------------------------------

INVALID_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("create_transfer_task", {"src_user_id": "", "dst_user_id": "b"}, "src_user_id"),
    ("create_transfer_task", {"src_user_id": "a", "dst_user_id": "  "}, "dst_user_id"),
    ("create_import_task", {"org_id": "", "org_user_id": "u"}, "org_id"),
    ("create_import_task", {"org_id": "o", "org_user_id": None}, "org_user_id"),
    (
        "create_share_task",
        {"task_type": 1, "container_id": "c", "file_ids": [], "share_id": "s", "zip_name": "z"},
        "file_ids",
    ),
    (
        "create_share_task",
        {
            "task_type": 1,
            "container_id": "c",
            "file_ids": [f"f{i}" for i in range(1001)],
            "share_id": "s",
            "zip_name": "z",
        },
        "file_ids",
    ),
    (
        "create_share_task",
        {"task_type": 1, "container_id": "c", "file_ids": ["f"], "share_id": "s"},
        "zip_name",
    ),
    (
        "create_share_task",
        {"task_type": 2, "container_id": "c", "file_ids": ["f"], "share_id": "s"},
        "target",
    ),
    (
        "create_share_task",
        {"task_type": 3, "container_id": "c", "file_ids": ["f"], "share_id": "s"},
        "task_type",
    ),
    (
        "create_share_task",
        {"task_type": 1, "container_id": "", "file_ids": ["f"], "share_id": "s", "zip_name": "z"},
        "container_id",
    ),
    (
        "create_job",
        {"task_type": 8, "src_container_id": "s", "dst_container_id": "d"},
        "task_type",
    ),
    (
        "create_job",
        {
            "task_type": JobType.COPY,
            "src_container_id": "s",
            "dst_container_id": "d",
            "files": [FileInfo("f")],
            "action_type": JobAction.MOVE,
        },
        "action_type",
    ),
    (
        "create_job",
        {"task_type": JobType.RESTORE, "src_container_id": "s", "dst_container_id": "d"},
        "files",
    ),
    (
        "create_job",
        {
            "task_type": JobType.DELETE,
            "src_container_id": "s",
            "dst_container_id": "d",
            "files": [FileInfo("f")],
            "action_type": JobAction.RECYCLE,
        },
        "files",
    ),
    (
        "create_job",
        {
            "task_type": JobType.MOVE,
            "src_container_id": "s",
            "dst_container_id": "d",
            "files": [FileInfo(file_path="/x")],
        },
        "files",
    ),
    (
        "create_job",
        {
            "task_type": JobType.COPY,
            "src_container_id": "s",
            "dst_container_id": "d",
            "files": [FileInfo("f")],
            "password": "pw",
        },
        "password",
    ),
    (
        "create_job",
        {
            "task_type": JobType.COPY,
            "src_container_id": "s",
            "dst_container_id": "d",
            "files": [FileInfo("f")],
            "uncompress_file_paths": ["a/b.txt"],
        },
        "uncompress_file_paths",
    ),
    (
        "create_job",
        {
            "task_type": JobType.COPY,
            "src_container_id": "s",
            "dst_container_id": "",
            "files": [FileInfo("f")],
        },
        "dst_container_id",
    ),
    (
        "create_job",
        {
            "task_type": JobType.COPY,
            "src_container_id": "s",
            "dst_container_id": "d",
            "files": [FileInfo("f")],
            "share_folder_id": "x\ny",
        },
        "share_folder_id",
    ),
    ("get_task", {"task_id": ""}, "task_id"),
    ("get_task", {"task_id": " "}, "task_id"),
    ("list_tasks", {"page_size": 0}, "page_size"),
    ("list_tasks", {"page_size": 101}, "page_size"),
    ("list_tasks", {"status": 4}, "status"),
    ("list_tasks", {"status": ["2"]}, "status"),
    ("list_tasks", {"task_type": 5}, "task_type"),
    ("submit", {"request": {"taskType": 0}}, "request"),
]


@pytest.mark.parametrize(("method", "kwargs", "field"), INVALID_CALLS)
async def test_invalid_calls_send_nothing(
    koodrive_emulator: KooDriveEmulator, method: str, kwargs: dict[str, Any], field: str
) -> None:
    async with make_session(koodrive_emulator.url) as s:
        kwargs = dict(kwargs)
        args = []
        if method == "create_share_task" or method == "create_job":
            args.append(kwargs.pop("task_type"))
        if method in ("get_task", "submit"):
            args.append(kwargs.popitem()[1])
        with pytest.raises(InvalidRequestError) as info:
            await getattr(s, method)(*args, **kwargs)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)
    assert koodrive_emulator.requests == []


async def test_iter_tasks_validates_before_sending(koodrive_emulator: KooDriveEmulator) -> None:
    async with make_session(koodrive_emulator.url) as s:
        with pytest.raises(InvalidRequestError):
            async for _ in s.iter_tasks(page_size=500):
                pass
    assert koodrive_emulator.requests == []


async def test_share_task_without_agent_name(koodrive_emulator: KooDriveEmulator) -> None:
    async with make_session(koodrive_emulator.url, agent_name=None) as s:
        with pytest.raises(InvalidRequestError) as info:
            await s.create_share_task(
                ShareTaskType.PACKAGE, container_id="c", file_ids=["f"], share_id="s", zip_name="z"
            )
    assert info.value.field == "agent_name"
    assert koodrive_emulator.requests == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"token": None}, "token"),
        ({"token_provider": lambda _force: None, "token": "t"}, "token"),
        ({"token": ""}, "token"),
        ({"token": "abc\r\nX: y"}, "token"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": "a\nb"}, "user_id"),
        ({"user_id": "a\x01b"}, "user_id"),
        ({"token": "abc\x7f"}, "token"),
        ({"agent_name": "\ud800"}, "agent_name"),
        ({"agent_name": ""}, "agent_name"),
        ({"language": ""}, "language"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"retry": 3}, "retry"),
        ({"max_connections": 0}, "max_connections"),
        ({"session": object()}, "session"),
    ],
)
def test_constructor_validation(kwargs: dict[str, Any], field: str) -> None:
    options: dict[str, Any] = {"user_id": "u", "token": "t", **kwargs}
    with pytest.raises(InvalidRequestError) as info:
        KooDriveSession("http://127.0.0.1:1", **options)
    assert info.value.field == field
    assert "abc" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    ["", "ftp://example.com", "example.com", "http://example.com", "https://u:p@example.com"],
)
def test_base_url_validation(url: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        KooDriveSession(url, user_id="u", token="t")
    assert info.value.field == "base_url"


def test_insecure_http_needs_loopback_or_opt_in() -> None:
    for url in ("http://127.0.0.1:8080", "http://localhost", "http://[::1]:80/"):
        assert KooDriveSession(url, user_id="u", token="t").base_url == url.rstrip("/")
    s = KooDriveSession("http://10.0.0.1", user_id="u", token="t", allow_insecure_http=True)
    assert s.base_url == "http://10.0.0.1"
    assert (
        KooDriveSession("https://h/prefix/", user_id="u", token="t").base_url == "https://h/prefix"
    )


# ---- lifecycle ---------------------------------------------------------------------------


async def test_repr_shows_url_and_user_only(koodrive_emulator: KooDriveEmulator) -> None:
    s = make_session(koodrive_emulator.url)
    assert repr(s) == f"KooDriveSession(base_url={koodrive_emulator.url!r}, user_id='user-1')"
    assert TOKEN not in repr(s) and TOKEN not in repr(vars(s))
    await s.close()


async def test_calls_after_close_raise_runtime_error(koodrive_emulator: KooDriveEmulator) -> None:
    s = make_session(koodrive_emulator.url)
    async with s:
        await s.create_transfer_task(src_user_id="a", dst_user_id="b")
    assert s.closed
    for call in (
        s.get_task("1"),
        s.list_tasks(),
        s.create_transfer_task(src_user_id="a", dst_user_id="b"),
        s.submit(TransferTaskRequest("a", "b")),
    ):
        with pytest.raises(RuntimeError):
            await call
    with pytest.raises(RuntimeError):
        async with s:
            pass
    await s.close()  # idempotent
    assert len(koodrive_emulator.requests) == 1


async def test_close_during_a_retry_wait_does_not_reopen(
    koodrive_emulator: KooDriveEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import koodrive_async._sender as transport

    s = make_session(koodrive_emulator.url)

    async def close_instead_of_waiting(_delay: float) -> None:
        await s.close()

    monkeypatch.setattr(transport, "_sleep", close_instead_of_waiting)
    koodrive_emulator.inject(FaultKind.SERVER_ERROR, route="get_task")
    with pytest.raises(RuntimeError, match="closed"):
        await s.get_task("1")
    assert len(koodrive_emulator.requests) == 1
    assert s._sender.http._session is None


async def test_injected_session_is_used_and_not_closed(
    koodrive_emulator: KooDriveEmulator,
) -> None:
    async with aiohttp.ClientSession() as client:
        async with make_session(koodrive_emulator.url, session=client) as s:
            await s.create_transfer_task(src_user_id="a", dst_user_id="b")
        assert not client.closed
        async with client.get(koodrive_emulator.url + "/_emulator/health") as resp:
            assert resp.status == 200


async def test_owned_session_uses_connection_limit(koodrive_emulator: KooDriveEmulator) -> None:
    s = make_session(koodrive_emulator.url, max_connections=3)
    await s.create_transfer_task(src_user_id="a", dst_user_id="b")
    client = s._sender.http._session
    assert client is not None and client.connector is not None
    assert client.connector.limit == 3
    await s.close()
    assert client.closed


# ---- auth ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "sent"),
    [
        ("abc123", "Bearer abc123"),
        ("Bearer abc123", "Bearer abc123"),
        ("Bearer+abc123", "Bearer+abc123"),
        ("bearer abc123", "bearer abc123"),
        ("AT abc123", "AT abc123"),
        ("ATabc123", "Bearer ATabc123"),
        ("Bearerabc", "Bearer Bearerabc"),
    ],
)
async def test_authorization_scheme_rule(token: str, sent: str) -> None:
    from aiohttp import web
    from client_helpers import custom_server

    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers["Authorization"])
        return web.json_response({"taskId": "1", "code": 0})

    async with custom_server(handler) as url, make_session(url, token=token) as s:
        await s.get_task("1")
    assert seen == [sent]


async def test_token_provider_refreshes_once_on_401() -> None:
    calls: list[bool] = []

    async def provider(force_refresh: bool) -> str:
        calls.append(force_refresh)
        return "fresh-token" if force_refresh else "stale-token"

    async with KooDriveEmulator(EmulatorConfig(tokens=frozenset({"fresh-token"}))) as emu:
        async with make_session(emu.url, token_provider=provider) as s:
            task_id = await s.create_transfer_task(src_user_id="a", dst_user_id="b")
            await s.get_task(task_id)
        statuses = [(e.route, e.status) for e in emu.requests]
        traces = [e.headers["X-Traceid"] for e in emu.requests]
    assert calls == [False, True]
    assert statuses == [("create_task", 401), ("create_task", 200), ("get_task", 200)]
    assert traces[0] == traces[1] != traces[2]


async def test_token_provider_called_once_for_concurrent_first_calls() -> None:
    import asyncio

    calls: list[bool] = []

    async def provider(force_refresh: bool) -> str:
        calls.append(force_refresh)
        await asyncio.sleep(0)
        return "tok"

    async with KooDriveEmulator() as emu, make_session(emu.url, token_provider=provider) as s:
        await asyncio.gather(*(s.list_tasks() for _ in range(10)))
    assert calls == [False]


async def test_401_after_refresh_is_authentication_error() -> None:
    calls: list[bool] = []

    async def provider(force_refresh: bool) -> str:
        calls.append(force_refresh)
        return "still-wrong"

    async with KooDriveEmulator(EmulatorConfig(tokens=frozenset({"right"}))) as emu:
        async with make_session(emu.url, token_provider=provider) as s:
            with pytest.raises(AuthenticationError) as info:
                await s.get_task("1")
        assert len(emu.requests) == 2
    assert calls == [False, True]
    assert info.value.status_code == 401 and info.value.code == "13000103"
    assert "still-wrong" not in str(info.value)


async def test_static_token_401_is_not_retried() -> None:
    async with KooDriveEmulator(EmulatorConfig(tokens=frozenset({"right"}))) as emu:
        async with make_session(emu.url, token="wrong-token") as s:
            with pytest.raises(AuthenticationError) as info:
                await s.create_transfer_task(src_user_id="a", dst_user_id="b")
        assert len(emu.requests) == 1
    assert "wrong-token" not in str(info.value) and "wrong-token" not in repr(info.value)


async def test_provider_returning_garbage_is_a_credentials_error() -> None:
    async def provider(force_refresh: bool) -> str:
        del force_refresh
        return ""

    async with KooDriveEmulator() as emu, make_session(emu.url, token_provider=provider) as s:
        with pytest.raises(CredentialsError, match="unusable token.*nothing was sent") as info:
            await s.get_task("1")
        assert emu.requests == []
    assert not info.value.refresh


# ---- clock skew -----------------------------------------------------------------------------


@pytest.mark.parametrize("skew", [-1200.0, 1200.0])
async def test_clock_skew_is_learnt_from_date(skew: float) -> None:
    async with KooDriveEmulator(EmulatorConfig(clock_skew=skew)) as emu:
        async with make_session(emu.url, retry=RetryPolicy(max_attempts=1)) as s:
            task_id = await s.create_transfer_task(src_user_id="a", dst_user_id="b")
            await s.get_task(task_id)
        statuses = [(e.route, e.status) for e in emu.requests]
        stamps = [e.headers["X-Date"] for e in emu.requests]
    # One refused attempt, then a corrected stamp; later calls are right first time.
    assert statuses == [("create_task", 400), ("create_task", 200), ("get_task", 200)]
    first = datetime.strptime(stamps[0], "%Y%m%dT%H%M%SZ")
    second = datetime.strptime(stamps[1], "%Y%m%dT%H%M%SZ")
    assert abs((second - first).total_seconds() - skew) < 5
    assert len(emu.state.tasks()) == 1


async def test_response_json_parses_created_task_id(koodrive_emulator: KooDriveEmulator) -> None:
    async with make_session(koodrive_emulator.url) as s:
        task_id = await s.create_transfer_task(src_user_id="a", dst_user_id="b")
    raw = koodrive_emulator.requests[0].response
    assert json.loads(json.dumps(raw))["taskId"] == task_id


async def test_clock_skew_with_concurrent_calls() -> None:
    import asyncio

    async with KooDriveEmulator(EmulatorConfig(clock_skew=-900.0)) as emu:
        async with make_session(emu.url, retry=RetryPolicy(max_attempts=1)) as s:
            ids = await asyncio.gather(
                *(s.create_transfer_task(src_user_id=f"a{i}", dst_user_id="b") for i in range(10))
            )
        refused = [e for e in emu.requests if e.status == 400]
    # Every call in flight when the skew was found gets its one corrected retry.
    assert len(set(ids)) == 10 and len(emu.state.tasks()) == 10
    assert 1 <= len(refused) <= 10
    assert len(emu.requests) == 10 + len(refused)
