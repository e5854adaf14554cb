"""Waiting for batch jobs and share tasks, and fanning them out, through the session's scheduler.

Each kind is read where the service reports it: a job at job detail, a share
task at share-task detail, a transfer or import at task detail. The emulator's
clock is frozen and advanced, or run fast (``speed``) for fan-outs; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import pytest
from waiting_helpers import FAST, NO_RETRY, USER

from koodrive_async import (
    FileInfo,
    InvalidRequestError,
    Job,
    JobAction,
    JobCancelledError,
    JobFailedError,
    JobOutcome,
    JobRequest,
    JobType,
    KooDriveSession,
    ShareTask,
    ShareTaskRequest,
    ShareTaskType,
    State,
    Task,
    TaskFailedError,
    TaskTimeoutError,
    TransferTaskRequest,
    Verdict,
)
from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator

BOUND = 30.0
SHARE = "share-w"
KDS = "kds-wait-secret-42"


def copy(count: int = 3, tag: str = "F") -> JobRequest:
    files = [FileInfo(f"{tag}{i}") for i in range(count)]
    return JobRequest(JobType.COPY, "src", "dst", files, action_type=JobAction.COPY)


def package(count: int = 2) -> ShareTaskRequest:
    return ShareTaskRequest(
        ShareTaskType.PACKAGE,
        container_id="c",
        file_ids=[f"S{i}" for i in range(count)],
        share_id=SHARE,
        kdstoken=KDS,
        zip_name="z",
    )


@pytest.fixture
def session_with_agent(make_session: Any) -> KooDriveSession:
    return make_session(agent_name="agent-w")  # type: ignore[no-any-return]


def routes(emu: KooDriveEmulator) -> collections.Counter[str | None]:
    return collections.Counter(e.route for e in emu.requests)


# --------------------------------------------------------------------------- wait_for_job


async def test_wait_for_job_returns_the_job_and_reports_every_change(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    job_id = await session.submit(copy(5))
    seen: list[tuple[State | None, int | None]] = []
    step = asyncio.Event()

    def on_status(job: Job) -> None:
        seen.append((job.state, job.progress))
        step.set()

    waiter = asyncio.create_task(session.wait_for_job(job_id, poll=FAST, on_status=on_status))
    await asyncio.wait_for(step.wait(), BOUND)  # the first answer, still NEW
    for _ in range(10):  # the job's files finish one by one: progress moves
        emu.clock.advance(1.0)
        now = await session.get_job(job_id)
        # Wait (bounded) until the waiter has reported what the job shows now.
        while not seen or seen[-1] != (now.state, now.progress):
            step.clear()
            await asyncio.wait_for(step.wait(), BOUND)
    job = await asyncio.wait_for(waiter, BOUND)
    assert isinstance(job, Job) and job.state is State.SUCCESS and job.progress == 100
    assert seen[0] == (State.NEW, 0) and seen[-1] == (State.SUCCESS, 100)
    assert len(seen) == len(set(seen))  # only changes, each once
    assert len({p for _, p in seen}) >= 3  # progress changes were reported too
    assert set(routes(emu)) == {"create_job", "get_job"}


async def test_wait_for_job_raises_job_failed_with_the_failed_files(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    job_id = await session.submit(copy(4))
    emu.state.finish(job_id, failed=True, result_code="18000042")
    with pytest.raises(JobFailedError) as info:
        await asyncio.wait_for(session.wait_for_job(job_id, poll=FAST), BOUND)
    error = info.value
    assert isinstance(error, TaskFailedError)
    assert error.job is error.task and error.job.job_id == job_id
    assert [f.file_id for f in error.failed_files] == ["F0", "F1", "F2", "F3"]
    assert error.result_code == "18000042" and "4 of 4 files failed" in str(error)


async def test_wait_for_job_raises_job_cancelled(session: KooDriveSession) -> None:
    job_id = await session.submit(copy(2))
    await session.cancel_job(job_id)
    with pytest.raises(JobCancelledError) as info:
        await asyncio.wait_for(session.wait_for_job(job_id, poll=FAST), BOUND)
    assert isinstance(info.value, TaskFailedError) and info.value.job.state is State.CANCELLED


async def test_wait_for_job_times_out_with_the_last_job(session: KooDriveSession) -> None:
    job_id = await session.submit(copy(1))
    with pytest.raises(TaskTimeoutError) as info:
        await asyncio.wait_for(session.wait_for_job(job_id, timeout=0.1, poll=FAST), BOUND)
    assert isinstance(info.value.last, Job) and info.value.last.state is State.NEW


async def test_wait_for_job_checks_its_arguments_before_sending(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    for kwargs in ({"timeout": 0}, {"poll": 3}, {"on_status": 3}):
        with pytest.raises(InvalidRequestError):
            await session.wait_for_job("1", **kwargs)
    for bad in ("", "jobs"):
        with pytest.raises(InvalidRequestError):
            await session.wait_for_job(bad)
    assert emu.requests == []


async def test_jobs_tasks_and_share_tasks_share_one_scheduler(
    emu: KooDriveEmulator, session_with_agent: KooDriveSession
) -> None:
    s = session_with_agent
    job_id = await s.submit(copy(1))
    task_id = await s.submit(TransferTaskRequest("a", "b"))
    share_id = await s.submit(package())
    waits = [
        asyncio.create_task(s.wait_for_job(job_id, poll=FAST)),
        asyncio.create_task(s.wait_for_task(task_id, poll=FAST)),
        asyncio.create_task(
            s.wait_for_share_task(share_id, share_id=SHARE, kdstoken=KDS, poll=FAST)
        ),
    ]
    await asyncio.sleep(0.05)
    scheduler = s._scheduler()
    assert scheduler.gets >= 3
    emu.clock.advance(10.0)
    job, task, share = await asyncio.wait_for(asyncio.gather(*waits), BOUND)
    assert isinstance(job, Job) and isinstance(task, Task) and isinstance(share, ShareTask)
    assert s._scheduler() is scheduler
    counted = routes(emu)
    assert counted["get_job"] and counted["get_task"] and counted["get_share_task"]
    assert scheduler.gets == counted["get_job"] + counted["get_task"] + counted["get_share_task"]


# --------------------------------------------------------------------------- wait_for_share_task


async def test_wait_for_share_task_returns_the_package_link(
    emu: KooDriveEmulator, session_with_agent: KooDriveSession
) -> None:
    share_id = await session_with_agent.submit(package(3))
    emu.clock.advance(10.0)
    share = await asyncio.wait_for(
        session_with_agent.wait_for_share_task(share_id, share_id=SHARE, kdstoken=KDS, poll=FAST),
        BOUND,
    )
    assert share.state is State.SUCCESS and share.download_url
    detail = [e for e in emu.requests if e.route == "get_share_task"]
    assert detail and all(e.body["kdstoken"] == "***" for e in detail)


async def test_wait_for_share_task_raises_job_failed(
    emu: KooDriveEmulator, session_with_agent: KooDriveSession
) -> None:
    share_id = await session_with_agent.submit(package(2))
    emu.state.finish(share_id, failed=True)
    with pytest.raises(JobFailedError) as info:
        await asyncio.wait_for(
            session_with_agent.wait_for_share_task(share_id, share_id=SHARE, poll=FAST), BOUND
        )
    assert [f.file_id for f in info.value.failed_files] == ["S0", "S1"]
    assert "share task" in str(info.value) and KDS not in str(info.value)


async def test_wait_for_share_task_needs_the_agent_name_before_sending(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await session.wait_for_share_task("1", share_id=SHARE)
    assert info.value.field == "agent_name" and emu.requests == []


# --------------------------------------------------------------------------- fan-out


async def test_fan_out_reads_each_kind_where_the_service_reports_it(
    emu: KooDriveEmulator, session_with_agent: KooDriveSession
) -> None:
    emu.clock.speed = 200.0
    requests = [copy(2), package(2), TransferTaskRequest("a", "b"), copy(1, "G")]
    outcomes = await asyncio.wait_for(session_with_agent.run_jobs(requests, poll=FAST), BOUND)
    assert [type(o.task) for o in outcomes] == [Job, ShareTask, Task, Job]
    assert all(o.ok and o.state is State.SUCCESS for o in outcomes)
    assert all(o.verdict is Verdict.SUCCEEDED for o in outcomes)
    reads: dict[str | None, set[str]] = collections.defaultdict(set)
    for entry in emu.requests:
        if entry.route == "get_share_task":
            reads[entry.route].add(entry.body["taskId"])
        elif entry.route in ("get_task", "get_job"):
            reads[entry.route].add(entry.path.rsplit("/", 1)[1])
    ids = [o.task_id for o in outcomes]
    assert reads == {"get_job": {ids[0], ids[3]}, "get_share_task": {ids[1]}, "get_task": {ids[2]}}


async def test_job_tracking_task_keeps_the_old_behaviour(
    emu: KooDriveEmulator, make_session: Any
) -> None:
    emu.clock.speed = 200.0
    s = make_session(agent_name="agent-w", job_tracking="task")
    outcomes = await asyncio.wait_for(s.run_jobs([copy(1), package(1)], poll=FAST), BOUND)
    assert all(type(o.task) is Task and o.ok for o in outcomes)
    assert {e.route for e in emu.requests} == {"create_job", "create_share_task", "get_task"}


async def test_outcomes_say_which_files_failed_and_give_a_verdict(
    emu: KooDriveEmulator, make_session: Any
) -> None:
    s = make_session(agent_name="agent-w")
    emu.clock.speed = 200.0
    emu.inject(FaultKind.CREATED_BUT_500, route="create_job", count=1)
    emu.inject(FaultKind.UNAVAILABLE, route="create_share_task", count=1)
    requests = [copy(1, "A"), package(1), copy(3, "B"), copy(2, "C"), copy(1, "D")]

    def on_submitted(request: object, task_id: str) -> None:
        if request is requests[2]:
            emu.state.finish(task_id, failed=True)
        elif request is requests[3]:
            asyncio.get_running_loop().create_task(s.cancel_job(task_id))

    outcomes = await asyncio.wait_for(
        s.run_jobs(requests, poll=FAST, on_submitted=on_submitted, max_concurrency=1), BOUND
    )
    in_doubt, refused, failed, cancelled, good = outcomes
    assert in_doubt.verdict is Verdict.IN_DOUBT and in_doubt.task_id is None
    assert refused.verdict is Verdict.REFUSED and refused.state is None
    assert isinstance(failed.error, JobFailedError) and not failed.ok
    assert failed.verdict is Verdict.FAILED and failed.state is State.FAILED
    assert [f.file_id for f in failed.failed_files] == ["B0", "B1", "B2"]
    assert isinstance(cancelled.error, JobCancelledError) and cancelled.verdict is Verdict.FAILED
    assert cancelled.state is State.CANCELLED
    assert good.ok and good.verdict is Verdict.SUCCEEDED and good.failed_files == ()


async def test_a_timed_out_outcome_holds_the_last_job(session: KooDriveSession) -> None:
    [outcome] = await asyncio.wait_for(session.run_jobs([copy(1)], poll=FAST, timeout=0.1), BOUND)
    assert outcome.verdict is Verdict.TIMED_OUT and isinstance(outcome.task, Job)
    assert outcome.state is State.NEW and not outcome.ok


async def test_a_polling_error_leaves_the_outcome_in_doubt(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    emu.inject(FaultKind.MALFORMED_JSON, route="get_job")  # never readable
    [outcome] = await asyncio.wait_for(session.run_jobs([copy(1)], poll=FAST), BOUND)
    assert outcome.error is not None and outcome.task_id is not None
    assert outcome.verdict is Verdict.IN_DOUBT  # created; how it ended is unknown


# --------------------------------------------------------------------------- the "done when"


async def test_a_thousand_batch_jobs_poll_only_job_detail_and_report_partial_failures() -> None:
    config = EmulatorConfig(task_duration=10.0, file_failure_rate=0.05, seed=12)
    async with KooDriveEmulator(config) as emu:
        emu.clock.speed = 1000.0  # virtual time: 10 s jobs take 10 ms
        async with KooDriveSession(emu.url, user_id=USER, token="tok", retry=NO_RETRY) as s:
            outcomes: list[JobOutcome] = await asyncio.wait_for(
                s.run_jobs(
                    (copy(4, f"J{i}-") for i in range(1000)), max_concurrency=200, poll=FAST
                ),
                120,
            )
    assert len(outcomes) == 1000
    counted = routes(emu)
    assert counted["get_task"] == 0 and counted["get_job"] >= 1000
    assert set(counted) == {"create_job", "get_job"}
    partial = 0
    for outcome in outcomes:
        assert outcome.task_id is not None and isinstance(outcome.task, Job)
        expected = {f.file_id for f in emu.state.get(outcome.task_id).files if f.failed}
        assert {f.file_id for f in outcome.failed_files} == expected
        if expected:
            assert isinstance(outcome.error, JobFailedError) and not outcome.ok
            assert {f.file_id for f in outcome.error.failed_files} == expected
            partial += len(expected) < 4
        else:
            assert outcome.ok, outcome.error
    assert partial > 50  # 5% of 4 files: about 170 jobs partly failed
