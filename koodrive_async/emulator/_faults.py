"""Faults injected on demand: latency, gateway errors, dropped connections, broken bodies."""

from __future__ import annotations

import enum
import math
import random
from typing import Any

import attrs

__all__ = ["API_ROUTES", "Fault", "FaultBook", "FaultKind"]

#: Route names of the API endpoints (``route=`` of faults and ledger entries): the
#: five pages', then job detail / list / cancel and share-task detail
#: (API-EXTRA.md), then the session routes (API-EXTRA.md section D).
API_ROUTES = frozenset(
    {"create_task", "create_share_task", "create_job", "get_task", "list_tasks"}
    | {"get_job", "list_jobs", "cancel_job", "get_share_task"}
    | {"create_session", "refresh_session", "refresh_carrier_token"}
)


class FaultKind(str, enum.Enum):
    """What an injected fault does to a matching request.

    Members:
        LATENCY: wait ``latency`` real seconds, then handle normally (stacks with others).
        RATE_LIMIT: 429 with ``Retry-After`` (if given) and a ``{code: "APIGW.0308", msg}`` body.
        SERVER_ERROR: 500 ``{code: 13000201, msg}``; nothing is created.
        UNAVAILABLE: 503 (``Retry-After`` if given); nothing is created.
        BAD_GATEWAY_HTML: 502 with a ``text/html`` gateway page; nothing is created.
        DROP: the connection is closed without a response; nothing is created.
        MALFORMED_JSON: the request is handled (a create does create), then the
            JSON body is cut short (status unchanged, so 200 for a valid request).
        CREATED_BUT_500: a create is handled (the task exists), then 500 is
            answered; on a GET it is a SERVER_ERROR.
        CREATED_BUT_504: a create that is carried out (the task exists) is
            answered 504, as a gateway that gave up waiting; a create the
            service refuses keeps its refusal (the fault is used up all the
            same); on a GET it is a SERVER_ERROR.
        CREATED_THEN_HELD: the request is handled first (a create creates: the
            task is in the state and the ledger at once), then its answer is
            held ``latency`` real seconds and sent as normal (its ``Date`` is
            the moment it is sent, after the hold). Unlike LATENCY,
            which holds a request *before* handling it, a client killed or
            timed out during this hold leaves a task whose id it never
            learnt (the window a journal must survive). On a GET the answer
            is held the same way.
    """

    LATENCY = "latency"
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    UNAVAILABLE = "unavailable"
    BAD_GATEWAY_HTML = "bad_gateway_html"
    DROP = "drop"
    MALFORMED_JSON = "malformed_json"
    CREATED_BUT_500 = "created_but_500"
    CREATED_BUT_504 = "created_but_504"
    CREATED_THEN_HELD = "created_then_held"


@attrs.define(eq=False)
class Fault:
    """One injected fault and its counters.

    Args:
        kind: What it does.
        route: Route name it applies to, or None for every API route.
        method: HTTP method it applies to (upper case), or None for any.
        count: Apply to the next ``count`` matching requests, then stop.
        rate: Apply to each matching request with this probability (seeded RNG).
        latency: Real seconds of delay (LATENCY) or of the hold (CREATED_THEN_HELD).
        retry_after: ``Retry-After`` seconds (RATE_LIMIT, UNAVAILABLE).
        remaining: Applications left when ``count`` was given, else None.
        hits: How many requests it was applied to.
    """

    kind: FaultKind
    route: str | None = None
    method: str | None = None
    count: int | None = None
    rate: float | None = None
    latency: float = 0.0
    retry_after: float | None = None
    remaining: int | None = None
    hits: int = 0

    @property
    def active(self) -> bool:
        """Whether it can still apply to a request."""
        return self.remaining is None or self.remaining > 0

    def to_json(self) -> dict[str, Any]:
        """Return the fault as the admin route shows it.

        Returns:
            A JSON-ready dict.
        """
        return {
            "kind": self.kind.value,
            "route": self.route,
            "method": self.method,
            "count": self.count,
            "rate": self.rate,
            "latency": self.latency,
            "retry_after": self.retry_after,
            "remaining": self.remaining,
            "hits": self.hits,
            "active": self.active,
        }


def _number(value: object, name: str, *, minimum: float = 0.0) -> float:
    # "not minimum <= value < inf" also refuses NaN, which compares false with everything.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not minimum <= value < math.inf
    ):
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value!r}")
    return float(value)


def make_fault(
    kind: FaultKind | str,
    *,
    route: str | None = None,
    method: str | None = None,
    count: int | None = None,
    rate: float | None = None,
    latency: float = 0.0,
    retry_after: float | None = None,
) -> Fault:
    """Build a validated :class:`Fault` (see ``KooDriveEmulator.inject``).

    Args:
        kind: A FaultKind or its value.
        route: Route name, or None for every API route.
        method: HTTP method, or None for any.
        count: Next N matching requests.
        rate: Probability per matching request.
        latency: Real seconds of delay for LATENCY, of the hold for CREATED_THEN_HELD.
        retry_after: Retry-After seconds for RATE_LIMIT / UNAVAILABLE.

    Returns:
        The fault (not yet registered).

    Raises:
        ValueError: An argument is invalid (unknown kind or route, both count and rate, ...).
    """
    kind = FaultKind(kind)
    if route is not None and route not in API_ROUTES:
        raise ValueError(f"unknown route {route!r}; expected one of {sorted(API_ROUTES)} or None")
    if method is not None:
        if not isinstance(method, str) or not method:
            raise ValueError(f"method must be an HTTP method name, got {method!r}")
        method = method.upper()
    if count is not None and rate is not None:
        raise ValueError("give either count or rate, not both")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"count must be an int >= 1, got {count!r}")
    if rate is not None:
        rate = _number(rate, "rate")
        if rate > 1:
            raise ValueError(f"rate must be within 0..1, got {rate!r}")
    latency = _number(latency, "latency")
    if retry_after is not None:
        retry_after = _number(retry_after, "retry_after")
    return Fault(
        kind=kind,
        route=route,
        method=method,
        count=count,
        rate=rate,
        latency=latency,
        retry_after=retry_after,
        remaining=count,
    )


class FaultBook:
    """The active faults, in injection order, and the seeded RNG for rates.

    Args:
        seed: Seed of the RNG that decides rate-based faults.
    """

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self.faults: list[Fault] = []
        self._rng = random.Random(seed)

    def add(self, fault: Fault) -> Fault:
        """Register a fault.

        Args:
            fault: The fault.

        Returns:
            The same fault.
        """
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault and re-seed the RNG."""
        self.faults = []
        self._rng = random.Random(self._seed)

    def _fires(self, fault: Fault) -> bool:
        if fault.rate is not None and self._rng.random() >= fault.rate:
            return False
        fault.hits += 1
        if fault.remaining is not None:
            fault.remaining -= 1
        return True

    def select(self, route: str, method: str) -> tuple[float, Fault | None]:
        """Decide what happens to one request.

        Args:
            route: Its route name.
            method: Its HTTP method.

        Returns:
            (seconds of latency to add, the first other fault that fires or None).
        """
        if not self.faults:
            return 0.0, None
        delay = 0.0
        chosen: Fault | None = None
        for fault in self.faults:
            if not fault.active:
                continue
            if fault.route is not None and fault.route != route:
                continue
            if fault.method is not None and fault.method != method:
                continue
            if fault.kind is FaultKind.LATENCY:
                if self._fires(fault):
                    delay += fault.latency
            elif chosen is None and self._fires(fault):
                chosen = fault
        return delay, chosen
