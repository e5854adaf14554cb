"""Many workers, one plan, one PostgreSQL journal: makespan, creates per second, duplicates.

Each configuration writes a plan of copy-job lines, gives it a fresh
PostgreSQL database, and starts 1, 2 or 4 workers as child processes
(``python -m koodrive_async run PLAN --journal postgresql://… --worker-id wN
--json``) against one emulator, then checks what happened:

- makespan: the workers' start to the last one's exit, on our clock;
- creates per second: from the emulator's side (one task per accepted
  create, on its clock, which at speed 1 is wall time), first to last
  create; under a quota, its ratio to the quota is taken after the first
  ``burst`` creates (which the quota lets through at once);
- 429s: the creates the emulator's quota answered 429 (its counters);
- duplicates: plan lines the emulator created more than one task for
  (target 0); lines lost: lines the journal does not show succeeded or
  failed, or whose task id is not a task the emulator made (target 0);
  refused: lines failed because their create was refused (429 after the
  retries): accounted for, nothing created, not lost.

The configurations: without a quota, 1, 2 and 4 workers on the headline plan
(``--lines``, default 20,000); with a per-user quota of ``--quota`` creates
per second (``EmulatorConfig(quota=Quota(rate=Q))``, a burst of Q), 1, 2 and 4
workers on a smaller plan (``--quota-lines``: a quota run lasts at least
lines ÷ Q seconds), and 4 workers sharing ``--rate Q`` (the token bucket in
PostgreSQL), which must hold Q ± 10% without a 429 storm. The quota's
``Retry-After`` is in emulator-clock seconds, so the emulator runs at clock
speed 1 (real time) throughout.

The emulator runs in this process (its ledger and task state are read
directly: no 20,000-task JSON over the admin routes); this process does
nothing else while the workers run (their output goes to files), so its CPU
time over the makespan is the emulator's load, reported as
``emulator_cpu_fraction`` (1.0 = one core saturated: the emulator would then
be the bottleneck).

PostgreSQL: ``--pg-url`` or ``KOODRIVE_TEST_PG_URL`` when given (a database
per configuration is created there and dropped after), else a throwaway
server started with ``.ci/postgres``. Without one (or without psycopg) the
figures are null, with a note saying why.

Usage::

    python benchmarks/bench_workers.py                     # the full set (minutes)
    python benchmarks/bench_workers.py --lines 2000 --quota-lines 600 --json
    python -m benchmarks --only workers
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

if not __package__:
    # Run as a file: make the ``benchmarks`` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import TOKEN, USER, markdown_table  # noqa: E402
from koodrive_async.bulk import State, open_journal  # noqa: E402
from koodrive_async.emulator import EmulatorConfig, KooDriveEmulator, Quota  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_SCRIPT = REPO_ROOT / ".ci" / "postgres"
#: The emulator's task duration (seconds, clock speed 1) and the workers' first poll interval.
TASK_SECONDS = 0.5
POLL_SECONDS = "0.2"
#: How far the shared-rate run may stray from the quota (the issue's ± 10%).
HOLD_TOLERANCE = 0.10


@dataclass(frozen=True)
class Config:
    """One run: how many workers, on how many lines, under which quota and rate.

    Attributes:
        name: Short key of the run in the JSON (``w4``, ``q2``, ``q4_rate``).
        workers: Worker processes.
        lines: Plan lines.
        quota: The emulator's per-user quota (creates per second), or None.
        rate: The workers' shared ``--rate``, or None.
    """

    name: str
    workers: int
    lines: int
    quota: float | None
    rate: float | None


def configs(
    workers: Sequence[int], lines: int, small_lines: int, quota_lines: int, quota: float
) -> list[Config]:
    """The runs, in order: no quota, then the quota, then the quota with a shared rate.

    Args:
        workers: Worker counts (e.g. 1, 2, 4).
        lines: Plan lines of the headline run (the most workers, no quota).
        small_lines: Plan lines of the other runs without a quota (a
            20,000-line run takes minutes on 2 loaded cores: see the docs).
        quota_lines: Plan lines of the runs under the quota.
        quota: The quota (creates per second).

    Returns:
        The configurations.
    """
    most = max(workers)
    out = [Config(f"w{n}", n, lines if n == most else small_lines, None, None) for n in workers]
    out += [Config(f"q{n}", n, quota_lines, quota, None) for n in workers]
    out.append(Config(f"q{most}_rate", most, quota_lines, quota, quota))
    return out


def job_line(number: int) -> str:
    """A copy-job plan line whose only file id names the line (found again in the emulator)."""
    return json.dumps(
        {
            "kind": "job",
            "taskType": 1,
            "actionType": 101,
            "dstContainerId": "IAABdst",
            "taskInfo": {"srcContainerId": "IAABsrc", "fileInfo": [{"fileId": f"L{number}"}]},
        }
    )


def marker(body: Mapping[str, Any]) -> str | None:
    """The file id of a create body (``L<line>``), or None."""
    info = body.get("taskInfo")
    if isinstance(info, dict) and info.get("fileInfo"):
        return str(info["fileInfo"][0].get("fileId"))
    return None


# ------------------------------------------------------------------ PostgreSQL


@contextlib.contextmanager
def postgres_server(url: str | None) -> Iterator[str]:
    """The URL of a PostgreSQL server: ``url`` when given, else a throwaway one.

    Args:
        url: A server to use (``--pg-url`` / ``KOODRIVE_TEST_PG_URL``) or None.

    Yields:
        The server's URL.

    Raises:
        RuntimeError: ``.ci/postgres`` could not start one.
    """
    if url:
        yield url
        return
    # Not a private temporary folder: as root the server runs as the postgres user.
    folder = tempfile.mkdtemp(prefix="koodrive-bench-pg-")
    os.chmod(folder, 0o755)
    try:
        started = subprocess.run(
            ["bash", str(PG_SCRIPT), "start", folder],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if started.returncode != 0:
            raise RuntimeError(
                f".ci/postgres start exited {started.returncode}: {started.stderr.strip()[-300:]}"
            )
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(PG_SCRIPT), "stop", folder], timeout=120, check=False)


@contextlib.contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """A new, empty database on ``server`` for one run, dropped after it.

    Args:
        server: The server's URL.

    Yields:
        The database's URL.
    """
    import psycopg

    name = f"koodrive_bench_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True, connect_timeout=10) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    parts = urlsplit(server)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    finally:
        with psycopg.connect(server, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ------------------------------------------------------------------ one run


def worker_env(url: str) -> dict[str, str]:
    """The environment of a worker pointed at the emulator at ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOODRIVE_")}
    env.update(
        KOODRIVE_BASE_URL=url,
        KOODRIVE_USER_ID=USER,
        KOODRIVE_TOKEN=TOKEN,
        PYTHONUNBUFFERED="1",
    )
    return env


def worker_command(
    plan: Path, journal: str, worker: str, concurrency: int, rate: float | None
) -> list[str]:
    """The command line of one worker."""
    cmd = [
        sys.executable, "-m", "koodrive_async", "run", str(plan),
        "--journal", journal, "--worker-id", worker, "--json",
        "--concurrency", str(concurrency), "--poll-interval", POLL_SECONDS,
        "--progress", "plain",
    ]  # fmt: skip
    if rate is not None:
        cmd += ["--rate", f"{rate:g}"]
    return cmd


def summarise(
    config: Config,
    *,
    makespan: float,
    created: Mapping[str, list[tuple[float, str]]],
    throttled: int,
    journal: Mapping[int, tuple[str, str | None]],
    emulator_cpu: float,
    exit_codes: Sequence[int],
    burst: float = 0.0,
) -> dict[str, Any]:
    """The figures of one run from what the emulator and the journal hold (pure).

    Args:
        config: The run.
        makespan: Seconds from starting the workers to the last one's exit.
        created: Per line marker (``L<n>``): (creation time, task id) of each
            task the emulator made for it.
        throttled: Creates the quota answered 429.
        journal: Per plan line: (state, task id) in the journal.
        emulator_cpu: CPU seconds the emulator's process used during the run.
        exit_codes: The workers' exit statuses.
        burst: The quota's burst (0 without a quota): ``quota_ratio`` is
            measured from the create after the burst to the last one.

    Returns:
        The run's JSON object: ``lost`` counts lines not succeeded or failed,
        or whose journaled task id is not one the emulator made;
        ``refused`` lines failed with no task (the create refused), which
        is accounted for, not lost.
    """
    times = sorted(t for tasks in created.values() for t, _ in tasks)
    creates = len(times)
    window = times[-1] - times[0] if creates > 1 else 0.0
    rate = (creates - 1) / window if window > 0 else None
    duplicates = sum(1 for tasks in created.values() if len(tasks) > 1)
    lost: dict[str, int] = {}
    refused = 0
    for number in range(1, config.lines + 1):
        state, task_id = journal.get(number, ("missing", None))
        tasks = [tid for _, tid in created.get(f"L{number}", [])]
        if state == State.FAILED and task_id is None and not tasks:
            # The service refused its create (a 429 after the retries): the
            # line is accounted for, failed, and nothing exists for it.
            refused += 1
        elif state not in (State.SUCCEEDED, State.FAILED) or task_id not in tasks:
            key = state if tasks else f"{state}, no task"
            lost[key] = lost.get(key, 0) + 1
    # A quota's burst lets the first `burst` creates through at once: the
    # rate it holds is measured after them.
    skip = min(creates - 2, int(burst)) if creates > 2 else 0
    steady_window = times[-1] - times[skip] if creates > 1 else 0.0
    steady = (creates - 1 - skip) / steady_window if steady_window > 0 else None
    return {
        "name": config.name,
        "workers": config.workers,
        "lines": config.lines,
        "quota": config.quota,
        "rate": config.rate,
        "makespan_s": round(makespan, 2),
        "lines_per_s": round(config.lines / makespan, 1) if makespan > 0 else None,
        "creates": creates,
        "creates_per_s": None if rate is None else round(rate, 1),
        "steady_creates_per_s": None if steady is None else round(steady, 1),
        "quota_ratio": None
        if steady is None or config.quota is None
        else round(steady / config.quota, 3),
        "throttled_429": throttled,
        "duplicates": duplicates,
        "refused": refused,
        "lost": sum(lost.values()),
        "lost_states": lost,
        "emulator_cpu_fraction": round(emulator_cpu / makespan, 3) if makespan > 0 else None,
        "exit_codes": list(exit_codes),
    }


async def run_config(
    config: Config, server: str, folder: Path, *, concurrency: int, timeout: float
) -> dict[str, Any]:
    """Run one configuration and return its figures.

    Args:
        config: The run.
        server: The PostgreSQL server's URL.
        folder: Where the plan and the workers' output go.
        concurrency: Each worker's ``--concurrency``.
        timeout: Seconds the workers may take before they are killed.

    Returns:
        Its JSON object (:func:`summarise`).
    """
    plan = folder / f"{config.name}.jsonl"
    plan.write_text("".join(job_line(n) + "\n" for n in range(1, config.lines + 1)))
    # The default burst, one second's worth: a client pacing at Q sees its
    # requests arrive with some jitter, which a real service's burst absorbs.
    quota = None if config.quota is None else Quota(config.quota)
    emu_config = EmulatorConfig(
        task_duration=TASK_SECONDS, clock_speed=1.0, seed=11, quota=quota, ledger_limit=1000
    )
    with fresh_database(server) as journal_url:
        async with KooDriveEmulator(emu_config, host="127.0.0.1", port=0) as emu:
            procs = []
            outputs = []
            cpu = time.process_time()
            started = time.perf_counter()
            for n in range(config.workers):
                out = open(folder / f"{config.name}.w{n}.out", "wb")  # noqa: SIM115
                err = open(folder / f"{config.name}.w{n}.err", "wb")  # noqa: SIM115
                outputs += [out, err]
                cmd = worker_command(plan, journal_url, f"w{n}", concurrency, config.rate)
                procs.append(
                    await asyncio.create_subprocess_exec(
                        *cmd,
                        env=worker_env(emu.url),
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=out,
                        stderr=err,
                    )
                )
            try:
                codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), timeout)
            finally:
                for p in procs:
                    if p.returncode is None:
                        p.kill()
                        await p.wait()
                for f in outputs:
                    f.close()
            makespan = time.perf_counter() - started
            emulator_cpu = time.process_time() - cpu
            created: dict[str, list[tuple[float, str]]] = {}
            for task in emu.state.tasks():
                key = marker(task.body)
                if key is not None:
                    created.setdefault(key, []).append((task.created_at, task.task_id))
            throttled = sum(c.throttled for c in emu.quota_counters.values())
        async with open_journal(journal_url) as journal:
            rows = {r.line: (r.state, r.task_id) for r in await journal.records()}
    result = summarise(
        config,
        makespan=makespan,
        created=created,
        throttled=throttled,
        journal=rows,
        emulator_cpu=emulator_cpu,
        exit_codes=codes,
        burst=0.0 if quota is None else quota.burst,
    )
    # Exit 1 is "some lines failed": under a quota without --rate, lines whose
    # create stayed refused after the retries (``refused``). Anything else
    # (in doubt, a crash, a kill) is a problem of the run.
    if any(code not in (0, 1) for code in codes) or (
        any(code == 1 for code in codes) and not result["refused"]
    ):
        tails = []
        for n, code in enumerate(codes):
            if code != 0:
                text = (folder / f"{config.name}.w{n}.err").read_text(errors="replace")
                tails.append(f"w{n} exit {code}: {' | '.join(text.strip().splitlines()[-2:])}")
        result["problems"] = tails
    return result


# ------------------------------------------------------------------ the whole set


def headline(runs: Sequence[Mapping[str, Any]], quota: float) -> dict[str, Any]:
    """The figures the runner reads, from every run's object (pure).

    Args:
        runs: The runs' objects.
        quota: The quota of the quota runs.

    Returns:
        ``duplicates`` and ``lost`` (sums over every run, target 0),
        ``quota_hold_ratio`` (creates/s ÷ Q of the shared-rate run),
        ``quota_hold_error`` (its distance from 1, target <= 0.10),
        ``shared_rate_429s``, the 4-worker and 1-worker creates/s without a
        quota and their ratio, and the highest ``emulator_cpu_fraction``.
    """
    by_name = {run["name"]: run for run in runs}
    shared = next((run for run in runs if run["rate"] is not None), None)
    free = sorted((run for run in runs if run["quota"] is None), key=lambda r: r["workers"])
    hold = None if shared is None else shared.get("quota_ratio")
    one = free[0]["creates_per_s"] if free else None
    most = free[-1]["creates_per_s"] if free else None
    cpu = [r["emulator_cpu_fraction"] for r in runs if r.get("emulator_cpu_fraction") is not None]
    return {
        "duplicates": sum(int(run["duplicates"]) for run in runs) if runs else None,
        "lost": sum(int(run["lost"]) for run in runs) if runs else None,
        "quota": quota,
        "quota_hold_ratio": hold,
        "quota_hold_error": None if hold is None else round(abs(hold - 1.0), 3),
        "shared_rate_429s": None if shared is None else shared["throttled_429"],
        "max_workers_creates_per_s": most,
        "one_worker_creates_per_s": one,
        "worker_speedup": None if not one or most is None else round(most / one, 2),
        "emulator_cpu_fraction_max": max(cpu) if cpu else None,
        "runs_by_name": sorted(by_name),
    }


def render(runs: Sequence[Mapping[str, Any]]) -> str:
    """A markdown table of the runs."""
    rows = [
        (
            run["name"], run["workers"], f"{run['lines']:,}",
            "—" if run["quota"] is None else f"{run['quota']:g}/s",
            "—" if run["rate"] is None else f"{run['rate']:g}/s",
            f"{run['makespan_s']:.1f}", run["creates_per_s"],
            "—" if run["quota_ratio"] is None else f"{run['quota_ratio']:.3f}",
            run["throttled_429"], run["refused"], run["duplicates"], run["lost"],
            run["emulator_cpu_fraction"],
        )
        for run in runs
    ]  # fmt: skip
    return markdown_table(
        (
            "run", "workers", "lines", "quota", "--rate", "makespan (s)", "creates/s",
            "÷ quota", "429s", "refused", "duplicates", "lost", "emulator CPU",
        ),
        rows,
    )  # fmt: skip


async def run_all(args: argparse.Namespace, server: str) -> list[dict[str, Any]]:
    """Run every configuration in turn (one at a time: they would share the CPUs)."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="koodrive-bench-workers-") as tmp:
        for config in configs(
            args.workers, args.lines, args.small_lines, args.quota_lines, args.quota
        ):
            print(
                f"[workers] {config.name}: {config.workers} worker(s), {config.lines:,} lines",
                file=sys.stderr,
                flush=True,
            )
            run = await run_config(
                config, server, Path(tmp), concurrency=args.concurrency, timeout=args.timeout
            )
            print(f"[workers]   {json.dumps(run)}", file=sys.stderr, flush=True)
            runs.append(run)
    return runs


def _worker_counts(text: str) -> list[int]:
    counts = sorted({int(x) for x in text.split(",") if x.strip()})
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError("worker counts are positive integers, e.g. 1,2,4")
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    """Run the configurations and print a table (and, with ``--json``, one JSON object).

    Args:
        argv: Arguments (default ``sys.argv[1:]``).

    Returns:
        0 when every run finished (the figures say whether they met their
        targets), 1 when a worker failed or timed out.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lines", type=int, default=20_000, help="lines of the headline run (most workers)"
    )
    parser.add_argument(
        "--small-lines", type=int, default=4_000, help="lines of the other runs without a quota"
    )
    parser.add_argument("--quota-lines", type=int, default=1_000, help="lines under the quota")
    parser.add_argument("--quota", type=float, default=40.0, help="creates per second")
    parser.add_argument("--workers", type=_worker_counts, default=[1, 2, 4], help="e.g. 1,2,4")
    parser.add_argument("--concurrency", type=int, default=64, help="each worker's --concurrency")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--pg-url", default=os.environ.get("KOODRIVE_TEST_PG_URL"))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    note = None
    runs: list[dict[str, Any]] = []
    failed = False
    try:
        import psycopg  # noqa: F401
    except ImportError:
        note = "psycopg is not installed (pip install 'koodrive-async[postgres]')"
    if note is None:
        try:
            with postgres_server(args.pg_url) as server:
                runs = asyncio.run(run_all(args, server))
        except RuntimeError as exc:
            note = f"no PostgreSQL: {exc}"
        except TimeoutError:
            note = f"a run took more than {args.timeout:.0f} s"
            failed = True
    failed = failed or any(run.get("problems") for run in runs)
    out: dict[str, Any] = {
        **headline(runs, args.quota),
        "task_seconds": TASK_SECONDS,
        "concurrency": args.concurrency,
        "runs": runs,
    }
    if note is not None:
        out["note"] = note
    if runs:
        print(render(runs))
    elif note is not None:
        print(note)
    if args.json:
        print(json.dumps(out))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
