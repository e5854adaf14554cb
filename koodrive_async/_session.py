"""KooDriveSession: one method per endpoint, thin: validate, build, send, decode."""

from __future__ import annotations

import copy
import ipaddress
import os
import ssl as _ssl
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, tzinfo
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp

from . import _validate as check
from ._auth import AuthFlow, NoAuth, TokenAuth, TokenProvider
from ._build import (
    MAX_PAGE_SIZE,
    build_cancel_job,
    build_create,
    build_get_job,
    build_get_share_task,
    build_get_task,
    build_list_jobs,
    build_list_tasks,
    check_header_value,
    session_headers,
    status_filter,
)
from ._call import check_trace_id, last_trace
from ._decode import (
    CursorTracker,
    decode_cancel,
    decode_create,
    decode_job,
    decode_job_list,
    decode_share_task,
    decode_task,
    decode_task_page,
)
from ._download import ProgressCallback, download_package
from ._enums import JobAction, JobStatus, JobType, ShareTaskType, State, TaskStatus, TaskType
from ._estimator import duration_key
from ._exceptions import BadRequestError, InvalidRequestError, KooDriveError
from ._http import DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_USER_AGENT, HTTP
from ._interfaces import Tracker
from ._lifecycle import ClientState, Lifecycle, closed_error
from ._models import (
    FileInfo,
    FileRef,
    ImportTaskRequest,
    Job,
    JobOutcome,
    JobRequest,
    Request,
    ShareTask,
    ShareTaskRequest,
    Task,
    TaskPage,
    TransferTaskRequest,
)
from ._policies import PollPolicy, RetryPolicy
from ._polling import PollScheduler
from ._sender import Sender
from ._tracing import Tracing, set_task_id, status_recorder
from ._waiting import (
    DEFAULT_POLL,
    JOB_TRACKING,
    Waiting,
    check_fanout_args,
    check_wait_args,
)

__all__ = ["KooDriveSession"]

_DEFAULT_RETRY = RetryPolicy()

StatusFilter = TaskStatus | int | Iterable[TaskStatus | int] | None


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_base_url(base_url: object, allow_insecure_http: bool) -> str:
    # secret: a URL object may carry credentials in its repr.
    base_url = check.text(base_url, "base_url", secret=True)
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError(
            f"base_url must be an http(s) URL with a host, got {base_url!r}", field="base_url"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidRequestError(
            "base_url must not carry a query, a fragment or credentials", field="base_url"
        )
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        raise InvalidRequestError(
            "base_url uses plain http:// to a non-loopback host, which would send the token "
            "in clear text; use https:// or pass allow_insecure_http=True",
            field="base_url",
        )
    # Keep a path prefix (a gateway may mount the API below one), drop the trailing slash.
    return base_url.strip().rstrip("/")


def _check_timeout(timeout: object) -> float:
    return float(check.positive_number(timeout, "timeout"))  # type: ignore[arg-type]


def _check_proxy(proxy: object) -> str | None:
    if proxy is None:
        return None
    # secret: a proxy URL may carry credentials (http://user:pass@host).
    text = check.text(str(proxy) if not isinstance(proxy, str) else proxy, "proxy", secret=True)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError("proxy must be an http(s) URL with a host", field="proxy")
    return text


def _auth_flow(
    token: str | None, token_provider: TokenProvider | None, auth: AuthFlow | None
) -> AuthFlow:
    if auth is None:
        if token is None and token_provider is None:
            raise InvalidRequestError("give one of token, token_provider and auth", field="token")
        return TokenAuth(token, token_provider)
    if token is not None or token_provider is not None:
        raise InvalidRequestError(
            "give one of token, token_provider and auth, not several", field="auth"
        )
    if not isinstance(auth, AuthFlow) or isinstance(auth, NoAuth):
        raise InvalidRequestError(
            "auth must be SessionCredentials, CarrierCredentials or AppAuth, got "
            f"{type(auth).__name__}",
            field="auth",
        )
    return auth


def _check_text(value: object, field: str) -> str:
    text = check.text(value, field)
    check_header_value(text, field)  # it is sent as a header
    return text


class KooDriveSession:
    """An asyncio session with KooDrive's task and batch-job Open API.

    Use it as ``async with KooDriveSession(...) as s:`` or call
    :meth:`close` yourself. It owns an ``aiohttp.ClientSession`` (created on
    first use, with ``max_connections`` pooled connections) unless you pass
    ``session``, which it then uses and never closes.

    One session may be used from one event loop after another (for example
    one ``asyncio.run`` per call in a script): the owned ClientSession is
    closed when its loop shuts down and a new one is made on the next. A
    caller's ``session`` is bound to its loop: using it from another one
    raises RuntimeError. Requests never depend on a caller's session
    defaults (``raise_for_status``, ``timeout``, redirects, decompression);
    its default headers and cookies are still sent.

    Args:
        base_url: For example ``https://intl.myhuaweicloud-koodrive.com``.
            ``http://`` is refused unless the host is loopback or
            ``allow_insecure_http`` is True.
        user_id: The X-User-Id of every call.
        token: An access token, with or without its ``Bearer`` prefix.
        token_provider: Instead of ``token``: ``(force_refresh: bool) -> str``,
            a plain or an async function. Called with False for the first
            token (then cached) and once with True after a 401, after which
            the call is retried once. It is given ``timeout`` seconds; if it
            raises, returns something that is not a token, or takes longer,
            the call raises :class:`CredentialsError` and sends nothing. A
            plain function runs in the event loop: keep it quick.
        auth: Instead of ``token``: credentials that renew themselves
            (:class:`SessionCredentials`, :class:`CarrierCredentials`) or
            sign every attempt (:class:`AppAuth`). A renewal is shared by
            every call that needs it, takes at most ``timeout`` seconds, and
            when it fails the call raises :class:`CredentialsError`.
        agent_name: The X-Hw-Agentname; needed for share tasks.
        language: The ``language`` header.
        timeout: Seconds allowed per attempt, from waiting for a pooled
            connection to the end of the response.
        retry: How calls are retried (see :class:`RetryPolicy`).
        max_connections: Size of the owned connection pool.
        session: A caller-owned ``aiohttp.ClientSession``.
        allow_insecure_http: Allow ``http://`` to a non-loopback host.
        max_response_bytes: The longest response body read (8 MiB by
            default); a longer one raises :class:`ResponseValidationError`
            (``possibly_created`` on a create the server answered with success
            or a 500/502/504) after reading at most one byte more than this.
        job_tracking: Where ``run_jobs``/``stream_jobs`` read batch jobs and
            share tasks: ``"job"`` (the default) at job detail and
            share-task detail, as the reference pages say; ``"task"`` at
            ``GET task/{id}``, for a deployment that answers job ids there
            (outcomes then hold Tasks, as before).
        service_time_zone: The zone in which the service writes the 14-digit
            ``yyyyMMddHHmmss`` times of jobs and share tasks. The pages name
            none; UTC is assumed (unverified against the real service).
        user_agent: The User-Agent of every request; None for
            ``koodrive-async/<version> aiohttp/<version> Python/<version>``.
        trace_configs: ``aiohttp.TraceConfig`` objects added to the owned
            ClientSession (not with ``session``: give them to yours).
        proxy: Send every request through this HTTP proxy
            (``http://[user:password@]host:port``).
        ssl: The ``ssl.SSLContext`` that verifies the service (for a custom
            CA bundle: ``ssl.create_default_context(cafile=...)``).
        trust_env: Let the owned ClientSession read ``HTTPS_PROXY``,
            ``HTTP_PROXY``, ``NO_PROXY`` (and ``~/.netrc``) from the
            environment; off by default (not with ``session``).
        tracer_provider: The OpenTelemetry ``TracerProvider`` of this
            session's spans, or None for the global one (see
            docs/observability.md; a no-op without ``opentelemetry-api``).

    Raises:
        InvalidRequestError: An argument is invalid (for example neither or
            more than one of ``token``, ``token_provider`` and ``auth``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        user_id: str,
        token: str | None = None,
        token_provider: TokenProvider | None = None,
        auth: AuthFlow | None = None,
        agent_name: str | None = None,
        language: str = "en-US",
        timeout: float = 30.0,
        retry: RetryPolicy = _DEFAULT_RETRY,
        max_connections: int = 100,
        session: aiohttp.ClientSession | None = None,
        allow_insecure_http: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        job_tracking: str = "job",
        service_time_zone: tzinfo = UTC,
        user_agent: str | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
        proxy: str | None = None,
        ssl: _ssl.SSLContext | None = None,
        trust_env: bool = False,
        tracer_provider: Any = None,
    ) -> None:
        self._base_url = _check_base_url(base_url, allow_insecure_http)
        self._user_id = _check_text(user_id, "user_id")
        auth = _auth_flow(token, token_provider, auth)
        self._agent_name = None if agent_name is None else _check_text(agent_name, "agent_name")
        _check_text(language, "language")
        user_agent = (
            DEFAULT_USER_AGENT if user_agent is None else _check_text(user_agent, "user_agent")
        )
        check.positive_number(timeout, "timeout")
        check.instance_of(RetryPolicy, retry, "retry")
        check.int_in_range(max_connections, "max_connections", low=1)
        check.int_in_range(max_response_bytes, "max_response_bytes", low=1)
        check.instance_of(aiohttp.ClientSession, session, "session", optional=True)
        proxy = _check_proxy(proxy)
        check.instance_of(_ssl.SSLContext, ssl, "ssl", optional=True)
        if check.is_collection(trace_configs):
            trace_configs = tuple(trace_configs)
        if not isinstance(trace_configs, tuple) or not all(
            isinstance(config, aiohttp.TraceConfig) for config in trace_configs
        ):
            raise InvalidRequestError(
                "trace_configs must be a sequence of aiohttp.TraceConfig", field="trace_configs"
            )
        check.instance_of(bool, trust_env, "trust_env")
        if session is not None and (trace_configs or trust_env):
            raise InvalidRequestError(
                "trace_configs and trust_env configure the owned ClientSession; with "
                "session= set them on your own aiohttp.ClientSession",
                field="trace_configs" if trace_configs else "trust_env",
            )
        if tracer_provider is not None and not callable(
            getattr(tracer_provider, "get_tracer", None)
        ):
            raise InvalidRequestError(
                "tracer_provider must be an OpenTelemetry TracerProvider", field="tracer_provider"
            )
        if job_tracking not in JOB_TRACKING:
            raise InvalidRequestError(
                f"job_tracking must be 'job' or 'task', got {job_tracking!r}",
                field="job_tracking",
            )
        if not isinstance(service_time_zone, tzinfo):
            # Not check.instance_of: tzinfo is abstract, which its typing refuses.
            raise InvalidRequestError(
                "service_time_zone must be a datetime.tzinfo (datetime.UTC, a ZoneInfo, ...)",
                field="service_time_zone",
            )
        self._tz = service_time_zone
        self._lifecycle = Lifecycle()
        self._read_timeout = float(timeout)
        self._tracing = Tracing(tracer_provider)
        #: The session this one is a with_options view of (None: not a view).
        self._parent: KooDriveSession | None = None
        self._sender = Sender(
            base_url=self._base_url,
            static_headers=(
                static := session_headers(
                    user_id=self._user_id, language=language, user_agent=user_agent
                )
            ),
            auth=auth,
            timeout=float(timeout),
            retry=retry,
            http=HTTP(
                lifecycle=self._lifecycle,
                timeout=float(timeout),
                max_connections=max_connections,
                session=session,
                max_response_bytes=max_response_bytes,
                trace_configs=trace_configs,
                proxy=proxy,
                ssl=ssl,
                trust_env=trust_env,
                default_headers={"User-Agent": static["User-Agent"]},
            ),
            lifecycle=self._lifecycle,
            tracing=self._tracing,
        )
        # Credentials that renew themselves send their refresh calls through
        # the same pool, clock and policy, carrying their own Authorization.
        auth.bind(
            base_url=self._base_url, send=self._refresh_sender(static, retry, float(timeout)).send
        )
        self._waiting = Waiting(
            self,
            lifecycle=self._lifecycle,
            max_pause=retry.max_retry_after,
            job_tracking=job_tracking,
            tracing=self._tracing,
        )

    def _refresh_sender(self, static: dict[str, str], retry: RetryPolicy, timeout: float) -> Sender:
        sender = self._sender
        return Sender(
            base_url=self._base_url,
            static_headers=static,
            auth=NoAuth(),
            timeout=timeout,
            retry=retry,
            http=sender.http,
            lifecycle=self._lifecycle,
            clock=sender.clock,
        )

    def __repr__(self) -> str:
        view = "" if self._parent is None else ", view=True"
        return f"KooDriveSession(base_url={self._base_url!r}, user_id={self._user_id!r}{view})"

    def with_options(
        self,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        trace_id: str | None = None,
    ) -> KooDriveSession:
        """A view of this session whose calls use other options.

        The view shares everything else with this session: the connection
        pool, the credentials, the server clock, the shared poll scheduler
        and the lifecycle. Closing the session closes its views; closing a
        view (``close()``, ``async with``) does nothing, so a view can be
        handed to code that closes what it is given. The polls of
        :meth:`wait_for_task` go through the shared scheduler, with this
        session's options, whichever object the wait was started from; the
        submissions of :meth:`run_jobs` and :meth:`stream_jobs` on a view
        use the view's options.

        Args:
            timeout: Seconds allowed per attempt (and for a token provider).
            retry: The retry policy of the view's calls.
            trace_id: The X-Traceid of every call of the view (58 letters,
                digits, ``-`` or ``_``), e.g. to follow one of your own
                requests through the service's logs. By default each call
                gets a new one.

        Returns:
            The view; options not given are this session's.

        Raises:
            InvalidRequestError: An option is invalid.
        """
        if timeout is not None:
            timeout = _check_timeout(timeout)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise InvalidRequestError("retry must be a RetryPolicy", field="retry")
        if trace_id is not None:
            trace_id = check_trace_id(trace_id)
        view = copy.copy(self)
        view._parent = self if self._parent is None else self._parent
        view._sender = self._sender.with_options(timeout=timeout, retry=retry, trace_id=trace_id)
        return view

    @property
    def last_trace_id(self) -> str | None:
        """The X-Traceid of the last call this session (or a view) sent from the current task.

        For calls that return a plain id (:meth:`submit` and the ``create_*``
        methods); a returned :class:`Task` or :class:`TaskPage` carries its own
        (``.trace_id``) and every :class:`KooDriveError` has one. Read per
        context, like a ``contextvars`` value: concurrent tasks each see their
        own last call, and a task sees what it inherited from its parent until
        it makes a call of its own. None before any call. Set before the first
        attempt, so it also names a call that failed.
        """
        last = last_trace.get()
        if last is None or last[0] is not self._lifecycle:
            return None
        return last[1]

    @property
    def base_url(self) -> str:
        """The base URL, without a trailing slash."""
        return self._base_url

    @property
    def user_id(self) -> str:
        """The X-User-Id sent with every call."""
        return self._user_id

    @property
    def clock_offset(self) -> float | None:
        """Seconds the service's clock is ahead of this machine's (negative: behind).

        Learnt from the ``Date`` headers of its answers (a lower bound, to the
        second), and applied to every ``X-Date``; None until an answer carried
        a readable ``Date``.
        """
        return self._sender.clock.learnt_offset

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._lifecycle.closed

    async def __aenter__(self) -> Self:
        """Enter the session (it must not be closed yet).

        Returns:
            The session.

        Raises:
            RuntimeError: It was closed.
        """
        self._lifecycle.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the session (a view: nothing)."""
        await self.close()

    async def close(self) -> None:
        """Stop the waiters and close the owned HTTP session (idempotent).

        A caller-owned ``aiohttp.ClientSession`` is left open. Any call after
        this raises RuntimeError. On a :meth:`with_options` view this does
        nothing: the view lives as long as its session.
        """
        if self._parent is not None:
            return
        if not self._lifecycle.close():
            return
        try:
            await self._waiting.aclose()
        finally:
            await self._sender.http.close()

    def _check_open(self) -> None:
        self._lifecycle.check_open()

    # ----------------------------------------------------------------- creating tasks

    async def submit(self, request: Request) -> str:
        """Create the task a request model describes.

        Args:
            request: A TransferTaskRequest, ImportTaskRequest, ShareTaskRequest
                or JobRequest.

        Returns:
            The task id.

        Raises:
            InvalidRequestError: Not a request model, or a share task without
                the session's ``agent_name``; nothing was sent.
            APIError: The service refused (``possibly_created`` on 500/502/504).
            APIConnectionError: No response (``possibly_created`` when it may
                have arrived).
            ResponseValidationError: The answer has no task id, or is longer
                than ``max_response_bytes``.
            CredentialsError: The token provider failed; nothing was sent.
            RuntimeError: The session is closed.
        """
        self._check_open()
        call = build_create(request, agent_name=self._agent_name)
        with self._tracing.create(request) as span:
            task_id = decode_create(call, await self._sender.send(call))
            set_task_id(span, task_id)
            return task_id

    async def create_transfer_task(self, *, src_user_id: str, dst_user_id: str) -> str:
        """``POST task/create`` (taskType 0): transfer one user's data to another.

        Args:
            src_user_id: The source user.
            dst_user_id: The target user.

        Returns:
            The task id.

        Raises:
            InvalidRequestError: Empty ids; nothing was sent.
            KooDriveError: As :meth:`submit`.
        """
        return await self.submit(TransferTaskRequest(src_user_id, dst_user_id))

    async def create_import_task(
        self, *, org_id: str, org_user_id: str, result_id: str | None = None
    ) -> str:
        """``POST task/create`` (taskType 1): a batch import.

        Args:
            org_id: The organization.
            org_user_id: The creator's orgUserId.
            result_id: Optional result id.

        Returns:
            The task id.

        Raises:
            InvalidRequestError: Empty ids; nothing was sent.
            KooDriveError: As :meth:`submit`.
        """
        return await self.submit(ImportTaskRequest(org_id, org_user_id, result_id))

    async def create_share_task(
        self,
        task_type: ShareTaskType,
        *,
        container_id: str,
        file_ids: Sequence[str],
        share_id: str,
        kdstoken: str | None = None,
        target: FileRef | None = None,
        zip_name: str | None = None,
    ) -> str:
        """``POST share/tasks``: package (download) or save files of a share.

        Args:
            task_type: PACKAGE (needs ``zip_name``) or SAVE (needs ``target``).
            container_id: The space the files are in.
            file_ids: 1 to 1000 file ids (see :func:`chunked`).
            share_id: The share.
            kdstoken: The share's temporary token, if it needs one.
            target: Where SAVE puts the files.
            zip_name: The package name for PACKAGE.

        Returns:
            The task id.

        Raises:
            InvalidRequestError: A rule of the page is broken, or the session
                has no ``agent_name``; nothing was sent.
            KooDriveError: As :meth:`submit`.
        """
        return await self.submit(
            ShareTaskRequest(
                task_type,
                container_id=container_id,
                file_ids=file_ids,  # the model converts it to a tuple
                share_id=share_id,
                kdstoken=kdstoken,
                target=target,
                zip_name=zip_name,
            )
        )

    async def create_job(
        self,
        task_type: JobType,
        *,
        src_container_id: str,
        dst_container_id: str,
        files: Sequence[FileInfo] = (),
        action_type: JobAction | None = None,
        new_file_path: str | None = None,
        uncompress_file_paths: Sequence[str] | None = None,
        password: str | None = None,
        share_folder_id: str | None = None,
    ) -> str:
        """``POST jobs``: a batch job (copy, delete, move, restore, decompress, ...).

        Args:
            task_type: The job type.
            src_container_id: The source space.
            dst_container_id: The target space.
            files: The files and folders (required except for CLEAR_RECYCLE_BIN).
            action_type: The refinement of the job type (documented pairs only).
            new_file_path: The destination path.
            uncompress_file_paths: Paths inside the archive (DECOMPRESS_PARTIAL).
            password: The archive password (DECOMPRESS only; never logged).
            share_folder_id: Act inside this shared folder.

        Returns:
            The task id.

        Raises:
            InvalidRequestError: A rule of the page is broken; nothing was sent.
            KooDriveError: As :meth:`submit`.
        """
        return await self.submit(
            JobRequest(
                task_type,
                src_container_id=src_container_id,
                dst_container_id=dst_container_id,
                files=files,  # the model converts it to a tuple
                action_type=action_type,
                new_file_path=new_file_path,
                uncompress_file_paths=uncompress_file_paths,
                password=password,
                share_folder_id=share_folder_id,
            )
        )

    # ----------------------------------------------------------------- reading tasks

    async def get_task(self, task_id: str) -> Task:
        """``GET task/{task_id}``: one task's details.

        Args:
            task_id: The task id (percent-encoded into the path).

        Returns:
            The task.

        Raises:
            InvalidRequestError: An empty id; nothing was sent.
            NotFoundError: No such task (for this user).
            APIError: Any other refusal.
            APIConnectionError: No response after the retries.
            ResponseValidationError: The answer is not a task.
            RuntimeError: The session is closed.
        """
        if self._lifecycle.state is ClientState.CLOSED:
            # _check_open(), inline: this is the poll of every wait.
            raise closed_error()
        call = build_get_task(task_id)
        if self._tracing.tracer() is None:
            # The poll of every wait: with tracing off, no span, no context
            # manager, and the sender need not ask again.
            return decode_task(call, await self._sender.send(call, None))
        with self._tracing.operation("get_task", task_id):
            return decode_task(call, await self._sender.send(call))

    async def list_tasks(
        self,
        *,
        task_type: TaskType | int | None = None,
        status: StatusFilter = None,
        page_size: int = MAX_PAGE_SIZE,
        cursor: str | None = None,
    ) -> TaskPage:
        """``GET task/list``: one page of tasks.

        Pages may be short or even empty before the end; only a page whose
        ``next_cursor`` is None is the last (see :meth:`iter_tasks`).

        Args:
            task_type: Only tasks of this type.
            status: One TaskStatus (or int) or an iterable of them.
            page_size: 1 to 100.
            cursor: The previous page's ``next_cursor``.

        Returns:
            The page.

        Raises:
            InvalidRequestError: A filter out of range; nothing was sent.
            APIError: The service refused.
            APIConnectionError: No response after the retries.
            ResponseValidationError: The answer is not a task list.
            RuntimeError: The session is closed.
        """
        self._check_open()
        call = build_list_tasks(
            task_type=task_type, status=status, page_size=page_size, cursor=cursor
        )
        with self._tracing.operation("list_tasks"):
            return decode_task_page(call, await self._sender.send(call))

    async def iter_tasks(
        self,
        *,
        task_type: TaskType | int | None = None,
        status: StatusFilter = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Task]:
        """Every task of the listing, page after page.

        Empty pages that carry a cursor are skipped, not taken for the end;
        the listing ends when ``nextCursor`` is missing, null or "".

        Args:
            task_type: Only tasks of this type.
            status: One TaskStatus (or int) or an iterable of them.
            page_size: 1 to 100 per page.

        Yields:
            Tasks in the service's order.

        Raises:
            InvalidRequestError: A filter out of range; nothing was sent.
            ResponseValidationError: The service handed out a cursor it had
                already given in this listing (a cycle, which would loop
                forever); the message names it.
            KooDriveError: As :meth:`list_tasks`.
        """
        # Read a one-pass iterable once (it is sent with every page), and
        # validate everything before the first request.
        status = status_filter(status)
        build_list_tasks(task_type=task_type, status=status, page_size=page_size)
        cursors = CursorTracker()
        cursor: str | None = None
        while True:
            self._check_open()
            call = build_list_tasks(
                task_type=task_type, status=status, page_size=page_size, cursor=cursor
            )
            with self._tracing.operation("list_tasks"):
                page = decode_task_page(call, await self._sender.send(call), cursors=cursors)
            for task in page.tasks:
                yield task
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # ----------------------------------------------------------------- jobs and share tasks

    @property
    def job_tracking(self) -> str:
        """Where batch jobs and share tasks are read: ``"job"`` (their detail) or ``"task"``."""
        return self._waiting.job_tracking

    @property
    def service_time_zone(self) -> tzinfo:
        """The zone the 14-digit job and share-task times are read in (UTC by default)."""
        return self._tz

    async def get_job(self, job_id: str) -> Job:
        """``GET /koodrive/ose/v1/{job_id}``: one batch job's details and per-file results.

        Args:
            job_id: The id ``create_job`` returned.

        Returns:
            The job (``files``: one FileResult per file).

        Raises:
            InvalidRequestError: An empty id; nothing was sent.
            NotFoundError: No such job (for this user).
            APIError: Any other refusal.
            APIConnectionError: No response after the retries.
            ResponseValidationError: The answer is not a job detail.
            RuntimeError: The session is closed.
        """
        self._check_open()
        call = build_get_job(job_id)
        with self._tracing.operation("get_job", job_id):
            return decode_job(call, await self._sender.send(call), tz=self._tz)

    async def list_jobs(
        self,
        *,
        task_type: JobType | int | None = None,
        status: JobStatus | int | None = None,
        offset: int = 0,
        limit: int = MAX_PAGE_SIZE,
    ) -> list[Job]:
        """``GET /koodrive/ose/v1/jobs``: one page of batch jobs.

        Listed jobs carry no per-file results (``files`` is empty): read
        those with :meth:`get_job`.

        Args:
            task_type: Only jobs of this JobType.
            status: Only jobs in this JobStatus.
            offset: Jobs to skip (items, not pages); 0 for the first page.
            limit: 1 to 100.

        Returns:
            The jobs of the page (fewer than ``limit`` at the end).

        Raises:
            InvalidRequestError: A filter out of range; nothing was sent.
            APIError: The service refused.
            APIConnectionError: No response after the retries.
            ResponseValidationError: The answer is not a job list.
            RuntimeError: The session is closed.
        """
        self._check_open()
        call = build_list_jobs(task_type=task_type, status=status, offset=offset, limit=limit)
        with self._tracing.operation("list_jobs"):
            return decode_job_list(call, await self._sender.send(call), tz=self._tz)

    async def iter_jobs(
        self,
        *,
        task_type: JobType | int | None = None,
        status: JobStatus | int | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Job]:
        """Every batch job of the listing, page after page (by offset).

        The listing ends at the first page shorter than ``page_size``. Jobs
        created or finishing while it runs may shift the offsets: one may be
        seen twice or missed.

        Args:
            task_type: Only jobs of this JobType.
            status: Only jobs in this JobStatus.
            page_size: 1 to 100 per page.

        Yields:
            Jobs in the service's order.

        Raises:
            InvalidRequestError: A filter out of range; nothing was sent.
            KooDriveError: As :meth:`list_jobs`.
        """
        build_list_jobs(task_type=task_type, status=status, limit=page_size)
        offset = 0
        while True:
            jobs = await self.list_jobs(
                task_type=task_type, status=status, offset=offset, limit=page_size
            )
            for job in jobs:
                yield job
            if len(jobs) < page_size:
                return
            offset += len(jobs)

    async def download(
        self,
        url: str,
        path: str | os.PathLike[str],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> int:
        """Stream a package's ``download_url`` (a ``Job`` or ``ShareTask``'s) to a file.

        The body is written to a temporary file beside ``path`` and renamed
        into place only once whole. It is not an API call: the response-size
        cap does not apply, no Authorization is sent (the link carries its own
        token), redirects are followed, and the session's ``timeout`` bounds
        each read rather than the whole transfer. The link's query (its
        token) never appears in an error message.

        Args:
            url: The download link.
            path: The file to write.
            on_progress: Called (and awaited if async) with ``(bytes so far,
                Content-Length or None)`` after each chunk.

        Returns:
            The number of bytes written.

        Raises:
            InvalidRequestError: A bad link (plain http:// is accepted only to
                loopback) or path; nothing was fetched.
            APIError: The link was answered with an error status.
            APIConnectionError: The transfer failed (``APITimeoutError``: a
                read timed out); no file is left under ``path``.
            RuntimeError: The session is closed.
        """
        self._check_open()
        return await download_package(
            self._sender.http,
            url,
            path,
            read_timeout=self._read_timeout,
            is_loopback=_is_loopback,
            on_progress=on_progress,
        )

    async def cancel_job(self, job_id: str) -> None:
        """``POST /koodrive/ose/v1/cancel``: cancel a batch job that is pending or processing.

        Retried like a read (cancelling twice does nothing twice). When the
        service refuses because the job is already cancelled (by an earlier
        attempt of this call, whose answer was lost, or before), that is a
        success: the job is looked up once to tell.

        Args:
            job_id: The job.

        Raises:
            InvalidRequestError: An empty id; nothing was sent.
            BadRequestError: The job does not exist or already completed.
            APIError: Any other refusal.
            APIConnectionError: No response after the retries.
            RuntimeError: The session is closed.
        """
        self._check_open()
        call = build_cancel_job(job_id)
        try:
            return decode_cancel(call, await self._sender.send(call))
        except BadRequestError as refused:
            # msg is free text, never compared: the job's own state tells.
            try:
                job = await self.get_job(job_id)
            except KooDriveError:
                raise refused from None
            if job.state is State.CANCELLED:
                return None
            raise

    async def get_share_task(
        self, task_id: str, *, share_id: str, kdstoken: str | None = None
    ) -> ShareTask:
        """``POST /koodrive/ose/v1/share/taskDetail``: one share task's details.

        A read, though sent as a POST: retried like a GET. Sends the
        session's ``agent_name`` as X-Hw-Agentname.

        Args:
            task_id: The id ``create_share_task`` returned.
            share_id: The share.
            kdstoken: The share's temporary token, if it needs one (never
                logged or shown).

        Returns:
            The share task (``files``: one FileResult per file).

        Raises:
            InvalidRequestError: An empty id, or no ``agent_name`` on the
                session; nothing was sent.
            NotFoundError: No such share task (for this user and share).
            APIError: Any other refusal.
            APIConnectionError: No response after the retries.
            ResponseValidationError: The answer is not a share-task detail.
            RuntimeError: The session is closed.
        """
        self._check_open()
        call = build_get_share_task(
            task_id, share_id=share_id, kdstoken=kdstoken, agent_name=self._agent_name
        )
        with self._tracing.operation("get_share_task", task_id):
            return decode_share_task(call, await self._sender.send(call), tz=self._tz)

    async def wait_for_job(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        poll: PollPolicy = DEFAULT_POLL,
        on_status: Callable[[Job], Any] | None = None,
    ) -> Job:
        """Wait until a batch job succeeds, polling its detail through the shared scheduler.

        Polling, deadlines and transient errors work as in :meth:`wait_for_task`.

        Args:
            job_id: The job.
            timeout: One deadline, in seconds, for the whole wait, or None.
            poll: The polling intervals.
            on_status: Called with the Job on every change of status or
                progress, the first answer included; may be a coroutine
                function. If it raises, the wait ends with that exception.

        Returns:
            The Job, once it completed with every file succeeded.

        Raises:
            InvalidRequestError: Bad arguments (nothing is sent).
            JobFailedError: It completed with some or all files failed
                (``.job``, ``.failed_files``).
            JobCancelledError: It was cancelled (``.job``).
            TaskTimeoutError: The deadline passed first (``.last``: the last Job).
            KooDriveError: A permanent polling error, as :meth:`wait_for_task`.
            RuntimeError: The session was closed.
        """
        build_get_job(job_id)  # the id's checks, before anything is sent
        check_wait_args(job_id, timeout, poll, on_status)
        job: Job = await self._wait(
            "wait_for_job", job_id, timeout, poll, on_status, self._waiting.job_tracker()
        )
        return job

    async def wait_for_share_task(
        self,
        task_id: str,
        *,
        share_id: str,
        kdstoken: str | None = None,
        timeout: float | None = None,
        poll: PollPolicy = DEFAULT_POLL,
        on_status: Callable[[ShareTask], Any] | None = None,
    ) -> ShareTask:
        """Wait until a share task succeeds, polling its detail through the shared scheduler.

        Polling, deadlines and transient errors work as in :meth:`wait_for_task`.

        Args:
            task_id: The share task.
            share_id: Its share.
            kdstoken: The share's temporary token, if it needs one.
            timeout: One deadline, in seconds, for the whole wait, or None.
            poll: The polling intervals.
            on_status: Called with the ShareTask on every change of status or
                progress, the first answer included; may be a coroutine function.

        Returns:
            The ShareTask, once it completed with every file succeeded
            (``download_url`` holds the zip's link for a PACKAGE task).

        Raises:
            InvalidRequestError: Bad arguments, or no ``agent_name`` on the
                session (nothing is sent).
            JobFailedError: It completed with some or all files failed.
            JobCancelledError: It was cancelled.
            TaskTimeoutError: The deadline passed first.
            KooDriveError: A permanent polling error, as :meth:`wait_for_task`.
            RuntimeError: The session was closed.
        """
        check_wait_args(task_id, timeout, poll, on_status)
        # Everything the read needs is checked now, not at the first poll.
        build_get_share_task(
            task_id, share_id=share_id, kdstoken=kdstoken, agent_name=self._agent_name
        )
        tracker = self._waiting.share_tracker(share_id, kdstoken)
        share: ShareTask = await self._wait(
            "wait_for_share_task", task_id, timeout, poll, on_status, tracker
        )
        return share

    # ----------------------------------------------------------------- waiting and fan-out

    @property
    def max_concurrent_polls(self) -> int:
        """Most GETs the shared poll scheduler runs at once (32 by default).

        Read when the scheduler is made, on the first wait in each event loop:
        set it before waiting.
        """
        return self._waiting.max_polls

    @max_concurrent_polls.setter
    def max_concurrent_polls(self, value: int) -> None:
        self._waiting.max_polls = value

    def seed_durations(self, like: Request, durations: Iterable[float]) -> int:
        """Plan the waits of tasks like ``like`` from durations a previous run recorded.

        Before any task of a kind has finished, ``run_jobs`` and
        ``stream_jobs`` poll it on the plain ``PollPolicy`` schedule; given
        the durations a previous run of the same plan saw (its journal), the
        first wave is polled where its tasks are likely to end instead. The
        session's own observations replace them as its tasks finish.

        Args:
            like: A request of the kind (its model, task type and action
                decide the kind; other fields are ignored).
            durations: Seconds from submission to the end, oldest first;
                non-finite and negative values are skipped.

        Returns:
            How many durations were taken (at most the newest 64).

        Raises:
            InvalidRequestError: ``like`` is not a request model.
        """
        if not isinstance(
            like, TransferTaskRequest | ImportTaskRequest | ShareTaskRequest | JobRequest
        ):
            raise InvalidRequestError(
                f"like must be a request model, got {type(like).__name__}", field="like"
            )
        return self._waiting.seed_durations(duration_key(like), durations)

    def _scheduler(self) -> PollScheduler:
        # The shared poll scheduler, for tests and benchmarks that count its GETs.
        return self._waiting.scheduler()

    async def wait_for_task(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        poll: PollPolicy = DEFAULT_POLL,
        on_status: Callable[[Task], Any] | None = None,
    ) -> Task:
        """Wait until a task succeeds, polling it through the session's shared scheduler.

        The first poll comes ``poll.initial`` seconds after the call, then the
        interval grows by ``poll.multiplier`` up to ``poll.max_interval``, each
        one jittered by ``±poll.jitter``. Transient polling errors (connection
        errors, timeouts, 429, 5xx, unparseable bodies), which the transport has
        already retried per the session's RetryPolicy, do not end the wait: the
        poll is retried later with the same backoff, within the deadline. Only
        ``poll.max_invalid_responses`` unparseable answers in a row are
        tolerated. A 429 pauses every poll of the session for its Retry-After,
        at most ``RetryPolicy.max_retry_after``; a wait whose deadline falls
        inside such a pause still makes one last poll shortly before it.

        Args:
            task_id: The task to wait for.
            timeout: One deadline, in seconds, for the whole wait (monotonic
                clock), or None to wait as long as it takes. A GET still in
                flight when it passes is abandoned.
            poll: The polling intervals.
            on_status: Called with the Task on every status change, the first
                status seen included; may be a coroutine function (awaited).
                If it raises, the wait ends with that exception.

        Returns:
            The Task, once its status is SUCCESS.

        Raises:
            InvalidRequestError: Bad arguments (nothing is sent).
            TaskFailedError: The task reached FAILED (``.task``, ``.result_code``).
            TaskTimeoutError: The deadline passed first (``.task_id``, ``.last``).
            ResponseValidationError: ``poll.max_invalid_responses`` answers in
                a row could not be parsed.
            AuthenticationError: 401 (after any token refresh).
            BadRequestError: 400.
            PermissionDeniedError: 403.
            NotFoundError: 404: no such task for this user.
            APIError: Any other non-transient API error.
            RuntimeError: The session was closed.
        """
        check_wait_args(task_id, timeout, poll, on_status)
        # Waiting.wait, inlined rather than awaited: one coroutine frame less
        # per waiter (~420 bytes of ~1,900, which matters with 100,000 waiters).
        scheduler = self._waiting.scheduler()
        if self._tracing.tracer() is not None:
            task: Task = await self._wait("wait_for_task", task_id, timeout, poll, on_status)
            return task
        waiter = scheduler.add(task_id, policy=poll, timeout=timeout, on_status=on_status)
        try:
            return await waiter.future  # type: ignore[no-any-return]
        finally:
            scheduler.discard(waiter)

    async def _wait(
        self,
        operation: str,
        unit_id: str,
        timeout: float | None,
        poll: PollPolicy,
        on_status: Callable[[Any], Any] | None,
        tracker: Tracker[Any] | None = None,
    ) -> Any:
        """Wait for one unit of work on the shared scheduler, inside the operation's span.

        ``tracker`` None reads a task (the scheduler's own tracker). Its
        checks are the caller's; ``wait_for_task`` inlines the untraced case
        (one coroutine frame less per waiter).
        """
        scheduler = self._waiting.scheduler()
        with self._tracing.operation(operation, unit_id) as span:
            waiter = scheduler.add(
                unit_id,
                policy=poll,
                timeout=timeout,
                on_status=on_status if span is None else status_recorder(span, unit_id, on_status),
                tracker=tracker,
                context=self._tracing.capture(),
            )
            try:
                return await waiter.future
            finally:
                scheduler.discard(waiter)

    async def run_jobs(
        self,
        requests: Iterable[Request] | AsyncIterable[Request],
        *,
        max_concurrency: int = 16,
        max_per_second: float | None = None,
        timeout: float | None = None,
        poll: PollPolicy = DEFAULT_POLL,
        on_submitted: Callable[[Request, str], Any] | None = None,
        before_create: Callable[[Request], Awaitable[None]] | None = None,
    ) -> list[JobOutcome]:
        """Submit every request, wait for every task, and report each one.

        The input is consumed lazily (a request is pulled only when there is
        room for it), so a generator works and is never materialised. At most
        ``max_concurrency`` tasks are in flight: submitted (or being submitted)
        and not yet seen terminal. Submissions are paced to ``max_per_second``.
        Each create is retried by the session's transport only (one
        ``RetryPolicy`` budget per request); a 429 that outlasts those retries
        is that request's outcome (:class:`RateLimitError`, nothing created)
        and also halves the submission rate, which then recovers by a tenth of
        the cap per second, and holds the next submissions back for its
        ``Retry-After``. A request that would have to wait for that hold
        longer than ``RetryPolicy.max_retry_after`` (or ``timeout``) is not
        sent: its outcome is a :class:`RateLimitError` whose ``retry_after``
        says how long the service still asks to wait. A failure of one
        request (its submission, its task, its wait) is that request's
        outcome and never stops the others.

        Args:
            requests: Iterable or async iterable of request models.
            max_concurrency: Most tasks in flight at once.
            max_per_second: Most submissions per second, or None for no cap.
            timeout: Deadline in seconds of each task's wait (from its
                submission), or None. Also the longest a request waits for a
                429's Retry-After hold before it is sent.
            poll: Polling intervals; after a few tasks of a kind have finished
                the scheduler learns their typical duration and polls new ones
                around it instead (see ``_polling.py``).
            on_submitted: ``(request, task_id)``, called (and awaited if it
                returns an awaitable) as soon as each task id is known and
                before waiting starts, to journal it. If it raises, the whole
                run stops (no more submissions, waits cancelled; tasks already
                created keep running on the server) and the exception
                propagates: carrying on with a broken journal would lose track
                of work.
            before_create: ``(request)``, awaited right before *each attempt*
                of the request's create is sent, after its X-Date is stamped.
                It may raise :class:`CreateVetoedError` to stop that attempt
                (a bulk worker checks its lease on the line here: an attempt
                it lets through carries an X-Date no later than the check,
                which the service refuses 15 minutes on). The outcome is then
                that error, ``task_id`` None; nothing was created.

        Returns:
            One :class:`JobOutcome` per request, in input order. A failed
            submission has ``task_id`` None and the error (check
            ``error.possibly_created``: the task may exist); a failed task has
            :class:`TaskFailedError`; a wait past ``timeout`` has
            :class:`TaskTimeoutError` with the last Task seen.

        Raises:
            InvalidRequestError: Bad arguments (nothing is sent).
            Exception: Whatever ``on_submitted`` or the input iterable raised.
        """
        check_fanout_args(
            requests, max_concurrency, max_per_second, timeout, poll, on_submitted, before_create
        )
        fan = self._waiting.fan_out(
            requests,
            max_concurrency=max_concurrency,
            max_per_second=max_per_second,
            timeout=timeout,
            poll=poll,
            on_submitted=on_submitted,
            api=self,
            before_create=before_create,
        )
        with self._tracing.operation("run_jobs"):
            return await fan.results()

    def stream_jobs(
        self,
        requests: Iterable[Request] | AsyncIterable[Request],
        *,
        max_concurrency: int = 16,
        max_per_second: float | None = None,
        timeout: float | None = None,
        poll: PollPolicy = DEFAULT_POLL,
        on_submitted: Callable[[Request, str], Any] | None = None,
        before_create: Callable[[Request], Awaitable[None]] | None = None,
    ) -> AsyncIterator[JobOutcome]:
        """Like :meth:`run_jobs`, but yield each outcome as soon as it is known.

        Nothing starts until the first ``__anext__``. Memory stays bounded
        whatever the input's length: at most ``max_concurrency`` tasks are in
        flight and at most ``max_concurrency`` finished outcomes wait for the
        consumer (a slow consumer slows submissions down). Stopping early
        (``break``, ``aclose()``, cancellation) stops submitting and waiting
        and cancels every helper task; prefer
        ``async with contextlib.aclosing(s.stream_jobs(...)) as outcomes:`` so
        that this happens at once rather than when the iterator is collected.
        Arguments, outcomes and errors are those of :meth:`run_jobs`.

        Args:
            requests: Iterable or async iterable of request models.
            max_concurrency: Most tasks in flight at once.
            max_per_second: Most submissions per second, or None for no cap.
            timeout: Deadline in seconds of each task's wait, or None.
            poll: Polling intervals.
            on_submitted: Journal callback, as in :meth:`run_jobs`.
            before_create: Guard of each create attempt, as in :meth:`run_jobs`.

        Returns:
            An async iterator of :class:`JobOutcome`, in completion order.

        Raises:
            InvalidRequestError: Bad arguments, raised by this call itself.
        """
        check_fanout_args(
            requests, max_concurrency, max_per_second, timeout, poll, on_submitted, before_create
        )
        fan = self._waiting.fan_out(
            requests,
            max_concurrency=max_concurrency,
            max_per_second=max_per_second,
            timeout=timeout,
            poll=poll,
            on_submitted=on_submitted,
            api=self,
            before_create=before_create,
        )
        return self._tracing.stream("stream_jobs", fan.stream())
