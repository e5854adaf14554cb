"""Plan validation and the journal, in process (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import job_line, write_plan

from koodrive_async.bulk import (
    JournalBusyError,
    JournalMismatchError,
    PlanError,
    State,
    default_journal_path,
    load_plan,
)
from koodrive_async.bulk import SQLiteJournal as Journal
from koodrive_async.bulk._plan import MAX_DEPTH

PASSWORD = "arch1ve-Pa55word"


def decompress_line(password: str = PASSWORD) -> dict[str, object]:
    return {
        "kind": "job",
        "taskType": 5,
        "actionType": 502,
        "dstContainerId": "IAABdst",
        "password": password,
        "taskInfo": {"srcContainerId": "IAABsrc", "fileInfo": [{"fileId": "Farchive"}]},
    }


def test_every_invalid_line_is_reported_with_its_number(tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path / "p.jsonl",
        [
            job_line("F1"),
            "",
            '{"kind": "job", "taskType": 1,',  # 3: broken JSON
            {"kind": "nope"},  # 4
            {"taskType": 0},  # 5: no kind
            {**job_line("F6"), "actionType": 301},  # 6: COPY with MOVE action
            {"kind": "transfer", "srcUserId": "a", "dstUserId": "b", "bogus": 1},  # 7
            "[1, 2]",  # 8
            '{"kind": "job", "kind": "job"}',  # 9: duplicate key
            {**decompress_line(), "actionType": 101},  # 10: bad pair, has a password
            {"kind": "transfer", "srcUserId": "a", "dstUserId": "b"},  # 11: fine
        ],
    )
    loaded = load_plan(plan)
    assert [ln.number for ln in loaded.lines] == [1, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    errors = {ln.number: ln.error for ln in loaded.errors}
    assert sorted(errors) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert "invalid JSON" in str(errors[3])
    assert "kind" in str(errors[4]) and "nope" in str(errors[4])
    assert "kind" in str(errors[5])
    assert "action_type" in str(errors[6]) or "actionType" in str(errors[6])
    assert "bogus" in str(errors[7])
    assert "object" in str(errors[8])
    assert "twice" in str(errors[9])
    assert all(PASSWORD not in str(e) for e in errors.values())
    assert [ln.kind for ln in loaded.valid_lines] == ["job", "transfer"]


def test_deeply_nested_lines_are_invalid_lines_not_a_crash(tmp_path: Path) -> None:
    # Past the JSON decoder's limit, and within it but past the redaction's.
    too_deep = "[" * 100_000 + "]" * 100_000
    deep = '{"kind": "job", "taskInfo": ' + "[" * 600 + "]" * 600 + "}"
    fine = {"kind": "transfer", "srcUserId": "a", "dstUserId": "b"}
    plan = write_plan(tmp_path / "p.jsonl", [too_deep, deep, fine])
    loaded = load_plan(plan)
    errors = {ln.number: ln.error for ln in loaded.errors}
    assert errors == {1: "invalid JSON: nested too deeply", 2: "invalid JSON: nested too deeply"}
    assert [ln.kind for ln in loaded.valid_lines] == ["transfer"]


def test_nesting_limit_is_the_same_on_every_python(tmp_path: Path) -> None:
    # The object plus taskInfo's list: depth MAX_DEPTH is validated as a request
    # (and rejected for its shape), one level more is "nested too deeply", whatever
    # the interpreter's recursion limit would have allowed.
    def nested(depth: int) -> str:
        inner = depth - 1
        return '{"kind": "job", "taskInfo": ' + "[" * inner + "]" * inner + "}"

    plan = write_plan(tmp_path / "p.jsonl", [nested(MAX_DEPTH), nested(MAX_DEPTH + 1)])
    errors = {ln.number: ln.error for ln in load_plan(plan).errors}
    assert errors[1] != "invalid JSON: nested too deeply"
    assert errors[1] is not None and "taskInfo" in errors[1]
    assert errors[2] == "invalid JSON: nested too deeply"


def test_requests_are_fresh_objects_per_call(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path / "p.jsonl", [job_line("F1"), job_line("F1")]))
    a, b = plan.request(1), plan.request(2)
    assert a == b and a is not b
    assert plan.request(1) is not a
    with pytest.raises(PlanError):
        plan.request(3)


def test_empty_or_missing_plan_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="empty"):
        load_plan(write_plan(tmp_path / "empty.jsonl", ["", "  "]))
    with pytest.raises(PlanError, match="cannot read"):
        load_plan(tmp_path / "missing.jsonl")


def test_plan_hash_follows_content_not_secrets(tmp_path: Path) -> None:
    base = load_plan(write_plan(tmp_path / "a.jsonl", [job_line("F1"), decompress_line()]))
    reformatted = tmp_path / "b.jsonl"
    reformatted.write_text(
        json.dumps(job_line("F1"), indent=None, separators=(", ", ": "))
        + "\n"
        + json.dumps(dict(reversed(list(decompress_line().items()))))
        + "\n"
    )
    other_password = load_plan(
        write_plan(tmp_path / "c.jsonl", [job_line("F1"), decompress_line("other")])
    )
    changed = load_plan(write_plan(tmp_path / "d.jsonl", [job_line("F2"), decompress_line()]))
    moved = load_plan(write_plan(tmp_path / "e.jsonl", ["", job_line("F1"), decompress_line()]))
    assert load_plan(reformatted).plan_hash == base.plan_hash
    # Hashes are computed with secrets redacted: nothing in the journal can be
    # used to test guesses of a password.
    assert other_password.plan_hash == base.plan_hash
    assert changed.plan_hash != base.plan_hash
    assert moved.plan_hash != base.plan_hash


def test_default_journal_path() -> None:
    assert default_journal_path(Path("/x/plan.jsonl")) == Path("/x/plan.journal.sqlite")
    assert default_journal_path(Path("plan")) == Path("plan.journal.sqlite")


def _init(journal: Journal, lines: int, plan_hash: str = "h1") -> None:
    journal.initialize(
        plan_hash=plan_hash,
        plan_name="p.jsonl",
        lines=[(n, f"hash{n}", "job", None) for n in range(1, lines + 1)],
    )


def test_journal_transitions_and_resume_rules(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path) as journal:
        assert journal.is_new
        _init(journal, 5)
        journal.mark_submitting(1)
        journal.mark_submitted(1, "111")
        journal.mark_finished(1, state=State.SUCCEEDED)
        journal.mark_submitting(2)
        journal.mark_submitted(2, "222")
        journal.mark_finished(2, state=State.FAILED, result_code="18000205")
        journal.mark_submitting(3)  # "crash" before the answer
        journal.mark_submitting(4)
        journal.mark_submitted(4, "444")  # "crash" while waiting
        journal.mark_submitting(5)
        journal.mark_finished(5, state=State.FAILED, error_type="BadRequestError", error="no")
    with Journal.open(path) as journal:
        journal.check_plan("h1")
        assert journal.mark_interrupted_in_doubt() == [3]
        records = {r.line: r for r in journal.records()}
        assert records[1].state == State.SUCCEEDED and records[1].task_id == "111"
        assert records[2].result_code == "18000205"
        assert records[3].state == State.IN_DOUBT and records[3].attempts == 1
        assert records[4].state == State.SUBMITTED and records[4].task_id == "444"
        assert dict(journal.failure_groups()) == {"resultCode 18000205": 1, "BadRequestError": 1}
        assert journal.reset_rejected() == 1  # line 5 only: line 2 has a task
        assert journal.reset_in_doubt() == 1
        assert journal.lines_in(State.PENDING) == [3, 5]
        with pytest.raises(JournalMismatchError, match="different plan"):
            journal.check_plan("h2")


def test_journal_is_exclusive_while_open(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path) as journal:
        _init(journal, 1)
        with pytest.raises(JournalBusyError, match="in use"):
            Journal.open(path)
    with Journal.open(path) as journal:
        assert not journal.is_new
