"""App authentication: HMAC-SHA256 request signing, as pure functions.

The rules are those of issue 13 item 4, read from the vendor's signing pages
(``API-EXTRA.md`` section A)::

    CanonicalRequest = Method "\\n" CanonicalURI "\\n" CanonicalQueryString "\\n"
                       CanonicalHeaders "\\n" SignedHeaders "\\n" HashedRequestPayload
    StringToSign     = "HMAC-SHA256\\n" + hex(SHA-256(CanonicalRequest))
    Signature        = hex(HMAC-SHA256(key=AppSecret, msg=StringToSign))
    Authorization: HMAC-SHA256 AppId={app_id},SignedHeaders={signed},Signature={signature}

Where the pages are silent, this module decides (and the docs say so):

* The path and query are signed as they go on the wire. Each path segment and
  each query name and value is percent-decoded once, then encoded once with
  only the RFC 3986 unreserved characters kept (``%XY`` upper case), so an
  already encoded segment (``a%2Fb``, the protocol layer's quoting of a task
  id) is signed as ``a%2Fb``, never ``a%252Fb``, and ``%2f`` as ``%2F``. A
  ``%`` not followed by two hex digits is a literal ``%`` (signed ``%25``), as
  lenient URL parsers read it. A ``+`` in a query is a literal plus (RFC
  3986), not a space; the client never sends one unencoded. Dot segments are
  not removed: the path signed is the path sent (the transport sends it as is).
* A header value is stripped of leading and trailing spaces and tabs (tabs
  too, because HTTP parsers drop them as optional whitespace, so the server
  never sees them); inner whitespace is kept.
* A signed header missing from the request is an :class:`InvalidRequestError`
  naming it, not a signature over an empty value: the server would refuse the
  request with an opaque "signature mismatch", and the user debugging it
  would have to guess which header was absent. Nothing is sent.
* ``host`` is the Host header as sent: ``host[:port]``, the port only when it
  is not the scheme's default. :meth:`Signer.sign` derives it from the URL
  when the headers do not carry one (aiohttp adds Host itself).

No I/O happens here and nothing here logs. The canonical request and the
string to sign hold no secret, so the caller may log them at DEBUG; the app
secret appears in no repr, str or exception message.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import quote, unquote_to_bytes, urlsplit

import attrs

from ._exceptions import InvalidRequestError

__all__ = [
    "ALGORITHM",
    "DEFAULT_SIGNED_HEADERS",
    "EMPTY_PAYLOAD_HASH",
    "AppSignature",
    "Signer",
    "authorization_header",
    "canonical_headers",
    "canonical_query_string",
    "canonical_request",
    "canonical_uri",
    "encode_component",
    "hashed_payload",
    "host_value",
    "normalise_signed_headers",
    "sign",
    "signed_headers_value",
    "string_to_sign",
]

#: The only algorithm the pages name.
ALGORITHM: Final = "HMAC-SHA256"

#: The headers signed by default: the docs' example signs ``host;x-date;x-user-id``.
DEFAULT_SIGNED_HEADERS: Final = ("host", "x-date", "x-user-id")

#: hex(SHA-256("")): the payload hash of a request without a body.
EMPTY_PAYLOAD_HASH: Final = hashlib.sha256(b"").hexdigest()

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

# RFC 9110 token characters: what a header name (and a method) may hold.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A "%" that does not start a valid escape is a literal "%": escape it before
# decoding so unquote_to_bytes keeps it as data and the encoder emits %25.
_LONE_PERCENT: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Characters that would break the Authorization header's key=value list or line.
_BAD_APP_ID: Final = re.compile(r"[\s,;=\x00-\x1f\x7f]")
_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Optional whitespace of RFC 9110 (SP and HTAB).
_OWS: Final = " \t"


# --------------------------------------------------------------------------- encoding


def encode_component(raw: str) -> str:
    """Percent-encode one path segment, query name or query value, once.

    The input is as it appears on the wire (possibly already encoded): it is
    decoded once, then every byte outside the RFC 3986 unreserved set
    (``A-Z a-z 0-9 - _ . ~``) is written ``%XY`` with upper-case hex. So
    encoding is idempotent: ``encode_component(encode_component(s)) ==
    encode_component(s)``.

    Args:
        raw: The component as sent.

    Returns:
        The canonical encoding.
    """
    if raw.isascii() and raw.isalnum():
        return raw
    try:
        decoded = unquote_to_bytes(_LONE_PERCENT.sub("%25", raw))
    except UnicodeEncodeError:
        raise InvalidRequestError(
            "a path segment or query item to sign is not valid Unicode (a lone surrogate)"
        ) from None
    # quote() keeps exactly the unreserved set when safe="" and writes upper-case hex.
    return quote(decoded, safe="")


def canonical_uri(path: str) -> str:
    """The CanonicalURI of a path as sent.

    Args:
        path: The request path, percent-encoded as it goes on the wire, without
            the query. ``""`` means ``/``.

    Returns:
        Each segment encoded once (:func:`encode_component`), with ``/``
        appended when the path does not end in one.

    Raises:
        InvalidRequestError: The path is not a str, is relative, or holds a
            ``?``/``#`` (the query and fragment are not part of the path).
    """
    if not isinstance(path, str):
        raise InvalidRequestError(
            f"the path to sign must be a str, got {type(path).__name__}", field="path"
        )
    if path == "":
        return "/"
    if not path.startswith("/"):
        raise InvalidRequestError("the path to sign must start with '/'", field="path")
    if "?" in path or "#" in path:
        raise InvalidRequestError(
            "the path to sign must not hold '?' or '#' (pass the query separately)", field="path"
        )
    uri = "/".join(encode_component(segment) for segment in path.split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query_string(query: str) -> str:
    """The CanonicalQueryString of a query string as sent.

    Args:
        query: The query without ``?``, as it goes on the wire (``""`` for none).

    Returns:
        Every ``name=value`` item encoded once, an item without ``=`` as
        ``name=``, empty items dropped, sorted by encoded name then encoded
        value in code-point order, joined by ``&``; ``""`` when there is none.

    Raises:
        InvalidRequestError: The query is not a str or holds a ``#``.
    """
    if not isinstance(query, str):
        raise InvalidRequestError(
            f"the query to sign must be a str, got {type(query).__name__}", field="query"
        )
    if "#" in query:
        raise InvalidRequestError("the query to sign must not hold '#'", field="query")
    pairs: list[tuple[str, str]] = []
    for item in query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((encode_component(name), encode_component(value)))
    # Encoded strings are ASCII, so str ordering is code-point (and byte) order.
    pairs.sort()
    return "&".join(f"{name}={value}" for name, value in pairs)


# --------------------------------------------------------------------------- headers


def normalise_signed_headers(names: Iterable[str]) -> tuple[str, ...]:
    """Check and normalise the names of the headers to sign.

    Args:
        names: Header names, any case (``("Host", "X-Date")``).

    Returns:
        The lower-case names, sorted.

    Raises:
        InvalidRequestError: A name is not a str or not an HTTP token, is
            ``authorization`` (the header that carries the signature cannot be
            signed), appears twice, or there is no name at all.
    """
    if isinstance(names, str):
        raise InvalidRequestError(
            "signed_headers must be a sequence of header names, not one str",
            field="signed_headers",
        )
    try:
        items = list(names)
    except TypeError:
        raise InvalidRequestError(
            f"signed_headers must be a sequence of header names, got {type(names).__name__}",
            field="signed_headers",
        ) from None
    result: set[str] = set()
    for name in items:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise InvalidRequestError(
                f"signed_headers: {name!r} is not a header name", field="signed_headers"
            )
        lowered = name.lower()
        if lowered == "authorization":
            raise InvalidRequestError(
                "signed_headers: authorization carries the signature and cannot be signed",
                field="signed_headers",
            )
        if lowered in result:
            raise InvalidRequestError(
                f"signed_headers: {lowered!r} is listed twice", field="signed_headers"
            )
        result.add(lowered)
    if not result:
        raise InvalidRequestError(
            "signed_headers must name at least one header", field="signed_headers"
        )
    return tuple(sorted(result))


def signed_headers_value(signed_headers: Iterable[str]) -> str:
    """The SignedHeaders value: the lower-case names, sorted, joined by ``;``.

    Args:
        signed_headers: The names (checked by :func:`normalise_signed_headers`).

    Returns:
        For example ``"host;x-date;x-user-id"``.
    """
    return ";".join(normalise_signed_headers(signed_headers))


def _lookup(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers by lower-case name; two spellings of one name are refused."""
    by_name: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in by_name:
            # Both would be sent; which one the server signs is anyone's guess.
            raise InvalidRequestError(
                f"header {lowered!r} is given more than once (in different cases)",
                field="headers",
            )
        by_name[lowered] = value
    return by_name


def canonical_headers(headers: Mapping[str, str], signed_headers: Iterable[str]) -> str:
    """The CanonicalHeaders block.

    Args:
        headers: The request's headers as sent (names in any case).
        signed_headers: The names to sign.

    Returns:
        For each signed header in sorted order, ``name:value\\n`` with the
        name in lower case and the value stripped of leading and trailing
        spaces and tabs (the last line ends in ``\\n`` too).

    Raises:
        InvalidRequestError: A signed header is missing from ``headers`` (its
            name is given, never a value), a header is given twice in different
            cases, or a signed value is not a str or holds a line break or
            another control character.
    """
    names = normalise_signed_headers(signed_headers)
    by_name = _lookup(headers)
    lines: list[str] = []
    for name in names:
        if name not in by_name:
            raise InvalidRequestError(
                f"signed header {name!r} is not in the request: add it or stop signing it",
                field="signed_headers",
            )
        value = by_name[name]
        if not isinstance(value, str):
            raise InvalidRequestError(
                f"header {name!r} must be a str, got {type(value).__name__}", field="headers"
            )
        # The value itself may be sensitive: only its name is shown.
        if _CONTROL.search(value):
            raise InvalidRequestError(
                f"header {name!r} must not contain control characters", field="headers"
            )
        _check_utf8(value, f"header {name!r}", "headers")
        lines.append(f"{name}:{value.strip(_OWS)}\n")
    return "".join(lines)


def host_value(url: str) -> str:
    """The Host header an HTTP client sends for an absolute URL.

    Args:
        url: ``scheme://host[:port][/path...]``.

    Returns:
        ``host`` or ``host:port``, the port only when it is not the scheme's
        default (80 for http, 443 for https); the host in lower case, an IPv6
        address in brackets.

    Raises:
        InvalidRequestError: The URL has no host or a bad port.
    """
    parts = urlsplit(url)
    try:
        host = parts.hostname
        port = parts.port
    except ValueError:
        raise InvalidRequestError("the URL to sign has a bad port", field="url") from None
    if not host:
        raise InvalidRequestError("the URL to sign has no host", field="url")
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        return host
    return f"{host}:{port}"


# --------------------------------------------------------------------------- payload


def hashed_payload(body: bytes | bytearray | memoryview | None) -> str:
    """HashedRequestPayload: lower-case hex SHA-256 of the exact body bytes.

    Args:
        body: The body as sent, or None for none (hashed as ``b""``).

    Returns:
        64 lower-case hex characters.

    Raises:
        InvalidRequestError: The body is not bytes-like (a str would leave
            its encoding to guesswork).
    """
    if body is None:
        return EMPTY_PAYLOAD_HASH
    if not isinstance(body, bytes | bytearray | memoryview):
        raise InvalidRequestError(
            f"the body to sign must be bytes or None, got {type(body).__name__}", field="body"
        )
    return hashlib.sha256(body).hexdigest()


# --------------------------------------------------------------------------- signing


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Iterable[str],
    body: bytes | bytearray | memoryview | None,
) -> str:
    """The CanonicalRequest of a request as sent.

    Args:
        method: The HTTP method (upper-cased here).
        path: The path as sent, without the query (see :func:`canonical_uri`).
        query: The query as sent, without ``?`` (see :func:`canonical_query_string`).
        headers: The headers as sent, including every signed one (Host too).
        signed_headers: The names of the headers to sign.
        body: The body bytes as sent, or None.

    Returns:
        The six lines joined by ``\\n`` (CanonicalHeaders ends in its own
        ``\\n``, so a blank line follows it).

    Raises:
        InvalidRequestError: A bad method, path, query or body, a bad or
            missing signed header.
    """
    if not isinstance(method, str) or not _TOKEN.fullmatch(method):
        raise InvalidRequestError("the method to sign must be an HTTP token", field="method")
    names = normalise_signed_headers(signed_headers)
    return "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            canonical_query_string(query),
            canonical_headers(headers, names),
            ";".join(names),
            hashed_payload(body),
        )
    )


def string_to_sign(canonical: str) -> str:
    """StringToSign: ``"HMAC-SHA256\\n" + hex(SHA-256(canonical))``.

    Args:
        canonical: The canonical request (UTF-8 encoded for hashing).

    Returns:
        The string to sign.
    """
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{digest}"


def sign(secret: str, to_sign: str) -> str:
    """Signature: lower-case hex HMAC-SHA256 of the string to sign.

    Args:
        secret: The AppSecret (UTF-8 encoded as the key). Never shown.
        to_sign: The string to sign (UTF-8 encoded as the message).

    Returns:
        64 lower-case hex characters.
    """
    return hmac.new(secret.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization_header(app_id: str, signed_headers: str, signature: str) -> str:
    """The Authorization header value.

    Args:
        app_id: The AppId.
        signed_headers: The SignedHeaders value (``host;x-date;x-user-id``).
        signature: The signature.

    Returns:
        ``HMAC-SHA256 AppId={app_id},SignedHeaders={signed_headers},Signature={signature}``:
        one space after the algorithm, commas without spaces.
    """
    return f"{ALGORITHM} AppId={app_id},SignedHeaders={signed_headers},Signature={signature}"


def _check_app_id(app_id: object) -> str:
    if not isinstance(app_id, str) or not app_id:
        raise InvalidRequestError("app_id must be a non-empty str", field="app_id")
    if _BAD_APP_ID.search(app_id) or not app_id.isascii():
        raise InvalidRequestError(
            "app_id must be printable ASCII without spaces, ',', ';' or '='", field="app_id"
        )
    return app_id


def _check_secret(secret: object) -> str:
    # Never quote the value, not even its length: only its type is named.
    if not isinstance(secret, str):
        raise InvalidRequestError(
            f"app_secret must be a str, got {type(secret).__name__}", field="app_secret"
        )
    if not secret:
        raise InvalidRequestError("app_secret must not be empty", field="app_secret")
    _check_utf8(secret, "app_secret", "app_secret")
    return secret


def _check_utf8(value: str, what: str, field: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequestError(
            f"{what} is not valid Unicode (a lone surrogate)", field=field
        ) from None


@attrs.frozen
class AppSignature:
    """The result of signing one request attempt.

    Nothing here is secret: the signature is sent in clear, and the canonical
    request and string to sign may be logged at DEBUG so that a user whose
    signature the service refuses can compare them with its rules.

    Attributes:
        authorization: The Authorization header value.
        signed_headers: The SignedHeaders value.
        signature: The signature (lower-case hex).
        canonical_request: The canonical request that was signed.
        string_to_sign: The string to sign.
    """

    authorization: str
    signed_headers: str
    signature: str
    canonical_request: str
    string_to_sign: str

    @property
    def headers(self) -> dict[str, str]:
        """The headers to add to the request: ``{"Authorization": ...}``."""
        return {"Authorization": self.authorization}


class Signer:
    """Signs requests with an AppId and AppSecret.

    Args:
        app_id: The AppId (sent in the Authorization header).
        app_secret: The AppSecret, the HMAC key. It appears in no repr, str
            or exception message.
        signed_headers: The headers to sign, any case; default
            ``("host", "x-date", "x-user-id")``, the docs' example.

    Raises:
        InvalidRequestError: A bad app id, secret or header list (the secret
            is never quoted).
    """

    __slots__ = ("_app_id", "_key", "_signed_headers")

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        *,
        signed_headers: Iterable[str] = DEFAULT_SIGNED_HEADERS,
    ) -> None:
        self._app_id = _check_app_id(app_id)
        self._key = _check_secret(app_secret)
        self._signed_headers = normalise_signed_headers(signed_headers)

    @property
    def app_id(self) -> str:
        """The AppId."""
        return self._app_id

    @property
    def signed_headers(self) -> tuple[str, ...]:
        """The lower-case names of the signed headers, sorted."""
        return self._signed_headers

    def __repr__(self) -> str:
        return f"Signer(app_id={self._app_id!r}, signed_headers={self._signed_headers!r})"

    def sign(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | bytearray | memoryview | None = None,
    ) -> AppSignature:
        """Sign one request attempt.

        Args:
            method: The HTTP method.
            url: The absolute URL as sent (``https://host[:port]/path?query``),
                or the origin-form target (``/path?query``) when ``headers``
                carries Host. Path and query are percent-encoded as on the wire.
            headers: The headers that will be sent (X-Date and X-User-Id among
                them). Host, when absent, is derived from an absolute ``url``.
            body: The exact body bytes, or None.

        Returns:
            The Authorization header and the strings that produced it.

        Raises:
            InvalidRequestError: A signed header is missing (named in the
                message), or the method, URL, a header or the body is bad.
        """
        if not isinstance(url, str):
            raise InvalidRequestError(
                f"the URL to sign must be a str, got {type(url).__name__}", field="url"
            )
        parts = urlsplit(url)
        if "host" in self.signed_headers and not any(n.lower() == "host" for n in headers):
            if parts.netloc:
                headers = {**headers, "Host": host_value(url)}
        canonical = canonical_request(
            method, parts.path, parts.query, headers, self.signed_headers, body
        )
        to_sign = string_to_sign(canonical)
        signature = sign(self._key, to_sign)
        signed = ";".join(self.signed_headers)
        return AppSignature(
            authorization=authorization_header(self.app_id, signed, signature),
            signed_headers=signed,
            signature=signature,
            canonical_request=canonical,
            string_to_sign=to_sign,
        )
