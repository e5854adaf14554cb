"""Fixtures for the waiting and fan-out tests: the real session against the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from waiting_helpers import NO_RETRY, USER

from koodrive_async._session import KooDriveSession
from koodrive_async.emulator import EmulatorConfig, KooDriveEmulator


@pytest.fixture
def koodrive_emulator_config() -> EmulatorConfig:
    # Long tasks by default; tests that want them done move or speed the clock.
    return EmulatorConfig(task_duration=10.0)


@pytest.fixture
async def emu(koodrive_emulator: KooDriveEmulator) -> KooDriveEmulator:
    koodrive_emulator.clock.speed = 0.0  # frozen: only advance() moves tasks on
    return koodrive_emulator


@pytest.fixture
async def make_session(
    emu: KooDriveEmulator,
) -> AsyncIterator[Callable[..., KooDriveSession]]:
    sessions: list[KooDriveSession] = []

    def make(**kwargs: object) -> KooDriveSession:
        kwargs.setdefault("user_id", USER)
        kwargs.setdefault("token", "tok")
        kwargs.setdefault("retry", NO_RETRY)
        session = KooDriveSession(emu.url, **kwargs)  # type: ignore[arg-type]
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        await session.close()


@pytest.fixture
async def session(make_session: Callable[..., KooDriveSession]) -> KooDriveSession:
    return make_session()
