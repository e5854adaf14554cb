"""Faults on demand: each kind, count vs rate, route/method matching, ordering and stacking."""

from __future__ import annotations

import asyncio
import json
import time
from email.utils import parsedate_to_datetime

import aiohttp
import pytest
from emu_helpers import ROUTES

from koodrive_async import KooDriveSession
from koodrive_async.emulator import FaultKind, KooDriveEmulator

CREATES = ["create_task", "create_share_task", "create_job"]
ALL = sorted(ROUTES)


@pytest.mark.parametrize("route", ALL)
@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        (FaultKind.RATE_LIMIT, 429, "APIGW.0308"),
        (FaultKind.SERVER_ERROR, 500, 13000201),
        (FaultKind.UNAVAILABLE, 503, "APIGW.0503"),
    ],
)
async def test_json_error_faults_create_nothing(
    api, koodrive_emulator, route, kind, status, code
) -> None:
    task_id = await api.create() if route == "get_task" else "1"
    before = len(koodrive_emulator.state.tasks())
    fault = koodrive_emulator.inject(kind, route=route, count=1)
    reply = await api.call(route, task_id=task_id)
    assert reply.status == status
    assert reply.json["code"] == code and reply.json["msg"]
    assert len(koodrive_emulator.state.tasks()) == before
    assert fault.hits == 1 and fault.remaining == 0
    entry = koodrive_emulator.requests[-1]
    assert entry.fault is kind and entry.status == status and entry.task_id is None
    assert (await api.call(route, task_id=task_id)).status == 200  # count exhausted


@pytest.mark.parametrize(("kind", "status"), [("rate_limit", 429), ("unavailable", 503)])
@pytest.mark.parametrize(
    ("retry_after", "header"), [(1, "1"), (2.0, "2"), (0.5, "0.5"), (None, None)]
)
async def test_retry_after(api, koodrive_emulator, kind, status, retry_after, header) -> None:
    koodrive_emulator.inject(kind, count=1, retry_after=retry_after)
    reply = await api.call("create_job")
    assert reply.status == status
    assert reply.headers.get("Retry-After") == header


@pytest.mark.parametrize("route", ALL)
async def test_bad_gateway_html(api, koodrive_emulator, route) -> None:
    koodrive_emulator.inject(FaultKind.BAD_GATEWAY_HTML, route=route, count=1)
    reply = await api.call(route)
    assert reply.status == 502
    assert reply.headers["Content-Type"].startswith("text/html")
    assert reply.json is None and "<html>" in reply.text
    assert koodrive_emulator.state.tasks() == []
    assert koodrive_emulator.requests[-1].response is None


@pytest.mark.parametrize("route", ALL)
async def test_drop_closes_the_connection_without_a_response(koodrive_emulator, api, route) -> None:
    task_id = await api.create() if route == "get_task" else "1"
    before = len(koodrive_emulator.state.tasks())
    method, path, example = ROUTES[route]
    # aiohttp's client silently resends an idempotent request once after a
    # disconnect, so a GET needs two drops in a row to surface.
    drops = 2 if method == "GET" else 1
    koodrive_emulator.inject(FaultKind.DROP, route=route, count=drops)
    koodrive_emulator.clear_requests()
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.http.request(
            method, api.url + path.format(task_id=task_id), json=example, headers=api.headers()
        )
    assert len(koodrive_emulator.state.tasks()) == before
    entries = koodrive_emulator.requests
    assert len(entries) == drops
    for entry in entries:
        assert entry.fault is FaultKind.DROP and entry.status is None and entry.response is None
    assert (await api.call(route, task_id=task_id)).status == 200


@pytest.mark.parametrize("route", CREATES)
async def test_created_but_500_creates_the_task(api, koodrive_emulator, route) -> None:
    koodrive_emulator.inject(FaultKind.CREATED_BUT_500, route=route, count=1)
    reply = await api.call(route)
    assert reply.status == 500
    assert reply.json["code"] == 13000201
    [task] = koodrive_emulator.state.tasks()
    entry = koodrive_emulator.requests[-1]
    assert entry.task_id == task.task_id and entry.status == 500
    assert entry.fault is FaultKind.CREATED_BUT_500
    # The task the client never heard of is real: GET and list show it.
    assert (await api.get(task.task_id)).status == 200
    listed = (await api.list(None)).json["taskListDtos"]
    assert [t["taskId"] for t in listed] == [task.task_id]


async def test_created_but_500_on_an_invalid_create_creates_nothing(api, koodrive_emulator) -> None:
    koodrive_emulator.inject(FaultKind.CREATED_BUT_500, count=1)
    reply = await api.call("create_task", json_body={"taskType": 9})
    assert reply.status == 500
    assert koodrive_emulator.state.tasks() == []


@pytest.mark.parametrize("route", ["get_task", "list_tasks"])
async def test_created_but_500_on_a_get_is_a_server_error(api, koodrive_emulator, route) -> None:
    task_id = await api.create()
    koodrive_emulator.inject(FaultKind.CREATED_BUT_500, route=route, count=1)
    reply = await api.call(route, task_id=task_id)
    assert reply.status == 500 and reply.json["code"] == 13000201
    assert len(koodrive_emulator.state.tasks()) == 1


@pytest.mark.parametrize("route", ALL)
async def test_malformed_json(api, koodrive_emulator, route) -> None:
    task_id = await api.create() if route == "get_task" else "1"
    before = len(koodrive_emulator.state.tasks())
    koodrive_emulator.inject(FaultKind.MALFORMED_JSON, route=route, count=1)
    reply = await api.call(route, task_id=task_id)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        json.loads(reply.text)
    assert reply.text  # truncated, not empty
    created = len(koodrive_emulator.state.tasks()) - before
    assert created == (1 if route in CREATES else 0)
    entry = koodrive_emulator.requests[-1]
    assert entry.fault is FaultKind.MALFORMED_JSON and entry.response is None
    if route in CREATES:
        assert entry.task_id == koodrive_emulator.state.tasks()[-1].task_id


async def test_latency_delays_then_handles_normally(api, koodrive_emulator) -> None:
    koodrive_emulator.inject(FaultKind.LATENCY, route="list_tasks", count=1, latency=0.2)
    t0 = time.monotonic()
    reply = await api.list(None)
    assert time.monotonic() - t0 >= 0.2
    assert reply.status == 200
    assert koodrive_emulator.requests[-1].fault is FaultKind.LATENCY
    t0 = time.monotonic()
    await api.list(None)
    assert time.monotonic() - t0 < 0.2


async def test_latency_stacks_with_other_faults(api, koodrive_emulator) -> None:
    koodrive_emulator.inject(FaultKind.LATENCY, count=1, latency=0.1)
    koodrive_emulator.inject(FaultKind.LATENCY, count=1, latency=0.1)
    koodrive_emulator.inject(FaultKind.SERVER_ERROR, count=1)
    t0 = time.monotonic()
    reply = await api.call("create_task")
    assert time.monotonic() - t0 >= 0.2
    assert reply.status == 500
    assert koodrive_emulator.requests[-1].fault is FaultKind.SERVER_ERROR


async def test_first_matching_fault_in_injection_order_applies(api, koodrive_emulator) -> None:
    first = koodrive_emulator.inject(FaultKind.UNAVAILABLE, route="create_job", count=1)
    second = koodrive_emulator.inject(FaultKind.SERVER_ERROR, count=2)
    assert (await api.call("create_task")).status == 500  # first does not match this route
    assert (await api.call("create_job")).status == 503
    assert (await api.call("create_job")).status == 500
    assert (await api.call("create_job")).status == 200
    assert (first.hits, first.remaining, second.hits, second.remaining) == (1, 0, 2, 0)
    assert koodrive_emulator.faults == [first, second]


async def test_method_filter(api, koodrive_emulator) -> None:
    koodrive_emulator.inject(FaultKind.SERVER_ERROR, method="get")
    assert (await api.call("create_task")).status == 200
    assert (await api.call("list_tasks")).status == 500
    koodrive_emulator.clear_faults()
    assert (await api.call("list_tasks")).status == 200


async def test_fault_without_count_or_rate_lasts_until_cleared(api, koodrive_emulator) -> None:
    fault = koodrive_emulator.inject(FaultKind.RATE_LIMIT, route="get_task")
    task_id = await api.create()
    for _ in range(5):
        assert (await api.get(task_id)).status == 429
    assert fault.hits == 5 and fault.remaining is None
    koodrive_emulator.clear_faults()
    assert (await api.get(task_id)).status == 200
    assert koodrive_emulator.faults == []


async def rate_pattern(start_emulator, seed: int, rate: float) -> list[int]:
    emu, api = await start_emulator(seed=seed)
    emu.inject(FaultKind.SERVER_ERROR, route="list_tasks", rate=rate)
    return [(await api.list(None)).status for _ in range(40)]


async def test_rate_is_seeded(start_emulator) -> None:
    first = await rate_pattern(start_emulator, 1, 0.5)
    assert first == await rate_pattern(start_emulator, 1, 0.5)
    assert first != await rate_pattern(start_emulator, 2, 0.5)
    assert 8 <= first.count(500) <= 32
    assert set(await rate_pattern(start_emulator, 1, 0.0)) == {200}
    assert set(await rate_pattern(start_emulator, 1, 1.0)) == {500}


async def test_admin_and_unknown_paths_are_not_faulted(api, koodrive_emulator) -> None:
    koodrive_emulator.inject(FaultKind.SERVER_ERROR)
    reply = await api.request("GET", "/_emulator/health")
    assert reply.status == 200
    reply = await api.request("GET", "/koodrive/ose/v1/nothing/here")
    assert reply.status == 404 and reply.json["code"] == 13000305


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "nope"},
        {"kind": "latency", "route": "get_tasks"},
        {"kind": "latency", "count": 1, "rate": 0.5},
        {"kind": "latency", "count": 0},
        {"kind": "latency", "count": True},
        {"kind": "latency", "rate": 1.5},
        {"kind": "latency", "rate": -0.1},
        {"kind": "latency", "latency": -1},
        {"kind": "rate_limit", "retry_after": -1},
        {"kind": "drop", "method": ""},
    ],
)
def test_inject_rejects_bad_arguments(kwargs) -> None:
    emu = KooDriveEmulator()
    with pytest.raises(ValueError):
        emu.inject(**kwargs)
    assert emu.faults == []


async def test_close_releases_requests_sleeping_on_latency(http) -> None:
    from emu_helpers import Api

    emu = KooDriveEmulator()
    await emu.start()
    api = Api(http, emu.url)
    fault = emu.inject(FaultKind.LATENCY, latency=60.0)
    pending = asyncio.create_task(api.list(None))
    while fault.hits == 0:  # wait for the request to reach the server
        await asyncio.sleep(0.005)
    t0 = time.monotonic()
    await emu.close()
    assert time.monotonic() - t0 < 5
    reply = await pending
    assert reply.status == 200


async def _until(predicate, limit: float = 10.0) -> None:
    # The request runs in this loop's server: yield until it got there (bounded).
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "the emulator never got the request"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("route", CREATES)
async def test_created_then_held_carries_out_the_create_before_the_hold(
    api, koodrive_emulator, route
) -> None:
    emu = koodrive_emulator
    fault = emu.inject(FaultKind.CREATED_THEN_HELD, route=route, count=1, latency=60)
    pending = asyncio.ensure_future(api.call(route))
    await _until(lambda: len(emu.requests) == 1)
    # The task exists and the ledger holds its id while the client still waits.
    entry = emu.requests[0]
    assert entry.fault is FaultKind.CREATED_THEN_HELD and entry.status == 200
    assert entry.task_id is not None and emu.state.get(entry.task_id) is not None
    assert not pending.done() and fault.hits == 1
    # A client that dies during the hold never learns the id; nothing else changes.
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    await api.create(route)
    assert len(emu.requests) == 2 and len(emu.state.tasks()) == 2


async def test_created_then_held_answers_normally_after_the_hold(api, koodrive_emulator) -> None:
    emu = koodrive_emulator
    emu.inject(FaultKind.CREATED_THEN_HELD, route="create_task", count=1, latency=0.05)
    reply = await api.call("create_task")
    assert reply.status == 200
    assert [e.task_id for e in emu.requests] == [str(reply.json["taskId"])]


async def test_latency_holds_before_carrying_out(api, koodrive_emulator) -> None:
    # The contrast with CREATED_THEN_HELD: nothing exists during a LATENCY hold.
    emu = koodrive_emulator
    emu.inject(FaultKind.LATENCY, route="create_task", count=1, latency=60)
    pending = asyncio.ensure_future(api.call("create_task"))
    await _until(lambda: emu.faults[0].hits == 1)
    assert emu.state.tasks() == [] and emu.requests == []
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending


async def test_created_then_held_is_injected_over_the_admin_route(koodrive_emulator, http) -> None:
    body = {"kind": "created_then_held", "route": "create_job", "latency": 2.5}
    async with http.post(koodrive_emulator.url + "/_emulator/faults", json=body) as resp:
        assert resp.status == 201
        assert (await resp.json())["kind"] == "created_then_held"
    assert koodrive_emulator.faults[0].latency == 2.5


async def test_created_then_held_stamps_its_date_when_the_answer_is_sent(
    api, koodrive_emulator
) -> None:
    # A held answer's Date is the moment it goes out, not the moment the hold
    # began: a client learns the server's clock from it, and one stamped
    # before a 2 s hold made that clock 2 s slow for the rest of its session.
    emu = koodrive_emulator
    hold = 2.0
    emu.inject(FaultKind.CREATED_THEN_HELD, route="create_task", count=1, latency=hold)
    async with KooDriveSession(emu.url, user_id="u1", token="tok", agent_name="a") as session:
        await session.create_transfer_task(src_user_id="A", dst_user_id="B")
        offset = session.clock_offset
    (entry,) = emu.requests
    assert entry.fault is FaultKind.CREATED_THEN_HELD and entry.task_id is not None
    # Date is floored to the second and read a moment after it was sent: the
    # offset learnt from it is within (-1 s - that moment, 0], never about -hold.
    assert offset is not None and -1.5 < offset <= 0.5, offset
    # The header itself: no earlier than the second in which the hold ended.
    emu.inject(FaultKind.CREATED_THEN_HELD, route="get_task", count=1, latency=hold)
    before = time.time()
    reply = await api.get(entry.task_id)  # another user's task: a 404, held all the same
    assert reply.status == 404
    assert parsedate_to_datetime(reply.headers["Date"]).timestamp() >= int(before + hold)
