"""EmulatorCore: everything one emulator instance holds, and the controls over it.

The route modules are plain functions of ``(core, request, ...)``; the state
they share lives here and nowhere else: the configuration, the virtual clock,
the task store, the issued tokens, the injected faults, the ledger, the server's wall clock (with
its skew) and the per-instance caches that keep the polling hot path cheap.
Keeping it one object makes ``reset()`` complete by construction and lets a
test reach it as ``app[CORE_KEY]``.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import attrs
from aiohttp import web

from ._clock import EmulatorClock
from ._config import EmulatorConfig
from ._faults import Fault, FaultBook, FaultKind, make_fault
from ._ledger import LedgerEntry
from ._quota import QuotaBook
from ._render import Rendered
from ._state import EmulatorState
from ._tokens import TokenBook

__all__ = ["CORE_KEY", "EmulatorCore"]


class EmulatorCore:
    """Everything one emulator instance holds: config, clock, tasks, faults, ledger.

    Args:
        config: The configuration.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = EmulatorClock(config.clock_speed, offset=config.clock_skew)
        self.state = EmulatorState(config, self.clock)
        self.faults = FaultBook(config.seed)
        self.ledger: deque[LedgerEntry] = deque(maxlen=config.ledger_limit)
        #: The per-user quota in force and its buckets, on the virtual clock.
        self.quota = QuotaBook(config.quota, self.clock.now)
        #: Sessions and the access / refresh tokens the session routes issued.
        self.auth = TokenBook(config.refresh_tokens)
        #: Unexpected exceptions caught in handlers (each became a 500); should stay 0.
        self.internal_errors = 0
        #: ``task/{id}`` answers already serialised, per task id, with the
        #: (status, forced finish, result code) they were rendered for (see ``_routes_tasks``).
        self.rendered: dict[str, tuple[tuple[int, float | None, str | None], Rendered]] = {}
        #: Job and share-task detail answers already serialised, per task id,
        #: with the key they were rendered for (see ``_routes_jobs``).
        self.rendered_details: dict[str, tuple[tuple[Any, ...], Rendered]] = {}
        #: Signs this instance's package ``downloadUrl`` links (``_downloads``).
        self.download_key = secrets.token_bytes(32)
        #: The last ``X-Date`` seen and its parse: a poller sends the same one many times.
        self.x_date_cache: tuple[str, float] = ("", 0.0)
        self._date_cache: tuple[int, str] = (-1, "")
        self._closing: asyncio.Event | None = None
        # The pages' tables type ``code`` as a String, their examples send an
        # Integer; the variant picks one and every answer follows it.
        if config.response_variant.code_as == "str":
            self.code: Callable[[int | str], int | str] = str
        else:
            self.code = lambda c: c
        self.ok_code = self.code(0)

    # ---------------------------------------------------------------- controls

    def inject(self, kind: FaultKind | str, **kwargs: Any) -> Fault:
        """Register a fault (see ``KooDriveEmulator.inject``).

        Args:
            kind: The fault kind.
            **kwargs: route, method, count, rate, latency, retry_after.

        Returns:
            The fault.
        """
        return self.faults.add(make_fault(kind, **kwargs))

    def set_failure_rates(
        self, *, failure_rate: float | None = None, file_failure_rate: float | None = None
    ) -> EmulatorConfig:
        """Change how often the tasks created from now on fail (None: unchanged).

        Args:
            failure_rate: See ``EmulatorConfig.failure_rate``.
            file_failure_rate: See ``EmulatorConfig.file_failure_rate``.

        Returns:
            The configuration now in use.

        Raises:
            ValueError: A rate outside 0..1.
        """
        config = self.config
        self.config = attrs.evolve(
            config,
            failure_rate=config.failure_rate if failure_rate is None else failure_rate,
            file_failure_rate=(
                config.file_failure_rate if file_failure_rate is None else file_failure_rate
            ),
        )
        self.state.reconfigure(self.config)
        return self.config

    def reset(self) -> None:
        """Forget tasks, ledger, faults, issued tokens and quota counters; clock back to real time.

        The quota goes back to the configured one, its buckets full.
        """
        self.clock.reset()
        self.quota.reset()
        self.state.clear()
        self.auth.clear()
        self.rendered.clear()
        self.rendered_details.clear()
        self.faults.clear()
        self.ledger.clear()

    def begin_close(self) -> None:
        """Wake handlers sleeping on a LATENCY fault, so shutdown does not wait for them."""
        self._closing_event().set()

    def reopen(self) -> None:
        """Forget a previous close, before the application is served again."""
        self._closing = None

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of real time, or less if the emulator begins to close.

        Args:
            seconds: How long (a LATENCY fault's delay).
        """
        try:
            await asyncio.wait_for(self._closing_event().wait(), seconds)
        except TimeoutError:
            pass

    def _closing_event(self) -> asyncio.Event:
        # Made on first use: an Event must be created inside the running loop.
        if self._closing is None:
            self._closing = asyncio.Event()
        return self._closing

    # ------------------------------------------------------------ server time

    def server_now(self) -> float:
        """Return the server's wall clock (real UTC time plus ``clock_skew``).

        Returns:
            Epoch seconds.
        """
        return time.time() + self.config.clock_skew

    def date_header(self) -> str:
        """Return the ``Date`` response header for now (skewed), cached per second.

        Returns:
            An RFC 7231 date.
        """
        second = math.floor(self.server_now())
        cached = self._date_cache
        if cached[0] != second:
            cached = (second, formatdate(second, usegmt=True))
            self._date_cache = cached
        return cached[1]

    def error_payload(self, code: int | str, msg: str) -> dict[str, Any]:
        """Build a ``{code, msg}`` error body.

        Args:
            code: Business code.
            msg: Message.

        Returns:
            The body.
        """
        return {"code": self.code(code), "msg": msg}


#: Where :func:`create_app` keeps the :class:`EmulatorCore` of an application.
CORE_KEY = web.AppKey("koodrive_emulator_core", EmulatorCore)
