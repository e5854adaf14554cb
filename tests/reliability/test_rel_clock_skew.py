"""Clock skew: a client whose clock is 20 minutes fast or slow still works.

The emulator's ``clock_skew`` moves the server's wall clock (its X-Date check
and its ``Date`` header) away from ours. The session must learn the offset from
the ``Date`` header of any answer (errors included) and stamp X-Date with the
corrected time: at most one rejected attempt per call before it learnt it, and
none afterwards. The ledger counts the attempts.
"""

from __future__ import annotations

import asyncio
import calendar
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime

import aiohttp
import pytest

from koodrive_async import (
    AuthenticationError,
    FileInfo,
    JobRequest,
    JobType,
    KooDriveSession,
    NotFoundError,
    PollPolicy,
    RetryPolicy,
    ShareTaskRequest,
    ShareTaskType,
    TransferTaskRequest,
)
from koodrive_async._clock import format_x_date
from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator
from koodrive_async.emulator._app import CORE_KEY

SKEW = 20 * 60.0
X_FMT = "%Y%m%dT%H%M%SZ"
FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.002)


@pytest.fixture(params=[SKEW, -SKEW], ids=["server-ahead", "server-behind"])
async def emu(request: pytest.FixtureRequest) -> AsyncIterator[KooDriveEmulator]:
    async with KooDriveEmulator(EmulatorConfig(clock_skew=request.param)) as emulator:
        yield emulator


def _session(emu: KooDriveEmulator) -> KooDriveSession:
    return KooDriveSession(
        emu.url, user_id="skewed", token="tok", agent_name="agent", retry=FAST_RETRY
    )


def _x_date_refusals(emu: KooDriveEmulator) -> int:
    return sum(
        1
        for e in emu.requests
        if e.status == 400 and "X-Date" in str((e.response or {}).get("msg", ""))
    )


CREATES = [
    TransferTaskRequest("src-1", "dst-1"),
    ShareTaskRequest(
        ShareTaskType.PACKAGE, container_id="c", file_ids=["f1"], share_id="s", zip_name="z.zip"
    ),
    JobRequest(JobType.COPY, src_container_id="c1", dst_container_id="c2", files=[FileInfo("f")]),
]


async def test_the_premise_an_uncorrected_x_date_is_refused(emu: KooDriveEmulator) -> None:
    """Without correction our X-Date is refused with a 400 (raw aiohttp, no library)."""
    headers = {
        "Authorization": "Bearer tok",
        "X-User-Id": "skewed",
        "X-Date": format_x_date(time.time()),
    }
    async with aiohttp.ClientSession() as http:
        async with http.get(emu.url + "/koodrive/ose/v1/task/1", headers=headers) as resp:
            assert resp.status == 400
            assert "X-Date" in (await resp.json())["msg"]
            # The answer carries the server's (skewed) clock.
            server = parsedate_to_datetime(resp.headers["Date"]).timestamp()
    assert abs(server - time.time() - emu.config.clock_skew) < 5


@pytest.mark.parametrize("request_model", CREATES, ids=["task/create", "share/tasks", "jobs"])
async def test_each_create_works_with_one_rejected_attempt(
    emu: KooDriveEmulator, request_model: object
) -> None:
    async with _session(emu) as s:
        task_id = await s.submit(request_model)  # type: ignore[arg-type]
        # One task, and exactly one refused attempt before it.
        assert [e.status for e in emu.requests] == [400, 200]
        assert _x_date_refusals(emu) == 1
        assert [t.task_id for t in emu.state.tasks()] == [task_id]
        # The same X-Traceid on both attempts: one logical call.
        traces = {e.headers.get("X-Traceid") for e in emu.requests}
        assert len(traces) == 1
        # Learnt: the next calls go through at the first attempt.
        emu.clear_requests()
        await s.submit(request_model)  # type: ignore[arg-type]
        await s.get_task(task_id)
        assert [e.status for e in emu.requests] == [200, 200]


async def test_get_and_list_work_with_one_rejected_attempt(emu: KooDriveEmulator) -> None:
    async with _session(emu) as s:
        with pytest.raises(NotFoundError):
            await s.get_task("404404")
        assert [e.status for e in emu.requests] == [400, 404]
        emu.clear_requests()
        page = await s.list_tasks()
        assert page.tasks == ()
        assert [e.status for e in emu.requests] == [200]


async def test_offset_is_learnt_from_an_error_answer(emu: KooDriveEmulator) -> None:
    """A 503 carries a Date header too: the next call is stamped right at once."""
    emu.inject(FaultKind.UNAVAILABLE, route="get_task", count=1)
    async with _session(emu) as s:
        with pytest.raises(NotFoundError):
            await s.get_task("1")
        # The 503 taught the offset; the retry after it was stamped right.
        assert [e.status for e in emu.requests] == [503, 404]
        assert _x_date_refusals(emu) == 0


async def test_concurrent_first_calls_each_retry_once_at_most(emu: KooDriveEmulator) -> None:
    """Twenty creates sent before any answer arrived: every one was stamped
    with the wrong clock, and every one must succeed after a single refusal."""
    requests = [
        JobRequest(
            JobType.COPY, src_container_id="c1", dst_container_id="c2", files=[FileInfo(f"f{i}")]
        )
        for i in range(20)
    ]
    async with _session(emu) as s:
        ids = await asyncio.gather(*(s.submit(r) for r in requests))
    assert len(set(ids)) == 20
    assert len(emu.state.tasks()) == 20
    assert _x_date_refusals(emu) <= 20
    by_trace: dict[str | None, list[int | None]] = {}
    for entry in emu.requests:
        by_trace.setdefault(entry.headers.get("X-Traceid"), []).append(entry.status)
    assert len(by_trace) == 20
    for statuses in by_trace.values():
        assert statuses in ([200], [400, 200]), statuses


async def test_run_jobs_with_a_skewed_clock(emu: KooDriveEmulator) -> None:
    emu.clock.speed = 100.0

    requests = [
        JobRequest(
            JobType.COPY, src_container_id="c1", dst_container_id="c2", files=[FileInfo(f"g{i}")]
        )
        for i in range(30)
    ]
    async with _session(emu) as s:
        outcomes = await s.run_jobs(
            requests, max_concurrency=10, poll=PollPolicy(initial=0.005, max_interval=0.02)
        )
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    assert len(emu.state.tasks()) == 30
    # At most one refusal per request that was in flight before the offset was known.
    assert _x_date_refusals(emu) <= 10


@pytest.mark.parametrize("client_ahead", [0.05, 0.3, 0.7, 0.95])
async def test_a_clock_a_fraction_of_a_second_fast_is_refused_once_at_most(
    client_ahead: float,
) -> None:
    """X-Date may not be later than the server's current second. A client clock
    only slightly fast (NTP-synced machines differ by milliseconds) stamps the
    next second during part of every second: after the first refusal the
    session must never be refused again, whatever the sub-second phase.

    Both clocks are fakes driven by the test (the emulator's wall clock through
    its core, the session's through the transport), so every phase is visited
    deterministically.
    """
    async with KooDriveEmulator(EmulatorConfig()) as emu:
        core = emu.app[CORE_KEY]
        server = [1_762_153_300.0]
        core.server_now = lambda: server[0]  # type: ignore[method-assign]
        async with KooDriveSession(
            emu.url, user_id="u", token="tok", retry=RetryPolicy(max_attempts=1)
        ) as s:
            s._sender.clock.wall_clock = lambda: server[0] + client_ahead
            base = server[0]
            for step in range(40):
                # Walk through the phases of the second, in an order that
                # alternates early and late ones.
                phase = (step * 0.37) % 1.0
                server[0] = base + step + phase
                with pytest.raises(NotFoundError):
                    await s.get_task("1")
                # Never in the server's future, and never needlessly old.
                stamp = calendar.timegm(time.strptime(emu.requests[-1].headers["X-Date"], X_FMT))
                assert 0 <= server[0] - stamp < 2.5
    refusals = [e for e in emu.requests if e.status == 400]
    assert len(refusals) <= 1, [(e.headers.get("X-Date"), e.response) for e in refusals]
    assert sum(1 for e in emu.requests if e.status == 404) == 40


@pytest.mark.parametrize("skew", [0.0, 0.4, -0.4])
async def test_a_refusal_with_a_good_stamp_is_not_sent_twice(skew: float) -> None:
    """The clock retry is for refused stamps only: a 401 for a bad token, with
    clocks that agree to within a second, goes out once. The one exception is the
    very first call of a client whose clock is ahead: its stamp may really be in
    the server's future (the emulator checks the token first, so the client
    cannot tell which check failed), and it is repeated once."""
    config = EmulatorConfig(tokens=frozenset({"right"}), clock_skew=skew)
    async with KooDriveEmulator(config) as emu:
        async with KooDriveSession(emu.url, user_id="u", token="wrong", retry=FAST_RETRY) as s:
            for _ in range(3):
                with pytest.raises(AuthenticationError):
                    await s.create_transfer_task(src_user_id="a", dst_user_id="b")
        statuses = [e.status for e in emu.requests]
        traces = [e.headers.get("X-Traceid") for e in emu.requests]
    if skew >= 0:
        assert statuses == [401, 401, 401]
    else:
        assert statuses in ([401] * 3, [401] * 4)
        if len(statuses) == 4:
            assert traces[0] == traces[1] and len(set(traces)) == 3
