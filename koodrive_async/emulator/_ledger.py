"""The request ledger: what every API request looked like, with secrets redacted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ._faults import FaultKind

__all__ = ["REDACTED", "HeaderDict", "LedgerEntry", "redact_authorization", "redact_body"]

REDACTED = "***"

# Body fields that carry secrets: the archive password and the share token.
_SECRET_FIELDS = frozenset({"password", "kdstoken"})


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

    Args:
        value: The header value.

    Returns:
        The scheme word and ``***``, or ``***`` when there is no scheme word.
    """
    stripped = value.strip()
    for sep in (" ", "+"):
        head, found, _ = stripped.partition(sep)
        if found and head and head.isalpha():
            return f"{head} {REDACTED}"
    return REDACTED


#: Nesting depth below which a body is copied field by field; anything deeper
#: (no request of the pages nests more than three levels) is replaced whole.
MAX_REDACT_DEPTH = 32


def redact_body(body: Any, _depth: int = 0) -> Any:
    """Return a copy of a JSON body with secret fields replaced by ``"***"``, at any depth.

    A subtree nested deeper than :data:`MAX_REDACT_DEPTH` is replaced by
    ``"***"`` as a whole: it could hide a secret, and copying it field by field
    could exhaust the interpreter's recursion limit.

    Args:
        body: Parsed JSON.

    Returns:
        The redacted copy (the input is not changed).
    """
    if isinstance(body, dict | list) and _depth >= MAX_REDACT_DEPTH:
        return REDACTED
    if isinstance(body, dict):
        return {
            k: (REDACTED if k in _SECRET_FIELDS and v is not None else redact_body(v, _depth + 1))
            for k, v in body.items()
        }
    if isinstance(body, list):
        return [redact_body(v, _depth + 1) for v in body]
    return body


def redact_headers(headers: Mapping[str, str]) -> HeaderDict:
    """Copy request headers with the Authorization value redacted.

    Args:
        headers: The request's headers.

    Returns:
        A :class:`HeaderDict`.
    """
    out = HeaderDict(
        (k, redact_authorization(v) if k.lower() == "authorization" else v)
        for k, v in headers.items()
    )
    return out


@attrs.frozen
class LedgerEntry:
    """One API request the emulator received (admin routes are not recorded).

    Args:
        time: ``time.monotonic()`` at arrival.
        method: HTTP method.
        path: Request path.
        route: Route name, or None for a path that is no API route.
        query: Query pairs in order, repeats kept.
        headers: Request headers; the Authorization value keeps only its scheme word.
        body: Parsed JSON body (``password`` and ``kdstoken`` replaced by ``"***"``),
            or None (no body, or not JSON).
        status: Response status, or None when the connection was dropped.
        response: Parsed JSON response body, or None.
        task_id: Id of the task this request created, or None.
        fault: The fault applied (other than LATENCY), or None.
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
        }
