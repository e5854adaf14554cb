"""Package downloads: stream a ``downloadUrl`` to a file, outside the API's response cap.

A completed package download (a job of type PACKAGE_DOWNLOAD, a share task of
type PACKAGE) carries a ``downloadUrl``: a link to the zip, with a token of
its own in its query. Fetching it is not an API call: the body is a file of
any size (so it is streamed to disk, never held, and the response-size cap of
API answers does not apply), no ``Authorization`` is sent (the link may point
at another host, and our token must not travel there), redirects are followed,
and the read timeout bounds each read rather than the whole transfer.

Owns: the checks of a link and a target path, the write to a temporary file
renamed into place only when the body is whole (a failed download leaves no
half file under the target name), progress callbacks, and the typed errors.
The link's query is never put in a message or a log line.

Must never import the session or the sender; the one aiohttp stream lives in
``_http.py``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from yarl import URL

from ._call import Call, Response, new_trace_id
from ._decode import error_from_response
from ._exceptions import APIConnectionError, APITimeoutError, InvalidRequestError
from ._http import HTTP, StreamFailure

__all__ = ["ProgressCallback", "download_package", "redacted_link"]

#: ``on_progress(bytes_done, total_or_None)``, sync or async.
ProgressCallback = Callable[[int, int | None], Awaitable[None] | None]

_ROUTE: Final = "download"


def redacted_link(url: str) -> str:
    """The link without its query and fragment (they carry the download token).

    Args:
        url: The download link.

    Returns:
        ``scheme://host[:port]/path``.
    """
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _check_link(url: object, *, is_loopback: Callable[[str], bool]) -> URL:
    if not isinstance(url, str) or not url.strip():
        raise InvalidRequestError("url must be a non-empty string", field="url")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError(
            f"url must be an http(s) link with a host, got {redacted_link(url)!r}", field="url"
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise InvalidRequestError(
            "url uses plain http:// to a non-loopback host; a download link carries a token "
            "and must be https://",
            field="url",
        )
    return URL(url.strip(), encoded=True)


def _check_target(path: object) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise InvalidRequestError("path must be a str or os.PathLike", field="path")
    target = Path(path)
    if target.is_dir():
        raise InvalidRequestError(f"path {str(target)!r} is a directory", field="path")
    if not target.parent.is_dir():
        raise InvalidRequestError(
            f"the folder of path {str(target)!r} does not exist", field="path"
        )
    return target


async def _report(on_progress: ProgressCallback | None, done: int, total: int | None) -> None:
    if on_progress is not None:
        result = on_progress(done, total)
        if inspect.isawaitable(result):
            await result


async def download_package(
    http: HTTP,
    url: str,
    path: str | os.PathLike[str],
    *,
    read_timeout: float,
    is_loopback: Callable[[str], bool],
    on_progress: ProgressCallback | None = None,
) -> int:
    """Stream ``url`` to ``path``; return the number of bytes written.

    Args:
        http: The session's HTTP layer (its pool, proxy and TLS settings).
        url: The ``downloadUrl`` of a completed package job or share task.
        path: The file to write (replaced atomically once the body is whole).
        read_timeout: Seconds allowed for each read of the body.
        is_loopback: Whether a host is loopback (plain http is allowed only there).
        on_progress: Called with ``(bytes so far, Content-Length or None)``.

    Returns:
        The size of the file.

    Raises:
        InvalidRequestError: A bad link or path; nothing was fetched.
        APIError: The link was answered with an error status (expired, unknown).
        APIConnectionError: The transfer failed (APITimeoutError: a read timed out).
    """
    link = _check_link(url, is_loopback=is_loopback)
    target = _check_target(path)
    where = redacted_link(str(link))
    partial = target.with_name(f".{target.name}.part")
    done = 0
    try:
        with partial.open("wb") as sink:
            async for status, headers, chunk in http.stream(link, read_timeout=read_timeout):
                if status != 200:
                    call = Call("GET", where, _ROUTE)
                    raise error_from_response(
                        call, Response(status, headers, chunk, new_trace_id())
                    )
                length = headers.get("Content-Length")
                total = int(length) if length is not None and length.isdigit() else None
                sink.write(chunk)
                done += len(chunk)
                await _report(on_progress, done, total)
        os.replace(partial, target)
    except StreamFailure as exc:
        cls = APITimeoutError if exc.failure.timeout else APIConnectionError
        raise cls(
            f"the download from {where} failed after {done} bytes: {exc.failure.name}",
            method="GET",
            path=where,
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    return done
