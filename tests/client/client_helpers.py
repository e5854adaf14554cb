"""Helpers of the client tests: sessions on the emulator, a tiny custom
server for response shapes the emulator cannot produce, recorded retry waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from koodrive_async import KooDriveSession, RetryPolicy, _sender

#: Retries without real waiting: backoffs of a millisecond at most.
FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff=0.001, max_backoff=0.002)
TOKEN = "sekrit-token-7f3a9c"


def make_session(url: str, **kwargs: Any) -> KooDriveSession:
    """A session for the tests: fast retries, a token, an agent name."""
    options: dict[str, Any] = {
        "user_id": "user-1",
        "token": TOKEN,
        "agent_name": "agent-x",
        "retry": FAST_RETRY,
        "timeout": 5.0,
    }
    options.update(kwargs)
    if "token_provider" in kwargs:
        options.pop("token")
    return KooDriveSession(url, **options)


def sleeps_fixture(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record every wait the transport asks for, and do not actually wait."""
    recorded: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float) -> None:
        recorded.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(_sender, "_sleep", fake_sleep)
    return recorded


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def custom_server(handler: Handler) -> AsyncIterator[str]:
    """Serve every path with ``handler`` on a loopback port; yield the base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sockets = site._server.sockets if site._server is not None else ()  # type: ignore[union-attr]
    port = sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
