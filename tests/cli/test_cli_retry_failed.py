"""Issue 14 item 2: ``run --retry-failed`` and the journal's history of attempts.

The lines whose task the service reported FAILED go again; after a partial
failure only the failed files go, as a new job of the same kind, so no file
that succeeded is sent twice. Lines in doubt, refused lines and cancelled
jobs are never sent again by the flag. Every attempt of a line stays in the
journal (schema 4), with the task it made and how it ended.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import (
    FILES_PER_LINE,
    POLL,
    TOKEN,
    USER_ID,
    assert_no_file_repeated_after_success,
    files_line,
    jobs_sent,
    partial_failures_config,
    write_plan,
)

from koodrive_async import (
    FileInfo,
    JobRequest,
    JobType,
    KooDriveSession,
    PollPolicy,
    ShareTaskRequest,
    ShareTaskType,
)
from koodrive_async.bulk import (
    AttemptRecord,
    LineRecord,
    Outcome,
    RunOptions,
    SQLiteJournal,
    State,
    run_plan,
)
from koodrive_async.bulk._retry import cut_request, next_files, retryable, subset_request
from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator

Cli = Callable[..., Any]


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Fast tasks; a few whole jobs fail, and some files of others (partial failures)."""
    return partial_failures_config()


def _plan(path: Path, n: int) -> Path:
    return write_plan(path, [files_line(i) for i in range(1, n + 1)])


def _attempts(journal: Path) -> dict[int, list[AttemptRecord]]:
    with SQLiteJournal.open(journal) as opened:
        history: dict[int, list[AttemptRecord]] = {}
        for attempt in opened.attempts():
            history.setdefault(attempt.line, []).append(attempt)
        return history


async def test_done_when_retry_failed_resubmits_only_what_failed(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    plan = _plan(tmp_path / "plan.jsonl", 300)
    journal = tmp_path / "plan.journal.sqlite"
    first = await cli("run", str(plan), "--concurrency", "64", "--progress", "plain", *POLL)
    assert first.code == 1, first.err
    with SQLiteJournal.open(journal) as opened:
        failed = {r.line: r for r in opened.records(State.FAILED)}
    outcomes = {r.outcome for r in failed.values()}
    assert {Outcome.PARTIALLY_FAILED, Outcome.ALL_FAILED} <= outcomes, outcomes
    report = await cli("report", str(plan), "--failed", "--format", "jsonl")
    assert report.code == 0, report.err
    assert [r["line"] for r in report.json_lines()] == sorted(failed)
    # The service stops failing; the failed lines go again, and nothing else.
    emu.set_failure_rates(failure_rate=0.0, file_failure_rate=0.0)
    jobs_before = len(jobs_sent(emu))
    manifest = tmp_path / "retry.jsonl"
    retried = await cli(
        "run", str(plan), "--retry-failed", "--json", "--report", str(manifest), *POLL
    )
    assert retried.code == 0, retried.err
    # The manifest's rows, written as the lines finished, count the attempts too.
    written = [json.loads(x) for x in manifest.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["line"] for r in written) == sorted(failed)
    assert all(r["attempts"] == 2 and r["kind"] == "job" for r in written)
    assert all(r["previous_task_ids"] == [failed[r["line"]].task_id] for r in written)
    assert f"--retry-failed: sending {len(failed)} line(s)" in retried.out + retried.err
    assert sorted(o["line"] for o in retried.json_lines()) == sorted(failed)
    assert {o["state"] for o in retried.json_lines()} == {"succeeded"}
    new_jobs = jobs_sent(emu)[jobs_before:]
    assert len(new_jobs) == len(failed)
    held = assert_no_file_repeated_after_success(emu)
    # A partial failure sent its failed files only; an all-failed job every file.
    sent = {ids[0].split("F")[0]: ids for _task, ids in new_jobs}
    for line, record in failed.items():
        files = sent[f"L{line}"]
        if record.outcome == Outcome.PARTIALLY_FAILED:
            assert sorted(files) == sorted(record.failed_files)
            assert len(files) < FILES_PER_LINE
        else:
            assert len(files) == FILES_PER_LINE
    assert all(count <= 2 for count in held.values())
    # The journal holds both attempts of each retried line, and which task did what.
    history = _attempts(journal)
    with SQLiteJournal.open(journal) as opened:
        records = {r.line: r for r in opened.records()}
    for line, record in failed.items():
        one, two = history[line]
        assert (one.attempt, one.state, one.task_id) == (1, State.FAILED, record.task_id)
        assert one.outcome == record.outcome and one.failed_files == record.failed_files
        assert one.sent_files == ()
        assert (two.attempt, two.state) == (2, State.SUCCEEDED)
        assert two.task_id == records[line].task_id != record.task_id
        assert sorted(two.sent_files) == (
            sorted(record.failed_files) if record.outcome == Outcome.PARTIALLY_FAILED else []
        )
    assert all(len(history[n]) == 1 for n in records if n not in failed)
    # The report: attempts, the earlier task ids, the history in JSON.
    rows = {
        r["line"]: r for r in (await cli("report", str(plan), "--format", "jsonl")).json_lines()
    }
    line, record = next(iter(failed.items()))
    assert rows[line]["attempts"] == 2 and rows[line]["previous_task_ids"] == [record.task_id]
    assert [a["task_id"] for a in rows[line]["history"]] == [record.task_id, rows[line]["task_id"]]
    others = [rows[n] for n in rows if n not in failed]
    assert all(r["attempts"] == 1 and r["previous_task_ids"] == [] for r in others)
    page = tmp_path / "r.html"
    assert (await cli("report", str(plan), "--html", str(page))).code == 0
    assert f"Retried lines ({len(failed)})" in page.read_text(encoding="utf-8")
    # Nothing failed any more: a second --retry-failed has nothing to do.
    creates = len(jobs_sent(emu))
    again = await cli("run", str(plan), "--retry-failed", *POLL)
    assert again.code == 0, again.err
    assert "nothing to do" in again.out + again.err
    assert len(jobs_sent(emu)) == creates


def _marker(body: Any) -> str:
    return str(body["taskInfo"]["fileInfo"][0]["fileId"])


async def test_retry_failed_never_touches_in_doubt_or_refused_lines(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    plan = _plan(tmp_path / "plan.jsonl", 40)
    journal = tmp_path / "plan.journal.sqlite"
    # One at a time: line 1's create is refused (503 until the retries are
    # spent: nothing created), line 2's is carried out but answered 500 (in doubt).
    emu.inject(FaultKind.UNAVAILABLE, route="create_job", count=4)
    emu.inject(FaultKind.CREATED_BUT_500, route="create_job", count=1)
    first = await cli("run", str(plan), "--concurrency", "1", "--no-reconcile", "--json", *POLL)
    assert first.code == 3, first.err
    with SQLiteJournal.open(journal) as opened:
        records = {r.line: r for r in opened.records()}
    assert records[1].state == State.FAILED and records[1].task_id is None
    assert records[2].state == State.IN_DOUBT
    task_failed = sorted(n for n, r in records.items() if r.state == State.FAILED and r.task_id)
    assert task_failed, "the seed should fail some jobs"
    emu.set_failure_rates(failure_rate=0.0, file_failure_rate=0.0)
    before = [_marker(e.body) for e in emu.requests if e.route == "create_job"]
    retried = await cli("run", str(plan), "--retry-failed", "--no-reconcile", "--json", *POLL)
    assert retried.code == 3, retried.err  # line 2 is still in doubt
    after = [_marker(e.body) for e in emu.requests if e.route == "create_job"][len(before) :]
    # Only the lines whose task failed went again: never line 1 or line 2.
    assert sorted(m.split("F")[0] for m in after) == sorted(f"L{n}" for n in task_failed)
    with SQLiteJournal.open(journal) as opened:
        now = {r.line: r for r in opened.records()}
        assert len(opened.attempts(1)) == 1 and len(opened.attempts(2)) == 1
    assert now[1].state == State.FAILED and now[1].task_id is None
    assert now[2].state == State.IN_DOUBT
    assert all(now[n].state == State.SUCCEEDED for n in task_failed)
    # --retry-rejected takes the refused line; the in-doubt one still stays.
    rejected = await cli("run", str(plan), "--retry-rejected", "--no-reconcile", *POLL)
    assert rejected.code == 3, rejected.err
    with SQLiteJournal.open(journal) as opened:
        assert opened.record(1) is not None and opened.record(1).state == State.SUCCEEDED  # type: ignore[union-attr]
        assert [a.state for a in opened.attempts(1)] == [State.FAILED, State.SUCCEEDED]
        assert opened.record(2).state == State.IN_DOUBT  # type: ignore[union-attr]


async def test_retries_in_doubt_are_matched_to_their_own_task_not_an_earlier_attempts(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    plan = _plan(tmp_path / "plan.jsonl", 120)
    journal = tmp_path / "plan.journal.sqlite"
    assert (await cli("run", str(plan), "--concurrency", "32", *POLL)).code == 1
    with SQLiteJournal.open(journal) as opened:
        failed = {r.line: r for r in opened.records(State.FAILED)}
    outcomes = {r.outcome for r in failed.values()}
    assert {Outcome.PARTIALLY_FAILED, Outcome.ALL_FAILED} <= outcomes, outcomes
    emu.set_failure_rates(failure_rate=0.0, file_failure_rate=0.0)
    # Every retry is carried out but answered 500: in doubt. The reconciliation
    # must find each retry's own task: a partial retry's body holds only the
    # failed files, and an all-failed retry's body equals its first task's.
    emu.inject(FaultKind.CREATED_BUT_500, route="create_job", count=len(failed))
    retried = await cli("run", str(plan), "--retry-failed", "--settle-time", "0.3", *POLL)
    assert retried.code == 0, retried.err
    assert f"{len(failed)} found on the service, 0 proven not created" in retried.err
    per_line: dict[str, int] = {}
    for _task, ids in jobs_sent(emu):
        key = ids[0].split("F")[0]
        per_line[key] = per_line.get(key, 0) + 1
    assert {n: per_line[f"L{n}"] for n in failed} == dict.fromkeys(failed, 2)
    assert_no_file_repeated_after_success(emu)
    history = _attempts(journal)
    with SQLiteJournal.open(journal) as opened:
        assert {r.state for r in opened.records()} == {State.SUCCEEDED}
    for line, record in failed.items():
        assert [a.task_id == record.task_id for a in history[line]] == [True, False]
        assert history[line][1].state == State.SUCCEEDED


async def test_dry_run_with_retry_failed_sends_nothing_and_points_at_the_report(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    plan = _plan(tmp_path / "plan.jsonl", 3)
    result = await cli("run", str(plan), "--dry-run", "--retry-failed")
    assert result.code == 0, result.err
    assert f"report {plan} --failed" in result.out
    assert not emu.requests and not (tmp_path / "plan.journal.sqlite").exists()


async def test_run_plan_retry_failed_from_python(emu: KooDriveEmulator, tmp_path: Path) -> None:
    plan = _plan(tmp_path / "plan.jsonl", 60)
    options = RunOptions(concurrency=8, poll=PollPolicy(initial=0.02))
    async with KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN) as session:
        first = await run_plan(plan, session, options=options)
        failed = first.counts.get(State.FAILED, 0)
        assert failed, first.counts
        emu.set_failure_rates(failure_rate=0.0, file_failure_rate=0.0)
        plain = await run_plan(plan, session, options=options)
        assert not plain.had_work  # without the option nothing goes again
        retried = await run_plan(
            plan, session, options=RunOptions(retry_failed=True, poll=PollPolicy(initial=0.02))
        )
    assert retried.succeeded and retried.submitted_now == failed, retried
    assert_no_file_repeated_after_success(emu)


# --------------------------------------------------------------------------- the rules, pure


def _record(**fields: Any) -> LineRecord:
    base: dict[str, Any] = {
        "line": 1,
        "kind": "job",
        "state": State.FAILED,
        "task_id": "111",
        "result_code": None,
        "error_type": None,
        "error": "x",
        "attempts": 1,
    }
    return LineRecord(**{**base, **fields})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"outcome": Outcome.PARTIALLY_FAILED, "failed_files": ("A",)}, True),
        ({"outcome": Outcome.ALL_FAILED}, True),
        ({"outcome": Outcome.FAILED}, True),
        ({"outcome": Outcome.CANCELLED}, False),  # stopped on purpose
        ({"kind": "transfer", "result_code": "18000205"}, True),
        ({"kind": "import", "error_type": "TaskFailed"}, True),
        (
            {"error_type": "NotFoundError (HTTP 404)"},
            False,
        ),  # vanished: nothing says it did not run
        ({"task_id": None, "error_type": "BadRequestError"}, False),  # refused: --retry-rejected
        ({"state": State.IN_DOUBT, "task_id": None}, False),
        ({"state": State.SUCCEEDED, "outcome": Outcome.SUCCEEDED}, False),
        ({"state": State.INVALID, "kind": None, "task_id": None}, False),
    ],
)
def test_which_lines_retry_failed_sends_again(fields: dict[str, Any], expected: bool) -> None:
    assert retryable(_record(**fields)) is expected


def test_the_files_a_retry_sends() -> None:
    partial = Outcome.PARTIALLY_FAILED
    assert next_files(_record(outcome=partial, failed_files=("B", "C", "B"))) == ("B", "C")
    # Within what the failed attempt sent; an all-failed retry sends that again.
    assert next_files(_record(outcome=partial, failed_files=("C",), retry_files=("B", "C"))) == (
        "C",
    )
    assert next_files(_record(outcome=Outcome.ALL_FAILED, retry_files=("B", "C"))) == ("B", "C")
    assert next_files(_record(outcome=Outcome.FAILED)) == ()
    # A failed file the service named without an id: the failure cannot be cut.
    assert next_files(_record(outcome=partial, failed_files=("B", "?"))) == ()


def test_a_retry_never_repeats_files_that_succeeded() -> None:
    # A retry's partial failure naming none of the files it sent: not retried.
    partial = Outcome.PARTIALLY_FAILED
    stray = _record(outcome=partial, failed_files=("Z",), retry_files=("B", "C"))
    assert not retryable(stray)
    assert retryable(_record(outcome=partial, failed_files=("C",), retry_files=("B", "C")))
    # Failed files the request never held: no request to send at all.
    job = JobRequest(
        task_type=JobType.COPY,
        src_container_id="S",
        dst_container_id="D",
        files=[FileInfo("A", "/a"), FileInfo("B", "/b")],
    )
    assert cut_request(job, ("Z",)) is None
    assert cut_request(job, ()) is job
    cut = cut_request(job, ("B",))
    assert isinstance(cut, JobRequest) and [f.file_id for f in cut.files] == ["B"]


def test_a_retry_request_keeps_everything_but_the_files() -> None:
    job = JobRequest(
        task_type=JobType.DECOMPRESS,
        src_container_id="S",
        dst_container_id="D",
        files=[FileInfo("A", "/a"), FileInfo("B", "/b"), FileInfo("C", "/c")],
        password="pw",
        share_folder_id="SF",
    )
    cut = subset_request(job, ("C", "A"))
    assert isinstance(cut, JobRequest)
    assert cut.files == (FileInfo("A", "/a"), FileInfo("C", "/c"))
    assert (cut.password, cut.share_folder_id, cut.task_type) == ("pw", "SF", JobType.DECOMPRESS)
    assert subset_request(job, ()) is job and subset_request(job, ("Z",)) is job
    share = ShareTaskRequest(
        task_type=ShareTaskType.PACKAGE,
        container_id="C",
        file_ids=["A", "B"],
        share_id="S",
        zip_name="z.zip",
        kdstoken="k",
    )
    cut_share = subset_request(share, ("B",))
    assert isinstance(cut_share, ShareTaskRequest)
    assert cut_share.file_ids == ("B",) and cut_share.kdstoken == "k"


def test_the_journal_keeps_every_attempt_and_reset_failed_moves_only_failed_tasks(
    tmp_path: Path,
) -> None:
    with SQLiteJournal.open(tmp_path / "j.sqlite") as journal:
        journal.initialize(
            plan_hash="h", plan_name="p", lines=[(n, f"h{n}", "job", None) for n in range(1, 7)]
        )
        for line in range(1, 7):
            journal.mark_submitting(line)
        for line in (1, 2, 3, 4):
            journal.mark_submitted(line, f"T{line}")
        partial = Outcome.PARTIALLY_FAILED
        journal.mark_finished(
            1, state=State.FAILED, outcome=partial, failed_files=("B",), result_code="18000205"
        )
        journal.mark_finished(
            2, state=State.FAILED, outcome=Outcome.ALL_FAILED, failed_files=("A", "B")
        )
        journal.mark_finished(3, state=State.FAILED, outcome=Outcome.CANCELLED)
        journal.mark_finished(4, state=State.SUCCEEDED, outcome=Outcome.SUCCEEDED)
        journal.mark_finished(5, state=State.FAILED, error_type="BadRequestError", error="no")
        journal.mark_finished(6, state=State.IN_DOUBT, error_type="ServerError", error="500")
        assert journal.reset_failed() == 2
        assert journal.lines_in(State.PENDING) == [1, 2]
        one = journal.record(1)
        assert one is not None and one.retry_files == ("B",) and one.task_id is None
        # The finished attempt is kept as it ended.
        (first,) = journal.attempts(1)
        assert (first.state, first.task_id, first.outcome) == (
            State.FAILED,
            "T1",
            "partially_failed",
        )
        assert first.failed_files == ("B",) and first.result_code == "18000205"
        journal.mark_submitting(1)
        journal.mark_submitted(1, "T1b")
        journal.mark_finished(1, state=State.SUCCEEDED, outcome=Outcome.SUCCEEDED)
        one_then_two = journal.attempts(1)
        assert [(a.attempt, a.state, a.task_id, a.sent_files) for a in one_then_two] == [
            (1, State.FAILED, "T1", ()),
            (2, State.SUCCEEDED, "T1b", ("B",)),
        ]
        # Not sent, then in doubt, then proven not created: each attempt says so.
        journal.mark_submitting(2)
        journal.mark_not_sent(2, error_type="APIConnectionError", error="refused")
        journal.mark_submitting(2)
        journal.mark_finished(2, state=State.IN_DOUBT, error_type="ServerError", error="500")
        journal.apply_reconciliation({}, iter([2]))
        states = [a.state for a in journal.attempts(2)]
        assert states == [State.FAILED, State.PENDING, State.PENDING]
        assert journal.attempts(2)[1].error_type == "APIConnectionError"
        assert journal.reset_failed() == 0  # nothing failed with a task any more
        assert {a.line for a in journal.attempts()} == {1, 2, 3, 4, 5, 6}
