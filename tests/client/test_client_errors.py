"""Error mapping and retries over loopback: emulator faults, and a tiny custom
server for shapes the emulator cannot produce. Waits are recorded, not slept."""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web
from client_helpers import FAST_RETRY, TOKEN, custom_server, make_session

from koodrive_async import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    BadRequestError,
    FileInfo,
    JobAction,
    JobRequest,
    JobType,
    KooDriveError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    RetryPolicy,
    ServerError,
    ShareTaskRequest,
    ShareTaskType,
)
from koodrive_async.emulator import FaultKind, KooDriveEmulator

GET_ROUTE = "get_task"
POST_ROUTE = "create_task"


async def _create(s: Any) -> str:
    return str(await s.create_transfer_task(src_user_id="a", dst_user_id="b"))


# ---- retry / no retry per status and method (counted in the ledger) ------------------------


@pytest.mark.parametrize(
    ("kind", "status", "post_retried"),
    [
        (FaultKind.RATE_LIMIT, 429, True),
        (FaultKind.SERVER_ERROR, 500, False),
        (FaultKind.BAD_GATEWAY_HTML, 502, False),
        (FaultKind.UNAVAILABLE, 503, True),
        (FaultKind.CREATED_BUT_500, 500, False),
    ],
)
async def test_retry_matrix(
    koodrive_emulator: KooDriveEmulator,
    sleeps: list[float],
    kind: FaultKind,
    status: int,
    post_retried: bool,
) -> None:
    emu = koodrive_emulator
    async with make_session(emu.url) as s:
        task_id = await _create(s)
        emu.clear_requests()
        # GET: always retried; one fault, then success.
        emu.inject(kind, route=GET_ROUTE, count=1)
        assert (await s.get_task(task_id)).task_id == task_id
        assert [e.status for e in emu.requests] == [status, 200]
        emu.clear_requests()
        # POST: one fault; retried only when the server cannot have acted.
        emu.inject(kind, route=POST_ROUTE, count=1)
        tasks_before = len(emu.state.tasks())
        if post_retried:
            await _create(s)
            assert [e.status for e in emu.requests] == [status, 200]
            assert len(emu.state.tasks()) == tasks_before + 1
        else:
            with pytest.raises(ServerError) as info:
                await _create(s)
            assert info.value.status_code == status
            assert info.value.possibly_created
            assert "may have been created" in str(info.value)
            assert [e.status for e in emu.requests] == [status]
            created = 1 if kind is FaultKind.CREATED_BUT_500 else 0
            assert len(emu.state.tasks()) == tasks_before + created
    assert len(sleeps) == (1 if post_retried else 0) + 1


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_504_retried_for_get_only(sleeps: list[float], method: str) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.method)
        if len(seen) == 1:
            return web.Response(status=504, text="<html>Gateway Timeout</html>")
        return web.json_response({"taskId": "77", "code": 0})

    async with custom_server(handler) as url, make_session(url) as s:
        if method == "GET":
            assert (await s.get_task("77")).task_id == "77"
            assert len(seen) == 2
        else:
            with pytest.raises(ServerError) as info:
                await _create(s)
            assert info.value.status_code == 504 and info.value.possibly_created
            assert len(seen) == 1
    assert len(sleeps) == (1 if method == "GET" else 0)


async def test_retries_stop_at_max_attempts(
    koodrive_emulator: KooDriveEmulator, sleeps: list[float]
) -> None:
    emu = koodrive_emulator
    emu.inject(FaultKind.SERVER_ERROR, route=GET_ROUTE)
    async with make_session(emu.url) as s:
        with pytest.raises(ServerError) as info:
            await s.get_task("1")
    assert len(emu.requests) == FAST_RETRY.max_attempts
    assert info.value.code == "13000201"
    # Full jitter under a capped exponential bound.
    bounds = [min(FAST_RETRY.initial_backoff * 2**i, FAST_RETRY.max_backoff) for i in range(3)]
    assert len(sleeps) == 3
    assert all(0 <= wait <= bound for wait, bound in zip(sleeps, bounds, strict=True))
    # One trace id for the logical call, a fresh X-Date on each attempt.
    traces = {e.headers["X-Traceid"] for e in emu.requests}
    assert len(traces) == 1 and traces == {info.value.trace_id}


async def test_max_attempts_one_disables_retries(koodrive_emulator: KooDriveEmulator) -> None:
    emu = koodrive_emulator
    emu.inject(FaultKind.UNAVAILABLE, route=GET_ROUTE, count=1)
    async with make_session(emu.url, retry=RetryPolicy(max_attempts=1)) as s:
        with pytest.raises(ServerError):
            await s.get_task("1")
    assert len(emu.requests) == 1


async def test_x_date_restamped_on_every_attempt(sleeps: list[float]) -> None:
    stamps: list[tuple[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        stamps.append((request.headers["X-Date"], request.headers["X-Traceid"]))
        # A Date header that does not parse: nothing to learn a clock offset from.
        headers = {"Date": "not a date"}
        if len(stamps) < 3:
            return web.json_response({"code": 13000201}, status=503, headers=headers)
        return web.json_response({"taskId": "5", "code": 0}, headers=headers)

    now = [1_762_153_300.0]
    async with custom_server(handler) as url, make_session(url) as s:
        s._sender.clock.wall_clock = lambda: now[0]
        real_sleeps = sleeps

        async def tick_wait(delay: float) -> None:
            real_sleeps.append(delay)
            now[0] += 61

        import koodrive_async._sender as transport

        original = transport._sleep
        transport._sleep = tick_wait
        try:
            await s.get_task("5")
        finally:
            transport._sleep = original
    assert [d for d, _ in stamps] == ["20251103T070140Z", "20251103T070241Z", "20251103T070342Z"]
    assert len({t for _, t in stamps}) == 1


# ---- Retry-After -----------------------------------------------------------------------------


async def test_retry_after_seconds_is_honoured(
    koodrive_emulator: KooDriveEmulator, sleeps: list[float]
) -> None:
    emu = koodrive_emulator
    emu.inject(FaultKind.RATE_LIMIT, route=POST_ROUTE, count=2, retry_after=3)
    async with make_session(emu.url) as s:
        await _create(s)
    assert sleeps == [3.0, 3.0]
    assert [e.status for e in emu.requests] == [429, 429, 200]


async def test_retry_after_above_cap_raises_rate_limit(
    koodrive_emulator: KooDriveEmulator, sleeps: list[float]
) -> None:
    emu = koodrive_emulator
    emu.inject(FaultKind.RATE_LIMIT, route=GET_ROUTE, count=1, retry_after=120)
    async with make_session(emu.url) as s:
        with pytest.raises(RateLimitError) as info:
            await s.get_task("1")
    assert info.value.retry_after == 120.0
    assert info.value.code == "APIGW.0308"
    assert len(emu.requests) == 1 and sleeps == []


async def test_503_retry_after_above_cap_raises_server_error(
    koodrive_emulator: KooDriveEmulator, sleeps: list[float]
) -> None:
    emu = koodrive_emulator
    emu.inject(FaultKind.UNAVAILABLE, route=POST_ROUTE, count=1, retry_after=3600)
    async with make_session(emu.url) as s:
        with pytest.raises(ServerError) as info:
            await _create(s)
    assert info.value.status_code == 503 and not info.value.possibly_created
    assert len(emu.requests) == 1 and sleeps == []


async def test_rate_limit_exhausted_is_rate_limit_error(
    koodrive_emulator: KooDriveEmulator, sleeps: list[float]
) -> None:
    emu = koodrive_emulator
    emu.inject(FaultKind.RATE_LIMIT, route=GET_ROUTE, retry_after=0)
    async with make_session(emu.url) as s:
        with pytest.raises(RateLimitError) as info:
            await s.get_task("1")
    assert info.value.retry_after == 0.0
    assert len(emu.requests) == FAST_RETRY.max_attempts
    assert sleeps == [0.0] * (FAST_RETRY.max_attempts - 1)


async def test_retry_after_http_date(sleeps: list[float]) -> None:
    count = [0]

    async def handler(_request: web.Request) -> web.Response:
        count[0] += 1
        if count[0] == 1:
            when = format_datetime(datetime.fromtimestamp(time.time() + 30, UTC), usegmt=True)
            return web.Response(status=429, headers={"Retry-After": when})
        return web.json_response({"taskId": "1", "code": 0})

    async with custom_server(handler) as url, make_session(url) as s:
        await s.get_task("1")
    assert len(sleeps) == 1 and 27 <= sleeps[0] <= 30


# ---- connection failures and timeouts ----------------------------------------------------------


@pytest.mark.usefixtures("sleeps")
async def test_dropped_connection_get_retried_post_not(
    koodrive_emulator: KooDriveEmulator,
) -> None:
    emu = koodrive_emulator
    async with make_session(emu.url) as s:
        task_id = await _create(s)
        emu.clear_requests()
        emu.inject(FaultKind.DROP, route=GET_ROUTE, count=1)
        assert (await s.get_task(task_id)).task_id == task_id
        assert [e.status for e in emu.requests] == [None, 200]
        emu.clear_requests()
        emu.inject(FaultKind.DROP, route=POST_ROUTE, count=1)
        with pytest.raises(APIConnectionError) as info:
            await _create(s)
    assert info.value.possibly_created
    assert not isinstance(info.value, APITimeoutError)
    assert [e.status for e in emu.requests] == [None]
    assert info.value.trace_id and info.value.trace_id in str(info.value)
    assert info.value.path == "/koodrive/ose/v1/task/create"
    # aiohttp's exception is named, not chained: it holds the request headers.
    assert info.value.__cause__ is None
    assert "ServerDisconnectedError" in str(info.value)


async def test_connection_refused_is_retried_even_for_post(sleeps: list[float]) -> None:
    # Bind then close a socket: nothing listens on that port any more.
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    async with make_session(f"http://127.0.0.1:{port}") as s:
        with pytest.raises(APIConnectionError) as info:
            await _create(s)
    assert not info.value.possibly_created
    assert len(sleeps) == FAST_RETRY.max_attempts - 1
    assert "not sent" in str(info.value)


async def test_read_timeout_get_retried_post_not(
    koodrive_emulator: KooDriveEmulator, sleeps: list[float]
) -> None:
    emu = koodrive_emulator
    async with make_session(emu.url) as setup:
        task_id = await _create(setup)
    # Generous for a loopback answer, short against the injected latency.
    async with make_session(emu.url, timeout=0.3) as s:
        slow_get = emu.inject(FaultKind.LATENCY, route=GET_ROUTE, count=1, latency=1.0)
        assert (await s.get_task(task_id)).task_id == task_id
        assert slow_get.hits == 1
        slow_post = emu.inject(FaultKind.LATENCY, route=POST_ROUTE, latency=1.0)
        with pytest.raises(APITimeoutError) as info:
            await _create(s)
        assert slow_post.hits == 1
    assert info.value.possibly_created
    assert isinstance(info.value, TimeoutError)
    assert len(sleeps) == 1


async def test_everything_timing_out_on_get(
    koodrive_emulator: KooDriveEmulator, sleeps: list[float]
) -> None:
    emu = koodrive_emulator
    slow = emu.inject(FaultKind.LATENCY, route=GET_ROUTE, latency=0.3)
    async with make_session(emu.url, timeout=0.05, retry=RetryPolicy(max_attempts=2)) as s:
        with pytest.raises(APITimeoutError) as info:
            await s.get_task("1")
    assert slow.hits == 2 and len(sleeps) == 1
    assert not info.value.possibly_created


# ---- response shapes ------------------------------------------------------------------------


async def test_malformed_json_on_get_and_post(
    koodrive_emulator: KooDriveEmulator, sleeps: list[float]
) -> None:
    emu = koodrive_emulator
    async with make_session(emu.url) as s:
        task_id = await _create(s)
        emu.inject(FaultKind.MALFORMED_JSON, count=2)
        with pytest.raises(ResponseValidationError) as got:
            await s.get_task(task_id)
        assert got.value.status_code == 200 and not got.value.possibly_created
        with pytest.raises(ResponseValidationError) as created:
            await _create(s)
    # The create was carried out: the error says so, and it was not repeated.
    assert created.value.possibly_created
    assert len(emu.state.tasks()) == 2
    assert sleeps == []


async def test_html_502_page_keeps_the_body(
    koodrive_emulator: KooDriveEmulator, sleeps: list[float]
) -> None:
    emu = koodrive_emulator
    emu.inject(FaultKind.BAD_GATEWAY_HTML, route=GET_ROUTE)
    async with make_session(emu.url, retry=RetryPolicy(max_attempts=2)) as s:
        with pytest.raises(ServerError) as info:
            await s.get_task("1")
    assert info.value.status_code == 502
    assert info.value.code is None
    assert info.value.body is not None and "<html" in info.value.body.lower()
    assert len(sleeps) == 1


async def test_unknown_task_is_not_found(koodrive_emulator: KooDriveEmulator) -> None:
    async with make_session(koodrive_emulator.url) as s:
        with pytest.raises(NotFoundError) as info:
            await s.get_task("1234567890123456789")
    error = info.value
    assert error.status_code == 404 and error.code == "13000305" and error.msg
    message = str(error)
    assert "GET /koodrive/ose/v1/task/1234567890123456789" in message
    assert "HTTP 404" in message and "code=13000305" in message
    assert f"trace_id={error.trace_id}" in message
    assert koodrive_emulator.requests[0].headers["X-Traceid"] == error.trace_id


async def test_another_users_task_is_not_found(koodrive_emulator: KooDriveEmulator) -> None:
    async with make_session(koodrive_emulator.url) as s:
        task_id = await _create(s)
    async with make_session(koodrive_emulator.url, user_id="user-2") as other:
        with pytest.raises(NotFoundError):
            await other.get_task(task_id)


HTML = {"Content-Type": "text/html"}
SHAPES: list[tuple[int, dict[str, str], bytes, type[KooDriveError], str | None]] = [
    (200, HTML, b"<html><body>Welcome</body></html>", ResponseValidationError, None),
    (200, {}, b"", ResponseValidationError, None),
    (200, {}, b'["not", "an", "object"]', ResponseValidationError, None),
    (200, {}, b'{"code": "13000102", "msg": "PARAMETER_INVALID"}', APIError, "13000102"),
    (200, {}, b'{"code": 13000414, "msg": "quota"}', APIError, "13000414"),
    (200, {}, b'{"code": 0, "msg": "ok"}', ResponseValidationError, None),
    (200, {}, b'{"taskId": "1", "status": {"x": 1}, "code": 0}', ResponseValidationError, None),
    (403, {}, b'{"code": "APIGW.0101", "msg": "denied"}', PermissionDeniedError, "APIGW.0101"),
    (400, {}, b'{"code": "13000101", "msg": "Bad Request"}', BadRequestError, "13000101"),
    (404, HTML, b"<html>nope</html>", NotFoundError, None),
    (418, {}, b"", APIError, None),
    (302, {"Location": "http://127.0.0.2/"}, b"", APIError, None),
]  # fmt: skip


@pytest.mark.parametrize(("status", "headers", "body", "cls", "code"), SHAPES)
async def test_custom_response_shapes(
    status: int, headers: dict[str, str], body: bytes, cls: type[KooDriveError], code: str | None
) -> None:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(status=status, headers=headers, body=body)

    async with custom_server(handler) as url, make_session(url) as s:
        with pytest.raises(KooDriveError) as info:
            await s.get_task("1")
    assert type(info.value) is cls
    if isinstance(info.value, APIError):
        assert info.value.code == code
        assert info.value.status_code == status
        assert info.value.body == body.decode()
    message = str(info.value)
    assert "GET /koodrive/ose/v1/task/1" in message and f"HTTP {status}" in message


async def test_create_without_task_id_is_validation_error() -> None:
    async def handler(_request: web.Request) -> web.Response:
        return web.json_response({"code": 0, "msg": "Success"})

    async with custom_server(handler) as url, make_session(url) as s:
        for call in (
            _create(s),
            s.create_job(
                JobType.COPY, src_container_id="s", dst_container_id="d", files=[FileInfo("f")]
            ),
        ):
            with pytest.raises(ResponseValidationError) as info:
                await call
            assert info.value.possibly_created


# ---- logs and secrets --------------------------------------------------------------------------


@pytest.mark.usefixtures("sleeps")
async def test_debug_logs_every_attempt_without_secrets(
    koodrive_emulator: KooDriveEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu = koodrive_emulator
    password = "archive-pass-991"
    kdstoken = "kds-token-4471"
    caplog.set_level(logging.DEBUG, logger="koodrive_async")
    errors: list[str] = []
    async with make_session(emu.url) as s:
        emu.inject(FaultKind.UNAVAILABLE, route="create_job", count=1)
        await s.submit(
            JobRequest(
                JobType.DECOMPRESS,
                src_container_id="s",
                dst_container_id="d",
                files=[FileInfo("f")],
                action_type=JobAction.DECOMPRESS_ALL,
                password=password,
            )
        )
        await s.submit(
            ShareTaskRequest(
                ShareTaskType.PACKAGE,
                container_id="c",
                file_ids=["f"],
                share_id="s",
                kdstoken=kdstoken,
                zip_name="z",
            )
        )
        emu.inject(FaultKind.SERVER_ERROR, route="create_share_task", count=1)
        try:
            await s.submit(
                ShareTaskRequest(
                    ShareTaskType.PACKAGE,
                    container_id="c",
                    file_ids=["f"],
                    share_id="s",
                    kdstoken=kdstoken,
                    zip_name="z",
                )
            )
        except ServerError as exc:
            errors += [str(exc), repr(exc), str(exc.body)]
        session_repr = repr(s)
    text = caplog.text
    trace = emu.requests[0].headers["X-Traceid"]
    assert re.search(rf"POST /koodrive/ose/v1/jobs attempt 1/4 trace_id={trace}", text)
    assert re.search(rf"HTTP 503; retrying in .* trace_id={trace}", text)
    assert re.search(rf"attempt 2/4 trace_id={trace}", text)
    assert "is not retried (a POST that may have been carried out)" in text
    for secret in (TOKEN, password, kdstoken):
        assert secret not in text
        assert all(secret not in e for e in errors)
        assert secret not in session_repr
    assert all(r.name.startswith("koodrive_async") for r in caplog.records)
