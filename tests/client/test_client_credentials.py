"""Credentials that renew themselves and app signing, against the emulator over loopback.

The emulator's clock is frozen (speed 0) and moved by hand; the credentials
measure idle time and expiry on that same virtual clock (``clock=``), so no
test sleeps. Refreshes are counted by the emulator (``auth_counters``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from client_helpers import FAST_RETRY, custom_server, make_session

from koodrive_async import (
    AppAuth,
    AuthenticationError,
    CarrierCredentials,
    CredentialsError,
    InvalidRequestError,
    KooDriveSession,
    ResponseValidationError,
    SessionCredentials,
    SessionInfo,
    create_session,
)
from koodrive_async._call import Call
from koodrive_async._http import TOO_LARGE, Failure
from koodrive_async._session_api import (
    build_create_session,
    build_refresh_carrier,
    build_refresh_session,
)
from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator, ResponseVariant

CODE = "auth-code-SECRET-9d1e"
USER = "1008600000701011122"
REFRESH = "refresh-token-SECRET-0e0e72d3c7e9e4444df6"
CARRIER_USER = "carrier-user-7"
STATIC = "static-token-SECRET-77"
APP_ID = "a378331eca141163119eb602adb67b7802cc79cd33ba44c7d2fe61d1586c96a1"
APP_SECRET = "AppSecret-SECRET-5f1c9e-never-shown"
PREFIX = "/koodrive/ose/v1"


async def _emulator(**config: Any) -> KooDriveEmulator:
    config.setdefault("session_codes", {CODE: USER})
    config.setdefault("refresh_tokens", {REFRESH: CARRIER_USER})
    emu = KooDriveEmulator(EmulatorConfig(**config))
    await emu.start()
    emu.clock.speed = 0.0  # frozen: only advance() moves it
    return emu


def _session(emu: KooDriveEmulator, auth: Any, user: str = USER, **kwargs: Any) -> KooDriveSession:
    return KooDriveSession(
        emu.url, user_id=user, auth=auth, retry=FAST_RETRY, timeout=5.0, **kwargs
    )


async def _carrier_tokens(emu: KooDriveEmulator, access: str = "initial") -> dict[str, Any]:
    """An access and refresh token pair issued by the emulator, by a plain request."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{emu.url}{PREFIX}/auth/refreshToken",
            json={"refreshToken": REFRESH},
            headers={"Authorization": f"AT+{access}"},
        ) as resp,
    ):
        assert resp.status == 200
        info: dict[str, Any] = (await resp.json())["data"]["sessionInfo"]
        return info


# --------------------------------------------------------------------------- create_session


@pytest.mark.parametrize("shape", ["documented", "flat", "data"])
@pytest.mark.parametrize("form", ["documented", "bare", "bearer_plus", "at_space"])
async def test_create_session_then_renew_in_every_documented_shape(shape, form) -> None:
    variant = ResponseVariant(token_form=form, session_shape=shape, code_as="str")
    emu = await _emulator(response_variant=variant, session_idle_timeout=60)
    try:
        info = await create_session(emu.url, code=CODE, domain="kdconsole.example.cn:8080")
        assert isinstance(info, SessionInfo) and info.user_id == USER
        assert info.access_token not in repr(info) and info.session_id not in repr(info)
        assert shape == "flat" or info.user_info is not None
        creds = SessionCredentials(info.access_token, info.session_id, clock=emu.clock.now)
        async with _session(emu, creds) as s:
            await s.list_tasks()
            emu.clock.advance(61)  # the emulator's idle limit, not the client's
            await s.list_tasks()
            # The renewed token works, scheme word or not.
            await s.list_tasks()
        assert emu.auth_counters["session_refreshes"] == 1
        assert emu.auth_counters["expired_token_refusals"] == 1
    finally:
        await emu.close()


async def test_create_session_refusals_send_nothing_or_raise_typed() -> None:
    emu = await _emulator()
    try:
        with pytest.raises(AuthenticationError) as caught:
            await create_session(emu.url, code="not-a-known-code-SECRET")
        assert "not-a-known-code-SECRET" not in str(caught.value)
        for bad in ("", "  ", None, 5):
            with pytest.raises(InvalidRequestError):
                await create_session(emu.url, code=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequestError):
            await create_session("http://example.com", code=CODE)  # clear text off loopback
        assert emu.auth_counters["sessions_created"] == 0
        emu.inject(FaultKind.MALFORMED_JSON, route="create_session", count=1)
        with pytest.raises(Exception) as unreadable:
            await create_session(emu.url, code=CODE)
        assert type(unreadable.value).__name__ == "ResponseValidationError"
    finally:
        await emu.close()


# --------------------------------------------------------------------------- session tokens


async def test_session_token_renewed_ahead_of_the_idle_limit() -> None:
    emu = await _emulator(session_idle_timeout=10)
    try:
        info = await create_session(emu.url, code=CODE)
        seen: list[str] = []
        creds = SessionCredentials(
            info.access_token,
            info.session_id,
            idle_timeout=10,
            refresh_margin=2,
            clock=emu.clock.now,
            on_refresh=lambda c: seen.append(c.access_token),
        )
        async with _session(emu, creds) as s:
            for _ in range(5):
                emu.clock.advance(7.9)  # just inside the client's window: no renewal
                await s.list_tasks()
            emu.clock.advance(8.5)  # past it, before the service's limit
            await s.list_tasks()
        counters = emu.auth_counters
        assert (counters["session_refreshes"], counters["expired_token_refusals"]) == (1, 0)
        assert seen == [creds.access_token] and creds.refreshes == 1
        assert seen[0] not in info.access_token
    finally:
        await emu.close()


async def test_a_thousand_calls_meeting_a_401_make_one_refresh() -> None:
    emu = await _emulator(session_idle_timeout=5)
    try:
        info = await create_session(emu.url, code=CODE)
        # The client does not know the idle limit: every call meets the 401.
        creds = SessionCredentials(info.access_token, info.session_id, clock=emu.clock.now)
        async with _session(emu, creds) as s:
            await s.list_tasks()
            emu.clock.advance(6)
            pages = await asyncio.gather(*(s.list_tasks() for _ in range(1000)))
        assert len(pages) == 1000
        counters = emu.auth_counters
        assert counters["session_refreshes"] == 1
        assert counters["refused_refreshes"] == 0
        assert counters["expired_token_refusals"] >= 1
    finally:
        await emu.close()


async def test_a_refused_session_refresh_is_a_credentials_error() -> None:
    emu = await _emulator(session_idle_timeout=5)
    try:
        info = await create_session(emu.url, code=CODE)
        creds = SessionCredentials(info.access_token, "no-such-session-SECRET", clock=emu.clock.now)
        async with _session(emu, creds) as s:
            emu.clock.advance(6)
            with pytest.raises(CredentialsError) as caught:
                await s.list_tasks()
        error = caught.value
        assert error.refresh and "HTTP 401" in str(error)
        assert "no-such-session-SECRET" not in str(error) + repr(error)
        assert isinstance(error.__cause__, AuthenticationError)
    finally:
        await emu.close()


# --------------------------------------------------------------------------- carrier tokens


async def test_carrier_token_renewed_ahead_of_expiry_keeping_the_newest_refresh_token() -> None:
    emu = await _emulator(carrier_expires_in=2, tokens={STATIC})
    try:
        persisted: list[tuple[str, str]] = []

        async def save(c: CarrierCredentials) -> None:
            persisted.append((c.access_token, c.refresh_token))

        creds = CarrierCredentials(
            f"AT {STATIC}", REFRESH, expires_in=2, on_refresh=save, clock=emu.clock.now
        )
        async with _session(emu, creds, user=CARRIER_USER) as s:
            for _ in range(12):
                emu.clock.advance(0.5)
                await s.list_tasks()
        counters = emu.auth_counters
        # Lifetime 2 s, renewed 0.5 s ahead: every third step of 0.5 s.
        assert counters["carrier_refreshes"] == 4 == creds.refreshes
        assert counters["expired_token_refusals"] == 0
        assert len({refresh for _, refresh in persisted}) == 4  # rotated every time
        assert creds.refresh_token == persisted[-1][1] != REFRESH
        assert creds.expires_in is not None and 0 < creds.expires_in <= 2
        assert REFRESH not in repr(creds) and creds.refresh_token not in repr(creds)
    finally:
        await emu.close()


async def test_carrier_token_of_unknown_lifetime_renewed_after_a_401() -> None:
    emu = await _emulator(
        carrier_expires_in=3, response_variant=ResponseVariant(carrier_shape="flat")
    )
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{emu.url}{PREFIX}/auth/refreshToken",
                json={"refreshToken": REFRESH},
                headers={"Authorization": "AT+initial"},
            ) as resp:
                data = (await resp.json())["data"]
        creds = CarrierCredentials(data["accessToken"], data["refreshToken"], clock=emu.clock.now)
        async with _session(emu, creds, user=CARRIER_USER) as s:
            await s.list_tasks()
            emu.clock.advance(3)
            await s.list_tasks()  # 401, one refresh, retried
            assert creds.expires_in == 3  # learnt from the flat answer
            emu.clock.advance(2.5)
            await s.list_tasks()  # now ahead of expiry
        counters = emu.auth_counters
        assert counters["carrier_refreshes"] == 3  # the raw one, after the 401, ahead
        assert counters["expired_token_refusals"] == 1
    finally:
        await emu.close()


@pytest.mark.parametrize(
    "fault", [FaultKind.CREATED_BUT_500, FaultKind.DROP, FaultKind.MALFORMED_JSON]
)
async def test_a_refresh_that_may_have_been_acted_on_is_not_sent_again(fault) -> None:
    emu = await _emulator(carrier_expires_in=2, tokens={STATIC})
    try:
        creds = CarrierCredentials(STATIC, REFRESH, expires_in=2, clock=emu.clock.now)
        emu.inject(fault, route="refresh_carrier_token", count=1)
        async with _session(emu, creds, user=CARRIER_USER) as s:
            emu.clock.advance(1.9)
            with pytest.raises(CredentialsError) as caught:
                await s.list_tasks()
        sent = [e for e in emu.requests if e.route == "refresh_carrier_token"]
        assert len(sent) == 1
        text = str(caught.value) + repr(caught.value)
        assert REFRESH not in text and STATIC not in text
        cause = caught.value.__cause__
        assert cause is not None and REFRESH not in str(cause) + str(getattr(cause, "body", ""))
        assert not caught.value.refresh and creds.refresh_token == REFRESH
    finally:
        await emu.close()


async def test_a_refresh_the_service_did_not_act_on_is_retried() -> None:
    emu = await _emulator(carrier_expires_in=2, tokens={STATIC})
    try:
        creds = CarrierCredentials(STATIC, REFRESH, expires_in=2, clock=emu.clock.now)
        emu.inject(FaultKind.UNAVAILABLE, route="refresh_carrier_token", count=1)
        emu.inject(FaultKind.RATE_LIMIT, route="refresh_carrier_token", count=1, retry_after=0)
        async with _session(emu, creds, user=CARRIER_USER) as s:
            emu.clock.advance(1.9)
            await s.list_tasks()
        assert len([e for e in emu.requests if e.route == "refresh_carrier_token"]) == 3
        assert emu.auth_counters["carrier_refreshes"] == 1
    finally:
        await emu.close()


async def test_a_throttled_refresh_inside_a_bulk_runs_tasks_is_still_retried() -> None:
    # A bulk run hands its throttled creates back to itself (the context
    # variable its fan-out tasks inherit); a token refresh made from those
    # tasks is no create: it waits out its own 429 as usual instead of
    # failing the run as a credentials error.
    from koodrive_async._call import defer_throttled_creates

    emu = await _emulator(carrier_expires_in=2, tokens={STATIC})
    try:
        creds = CarrierCredentials(STATIC, REFRESH, expires_in=2, clock=emu.clock.now)
        emu.inject(FaultKind.RATE_LIMIT, route="refresh_carrier_token", count=1, retry_after=0)
        async with _session(emu, creds, user=CARRIER_USER) as s:
            emu.clock.advance(1.9)

            async def in_a_bulk_runs_task() -> None:
                defer_throttled_creates.set(True)
                await s.list_tasks()

            await asyncio.create_task(in_a_bulk_runs_task())
        assert len([e for e in emu.requests if e.route == "refresh_carrier_token"]) == 2
        assert emu.auth_counters["carrier_refreshes"] == 1
    finally:
        await emu.close()


async def test_a_hung_refresh_ends_within_the_timeout() -> None:
    emu = await _emulator(carrier_expires_in=2, tokens={STATIC})
    try:
        creds = CarrierCredentials(STATIC, REFRESH, expires_in=2, clock=emu.clock.now)
        emu.inject(FaultKind.LATENCY, route="refresh_carrier_token", count=1, latency=5.0)
        session = KooDriveSession(
            emu.url, user_id=CARRIER_USER, auth=creds, retry=FAST_RETRY, timeout=0.3
        )
        async with session as s:
            emu.clock.advance(1.9)
            # Bounded by the attempt's timeout (0.3 s), and it says the service
            # may have acted: the request was sent, its answer did not come.
            with pytest.raises(CredentialsError, match="APITimeoutError.*may have acted"):
                await asyncio.wait_for(s.list_tasks(), 3)
    finally:
        await emu.close()


async def test_a_caller_cancelled_during_a_refresh_does_not_cause_a_second_one() -> None:
    # The refresh reaches the service (which rotates the refresh token) while
    # its caller is cancelled, as a poll abandoned at its deadline is; the next
    # call must share that refresh, not send another with the spent token.
    emu = await _emulator(carrier_expires_in=2, tokens={STATIC})
    try:
        creds = CarrierCredentials(STATIC, REFRESH, expires_in=2, clock=emu.clock.now)
        emu.inject(FaultKind.LATENCY, route="refresh_carrier_token", count=1, latency=0.5)
        on_its_way = asyncio.Event()

        async def headers_sent(_s: object, _ctx: object, params: Any) -> None:
            if str(params.url).endswith("/auth/refreshToken"):
                on_its_way.set()

        trace = aiohttp.TraceConfig()
        trace.on_request_headers_sent.append(headers_sent)
        session = KooDriveSession(emu.url, user_id=CARRIER_USER, auth=creds, trace_configs=[trace])
        async with session as s:
            emu.clock.advance(1.9)
            first = asyncio.ensure_future(s.list_tasks())
            await asyncio.wait_for(on_its_way.wait(), 5)  # held by the latency fault
            first.cancel()
            await s.list_tasks()  # shares the refresh in flight, then succeeds
        refreshes = [e for e in emu.requests if e.route == "refresh_carrier_token"]
        assert len(refreshes) == 1
        assert creds.refreshes == 1
    finally:
        await emu.close()


async def test_on_refresh_failures_are_credentials_errors_and_the_token_is_kept() -> None:
    emu = await _emulator(carrier_expires_in=2, tokens={STATIC})
    try:

        def broken(_c: Any) -> None:
            raise OSError(f"disk full writing {REFRESH}")

        creds = CarrierCredentials(
            STATIC, REFRESH, expires_in=2, on_refresh=broken, clock=emu.clock.now
        )
        async with _session(emu, creds, user=CARRIER_USER) as s:
            emu.clock.advance(1.9)
            with pytest.raises(CredentialsError, match="on_refresh raised OSError") as caught:
                await s.list_tasks()
            assert REFRESH not in str(caught.value)
            assert creds.refresh_token != REFRESH
            await s.list_tasks()  # the renewed token is in use
    finally:
        await emu.close()


# --------------------------------------------------------------------------- app auth


async def test_app_auth_signs_every_attempt_end_to_end(caplog, sleeps) -> None:
    emu = await _emulator(apps={APP_ID: APP_SECRET})
    try:
        emu.inject(FaultKind.UNAVAILABLE, route="list_tasks", count=1)
        caplog.set_level(logging.DEBUG, logger="koodrive_async")
        async with _session(emu, AppAuth(APP_ID, APP_SECRET), user="1505084218764547200") as s:
            task_id = await s.create_transfer_task(src_user_id="u-a", dst_user_id="u-b")
            assert (await s.get_task(task_id)).task_id == task_id
            await s.list_tasks(status=[0, 1])  # a 503, then a re-signed retry
            await s.list_jobs()
        signed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("signed ")]
        assert len(signed) == 5  # one per attempt, the retry included
        port = emu.url.rsplit(":", 1)[1]
        assert f"host:127.0.0.1:{port}\n" in signed[0]
        assert "string to sign:\nHMAC-SHA256\n" in signed[0]
        assert all(APP_SECRET not in m for m in (r.getMessage() for r in caplog.records))
        assert len(sleeps) == 1
    finally:
        await emu.close()


async def test_app_auth_matches_an_independent_signature_and_a_bad_secret_is_refused() -> None:
    emu = await _emulator(apps={APP_ID: APP_SECRET})
    try:
        async with _session(emu, AppAuth(APP_ID, "wrong-SECRET")) as s:
            with pytest.raises(AuthenticationError):
                await s.list_tasks()
        # The signature the client sent, recomputed here from the written rules.
        captured: list[dict[str, str]] = []

        class Spy(AppAuth):
            __slots__ = ()

            def apply(self, credential: str, call: Any, headers: Any) -> None:
                super().apply(credential, call, headers)
                captured.append(dict(headers))

        async with _session(emu, Spy(APP_ID, APP_SECRET)) as s:
            await s.list_tasks()
        headers = captured[0]
        host = emu.url.split("//", 1)[1]
        canonical = "\n".join(
            [
                "GET",
                f"{PREFIX}/task/list/",
                "pageSize=100",
                f"host:{host}\nx-date:{headers['X-Date']}\nx-user-id:{USER}\n",
                "host;x-date;x-user-id",
                hashlib.sha256(b"").hexdigest(),
            ]
        )
        to_sign = "HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        signature = hmac.new(APP_SECRET.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        assert headers["Authorization"] == (
            f"HMAC-SHA256 AppId={APP_ID},SignedHeaders=host;x-date;x-user-id,Signature={signature}"
        )
        assert APP_SECRET not in repr(Spy(APP_ID, APP_SECRET))
    finally:
        await emu.close()


# --------------------------------------------------------------------------- arguments


async def test_auth_arguments_are_checked_before_anything_is_sent() -> None:
    url = "http://127.0.0.1:9"
    app = AppAuth(APP_ID, APP_SECRET)
    for kwargs in (
        {"auth": app, "token": "t"},
        {"auth": app, "token_provider": lambda _f: "t"},
        {"auth": "not-a-flow"},
        {},
    ):
        with pytest.raises(InvalidRequestError):
            KooDriveSession(url, user_id="u", **kwargs)
    for make in (
        lambda: SessionCredentials("", "sid"),
        lambda: SessionCredentials("t", " "),
        lambda: SessionCredentials("t", "sid", idle_timeout=0),
        lambda: SessionCredentials("t", "sid", on_refresh="nope"),  # type: ignore[arg-type]
        lambda: CarrierCredentials("t", ""),
        lambda: CarrierCredentials("t", "r", expires_in=-1),
        lambda: AppAuth(APP_ID, ""),
    ):
        with pytest.raises(InvalidRequestError) as caught:
            make()
        assert "SECRET" not in str(caught.value)
    creds = SessionCredentials("tok-SECRET", "sid-SECRET")
    assert "SECRET" not in repr(creds) + repr(CarrierCredentials("a-SECRET", "r-SECRET"))
    with pytest.raises(CredentialsError, match="not attached"):
        await creds.refresh(creds.current() or "", timeout=1)


# --------------------------------------------------------------------------- unreadable answers


@pytest.mark.parametrize(
    "body",
    [
        b'{"code": 0, "data": {"accessToken": "Bearer SECRET-AT-1", "userId": "u"}}',
        b'{"code": 0, "accessToken": "SECRET-AT-1", "accessToken": "SECRET-SID-1"}',
        b'{"code": 0, "data": {"accessToken": "SECRET-AT-1", "sessionId": ["SECRET-SID-1"]}',
    ],
)
async def test_an_unreadable_session_answer_keeps_no_secret(body: bytes) -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.path.endswith("/refresh"):
            unreadable = b'{"code": 0, "data": {"accessToken": ["SECRET-NEW-2"]}}'
            return web.Response(body=unreadable, content_type="application/json")
        return web.Response(body=body, content_type="application/json")

    async with custom_server(handler) as url:
        with pytest.raises(ResponseValidationError) as caught:
            await create_session(url, code=CODE)
        error = caught.value
        assert error.body == "" and error.possibly_created
        text = str(error) + repr(error) + repr(error.__dict__)
        assert "SECRET" not in text

        creds = SessionCredentials("SECRET-OLD", "SECRET-SID-0")
        async with make_session(url, token=None, auth=creds) as s:
            with pytest.raises(CredentialsError) as failed:
                await creds.refresh(creds.current() or "", timeout=2)
            await s.close()
        chain = failed.value
        text = ""
        while chain is not None:
            text += str(chain) + repr(chain) + repr(chain.__dict__)
            chain = chain.__cause__  # type: ignore[assignment]
        assert "SECRET" not in text


@pytest.mark.parametrize(
    "call",
    [
        build_refresh_carrier("AT-OLD", "RT-OLD"),
        build_refresh_session("Bearer AT-OLD", "SID-OLD"),
        build_create_session("code-1", None),
    ],
    ids=lambda c: c.route,
)
def test_an_answer_too_long_to_read_keeps_none_of_its_tokens(call: Call) -> None:
    # A session answer over max_response_bytes still went through (the refresh
    # may have rotated the tokens); the error made of its first bytes must not
    # carry them, as no error of these endpoints does.
    head = b'{"code":0,"data":{"accessToken":"AT-NEW-SECRET","refreshToken":"RT-NEW"'
    error = Failure(TOO_LARGE, "TooLarge", "too large", status=200, head=head).error(
        call, "t" * 58, cap=64, maybe_sent=True
    )
    assert isinstance(error, ResponseValidationError)
    assert "AT-NEW-SECRET" not in f"{error} {error!r} {error.body}"
    assert error.possibly_created
