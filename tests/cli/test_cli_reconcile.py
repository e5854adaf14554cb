"""Reconciliation of in-doubt lines with the service's task list (and job list).

The task rule itself (``decide``) is tested on hand-made listings; the command
is tested as a child process against the emulator, with the faults that leave
a create in doubt (the task created but a 500 or a broken 200 answered, or no
answer at all) and with an emulator whose listing does not carry the bodies.
The emulator shows batch jobs in ``GET /jobs`` only, as the reference pages
say: transfer lines exercise the task rule, job lines the job rule
(``tests/cli/test_cli_job_reconcile.py`` has its own cases).
"""

from __future__ import annotations

import json
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
    creates_sent,
    job_line,
    journal_rows,
    write_plan,
)

from koodrive_async import KooDriveSession
from koodrive_async._models import Task
from koodrive_async.bulk import SQLiteJournal as Journal
from koodrive_async.bulk import State, load_plan, reconcile_in_doubt
from koodrive_async.bulk._bodies import request_from_body
from koodrive_async.bulk._reconcile import (
    CLOCK_MARGIN,
    KnownLine,
    LineInDoubt,
    body_key,
    decide,
    params_key,
    request_key,
)
from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator

Cli = Callable[..., Any]

#: The emulator runs in this process and handles a create at once: a short
#: settle time keeps the tests fast (the kill test uses the default).
SETTLE = ("--settle-time", "0.3")

T0 = datetime(2024, 8, 12, 7, 0, 0, tzinfo=UTC)


@pytest.fixture
def emulator_config(request: pytest.FixtureRequest) -> EmulatorConfig:
    """Parametrize indirectly with False for a listing without request bodies."""
    return EmulatorConfig(
        task_duration=TASK_DURATION,
        clock_speed=CLOCK_SPEED,
        seed=7,
        echo_init_params=getattr(request, "param", True),
        task_routes_show_jobs=False,
    )


# --------------------------------------------------------------------------- the rule


def _body(marker: str, **extra: Any) -> dict[str, Any]:
    return {k: v for k, v in job_line(marker, **extra).items() if k != "kind"}


def _task(task_id: str, body: dict[str, Any] | None, at: datetime | None = T0) -> Task:
    params = None if body is None else json.dumps(body, sort_keys=True)
    return Task(task_id=task_id, init_params=params, create_time=at)


def _doubt(
    line: int, marker: str, *, identity: str | None = None, kind: str = "job"
) -> LineInDoubt:
    key = body_key(_body(marker))
    return LineInDoubt(line, kind, key, identity or key, T0)


def _known(line: int, marker: str, *, kind: str = "job") -> KnownLine:
    return KnownLine(line, kind, body_key(_body(marker)), T0)


def test_keys_ignore_secrets_and_key_order() -> None:
    plain = {"b": 1, "a": {"password": "pw-1", "x": [1, {"kdstoken": "k"}]}}
    redacted = json.dumps({"a": {"x": [1, {"kdstoken": "***"}], "password": "***"}, "b": 1})
    assert params_key(redacted) == body_key(plain)
    assert "pw-1" not in body_key(plain)
    for unreadable in (None, "", "not json", "[1, 2]", '"text"', "{"):
        assert params_key(unreadable) is None


def test_request_key_is_the_sent_body() -> None:
    body = _body("F1", shareFolderId="SF-1")
    request = request_from_body("job", body)
    # The share folder travels as a header: the service never sees it in the body.
    assert request_key(request) == body_key(_body("F1"))


def test_match_attach_and_prove_not_created() -> None:
    known = {"t1": _known(1, "A")}
    tasks = [_task("t1", _body("A")), _task("t2", _body("B")), _task("t9", _body("Z"))]
    decision = decide([_doubt(2, "B"), _doubt(3, "C")], known, tasks)
    assert decision.matched == {2: "t2"}
    # t9 is an unrelated request (its body is readable and differs): C was not created.
    assert decision.not_created == [3] and decision.in_doubt == []
    assert decision.agreeing == 1 and decision.contradicting == 0
    assert decision.trusted_kinds == {"job"}


def test_claimed_tasks_are_never_matched_again() -> None:
    # t1 is line 1's (known); t5 belongs to a journal line not in the listing's witnesses.
    known = {"t1": _known(1, "A")}
    tasks = [_task("t1", _body("A")), _task("t5", _body("A"))]
    decision = decide([_doubt(2, "A")], known, tasks, claimed={"t5"})
    assert decision.matched == {} and decision.not_created == [2]


def test_identical_lines_match_count_wise() -> None:
    known = {"t0": _known(9, "X")}
    tasks = [_task("t0", _body("X")), _task("t1", _body("A")), _task("t2", _body("A"))]
    three = [_doubt(1, "A"), _doubt(2, "A"), _doubt(3, "A")]
    decision = decide(three, known, tasks)
    assert sorted(decision.matched) == [1, 2] and set(decision.matched.values()) == {"t1", "t2"}
    assert decision.not_created == [3]
    two = decide(three[:2], known, tasks)
    assert sorted(two.matched) == [1, 2] and two.not_created == []


def test_lines_that_differ_only_outside_the_body_stay_in_doubt() -> None:
    # Same body, different share folders: with one task for two lines, whose is it?
    lines = [_doubt(1, "A", identity="folder-1"), _doubt(2, "A", identity="folder-2")]
    tasks = [_task("t0", _body("X")), _task("t1", _body("A"))]
    decision = decide(lines, {"t0": _known(9, "X")}, tasks)
    assert decision.matched == {} and decision.in_doubt == [1, 2]
    # With no task at all, neither was created.
    none = decide(lines, {"t0": _known(9, "X")}, tasks[:1])
    assert none.not_created == [1, 2]


def test_tasks_created_before_the_margin_are_not_candidates() -> None:
    old = T0 - CLOCK_MARGIN - timedelta(seconds=1)
    tasks = [_task("t0", _body("X")), _task("t1", _body("A"), at=old)]
    decision = decide([_doubt(1, "A")], {"t0": _known(9, "X")}, tasks)
    assert decision.matched == {} and decision.not_created == [1]
    recent = [tasks[0], _task("t1", _body("A"), at=T0 - CLOCK_MARGIN + timedelta(seconds=1))]
    assert decide([_doubt(1, "A")], {"t0": _known(9, "X")}, recent).matched == {1: "t1"}
    # A task without a readable createTime is always a candidate.
    undated = [tasks[0], _task("t1", _body("A"), at=None)]
    assert decide([_doubt(1, "A")], {"t0": _known(9, "X")}, undated).matched == {1: "t1"}


def test_a_witness_with_an_impossible_create_time_drops_the_time_bound() -> None:
    old = T0 - timedelta(hours=8)  # as if the service reported local time as UTC
    tasks = [_task("t0", _body("X"), at=old), _task("t1", _body("A"), at=old)]
    decision = decide([_doubt(1, "A")], {"t0": _known(9, "X")}, tasks)
    assert not decision.time_bound
    assert decision.matched == {1: "t1"}


def test_without_bodies_in_the_listing_nothing_is_guessed() -> None:
    known = {"t0": _known(9, "X")}
    tasks = [_task("t0", None), _task("t1", None)]
    decision = decide([_doubt(1, "A"), _doubt(2, "B")], known, tasks)
    assert decision.contradicting == 1 and decision.trusted_kinds == frozenset()
    assert decision.matched == {} and decision.in_doubt == [1, 2]
    # ... unless no unclaimed task exists at all: then nothing was created.
    alone = decide([_doubt(1, "A"), _doubt(2, "B")], known, tasks[:1])
    assert alone.not_created == [1, 2]
    # Unclaimed tasks created before the margin do not count.
    old = T0 - CLOCK_MARGIN - timedelta(minutes=1)
    stale = decide([_doubt(1, "A")], known, [tasks[0], _task("t1", None, at=old)])
    assert stale.not_created == [1]


def test_a_contradicting_witness_withdraws_trust() -> None:
    # Line 9's task shows another body: the listing does not reliably carry bodies.
    known = {"t0": _known(9, "X"), "t3": _known(8, "Y")}
    tasks = [_task("t0", _body("X")), _task("t3", _body("Q")), _task("t7", _body("R"))]
    decision = decide([_doubt(1, "A")], known, tasks)
    assert decision.contradicting == 1 and decision.in_doubt == [1]


def test_trust_is_per_kind_and_unreadable_leftovers_block_it() -> None:
    known = {"t0": _known(9, "X")}
    tasks = [_task("t0", _body("X")), _task("t5", {"unrelated": True})]
    share = LineInDoubt(2, "share", body_key({"s": 1}), "s", T0)
    decision = decide([share], known, tasks)
    # No share witness, and an unclaimed task exists: the share line stays in doubt.
    assert decision.trusted_kinds == {"job"} and decision.in_doubt == [2]
    # A job line is trusted, but an unclaimed task with an unreadable body might be it.
    blocked = decide([_doubt(1, "A")], known, [*tasks, _task("t6", None)])
    assert blocked.in_doubt == [1]


def test_no_line_is_lost_or_counted_twice() -> None:
    lines = [_doubt(n, f"M{n % 4}") for n in range(1, 13)]
    tasks = [_task(f"t{n}", _body(f"M{n % 4}")) for n in range(1, 13, 2)]
    decision = decide(lines, {}, tasks)
    parts = [*decision.matched, *decision.not_created, *decision.in_doubt]
    assert sorted(parts) == list(range(1, 13))
    assert len(set(decision.matched.values())) == len(decision.matched) == 6


def test_journal_applies_only_to_in_doubt_lines(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.sqlite") as journal:
        journal.initialize(
            plan_hash="h",
            plan_name="p",
            lines=[(n, f"h{n}", "job", None) for n in (1, 2, 3)],
        )
        for n in (1, 2, 3):
            journal.mark_submitting(n)
        journal.mark_submitted(3, "t3")
        assert journal.mark_interrupted_in_doubt() == [1, 2]
        rows = {r[0]: r for r in journal.reconciliation_rows()}
        assert rows[1][2] == State.IN_DOUBT and rows[3][3] == "t3"
        assert rows[1][4] is not None and rows[1][4].tzinfo is not None
        journal.apply_reconciliation({1: "t1", 3: "t-other"}, [2])
        records = {r.line: r for r in journal.records()}
        assert (records[1].state, records[1].task_id) == (State.SUBMITTED, "t1")
        assert records[2].state == State.PENDING and records[2].task_id is None
        assert records[3].task_id == "t3"  # not in doubt: untouched


# --------------------------------------------------------------------------- the command

# Each hits the next create_job: the task is created and then 500 / a broken 200
# is answered, or nothing is created and then 500 / the connection dropped.
_DOUBTFUL = (
    FaultKind.CREATED_BUT_500,
    FaultKind.SERVER_ERROR,
    FaultKind.MALFORMED_JSON,
    FaultKind.DROP,
)


def _inject_doubt(emu: KooDriveEmulator, kind: str = "job") -> None:
    for fault in _DOUBTFUL:
        emu.inject(fault, route=_CREATE[kind], count=1)


#: The create route of each kind of plan line these tests use.
_CREATE = {"job": "create_job", "transfer": "create_task"}

#: Both rules: jobs (job list and detail) and transfers (task list).
_KINDS = pytest.mark.parametrize("kind", ["job", "transfer"])


def _line(kind: str, marker: str) -> dict[str, Any]:
    if kind == "transfer":
        return {"kind": "transfer", "srcUserId": marker, "dstUserId": "1507947856550550784"}
    return job_line(marker)


def _plan(tmp_path: Path, markers: list[str], kind: str = "job") -> Path:
    return write_plan(tmp_path / "plan.jsonl", [_line(kind, m) for m in markers])


def _journal(tmp_path: Path) -> dict[int, dict[str, Any]]:
    return journal_rows(tmp_path / "plan.journal.sqlite")


@_KINDS
async def test_possibly_created_creates_are_settled_by_the_same_run(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path, kind: str
) -> None:
    markers = [f"F{i}" for i in range(1, 9)]
    plan = _plan(tmp_path, markers, kind)
    _inject_doubt(emu, kind)
    result = await cli("run", str(plan), "--concurrency", "1", "--json", *POLL, *SETTLE)
    assert result.code == 0, result.err
    assert "reconciliation: 2 found on the service, 2 proven not created" in result.err
    created = created_by_marker(emu)
    assert sorted(created) == sorted(markers)
    assert all(len(ids) == 1 for ids in created.values()), created
    rows = _journal(tmp_path)
    assert {r["state"] for r in rows.values()} == {"succeeded"}
    assert all(rows[n]["task_id"] == created[f"F{n}"][0] for n in rows)
    # One verdict per line on stdout: no "in_doubt" object for a settled line.
    assert sorted(o["line"] for o in result.json_lines()) == list(range(1, 9))
    assert creates_sent(emu) == 10  # 8 lines + the 2 proven not created, sent again


@_KINDS
async def test_in_doubt_lines_are_settled_by_the_next_run(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path, kind: str
) -> None:
    plan = _plan(tmp_path, ["F1", "F2", "F3", "F4", "F5"], kind)
    _inject_doubt(emu, kind)
    first = await cli(
        "run", str(plan), "--concurrency", "1", "--json", "--no-reconcile", *POLL, *SETTLE
    )
    assert first.code == 3, first.err
    in_doubt = sorted(o["line"] for o in first.json_lines() if o["state"] == "in_doubt")
    assert in_doubt == [1, 2, 3, 4]
    assert creates_sent(emu) == 5

    second = await cli("run", str(plan), "--json", *POLL, *SETTLE)
    assert second.code == 0, second.err
    assert sorted(o["line"] for o in second.json_lines()) == [1, 2, 3, 4]
    created = created_by_marker(emu)
    assert all(len(created[f"F{i}"]) == 1 for i in range(1, 6)), created
    assert {r["state"] for r in _journal(tmp_path).values()} == {"succeeded"}


@pytest.mark.parametrize("emulator_config", [False], indirect=True)
async def test_without_bodies_in_the_listing_lines_stay_in_doubt(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    # The task rule: a task list without initParams cannot tell whose task is whose.
    plan = _plan(tmp_path, ["F1", "F2", "F3", "F4", "F5", "F6"], "transfer")
    _inject_doubt(emu, "transfer")
    result = await cli("run", str(plan), "--concurrency", "1", "--json", *POLL, *SETTLE)
    assert result.code == 3, result.err
    assert "0 found on the service, 0 proven not created (sent again), 4 still in doubt" in (
        result.err
    )
    rows = _journal(tmp_path)
    assert sorted(n for n, r in rows.items() if r["state"] == "in_doubt") == [1, 2, 3, 4]
    assert sorted(o["line"] for o in result.json_lines() if o["state"] == "in_doubt") == [
        1,
        2,
        3,
        4,
    ]
    assert "lines 1, 2, 3, 4" in result.err  # the summary (on stderr with --json)
    assert creates_sent(emu) == 6  # nothing was sent again

    # A resume cannot tell either, and sends nothing.
    again = await cli("run", str(plan), *POLL, *SETTLE)
    assert again.code == 3
    assert creates_sent(emu) == 6
    # --resubmit-in-doubt forces them: the two that did exist now exist twice.
    forced = await cli("run", str(plan), "--resubmit-in-doubt", *POLL, *SETTLE)
    assert forced.code == 0, forced.err
    created = created_by_marker(emu)
    assert [len(created[f"F{i}"]) for i in range(1, 7)] == [2, 1, 2, 1, 1, 1]


@pytest.mark.parametrize("emulator_config", [False], indirect=True)
@_KINDS
async def test_without_bodies_nothing_created_is_still_provable(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path, kind: str
) -> None:
    plan = _plan(tmp_path, ["F1", "F2", "F3"], kind)
    emu.inject(FaultKind.SERVER_ERROR, route=_CREATE[kind], count=1)
    emu.inject(FaultKind.DROP, route=_CREATE[kind], count=1)
    result = await cli("run", str(plan), "--concurrency", "1", *POLL, *SETTLE)
    # No task exists that no line holds: neither in-doubt create happened.
    assert result.code == 0, result.err
    assert "2 proven not created" in result.err
    assert all(len(ids) == 1 for ids in created_by_marker(emu).values())


@_KINDS
async def test_identical_plan_lines_are_matched_count_wise(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path, kind: str
) -> None:
    # Lines 1-3 are the same request; two of them go in doubt, one really created.
    plan = _plan(tmp_path, ["D", "D", "D", "E"], kind)
    emu.inject(FaultKind.CREATED_BUT_500, route=_CREATE[kind], count=1)
    emu.inject(FaultKind.DROP, route=_CREATE[kind], count=1)
    result = await cli("run", str(plan), "--concurrency", "1", "--json", *POLL, *SETTLE)
    assert result.code == 0, result.err
    assert "1 found on the service, 1 proven not created" in result.err
    created = created_by_marker(emu)
    assert len(created["D"]) == 3 and len(created["E"]) == 1
    rows = _journal(tmp_path)
    assert sorted(rows[n]["task_id"] for n in (1, 2, 3)) == sorted(created["D"])


# --------------------------------------------------------------------------- in process


async def _journal_in_doubt(tmp_path: Path, markers: list[str]) -> tuple[Path, Journal]:
    plan_path = _plan(tmp_path, markers)
    plan = load_plan(plan_path)
    journal = Journal.open(tmp_path / "plan.journal.sqlite")
    journal.initialize(
        plan_hash=plan.plan_hash,
        plan_name="plan.jsonl",
        lines=((ln.number, ln.line_hash, ln.kind, ln.error) for ln in plan.lines),
    )
    for line in plan.lines:
        journal.mark_submitting(line.number)
    journal.mark_interrupted_in_doubt()
    return plan_path, journal


async def test_not_created_is_deferred_until_the_settle_time_has_passed(
    emu: KooDriveEmulator, tmp_path: Path
) -> None:
    plan_path, journal = await _journal_in_doubt(tmp_path, ["F1", "F2"])
    plan = load_plan(plan_path)
    with journal:
        async with KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN) as session:
            # Line 1's create did reach the service; line 2's did not.
            task_id = await session.submit(request_from_body("job", _body("F1")))
            just_now = datetime.now(UTC)
            first = await reconcile_in_doubt(
                plan, journal, session, sent_before={1: just_now, 2: just_now}, settle=60.0
            )
            assert first.decision.matched == {1: task_id}
            # Listed moments after line 2 may have been sent: not yet taken as proof.
            assert first.resent == [] and first.deferred == [2]
            records = {r.line: r for r in journal.records()}
            assert records[1].state == State.SUBMITTED and records[1].task_id == task_id
            assert records[2].state == State.IN_DOUBT

            long_ago = just_now - timedelta(seconds=61)
            second = await reconcile_in_doubt(
                plan, journal, session, sent_before={2: long_ago}, settle=60.0
            )
            assert second.resent == [2] and second.deferred == []
            assert {r.line: r.state for r in journal.records()} == {
                1: State.SUBMITTED,
                2: State.PENDING,
            }


@_KINDS
async def test_a_failed_listing_leaves_the_lines_in_doubt(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path, kind: str
) -> None:
    plan = _plan(tmp_path, ["F1", "F2"], kind)
    emu.inject(FaultKind.CREATED_BUT_500, route=_CREATE[kind], count=1)
    listing = "list_jobs" if kind == "job" else "list_tasks"
    emu.inject(FaultKind.SERVER_ERROR, route=listing)  # every listing fails
    result = await cli("run", str(plan), "--concurrency", "1", "--json", *POLL, *SETTLE)
    assert result.code == 3, result.err
    assert "could not list the tasks or jobs" in result.err
    rows = _journal(tmp_path)
    assert rows[1]["state"] == "in_doubt" and rows[2]["state"] == "succeeded"
    emu.clear_faults()
    again = await cli("run", str(plan), *POLL, *SETTLE)
    assert again.code == 0, again.err
    assert len(created_by_marker(emu)["F1"]) == 1


class _LineChangesWhileListed:
    """A session whose listing sees line 2 go in doubt again while it is read."""

    def __init__(self, session: KooDriveSession, journal: Journal) -> None:
        self._session = session
        self._journal = journal

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    async def list_jobs(self, **kwargs: Any) -> Any:
        page = await self._session.list_jobs(**kwargs)
        # Another worker (or a second attempt) sends line 2 now: its job may
        # be created after this page was read.
        if self._journal.record(2) is not None and self._journal.record(2).state == "in_doubt":  # type: ignore[union-attr]
            self._journal.apply_reconciliation({}, [2])
            self._journal.mark_submitting(2)
            self._journal.mark_finished(2, state="in_doubt")
        return page


async def test_a_line_in_doubt_again_while_listed_is_not_declared_not_created(
    emu: KooDriveEmulator, tmp_path: Path
) -> None:
    plan_path, journal = await _journal_in_doubt(tmp_path, ["F1", "F2"])
    plan = load_plan(plan_path)
    with journal:
        async with KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN) as session:
            task_id = await session.submit(request_from_body("job", _body("F1")))
            long_ago = datetime.now(UTC) - timedelta(seconds=61)
            done = await reconcile_in_doubt(
                plan,
                journal,
                _LineChangesWhileListed(session, journal),  # type: ignore[arg-type]
                sent_before={1: long_ago, 2: long_ago},
                settle=60.0,
            )
            assert done.decision.matched == {1: task_id}
            # Without the check, line 2 (settled long ago, by what the caller
            # knew) would be sent again although its new create may exist.
            assert done.resent == [] and done.deferred == [2]
            assert journal.record(2).state == State.IN_DOUBT  # type: ignore[union-attr]
