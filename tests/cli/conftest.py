"""Fixtures of the command-line tests.

The CLI runs as a real child process (``python -m koodrive_async``) against an
emulator served by the test's own event loop; the child is driven with
``asyncio.create_subprocess_exec`` so that the emulator keeps answering while
the test awaits it. Tasks are short on a fast virtual clock and polls start
at 20 ms, so a run of a few hundred lines takes about a second.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from cli_helpers import CLOCK_SPEED, TASK_DURATION, TOKEN, USER_ID, Result, finish, start_cli

from koodrive_async.emulator import EmulatorConfig, KooDriveEmulator


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """The emulator configuration (override in a test module to change it)."""
    return EmulatorConfig(task_duration=TASK_DURATION, clock_speed=CLOCK_SPEED, seed=7)


@pytest.fixture
async def emu(emulator_config: EmulatorConfig) -> AsyncIterator[KooDriveEmulator]:
    """A started emulator on an ephemeral loopback port."""
    async with KooDriveEmulator(emulator_config, host="127.0.0.1", port=0) as emulator:
        yield emulator


@pytest.fixture
def cli_env(emu: KooDriveEmulator) -> dict[str, str]:
    """The environment of a child pointed at ``emu``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOODRIVE_")}
    env.update(
        KOODRIVE_BASE_URL=emu.url,
        KOODRIVE_USER_ID=USER_ID,
        KOODRIVE_TOKEN=TOKEN,
        KOODRIVE_AGENT_NAME="cli-tests",
        PYTHONUNBUFFERED="1",
        COLUMNS="120",
    )
    return env


@pytest.fixture
def cli(cli_env: dict[str, str]) -> Callable[..., Any]:
    """``await cli(*args, env=None)`` runs the CLI to completion and returns a Result."""

    async def run(*args: str, env: dict[str, str] | None = None) -> Result:
        return await finish(await start_cli(*args, env=env or cli_env))

    return run
