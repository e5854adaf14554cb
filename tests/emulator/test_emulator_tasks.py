"""Task timelines on the virtual clock, outcomes, per-user scoping and GET task/{id}."""

from __future__ import annotations

import calendar
import re
import time
from datetime import datetime

import pytest
from emu_helpers import JOB_COPY, PREFIX, SHARE_PACKAGE

from koodrive_async.emulator import EmulatorConfig

ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def parse_iso(value: str) -> float:
    assert ISO_MS.fullmatch(value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("skew", [0.0, 600.0])
async def test_times_are_on_the_servers_wall_clock_however_far_virtual_time_ran(
    start_emulator, skew: float
) -> None:
    # Two virtual hours pass in no time: the service's clock (``Date``, the
    # X-Date check) has not moved, so neither may a new task's createTime.
    # A createTime ahead by the virtual hours made bulk reconciliation, which
    # reads job times against its own clock, miss its own jobs and resend them.
    emu, api = await start_emulator(task_duration=10.0, clock_speed=0.0, clock_skew=skew)
    emu.clock.advance(7200.0)
    task_id = await api.create()
    job_id = await api.create("create_job", JOB_COPY)
    wall = time.time() + skew
    task = (await api.get(task_id)).json
    assert abs(parse_iso(task["createTime"]) - wall) < 2.0, (task["createTime"], wall)
    info = (await api.request("GET", f"{PREFIX}/{job_id}")).json["data"]["jobInfo"]
    created = calendar.timegm(time.strptime(info["createTime"], "%Y%m%d%H%M%S"))
    assert abs(created - wall) < 2.0, (info["createTime"], wall)
    # Durations are still the virtual clock's: done 10 virtual seconds later.
    emu.clock.advance(10.0)
    done = (await api.get(task_id)).json
    assert parse_iso(done["endTime"]) - parse_iso(done["createTime"]) == pytest.approx(
        10.0, abs=0.002
    )


async def test_timeline_new_executing_success(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=10.0, clock_speed=0.0)
    task_id = await api.create()
    first = (await api.get(task_id)).json
    assert first["status"] == 0
    assert "startTime" not in first and "endTime" not in first and "resultCode" not in first
    assert first["taskType"] == 0 and first["userId"] == "user-1"
    created = parse_iso(first["createTime"])
    task = emu.state.get(task_id)
    assert created == pytest.approx(task.shown(task.created_at), abs=0.002)

    emu.clock.advance(1.0)  # NEW lasts 10% of the duration
    executing = (await api.get(task_id)).json
    assert executing["status"] == 1
    assert parse_iso(executing["startTime"]) == pytest.approx(created + 1.0, abs=0.002)
    assert "endTime" not in executing

    emu.clock.advance(8.9)
    assert (await api.get(task_id)).json["status"] == 1
    emu.clock.advance(0.2)
    done = (await api.get(task_id)).json
    assert done["status"] == 2
    assert parse_iso(done["endTime"]) == pytest.approx(created + 10.0, abs=0.002)
    assert "resultCode" not in done
    assert set(done) >= {"taskId", "taskName", "taskType", "tenantId", "userId", "status"}
    assert done["code"] == 0 and done["msg"]


async def test_new_phase_is_capped(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=100.0, clock_speed=0.0)
    task_id = await api.create()
    emu.clock.advance(2.0)
    assert (await api.get(task_id)).json["status"] == 1


async def test_failure_rate_one_fails_with_an_18xxxxxx_code(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=1.0, failure_rate=1.0, clock_speed=0.0)
    task_id = await api.create("create_job")
    emu.clock.advance(1.0)
    reply = await api.get(task_id)
    assert reply.status == 200  # a failed task is not an HTTP error
    assert reply.json["status"] == 3
    assert re.fullmatch(r"18\d{6}", reply.json["resultCode"])
    assert reply.json["code"] == 0


async def outcomes(start_emulator, seed: int) -> list[int]:
    emu, api = await start_emulator(task_duration=0.0, failure_rate=0.5, seed=seed, clock_speed=0.0)
    ids = [await api.create() for _ in range(40)]
    return [(await api.get(t)).json["status"] for t in ids]


async def test_failure_rate_is_seeded_and_deterministic(start_emulator) -> None:
    first = await outcomes(start_emulator, seed=7)
    again = await outcomes(start_emulator, seed=7)
    other = await outcomes(start_emulator, seed=8)
    assert first == again
    assert first != other
    assert set(first) == {2, 3}
    assert 8 <= first.count(3) <= 32


async def test_task_duration_may_be_a_distribution(start_emulator) -> None:
    emu, api = await start_emulator(
        task_duration=lambda rng: rng.choice([1.0, 5.0]), clock_speed=0.0, seed=3
    )
    ids = [await api.create() for _ in range(20)]
    durations = {emu.state.get(t).duration for t in ids}
    assert durations == {1.0, 5.0}
    emu.clock.advance(1.0)
    statuses = {t: (await api.get(t)).json["status"] for t in ids}
    for t in ids:
        assert statuses[t] == (2 if emu.state.get(t).duration == 1.0 else 1)


async def test_clock_speed_runs_timelines_fast(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=3600.0, clock_speed=0.0)
    task_id = await api.create()
    emu.clock.speed = 1e9  # an hour of virtual time passes in 3.6 microseconds
    assert (await api.get(task_id)).json["status"] == 2


async def test_task_ids_are_19_digit_increasing_and_unique(api) -> None:
    ids = [await api.create(route) for route in ("create_task", "create_share_task") * 20]
    assert all(len(t) == 19 and t.isdigit() for t in ids)
    assert [int(t) for t in ids] == sorted(int(t) for t in ids)
    assert len(set(ids)) == len(ids)


async def test_tasks_are_scoped_to_their_user(api, koodrive_emulator) -> None:
    mine = await api.create()
    other = api.as_user("user-2")
    theirs = await other.create("create_job")
    reply = await other.get(mine)
    assert reply.status == 404
    assert set(reply.json) == {"code", "msg"} and reply.json["code"] == 13000305
    assert (await api.get(theirs)).status == 404
    assert (await api.get(mine)).status == 200
    assert [t.task_id for t in koodrive_emulator.state.tasks_for("user-1")] == [mine]
    assert [t.task_id for t in koodrive_emulator.state.tasks_for("user-2")] == [theirs]
    assert [t.task_id for t in koodrive_emulator.state.tasks()] == [mine, theirs]
    assert koodrive_emulator.state.tasks_for("nobody") == []


@pytest.mark.parametrize("task_id", ["1534087020903704704", "0", "abc", "-1", "%20", "x" * 300])
async def test_unknown_task_id_is_404_with_a_body(api, task_id) -> None:
    reply = await api.get(task_id)
    assert reply.status == 404
    assert reply.json["code"] == 13000305 and reply.json["msg"]


async def test_finish_forces_a_terminal_state(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=1000.0, clock_speed=0.0)
    ok, bad, custom = [await api.create() for _ in range(3)]
    emu.state.finish(ok)
    emu.state.finish(bad, failed=True)
    emu.state.finish(custom, failed=True, result_code="18009999")
    assert (await api.get(ok)).json["status"] == 2
    failed = (await api.get(bad)).json
    assert failed["status"] == 3 and re.fullmatch(r"18\d{6}", failed["resultCode"])
    assert "startTime" in failed and "endTime" in failed
    assert (await api.get(custom)).json["resultCode"] == "18009999"
    with pytest.raises(KeyError):
        emu.state.finish("404")


async def test_task_json_shows_the_redacted_request(api, koodrive_emulator) -> None:
    payload = {**JOB_COPY, "taskType": 5, "actionType": 502, "password": "hunter2"}
    task_id = await api.create("create_job", payload)
    task = koodrive_emulator.state.get(task_id)
    assert task.body["password"] == "***"
    reply = await api.get(task_id)
    assert "hunter2" not in reply.text
    assert reply.json["taskType"] == 5
    share_id = await api.create("create_share_task", {**SHARE_PACKAGE, "kdstoken": "kds-secret"})
    assert "kds-secret" not in (await api.get(share_id)).text


async def test_language_header_becomes_the_locale(api) -> None:
    reply = await api.call("create_task", headers=api.headers(language="zh-CN"))
    task_id = reply.json["taskId"]
    assert (await api.get(task_id)).json["locale"] == "zh-CN"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_rate": 1.5},
        {"failure_rate": -0.1},
        {"task_duration": -1},
        {"task_duration": "1"},
        {"page_size_cap": 0},
        {"clock_speed": -1},
        {"empty_page_every": -1},
        {"tokens": {""}},
        {"ledger_limit": 0},
    ],
)
def test_config_rejects_out_of_range_values(kwargs) -> None:
    with pytest.raises(ValueError):
        EmulatorConfig(**kwargs)


def test_config_strips_scheme_words_from_tokens() -> None:
    assert EmulatorConfig(tokens=["Bearer abc", "AT def", "ghi"]).tokens == {"abc", "def", "ghi"}
    assert EmulatorConfig(tokens="single").tokens == {"single"}
