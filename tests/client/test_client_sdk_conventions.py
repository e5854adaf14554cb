"""SDK conventions against the emulator: the User-Agent, with_options views, trace ids
on results and through last_trace_id, and a caller's own trace id."""

from __future__ import annotations

import asyncio
import platform

import aiohttp
import pytest
from client_helpers import FAST_RETRY, TOKEN, make_session

from koodrive_async import (
    APIError,
    APITimeoutError,
    InvalidRequestError,
    NotFoundError,
    RetryPolicy,
    Task,
    TransferTaskRequest,
    __version__,
)
from koodrive_async.emulator import FaultKind, KooDriveEmulator

OWN_ID = "a" * 29 + "B-_" + "0" * 26  # 58 characters


async def test_every_request_sends_the_library_user_agent(
    koodrive_emulator: KooDriveEmulator,
) -> None:
    async with make_session(koodrive_emulator.url) as s:
        task_id = await s.create_transfer_task(src_user_id="a", dst_user_id="b")
        await s.get_task(task_id)
        await s.list_tasks()
    expected = (
        f"koodrive-async/{__version__} aiohttp/{aiohttp.__version__} "
        f"Python/{platform.python_version()}"
    )
    assert [e.headers["User-Agent"] for e in koodrive_emulator.requests] == [expected] * 3


async def test_user_agent_is_overridable_also_over_a_callers_session(
    koodrive_emulator: KooDriveEmulator,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with make_session(koodrive_emulator.url, user_agent="my-app/2.0", session=http) as s:
            await s.create_transfer_task(src_user_id="a", dst_user_id="b")
    (entry,) = koodrive_emulator.requests
    assert entry.headers["User-Agent"] == "my-app/2.0"


def test_a_user_agent_that_is_not_a_header_value_is_refused() -> None:
    with pytest.raises(InvalidRequestError) as info:
        make_session("http://127.0.0.1:1", user_agent="x\r\nX-Evil: 1")
    assert info.value.field == "user_agent"


async def test_task_and_page_carry_their_calls_trace_id_outside_equality_and_repr(
    koodrive_emulator: KooDriveEmulator,
) -> None:
    async with make_session(koodrive_emulator.url) as s:
        task_id = await s.create_transfer_task(src_user_id="a", dst_user_id="b")
        first = await s.get_task(task_id)
        second = await s.get_task(task_id)
        page = await s.list_tasks()
    sent = [e.headers["X-Traceid"] for e in koodrive_emulator.requests]
    assert first.trace_id == sent[1] and second.trace_id == sent[2]
    assert first == second and hash(first) == hash(second)  # the trace id is not compared
    assert "trace_id" not in repr(first) and sent[1] not in repr(first)
    assert page.trace_id == sent[3]
    assert all(task.trace_id == sent[3] for task in page.tasks)
    assert Task("x").trace_id is None


async def test_last_trace_id_names_the_last_call_of_this_task_success_or_failure(
    koodrive_emulator: KooDriveEmulator,
) -> None:
    async with make_session(koodrive_emulator.url) as s, make_session(koodrive_emulator.url) as o:
        assert s.last_trace_id is None
        task_id = await s.create_transfer_task(src_user_id="a", dst_user_id="b")
        assert s.last_trace_id == koodrive_emulator.requests[-1].headers["X-Traceid"]
        assert o.last_trace_id is None  # another session's calls are not its own
        with pytest.raises(NotFoundError) as info:
            await s.get_task("no-such-task")
        assert s.last_trace_id == info.value.trace_id
        assert s.last_trace_id == koodrive_emulator.requests[-1].headers["X-Traceid"]

        async def create_elsewhere() -> str | None:
            await s.create_transfer_task(src_user_id="c", dst_user_id="d")
            return s.last_trace_id

        before = s.last_trace_id
        other = await asyncio.create_task(create_elsewhere())
        # Per task (contextvars): the other task's call does not change this one's.
        assert other != before and s.last_trace_id == before
        assert task_id


async def test_with_options_trace_id_is_sent_on_every_attempt_and_reported(
    koodrive_emulator: KooDriveEmulator, sleeps: list[float]
) -> None:
    koodrive_emulator.inject(FaultKind.UNAVAILABLE, route="get_task", count=2)
    async with make_session(koodrive_emulator.url) as s:
        task_id = await s.create_transfer_task(src_user_id="a", dst_user_id="b")
        view = s.with_options(trace_id=OWN_ID)
        task = await view.get_task(task_id)
        assert task.trace_id == OWN_ID and view.last_trace_id == OWN_ID
        assert s.last_trace_id == OWN_ID  # the view's calls are the session's
        await s.get_task(task_id)  # the session itself keeps making new ids
    gets = [e.headers["X-Traceid"] for e in koodrive_emulator.requests if e.route == "get_task"]
    assert gets[:3] == [OWN_ID] * 3 and gets[3] != OWN_ID
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    "bad",
    ["short", "a" * 57, "a" * 59, "a" * 57 + "\n", "a" * 57 + " ", "é" * 58, 58, None.__class__],
)
def test_a_trace_id_that_is_not_58_safe_characters_is_refused(bad: object) -> None:
    s = make_session("http://127.0.0.1:1")
    with pytest.raises(InvalidRequestError) as info:
        s.with_options(trace_id=bad)  # type: ignore[arg-type]
    assert info.value.field == "trace_id"


async def test_with_options_retry_and_timeout_apply_to_the_view_only(
    koodrive_emulator: KooDriveEmulator, sleeps: list[float]
) -> None:
    async with make_session(koodrive_emulator.url) as s:
        once = s.with_options(retry=RetryPolicy(max_attempts=1))
        koodrive_emulator.inject(FaultKind.UNAVAILABLE, route="list_tasks", count=1)
        with pytest.raises(APIError) as info:
            await once.list_tasks()
        assert info.value.status_code == 503 and sleeps == []
        koodrive_emulator.inject(FaultKind.UNAVAILABLE, route="list_tasks", count=1)
        await s.list_tasks()  # the session's own policy retries
        assert len(sleeps) == 1

        koodrive_emulator.inject(FaultKind.LATENCY, route="list_tasks", count=1, latency=0.5)
        quick = s.with_options(timeout=0.05, retry=RetryPolicy(max_attempts=1))
        with pytest.raises(APITimeoutError):
            await quick.list_tasks()


async def test_a_view_shares_pool_and_lifecycle_and_closing_it_keeps_the_session(
    koodrive_emulator: KooDriveEmulator,
) -> None:
    s = make_session(koodrive_emulator.url)
    async with s:
        view = s.with_options(retry=FAST_RETRY, trace_id=OWN_ID)
        assert "view=True" in repr(view) and TOKEN not in repr(view)
        async with view:
            await view.create_transfer_task(src_user_id="a", dst_user_id="b")
        await view.close()
        assert not s.closed and not view.closed
        await s.list_tasks()
        assert view._sender.http is s._sender.http  # one pool
        assert view._scheduler() is s._scheduler()  # one poll scheduler
    assert s.closed and view.closed
    with pytest.raises(RuntimeError):
        await view.list_tasks()


async def test_run_jobs_on_a_view_submits_with_the_views_options(
    koodrive_emulator: KooDriveEmulator,
) -> None:
    async with make_session(koodrive_emulator.url) as s:
        view = s.with_options(trace_id=OWN_ID)
        koodrive_emulator.clock.advance(0)
        outcomes = await view.run_jobs(
            [TransferTaskRequest("a", "b")], timeout=0.001, max_concurrency=1
        )
    assert outcomes[0].task_id is not None
    creates = [e for e in koodrive_emulator.requests if e.route == "create_task"]
    assert [e.headers["X-Traceid"] for e in creates] == [OWN_ID]
