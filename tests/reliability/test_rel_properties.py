"""Property-based tests (hypothesis) of the decoders and of request validation.

1. The pure decoders of ``_decode`` turn *any* ``(status, headers, body)``
   into a model or a :class:`KooDriveError`: arbitrary bytes, arbitrary JSON,
   and JSON shaped almost like a real answer (the right keys, wrong values).
2. Any request model hypothesis can build either fails to construct with
   :class:`InvalidRequestError`, or is refused by the session with
   InvalidRequestError before anything is sent (the emulator's ledger stays
   empty), or is sent once and accepted by the emulator (2xx). The emulator is
   an independent reading of the pages, so a model the client accepts and the
   emulator refuses is a client validation gap.

The emulator and the session live in an event loop on a background thread,
started once per module, so each hypothesis example costs one round trip and
not a server start-up.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from koodrive_async import (
    FileInfo,
    FileRef,
    ImportTaskRequest,
    InvalidRequestError,
    JobAction,
    JobRequest,
    JobType,
    KooDriveError,
    KooDriveSession,
    ShareTaskRequest,
    ShareTaskType,
    Task,
    TaskPage,
    TransferTaskRequest,
)
from koodrive_async._build import build_create, build_get_task, build_list_tasks
from koodrive_async._call import Call, Response
from koodrive_async._decode import (
    decode_create,
    decode_task,
    decode_task_page,
    error_from_response,
)
from koodrive_async._retry import parse_retry_after
from koodrive_async.emulator import KooDriveEmulator

T = TypeVar("T")

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Share and job models have many rules, so most examples fail validation: run
# more of them, so that a few dozen reach the emulator.
MORE = settings(SETTINGS, max_examples=400)

# --------------------------------------------------------------------------- decoders

_CALLS: list[Call] = [
    build_create(TransferTaskRequest("s", "d"), agent_name=None),
    build_create(
        ShareTaskRequest(
            ShareTaskType.PACKAGE, container_id="c", file_ids=["f"], share_id="s", zip_name="z"
        ),
        agent_name="agent",
    ),
    build_create(
        JobRequest(JobType.COPY, src_container_id="c", dst_container_id="d", files=[FileInfo("f")]),
        agent_name=None,
    ),
    build_get_task("123"),
    build_list_tasks(),
]


def _decode(call: Call, status: int, headers: dict[str, str], body: bytes) -> object:
    """Run the decoder of the call's endpoint."""
    if call.route == "get_task":
        return decode_task(call, Response(status, headers, body, "trace"))
    if call.route == "list_tasks":
        return decode_task_page(call, Response(status, headers, body, "trace"))
    return decode_create(call, Response(status, headers, body, "trace"))


def _check_decoded(call: Call, status: int, headers: dict[str, str], body: bytes) -> None:
    try:
        result = _decode(call, status, headers, body)
    except KooDriveError as exc:
        # The message must render (str() of every error is logged by users).
        assert str(exc)
        return
    # Success is only possible for a 2xx answer, and gives the endpoint's model.
    assert 200 <= status < 300
    expected = {"get_task": Task, "list_tasks": TaskPage}.get(call.route, str)
    assert isinstance(result, expected)
    if isinstance(result, str):
        assert result


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Keys a real answer carries, so the decoders get past "is it an object".
_KEYS = [
    "code",
    "msg",
    "taskId",
    "data",
    "taskList",
    "taskListDtos",
    "nextCursor",
    "taskName",
    "taskType",
    "status",
    "resultCode",
    "createTime",
    "startTime",
    "endTime",
    "userId",
    "tenantId",
    "initParams",
    "locale",
]
task_like = st.dictionaries(st.sampled_from(_KEYS), json_values, max_size=8)
near_answers = st.dictionaries(
    st.sampled_from(_KEYS),
    json_values | st.lists(task_like, max_size=3) | task_like | st.sampled_from([0, "0"]),
    max_size=8,
)
statuses = st.sampled_from([200, 201, 204, 301, 302, 307, 400, 401, 403, 404, 429, 500, 502, 503])
statuses |= st.integers(min_value=100, max_value=599)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.sampled_from(["application/json", "text/html", ""]),
        "Retry-After": st.text(max_size=30),
    },
)


@SETTINGS
@given(call=st.sampled_from(_CALLS), status=statuses, headers=headers, body=st.binary(max_size=200))
def test_decoding_arbitrary_bytes_raises_only_koodrive_errors(
    call: Call, status: int, headers: dict[str, str], body: bytes
) -> None:
    _check_decoded(call, status, headers, body)


@SETTINGS
@given(call=st.sampled_from(_CALLS), status=statuses, headers=headers, value=json_values)
def test_decoding_arbitrary_json_raises_only_koodrive_errors(
    call: Call, status: int, headers: dict[str, str], value: object
) -> None:
    _check_decoded(call, status, headers, json.dumps(value).encode())


@SETTINGS
@given(
    call=st.sampled_from(_CALLS),
    status=st.sampled_from([200, 200, 200, 400, 500]),
    value=near_answers,
)
def test_decoding_answer_shaped_json_raises_only_koodrive_errors(
    call: Call, status: int, value: dict[str, Any]
) -> None:
    _check_decoded(call, status, {"Content-Type": "application/json"}, json.dumps(value).encode())


@SETTINGS
@given(call=st.sampled_from(_CALLS), status=statuses, headers=headers, body=st.binary(max_size=80))
def test_api_error_always_builds_an_api_error(
    call: Call, status: int, headers: dict[str, str], body: bytes
) -> None:
    error = error_from_response(call, Response(status, headers, body, "trace"))
    assert error.status_code == status
    assert error.code is None or isinstance(error.code, str)
    assert str(error)


@SETTINGS
@given(value=st.none() | st.text(max_size=40))
def test_retry_after_parses_to_none_or_a_finite_non_negative_number(value: str | None) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or (seconds >= 0 and seconds != float("inf"))


# --------------------------------------------------------------------------- requests

# A small alphabet with the characters that matter (whitespace, controls that
# cannot go in a header, non-ASCII, a lone surrogate that cannot be UTF-8),
# so that examples hit the validation edges instead of random letters.
_ALPHABET = st.sampled_from(["a", "Z", "0", " ", "\t", "\r", "\n", "\x00", "\x01", "\x7f", "é"])
_ALPHABET |= st.sampled_from(["字", "\ud800", "/", "%", "+"])
texts = st.text(alphabet=_ALPHABET, max_size=6)
# Mostly plain, valid values (so that many examples get through validation and
# reach the emulator), some edge cases, some None.
_plain = st.text(alphabet="abcXYZ019-_.", min_size=1, max_size=8)
mostly_texts = st.one_of(_plain, _plain, _plain, texts)
opt_texts = st.one_of(_plain, _plain, texts, st.none())
ints = st.integers(min_value=-2, max_value=800)


def _enum_or_int(values: list[int]) -> st.SearchStrategy[int]:
    # Mostly the documented values, a few out of range (and bool, an int too).
    repeat = max(2, 16 // len(values))
    return st.sampled_from([*values * repeat, -1, 0, 8, 99, 800, True])


file_infos = st.builds(FileInfo, file_id=st.one_of(_plain, _plain, opt_texts), file_path=opt_texts)
file_refs = st.builds(FileRef, file_id=mostly_texts, container_id=mostly_texts)


def _try(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    """Building a value type may itself raise InvalidRequestError: then leave it out."""

    @st.composite
    def build(draw: st.DrawFn) -> T | None:
        try:
            return draw(strategy)
        except InvalidRequestError:
            return None

    return build()


transfer_kwargs = st.fixed_dictionaries({"src_user_id": opt_texts, "dst_user_id": opt_texts})
import_kwargs = st.fixed_dictionaries(
    {"org_id": opt_texts, "org_user_id": opt_texts, "result_id": st.none() | opt_texts}
)
share_kwargs = st.fixed_dictionaries(
    {
        "task_type": _enum_or_int([1, 2]),
        "container_id": mostly_texts,
        "file_ids": st.lists(mostly_texts, min_size=0, max_size=3).filter(bool) | st.just([]),
        "share_id": mostly_texts,
        "kdstoken": st.none() | opt_texts,
        "target": _try(file_refs),
        "zip_name": opt_texts,
    }
)
_actions = st.none() | _enum_or_int([int(a) for a in JobAction])
job_kwargs = st.fixed_dictionaries(
    {
        "task_type": _enum_or_int([int(t) for t in JobType]),
        "src_container_id": mostly_texts,
        "dst_container_id": mostly_texts,
        "files": st.lists(_try(file_infos), min_size=1, max_size=3).map(
            lambda items: [i for i in items if i is not None]
        ),
        "action_type": st.one_of(st.none(), st.none(), _actions),
        "new_file_path": st.none() | opt_texts,
        "uncompress_file_paths": st.none() | st.lists(mostly_texts, max_size=2),
        "password": st.none() | st.none() | opt_texts,
        "share_folder_id": st.none() | opt_texts,
    }
)


class _Background:
    """An event loop on a thread, holding a started emulator and a session."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.emu: KooDriveEmulator | None = None
        self.session: KooDriveSession | None = None

    def run(self, factory: Callable[[], Awaitable[T]]) -> T:
        async def wrapper() -> T:
            return await factory()

        future: Future[T] = asyncio.run_coroutine_threadsafe(wrapper(), self.loop)
        return future.result(timeout=30)

    async def start(self) -> None:
        self.emu = KooDriveEmulator()
        await self.emu.start()
        self.session = KooDriveSession(
            self.emu.url, user_id="prop-user", token="prop-token", agent_name="prop-agent"
        )

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.emu is not None:
            await self.emu.close()

    def close(self) -> None:
        self.run(self.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def background() -> Iterator[_Background]:
    bg = _Background()
    bg.run(bg.start)
    try:
        yield bg
    finally:
        bg.close()


def _submit_or_refuse(bg: _Background, model_cls: type[Any], kwargs: dict[str, Any]) -> None:
    """Construct and submit; check the request was either refused unsent or accepted."""
    try:
        request = model_cls(**kwargs)
    except InvalidRequestError:
        event("refused by the model")
        return
    emu, session = bg.emu, bg.session
    assert emu is not None and session is not None
    emu.clear_requests()

    async def submit() -> str | InvalidRequestError:
        try:
            return await session.submit(request)
        except InvalidRequestError as exc:
            return exc

    result = bg.run(submit)
    ledger = list(emu.requests)
    if isinstance(result, InvalidRequestError):
        event("refused by the session")
        assert ledger == [], f"refused as invalid but sent: {ledger}"
        return
    event("sent and accepted")
    assert len(ledger) == 1, ledger
    entry = ledger[0]
    assert entry.status is not None and 200 <= entry.status < 300, (
        f"the client accepted {request!r} but the emulator answered {entry.status} {entry.response}"
    )
    assert entry.task_id == result


@SETTINGS
@given(kwargs=transfer_kwargs)
def test_transfer_requests_are_refused_unsent_or_accepted(
    background: _Background, kwargs: dict[str, Any]
) -> None:
    _submit_or_refuse(background, TransferTaskRequest, kwargs)


@SETTINGS
@given(kwargs=import_kwargs)
def test_import_requests_are_refused_unsent_or_accepted(
    background: _Background, kwargs: dict[str, Any]
) -> None:
    _submit_or_refuse(background, ImportTaskRequest, kwargs)


@MORE
@given(kwargs=share_kwargs)
def test_share_requests_are_refused_unsent_or_accepted(
    background: _Background, kwargs: dict[str, Any]
) -> None:
    _submit_or_refuse(background, ShareTaskRequest, kwargs)


@MORE
@given(kwargs=job_kwargs)
def test_job_requests_are_refused_unsent_or_accepted(
    background: _Background, kwargs: dict[str, Any]
) -> None:
    _submit_or_refuse(background, JobRequest, kwargs)


@settings(max_examples=100, deadline=None)
@given(
    user_id=texts.filter(bool),
    token=texts.filter(bool),
    agent_name=opt_texts,
    language=texts,
)
def test_session_settings_are_refused_at_construction_or_usable(
    background: _Background,
    user_id: str,
    token: str,
    agent_name: str | None,
    language: str,
) -> None:
    """Header values (X-User-Id, Authorization, X-Hw-Agentname, language) that
    cannot be sent are refused when the session is built, never mid-flight."""
    emu = background.emu
    assert emu is not None
    try:
        session = KooDriveSession(
            emu.url, user_id=user_id, token=token, agent_name=agent_name, language=language
        )
    except InvalidRequestError:
        return
    emu.clear_requests()

    async def use() -> object:
        try:
            return await session.get_task("1")
        except KooDriveError as exc:
            return exc
        finally:
            await session.close()

    result = background.run(use)
    # The emulator may refuse the values (401/400/404), but the request must have gone out.
    assert isinstance(result, KooDriveError)
    assert len(emu.requests) == 1
