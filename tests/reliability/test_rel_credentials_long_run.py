"""A long run on short-lived tokens (issue 13, "Done when").

Session tokens that expire after a few virtual seconds idle, carrier tokens
with an ``expiresIn`` of two seconds; the emulator's clock is frozen and
driven forward in steps far faster than real time (hours of virtual time in
a few real seconds). Every call must succeed for the user, each expiry must
cost exactly one refresh however many calls meet it (single-flight), and the
carrier token must be renewed ahead of expiry (no call refused for it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from koodrive_async import (
    CarrierCredentials,
    KooDriveSession,
    RetryPolicy,
    SessionCredentials,
    create_session,
)
from koodrive_async.emulator import EmulatorConfig, KooDriveEmulator

CODE = "long-run-code-SECRET"
USER = "1008600000701011122"
REFRESH = "long-run-refresh-SECRET"
STATIC = "long-run-static-SECRET"
RETRY = RetryPolicy(max_attempts=4, initial_backoff=0.001, max_backoff=0.002)
WAVES = 40
CALLS = 25


async def _wave(session: KooDriveSession, number: int) -> None:
    """Creates and reads at once: every one must succeed."""
    ids = await asyncio.gather(
        *(
            session.create_transfer_task(src_user_id=f"s{number}-{i}", dst_user_id="d")
            for i in range(CALLS)
        )
    )
    tasks = await asyncio.gather(*(session.get_task(task_id) for task_id in ids))
    assert [t.task_id for t in tasks] == ids


async def _emulator(**config: Any) -> KooDriveEmulator:
    emu = KooDriveEmulator(EmulatorConfig(task_duration=1.0, **config))
    await emu.start()
    emu.clock.speed = 0.0
    return emu


async def test_session_tokens_expiring_after_three_idle_seconds() -> None:
    emu = await _emulator(session_codes={CODE: USER}, session_idle_timeout=3)
    try:
        info = await create_session(emu.url, code=CODE)
        persisted: list[str] = []
        # The client knows nothing of the 3 s limit: each expiry is met with a
        # 401 by a whole wave of calls at once.
        creds = SessionCredentials(
            info.access_token,
            info.session_id,
            clock=emu.clock.now,
            on_refresh=lambda c: persisted.append(c.access_token),
        )
        expiries = 0
        async with KooDriveSession(emu.url, user_id=USER, auth=creds, retry=RETRY) as s:
            for wave in range(WAVES):
                gap = 600.0 if wave % 3 == 0 else 2.0  # idle ten minutes, or in use
                expiries += gap >= 3
                emu.clock.advance(gap)
                await _wave(s, wave)
        counters = emu.auth_counters
        assert counters["session_refreshes"] == expiries == creds.refreshes == len(persisted)
        assert counters["refused_refreshes"] == 0
        assert counters["expired_token_refusals"] >= expiries
        assert len(set(persisted)) == expiries
    finally:
        await emu.close()


async def test_session_tokens_renewed_ahead_when_the_limit_is_known() -> None:
    emu = await _emulator(session_codes={CODE: USER}, session_idle_timeout=3)
    try:
        info = await create_session(emu.url, code=CODE)
        creds = SessionCredentials(
            info.access_token, info.session_id, idle_timeout=3, clock=emu.clock.now
        )
        renewals = 0
        async with KooDriveSession(emu.url, user_id=USER, auth=creds, retry=RETRY) as s:
            for wave in range(WAVES):
                gap = 600.0 if wave % 3 == 0 else 1.0
                renewals += gap >= 1.5  # refresh_margin caps at half the limit
                emu.clock.advance(gap)
                await _wave(s, wave)
        counters = emu.auth_counters
        assert counters["session_refreshes"] == renewals
        assert counters["expired_token_refusals"] == 0
    finally:
        await emu.close()


async def test_carrier_tokens_of_two_seconds_renewed_ahead_of_expiry() -> None:
    emu = await _emulator(tokens={STATIC}, refresh_tokens={REFRESH: USER}, carrier_expires_in=2)
    try:
        persisted: list[str] = []

        async def save(c: CarrierCredentials) -> None:
            persisted.append(c.refresh_token)

        creds = CarrierCredentials(
            f"AT {STATIC}", REFRESH, expires_in=2, on_refresh=save, clock=emu.clock.now
        )
        async with KooDriveSession(emu.url, user_id=USER, auth=creds, retry=RETRY) as s:
            for wave in range(WAVES):
                emu.clock.advance(0.5)  # 20 s of virtual time, ten lifetimes
                await _wave(s, wave)
        counters = emu.auth_counters
        # Lifetime 2 s, renewed 0.5 s ahead: every third step.
        assert counters["carrier_refreshes"] == WAVES // 3 == creds.refreshes
        assert counters["expired_token_refusals"] == 0
        assert counters["refused_refreshes"] == 0
        assert len(set(persisted)) == len(persisted) and creds.refresh_token == persisted[-1]
    finally:
        await emu.close()
