"""The ``koodrive-async`` argument parser: one function per subcommand.

Owns every flag, its type check and its help text (the documented command
line, docs/command-line.md). Parsing only: nothing here runs a command.

Must never import: ``rich``, the bulk runner, the session.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import __version__
from .._enums import JobStatus, JobType, TaskStatus, TaskType
from ..bulk import MAX_LIST_PAGES, SETTLE_SECONDS
from ._codes import PROG
from ._connect import (
    ENV_AGENT_NAME,
    ENV_APP_ID,
    ENV_APP_SECRET,
    ENV_BASE_URL,
    ENV_CREDENTIALS,
    ENV_REFRESH_TOKEN,
    ENV_SESSION_ID,
    ENV_TOKEN,
    ENV_USER_ID,
)
from ._report import FORMATS

__all__ = ["EPILOG", "PROG", "build_parser"]

EPILOG = f"""\
connection settings come from the flags or the environment: {ENV_BASE_URL}, {ENV_USER_ID},
{ENV_TOKEN} (prefer the environment for the token: command lines are visible to other users),
{ENV_AGENT_NAME} (needed by share tasks). The token is never printed.
credentials that last: {ENV_APP_ID} and {ENV_APP_SECRET} (every request signed); or the token
with {ENV_SESSION_ID} (a session token, renewed by itself) or {ENV_REFRESH_TOKEN} (a carrier
token, renewed by itself); or --credentials FILE ({ENV_CREDENTIALS}): a JSON object with
base_url, user_id, agent_name, access_token, session_id, refresh_token, expires_in, app_id,
app_secret, refused unless mode 0600 and rewritten (atomically, 0600) with the newest tokens.

exit codes of run: 0 every line succeeded; 1 some failed (or were skipped or not finished);
2 usage or plan error (nothing was sent); 3 some lines are in doubt; 130 interrupted;
141 stdout closed early (`| head`).
"""


# ---------------------------------------------------------------------- argument types


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _float_arg(text: str, *, low: float, high: float, low_open: bool, what: str) -> float:
    """Parse a number for argparse and keep it within [low, high] (low excluded if low_open)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    # Written so that NaN, which compares false with everything, is refused too.
    above_low = value > low if low_open else value >= low
    if not (above_low and value <= high):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value


def _positive_float(text: str) -> float:
    return _float_arg(
        text, low=0.0, high=sys.float_info.max, low_open=True, what="a positive number"
    )


def _non_negative_float(text: str) -> float:
    return _float_arg(text, low=0.0, high=sys.float_info.max, low_open=False, what="a number >= 0")


def _fraction(text: str) -> float:
    return _float_arg(text, low=0.0, high=1.0, low_open=False, what="within 0..1")


def _enum_value(
    enum_cls: type[TaskStatus] | type[TaskType] | type[JobStatus] | type[JobType], text: str
) -> int:
    try:
        return int(enum_cls[text.upper()])
    except KeyError:
        pass
    try:
        return int(enum_cls(int(text)))
    except ValueError:
        allowed = ", ".join(f"{m.name} ({m.value})" for m in enum_cls)
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {allowed}") from None


def _status(text: str) -> int:
    return _enum_value(TaskStatus, text)


def _task_type(text: str) -> int:
    return _enum_value(TaskType, text)


def _job_status(text: str) -> int:
    return _enum_value(JobStatus, text)


def _job_type(text: str) -> int:
    return _enum_value(JobType, text)


# ---------------------------------------------------------------------- shared options


def _connection_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """The connection flags, accepted before the subcommand (``top``) and after it.

    After the subcommand they default to ``SUPPRESS``: argparse copies a
    subparser's defaults over the top-level values, so a real default there
    would erase a flag given before the subcommand.
    """
    default = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("connection (default: the environment)")
    group.add_argument("--base-url", default=default, help=f"service root URL (env {ENV_BASE_URL})")
    group.add_argument("--user-id", default=default, help=f"the X-User-Id (env {ENV_USER_ID})")
    group.add_argument(
        "--token",
        default=default,
        help=f"access token (env {ENV_TOKEN}; the environment is safer)",
    )
    group.add_argument(
        "--credentials",
        default=default,
        metavar="FILE",
        help=f"JSON credentials file, mode 0600, kept up to date (env {ENV_CREDENTIALS})",
    )
    group.add_argument(
        "--agent-name",
        default=default,
        help=f"X-Hw-Agentname for share tasks (env {ENV_AGENT_NAME})",
    )
    group.add_argument(
        "--allow-insecure-http",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="allow an http:// base URL to a host other than this machine (the token then "
        "travels in clear text)",
    )


def _poll_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--poll-interval",
        type=_positive_float,
        default=None,
        metavar="S",
        help="first interval between two status checks of a task (default 0.5; grows x1.5)",
    )


# ---------------------------------------------------------------------- subcommands


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="run a realistic plan on the embedded emulator",
        description="Start the emulator on loopback, write a realistic plan (copies, moves, "
        "recycle-bin deletes, a transfer, a share package; a few percent of the tasks fail "
        "on purpose) and run it exactly as `run` would, with the progress bar and the "
        "summary. Exits 0 when the run completed, failed tasks included.",
    )
    demo.add_argument(
        "--jobs", type=_positive_int, default=1000, metavar="N", help="plan lines (default 1000)"
    )
    demo.add_argument(
        "--concurrency",
        type=_positive_int,
        default=64,
        metavar="N",
        help="tasks in flight (default 64)",
    )
    demo.add_argument("--seed", type=int, default=None, help="seed (default: random)")
    demo.add_argument(
        "--failure-rate",
        type=_fraction,
        default=0.03,
        help="share of the tasks the emulator fails (default 0.03)",
    )
    demo.add_argument(
        "--keep", type=Path, default=None, metavar="DIR", help="write plan and journal to DIR"
    )
    demo.add_argument(
        "--progress",
        choices=("auto", "plain", "rich", "json"),
        default="auto",
        help="progress display (default: a bar on a terminal)",
    )


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "run",
        help="run (or resume) a JSON Lines plan, exactly once per line",
        description="Validate every line of PLAN, then submit each line once and wait for "
        "it, recording everything in a SQLite journal. Running the same command again "
        "resumes: finished lines are skipped, submitted ones are waited for, and lines "
        "interrupted between sending and recording (in doubt) are looked up in the "
        "service's task list (batch jobs: its job list and job detail): found ones are "
        "waited for, ones proven not created are sent, the others are reported as in doubt.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("plan", type=Path, metavar="PLAN.jsonl")
    run.add_argument(
        "--journal",
        default=None,
        metavar="PATH|URL",
        help="the journal: a SQLite file (default: PLAN.journal.sqlite beside the plan), or a "
        "postgresql:// URL that many workers share (koodrive-async[postgres]; default from "
        "KOODRIVE_JOURNAL_URL)",
    )
    run.add_argument(
        "--worker-id",
        default=None,
        metavar="W",
        help="this worker's name in a PostgreSQL journal (default: host, pid and a random part)",
    )
    run.add_argument(
        "--lease",
        type=_positive_float,
        default=60.0,
        metavar="SECONDS",
        help="how long a worker's claim on its lines lasts unless renewed (PostgreSQL journal; "
        "default 60): a stopped worker's lines move to the others after this",
    )
    run.add_argument(
        "--x-date-window",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="how old an X-Date the service accepts (PostgreSQL journal; default 900, the "
        "pages' 15 minutes): a line a stopped worker left being sent is declared not created "
        "only this long, plus --fence-margin, after that worker's lease ended",
    )
    run.add_argument(
        "--fence-margin",
        type=_non_negative_float,
        default=None,
        metavar="SECONDS",
        help="added to --x-date-window for clocks that disagree (default 120)",
    )
    run.add_argument(
        "--concurrency",
        type=_positive_int,
        default=16,
        metavar="N",
        help="tasks in flight (default 16)",
    )
    run.add_argument(
        "--rate", type=_positive_float, default=None, metavar="R", help="most submissions/second"
    )
    run.add_argument(
        "--timeout",
        type=_positive_float,
        default=None,
        metavar="S",
        help="longest wait for one task (it is waited for again on the next run)",
    )
    run.add_argument(
        "--json", action="store_true", help="one JSON object per finished line on stdout"
    )
    run.add_argument(
        "--progress",
        choices=("auto", "plain", "rich"),
        default="auto",
        help="progress display (default: a bar on a terminal)",
    )
    run.add_argument(
        "--skip-invalid", action="store_true", help="run the valid lines despite invalid ones"
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="validate every line and show what would be sent (counts, first bodies masked); "
        "send nothing, read nothing from the service, write no journal",
    )
    run.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="FILE",
        help="write one row per finished line to FILE as the run goes (JSON Lines for .jsonl, "
        "CSV for .csv)",
    )
    run.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="json: one JSON log object per event on stderr (start, each line, messages, "
        "the summary) instead of the progress display",
    )
    _add_run_recovery(run)
    _poll_option(run)
    _connection_options(run)


def _add_run_recovery(run: argparse.ArgumentParser) -> None:
    """The options about lines in doubt and refused lines."""
    run.add_argument(
        "--resubmit-in-doubt",
        action="store_true",
        help="send again the in-doubt lines the reconciliation could not settle (they may "
        "then exist twice)",
    )
    run.add_argument(
        "--settle-time",
        type=_non_negative_float,
        default=SETTLE_SECONDS,
        metavar="S",
        help="seconds after a create may have been sent before the task or job list may show it "
        f"was not created (default {SETTLE_SECONDS:g}; raise it behind a slow proxy)",
    )
    run.add_argument(
        "--max-list-pages",
        type=_positive_int,
        default=MAX_LIST_PAGES,
        metavar="N",
        help="most task-list (and job-list) pages of up to 100 one reconciliation reads; a "
        f"longer listing leaves the in-doubt lines in doubt (default {MAX_LIST_PAGES})",
    )
    run.add_argument(
        "--no-reconcile",
        dest="reconcile",
        action="store_false",
        help="do not look for the in-doubt lines' tasks and jobs in the service's task and "
        "job lists; leave them in doubt",
    )
    run.add_argument(
        "--retry-rejected",
        action="store_true",
        help="send again the lines whose create was refused (nothing was created for them)",
    )
    run.add_argument(
        "--retry-failed",
        action="store_true",
        help="send again the lines whose task the service reported FAILED; after a partial "
        "failure only the failed files, as a new job of the same kind. Never a line in doubt, "
        "a refused line (--retry-rejected) or a cancelled job",
    )


def _add_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser(
        "report",
        help="one row per plan line, from the journal (what failed, and why)",
        description="Read the journal of PLAN and print one row per plan line: line number, "
        "kind, state and verdict, task id, result code and its documented meaning, error, "
        "attempts and times. Reads nothing from the service.",
    )
    report.add_argument("plan", type=Path, metavar="PLAN.jsonl")
    report.add_argument(
        "--journal",
        default=None,
        metavar="PATH|URL",
        help="the journal: a SQLite file (default: PLAN.journal.sqlite beside the plan) or a "
        "postgresql:// URL (the whole plan, every worker; default from KOODRIVE_JOURNAL_URL)",
    )
    report.add_argument(
        "--failed", action="store_true", help="only the failed, refused and invalid lines"
    )
    report.add_argument(
        "--format", dest="fmt", choices=FORMATS, default="table", help="output (default table)"
    )
    report.add_argument(
        "--html",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write a self-contained HTML page (summary, failures, charts) to FILE",
    )


def _add_task(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    task = sub.add_parser("task", help="look up and wait for tasks")
    task_sub = task.add_subparsers(dest="task_command", metavar="ACTION", required=True)
    get = task_sub.add_parser("get", help="show one task")
    get.add_argument("task_id", metavar="ID")
    get.add_argument("--json", action="store_true", help="print the task as JSON")
    _connection_options(get)

    lst = task_sub.add_parser("list", help="list tasks (all pages)")
    lst.add_argument(
        "--type",
        dest="task_type",
        type=_task_type,
        default=None,
        help="TRANSFER (0) or BATCH_IMPORT (1)",
    )
    lst.add_argument(
        "--status",
        type=_status,
        nargs="+",
        action="extend",
        default=None,
        help="NEW, EXECUTING, SUCCESS, FAILED (or 0-3); several allowed",
    )
    lst.add_argument(
        "--page-size", type=_positive_int, default=100, metavar="N", help="tasks per page (max 100)"
    )
    lst.add_argument("--json", action="store_true", help="one JSON object per task")
    _connection_options(lst)

    wait = task_sub.add_parser("wait", help="wait for tasks to finish")
    wait.add_argument("task_ids", metavar="ID", nargs="+")
    wait.add_argument(
        "--timeout", type=_positive_float, default=None, metavar="S", help="longest wait"
    )
    wait.add_argument("--json", action="store_true", help="one JSON object per task")
    _poll_option(wait)
    _connection_options(wait)


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout", type=_positive_float, default=None, metavar="S", help="longest wait"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per id")
    _poll_option(parser)


def _add_job(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    job = sub.add_parser("job", help="look up, list, cancel and wait for batch jobs")
    job_sub = job.add_subparsers(dest="job_command", metavar="ACTION", required=True)
    get = job_sub.add_parser("get", help="show one batch job (job detail, per-file results)")
    get.add_argument("job_id", metavar="ID")
    get.add_argument("--json", action="store_true", help="print the job as JSON")
    _connection_options(get)

    lst = job_sub.add_parser("list", help="list batch jobs (all pages)")
    types = ", ".join(m.name for m in JobType)
    lst.add_argument(
        "--type", dest="job_type", type=_job_type, default=None, help=f"{types} (or 1-7)"
    )
    lst.add_argument(
        "--status",
        dest="job_status",
        type=_job_status,
        default=None,
        help="PENDING, PROCESSING, COMPLETED, CANCELLED (or 0-3)",
    )
    lst.add_argument(
        "--page-size", type=_positive_int, default=100, metavar="N", help="jobs per page (max 100)"
    )
    lst.add_argument("--json", action="store_true", help="one JSON object per job")
    _connection_options(lst)

    cancel = job_sub.add_parser("cancel", help="cancel a batch job that is pending or processing")
    cancel.add_argument("job_id", metavar="ID")
    _connection_options(cancel)

    wait = job_sub.add_parser("wait", help="wait for batch jobs to finish (at job detail)")
    wait.add_argument("job_ids", metavar="ID", nargs="+")
    _wait_options(wait)
    _connection_options(wait)


def _share_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--share-id", required=True, metavar="S", help="the share")
    parser.add_argument(
        "--kdstoken",
        default=None,
        metavar="K",
        help="the share's temporary token, if it needs one (env KOODRIVE_KDSTOKEN; the "
        "environment is safer)",
    )


def _add_share(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    share = sub.add_parser("share", help="look up and wait for share tasks")
    share_sub = share.add_subparsers(dest="share_command", metavar="ACTION", required=True)
    get = share_sub.add_parser("get", help="show one share task (share-task detail)")
    get.add_argument("task_id", metavar="ID")
    _share_options(get)
    get.add_argument("--json", action="store_true", help="print the share task as JSON")
    _connection_options(get)

    wait = share_sub.add_parser("wait", help="wait for share tasks of one share to finish")
    wait.add_argument("task_ids", metavar="ID", nargs="+")
    _share_options(wait)
    _wait_options(wait)
    _connection_options(wait)


def _add_cancel(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cancel = sub.add_parser(
        "cancel",
        help="cancel the batch jobs of a plan that are still running, and record it",
        description="Cancel every batch job the journal of PLAN holds as still running and "
        "record in the journal what each became (cancelled, or how it ended if it finished "
        "first). Share tasks, transfers and imports cannot be cancelled; in-doubt lines have "
        "no job id. Stop a run of the plan first: it holds the journal. Exit codes: 0 every "
        "running job was cancelled or had ended, 1 some could not be cancelled, 2 usage.",
    )
    cancel.add_argument("plan", type=Path, metavar="PLAN.jsonl")
    cancel.add_argument(
        "--journal",
        type=Path,
        default=None,
        metavar="PATH",
        help="the journal (default: PLAN.journal.sqlite beside the plan)",
    )
    cancel.add_argument("--json", action="store_true", help="one JSON object per line dealt with")
    _connection_options(cancel)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``koodrive-async`` argument parser.

    Returns:
        The parser (the ``emulator`` subcommand is dispatched before parsing).
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Bulk runs, a demo, and task, batch-job and share-task lookups for "
        "KooDrive's task/batch-job Open API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _connection_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_demo(sub)
    _add_run(sub)
    _add_report(sub)
    _add_task(sub)
    _add_job(sub)
    _add_share(sub)
    _add_cancel(sub)
    sub.add_parser(
        "emulator",
        help="serve the emulator (same options as python -m koodrive_async.emulator)",
        add_help=False,
    )
    return parser
