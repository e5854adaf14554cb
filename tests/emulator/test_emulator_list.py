"""GET task/list: filters, pageSize bounds, cursors, empty and partial pages, response variants."""

from __future__ import annotations

import pytest
from emu_helpers import IMPORT, TRANSFER, job


async def page_through(api, params: dict, *, max_pages: int = 1000) -> list[dict]:
    """Follow nextCursor to the end; returns every page's JSON."""
    pages = []
    cursor = None
    for _ in range(max_pages):
        query = dict(params)
        if cursor is not None:
            query["pageCursor"] = str(cursor)
        reply = await api.list(query)
        assert reply.status == 200, reply.text
        pages.append(reply.json)
        cursor = reply.json.get("nextCursor")
        if cursor in (None, ""):
            return pages
    raise AssertionError("pagination did not end")


def ids_of(pages: list[dict], key: str = "taskListDtos") -> list[str]:
    return [t["taskId"] for p in pages for t in p.get(key, [])]


async def make_tasks(api, n: int) -> list[str]:
    return [await api.create() for _ in range(n)]


@pytest.mark.parametrize(
    ("config", "page_size"),
    [
        ({}, 10),
        ({}, 7),
        ({}, 100),
        ({}, 1),
        ({"empty_page_every": 2}, 5),
        ({"empty_page_every": 1}, 5),
        ({"empty_page_every": 3}, 4),
        ({"partial_pages": True}, 10),
        ({"partial_pages": True, "empty_page_every": 2}, 6),
        ({"page_size_cap": 3}, 10),
        ({"response_variant_cursor": "str"}, 9),
    ],
)
async def test_pagination_returns_every_task_exactly_once(
    start_emulator, config, page_size
) -> None:
    from koodrive_async.emulator import ResponseVariant

    if config.pop("response_variant_cursor", None):
        config["response_variant"] = ResponseVariant(cursor_as="str")
    emu, api = await start_emulator(**config)
    created = await make_tasks(api, 47)
    await api.as_user("someone-else").create()  # never listed for user-1
    pages = await page_through(api, {"pageSize": str(page_size)})
    assert ids_of(pages) == created
    limit = min(page_size, emu.config.page_size_cap)
    for page in pages:
        assert len(page["taskListDtos"]) <= limit
    assert "nextCursor" not in pages[-1]
    assert pages[-1]["taskListDtos"], "the last page is never an empty filler"
    if emu.config.empty_page_every:
        empties = [p for p in pages[:-1] if not p["taskListDtos"]]
        assert empties and all("nextCursor" in p for p in empties)
    if emu.config.partial_pages:
        assert any(0 < len(p["taskListDtos"]) < limit for p in pages[:-1])
    if emu.config.response_variant.cursor_as == "str":
        assert all(isinstance(p["nextCursor"], str) for p in pages[:-1])
    else:
        assert all(isinstance(p["nextCursor"], int) for p in pages[:-1])


async def test_tasks_created_while_paging_are_listed_once(api) -> None:
    created = await make_tasks(api, 5)
    first = (await api.list({"pageSize": "2"})).json
    created += await make_tasks(api, 3)
    rest = await page_through(api, {"pageSize": "2", "pageCursor": str(first["nextCursor"])})
    assert ids_of([first, *rest]) == created


async def test_no_tasks_is_one_empty_last_page(api) -> None:
    reply = await api.list(None)
    assert reply.json == {"taskListDtos": [], "code": 0, "msg": "Success."}


async def test_default_page_size_is_100(api) -> None:
    created = await make_tasks(api, 101)
    first = (await api.list(None)).json
    assert len(first["taskListDtos"]) == 100 and "nextCursor" in first
    rest = await page_through(api, {"pageCursor": str(first["nextCursor"])})
    assert ids_of([first, *rest]) == created


async def test_exactly_full_last_page_has_no_cursor(api) -> None:
    await make_tasks(api, 4)
    reply = await api.list({"pageSize": "4"})
    assert len(reply.json["taskListDtos"]) == 4 and "nextCursor" not in reply.json


@pytest.mark.parametrize("page_size", ["0", "101", "-1", "1000", "abc", "1.5", "10x"])
async def test_page_size_out_of_bounds_is_400(api, page_size) -> None:
    reply = await api.list({"pageSize": page_size})
    assert reply.status == 400
    assert reply.json["code"] == 13000102 and reply.json["msg"]


@pytest.mark.parametrize(
    "query",
    [
        "taskType=abc",
        "taskType=0.5",
        "status=abc",
        "status=1,x",
        "status=1&status=two",
        "status=4",
        "status=-1",
        "status=1,9",
        "taskType=-1",
        "pageCursor=abc",
        "pageCursor=-5",
        "pageCursor=1.5",
        "pageSize=%D9%A1%D9%A0",  # Arabic-Indic digits are not an integer here
    ],
)
async def test_malformed_query_values_are_400(api, query) -> None:
    reply = await api.request("GET", f"/koodrive/ose/v1/task/list?{query}")
    assert reply.status == 400
    assert reply.json["code"] == 13000102


async def test_the_pages_example_query_with_a_bare_page_cursor(api) -> None:
    created = await make_tasks(api, 3)
    reply = await api.request(
        "GET", "/koodrive/ose/v1/task/list?taskType=0&status=0&pageSize=10&pageCursor"
    )
    assert reply.status == 200, reply.text
    assert [t["taskId"] for t in reply.json["taskListDtos"]] == created


async def statuses_setup(start_emulator):
    emu, api = await start_emulator(task_duration=10.0, clock_speed=0.0)
    done = await api.create()  # -> SUCCESS
    emu.clock.advance(10)
    running = await api.create()  # -> EXECUTING
    emu.clock.advance(2)
    new = await api.create()  # NEW
    failed = await api.create()
    emu.state.finish(failed, failed=True)
    return emu, api, {"done": done, "running": running, "new": new, "failed": failed}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["done", "running", "new", "failed"]),
        ("status=2", ["done"]),
        ("status=1&status=2", ["done", "running"]),
        ("status=1,2", ["done", "running"]),
        ("status=0,3&status=2", ["done", "new", "failed"]),
        ("status=%201%20,%202", ["done", "running"]),
        ("status=", ["done", "running", "new", "failed"]),
    ],
)
async def test_status_filter_repeated_and_comma_forms(start_emulator, query, expected) -> None:
    _emu, api, names = await statuses_setup(start_emulator)
    reply = await api.request("GET", f"/koodrive/ose/v1/task/list?{query}")
    assert reply.status == 200, reply.text
    assert [t["taskId"] for t in reply.json["taskListDtos"]] == [names[n] for n in expected]
    by_id = {t["taskId"]: t for t in reply.json["taskListDtos"]}
    for name in expected:
        status = by_id[names[name]]["status"]
        assert status == {"done": 2, "running": 1, "new": 0, "failed": 3}[name]


async def test_task_type_filter(api) -> None:
    transfer = await api.create("create_task", TRANSFER)
    imported = await api.create("create_task", IMPORT)
    copy_job = await api.create("create_job", job(1, 101))
    delete_job = await api.create("create_job", job(2, 202))
    reply = await api.list({"taskType": "0"})
    assert [t["taskId"] for t in reply.json["taskListDtos"]] == [transfer]
    reply = await api.list({"taskType": "1"})
    assert [t["taskId"] for t in reply.json["taskListDtos"]] == [imported, copy_job]
    reply = await api.list({"taskType": "2", "status": "0,1"})
    assert [t["taskId"] for t in reply.json["taskListDtos"]] == [delete_job]
    reply = await api.list({"taskType": "6"})
    assert reply.json["taskListDtos"] == []


async def test_filtered_pagination_is_exact(start_emulator) -> None:
    emu, api = await start_emulator(empty_page_every=2, partial_pages=True, clock_speed=0.0)
    wanted = []
    for i in range(30):
        if i % 3 == 0:
            wanted.append(await api.create("create_task", IMPORT))
        else:
            await api.create("create_task", TRANSFER)
    pages = await page_through(api, {"taskType": "1", "pageSize": "3"})
    assert ids_of(pages) == wanted


async def test_list_items_carry_the_task_info_fields(start_emulator) -> None:
    emu, api = await start_emulator(task_duration=0.0, failure_rate=1.0)
    await api.create()
    item = (await api.list(None)).json["taskListDtos"][0]
    for key in ("taskId", "taskName", "taskType", "tenantId", "userId", "status", "initParams"):
        assert key in item
    for key in ("locale", "resultCode", "createTime", "startTime", "endTime"):
        assert key in item
    assert item["status"] == 3


@pytest.mark.parametrize(
    ("variant", "list_key", "code"),
    [
        ({"list_key": "taskList"}, "taskList", 0),
        ({"list_key": "taskListDtos"}, "taskListDtos", 0),
        ({"code_as": "str"}, "taskListDtos", "0"),
    ],
)
async def test_response_variants(start_emulator, variant, list_key, code) -> None:
    from koodrive_async.emulator import ResponseVariant

    _emu, api = await start_emulator(response_variant=ResponseVariant(**variant))
    created = await make_tasks(api, 3)
    pages = await page_through(api, {"pageSize": "2"})
    assert ids_of(pages, list_key) == created
    assert all(p["code"] == code for p in pages)
    other_key = "taskList" if list_key == "taskListDtos" else "taskListDtos"
    assert all(other_key not in p for p in pages)
    creates = await api.call("create_job")
    assert creates.json["code"] == code
    error = await api.list({"pageSize": "0"})
    assert error.json["code"] == (13000102 if code == 0 else "13000102")
    assert (await api.get(created[0])).json["code"] == code
