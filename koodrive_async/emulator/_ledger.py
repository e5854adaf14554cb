"""The request ledger: what every API request looked like, with secrets redacted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ._faults import FaultKind

__all__ = [
    "CREDENTIAL_FIELDS",
    "REDACTED",
    "SECRET_FIELDS",
    "HeaderDict",
    "LedgerEntry",
    "redact_authorization",
    "redact_body",
    "redact_headers",
]

REDACTED = "***"

#: Body fields that carry secrets, requests and answers alike: the archive
#: password, the share token, and the session routes' tokens and session id.
SECRET_FIELDS = frozenset({"password", "kdstoken", "accessToken", "refreshToken", "sessionId"})

#: The request fields of the session routes: ``code`` there is the
#: authorization code (in answers ``code`` is the business code, kept).
CREDENTIAL_FIELDS = SECRET_FIELDS | {"code"}

# Headers whose whole value is a secret.
_SECRET_HEADERS = frozenset({"x-session-id"})

_APP_SCHEME = "HMAC-SHA256 "


class HeaderDict(dict[str, str]):
    """A plain dict of request headers that also finds keys case-insensitively.

    Keys keep the spelling the client sent; ``headers["x-date"]`` finds
    ``"X-Date"`` too.
    """

    def _find(self, key: object) -> str | None:
        if isinstance(key, str):
            lowered = key.lower()
            for existing in self:
                if existing.lower() == lowered:
                    return existing
        return None

    def __missing__(self, key: str) -> str:
        found = self._find(key)
        if found is None:
            raise KeyError(key)
        return dict.__getitem__(self, found)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or self._find(key) is not None

    def get(self, key: str, default: Any = None) -> Any:
        """Return the header's value (case-insensitive), or ``default``.

        Args:
            key: Header name.
            default: Returned when absent.

        Returns:
            The value or ``default``.
        """
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        found = self._find(key)
        return default if found is None else dict.__getitem__(self, found)


def redact_authorization(value: str) -> str:
    """Keep only the scheme word of an Authorization value: ``"Bearer+abc"`` -> ``"Bearer ***"``.

    An app signature keeps its AppId and SignedHeaders (no secret, and what a
    reader of the ledger needs) and loses its Signature:
    ``"HMAC-SHA256 AppId=a,SignedHeaders=host;x-date,Signature=***"``.

    Args:
        value: The header value.

    Returns:
        The scheme word and ``***``, or ``***`` when there is no scheme word.
    """
    stripped = value.strip()
    if stripped.startswith(_APP_SCHEME):
        kept = [
            part
            for part in stripped[len(_APP_SCHEME) :].split(",")
            if part.startswith(("AppId=", "SignedHeaders="))
        ]
        return _APP_SCHEME + ",".join([*kept, f"Signature={REDACTED}"])
    for sep in (" ", "+"):
        head, found, _ = stripped.partition(sep)
        if found and head and head.isalpha():
            return f"{head} {REDACTED}"
    return REDACTED


#: Nesting depth below which a body is copied field by field; anything deeper
#: (no request of the pages nests more than three levels) is replaced whole.
MAX_REDACT_DEPTH = 32


def redact_body(body: Any, _depth: int = 0, *, fields: frozenset[str] = SECRET_FIELDS) -> Any:
    """Return a copy of a JSON body with secret fields replaced by ``"***"``, at any depth.

    A subtree nested deeper than :data:`MAX_REDACT_DEPTH` is replaced by
    ``"***"`` as a whole: it could hide a secret, and copying it field by field
    could exhaust the interpreter's recursion limit.

    Args:
        body: Parsed JSON.
        fields: The names of the secret fields (:data:`CREDENTIAL_FIELDS`
            for a session route's request).

    Returns:
        The redacted copy (the input is not changed).
    """
    if isinstance(body, dict | list) and _depth >= MAX_REDACT_DEPTH:
        return REDACTED
    if isinstance(body, dict):
        return {
            k: (
                REDACTED
                if k in fields and v is not None
                else redact_body(v, _depth + 1, fields=fields)
            )
            for k, v in body.items()
        }
    if isinstance(body, list):
        return [redact_body(v, _depth + 1, fields=fields) for v in body]
    return body


def redact_headers(headers: Mapping[str, str]) -> HeaderDict:
    """Copy request headers with the Authorization value and the session id redacted.

    Args:
        headers: The request's headers.

    Returns:
        A :class:`HeaderDict`.
    """
    out = HeaderDict((k, _redact_header(k.lower(), v)) for k, v in headers.items())
    return out


def _redact_header(lowered: str, value: str) -> str:
    if lowered == "authorization":
        return redact_authorization(value)
    return REDACTED if lowered in _SECRET_HEADERS else value


@attrs.frozen
class LedgerEntry:
    """One API request the emulator received (admin routes are not recorded).

    Args:
        time: ``time.monotonic()`` at arrival.
        method: HTTP method.
        path: Request path.
        route: Route name, or None for a path that is no API route.
        query: Query pairs in order, repeats kept.
        headers: Request headers; the Authorization value keeps only its
            scheme word (an app signature its AppId and SignedHeaders),
            ``x-session-id`` is ``"***"``.
        body: Parsed JSON body (the :data:`SECRET_FIELDS`, and a session
            route's authorization ``code``, replaced by ``"***"``), or None
            (no body, or not JSON).
        status: Response status, or None when the connection was dropped.
        response: Parsed JSON response body (a session route's tokens and
            session id replaced by ``"***"``), or None.
        task_id: Id of the task this request created, or None.
        fault: The fault applied (other than LATENCY), or None.
        throttled: True when the per-user quota answered it 429 (``_quota``).
    """

    time: float
    method: str
    path: str
    route: str | None
    query: tuple[tuple[str, str], ...]
    headers: HeaderDict
    body: Any
    status: int | None
    response: Any
    task_id: str | None
    fault: FaultKind | None
    throttled: bool = False

    def to_json(self) -> dict[str, Any]:
        """Return the entry as the admin route shows it.

        Returns:
            A JSON-ready dict.
        """
        return {
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "route": self.route,
            "query": [list(pair) for pair in self.query],
            "headers": dict(self.headers),
            "body": self.body,
            "status": self.status,
            "response": self.response,
            "task_id": self.task_id,
            "fault": None if self.fault is None else self.fault.value,
            "throttled": self.throttled,
        }
