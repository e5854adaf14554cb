"""Batch jobs and share tasks through the session (API-EXTRA.md B and C), against the emulator.

get_job, list_jobs, iter_jobs, cancel_job and get_share_task over real
loopback sockets; the emulator's clock is frozen (``speed = 0``) and moved
with ``advance``, so no test sleeps. Answer shapes the emulator cannot send
come from a small server written in the test.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp import web
from client_helpers import custom_server, make_session

from koodrive_async import (
    BadRequestError,
    FileInfo,
    FileResult,
    FileStatus,
    InvalidRequestError,
    Job,
    JobAction,
    JobRequest,
    JobResult,
    JobStatus,
    JobType,
    KooDriveSession,
    NotFoundError,
    ResponseValidationError,
    ShareTask,
    ShareTaskRequest,
    ShareTaskType,
    State,
    Task,
    TaskStatus,
)
from koodrive_async._codec import parse_stamp
from koodrive_async._models import job_state
from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator, ResponseVariant

KDS = "kds-secret-0123456789abcdef"
SHARE = "share-1"


def copy_job(count: int = 3, task_type: JobType = JobType.COPY) -> JobRequest:
    action = {JobType.COPY: JobAction.COPY, JobType.MOVE: JobAction.MOVE}.get(task_type)
    files = [FileInfo(f"F{i}", f"/a/F{i}") for i in range(count)]
    return JobRequest(task_type, "src-c", "dst-c", files, action_type=action)


def share_request(
    task_type: ShareTaskType = ShareTaskType.PACKAGE, count: int = 2
) -> ShareTaskRequest:
    return ShareTaskRequest(
        task_type,
        container_id="share-c",
        file_ids=[f"S{i}" for i in range(count)],
        share_id=SHARE,
        kdstoken=KDS,
        zip_name="pack" if task_type is ShareTaskType.PACKAGE else None,
        target=None,
    )


@pytest.fixture
async def emu() -> AsyncIterator[KooDriveEmulator]:
    async with KooDriveEmulator(EmulatorConfig(task_duration=10.0, seed=1)) as emulator:
        emulator.clock.speed = 0.0
        yield emulator


@pytest.fixture
async def session(emu: KooDriveEmulator) -> AsyncIterator[KooDriveSession]:
    async with make_session(emu.url) as s:
        yield s


async def started(config: EmulatorConfig) -> KooDriveEmulator:
    emulator = KooDriveEmulator(config)
    await emulator.start()
    emulator.clock.speed = 0.0
    return emulator


# --------------------------------------------------------------------------- get_job


async def test_get_job_follows_the_job_through_its_life(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    job_id = await session.submit(copy_job(3))
    task = emu.state.get(job_id)
    created = task.shown(task.created_at)
    job = await session.get_job(job_id)
    assert isinstance(job, Job) and job.job_id == job.task_id == job_id
    assert (job.task_type, job.action_type, job.status) == (
        JobType.COPY,
        JobAction.COPY,
        JobStatus.PENDING,
    )
    assert job.state is State.NEW and not job.is_terminal and job.result is None
    assert job.file_count == 3 and job.container_id == "dst-c" and job.user_id == "user-1"
    assert job.create_time == datetime.fromtimestamp(int(created), UTC)
    assert [(f.file_id, f.status) for f in job.files] == [
        (f"F{i}", FileStatus.PENDING) for i in range(3)
    ]
    emu.clock.advance(1.0)
    running = await session.get_job(job_id)
    assert running.state is State.EXECUTING and running.start_time is not None
    emu.clock.advance(9.0)
    done = await session.get_job(job_id)
    assert done.state is State.SUCCESS and done.succeeded and done.is_terminal
    assert (done.result, done.progress) == (JobResult.ALL_SUCCEEDED, 100)
    assert all(f.succeeded and f.new_file_id for f in done.files) and done.failed_files == ()
    assert done.end_time == datetime.fromtimestamp(int(created) + 10, UTC)
    assert [e.route for e in emu.requests[1:]] == ["get_job"] * 3


async def test_a_partial_failure_says_which_files_failed() -> None:
    emu = await started(EmulatorConfig(task_duration=5.0, file_failure_rate=0.3, seed=3))
    try:
        async with make_session(emu.url) as s:
            ids = [await s.submit(copy_job(10)) for _ in range(6)]
            emu.clock.advance(5.0)
            jobs = [await s.get_job(job_id) for job_id in ids]
    finally:
        await emu.close()
    partial = [j for j in jobs if j.result == JobResult.PARTIALLY_FAILED]
    assert partial, "the seed fails some files of some jobs"
    for job in partial:
        assert job.state is State.FAILED and not job.succeeded
        failed = {f.file_id for f in job.failed_files}
        expected = {f.file_id for f in emu.state.get(job.job_id).files if f.failed}
        assert failed == expected and 0 < len(failed) < 10
        assert job.result_code is not None and job.result_code.startswith("18")


async def test_job_times_are_read_in_the_service_time_zone() -> None:
    emu = await started(EmulatorConfig(job_time_utc_offset=8))
    plus8 = timezone(timedelta(hours=8))
    try:
        job_id = ""
        async with make_session(emu.url, service_time_zone=plus8) as s:
            assert s.service_time_zone is plus8
            job_id = await s.submit(copy_job(1))
            job = await s.get_job(job_id)
        async with make_session(emu.url) as utc:  # the default: UTC, unverified
            naive = await utc.get_job(job_id)
    finally:
        await emu.close()
    task = emu.state.get(job_id)
    created = int(task.shown(task.created_at))
    assert job.create_time is not None and job.create_time.timestamp() == created
    assert naive.create_time is not None and naive.create_time.timestamp() == created + 8 * 3600


def test_service_time_zone_must_be_a_tzinfo() -> None:
    with pytest.raises(InvalidRequestError) as info:
        make_session("http://127.0.0.1:1", service_time_zone="+08:00")
    assert info.value.field == "service_time_zone"
    with pytest.raises(InvalidRequestError) as info:
        make_session("http://127.0.0.1:1", job_tracking="jobs")
    assert info.value.field == "job_tracking"


async def test_decompression_jobs_list_the_extracted_files(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    request = JobRequest(
        JobType.DECOMPRESS,
        "src-c",
        "dst-c",
        [FileInfo("F1")],
        action_type=JobAction.DECOMPRESS_PARTIAL,
        uncompress_file_paths=["a/b.txt", "c.txt"],
        password="pw",
    )
    job_id = await session.submit(request)
    emu.clock.advance(10.0)
    job = await session.get_job(job_id)
    assert [(u.name, u.type, u.code) for u in job.uncompressed_files] == [
        ("a/b.txt", "1", "0"),
        ("c.txt", "1", "0"),
    ]
    assert all(
        u.update_time is not None and u.file_size is not None for u in job.uncompressed_files
    )


async def test_get_job_of_no_job_is_not_found(session: KooDriveSession) -> None:
    with pytest.raises(NotFoundError):
        await session.get_job("1234567890")


@pytest.mark.parametrize("bad", ["", "  ", 7, None, "jobs", "cancel", "task"])
async def test_get_job_refuses_a_bad_id_before_sending(
    emu: KooDriveEmulator, session: KooDriveSession, bad: Any
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await session.get_job(bad)
    assert info.value.field == "job_id" and emu.requests == []


# --------------------------------------------------------------------------- list and iterate


async def test_list_jobs_pages_by_offset_and_filters(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    copies = [await session.submit(copy_job(1)) for _ in range(4)]
    move = await session.submit(copy_job(1, JobType.MOVE))
    await session.create_transfer_task(src_user_id="a", dst_user_id="b")  # not a job
    page = await session.list_jobs(offset=0, limit=3)
    assert [j.job_id for j in page] == copies[:3] and all(j.files == () for j in page)
    assert [j.job_id for j in await session.list_jobs(offset=3, limit=3)] == [copies[3], move]
    assert [j.job_id for j in await session.list_jobs(task_type=JobType.MOVE)] == [move]
    emu.clock.advance(1.0)
    assert len(await session.list_jobs(status=JobStatus.PROCESSING)) == 5
    assert await session.list_jobs(status=JobStatus.COMPLETED) == []
    queries = [dict(e.query) for e in emu.requests if e.route == "list_jobs"]
    assert queries[0] == {"offset": "0", "limit": "3"}
    assert queries[2] == {"type": "3", "offset": "0", "limit": "100"}


async def test_iter_jobs_walks_every_page(emu: KooDriveEmulator, session: KooDriveSession) -> None:
    ids = [await session.submit(copy_job(1)) for _ in range(7)]
    seen = [job.job_id async for job in session.iter_jobs(page_size=3)]
    assert seen == ids
    offsets = [dict(e.query)["offset"] for e in emu.requests if e.route == "list_jobs"]
    assert offsets == ["0", "3", "6"]  # the short third page ends it


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 1.5}, "offset"),
        ({"task_type": 0}, "task_type"),
        ({"task_type": 8}, "task_type"),
        ({"status": 4}, "status"),
        ({"status": [1, 2]}, "status"),
    ],
)
async def test_list_jobs_refuses_bad_filters_before_sending(
    emu: KooDriveEmulator, session: KooDriveSession, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await session.list_jobs(**kwargs)
    assert info.value.field == field
    page_kwargs = {k: v for k, v in kwargs.items() if k != "limit" and k != "offset"}
    if page_kwargs:
        with pytest.raises(InvalidRequestError):
            await anext(aiter(session.iter_jobs(**page_kwargs)))
    assert emu.requests == []


# --------------------------------------------------------------------------- cancel


async def test_cancel_a_job_and_cancelling_again_is_harmless(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    job_id = await session.submit(copy_job(2))
    await session.cancel_job(job_id)
    job = await session.get_job(job_id)
    assert job.state is State.CANCELLED and job.status == JobStatus.CANCELLED
    await session.cancel_job(job_id)  # refused as already cancelled: a success
    routes = [e.route for e in emu.requests[1:]]
    assert routes == ["cancel_job", "get_job", "cancel_job", "get_job"]


async def test_cancelling_a_completed_job_is_refused(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    job_id = await session.submit(copy_job(1))
    emu.clock.advance(10.0)
    with pytest.raises(BadRequestError) as info:
        await session.cancel_job(job_id)
    assert info.value.status_code == 400 and not info.value.possibly_created
    with pytest.raises(BadRequestError):
        await session.cancel_job("404404404")  # no such job: the lookup 404s, the 400 stands


async def test_a_cancel_whose_answer_was_lost_is_retried_and_succeeds(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    job_id = await session.submit(copy_job(1))
    emu.inject(FaultKind.CREATED_BUT_500, route="cancel_job", count=1)
    await session.cancel_job(job_id)  # the 500 acted; the retry finds it cancelled
    cancels = [e for e in emu.requests if e.route == "cancel_job"]
    assert [e.status for e in cancels] == [500, 400]
    assert (await session.get_job(job_id)).state is State.CANCELLED


async def test_cancel_refuses_a_bad_id_before_sending(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    for bad in ("", None, "\ud800"):
        with pytest.raises(InvalidRequestError):
            await session.cancel_job(bad)  # type: ignore[arg-type]
    assert emu.requests == []


# --------------------------------------------------------------------------- share tasks


async def test_get_share_task_reads_the_share_detail(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    task_id = await session.submit(share_request(ShareTaskType.PACKAGE, 3))
    first = await session.get_share_task(task_id, share_id=SHARE, kdstoken=KDS)
    assert isinstance(first, ShareTask) and first.task_id == task_id
    assert (first.task_type, first.state, first.progress) == (ShareTaskType.PACKAGE, State.NEW, 0)
    emu.clock.advance(10.0)
    done = await session.get_share_task(task_id, share_id=SHARE, kdstoken=KDS)
    assert done.state is State.SUCCESS and done.result == JobResult.ALL_SUCCEEDED
    assert [f.file_id for f in done.files] == ["S0", "S1", "S2"]
    assert done.download_url is not None and "token=" in done.download_url
    assert done.download_url not in repr(done)  # the link carries a token
    detail = [e for e in emu.requests if e.route == "get_share_task"]
    assert all(e.headers["X-Hw-Agentname"] == "agent-x" for e in detail)
    assert all(e.body == {"taskId": task_id, "shareId": SHARE, "kdstoken": "***"} for e in detail)
    assert all(e.method == "POST" for e in detail)


async def test_get_share_task_needs_an_agent_name_and_valid_ids(emu: KooDriveEmulator) -> None:
    async with make_session(emu.url, agent_name=None) as s:
        with pytest.raises(InvalidRequestError) as info:
            await s.get_share_task("1", share_id=SHARE)
        assert info.value.field == "agent_name"
    async with make_session(emu.url) as s:
        for kwargs, field in (
            ({"share_id": ""}, "share_id"),
            ({"share_id": SHARE, "kdstoken": ""}, "kdstoken"),
        ):
            with pytest.raises(InvalidRequestError) as info:
                await s.get_share_task("1", **kwargs)
            assert info.value.field == field
        with pytest.raises(InvalidRequestError) as info:
            await s.get_share_task("", share_id=SHARE)
        assert info.value.field == "task_id"
    assert emu.requests == []


async def test_a_kdstoken_never_shows_in_errors_or_reprs(session: KooDriveSession) -> None:
    request = share_request()
    task_id = await session.submit(request)
    with pytest.raises(BadRequestError) as info:
        await session.get_share_task(task_id, share_id=SHARE, kdstoken=KDS + "-wrong")
    with pytest.raises(InvalidRequestError) as bad:
        await session.get_share_task(task_id, share_id=SHARE, kdstoken=3)  # type: ignore[arg-type]
    texts = [str(info.value), repr(info.value), str(bad.value), repr(request)]
    tracker = session._waiting.share_tracker(SHARE, KDS)
    texts.append(repr(tracker))
    assert all(KDS not in text for text in texts)


async def test_share_task_of_another_share_is_not_found(session: KooDriveSession) -> None:
    task_id = await session.submit(share_request())
    with pytest.raises(NotFoundError):
        await session.get_share_task(task_id, share_id="another-share")


# --------------------------------------------------------------------------- variants


@pytest.mark.parametrize("names", ["per_page", "job", "share"])
async def test_both_spellings_of_the_detail_fields_are_read(names: str) -> None:
    emu = await started(
        EmulatorConfig(task_duration=2.0, response_variant=ResponseVariant(detail_names=names))
    )
    try:
        async with make_session(emu.url) as s:
            job_id = await s.submit(copy_job(1))
            share_id = await s.submit(share_request(ShareTaskType.PACKAGE, 1))
            emu.clock.advance(1.0)
            job = await s.get_job(job_id)
            share = await s.get_share_task(share_id, share_id=SHARE)
            assert job.state is share.state is State.EXECUTING
            assert job.start_time is not None and share.start_time is not None
            emu.clock.advance(1.0)
            assert (await s.get_job(job_id)).state is State.SUCCESS
            assert (await s.get_share_task(share_id, share_id=SHARE)).state is State.SUCCESS
    finally:
        await emu.close()


async def test_int_file_status_single_object_infos_and_str_codes_are_read() -> None:
    variant = ResponseVariant(file_status_as="int", task_infos_as="object", code_as="str")
    emu = await started(EmulatorConfig(task_duration=1.0, response_variant=variant))
    try:
        async with make_session(emu.url) as s:
            one = await s.submit(copy_job(1))
            two = await s.submit(copy_job(2))
            share = await s.submit(share_request(ShareTaskType.PACKAGE, 1))
            emu.clock.advance(1.0)
            single = await s.get_job(one)
            assert [(f.file_id, f.status) for f in single.files] == [("F0", FileStatus.SUCCEEDED)]
            assert [f.status for f in (await s.get_job(two)).files] == [FileStatus.SUCCEEDED] * 2
            shared = await s.get_share_task(share, share_id=SHARE)
            assert [f.file_id for f in shared.files] == ["S0"]
            with pytest.raises(BadRequestError) as info:
                await s.cancel_job(one)
            assert info.value.code == "13000102"
    finally:
        await emu.close()


async def test_unknown_values_never_crash_parsing() -> None:
    info: dict[str, Any] = {
        "taskId": 1309243162258308352,  # a number, not a string
        "taskType": 9,
        "actionType": 999,
        "status": "2",
        "taskResultCode": 7,
        "progress": "100",
        "beginTime": "2023-12-12T09:52:27Z",
        "endTime": "20231399999999",  # no such date
        "createTime": 20231212095227,
        "extra": {"new": "field"},
    }
    files = [{"fileId": "F1", "status": "done"}, {"fileId": "F2", "status": 5}, {"fileId": "F3"}]

    async def handler(_request: web.Request) -> web.Response:
        body = {"code": "0", "msg": "ok", "data": {"jobInfo": info, "taskInfos": files}}
        return web.json_response(body)

    async with custom_server(handler) as url, make_session(url) as s:
        job = await s.get_job("1309243162258308352")
    assert job.job_id == "1309243162258308352"
    assert (job.task_type, job.action_type, job.result) == (9, 999, 7)
    assert job.status == JobStatus.COMPLETED and job.state is State.FAILED  # never a false success
    assert job.progress == 100 and job.end_time is None
    assert job.start_time == datetime(2023, 12, 12, 9, 52, 27, tzinfo=UTC)
    assert job.create_time == datetime(2023, 12, 12, 9, 52, 27, tzinfo=UTC)
    assert [f.status for f in job.files] == [None, 5, None]


@pytest.mark.parametrize(
    "body",
    [
        {"code": 0, "data": {"taskInfos": []}},
        {"code": 0, "data": {"jobInfo": [1]}},
        {"code": 0, "data": {"jobInfo": {"status": 1}}},
        {"code": 0, "data": {"jobInfo": {"taskId": "1"}, "taskInfos": "F1"}},
        {"code": 0, "data": {"jobInfo": {"taskId": "1"}, "taskInfos": [1]}},
        {"code": 0, "data": {"jobInfo": {"taskId": "1", "status": [2]}}},
        [1, 2],
    ],
)
async def test_a_detail_of_the_wrong_shape_is_a_response_validation_error(body: Any) -> None:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(body), content_type="application/json")

    async with custom_server(handler) as url, make_session(url) as s:
        with pytest.raises(ResponseValidationError) as info:
            await s.get_job("1")
        assert not info.value.possibly_created


async def test_a_job_list_of_the_wrong_shape_is_a_response_validation_error() -> None:
    async def handler(_request: web.Request) -> web.Response:
        return web.json_response({"code": 0, "data": {"jobs": []}})

    async with custom_server(handler) as url, make_session(url) as s:
        with pytest.raises(ResponseValidationError):
            await s.list_jobs()


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize(
    ("route", "kind"),
    [
        ("get_job", FaultKind.SERVER_ERROR),
        ("get_job", FaultKind.BAD_GATEWAY_HTML),
        ("list_jobs", FaultKind.SERVER_ERROR),
        ("get_share_task", FaultKind.SERVER_ERROR),
        ("get_share_task", FaultKind.BAD_GATEWAY_HTML),
        ("get_share_task", FaultKind.DROP),
        ("cancel_job", FaultKind.DROP),
    ],
)
async def test_the_reads_and_the_cancel_are_retried_like_gets(
    emu: KooDriveEmulator, session: KooDriveSession, route: str, kind: FaultKind
) -> None:
    job_id = await session.submit(copy_job(1))
    share_id = await session.submit(share_request())
    fault = emu.inject(kind, route=route, count=1)
    if route == "get_job":
        await session.get_job(job_id)
    elif route == "list_jobs":
        await session.list_jobs()
    elif route == "get_share_task":
        await session.get_share_task(share_id, share_id=SHARE, kdstoken=KDS)
    else:
        await session.cancel_job(job_id)
    assert fault.hits == 1
    assert len([e for e in emu.requests if e.route == route]) >= 2


# --------------------------------------------------------------------------- states


@pytest.mark.parametrize(
    ("status", "result", "files", "state"),
    [
        (JobStatus.PENDING, None, (), State.NEW),
        (JobStatus.PROCESSING, None, (), State.EXECUTING),
        (JobStatus.COMPLETED, JobResult.ALL_SUCCEEDED, (), State.SUCCESS),
        (JobStatus.COMPLETED, JobResult.PARTIALLY_FAILED, (), State.FAILED),
        (JobStatus.COMPLETED, JobResult.ALL_FAILED, (), State.FAILED),
        (JobStatus.CANCELLED, None, (), State.CANCELLED),
        (JobStatus.COMPLETED, None, (), State.SUCCESS),
        (JobStatus.COMPLETED, None, (FileStatus.FAILED,), State.FAILED),
        (JobStatus.COMPLETED, 9, (), State.FAILED),
        (7, None, (), None),
        (None, None, (), None),
    ],
)
def test_the_state_of_a_job(status: Any, result: Any, files: Any, state: State | None) -> None:
    results = tuple(FileResult("F", s) for s in files)
    assert job_state(status, result, results) is state
    assert Job("1", status=status, result=result, files=results).state is state
    assert ShareTask("1", status=status, result=result, files=results).state is state


def test_the_state_of_a_task() -> None:
    assert [Task("1", status=s).state for s in TaskStatus] == [
        State.NEW,
        State.EXECUTING,
        State.SUCCESS,
        State.FAILED,
    ]
    assert Task("1", status=9).state is None and Task("1").state is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20231212095227", datetime(2023, 12, 12, 9, 52, 27, tzinfo=UTC)),
        (20231212095227, datetime(2023, 12, 12, 9, 52, 27, tzinfo=UTC)),
        ("20231312095227", None),
        ("2023121209522", None),
        ("", None),
        (None, None),
        (True, None),
        ("2024-08-12T07:22:33.000Z", datetime(2024, 8, 12, 7, 22, 33, tzinfo=UTC)),
    ],
)
def test_parse_stamp(value: object, expected: datetime | None) -> None:
    assert parse_stamp(value) == expected


def test_parse_stamp_uses_the_given_zone() -> None:
    plus8 = timezone(timedelta(hours=8))
    parsed = parse_stamp("20231212095227", plus8)
    assert parsed is not None and parsed.utcoffset() == timedelta(hours=8)
    assert parsed.astimezone(UTC).hour == 1


def test_the_session_says_where_it_reads_jobs() -> None:
    # The bulk wing's resume reads it, so that it waits where the fan-out would.
    assert KooDriveSession("http://127.0.0.1:9", user_id="u", token="t").job_tracking == "job"
    task = KooDriveSession("http://127.0.0.1:9", user_id="u", token="t", job_tracking="task")
    assert task.job_tracking == "task"
