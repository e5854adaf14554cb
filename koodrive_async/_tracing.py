"""Optional OpenTelemetry spans: the only module that knows OpenTelemetry exists.

Installed with ``koodrive-async[otel]`` (the OpenTelemetry API only); without
it every function here is a no-op and ``opentelemetry`` is never imported.
The API is imported on first use, not with the package.

Spans (see docs/observability.md):

* one INTERNAL span per logical operation, named after the session method
  (``get_task``, ``create_job``, ``wait_for_task``, ``run_jobs``, ...), with
  ``koodrive.task_id`` where known and ``koodrive.trace_id`` for a single call;
  a wait adds a ``koodrive.status_change`` event per status it sees;
* one CLIENT span per HTTP attempt, after the stable HTTP semantic conventions:
  ``{method} {url.template}``, ``http.request.method``, ``server.address``,
  ``server.port``, ``url.full``, ``url.template``, ``http.response.status_code``,
  ``error.type``, ``http.request.resend_count`` (from the second attempt on),
  and ``koodrive.trace_id`` (the X-Traceid).

Nothing secret reaches an attribute or an event: no header, no body (tokens,
kdstokens and archive passwords travel only there), no exception message;
query values whose names look secret are redacted from ``url.full``.

Cost when off: the provider check is resolved once per session when a
provider is given, and otherwise is one global read while OpenTelemetry is
absent, or one call and an ``isinstance`` until a global provider is set
(after which its tracer is kept).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Final
from urllib.parse import urlsplit

from ._version import __version__

__all__ = ["TASK_ID", "TRACE_ID", "Target", "Tracing"]

TASK_ID: Final = "koodrive.task_id"
TRACE_ID: Final = "koodrive.trace_id"
_STATUS_EVENT: Final = "koodrive.status_change"
_SCOPE: Final = "koodrive_async"

# The opentelemetry.trace module, None when it is not installed, _UNLOADED before
# the first look.
_UNLOADED: Final[Any] = object()
_api: Any = _UNLOADED
_global_tracer: Any = None  # the global provider's tracer, once one is set
# The loaded API when "no provider yet" can be told from its module global and
# the environment (see _no_provider_yet), else None.
_plain_api: Any = None

#: Create endpoints' operation names by request model class name.
_CREATE_OPS: Final = {
    "TransferTaskRequest": "create_transfer_task",
    "ImportTaskRequest": "create_import_task",
    "ShareTaskRequest": "create_share_task",
    "JobRequest": "create_job",
}

# Query parameters whose value is not put in url.full (none of the API's is
# secret today; a gateway's signed URL or a future endpoint might be).
_SECRET_QUERY: Final = re.compile(r"(token|sig|secret|password|passwd|key|auth)", re.IGNORECASE)


def _load() -> Any:
    global _api, _plain_api
    if _api is _UNLOADED:
        try:
            from opentelemetry import trace as api
        except ImportError:
            api = None  # type: ignore[assignment]
        _api = api
        if api is not None and _ENV_KEY is not None and hasattr(api, "_TRACER_PROVIDER"):
            _plain_api = api
    return _api


# The environment variable through which OpenTelemetry loads a global provider
# (``opentelemetry.environment_variables.OTEL_PYTHON_TRACER_PROVIDER``), as
# ``os.environ`` stores it, and the dict that stores it: ``key in os.environ``
# raises and catches a KeyError when the key is absent, the most expensive
# step of a call with tracing off.
_ENV_DATA: Final[Any] = getattr(os.environ, "_data", None)
_ENV_KEY: Final[Any] = (
    os.environ.encodekey("OTEL_PYTHON_TRACER_PROVIDER")
    if _ENV_DATA is not None and hasattr(os.environ, "encodekey")
    else None
)


def _no_provider_yet(api: Any) -> bool:
    # What get_tracer_provider() would decide ("no provider: the proxy"), read
    # without its environment lookup; False when it cannot be told so cheaply.
    if _ENV_KEY is None or getattr(api, "_TRACER_PROVIDER", True) is not None:
        return False
    return _ENV_KEY not in _ENV_DATA


def _tracer_of_global() -> Any:
    global _global_tracer
    if _global_tracer is not None:
        return _global_tracer
    api = _api if _api is not _UNLOADED else _load()
    if api is None or _no_provider_yet(api):
        return None
    provider = api.get_tracer_provider()
    # The API's defaults: nothing configured yet (the proxy) or disabled.
    if isinstance(provider, (api.ProxyTracerProvider, api.NoOpTracerProvider)):
        return None
    _global_tracer = provider.get_tracer(_SCOPE, __version__)
    return _global_tracer


class _Off:
    """The context manager of a span that is not made: yields None."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_OFF: Final = _Off()


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = []
    for pair in parts.query.split("&"):
        key, eq, value = pair.partition("=")
        pairs.append(f"{key}=REDACTED" if eq and _SECRET_QUERY.search(key) else pair)
    return parts._replace(query="&".join(pairs)).geturl()


class Target:
    """``server.address`` and ``server.port`` of a base URL, read once.

    Args:
        base_url: ``scheme://host[:port][/prefix]`` (no credentials: the
            session refuses them).
    """

    __slots__ = ("address", "port")

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.address = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)


class Tracing:
    """The spans of one session (and of its views).

    Args:
        provider: An OpenTelemetry ``TracerProvider``, or None for the global
            one (looked up until one is configured).
    """

    __slots__ = ("_tracer",)

    def __init__(self, provider: Any = None) -> None:
        self._tracer = None if provider is None else provider.get_tracer(_SCOPE, __version__)

    def tracer(self) -> Any:
        """The tracer, or None when tracing is off."""
        tracer = self._tracer
        if tracer is not None:
            return tracer
        if _global_tracer is not None:
            return _global_tracer
        # Every call asks, and with tracing off the answer is nearly always one
        # of these two, told here without a further call: no provider is set
        # yet (_no_provider_yet's test, inline), or OpenTelemetry is not installed.
        api = _plain_api
        if api is not None:
            if api._TRACER_PROVIDER is None and _ENV_KEY not in _ENV_DATA:
                return None
        elif _api is None:
            return None
        return _tracer_of_global()

    def capture(self) -> contextvars.Context | None:
        """A copy of the current context when tracing is on (for polls run elsewhere)."""
        return None if self.tracer() is None else contextvars.copy_context()

    def operation(
        self, name: str, task_id: str | None = None
    ) -> contextlib.AbstractContextManager[Any]:
        """A span around one logical operation; yields it, or None when off.

        Args:
            name: The operation (the session method's name).
            task_id: The task it is about, when known before it starts.
        """
        tracer = self.tracer()
        if tracer is None:
            return _OFF
        return _operation(tracer, name, task_id)

    def create(self, request: object) -> contextlib.AbstractContextManager[Any]:
        """The span of the create call of a request model (``create_job``, ...)."""
        tracer = self.tracer()
        if tracer is None:
            return _OFF
        return _operation(tracer, _CREATE_OPS.get(type(request).__name__, "submit"), None)

    def attempt(
        self,
        tracer: Any,
        method: str,
        template: str,
        url: str,
        target: Target,
        resends: int,
        trace_id: str,
    ) -> contextlib.AbstractContextManager[Callable[[int, str | None], None]]:
        """The CLIENT span of one HTTP attempt; yields ``record(status, error_type)``."""
        return _attempt(tracer, method, template, url, target, resends, trace_id)

    def stream(self, name: str, items: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """``items``, inside one span that covers the whole iteration (none when off)."""
        tracer = self.tracer()
        if tracer is None:
            return items
        return _stream(tracer, name, items)


def status_recorder(
    span: Any, task_id: str, on_status: Callable[[Any], Any] | None
) -> Callable[[Any], Any]:
    """An ``on_status`` that adds a status-change event to ``span``, then calls ``on_status``."""

    def record(task: Any) -> Any:
        status = task.status
        name = getattr(status, "name", None) or str(status)
        span.add_event(_STATUS_EVENT, {TASK_ID: task_id, "koodrive.task.status": name})
        return None if on_status is None else on_status(task)

    return record


def set_task_id(span: Any, task_id: str) -> None:
    """Name the task a span is about (``span`` may be None: tracing off)."""
    if span is not None:
        span.set_attribute(TASK_ID, task_id)


def _error(span: Any, exc: BaseException) -> None:
    # The type only: a message is not guaranteed free of user data.
    api = _load()
    span.set_attribute("error.type", type(exc).__qualname__)
    span.set_status(api.Status(api.StatusCode.ERROR))


@contextlib.contextmanager
def _operation(tracer: Any, name: str, task_id: str | None) -> Iterator[Any]:
    from ._call import last_trace

    before = last_trace.get()
    with tracer.start_as_current_span(
        name, record_exception=False, set_status_on_exception=False
    ) as span:
        if task_id is not None:
            span.set_attribute(TASK_ID, task_id)
        try:
            yield span
        except GeneratorExit:
            raise
        except BaseException as exc:
            trace_id = getattr(exc, "trace_id", None)
            if isinstance(trace_id, str):
                span.set_attribute(TRACE_ID, trace_id)
            if not isinstance(exc, _cancelled()):
                _error(span, exc)
            raise
        else:
            # The sender stamps the context with each call's trace id: one
            # call made here, so it is this operation's.
            after = last_trace.get()
            if after is not None and after is not before:
                span.set_attribute(TRACE_ID, after[1])


def _cancelled() -> type[BaseException]:
    import asyncio

    return asyncio.CancelledError


@contextlib.contextmanager
def _attempt(
    tracer: Any, method: str, template: str, url: str, target: Target, resends: int, trace_id: str
) -> Iterator[Callable[[int, str | None], None]]:
    api = _load()
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "server.address": target.address,
        "server.port": target.port,
        "url.full": _redacted(url),
        "url.template": template,
        TRACE_ID: trace_id,
    }
    if resends:
        attributes["http.request.resend_count"] = resends
    with tracer.start_as_current_span(
        f"{method} {template}",
        kind=api.SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:

        def record(status: int, error_type: str | None) -> None:
            if status:
                span.set_attribute("http.response.status_code", status)
            if error_type is None and status >= 400:
                error_type = str(status)
            if error_type is not None:
                span.set_attribute("error.type", error_type)
                span.set_status(api.Status(api.StatusCode.ERROR))

        try:
            yield record
        except BaseException as exc:
            if not isinstance(exc, _cancelled()):
                _error(span, exc)
            raise


async def _stream(tracer: Any, name: str, items: AsyncIterator[Any]) -> AsyncIterator[Any]:
    from opentelemetry import context

    api = _load()
    span = tracer.start_span(name)
    parent = api.set_span_in_context(span)
    try:
        while True:
            # Current only while the stream works (its helper tasks are made
            # then and inherit it), never across a yield to the consumer.
            token = context.attach(parent)
            try:
                item = await anext(items)
            except StopAsyncIteration:
                return
            except BaseException as exc:
                if not isinstance(exc, _cancelled() | GeneratorExit):
                    _error(span, exc)
                raise
            finally:
                context.detach(token)
            yield item
    finally:
        try:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                token = context.attach(parent)
                try:
                    await aclose()
                finally:
                    context.detach(token)
        finally:
            span.end()
