"""Batch jobs and share tasks (API-EXTRA.md B and C): detail, list, cancel, files, downloads.

Every test drives the virtual clock (``clock_speed=0`` freezes it between
``advance`` calls) over real loopback sockets; none sleeps.
"""

from __future__ import annotations

import calendar
import io
import json
import re
import time
import zipfile
from typing import Any

import aiohttp
import pytest
from emu_helpers import JOB_ROUTES, PREFIX, SHARE_PACKAGE, SHARE_SAVE, TRANSFER, Api, body, job

from koodrive_async.emulator import CORE_KEY, FaultKind, KooDriveEmulator, ResponseVariant

STAMP = re.compile(r"\d{14}")
SECRET_KDS = "kds-secret-0123456789abcdef"


def files_job(task_type: int, action: int | None, count: int, **info: Any) -> dict[str, Any]:
    """A jobs body acting on ``count`` files F0..F{count-1}."""
    file_info = [{"fileId": f"F{i}", "filePath": f"/a/F{i}"} for i in range(count)]
    return job(task_type, action, fileInfo=file_info, **info)


def share_package(count: int, **changes: Any) -> dict[str, Any]:
    """A share package-download body over ``count`` files."""
    return body(SHARE_PACKAGE, fileIds=[f"S{i}" for i in range(count)], **changes)


async def detail(api: Api, job_id: str) -> Any:
    reply = await api.request("GET", f"{PREFIX}/{job_id}")
    assert reply.status == 200, reply.text
    return reply.json


async def list_jobs(api: Api, **params: Any) -> Any:
    return await api.request("GET", f"{PREFIX}/jobs", params={k: str(v) for k, v in params.items()})


async def cancel(api: Api, job_id: str) -> Any:
    return await api.request("POST", f"{PREFIX}/cancel", json_body={"jobId": job_id})


async def share_detail(api: Api, task_id: str, share_id: str, **extra: Any) -> Any:
    payload = {"taskId": task_id, "shareId": share_id, **extra}
    return await api.request("POST", f"{PREFIX}/share/taskDetail", json_body=payload)


def utc_stamp(epoch: float) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(int(epoch)))


def stamp_epoch(value: str) -> int:
    assert STAMP.fullmatch(value), value
    return calendar.timegm(time.strptime(value, "%Y%m%d%H%M%S"))


# --------------------------------------------------------------------------- job detail


async def test_job_detail_follows_the_timeline(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=10.0, clock_speed=0.0)
    job_id = await api.create("create_job", files_job(1, 101, 3))
    task = emu.state.get(job_id)
    created = task.shown(task.created_at)  # on the wall clock
    first = await detail(api, job_id)
    assert set(first) == {"data", "code", "msg"} and first["code"] == 0
    info = first["data"]["jobInfo"]
    assert info["taskId"] == job_id and info["userId"] == "user-1"
    assert (info["taskType"], info["actionType"], info["status"]) == (1, 101, 0)
    assert info["progress"] == 0 and info["contentNum"] == 3
    assert info["containerId"] == "dst-c" and info["tenantId"] and info["taskName"]
    assert info["createTime"] == utc_stamp(created)
    assert "beginTime" not in info and "endTime" not in info and "taskResultCode" not in info
    assert "downloadUrl" not in info and "uncompressedFileList" not in first["data"]
    infos = first["data"]["taskInfos"]
    assert [(f["fileId"], f["status"], f["srcContainerId"]) for f in infos] == [
        (f"F{i}", "0", "src-c") for i in range(3)
    ]
    assert all("newFileId" not in f for f in infos)

    emu.clock.advance(1.0)  # NEW lasts 10% of the duration
    running = (await detail(api, job_id))["data"]["jobInfo"]
    assert running["status"] == 1 and running["beginTime"] == utc_stamp(created + 1.0)

    emu.clock.advance(9.0)
    done = await detail(api, job_id)
    info = done["data"]["jobInfo"]
    assert (info["status"], info["progress"], info["taskResultCode"]) == (2, 100, 1)
    assert info["endTime"] == utc_stamp(created + 10.0) and "resultCode" not in info
    files = done["data"]["taskInfos"]
    assert [f["status"] for f in files] == ["1", "1", "1"]
    assert all(re.fullmatch(r"F[0-9a-f]{32}", f["newFileId"]) for f in files)  # copies are new
    # The task view (as today) agrees.
    assert (await api.get(job_id)).json["status"] == 2


@pytest.mark.parametrize("owner", ["other-user", "same-user"])
async def test_job_detail_of_no_job_is_a_404(start_emulator, owner) -> None:
    emu, api = await start_emulator()
    job_id = await api.create("create_job")
    task_id = await api.create("create_task")
    share_id = await api.create("create_share_task")
    caller = api.as_user("user-2") if owner == "other-user" else api
    targets = [job_id] if owner == "other-user" else [task_id, share_id, "1", "cancel", "task"]
    for target in targets:
        reply = await caller.request("GET", f"{PREFIX}/{target}")
        assert reply.status == 404, (target, reply.text)
        assert reply.json["code"] == 13000305 and reply.json["msg"]


async def test_job_detail_needs_the_job_headers(start_emulator) -> None:
    emu, api = await start_emulator(tokens={"tok-1"})
    job_id = await api.create("create_job")
    path = f"{PREFIX}/{job_id}"
    assert (await api.request("GET", path, headers=api.headers(Authorization=None))).status == 401
    assert (await api.request("GET", path, headers=api.headers(X_User_Id=None))).status == 400
    assert (await api.request("GET", path, headers=api.headers(X_Date=None))).status == 400
    # No X-Hw-Agentname on the job pages.
    assert (await api.request("GET", path, headers=api.headers(X_Hw_Agentname=None))).status == 200


async def test_job_times_are_written_in_the_configured_zone(start_emulator) -> None:
    emu, api = await start_emulator(job_time_utc_offset=8, clock_speed=0.0)
    job_id = await api.create("create_job")
    info = (await detail(api, job_id))["data"]["jobInfo"]
    assert (
        stamp_epoch(info["createTime"])
        == int((t := emu.state.get(job_id)).shown(t.created_at)) + 8 * 3600
    )


# --------------------------------------------------------------------------- files


async def test_partial_failures_happen_with_a_file_failure_rate(start_emulator) -> None:
    emu, api = await start_emulator(file_failure_rate=0.3, task_duration=5.0, seed=3)
    ids = [await api.create("create_job", files_job(1, 101, 10)) for _ in range(6)]
    emu.clock.advance(5.0)
    results = []
    for job_id in ids:
        data = (await detail(api, job_id))["data"]
        info, files = data["jobInfo"], data["taskInfos"]
        failed = [f for f in files if f["status"] == "2"]
        ok = [f for f in files if f["status"] == "1"]
        assert len(failed) + len(ok) == 10
        assert all("newFileId" not in f for f in failed) and all("newFileId" in f for f in ok)
        expected = 1 if not failed else (3 if not ok else 2)
        assert info["taskResultCode"] == expected
        if failed:
            assert re.fullmatch(r"18\d{6}", str(info["resultCode"]))
            assert isinstance(info["resultCode"], int)
            assert (await api.get(job_id)).json["status"] == 3  # the task view: FAILED
        results.append(expected)
    assert 2 in results  # a seeded share of files failed: partial failures


async def test_a_failed_task_fails_every_file(start_emulator) -> None:
    emu, api = await start_emulator(failure_rate=1.0, task_duration=1.0)
    job_id = await api.create("create_job", files_job(3, 301, 4))
    emu.clock.advance(1.0)
    data = (await detail(api, job_id))["data"]
    assert data["jobInfo"]["taskResultCode"] == 3
    assert {f["status"] for f in data["taskInfos"]} == {"2"}


async def test_progress_rises_in_uneven_steps(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=100.0, clock_speed=0.0, seed=5)
    job_id = await api.create("create_job", files_job(1, 101, 20))
    seen: list[tuple[float, int]] = []
    for second in range(101):
        info = (await detail(api, job_id))["data"]["jobInfo"]
        seen.append((second, info["progress"]))
        assert (info["status"] == 2) == (second >= 100)
        assert (info["progress"] == 100) == (second >= 100)
        emu.clock.advance(1.0)
    values = [p for _, p in seen]
    assert values == sorted(values) and values[0] == 0
    # Files finish at seeded random times: the steps are 5% each, but far from
    # evenly spaced in time (a straight line would be 5% every 4.5 s).
    changes = [t for (t, p), (_, q) in zip(seen, seen[1:], strict=False) if q != p]
    gaps = {b - a for a, b in zip(changes, changes[1:], strict=False)}
    assert len(gaps) > 3
    linear = [min(99, max(0, int((t - 10) / 90 * 100))) for t, _ in seen[:-1]]
    assert max(abs(a - b) for a, b in zip(values, linear, strict=False)) >= 10
    # Each file's done time is its own.
    done_at = [f.done_at for f in emu.state.get(job_id).files]
    assert len(set(done_at)) == 20 and max(done_at) == emu.state.get(job_id).ended_at


async def test_file_draws_do_not_shift_later_outcomes(start_emulator) -> None:
    outcomes = []
    for count in (1, 40):
        emu, api = await start_emulator(failure_rate=0.5, file_failure_rate=0.5, seed=9)
        await api.create("create_job", files_job(1, 101, count))
        ids = [await api.create("create_task") for _ in range(8)]
        outcomes.append([(emu.state.get(i).will_fail, emu.state.get(i).duration) for i in ids])
    assert outcomes[0] == outcomes[1]


async def test_same_seed_same_file_timeline(start_emulator) -> None:
    timelines = []
    for _ in range(2):
        emu, api = await start_emulator(file_failure_rate=0.4, seed=21, task_duration=30.0)
        job_id = await api.create("create_job", files_job(1, 101, 12))
        task = emu.state.get(job_id)
        timelines.append([(f.done_at - task.created_at, f.failed) for f in task.files])
    assert [failed for _, failed in timelines[0]] == [failed for _, failed in timelines[1]]
    assert [t for t, _ in timelines[0]] == pytest.approx([t for t, _ in timelines[1]])


async def test_decompression_lists_the_extracted_files(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=1.0, clock_speed=0.0)
    partial = await api.create("create_job", job(5, 503, uncompressFilePaths=["a/b.txt", "c.txt"]))
    full = await api.create("create_job", job(5, 502))
    assert (await detail(api, partial))["data"]["uncompressedFileList"] == []
    emu.clock.advance(1.0)
    listed = (await detail(api, partial))["data"]["uncompressedFileList"]
    assert [(e["name"], e["type"], e["code"]) for e in listed] == [
        ("a/b.txt", "1", "0"),
        ("c.txt", "1", "0"),
    ]
    assert all(e["updateAt"].isdigit() and e["fileSize"].isdigit() for e in listed)
    names = {
        e["name"]: e["type"] for e in (await detail(api, full))["data"]["uncompressedFileList"]
    }
    assert names == {"F1/readme.txt": "1", "F1/docs": "2"}


async def test_forced_finish_decides_every_file(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=50.0, clock_speed=0.0)
    good = await api.create("create_job", files_job(1, 101, 3))
    bad = await api.create("create_job", files_job(1, 101, 3))
    emu.state.finish(good)
    emu.state.finish(bad, failed=True)
    assert (await detail(api, good))["data"]["jobInfo"]["taskResultCode"] == 1
    data = (await detail(api, bad))["data"]
    assert data["jobInfo"]["status"] == 2 and data["jobInfo"]["taskResultCode"] == 3
    assert {f["status"] for f in data["taskInfos"]} == {"2"}


# --------------------------------------------------------------------------- cancel


async def test_cancel_a_pending_job(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=10.0, clock_speed=0.0)
    job_id = await api.create("create_job", files_job(1, 101, 2))
    reply = await cancel(api, job_id)
    assert reply.status == 200 and reply.json == {"code": 0, "msg": reply.json["msg"]}
    emu.clock.advance(20.0)  # the timeline no longer moves it
    info = (await detail(api, job_id))["data"]["jobInfo"]
    assert info["status"] == 3 and info["progress"] == 0
    assert "beginTime" not in info and "taskResultCode" not in info
    assert info["endTime"] == utc_stamp((t := emu.state.get(job_id)).shown(t.created_at))
    assert (await api.get(job_id)).json["status"] == 3  # the task view: FAILED


async def test_cancel_a_processing_job_keeps_the_files_already_done(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=100.0, clock_speed=0.0, seed=2)
    job_id = await api.create("create_job", files_job(1, 101, 10))
    emu.clock.advance(50.0)
    before = (await detail(api, job_id))["data"]
    assert before["jobInfo"]["status"] == 1
    assert (await cancel(api, job_id)).status == 200
    emu.clock.advance(60.0)
    after = (await detail(api, job_id))["data"]
    assert after["jobInfo"]["status"] == 3 and "beginTime" in after["jobInfo"]
    assert after["jobInfo"]["progress"] == before["jobInfo"]["progress"]
    assert [f["status"] for f in after["taskInfos"]] == [f["status"] for f in before["taskInfos"]]
    assert "0" in {f["status"] for f in after["taskInfos"]}  # some never ran
    emu.state.finish(job_id)  # a cancelled job stays cancelled
    assert (await detail(api, job_id))["data"]["jobInfo"]["status"] == 3


async def test_cancel_is_refused_once_over(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=1.0, clock_speed=0.0)
    done = await api.create("create_job")
    cancelled = await api.create("create_job")
    assert (await cancel(api, cancelled)).status == 200
    emu.clock.advance(1.0)
    for job_id in (done, cancelled):
        reply = await cancel(api, job_id)
        assert reply.status == 400 and reply.json["code"] == 13000102 and reply.json["msg"]
    assert (await detail(api, done))["data"]["jobInfo"]["status"] == 2


async def test_cancel_of_no_job_or_a_bad_body_is_a_400(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=5.0)
    job_id = await api.create("create_job")
    task_id = await api.create("create_task")
    for target, caller in ((job_id, api.as_user("user-2")), (task_id, api), ("404", api)):
        reply = await cancel(caller, target)
        assert reply.status == 400 and reply.json["code"] == 13000309, reply.text
    path = f"{PREFIX}/cancel"
    for bad in ({}, {"jobId": ""}, {"jobId": 5}, [job_id]):
        reply = await api.request("POST", path, json_body=bad)
        assert reply.status == 400 and reply.json["code"] in (13000101, 13000102), bad
    assert (await api.request("POST", path)).json["code"] == 13000101
    assert emu.state.get(job_id).cancelled is False


async def test_cancel_acted_on_although_answered_500(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=5.0, clock_speed=0.0)
    job_id = await api.create("create_job")
    emu.inject(FaultKind.CREATED_BUT_500, route="cancel_job", count=1)
    assert (await cancel(api, job_id)).status == 500
    assert (await detail(api, job_id))["data"]["jobInfo"]["status"] == 3
    # A repeat finds it cancelled: a refusal the client can read as success.
    assert (await cancel(api, job_id)).json["msg"] == "the job is already cancelled"


# --------------------------------------------------------------------------- list


async def test_list_jobs_pages_by_offset_and_limit(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=5.0)
    ids = [await api.create("create_job") for _ in range(7)]
    await api.create("create_task")
    await api.create("create_share_task")
    await api.as_user("user-2").create("create_job")
    pages = []
    for offset in range(0, 9, 3):
        reply = await list_jobs(api, offset=offset, limit=3)
        assert reply.status == 200 and reply.json["code"] == 0
        pages.append([item["taskId"] for item in reply.json["data"]])
    assert pages == [ids[0:3], ids[3:6], ids[6:7]]
    assert (await list_jobs(api, offset=100, limit=100)).json["data"] == []
    item = (await list_jobs(api, offset=0, limit=1)).json["data"][0]
    assert item == (await detail(api, ids[0]))["data"]["jobInfo"]


async def test_list_jobs_filters_by_type_and_status(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=10.0, clock_speed=0.0)
    copy = await api.create("create_job", files_job(1, 101, 1))
    move = await api.create("create_job", files_job(3, 301, 1))
    emu.clock.advance(5.0)
    late = await api.create("create_job", files_job(1, 101, 1))
    cancelled = await api.create("create_job", files_job(2, 202, 1))
    await cancel(api, cancelled)

    async def ids(**params: Any) -> list[str]:
        reply = await list_jobs(api, offset=0, limit=100, **params)
        assert reply.status == 200, reply.text
        return [item["taskId"] for item in reply.json["data"]]

    assert await ids(type=1) == [copy, late]
    assert await ids(type=3) == [move]
    assert await ids(status=0) == [late]
    assert await ids(status=1) == [copy, move]
    assert await ids(status=3) == [cancelled]
    assert await ids(type=1, status=1) == [copy]
    emu.clock.advance(10.0)
    assert await ids(status=2) == [copy, move, late]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 10},
        {"offset": 0},
        {"offset": -1, "limit": 10},
        {"offset": 0, "limit": 0},
        {"offset": 0, "limit": 101},
        {"offset": "x", "limit": 10},
        {"offset": 0, "limit": 10, "type": 0},
        {"offset": 0, "limit": 10, "type": 8},
        {"offset": 0, "limit": 10, "status": 4},
        {"offset": 0, "limit": 10, "status": "1,2"},
    ],
)
async def test_list_jobs_refuses_out_of_range_queries(api, params) -> None:
    reply = await list_jobs(api, **params)
    assert reply.status == 400, reply.text
    assert reply.json["code"] == 13000102 and reply.json["msg"]


@pytest.mark.parametrize("limit", [1, 100])
async def test_list_jobs_accepts_the_limit_bounds(api, limit) -> None:
    assert (await list_jobs(api, offset=0, limit=limit)).status == 200


# --------------------------------------------------------------------------- share detail


async def test_share_detail_follows_the_timeline(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=10.0, clock_speed=0.0)
    task_id = await api.create("create_share_task", body(SHARE_SAVE, fileIds=["A", "B"]))
    share_id = SHARE_SAVE["shareId"]
    task = emu.state.get(task_id)
    created = task.shown(task.created_at)
    first = await share_detail(api, task_id, share_id, kdstoken=SHARE_SAVE["kdstoken"])
    assert first.status == 200, first.text
    assert set(first.json) == {"jobInfo", "taskInfos", "code", "msg"}
    info = first.json["jobInfo"]
    assert (info["taskId"], info["userId"], info["taskType"]) == (task_id, "user-1", 2)
    assert (info["taskStatus"], info["progress"]) == (0, 0) and "status" not in info
    assert info["createTime"] == utc_stamp(created)
    emu.clock.advance(1.0)
    info = (await share_detail(api, task_id, share_id)).json["jobInfo"]
    assert info["taskStatus"] == 1 and info["startTime"] == utc_stamp(created + 1.0)
    assert "beginTime" not in info
    emu.clock.advance(9.0)
    done = (await share_detail(api, task_id, share_id)).json
    assert (done["jobInfo"]["taskStatus"], done["jobInfo"]["taskResultCode"]) == (2, 1)
    assert done["jobInfo"]["endTime"] == utc_stamp(created + 10.0)
    assert "downloadUrl" not in done["jobInfo"]  # save-to: no package
    files = done["taskInfos"]
    assert [(f["fileId"], f["status"]) for f in files] == [("A", "1"), ("B", "1")]
    assert all(f["srcContainerId"] == SHARE_SAVE["containerId"] and f["newFileId"] for f in files)


async def test_share_detail_needs_the_agent_header(start_emulator) -> None:
    emu, api = await start_emulator()
    task_id = await api.create("create_share_task")
    payload = {"taskId": task_id, "shareId": SHARE_SAVE["shareId"]}
    path = f"{PREFIX}/share/taskDetail"
    reply = await api.request(
        "POST", path, json_body=payload, headers=api.headers(X_Hw_Agentname=None)
    )
    assert reply.status == 400 and "X-Hw-Agentname" in reply.json["msg"]
    reply = await api.request(
        "POST", path, json_body=payload, headers=api.headers(Authorization=None)
    )
    assert reply.status == 401


async def test_share_detail_of_no_share_task_is_a_404(start_emulator) -> None:
    emu, api = await start_emulator()
    task_id = await api.create("create_share_task")
    job_id = await api.create("create_job")
    share_id = SHARE_SAVE["shareId"]
    for caller, target, share in (
        (api.as_user("user-2"), task_id, share_id),
        (api, task_id, "another-share"),
        (api, job_id, share_id),
        (api, "1", share_id),
    ):
        reply = await share_detail(caller, target, share)
        assert reply.status == 404 and reply.json["code"] == 13000305, reply.text


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"taskId": "1"},
        {"shareId": "s"},
        {"taskId": 1, "shareId": "s"},
        {"taskId": "1", "shareId": ""},
    ],
)
async def test_share_detail_body_rules(api, payload) -> None:
    reply = await api.request("POST", f"{PREFIX}/share/taskDetail", json_body=payload)
    assert reply.status == 400 and reply.json["code"] == 13000102, reply.text


async def test_kdstoken_is_checked_and_never_kept(start_emulator) -> None:
    emu, api = await start_emulator()
    task_id = await api.create("create_share_task", body(SHARE_SAVE, kdstoken=SECRET_KDS))
    share_id = SHARE_SAVE["shareId"]
    assert (await share_detail(api, task_id, share_id, kdstoken=SECRET_KDS)).status == 200
    assert (await share_detail(api, task_id, share_id)).status == 200  # optional on the page
    wrong = await share_detail(api, task_id, share_id, kdstoken=SECRET_KDS + "-wrong")
    assert wrong.status == 400 and SECRET_KDS not in wrong.text
    assert [e.body.get("kdstoken") for e in emu.requests] == ["***", "***", None, "***"]
    dumped = (await api.request("GET", "/_emulator/requests")).text
    tasks = (await api.request("GET", "/_emulator/tasks")).text
    for text in (dumped, tasks, repr(emu.requests), repr(emu.state.tasks())):
        assert SECRET_KDS not in text


# --------------------------------------------------------------------------- downloads


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes, Any]:
    async with http.get(url) as resp:  # no Authorization: a capability link
        return resp.status, await resp.read(), resp.headers


async def test_package_job_links_a_real_zip(start_emulator, http) -> None:
    emu, api = await start_emulator(
        task_duration=2.0, clock_speed=0.0, file_failure_rate=0.5, seed=4
    )
    job_id = await api.create("create_job", files_job(6, None, 6))
    assert "downloadUrl" not in (await detail(api, job_id))["data"]["jobInfo"]
    emu.clock.advance(2.0)
    data = (await detail(api, job_id))["data"]
    assert data["jobInfo"]["taskResultCode"] == 2  # the seed fails some files
    url = data["jobInfo"]["downloadUrl"]
    assert url.startswith(f"{emu.url}/_emulator/downloads/{job_id}.zip?token=")
    emu.clear_requests()
    status, raw, headers = await fetch(http, url)
    assert status == 200 and headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        assert archive.testzip() is None
        packed = sorted(archive.namelist())
        assert archive.read(packed[0]).decode().startswith("placeholder")
    succeeded = sorted(f"{f['fileId']}.txt" for f in data["taskInfos"] if f["status"] == "1")
    assert packed == succeeded
    assert emu.requests == []  # a download is no API call
    # The same link lists the package in the job list too.
    assert (await list_jobs(api, offset=0, limit=1)).json["data"][0]["downloadUrl"] == url


async def test_package_share_task_links_a_zip_named_after_the_request(start_emulator, http) -> None:
    emu, api = await start_emulator(task_duration=1.0, clock_speed=0.0)
    task_id = await api.create("create_share_task", share_package(3, zipName="holiday photos"))
    emu.clock.advance(1.0)
    info = (await share_detail(api, task_id, SHARE_PACKAGE["shareId"])).json["jobInfo"]
    status, raw, headers = await fetch(http, info["downloadUrl"])
    assert status == 200
    assert headers["Content-Disposition"] == 'attachment; filename="holiday photos.zip"'
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        assert sorted(archive.namelist()) == ["S0.txt", "S1.txt", "S2.txt"]


async def test_download_links_cannot_be_guessed_or_used_early(start_emulator, http) -> None:
    emu, api = await start_emulator(task_duration=5.0, clock_speed=0.0)
    job_id = await api.create("create_job", files_job(6, None, 1))
    emu.state.finish(job_id)
    url = (await detail(api, job_id))["data"]["jobInfo"]["downloadUrl"]
    base = url.split("?")[0]
    for bad in (base, f"{base}?token=0", url.replace(job_id, "1")):
        assert (await fetch(http, bad))[0] == 403, bad
    other = await api.create("create_job", files_job(6, None, 1))  # not done yet
    token_url = url.replace(job_id, other)
    assert (await fetch(http, token_url))[0] == 403  # each link is signed for its task
    failed = await api.create("create_job", files_job(6, None, 1))
    emu.state.finish(failed, failed=True)
    assert "downloadUrl" not in (await detail(api, failed))["data"]["jobInfo"]
    async with KooDriveEmulator() as another:  # another instance, another key
        assert (await fetch(http, url.replace(emu.url, another.url)))[0] == 403


# --------------------------------------------------------------------------- variants and options


async def test_detail_names_variant(start_emulator) -> None:
    for names, keys in (("job", ("status", "beginTime")), ("share", ("taskStatus", "startTime"))):
        emu, api = await start_emulator(
            task_duration=1.0, response_variant=ResponseVariant(detail_names=names)
        )
        job_id = await api.create("create_job")
        share_id = await api.create("create_share_task")
        emu.clock.advance(1.0)
        job_info = (await detail(api, job_id))["data"]["jobInfo"]
        share_info = (await share_detail(api, share_id, SHARE_SAVE["shareId"])).json["jobInfo"]
        for info in (job_info, share_info):
            assert set(keys) <= set(info), (names, info)
            assert not {"status", "taskStatus", "beginTime", "startTime"} - set(keys) & set(info)


async def test_file_status_int_and_single_object_variants(start_emulator) -> None:
    variant = ResponseVariant(file_status_as="int", task_infos_as="object", code_as="str")
    emu, api = await start_emulator(task_duration=1.0, response_variant=variant)
    one = await api.create("create_job", files_job(1, 101, 1))
    two = await api.create("create_job", files_job(1, 101, 2))
    share = await api.create("create_share_task")
    emu.clock.advance(1.0)
    single = await detail(api, one)
    assert single["code"] == "0"
    assert (
        isinstance(single["data"]["taskInfos"], dict) and single["data"]["taskInfos"]["status"] == 1
    )
    several = (await detail(api, two))["data"]["taskInfos"]
    assert isinstance(several, list) and [f["status"] for f in several] == [1, 1]
    share_infos = (await share_detail(api, share, SHARE_SAVE["shareId"])).json["taskInfos"]
    assert share_infos["fileId"] == SHARE_SAVE["fileIds"][0]
    refused = await cancel(api, one)
    assert refused.status == 400 and refused.json["code"] == "13000102"


async def test_task_routes_can_hide_jobs_and_share_tasks(start_emulator) -> None:
    emu, api = await start_emulator(task_routes_show_jobs=False)
    task_id = await api.create("create_task", TRANSFER)
    job_id = await api.create("create_job")
    share_id = await api.create("create_share_task")
    assert (await api.get(task_id)).status == 200
    for hidden in (job_id, share_id):
        assert (await api.get(hidden)).status == 404
    assert [t["taskId"] for t in (await api.list()).json["taskListDtos"]] == [task_id]
    assert (await detail(api, job_id))["data"]["jobInfo"]["taskId"] == job_id


async def test_task_routes_show_jobs_by_default(start_emulator) -> None:
    emu, api = await start_emulator()
    job_id = await api.create("create_job")
    share_id = await api.create("create_share_task")
    assert (await api.get(job_id)).status == 200 and (await api.get(share_id)).status == 200
    assert len((await api.list()).json["taskListDtos"]) == 2


async def test_job_detail_is_serialised_once_per_change(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=10.0, clock_speed=0.0)
    job_id = await api.create("create_job", files_job(1, 101, 4))
    first = await api.request("GET", f"{PREFIX}/{job_id}")
    core = emu.app[CORE_KEY]
    rendered = core.rendered_details[job_id][1]
    again = await api.request("GET", f"{PREFIX}/{job_id}")
    assert first.text == again.text and core.rendered_details[job_id][1] is rendered
    emu.clock.advance(10.0)
    assert json.loads((await api.request("GET", f"{PREFIX}/{job_id}")).text) != first.json


# --------------------------------------------------------------------------- faults


async def valid_request(api: Api, route: str) -> tuple[str, str, Any, Any]:
    """(method, path, json body, params) of a valid request to one of JOB_ROUTES."""
    method, path, _ = JOB_ROUTES[route]
    if route == "list_jobs":
        return method, path, None, {"offset": "0", "limit": "10"}
    if route == "get_share_task":
        task_id = await api.create("create_share_task")
        return method, path, {"taskId": task_id, "shareId": SHARE_SAVE["shareId"]}, None
    job_id = await api.create("create_job")
    if route == "cancel_job":
        return method, path, {"jobId": job_id}, None
    return method, path.format(job_id=job_id), None, None


@pytest.mark.parametrize("route", sorted(JOB_ROUTES))
@pytest.mark.parametrize(
    ("kind", "status"),
    [(FaultKind.RATE_LIMIT, 429), (FaultKind.SERVER_ERROR, 500), (FaultKind.BAD_GATEWAY_HTML, 502)],
)
async def test_faults_reach_the_new_routes(start_emulator, route, kind, status) -> None:
    emu, api = await start_emulator(task_duration=60.0)
    method, path, payload, params = await valid_request(api, route)
    kwargs: dict[str, Any] = {"params": params}
    if payload is not None:
        kwargs["json_body"] = payload
    fault = emu.inject(kind, route=route, count=1)
    assert (await api.request(method, path, **kwargs)).status == status
    assert fault.hits == 1 and emu.requests[-1].route == route
    assert (await api.request(method, path, **kwargs)).status == 200


@pytest.mark.parametrize("route", sorted(JOB_ROUTES))
async def test_malformed_json_on_the_new_routes(start_emulator, route) -> None:
    emu, api = await start_emulator(task_duration=60.0)
    method, path, payload, params = await valid_request(api, route)
    kwargs: dict[str, Any] = {"params": params}
    if payload is not None:
        kwargs["json_body"] = payload
    emu.inject(FaultKind.MALFORMED_JSON, route=route, count=1)
    reply = await api.request(method, path, **kwargs)
    assert reply.status == 200 and reply.json is None and reply.text
