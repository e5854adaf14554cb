"""Edge cases of the client layers: odd response values, odd arguments, secrets, fork."""

from __future__ import annotations

import os

import pytest
from aiohttp import web
from client_helpers import custom_server, make_session

from koodrive_async import (
    InvalidRequestError,
    ResponseValidationError,
    ShareTaskRequest,
    ShareTaskType,
)
from koodrive_async._call import new_trace_id
from koodrive_async.emulator import KooDriveEmulator


@pytest.mark.parametrize("status", ["--1", "²", "-"])
async def test_digit_like_status_string_is_a_validation_error(status: str) -> None:
    # "--1" and "²" pass str.isdigit() after lstrip("-") but int() refuses them:
    # that ValueError used to escape get_task instead of a KooDriveError.
    async def handler(_request: web.Request) -> web.Response:
        return web.json_response({"code": 0, "taskId": "1", "status": status})

    async with custom_server(handler) as url, make_session(url) as s:
        with pytest.raises(ResponseValidationError, match="status must be an integer"):
            await s.get_task("1")


def test_bad_kdstoken_is_not_shown_in_the_error() -> None:
    with pytest.raises(InvalidRequestError) as info:
        ShareTaskRequest(
            ShareTaskType.PACKAGE,
            container_id="c",
            file_ids=["f"],
            share_id="s",
            kdstoken=b"kds-SECRET-42",  # type: ignore[arg-type]
            zip_name="z.zip",
        )
    assert info.value.field == "kdstoken"
    assert "SECRET" not in str(info.value) and "SECRET" not in repr(info.value)


@pytest.mark.parametrize("status", [3.5, object()])
async def test_iter_tasks_with_a_non_iterable_status_is_invalid_request(
    koodrive_emulator: KooDriveEmulator, status: object
) -> None:
    async with make_session(koodrive_emulator.url) as s:
        koodrive_emulator.clear_requests()
        with pytest.raises(InvalidRequestError) as info:
            async for _task in s.iter_tasks(status=status):  # type: ignore[arg-type]
                pass
    assert info.value.field == "status"
    assert koodrive_emulator.requests == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_repeat_the_parents_trace_ids() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.write(write_end, new_trace_id().encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        child_id = pipe.read()
    assert len(child_id) == 58
    assert child_id != new_trace_id()
