"""The OpenAPI document shipped with the emulator (``koodrive_async/emulator/openapi.json``).

It must be valid OpenAPI 3, describe exactly the five endpoints of the pages,
the four job / share-task reads of API-EXTRA.md (job detail, job list,
cancel, share-task detail) and the session routes (API-EXTRA.md section D),
accept every example the pages give (and every variant API-NOTES.md says the
service may send), and refuse the requests the pages' conditional rules forbid.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import aiohttp
import jsonschema_rs
import pytest
import schemathesis

from koodrive_async.emulator import KooDriveEmulator

DOC: dict[str, Any] = json.loads(
    resources.files("koodrive_async.emulator").joinpath("openapi.json").read_text("utf-8")
)

#: (method, path) -> operationId (the emulator's route names).
OPERATIONS = {
    ("post", "/koodrive/ose/v1/task/create"): "create_task",
    ("post", "/koodrive/ose/v1/share/tasks"): "create_share_task",
    ("get", "/koodrive/ose/v1/task/{task_id}"): "get_task",
    ("post", "/koodrive/ose/v1/jobs"): "create_job",
    ("get", "/koodrive/ose/v1/task/list"): "list_tasks",
    ("get", "/koodrive/ose/v1/{job_id}"): "get_job",
    ("get", "/koodrive/ose/v1/jobs"): "list_jobs",
    ("post", "/koodrive/ose/v1/cancel"): "cancel_job",
    ("post", "/koodrive/ose/v1/share/taskDetail"): "get_share_task",
    ("post", "/koodrive/ose/v1/session"): "create_session",
    # The same emulator route: the EN page writes the path with a trailing slash.
    ("post", "/koodrive/ose/v1/session/"): "create_session_slash",
    ("post", "/koodrive/ose/v1/session/refresh"): "refresh_session",
    ("post", "/koodrive/ose/v1/auth/refreshToken"): "refresh_carrier_token",
}
#: The session routes: no X-User-Id, no X-Date, no app authentication.
SESSION_PATHS = {
    "/koodrive/ose/v1/session",
    "/koodrive/ose/v1/session/",
    "/koodrive/ose/v1/session/refresh",
    "/koodrive/ose/v1/auth/refreshToken",
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _operations() -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): op
        for path, item in DOC["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    }


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow one local ``$ref`` (``#/components/...``)."""
    ref = node.get("$ref")
    if ref is None:
        return node
    target: Any = DOC
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    assert isinstance(target, dict)
    return target


def _validator(schema: dict[str, Any]) -> Any:
    # OpenAPI 3.0 schema objects are a Draft 4 dialect; the document uses no
    # OpenAPI-only keyword that changes validation (no nullable, no discriminator).
    return jsonschema_rs.Draft4Validator({**schema, "components": DOC["components"]})


def _component(name: str) -> Any:
    return _validator({"$ref": f"#/components/schemas/{name}"})


def _body_schema(method: str, path: str) -> Any:
    body = _operations()[(method, path)]["requestBody"]
    return _validator(body["content"]["application/json"]["schema"])


def _response_schema(method: str, path: str, status: str) -> Any:
    response = _resolve(_operations()[(method, path)]["responses"][status])
    return _validator(response["content"]["application/json"]["schema"])


def _header_params(op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    params = (_resolve(p) for p in op.get("parameters", []))
    return {p["name"]: p for p in params if p["in"] == "header"}


# --------------------------------------------------------------------------- validity


def test_document_is_valid_openapi_3() -> None:
    assert DOC["openapi"].startswith("3.")
    schema = schemathesis.openapi.from_dict(DOC)
    schema.validate()  # the OpenAPI meta-schema; raises on any structural error
    labels = set()
    for result in schema.get_all_operations():
        operation = result.ok()  # raises if an operation cannot be built (bad $ref, ...)
        labels.add(operation.label)
    assert labels == {f"{m.upper()} {p}" for m, p in OPERATIONS}


def test_document_rejected_by_validator_when_broken() -> None:
    # The validity check above can fail: a document with a wrong structure is refused.
    broken = json.loads(json.dumps(DOC))
    broken["paths"]["/koodrive/ose/v1/jobs"]["post"]["responses"] = "200"
    with pytest.raises(jsonschema_rs.ValidationError):
        schemathesis.openapi.from_dict(broken).validate()


def test_exactly_the_documented_operations() -> None:
    ops = _operations()
    assert set(ops) == set(OPERATIONS)
    assert {k: op["operationId"] for k, op in ops.items()} == OPERATIONS


def test_servers_are_the_documented_base_urls() -> None:
    assert [s["url"] for s in DOC["servers"]] == [
        "https://intl.myhuaweicloud-koodrive.com",
        "https://cn.myhuaweicloud-koodrive.com",
    ]


def test_security_is_an_authorization_header() -> None:
    schemes = DOC["components"]["securitySchemes"]
    # A token or an app signature, either one.
    assert list(schemes) == ["accessToken", "appSignature"]
    assert DOC["security"] == [{name: []} for name in schemes]
    for scheme in schemes.values():
        assert (scheme["type"], scheme["in"], scheme["name"]) == (
            "apiKey",
            "header",
            "Authorization",
        )


def test_session_routes_security() -> None:
    ops = _operations()
    for path in ("/koodrive/ose/v1/session", "/koodrive/ose/v1/session/"):
        assert ops[("post", path)]["security"] == []  # the code is the credential
    for path in ("/koodrive/ose/v1/session/refresh", "/koodrive/ose/v1/auth/refreshToken"):
        assert ops[("post", path)]["security"] == [{"accessToken": []}]  # no app auth
    refresh = _header_params(ops[("post", "/koodrive/ose/v1/session/refresh")])
    assert refresh["x-session-id"]["required"] is True
    assert "requestBody" not in ops[("post", "/koodrive/ose/v1/session/refresh")]
    for key, op in ops.items():
        assert ("x-session-id" in _header_params(op)) == key[1].endswith("/session/refresh")


# --------------------------------------------------------------------------- headers


def test_common_headers_on_every_operation() -> None:
    for key, op in _operations().items():
        headers = _header_params(op)
        assert headers["X-Traceid"].get("required", False) is False, key
        assert headers["language"].get("required", False) is False, key
        # Authorization is the security scheme: OpenAPI ignores a header parameter of that name.
        assert "Authorization" not in headers, key
        if key[1] in SESSION_PATHS:
            # The session pages list neither X-User-Id nor X-Date.
            assert not {"X-User-Id", "X-Date"} & set(headers), key
            continue
        assert headers["X-User-Id"]["required"] is True, key
        assert headers["X-Date"]["required"] is True, key
        assert headers["X-Date"]["schema"]["pattern"] == r"^\d{8}T\d{6}Z$", key


def test_endpoint_specific_headers() -> None:
    ops = _operations()
    share = _header_params(ops[("post", "/koodrive/ose/v1/share/tasks")])
    assert share["X-Hw-Agentname"]["required"] is True
    jobs = _header_params(ops[("post", "/koodrive/ose/v1/jobs")])
    assert jobs["x-hw-share-folder-id"].get("required", False) is False
    for key, op in ops.items():
        names = set(_header_params(op))
        assert ("X-Hw-Agentname" in names) == ("/share/" in key[1]), key
        assert ("x-hw-share-folder-id" in names) == (key == ("post", "/koodrive/ose/v1/jobs")), key


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("20251103T070140Z", True),
        ("2025-11-03T07:01:40Z", False),
        ("20251103T070140", False),
        ("20251103t070140z", False),
        (" 20251103T070140Z", False),
    ],
)
def test_x_date_pattern(value: str, ok: bool) -> None:
    schema = _resolve({"$ref": "#/components/parameters/XDate"})["schema"]
    assert _validator(schema).is_valid(value) is ok


# --------------------------------------------------------------------------- responses


def test_documented_status_codes() -> None:
    for (method, path), op in _operations().items():
        statuses = set(op["responses"])
        expected = {"200", "400", "401", "429", "500", "502", "503"}
        if path.endswith(("{task_id}", "{job_id}", "/taskDetail")):
            expected.add("404")
        assert statuses == expected, (method, path)
        for status in statuses - {"200", "502", "503"}:
            schema = _response_schema(method, path, status)
            assert schema.is_valid({"code": 13000102, "msg": "PARAMETER_INVALID"})
            assert schema.is_valid({"code": "APIGW.0308", "msg": "throttled"})
            assert not schema.is_valid({"code": 13000102})
            assert not schema.is_valid({"msg": "no code"})


def test_gateway_502_may_be_html() -> None:
    for op in _operations().values():
        content = _resolve(op["responses"]["502"])["content"]
        assert "text/html" in content
        assert "application/json" in content


# The pages' own example responses (whitespace aside), then the variants API-NOTES.md lists.
CREATE_TASK_OK = {"taskId": "1534087020903704704", "code": 0, "msg": "Success."}
SHARE_OK = {"code": 0, "msg": "Success", "taskId": "1689765568237837824"}
JOB_OK = {"data": "1309243162258308352", "code": 0, "msg": "success"}
TASK_OK = {
    "taskId": "1534087020903704704",
    "taskName": "lym0412normal",
    "taskType": 0,
    "tenantId": "d5ac574bd2934a69baa4f23c55daa8d4",
    "userId": "1395497048157130881",
    "status": 3,
    "resultCode": "18000205",
    "code": 0,
    "msg": "Success.",
}
LIST_OK = {
    "taskListDtos": [
        {
            "taskId": "1486254586942472064",
            "taskName": "ceshi1111",
            "taskType": 0,
            "status": 2,
            "createTime": "2024-08-12T07:22:33.000Z",
        },
        {
            "taskId": "1486368980720435072",
            "taskName": "ceshi4",
            "taskType": 0,
            "status": 2,
            "createTime": "2024-08-12T11:09:50.000Z",
        },
    ],
    "nextCursor": 1723549107000,
    "code": 0,
    "msg": "Success.",
}


# API-EXTRA.md B.1's example (job detail), B.2's (cancel), and the share variant.
JOB_DETAIL_OK = {
    "data": {
        "jobInfo": {
            "taskId": "1309243162258308352",
            "userId": "40086000004871666-369528171409614001",
            "taskType": 1,
            "actionType": 101,
            "status": 2,
            "progress": 100,
            "taskResultCode": 1,
            "contentNum": 1,
            "containerId": "IAADfsBFCO6WtAtuA315074383680425b8aa9a130cba2d4",
            "tenantId": "40086000004871666",
            "beginTime": "20231212095227",
            "endTime": "20231212095227",
            "createTime": "20231212095227",
        },
        "taskInfos": [
            {
                "fileId": "FuZmQ66CF0DdpKRG1Y29Iwajbq04Nhwu3",
                "status": "1",
                "newFileId": "FtEXHCpfqHueAHFbEmWZNkqUH_K866MVn",
                "srcContainerId": "IAADfsBFCO6WtAtuA315074383680425b8aa9a130cba2d4",
            }
        ],
    },
    "code": 0,
    "msg": "成功",
}
CANCEL_OK = {"code": 0, "msg": "成功"}
SHARE_DETAIL_OK = {
    "jobInfo": {
        "taskId": "1",
        "userId": "u",
        "taskType": 1,
        "taskStatus": 2,
        "taskResultCode": 2,
        "progress": 100,
        "downloadUrl": "https://example.invalid/a.zip",
        "createTime": "20231212095227",
        "startTime": "20231212095227",
        "endTime": "20231212095300",
    },
    "taskInfos": {"fileId": "f", "status": 2, "srcContainerId": "c"},
    "code": 0,
    "msg": "OK",
}


def test_job_and_share_detail_variants() -> None:
    job = _response_schema("get", "/koodrive/ose/v1/{job_id}", "200")
    share = _response_schema("post", "/koodrive/ose/v1/share/taskDetail", "200")
    info = JOB_DETAIL_OK["data"]["jobInfo"]
    shared = {k: v for k, v in info.items() if k != "status"} | {"taskStatus": 2}
    assert job.is_valid({"data": {"jobInfo": shared}, "code": "0", "msg": ""})
    assert share.is_valid({**SHARE_DETAIL_OK, "jobInfo": info})  # job names from the share page
    assert share.is_valid({**SHARE_DETAIL_OK, "taskInfos": JOB_DETAIL_OK["data"]["taskInfos"]})
    assert not job.is_valid({"data": {"jobInfo": {**info, "taskStatus": 2}}, "code": 0, "msg": ""})
    assert not job.is_valid({"data": {"jobInfo": {**info, "status": 4}}, "code": 0, "msg": ""})
    assert not job.is_valid(
        {"data": {"jobInfo": {**info, "createTime": "2023"}}, "code": 0, "msg": ""}
    )
    bad_file = {"fileId": "f", "status": "9"}
    assert not share.is_valid({**SHARE_DETAIL_OK, "taskInfos": bad_file})
    listed = _response_schema("get", "/koodrive/ose/v1/jobs", "200")
    assert listed.is_valid({"data": [info, shared], "code": 0, "msg": "OK"})
    assert listed.is_valid({"data": [], "code": "0", "msg": "OK"})
    assert not listed.is_valid({"code": 0, "msg": "OK"})


def test_job_list_query_parameters() -> None:
    op = _operations()[("get", "/koodrive/ose/v1/jobs")]
    params = {p["name"]: _resolve(p) for p in op["parameters"] if _resolve(p)["in"] == "query"}
    assert set(params) == {"type", "status", "offset", "limit"}
    assert {n for n, p in params.items() if p.get("required")} == {"offset", "limit"}
    limit, offset = _validator(params["limit"]["schema"]), _validator(params["offset"]["schema"])
    assert limit.is_valid(1) and limit.is_valid(100)
    assert not limit.is_valid(0) and not limit.is_valid(101)
    assert offset.is_valid(0) and not offset.is_valid(-1)
    assert _validator(params["type"]["schema"]).is_valid(7)
    assert not _validator(params["type"]["schema"]).is_valid(8)
    assert not _validator(params["status"]["schema"]).is_valid(4)


def test_page_example_responses_conform() -> None:
    cases = [
        ("post", "/koodrive/ose/v1/task/create", CREATE_TASK_OK),
        ("post", "/koodrive/ose/v1/share/tasks", SHARE_OK),
        ("post", "/koodrive/ose/v1/jobs", JOB_OK),
        ("get", "/koodrive/ose/v1/task/{task_id}", TASK_OK),
        ("get", "/koodrive/ose/v1/task/list", LIST_OK),
        ("get", "/koodrive/ose/v1/{job_id}", JOB_DETAIL_OK),
        ("post", "/koodrive/ose/v1/cancel", CANCEL_OK),
        ("post", "/koodrive/ose/v1/share/taskDetail", SHARE_DETAIL_OK),
    ]
    for method, path, body in cases:
        assert _response_schema(method, path, "200").is_valid(body), path
        assert _response_schema(method, path, "200").is_valid({**body, "code": "0"}), path


def test_list_response_variants() -> None:
    schema = _response_schema("get", "/koodrive/ose/v1/task/list", "200")
    tasks = LIST_OK["taskListDtos"]
    assert schema.is_valid(
        {"taskList": tasks, "nextCursor": "1723549107000", "code": "0", "msg": ""}
    )
    assert schema.is_valid({"taskList": [], "code": 0, "msg": "OK"})  # last page: no cursor
    assert schema.is_valid({"taskListDtos": [], "nextCursor": 17, "code": 0, "msg": "OK"})
    assert not schema.is_valid({"taskList": tasks, "taskListDtos": tasks, "code": 0, "msg": "OK"})
    assert not schema.is_valid({"code": 0, "msg": "OK"})
    assert not schema.is_valid({"taskList": tasks, "nextCursor": None, "code": 0, "msg": "OK"})
    assert not schema.is_valid(
        {"taskList": [{"taskName": "no id", "status": 2}], "code": 0, "msg": ""}
    )


def test_create_responses_need_their_own_id_field() -> None:
    create = _response_schema("post", "/koodrive/ose/v1/task/create", "200")
    jobs = _response_schema("post", "/koodrive/ose/v1/jobs", "200")
    assert not create.is_valid(JOB_OK)  # jobs answers `data`, not `taskId`
    assert not jobs.is_valid(CREATE_TASK_OK)


def test_task_fields() -> None:
    task = _component("Task")
    assert task.is_valid({"taskId": "1", "status": 2, "startTime": "2024-08-12T07:22:33.000Z"})
    assert not task.is_valid({"taskId": "1", "status": 4})
    assert not task.is_valid({"taskId": "1", "status": 3, "resultCode": "13000201"})
    assert not task.is_valid({"taskId": 1534087020903704704, "status": 2})


# --------------------------------------------------------------------------- requests


def test_page_example_requests_conform() -> None:
    create = _body_schema("post", "/koodrive/ose/v1/task/create")
    assert create.is_valid(
        {"taskType": 0, "srcUserId": "1397687227244555008", "dstUserId": "1507947856550550784"}
    )
    share = _body_schema("post", "/koodrive/ose/v1/share/tasks")
    assert share.is_valid(
        {
            "taskType": 2,
            "containerId": "IAABh_RdhS8bOg0cA1684711052660690818",
            "fileIds": ["Fk63FCWhcDAga2puvYKRG1oTMjs-m30sI"],
            "shareId": "1689765568237837824",
            "kdstoken": "aea2968ec8cfac338cd4647f071c44644c491d0a2039cd6c",
            "targetFileId": {
                "fileId": "FhTB_fxx3LRszaivDFX9NN5JRNLnS9Gob",
                "containerId": "IAABh_RdhS8bOg0cA1684711052660690818",
            },
        }
    )
    jobs = _body_schema("post", "/koodrive/ose/v1/jobs")
    assert jobs.is_valid(
        {
            "taskType": 1,
            "actionType": 101,
            "dstContainerId": "IAADfsBFCO6WtAtuA315074383680425b8aa9a130cba2d4",
            "taskInfo": {
                "srcContainerId": "IAADfsBFCO6WtAtuA315074383680425b8aa9a130cba2d4",
                "newFilePath": "Fm9UdqBNTAQDos6l1xPlFnIqXJg2-UdqA",
                "fileInfo": [{"fileId": "FuZmQ66CF0DdpKRG1Y29Iwajbq04Nhwu3"}],
            },
        }
    )


def test_create_task_conditional_rules() -> None:
    schema = _body_schema("post", "/koodrive/ose/v1/task/create")
    assert schema.is_valid({"srcUserId": "a", "dstUserId": "b"})  # taskType absent means 0
    assert schema.is_valid({"taskType": 1, "orgId": "o", "orgUserId": "u", "resultId": "r"})
    assert not schema.is_valid({"taskType": 0, "srcUserId": "a"})
    assert not schema.is_valid({"taskType": 1, "srcUserId": "a", "dstUserId": "b"})
    assert not schema.is_valid({"taskType": 2, "srcUserId": "a", "dstUserId": "b"})
    assert not schema.is_valid({"taskType": 0, "srcUserId": "", "dstUserId": "b"})
    assert not schema.is_valid({"taskType": "0", "srcUserId": "a", "dstUserId": "b"})


def test_share_task_conditional_rules() -> None:
    schema = _body_schema("post", "/koodrive/ose/v1/share/tasks")
    base = {"containerId": "c", "fileIds": ["f"], "shareId": "s"}
    assert schema.is_valid({**base, "taskType": 1, "zipName": "z.zip"})
    assert schema.is_valid({**base, "taskType": 2, "targetFileId": {"fileId": "root"}})
    assert not schema.is_valid({**base, "taskType": 1})
    assert not schema.is_valid({**base, "taskType": 2, "zipName": "z.zip"})
    assert not schema.is_valid({**base, "taskType": 2, "targetFileId": {"containerId": "c"}})
    assert not schema.is_valid({**base, "taskType": 3, "zipName": "z.zip"})
    assert not schema.is_valid({**base, "fileIds": [], "taskType": 1, "zipName": "z"})
    too_many = [f"f{i}" for i in range(1001)]
    assert not schema.is_valid({**base, "fileIds": too_many, "taskType": 1, "zipName": "z"})
    assert schema.is_valid({**base, "fileIds": too_many[:1000], "taskType": 1, "zipName": "z"})
    for key in base:
        partial = {k: v for k, v in base.items() if k != key}
        assert not schema.is_valid({**partial, "taskType": 1, "zipName": "z"}), key


def _job(task_type: int, action: int | None = None, **info: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "taskType": task_type,
        "dstContainerId": "dst",
        "taskInfo": {"srcContainerId": "src", "fileInfo": [{"fileId": "f"}], **info},
    }
    if action is not None:
        body["actionType"] = action
    return body


ALLOWED_PAIRS = {
    1: {None, 101},
    2: {None, 202},  # 201 needs filePath: checked below
    3: {None, 301},
    4: {None},
    5: {None, 501, 502, 503},
    6: {None},
    7: {None, 701},
}
ACTIONS = [None, 101, 201, 202, 301, 501, 502, 503, 701, 999]


@pytest.mark.parametrize("task_type", [0, *ALLOWED_PAIRS, 8])
def test_job_type_action_pairs(task_type: int) -> None:
    schema = _body_schema("post", "/koodrive/ose/v1/jobs")
    for action in ACTIONS:
        ok = action in ALLOWED_PAIRS.get(task_type, set())
        assert schema.is_valid(_job(task_type, action)) is ok, (task_type, action)


def test_job_conditional_rules() -> None:
    schema = _body_schema("post", "/koodrive/ose/v1/jobs")
    recycle_ok = _job(2, 201, fileInfo=[{"fileId": "f", "filePath": "/a/f"}])
    assert schema.is_valid(recycle_ok)
    assert not schema.is_valid(_job(2, 201))  # logical deletion needs filePath
    assert schema.is_valid(_job(5, 503, uncompressFilePaths=["a/b.txt"]))
    assert schema.is_valid(_job(5, 503))  # the page: uncompressFilePaths "Mandatory: No"
    assert not schema.is_valid(_job(5, 503, uncompressFilePaths=[]))
    assert schema.is_valid({**_job(5, 502), "password": "pw"})
    assert not schema.is_valid({**_job(1, 101), "password": "pw"})  # password: taskType 5 only
    assert not schema.is_valid(_job(1, 101, fileInfo=[]))
    assert not schema.is_valid(_job(1, 101, fileInfo=[{"filePath": "/a"}]))
    assert not schema.is_valid({k: v for k, v in _job(1).items() if k != "dstContainerId"})
    assert not schema.is_valid({**_job(1), "taskInfo": {"fileInfo": [{"fileId": "f"}]}})
    # Recycle bin clearance: fileInfo optional, and its entries need no fileId.
    assert schema.is_valid(
        {"taskType": 7, "dstContainerId": "d", "taskInfo": {"srcContainerId": "s"}}
    )
    assert schema.is_valid(_job(7, 701, fileInfo=[{"filePath": "/a"}]))


def test_list_query_parameters() -> None:
    op = _operations()[("get", "/koodrive/ose/v1/task/list")]
    params = {p["name"]: _resolve(p) for p in op["parameters"] if _resolve(p)["in"] == "query"}
    assert set(params) == {"taskType", "status", "pageSize", "pageCursor"}
    assert not any(p.get("required", False) for p in params.values())
    page_size = _validator(params["pageSize"]["schema"])
    assert page_size.is_valid(100) and page_size.is_valid(1)
    assert not page_size.is_valid(101) and not page_size.is_valid(0)
    status = params["status"]
    assert (status.get("style", "form"), status.get("explode", True)) == ("form", True)
    assert _validator(status["schema"]).is_valid([0, 1, 2, 3])
    assert not _validator(status["schema"]).is_valid([4])


# --------------------------------------------------------------------------- sessions

TOKEN_48 = "6ebb6266dd5cdefa1d7126af2eb6173ce0a054d8ba4295be"
SESSION_INFO = {
    "accessToken": "AT 3b911d723003f70a1265124148fdfe486c108b64bf8d0de3",
    "expiresIn": 1800,
    "issuedAt": "1772006999088",
    "refreshToken": "0e0e72d3c7e9e4444df6bc3fb111eaee18eb7b2393a939cb",
}


def test_session_page_examples_and_variants_conform() -> None:
    create = _response_schema("post", "/koodrive/ose/v1/session", "200")
    user = {"accessToken": f"Bearer {TOKEN_48}", "sessionId": "c17c89", "userId": "100860"}
    assert create.is_valid({"data": user, "code": 0, "msg": "success"})
    assert create.is_valid({**user, "code": "0", "msg": "success"})  # the older flat page
    assert not create.is_valid({"data": {"accessToken": "x"}, "code": 0, "msg": "success"})
    assert not create.is_valid({"code": 0, "msg": "success"})
    refresh = _response_schema("post", "/koodrive/ose/v1/session/refresh", "200")
    for token in (f"Bearer+{TOKEN_48}", f"Bearer {TOKEN_48}", TOKEN_48):
        assert refresh.is_valid({"accessToken": token, "code": 0, "msg": "success"})
        assert refresh.is_valid({"data": {"accessToken": token}, "code": 0, "msg": "success"})
    assert not refresh.is_valid({"accessToken": "", "code": 0, "msg": "success"})
    carrier = _response_schema("post", "/koodrive/ose/v1/auth/refreshToken", "200")
    example = {"data": {"sessionInfo": SESSION_INFO}, "code": 0, "msg": "\u6210\u529f"}
    assert carrier.is_valid(example)
    assert carrier.is_valid({"data": SESSION_INFO, "code": "0", "msg": "OK"})  # the table
    assert not carrier.is_valid({"data": {"accessToken": "AT x"}, "code": 0, "msg": "OK"})
    for name in ("CreateSessionResponse", "RefreshSessionResponse", "RefreshTokenResponse"):
        schema = DOC["components"]["schemas"][name]
        assert _component(name).is_valid(schema["example"]), name


def test_session_request_bodies() -> None:
    create = _body_schema("post", "/koodrive/ose/v1/session")
    assert create.is_valid({"code": "Frb", "domain": "kdconsole.example.cn:8080"})
    assert create.is_valid({"code": "Frb"})
    for bad in ({}, {"code": ""}, {"code": "  "}, {"code": 1}, {"code": "x", "domain": 1}):
        assert not create.is_valid(bad), bad
    carrier = _body_schema("post", "/koodrive/ose/v1/auth/refreshToken")
    assert carrier.is_valid({"refreshToken": SESSION_INFO["refreshToken"]})
    for bad in ({}, {"refreshToken": ""}, {"refreshToken": None}):
        assert not carrier.is_valid(bad), bad


# --------------------------------------------------------------------------- served


async def test_emulator_serves_the_document() -> None:
    """GET /_emulator/openapi.json answers this very file, without authentication."""
    async with KooDriveEmulator() as emu, aiohttp.ClientSession() as http:
        async with http.get(f"{emu.url}/_emulator/openapi.json") as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            served = await response.json()
        # An admin route: not part of the API ledger.
        assert emu.requests == []
    assert served == DOC
