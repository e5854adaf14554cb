"""Session and carrier tokens (API-EXTRA.md section D) over real loopback sockets.

``POST session`` trades an authorization code for a session, ``POST
session/refresh`` renews a session's access token, ``POST auth/refreshToken``
trades a carrier refresh token for a new access token (rotating the refresh
token). Issued tokens expire on the virtual clock: session tokens after
``session_idle_timeout`` seconds without use (sliding), carrier tokens after
their ``expiresIn``. The clock is frozen (speed 0) and moved by hand: no sleeps.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from emu_helpers import PREFIX, TRANSFER, Api, Reply, x_date

from koodrive_async.emulator import FaultKind, KooDriveEmulator

CODE = "FrbMohdqi86v6sMZ-auth-code-SECRET-1"
USER = "1008600000701011122"
REFRESH = "0e0e72d3c7e9e4444df6bc3fb111eaee18eb7b2393a939cb"
CARRIER_USER = "carrier-user-7"
STATIC = "static-token-SECRET-1"
HEX48 = re.compile(r"[0-9a-f]{48}")


async def _emulator(start_emulator: Any, **config: Any) -> tuple[KooDriveEmulator, Api]:
    config.setdefault("session_codes", {CODE: USER})
    config.setdefault("refresh_tokens", {REFRESH: CARRIER_USER})
    emu, api = await start_emulator(**config)
    emu.clock.speed = 0.0  # frozen: only advance() moves it
    return emu, api


async def _open(api: Api, code: str = CODE, path: str = "/session") -> Reply:
    return await api.request(
        "POST", PREFIX + path, json_body={"code": code, "domain": "kdconsole.example.cn:8080"}
    )


def _session_fields(reply: Reply) -> dict[str, Any]:
    assert reply.status == 200, reply.text
    assert reply.json["code"] in (0, "0")
    return reply.json["data"] if "data" in reply.json else reply.json


async def _call(api: Api, authorization: str, user: str = USER, route: str = "create") -> Reply:
    """A task route with the token written exactly as the session API handed it out."""
    headers = {"Authorization": authorization, "X-User-Id": user, "X-Date": x_date()}
    if route == "create":
        return await api.request(
            "POST", f"{PREFIX}/task/create", json_body=TRANSFER, headers=headers
        )
    return await api.request("GET", f"{PREFIX}/task/list", headers=headers)


async def _refresh_session(api: Api, authorization: str, session_id: str | None) -> Reply:
    headers = {"Authorization": authorization}
    if session_id is not None:
        headers["x-session-id"] = session_id
    return await api.request("POST", f"{PREFIX}/session/refresh", headers=headers)


async def _refresh_carrier(api: Api, authorization: str, refresh_token: Any) -> Reply:
    return await api.request(
        "POST",
        f"{PREFIX}/auth/refreshToken",
        json_body={"refreshToken": refresh_token},
        headers={"Authorization": authorization},
    )


def _assert_unauthorized(reply: Reply) -> None:
    assert reply.status == 401, reply.text
    assert reply.json["code"] == 13000103
    assert isinstance(reply.json["msg"], str) and reply.json["msg"]


# --------------------------------------------------------------------------- session


@pytest.mark.parametrize("path", ["/session", "/session/"])
async def test_create_session_answers_the_documented_fields(start_emulator, path) -> None:
    emu, api = await _emulator(start_emulator)
    data = _session_fields(await _open(api, path=path))
    assert set(data) == {"accessToken", "sessionId", "userId", "userInfo"}
    scheme, _, token = data["accessToken"].partition(" ")
    assert scheme == "Bearer" and HEX48.fullmatch(token)
    assert HEX48.fullmatch(data["sessionId"])
    assert data["userId"] == USER
    info = data["userInfo"]
    assert info["userId"] == USER and info["role"] in ("0", "1", "2")
    assert {"userName", "innerUserId", "tenantId", "orgId", "orgName", "userCount"} <= set(info)
    # The token works as handed out, scheme word included.
    assert (await _call(api, data["accessToken"])).status == 200
    assert emu.auth_counters["sessions_created"] == 1


async def test_create_session_refuses_unknown_codes_and_bad_bodies(start_emulator) -> None:
    _emu, api = await _emulator(start_emulator)
    _assert_unauthorized(await _open(api, code="not-a-known-code"))
    for body in ({}, {"code": ""}, {"code": "  "}, {"code": 5}, {"code": CODE, "domain": 1}):
        reply = await api.request("POST", f"{PREFIX}/session", json_body=body)
        assert (reply.status, reply.json["code"]) == (400, 13000102), body
        assert CODE not in reply.text
    reply = await api.request("POST", f"{PREFIX}/session", data=b"{not json")
    assert (reply.status, reply.json["code"]) == (400, 13000101)


async def test_any_code_opens_a_session_when_none_is_configured(start_emulator) -> None:
    _emu, api = await start_emulator()
    first = _session_fields(await _open(api, code="whatever"))
    again = _session_fields(await _open(api, code="whatever"))
    other = _session_fields(await _open(api, code="another"))
    assert first["userId"] == again["userId"] != other["userId"]
    assert re.fullmatch(r"[0-9]{19}", first["userId"])
    assert first["sessionId"] != again["sessionId"]


async def test_session_token_expires_after_the_idle_timeout_sliding(start_emulator) -> None:
    emu, api = await _emulator(start_emulator, session_idle_timeout=60)
    token = _session_fields(await _open(api))["accessToken"]
    for _ in range(5):
        emu.clock.advance(59.0)  # each use starts the window again
        assert (await _call(api, token, route="list")).status == 200
    emu.clock.advance(60.0)
    for route in ("create", "list"):
        _assert_unauthorized(await _call(api, token, route=route))
    assert emu.auth_counters["expired_token_refusals"] == 2


async def test_the_default_idle_timeout_is_twenty_minutes(start_emulator) -> None:
    emu, api = await _emulator(start_emulator)
    token = _session_fields(await _open(api))["accessToken"]
    emu.clock.advance(20 * 60 - 1)
    assert (await _call(api, token)).status == 200
    emu.clock.advance(20 * 60)
    _assert_unauthorized(await _call(api, token))


async def test_static_tokens_never_expire(start_emulator) -> None:
    emu, api = await _emulator(start_emulator, tokens={STATIC}, session_idle_timeout=1)
    emu.clock.advance(10 * 3600)
    assert (await _call(api, f"Bearer+{STATIC}")).status == 200
    emu.clock.advance(10 * 3600)
    assert (await _call(api, f"Bearer {STATIC}", route="list")).status == 200
    _assert_unauthorized(await _call(api, "Bearer unknown"))


async def test_session_refresh_renews_an_expired_token_once(start_emulator) -> None:
    emu, api = await _emulator(start_emulator, session_idle_timeout=30)
    data = _session_fields(await _open(api))
    old, session_id = data["accessToken"], data["sessionId"]
    emu.clock.advance(31.0)
    _assert_unauthorized(await _call(api, old))
    # The page's request writes the old token as Bearer+{token}.
    reply = await _refresh_session(api, "Bearer+" + old.split(" ", 1)[1], session_id)
    assert reply.status == 200, reply.text
    assert set(reply.json) == {"accessToken", "code", "msg"}  # flat, as the page shows
    new = reply.json["accessToken"]
    assert new.startswith("Bearer+") and HEX48.fullmatch(new.removeprefix("Bearer+"))
    assert new.removeprefix("Bearer+") != old.removeprefix("Bearer ")
    assert (await _call(api, new)).status == 200
    # The new token slides too; the replaced one stays refused.
    emu.clock.advance(29.0)
    assert (await _call(api, new)).status == 200
    _assert_unauthorized(await _call(api, old))
    counters = emu.auth_counters
    assert (counters["session_refreshes"], counters["sessions_created"]) == (1, 1)


async def test_session_refresh_refusals(start_emulator) -> None:
    emu, api = await _emulator(start_emulator)
    data = _session_fields(await _open(api))
    token, session_id = data["accessToken"], data["sessionId"]
    other = _session_fields(await _open(api))
    reply = await _refresh_session(api, token, None)
    assert (reply.status, reply.json["code"]) == (400, 13000102)
    _assert_unauthorized(await _refresh_session(api, token, "no-such-session"))
    _assert_unauthorized(await _refresh_session(api, other["accessToken"], session_id))
    _assert_unauthorized(await _refresh_session(api, "Bearer+unknown", session_id))
    _assert_unauthorized(await _refresh_session(api, "", session_id))
    fresh = await _refresh_session(api, token, session_id)
    assert fresh.status == 200
    # A second refresh with the replaced token: a client that refreshed twice.
    _assert_unauthorized(await _refresh_session(api, token, session_id))
    assert emu.auth_counters["session_refreshes"] == 1
    # The malformed Authorization never reached a session: 4, not 5.
    assert emu.auth_counters["refused_refreshes"] == 4
    assert session_id not in fresh.text


async def test_replaced_tokens_can_stay_valid(start_emulator) -> None:
    emu, api = await _emulator(start_emulator, revoke_replaced_tokens=False)
    data = _session_fields(await _open(api))
    reply = await _refresh_session(api, data["accessToken"], data["sessionId"])
    assert reply.status == 200
    assert (await _call(api, data["accessToken"])).status == 200
    assert (await _call(api, reply.json["accessToken"])).status == 200
    # And a refresh with it again is accepted (a late concurrent refresher).
    assert (await _refresh_session(api, data["accessToken"], data["sessionId"])).status == 200
    assert emu.auth_counters["session_refreshes"] == 2


@pytest.mark.parametrize(
    ("form", "create_prefix", "refresh_prefix"),
    [
        ("documented", "Bearer ", "Bearer+"),
        ("bare", "", ""),
        ("bearer_space", "Bearer ", "Bearer "),
        ("bearer_plus", "Bearer+", "Bearer+"),
        ("at_space", "AT ", "AT "),
    ],
)
@pytest.mark.parametrize("shape", ["documented", "flat", "data"])
async def test_session_response_variants(
    start_emulator, form, create_prefix, refresh_prefix, shape
) -> None:
    from koodrive_async.emulator import ResponseVariant

    variant = ResponseVariant(token_form=form, session_shape=shape, code_as="str")
    _emu, api = await _emulator(start_emulator, response_variant=variant)
    opened = await _open(api)
    assert opened.json["code"] == "0"
    assert ("data" in opened.json) is (shape != "flat")
    data = _session_fields(opened)
    assert HEX48.fullmatch(data["accessToken"].removeprefix(create_prefix))
    # A bare token needs the client's scheme word; one that carries it is sent as is.
    sent = data["accessToken"] if create_prefix else f"Bearer {data['accessToken']}"
    reply = await _refresh_session(api, sent, data["sessionId"])
    assert reply.status == 200, reply.text
    assert ("data" in reply.json) is (shape == "data")
    new = (reply.json["data"] if shape == "data" else reply.json)["accessToken"]
    assert HEX48.fullmatch(new.removeprefix(refresh_prefix))
    sent = new if refresh_prefix else f"Bearer {new}"
    assert (await _call(api, sent)).status == 200


# --------------------------------------------------------------------------- carrier


async def test_carrier_refresh_answers_session_info_and_rotates(start_emulator) -> None:
    emu, api = await _emulator(start_emulator, tokens={STATIC})
    now_ms = int(emu.clock.now() * 1000)
    reply = await _refresh_carrier(api, f"AT+{STATIC}", REFRESH)
    assert reply.status == 200, reply.text
    info = reply.json["data"]["sessionInfo"]
    assert set(info) == {"accessToken", "expiresIn", "issuedAt", "refreshToken"}
    assert info["accessToken"].startswith("AT ")
    assert HEX48.fullmatch(info["accessToken"].removeprefix("AT "))
    assert info["expiresIn"] == 1800 and type(info["expiresIn"]) is int
    assert isinstance(info["issuedAt"], str) and abs(int(info["issuedAt"]) - now_ms) <= 1
    assert info["refreshToken"] != REFRESH and HEX48.fullmatch(info["refreshToken"])
    # The carrier token works on the task routes, for the refresh token's user.
    assert (await _call(api, info["accessToken"], user=CARRIER_USER)).status == 200
    # The old refresh token is refused from now on; the new one works, with
    # the token issued with it (AT+ or AT, as the pages write it).
    _assert_unauthorized(await _refresh_carrier(api, f"AT+{STATIC}", REFRESH))
    token = info["accessToken"].removeprefix("AT ")
    again = await _refresh_carrier(api, f"AT {token}", info["refreshToken"])
    assert again.status == 200, again.text
    assert emu.auth_counters["carrier_refreshes"] == 2
    assert emu.auth_counters["refused_refreshes"] == 1


async def test_carrier_tokens_expire_after_expires_in_however_used(start_emulator) -> None:
    emu, api = await _emulator(start_emulator, carrier_expires_in=10)
    info = (await _refresh_carrier(api, "AT+initial", REFRESH)).json["data"]["sessionInfo"]
    assert info["expiresIn"] == 10
    for _ in range(3):
        emu.clock.advance(3.0)  # 9 s: use does not extend it
        assert (await _call(api, info["accessToken"], user=CARRIER_USER)).status == 200
    emu.clock.advance(1.0)
    _assert_unauthorized(await _call(api, info["accessToken"], user=CARRIER_USER))
    # The expired access token still authorises the refresh (that is its point).
    reply = await _refresh_carrier(api, info["accessToken"], info["refreshToken"])
    assert reply.status == 200, reply.text
    fresh = reply.json["data"]["sessionInfo"]["accessToken"]
    assert (await _call(api, fresh, user=CARRIER_USER)).status == 200


async def test_carrier_flat_shape_fractional_lifetime_and_no_rotation(start_emulator) -> None:
    from koodrive_async.emulator import ResponseVariant

    emu, api = await _emulator(
        start_emulator,
        response_variant=ResponseVariant(carrier_shape="flat", token_form="bare"),
        rotate_refresh_tokens=False,
        carrier_expires_in=1.5,
    )
    first = (await _refresh_carrier(api, "AT+initial", REFRESH)).json["data"]
    assert set(first) == {"accessToken", "expiresIn", "issuedAt", "refreshToken"}
    assert first["refreshToken"] == REFRESH and first["expiresIn"] == 1.5
    assert HEX48.fullmatch(first["accessToken"])
    second = await _refresh_carrier(api, "AT+" + first["accessToken"], REFRESH)
    assert second.status == 200
    # The replaced access token was revoked by the second refresh.
    _assert_unauthorized(await _call(api, "AT " + first["accessToken"], user=CARRIER_USER))
    emu.clock.advance(1.5)
    _assert_unauthorized(await _call(api, "AT " + second.json["data"]["accessToken"]))


async def test_carrier_refresh_refusals(start_emulator) -> None:
    emu, api = await _emulator(start_emulator, tokens={STATIC})
    session = _session_fields(await _open(api))
    _assert_unauthorized(await _refresh_carrier(api, "", REFRESH))
    _assert_unauthorized(await _refresh_carrier(api, "AT+not-a-known-token", REFRESH))
    # A session token is not a carrier token.
    _assert_unauthorized(await _refresh_carrier(api, session["accessToken"], REFRESH))
    _assert_unauthorized(await _refresh_carrier(api, f"AT+{STATIC}", "unknown-refresh-token"))
    for bad in (None, "", 7):
        reply = await _refresh_carrier(api, f"AT+{STATIC}", bad)
        assert (reply.status, reply.json["code"]) == (400, 13000102), bad
    reply = await api.request(
        "POST", f"{PREFIX}/auth/refreshToken", headers={"Authorization": f"AT+{STATIC}"}
    )
    assert (reply.status, reply.json["code"]) == (400, 13000101)
    assert emu.auth_counters["carrier_refreshes"] == 0
    # The refusals spent nothing: the refresh token still works.
    assert (await _refresh_carrier(api, f"AT+{STATIC}", REFRESH)).status == 200


async def test_a_lost_refresh_answer_still_rotated_the_refresh_token(start_emulator) -> None:
    emu, api = await _emulator(start_emulator)
    for kind, status in ((FaultKind.CREATED_BUT_500, 500), (FaultKind.CREATED_BUT_504, 504)):
        emu.inject(kind, route="refresh_carrier_token", count=1)
        reply = await _refresh_carrier(api, "AT+initial", REFRESH)
        assert reply.status == status, reply.text
        # The service acted: the refresh token it was sent is spent.
        _assert_unauthorized(await _refresh_carrier(api, "AT+initial", REFRESH))
        assert emu.auth_counters["carrier_refreshes"] == 1
        emu.reset()
        emu.clock.speed = 0.0
    # A refusing fault acts on nothing: the refresh token still works.
    emu.inject(FaultKind.SERVER_ERROR, route="refresh_carrier_token", count=1)
    assert (await _refresh_carrier(api, "AT+initial", REFRESH)).status == 500
    assert (await _refresh_carrier(api, "AT+initial", REFRESH)).status == 200


@pytest.mark.parametrize("route", ["create_session", "refresh_session", "refresh_carrier_token"])
async def test_faults_target_the_session_routes(start_emulator, route) -> None:
    emu, api = await _emulator(start_emulator)
    emu.inject(FaultKind.RATE_LIMIT, route=route, count=1, retry_after=2)
    data = _session_fields(await _open(api)) if route != "create_session" else {}
    if route == "create_session":
        reply = await _open(api)
    elif route == "refresh_session":
        reply = await _refresh_session(api, data["accessToken"], data["sessionId"])
    else:
        reply = await _refresh_carrier(api, "AT+x", REFRESH)
    assert (reply.status, reply.headers["Retry-After"]) == (429, "2")
    assert [e.fault for e in emu.requests if e.route == route] == [FaultKind.RATE_LIMIT]


# --------------------------------------------------------------------------- counters


async def test_one_refresh_per_expiry_is_countable(start_emulator) -> None:
    """A client renewing only when its token expired makes one refresh per expiry."""
    emu, api = await _emulator(start_emulator, session_idle_timeout=5)
    data = _session_fields(await _open(api))
    token, session_id = data["accessToken"], data["sessionId"]
    for _ in range(4):
        for _ in range(3):
            assert (await _call(api, token, route="list")).status == 200
        emu.clock.advance(5.0)
        _assert_unauthorized(await _call(api, token, route="list"))
        reply = await _refresh_session(api, token, session_id)
        token = reply.json["accessToken"]
    assert emu.auth_counters == {
        "sessions_created": 1,
        "session_refreshes": 4,
        "carrier_refreshes": 0,
        "expired_token_refusals": 4,
        "refused_refreshes": 0,
    }
    async with api.http.get(f"{emu.url}/_emulator/auth") as resp:
        shown = await resp.json()
    assert shown["counters"] == emu.auth_counters
    assert shown["sessions"] == 1
    assert token.removeprefix("Bearer+") not in json.dumps(shown)
    # reset forgets every issued token and zeroes the counters.
    emu.reset()
    emu.clock.speed = 0.0
    assert set(emu.auth_counters.values()) == {0}
    _assert_unauthorized(await _refresh_session(api, token, session_id))


# --------------------------------------------------------------------------- ledger


async def test_the_ledger_never_holds_session_secrets(start_emulator) -> None:
    emu, api = await _emulator(start_emulator, tokens={STATIC})
    opened = _session_fields(await _open(api))
    refreshed = await _refresh_session(api, opened["accessToken"], opened["sessionId"])
    carrier = await _refresh_carrier(api, f"AT+{STATIC}", REFRESH)
    info = carrier.json["data"]["sessionInfo"]
    assert (await _call(api, info["accessToken"], user=CARRIER_USER)).status == 200
    emu.inject(FaultKind.MALFORMED_JSON, route="refresh_carrier_token", count=1)
    await _refresh_carrier(api, info["accessToken"], info["refreshToken"])
    secrets = {
        CODE,
        REFRESH,
        STATIC,
        opened["sessionId"],
        opened["accessToken"].split(" ", 1)[1],
        refreshed.json["accessToken"].removeprefix("Bearer+"),
        info["accessToken"].removeprefix("AT "),
        info["refreshToken"],
    }
    entries = [entry.to_json() for entry in emu.requests]
    async with api.http.get(f"{emu.url}/_emulator/requests") as resp:
        served = await resp.text()
    for text in (json.dumps(entries), served, repr(emu.requests), repr(emu.config)):
        for secret in secrets:
            assert secret not in text
    by_route = {e["route"]: e for e in entries}
    assert by_route["create_session"]["body"] == {
        "code": "***",
        "domain": "kdconsole.example.cn:8080",
    }
    assert by_route["create_session"]["response"]["data"]["sessionId"] == "***"
    assert by_route["create_session"]["response"]["data"]["userId"] == USER
    assert by_route["create_session"]["response"]["code"] == 0  # the business code is kept
    assert by_route["refresh_session"]["headers"]["x-session-id"] == "***"
    assert by_route["refresh_session"]["headers"]["Authorization"] == "Bearer ***"
    assert by_route["refresh_session"]["response"]["accessToken"] == "***"
    assert by_route["refresh_carrier_token"]["body"] == {"refreshToken": "***"}
