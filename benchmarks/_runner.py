"""The single benchmark runner: ``python -m benchmarks [--quick] [--json]``.

It runs every benchmark script as a child process with ``--json`` (each
script starts the emulator in a process of its own, on loopback), repeats the
ones that do not repeat themselves, takes medians, and prints one markdown
table of the headline figures against their targets; with ``--json`` it then
prints one JSON object, last on stdout. Progress goes to stderr.

What is measured, and how often:

- ``overhead_ratio``: ``bench_session_overhead.py``, session ``get_task``
  against a bare aiohttp loop in interleaved A/B rounds; the median over the
  rounds of (session req/s ÷ bare req/s of that round);
- ``instruction_ratio``: ``bench_instructions.py``, client-side instructions
  per sequential ``get_task`` (session ÷ bare aiohttp) counted by callgrind
  around the measured loops only, the emulator in its own process (not
  counted): the figure that does not move with the machine's load;
- ``httpx_ratio``: ``bench_httpx.py``, the same against a bare
  ``httpx.AsyncClient`` loop (null, with a note, when httpx is not installed);
- ``emulator_rps``: ``bench_emulator.py``, median of its rounds;
- ``fanout_ratio``, ``gets_per_job``, ``detect_p95_fraction``:
  ``bench_fanout.py``, run 3 times, median of each figure;
- ``bytes_per_waiting_task``: ``bench_fanout.py --memory-only``, run 3 times
  (a fresh process each time, so each run's tracemalloc sees one run only);
- ``workers_quota_hold_error``, ``workers_duplicates``, ``workers_lost``:
  ``bench_workers.py`` (full mode only: it needs PostgreSQL and runs several
  worker processes), once; 1, 2 and 4 workers on one PostgreSQL journal,
  with and without a service quota, and 4 workers sharing ``--rate Q``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._common import last_json_object, machine, markdown_table, median

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent


@dataclass(frozen=True)
class Step:
    """One benchmark script, how to call it and how many times.

    Attributes:
        name: Short name (a key of the ``details`` object).
        script: File name in ``benchmarks/``.
        args: Its command-line options (``--json`` is added).
        repeat: Runs of the script; figures are medians across runs.
        timeout: Seconds one run may take before it is killed.
        what: One line for the notes (what was repeated how).
    """

    name: str
    script: str
    args: tuple[str, ...]
    repeat: int
    timeout: float
    what: str


@dataclass(frozen=True)
class Metric:
    """A headline figure of the table and of the JSON object.

    Attributes:
        key: The JSON key.
        step: The step it comes from.
        source: The key in that step's JSON.
        op: ``">="`` or ``"<="`` against ``target``, or None (reference figure).
        target: The target, or None.
        digits: Decimals to round to.
        label: What it is, for the table.
    """

    key: str
    step: str
    source: str
    op: str | None
    target: float | None
    digits: int
    label: str


METRICS: tuple[Metric, ...] = (
    Metric(
        "overhead_ratio", "overhead", "pairwise_ratio_median", ">=", 0.93, 3,
        "session get_task req/s ÷ bare aiohttp req/s (concurrency 64)",
    ),
    Metric(
        "instruction_ratio", "instructions", "instruction_ratio", "<=", 1.10, 3,
        "session get_task instructions ÷ bare aiohttp instructions per call (callgrind)",
    ),
    Metric(
        "httpx_ratio", "httpx", "pairwise_ratio_median", None, None, 3,
        "session get_task req/s ÷ bare httpx.AsyncClient req/s (concurrency 64)",
    ),
    Metric(
        "emulator_rps", "emulator", "requests_per_second", ">=", 3000.0, 1,
        "emulator GET task/{id} per second (concurrency 64)",
    ),
    Metric(
        "fanout_ratio", "fanout", "fanout_ratio", "<=", 1.15, 3,
        "fan-out makespan ÷ ideal makespan",
    ),
    Metric("gets_per_job", "fanout", "gets_per_job", "<=", 2.5, 3, "GETs per job (fan-out)"),
    Metric(
        "detect_p95_fraction", "fanout", "detect_p95_fraction", "<=", 0.30, 3,
        "p95 detection delay ÷ mean task duration",
    ),
    Metric(
        "bytes_per_waiting_task", "memory", "bytes_per_waiting_task", "<=", 1280.0, 1,
        "client bytes per waiting task",
    ),
    # Full mode only (PostgreSQL and several worker processes; see plan()).
    Metric(
        "workers_quota_hold_error", "workers", "quota_hold_error", "<=", 0.10, 3,
        "4 workers sharing --rate Q under a service quota Q: |creates/s ÷ Q - 1|",
    ),
    Metric(
        "workers_duplicates", "workers", "duplicates", "<=", 0.0, 0,
        "many workers: plan lines created twice (every run)",
    ),
    Metric(
        "workers_lost", "workers", "lost", "<=", 0.0, 0,
        "many workers: lines neither succeeded nor failed with their task (every run)",
    ),
)  # fmt: skip

#: Supporting figures (step, key in its JSON, label, decimals) for the details table.
DETAILS: tuple[tuple[str, str, str, int], ...] = (
    ("overhead", "session_median_rps", "session get_task req/s (vs aiohttp run)", 1),
    ("overhead", "bare_aiohttp_median_rps", "bare aiohttp req/s", 1),
    ("overhead", "ratio", "overhead: ratio of the two sides' medians", 3),
    ("overhead", "bare_aiohttp_client_cpu_us_per_call", "bare aiohttp client CPU µs per call", 1),
    ("overhead", "session_client_cpu_us_per_call", "session client CPU µs per call", 1),
    ("instructions", "session_instructions_per_call", "session instructions per get_task", 0),
    ("instructions", "bare_aiohttp_instructions_per_call", "bare aiohttp instructions per GET", 0),
    ("httpx", "session_median_rps", "session get_task req/s (vs httpx run)", 1),
    ("httpx", "bare_httpx_median_rps", "bare httpx req/s", 1),
    ("httpx", "ratio", "httpx: ratio of the two sides' medians", 3),
    ("emulator", "p50_ms", "emulator GET p50 latency (ms)", 2),
    ("emulator", "p99_ms", "emulator GET p99 latency (ms)", 2),
    ("emulator", "server_cpu_us_per_request", "emulator CPU µs per GET", 1),
    ("fanout", "jobs", "fan-out jobs (max_concurrency 200)", 0),
    ("fanout", "errors", "fan-out failed outcomes", 0),
    ("fanout", "makespan_s", "fan-out makespan (s)", 2),
    ("fanout", "ideal_makespan_s", "ideal makespan (s)", 2),
    ("fanout", "first_wave_gets_per_job", "GETs per job of the first wave (200)", 3),
    ("fanout", "detect_p50_s", "detection delay p50 (s)", 3),
    ("fanout", "detect_p95_s", "detection delay p95 (s)", 3),
    ("memory", "waiting_tasks", "tasks waited on at once", 0),
    ("memory", "first_polls_s", "time until every waiter polled once (s)", 1),
    ("memory", "gets_after_cancel", "GETs after cancelling every waiter", 0),
    ("workers", "quota", "many workers: service quota Q (creates/s)", 0),
    ("workers", "quota_hold_ratio", "4 workers, --rate Q: creates/s ÷ Q", 3),
    ("workers", "shared_rate_429s", "4 workers, --rate Q: 429s", 0),
    ("workers", "one_worker_creates_per_s", "1 worker, no quota: creates/s", 1),
    ("workers", "max_workers_creates_per_s", "4 workers, no quota: creates/s", 1),
    ("workers", "emulator_cpu_fraction_max", "many workers: emulator CPU (cores, max)", 3),
)


def plan(quick: bool) -> list[Step]:
    """The steps of a quick (< 2 min) or full (< 25 min) run, in order.

    Args:
        quick: The short variant.

    Returns:
        The steps.
    """
    if quick:
        return [
            Step("emulator", "bench_emulator.py", ("--seconds", "2", "--rounds", "2"), 1, 60,
                 "emulator: 2 rounds of 2 s"),
            Step("overhead", "bench_session_overhead.py", ("--rounds", "5", "--requests", "4000"),
                 1, 90, "overhead: 5 interleaved rounds of 4,000 calls each side"),
            Step("instructions", "bench_instructions.py", ("--calls", "300", "--warmup", "50"),
                 1, 300, "instructions: 300 sequential calls each side under callgrind "
                 "(2,000 in the full mode)"),
            Step("httpx", "bench_httpx.py", ("--rounds", "5", "--requests", "1000"), 1, 90,
                 "httpx: 5 interleaved rounds of 1,000 calls each side"),
            Step("fanout", "bench_fanout.py", ("--quick",), 3, 90,
                 "fan-out: 3 runs of 1,000 jobs (the 10,000-job run is the full mode)"),
            # Two runs: the bytes move by well under a percent from run to run.
            Step("memory", "bench_fanout.py", ("--memory-only", "--memory-tasks", "10000"), 2, 90,
                 "memory: 2 runs of 10,000 waiters (100,000 in the full mode)"),
        ]  # fmt: skip
    return [
        Step("emulator", "bench_emulator.py", ("--seconds", "5", "--rounds", "5"), 1, 120,
             "emulator: 5 rounds of 5 s"),
        Step("overhead", "bench_session_overhead.py", ("--rounds", "15", "--requests", "10000"),
             1, 300, "overhead: 15 interleaved rounds of 10,000 calls each side"),
        Step("instructions", "bench_instructions.py", ("--calls", "2000", "--warmup", "200"),
             1, 900, "instructions: 2,000 sequential calls each side under callgrind"),
        Step("httpx", "bench_httpx.py", ("--rounds", "9", "--requests", "3000"), 1, 300,
             "httpx: 9 interleaved rounds of 3,000 calls each side"),
        Step("fanout", "bench_fanout.py", ("--jobs", "10000"), 3, 300,
             "fan-out: 3 runs of 10,000 jobs"),
        Step("memory", "bench_fanout.py", ("--memory-only", "--memory-tasks", "100000"), 3, 400,
             "memory: 3 runs of 100,000 waiters"),
        # Not in the quick plan: it needs PostgreSQL and runs up to 4 worker
        # processes at once, and --quick stays single-process and < 2 min.
        Step("workers", "bench_workers.py", (), 1, 1500,
             "workers: 1, 2 and 4 workers on one PostgreSQL journal (20,000 lines for 4, "
             "4,000 for 1 and 2), then under a quota of 40 creates/s (1,000 lines each), "
             "and 4 workers sharing --rate 40; once (full mode only)"),
    ]  # fmt: skip


@dataclass
class StepResult:
    """What the runs of one step produced.

    Attributes:
        runs: The JSON object of each run that printed one.
        problems: One line per run that failed (exit status, timeout, no JSON).
        seconds: Wall time of all its runs.
    """

    runs: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_script(step: Step) -> tuple[dict[str, Any] | None, str | None]:
    """Run a step's script once with ``--json``.

    The script runs in a session of its own, so that on a timeout its
    emulator child is killed with it.

    Args:
        step: The step.

    Returns:
        (its JSON object or None, a problem description or None).
    """
    cmd = [sys.executable, str(BENCH_DIR / step.script), *step.args, "--json"]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=step.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, f"{step.script}: killed after {step.timeout:.0f} s"
    except BaseException:
        # Ctrl-C: do not leave the script or its emulator behind.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    obj = last_json_object(out)
    problem = None
    if proc.returncode != 0 or obj is None:
        tail = " | ".join(err.strip().splitlines()[-3:])
        problem = f"{step.script}: exit status {proc.returncode}" + (f" ({tail})" if tail else "")
        if obj is None:
            problem += ", no JSON"
    return obj, problem


def run_step(step: Step) -> StepResult:
    """Run a step's script ``step.repeat`` times.

    Args:
        step: The step.

    Returns:
        Its runs and problems.
    """
    result = StepResult()
    started = time.perf_counter()
    for k in range(step.repeat):
        _log(
            f"[benchmarks] {step.name}: {step.script} {' '.join(step.args)} ({k + 1}/{step.repeat})"
        )
        obj, problem = run_script(step)
        if obj is not None:
            result.runs.append(obj)
        if problem is not None:
            result.problems.append(problem)
            _log(f"[benchmarks]   problem: {problem}")
    result.seconds = time.perf_counter() - started
    return result


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def step_median(runs: Sequence[Mapping[str, Any]], key: str) -> float | None:
    """The median of one figure across a step's runs (runs without it are skipped).

    Args:
        runs: The runs' JSON objects.
        key: The figure.

    Returns:
        The median, or None if no run has a number there.
    """
    values = [v for v in (_number(run.get(key)) for run in runs) if v is not None]
    return median(values)


def met(op: str | None, target: float | None, value: float | None) -> bool | None:
    """Whether a value meets its target.

    Args:
        op: ``">="``, ``"<="`` or None.
        target: The target or None.
        value: The value or None.

    Returns:
        True/False, or None when there is no target or no value.
    """
    if op is None or target is None or value is None:
        return None
    return value >= target if op == ">=" else value <= target


def assemble(
    results: Mapping[str, StepResult],
    steps: Sequence[Step],
    *,
    quick: bool,
    elapsed: float,
    load_before: float | None = None,
) -> dict[str, Any]:
    """Build the JSON object from the steps' results.

    Args:
        results: Step name -> its result (steps that did not run may be absent).
        steps: The plan that ran.
        quick: Whether it was the quick variant.
        elapsed: Wall seconds of the whole run.
        load_before: 1-minute load average before the run, if known.

    Returns:
        The object: one number (or null) per headline key, ``machine``,
        ``targets``, ``met``, ``notes``, ``details`` and run information.
    """
    out: dict[str, Any] = {}
    targets: dict[str, Any] = {}
    verdicts: dict[str, bool | None] = {}
    notes: list[str] = []
    for metric in METRICS:
        step = results.get(metric.step)
        value = None if step is None else step_median(step.runs, metric.source)
        out[metric.key] = None if value is None else round(value, metric.digits)
        if metric.op is not None:
            targets[metric.key] = {"op": metric.op, "value": metric.target}
        verdicts[metric.key] = met(metric.op, metric.target, out[metric.key])

    step_notes: dict[str, list[str]] = {}
    for name, result in results.items():
        for run in result.runs:
            note = run.get("note")
            if isinstance(note, str) and note not in step_notes.setdefault(name, []):
                step_notes[name].append(note)
    for metric in METRICS:
        if out[metric.key] is None and metric.step in results:
            why = step_notes.pop(metric.step, None) or [f"{metric.step} produced no figure"]
            notes.append(f"{metric.key} is null: {'; '.join(why)}")
        if verdicts[metric.key] is False:
            notes.append(
                f"{metric.key} = {out[metric.key]} misses its target ({metric.op} {metric.target})"
            )
    for name, result in results.items():
        notes.extend(f"{name}: {problem}" for problem in result.problems)
    for name, texts in step_notes.items():
        notes.extend(f"{name}: {text}" for text in texts)
    if out["overhead_ratio"] is not None or out["httpx_ratio"] is not None:
        notes.append(
            "overhead_ratio and httpx_ratio are the median over interleaved rounds of "
            "(session req/s ÷ bare req/s in the same round), so that load drifting between "
            "rounds cancels; the ratio of the two sides' medians is in the details"
        )
    if out["httpx_ratio"] is not None:
        notes.append(
            "httpx_ratio has no target: at concurrency 64 a bare httpx loop spends most of "
            "its CPU in httpcore's connection-pool bookkeeping (encode/httpx#3215), so the "
            "session, on aiohttp, is several times faster"
        )
    fanout_errors = step_median(results["fanout"].runs, "errors") if "fanout" in results else None
    if fanout_errors:
        notes.append(f"the fan-out had failed outcomes (median {fanout_errors:g} per run)")
    notes.extend(step.what for step in steps)
    notes.append(
        "every benchmark runs the emulator in a separate process on loopback; the fan-out "
        "and memory runs start it as a child of bench_fanout.py (random task durations "
        "need its Python API) and read their figures from its /_emulator/ admin routes"
    )
    if quick:
        notes.append(
            "quick mode: the targets are judged on it; in a 1,000-job fan-out the first wave "
            "of 200 jobs (20% of the run, 2% of 10,000) is polled before any job of the run "
            "has finished (by the progress each job reports once it was polled), the next "
            "jobs' first polls wait until a quarter of that wave has ended, and ramp-up and "
            "tail weigh ten times more than in the full run"
        )
    info = machine()
    busy = [x for x in (load_before, info["load_average"]) if x is not None]
    if busy and max(busy) > 0.5 * max(1, info["cpu_count"]):
        notes.append(
            f"the machine was busy (1-minute load average up to {max(busy):.2f} on "
            f"{info['cpu_count']} CPUs): throughput figures are noisy"
        )

    details: dict[str, Any] = {}
    for name, result in results.items():
        entry: dict[str, Any] = {"runs": result.runs, "seconds": round(result.seconds, 1)}
        if result.problems:
            entry["problems"] = result.problems
        details[name] = entry
    out.update(
        machine={"cpu_count": info["cpu_count"], "python": info["python"]},
        mode="quick" if quick else "full",
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        elapsed_s=round(elapsed, 1),
        load_average={"before": load_before, "after": info["load_average"]},
        platform=info["platform"],
        targets=targets,
        met=verdicts,
        notes=notes,
        details=details,
    )
    return out


def _cell(value: float | None, digits: int) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def render(summary: Mapping[str, Any], results: Mapping[str, StepResult]) -> str:
    """The markdown tables and notes of a run.

    Args:
        summary: The object :func:`assemble` built.
        results: The steps' results (for the details table).

    Returns:
        Markdown text.
    """
    rows = []
    for metric in METRICS:
        verdict = summary["met"][metric.key]
        target = "—" if metric.op is None else f"{metric.op} {metric.target:g}"
        rows.append(
            (
                f"`{metric.key}` — {metric.label}",
                _cell(summary[metric.key], metric.digits),
                target,
                {True: "yes", False: "**no**", None: "n/a"}[verdict],
            )
        )
    parts = [markdown_table(("metric", "value", "target", "met?"), rows)]
    detail_rows = []
    for step, key, label, digits in DETAILS:
        if step in results:
            value = step_median(results[step].runs, key)
            if value is not None:
                detail_rows.append((label, _cell(value, digits)))
    if detail_rows:
        parts.append(markdown_table(("supporting figure (median)", "value"), detail_rows))
    info = summary["machine"]
    parts.append(
        f"Machine: {info['cpu_count']} CPUs, Python {info['python']}, {summary['platform']}; "
        f"{summary['mode']} run of {summary['elapsed_s']:.0f} s on {summary['date']}."
    )
    parts.append("Notes:\n" + "\n".join(f"- {note}" for note in summary["notes"]))
    return "\n\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks and print the table (and the JSON object).

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        0 when every benchmark produced its figures (met targets or not),
        1 when one failed to run.
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run every koodrive_async benchmark (emulator in a separate process) "
        "and print a markdown table of the figures against their targets.",
    )
    parser.add_argument("--quick", action="store_true", help="the short run (< 2 minutes)")
    parser.add_argument(
        "--json", action="store_true", help="also print one JSON object, last on stdout"
    )
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help="comma-separated subset of: emulator, overhead, instructions, httpx, fanout, "
        "memory, workers (full mode only)",
    )
    args = parser.parse_args(argv)
    steps = plan(args.quick)
    if args.only:
        wanted = {name.strip() for name in args.only.split(",") if name.strip()}
        unknown = wanted - {step.name for step in steps}
        full_only = unknown & {step.name for step in plan(False)}
        if full_only:
            parser.error(f"{', '.join(sorted(full_only))}: full mode only (drop --quick)")
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
        steps = [step for step in steps if step.name in wanted]
    try:
        load_before: float | None = round(os.getloadavg()[0], 2)
    except OSError:
        load_before = None
    started = time.perf_counter()
    results = {step.name: run_step(step) for step in steps}
    summary = assemble(
        results,
        steps,
        quick=args.quick,
        elapsed=time.perf_counter() - started,
        load_before=load_before,
    )
    print(render(summary, results), flush=True)
    if args.json:
        print(json.dumps(summary), flush=True)
    broken = any(not result.runs or result.problems for result in results.values())
    return 1 if broken else 0
