"""Issue 10, protocol side: cursor cycles, blank and ambiguous task ids in
answers, and bad arguments of every public entry point.

Answers the emulator cannot give (a cycling cursor, a blank id, a duplicate
key) come from a small misbehaving server on loopback.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from client_helpers import custom_server, make_session

from koodrive_async import (
    FileInfo,
    FileRef,
    ImportTaskRequest,
    InvalidRequestError,
    JobAction,
    JobRequest,
    JobType,
    KooDriveSession,
    PollPolicy,
    ResponseValidationError,
    RetryPolicy,
    ShareTaskRequest,
    ShareTaskType,
    TaskStatus,
    TransferTaskRequest,
    chunked,
)
from koodrive_async._build import PATH_TASK_LIST, build_create, build_get_task, build_list_tasks
from koodrive_async._call import Response
from koodrive_async._decode import CursorTracker, decode_create, decode_task, decode_task_page
from koodrive_async.emulator import KooDriveEmulator

TRACE = "t" * 58

# --------------------------------------------------------------------------- cursor cycles


def cycling_handler(
    next_of: dict[str | None, Any], calls: list[str | None]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A task/list that answers each pageCursor with the next one of ``next_of``."""

    async def handler(request: web.Request) -> web.Response:
        cursor = request.query.get("pageCursor")
        calls.append(cursor)
        return web.json_response(
            {"taskList": [{"taskId": str(len(calls))}], "nextCursor": next_of[cursor], "code": 0}
        )

    return handler


@pytest.mark.parametrize(
    "next_of",
    [
        {None: "A", "A": "B", "B": "A"},  # A -> B -> A
        {None: 11, "11": 22, "22": 33, "33": 22},  # numbers, a cycle not back to the start
    ],
    ids=["A-B-A", "numbers"],
)
async def test_iter_tasks_ends_on_a_cursor_cycle(next_of: dict[str | None, Any]) -> None:
    # Before the fix only a cursor repeated twice in a row was caught: this
    # listing ran forever.
    calls: list[str | None] = []
    seen: list[str] = []
    async with (
        custom_server(cycling_handler(next_of, calls)) as url,
        make_session(url) as s,
    ):
        with pytest.raises(ResponseValidationError) as info:
            async for task in s.iter_tasks():
                seen.append(task.task_id)
    repeated = str(next_of[calls[-1]])
    assert f"cursor {repeated!r}" in str(info.value)
    assert info.value.path == PATH_TASK_LIST
    assert info.value.trace_id is not None and info.value.trace_id in str(info.value)
    assert info.value.possibly_created is False
    # Every cursor was sent once; the page that closes the cycle is not yielded.
    assert len(calls) == len(set(calls)) == len(next_of)
    assert seen == [str(i) for i in range(1, len(calls))]


async def test_a_long_acyclic_listing_with_distinct_cursors_still_ends() -> None:
    next_of: dict[str | None, Any] = {None: "c0"}
    next_of.update({f"c{i}": f"c{i + 1}" for i in range(300)})
    next_of["c300"] = None
    calls: list[str | None] = []
    async with (
        custom_server(cycling_handler(next_of, calls)) as url,
        make_session(url) as s,
    ):
        tasks = [t async for t in s.iter_tasks()]
    assert len(tasks) == 302


def test_cursor_tracker_and_decode_task_page() -> None:
    tracker = CursorTracker()
    assert tracker.add("A") and tracker.add("B") and len(tracker) == 2
    assert not tracker.add("A")
    cursors = CursorTracker()
    call = build_list_tasks()
    page = decode_task_page(
        call, Response(200, {}, b'{"nextCursor": 5, "code": 0}', TRACE), cursors=cursors
    )
    assert page.next_cursor == "5"
    long_cursor = "x" * 5000
    decode_task_page(call, Response(200, {}, b'{"nextCursor": "%s"}' % long_cursor.encode(),
                     TRACE), cursors=cursors)  # fmt: skip
    with pytest.raises(ResponseValidationError, match="cursor '5'") as info:
        decode_task_page(
            call, Response(200, {}, b'{"nextCursor": "5", "code": 0}', TRACE), cursors=cursors
        )
    assert info.value.trace_id == TRACE
    with pytest.raises(ResponseValidationError) as info:
        decode_task_page(call, Response(200, {}, b'{"nextCursor": "%s"}' % long_cursor.encode(),
                         TRACE), cursors=cursors)  # fmt: skip
    assert "x" * 100 + "'..." in str(info.value) and long_cursor not in str(info.value)
    # The end of the listing is never a cycle, nor is a page without a tracker.
    assert (
        decode_task_page(call, Response(200, {}, b"{}", TRACE), cursors=cursors).next_cursor is None
    )
    assert (
        decode_task_page(call, Response(200, {}, b'{"nextCursor": "5"}', TRACE)).next_cursor == "5"
    )


# --------------------------------------------------------------------------- answers

CREATES: list[Any] = [
    TransferTaskRequest("a", "b"),
    ShareTaskRequest(
        ShareTaskType.PACKAGE, container_id="c", file_ids=["f"], share_id="s", zip_name="z"
    ),
    JobRequest(
        JobType.COPY,
        src_container_id="s",
        dst_container_id="d",
        files=[FileInfo("f")],
        action_type=JobAction.COPY,
    ),
]


def raw_server(body: bytes) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    return handler


@pytest.mark.parametrize(
    ("request_index", "body"),
    [
        (0, b'{"code": 0, "taskId": "  "}'),
        (0, b'{"code": 0, "taskId": ""}'),
        (1, b'{"code": 0, "taskId": "\\t\\n"}'),
        (2, b'{"code": 0, "data": " "}'),
        (2, b'{"code": 0, "data": {"taskId": " "}}'),
    ],
)
async def test_a_blank_task_id_in_a_create_answer_is_in_doubt(
    request_index: int, body: bytes
) -> None:
    async with custom_server(raw_server(body)) as url, make_session(url) as s:
        with pytest.raises(ResponseValidationError, match="no task id") as info:
            await s.submit(CREATES[request_index])
    assert info.value.possibly_created is True


@pytest.mark.parametrize(
    "body",
    [
        b'{"code": 0, "taskId": " ", "status": 1}',
        b'{"code": 0, "data": {"taskId": "\\u3000", "status": 1}}',
    ],
)
async def test_a_blank_task_id_in_a_task_answer_is_refused(body: bytes) -> None:
    async with custom_server(raw_server(body)) as url, make_session(url) as s:
        with pytest.raises(ResponseValidationError, match="taskId") as info:
            await s.get_task("1")
    assert info.value.possibly_created is False


async def test_a_blank_task_id_in_a_list_answer_is_refused() -> None:
    body = b'{"code": 0, "taskList": [{"taskId": "1"}, {"taskId": "   "}]}'
    async with custom_server(raw_server(body)) as url, make_session(url) as s:
        with pytest.raises(ResponseValidationError, match="taskId"):
            await s.list_tasks()
        with pytest.raises(ResponseValidationError, match="taskId"):
            [t async for t in s.iter_tasks()]


@pytest.mark.parametrize(
    ("request_index", "body"),
    [
        (0, b'{"taskId": "1", "taskId": "2", "code": 0}'),
        (1, b'{"code": 0, "msg": "ok", "taskId": "1", "taskId": "1"}'),
        (2, b'{"code": 0, "data": "1", "data": "2"}'),
        (2, b'{"code": 0, "data": {"taskId": "1", "taskId": "2"}}'),
        (0, b'{"code": 0, "code": 1, "taskId": "1"}'),
    ],
)
async def test_duplicate_keys_in_a_create_answer_are_in_doubt(
    request_index: int, body: bytes
) -> None:
    # json.loads keeps the last value; before the fix these answers gave an id.
    async with custom_server(raw_server(body)) as url, make_session(url) as s:
        with pytest.raises(ResponseValidationError, match="ambiguous") as info:
            await s.submit(CREATES[request_index])
    assert info.value.possibly_created is True
    assert info.value.trace_id is not None


@pytest.mark.parametrize(
    "body",
    [
        b'{"taskId": "1", "status": 1, "status": 2, "code": 0}',
        b'{"code": 0, "data": {"taskId": "1", "taskId": "2"}}',
        b'{"code": 0, "taskId": "1", "extra": {"a": 1, "a": 2}}',
    ],
)
async def test_duplicate_keys_in_a_task_answer_are_refused(body: bytes) -> None:
    async with custom_server(raw_server(body)) as url, make_session(url) as s:
        with pytest.raises(ResponseValidationError, match="ambiguous") as info:
            await s.get_task("1")
    assert info.value.possibly_created is False


def test_duplicate_keys_in_a_list_answer_and_the_decoders() -> None:
    body = b'{"code": 0, "taskList": [{"taskId": "1"}, {"taskId": "2", "taskId": "3"}]}'
    with pytest.raises(ResponseValidationError, match="'taskId' twice"):
        decode_task_page(build_list_tasks(), Response(200, {}, body, TRACE))
    with pytest.raises(ResponseValidationError, match="ambiguous"):
        decode_task(build_get_task("1"), Response(200, {}, b'{"taskId":"1","taskId":"1"}', TRACE))
    # Equal keys in different objects are not duplicates; UTF-16 still decodes.
    call = build_create(CREATES[2], agent_name=None)
    assert (
        decode_create(call, Response(200, {}, b'{"data": {"data": 1, "taskId": "7"}}', TRACE))
        == "7"
    )
    utf16 = '{"code": 0, "taskId": "8"}'.encode("utf-16")
    assert (
        decode_create(build_create(CREATES[0], agent_name=None), Response(200, {}, utf16, TRACE))
        == "8"
    )


# --------------------------------------------------------------------------- bad arguments

NAN = math.nan
INF = math.inf

GOOD_SHARE: dict[str, Any] = {
    "task_type": ShareTaskType.SAVE,
    "container_id": "c",
    "file_ids": ["f"],
    "share_id": "s",
    "target": FileRef("root", "c"),
}
GOOD_JOB: dict[str, Any] = {
    "task_type": JobType.COPY,
    "src_container_id": "s",
    "dst_container_id": "d",
    "files": [FileInfo("f")],
    "action_type": JobAction.COPY,
}
GOOD_DECOMPRESS: dict[str, Any] = {
    **GOOD_JOB,
    "task_type": JobType.DECOMPRESS,
    "action_type": JobAction.DECOMPRESS_PARTIAL,
}

TEXT_BAD = [None, 1, 1.5, True, b"x", ["x"], {"x": 1}, "", "  "]
OPTIONAL_TEXT_BAD = [1, True, b"x", ["x"], {"x": 1}, "", " "]
ENUM_BAD = [None, "1", True, 1.0, 99, -1, [1], NAN]
# A single value, a str or bytes where a sequence belongs, a dict, a number, None.
SEQUENCE_BAD = [None, 1, 1.5, True, "abc", b"abc", bytearray(b"ab"), {"a": 1}, NAN]
POSITIVE_BAD = [None, "1", True, 0, -1, -0.5, NAN, INF, -INF, [1]]
NON_NEGATIVE_BAD = [None, "1", True, -1, -0.1, NAN, INF, -INF]

Session = KooDriveSession
Case = tuple[str, Callable[[Session], Any], str]


def cases(
    name: str, call: Callable[[Session, Any], Any], field: str, values: list[Any]
) -> list[Case]:
    def bind(value: Any) -> Callable[[Session], Any]:
        return lambda s: call(s, value)

    return [(f"{name}-{field}={value!r}", bind(value), field) for value in values]


def share(**kw: Any) -> Callable[[Session], Any]:
    options = {**GOOD_SHARE, **kw}
    task_type = options.pop("task_type")
    return lambda s: s.create_share_task(task_type, **options)


def job(base: dict[str, Any], **kw: Any) -> Callable[[Session], Any]:
    options = {**base, **kw}
    task_type = options.pop("task_type")
    return lambda s: s.create_job(task_type, **options)


async def drain(s: Session, **kw: Any) -> None:
    async for _ in s.iter_tasks(**kw):
        pass


ENTRY_POINTS: list[Case] = [
    # create_transfer_task / create_import_task
    *cases(
        "transfer",
        lambda s, v: s.create_transfer_task(src_user_id=v, dst_user_id="d"),
        "src_user_id",
        TEXT_BAD,
    ),
    *cases(
        "transfer",
        lambda s, v: s.create_transfer_task(src_user_id="s", dst_user_id=v),
        "dst_user_id",
        TEXT_BAD,
    ),
    *cases(
        "import",
        lambda s, v: s.create_import_task(org_id=v, org_user_id="u"),
        "org_id",
        TEXT_BAD,
    ),
    *cases(
        "import",
        lambda s, v: s.create_import_task(org_id="o", org_user_id=v),
        "org_user_id",
        TEXT_BAD,
    ),
    *cases(
        "import",
        lambda s, v: s.create_import_task(org_id="o", org_user_id="u", result_id=v),
        "result_id",
        OPTIONAL_TEXT_BAD,
    ),
    # create_share_task
    *cases("share", lambda s, v: share(task_type=v)(s), "task_type", ENUM_BAD),
    *cases("share", lambda s, v: share(container_id=v)(s), "container_id", TEXT_BAD),
    *cases("share", lambda s, v: share(share_id=v)(s), "share_id", TEXT_BAD),
    *cases(
        "share",
        lambda s, v: share(file_ids=v)(s),
        "file_ids",
        [*SEQUENCE_BAD, [], FileInfo("f"), FileRef("f", "c")],
    ),
    *cases("share", lambda s, v: share(file_ids=["f", v])(s), "file_ids[1]", TEXT_BAD),
    *cases("share", lambda s, v: share(kdstoken=v)(s), "kdstoken", OPTIONAL_TEXT_BAD),
    *cases(
        "share",
        lambda s, v: share(target=v)(s),
        "target",
        [None, "root", ("root", "c"), {"fileId": "root", "containerId": "c"}, FileInfo("f")],
    ),
    *cases(
        "share",
        lambda s, v: share(task_type=ShareTaskType.PACKAGE, target=None, zip_name=v)(s),
        "zip_name",
        [None, *OPTIONAL_TEXT_BAD],
    ),
    # create_job
    *cases("job", lambda s, v: job(GOOD_JOB, task_type=v)(s), "task_type", ENUM_BAD),
    *cases("job", lambda s, v: job(GOOD_JOB, action_type=v)(s), "action_type", ENUM_BAD[1:]),
    *cases("job", lambda s, v: job(GOOD_JOB, src_container_id=v)(s), "src_container_id", TEXT_BAD),
    *cases("job", lambda s, v: job(GOOD_JOB, dst_container_id=v)(s), "dst_container_id", TEXT_BAD),
    *cases(
        "job",
        lambda s, v: job(GOOD_JOB, files=v)(s),
        "files",
        [*SEQUENCE_BAD, [], FileInfo("x"), ["f"], [None], [FileInfo("f"), {"fileId": "g"}]],
    ),
    *cases(
        "job", lambda s, v: job(GOOD_JOB, new_file_path=v)(s), "new_file_path", OPTIONAL_TEXT_BAD
    ),
    *cases(
        "job",
        lambda s, v: job(GOOD_JOB, share_folder_id=v)(s),
        "share_folder_id",
        OPTIONAL_TEXT_BAD,
    ),
    *cases(
        "job",
        lambda s, v: job(GOOD_DECOMPRESS, uncompress_file_paths=v)(s),
        "uncompress_file_paths",
        [x for x in SEQUENCE_BAD if x is not None],
    ),
    *cases(
        "job",
        lambda s, v: job(GOOD_DECOMPRESS, uncompress_file_paths=["a", v])(s),
        "uncompress_file_paths[1]",
        TEXT_BAD,
    ),
    *cases(
        "job",
        lambda s, v: job(GOOD_DECOMPRESS, password=v)(s),
        "password",
        [1, True, b"x", ["x"], ""],
    ),
    *cases("job", lambda s, v: job(GOOD_JOB, password=v)(s), "password", ["secret"]),
    # submit
    *cases(
        "submit",
        lambda s, v: s.submit(v),
        "request",
        [None, "job", b"job", {"srcUserId": "a"}, FileInfo("f"), [TransferTaskRequest("a", "b")]],
    ),
    # get_task
    *cases("get", lambda s, v: s.get_task(v), "task_id", [*TEXT_BAD, "\ud800"]),
    # list_tasks / iter_tasks
    *cases("list", lambda s, v: s.list_tasks(task_type=v), "task_type", ENUM_BAD[1:]),
    *cases(
        "list",
        lambda s, v: s.list_tasks(status=v),
        "status",
        ["1", b"1", {1: 2}, 1.5, NAN, True, [True], [None], [9], [TaskStatus.NEW, "2"]],
    ),
    *cases(
        "list",
        lambda s, v: s.list_tasks(page_size=v),
        "page_size",
        [None, 0, 101, -1, True, 1.5, "10", NAN, INF],
    ),
    *cases(
        "list",
        lambda s, v: s.list_tasks(cursor=v),
        "cursor",
        [1.5, True, b"x", ["x"], {"x": 1}, NAN, "\ud800"],
    ),
    *cases("iter", lambda s, v: drain(s, task_type=v), "task_type", ENUM_BAD[1:]),
    *cases(
        "iter", lambda s, v: drain(s, status=v), "status", ["1", b"1", {1: 2}, 1.5, [None], [9]]
    ),
    *cases("iter", lambda s, v: drain(s, page_size=v), "page_size", [None, 0, 101, True, "5"]),
]


@pytest.mark.parametrize(
    ("call", "field"), [c[1:] for c in ENTRY_POINTS], ids=[c[0] for c in ENTRY_POINTS]
)
async def test_every_bad_argument_of_a_session_method_is_named_and_nothing_is_sent(
    call: Callable[[Session], Awaitable[Any]], field: str
) -> None:
    async with KooDriveEmulator() as emu, make_session(emu.url) as s:
        with pytest.raises(InvalidRequestError) as info:
            await call(s)
        assert info.value.field == field, str(info.value)
        assert emu.requests == []


MODEL_CASES: list[tuple[str, Callable[[Any], object], str, list[Any]]] = [
    ("FileInfo", lambda v: FileInfo(v), "file_id", OPTIONAL_TEXT_BAD),
    ("FileInfo", lambda v: FileInfo("f", v), "file_path", OPTIONAL_TEXT_BAD),
    ("FileRef", lambda v: FileRef(v, "c"), "target.file_id", TEXT_BAD),
    ("FileRef", lambda v: FileRef("f", v), "target.container_id", TEXT_BAD),
    ("Transfer", lambda v: TransferTaskRequest(v, "d"), "src_user_id", TEXT_BAD),
    ("Import", lambda v: ImportTaskRequest("o", "u", v), "result_id", OPTIONAL_TEXT_BAD),
    (
        "Share",
        lambda v: ShareTaskRequest(**{**GOOD_SHARE, "file_ids": v}),
        "file_ids",
        SEQUENCE_BAD,
    ),
    ("Job", lambda v: JobRequest(**{**GOOD_JOB, "files": v}), "files", SEQUENCE_BAD),
    (
        "Job",
        lambda v: JobRequest(**{**GOOD_DECOMPRESS, "uncompress_file_paths": v}),
        "uncompress_file_paths",
        [x for x in SEQUENCE_BAD if x is not None],
    ),
    ("RetryPolicy", lambda v: RetryPolicy(max_attempts=v), "max_attempts", POSITIVE_BAD),
    ("RetryPolicy", lambda v: RetryPolicy(initial_backoff=v), "initial_backoff", POSITIVE_BAD),
    ("RetryPolicy", lambda v: RetryPolicy(max_backoff=v), "max_backoff", POSITIVE_BAD),
    (
        "RetryPolicy",
        lambda v: RetryPolicy(max_retry_after=v),
        "max_retry_after",
        NON_NEGATIVE_BAD,
    ),
    ("PollPolicy", lambda v: PollPolicy(initial=v), "initial", POSITIVE_BAD),
    ("PollPolicy", lambda v: PollPolicy(max_interval=v), "max_interval", POSITIVE_BAD),
    ("PollPolicy", lambda v: PollPolicy(multiplier=v), "multiplier", [*POSITIVE_BAD, 0.5]),
    ("PollPolicy", lambda v: PollPolicy(jitter=v), "jitter", [*NON_NEGATIVE_BAD, 1, 1.5]),
    ("chunked", lambda v: chunked(v, 2), "items", [None, 1, 1.5, "abc", b"abc", FileInfo("f")]),
    ("chunked", lambda v: chunked([1], v), "size", [None, 0, -1, True, 1.5, "2", NAN, INF]),
]
MODEL_ROWS = [(name, build, field, v) for name, build, field, values in MODEL_CASES for v in values]


@pytest.mark.parametrize(
    ("build", "field", "value"),
    [row[1:] for row in MODEL_ROWS],
    ids=[f"{row[0]}-{row[2]}={row[3]!r}" for row in MODEL_ROWS],
)
def test_every_bad_argument_of_a_model_policy_or_helper_is_named(
    build: Callable[[Any], object], field: str, value: Any
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        build(value)
    assert info.value.field == field, str(info.value)


def test_a_single_file_info_is_refused_with_a_hint() -> None:
    with pytest.raises(InvalidRequestError, match=r"files=\[FileInfo") as info:
        JobRequest(**{**GOOD_JOB, "files": FileInfo("x")})
    assert info.value.field == "files"


def test_collections_other_than_lists_are_still_accepted() -> None:
    ids = ShareTaskRequest(**{**GOOD_SHARE, "file_ids": (f"F{i}" for i in range(3))}).file_ids
    assert ids == ("F0", "F1", "F2")
    assert JobRequest(**{**GOOD_JOB, "files": (FileInfo("a"),)}).files == (FileInfo("a"),)
    assert list(chunked(range(5), 2)) == [[0, 1], [2, 3], [4]]
    assert build_list_tasks(status={TaskStatus.NEW}).query == "status=0&pageSize=100"
