"""Reconciliation of in-doubt batch-job lines with the job list and job detail (issue 12 item 6).

The reference pages list batch jobs in ``GET /jobs`` only (not in
``task/list``): every emulator here has ``task_routes_show_jobs=False``, as
the real service. The rule (``decide_jobs``) is tested on hand-made listings;
then the journal's driver, the public :func:`reconcile_outcomes` over
``stream_jobs`` outcomes, and the command as a child process.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import (
    CLOCK_SPEED,
    POLL,
    TASK_DURATION,
    TOKEN,
    USER_ID,
    created_by_marker,
    job_line,
    journal_rows,
    write_plan,
)

from koodrive_async import FileInfo, JobOutcome, JobRequest, JobType, KooDriveSession, Verdict
from koodrive_async._models import FileResult, Job
from koodrive_async.bulk import (
    JobKey,
    JobLine,
    JobWitness,
    ReconciliationResult,
    SQLiteJournal,
    State,
    load_plan,
    reconcile_in_doubt,
    reconcile_jobs,
    reconcile_outcomes,
)
from koodrive_async.bulk._bodies import request_from_body
from koodrive_async.bulk._job_match import calibrate, jobs_to_read
from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator

Cli = Callable[..., Any]

SETTLE = ("--settle-time", "0.3")

T0 = datetime(2024, 8, 12, 7, 0, 0, tzinfo=UTC)


@pytest.fixture
def emulator_config(request: pytest.FixtureRequest) -> EmulatorConfig:
    """Jobs not in task/list; parametrize indirectly with (clock_skew, job_time_utc_offset)."""
    skew, zone = getattr(request, "param", (0.0, 0.0))
    return EmulatorConfig(
        task_duration=TASK_DURATION,
        clock_speed=CLOCK_SPEED,
        seed=7,
        task_routes_show_jobs=False,
        clock_skew=skew,
        job_time_utc_offset=zone,
    )


# --------------------------------------------------------------------------- the rule

KEY = JobKey(1, 101, "IAABdst", ("F1",))


def _line(line: int, key: JobKey = KEY, *, identity: str = "same", at: datetime = T0) -> JobLine:
    return JobLine(line, key, identity, at)


def _job(
    job_id: str,
    files: tuple[str, ...] = ("F1",),
    *,
    at: datetime | None = T0,
    container: str | None = "IAABdst",
) -> Job:
    return Job(
        job_id=job_id,
        task_type=JobType.COPY,
        action_type=101,
        container_id=container,
        file_count=len(files),
        create_time=at,
        files=tuple(FileResult(file_id=f) for f in files),
    )


def _listed(job: Job) -> Job:
    # A GET /jobs item: no per-file results.
    return Job(
        job_id=job.job_id,
        task_type=job.task_type,
        action_type=job.action_type,
        container_id=job.container_id,
        file_count=job.file_count,
        create_time=job.create_time,
    )


def _decide(
    lines: list[JobLine],
    jobs: list[Job],
    *,
    witnesses: tuple[JobWitness, ...] = (),
    complete: bool = True,
    claimed: tuple[str, ...] = (),
) -> Any:
    listed = [_listed(j) for j in jobs]
    wanted = jobs_to_read(lines, witnesses, listed, claimed=claimed)
    details = {j.job_id: j for j in jobs if j.job_id in wanted}
    return reconcile_jobs(lines, witnesses, listed, details, complete=complete, claimed=claimed)


def test_the_one_job_with_the_lines_files_is_found() -> None:
    decision = _decide([_line(1)], [_job("j1"), _job("j2", ("F2",))])
    assert decision.matched == {1: "j1"} and decision.in_doubt == []


def test_no_job_with_the_files_in_a_complete_listing_proves_not_created() -> None:
    jobs = [_job("j2", ("F2",)), _job("j3", ("F1", "F1"))]  # other files; a multiset differs
    assert _decide([_line(1)], jobs).not_created == [1]
    # Cut short by the page cap: nothing is proven absent.
    assert _decide([_line(1)], jobs, complete=False).in_doubt == [1]


def test_a_claimed_job_is_never_matched() -> None:
    assert _decide([_line(1)], [_job("j1")], claimed=("j1",)).not_created == [1]


def test_identical_lines_are_matched_count_wise() -> None:
    lines = [_line(1), _line(2, at=T0 + timedelta(seconds=5))]
    decision = _decide(lines, [_job("j1")])
    assert decision.matched == {1: "j1"} and decision.not_created == [2]
    # Lines that differ outside the key (a path, a share folder): whose is it?
    different = [_line(1, identity="a"), _line(2, identity="b")]
    assert _decide(different, [_job("j1")]).in_doubt == [1, 2]
    assert _decide(different, []).not_created == [1, 2]


def test_more_matching_jobs_than_lines_stay_in_doubt() -> None:
    assert _decide([_line(1)], [_job("j1"), _job("j2")]).in_doubt == [1]


def test_the_window_is_calibrated_on_the_journals_own_jobs() -> None:
    # The service writes job times 8 hours ahead of UTC (no zone on the wire).
    zone = timedelta(hours=8)
    witness_key = JobKey(1, 101, "IAABdst", ("W",))
    witness = JobWitness("w1", witness_key, T0 - timedelta(seconds=30))
    listed_witness = _job("w1", ("W",), at=T0 - timedelta(seconds=29) + zone)
    old = _job("j-old", at=T0 - timedelta(hours=2) + zone)  # the same files, long before
    assert calibrate([witness], {"w1": listed_witness}) == zone.total_seconds() + 1
    calibrated = _decide([_line(1)], [listed_witness, old], witnesses=(witness,))
    assert calibrated.offset is not None and calibrated.not_created == [1]
    # Without a witness there is no bound: the old job is taken for the line's.
    assert _decide([_line(1)], [old]).matched == {1: "j-old"}
    # The line's own job, written in the service's zone, is inside the window.
    own = _job("j1", at=T0 + timedelta(seconds=1) + zone)
    assert _decide([_line(1)], [listed_witness, old, own], witnesses=(witness,)).matched == {
        1: "j1"
    }


def test_a_job_written_long_after_its_line_was_sent_is_still_found() -> None:
    # A service clock that runs ahead of the calibration (the emulator's fast
    # virtual clock, or a calibration from an earlier run) writes the line's own
    # job far past its send: an upper end of the window would declare the line
    # not created and send it twice.
    witness = JobWitness("w1", JobKey(1, 101, "IAABdst", ("W",)), T0 - timedelta(seconds=30))
    listed_witness = _job("w1", ("W",), at=T0 - timedelta(seconds=29))
    late = _job("j1", at=T0 + timedelta(hours=1))
    decision = _decide([_line(1)], [listed_witness, late], witnesses=(witness,))
    assert decision.matched == {1: "j1"} and decision.not_created == []


def test_an_unreadable_candidate_blocks_the_proof() -> None:
    empty = Job(
        job_id="j1", task_type=JobType.COPY, action_type=101, container_id="IAABdst", file_count=1
    )
    decision = reconcile_jobs([_line(1)], (), [empty], {"j1": empty}, complete=True)
    assert decision.in_doubt == [1]
    gone = reconcile_jobs([_line(1)], (), [empty], {"j1": None}, complete=True)
    assert gone.in_doubt == [1]
    unread = reconcile_jobs([_line(1)], (), [empty], {}, complete=True)
    assert unread.in_doubt == [1]


def test_a_witness_contradicting_the_listing_drops_the_filter() -> None:
    # The listing filters on containerId; a service that puts the source there
    # would hide the line's job: one witness showing it drops the filter.
    odd = _job("j1", container="IAABsrc")
    assert jobs_to_read([_line(1)], (), [_listed(odd)]) == []
    witness = JobWitness("w1", JobKey(1, 101, "IAABdst", ("W",)), T0)
    listed_witness = _listed(_job("w1", ("W",), container="IAABsrc"))
    assert jobs_to_read([_line(1)], (witness,), [listed_witness, _listed(odd)]) == ["j1"]


def test_the_listing_filter_leaves_out_other_types_containers_and_counts() -> None:
    others = [
        _job("a", container="IAABother"),
        _job("b", ("F1", "F2")),
        Job(job_id="c", task_type=JobType.DELETE, file_count=1),
        Job(job_id="d"),  # nothing known: a candidate
    ]
    assert jobs_to_read([_line(1)], (), others) == ["d"]


# --------------------------------------------------------------------------- the library


def _request(marker: str, *more: str) -> JobRequest:
    return JobRequest(
        task_type=JobType.COPY,
        action_type=101,
        src_container_id="IAABsrc",
        dst_container_id="IAABdst",
        files=[FileInfo(file_id=m) for m in (marker, *more)],
    )


async def _outcomes(session: KooDriveSession, requests: list[Any]) -> list[JobOutcome]:
    # One at a time, so that each fault hits the request it was injected for.
    return [o async for o in session.stream_jobs(requests, max_concurrency=1, timeout=30)]


def _task_list_reads(emu: KooDriveEmulator) -> int:
    return sum(1 for e in emu.requests if e.route == "list_tasks")


async def test_reconcile_outcomes_finds_the_created_and_proves_the_refused(
    emu: KooDriveEmulator,
) -> None:
    async with KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN) as session:
        requests = [_request("A"), _request("B"), _request("C"), _request("D")]
        emu.clear_faults()
        # A succeeds (a witness); B created but 504; C 500 and nothing created.
        outcomes = [*await _outcomes(session, requests[:1])]
        emu.inject(FaultKind.CREATED_BUT_504, route="create_job", count=1)
        outcomes += await _outcomes(session, requests[1:2])
        emu.inject(FaultKind.SERVER_ERROR, route="create_job", count=1)
        outcomes += await _outcomes(session, requests[2:3])
        outcomes += await _outcomes(session, requests[3:])
        assert [o.verdict for o in outcomes] == [
            Verdict.SUCCEEDED,
            Verdict.IN_DOUBT,
            Verdict.IN_DOUBT,
            Verdict.SUCCEEDED,
        ]
        assert all(o.submitted_at is not None and o.answered_at is not None for o in outcomes)
        found = await reconcile_outcomes(session, outcomes, settle=0)
    created = created_by_marker(emu)
    assert [(r.index, r.result, r.task_id) for r in found] == [
        (1, ReconciliationResult.FOUND, created["B"][0]),
        (2, ReconciliationResult.NOT_CREATED, None),
    ]
    assert "C" not in created
    assert _task_list_reads(emu) == 0  # batch jobs are looked up in the job list only


async def test_identical_requests_with_one_job_created_one_found_one_not_created(
    emu: KooDriveEmulator,
) -> None:
    async with KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN) as session:
        emu.inject(FaultKind.CREATED_BUT_504, route="create_job", count=1)
        outcomes = await _outcomes(session, [_request("D")])
        emu.inject(FaultKind.SERVER_ERROR, route="create_job", count=1)
        outcomes += await _outcomes(session, [_request("D")])
        found = await reconcile_outcomes(session, outcomes, settle=0)
    assert [r.result for r in found] == [
        ReconciliationResult.FOUND,
        ReconciliationResult.NOT_CREATED,
    ]
    assert found[0].task_id == created_by_marker(emu)["D"][0]


async def test_a_job_list_cut_by_the_page_cap_leaves_the_outcome_in_doubt(
    emu: KooDriveEmulator,
) -> None:
    async with KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN) as session:
        for i in range(100):  # a full first page of jobs of other files
            await session.submit(_request(f"X{i}"))
        emu.inject(FaultKind.SERVER_ERROR, route="create_job", count=1)
        outcomes = await _outcomes(session, [_request("Z")])
        cut = await reconcile_outcomes(session, outcomes, settle=0, max_pages=1)
        whole = await reconcile_outcomes(session, outcomes, settle=0)
    assert [r.result for r in cut] == [ReconciliationResult.STILL_IN_DOUBT]
    assert [r.result for r in whole] == [ReconciliationResult.NOT_CREATED]


async def test_share_tasks_and_unsettled_outcomes_stay_in_doubt(emu: KooDriveEmulator) -> None:
    share = request_from_body(
        "share",
        {
            "taskType": 1,
            "containerId": "IAABc",
            "fileIds": ["S1"],
            "shareId": "1689765568237837824",
            "zipName": "a.zip",
        },
    )
    async with KooDriveSession(
        emu.url, user_id=USER_ID, token=TOKEN, agent_name="tests"
    ) as session:
        emu.inject(FaultKind.CREATED_BUT_504, route="create_share_task", count=1)
        outcomes = await _outcomes(session, [share])
        emu.inject(FaultKind.SERVER_ERROR, route="create_job", count=1)
        outcomes += await _outcomes(session, [_request("Q")])
        # Listed at once after the create ended: not yet proof of anything.
        found = await reconcile_outcomes(session, outcomes, settle=60.0, wait=False)
    assert [o.verdict for o in outcomes] == [Verdict.IN_DOUBT] * 2
    assert [r.result for r in found] == [ReconciliationResult.STILL_IN_DOUBT] * 2


async def test_a_job_on_another_clock_and_zone_is_found_and_an_old_one_not_taken(
    emu: KooDriveEmulator, tmp_path: Path
) -> None:
    plan_path = write_plan(
        tmp_path / "plan.jsonl", [job_line("W"), job_line("OLD"), job_line("NEW")]
    )
    plan = load_plan(plan_path)
    async with KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN) as session:
        # A job with line 2's files, made by someone else an hour before the run
        # (its times shown an hour earlier: the service's clock, not the
        # virtual one, stamps createTime).
        old = emu.state.get(await session.submit(plan.request(2)))
        old.shown_offset -= 3600
        emu.clock.advance(3600)
        with SQLiteJournal.open(tmp_path / "plan.journal.sqlite") as journal:
            journal.initialize(
                plan_hash=plan.plan_hash,
                plan_name="plan.jsonl",
                lines=((ln.number, ln.line_hash, ln.kind, ln.error) for ln in plan.lines),
            )
            journal.mark_submitting(1)
            journal.mark_submitted(1, await session.submit(plan.request(1)))
            journal.mark_submitting(2)  # its create never reached the service
            journal.mark_submitting(3)
            new_id = await session.submit(plan.request(3))  # reached it, answer lost
            assert journal.mark_interrupted_in_doubt() == [2, 3]
            sent_by = datetime.now(UTC)
            done = await reconcile_in_doubt(
                plan, journal, session, settle=0.0, sent_before={2: sent_by, 3: sent_by}
            )
    assert done.decision.matched == {3: new_id}
    assert done.resent == [2]
    assert done.decision.jobs is not None and done.decision.jobs.offset is not None
    assert _task_list_reads(emu) == 0


# --------------------------------------------------------------------------- the command


async def test_a_run_of_job_lines_answered_504_makes_no_duplicate(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    markers = [f"J{i}" for i in range(1, 9)]
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(m) for m in markers])
    emu.inject(FaultKind.CREATED_BUT_504, route="create_job", count=4)
    emu.inject(FaultKind.DROP, route="create_job", count=1)
    result = await cli("run", str(plan), "--concurrency", "1", "--json", *POLL, *SETTLE)
    assert result.code == 0, result.err
    created = created_by_marker(emu)
    assert {m: len(created.get(m, [])) for m in markers} == dict.fromkeys(markers, 1)
    assert "4 found on the service, 1 proven not created" in result.err
    rows = journal_rows(tmp_path / "plan.journal.sqlite")
    assert {r["state"] for r in rows.values()} == {State.SUCCEEDED}
    assert all(rows[n]["task_id"] == created[f"J{n}"][0] for n in rows)
    assert _task_list_reads(emu) == 0


@pytest.mark.parametrize("emulator_config", [(-20 * 60.0, 8.0), (20 * 60.0, -5.0)], indirect=True)
@pytest.mark.parametrize("concurrency", ["1", "16"])
async def test_clock_skew_and_an_unnamed_zone_make_no_duplicate(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path, concurrency: str
) -> None:
    markers = [f"K{i}" for i in range(1, 7)]
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(m) for m in markers])
    emu.inject(FaultKind.CREATED_BUT_504, route="create_job", count=4)
    emu.inject(FaultKind.SERVER_ERROR, route="create_job", count=1)
    result = await cli("run", str(plan), "--concurrency", concurrency, *POLL, *SETTLE)
    created = created_by_marker(emu)
    assert {m: len(created.get(m, [])) for m in markers} == dict.fromkeys(markers, 1), result.err
    assert result.code == 0, result.err


async def test_an_in_doubt_share_line_stays_in_doubt_and_is_not_sent_again(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    share = {
        "kind": "share",
        "taskType": 1,
        "containerId": "IAABc",
        "fileIds": ["S-share"],
        "shareId": "1689765568237837824",
        "zipName": "a.zip",
    }
    plan = write_plan(tmp_path / "plan.jsonl", [share, job_line("J1")])
    emu.inject(FaultKind.CREATED_BUT_504, route="create_share_task", count=1)
    result = await cli("run", str(plan), "--concurrency", "1", "--json", *POLL, *SETTLE)
    assert result.code == 3, result.err
    assert len(created_by_marker(emu)["S-share"]) == 1
    rows = journal_rows(tmp_path / "plan.journal.sqlite")
    assert rows[1]["state"] == State.IN_DOUBT and rows[2]["state"] == State.SUCCEEDED
    again = await cli("run", str(plan), *POLL, *SETTLE)
    assert again.code == 3, again.err
    assert len(created_by_marker(emu)["S-share"]) == 1
