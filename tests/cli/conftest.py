"""Fixtures of the command-line tests.

The CLI runs as a real child process (``python -m koodrive_async``) against an
emulator served by the test's own event loop; the child is driven with
``asyncio.create_subprocess_exec`` so that the emulator keeps answering while
the test awaits it. Tasks are short on a fast virtual clock and polls start
at 20 ms, so a run of a few hundred lines takes about a second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cli_fixtures import cli_env, emu, emulator_config
from cli_helpers import Result, finish, start_cli

__all__ = ["cli", "cli_env", "emu", "emulator_config"]


@pytest.fixture
def cli(cli_env: dict[str, str]) -> Callable[..., Any]:
    """``await cli(*args, env=None)`` runs the CLI to completion and returns a Result."""

    async def run(*args: str, env: dict[str, str] | None = None) -> Result:
        return await finish(await start_cli(*args, env=env or cli_env))

    return run
