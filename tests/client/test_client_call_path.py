"""The branches of the cheaper get_task path (issue 17, item 2) behave as the general ones.

Each test pins a branch the fast path added: the Authorization-bearing static
headers cached per credential, the JSON scanner run without ``decode()``,
the times of a task read inline, the ``Date`` of the next second told from
the minute, and a call's URL made from the parsed base URL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest
from aiohttp import web
from client_helpers import custom_server, make_session

from koodrive_async import ResponseValidationError
from koodrive_async._build import build_get_task
from koodrive_async._call import Response
from koodrive_async._clock import ServerClock
from koodrive_async._decode import decode_task, load_json
from koodrive_async.emulator import EmulatorConfig, KooDriveEmulator

TRACE = "t" * 58


async def test_a_renewed_token_rebuilds_the_cached_authorization_header() -> None:
    # GETs only: a GET's static headers carry the Authorization cached for the
    # credential; a 401 renews the token, and the retried attempt and every
    # later call must carry the new one, not the cached old one.
    calls: list[bool] = []

    async def provider(force_refresh: bool) -> str:
        calls.append(force_refresh)
        return "fresh-token" if force_refresh else "stale-token"

    async with KooDriveEmulator(EmulatorConfig(tokens=frozenset({"fresh-token"}))) as emu:
        async with make_session(emu.url, token="fresh-token") as creator:
            task_id = await creator.create_transfer_task(src_user_id="a", dst_user_id="b")
        async with make_session(emu.url, token_provider=provider) as s:
            first = await s.get_task(task_id)
            second = await s.get_task(task_id)
        gets = [e.status for e in emu.requests if e.route == "get_task"]
    assert first.task_id == second.task_id == task_id
    # The emulator masks tokens in its log, but accepts only the fresh one: the
    # retried attempt and the next call carried it, and no second renewal ran.
    assert calls == [False, True]
    assert gets == [401, 200, 200]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": 1}', {"a": 1}),
        (b'{"a":1}  \r\n', {"a": 1}),  # whitespace after the object: decode()'s job
        (b' {"a":1}', {"a": 1}),  # before it: decode() alone
        (b'{"a":{"b":[1,{"c":2}]}}', {"a": {"b": [1, {"c": 2}]}}),
    ],
)
def test_load_json_reads_what_json_loads_reads(body: bytes, expected: object) -> None:
    assert load_json(body) == expected


@pytest.mark.parametrize("body", [b'{"a":1}x', b'{"a":1}{"b":2}', b'{"a":', b'{"a":1,}'])
def test_load_json_refuses_what_json_loads_refuses(body: bytes) -> None:
    with pytest.raises(ValueError, match=r"Extra data|Expecting|Illegal|delimiter"):
        load_json(body)


def test_a_task_answer_with_extra_data_after_the_object_is_invalid_json() -> None:
    call = build_get_task("1")
    with pytest.raises(ResponseValidationError, match="invalid JSON"):
        decode_task(call, Response(200, {}, b'{"taskId":"1"} trailing', TRACE))
    task = decode_task(call, Response(200, {}, b'{"taskId":"1"}\n', TRACE))
    assert task.task_id == "1"


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("2024-08-12T07:22:33.000Z", datetime(2024, 8, 12, 7, 22, 33, tzinfo=UTC)),
        ("2024-08-12T07:22:33", datetime(2024, 8, 12, 7, 22, 33, tzinfo=UTC)),
        (
            "2024-08-12T09:22:33+02:00",
            datetime(2024, 8, 12, 9, 22, 33, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("not a time", None),
        (1723447353000, datetime(2024, 8, 12, 7, 22, 33, tzinfo=UTC)),
        (True, None),
    ],
)
def test_task_times_are_what_parse_time_gives(sent: object, expected: datetime | None) -> None:
    import json

    body = json.dumps({"taskId": "1", "createTime": sent, "startTime": sent, "endTime": sent})
    task = decode_task(build_get_task("1"), Response(200, {}, body.encode(), TRACE))
    assert task.create_time == task.start_time == task.end_time == expected
    for value in (task.create_time, task.start_time, task.end_time):
        assert value is None or value.tzinfo is not None


def test_the_next_seconds_date_is_learnt_from_the_minute_as_parsing_it_gives() -> None:
    clock = ServerClock(wall_clock=lambda: 1_796_141_000.0)
    dates = [
        "Tue, 01 Dec 2026 16:06:35 GMT",  # parsed in full
        "Tue, 01 Dec 2026 16:06:36 GMT",  # from the minute
        "Tue, 01 Dec 2026 16:06:59 GMT",
        "Tue, 01 Dec 2026 16:07:00 GMT",  # a new minute: parsed in full
        "Tue, 01 Dec 2026 16:07:60 GMT",  # not a second: refused, as parsing does
        "Tuesday, 01-Dec-26 16:07:01 GMT",  # RFC 850: another minute string
        "Tue, 01 Dec 2026 16:07:02 GMT",
        "garbage GMT",
    ]
    for date in dates:
        try:
            expected: float | None = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            expected = None
        assert clock.learn(date) == expected, date
    assert clock.offset == 1_796_141_222.0 - 1_796_141_000.0  # the last date read


async def test_a_base_url_with_a_path_prefix_is_kept_in_every_call() -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.json_response({"taskId": request.path.rsplit("/", 1)[-1]})

    async with custom_server(handler) as url, make_session(url + "/gw/v2") as s:
        await s.get_task("123")
        await s.get_task("a.b")  # quoted: the general path of the builder
        await s.list_tasks(page_size=5)  # a query: the string-built URL
    assert seen[0] == "/gw/v2/koodrive/ose/v1/task/123"
    assert seen[1] == "/gw/v2/koodrive/ose/v1/task/a.b"
    assert seen[2].startswith("/gw/v2/koodrive/ose/v1/task/list?")
