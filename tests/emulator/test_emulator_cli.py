"""``python -m koodrive_async.emulator``: prints its URL, serves, stops cleanly on signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import pytest
from emu_helpers import PREFIX, x_date

from koodrive_async.emulator.__main__ import main


def start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "koodrive_async.emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), (url, proc.stderr.read() if proc.stderr else "")
    return proc, url


def call(url: str, path: str, *, body: dict | None = None, token: str = "t") -> tuple[int, dict]:
    request = urllib.request.Request(
        url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer+{token}", "X-User-Id": "cli-user", "X-Date": x_date()},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_and_stops_on_signals(stop_signal) -> None:
    proc, url = start(
        "--token", "good", "--token", "also-good", "--task-duration", "0", "--failure-rate", "1"
    )
    try:
        assert call(url, "/_emulator/health") == (200, {"status": "ok", "tasks": 0})
        status, created = call(
            url, f"{PREFIX}/task/create", body={"srcUserId": "a", "dstUserId": "b"}, token="good"
        )
        assert status == 200
        status, task = call(url, f"{PREFIX}/task/{created['taskId']}", token="also-good")
        assert status == 200 and task["status"] == 3  # duration 0, failure rate 1
        assert call(url, f"{PREFIX}/task/list", token="bad")[0] == 401
    finally:
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out == ""  # the URL was the only line
    assert "Traceback" not in err


def test_cli_response_variant_and_paging_flags() -> None:
    proc, url = start("--list-key", "taskList", "--code-as", "str", "--cursor-as", "str")
    try:
        for _ in range(3):
            call(url, f"{PREFIX}/task/create", body={"srcUserId": "a", "dstUserId": "b"})
        status, page = call(url, f"{PREFIX}/task/list?pageSize=2")
        assert status == 200
        assert page["code"] == "0" and len(page["taskList"]) == 2
        assert isinstance(page["nextCursor"], str)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_cli_session_flags() -> None:
    proc, url = start(
        "--session-code",
        "cli-code=cli-user",
        "--refresh-token",
        "cli-rt=cli-user",
        "--app",
        "cli-app=cli-secret",
        "--session-idle-timeout",
        "60",
        "--carrier-expires-in",
        "30",
        "--token-form",
        "bare",
    )
    try:
        status, session = call(url, f"{PREFIX}/session", body={"code": "cli-code"})
        assert status == 200 and session["data"]["userId"] == "cli-user"
        token = session["data"]["accessToken"]
        assert " " not in token and "+" not in token  # bare
        assert call(url, f"{PREFIX}/task/list", token=token)[0] == 200
        status, carrier = call(url, f"{PREFIX}/auth/refreshToken", body={"refreshToken": "cli-rt"})
        assert status == 200 and carrier["data"]["sessionInfo"]["expiresIn"] == 30
        assert call(url, f"{PREFIX}/session", body={"code": "other"})[0] == 401
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "cli-secret" not in out + err


@pytest.mark.parametrize(
    "args",
    [
        ["--failure-rate", "2"],
        ["--port", "nope"],
        ["--code-as", "float"],
        ["--app", "no-equals-sign"],
        ["--session-idle-timeout", "0"],
    ],
)
def test_cli_rejects_bad_arguments(args, capsys) -> None:
    # In process (``python -m koodrive_async.emulator`` is ``sys.exit(main())``,
    # which the tests above run in children): refused before serving, so it
    # returns at once; one that served instead would meet the test's timeout.
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's errors
        code = exc.code
    assert code == 2
    out, err = capsys.readouterr()
    assert out == "" and err
