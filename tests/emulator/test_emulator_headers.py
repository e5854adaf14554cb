"""Header rules: Authorization (401), X-User-Id, X-Date, X-Hw-Agentname (400), on every route."""

from __future__ import annotations

import email.utils
import time

import pytest
from emu_helpers import PREFIX, ROUTES, x_date

ALL_ROUTES = sorted(ROUTES)


def assert_error(reply, status: int, code: int) -> None:
    assert reply.status == status, reply.text
    assert reply.headers["Content-Type"].startswith("application/json")
    assert set(reply.json) == {"code", "msg"}
    assert reply.json["code"] == code
    assert isinstance(reply.json["msg"], str) and reply.json["msg"]


@pytest.mark.parametrize("route", ALL_ROUTES)
async def test_every_route_accepts_the_pages_headers(api, route) -> None:
    task_id = await api.create()
    reply = await api.call(route, task_id=task_id)
    assert reply.status == 200, reply.text
    assert reply.json["code"] == 0


@pytest.mark.parametrize("route", ALL_ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer+", "Bearer ", "tok-1", "Basic dG9rLTE=", "Token tok-1"],
)
async def test_missing_or_malformed_authorization_is_401(api, route, authorization) -> None:
    reply = await api.call(route, headers=api.headers(Authorization=authorization))
    assert_error(reply, 401, 13000103)


@pytest.mark.parametrize(
    "authorization", ["Bearer+good", "Bearer good", "bearer good", "Bearer  good", "AT good"]
)
async def test_scheme_words_and_separators_accepted(start_emulator, authorization) -> None:
    emu, api = await start_emulator(tokens={"good"})
    reply = await api.call("create_task", headers=api.headers(Authorization=authorization))
    assert reply.status == 200, reply.text
    assert len(emu.state.tasks()) == 1


async def test_unknown_token_is_401_when_tokens_are_configured(start_emulator) -> None:
    emu, api = await start_emulator(tokens={"good", "Bearer other"})
    for token, status in [("good", 200), ("other", 200), ("bad", 401), ("goodx", 401)]:
        reply = await api.call("create_task", headers=api.headers(Authorization=f"Bearer+{token}"))
        assert reply.status == status, (token, reply.text)
    assert len(emu.state.tasks()) == 2


async def test_any_non_empty_token_accepted_without_configured_tokens(api) -> None:
    reply = await api.call(
        "list_tasks", headers=api.headers(Authorization="Bearer+anything-at-all")
    )
    assert reply.status == 200


@pytest.mark.parametrize("route", ALL_ROUTES)
@pytest.mark.parametrize("user", [None, "", "   "])
async def test_x_user_id_is_mandatory(api, koodrive_emulator, route, user) -> None:
    reply = await api.call(route, headers=api.headers(X_User_Id=user))
    assert_error(reply, 400, 13000102)
    assert "X-User-Id" in reply.json["msg"]
    assert koodrive_emulator.state.tasks() == []


@pytest.mark.parametrize("route", ALL_ROUTES)
async def test_empty_host_is_400(api, koodrive_emulator, route) -> None:
    reply = await api.call(route, headers=api.headers(Host=""))
    assert_error(reply, 400, 13000102)
    assert "Host" in reply.json["msg"]
    assert koodrive_emulator.state.tasks() == []


@pytest.mark.parametrize("route", ALL_ROUTES)
@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "2025-11-03T07:01:40Z",  # ISO with separators
        "20251103T070140",  # no Z
        "20251103t070140z",  # lower case
        "20251103T0701Z",  # no seconds
        "20251332T070140Z",  # month 13
        "20250230T070140Z",  # 30 February
        "20251103T250140Z",  # hour 25
        "20251103T076140Z",  # minute 61
        "Mon, 03 Nov 2025 07:01:40 GMT",  # RFC 1123
        "1762153300",  # epoch
        "\u0662\u0660\u0662\u0665\u0661\u0661\u0660\u0663T\u0660\u0667\u0660\u0661\u0664\u0660Z",
    ],
)
async def test_x_date_missing_or_malformed_is_400(api, route, value) -> None:
    reply = await api.call(route, headers=api.headers(X_Date=value))
    assert_error(reply, 400, 13000102)
    assert "X-Date" in reply.json["msg"]


@pytest.mark.parametrize(
    ("offset", "status"),
    [
        (0, 200),
        (-60, 200),
        (-14 * 60, 200),
        (-(15 * 60 - 5), 200),
        (-(15 * 60 - 1), 200),
        (-(15 * 60 + 5), 400),
        (-3600, 400),
        (-86400 * 365, 400),
        (1, 400),
        (3, 400),
        (60, 400),
        (3600, 400),
    ],
)
async def test_x_date_within_15_minutes_and_not_in_the_future(api, offset, status) -> None:
    reply = await api.call("list_tasks", headers=api.headers(X_Date=x_date(offset)))
    assert reply.status == status, reply.text


async def test_x_date_uses_the_server_clock_with_skew(start_emulator) -> None:
    # The server runs 10 minutes ahead: a stamp 10 minutes "in the future" is now.
    _emu, ahead = await start_emulator(clock_skew=600)
    assert (await ahead.list(None)).status == 200
    reply = await ahead.request(
        "GET", f"{PREFIX}/task/list", headers=ahead.headers(X_Date=x_date(540))
    )
    assert reply.status == 200
    reply = await ahead.request(
        "GET", f"{PREFIX}/task/list", headers=ahead.headers(X_Date=x_date(-360))
    )
    assert reply.status == 400  # 16 minutes old for this server
    # The server runs a minute behind: a client stamping its own "now" is in the future.
    _emu, behind = await start_emulator(clock_skew=-60)
    reply = await behind.list(None)
    assert reply.status == 400
    assert "later" in reply.json["msg"]


async def test_date_header_follows_the_skewed_server_clock(start_emulator) -> None:
    _emu, api = await start_emulator(clock_skew=-7200)
    reply = await api.list(None)
    served = email.utils.parsedate_to_datetime(reply.headers["Date"]).timestamp()
    assert abs(served - (time.time() - 7200)) < 5


async def test_moving_the_virtual_clock_never_breaks_authentication(api, koodrive_emulator) -> None:
    koodrive_emulator.clock.advance(10 * 86400)
    assert (await api.list(None)).status == 200


async def test_x_hw_agentname_is_mandatory_on_share_tasks_only(api, koodrive_emulator) -> None:
    for value in (None, "", "  "):
        reply = await api.call("create_share_task", headers=api.headers(X_Hw_Agentname=value))
        assert_error(reply, 400, 13000102)
        assert "X-Hw-Agentname" in reply.json["msg"]
    assert koodrive_emulator.state.tasks() == []
    for route in ("create_task", "create_job", "list_tasks"):
        reply = await api.call(route, headers=api.headers(X_Hw_Agentname=None))
        assert reply.status == 200, (route, reply.text)


async def test_optional_headers_may_be_absent_or_present(api) -> None:
    minimal = {"Authorization": "Bearer+t", "X-User-Id": "u", "X-Date": x_date()}
    assert (await api.call("create_task", headers=minimal)).status == 200
    extra = {
        **minimal,
        "X-Traceid": "a" * 58,
        "language": "zh-CN",
        "x-hw-share-folder-id": "folder-1",
    }
    reply = await api.call("create_job", headers=extra)
    assert reply.status == 200
    assert reply.headers["X-Traceid"] == "a" * 58


async def test_header_names_are_case_insensitive(api) -> None:
    headers = {"authorization": "Bearer+t", "x-user-id": "u", "x-date": x_date()}
    assert (await api.call("create_task", headers=headers)).status == 200


async def test_authorization_is_checked_before_the_other_headers(api) -> None:
    reply = await api.call("create_task", headers={"X-Date": "garbage"})
    assert_error(reply, 401, 13000103)


async def test_the_x_date_age_limit_is_configurable(start_emulator) -> None:
    # A fence built on the service's X-Date rule is tested with a short limit.
    _emu, short = await start_emulator(x_date_max_age=5)
    fresh = await short.call("list_tasks", headers=short.headers(X_Date=x_date(-3)))
    assert fresh.status == 200, fresh.text
    stale = await short.call("list_tasks", headers=short.headers(X_Date=x_date(-8)))
    assert stale.status == 400 and "more than 5 seconds old" in stale.json["msg"]
