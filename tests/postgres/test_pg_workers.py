"""Many workers, one plan, one PostgreSQL journal: every line once, whoever dies.

Real child processes (``koodrive-async run PLAN --journal postgresql://…``)
share one plan through a real PostgreSQL (see ``tests/conftest.py``) against
one emulator served by the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import signal
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from cli_helpers import (
    POLL,
    TOKEN,
    USER_ID,
    Result,
    created_by_marker,
    finish,
    job_line,
    marker_of,
    run_in_process,
    start_cli,
    write_plan,
)

from koodrive_async import KooDriveSession, PollPolicy
from koodrive_async.bulk import RunOptions, State, attach_plan, load_plan, open_journal, run_plan
from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator, Quota

pytestmark = pytest.mark.slow


@pytest.fixture
def emulator_config(request: pytest.FixtureRequest) -> EmulatorConfig:
    """Short uneven jobs, 3% of them fail; X-Dates are refused after 3 s (the fence's core).

    A test may change fields (``indirect`` parametrization with a dict).
    """
    fields: dict[str, Any] = {
        "task_duration": lambda rng: rng.uniform(0.2, 2.0),
        "clock_speed": 25.0,
        "failure_rate": 0.03,
        "seed": 5,
        "x_date_max_age": 3.0,
        **getattr(request, "param", {}),
    }
    return EmulatorConfig(**fields)


#: For tests that count what succeeded: no task fails.
NO_FAILURES = pytest.mark.parametrize("emulator_config", [{"failure_rate": 0.0}], indirect=True)


#: Fewer polls: the rate tests measure the creates, on a machine the children share.
CALM = ("--poll-interval", "0.1")


def worker_args(plan: Path, url: str, worker: str, *extra: str) -> tuple[str, ...]:
    return (
        "run", str(plan), "--journal", url, "--worker-id", worker, "--json",
        "--lease", "1", "--x-date-window", "3", "--fence-margin", "1", "--settle-time", "0.5",
        *POLL, *extra,
    )  # fmt: skip


async def journal_states(url: str) -> dict[int, Any]:
    async with open_journal(url) as journal:
        return {r.line: r for r in await journal.records()}


def assert_every_line_once(emu: KooDriveEmulator, rows: dict[int, Any], lines: int) -> None:
    assert sorted(rows) == list(range(1, lines + 1))
    states = {r.state for r in rows.values()}
    assert states <= {State.SUCCEEDED, State.FAILED}, states
    created = created_by_marker(emu)
    assert sorted(created) == sorted(f"F{i}" for i in range(1, lines + 1))
    for number, row in rows.items():
        assert created[f"F{number}"] == [row.task_id], (number, row)


# Its children take ~40 s on an idle 2-core machine, ~100 s on a loaded one.
@pytest.mark.timeout(300)
async def test_three_workers_with_faults_send_every_line_once(
    emu: KooDriveEmulator, cli_env: dict[str, str], tmp_path: Path, pg_url: str
) -> None:
    lines = 3000
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, lines + 1)])
    emu.inject(FaultKind.CREATED_BUT_504, route="create_job", rate=0.01)
    emu.inject(FaultKind.UNAVAILABLE, route="create_job", rate=0.02)
    emu.inject(FaultKind.SERVER_ERROR, route="get_job", rate=0.02)
    procs = [
        # No worker dies here: a lease long enough that a loaded machine's
        # stalls never let one worker take another's lines (the last flag wins).
        await start_cli(
            *worker_args(plan, pg_url, f"w{n}", "--concurrency", "32", "--lease", "15"),
            env=cli_env,
        )
        for n in range(3)
    ]
    results = await asyncio.gather(*(finish(p, timeout=240) for p in procs))
    assert all(r.code in (0, 1) for r in results), [r.err[-2000:] for r in results]
    rows = await journal_states(pg_url)
    assert_every_line_once(emu, rows, lines)
    # Each worker did a share of the plan.
    assert all(sum(o.get("state") != "in_doubt" for o in r.json_lines()) > 0 for r in results)


# ---------------------------------------------------------------- helpers


async def wait_until(
    check: Callable[[], Awaitable[bool] | bool], timeout: float, what: str
) -> None:
    """Poll ``check`` (bounded) until it holds: observable state, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)


async def pg_rows(url: str) -> dict[int, dict[str, Any]]:
    """``{line: row}`` straight from the journal's table (with who holds it, and fences)."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT line, state, task_id, worker, holder, fence_until, clock_timestamp()"
            " FROM koodrive_lines ORDER BY line"
        )
        names = ("line", "state", "task_id", "worker", "holder", "fence_until", "now")
        return {int(r[0]): dict(zip(names, r, strict=True)) for r in await cursor.fetchall()}


def created_count(emu: KooDriveEmulator) -> int:
    return sum(1 for e in emu.requests if e.task_id is not None)


#: The worker children of the running test (killed at its end if still running).
_CHILDREN: list[asyncio.subprocess.Process] = []


@pytest.fixture(autouse=True)
def _no_child_left() -> Iterator[None]:
    yield
    while _CHILDREN:
        proc = _CHILDREN.pop()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()


def spawn(plan: Path, url: str, worker: str, env: dict[str, str], *extra: str) -> Worker:
    """A worker child, its output read as it comes (a full pipe would stall it)."""

    async def run() -> Result:
        proc = await start_cli(*worker_args(plan, url, worker, *extra), env=env)
        _CHILDREN.append(proc)
        started.set_result(proc)
        return await finish(proc, timeout=240)

    started: asyncio.Future[asyncio.subprocess.Process] = asyncio.get_running_loop().create_future()
    return Worker(worker, started, asyncio.create_task(run()))


@attrs.define
class Worker:
    """A running worker child."""

    name: str
    started: asyncio.Future[asyncio.subprocess.Process]
    done: asyncio.Task[Result]

    async def proc(self) -> asyncio.subprocess.Process:
        return await self.started


async def settle_fenced_lines(
    plan: Path, url: str, env: dict[str, str]
) -> tuple[set[int], Result | None]:
    """Lines the workers left in doubt only for their fence: run one more worker after it.

    Returns:
        (the lines that were in doubt, the final worker's result or None).
    """
    rows = await pg_rows(url)
    in_doubt = {n for n, r in rows.items() if r["state"] == State.IN_DOUBT}
    if not in_doubt:
        return in_doubt, None
    # Each is in doubt because its fence had not passed when a worker looked.
    assert all(rows[n]["fence_until"] is not None for n in in_doubt), rows
    fence = max(rows[n]["fence_until"] for n in in_doubt)

    async def fence_passed() -> bool:
        now = next(iter((await pg_rows(url)).values()))["now"]
        return bool(now > fence)

    await wait_until(fence_passed, 30, "the fence of the lines in doubt")
    final = await spawn(plan, url, "w-final", env).done
    assert final.code in (0, 1), final.err[-3000:]
    return in_doubt, final


# ---------------------------------------------------------------- SIGKILL


@pytest.mark.timeout(240)
async def test_two_of_four_workers_killed_twice_while_creates_are_held(
    emu: KooDriveEmulator, cli_env: dict[str, str], tmp_path: Path, pg_url: str
) -> None:
    rng = random.Random(20261201)
    lines = 600
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, lines + 1)])
    workers = {
        w: spawn(plan, pg_url, w, cli_env, "--concurrency", "16") for w in ("w0", "w1", "w2", "w3")
    }
    window = 0  # lines a killed worker left "submitting" whose task existed
    for round_no in range(2):
        target = created_count(emu) + rng.randint(60, 180)
        await wait_until(lambda t=target: created_count(emu) >= t, 90, f"{target} creates")
        # The service carries out every create now and holds its answer past the
        # kill. Shorter than the X-Date window: the held answer's Date header is
        # as old as the hold, and the survivors learn their clock from it.
        hold = emu.inject(FaultKind.CREATED_THEN_HELD, route="create_job", latency=1.5)
        await wait_until(lambda h=hold: h.hits >= 24, 20, "creates held")
        victims = rng.sample(sorted(workers), 2)
        created_at_kill = set(created_by_marker(emu))
        for name in victims:
            (await workers[name].proc()).kill()
            killed = await workers.pop(name).done
            assert killed.code == -signal.SIGKILL, killed.err[-2000:]
        emu.clear_faults()
        rows = await pg_rows(pg_url)
        window += sum(
            r["state"] == State.SUBMITTING and r["worker"] in victims and f"F{n}" in created_at_kill
            for n, r in rows.items()
        )
        # One comes back under its own id (takes its lines back at once), one
        # under a new id (its lines move when the lease runs out).
        for k, name in enumerate(victims):
            again = name if k == 0 else f"{name}-r{round_no}"
            workers[again] = spawn(plan, pg_url, again, cli_env, "--concurrency", "16")
    # The kills really landed in the window where a task exists and the journal has no id.
    assert window > 0
    results = await asyncio.gather(*(w.done for w in workers.values()))
    assert all(r.code in (0, 1, 3) for r in results), [r.err[-2000:] for r in results]
    assert not any("Traceback" in r.err for r in results), [r.err[-2000:] for r in results]
    in_doubt, final = await settle_fenced_lines(plan, pg_url, cli_env)
    if final is not None:
        settled = {o["line"] for o in final.json_lines() if o["state"] != "in_doubt"}
        assert in_doubt <= settled
    assert_every_line_once(emu, await journal_states(pg_url), lines)


# ---------------------------------------------------------------- SIGSTOP


@pytest.mark.timeout(300)
async def test_a_stopped_worker_loses_its_lines_and_sends_nothing_for_them(
    emu: KooDriveEmulator, cli_env: dict[str, str], tmp_path: Path, pg_url: str
) -> None:
    lines = 300
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, lines + 1)])
    stopped = spawn(plan, pg_url, "wA", cli_env, "--concurrency", "8")
    await wait_until(lambda: created_count(emu) >= 30, 60, "the first creates")
    # Every create is refused 503 with a Retry-After: the worker's creates wait
    # in its sender to be tried again, marked "submitting", when it is stopped.
    refused = emu.inject(FaultKind.UNAVAILABLE, route="create_job", retry_after=2.0)
    await wait_until(lambda: refused.hits >= 8, 20, "the creates to be refused")
    proc = await stopped.proc()
    proc.send_signal(signal.SIGSTOP)
    try:
        emu.clear_faults()
        traces = {
            e.headers.get("X-Traceid") for e in emu.requests if e.fault is FaultKind.UNAVAILABLE
        }
        held = {
            n
            for n, r in (await pg_rows(pg_url)).items()
            if r["state"] == State.SUBMITTING and r["worker"] == "wA"
        }
        assert held and traces
        others = [spawn(plan, pg_url, w, cli_env, "--concurrency", "16") for w in ("wB", "wC")]

        async def taken_over() -> bool:
            rows = await pg_rows(pg_url)
            return all(rows[n]["state"] != State.SUBMITTING for n in held)

        # Its lease ran out (1 s): the others took its lines over, those it
        # left "submitting" in doubt.
        # (The others create the ~260 other lines meanwhile: on a loaded
        # machine that alone can take a minute.)
        await wait_until(taken_over, 150, "the stopped worker's lines to move")
    finally:
        resumed = time.monotonic()
        proc.send_signal(signal.SIGCONT)
    results = await asyncio.gather(stopped.done, *(w.done for w in others))
    assert all(r.code in (0, 1, 3) for r in results), [r.err[-2000:] for r in results]
    assert not any("Traceback" in r.err for r in results), [r.err[-2000:] for r in results]
    # The lease guard vetoed the stopped worker's retries: none of its refused
    # creates was sent again after it went on.
    again = [e for e in emu.requests if e.time >= resumed and e.headers.get("X-Traceid") in traces]
    assert again == []
    await settle_fenced_lines(plan, pg_url, cli_env)
    # Each line it held was created once, by a later attempt (another
    # worker's, or its own once it went on and claimed the line back after
    # the others settled it), never by the attempt it was stopped in.
    creating = {marker_of(e.body): e.headers.get("X-Traceid") for e in emu.requests if e.task_id}
    assert all(creating[f"F{n}"] not in traces for n in held)
    assert_every_line_once(emu, await journal_states(pg_url), lines)


# ---------------------------------------------------------------- the shared rate


def creates_per_second(emu: KooDriveEmulator, results: list[Result]) -> tuple[float, float]:
    """Creates per second while every worker was creating: the median of its whole seconds.

    The median of the seconds, not their mean: a second the loaded test
    machine stalls every child in says nothing about the shared budget.

    Returns:
        (creates per second, how many whole seconds every worker was creating).
    """
    owner = {o["line"]: n for n, r in enumerate(results) for o in r.json_lines()}
    times: dict[int, list[float]] = {}
    every: list[float] = []
    for entry in emu.requests:
        if entry.task_id is None:
            continue
        marker = marker_of(entry.body)
        assert marker is not None
        every.append(entry.time)
        times.setdefault(owner[int(marker[1:])], []).append(entry.time)
    assert len(times) == len(results), "a worker created nothing"
    start = max(min(t) for t in times.values())
    end = min(max(t) for t in times.values())
    seconds = int(end - start)
    assert seconds >= 2, (start, end)
    bins = [0] * seconds
    for t in every:
        if start <= t < start + seconds:
            bins[int(t - start)] += 1
    return float(statistics.median(bins)), float(seconds)


@NO_FAILURES
async def test_three_workers_share_one_rate(
    emu: KooDriveEmulator, cli_env: dict[str, str], tmp_path: Path, pg_url: str
) -> None:
    rate, lines = 20.0, 240
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, lines + 1)])
    workers = [
        spawn(plan, pg_url, f"w{n}", cli_env, "--concurrency", "8", "--rate", f"{rate:g}", *CALM)
        for n in range(3)
    ]
    results = [await w.done for w in workers]
    assert all(r.code == 0 for r in results), [r.err[-2000:] for r in results]
    measured, seconds = creates_per_second(emu, results)
    assert abs(measured - rate) <= 0.1 * rate, (
        f"3 workers sharing --rate {rate:g} made {measured:g} creates/s "
        f"(median of {seconds:g} s), outside ±10%"
    )
    assert_every_line_once(emu, await journal_states(pg_url), lines)


@pytest.mark.parametrize(
    "emulator_config",
    [{"clock_speed": 1.0, "quota": Quota(rate=20.0), "failure_rate": 0.0}],
    indirect=True,
)
async def test_four_workers_at_the_quota_hold_it_without_a_429_storm(
    emu: KooDriveEmulator, cli_env: dict[str, str], tmp_path: Path, pg_url: str
) -> None:
    quota, lines = 20.0, 240
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, lines + 1)])
    workers = [
        spawn(plan, pg_url, f"w{n}", cli_env, "--concurrency", "8", "--rate", f"{quota:g}", *CALM)
        for n in range(4)
    ]
    results = [await w.done for w in workers]
    assert all(r.code == 0 for r in results), [r.err[-2000:] for r in results]
    throttled = sum(1 for e in emu.requests if e.throttled)
    assert throttled <= 3, throttled
    measured, seconds = creates_per_second(emu, results)
    assert abs(measured - quota) <= 0.1 * quota, (
        f"4 workers sharing --rate {quota:g} at a quota of {quota:g}/s made {measured:g} "
        f"creates/s (median of {seconds:g} s), outside ±10%"
    )
    assert_every_line_once(emu, await journal_states(pg_url), lines)


# ---------------------------------------------------------------- plans


@NO_FAILURES
async def test_another_plan_is_refused_and_appended_lines_are_taken(
    emu: KooDriveEmulator, cli_env: dict[str, str], tmp_path: Path, pg_url: str
) -> None:
    first = [job_line(f"F{i}") for i in range(1, 21)]
    plan = write_plan(tmp_path / "plan.jsonl", first)
    done = await spawn(plan, pg_url, "w1", cli_env).done
    assert done.code == 0, done.err[-2000:]
    sent = len(emu.requests)

    changed = write_plan(tmp_path / "other.jsonl", [*first[:2], job_line("X3"), *first[3:]])
    refused = await spawn(changed, pg_url, "w2", cli_env).done
    assert refused.code == 2, refused.err[-2000:]
    assert "line 3" in refused.err
    assert len(emu.requests) == sent  # nothing was sent

    grown = write_plan(
        tmp_path / "grown.jsonl", [*first, *(job_line(f"F{i}") for i in range(21, 31))]
    )
    taken = await spawn(grown, pg_url, "w2", cli_env).done
    assert taken.code == 0, taken.err[-2000:]
    assert "10 line(s) appended" in taken.err
    assert sorted(o["line"] for o in taken.json_lines()) == list(range(21, 31))
    assert_every_line_once(emu, await journal_states(pg_url), 30)


# ---------------------------------------------------------------- reports


@NO_FAILURES
async def test_report_and_summary_show_the_whole_plan_and_who_holds_what(
    cli_env: dict[str, str], tmp_path: Path, pg_url: str
) -> None:
    lines = 40
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, lines + 1)])
    async with open_journal(pg_url, worker_id="w-held", lease=120) as held:
        await attach_plan(held, load_plan(plan))
        claim = await held.claim(8)
        assert len(claim.pending) == 8
        # A report is one invocation on its own: in process.
        report = await run_in_process(
            "report", str(plan), "--journal", pg_url, "--format", "jsonl", env=cli_env
        )
        assert report.code == 0, report.err
        assert len(report.json_lines()) == lines
        assert "worker w-held holds 8 line(s)" in report.err
        # A worker does the rest, then waits for w-held's lease; stopped, its
        # summary counts the whole plan and names who holds the lines left.
        first = spawn(plan, pg_url, "w1", cli_env)

        async def rest_done() -> bool:
            counts = await held.counts()
            return counts.get(State.SUCCEEDED, 0) == lines - 8

        await wait_until(rest_done, 60, "the other lines")
        (await first.proc()).send_signal(signal.SIGINT)
        stopped = await first.done
        assert stopped.code == 130, stopped.err[-2000:]
        assert re.search(r"succeeded\s+32\b", stopped.err), stopped.err
        assert re.search(r"not started\s+8\b", stopped.err), stopped.err
        assert "w-held holds 8 line(s)" in stopped.err
        await held.release()
    second = await spawn(plan, pg_url, "w2", cli_env).done
    assert second.code == 0, second.err[-2000:]
    assert len(second.json_lines()) == 8
    # Its summary is the whole plan's, not only the 8 lines it ran.
    assert re.search(r"succeeded\s+40\b", second.err), second.err
    report = await run_in_process(
        "report", str(plan), "--journal", pg_url, "--format", "jsonl", env=cli_env
    )
    rows = report.json_lines()
    assert sorted(r["line"] for r in rows) == list(range(1, lines + 1))
    assert {r["verdict"] for r in rows} == {"succeeded"}
    assert "holds" not in report.err


# ---------------------------------------------------------------- the library


@NO_FAILURES
async def test_run_plan_from_python_with_a_postgresql_url(
    emu: KooDriveEmulator, tmp_path: Path, pg_url: str
) -> None:
    lines = 60
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, lines + 1)])
    options = RunOptions(concurrency=4, poll=PollPolicy(initial=0.02))
    async with KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN) as session:
        # Two workers in one process, as two Celery tasks might be.
        results = await asyncio.gather(
            run_plan(plan, session, journal=pg_url, options=options),
            run_plan(plan, session, journal=pg_url, options=options),
        )
        again = await run_plan(plan, session, journal=pg_url, options=options)
    assert all(r.succeeded and r.counts == {State.SUCCEEDED: lines} for r in results), results
    assert sum(r.finished_now for r in results) == lines
    assert not again.had_work
    assert_every_line_once(emu, await journal_states(pg_url), lines)


@NO_FAILURES
async def test_a_restarted_worker_waits_for_the_lines_its_first_reconciliation_finds(
    emu: KooDriveEmulator, tmp_path: Path, pg_url: str
) -> None:
    # A worker killed after its creates were carried out, before their ids
    # were recorded, restarted under its own id: the reconciliation at its
    # start finds the tasks and leases the lines to it; it must wait on them
    # (a claim never hands back lines a worker already holds).
    plan = load_plan(write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, 7)]))
    options = RunOptions(concurrency=4, settle=0.0, poll=PollPolicy(initial=0.02))
    async with KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN) as session:
        async with open_journal(pg_url, worker_id="w", lease=30) as killed:
            await attach_plan(killed, plan)
            assert len((await killed.claim(10)).pending) == 6
            for line in (1, 2, 3):
                await killed.mark_submitting(line, clock_offset=session.clock_offset)
                await session.submit(plan.request(line))  # the answer is lost
        async with open_journal(pg_url, worker_id="w", lease=30) as restarted:
            result = await asyncio.wait_for(
                run_plan(plan, session, journal=restarted, options=options), 60
            )
    assert result.counts == {State.SUCCEEDED: 6}, result.counts
    assert_every_line_once(emu, await journal_states(pg_url), 6)


@NO_FAILURES
async def test_two_workers_progress_displays_count_the_whole_plan(
    emu: KooDriveEmulator, cli_env: dict[str, str], tmp_path: Path, pg_url: str
) -> None:
    # Each worker's display reads the whole plan from the journal (not only
    # its own lines): its last status line is the plan's, every line done,
    # with this worker's own share beside it.
    lines = 60
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, lines + 1)])
    workers = ("w1", "w2")
    common = (
        "--journal", pg_url, "--progress", "plain", "--concurrency", "16", "--lease", "3",
        "--x-date-window", "3", "--fence-margin", "1", "--settle-time", "0.5", *POLL,
    )  # fmt: skip
    procs = [
        await start_cli("run", str(plan), "--worker-id", worker, *common, env=cli_env)
        for worker in workers
    ]
    results = await asyncio.gather(*(finish(p, timeout=120) for p in procs))
    assert [r.code for r in results] == [0, 0], [r.err[-2000:] for r in results]
    own = []
    for worker, result in zip(workers, results, strict=True):
        status = [ln for ln in result.err.splitlines() if ln.startswith("progress: ")]
        assert status, result.err[-2000:]
        last = status[-1]
        expected = f"progress: plan {lines}/{lines} done · {lines} succeeded · 0 failed | "
        assert last.startswith(expected + f"this worker ({worker}): "), last
        found = re.search(r"this worker \(w\d\): (\d+) done", last)
        assert found is not None, last
        own.append(int(found.group(1)))
    # The two shares: every line once, whoever took it.
    assert sum(own) == lines, own
    assert_every_line_once(emu, await journal_states(pg_url), lines)
