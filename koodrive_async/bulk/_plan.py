"""Plan files: reading and validating a JSON Lines plan, and its hashes.

Owns the plan format (one request per line, ``kind`` plus the API's own
body), the per-line and plan hashes the journal identifies a plan by, and
:class:`PlanError`. Kept apart from the runner so that a plan can be checked
(a dry run, a report) without a session or a journal.

One request per line::

    {"kind": "job", "taskType": 1, "actionType": 101, "dstContainerId": "C2",
     "taskInfo": {"srcContainerId": "C1", "fileInfo": [{"fileId": "F1"}]}}

``kind`` is ``job`` | ``share`` | ``transfer`` | ``import``; the other fields
are the API's own camelCase request body, so a body can be pasted from the
endpoint pages (a ``job`` may carry a top-level ``shareFolderId``). Blank
lines are ignored. Every line is validated (the same checks as the library
makes before sending) and every error is reported with its line number.

Hashes: each line is hashed as canonical JSON with ``password`` and
``kdstoken`` values redacted, so that the journal can identify the plan
without holding anything a secret could be recovered from. The plan hash
covers every line number and line hash (invalid lines included).

Must never import: ``cli/``, ``rich``, ``argparse``, the journal or the runner.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from .._exceptions import InvalidRequestError
from .._models import Request
from ._bodies import in_json_names, request_from_body

__all__ = ["KINDS", "MAX_DEPTH", "Plan", "PlanError", "PlanLine", "load_plan", "parse_line"]

#: The values ``kind`` may take.
KINDS = ("job", "share", "transfer", "import")

#: Fields whose values are secrets: redacted before hashing and from error texts.
SECRET_FIELDS = frozenset({"password", "kdstoken"})


class PlanError(Exception):
    """The plan file cannot be used at all (missing, unreadable, empty)."""


@attrs.frozen
class PlanLine:
    """One non-blank line of a plan.

    Attributes:
        number: The 1-based line number in the file.
        line_hash: sha256 (hex) of the line's canonical JSON, secrets redacted.
        kind: The line's ``kind`` when valid, else None.
        error: Why the line is invalid, or None when it is valid.
    """

    number: int
    line_hash: str
    kind: str | None
    error: str | None

    @property
    def valid(self) -> bool:
        """True when the line parses into a request."""
        return self.error is None


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads silently keeps the last of repeated keys; in a plan that hides
    # a typo (two "taskType"s), so it is an error.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"field {key!r} appears twice")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("***" if k in SECRET_FIELDS else _redacted(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _secret_values(value: Any) -> list[str]:
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k in SECRET_FIELDS and v is not None and not isinstance(v, dict | list):
                text = str(v)
                if text:
                    found.append(text)
            else:
                found.extend(_secret_values(v))
    elif isinstance(value, list):
        for v in value:
            found.extend(_secret_values(v))
    return found


def _scrub(message: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        message = message.replace(secret, "***")
    return message


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


#: The error of a line nested deeper than MAX_DEPTH (or than the decoder can go).
_TOO_DEEP = "invalid JSON: nested too deeply"

#: The deepest nesting a plan line may have. A real request is four or five levels
#: deep. A fixed limit gives the same verdict on every Python: how deep the json
#: module and recursive code can go before RecursionError differs between
#: versions (3.12 stopped counting C frames against the recursion limit).
MAX_DEPTH = 64


def _deeper_than(value: Any, limit: int) -> bool:
    # Iterative on purpose: recursion is what this guards the redaction from.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def _cut_short(text: str, exc: json.JSONDecodeError) -> bool:
    """True when the text opens a JSON object or array that the line ends inside.

    The usual cause is a pretty-printed body spread over several lines.
    """
    stripped = text.strip()
    return stripped[:1] in ("{", "[") and exc.pos >= len(text.rstrip())


def _decode(raw: bytes, number: int) -> tuple[Any, str | None]:
    """Return (parsed JSON or None, error or None) for one raw line."""
    try:
        text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    try:
        return json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
        ), None
    except json.JSONDecodeError as exc:
        # exc.msg and the column only: the message must not quote the line
        # (it could hold a password).
        message = f"invalid JSON: {exc.msg} (column {exc.colno})"
        if _cut_short(text, exc):
            message += (
                "; the line ends before its JSON object does: a plan holds one request per "
                "line (put each body on a single line)"
            )
        return None, message
    except ValueError as exc:
        return None, f"invalid JSON: {exc}"
    except RecursionError:
        return None, _TOO_DEEP


def _to_request(obj: Any) -> tuple[str, Request]:
    """Build the request of one parsed line; raises InvalidRequestError."""
    if not isinstance(obj, dict):
        raise InvalidRequestError(
            f"each line must be a JSON object, got {type(obj).__name__}", field="kind"
        )
    kind = obj.get("kind")
    if kind not in KINDS:
        raise InvalidRequestError(
            f'"kind" must be one of {", ".join(KINDS)}; got {kind!r}'
            if "kind" in obj
            else f'"kind" is missing (one of {", ".join(KINDS)})',
            field="kind",
        )
    body = {k: v for k, v in obj.items() if k != "kind"}
    try:
        return kind, request_from_body(kind, body)
    except InvalidRequestError as exc:
        raise in_json_names(kind, exc) from None


def parse_line(raw: bytes, number: int) -> tuple[PlanLine, Request | None]:
    """Parse and validate one non-blank plan line.

    Args:
        raw: The line's bytes, without the line ending.
        number: Its 1-based line number (used in messages).

    Returns:
        The :class:`PlanLine` and, when valid, the request it describes.
    """
    obj, error = _decode(raw, number)
    if error is None and _deeper_than(obj, MAX_DEPTH):
        error = _TOO_DEEP
    if error is not None:
        return PlanLine(number, _hash(raw), None, error), None
    secrets = _secret_values(obj)
    canonical = json.dumps(_redacted(obj), sort_keys=True, separators=(",", ":"))
    line_hash = _hash(canonical.encode())
    try:
        kind, request = _to_request(obj)
    except InvalidRequestError as exc:
        return PlanLine(number, line_hash, None, _scrub(str(exc), secrets)), None
    except (TypeError, ValueError, KeyError) as exc:
        # Should not happen (request_from_body raises InvalidRequestError), but a
        # plan line must never crash the validation of the others.
        return PlanLine(
            number, line_hash, None, _scrub(f"cannot build request: {exc}", secrets)
        ), None
    return PlanLine(number, line_hash, kind, None), request


@attrs.frozen
class Plan:
    """A plan file, read and validated.

    Attributes:
        path: The file.
        lines: Every non-blank line, valid or not, in file order.
        plan_hash: The content hash (see the module docstring).
    """

    path: Path
    lines: tuple[PlanLine, ...]
    plan_hash: str
    _raw: dict[int, bytes] = attrs.field(repr=False, alias="raw")

    @property
    def errors(self) -> list[PlanLine]:
        """The invalid lines."""
        return [line for line in self.lines if not line.valid]

    @property
    def valid_lines(self) -> list[PlanLine]:
        """The valid lines."""
        return [line for line in self.lines if line.valid]

    @property
    def kinds(self) -> set[str]:
        """The kinds of the valid lines."""
        return {line.kind for line in self.lines if line.kind is not None}

    def request(self, number: int) -> Request:
        """Parse line ``number`` again into a fresh request object.

        Fresh objects matter: the runner maps results back to lines by object
        identity, and two identical lines must stay two distinct requests.

        Raises:
            PlanError: The line is not a valid line of this plan.
        """
        raw = self._raw.get(number)
        if raw is None:
            raise PlanError(f"line {number} is not a valid line of {self.path}")
        line, request = parse_line(raw, number)
        if request is None:
            raise PlanError(f"line {number} of {self.path} is invalid: {line.error}")
        return request

    def iter_lines(self) -> Iterator[PlanLine]:
        """Iterate over the lines."""
        return iter(self.lines)


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file.

    Args:
        path: The JSON Lines file.

    Returns:
        The plan; invalid lines are listed in :attr:`Plan.errors`.

    Raises:
        PlanError: The file cannot be read, or holds no line at all.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PlanError(f"cannot read plan {path}: {exc.strerror or exc}") from exc
    lines: list[PlanLine] = []
    raw_valid: dict[int, bytes] = {}
    digest = hashlib.sha256()
    for number, raw in enumerate(data.splitlines(), start=1):
        raw = raw.strip()
        if not raw or (number == 1 and raw == b"\xef\xbb\xbf"):
            continue
        line, request = parse_line(raw, number)
        lines.append(line)
        if request is not None:
            raw_valid[number] = raw
        digest.update(f"{number}:{line.line_hash}\n".encode())
    if not lines:
        raise PlanError(f"plan {path} holds no request (it is empty)")
    return Plan(path=path, lines=tuple(lines), plan_hash=digest.hexdigest(), raw=raw_valid)
