"""pytest plugin: a started KooDrive emulator per test, with no configuration.

Installed through the ``pytest11`` entry point, so any project that installs
``koodrive-async`` gets two fixtures:

``koodrive_emulator_config``
    Returns ``EmulatorConfig()``. Override it (in a test module or a
    ``conftest.py``) to configure the emulator::

        @pytest.fixture
        def koodrive_emulator_config():
            return EmulatorConfig(task_duration=5.0, failure_rate=0.1)

``koodrive_emulator``
    An async, function-scoped fixture yielding a started
    :class:`~koodrive_async.emulator.KooDriveEmulator` built from that config,
    closed after the test. It needs pytest-asyncio; it is declared with
    ``pytest_asyncio.fixture`` so it works in both ``asyncio_mode=auto`` and
    ``strict`` (in strict mode, mark the test ``@pytest.mark.asyncio``).
    Without pytest-asyncio the plugin still loads, and using the fixture fails
    with a message saying what to install.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ._config import EmulatorConfig
from ._server import KooDriveEmulator

try:
    import pytest_asyncio
except ImportError:  # pytest-asyncio is a dev dependency only: the plugin must still load.
    _HAVE_PYTEST_ASYNCIO = False
else:
    _HAVE_PYTEST_ASYNCIO = True

__all__ = ["koodrive_emulator", "koodrive_emulator_config"]

_NEEDS_PYTEST_ASYNCIO = (
    "the koodrive_emulator fixture is async and needs pytest-asyncio: "
    "pip install 'koodrive-async[testing]' (or pytest-asyncio alone)"
)


@pytest.fixture
def koodrive_emulator_config() -> EmulatorConfig:
    """Return the configuration the ``koodrive_emulator`` fixture starts with.

    Returns:
        ``EmulatorConfig()``; override this fixture to change it.
    """
    return EmulatorConfig()


if _HAVE_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture
    async def koodrive_emulator(
        koodrive_emulator_config: EmulatorConfig,
    ) -> AsyncIterator[KooDriveEmulator]:
        """Yield a started emulator on an ephemeral loopback port; close it afterwards.

        Args:
            koodrive_emulator_config: The configuration fixture.

        Yields:
            The running emulator (``.url``, ``.clock``, ``.state``, ``.requests``, ``.inject``).
        """
        async with KooDriveEmulator(koodrive_emulator_config) as emu:
            yield emu

else:

    @pytest.fixture
    def koodrive_emulator(koodrive_emulator_config: EmulatorConfig) -> KooDriveEmulator:
        """Fail with what to install: the real fixture needs pytest-asyncio.

        Args:
            koodrive_emulator_config: The configuration fixture (unused).

        Returns:
            Never returns.

        Raises:
            pytest.UsageError: Always.
        """
        del koodrive_emulator_config
        raise pytest.UsageError(_NEEDS_PYTEST_ASYNCIO)
