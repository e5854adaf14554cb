"""Progress display and the end-of-run summary of ``run`` and ``demo``.

Three reporters implement the bulk wing's :class:`~koodrive_async.bulk.Progress`:
a rich progress bar (when ``rich`` is importable and stdout is a terminal), a
plain-text fallback, and ``--json`` (one JSON object per finished line on
stdout). They also word the run's stop notices with the command's own flags
(:func:`stop_text`). ``rich`` is imported lazily, here only: the library
never imports it.

Must never import: ``argparse``, the other ``cli`` modules.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from typing import IO, Any

import attrs

from ..bulk import (
    LineRecord,
    Outcome,
    PlanCounts,
    Progress,
    RunResult,
    RunStats,
    State,
    Stop,
    StopReason,
)
from ..bulk._mask import mask

__all__ = [
    "JsonReporter",
    "line_json",
    "plan_json",
    "PlainReporter",
    "Summary",
    "make_reporter",
    "print_summary",
    "rich_available",
    "stop_text",
]


def rich_available() -> bool:
    """True when the optional ``rich`` package can be imported."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _wait_text(seconds: float | None) -> str:
    if seconds is None:
        return "a while"
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 120:
        return f"{seconds:.0f} s (about {minutes:.0f} min)"
    return f"{seconds:.0f} s (about {minutes / 60:.1f} h)"


def stop_text(notice: Stop) -> str:
    """The message for a run that stopped submitting by itself, naming what to do next."""
    if notice.reason is StopReason.UNREACHABLE:
        return (
            f"stopping: cannot connect to {notice.base_url}: {notice.count} create requests in "
            f"a row could not connect and none got through (last: {notice.error_type}: "
            f"{notice.error}). Nothing was sent for them; they and the lines not yet sent stay "
            "pending. Check the URL (--base-url or KOODRIVE_BASE_URL) and the network, then "
            "run again."
        )
    if notice.reason is StopReason.RATE_LIMITED:
        return (
            f"stopping: the service asks to wait {_wait_text(notice.retry_after)} before the "
            "next create (429 Retry-After), longer than a run waits for it; nothing was created "
            "for the lines refused, and they and the lines not yet sent stay pending (the "
            "lines already submitted are still waited for). Run the same command again after "
            "that wait."
        )
    if notice.error_type == "CredentialsError":
        return (
            f"stopping: no token could be obtained ({notice.error}); nothing was sent for that "
            "line, and it and the lines not yet sent stay pending. Fix the credentials and run "
            "again."
        )
    return (
        f"stopping: the service refused the credentials ({notice.error}); the lines not yet "
        "sent stay pending. Fix the token or user id and run again with --retry-rejected."
    )


def line_json(record: LineRecord) -> str:
    """One finished line as ``--json`` prints it (masked: a download link loses its query).

    ``outcome`` says how a job or share task ended (``succeeded``,
    ``partially_failed``, ``all_failed``, ``failed``, ``cancelled``; null for
    transfers, imports and lines that never ran), ``failed_files`` the ids of
    its failed files.
    """
    return json.dumps(
        mask(
            {
                "line": record.line,
                "state": record.state,
                "task_id": record.task_id,
                "result_code": record.result_code,
                "error": record.error,
                "outcome": record.outcome,
                "failed_files": list(record.failed_files),
                "download_url": record.download_url,
            }
        ),
        ensure_ascii=False,
    )


def plan_json(plan: PlanCounts) -> dict[str, object]:
    """The whole plan's counts as the JSON log shows them (``--log-format json``)."""
    return {
        "lines": plan.total,
        "done": plan.finished,
        "states": dict(sorted(plan.states.items())),
        "holders": dict(sorted(plan.holders.items())),
    }


class JsonReporter:
    """``--json``: one JSON object per finished line on ``out``; messages on ``err``."""

    def __init__(self, out: IO[str], err: IO[str]) -> None:
        self._out = out
        self._err = err

    def start(self, stats: RunStats) -> None:
        """Nothing to show at the start."""

    def update(self) -> None:
        """Counters are not shown in JSON mode."""

    def line_done(self, record: LineRecord) -> None:
        """Print the line's verdict as one JSON object."""
        self._out.write(line_json(record) + "\n")
        self._out.flush()

    def message(self, text: str) -> None:
        """Print a message on stderr (stdout stays pure JSON Lines)."""
        self._err.write(mask(text) + "\n")
        self._err.flush()

    def stopping(self, notice: Stop) -> None:
        """Tell why the run stopped submitting (on stderr)."""
        self.message(stop_text(notice))

    def stop(self) -> None:
        """Nothing to release."""


def _status_text(stats: RunStats) -> str:
    if stats.plan is None:
        return f"{stats.finished}/{stats.total} done · " + _counters(stats)
    return f"{_plan_text(stats.plan)} | {_own_text(stats)}"


def _own_text(stats: RunStats) -> str:
    # No "/total": with many workers, this one's share is known only at the end.
    return f"this worker ({stats.worker}): {stats.finished} done · " + _counters(stats)


def _plan_text(plan: PlanCounts) -> str:
    """The whole plan, every worker's lines: done/total, verdicts, who holds how many."""
    in_doubt = plan.count(State.IN_DOUBT)
    text = (
        f"plan {plan.finished}/{plan.total} done · {plan.count(State.SUCCEEDED)} succeeded · "
        f"{plan.count(State.FAILED)} failed" + (f" · {in_doubt} in doubt" if in_doubt else "")
    )
    if plan.holders:
        text += " · held: " + " · ".join(f"{w} {n}" for w, n in sorted(plan.holders.items()))
    return text


class PlainReporter:
    """Plain text: a self-rewriting status line on a terminal, periodic lines otherwise.

    Args:
        out: Where the status goes.
        tty: Whether ``out`` is a terminal.
        interval: Seconds between two status lines when not on a terminal.
    """

    def __init__(self, out: IO[str], *, tty: bool, interval: float = 5.0) -> None:
        self._out = out
        self._tty = tty
        self._interval = interval if not tty else 0.1
        self._last = 0.0
        self._stats: RunStats | None = None
        self._dirty = False

    def start(self, stats: RunStats) -> None:
        """Remember the counters to show."""
        self._stats = stats
        self._last = time.monotonic()

    def _show(self, force: bool = False) -> None:
        stats = self._stats
        if stats is None:
            return
        now = time.monotonic()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        if self._tty:
            # One terminal line, or the rewrite leaves the wrapped rest behind
            # (a shared plan's status is long).
            width = shutil.get_terminal_size((100, 24)).columns - 1
            self._out.write("\r\x1b[2K" + _status_text(stats)[: max(width, 20)])
            self._dirty = True
        else:
            self._out.write("progress: " + _status_text(stats) + "\n")
        self._out.flush()

    def update(self) -> None:
        """Show the counters, at most every ``interval`` seconds."""
        self._show()

    def line_done(self, record: LineRecord) -> None:  # noqa: ARG002 - part of the interface
        """Show the counters (throttled)."""
        self._show()

    def message(self, text: str) -> None:
        """Print a message on its own line."""
        if self._dirty:
            self._out.write("\r\x1b[2K")
            self._dirty = False
        self._out.write(mask(text) + "\n")
        self._out.flush()

    def stopping(self, notice: Stop) -> None:
        """Tell why the run stopped submitting."""
        self.message(stop_text(notice))

    def stop(self) -> None:
        """Show the final counters and end the status line."""
        if self._stats is not None and self._stats.total:
            self._show(force=True)
        if self._dirty:
            self._out.write("\n")
            self._dirty = False
        self._out.flush()


class _RichReporter:
    """A rich progress bar (done/total, elapsed, ETA) with a line of counters under it:
    submitted, in flight, succeeded, failed, in doubt, rate.

    With a journal many workers share, the bar is the whole plan's (every
    worker's lines), a line under it tells the plan's verdicts and who holds
    how many lines, and the counters are this worker's.
    """

    def __init__(self, out: IO[str]) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        reporter = self
        self._stats: RunStats | None = None
        self._task: Any = None

        class _Progress(Progress):
            # Two lines: the bar, then the counters (too many for one 80-column line).
            def get_renderables(self) -> Any:
                yield self.make_tasks_table(self.tasks)
                stats = reporter._stats
                if stats is not None and stats.plan is not None:
                    yield Text(_plan_text(stats.plan))
                    yield Text(_own_text(stats), style="dim")
                elif stats is not None:
                    yield Text(_counters(stats), style="dim")

        self.console = Console(file=out)
        self._progress = _Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
            refresh_per_second=8,
            expand=False,
        )

    def start(self, stats: RunStats) -> None:
        """Show the bar."""
        self._stats = stats
        self._progress.start()
        self._task = self._progress.add_task("jobs", total=stats.total)
        self.update()

    def update(self) -> None:
        """Refresh the counters (the whole plan's bar when many workers share it)."""
        stats = self._stats
        if stats is None or self._task is None:
            return
        if stats.plan is not None:
            plan = stats.plan
            self._progress.update(
                self._task, total=plan.total, completed=plan.finished, description="plan"
            )
        else:
            self._progress.update(self._task, completed=stats.finished)

    def line_done(self, record: LineRecord) -> None:  # noqa: ARG002 - part of the interface
        """Advance the bar."""
        self.update()

    def message(self, text: str) -> None:
        """Print above the bar."""
        self._progress.console.print(mask(text), markup=False, highlight=False)

    def stopping(self, notice: Stop) -> None:
        """Tell why the run stopped submitting, above the bar."""
        self.message(stop_text(notice))

    def stop(self) -> None:
        """Leave the final bar on screen."""
        self.update()
        self._progress.refresh()
        self._progress.stop()


def _counters(stats: RunStats) -> str:
    return (
        f"{stats.submitted} submitted · {stats.in_flight} in flight · "
        f"{stats.succeeded} succeeded · {stats.failed} failed"
        + (f" · {stats.in_doubt} in doubt" if stats.in_doubt else "")
        + f" · {stats.rate:.1f} jobs/s"
    )


def make_reporter(
    mode: str, *, out: IO[str] | None = None, err: IO[str] | None = None
) -> tuple[Progress, bool]:
    """Choose the reporter.

    Args:
        mode: ``json``, ``rich``, ``plain`` or ``auto`` (rich on a terminal when
            available, plain otherwise).
        out: Standard output (default ``sys.stdout``).
        err: Standard error (default ``sys.stderr``).

    Returns:
        The reporter, and whether the summary should be drawn with rich.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    if mode == "json":
        return JsonReporter(out, err), False
    tty = bool(getattr(out, "isatty", lambda: False)())
    if mode == "rich" or (mode == "auto" and tty and rich_available()):
        return _RichReporter(out), True
    # Off a terminal the periodic status lines go to stderr, so that stdout
    # carries nothing but the summary.
    return (PlainReporter(out, tty=True) if tty else PlainReporter(err, tty=False)), False


@attrs.frozen
class Summary:
    """The end-of-run report.

    Attributes:
        plan: The plan file's name.
        journal: The journal file's path.
        lines: Lines in the plan.
        counts: Lines per journal state (the whole plan, all runs).
        failures: ``(reason, count)`` of the failed lines.
        in_doubt: The in-doubt lines.
        in_flight: Lines submitted and not finished (when the run was cut short).
        unacknowledged: Lines sent (or about to be) without a recorded answer.
        finished_now: Lines brought to an end by this run.
        submitted_now: Tasks this run created (0: every create was refused, or none sent).
        requests: HTTP requests this run made.
        wall_time: Seconds this run took.
        interrupted: The run was stopped by a signal.
        exit_code: The process exit code.
        outcomes: Finished lines per job outcome (partially failed, cancelled, ...).
        holders: ``{worker id: lines it holds}`` at the end (a many-worker
            journal's; empty for SQLite).
    """

    plan: str
    journal: str
    lines: int
    counts: dict[str, int]
    failures: list[tuple[str, int]]
    in_doubt: list[LineRecord]
    in_flight: list[LineRecord]
    unacknowledged: list[int]
    finished_now: int
    requests: int
    wall_time: float
    interrupted: bool
    exit_code: int
    submitted_now: int = 0
    outcomes: dict[str, int] = attrs.field(factory=dict)
    holders: dict[str, int] = attrs.field(factory=dict)

    @classmethod
    def of(
        cls,
        result: RunResult,
        *,
        plan: str,
        journal: str,
        lines: int,
        wall_time: float,
        exit_code: int,
        holders: dict[str, int] | None = None,
    ) -> Summary:
        """The summary of a bulk run's result (``holders``: who holds lines of the plan now)."""
        return cls(
            plan=plan,
            journal=journal,
            lines=lines,
            counts=result.counts,
            failures=result.failures,
            in_doubt=result.in_doubt,
            in_flight=result.in_flight,
            unacknowledged=result.unacknowledged,
            finished_now=result.finished_now,
            requests=result.requests,
            wall_time=wall_time,
            interrupted=result.interrupted,
            exit_code=exit_code,
            submitted_now=result.submitted_now,
            outcomes=result.outcomes,
            holders=dict(holders or {}),
        )

    @property
    def jobs_per_second(self) -> float:
        """Lines finished by this run per second of wall time."""
        return self.finished_now / self.wall_time if self.wall_time > 0 else 0.0

    def rows(self) -> list[tuple[str, str]]:
        """The summary as (label, value) rows, failures indented under "failed"."""
        c = self.counts
        rows: list[tuple[str, str]] = [
            ("lines in plan", str(self.lines)),
            ("succeeded", str(c.get(State.SUCCEEDED, 0))),
            ("failed", str(c.get(State.FAILED, 0) + c.get(State.INVALID, 0))),
        ]
        rows += [(f"  {reason}", str(count)) for reason, count in self.failures]
        # How the failed jobs ended, whatever their result codes.
        for outcome, label in _OUTCOME_ROWS:
            if self.outcomes.get(outcome, 0):
                rows.append((label, str(self.outcomes[outcome])))
        in_doubt = c.get(State.IN_DOUBT, 0) + c.get(State.SUBMITTING, 0)
        rows.append(("in doubt", str(in_doubt)))
        if c.get(State.SUBMITTED, 0):
            rows.append(("still running (resume to wait)", str(c.get(State.SUBMITTED, 0))))
        if c.get(State.PENDING, 0):
            rows.append(("not started", str(c.get(State.PENDING, 0))))
        rows += [
            ("finished in this run", str(self.finished_now)),
            ("requests made", str(self.requests)),
            ("wall time", f"{self.wall_time:.1f} s"),
        ]
        # Refusals come back at once: a rate of them says nothing about throughput.
        if self.submitted_now:
            rows.append(("jobs per second", f"{self.jobs_per_second:.1f}"))
        return rows


#: The job outcomes the summary counts, with their labels.
_OUTCOME_ROWS = (
    (Outcome.PARTIALLY_FAILED, "  of which partially failed jobs"),
    (Outcome.ALL_FAILED, "  of which jobs with every file failed"),
    (Outcome.CANCELLED, "  of which cancelled"),
)


def _abbreviate(numbers: list[int], limit: int = 20) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f", … ({len(numbers) - limit} more)" if len(numbers) > limit else "")


def _notes(summary: Summary) -> list[str]:
    notes: list[str] = []
    if summary.in_doubt:
        notes.append(
            "in doubt (the create may or may not have happened, and the service's task and "
            "job lists could not tell; check the service, then run again with "
            "--resubmit-in-doubt to send them again): lines "
            + _abbreviate([r.line for r in summary.in_doubt])
        )
    if summary.unacknowledged:
        notes.append(
            "sent or about to be sent when the run stopped, no answer recorded (in doubt on "
            "the next run): lines " + _abbreviate(summary.unacknowledged)
        )
    if summary.in_flight:
        shown = summary.in_flight[:20]
        notes.append(
            "still running on the service (the next run waits for them): "
            + ", ".join(f"line {r.line} task {r.task_id}" for r in shown)
            + (f", … ({len(summary.in_flight) - 20} more)" if len(summary.in_flight) > 20 else "")
        )
    if summary.holders:
        # The counts above are the whole plan's; these lines are still moving.
        notes.append(
            "held by workers now: "
            + ", ".join(
                f"{worker} holds {count} line(s)"
                for worker, count in sorted(summary.holders.items())
            )
        )
    if summary.interrupted:
        notes.append("interrupted: run the same command again to continue")
    return notes


def print_summary(summary: Summary, *, use_rich: bool, out: IO[str]) -> None:
    """Print the summary table and the notes about in-doubt and running lines.

    Args:
        summary: What to print.
        use_rich: Draw a rich table (only when rich is available).
        out: Where to print.
    """
    title = mask(f"summary: {summary.plan}")
    rows = [(mask(label), mask(value)) for label, value in summary.rows()]
    notes = [mask(note) for note in _notes(summary)]
    journal = mask(summary.journal)
    if use_rich and rich_available():
        from rich.console import Console
        from rich.table import Table

        console = Console(file=out)
        table = Table(title=title, show_header=False)
        table.add_column("what")
        table.add_column("count", justify="right")
        for label, value in rows:
            table.add_row(label, value)
        console.print(table)
        console.print(f"journal: {journal}", markup=False, highlight=False)
        for note in notes:
            console.print(note, markup=False, highlight=False)
        return
    width = max(len(label) for label, _ in rows)
    out.write(f"{title} (journal {journal})\n")
    for label, value in rows:
        out.write(f"  {label.ljust(width)}  {value.rjust(8)}\n")
    for note in notes:
        out.write(note + "\n")
    out.flush()
