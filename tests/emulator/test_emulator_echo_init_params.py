"""``EmulatorConfig.echo_init_params``: whether a task's initParams shows its request body."""

from __future__ import annotations

import json

import pytest
from emu_helpers import SHARE_PACKAGE, TRANSFER

from koodrive_async.emulator import EmulatorConfig


def test_default_echoes_the_body() -> None:
    assert EmulatorConfig().echo_init_params is True


async def test_init_params_is_the_redacted_body_by_default(start_emulator) -> None:
    _emu, api = await start_emulator(task_duration=5.0)
    task_id = await api.create("create_share_task", {**SHARE_PACKAGE, "kdstoken": "kds-1"})
    got = (await api.get(task_id)).json
    params = json.loads(got["initParams"])
    assert params == {**SHARE_PACKAGE, "kdstoken": "***"}
    listed = (await api.list(None)).json["taskListDtos"]
    assert [json.loads(t["initParams"]) for t in listed] == [params]


@pytest.mark.parametrize("route, body", [("create_task", TRANSFER), ("create_share_task", None)])
async def test_echo_off_leaves_init_params_out(start_emulator, route, body) -> None:
    _emu, api = await start_emulator(task_duration=5.0, echo_init_params=False)
    task_id = await api.create(route, body if body is not None else SHARE_PACKAGE)
    got = (await api.get(task_id)).json
    assert got["taskId"] == task_id and "initParams" not in got
    listed = (await api.list(None)).json["taskListDtos"]
    assert [t["taskId"] for t in listed] == [task_id]
    assert "initParams" not in listed[0]
    # The rest of the task is unchanged.
    for key in ("taskName", "taskType", "userId", "status", "createTime"):
        assert key in got
