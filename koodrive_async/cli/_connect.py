"""Connection settings (flags or environment) and the counted session the commands open.

Owns :class:`Connection` (where and as whom; no secret in a repr), reading
it from the flags, the ``KOODRIVE_*`` environment variables or a credentials
file (JSON, mode 0600, rewritten atomically with the newest tokens after each
renewal), and :func:`open_session`, a ``KooDriveSession`` whose own pool counts its
HTTP requests (an aiohttp trace config) (for the run summary and the journal).

The credentials, in this order: an AppId and AppSecret (app authentication,
every request signed); an access token with a session id (renewed through
``session/refresh``); an access token with a refresh token (a carrier token,
renewed through ``auth/refreshToken``); an access token alone.

Must never import: ``rich``, the other ``cli`` modules but ``_codes``.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import stat
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs

from .._auth import AuthFlow
from .._credentials import AppAuth, CarrierCredentials, SessionCredentials
from .._exceptions import KooDriveError
from .._policies import RetryPolicy
from .._session import KooDriveSession
from ._codes import UsageError

__all__ = [
    "CREDENTIAL_KEYS",
    "ENV_AGENT_NAME",
    "ENV_APP_ID",
    "ENV_APP_SECRET",
    "ENV_BASE_URL",
    "ENV_CA_BUNDLE",
    "ENV_CREDENTIALS",
    "ENV_REFRESH_TOKEN",
    "ENV_SESSION_ID",
    "ENV_TOKEN",
    "ENV_USER_ID",
    "Connection",
    "OpenedSession",
    "connection_from",
    "open_session",
    "read_credentials_file",
    "write_credentials_file",
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


ENV_APP_ID = "KOODRIVE_APP_ID"
ENV_APP_SECRET = "KOODRIVE_APP_SECRET"
ENV_SESSION_ID = "KOODRIVE_SESSION_ID"
ENV_REFRESH_TOKEN = "KOODRIVE_REFRESH_TOKEN"
ENV_CREDENTIALS = "KOODRIVE_CREDENTIALS"

#: The keys a credentials file may hold (all strings but ``expires_in``).
CREDENTIAL_KEYS = (
    "base_url",
    "user_id",
    "agent_name",
    "access_token",
    "session_id",
    "refresh_token",
    "expires_in",
    "app_id",
    "app_secret",
)
_SECRET_KEYS = frozenset({"access_token", "session_id", "refresh_token", "app_secret"})


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
    token: str | None = attrs.field(repr=False)
    agent_name: str | None = None
    allow_insecure_http: bool = False
    session_id: str | None = attrs.field(default=None, repr=False)
    refresh_token: str | None = attrs.field(default=None, repr=False)
    expires_in: float | None = None
    app_id: str | None = None
    app_secret: str | None = attrs.field(default=None, repr=False)
    credentials_file: str | None = None

    def auth(self) -> AuthFlow | None:
        """The credentials that renew or sign, or None for a plain token.

        Raises:
            KooDriveError: A credential is invalid (the message names no secret).
        """
        if self.app_id is not None and self.app_secret is not None:
            return AppAuth(self.app_id, self.app_secret)
        assert self.token is not None
        save = None if self.credentials_file is None else self._persist
        if self.session_id is not None:
            return SessionCredentials(self.token, self.session_id, on_refresh=save)
        if self.refresh_token is not None:
            return CarrierCredentials(
                self.token, self.refresh_token, expires_in=self.expires_in, on_refresh=save
            )
        return None

    def _persist(self, credentials: Any) -> None:
        # The newest tokens replace the old ones in the file: a run killed
        # after a renewal starts again with a token the service still accepts.
        assert self.credentials_file is not None
        path = Path(self.credentials_file)
        data = read_credentials_file(path)
        data["access_token"] = credentials.access_token
        if isinstance(credentials, CarrierCredentials):
            data["refresh_token"] = credentials.refresh_token
            if credentials.expires_in is not None:
                data["expires_in"] = credentials.expires_in
        write_credentials_file(path, data)


def read_credentials_file(path: Path) -> dict[str, Any]:
    """The settings of a credentials file (JSON object, mode 0600).

    Raises:
        UsageError: The file cannot be read, others may read or write it, or
            it is not a JSON object of known keys (no value is quoted).
    """
    try:
        mode = path.stat().st_mode
        if os.name == "posix" and stat.S_IMODE(mode) & 0o077:
            raise UsageError(
                f"{path}: credentials file is readable by others (mode "
                f"{stat.S_IMODE(mode):04o}); run chmod 600 {path}"
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the credentials file ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise UsageError(f"{path}: the credentials file is not JSON") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: the credentials file must hold a JSON object")
    unknown = sorted(str(k) for k in data if k not in CREDENTIAL_KEYS)
    if unknown:
        raise UsageError(f"{path}: unknown keys {unknown}; known: {', '.join(CREDENTIAL_KEYS)}")
    for key, value in data.items():
        wanted: Any = (int, float) if key == "expires_in" else str
        if value is not None and (isinstance(value, bool) or not isinstance(value, wanted)):
            raise UsageError(
                f"{path}: {key} must be a {'number' if key == 'expires_in' else 'string'}"
            )
    return data


def write_credentials_file(path: Path, data: dict[str, Any]) -> None:
    """Replace a credentials file atomically, mode 0600 from the first byte.

    Raises:
        OSError: It could not be written (the old file is then intact).
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, sort_keys=True)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def connection_from(args: argparse.Namespace, *, env: dict[str, str] | None = None) -> Connection:
    """The connection of a command: each flag, else its environment variable.

    Raises:
        UsageError: A required setting is missing.
    """
    env = dict(os.environ) if env is None else env
    file_name = getattr(args, "credentials", None) or env.get(ENV_CREDENTIALS) or None
    stored = {} if file_name is None else read_credentials_file(Path(file_name))

    def pick(flag: str | None, name: str, key: str | None = None) -> str | None:
        # A flag, else the environment, else the credentials file.
        value = flag if flag else env.get(name) or None
        return value if value else (stored.get(key) if key else None) or None

    def need(value: str | None, option: str, name: str) -> str:
        if not value:
            raise UsageError(f"missing {option} (or the {name} environment variable)")
        return value

    base_url = need(pick(args.base_url, ENV_BASE_URL, "base_url"), "--base-url", ENV_BASE_URL)
    user_id = need(pick(args.user_id, ENV_USER_ID, "user_id"), "--user-id", ENV_USER_ID)
    agent_name = pick(args.agent_name, ENV_AGENT_NAME, "agent_name")
    app_id = pick(None, ENV_APP_ID, "app_id")
    app_secret = pick(None, ENV_APP_SECRET, "app_secret")
    if (app_id is None) != (app_secret is None):
        raise UsageError(f"app authentication needs both {ENV_APP_ID} and {ENV_APP_SECRET}")
    token = pick(args.token, ENV_TOKEN, "access_token")
    if app_id is None:
        token = need(token, "--token", ENV_TOKEN)
    expires = stored.get("expires_in")
    return Connection(
        base_url=base_url,
        user_id=user_id,
        token=token,
        agent_name=agent_name,
        allow_insecure_http=bool(getattr(args, "allow_insecure_http", False)),
        session_id=pick(None, ENV_SESSION_ID, "session_id"),
        refresh_token=pick(None, ENV_REFRESH_TOKEN, "refresh_token"),
        expires_in=None if expires is None else float(expires),
        app_id=app_id,
        app_secret=app_secret,
        credentials_file=file_name,
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

    # Counted through trace_configs on the session's own pool, not a pool of
    # ours: an owned pool is what tells a create that never left (a pool wait,
    # a refused connect) from one that may have arrived.
    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    try:
        auth = connection.auth()
        session = KooDriveSession(
            connection.base_url,
            user_id=connection.user_id,
            token=connection.token if auth is None else None,
            auth=auth,
            agent_name=connection.agent_name,
            max_connections=max_connections,
            retry=RetryPolicy(),
            trace_configs=[trace],
            allow_insecure_http=connection.allow_insecure_http,
            ssl=ca,
        )
    except KooDriveError as exc:
        # The library names its keyword argument; the command line has a flag for it.
        message = str(exc).replace("allow_insecure_http=True", "--allow-insecure-http")
        message = message.replace("base_url", "--base-url")
        raise UsageError(message) from exc

    return session, (lambda: count), session.close
