"""The per-user quota: a token bucket per X-User-Id on the virtual clock, 429 with Retry-After."""

from __future__ import annotations

import asyncio

import pytest
from emu_helpers import PREFIX

from koodrive_async.emulator import EmulatorConfig, FaultKind, Quota, QuotaCounters


async def test_burst_then_the_refill_rate_on_a_frozen_clock(start_emulator) -> None:
    emu, api = await start_emulator(clock_speed=0, quota=Quota(rate=2, burst=3))
    for _ in range(3):
        await api.create()
    refused = await api.call("create_task")
    assert refused.status == 429
    assert refused.json["code"] == "APIGW.0308" and refused.json["msg"]
    assert refused.headers["Retry-After"] == "0.500"  # one token at 2/s
    assert len(emu.state.tasks()) == 3  # nothing created by the refusal
    entry = emu.requests[-1]
    assert entry.throttled and entry.status == 429 and entry.task_id is None and entry.fault is None
    emu.clock.advance(0.25)
    assert (await api.call("create_task")).headers["Retry-After"] == "0.250"
    emu.clock.advance(0.25)
    await api.create()  # the promised token is there
    assert (await api.call("create_task")).status == 429
    emu.clock.advance(10)  # a quiet spell refills to the burst, not beyond
    for _ in range(3):
        await api.create()
    assert (await api.call("create_task")).status == 429
    assert emu.quota_counters == {"user-1": QuotaCounters(accepted=7, throttled=4)}


async def test_q_per_second_over_a_long_run_of_virtual_time(start_emulator) -> None:
    # 20 creates/s with a burst of 5, offered 100/s for 10 virtual seconds.
    emu, api = await start_emulator(clock_speed=0, quota={"rate": 20, "burst": 5})
    for _ in range(1000):
        await api.call("create_task")
        emu.clock.advance(0.01)
    counters = emu.quota_counters["user-1"]
    assert counters.accepted == 5 + 20 * 10 - 1 or counters.accepted == 5 + 20 * 10
    assert counters.accepted + counters.throttled == 1000
    assert len(emu.state.tasks()) == counters.accepted
    assert sum(e.throttled for e in emu.requests) == counters.throttled


async def test_one_bucket_per_user(start_emulator) -> None:
    emu, api = await start_emulator(clock_speed=0, quota=Quota(rate=1, burst=1))
    other = api.as_user("user-2")
    await api.create()
    assert (await api.call("create_task")).status == 429
    await other.create()  # user-2's bucket is its own
    assert (await other.call("create_job")).status == 429
    assert emu.quota_counters == {
        "user-1": QuotaCounters(1, 1),
        "user-2": QuotaCounters(1, 1),
    }


@pytest.mark.parametrize(("scope", "throttles_gets"), [("creates", False), ("all", True)])
async def test_scope_creates_only_or_every_request(start_emulator, scope, throttles_gets) -> None:
    emu, api = await start_emulator(clock_speed=0, quota=Quota(rate=1, burst=1, scope=scope))
    task_id = await api.create()
    statuses = {(await api.get(task_id)).status for _ in range(3)}
    assert statuses == ({429} if throttles_gets else {200})
    assert (await api.list()).status == (429 if throttles_gets else 200)


@pytest.mark.parametrize(
    ("rate", "whole", "header"), [(3, False, "0.334"), (3, True, "1"), (0.25, False, "4")]
)
async def test_retry_after_format(start_emulator, rate, whole, header) -> None:
    _, api = await start_emulator(clock_speed=0, quota=Quota(rate, 1, whole_seconds=whole))
    await api.create()
    assert (await api.call("create_task")).headers["Retry-After"] == header


async def test_real_clock_refills_in_real_time(start_emulator) -> None:
    # At clock speed 1 the buckets follow real time: a short, bounded wait.
    emu, api = await start_emulator(quota=Quota(rate=50, burst=1))
    await api.create()
    refused = await api.call("create_task")
    assert refused.status == 429
    wait = float(refused.headers["Retry-After"])
    assert 0 < wait <= 0.02
    await asyncio.sleep(wait + 0.01)
    await api.create()


async def test_a_refusing_fault_answers_first_and_spends_nothing(start_emulator) -> None:
    emu, api = await start_emulator(clock_speed=0, quota=Quota(rate=1, burst=1))
    emu.inject(FaultKind.SERVER_ERROR, route="create_task", count=1)
    assert (await api.call("create_task")).status == 500
    await api.create()  # the token is still there
    assert emu.quota_counters["user-1"] == QuotaCounters(1, 0)


async def test_set_quota_lifts_and_changes_it_reset_restores_the_configured_one(
    start_emulator,
) -> None:
    emu, api = await start_emulator(clock_speed=0, quota=Quota(rate=1, burst=1))
    await api.create()
    emu.set_quota(None)
    assert emu.quota is None
    for _ in range(3):
        await api.create()
    emu.set_quota({"rate": 1, "burst": 2})
    await api.create()
    await api.create()
    assert (await api.call("create_task")).status == 429
    emu.reset()
    assert emu.quota == Quota(rate=1, burst=1) and emu.quota_counters == {}
    with pytest.raises(ValueError, match="unknown quota fields"):
        emu.set_quota({"rate": 1, "bust": 2})


async def test_admin_routes_show_and_set_the_quota(start_emulator, http) -> None:
    emu, api = await start_emulator(clock_speed=0)
    admin = emu.url + "/_emulator/quota"
    async with http.get(admin) as resp:
        assert await resp.json() == {"quota": None, "counters": {}}
    async with http.post(admin, json={"rate": 1, "burst": 1, "scope": "all"}) as resp:
        assert resp.status == 200
        assert (await resp.json())["quota"]["scope"] == "all"
    await api.list()
    assert (await api.list()).status == 429
    async with http.get(admin) as resp:
        shown = await resp.json()
    assert shown["counters"] == {"user-1": {"accepted": 1, "throttled": 1}}
    async with http.post(admin, json={"rate": -1}) as resp:
        assert resp.status == 400 and "rate" in (await resp.json())["error"]
    async with http.post(admin, json={"quota": None}) as resp:
        assert (await resp.json()) == {"quota": None}
    assert (await api.list()).status == 200
    async with http.get(emu.url + f"{PREFIX}/task/list") as resp:
        assert resp.status == 401  # no credentials: the quota is lifted, auth still holds


@pytest.mark.parametrize(
    "bad",
    [{"rate": 0}, {"rate": float("nan")}, {"rate": 1, "burst": 0.5}, {"rate": True}, {"burst": 2}],
)
def test_bad_quotas_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        EmulatorConfig(quota=bad)


def test_the_command_line_sets_a_quota() -> None:
    from koodrive_async.emulator.__main__ import _quota, build_parser

    args = build_parser().parse_args(["--quota", "5", "--quota-burst", "10"])
    assert _quota(args) == Quota(5, 10)
    assert _quota(build_parser().parse_args(["--quota", "5", "--quota-scope", "all"])) == Quota(
        5, 5, scope="all"
    )
    assert _quota(build_parser().parse_args([])) is None
