"""OpenTelemetry spans, read back from the SDK's in-memory exporter, against the emulator.

A session is given its own TracerProvider (``tracer_provider=``), so that no
global state leaks into the other tests; the global provider and the absence
of OpenTelemetry are checked in subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from client_helpers import TOKEN, make_session

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

from koodrive_async import (  # noqa: E402
    APIConnectionError,
    FileInfo,
    JobRequest,
    JobType,
    NotFoundError,
    PollPolicy,
    ServerError,
    ShareTaskType,
    TaskStatus,
    TransferTaskRequest,
)
from koodrive_async.emulator import FaultKind, KooDriveEmulator  # noqa: E402

FAST = PollPolicy(initial=0.01, multiplier=1.5, max_interval=0.05, jitter=0.1)
PASSWORD = "archive-pass-93kd"
KDSTOKEN = "kds-token-55zq"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    yield memory
    memory.clear()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    traced = TracerProvider()
    traced.add_span_processor(SimpleSpanProcessor(exporter))
    return traced


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def children(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def everything_recorded(spans: tuple[ReadableSpan, ...]) -> str:
    """Every name, attribute and event of every span, as one text to search."""
    parts: list[Any] = []
    for span in spans:
        parts += [span.name, dict(span.attributes or {}), span.status.description]
        parts += [(event.name, dict(event.attributes or {})) for event in span.events]
    return json.dumps(parts, default=str)


@pytest.mark.usefixtures("sleeps")
async def test_get_task_is_one_operation_span_over_one_client_span_per_attempt(
    koodrive_emulator: KooDriveEmulator,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    async with make_session(koodrive_emulator.url, tracer_provider=provider) as s:
        task_id = await s.create_transfer_task(src_user_id="a", dst_user_id="b")
        koodrive_emulator.inject(FaultKind.UNAVAILABLE, route="get_task", count=2)
        task = await s.get_task(task_id)
    spans = exporter.get_finished_spans()
    (create,) = by_name(spans, "create_transfer_task")
    assert create.attributes is not None and create.attributes["koodrive.task_id"] == task_id
    (operation,) = by_name(spans, "get_task")
    assert operation.kind is SpanKind.INTERNAL
    assert operation.attributes == {"koodrive.task_id": task_id, "koodrive.trace_id": task.trace_id}
    attempts = children(spans, operation)
    assert [a.name for a in attempts] == ["GET /koodrive/ose/v1/task/{taskId}"] * 3
    port = int(koodrive_emulator.url.rsplit(":", 1)[1])
    for number, attempt in enumerate(attempts):
        attributes = dict(attempt.attributes or {})
        assert attempt.kind is SpanKind.CLIENT
        assert attributes.pop("http.request.resend_count", 0) == number
        expected_status = 503 if number < 2 else 200
        assert attributes == {
            "http.request.method": "GET",
            "server.address": "127.0.0.1",
            "server.port": port,
            "url.full": f"{koodrive_emulator.url}/koodrive/ose/v1/task/{task_id}",
            "url.template": "/koodrive/ose/v1/task/{taskId}",
            "koodrive.trace_id": task.trace_id,
            "http.response.status_code": expected_status,
            **({"error.type": "503"} if number < 2 else {}),
        }
        assert attempt.status.status_code is (StatusCode.ERROR if number < 2 else StatusCode.UNSET)
    assert "http.request.resend_count" not in (attempts[0].attributes or {})


async def test_a_failed_call_records_error_type_on_both_spans(
    koodrive_emulator: KooDriveEmulator, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with make_session(koodrive_emulator.url, tracer_provider=provider) as s:
        with pytest.raises(NotFoundError) as info:
            await s.get_task("missing")
        koodrive_emulator.inject(FaultKind.DROP, route="list_tasks")
        with pytest.raises(APIConnectionError) as dropped:
            await s.list_tasks()
    spans = exporter.get_finished_spans()
    (get,) = by_name(spans, "get_task")
    assert get.status.status_code is StatusCode.ERROR
    assert get.attributes is not None and get.attributes["error.type"] == "NotFoundError"
    assert get.attributes["koodrive.trace_id"] == info.value.trace_id
    (attempt,) = children(spans, get)
    assert attempt.attributes is not None and attempt.attributes["error.type"] == "404"
    (listing,) = by_name(spans, "list_tasks")
    assert listing.attributes is not None
    assert listing.attributes["error.type"] == type(dropped.value).__qualname__
    broken = children(spans, listing)
    assert len(broken) == 4  # FAST_RETRY: four attempts, none answered
    for number, attempt in enumerate(broken):
        attributes = attempt.attributes or {}
        assert "http.response.status_code" not in attributes
        assert attributes["error.type"]  # the aiohttp exception's type name
        assert attributes.get("http.request.resend_count", 0) == number
        assert str(attributes["url.full"]).endswith("/task/list?pageSize=100")


async def test_a_wait_records_status_changes_as_events_and_parents_its_polls(
    koodrive_emulator: KooDriveEmulator, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    seen: list[object] = []
    async with make_session(koodrive_emulator.url, tracer_provider=provider) as s:
        task_id = await s.create_transfer_task(src_user_id="a", dst_user_id="b")

        def on_status(task: Any) -> None:
            seen.append(task.status)
            koodrive_emulator.clock.advance(30)

        task = await asyncio.wait_for(s.wait_for_task(task_id, poll=FAST, on_status=on_status), 10)
    assert task.succeeded and seen[-1] == TaskStatus.SUCCESS
    spans = exporter.get_finished_spans()
    (wait,) = by_name(spans, "wait_for_task")
    assert wait.attributes is not None and wait.attributes["koodrive.task_id"] == task_id
    events = [(e.name, dict(e.attributes or {})) for e in wait.events]
    assert events == [
        (
            "koodrive.status_change",
            {"koodrive.task_id": task_id, "koodrive.task.status": status.name},
        )
        for status in seen  # type: ignore[attr-defined]
    ]
    polls = children(spans, wait)
    assert polls and all(p.name == "get_task" for p in polls)
    assert all(children(spans, p)[0].kind is SpanKind.CLIENT for p in polls)


async def test_run_jobs_and_stream_jobs_are_operations_over_their_creates(
    koodrive_emulator: KooDriveEmulator, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    requests = [TransferTaskRequest(f"s{i}", f"d{i}") for i in range(3)]
    async with make_session(koodrive_emulator.url, tracer_provider=provider) as s:
        outcomes = await s.run_jobs(requests, poll=FAST, timeout=0.05)
        streamed = [o async for o in s.stream_jobs(requests, poll=FAST, timeout=0.05)]
    assert len(outcomes) == len(streamed) == 3
    spans = exporter.get_finished_spans()
    for name in ("run_jobs", "stream_jobs"):
        (run,) = by_name(spans, name)
        creates = [c for c in children(spans, run) if c.name == "create_transfer_task"]
        assert len(creates) == 3
        assert all(c.attributes and c.attributes["koodrive.task_id"] for c in creates)
        ids = {c.attributes["koodrive.task_id"] for c in creates if c.attributes}
        polls = [c for c in children(spans, run) if c.name == "get_task"]
        assert {p.attributes["koodrive.task_id"] for p in polls if p.attributes} <= ids


async def test_no_secret_reaches_any_span_attribute_or_event(
    koodrive_emulator: KooDriveEmulator, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with make_session(koodrive_emulator.url, tracer_provider=provider) as s:
        await s.create_job(
            JobType.DECOMPRESS,
            src_container_id="src",
            dst_container_id="dst",
            files=[FileInfo("f1", file_path="/a.zip")],
            password=PASSWORD,
        )
        await s.create_share_task(
            ShareTaskType.PACKAGE,
            container_id="c",
            file_ids=["f1"],
            share_id="sh",
            kdstoken=KDSTOKEN,
            zip_name="z.zip",
        )
        koodrive_emulator.inject(FaultKind.SERVER_ERROR, route="create_job", count=1)
        with pytest.raises(ServerError):
            await s.submit(JobRequest(JobType.COPY, "src", "dst", [FileInfo("f2")], password=None))
    spans = exporter.get_finished_spans()
    assert by_name(spans, "create_job") and by_name(spans, "create_share_task")
    recorded = everything_recorded(spans)
    for secret in (TOKEN, PASSWORD, KDSTOKEN, "Bearer"):
        assert secret not in recorded


async def test_trace_configs_reach_the_owned_session(koodrive_emulator: KooDriveEmulator) -> None:
    started: list[str] = []

    async def on_request_start(_session: object, _ctx: object, params: Any) -> None:
        started.append(params.method)

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_request_start)
    async with make_session(koodrive_emulator.url, trace_configs=[config]) as s:
        await s.list_tasks()
    assert started == ["GET"]


def test_trace_configs_with_a_callers_session_are_refused() -> None:
    from koodrive_async import InvalidRequestError

    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(InvalidRequestError):
                make_session(
                    "http://127.0.0.1:1", session=http, trace_configs=[aiohttp.TraceConfig()]
                )

    asyncio.run(main())


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_the_library_works_without_opentelemetry() -> None:
    result = _run(
        """
        import asyncio, sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ImportError("blocked: " + name)

        sys.meta_path.insert(0, Block())
        from koodrive_async import KooDriveSession, PollPolicy
        from koodrive_async.emulator import KooDriveEmulator

        async def main():
            async with KooDriveEmulator() as emu:
                async with KooDriveSession(emu.url, user_id="u", token="t") as s:
                    tid = await s.create_transfer_task(src_user_id="a", dst_user_id="b")
                    emu.clock.advance(60)
                    task = await s.wait_for_task(tid, poll=PollPolicy(initial=0.01))
                    outs = [o async for o in s.stream_jobs([s and __import__(
                        "koodrive_async").TransferTaskRequest("c", "d")], timeout=0.05)]
                    assert task.succeeded and len(outs) == 1
            assert not any(m.startswith("opentelemetry") for m in sys.modules), "imported"
            print("ok")

        asyncio.run(main())
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_global_tracer_provider_is_used_once_it_is_set() -> None:
    result = _run(
        """
        import asyncio
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from koodrive_async import KooDriveSession
        from koodrive_async.emulator import KooDriveEmulator

        async def main():
            memory = InMemorySpanExporter()
            async with KooDriveEmulator() as emu:
                async with KooDriveSession(emu.url, user_id="u", token="t") as s:
                    await s.list_tasks()  # no provider yet: no span
                    provider = TracerProvider()
                    provider.add_span_processor(SimpleSpanProcessor(memory))
                    trace.set_tracer_provider(provider)
                    await s.list_tasks()
            print(sorted(span.name for span in memory.get_finished_spans()))

        asyncio.run(main())
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['GET /koodrive/ose/v1/task/list', 'list_tasks']"


def test_a_provider_named_in_the_environment_later_is_still_found() -> None:
    # The tracing-off check skips get_tracer_provider()'s environment lookup
    # (a KeyError each call); it must still see the variable once it is set.
    result = _run(
        """
        import os
        from koodrive_async import _tracing

        assert _tracing.Tracing().tracer() is None
        os.environ["OTEL_PYTHON_TRACER_PROVIDER"] = "sdk_tracer_provider"
        tracer = _tracing.Tracing().tracer()
        print(type(tracer).__module__)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "opentelemetry.sdk.trace"


async def test_a_job_wait_is_an_operation_over_its_job_detail_polls(
    koodrive_emulator: KooDriveEmulator, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with make_session(koodrive_emulator.url, tracer_provider=provider) as s:
        job_id = await s.create_job(
            JobType.COPY, src_container_id="C1", dst_container_id="C2", files=[FileInfo("F1")]
        )

        def on_status(_job: Any) -> None:
            koodrive_emulator.clock.advance(30)

        job = await asyncio.wait_for(s.wait_for_job(job_id, poll=FAST, on_status=on_status), 10)
    assert job.succeeded
    spans = exporter.get_finished_spans()
    (wait,) = by_name(spans, "wait_for_job")
    assert wait.attributes is not None and wait.attributes["koodrive.task_id"] == job_id
    assert wait.events and all(e.name == "koodrive.status_change" for e in wait.events)
    polls = children(spans, wait)
    assert polls and all(p.name == "get_job" for p in polls)
    assert all(children(spans, p)[0].name == "GET /koodrive/ose/v1/{jobId}" for p in polls)
