"""The progress display of ``run``: this run's counters, and a shared plan's as a whole.

With a journal many workers share, the runner reads the whole plan's counts
(``RunStats.plan``) every few seconds; the displays show them first, with
how many lines each worker holds, then this worker's own counters. With a
one-machine journal (``plan`` None) they are as they always were. The
end-to-end case (two workers, a real PostgreSQL) is in
``tests/postgres/test_pg_workers.py``.
"""

from __future__ import annotations

import io
import json

from koodrive_async.bulk import PlanCounts, RunStats, State
from koodrive_async.cli._jsonlog import JsonLogReporter
from koodrive_async.cli._progress import PlainReporter, make_reporter

PLAN = PlanCounts(
    {State.SUCCEEDED: 4, State.FAILED: 1, State.SUBMITTED: 2, State.PENDING: 1, State.INVALID: 3},
    {"w2": 1, "w1": 2},
)


def _stats(plan: PlanCounts | None = None) -> RunStats:
    return RunStats(
        total=5, submitted=3, in_flight=1, succeeded=2, failed=1, plan=plan, worker="w1"
    )


def _plain(stats: RunStats) -> str:
    out = io.StringIO()
    reporter = PlainReporter(out, tty=False)
    reporter.start(stats)
    reporter.stop()
    return out.getvalue().strip()


def test_plan_counts_total_leaves_invalid_lines_out_and_finished_counts_verdicts() -> None:
    assert (PLAN.total, PLAN.finished, PLAN.count(State.IN_DOUBT)) == (8, 5, 0)
    assert PlanCounts().total == 0


def test_a_one_machine_runs_status_is_its_own_counters() -> None:
    text = _plain(_stats())
    assert text.startswith("progress: 3/5 done · 3 submitted · 1 in flight · 2 succeeded · ")
    assert "plan" not in text and "worker" not in text


def test_a_shared_plans_status_is_the_whole_plan_then_this_workers_share() -> None:
    text = _plain(_stats(PLAN))
    assert text.startswith(
        "progress: plan 5/8 done · 4 succeeded · 1 failed · held: w1 2 · w2 1 | "
        "this worker (w1): 3 done · 3 submitted · 1 in flight · 2 succeeded · 1 failed · "
    ), text
    doubt = PlanCounts({State.IN_DOUBT: 2, State.SUCCEEDED: 1})
    assert "plan 3/3 done · 1 succeeded · 0 failed · 2 in doubt | " in _plain(_stats(doubt))


def test_the_rich_bar_is_the_whole_plans_when_it_is_shared() -> None:
    out = io.StringIO()
    reporter, _ = make_reporter("rich", out=out)
    stats = _stats()
    reporter.start(stats)
    task = reporter._progress.tasks[0]  # type: ignore[attr-defined]
    assert (task.total, task.completed) == (5, 3)  # this run's lines (one machine)
    stats.plan = PLAN
    reporter.update()
    assert (task.total, task.completed, task.description) == (8, 5, "plan")
    reporter.stop()
    shown = out.getvalue()
    assert "held: w1 2 · w2 1" in shown and "this worker (w1): 3 done" in shown


def test_the_json_log_tells_the_plan_at_each_read_and_at_the_end() -> None:
    err = io.StringIO()
    reporter = JsonLogReporter(err)
    stats = _stats(PLAN)
    reporter.start(stats)
    reporter.update()  # no new read of the plan: nothing logged
    stats.plan = PlanCounts({State.SUCCEEDED: 8}, {})
    reporter.update()
    reporter.stop()
    events = [json.loads(line) for line in err.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["start", "progress", "stop"]
    assert events[0]["plan"] == {
        "lines": 8,
        "done": 5,
        "states": dict(sorted(PLAN.states.items())),
        "holders": {"w1": 2, "w2": 1},
    }
    assert events[1]["plan"]["done"] == 8 and events[1]["worker"] == "w1"
    assert events[1]["finished"] == 3 and events[2]["plan"]["holders"] == {}
    # A one-machine run logs no plan.
    alone = io.StringIO()
    one = JsonLogReporter(alone)
    one.start(_stats())
    one.update()
    one.stop()
    assert all("plan" not in json.loads(line) for line in alone.getvalue().splitlines())


def test_a_terminals_status_line_fits_one_line(monkeypatch) -> None:
    # Rewritten in place with \r: a wrapped line would leave its rest behind.
    monkeypatch.setenv("COLUMNS", "60")
    out = io.StringIO()
    reporter = PlainReporter(out, tty=True)
    reporter.start(_stats(PLAN))
    reporter.stop()
    shown = out.getvalue().replace("\r\x1b[2K", "\n").strip().splitlines()
    assert shown and all(len(line) <= 59 for line in shown), shown
    assert shown[-1].startswith("plan 5/8 done")
