"""Fixtures for the emulator tests (the emulator itself comes from our pytest plugin)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from emu_helpers import Api

from koodrive_async.emulator import EmulatorConfig, KooDriveEmulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A bare aiohttp client session."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def api(http: aiohttp.ClientSession, koodrive_emulator: KooDriveEmulator) -> Api:
    """Plain calls against the plugin's emulator (default config)."""
    return Api(http, koodrive_emulator.url)


@pytest.fixture
async def start_emulator(
    http: aiohttp.ClientSession,
) -> AsyncIterator[Callable[..., Awaitable[tuple[KooDriveEmulator, Api]]]]:
    """Factory: start an emulator with the given EmulatorConfig fields; closed at teardown."""
    started: list[KooDriveEmulator] = []

    async def start(**config: Any) -> tuple[KooDriveEmulator, Api]:
        emu = KooDriveEmulator(EmulatorConfig(**config))
        await emu.start()
        started.append(emu)
        return emu, Api(http, emu.url)

    yield start
    for emu in started:
        assert emu.internal_errors == 0
        await emu.close()
