"""The one cattrs Converter between the attrs models and the pages' JSON.

Model fields are snake_case; on the wire they are camelCase (``src_user_id``
↔ ``srcUserId``), with two renames where the pages chose another name
(``ShareTaskRequest.target`` is ``targetFileId``; ``JobRequest.files`` is
``fileInfo``). :func:`json_name` is the single source of those names: the
converter's hooks, the fast :class:`~koodrive_async.Task` parser and the
protocol's body reader all ask it.

Unstructuring leaves out every field that equals its default (None for the
optional ones), and turns tuples into lists, so a request model unstructures
to exactly what the pages' example bodies contain.

Structuring a :class:`Task` is tolerant, because it reads what the server
sends: unknown keys are ignored, an enum value no member knows is kept as the
plain int, ids sent as numbers become strings, and a time that does not parse
becomes None. A value of a shape that cannot be a task field at all (a list
where a string belongs, say) raises :class:`ResponseFieldError`, which the
protocol turns into :class:`~koodrive_async.ResponseValidationError`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from ._models import FileInfo, JobRequest, ShareTaskRequest, Task, TaskStatus, TaskType

__all__ = ["ResponseFieldError", "converter", "json_name", "parse_time", "structure_task"]

#: Where a page's JSON name is not the camelCase of the model's field name.
_RENAMES: dict[tuple[type, str], str] = {
    (ShareTaskRequest, "target"): "targetFileId",
    (JobRequest, "files"): "fileInfo",
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def json_name(cls: type, field: str) -> str:
    """The JSON key of a model field.

    Args:
        cls: An attrs model class.
        field: The snake_case field name.

    Returns:
        The camelCase key the endpoint pages use for it.
    """
    return _RENAMES.get((cls, field)) or _camel(field)


class ResponseFieldError(ValueError):
    """A response field has a value that cannot be a value of that field.

    Args:
        message: What is wrong, naming the JSON key.
        key: The JSON key at fault.
    """

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


# --------------------------------------------------------------------------- times


def parse_time(value: object) -> datetime | None:
    """Parse a time the server sent; None when it is absent or unparseable.

    Accepts ISO 8601 with ``Z`` or an offset (``2024-08-12T07:22:33.000Z``);
    a time without a zone is taken as UTC, and a bare number as epoch
    milliseconds (what the service uses for cursors), so every result is
    timezone-aware.

    Args:
        value: The JSON value.

    Returns:
        An aware datetime, or None.
    """
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


# --------------------------------------------------------------------------- task fast path


def _text(key: str, value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # Ids and codes are strings in the tables but numbers in some examples.
        return str(value)
    if key != _TASK_ID_KEY and isinstance(value, dict | list | float | bool):
        # A descriptive field (initParams is an "Extended field") sent as JSON
        # rather than a string must not sink the task, or a whole list page:
        # keep its JSON text.
        try:
            return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)
        except ValueError:  # NaN/Infinity inside (Python's json reads them)
            return None
    raise ResponseFieldError(f"{key} must be a string, got {type(value).__name__}", key=key)


def _enum(enum_cls: type[enum.IntEnum]) -> Callable[[str, object], object]:
    members = enum_cls._value2member_map_

    def convert(key: str, value: object) -> object:
        if value is None:
            return None
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            try:
                value = int(value)
            except ValueError:  # "--1", or a digit int() refuses ("²")
                raise ResponseFieldError(
                    f"{key} must be an integer, got {value!r}", key=key
                ) from None
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            # A value the service adds later stays a plain int instead of failing.
            return members.get(value, value)
        raise ResponseFieldError(f"{key} must be an integer, got {type(value).__name__}", key=key)

    return convert


_ENUMS_BY_TYPE: dict[str, type[enum.IntEnum]] = {
    "TaskType | int | None": TaskType,
    "TaskStatus | int | None": TaskStatus,
}
_TEXT_TYPES = frozenset({"str", "str | None"})
_TIME_TYPES = frozenset({"datetime | None"})
_TASK_ID_KEY = json_name(Task, "task_id")


def _task_id_missing() -> ResponseFieldError:
    return ResponseFieldError(f"the task has no {_TASK_ID_KEY}", key=_TASK_ID_KEY)


def _make_structure_task() -> Callable[[Mapping[str, Any]], Task]:
    """Generate the Task parser from Task's fields and :func:`json_name`.

    Like cattrs' own generated hooks, but with the tolerance rules inlined:
    one ``dict.get`` per field and a type check that is cheap for the usual
    value (a str for text, an int for enums), since it runs for every poll.
    """
    namespace: dict[str, Any] = {
        "_Task": Task,
        "_text": _text,
        "_parse_time": parse_time,
        "_task_id_missing": _task_id_missing,
    }
    lines = ["def structure_task(data):", "    get = data.get"]
    names = []
    task_fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(Task)
    for i, field in enumerate(task_fields):
        key = json_name(Task, field.name)
        var = f"v{i}"
        names.append(var)
        kind = str(field.type)
        lines.append(f"    {var} = get({key!r})")
        if field.name == "task_id":
            lines.append(f"    if {var} is None:")
            lines.append("        raise _task_id_missing()")
            lines.append(f"    if {var}.__class__ is not str:")
            lines.append(f"        {var} = _text({key!r}, {var})")
            # A blank id names no task: it could never be polled or matched.
            lines.append(f"    if not {var} or {var}.isspace():")
            lines.append("        raise _task_id_missing()")
        elif kind in _TEXT_TYPES:
            lines.append(f"    if {var} is not None and {var}.__class__ is not str:")
            lines.append(f"        {var} = _text({key!r}, {var})")
        elif kind in _ENUMS_BY_TYPE:
            namespace[f"_members{i}"] = _ENUMS_BY_TYPE[kind]._value2member_map_
            namespace[f"_convert{i}"] = _enum(_ENUMS_BY_TYPE[kind])
            lines.append(f"    if {var} is not None:")
            lines.append(
                f"        {var} = _members{i}.get({var}, {var}) if {var}.__class__ is int "
                f"else _convert{i}({key!r}, {var})"
            )
        elif kind in _TIME_TYPES:
            lines.append(f"    if {var} is not None:")
            lines.append(f"        {var} = _parse_time({var})")
        else:  # pragma: no cover - a new Task field needs a rule here
            raise TypeError(f"no parsing rule for Task.{field.name}: {kind}")
    lines.append(f"    return _Task({', '.join(names)})")
    exec(compile("\n".join(lines), "<koodrive_async structure_task>", "exec"), namespace)
    function: Callable[[Mapping[str, Any]], Task] = namespace["structure_task"]
    function.__doc__ = "Build a Task from one task object of a response (generated)."
    return function


#: Build a :class:`Task` from one task object of a response (generated; see above).
#:
#: Unknown keys are ignored, unknown enum values kept as ints, ids sent as
#: numbers made strings, unparseable times None. Raises ResponseFieldError
#: when ``taskId`` is missing, empty or blank, or a field has an impossible shape.
structure_task: Callable[[Mapping[str, Any]], Task] = _make_structure_task()


# --------------------------------------------------------------------------- the converter


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(unstruct_collection_overrides={Sequence: list, tuple: list})

    def unstructure_factory(cls: type) -> Callable[[Any], dict[str, Any]]:
        overrides = {a.name: override(rename=json_name(cls, a.name)) for a in attrs.fields(cls)}
        # Leaving out defaults drops every None optional (and an empty file list).
        return make_dict_unstructure_fn(
            cls,
            conv,
            _cattrs_omit_if_default=True,
            **overrides,  # type: ignore[arg-type]
        )

    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    conv.register_structure_hook(Task, lambda data, _cls: structure_task(data))
    return conv


#: The converter: ``converter.unstructure(model)`` gives the camelCase dict,
#: ``converter.structure(data, Task)`` parses a task.
converter: cattrs.Converter = _make_converter()

# FileInfo is unstructured on the create path of every job; warm its hook now.
converter.unstructure(FileInfo("warm-up"))
