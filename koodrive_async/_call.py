"""The two values the wire layer and the sender share: a built Call and its final Response.

A :class:`Call` is everything about one logical request that is known before
any I/O (method, encoded path and query, the endpoint's own headers, the body
bytes); a :class:`Response` is what the sender hands back for decoding. The
X-Traceid of a call is made here too, since it names the call across all of
its attempts. Nothing here does I/O or imports aiohttp.
"""

from __future__ import annotations

import contextvars
import os
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Final

from ._exceptions import InvalidRequestError

__all__ = [
    "TRACE_ID_LENGTH",
    "Call",
    "Response",
    "check_trace_id",
    "create_guard",
    "DEFERRED_ROUTES",
    "defer_throttled_creates",
    "last_trace",
    "new_trace_id",
    "read_call",
    "response_of",
]

#: Length of an X-Traceid (the pages: "58 bits", the Chinese page: 58 characters).
TRACE_ID_LENGTH: Final = 58


#: The guard of the create being sent in this asyncio task, if its caller gave
#: one (``stream_jobs(before_create=...)``): awaited right before each attempt
#: of a call that is not idempotent, after its X-Date is stamped, so that a
#: guard that checks a lease fences the attempt by its X-Date. Set by the
#: fan-out inside the one task that submits that request (a task's context is
#: its own), so it never reaches another call.
create_guard: contextvars.ContextVar[Callable[[], Awaitable[None]] | None] = contextvars.ContextVar(
    "koodrive_async_create_guard", default=None
)


#: True where the caller retries a throttled create itself (a bulk run: its line
#: goes back to pending and is sent again after the hold every worker shares):
#: a create answered 429 then ends at once with ``RateLimitError`` (nothing
#: was created) instead of waiting its ``Retry-After`` inside the sender,
#: where the hold is invisible to other workers and the line sits marked
#: "submitting". Set in the caller's task; the fan-out's tasks inherit it.
defer_throttled_creates: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "koodrive_async_defer_throttled_creates", default=False
)

#: The routes :data:`defer_throttled_creates` covers: the creates a bulk run
#: sends again itself. Never a credential call (a token refresh or a session
#: made inside the run's tasks waits out its own 429 as usual).
DEFERRED_ROUTES: Final = frozenset({"create_task", "create_share_task", "create_job"})


class Call:
    """One logical HTTP call, fully built, before any I/O.

    Attributes:
        method: ``GET`` or ``POST``.
        path: The percent-encoded path (starts with ``/koodrive/ose/v1/``).
        route: The endpoint's name (``create_task``, ``create_share_task``,
            ``create_job``, ``get_task``, ``list_tasks``, ``get_job``,
            ``list_jobs``, ``cancel_job``, ``get_share_task``).
        query: The encoded query string without ``?`` ("" for none).
        headers: The endpoint's own headers (Content-Type, X-Hw-Agentname,
            x-hw-share-folder-id); the session adds the common ones.
        body: The JSON body bytes, or None. May hold an archive password or
            a kdstoken: never log it.
        idempotent: Repeating the call cannot do anything twice (a read, even
            one sent as a POST such as share/taskDetail, or a cancel). The
            retry rules (``_retry``) treat an idempotent call like a GET and
            any other like a create. Defaults to True for GET only.
        template: The path with its variables named (``/koodrive/ose/v1/task/{taskId}``),
            the ``url.template`` of tracing; None when the path has none.
        secret_answer: Its answers hold credentials (the session and refresh
            endpoints): no error made from one keeps any of its body.
    """

    __slots__ = (
        "body",
        "headers",
        "idempotent",
        "method",
        "path",
        "query",
        "route",
        "secret_answer",
        "template",
    )

    def __init__(
        self,
        method: str,
        path: str,
        route: str,
        *,
        query: str = "",
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        idempotent: bool | None = None,
        template: str | None = None,
        secret_answer: bool = False,
    ) -> None:
        self.method = method
        self.path = path
        self.route = route
        self.query = query
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.body = body
        self.idempotent = method == "GET" if idempotent is None else idempotent
        self.template = template
        self.secret_answer = secret_answer

    @property
    def url_template(self) -> str:
        """The path with its variables named (the path itself when it has none)."""
        return self.template if self.template is not None else self.path

    @property
    def is_create(self) -> bool:
        """True for a call that may create something on the server (not idempotent)."""
        return not self.idempotent

    @property
    def target(self) -> str:
        """The path with its query string."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def __repr__(self) -> str:
        # Body and headers left out on purpose: they may carry a password.
        return f"Call({self.method} {self.target})"


_new: Final = object.__new__
_NO_HEADERS: Final[Mapping[str, str]] = MappingProxyType({})


def read_call(path: str, route: str, template: str | None) -> Call:
    """A ``GET`` without query, headers or body, as ``Call("GET", path, route, template=...)``.

    The shape of the poll every wait sends, made without ``__init__``'s
    keyword and default handling (about half of what building it costs).

    Args:
        path: The percent-encoded path.
        route: The endpoint's name.
        template: The path with its variables named, or None.

    Returns:
        The call.
    """
    call: Call = _new(Call)
    call.method = "GET"
    call.path = path
    call.route = route
    call.query = ""
    call.headers = _NO_HEADERS
    call.body = None
    call.idempotent = True
    call.template = template
    call.secret_answer = False
    return call


class Response:
    """The final answer to a call.

    Attributes:
        status: The HTTP status.
        headers: The response headers.
        body: The raw body.
        trace_id: The X-Traceid all attempts of the call carried.
    """

    __slots__ = ("body", "headers", "status", "trace_id")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes, trace_id: str):
        self.status = status
        self.headers = headers
        self.body = body
        self.trace_id = trace_id


def response_of(status: int, headers: Mapping[str, str], body: bytes, trace_id: str) -> Response:
    """``Response(status, headers, body, trace_id)``, made without a Python ``__init__`` frame.

    Every answer is made into one (and then decoded): the class call's
    ``__init__`` dispatch costs about as much as the four stores.

    Returns:
        The response.
    """
    response: Response = _new(Response)
    response.status = status
    response.headers = headers
    response.body = body
    response.trace_id = trace_id
    return response


# Trace ids need to be unique, not secret: a seeded PRNG is much cheaper per
# call than os.urandom, and seeding it from the OS keeps processes apart.
_trace_rng = random.Random()
# A forked child would otherwise repeat its parent's ids (the stdlib reseeds
# only random's module-level generator at fork).
os.register_at_fork(after_in_child=_trace_rng.seed)


def new_trace_id() -> str:
    """A new 58-character X-Traceid (lowercase hex).

    Returns:
        The trace id.
    """
    return f"{_trace_rng.getrandbits(TRACE_ID_LENGTH * 4):058x}"


# The caller may choose the X-Traceid of its calls (KooDriveSession.with_options):
# it must stay a valid header value of the documented length. Letters, digits,
# "-" and "_" are what tracing systems use; anything else is refused.
_TRACE_ID_SHAPE: Final = re.compile(r"[0-9A-Za-z_-]{%d}" % TRACE_ID_LENGTH)


def check_trace_id(value: object) -> str:
    """Refuse a caller's trace id that is not 58 letters, digits, ``-`` or ``_``.

    Args:
        value: The trace id.

    Returns:
        The trace id.

    Raises:
        InvalidRequestError: It is not such a string.
    """
    if not isinstance(value, str) or not _TRACE_ID_SHAPE.fullmatch(value):
        shown = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
        raise InvalidRequestError(
            f"trace_id must be {TRACE_ID_LENGTH} characters of letters, digits, '-' or '_' "
            f"(the X-Traceid header), got {shown}",
            field="trace_id",
        )
    return value


#: ``(owner, trace_id)`` of the last call sent from the current context (asyncio
#: task): the sender sets it before the first attempt, so it names failed calls
#: too. ``owner`` is the session's lifecycle, shared with its views, so that a
#: session reports only its own calls.
last_trace: Final[contextvars.ContextVar[tuple[object, str] | None]] = contextvars.ContextVar(
    "koodrive_async_last_trace", default=None
)
