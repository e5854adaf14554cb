"""The fixtures of a test that runs the command line against an emulator.

Shared by the command-line tests (``tests/cli/conftest.py``) and the
many-worker tests (``tests/postgres/conftest.py``), which import them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from cli_helpers import CLOCK_SPEED, TASK_DURATION, TOKEN, USER_ID

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
    """The environment of a CLI invocation (in process or a child) pointed at ``emu``."""
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
