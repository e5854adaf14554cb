"""Body rules of the three creates: every documented variant accepted, every violation a 400."""

from __future__ import annotations

import pytest
from emu_helpers import DROP, IMPORT, JOB_COPY, SHARE_PACKAGE, SHARE_SAVE, TRANSFER, body, job

# ---------------------------------------------------------------- accepted

VALID = {
    "create_task": [
        TRANSFER,
        body(TRANSFER, taskType=DROP),  # taskType is optional: absent means 0 (transfer)
        body(TRANSFER, resultId=None, orgId="ignored-for-0"),
        IMPORT,
        body(IMPORT, resultId=DROP),
        body(TRANSFER, unknownField={"nested": [1, 2]}),
    ],
    "create_share_task": [
        SHARE_SAVE,
        body(SHARE_SAVE, kdstoken=DROP),
        body(SHARE_SAVE, targetFileId={"fileId": "root"}),
        body(SHARE_SAVE, targetFileId={"fileId": "root", "containerId": "c"}),
        SHARE_PACKAGE,
        body(SHARE_PACKAGE, fileIds=[f"F{i}" for i in range(1000)]),
        body(SHARE_PACKAGE, targetFileId={"fileId": "x"}),
    ],
    "create_job": [
        JOB_COPY,
        body(JOB_COPY, actionType=DROP),
        *[job(t) for t in range(1, 8)],  # actionType absent is allowed for every type
        job(1, 101),
        job(2, 201),
        job(2, 202),
        job(2, 202, fileInfo=[{"fileId": "F1"}]),  # filePath only needed for 201
        job(3, 301),
        job(4, None),
        job(5, 501),
        job(5, 502),
        job(5, 503, uncompressFilePaths=["/a/b.txt"]),
        {**job(5, 502), "password": "s3cret"},
        {**job(1, 101), "password": "ignored"},
        job(6, None, fileInfo=[{"fileId": "F1"}, {"fileId": "F2"}]),
        job(7, 701, fileInfo=[]),
        job(7, 701, fileInfo=[{}]),
        {"taskType": 7, "dstContainerId": "d", "taskInfo": {"srcContainerId": "s"}},
        job(1, 101, newFilePath="Fm9Ud", fileInfo=[{"fileId": "F1"}]),
    ],
}

VALID_CASES = [(route, b) for route, bodies in VALID.items() for b in bodies]


@pytest.mark.parametrize(("route", "payload"), VALID_CASES)
async def test_valid_bodies_create_a_task(api, koodrive_emulator, route, payload) -> None:
    task_id = await api.create(route, payload)
    assert task_id.isdigit() and len(task_id) == 19
    task = koodrive_emulator.state.get(task_id)
    assert task is not None and task.route == route
    assert task.task_type == payload.get("taskType", 0)
    reply = await api.get(task_id)
    assert reply.status == 200 and reply.json["taskId"] == task_id


async def test_response_shapes_of_the_three_creates(api) -> None:
    reply = await api.call("create_task")
    assert set(reply.json) == {"taskId", "code", "msg"}
    assert isinstance(reply.json["taskId"], str)
    reply = await api.call("create_share_task")
    assert set(reply.json) == {"taskId", "code", "msg"}
    reply = await api.call("create_job")
    assert set(reply.json) == {"data", "code", "msg"}
    assert isinstance(reply.json["data"], str)


# ---------------------------------------------------------------- refused

INVALID = {
    "create_task": [
        body(TRANSFER, taskType=2),
        body(TRANSFER, taskType=-1),
        body(TRANSFER, taskType="0"),
        body(TRANSFER, taskType=True),
        body(TRANSFER, taskType=0.0),
        body(TRANSFER, srcUserId=DROP),
        body(TRANSFER, dstUserId=DROP),
        body(TRANSFER, srcUserId=None),
        body(TRANSFER, srcUserId=""),
        body(TRANSFER, srcUserId=1397687227244555008),
        body(TRANSFER, dstUserId=["x"]),
        body(TRANSFER, taskType=DROP, dstUserId=DROP),
        body(TRANSFER, resultId=5),
        body(IMPORT, orgId=DROP),
        body(IMPORT, orgUserId=DROP),
        body(IMPORT, orgUserId=""),
        body(IMPORT, orgId=7),
        body(IMPORT, resultId={"a": 1}),
        {"taskType": 1, "srcUserId": "a", "dstUserId": "b"},
        {},
    ],
    "create_share_task": [
        body(SHARE_SAVE, taskType=DROP),
        body(SHARE_SAVE, taskType=0),
        body(SHARE_SAVE, taskType=3),
        body(SHARE_SAVE, taskType="2"),
        body(SHARE_SAVE, taskType=False),
        body(SHARE_SAVE, containerId=DROP),
        body(SHARE_SAVE, containerId=""),
        body(SHARE_SAVE, containerId=12),
        body(SHARE_SAVE, shareId=DROP),
        body(SHARE_SAVE, shareId=1689765568237837824),
        body(SHARE_SAVE, fileIds=DROP),
        body(SHARE_SAVE, fileIds=[]),
        body(SHARE_SAVE, fileIds="F1"),
        body(SHARE_SAVE, fileIds=[1, 2]),
        body(SHARE_SAVE, fileIds=["F1", None]),
        body(SHARE_SAVE, fileIds=["F1", ""]),
        body(SHARE_SAVE, fileIds=[f"F{i}" for i in range(1001)]),
        body(SHARE_SAVE, targetFileId=DROP),
        body(SHARE_SAVE, targetFileId="root"),
        body(SHARE_SAVE, targetFileId={}),
        body(SHARE_SAVE, targetFileId={"containerId": "c"}),
        body(SHARE_SAVE, targetFileId={"fileId": 5}),
        body(SHARE_SAVE, targetFileId={"fileId": "root", "containerId": 5}),
        body(SHARE_SAVE, kdstoken=123),
        body(SHARE_PACKAGE, zipName=DROP),
        body(SHARE_PACKAGE, zipName=""),
        body(SHARE_PACKAGE, zipName=["a.zip"]),
        body(SHARE_PACKAGE, targetFileId="not-an-object"),
    ],
    "create_job": [
        body(JOB_COPY, taskType=DROP),
        body(JOB_COPY, taskType=0),
        body(JOB_COPY, taskType=8),
        body(JOB_COPY, taskType="1"),
        body(JOB_COPY, taskType=1.0),
        body(JOB_COPY, taskType=True),
        body(JOB_COPY, actionType=201),
        body(JOB_COPY, actionType="101"),
        body(JOB_COPY, actionType=True),
        job(1, 102),
        job(2, 101),
        job(2, 301),
        job(3, 302),
        job(4, 401),
        job(4, 101),
        job(5, 504),
        job(5, 701),
        job(6, 601),
        job(6, 101),
        job(7, 702),
        job(7, 101),
        body(JOB_COPY, dstContainerId=DROP),
        body(JOB_COPY, dstContainerId=""),
        body(JOB_COPY, dstContainerId=42),
        body(JOB_COPY, taskInfo=DROP),
        body(JOB_COPY, taskInfo=[]),
        body(JOB_COPY, taskInfo="x"),
        body(JOB_COPY, password=1234),
        job(1, 101, srcContainerId=None),
        job(1, 101, srcContainerId=""),
        job(1, 101, srcContainerId=5),
        job(1, 101, fileInfo=None),
        job(1, 101, fileInfo=[]),
        job(1, 101, fileInfo={"fileId": "F1"}),
        job(1, 101, fileInfo=["F1"]),
        job(1, 101, fileInfo=[{}]),
        job(1, 101, fileInfo=[{"filePath": "/a"}]),
        job(1, 101, fileInfo=[{"fileId": ""}]),
        job(1, 101, fileInfo=[{"fileId": 3}]),
        job(1, 101, fileInfo=[{"fileId": "F1"}, {"fileId": None}]),
        job(1, 101, fileInfo=[{"fileId": "F1", "filePath": 9}]),
        job(2, 201, fileInfo=[{"fileId": "F1"}]),
        job(2, 201, fileInfo=[{"fileId": "F1", "filePath": "/a"}, {"fileId": "F2"}]),
        job(2, 201, fileInfo=[{"fileId": "F1", "filePath": ""}]),
        job(3, None, fileInfo=[]),
        job(4, None, fileInfo=None),
        job(5, 503, uncompressFilePaths="a.txt"),
        job(5, 503, uncompressFilePaths=[1]),
        job(1, 101, newFilePath=5),
        job(7, 701, fileInfo="none"),
        job(7, 701, fileInfo=[{"fileId": 5}]),
        job(7, 701, srcContainerId=None),
        {"taskType": 7, "taskInfo": {"srcContainerId": "s"}},
    ],
}

INVALID_CASES = [
    pytest.param(route, b, id=f"{route}-{i}")
    for route, bodies in INVALID.items()
    for i, b in enumerate(bodies)
]


@pytest.mark.parametrize(("route", "payload"), INVALID_CASES)
async def test_rule_violations_are_400_parameter_invalid(
    api, koodrive_emulator, route, payload
) -> None:
    reply = await api.call(route, json_body=payload)
    assert reply.status == 400, reply.text
    assert set(reply.json) == {"code", "msg"}
    assert reply.json["code"] == 13000102
    assert reply.json["msg"]
    assert koodrive_emulator.state.tasks() == []
    assert koodrive_emulator.requests[-1].status == 400


@pytest.mark.parametrize("route", ["create_task", "create_share_task", "create_job"])
@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"{",
        b'{"taskType": 0,}',
        b"{'taskType': 0}",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'"a string"',
        b"42",
        b"null",
        b"true",
        b"[" * 100_000,
        b'{"taskType": 0 "srcUserId": "a"}',  # the pages' own missing comma
    ],
)
async def test_unparseable_bodies_are_400_bad_request(api, koodrive_emulator, route, raw) -> None:
    reply = await api.call(
        route, data=raw, headers={**api.headers(), "Content-Type": "application/json"}
    )
    assert reply.status == 400, reply.text
    assert reply.json["code"] == 13000101
    assert koodrive_emulator.state.tasks() == []
    assert koodrive_emulator.internal_errors == 0


async def test_body_without_content_type_is_still_read_as_json(api, koodrive_emulator) -> None:
    reply = await api.call("create_task", data=b'{"srcUserId": "a", "dstUserId": "b"}')
    assert reply.status == 200, reply.text
    assert len(koodrive_emulator.state.tasks()) == 1


async def test_headers_are_checked_before_the_body(api) -> None:
    reply = await api.call("create_task", data=b"{", headers=api.headers(X_Date=None))
    assert reply.status == 400
    assert "X-Date" in reply.json["msg"]
