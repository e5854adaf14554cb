"""Connection settings (flags or environment) and the counted session the commands open.

Owns :class:`Connection` (where and as whom; the token never in a repr),
reading it from the flags and the ``KOODRIVE_*`` environment variables, and
:func:`open_session`, a ``KooDriveSession`` over an aiohttp session that
counts its HTTP requests (for the run summary and the journal).

Must never import: ``rich``, the other ``cli`` modules but ``_codes``.
"""

from __future__ import annotations

import argparse
import os
import ssl
from collections.abc import Awaitable, Callable

import attrs

from .._exceptions import KooDriveError
from .._policies import RetryPolicy
from .._session import KooDriveSession
from ._codes import UsageError

__all__ = [
    "ENV_AGENT_NAME",
    "ENV_BASE_URL",
    "ENV_CA_BUNDLE",
    "ENV_TOKEN",
    "ENV_USER_ID",
    "Connection",
    "OpenedSession",
    "connection_from",
    "open_session",
]

ENV_BASE_URL = "KOODRIVE_BASE_URL"
ENV_USER_ID = "KOODRIVE_USER_ID"
ENV_TOKEN = "KOODRIVE_TOKEN"
ENV_AGENT_NAME = "KOODRIVE_AGENT_NAME"
#: A PEM file of the CAs that verify the service (instead of the system's).
ENV_CA_BUNDLE = "KOODRIVE_CA_BUNDLE"


def _ca_context(env: dict[str, str] | os._Environ[str]) -> ssl.SSLContext | None:
    """The TLS context of ``KOODRIVE_CA_BUNDLE``, or None when it is not set.

    Raises:
        UsageError: The file cannot be read or holds no certificate.
    """
    path = env.get(ENV_CA_BUNDLE) or None
    if path is None:
        return None
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(
            f"{ENV_CA_BUNDLE}={path!r} is not a readable PEM CA bundle: {exc}"
        ) from None


@attrs.frozen
class Connection:
    """Where and as whom to call the API.

    Attributes:
        base_url: The service root, e.g. ``https://intl.myhuaweicloud-koodrive.com``.
        user_id: The X-User-Id.
        token: The access token (never shown in reprs, logs or output).
        agent_name: The X-Hw-Agentname (needed by share tasks).
        allow_insecure_http: ``--allow-insecure-http``: http:// to another host.
    """

    base_url: str
    user_id: str
    token: str = attrs.field(repr=False)
    agent_name: str | None = None
    allow_insecure_http: bool = False


def connection_from(args: argparse.Namespace, *, env: dict[str, str] | None = None) -> Connection:
    """The connection of a command: each flag, else its environment variable.

    Raises:
        UsageError: A required setting is missing.
    """
    env = dict(os.environ) if env is None else env

    def pick(flag: str | None, name: str, option: str, *, required: bool = True) -> str | None:
        value = flag if flag else env.get(name) or None
        if required and not value:
            raise UsageError(f"missing {option} (or the {name} environment variable)")
        return value

    base_url = pick(args.base_url, ENV_BASE_URL, "--base-url")
    user_id = pick(args.user_id, ENV_USER_ID, "--user-id")
    token = pick(args.token, ENV_TOKEN, "--token")
    agent_name = pick(args.agent_name, ENV_AGENT_NAME, "--agent-name", required=False)
    assert base_url is not None and user_id is not None and token is not None
    return Connection(
        base_url=base_url,
        user_id=user_id,
        token=token,
        agent_name=agent_name,
        allow_insecure_http=bool(getattr(args, "allow_insecure_http", False)),
    )


#: ``(session, requests_made, close)``: ``await close()`` when done.
OpenedSession = tuple[KooDriveSession, Callable[[], int], Callable[[], Awaitable[None]]]


async def open_session(connection: Connection, *, max_connections: int = 100) -> OpenedSession:
    """Open a KooDriveSession that counts its HTTP requests (retries and polls included).

    Args:
        connection: Where and as whom.
        max_connections: The connection pool size.

    Returns:
        ``(session, requests_made, close)``; ``await close()`` when done.

    Raises:
        UsageError: The connection settings are invalid.
    """
    import aiohttp

    ca = _ca_context(os.environ)
    count = 0

    async def on_request_start(*_args: object) -> None:
        nonlocal count
        count += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    http = aiohttp.ClientSession(
        trace_configs=[trace], connector=aiohttp.TCPConnector(limit=max_connections)
    )
    try:
        session = KooDriveSession(
            connection.base_url,
            user_id=connection.user_id,
            token=connection.token,
            agent_name=connection.agent_name,
            max_connections=max_connections,
            retry=RetryPolicy(),
            session=http,
            allow_insecure_http=connection.allow_insecure_http,
            ssl=ca,
        )
    except KooDriveError as exc:
        await http.close()
        # The library names its keyword argument; the command line has a flag for it.
        message = str(exc).replace("allow_insecure_http=True", "--allow-insecure-http")
        message = message.replace("base_url", "--base-url")
        raise UsageError(message) from exc

    async def close() -> None:
        try:
            await session.close()
        finally:
            await http.close()

    return session, (lambda: count), close
