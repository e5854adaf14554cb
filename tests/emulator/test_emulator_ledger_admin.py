"""The request ledger (with secrets redacted) and the /_emulator/ admin routes."""

from __future__ import annotations

import json
import time

import pytest
from emu_helpers import JOB_COPY, PREFIX, SHARE_SAVE

from koodrive_async.emulator import FaultKind, LedgerEntry

SECRET = "super-secret-token-7f3a"


async def test_ledger_records_every_api_request(api, koodrive_emulator) -> None:
    task_id = await api.create()
    await api.get(task_id)
    await api.request("GET", f"{PREFIX}/task/list?status=1&status=2&taskType=0")
    await api.request("GET", "/_emulator/health")  # admin: not recorded
    await api.call("create_job", json_body={"taskType": 99})
    entries = koodrive_emulator.requests
    assert [e.route for e in entries] == ["create_task", "get_task", "list_tasks", "create_job"]
    assert [e.status for e in entries] == [200, 200, 200, 400]
    assert [e.method for e in entries] == ["POST", "GET", "GET", "POST"]
    assert entries[0].task_id == task_id and entries[1].task_id is None
    assert entries[0].body == {
        "taskType": 0,
        "srcUserId": "1397687227244555008",
        "dstUserId": "1507947856550550784",
    }
    assert entries[0].response["taskId"] == task_id
    assert entries[1].path == f"{PREFIX}/task/{task_id}" and entries[1].body is None
    assert entries[2].query == (("status", "1"), ("status", "2"), ("taskType", "0"))
    assert entries[3].response["code"] == 13000102
    assert all(isinstance(e, LedgerEntry) for e in entries)
    assert [e.time for e in entries] == sorted(e.time for e in entries)
    assert all(e.fault is None for e in entries)
    # Headers keep the client's spelling and are found case-insensitively.
    assert entries[0].headers["X-User-Id"] == "user-1"
    assert entries[0].headers["x-user-id"] == "user-1"
    assert "x-date" in entries[0].headers and entries[0].headers.get("X-DATE")
    assert entries[0].headers.get("missing", "dflt") == "dflt"
    koodrive_emulator.clear_requests()
    assert koodrive_emulator.requests == []


@pytest.mark.parametrize(
    ("authorization", "shown"),
    [
        (f"Bearer+{SECRET}", "Bearer ***"),
        (f"Bearer {SECRET}", "Bearer ***"),
        (f"AT {SECRET}", "AT ***"),
        (SECRET, "***"),
        (f"Weird/{SECRET}", "***"),
        # An app signature keeps what identifies the app, never the signature.
        (
            f"HMAC-SHA256 AppId=app-1,SignedHeaders=host;x-date,Signature={SECRET}",
            "HMAC-SHA256 AppId=app-1,SignedHeaders=host;x-date,Signature=***",
        ),
        (f"HMAC-SHA256 Signature={SECRET},Extra={SECRET}", "HMAC-SHA256 Signature=***"),
    ],
)
async def test_ledger_never_holds_the_token(start_emulator, authorization, shown) -> None:
    emu, api = await start_emulator(tokens={SECRET})
    headers = api.headers(Authorization=authorization)
    for route in ("create_task", "create_share_task", "create_job", "list_tasks", "get_task"):
        await api.call(route, headers=headers)
    await api.call("create_task", headers=api.headers(Authorization=f"Bearer+{SECRET}-wrong"))
    assert emu.requests[0].headers["Authorization"] == shown
    dumped = (await api.request("GET", "/_emulator/requests")).text
    for text in (repr(emu.requests), str(emu.requests), dumped):
        assert SECRET not in text
    assert all(e.headers["Authorization"] == shown for e in emu.requests[:-1])
    assert SECRET not in json.dumps([e.to_json() for e in emu.requests])
    assert emu.requests[-1].headers["Authorization"] == "Bearer ***"
    assert emu.requests[-1].status == 401


async def test_ledger_and_state_never_hold_passwords_or_kdstokens(api, koodrive_emulator) -> None:
    await api.create(
        "create_job", {**JOB_COPY, "taskType": 5, "actionType": 502, "password": "pw-1"}
    )
    await api.call("create_job", json_body={**JOB_COPY, "taskType": 0, "password": "pw-2"})
    await api.create("create_share_task", {**SHARE_SAVE, "kdstoken": "kds-3"})
    await api.call("create_task", json_body={"nested": {"password": "pw-4"}})
    entries = koodrive_emulator.requests
    assert entries[0].body["password"] == "***"
    assert entries[2].body["kdstoken"] == "***"
    assert entries[2].body["fileIds"] == SHARE_SAVE["fileIds"]
    dumped = (await api.request("GET", "/_emulator/requests")).text
    tasks = (await api.request("GET", "/_emulator/tasks")).text
    everything = repr(entries) + dumped + tasks + repr(koodrive_emulator.state.tasks())
    for secret in ("pw-1", "pw-2", "kds-3", "pw-4"):
        assert secret not in everything


async def test_ledger_limit_keeps_the_newest(start_emulator) -> None:
    emu, api = await start_emulator(ledger_limit=3)
    for _ in range(5):
        await api.list(None)
    assert len(emu.requests) == 3


async def test_admin_requests_and_tasks(api, koodrive_emulator) -> None:
    task_id = await api.create()
    ledger = (await api.request("GET", "/_emulator/requests")).json
    assert len(ledger) == 1
    assert ledger[0]["route"] == "create_task" and ledger[0]["task_id"] == task_id
    assert ledger[0]["headers"]["Authorization"] == "Bearer ***"
    tasks = (await api.request("GET", "/_emulator/tasks")).json
    assert [t["taskId"] for t in tasks] == [task_id]
    assert tasks[0]["route"] == "create_task" and tasks[0]["userId"] == "user-1"
    assert (await api.request("DELETE", "/_emulator/requests")).json == {"cleared": 1}
    assert koodrive_emulator.requests == []


async def test_admin_faults(api, koodrive_emulator) -> None:
    reply = await api.request(
        "POST",
        "/_emulator/faults",
        json_body={"kind": "rate_limit", "route": "create_job", "count": 1, "retry_after": 3},
    )
    assert reply.status == 201
    assert reply.json["kind"] == "rate_limit" and reply.json["remaining"] == 1
    limited = await api.call("create_job")
    assert limited.status == 429 and limited.headers["Retry-After"] == "3"
    listed = (await api.request("GET", "/_emulator/faults")).json
    assert listed[0]["hits"] == 1 and listed[0]["active"] is False
    await api.request("POST", "/_emulator/faults", json_body={"kind": "server_error"})
    assert (await api.call("create_task")).status == 500
    assert (await api.request("DELETE", "/_emulator/faults")).status == 200
    assert (await api.call("create_task")).status == 200
    assert koodrive_emulator.faults == []


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"kind": "nope"},
        {"kind": "drop", "count": 1, "rate": 0.5},
        {"kind": "drop", "colour": "red"},
        {"kind": "latency", "latency": "slow"},
        [1, 2],
        '{"kind": "latency", "latency": Infinity}',
        '{"kind": "drop", "rate": NaN}',
    ],
)
async def test_admin_faults_rejects_bad_input(api, koodrive_emulator, payload) -> None:
    # Strings are sent as they are: Python's json reads Infinity and NaN.
    raw = {"data": payload} if isinstance(payload, str) else {"json_body": payload}
    reply = await api.request("POST", "/_emulator/faults", **raw)
    assert reply.status == 400
    assert "error" in reply.json
    assert koodrive_emulator.faults == []


async def test_admin_clock(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=60.0, clock_speed=0.0)
    task_id = await api.create()
    before = emu.clock.now()
    reply = await api.request("POST", "/_emulator/clock", json_body={"advance": 60})
    assert reply.status == 200 and reply.json["now"] == pytest.approx(before + 60)
    assert (await api.get(task_id)).json["status"] == 2
    reply = await api.request("POST", "/_emulator/clock", json_body={"speed": 5})
    assert reply.json["speed"] == 5 and emu.clock.speed == 5
    for bad in ({"advance": -1}, {"speed": -2}, {"advance": "x"}, {"speed": True}):
        assert (await api.request("POST", "/_emulator/clock", json_body=bad)).status == 400
    for raw in ('{"advance": Infinity}', '{"speed": NaN}', '{"speed": Infinity}'):
        assert (await api.request("POST", "/_emulator/clock", data=raw)).status == 400
    assert emu.clock.speed == 5


async def test_admin_finish_reset_and_health(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=1000.0)
    task_id = await api.create()
    reply = await api.request(
        "POST",
        f"/_emulator/tasks/{task_id}/finish",
        json_body={"failed": True, "result_code": "18000777"},
    )
    assert reply.status == 200 and reply.json["status"] == 3
    assert (await api.get(task_id)).json["resultCode"] == "18000777"
    assert (await api.request("POST", "/_emulator/tasks/1/finish")).status == 404
    bad = await api.request("POST", f"/_emulator/tasks/{task_id}/finish", json_body={"failed": 1})
    assert bad.status == 400
    assert (await api.request("GET", "/_emulator/health")).json == {"status": "ok", "tasks": 1}
    emu.inject(FaultKind.SERVER_ERROR, route="get_task")
    emu.clock.advance(100)
    assert (await api.request("POST", "/_emulator/reset")).json == {"reset": True}
    assert emu.state.tasks() == [] and emu.requests == [] and emu.faults == []
    assert emu.clock.now() == pytest.approx(time.time(), abs=5)
    assert (await api.request("GET", "/_emulator/health")).json["tasks"] == 0


async def test_reset_restarts_the_seeded_outcomes(start_emulator) -> None:
    emu, api = await start_emulator(failure_rate=0.5, task_duration=0.0, seed=11)
    first = [emu.state.get(await api.create()).will_fail for _ in range(20)]
    emu.reset()
    again = [emu.state.get(await api.create()).will_fail for _ in range(20)]
    assert first == again


async def test_admin_routes_need_no_auth_and_are_not_recorded(http, koodrive_emulator) -> None:
    async with http.get(koodrive_emulator.url + "/_emulator/health") as resp:
        assert resp.status == 200
        assert json.loads(await resp.text())["status"] == "ok"
    assert koodrive_emulator.requests == []


async def test_admin_failures_switch_how_often_new_tasks_fail(start_emulator) -> None:
    emu, api = await start_emulator(failure_rate=1.0, file_failure_rate=1.0)
    doomed = await api.create("create_job")
    reply = await api.request("GET", "/_emulator/failures")
    assert reply.json == {"failure_rate": 1.0, "file_failure_rate": 1.0}
    # Stop failing: the tasks created from now on succeed; the one before keeps its fate.
    reply = await api.request(
        "POST", "/_emulator/failures", json_body={"failure_rate": 0, "file_failure_rate": 0}
    )
    assert reply.status == 200 and reply.json == {"failure_rate": 0.0, "file_failure_rate": 0.0}
    assert emu.config.failure_rate == 0.0 and emu.config.file_failure_rate == 0.0
    fine = await api.create("create_job")
    held = {t.task_id: t for t in emu.state.tasks()}
    assert held[doomed].will_fail and all(f.failed for f in held[doomed].files)
    assert not held[fine].will_fail and not any(f.failed for f in held[fine].files)
    # One rate alone; the other stays.
    assert emu.set_failure_rates(file_failure_rate=0.25).failure_rate == 0.0
    assert emu.config.file_failure_rate == 0.25
    for bad in ({"failure_rate": 2}, {"failure_rate": "0"}, {"file_failure_rate": True},
                {"colour": 1}, [0]):  # fmt: skip
        assert (await api.request("POST", "/_emulator/failures", json_body=bad)).status == 400
    assert emu.config.file_failure_rate == 0.25 and emu.config.failure_rate == 0.0
