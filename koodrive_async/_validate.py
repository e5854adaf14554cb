"""THE argument validators: every check of a caller's argument goes through here.

Each function takes the value and the public name of the argument (``field``),
returns the value (narrowed, or converted where noted) and raises
:class:`~koodrive_async.InvalidRequestError` naming that field, before
anything is sent. Two traps every check here avoids: ``bool`` is an ``int``
(``True`` is never a count, a number of seconds or an enum value), and NaN or
infinity slip through every comparison. A ``str`` is iterable but is never a
sequence of ids here (it would be read one character at a time).

Used by the models, the policies, the builders and the session's constructor.
Imports only the exceptions: no model, no I/O, no aiohttp.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeGuard, TypeVar

from ._exceptions import InvalidRequestError

__all__ = [
    "callable_or_none",
    "enum_member",
    "instance_of",
    "int_in_range",
    "is_collection",
    "is_number",
    "non_negative_number",
    "number_in_range",
    "optional_text",
    "positive_number",
    "sequence_of",
    "str_sequence",
    "text",
]

_E = TypeVar("_E", bound=enum.IntEnum)
_T = TypeVar("_T")


def _refuse(field: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{field} {message}", field=field)


def text(value: object, field: str, *, secret: bool = False, blank: bool = False) -> str:
    """A non-empty string, not blank either unless ``blank``.

    Args:
        value: The argument.
        field: Its public name.
        secret: Leave the value out of the message (a token, a password).
        blank: Accept a string of spaces (a password may be one).

    Returns:
        The value.
    """
    if not isinstance(value, str) or not (value if blank else value.strip()):
        shown = "" if secret else f", got {value!r}"
        raise _refuse(field, f"must be a non-empty string{shown}")
    return value


def optional_text(value: object, field: str, *, secret: bool = False) -> str | None:
    """None, or what :func:`text` accepts.

    Args:
        value: The argument.
        field: Its public name.
        secret: Leave the value out of the message.

    Returns:
        The value.
    """
    return None if value is None else text(value, field, secret=secret)


def is_number(value: object) -> bool:
    """True for a finite int or float that is not a bool.

    Args:
        value: Anything.

    Returns:
        Whether it is a usable number.
    """
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def positive_number(value: object, field: str, *, optional: bool = False) -> float | None:
    """A finite number > 0 (or None when ``optional``).

    Args:
        value: The argument.
        field: Its public name.
        optional: Accept None too.

    Returns:
        The value (None only when ``optional``).
    """
    if value is None and optional:
        return None
    if not is_number(value) or value <= 0:  # type: ignore[operator]
        extra = " or None" if optional else ""
        raise _refuse(field, f"must be a positive finite number{extra}, got {value!r}")
    return value  # type: ignore[return-value]


def non_negative_number(value: object, field: str) -> float:
    """A finite number >= 0.

    Args:
        value: The argument.
        field: Its public name.

    Returns:
        The value.
    """
    if not is_number(value) or value < 0:  # type: ignore[operator]
        raise _refuse(field, f"must be a non-negative finite number, got {value!r}")
    return value  # type: ignore[return-value]


def number_in_range(
    value: object, field: str, *, low: float, high: float | None = None, high_open: bool = False
) -> float:
    """A finite number from ``low`` to ``high`` (``high`` excluded when ``high_open``).

    Args:
        value: The argument.
        field: Its public name.
        low: The smallest value accepted.
        high: The largest (None: no upper bound).
        high_open: ``high`` itself is refused.

    Returns:
        The value.
    """
    number: Any = value
    ok = is_number(value) and number >= low
    if ok and high is not None:
        ok = number < high if high_open else number <= high
    if not ok:
        if high is None:
            span = f">= {low:g}"
        else:
            span = f"in [{low:g}, {high:g}{')' if high_open else ']'}"
        raise _refuse(field, f"must be a finite number {span}, got {value!r}")
    return number  # type: ignore[no-any-return]


def int_in_range(value: object, field: str, *, low: int = 1, high: int | None = None) -> int:
    """An int (not a bool) from ``low`` to ``high`` inclusive.

    Args:
        value: The argument.
        field: Its public name.
        low: The smallest value accepted.
        high: The largest (None: no upper bound).

    Returns:
        The value.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        span = f">= {low}" if high is None else f"from {low} to {high}"
        raise _refuse(field, f"must be an int {span}, got {value!r}")
    return value


def enum_member(enum_cls: type[_E], value: object, field: str) -> _E:
    """A member of an IntEnum, given as the member or its int value.

    Args:
        enum_cls: The enum.
        value: The argument.
        field: Its public name.

    Returns:
        The member.
    """
    member = None
    if not isinstance(value, bool) and isinstance(value, int):
        member = enum_cls._value2member_map_.get(value)
    if member is None:
        allowed = ", ".join(f"{m.value} ({m.name})" for m in enum_cls)
        raise _refuse(field, f"must be one of {allowed}; got {value!r}")
    return member  # type: ignore[return-value]


def is_collection(value: object) -> TypeGuard[Iterable[Any]]:
    """True for an iterable of items: not a str, bytes or a mapping.

    Iterating a str or bytes gives characters (or ints), and a dict its keys:
    none of them is a list of items.

    Args:
        value: Anything.

    Returns:
        Whether it can be read as a collection of items.
    """
    return isinstance(value, Iterable) and not isinstance(
        value, str | bytes | bytearray | memoryview | Mapping
    )


def str_sequence(value: object, field: str, *, non_empty: bool = False) -> tuple[str, ...]:
    """A collection of non-empty strings (a bare str is refused, not iterated).

    Args:
        value: The argument.
        field: Its public name.
        non_empty: Refuse an empty collection.

    Returns:
        The items as a tuple.
    """
    if not is_collection(value):
        what = "a non-empty sequence" if non_empty else "a sequence"
        raise _refuse(field, f"must be {what} of strings, got {type(value).__name__}")
    items = tuple(value)
    if non_empty and not items:
        raise _refuse(field, "must be a non-empty sequence of strings")
    for i, item in enumerate(items):
        text(item, f"{field}[{i}]")
    return items


def sequence_of(
    item_type: type[_T], value: object, field: str, *, hint: str = ""
) -> tuple[_T, ...]:
    """A collection whose every item is an ``item_type``.

    Args:
        item_type: The class each item must be.
        value: The argument.
        field: Its public name.
        hint: Appended to the message when ``value`` is not a collection.

    Returns:
        The items as a tuple.
    """
    name = item_type.__name__
    if not is_collection(value):
        raise _refuse(field, f"must be a sequence of {name}, got {type(value).__name__}{hint}")
    items = tuple(value)
    for i, item in enumerate(items):
        if not isinstance(item, item_type):
            raise InvalidRequestError(
                f"{field}[{i}] must be a {name}, got {type(item).__name__}", field=field
            )
    return items


def instance_of(cls: type[_T], value: object, field: str, *, optional: bool = False) -> _T | None:
    """An instance of ``cls`` (a policy, a model), or None when ``optional``.

    Args:
        cls: The class.
        value: The argument.
        field: Its public name.
        optional: Accept None too.

    Returns:
        The value.
    """
    if value is None and optional:
        return None
    if not isinstance(value, cls):
        raise _refuse(field, f"must be a {cls.__name__}, got {type(value).__name__}")
    return value


def callable_or_none(value: object, field: str) -> Callable[..., Any] | None:
    """None or a callable.

    Args:
        value: The argument.
        field: Its public name.

    Returns:
        The value.
    """
    if value is not None and not callable(value):
        raise _refuse(field, "must be callable or None")
    return value
