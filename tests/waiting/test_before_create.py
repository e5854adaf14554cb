"""``before_create``: the caller's guard awaited right before each attempt of a create.

A bulk worker checks its lease on a plan line there; the guard runs after the
attempt's X-Date is stamped, so an attempt it lets through carries an X-Date
no later than the check (the fence of a many-worker journal).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from waiting_helpers import FAST, job

from koodrive_async import CreateVetoedError, JobRequest, RetryPolicy
from koodrive_async._session import KooDriveSession
from koodrive_async.emulator import FaultKind, KooDriveEmulator


def creates(emu: KooDriveEmulator) -> list[object]:
    return [e for e in emu.requests if e.route == "create_job"]


async def test_a_vetoed_create_is_not_sent_and_is_its_outcome(
    emu: KooDriveEmulator, session: KooDriveSession
) -> None:
    emu.clock.speed = 200.0
    refused = job(1)

    async def guard(request: JobRequest) -> None:
        if request is refused:
            raise CreateVetoedError("line 2 belongs to another worker now")

    outcomes = await asyncio.wait_for(
        session.run_jobs([job(0), refused, job(2)], poll=FAST, before_create=guard), 20
    )
    assert [o.ok for o in outcomes] == [True, False, True]
    vetoed = outcomes[1]
    assert isinstance(vetoed.error, CreateVetoedError) and vetoed.task_id is None
    # Two creates reached the service, the vetoed one never did.
    assert len(creates(emu)) == 2


async def test_the_guard_runs_before_every_attempt(
    emu: KooDriveEmulator, make_session: Callable[..., KooDriveSession]
) -> None:
    emu.clock.speed = 200.0
    # A 503 proves the service did not act: the create is retried once.
    emu.inject(FaultKind.UNAVAILABLE, route="create_job", count=1)
    session = make_session(
        retry=RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.001)
    )
    checks: list[int] = []

    async def guard(_request: JobRequest) -> None:
        # What was sent so far: the guard runs before its attempt goes out.
        checks.append(len(creates(emu)))

    outcomes = await asyncio.wait_for(
        session.run_jobs([job(0)], poll=FAST, before_create=guard), 20
    )
    assert outcomes[0].ok
    assert checks == [0, 1] and len(creates(emu)) == 2


async def test_a_veto_on_a_retry_leaves_nothing_created(
    emu: KooDriveEmulator, make_session: Callable[..., KooDriveSession]
) -> None:
    emu.clock.speed = 200.0
    emu.inject(FaultKind.UNAVAILABLE, route="create_job", count=1)
    session = make_session(
        retry=RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.001)
    )
    calls = 0

    async def guard(_request: JobRequest) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise CreateVetoedError("lease lost while waiting to retry")

    outcomes = await asyncio.wait_for(
        session.run_jobs([job(0)], poll=FAST, before_create=guard), 20
    )
    assert isinstance(outcomes[0].error, CreateVetoedError)
    assert len(creates(emu)) == 1  # the 503'd attempt only: nothing was created
    assert not [e for e in creates(emu) if e.task_id is not None]


async def test_gets_are_never_guarded(emu: KooDriveEmulator, session: KooDriveSession) -> None:
    emu.clock.speed = 200.0
    seen: list[JobRequest] = []

    async def guard(request: JobRequest) -> None:
        seen.append(request)

    outcomes = await asyncio.wait_for(
        session.run_jobs([job(0), job(1)], poll=FAST, before_create=guard), 20
    )
    assert all(o.ok for o in outcomes)
    gets = [e for e in emu.requests if e.route == "get_job"]
    assert gets and len(seen) == 2
