"""A 429 one worker sees holds back every worker of the plan, with or without ``--rate``.

In-process workers (one session and one PostgreSQL journal each, as separate
processes would have) against one emulator with a per-user quota, over
loopback. Real time, kept short.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import TOKEN, USER_ID, created_by_marker, job_line, write_plan
from pg_helpers import JournalOpener, entries, load

from koodrive_async import KooDriveSession, PollPolicy
from koodrive_async.bulk import RunOptions, State, attach_plan, load_plan, run_plan
from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator, Quota

QUOTA = 10.0

#: The creates already on their way when the first 429 came back (marked
#: "submitting" before its hold was recorded) may still arrive during the hold:
#: at most this many after IN_FLIGHT seconds. The emulator shares this test's
#: event loop with the four workers, so on a loaded machine recording the hold
#: takes a while. The code before the fix sent about 20 there.
IN_FLIGHT = 0.25
LATE_IN_FLIGHT = 8


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """A quota of QUOTA creates/s (a second's burst) answering whole-second Retry-Afters."""
    return EmulatorConfig(
        task_duration=lambda rng: rng.uniform(0.2, 0.6),
        clock_speed=1.0,
        failure_rate=0.0,
        seed=3,
        quota=Quota(rate=QUOTA, whole_seconds=True),
    )


async def test_a_hold_is_read_with_the_submitting_write(open_journal: JournalOpener) -> None:
    seer, other = await open_journal(worker_id="seer"), await open_journal(worker_id="other")
    await load(seer, entries(4), "p")
    assert (await other.claim(2)).pending == (1, 2)
    # No hold yet: the write says so (no extra round trip is made for it).
    assert await other.mark_submitting(1) == 0.0
    left = await seer.shared_pacer(None).hold(5.0)
    assert 4.0 < left <= 5.0
    # The next "submitting" write of another worker learns the hold.
    held = await other.mark_submitting(2)
    assert held is not None and 4.0 < held <= 5.0
    # A shorter hold seen later does not cut it; the longest one wins.
    assert await other.shared_pacer(None).hold(0.1) > 4.0


async def _worker(emu: KooDriveEmulator, plan: Path, url: str, name: str) -> Any:
    from koodrive_async.bulk import open_journal

    options = RunOptions(concurrency=8, settle=0.0, poll=PollPolicy(initial=0.05))
    async with (
        KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN) as session,
        open_journal(url, worker_id=name, lease=15) as journal,
    ):
        return await run_plan(plan, session, journal=journal, options=options)


async def test_four_workers_without_rate_hold_back_together_after_a_429(
    emu: KooDriveEmulator, tmp_path: Path, pg_url: str
) -> None:
    lines = 80
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, lines + 1)])
    from koodrive_async.bulk import open_journal

    async with open_journal(pg_url, worker_id="loader") as journal:
        await attach_plan(journal, load_plan(plan))
    results = await asyncio.wait_for(
        asyncio.gather(*(_worker(emu, plan, pg_url, f"w{n}") for n in range(4))), 60
    )
    creates = [e for e in emu.requests if e.route == "create_job"]
    throttled = [e for e in creates if e.throttled]
    # Every line succeeded, once, however many 429s its creates met.
    assert all(r.error is None and r.stop is None for r in results), results
    async with open_journal(pg_url) as journal:
        assert await journal.counts() == {State.SUCCEEDED: lines}
    created = created_by_marker(emu)
    assert sorted(created) == sorted(f"F{i}" for i in range(1, lines + 1))
    assert all(len(ids) == 1 for ids in created.values()), created
    # The first 429 asked for 1 s: no worker sent a create during it, but
    # those already in flight when it came back.
    assert throttled, "the quota never throttled: the test proves nothing"
    first = throttled[0].time
    during = [e.time - first for e in creates if first + IN_FLIGHT < e.time < first + 1.0]
    assert len(during) <= LATE_IN_FLIGHT, during
    assert not [t for t in during if t > 0.6], during
    # No 429 storm: each worker backs off, the hold is everybody's (the code
    # before this fix met about 60 429s for 140 creates here).
    assert len(throttled) <= lines // 4, (len(throttled), len(creates))


async def test_one_process_sends_a_throttled_line_again_rather_than_failing_it(
    emu: KooDriveEmulator, tmp_path: Path
) -> None:
    # The same rule with the one-machine journal (SQLite): four 429s in a row
    # (the transport's four attempts of one create, which failed its line
    # before) fail no line.
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, 4)])
    emu.inject(FaultKind.RATE_LIMIT, route="create_job", count=4, retry_after=0.05)
    # A cap to back off from (without one, the pace backs off from the rate it
    # measured, one create a second here: slow to recover for a test).
    options = RunOptions(concurrency=1, rate=20, settle=0.0, poll=PollPolicy(initial=0.05))
    async with KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN) as session:
        result = await asyncio.wait_for(run_plan(plan, session, options=options), 30)
    assert result.counts == {State.SUCCEEDED: 3}, (result.counts, result.stop)
    statuses = [e.status for e in emu.requests if e.route == "create_job"]
    assert statuses.count(429) == 4 and statuses.count(200) == 3, statuses
    created = created_by_marker(emu)
    assert all(len(created[f"F{i}"]) == 1 for i in range(1, 4)), created


async def test_one_process_waits_out_the_retry_after_before_its_next_create(
    emu: KooDriveEmulator, tmp_path: Path
) -> None:
    # The next create's turn is taken while a line is marked "submitting",
    # before the 429 of the create in flight comes back: that early turn must
    # not send through the hold the 429 asked for (it did: at once, and was
    # throttled again).
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(1, 4)])
    emu.inject(FaultKind.RATE_LIMIT, route="create_job", count=1, retry_after=1)
    options = RunOptions(concurrency=1, settle=0.0, poll=PollPolicy(initial=0.05))
    async with KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN) as session:
        result = await asyncio.wait_for(run_plan(plan, session, options=options), 30)
    assert result.counts == {State.SUCCEEDED: 3}, (result.counts, result.stop)
    creates = [e for e in emu.requests if e.route == "create_job"]
    assert [e.status for e in creates] == [429, 200, 200, 200]
    # Arrival times in the emulator: the next create came after the second asked for.
    assert creates[1].time - creates[0].time >= 0.95, [e.time for e in creates]


@pytest.mark.parametrize("retry_after", [0.05, None], ids=["retry-after", "no-retry-after"])
async def test_a_lone_workers_last_line_throttled_is_sent_again_in_the_same_run(
    emu: KooDriveEmulator, tmp_path: Path, pg_url: str, retry_after: float | None
) -> None:
    # The last unanswered create's 429 used to be acknowledged before its line
    # was pending again: the claimer, finding nothing to claim and nothing
    # unanswered, ended the round, and the line stayed pending with no stop.
    from koodrive_async.bulk import open_journal

    plan = write_plan(tmp_path / "plan.jsonl", [job_line("F1")])
    async with open_journal(pg_url, worker_id="loader") as journal:
        await attach_plan(journal, load_plan(plan))
    extra = {} if retry_after is None else {"retry_after": retry_after}
    emu.inject(FaultKind.RATE_LIMIT, route="create_job", count=1, **extra)
    options = RunOptions(concurrency=1, settle=0.0, poll=PollPolicy(initial=0.05))
    async with (
        KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN) as session,
        open_journal(pg_url, worker_id="w1", lease=15) as journal,
    ):
        result = await asyncio.wait_for(
            run_plan(plan, session, journal=journal, options=options), 30
        )
    statuses = [e.status for e in emu.requests if e.route == "create_job"]
    assert result.counts == {State.SUCCEEDED: 1}, (result.counts, result.stop, statuses)
    assert statuses == [429, 200]


async def test_a_hold_learnt_with_the_submitting_write_leaves_the_line_pending_not_in_doubt(
    emu: KooDriveEmulator, tmp_path: Path, pg_url: str
) -> None:
    # Another worker was throttled a moment ago (a 5 s hold in the database).
    # This worker learns it with its first "submitting" write: the line goes
    # back to pending before the wait, so a stop during the hold leaves
    # nothing "submitting" (in doubt on the next run) and sends nothing.
    from koodrive_async.bulk import PlanRun, open_journal

    plan = write_plan(tmp_path / "plan.jsonl", [job_line("F1"), job_line("F2")])
    async with open_journal(pg_url, worker_id="loader") as journal:
        await attach_plan(journal, load_plan(plan))
    options = RunOptions(concurrency=1, settle=0.0, poll=PollPolicy(initial=0.05))
    async with (
        KooDriveSession(emu.url, user_id=USER_ID, token=TOKEN) as session,
        open_journal(pg_url, worker_id="w1", lease=15) as journal,
        open_journal(pg_url, worker_id="other", lease=15) as other,
    ):
        await other.shared_pacer(None).hold(5.0)
        run = PlanRun(load_plan(plan), journal, options)
        await run.prepare()
        running = asyncio.create_task(run.execute(session))

        async def held_back() -> bool:
            return any(r.error_type == "RateLimitHold" for r in await other.records())

        deadline = asyncio.get_running_loop().time() + 4.0
        while not await held_back():
            assert asyncio.get_running_loop().time() < deadline, "the hold was never learnt"
            await asyncio.sleep(0.02)
        run.interrupt()
        await asyncio.wait_for(running, 30)
        counts = await other.counts()
    assert [e for e in emu.requests if e.route == "create_job"] == []
    assert counts == {State.PENDING: 2}, counts
