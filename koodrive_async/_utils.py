"""Small helpers for users of the library (pure; imports only the validators)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

from . import _validate as check
from ._exceptions import InvalidRequestError

__all__ = ["chunked"]

T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Split any iterable into lists of at most ``size`` items, lazily.

    Useful to split a long list of file ids into share tasks of at most 1000
    ids each. Works on generators and other one-pass iterables without
    reading more than one chunk ahead; the last chunk may be shorter, and an
    empty input yields nothing.

    Example::

        requests = [
            ShareTaskRequest(ShareTaskType.PACKAGE, container_id=c, file_ids=ids,
                             share_id=s, zip_name=f"part{i}.zip")
            for i, ids in enumerate(chunked(all_ids, 1000))
        ]

    Args:
        items: Any iterable.
        size: The largest chunk, >= 1.

    Returns:
        An iterator of lists.

    Raises:
        InvalidRequestError: ``size`` is not an int >= 1, or ``items`` is not
            an iterable or is a str or bytes (raised at the call, not at the
            first ``next()``).
    """
    check.int_in_range(size, "size", low=1)
    if isinstance(items, str | bytes | bytearray) or not isinstance(items, Iterable):
        # Chunking a str would split one id into characters.
        raise InvalidRequestError(
            f"items must be an iterable of items (a list, not a str), got {type(items).__name__}",
            field="items",
        )
    return _chunks(iter(items), size)


def _chunks(iterator: Iterator[T], size: int) -> Iterator[list[T]]:
    while chunk := list(islice(iterator, size)):
        yield chunk
