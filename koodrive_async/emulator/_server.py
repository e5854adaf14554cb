"""KooDriveEmulator: the emulator as a started server on loopback."""

from __future__ import annotations

import ssl as _ssl
from types import TracebackType

from aiohttp import web

from ._app import CORE_KEY, EmulatorCore, create_app
from ._clock import EmulatorClock
from ._config import EmulatorConfig
from ._faults import Fault, FaultKind
from ._ledger import LedgerEntry
from ._quota import Quota, QuotaCounters, make_quota
from ._state import EmulatorState

__all__ = ["KooDriveEmulator"]


class KooDriveEmulator:
    """A running KooDrive emulator: an aiohttp server on ``host:port``.

    Use it as an async context manager (or call :meth:`start` and
    :meth:`close`)::

        async with KooDriveEmulator(EmulatorConfig(task_duration=5)) as emu:
            ...  # point a client at emu.url
            emu.clock.advance(5)

    Args:
        config: The configuration (default ``EmulatorConfig()``).
        host: Interface to bind (loopback by default).
        port: TCP port; 0 picks a free one.
        ssl: Serve HTTPS with this server-side ``ssl.SSLContext`` (to test
            custom CA bundles and proxies); ``url`` is then ``https://...``.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl: _ssl.SSLContext | None = None,
    ) -> None:
        self._ssl = ssl
        self._app = create_app(config)
        self._core: EmulatorCore = self._app[CORE_KEY]
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start serving.

        Raises:
            RuntimeError: Already started.
            OSError: The address cannot be bound.
        """
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        self._core.reopen()
        # No access log: it would cost more than the request on the hot path.
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port, ssl_context=self._ssl)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        if ":" in host:
            host = f"[{host}]"
        self._url = f"{'http' if self._ssl is None else 'https'}://{host}:{port}"

    async def close(self) -> None:
        """Stop serving (idempotent). Requests sleeping on a LATENCY fault are released."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._core.begin_close()
        await runner.cleanup()

    async def __aenter__(self) -> KooDriveEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------- inspection

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41233`` (no trailing slash).

        Raises:
            RuntimeError: Not started.
        """
        if self._url is None:
            raise RuntimeError("the emulator is not running; use 'async with' or start()")
        return self._url

    @property
    def app(self) -> web.Application:
        """The aiohttp application."""
        return self._app

    @property
    def config(self) -> EmulatorConfig:
        """The configuration."""
        return self._core.config

    @property
    def clock(self) -> EmulatorClock:
        """The virtual clock of task timelines (``now()``, ``advance()``, ``speed``)."""
        return self._core.clock

    @property
    def state(self) -> EmulatorState:
        """Every task, per user (``tasks()``, ``tasks_for()``, ``get()``, ``finish()``)."""
        return self._core.state

    @property
    def requests(self) -> list[LedgerEntry]:
        """Every API request so far, in arrival order (a copy; admin routes excluded)."""
        return list(self._core.ledger)

    @property
    def faults(self) -> list[Fault]:
        """The injected faults, in injection order (exhausted ones included)."""
        return list(self._core.faults.faults)

    @property
    def auth_counters(self) -> dict[str, int]:
        """How many sessions were opened and refreshes made, per kind (a copy).

        Keys: ``sessions_created``, ``session_refreshes``, ``carrier_refreshes``,
        ``expired_token_refusals`` (401s for an expired or replaced issued
        token) and ``refused_refreshes`` (refreshes refused for an unknown
        session or refresh token, or an access token not theirs; a malformed
        Authorization is not counted). ``GET /_emulator/auth`` shows the same.
        """
        return dict(self._core.auth.counters)

    @property
    def quota(self) -> Quota | None:
        """The per-user quota in force (``EmulatorConfig.quota`` or :meth:`set_quota`)."""
        return self._core.quota.quota

    @property
    def quota_counters(self) -> dict[str, QuotaCounters]:
        """Per ``X-User-Id``: requests the quota accepted and throttled (copies).

        Only requests the quota counts appear (its ``scope``); they add up
        across :meth:`set_quota` calls and are zeroed by :meth:`reset`.
        ``GET /_emulator/quota`` shows the same.
        """
        return {
            user: QuotaCounters(c.accepted, c.throttled)
            for user, c in self._core.quota.counters.items()
        }

    @property
    def internal_errors(self) -> int:
        """How many requests hit an emulator bug (answered 500); always 0 unless broken."""
        return self._core.internal_errors

    # ------------------------------------------------------------- controls

    def clear_requests(self) -> None:
        """Empty the ledger."""
        self._core.ledger.clear()

    def inject(
        self,
        kind: FaultKind | str,
        *,
        route: str | None = None,
        method: str | None = None,
        count: int | None = None,
        rate: float | None = None,
        latency: float = 0.0,
        retry_after: float | None = None,
    ) -> Fault:
        """Make matching requests misbehave.

        Give ``count`` (the next N matching requests), or ``rate`` (each
        matching request with this probability, seeded), or neither (every
        matching request until :meth:`clear_faults`). The first matching fault
        in injection order applies; LATENCY faults add up and stack with it.

        Args:
            kind: What to do (see :class:`FaultKind`).
            route: Route name (``"create_task"``, ``"create_share_task"``,
                ``"create_job"``, ``"get_task"``, ``"list_tasks"``,
                ``"create_session"``, ``"refresh_session"``,
                ``"refresh_carrier_token"``) or None for all.
            method: HTTP method, or None for any.
            count: Apply to the next ``count`` matching requests.
            rate: Probability per matching request (0..1).
            latency: Real seconds of delay (LATENCY), or of the hold of the
                answer after the request was carried out (CREATED_THEN_HELD).
            retry_after: ``Retry-After`` seconds (RATE_LIMIT, UNAVAILABLE).

        Returns:
            The :class:`Fault`; its ``remaining`` and ``hits`` count as it fires.

        Raises:
            ValueError: Unknown kind or route, both count and rate, or a bad number.
        """
        return self._core.inject(
            kind,
            route=route,
            method=method,
            count=count,
            rate=rate,
            latency=latency,
            retry_after=retry_after,
        )

    def set_quota(self, quota: Quota | dict[str, object] | None) -> None:
        """Put a per-user quota in force (every bucket starts full), or None to lift it.

        Args:
            quota: A :class:`Quota`, a dict of its fields (``{"rate": 5,
                "burst": 10}``), or None.

        Raises:
            ValueError: A bad quota.
        """
        self._core.quota.set(make_quota(quota))

    def set_failure_rates(
        self, *, failure_rate: float | None = None, file_failure_rate: float | None = None
    ) -> EmulatorConfig:
        """Change how often the tasks created from now on fail (``POST /_emulator/failures``).

        The tasks already created keep their fate. Set both to 0 to stop
        failing, for instance before a ``run --retry-failed``.

        Args:
            failure_rate: Share of tasks that fail (None: unchanged).
            file_failure_rate: Share of each job's files that fail (None: unchanged).

        Returns:
            The configuration now in use (also :attr:`config`).

        Raises:
            ValueError: A rate outside 0..1.
        """
        return self._core.set_failure_rates(
            failure_rate=failure_rate, file_failure_rate=file_failure_rate
        )

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._core.faults.clear()

    def reset(self) -> None:
        """Forget tasks, ledger, faults, tokens and quota counters; clock back to real time.

        The quota goes back to the configured one.
        """
        self._core.reset()

    def __repr__(self) -> str:
        where = self._url or "not running"
        return f"<KooDriveEmulator {where} tasks={len(self._core.state)}>"
