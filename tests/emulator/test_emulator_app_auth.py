"""App authentication on the emulator's task and job routes (API-EXTRA.md section A).

With ``EmulatorConfig(apps={app_id: app_secret})`` a request whose
Authorization is ``HMAC-SHA256 AppId=..,SignedHeaders=..,Signature=..`` is
checked by rebuilding its canonical request. The tests sign by hand with
hashlib/hmac (from the rules, not from either implementation), and once with
the client's ``koodrive_async._signing.Signer`` as a cross-check, over real
loopback sockets.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from emu_helpers import JOB_COPY, PREFIX, SHARE_PACKAGE, TRANSFER, Api, Reply, x_date

from koodrive_async._signing import Signer

APP_ID = "a378331eca141163119eb602adb67b7802cc79cd33ba44c7d2fe61d1586c96a1"
SECRET = "AppSecret-SECRET-5f1c9e-never-shown"
USER = "1505084218764547200"


def _hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sign(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    signed: tuple[str, ...] = ("host", "x-date", "x-user-id"),
    secret: str = SECRET,
    app_id: str = APP_ID,
) -> str:
    """The Authorization value, from the written rules (query values here are all unreserved)."""
    parts = urlsplit(url)
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    query = "&".join(sorted(parts.query.split("&"))) if parts.query else ""
    lower = {k.lower(): v for k, v in headers.items()}
    lower.setdefault("host", parts.netloc)
    canonical_headers = "".join(f"{name}:{lower[name].strip()}\n" for name in signed)
    names = ";".join(signed)
    canonical = "\n".join([method, path, query, canonical_headers, names, _hex(body)])
    to_sign = "HMAC-SHA256\n" + _hex(canonical.encode())
    signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return f"HMAC-SHA256 AppId={app_id},SignedHeaders={names},Signature={signature}"


async def _send(
    api: Api,
    method: str,
    target: str,
    payload: Any = None,
    *,
    extra: dict[str, str] | None = None,
    date: str | None = None,
    tamper: bytes | None = None,
    **sign_kwargs: Any,
) -> Reply:
    url = api.url + target
    body = b"" if payload is None else json.dumps(payload).encode()
    headers = {"X-User-Id": USER, "X-Date": date or x_date(), **(extra or {})}
    if payload is not None:
        headers["Content-Type"] = "application/json"
    headers["Authorization"] = _sign(method, url, headers, body, **sign_kwargs)
    sent = body if tamper is None else tamper
    async with api.http.request(method, url, data=sent or None, headers=headers) as resp:
        text = await resp.text()
        return Reply(resp.status, text, resp.headers, json.loads(text))


def _assert_refused(reply: Reply, status: int = 401) -> None:
    assert reply.status == status, reply.text
    assert set(reply.json) == {"code", "msg"}
    assert reply.json["code"] == (13000103 if status == 401 else 13000102)
    assert SECRET not in reply.text


@pytest.fixture
async def signed_api(start_emulator: Any) -> tuple[Any, Api]:
    # Tasks stay pending for the test's length, so the signed cancel below is accepted.
    return await start_emulator(
        apps={APP_ID: SECRET, "other-app": "other-secret"}, tokens={"t"}, task_duration=600.0
    )


async def test_signed_requests_are_accepted_on_every_task_and_job_route(signed_api) -> None:
    emu, api = signed_api
    created = await _send(api, "POST", f"{PREFIX}/task/create", TRANSFER)
    assert created.status == 200, created.text
    task_id = created.json["taskId"]
    job = await _send(api, "POST", f"{PREFIX}/jobs", JOB_COPY)
    assert job.status == 200, job.text
    share = await _send(
        api, "POST", f"{PREFIX}/share/tasks", SHARE_PACKAGE, extra={"X-Hw-Agentname": "agent"}
    )
    assert share.status == 200, share.text
    got = await _send(api, "GET", f"{PREFIX}/task/{task_id}")
    assert got.status == 200 and got.json["taskId"] == task_id
    # The query is signed sorted, whatever order it is sent in.
    listed = await _send(api, "GET", f"{PREFIX}/task/list?status=1&pageSize=10&status=0")
    assert listed.status == 200, listed.text
    # The job and share-task reads and cancel are task and job routes too.
    job_id = job.json["data"]
    detail = await _send(api, "GET", f"{PREFIX}/{job_id}")
    assert detail.status == 200 and detail.json["data"]["jobInfo"]["taskId"] == job_id
    jobs = await _send(api, "GET", f"{PREFIX}/jobs?offset=0&limit=10")
    assert jobs.status == 200 and [j["taskId"] for j in jobs.json["data"]] == [job_id]
    share_detail = await _send(
        api,
        "POST",
        f"{PREFIX}/share/taskDetail",
        {"taskId": share.json["taskId"], "shareId": SHARE_PACKAGE["shareId"]},
        extra={"X-Hw-Agentname": "agent"},
    )
    assert share_detail.status == 200, share_detail.text
    cancelled = await _send(api, "POST", f"{PREFIX}/cancel", {"jobId": job_id})
    assert cancelled.status == 200, cancelled.text
    # The user is the signed X-User-Id.
    assert {t.user_id for t in emu.state.tasks()} == {USER}


async def test_more_signed_headers_and_a_second_app(signed_api) -> None:
    _emu, api = signed_api
    signed = ("content-type", "host", "x-date", "x-user-id")
    reply = await _send(api, "POST", f"{PREFIX}/task/create", TRANSFER, signed=signed)
    assert reply.status == 200, reply.text
    other = await _send(
        api, "POST", f"{PREFIX}/jobs", JOB_COPY, app_id="other-app", secret="other-secret"
    )
    assert other.status == 200, other.text


@pytest.mark.parametrize(
    "change",
    ["wrong_secret", "unknown_app", "tampered_body", "unsigned_user", "swapped_secret"],
)
async def test_bad_signatures_are_401_with_code_and_msg(signed_api, change) -> None:
    emu, api = signed_api
    kwargs: dict[str, Any] = {}
    if change == "wrong_secret":
        kwargs["secret"] = SECRET + "x"
    elif change == "unknown_app":
        kwargs["app_id"] = "no-such-app"
    elif change == "tampered_body":
        kwargs["tamper"] = json.dumps({**TRANSFER, "dstUserId": "someone-else"}).encode()
    elif change == "unsigned_user":
        kwargs["signed"] = ("host", "x-date")
    else:
        kwargs["secret"] = "other-secret"  # another app's secret under this AppId
    reply = await _send(api, "POST", f"{PREFIX}/task/create", TRANSFER, **kwargs)
    _assert_refused(reply)
    assert len(emu.state) == 0


async def test_a_signature_for_another_path_or_user_is_refused(signed_api) -> None:
    _emu, api = signed_api
    date = x_date()
    headers = {"X-User-Id": USER, "X-Date": date}
    authorization = _sign("GET", api.url + f"{PREFIX}/task/list", headers, b"")
    for target, user in ((f"{PREFIX}/task/1", USER), (f"{PREFIX}/task/list", "intruder")):
        sent = {"X-User-Id": user, "X-Date": date, "Authorization": authorization}
        async with api.http.get(api.url + target, headers=sent) as resp:
            assert resp.status == 401, (target, await resp.text())


@pytest.mark.parametrize(("offset", "why"), [(-16 * 60, "old"), (120, "later")])
async def test_a_stale_or_future_signature_is_401(signed_api, offset, why) -> None:
    _emu, api = signed_api
    reply = await _send(api, "POST", f"{PREFIX}/task/create", TRANSFER, date=x_date(offset))
    _assert_refused(reply)
    assert why in reply.json["msg"]
    # Well inside the window it is accepted.
    ok = await _send(api, "POST", f"{PREFIX}/task/create", TRANSFER, date=x_date(-14 * 60))
    assert ok.status == 200, ok.text


async def test_header_rules_still_apply_to_signed_requests(signed_api) -> None:
    _emu, api = signed_api
    # The share route still wants X-Hw-Agentname (400, the signature being good).
    reply = await _send(api, "POST", f"{PREFIX}/share/tasks", SHARE_PACKAGE)
    _assert_refused(reply, status=400)
    # A malformed X-Date is a bad header, not a bad signature.
    bad = await _send(api, "GET", f"{PREFIX}/task/list", date="2024-09-09T03:33:25Z")
    _assert_refused(bad, status=400)


async def test_no_apps_configured_refuses_every_signature(start_emulator) -> None:
    _emu, api = await start_emulator()
    _assert_refused(await _send(api, "POST", f"{PREFIX}/task/create", TRANSFER))


async def test_the_session_routes_do_not_take_app_authentication(signed_api) -> None:
    _emu, api = signed_api
    reply = await _send(api, "POST", f"{PREFIX}/session/refresh", extra={"x-session-id": "s"})
    _assert_refused(reply)


async def test_the_clients_signer_agrees(signed_api) -> None:
    """Cross-check: requests signed by ``koodrive_async._signing`` verify here."""
    _emu, api = signed_api
    signer = Signer(APP_ID, SECRET, signed_headers=("host", "x-date", "x-user-id", "language"))
    targets = [
        ("POST", f"{PREFIX}/task/create", json.dumps(TRANSFER).encode()),
        ("GET", f"{PREFIX}/task/list?pageSize=5&status=2&status=1&taskType=0", None),
        ("GET", f"{PREFIX}/task/list?pageCursor=&pageSize=100", None),
        ("POST", f"{PREFIX}/jobs", json.dumps(JOB_COPY, ensure_ascii=False).encode()),
    ]
    for method, target, body in targets:
        url = api.url + target
        headers = {"X-User-Id": USER, "X-Date": x_date(), "language": " en-US "}
        if body is not None:
            headers["Content-Type"] = "application/json"
        headers.update(signer.sign(method, url, headers, body).headers)
        async with api.http.request(method, url, data=body, headers=headers) as resp:
            assert resp.status == 200, (target, await resp.text())


async def test_the_ledger_keeps_the_app_id_not_the_signature(signed_api) -> None:
    emu, api = signed_api
    reply = await _send(api, "POST", f"{PREFIX}/task/create", TRANSFER)
    assert reply.status == 200
    (entry,) = emu.requests
    shown = entry.headers["Authorization"]
    assert shown == (
        f"HMAC-SHA256 AppId={APP_ID},SignedHeaders=host;x-date;x-user-id,Signature=***"
    )
    async with api.http.get(f"{emu.url}/_emulator/requests") as resp:
        served = await resp.text()
    signature = _sign(
        "POST",
        api.url + f"{PREFIX}/task/create",
        {"X-User-Id": USER, "X-Date": entry.headers["X-Date"], "Content-Type": "x"},
        json.dumps(TRANSFER).encode(),
    ).rsplit("=", 1)[1]
    for text in (served, json.dumps(entry.to_json()), repr(emu.config)):
        assert SECRET not in text and signature not in text
