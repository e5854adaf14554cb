"""Secrets never leak: not the token, not an archive password, not a share's kdstoken.

A run with faults (401 and a token refresh, 429, 5xx, created-but-500, HTML
502, dropped connections, malformed JSON, failed tasks, a wait that times out,
invalid input) uses a distinctive token, archive password and kdstoken, and
then every place they could show up is searched:

* DEBUG logs of the library, of aiohttp and of the root logger (caplog);
* ``str()``, ``repr()``, attributes and formatted tracebacks (with their
  ``__cause__`` chain) of every error produced, and reprs of the session,
  requests and outcomes;
* the emulator's ledger (entries, their JSON, the admin route) and its tasks;
* the command line: ``python -m koodrive_async run`` on a plan with a
  decompress job with a password and a share with a kdstoken, with faults: its
  stdout, stderr and every byte of its SQLite journal; and the error report of
  a plan that misuses a password.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from koodrive_async import (
    CredentialsError,
    FileInfo,
    FileRef,
    InvalidRequestError,
    JobAction,
    JobOutcome,
    JobRequest,
    JobType,
    KooDriveError,
    KooDriveSession,
    PollPolicy,
    RetryPolicy,
    ShareTaskRequest,
    ShareTaskType,
    TransferTaskRequest,
)
from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator

TOKEN = "T0KEN-zq81-SECRET-4b9e2d"
STALE_TOKEN = "STALE-T0KEN-ab12-SECRET-77"
PASSWORD = "Arch1vePW-SECRET-c3d2e1"
KDSTOKEN = "kdsT0K-SECRET-9f8e7d6c"
SECRETS = (TOKEN, STALE_TOKEN, PASSWORD, KDSTOKEN)

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.002)
FAST_POLL = PollPolicy(initial=0.01, multiplier=1.0, max_interval=0.02, jitter=0.0)


def _assert_clean(where: str, text: str | bytes) -> None:
    data = text if isinstance(text, bytes) else text.encode("utf-8", "backslashreplace")
    for secret in SECRETS:
        for form in (secret.encode(), secret.encode("utf-16-le")):
            assert form not in data, f"{secret!r} found in {where}"


def _describe_error(error: BaseException) -> str:
    parts = [str(error), repr(error)]
    parts += traceback.format_exception(error)
    seen: BaseException | None = error
    while seen is not None:
        parts.append(repr(seen))
        parts.append(repr(getattr(seen, "__dict__", {})))
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


@pytest.fixture
async def emu() -> AsyncIterator[KooDriveEmulator]:
    config = EmulatorConfig(tokens={TOKEN}, task_duration=1.0, failure_rate=0.3, seed=5)
    async with KooDriveEmulator(config) as emulator:
        emulator.clock.speed = 50.0
        yield emulator


def _requests() -> list[Any]:
    requests: list[Any] = []
    for i in range(12):
        requests.append(
            JobRequest(
                JobType.DECOMPRESS,
                src_container_id="c1",
                dst_container_id="c2",
                files=[FileInfo(f"archive-{i}")],
                action_type=JobAction.DECOMPRESS_ALL,
                password=PASSWORD,
            )
        )
        requests.append(
            ShareTaskRequest(
                ShareTaskType.SAVE,
                container_id="c1",
                file_ids=[f"shared-{i}"],
                share_id="s1",
                kdstoken=KDSTOKEN,
                target=FileRef("root", "c2"),
            )
        )
    return requests


async def test_nothing_secret_in_logs_reprs_errors_or_the_ledger(
    emu: KooDriveEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("koodrive_async", "aiohttp", "aiohttp.client", "aiohttp.server", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    errors: list[BaseException] = []
    texts: list[str] = []

    # Faults on every route, counted so that each one surely happens.
    emu.inject(FaultKind.RATE_LIMIT, route="create_job", count=1, retry_after=0)
    emu.inject(FaultKind.CREATED_BUT_500, route="create_job", count=1)
    emu.inject(FaultKind.MALFORMED_JSON, route="create_share_task", count=1)
    emu.inject(FaultKind.BAD_GATEWAY_HTML, route="create_share_task", count=1)
    emu.inject(FaultKind.DROP, route="create_job", count=1)
    emu.inject(FaultKind.SERVER_ERROR, route="get_task", count=3)
    emu.inject(FaultKind.DROP, route="get_task", count=2)
    emu.inject(FaultKind.MALFORMED_JSON, route="get_task", count=2)

    # A token provider that first hands out a stale token: 401, refresh, retry.
    calls: list[bool] = []

    async def provider(force_refresh: bool) -> str:
        calls.append(force_refresh)
        return TOKEN if force_refresh else STALE_TOKEN

    async with KooDriveSession(
        emu.url, user_id="u1", token_provider=provider, agent_name="agent", retry=FAST_RETRY
    ) as s:
        texts.append(repr(s))
        outcomes: list[JobOutcome] = await s.run_jobs(
            _requests(), max_concurrency=6, poll=FAST_POLL, timeout=20
        )
        assert calls == [False, True]
        texts += [repr(o) for o in outcomes]
        errors += [o.error for o in outcomes if o.error is not None]
        # The run met every kind of trouble it was meant to.
        # By class and base class: a job with failed files ends in
        # JobFailedError, a TaskFailedError.
        kinds = {cls.__name__ for e in errors for cls in type(e).__mro__}
        assert {"TaskFailedError", "ServerError", "APIConnectionError"} <= kinds, kinds
        assert any(getattr(e, "possibly_created", False) for e in errors)

        # A wait that times out, on a task that takes long.
        emu.clock.speed = 0.001
        task_id = await s.submit(_requests()[0])
        try:
            await s.wait_for_task(task_id, timeout=0.05, poll=FAST_POLL)
        except KooDriveError as exc:
            errors.append(exc)

    # A wrong fixed token: 401 without a refresh.
    async with KooDriveSession(emu.url, user_id="u1", token=STALE_TOKEN, retry=FAST_RETRY) as s:
        texts.append(repr(s))
        try:
            await s.submit(_requests()[0])
        except KooDriveError as exc:
            errors.append(exc)

    # Invalid input that involves a secret: refused, without echoing it.
    bad_inputs: list[Any] = [
        lambda: JobRequest(
            JobType.COPY,
            src_container_id="c1",
            dst_container_id="c2",
            files=[FileInfo("f")],
            password=PASSWORD,
        ),
        lambda: KooDriveSession(emu.url, user_id="u", token=TOKEN + "\n"),
        lambda: KooDriveSession(emu.url, user_id="u", token=TOKEN, token_provider=provider),
        lambda: KooDriveSession("http://example.com", user_id="u", token=TOKEN),
        lambda: TransferTaskRequest(src_user_id=TOKEN, dst_user_id=" "),
    ]
    for make in bad_inputs:
        with pytest.raises(InvalidRequestError) as info:
            make()
        errors.append(info.value)

    async def bad_provider(_force: bool) -> str:
        return TOKEN + "\r\nX-Evil: 1"

    async with KooDriveSession(emu.url, user_id="u", token_provider=bad_provider) as s:
        with pytest.raises(CredentialsError) as credentials:
            await s.get_task("1")
        errors.append(credentials.value)

    texts += [repr(r) for r in _requests()[:2]]
    assert len(errors) >= 10
    for i, error in enumerate(errors):
        assert isinstance(error, KooDriveError)
        _assert_clean(f"error #{i} {type(error).__name__}", _describe_error(error))
    for i, text in enumerate(texts):
        _assert_clean(f"repr #{i}", text)

    # Logs: the formatted text, every message, its arguments and exception text.
    assert any(r.name.startswith("koodrive_async") for r in caplog.records)
    _assert_clean("caplog text", caplog.text)
    for record in caplog.records:
        _assert_clean(
            f"log record {record.name}",
            f"{record.getMessage()} {record.args!r} {record.exc_text} {record.__dict__!r}",
        )

    # The emulator's ledger and task store, and its admin route.
    ledger = emu.requests
    assert ledger
    _assert_clean("ledger repr", repr(ledger))
    _assert_clean("ledger JSON", json.dumps([e.to_json() for e in ledger], default=str))
    _assert_clean("emulator tasks", repr([(t, t.body) for t in emu.state.tasks()]))
    async with aiohttp.ClientSession() as http:
        async with http.get(emu.url + "/_emulator/requests") as resp:
            _assert_clean("admin ledger", await resp.read())
        async with http.get(emu.url + "/_emulator/tasks") as resp:
            _assert_clean("admin tasks", await resp.read())
    # The secrets did travel where they belong (so the checks above mean something).
    bodies = [e.body for e in ledger if isinstance(e.body, dict)]
    assert any(b.get("password") == "***" for b in bodies)
    assert any(e.headers.get("Authorization", "").startswith("Bearer") for e in ledger)


# --------------------------------------------------------------------- session credentials

AUTH_CODE = "AuthC0DE-SECRET-61a2b3"
REFRESH_TOKEN = "REFRESH-SECRET-0e0e72d3c7e9"
APP_SECRET = "APPSECRET-SECRET-93b2f1"


async def test_the_emulator_keeps_session_and_app_credentials_out_of_ledger_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Codes, session ids, access and refresh tokens, signatures: never in the ledger or logs.

    The emulator alone, driven by plain aiohttp (the client credentials are
    tested where they live), through the session routes and faults that cut
    their answers short after acting.
    """
    caplog.set_level(logging.DEBUG)
    config = EmulatorConfig(
        session_codes={AUTH_CODE: "u-session"},
        refresh_tokens={REFRESH_TOKEN: "u-carrier"},
        apps={"app-1": APP_SECRET},
        session_idle_timeout=5,
    )
    seen: set[str] = {AUTH_CODE, REFRESH_TOKEN, APP_SECRET}
    base = "/koodrive/ose/v1"
    async with KooDriveEmulator(config) as emu, aiohttp.ClientSession() as http:
        emu.clock.speed = 0.0

        async def post(path: str, headers: dict[str, str], body: Any = None) -> Any:
            data = None if body is None else json.dumps(body)
            async with http.post(emu.url + base + path, data=data, headers=headers) as resp:
                try:
                    return await resp.json(content_type=None)
                except ValueError:
                    return None

        session = (await post("/session", {}, {"code": AUTH_CODE}))["data"]
        seen |= {session["sessionId"], session["accessToken"].split(" ", 1)[1]}
        emu.clock.advance(6)
        refresh = {"Authorization": session["accessToken"], "x-session-id": session["sessionId"]}
        emu.inject(FaultKind.MALFORMED_JSON, route="refresh_session", count=1)
        assert await post("/session/refresh", refresh) is None
        renewed = await post("/session/refresh", refresh)
        assert renewed["code"] == 13000103  # the lost answer's refresh replaced that token
        emu.inject(FaultKind.CREATED_BUT_500, route="refresh_carrier_token", count=1)
        await post("/auth/refreshToken", {"Authorization": "AT+x"}, {"refreshToken": REFRESH_TOKEN})
        await post("/auth/refreshToken", {"Authorization": "AT x"}, {"refreshToken": REFRESH_TOKEN})
        signed = "HMAC-SHA256 AppId=app-1,SignedHeaders=x-date;x-user-id,Signature=" + "0" * 64
        await post("/task/create", {"Authorization": signed, "X-User-Id": "u", "X-Date": "x"})
        seen.add("0" * 64)
        async with http.get(emu.url + "/_emulator/requests") as resp:
            served = await resp.text()
        async with http.get(emu.url + "/_emulator/auth") as resp:
            counters = await resp.text()
    assert emu.auth_counters["session_refreshes"] == 1
    assert emu.auth_counters["carrier_refreshes"] == 1
    ledger = json.dumps([e.to_json() for e in emu.requests], default=str)
    places = {
        "ledger": ledger,
        "ledger repr": repr(emu.requests),
        "admin ledger": served,
        "admin auth": counters,
        "config repr": repr(emu.config),
        "emulator repr": repr(emu),
        "logs": caplog.text + repr([r.__dict__ for r in caplog.records]),
    }
    for where, text in places.items():
        for secret in seen:
            assert secret not in text, f"a credential found in {where}"
    assert '"x-session-id": "***"' in ledger  # it was there, redacted


async def test_client_credentials_keep_every_token_out_of_logs_reprs_errors_and_ledger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SessionCredentials, CarrierCredentials and AppAuth through renewals and failed refreshes.

    Every token the run ever held (collected through ``on_refresh``), the
    session id, the refresh tokens and the app secret are searched for in the
    DEBUG logs, the reprs, every error (with its cause chain) and the ledger.
    """
    from koodrive_async import (
        AppAuth,
        CarrierCredentials,
        SessionCredentials,
        create_session,
    )

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="koodrive_async")
    config = EmulatorConfig(
        session_codes={AUTH_CODE: "u-session"},
        refresh_tokens={REFRESH_TOKEN: "u-carrier"},
        tokens={TOKEN},
        apps={"app-1": APP_SECRET},
        session_idle_timeout=5,
        carrier_expires_in=2,
    )
    held: set[str] = {AUTH_CODE, REFRESH_TOKEN, APP_SECRET, TOKEN}
    errors: list[BaseException] = []
    texts: list[str] = []

    def keep(creds: Any) -> None:
        held.add(creds.access_token)
        held.update(t for t in (getattr(creds, "refresh_token", None),) if t)

    async with KooDriveEmulator(config) as emu:
        emu.clock.speed = 0.0
        info = await create_session(emu.url, code=AUTH_CODE)
        held |= {info.session_id, info.access_token.split(" ", 1)[-1]}
        texts.append(repr(info))
        session_creds = SessionCredentials(
            info.access_token, info.session_id, on_refresh=keep, clock=emu.clock.now
        )
        carrier = CarrierCredentials(
            TOKEN, REFRESH_TOKEN, expires_in=2, on_refresh=keep, clock=emu.clock.now
        )
        app = AppAuth("app-1", APP_SECRET)
        for creds, user in ((session_creds, "u-session"), (carrier, "u-carrier"), (app, "u")):
            async with KooDriveSession(
                emu.url, user_id=user, auth=creds, retry=FAST_RETRY, timeout=5
            ) as s:
                texts += [repr(s), repr(creds)]
                for _ in range(3):
                    emu.clock.advance(6)
                    await s.list_tasks()
                if creds is app:
                    continue
                route = "refresh_session" if creds is session_creds else "refresh_carrier_token"
                for fault in (FaultKind.MALFORMED_JSON, FaultKind.CREATED_BUT_500):
                    emu.inject(fault, route=route, count=1)
                    emu.clock.advance(6)
                    with pytest.raises(CredentialsError) as failed:
                        await s.list_tasks()
                    errors.append(failed.value)
        async with KooDriveSession(
            emu.url, user_id="u", auth=AppAuth("app-1", "wrong-" + APP_SECRET), retry=FAST_RETRY
        ) as s:
            with pytest.raises(KooDriveError) as refused:
                await s.list_tasks()
            errors.append(refused.value)
        with pytest.raises(KooDriveError) as bad_code:
            await create_session(emu.url, code=AUTH_CODE + "-wrong")
        errors.append(bad_code.value)
        ledger = json.dumps([e.to_json() for e in emu.requests], default=str)
    assert session_creds.refreshes >= 3 and carrier.refreshes >= 3
    places = {
        "logs": caplog.text + repr([(r.getMessage(), r.args, r.exc_text) for r in caplog.records]),
        "ledger": ledger,
        "reprs": "\n".join(texts),
    }
    places |= {f"error {i}": _describe_error(e) for i, e in enumerate(errors)}
    assert any(m.startswith("signed ") for m in (r.getMessage() for r in caplog.records))
    for where, text in places.items():
        for secret in held:
            assert secret not in text, f"a credential found in {where}"


# --------------------------------------------------------------------------- the CLI


def _plan_lines() -> list[dict[str, Any]]:
    return [
        {
            "kind": "job",
            "taskType": 5,
            "actionType": 502,
            "dstContainerId": "IAABdst",
            "password": PASSWORD,
            "taskInfo": {"srcContainerId": "IAABsrc", "fileInfo": [{"fileId": f"zip-{i}"}]},
        }
        for i in range(4)
    ] + [
        {
            "kind": "share",
            "taskType": 2,
            "containerId": "IAABsrc",
            "fileIds": [f"share-{i}"],
            "shareId": "1689765568237837824",
            "kdstoken": KDSTOKEN,
            "targetFileId": {"fileId": "root", "containerId": "IAABdst"},
        }
        for i in range(4)
    ]


async def _run_cli(args: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "koodrive_async",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 45)
    assert proc.returncode is not None
    return proc.returncode, out, err


async def test_the_cli_keeps_secrets_out_of_output_and_journal(
    emu: KooDriveEmulator, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.jsonl"
    plan.write_text("".join(json.dumps(line) + "\n" for line in _plan_lines()), encoding="utf-8")
    journal = tmp_path / "run.journal.sqlite"
    env = {
        **os.environ,
        "KOODRIVE_BASE_URL": emu.url,
        "KOODRIVE_USER_ID": "1397687227244555008",
        "KOODRIVE_TOKEN": TOKEN,
        "KOODRIVE_AGENT_NAME": "agent",
        "PYTHONASYNCIODEBUG": "1",
    }
    # An in-doubt line (created, answered 500), a refused one, a failed task or two.
    emu.inject(FaultKind.CREATED_BUT_500, route="create_job", count=1)
    emu.inject(FaultKind.BAD_GATEWAY_HTML, route="create_share_task", count=1)
    emu.inject(FaultKind.SERVER_ERROR, route="get_task", count=2)
    args = ["run", str(plan), "--journal", str(journal), "--poll-interval", "0.02"]
    code, out, err = await _run_cli([*args, "--json", "--progress", "plain"], env)
    assert code in (1, 3), (code, out, err)
    assert out, err
    outputs = [("stdout", out), ("stderr", err)]
    # Resume: the in-doubt line is reported again, the rest is skipped.
    code2, out2, err2 = await _run_cli([*args, "--progress", "plain"], env)
    outputs += [("resumed stdout", out2), ("resumed stderr", err2)]
    # A plan that misuses a password (not a decompress job) is refused, unsent.
    bad_plan = tmp_path / "bad.jsonl"
    bad = {**_plan_lines()[0], "taskType": 1, "actionType": 101}
    bad_plan.write_text(json.dumps(bad) + "\n", encoding="utf-8")
    code3, out3, err3 = await _run_cli(["run", str(bad_plan)], env)
    assert code3 == 2
    assert b"password" in out3 + err3  # the error names the field...
    outputs += [("bad plan stdout", out3), ("bad plan stderr", err3)]
    for where, data in outputs:
        _assert_clean(where, data)  # ...but never its value
    # Every byte of the journal and of any SQLite side file beside it.
    files = [p for p in tmp_path.iterdir() if p.name.startswith(("run.journal", "bad"))]
    assert journal in files
    for path in files:
        if path != bad_plan:
            _assert_clean(path.name, path.read_bytes())
    # The lines did reach the emulator, with their secrets (redacted in its ledger).
    bodies = [e.body for e in emu.requests if isinstance(e.body, dict)]
    assert sum(1 for b in bodies if b.get("password") == "***") >= 4
    assert sum(1 for b in bodies if b.get("kdstoken") == "***") >= 3
    _assert_clean("ledger JSON", json.dumps([e.to_json() for e in emu.requests], default=str))
