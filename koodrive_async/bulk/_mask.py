"""THE one secret-masking function: for the journal's error texts and all CLI output.

It lives in the bulk wing because the journal must never store a secret an
error message quotes; the command line uses the same function for what it
prints. Must never import: ``cli/``, ``rich``, ``argparse``.

The service may echo a request body back (a task's ``initParams``, an error
message quoting the body), and that body can hold an archive password or a
kdstoken. Every output path of the CLI (``task get/list/wait`` in JSON and
plain text, ``run --json``, progress messages, summaries, errors, and the
error texts the journal keeps) goes through :func:`mask`.

It masks the value of every field whose name is a secret's (see
:data:`SECRET_NAMES`; compared case-insensitively, ignoring ``_`` and ``-``):
structurally in dicts and lists, in strings that hold a JSON object or array
(``initParams``), and, in any other text, in the ``"name": "value"``,
``\\"name\\":\\"value\\"`` (JSON inside a JSON string) and ``name=value``
forms.

A download link carries a token of its own in its query: the value of every
field whose name is a link's (see :data:`URL_NAMES`) keeps its address and
loses its query (:func:`mask_url`).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MASK", "SECRET_NAMES", "URL_NAMES", "mask", "mask_url"]

#: What a secret's value is replaced with.
MASK = "***"

#: Field names (lower case, without ``_`` and ``-``) whose values are secrets.
SECRET_NAMES = frozenset(
    {
        "password",
        "passwd",
        "kdstoken",
        "token",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "sessionid",
        "secret",
        "appsecret",
        "clientsecret",
        "apikey",
        "authorization",
    }
)

#: Field names (lower case, without ``_`` and ``-``) whose values are links that
#: may carry a token in their query.
URL_NAMES = frozenset({"downloadurl"})

_SEPARATORS = re.compile(r"[_\-]")


def mask_url(url: str) -> str:
    """``url`` with its query (and fragment) replaced by :data:`MASK`: the address stays.

    A package's download link carries a token in its query; what is printed
    or logged keeps only where it points.
    """
    for mark in ("?", "#"):
        head, found, _ = url.partition(mark)
        if found:
            return f"{head}{mark}{MASK}"
    return url


def _is_url_name(name: object) -> bool:
    return isinstance(name, str) and _SEPARATORS.sub("", name).lower() in URL_NAMES


def _is_secret(name: object) -> bool:
    return isinstance(name, str) and _SEPARATORS.sub("", name).lower() in SECRET_NAMES


# A secret's name in free text: optionally quoted (also with escaped quotes, JSON
# inside a JSON string), then ":" or "=", then the value: quoted the same way, or
# bare up to a separator.
_NAME = r"[A-Za-z][A-Za-z0-9_\-]*"
_IN_TEXT = re.compile(
    rf"""(?P<head>(?P<q>\\?["']?)(?P<name>{_NAME})(?P=q)\s*[:=]\s*)"""
    r"""(?:(?P<vq>\\?["'])(?P<quoted>(?:(?!(?P=vq)).)*)(?P=vq)|(?P<bare>[^\s,;&}\])"'\\]+))""",
    re.DOTALL,
)


#: The user:password@ of a URL in free text (a proxy URL quoted by an error).
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@'\"]+@")


def _mask_free_text(text: str) -> str:
    text = _USERINFO.sub(rf"\1{MASK}@", text)
    parts: list[str] = []
    pos = 0
    while (match := _IN_TEXT.search(text, pos)) is not None:
        if not _is_secret(match.group("name")):
            # Not a secret: its value may quote one (msg='... "password":"x" ...'),
            # so go on scanning right after the name, not after the value.
            parts.append(text[pos : match.end("head")])
            pos = match.end("head")
            continue
        parts.append(text[pos : match.start()])
        quote = match.group("vq")
        head = match.group("head")
        parts.append(f"{head}{quote}{MASK}{quote}" if quote is not None else f"{head}{MASK}")
        pos = match.end()
    parts.append(text[pos:])
    return "".join(parts)


def _mask_structure(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask_field(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_structure(v) for v in value]
    if isinstance(value, str):
        return _mask_text(value)
    return value


def _mask_field(name: object, value: Any) -> Any:
    if _is_secret(name) and value not in (None, ""):
        return MASK
    if _is_url_name(name) and isinstance(value, str):
        return mask_url(value)
    return _mask_structure(value)


def _mask_text(text: str) -> str:
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            parsed = json.loads(stripped)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict | list):
            masked = _mask_structure(parsed)
            if masked == parsed:
                return text
            compact = '": ' not in stripped and '", ' not in stripped
            return json.dumps(
                masked,
                ensure_ascii=False,
                separators=(",", ":") if compact else None,
            )
    return _mask_free_text(text)


def mask(value: Any) -> Any:
    """Return ``value`` with every secret's value replaced by :data:`MASK`.

    Args:
        value: A string, or a JSON-like structure (dicts, lists, scalars).

    Returns:
        A masked copy (a string stays a string; a tuple becomes a list).
    """
    return _mask_structure(value)
