"""CLI credentials: app authentication, session and carrier tokens from the environment
or a credentials file (mode 0600, rewritten with the newest tokens), never shown."""

from __future__ import annotations

import json
import os
import stat
from typing import Any

import aiohttp
import pytest
from cli_helpers import CLOCK_SPEED, POLL, TASK_DURATION, USER_ID, job_line, write_plan

from koodrive_async import create_session
from koodrive_async.emulator import EmulatorConfig

CODE = "cli-auth-code-SECRET"
REFRESH = "cli-refresh-SECRET-4e1a"
APP_ID = "cli-app-1"
APP_SECRET = "cli-app-SECRET-93b2"
#: Virtual seconds a session or carrier token lives. The virtual clock runs
#: CLOCK_SPEED times faster than real time, so this is LIFETIME / CLOCK_SPEED
#: real seconds (almost an hour), far longer than any child here may take
#: (``finish`` gives up at 150 s): only the tests' ``advance`` expires a token.
#: With 60 (2.4 s real), a child starting slowly on a loaded machine met an
#: expired token and renewed it once more, rightly, and a count of renewals failed.
LIFETIME = 24 * 3600.0


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(
        task_duration=TASK_DURATION,
        clock_speed=CLOCK_SPEED,
        seed=7,
        tokens={"never-used-static"},
        session_codes={CODE: USER_ID},
        refresh_tokens={REFRESH: USER_ID},
        apps={APP_ID: APP_SECRET},
        session_idle_timeout=LIFETIME,
        carrier_expires_in=LIFETIME,
    )


def _env(cli_env: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in cli_env.items() if k != "KOODRIVE_TOKEN"}
    env.update(extra)
    return env


def _clean(text: str, secrets: set[str]) -> None:
    for secret in secrets:
        assert secret not in text


async def test_app_authentication_from_the_environment(cli, cli_env, tmp_path) -> None:
    env = _env(cli_env, KOODRIVE_APP_ID=APP_ID, KOODRIVE_APP_SECRET=APP_SECRET)
    listed = await cli("task", "list", env=env)
    assert listed.code == 0, listed.err
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(5)])
    ran = await cli("run", str(plan), *POLL, env=env)
    assert ran.code == 0, ran.err
    journal = (tmp_path / "plan.journal.sqlite").read_bytes()
    _clean(listed.out + listed.err + ran.out + ran.err + journal.decode("latin-1"), {APP_SECRET})
    half = await cli("task", "list", env=_env(cli_env, KOODRIVE_APP_ID=APP_ID))
    assert half.code == 2 and "KOODRIVE_APP_SECRET" in half.err


async def test_a_credentials_file_is_renewed_in_place(cli, cli_env, emu, tmp_path) -> None:
    info = await create_session(emu.url, code=CODE)
    path = tmp_path / "creds.json"
    path.write_text(
        json.dumps(
            {"access_token": info.access_token, "session_id": info.session_id, "user_id": USER_ID}
        )
    )
    path.chmod(0o644)
    refused = await cli("--credentials", str(path), "task", "list", env=_env(cli_env))
    assert refused.code == 2 and "chmod 600" in refused.err
    path.chmod(0o600)
    emu.clock.advance(LIFETIME + 1)  # the token expired: the CLI meets a 401 and renews it
    first = await cli("--credentials", str(path), "task", "list", env=_env(cli_env))
    assert first.code == 0, first.err
    stored: dict[str, Any] = json.loads(path.read_text())
    assert stored["access_token"] != info.access_token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["creds.json"]  # no temp file left
    # The old token was revoked: only the rewritten file lets the next run in.
    plan = write_plan(tmp_path / "plan.jsonl", [job_line(f"F{i}") for i in range(5)])
    ran = await cli("run", str(plan), *POLL, "--credentials", str(path), env=_env(cli_env))
    assert ran.code == 0, ran.err
    assert emu.auth_counters["session_refreshes"] == 1
    secrets = {info.access_token.split(" ")[-1], info.session_id, stored["access_token"]}
    journal = (tmp_path / "plan.journal.sqlite").read_bytes().decode("latin-1")
    _clean(refused.err + first.out + first.err + ran.out + ran.err + journal, secrets)


async def test_carrier_tokens_from_the_environment_renew_after_a_401(cli, cli_env, emu) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{emu.url}/koodrive/ose/v1/auth/refreshToken",
            json={"refreshToken": REFRESH},
            headers={"Authorization": "AT+never-used-static"},
        ) as resp,
    ):
        info = (await resp.json())["data"]["sessionInfo"]
    emu.clock.advance(LIFETIME + 1)
    env = _env(
        cli_env, KOODRIVE_TOKEN=info["accessToken"], KOODRIVE_REFRESH_TOKEN=info["refreshToken"]
    )
    listed = await cli("task", "list", env=env)
    assert listed.code == 0, listed.err
    assert emu.auth_counters["carrier_refreshes"] == 2
    _clean(listed.out + listed.err, {info["refreshToken"], info["accessToken"].split(" ")[-1]})


async def test_a_bad_credentials_file_is_a_usage_error(cli, cli_env, tmp_path) -> None:
    path = tmp_path / "creds.json"
    for text in ("not json SECRET", '["SECRET"]', '{"token": "SECRET"}', '{"session_id": 5}'):
        path.write_text(text)
        os.chmod(path, 0o600)
        result = await cli("--credentials", str(path), "task", "list", env=_env(cli_env))
        assert result.code == 2, (text, result.err)
        assert "SECRET" not in result.err + result.out
    missing = await cli("--credentials", str(tmp_path / "nope.json"), "task", "list")
    assert missing.code == 2 and "cannot read" in missing.err
