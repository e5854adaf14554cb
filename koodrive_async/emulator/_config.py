"""Emulator configuration: accepted tokens, task behaviour, and the response shape used."""

from __future__ import annotations

import random
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

import attrs

from ._quota import Quota, make_quota

__all__ = ["EmulatorConfig", "ResponseVariant", "TaskDuration"]

#: A fixed duration in seconds, or a function drawing one from the emulator's seeded RNG.
TaskDuration = float | Callable[[random.Random], float]

_SCHEMES = ("bearer ", "bearer+", "at ")


def _strip_scheme(token: str) -> str:
    # A configured token may be written the way the session API hands it out
    # ("Bearer 6ebb..."); the emulator compares bare tokens.
    lowered = token.lower()
    for scheme in _SCHEMES:
        if lowered.startswith(scheme):
            return token[len(scheme) :].strip()
    return token.strip()


def _to_tokens(value: Iterable[str] | str) -> frozenset[str]:
    if isinstance(value, str):
        value = (value,)
    tokens = frozenset(_strip_scheme(str(t)) for t in value)
    if "" in tokens:
        raise ValueError("tokens must not contain an empty token")
    return tokens


def _to_secret_map(value: Mapping[str, str]) -> Mapping[str, str]:
    # Read-only, so a running emulator's accepted credentials cannot drift.
    out = {str(k): str(v) for k, v in dict(value).items()}
    if any(not k.strip() or not v.strip() for k, v in out.items()):
        raise ValueError("credential maps must not hold empty keys or values")
    return types.MappingProxyType(out)


def _hidden(value: Mapping[str, str] | frozenset[str]) -> str:
    # Credentials are never shown, not even in a repr; their count is.
    return f"<{len(value)} hidden>"


def _check_lifetime(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not 0 < value < float("inf"):
        raise ValueError(f"{attr.name} must be a finite number > 0, got {value!r}")


def _check_duration(_inst: object, _attr: object, value: object) -> None:
    if callable(value):
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"task_duration must be a number >= 0 or a callable, got {value!r}")


def _check_rate(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attr.name} must be within 0..1, got {value!r}")


def _check_positive(_inst: object, attr: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attr.name} must be >= 1, got {value!r}")


def _check_non_negative_int(_inst: object, attr: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attr.name} must be >= 0, got {value!r}")


def _check_speed(_inst: object, _attr: object, value: float) -> None:
    if value < 0:
        raise ValueError(f"clock_speed must be >= 0, got {value!r}")


def _check_age(_inst: object, _attr: object, value: float) -> None:
    if not value > 0:
        raise ValueError(f"x_date_max_age must be > 0, got {value!r}")


@attrs.frozen
class ResponseVariant:
    """Which of the shapes the endpoint pages document the emulator answers with.

    The pages contradict themselves (API-NOTES.md); a client must cope with each
    variant, so the emulator can produce each one.

    Args:
        list_key: Name of the task array in ``task/list`` bodies: ``"taskList"``
            (the page's table) or ``"taskListDtos"`` (the page's example).
        code_as: ``"int"`` sends ``"code": 0`` (the examples), ``"str"`` sends
            ``"code": "0"`` (the tables); error codes follow the same choice.
        cursor_as: ``"number"`` sends ``nextCursor`` as a JSON number (the
            example), ``"str"`` as a string (the table).
        token_form: How issued access tokens are written: ``"documented"``
            as each page's example (session ``"Bearer 6ebb..."``, session
            refresh ``"Bearer+013b..."``, carrier ``"AT 3b91..."``), or one
            form for every route: ``"bare"``, ``"bearer_space"``,
            ``"bearer_plus"``, ``"at_space"``.
        session_shape: Where the session routes put their fields:
            ``"documented"`` (``session`` in ``data``, ``session/refresh``
            flat, as the pages show), ``"flat"`` (both flat, as an older
            page shows ``session``) or ``"data"`` (both in ``data``).
        carrier_shape: Where ``auth/refreshToken`` puts ``accessToken``,
            ``expiresIn``, ``issuedAt``, ``refreshToken``: in
            ``data.sessionInfo`` (the example) or flat in ``data`` (the table).
        detail_names: Field names of the job and share-task detail answers:
            ``"per_page"`` follows each page (job detail ``status`` /
            ``beginTime``, share taskDetail ``taskStatus`` / ``startTime``);
            ``"job"`` or ``"share"`` uses that page's names in both.
        file_status_as: A ``taskInfos`` entry's ``status`` as ``"str"`` (``"1"``,
            the example) or ``"int"``.
        task_infos_as: ``taskInfos`` as an ``"array"``, or as a single
            ``"object"`` (the share page's type) when there is exactly one file.
    """

    list_key: Literal["taskList", "taskListDtos"] = attrs.field(
        default="taskListDtos", validator=attrs.validators.in_(("taskList", "taskListDtos"))
    )
    code_as: Literal["int", "str"] = attrs.field(
        default="int", validator=attrs.validators.in_(("int", "str"))
    )
    cursor_as: Literal["number", "str"] = attrs.field(
        default="number", validator=attrs.validators.in_(("number", "str"))
    )
    token_form: Literal["documented", "bare", "bearer_space", "bearer_plus", "at_space"] = (
        attrs.field(
            default="documented",
            validator=attrs.validators.in_(
                ("documented", "bare", "bearer_space", "bearer_plus", "at_space")
            ),
        )
    )
    session_shape: Literal["documented", "flat", "data"] = attrs.field(
        default="documented", validator=attrs.validators.in_(("documented", "flat", "data"))
    )
    carrier_shape: Literal["session_info", "flat"] = attrs.field(
        default="session_info", validator=attrs.validators.in_(("session_info", "flat"))
    )
    detail_names: Literal["per_page", "job", "share"] = attrs.field(
        default="per_page", validator=attrs.validators.in_(("per_page", "job", "share"))
    )
    file_status_as: Literal["str", "int"] = attrs.field(
        default="str", validator=attrs.validators.in_(("str", "int"))
    )
    task_infos_as: Literal["array", "object"] = attrs.field(
        default="array", validator=attrs.validators.in_(("array", "object"))
    )


@attrs.frozen
class EmulatorConfig:
    """How an emulator instance behaves.

    Args:
        tokens: Accepted bearer tokens (bare, or with a ``Bearer ``/``AT ``
            prefix, which is stripped). Empty accepts any non-empty token.
        task_duration: Seconds of virtual time a task spends in NEW+EXECUTING;
            a number, or a callable drawing one from the seeded ``random.Random``.
        failure_rate: Probability (0..1) that a task ends FAILED, decided at
            creation with the seeded RNG.
        seed: Seed of the emulator's RNGs (task outcomes, durations, fault rates).
        page_size_cap: The most tasks one ``task/list`` page holds, whatever
            ``pageSize`` asks for (a smaller cap produces short pages, as the
            service may). ``pageSize`` outside 1..100 is still a 400.
        response_variant: Which documented response shape to answer with.
        clock_skew: Seconds added to the server's wall clock, for the ``X-Date``
            check and the ``Date`` response header.
        x_date_max_age: How old (seconds, on the server's wall clock) an
            ``X-Date`` may be before a request is refused (the pages: 15
            minutes). Tests of a fence built on it set it short.
        clock_speed: How many times faster than real time the virtual task
            clock runs.
        empty_page_every: When > 0, every Nth ``task/list`` page before the end
            comes back empty, with a cursor.
        partial_pages: When True, ``task/list`` pages before the end hold about
            half of what was asked for.
        ledger_limit: Keep only the newest N ledger entries (None keeps all;
            a long-running emulator should set it).
        echo_init_params: When True (the default), a task's ``initParams``
            holds the JSON of its create request body (secrets redacted);
            when False the field is left out, as a service that keeps
            something else there would look to a client that matches bodies.
        session_codes: Authorization codes ``POST session`` accepts, each
            with the user id it opens a session for. Empty accepts any
            non-empty code (the user id is then derived from the code).
            Codes can be used again.
        session_idle_timeout: Virtual seconds a session access token stays
            valid without use (20 minutes on the pages; sliding: every
            accepted request with it starts the window again).
        refresh_tokens: Carrier refresh tokens ``POST auth/refreshToken``
            accepts from the start, each with its user id (tokens it issues
            itself are accepted too).
        carrier_expires_in: The ``expiresIn`` (seconds) of carrier access
            tokens; they expire that long after issue on the virtual clock.
        rotate_refresh_tokens: When True, a carrier refresh answers a new
            refresh token and refuses the old one from then on; when False it
            answers the same one (as the page's example does).
        revoke_replaced_tokens: When True, a refresh makes the access token
            it replaces invalid at once; when False that token lives until it
            expires.
        apps: AppId to AppSecret of the apps whose ``HMAC-SHA256`` signed
            requests are accepted on the task and job routes.
        file_failure_rate: Probability (0..1) that each file of a batch job or
            share task fails on its own (seeded), so partial failures happen.
            A task that ``failure_rate`` fails loses every file.
        task_routes_show_jobs: When True (the default), ``task/{id}`` and
            ``task/list`` also show batch jobs and share tasks; when False only
            the tasks of ``task/create``, as the reference pages suggest.
        job_time_utc_offset: Hours east of UTC in which the 14-digit job and
            share-task times are written (the pages name no zone).
        quota: A per-user :class:`Quota` (a token bucket per ``X-User-Id``:
            above it, 429 with ``Retry-After``), a dict of its fields, or
            None (the default) for no throttling. It can be changed while
            running (``KooDriveEmulator.set_quota``, ``POST /_emulator/quota``).

    Raises:
        ValueError: A value is out of range.
    """

    tokens: frozenset[str] = attrs.field(factory=frozenset, converter=_to_tokens, repr=_hidden)
    task_duration: TaskDuration = attrs.field(default=1.0, validator=_check_duration)
    failure_rate: float = attrs.field(default=0.0, converter=float, validator=_check_rate)
    seed: int = attrs.field(default=0, converter=int)
    page_size_cap: int = attrs.field(default=100, converter=int, validator=_check_positive)
    response_variant: ResponseVariant = attrs.field(factory=ResponseVariant)
    clock_skew: float = attrs.field(default=0.0, converter=float)
    x_date_max_age: float = attrs.field(default=15 * 60.0, converter=float, validator=_check_age)
    clock_speed: float = attrs.field(default=1.0, converter=float, validator=_check_speed)
    empty_page_every: int = attrs.field(default=0, converter=int, validator=_check_non_negative_int)
    partial_pages: bool = attrs.field(default=False, converter=bool)
    ledger_limit: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_check_positive)
    )
    echo_init_params: bool = attrs.field(default=True, converter=bool)
    session_codes: Mapping[str, str] = attrs.field(
        factory=dict, converter=_to_secret_map, repr=_hidden
    )
    session_idle_timeout: float = attrs.field(
        default=1200.0, converter=float, validator=_check_lifetime
    )
    refresh_tokens: Mapping[str, str] = attrs.field(
        factory=dict, converter=_to_secret_map, repr=_hidden
    )
    carrier_expires_in: float = attrs.field(
        default=1800.0, converter=float, validator=_check_lifetime
    )
    rotate_refresh_tokens: bool = attrs.field(default=True, converter=bool)
    revoke_replaced_tokens: bool = attrs.field(default=True, converter=bool)
    apps: Mapping[str, str] = attrs.field(factory=dict, converter=_to_secret_map, repr=_hidden)
    file_failure_rate: float = attrs.field(default=0.0, converter=float, validator=_check_rate)
    task_routes_show_jobs: bool = attrs.field(default=True, converter=bool)
    job_time_utc_offset: float = attrs.field(default=0.0, converter=float)
    quota: Quota | None = attrs.field(default=None, converter=make_quota)
