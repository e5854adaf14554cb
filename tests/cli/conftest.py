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
from cli_helpers import IN_PROCESS_TIMEOUT, Result, run_in_process

__all__ = ["cli", "cli_env", "emu", "emulator_config"]


def _pytest_timeout(request: pytest.FixtureRequest) -> float:
    """The test's pytest-timeout: its ``timeout`` marker's, else the ini's."""
    marker = request.node.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    return float(request.config.getini("timeout") or 0) or IN_PROCESS_TIMEOUT + 10


@pytest.fixture
def cli(cli_env: dict[str, str], request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``await cli(*args, env=None)`` runs the CLI in process to completion and returns a Result.

    Each call is bounded 10 s below the test's pytest timeout (a test of a
    long run raises it with a marker), so that a hang fails with
    ``run_in_process``'s message, the process's state restored.
    """
    timeout = max(_pytest_timeout(request) - 10, 1.0)

    async def run(*args: str, env: dict[str, str] | None = None) -> Result:
        return await run_in_process(*args, env=env or cli_env, timeout=timeout)

    return run
