"""Fuzzing: no input, however wrong, makes the emulator answer 500 or crash a handler."""

from __future__ import annotations

import json
import random
import string
from urllib.parse import quote

import pytest
from emu_helpers import IMPORT, JOB_COPY, PREFIX, ROUTES, SHARE_PACKAGE, SHARE_SAVE, TRANSFER, job
from hypothesis import given, settings
from hypothesis import strategies as st

from koodrive_async.emulator._rules import (
    Invalid,
    check_create_task,
    check_job,
    check_share_task,
    parse_x_date,
)

# ---------------------------------------------------------------- pure rules

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.sampled_from(["root", "F1", "", "1"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
keys = st.sampled_from(
    [
        "taskType",
        "actionType",
        "srcUserId",
        "dstUserId",
        "orgId",
        "orgUserId",
        "resultId",
        "containerId",
        "fileIds",
        "shareId",
        "targetFileId",
        "zipName",
        "kdstoken",
        "dstContainerId",
        "taskInfo",
        "password",
        "fileInfo",
        "fileId",
        "filePath",
        "srcContainerId",
        "uncompressFilePaths",
        "newFilePath",
    ]
)
bodies = st.dictionaries(keys, json_values | st.integers(0, 8) | st.integers(100, 702), max_size=8)


@settings(max_examples=200, deadline=None)
@given(body=bodies, info=st.dictionaries(keys, json_values, max_size=4))
def test_rule_checks_only_ever_refuse_with_invalid(body, info) -> None:
    if "taskInfo" not in body:
        body["taskInfo"] = info
    for check in (check_create_task, check_share_task, check_job):
        try:
            result = check(body)
        except Invalid as exc:
            assert exc.msg and exc.code in (13000101, 13000102)
        else:
            assert type(result) is int


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=20) | st.from_regex(r"\d{8}T\d{6}Z", fullmatch=True))
def test_x_date_parser_only_ever_refuses_with_invalid(value) -> None:
    try:
        assert parse_x_date(value) >= 0
    except Invalid:
        pass


# ---------------------------------------------------------------- over the wire

ODD = [
    None,
    True,
    False,
    0,
    1,
    -1,
    7,
    101,
    201,
    2**63,
    -(2**70),
    1.5,
    float("nan"),
    float("inf"),
    "",
    " ",
    "x",
    "root",
    "\u0000",
    "é" * 3,
    [],
    [None],
    ["a"],
    [{}],
    [{"fileId": 1}],
    {},
    {"fileId": None},
    {"a": {"b": [1]}},
]


def mutate(rng: random.Random, value, depth: int = 0):
    if depth < 4 and isinstance(value, dict) and value and rng.random() < 0.8:
        out = dict(value)
        key = rng.choice(list(out))
        roll = rng.random()
        if roll < 0.2:
            del out[key]
        elif roll < 0.7:
            out[key] = mutate(rng, out[key], depth + 1)
        elif roll < 0.9:
            out[key] = rng.choice(ODD)
        else:
            out[rng.choice(["extra", "taskType", "fileInfo"])] = rng.choice(ODD)
        return out
    if depth < 4 and isinstance(value, list) and value and rng.random() < 0.8:
        out = list(value)
        i = rng.randrange(len(out))
        out[i] = mutate(rng, out[i], depth + 1)
        if rng.random() < 0.3:
            out.append(rng.choice(ODD))
        return out
    return rng.choice(ODD)


SEEDS = {
    "create_task": [TRANSFER, IMPORT],
    "create_share_task": [SHARE_SAVE, SHARE_PACKAGE],
    "create_job": [JOB_COPY, job(2, 201), job(5, 503, uncompressFilePaths=["a"]), job(7, 701)],
}


@pytest.mark.parametrize("route", sorted(SEEDS))
async def test_mutated_bodies_never_500(api, koodrive_emulator, route) -> None:
    rng = random.Random(route)
    statuses = set()
    for i in range(200):
        payload = mutate(rng, rng.choice(SEEDS[route]))
        if i % 10 == 0:
            payload = mutate(rng, payload)
        reply = await api.call(route, data=json.dumps(payload).encode())
        assert reply.status in (200, 400), (payload, reply.text)
        assert reply.json is not None and {"code", "msg"} <= set(reply.json)
        statuses.add(reply.status)
    assert statuses == {200, 400}  # the fuzz reaches both sides of the rules
    assert koodrive_emulator.internal_errors == 0
    assert all(e.status != 500 for e in koodrive_emulator.requests)


@pytest.mark.parametrize("route", sorted(SEEDS))
async def test_random_bytes_never_500(api, koodrive_emulator, route) -> None:
    rng = random.Random(f"bytes-{route}")
    for _ in range(60):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        if rng.random() < 0.5:
            raw = b'{"taskType": ' + raw
        reply = await api.call(route, data=raw)
        assert reply.status == 400, reply.text
        assert reply.json["code"] in (13000101, 13000102)
    assert koodrive_emulator.internal_errors == 0


PRINTABLE = string.ascii_letters + string.digits + " +-_/:.,=TZ"


def junk(rng: random.Random) -> str:
    return "".join(rng.choice(PRINTABLE) for _ in range(rng.randrange(0, 24)))


async def test_random_headers_and_queries_never_500(api, koodrive_emulator) -> None:
    rng = random.Random(5)
    task_id = await api.create()
    for _ in range(300):
        headers = api.headers()
        for name in ("Authorization", "X-User-Id", "X-Date", "X-Hw-Agentname"):
            if rng.random() < 0.3:
                headers[name] = junk(rng)
            elif rng.random() < 0.1:
                del headers[name]
        route = rng.choice(sorted(ROUTES))
        method, path, example = ROUTES[route]
        target = task_id if rng.random() < 0.5 else quote(junk(rng), safe="") or "x"
        params = None
        if route == "list_tasks":
            params = [
                (rng.choice(["taskType", "status", "pageSize", "pageCursor", "other"]), value)
                for value in (
                    rng.choice(["", "0", "1,2", "101", "-3", "9" * 19, "9" * 25, junk(rng)])
                    for _ in range(rng.randrange(0, 5))
                )
            ]
        reply = await api.request(
            method,
            path.format(task_id=target),
            json_body=example if method == "POST" else None,
            params=params,
            headers=headers,
        )
        assert reply.status in (200, 400, 401, 404), reply.text
        assert reply.json is not None and {"code", "msg"} <= set(reply.json)
    assert koodrive_emulator.internal_errors == 0


async def test_unknown_paths_and_methods_answer_json(api) -> None:
    for method, path in [
        ("PUT", f"{PREFIX}/jobs"),  # GET jobs is the job list now
        ("PUT", f"{PREFIX}/task/create"),
        ("DELETE", f"{PREFIX}/task/123"),
        ("GET", "/"),
        ("POST", "/koodrive/ose/v2/jobs"),
    ]:
        reply = await api.request(method, path)
        assert reply.status in (404, 405), (method, path)
        assert reply.json is not None and reply.json["msg"]


async def test_an_emulator_bug_is_a_json_500_and_is_counted(api, koodrive_emulator) -> None:
    # Break the store on purpose: the handler must still answer JSON, and count it.
    def broken(**_kwargs):
        raise RuntimeError("boom")

    koodrive_emulator.state.create = broken
    reply = await api.call("create_task")
    assert reply.status == 500
    assert reply.json["code"] == 13000201
    assert koodrive_emulator.internal_errors == 1


@pytest.mark.parametrize("route", sorted(SEEDS))
@pytest.mark.parametrize("depth", [40, 400, 5000])
async def test_deeply_nested_json_is_answered_and_recorded(
    api, koodrive_emulator, route, depth
) -> None:
    nested = "[" * depth + "]" * depth
    for raw in (nested, '{"srcUserId": "a", "dstUserId": "b", "extra": %s}' % nested):
        reply = await api.call(route, data=raw.encode())
        assert reply.status in (200, 400), reply.text
        assert reply.json is not None
    assert koodrive_emulator.internal_errors == 0
    assert len(koodrive_emulator.requests) == 2
    for task in koodrive_emulator.state.tasks():  # a create that went through keeps a body
        assert (await api.get(task.task_id)).status == 200
