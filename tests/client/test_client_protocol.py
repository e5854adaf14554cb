"""Pure protocol tests: bodies against the pages' example requests, the
pages' example responses into models, request_from_body, errors by status."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from koodrive_async import (
    APIError,
    AuthenticationError,
    BadRequestError,
    FileInfo,
    FileRef,
    ImportTaskRequest,
    InvalidRequestError,
    JobAction,
    JobRequest,
    JobType,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    ShareTaskRequest,
    ShareTaskType,
    Task,
    TaskPage,
    TaskStatus,
    TaskType,
    TransferTaskRequest,
)
from koodrive_async._build import build_create, build_get_task, build_list_tasks, request_kind
from koodrive_async._call import Call, Response, new_trace_id
from koodrive_async._clock import format_x_date
from koodrive_async._codec import file_ref_json, parse_task, parse_time, request_body
from koodrive_async._decode import (
    decode_create,
    decode_task,
    decode_task_page,
    error_from_response,
)
from koodrive_async._retry import parse_retry_after
from koodrive_async.bulk._bodies import plan_body, request_from_body

# ---- the pages' example requests, copied literally -------------------------------------

TASK_CREATE_EXAMPLE = json.loads(
    """{ "taskType": 0, "srcUserId": "1397687227244555008", "dstUserId": "1507947856550550784" }"""
)

SHARE_EXAMPLE = json.loads("""
{
"taskType" : 2,
"containerId" : "IAABh_RdhS8bOg0cA1684711052660690818",
"fileIds" : [ "Fk63FCWhcDAga2puvYKRG1oTMjs-m30sI" ],
"shareId" : "1689765568237837824",
"kdstoken" : "aea2968ec8cfac338cd4647f071c44644c491d0a2039cd6c",
"targetFileId" : {
"fileId" : "FhTB_fxx3LRszaivDFX9NN5JRNLnS9Gob",
"containerId" : "IAABh_RdhS8bOg0cA1684711052660690818"
}
}""")

JOBS_EXAMPLE = json.loads("""
{
    "taskType":1 ,
    "actionType":101 ,
    "dstContainerId": "IAADfsBFCO6WtAtuA315074383680425b8aa9a130cba2d4" ,
    "taskInfo": {
        "srcContainerId": "IAADfsBFCO6WtAtuA315074383680425b8aa9a130cba2d4",
        "newFilePath": "Fm9UdqBNTAQDos6l1xPlFnIqXJg2-UdqA" ,
        "fileInfo": [
            {
                "fileId": "FuZmQ66CF0DdpKRG1Y29Iwajbq04Nhwu3"
            }
        ]
    }
}""")

# ---- the pages' example responses, copied literally (the jobs one misses a comma) ------

TASK_CREATE_RESPONSE = b"""{ "taskId" : "1534087020903704704", "code" : 0, "msg" : "Success." }"""
SHARE_RESPONSE = b"""{
"code" : 0,
"msg" : "Success",
"taskId" : "1689765568237837824"
}"""
JOBS_RESPONSE_AS_PRINTED = b"""{
    "data": "1309243162258308352"
    "code": 0,
    "msg": "success"
}"""
JOBS_RESPONSE = b"""{
    "data": "1309243162258308352",
    "code": 0,
    "msg": "success"
}"""
GET_TASK_RESPONSE = b"""{
  "taskId" : "1534087020903704704",
  "taskName" : "lym0412normal",
  "taskType" : 0,
  "tenantId" : "d5ac574bd2934a69baa4f23c55daa8d4",
  "userId" : "1395497048157130881",
  "status" : 3,
  "resultCode" : "18000205",
  "code" : 0,
  "msg" : "Success."
}"""
LIST_RESPONSE = b"""{
  "taskListDtos" : [ {
    "taskId" : "1486254586942472064",
    "taskName" : "ceshi1111",
    "taskType" : 0,
    "status" : 2,
    "createTime" : "2024-08-12T07:22:33.000Z"
  }, {
    "taskId" : "1486368980720435072",
    "taskName" : "ceshi4",
    "taskType" : 0,
    "status" : 2,
    "createTime" : "2024-08-12T11:09:50.000Z"
  } ],
  "nextCursor" : 1723549107000,
  "code" : 0,
  "msg" : "Success."
}"""

TRACE = "t" * 58
NO_HEADERS: dict[str, str] = {}


def _body(call: Call) -> Any:
    assert call.body is not None
    return json.loads(call.body)


# ---- bodies ------------------------------------------------------------------------------


def test_transfer_body_equals_page_example() -> None:
    request = TransferTaskRequest(
        src_user_id="1397687227244555008", dst_user_id="1507947856550550784"
    )
    call = build_create(request, agent_name=None)
    assert (call.method, call.path, call.route) == (
        "POST",
        "/koodrive/ose/v1/task/create",
        "create_task",
    )
    assert _body(call) == TASK_CREATE_EXAMPLE
    assert call.headers == {"Content-Type": "application/json"}


def test_import_body_sends_task_type_1_and_leaves_out_none() -> None:
    assert request_body(ImportTaskRequest(org_id="o1", org_user_id="u1")) == {
        "taskType": 1,
        "orgId": "o1",
        "orgUserId": "u1",
    }
    assert request_body(ImportTaskRequest(org_id="o1", org_user_id="u1", result_id="r")) == {
        "taskType": 1,
        "orgId": "o1",
        "orgUserId": "u1",
        "resultId": "r",
    }


def test_share_body_equals_page_example_and_sends_agent_header() -> None:
    request = ShareTaskRequest(
        ShareTaskType.SAVE,
        container_id="IAABh_RdhS8bOg0cA1684711052660690818",
        file_ids=["Fk63FCWhcDAga2puvYKRG1oTMjs-m30sI"],
        share_id="1689765568237837824",
        kdstoken="aea2968ec8cfac338cd4647f071c44644c491d0a2039cd6c",
        target=FileRef("FhTB_fxx3LRszaivDFX9NN5JRNLnS9Gob", "IAABh_RdhS8bOg0cA1684711052660690818"),
    )
    call = build_create(request, agent_name="carrier")
    assert (call.path, call.route) == ("/koodrive/ose/v1/share/tasks", "create_share_task")
    assert _body(call) == SHARE_EXAMPLE
    assert call.headers["X-Hw-Agentname"] == "carrier"


def test_share_package_body() -> None:
    request = ShareTaskRequest(
        ShareTaskType.PACKAGE, container_id="c", file_ids=("a", "b"), share_id="s", zip_name="z"
    )
    assert request_body(request) == {
        "taskType": 1,
        "containerId": "c",
        "fileIds": ["a", "b"],
        "shareId": "s",
        "zipName": "z",
    }


def test_share_without_agent_name_is_invalid() -> None:
    request = ShareTaskRequest(
        ShareTaskType.PACKAGE, container_id="c", file_ids=["a"], share_id="s", zip_name="z"
    )
    with pytest.raises(InvalidRequestError) as info:
        build_create(request, agent_name=None)
    assert info.value.field == "agent_name"


def test_job_body_equals_page_example() -> None:
    request = JobRequest(
        JobType.COPY,
        src_container_id="IAADfsBFCO6WtAtuA315074383680425b8aa9a130cba2d4",
        dst_container_id="IAADfsBFCO6WtAtuA315074383680425b8aa9a130cba2d4",
        files=[FileInfo("FuZmQ66CF0DdpKRG1Y29Iwajbq04Nhwu3")],
        action_type=JobAction.COPY,
        new_file_path="Fm9UdqBNTAQDos6l1xPlFnIqXJg2-UdqA",
    )
    call = build_create(request, agent_name=None)
    assert (call.path, call.route) == ("/koodrive/ose/v1/jobs", "create_job")
    assert _body(call) == JOBS_EXAMPLE
    assert "x-hw-share-folder-id" not in call.headers


def test_job_decompress_body_password_share_folder_header() -> None:
    request = JobRequest(
        JobType.DECOMPRESS,
        src_container_id="s",
        dst_container_id="d",
        files=[FileInfo("f", "/a/f")],
        action_type=JobAction.DECOMPRESS_PARTIAL,
        uncompress_file_paths=["x/y.txt"],
        password="pw",
        share_folder_id="SF1",
    )
    call = build_create(request, agent_name=None)
    assert _body(call) == {
        "taskType": 5,
        "actionType": 503,
        "dstContainerId": "d",
        "taskInfo": {
            "srcContainerId": "s",
            "fileInfo": [{"fileId": "f", "filePath": "/a/f"}],
            "uncompressFilePaths": ["x/y.txt"],
        },
        "password": "pw",
    }
    assert call.headers["x-hw-share-folder-id"] == "SF1"
    assert "pw" not in repr(call)
    assert "pw" not in repr(request)


def test_clear_recycle_bin_body_has_no_file_info() -> None:
    request = JobRequest(JobType.CLEAR_RECYCLE_BIN, src_container_id="s", dst_container_id="d")
    assert request_body(request) == {
        "taskType": 7,
        "dstContainerId": "d",
        "taskInfo": {"srcContainerId": "s"},
    }


def test_share_folder_id_with_newline_is_invalid() -> None:
    request = JobRequest(
        JobType.COPY, src_container_id="s", dst_container_id="d", files=[FileInfo("f")],
        share_folder_id="a\r\nX-Evil: 1",
    )  # fmt: skip
    with pytest.raises(InvalidRequestError) as info:
        build_create(request, agent_name=None)
    assert info.value.field == "share_folder_id"


def test_build_body_rejects_non_requests() -> None:
    with pytest.raises(InvalidRequestError):
        request_body({"taskType": 0})  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        request_kind(object())


# ---- request_from_body --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "example"),
    [("transfer", TASK_CREATE_EXAMPLE), ("share", SHARE_EXAMPLE), ("job", JOBS_EXAMPLE)],
)
def test_request_from_body_round_trips_page_examples(kind: str, example: dict[str, Any]) -> None:
    request = request_from_body(kind, example)
    assert request_kind(request) == kind
    assert request_body(request) == example
    assert request_from_body(kind, request_body(request)) == request


ROUND_TRIP_REQUESTS = [
    ImportTaskRequest(org_id="o", org_user_id="u", result_id="r"),
    ImportTaskRequest(org_id="o", org_user_id="u"),
    ShareTaskRequest(
        ShareTaskType.PACKAGE, container_id="c", file_ids=["a", "b"], share_id="s", zip_name="z"
    ),
    JobRequest(
        JobType.DELETE,
        src_container_id="s",
        dst_container_id="d",
        files=[FileInfo("f", "/p/f")],
        action_type=JobAction.RECYCLE,
        share_folder_id="SF",
    ),
    JobRequest(
        JobType.DECOMPRESS,
        src_container_id="s",
        dst_container_id="d",
        files=[FileInfo("f")],
        action_type=JobAction.DECOMPRESS_PARTIAL,
        uncompress_file_paths=["a/b"],
        password="secret",
        new_file_path="/out",
    ),
    JobRequest(JobType.CLEAR_RECYCLE_BIN, src_container_id="s", dst_container_id="d"),
]


@pytest.mark.parametrize("request_model", ROUND_TRIP_REQUESTS, ids=repr)
def test_plan_body_round_trips(request_model: Any) -> None:
    kind = request_kind(request_model)
    body = plan_body(request_model)
    assert request_from_body(kind, body) == request_model
    assert plan_body(request_from_body(kind, body)) == body


def test_plan_body_has_share_folder_id_and_build_body_not() -> None:
    request = ROUND_TRIP_REQUESTS[3]
    assert plan_body(request)["shareFolderId"] == "SF"
    assert "shareFolderId" not in request_body(request)


def test_request_from_body_accepts_transfer_without_task_type() -> None:
    request = request_from_body("transfer", {"srcUserId": "a", "dstUserId": "b"})
    assert request == TransferTaskRequest("a", "b")


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(base))
    for key, value in changes.items():
        if value is ...:
            body.pop(key)
        else:
            body[key] = value
    return body


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("nope", TASK_CREATE_EXAMPLE, "kind"),
        ("transfer", [], "body"),
        ("transfer", _with(TASK_CREATE_EXAMPLE, extra=1), "extra"),
        ("transfer", _with(TASK_CREATE_EXAMPLE, taskType=1), "taskType"),
        ("transfer", _with(TASK_CREATE_EXAMPLE, taskType="0"), "taskType"),
        ("transfer", _with(TASK_CREATE_EXAMPLE, srcUserId=...), "srcUserId"),
        ("transfer", _with(TASK_CREATE_EXAMPLE, dstUserId=5), "dstUserId"),
        ("import", {"taskType": 0, "orgId": "o", "orgUserId": "u"}, "taskType"),
        ("import", {"orgId": "o"}, "orgUserId"),
        ("share", _with(SHARE_EXAMPLE, agentName="x"), "agentName"),
        ("share", _with(SHARE_EXAMPLE, fileIds="abc"), "fileIds"),
        ("share", _with(SHARE_EXAMPLE, fileIds=["a", 3]), "fileIds[1]"),
        ("share", _with(SHARE_EXAMPLE, taskType=True), "taskType"),
        ("share", _with(SHARE_EXAMPLE, taskType=9), "taskType"),
        ("share", _with(SHARE_EXAMPLE, shareId=...), "shareId"),
        ("share", _with(SHARE_EXAMPLE, targetFileId={"fileId": "f"}), "targetFileId.containerId"),
        (
            "share",
            _with(SHARE_EXAMPLE, targetFileId={"fileId": "f", "containerId": "c", "x": 1}),
            "targetFileId.x",
        ),
        ("share", _with(SHARE_EXAMPLE, targetFileId=...), "target"),
        ("job", _with(JOBS_EXAMPLE, taskInfo=...), "taskInfo"),
        ("job", _with(JOBS_EXAMPLE, taskInfo=[]), "taskInfo"),
        ("job", _with(JOBS_EXAMPLE, actionType=201), "action_type"),
        ("job", _with(JOBS_EXAMPLE, actionType=999), "actionType"),
        ("job", _with(JOBS_EXAMPLE, password="p"), "password"),
        ("job", _with(JOBS_EXAMPLE, shareFolderId=1), "shareFolderId"),
        ("job", _with(JOBS_EXAMPLE, dstContainerId=...), "dstContainerId"),
        (
            "job",
            _with(JOBS_EXAMPLE, taskInfo={"srcContainerId": "s", "fileInfo": [{"fileId": 1}]}),
            "taskInfo.fileInfo[0].fileId",
        ),
        (
            "job",
            _with(JOBS_EXAMPLE, taskInfo={"srcContainerId": "s", "fileInfo": [{"fid": "1"}]}),
            "taskInfo.fileInfo[0].fid",
        ),
        (
            "job",
            _with(JOBS_EXAMPLE, taskInfo={"fileInfo": [{"fileId": "1"}]}),
            "taskInfo.srcContainerId",
        ),
        (
            "job",
            _with(JOBS_EXAMPLE, taskInfo={"srcContainerId": "s", "fileInfo": [], "zz": 1}),
            "taskInfo.zz",
        ),
    ],
)
def test_request_from_body_names_the_bad_field(kind: str, body: Any, field: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        request_from_body(kind, body)
    assert info.value.field == field
    assert field.split("[")[0].split(".")[-1] in str(info.value) or field in str(info.value)


# ---- calls for GET -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_id", "path"),
    [
        ("1534087020903704704", "/koodrive/ose/v1/task/1534087020903704704"),
        ("a/b", "/koodrive/ose/v1/task/a%2Fb"),
        ("../list", "/koodrive/ose/v1/task/..%2Flist"),
        ("..", "/koodrive/ose/v1/task/%2E%2E"),
        ("x?y#z", "/koodrive/ose/v1/task/x%3Fy%23z"),
        ("50%", "/koodrive/ose/v1/task/50%25"),
        ("é", "/koodrive/ose/v1/task/%C3%A9"),
    ],
)
def test_get_task_path_is_one_encoded_segment(task_id: str, path: str) -> None:
    call = build_get_task(task_id)
    assert (call.method, call.path, call.route, call.query) == ("GET", path, "get_task", "")


@pytest.mark.parametrize("task_id", ["", "   ", None, 123])
def test_get_task_rejects_empty_ids(task_id: Any) -> None:
    with pytest.raises(InvalidRequestError) as info:
        build_get_task(task_id)
    assert info.value.field == "task_id"


def test_list_query() -> None:
    assert build_list_tasks().query == "pageSize=100"
    call = build_list_tasks(
        task_type=TaskType.TRANSFER, status=[TaskStatus.EXECUTING, 2, 2], page_size=10, cursor=17
    )
    assert (call.method, call.path, call.route) == (
        "GET",
        "/koodrive/ose/v1/task/list",
        "list_tasks",
    )
    assert call.query == "taskType=0&status=1&status=2&pageSize=10&pageCursor=17"
    assert build_list_tasks(status=TaskStatus.SUCCESS, cursor="").query == "status=2&pageSize=100"
    assert build_list_tasks(cursor="a b&c").query == "pageSize=100&pageCursor=a%20b%26c"
    assert build_list_tasks(status=iter([3])).query == "status=3&pageSize=100"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 101}, "page_size"),
        ({"page_size": True}, "page_size"),
        ({"page_size": "10"}, "page_size"),
        ({"task_type": 7}, "task_type"),
        ({"task_type": "0"}, "task_type"),
        ({"status": 9}, "status"),
        ({"status": "1"}, "status"),
        ({"status": [1, None]}, "status"),
        ({"status": True}, "status"),
        ({"cursor": 1.5}, "cursor"),
    ],
)
def test_list_validation(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        build_list_tasks(**kwargs)
    assert info.value.field == field


def test_x_date_and_trace_id() -> None:
    assert format_x_date(1762153300.9) == "20251103T070140Z"
    ids = {new_trace_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 58 and int(i, 16) >= 0 for i in ids)


# ---- decoding: the pages' example responses --------------------------------------------


def test_decode_create_examples() -> None:
    create = build_create(TransferTaskRequest("a", "b"), agent_name=None)
    assert decode_create(create, Response(200, NO_HEADERS, TASK_CREATE_RESPONSE, TRACE)) == (
        "1534087020903704704"
    )
    share = build_create(ROUND_TRIP_REQUESTS[2], agent_name="x")
    assert (
        decode_create(share, Response(200, NO_HEADERS, SHARE_RESPONSE, TRACE))
        == "1689765568237837824"
    )
    job = build_create(ROUND_TRIP_REQUESTS[5], agent_name=None)
    assert (
        decode_create(job, Response(200, NO_HEADERS, JOBS_RESPONSE, TRACE)) == "1309243162258308352"
    )
    # The page prints it without a comma: that is an unreadable body, never a crash.
    with pytest.raises(ResponseValidationError) as info:
        decode_create(job, Response(200, NO_HEADERS, JOBS_RESPONSE_AS_PRINTED, TRACE))
    assert info.value.possibly_created
    assert TRACE in str(info.value)


def test_decode_create_reads_each_endpoints_own_field() -> None:
    job = build_create(ROUND_TRIP_REQUESTS[5], agent_name=None)
    with pytest.raises(ResponseValidationError, match=r"\(data\)"):
        decode_create(job, Response(200, NO_HEADERS, TASK_CREATE_RESPONSE, TRACE))
    create = build_create(TransferTaskRequest("a", "b"), agent_name=None)
    with pytest.raises(ResponseValidationError, match="taskId"):
        decode_create(create, Response(200, NO_HEADERS, JOBS_RESPONSE, TRACE))
    assert (
        decode_create(create, Response(200, NO_HEADERS, b'{"taskId": 12, "code": "0"}', TRACE))
        == "12"
    )
    with pytest.raises(ResponseValidationError):
        decode_create(create, Response(200, NO_HEADERS, b'{"taskId": "", "code": 0}', TRACE))


def test_decode_get_task_example() -> None:
    task = decode_task(build_get_task("x"), Response(200, NO_HEADERS, GET_TASK_RESPONSE, TRACE))
    assert task == Task(
        task_id="1534087020903704704",
        task_name="lym0412normal",
        task_type=TaskType.TRANSFER,
        tenant_id="d5ac574bd2934a69baa4f23c55daa8d4",
        user_id="1395497048157130881",
        status=TaskStatus.FAILED,
        result_code="18000205",
    )
    assert task.failed and task.is_terminal
    assert isinstance(task.status, TaskStatus)


def test_decode_list_example() -> None:
    page = decode_task_page(build_list_tasks(), Response(200, NO_HEADERS, LIST_RESPONSE, TRACE))
    assert page == TaskPage(
        (
            Task(
                task_id="1486254586942472064",
                task_name="ceshi1111",
                task_type=TaskType.TRANSFER,
                status=TaskStatus.SUCCESS,
                create_time=datetime(2024, 8, 12, 7, 22, 33, tzinfo=UTC),
            ),
            Task(
                task_id="1486368980720435072",
                task_name="ceshi4",
                task_type=TaskType.TRANSFER,
                status=TaskStatus.SUCCESS,
                create_time=datetime(2024, 8, 12, 11, 9, 50, tzinfo=UTC),
            ),
        ),
        next_cursor="1723549107000",
    )


@pytest.mark.parametrize(
    ("body", "tasks", "cursor"),
    [
        (b'{"taskList": [{"taskId": "1"}], "nextCursor": "abc", "code": "0"}', 1, "abc"),
        (b'{"taskListDtos": [], "nextCursor": 5, "code": 0}', 0, "5"),
        (b'{"taskList": [{"taskId": "1"}], "code": 0}', 1, None),
        (b'{"taskList": [], "nextCursor": null, "code": 0}', 0, None),
        (b'{"taskList": [], "nextCursor": "", "code": 0}', 0, None),
        (b'{"code": 0, "msg": "OK"}', 0, None),
        (b'{"taskList": null, "taskListDtos": [{"taskId": "2"}], "code": 0}', 1, None),
        (b'{"taskList": [], "nextCursor": 1.7e12, "code": 0}', 0, "1700000000000"),
    ],
)
def test_decode_list_variants(body: bytes, tasks: int, cursor: str | None) -> None:
    page = decode_task_page(build_list_tasks(), Response(200, NO_HEADERS, body, TRACE))
    assert len(page.tasks) == tasks
    assert page.next_cursor == cursor
    assert page.is_last is (cursor is None)


@pytest.mark.parametrize(
    "body",
    [
        b'{"taskList": {"taskId": "1"}, "code": 0}',
        b'{"taskList": ["1"], "code": 0}',
        b'{"taskList": [{"taskName": "no id"}], "code": 0}',
        b'{"taskList": [], "nextCursor": true, "code": 0}',
        b'{"taskList": [], "nextCursor": [1], "code": 0}',
        b"[]",
        b"",
        b"<html><body>OK</body></html>",
        b"\xff\xfe",
        b"[" * 100000,
    ],
)
def test_decode_list_bad_shapes(body: bytes) -> None:
    with pytest.raises(ResponseValidationError) as info:
        decode_task_page(build_list_tasks(), Response(200, NO_HEADERS, body, TRACE))
    assert info.value.status_code == 200
    assert not info.value.possibly_created
    assert "GET /koodrive/ose/v1/task/list" in str(info.value)


def test_task_tolerates_unknown_enums_fields_and_times() -> None:
    body = json.dumps(
        {
            "taskId": 1534087020903704704,
            "taskType": 9,
            "status": "7",
            "createTime": "not a time",
            "startTime": "2024-08-12T07:22:33",
            "endTime": "2024-08-12T07:22:33.5+08:00",
            "resultCode": 18000205,
            "brandNew": {"x": 1},
            "code": "0",
        }
    ).encode()
    task = decode_task(build_get_task("x"), Response(200, NO_HEADERS, body, TRACE))
    assert task.task_id == "1534087020903704704"
    assert task.task_type == 9 and not isinstance(task.task_type, TaskType)
    assert task.status == 7
    assert not task.is_terminal
    assert task.create_time is None
    assert task.start_time == datetime(2024, 8, 12, 7, 22, 33, tzinfo=UTC)
    assert task.end_time is not None and task.end_time.utcoffset() is not None
    assert task.result_code == "18000205"


def test_descriptive_fields_sent_as_json_are_kept_as_text() -> None:
    # initParams is an "Extended field": a service that sends it as an object
    # must not make the task (or a whole list page) unreadable.
    body = b'{"taskId": "1", "status": 2, "initParams": {"b": [1, 2], "a": null}, "taskName": 3.5}'
    task = decode_task(build_get_task("x"), Response(200, NO_HEADERS, body, TRACE))
    assert task.init_params == '{"a":null,"b":[1,2]}'
    assert task.task_name == "3.5"
    assert task.succeeded


@pytest.mark.parametrize(
    "body",
    [
        b'{"code": 0, "msg": "ok"}',
        b'{"taskId": "", "code": 0}',
        b'{"taskId": "1", "status": [1], "code": 0}',
        b'{"taskId": {"a": 1}, "code": 0}',
        b'{"taskId": "1", "status": true, "code": 0}',
    ],
)
def test_decode_task_bad_shapes(body: bytes) -> None:
    with pytest.raises(ResponseValidationError):
        decode_task(build_get_task("x"), Response(200, NO_HEADERS, body, TRACE))


def test_parse_time() -> None:
    assert parse_time("2024-08-12T07:22:33.000Z") == datetime(2024, 8, 12, 7, 22, 33, tzinfo=UTC)
    assert parse_time(1723449753000) == datetime(2024, 8, 12, 8, 2, 33, tzinfo=UTC)
    assert parse_time("garbage") is None
    assert parse_time(None) is None
    assert parse_time(True) is None
    assert parse_time(10**30) is None


def test_codec_parses_task_and_renames() -> None:
    task = parse_task({"taskId": "1", "status": 2, "initParams": "{}"})
    assert task == Task(task_id="1", status=TaskStatus.SUCCESS, init_params="{}")
    assert file_ref_json(FileRef("root", "c")) == {"fileId": "root", "containerId": "c"}


# ---- decoding: errors ------------------------------------------------------------------------

ERROR_JSON = b'{"code": "13000102", "msg": "PARAMETER_INVALID"}'


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, APIError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (302, APIError),
    ],
)
def test_error_by_status(status: int, cls: type[APIError]) -> None:
    call = build_get_task("x")
    with pytest.raises(APIError) as info:
        decode_task(call, Response(status, NO_HEADERS, ERROR_JSON, TRACE))
    error = info.value
    assert type(error) is cls
    assert (error.status_code, error.code, error.msg, error.trace_id) == (
        status,
        "13000102",
        "PARAMETER_INVALID",
        TRACE,
    )
    message = str(error)
    for part in ("GET", "/koodrive/ose/v1/task/x", f"HTTP {status}", "13000102", TRACE):
        assert part in message
    assert not error.possibly_created


@pytest.mark.parametrize(
    ("status", "created"), [(500, True), (502, True), (504, True), (503, False), (429, False)]
)
def test_create_errors_mark_possibly_created(status: int, created: bool) -> None:
    call = build_create(TransferTaskRequest("a", "b"), agent_name=None)
    with pytest.raises(APIError) as info:
        decode_create(call, Response(status, NO_HEADERS, b"", TRACE))
    assert info.value.possibly_created is created
    assert ("may have been created" in str(info.value)) is created


def test_html_error_page_keeps_body() -> None:
    html = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    with pytest.raises(ServerError) as info:
        decode_task(build_get_task("x"), Response(502, {"Content-Type": "text/html"}, html, TRACE))
    assert info.value.code is None and info.value.msg is None
    assert info.value.body == html.decode()
    assert "text/html" in str(info.value)


def test_empty_error_body() -> None:
    with pytest.raises(NotFoundError, match="empty body"):
        decode_task(build_get_task("x"), Response(404, NO_HEADERS, b"", TRACE))


def test_200_with_nonzero_code_is_plain_api_error() -> None:
    body = b'{"code": "13000102", "msg": "PARAMETER_INVALID"}'
    with pytest.raises(APIError) as info:
        decode_task(build_get_task("x"), Response(200, NO_HEADERS, body, TRACE))
    assert type(info.value) is APIError
    assert info.value.code == "13000102"
    with pytest.raises(APIError) as info2:
        decode_task(build_get_task("x"), Response(200, NO_HEADERS, b'{"code": 13000201}', TRACE))
    assert info2.value.code == "13000201"


def test_rate_limit_carries_retry_after() -> None:
    error = error_from_response(
        build_get_task("x"), Response(429, {"Retry-After": "7"}, b'{"code":"APIGW.0308"}', TRACE)
    )
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7.0 and error.code == "APIGW.0308"


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("3", now=now) == 3.0
    assert parse_retry_after(" 0.5 ", now=now) == 0.5
    assert parse_retry_after("-4", now=now) == 0.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now=now) == pytest.approx(10.0)
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("nan", now=now) is None
    assert parse_retry_after(None) is None


def test_decode_task_tolerates_a_data_wrapper_and_float_enums() -> None:
    body = b'{"data": {"taskId": "5", "status": 2.0, "taskType": "1"}, "code": "0"}'
    task = decode_task(build_get_task("5"), Response(200, NO_HEADERS, body, TRACE))
    assert task == Task(task_id="5", status=TaskStatus.SUCCESS, task_type=TaskType.BATCH_IMPORT)


def test_lone_surrogates_are_invalid_requests() -> None:
    with pytest.raises(InvalidRequestError) as info:
        build_create(TransferTaskRequest("a", "\ud800"), agent_name=None)
    assert info.value.field == "dstUserId"
    job = JobRequest(
        JobType.COPY, src_container_id="s", dst_container_id="d", files=[FileInfo("f\udfff")]
    )
    with pytest.raises(InvalidRequestError) as info:
        build_create(job, agent_name=None)
    assert info.value.field == "taskInfo.fileInfo[0].fileId"
    with pytest.raises(InvalidRequestError) as info:
        build_get_task("\ud800")
    assert info.value.field == "task_id"
    with pytest.raises(InvalidRequestError) as info:
        build_list_tasks(cursor="\ud800")
    assert info.value.field == "cursor"
    with pytest.raises(InvalidRequestError) as info:
        build_create(ROUND_TRIP_REQUESTS[2], agent_name="\ud800")
    assert info.value.field == "agent_name"
