"""Fixtures of the command-line tests.

Every test runs against an emulator served by the test's own event loop.
Most call the CLI in process: ``cli`` runs the real entry point,
``koodrive_async.cli.main(argv)``, in a worker thread (so the loop keeps
serving the emulator) with the invocation's environment as ``os.environ``,
an empty stdin and captured stdout and stderr, and returns the exit code, the
output and the errors as a child would (see ``cli_helpers.run_in_process``).
That saves a Python start-up and the imports of aiohttp, rich... per
invocation, most of the folder's time when each was a child.

The tests of what only a process has stay on a real child, ``python -m
koodrive_async`` driven with ``asyncio.create_subprocess_exec``
(``cli_helpers.start_cli`` and ``finish``): signals (SIGINT, SIGTERM, a
second signal, SIGKILL and resume), stdout read while the run goes on or
closed under it (``| head``), a hang that must be killed, the ``emulator``
subcommand serving until SIGTERM, and what a fresh interpreter imports.

Tasks are short on a fast virtual clock and polls start at 20 ms, so a run of
a few hundred lines takes about a second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cli_fixtures import cli_env, emu, emulator_config
from cli_helpers import Result, run_in_process

__all__ = ["cli", "cli_env", "emu", "emulator_config"]


@pytest.fixture
def cli(cli_env: dict[str, str]) -> Callable[..., Any]:
    """``await cli(*args, env=None)`` runs the CLI in process to completion and returns a Result."""

    async def run(*args: str, env: dict[str, str] | None = None) -> Result:
        return await run_in_process(*args, env=env or cli_env)

    return run
