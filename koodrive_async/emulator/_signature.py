"""Server-side check of app-authentication signatures (HMAC-SHA256).

This is the emulator's own reading of the signing rules (issue 13 item 4,
``API-EXTRA.md`` section A), written apart from the client's signer so that
each can catch the other's mistakes. The server rebuilds::

    CanonicalRequest = METHOD \\n CanonicalURI \\n CanonicalQueryString \\n
                       CanonicalHeaders \\n SignedHeaders \\n hex(sha256(body))
    StringToSign     = "HMAC-SHA256" \\n hex(sha256(CanonicalRequest))
    expected         = hex(hmac_sha256(AppSecret, StringToSign))

from the request exactly as it arrived and compares it with the Signature of
``Authorization: HMAC-SHA256 AppId=..,SignedHeaders=..,Signature=..``.

* Path segments and query names/values are percent-decoded once and
  re-encoded once, keeping only ``A-Z a-z 0-9 - _ . ~`` (``%XY`` upper case),
  so ``%2f`` and ``%2F`` are the same and an encoded ``/`` stays in its
  segment. A ``%`` that starts no escape is a literal ``%``; ``+`` is a plus.
* The path gets a trailing ``/`` when it lacks one. Query items are sorted by
  encoded name, then encoded value; an item without ``=`` has an empty value.
* Header values lose leading and trailing spaces and tabs.
* SignedHeaders must be lower case, sorted and without repeats (the rules
  build it that way), and must include ``x-date`` and ``x-user-id`` (the
  pages: the signed headers "MUST include X-Date and X-User-Id").

Whether X-Date is fresh is not decided here (the app checks it against its
virtual clock). Nothing here does I/O. No result or message holds the secret.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import string
from collections.abc import Collection, Iterable, Mapping

import attrs

__all__ = [
    "REQUIRED_SIGNED_HEADERS",
    "Reason",
    "VerificationResult",
    "is_app_auth",
    "verify",
]

_SCHEME = "HMAC-SHA256"
_PREFIX = _SCHEME + " "

#: The headers every signature must cover, per the signing pages.
REQUIRED_SIGNED_HEADERS: tuple[str, ...] = ("x-date", "x-user-id")

_UNRESERVED = frozenset((string.ascii_letters + string.digits + "-_.~").encode("ascii"))
_HEX = frozenset(string.hexdigits)
_LOWER_HEX = frozenset("0123456789abcdef")
_NAME_CHARS = frozenset(string.ascii_lowercase + string.digits + "!#$%&'*+-.^_`|~")


class Reason(enum.Enum):
    """Why a signature was not accepted (the value is a short stable code)."""

    NO_AUTHORIZATION = "no_authorization"
    BAD_AUTHORIZATION = "bad_authorization"
    UNKNOWN_APP = "unknown_app"
    UNSIGNED_REQUIRED_HEADER = "unsigned_required_header"
    MISSING_SIGNED_HEADER = "missing_signed_header"
    REPEATED_SIGNED_HEADER = "repeated_signed_header"
    SIGNATURE_MISMATCH = "signature_mismatch"


@attrs.frozen
class VerificationResult:
    """The outcome of :func:`verify`.

    Attributes:
        ok: True when the signature matches.
        reason: Why not, or None when ``ok``.
        detail: A sentence for a 401 body (header names, never a secret).
        app_id: The AppId the request named, when it could be read.
        canonical_request: The canonical request the server built, when it
            got that far (it quotes the signed header values).
        string_to_sign: The string to sign the server built, likewise.
    """

    ok: bool
    reason: Reason | None = None
    detail: str = ""
    app_id: str | None = None
    canonical_request: str | None = None
    string_to_sign: str | None = None


def _refuse(reason: Reason, detail: str, app_id: str | None = None) -> VerificationResult:
    return VerificationResult(ok=False, reason=reason, detail=detail, app_id=app_id)


def _values(headers: Mapping[str, str] | Iterable[tuple[str, str]], name: str) -> list[str]:
    """Every value of one header (case-insensitive), in arrival order."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [value for key, value in pairs if key.lower() == name]


def is_app_auth(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> bool:
    """True when the request's Authorization uses the HMAC-SHA256 scheme.

    Args:
        headers: The request headers (a mapping, a multidict or pairs).

    Returns:
        Whether the app-authentication check applies (token auth otherwise).
    """
    return any(value.startswith(_PREFIX) for value in _values(headers, "authorization"))


# --------------------------------------------------------------------------- canonical form


def _raw_bytes(text: str) -> bytes:
    """Percent-decode once; anything that is not a valid escape stays as is."""
    out = bytearray()
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == "%" and i + 2 < n and text[i + 1] in _HEX and text[i + 2] in _HEX:
            out.append(int(text[i + 1 : i + 3], 16))
            i += 3
            continue
        # surrogateescape: aiohttp hands undecodable request bytes over that way.
        out += char.encode("utf-8", "surrogateescape")
        i += 1
    return bytes(out)


def _encode(text: str) -> str:
    return "".join(
        chr(byte) if byte in _UNRESERVED else f"%{byte:02X}" for byte in _raw_bytes(text)
    )


def _uri(path: str) -> str:
    encoded = "/".join(_encode(part) for part in path.split("/")) if path else "/"
    if not encoded.startswith("/"):
        encoded = "/" + encoded
    return encoded if encoded.endswith("/") else encoded + "/"


def _query(query: str) -> str:
    items = []
    for item in query.split("&"):
        if item == "":
            continue
        if "=" in item:
            name, value = item.split("=", 1)
        else:
            name, value = item, ""
        items.append((_encode(name), _encode(value)))
    return "&".join(name + "=" + value for name, value in sorted(items))


def _hex_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- the header


def _parse(value: str) -> dict[str, str] | str:
    """The three fields of the Authorization value, or what is wrong with it."""
    if not value.startswith(_PREFIX):
        return f"Authorization must start with '{_PREFIX}'"
    rest = value[len(_PREFIX) :]
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, eq, field_value = part.partition("=")
        if not eq or key not in ("AppId", "SignedHeaders", "Signature"):
            return "Authorization must be 'AppId=..,SignedHeaders=..,Signature=..'"
        if key in fields:
            return f"Authorization gives {key} twice"
        fields[key] = field_value
    if len(fields) != 3:
        return "Authorization must carry AppId, SignedHeaders and Signature"
    if not fields["AppId"]:
        return "AppId is empty"
    signature = fields["Signature"]
    if len(signature) != 64 or not set(signature) <= _LOWER_HEX:
        return "Signature must be 64 lower-case hex digits"
    names = fields["SignedHeaders"].split(";")
    if any(not name or not set(name) <= _NAME_CHARS for name in names):
        return "SignedHeaders must be lower-case header names joined by ';'"
    if any(a >= b for a, b in zip(names, names[1:], strict=False)):
        return "SignedHeaders must be sorted, without repeats"
    if "authorization" in names:
        return "SignedHeaders cannot include authorization"
    return fields


def verify(
    app_secret_by_id: Mapping[str, str],
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes | None,
    *,
    required_signed_headers: Collection[str] = REQUIRED_SIGNED_HEADERS,
) -> VerificationResult:
    """Check a request's app signature.

    Args:
        app_secret_by_id: The known apps: AppId to AppSecret.
        method: The request method.
        raw_path: The path as received, still percent-encoded. If it carries
            ``?query`` (aiohttp's ``request.raw_path`` does), the part after
            ``?`` is the query when ``query_string`` is empty.
        query_string: The raw query without ``?`` (``request.query_string``).
        headers: The headers as received (a multidict, a mapping or pairs);
            a signed header received twice is refused.
        body: The body bytes as received (None or ``b""`` for none).
        required_signed_headers: Lower-case names SignedHeaders must include.

    Returns:
        ``ok`` or the reason it is not.
    """
    found = _values(headers, "authorization")
    if not found:
        return _refuse(Reason.NO_AUTHORIZATION, "no Authorization header")
    if len(found) > 1:
        return _refuse(Reason.BAD_AUTHORIZATION, "more than one Authorization header")
    parsed = _parse(found[0])
    if isinstance(parsed, str):
        return _refuse(Reason.BAD_AUTHORIZATION, parsed)
    app_id = parsed["AppId"]
    signed = parsed["SignedHeaders"]
    names = signed.split(";")

    secret = app_secret_by_id.get(app_id)
    if secret is None:
        return _refuse(Reason.UNKNOWN_APP, "unknown AppId", app_id=app_id)
    for required in sorted(required_signed_headers):
        if required not in names:
            return _refuse(
                Reason.UNSIGNED_REQUIRED_HEADER,
                f"SignedHeaders must include {required}",
                app_id=app_id,
            )

    header_lines = []
    for name in names:
        values = _values(headers, name)
        if not values:
            return _refuse(
                Reason.MISSING_SIGNED_HEADER,
                f"signed header {name} is not in the request",
                app_id=app_id,
            )
        if len(values) > 1:
            return _refuse(
                Reason.REPEATED_SIGNED_HEADER,
                f"signed header {name} is sent more than once",
                app_id=app_id,
            )
        header_lines.append(name + ":" + values[0].strip(" \t") + "\n")

    path, question, tail = raw_path.partition("?")
    query = query_string if query_string or not question else tail
    canonical = "\n".join(
        [
            method.upper(),
            _uri(path),
            _query(query),
            "".join(header_lines),
            signed,
            _hex_sha256(body or b""),
        ]
    )
    to_sign = _SCHEME + "\n" + _hex_sha256(canonical.encode("utf-8", "surrogateescape"))
    expected = hmac.new(
        secret.encode("utf-8", "surrogateescape"),
        to_sign.encode("utf-8"),
        hashlib.sha256,
    ).hexdigest()
    ok = hmac.compare_digest(expected, parsed["Signature"])
    return VerificationResult(
        ok=ok,
        reason=None if ok else Reason.SIGNATURE_MISMATCH,
        detail="" if ok else "signature mismatch",
        app_id=app_id,
        canonical_request=canonical,
        string_to_sign=to_sign,
    )
