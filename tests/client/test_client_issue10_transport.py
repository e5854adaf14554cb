"""Issue 10, the transport's share: Retry-After on the server's clock, the token
provider inside the error and time boundaries, a caller's ClientSession defaults,
one session across event loops, a pool wait that sent nothing, a response body
cap, and one retry budget per request for a 429."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from email.utils import formatdate
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from client_helpers import TOKEN, custom_server, make_session

from koodrive_async import (
    APITimeoutError,
    CredentialsError,
    FileInfo,
    InvalidRequestError,
    JobRequest,
    JobType,
    NotFoundError,
    PollPolicy,
    RateLimitError,
    ResponseValidationError,
    RetryPolicy,
    TaskStatus,
    _sender,
)
from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator

T = TypeVar("T")

FAST_POLL = PollPolicy(initial=0.01, multiplier=1.0, max_interval=0.01, jitter=0.0)
CREATED = {"code": 0, "msg": "ok", "taskId": "4242"}


def _job(name: str = "f") -> JobRequest:
    return JobRequest(
        JobType.COPY, src_container_id="c1", dst_container_id="c2", files=[FileInfo(name)]
    )


# ---- an emulator served from its own thread, for plain (non-async) tests ---------------------


class EmulatorThread:
    """A KooDriveEmulator on its own event loop in a background thread."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.emulator = KooDriveEmulator(config)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def start(self) -> None:
        self._thread.start()
        self.run(self.emulator.start())

    def stop(self) -> None:
        try:
            self.run(self.emulator.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()


@pytest.fixture
def emulator_thread() -> Iterator[EmulatorThread]:
    server = EmulatorThread(EmulatorConfig(task_duration=0.0))
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ---- item 8: one session, one asyncio.run per call --------------------------------------------


def test_one_session_serves_one_asyncio_run_after_another(
    emulator_thread: EmulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    unraisable: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(repr(u.exc_value)))
    provider_calls: list[bool] = []

    def provider(force: bool) -> str:
        provider_calls.append(force)
        return TOKEN

    s = make_session(emulator_thread.emulator.url, token_provider=provider)

    async def one_call(name: str) -> TaskStatus:
        # Concurrent calls contend for the provider's lock on this loop.
        ids = await asyncio.gather(*(s.submit(_job(f"{name}{i}")) for i in range(3)))
        done = await asyncio.gather(*(s.wait_for_task(i, poll=FAST_POLL, timeout=10) for i in ids))
        return done[0].status

    assert asyncio.run(one_call("a")) == TaskStatus.SUCCESS
    assert asyncio.run(one_call("b")) == TaskStatus.SUCCESS
    outcomes = asyncio.run(s.run_jobs([_job("c")], poll=FAST_POLL, timeout=10))
    assert [o.ok for o in outcomes] == [True]
    asyncio.run(s.close())
    assert s.closed
    for _ in range(3):
        gc.collect()
    assert unraisable == []
    assert provider_calls == [False]


def test_a_callers_session_from_another_loop_is_refused_clearly(
    emulator_thread: EmulatorThread,
) -> None:
    async def make() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    client = asyncio.run(make())
    s = make_session(emulator_thread.emulator.url, session=client)
    try:
        with pytest.raises(RuntimeError, match="belongs to another event loop.*closed"):
            asyncio.run(s.submit(_job()))
        assert emulator_thread.emulator.requests == []
    finally:
        asyncio.run(s.close())
        asyncio.run(client.close())


# ---- item 4: an HTTP-date Retry-After is the server's time ------------------------------------


def _rate_limited_then_created(offset: float, wait: int, *, date: str | None = None) -> Any:
    """A server whose clock is ``offset`` s off: one 429 asking for ``wait`` s, then 201s."""
    state = {"posts": 0}

    async def handler(_request: web.Request) -> web.Response:
        state["posts"] += 1
        now = int(time.time()) + int(offset)
        headers = {"Date": date if date is not None else formatdate(now, usegmt=True)}
        if state["posts"] == 1:
            headers["Retry-After"] = formatdate(now + wait, usegmt=True)
            return web.json_response(
                {"code": "APIGW.0308", "msg": "slow down"}, status=429, headers=headers
            )
        return web.json_response({"code": 0, "data": "4242"}, headers=headers)

    return handler, state


@pytest.mark.parametrize(("offset", "wait"), [(3600.0, 2), (-3600.0, 5)])
async def test_http_date_retry_after_is_measured_on_the_servers_clock(
    offset: float, wait: int, sleeps: list[float]
) -> None:
    handler, state = _rate_limited_then_created(offset, wait)
    async with custom_server(handler) as url, make_session(url) as s:
        assert await s.submit(_job()) == "4242"
    assert state["posts"] == 2
    assert sleeps == [float(wait)]


async def test_http_date_retry_after_without_a_date_uses_the_learnt_offset(
    sleeps: list[float],
) -> None:
    calls = {"n": 0}

    async def handler(_request: web.Request) -> web.Response:
        calls["n"] += 1
        now = int(time.time()) + 3600
        if calls["n"] == 2:
            # No usable Date on this answer: the offset learnt before applies.
            headers = {"Date": "not a date", "Retry-After": formatdate(now + 3, usegmt=True)}
            return web.json_response({"code": "APIGW.0308"}, status=429, headers=headers)
        return web.json_response(
            {"code": 0, "data": "4242"}, headers={"Date": formatdate(now, usegmt=True)}
        )

    async with custom_server(handler) as url, make_session(url) as s:
        await s.submit(_job())
        await s.submit(_job())
    (delay,) = sleeps
    assert 2.0 <= delay <= 4.5


# ---- item 9, seventh bullet: one retry budget per request, and what a 429 says ----------------


async def test_a_429_on_a_create_spends_the_one_budget_and_says_so(sleeps: list[float]) -> None:
    posts: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        posts.append(request.method)
        return web.json_response({"code": "APIGW.0308"}, status=429, headers={"Retry-After": "1"})

    async with (
        custom_server(handler) as url,
        make_session(
            url, retry=RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.002)
        ) as s,
    ):
        with pytest.raises(RateLimitError) as info:
            await s.submit(_job())
    assert posts == ["POST"] * 3
    assert sleeps == [1.0, 1.0]
    error = info.value
    assert (error.attempts, error.retries_exhausted, error.retry_after) == (3, True, 1.0)
    assert not error.possibly_created


async def test_a_429_asking_too_long_stops_early_with_the_servers_wait(
    sleeps: list[float],
) -> None:
    posts: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        posts.append(request.method)
        now = int(time.time()) + 3600  # the server's clock is an hour ahead
        headers = {
            "Date": formatdate(now, usegmt=True),
            "Retry-After": formatdate(now + 600, usegmt=True),
        }
        return web.json_response({"code": "APIGW.0308"}, status=429, headers=headers)

    async with custom_server(handler) as url, make_session(url) as s:
        with pytest.raises(RateLimitError) as info:
            await s.submit(_job())
    assert posts == ["POST"]
    assert sleeps == []
    error = info.value
    assert (error.attempts, error.retries_exhausted, error.retry_after) == (1, False, 600.0)


# ---- item 6: the token provider inside the error and time boundaries --------------------------


async def test_a_provider_that_raises_is_a_credentials_error_and_nothing_is_sent(
    koodrive_emulator: KooDriveEmulator,
) -> None:
    async def provider(_force: bool) -> str:
        raise ConnectionError("vault unreachable at https://vault.example/?secret=x")

    async with make_session(koodrive_emulator.url, token_provider=provider) as s:
        with pytest.raises(CredentialsError) as info:
            await s.submit(_job())
    assert koodrive_emulator.requests == []
    assert "ConnectionError" in str(info.value) and "nothing was sent" in str(info.value)
    assert "secret" not in str(info.value)
    assert isinstance(info.value.__cause__, ConnectionError)
    assert not info.value.possibly_created and not info.value.refresh


async def test_a_sync_provider_is_accepted(koodrive_emulator: KooDriveEmulator) -> None:
    calls: list[bool] = []

    def provider(force: bool) -> str:
        calls.append(force)
        return TOKEN

    async with make_session(koodrive_emulator.url, token_provider=provider) as s:
        task_id = await s.submit(_job())
        await s.get_task(task_id)
    assert calls == [False]
    assert [e.status for e in koodrive_emulator.requests] == [200, 200]


async def test_a_hanging_provider_is_bounded_by_the_timeout_once_for_all_callers(
    koodrive_emulator: KooDriveEmulator,
) -> None:
    calls: list[bool] = []

    async def provider(force: bool) -> str:
        calls.append(force)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async with make_session(koodrive_emulator.url, token_provider=provider, timeout=0.2) as s:
        results = await asyncio.gather(
            *(s.submit(_job(f"f{i}")) for i in range(5)), return_exceptions=True
        )
    assert all(isinstance(r, CredentialsError) for r in results), results
    assert "did not answer within 0.2s" in str(results[0])
    # The callers queued behind the hung call share its deadline instead of
    # each calling (and waiting for) the provider in turn.
    assert calls == [False]
    assert koodrive_emulator.requests == []


async def test_a_bad_refresh_after_a_401_is_a_credentials_error_that_says_what_was_sent() -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers["Authorization"])
        return web.json_response({"code": "401", "msg": "expired"}, status=401)

    async def provider(force: bool) -> str:
        return "" if force else "first-token"

    async with custom_server(handler) as url, make_session(url, token_provider=provider) as s:
        with pytest.raises(CredentialsError) as info:
            await s.submit(_job())
    assert seen == ["Bearer first-token"]
    assert info.value.refresh
    message = str(info.value)
    assert "refreshing the token after HTTP 401" in message
    assert "refused with HTTP 401" in message and "nothing was sent" not in message


async def test_a_provider_failure_is_one_requests_outcome_in_run_jobs(
    koodrive_emulator: KooDriveEmulator,
) -> None:
    calls: list[bool] = []

    async def provider(force: bool) -> str:
        calls.append(force)
        if len(calls) == 1:
            raise ConnectionError("vault unreachable")
        return TOKEN

    async with make_session(koodrive_emulator.url, token_provider=provider) as s:
        outcomes = await s.run_jobs(
            [_job(f"f{i}") for i in range(3)], max_concurrency=1, poll=FAST_POLL, timeout=10
        )
        koodrive_emulator.clock.advance(60)
    (failed,) = [o for o in outcomes if o.error is not None]
    assert isinstance(failed.error, CredentialsError)
    assert failed.task_id is None
    assert len(koodrive_emulator.state.tasks()) == 2


# ---- item 7: a caller's ClientSession defaults do not change the mapping ----------------------


async def test_a_callers_raise_for_status_session_does_not_change_the_mapping(
    koodrive_emulator: KooDriveEmulator,
) -> None:
    emu = koodrive_emulator
    async with aiohttp.ClientSession(
        raise_for_status=True, timeout=aiohttp.ClientTimeout(total=1e-6)
    ) as client:
        async with make_session(emu.url, session=client) as s:
            with pytest.raises(NotFoundError):
                await s.get_task("404404")
            assert [e.status for e in emu.requests] == [404]  # not retried
            emu.clear_requests()
            emu.inject(FaultKind.UNAVAILABLE, route="create_job", count=1)
            assert await s.submit(_job())
            assert [e.status for e in emu.requests] == [503, 200]  # retried


async def test_a_callers_session_without_decompression_still_reads_gzip_answers() -> None:
    async def handler(_request: web.Request) -> web.Response:
        response = web.json_response({"code": 0, "data": "4242"})
        response.enable_compression()
        return response

    async with (
        custom_server(handler) as url,
        aiohttp.ClientSession(auto_decompress=False) as client,
    ):
        async with make_session(url, session=client) as s:
            assert await s.submit(_job()) == "4242"


# ---- item 9, first bullet: a pool wait that ran out sent nothing ------------------------------


async def test_a_create_that_timed_out_waiting_for_a_pooled_connection_is_not_sent() -> None:
    posts: list[str] = []
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/hold":
            response = web.StreamResponse()
            await response.prepare(request)
            await release.wait()
            return response
        posts.append(request.method)
        return web.json_response({"code": 0, "data": f"{len(posts)}"})

    async with custom_server(handler) as url:
        async with make_session(
            url, max_connections=1, timeout=0.3, retry=RetryPolicy(max_attempts=1)
        ) as s:
            await s.submit(_job())
            owned = s._sender.http._session
            assert owned is not None
            # The pool's only connection, taken and kept busy.
            held = await owned.get(url + "/hold")
            try:
                with pytest.raises(APITimeoutError) as info:
                    await s.submit(_job())
            finally:
                held.close()
                release.set()
    assert not info.value.possibly_created
    assert "not sent" in str(info.value)
    assert posts == ["POST"]


async def test_a_create_whose_pool_wait_ran_out_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    posts: list[str] = []
    release = asyncio.Event()
    held: list[aiohttp.ClientResponse] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/hold":
            response = web.StreamResponse()
            await response.prepare(request)
            await release.wait()
            return response
        posts.append(request.method)
        return web.json_response({"code": 0, "data": f"id{len(posts)}"})

    async def free_the_pool(_delay: float) -> None:
        held.pop().close()  # during the back-off, the busy connection goes away

    monkeypatch.setattr(_sender, "_sleep", free_the_pool)
    async with custom_server(handler) as url:
        async with make_session(url, max_connections=1, timeout=0.3) as s:
            await s.submit(_job())
            owned = s._sender.http._session
            assert owned is not None
            held.append(await owned.get(url + "/hold"))
            try:
                assert await s.submit(_job()) == "id2"
            finally:
                release.set()
    assert posts == ["POST", "POST"]


# ---- item 9, second bullet: a response body cap -----------------------------------------------

MIB = 1024 * 1024


def _huge_body_server(status: int, *, with_length: bool) -> tuple[Any, dict[str, int]]:
    written = {"bytes": 0, "requests": 0}

    async def handler(request: web.Request) -> web.StreamResponse:
        written["requests"] += 1
        response = web.StreamResponse(status=status)
        if with_length:
            response.content_length = 50 * MIB
        await response.prepare(request)
        chunk = b"x" * (256 * 1024)
        try:
            for _ in range(200):  # 50 MiB
                await response.write(chunk)
                written["bytes"] += len(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the client hung up, as it should
        return response

    return handler, written


@pytest.mark.parametrize("with_length", [False, True])
async def test_a_huge_answer_to_a_create_is_refused_after_the_cap(with_length: bool) -> None:
    handler, written = _huge_body_server(200, with_length=with_length)
    async with custom_server(handler) as url, make_session(url, max_response_bytes=MIB) as s:
        with pytest.raises(ResponseValidationError) as info:
            await s.submit(_job())
    assert info.value.possibly_created  # the server answered 200: it may have acted
    assert "max_response_bytes" in str(info.value)
    assert written["requests"] == 1
    # Far less than the 50 MiB the server tried to send was taken in.
    assert written["bytes"] < 20 * MIB


async def test_a_huge_answer_to_a_get_is_refused_and_not_retried() -> None:
    handler, written = _huge_body_server(200, with_length=False)
    async with custom_server(handler) as url, make_session(url) as s:
        with pytest.raises(ResponseValidationError) as info:
            await s.get_task("1")
    assert not info.value.possibly_created
    assert f"({8 * MIB})" in str(info.value)
    assert written["requests"] == 1


async def test_a_huge_503_to_a_create_is_not_possibly_created() -> None:
    handler, _written = _huge_body_server(503, with_length=True)
    async with custom_server(handler) as url, make_session(url, max_response_bytes=MIB) as s:
        with pytest.raises(ResponseValidationError) as info:
            await s.submit(_job())
    assert not info.value.possibly_created


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "8"])
def test_max_response_bytes_is_validated(bad: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        make_session("http://127.0.0.1:1", max_response_bytes=bad)
    assert info.value.field == "max_response_bytes"
