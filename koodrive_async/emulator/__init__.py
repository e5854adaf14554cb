"""A local emulator of KooDrive's task and batch-job Open API, for tests and demos.

It is an independent, executable reading of the five endpoint pages: a real
``aiohttp.web`` server that checks headers and bodies as the service does, runs
tasks through NEW -> EXECUTING -> SUCCESS / FAILED on a virtual clock, keeps a
ledger of every request (secrets redacted) and misbehaves on demand (faults).
It imports nothing from the client layers, so it can catch their bugs.

Quick start::

    from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator

    async with KooDriveEmulator(EmulatorConfig(task_duration=2.0)) as emu:
        ...  # point a client at emu.url, any non-empty bearer token
        emu.clock.advance(2.0)                       # tasks finish, no sleeping
        emu.inject(FaultKind.RATE_LIMIT, route="create_job", count=1, retry_after=1)

From a shell: ``python -m koodrive_async.emulator --port 8080``. In pytest:
the ``koodrive_emulator`` fixture (see :mod:`koodrive_async.emulator.pytest_plugin`).
Status and business codes are listed in :mod:`koodrive_async.emulator._render`;
the code map starts at :mod:`koodrive_async.emulator._app`.
"""

from ._app import CORE_KEY, EmulatorCore, create_app
from ._clock import EmulatorClock
from ._config import EmulatorConfig, ResponseVariant
from ._faults import Fault, FaultKind
from ._ledger import LedgerEntry
from ._quota import Quota, QuotaCounters
from ._server import KooDriveEmulator
from ._state import EmulatedFile, EmulatedTask, EmulatorState

__all__ = [
    "CORE_KEY",
    "EmulatedFile",
    "EmulatedTask",
    "EmulatorClock",
    "EmulatorConfig",
    "EmulatorCore",
    "EmulatorState",
    "Fault",
    "FaultKind",
    "KooDriveEmulator",
    "LedgerEntry",
    "Quota",
    "QuotaCounters",
    "ResponseVariant",
    "create_app",
]
