"""Fault-matrix soak: thousands of jobs through ``run_jobs`` against a hostile emulator.

Every request is identifiable (its body carries a unique ``soak-<n>`` id), so
the emulator's own record of the tasks it created can be set against the
outcomes the client reported. The emulator (in-process, on loopback only)
injects, on every API route unless said otherwise:

=====================  =====  ==================================================
fault                  rate   what the client must do
=====================  =====  ==================================================
503 + Retry-After      2%     wait as asked and retry (also a POST: nothing done)
500 on GET             2%     retry the GET
created-but-500        1%     (POST) never retry: outcome says possibly_created
dropped connection     2%     retry a GET; a POST is in doubt (possibly_created)
slower than timeout    1%     (1.5 s against a 1 s timeout) as a drop
HTML 502 page          1%     typed error; GET retried, POST in doubt
malformed JSON         1%     GET retried later; POST in doubt (the task exists)
=====================  =====  ==================================================

Figures (``--json`` prints them as one JSON object):

- submitted, succeeded, failed: outcomes; "failed" are errors that are not
  possibly_created (the create was refused, or the task failed or timed out;
  1% of the tasks are made to fail on purpose);
- in doubt: outcomes whose error says ``possibly_created``; of those, how many
  really were created (the emulator knows);
- duplicate creations: requests for which the emulator created more than one
  task; a duplicate is *silent* unless that request's outcome says
  possibly_created;
- wrong ids: outcomes whose task id is not a task the emulator created for
  that request; out of order: outcomes not in input order (``run_jobs``
  promises input order);
- lost: requests without exactly one outcome;
- unhandled: outcomes whose error is not a KooDriveError, an exception out of
  ``run_jobs``, or an exception the event loop reported as never retrieved.

Targets: 0 unhandled, 0 lost, 0 silent duplicates, 0 wrong ids, 0 out of order. The exit
status is 0 when they are met, 1 otherwise.

Bounded: ``--jobs`` (capped at 100,000) and ``--max-seconds`` (the run is
cancelled when it passes; jobs without an outcome then count as lost).

Usage::

    python benchmarks/soak.py               # 5,000 jobs
    python benchmarks/soak.py --quick       # 500 jobs, shorter delays (CI, < 60 s)
    python benchmarks/soak.py --jobs 20000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs

from koodrive_async import (
    FileInfo,
    JobOutcome,
    JobRequest,
    JobType,
    KooDriveError,
    KooDriveSession,
    PollPolicy,
    Request,
    RetryPolicy,
    ShareTaskRequest,
    ShareTaskType,
    TransferTaskRequest,
)
from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator

MAX_JOBS = 100_000
_KEY = re.compile(r"soak-(\d+)")


@attrs.frozen
class SoakOptions:
    """How a soak runs.

    Args:
        jobs: Requests to run.
        seed: Seed of the emulator (fault draws, task durations).
        concurrency: ``max_concurrency`` of ``run_jobs``.
        timeout: The session's per-attempt timeout (seconds).
        latency: Delay of the "slower than the timeout" fault (seconds).
        retry_after: Retry-After of the 503 fault (seconds).
        clock_speed: Speed of the emulator's virtual task clock.
        task_duration: Virtual seconds a task runs.
        failure_rate: Share of tasks that end FAILED (a failed task is an
            outcome like any other, not an error of the client).
        max_seconds: Wall-clock bound of the whole run.
    """

    jobs: int = 5000
    seed: int = 1
    concurrency: int = 100
    timeout: float = 1.0
    latency: float = 1.5
    retry_after: float = 1.0
    clock_speed: float = 10.0
    task_duration: float = 2.0
    failure_rate: float = 0.01
    max_seconds: float = 600.0


#: A short run for CI: 500 jobs, delays scaled down, well under 60 s.
QUICK = SoakOptions(
    jobs=500, concurrency=100, timeout=0.5, latency=0.75, retry_after=0.2, max_seconds=55.0
)

#: (kind, rate, extra inject() arguments): the fault matrix of the module docstring.
FAULT_MATRIX: tuple[tuple[FaultKind, float, dict[str, Any]], ...] = (
    (FaultKind.UNAVAILABLE, 0.02, {"retry_after": "RETRY_AFTER"}),
    (FaultKind.SERVER_ERROR, 0.02, {"method": "GET"}),
    (FaultKind.CREATED_BUT_500, 0.01, {"method": "POST"}),
    (FaultKind.DROP, 0.02, {}),
    (FaultKind.LATENCY, 0.01, {"latency": "LATENCY"}),
    (FaultKind.BAD_GATEWAY_HTML, 0.01, {}),
    (FaultKind.MALFORMED_JSON, 0.01, {}),
)


@attrs.define
class SoakResult:
    """The figures of one soak (see the module docstring)."""

    jobs_submitted: int = 0
    succeeded: int = 0
    failed: int = 0
    tasks_failed: int = 0
    in_doubt: int = 0
    in_doubt_created: int = 0
    duplicate_creations: int = 0
    silent_duplicates: int = 0
    wrong_ids: int = 0
    out_of_order: int = 0
    lost: int = 0
    unhandled: int = 0
    unhandled_examples: list[str] = attrs.field(factory=list)
    tasks_created: int = 0
    http_requests: int = 0
    faults_applied: dict[str, int] = attrs.field(factory=dict)
    failure_kinds: dict[str, int] = attrs.field(factory=dict)
    emulator_internal_errors: int = 0
    elapsed_seconds: float = 0.0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """True when the targets are met."""
        return (
            self.unhandled == 0
            and self.lost == 0
            and self.silent_duplicates == 0
            and self.wrong_ids == 0
            and self.out_of_order == 0
            and not self.timed_out
        )

    def to_json(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict (``ok`` included)."""
        data = attrs.asdict(self)
        data["ok"] = self.ok
        return data


def make_requests(count: int) -> Iterator[Request]:
    """``count`` requests of the three create endpoints, each carrying ``soak-<n>``.

    Args:
        count: How many.

    Yields:
        Request models, lazily.
    """
    for n in range(count):
        key = f"soak-{n}"
        kind = n % 4
        if kind == 0:
            yield TransferTaskRequest(src_user_id=key, dst_user_id="soak-dst")
        elif kind == 1:
            yield ShareTaskRequest(
                ShareTaskType.PACKAGE,
                container_id="soak-share-space",
                file_ids=[key],
                share_id="soak-share",
                zip_name=f"{key}.zip",
            )
        else:
            yield JobRequest(
                JobType.COPY if kind == 2 else JobType.MOVE,
                src_container_id="soak-src-space",
                dst_container_id="soak-dst-space",
                files=[FileInfo(file_id=key)],
            )


def request_key(request: Request) -> int:
    """The ``n`` of the ``soak-<n>`` id a request carries."""
    if isinstance(request, TransferTaskRequest):
        text = request.src_user_id
    elif isinstance(request, ShareTaskRequest):
        text = request.file_ids[0]
    else:
        assert isinstance(request, JobRequest)
        text = request.files[0].file_id or ""
    match = _KEY.fullmatch(text)
    assert match is not None
    return int(match.group(1))


def _possibly_created(outcome: JobOutcome) -> bool:
    return bool(getattr(outcome.error, "possibly_created", False))


def inject_fault_matrix(emu: KooDriveEmulator, options: SoakOptions) -> None:
    """Register the fault matrix on an emulator.

    Args:
        emu: The emulator.
        options: Supplies the latency and Retry-After values.
    """
    values = {"RETRY_AFTER": options.retry_after, "LATENCY": options.latency}
    for kind, rate, extra in FAULT_MATRIX:
        kwargs: dict[str, Any] = {
            k: values.get(v, v) if isinstance(v, str) else v for k, v in extra.items()
        }
        emu.inject(kind, rate=rate, **kwargs)


async def run_soak(options: SoakOptions) -> SoakResult:
    """Run one soak and tally it.

    Args:
        options: The run's settings.

    Returns:
        The figures.
    """
    if not 1 <= options.jobs <= MAX_JOBS:
        raise ValueError(f"jobs must be within 1..{MAX_JOBS}")
    result = SoakResult(jobs_submitted=options.jobs)
    loop = asyncio.get_running_loop()
    previous_handler = loop.get_exception_handler()

    def record_loop_error(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # "Task exception was never retrieved" and friends: an error nobody handled.
        result.unhandled += 1
        result.unhandled_examples.append(f"event loop: {context.get('message')}")

    loop.set_exception_handler(record_loop_error)
    config = EmulatorConfig(
        seed=options.seed,
        task_duration=options.task_duration,
        failure_rate=options.failure_rate,
        clock_speed=options.clock_speed,
    )
    outcomes: list[JobOutcome] = []
    started = time.monotonic()
    try:
        async with KooDriveEmulator(config, host="127.0.0.1", port=0) as emu:
            inject_fault_matrix(emu, options)
            retry = RetryPolicy(
                max_attempts=4, initial_backoff=0.02, max_backoff=0.25, max_retry_after=10.0
            )
            poll = PollPolicy(initial=0.05, multiplier=1.5, max_interval=0.5)
            async with KooDriveSession(
                emu.url,
                user_id="soak-user",
                token="soak-token",
                agent_name="soak-agent",
                timeout=options.timeout,
                retry=retry,
                max_connections=options.concurrency + 20,
            ) as session:
                try:
                    async with asyncio.timeout(options.max_seconds):
                        outcomes = await session.run_jobs(
                            make_requests(options.jobs),
                            max_concurrency=options.concurrency,
                            poll=poll,
                            timeout=max(30.0, options.task_duration / options.clock_speed * 20),
                        )
                except TimeoutError:
                    result.timed_out = True
                except Exception as exc:  # noqa: BLE001 - counted, that is the point
                    result.unhandled += 1
                    result.unhandled_examples.append(f"run_jobs raised {exc!r}")
            result.elapsed_seconds = round(time.monotonic() - started, 2)
            _tally(result, outcomes, emu, options.jobs)
    finally:
        # Let cancelled helpers report before the handler goes away.
        await asyncio.sleep(0)
        loop.set_exception_handler(previous_handler)
    return result


def _tally(
    result: SoakResult, outcomes: list[JobOutcome], emu: KooDriveEmulator, jobs: int
) -> None:
    created: dict[int, list[str]] = {}
    for task in emu.state.tasks():
        match = _KEY.search(json.dumps(task.body))
        if match is not None:
            created.setdefault(int(match.group(1)), []).append(task.task_id)
    result.tasks_created = sum(len(ids) for ids in created.values())
    ledger = emu.requests
    result.http_requests = len(ledger)
    result.faults_applied = dict(
        sorted(Counter(e.fault.value for e in ledger if e.fault is not None).items())
    )
    result.emulator_internal_errors = emu.internal_errors

    by_key: dict[int, list[JobOutcome]] = {}
    failure_kinds: Counter[str] = Counter()
    for index, outcome in enumerate(outcomes):
        by_key.setdefault(request_key(outcome.request), []).append(outcome)
        if request_key(outcome.request) != index:
            result.out_of_order += 1
        error = outcome.error
        if error is not None and not isinstance(error, KooDriveError):
            result.unhandled += 1
            result.unhandled_examples.append(f"outcome error {error!r}")
        if outcome.ok:
            result.succeeded += 1
        elif _possibly_created(outcome):
            result.in_doubt += 1
            if created.get(request_key(outcome.request)):
                result.in_doubt_created += 1
            failure_kinds[f"in doubt: {type(error).__name__}"] += 1
        else:
            result.failed += 1
            if outcome.task_id is not None:
                result.tasks_failed += 1
            failure_kinds[type(error).__name__ if error is not None else "not SUCCESS"] += 1
        ids = created.get(request_key(outcome.request), [])
        if outcome.task_id is not None and outcome.task_id not in ids:
            result.wrong_ids += 1
    result.failure_kinds = dict(sorted(failure_kinds.items()))
    result.lost = sum(1 for n in range(jobs) if len(by_key.get(n, ())) != 1)
    for n, ids in created.items():
        if len(ids) > 1:
            result.duplicate_creations += 1
            if not any(_possibly_created(o) for o in by_key.get(n, ())):
                result.silent_duplicates += 1
    del result.unhandled_examples[10:]


def format_table(result: SoakResult, options: SoakOptions) -> str:
    """Render the figures as a text table.

    Args:
        result: The figures.
        options: The settings (shown in the title).

    Returns:
        The table.
    """
    rows: list[tuple[str, str]] = [
        ("jobs submitted", f"{result.jobs_submitted:,}"),
        ("succeeded", f"{result.succeeded:,}"),
        ("failed (refused, or the task failed)", f"{result.failed:,}"),
        ("  of which tasks that ran and failed", f"{result.tasks_failed:,}"),
        ("in doubt (possibly_created)", f"{result.in_doubt:,}"),
        ("  of which really created", f"{result.in_doubt_created:,}"),
        ("duplicate creations", f"{result.duplicate_creations:,}"),
        ("  silent duplicates", f"{result.silent_duplicates:,}"),
        ("wrong task ids", f"{result.wrong_ids:,}"),
        ("outcomes out of input order", f"{result.out_of_order:,}"),
        ("lost (no outcome)", f"{result.lost:,}"),
        ("unhandled exceptions", f"{result.unhandled:,}"),
        ("tasks created on the emulator", f"{result.tasks_created:,}"),
        ("HTTP requests", f"{result.http_requests:,}"),
    ]
    rows += [(f"  fault {kind}", f"{count:,}") for kind, count in result.faults_applied.items()]
    rows += [(f"  outcome {kind}", f"{count:,}") for kind, count in result.failure_kinds.items()]
    rows += [
        ("emulator internal errors", f"{result.emulator_internal_errors:,}"),
        ("elapsed (s)", f"{result.elapsed_seconds:.1f}"),
        ("stopped at --max-seconds", "yes" if result.timed_out else "no"),
        ("targets met (0 unhandled/lost/silent dup.)", "YES" if result.ok else "NO"),
    ]
    width = max(len(name) for name, _ in rows)
    title = (
        f"soak: {options.jobs:,} jobs, concurrency {options.concurrency}, timeout "
        f"{options.timeout:g}s, latency fault {options.latency:g}s, seed {options.seed}"
    )
    lines = [title, "-" * len(title)]
    lines += [f"{name:<{width}}  {value:>10}" for name, value in rows]
    lines += [f"unhandled: {example}" for example in result.unhandled_examples]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the soak, print the table (or JSON).

    Args:
        argv: The arguments (default ``sys.argv[1:]``).

    Returns:
        0 when the targets are met, else 1.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=None, help="requests (default 5000)")
    parser.add_argument("--quick", action="store_true", help="500 jobs, short delays (CI)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    options = QUICK if args.quick else SoakOptions()
    changes: dict[str, Any] = {}
    if args.jobs is not None:
        changes["jobs"] = args.jobs
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.concurrency is not None:
        changes["concurrency"] = args.concurrency
    if args.max_seconds is not None:
        changes["max_seconds"] = args.max_seconds
    options = attrs.evolve(options, **changes)
    if not 1 <= options.jobs <= MAX_JOBS:
        parser.error(f"--jobs must be within 1..{MAX_JOBS}")
    result = asyncio.run(run_soak(options))
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(format_table(result, options))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
