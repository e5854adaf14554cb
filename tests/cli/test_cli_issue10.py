"""Regressions of issue 10 on the command line.

* A service whose clock is behind ours: its tasks' ``createTime`` is in its
  clock, so the reconciliation compares it with the "submitting" time in the
  service's clock (the learnt offset is journaled with the mark); before, a
  create carried out but answered 500 was "proven not created" and sent again.
* A journal written by the previous schema (version 1) opens, is migrated and
  resumes.
* A task listing whose cursor cycles (A -> B -> A), or never ends, ends the
  reconciliation with an error naming the cursor; the lines stay in doubt.
* A dead endpoint stops the submissions after a few creates that could not
  connect; the lines stay pending.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cli_helpers import (
    CLOCK_SPEED,
    POLL,
    TASK_DURATION,
    TOKEN,
    USER_ID,
    Handler,
    Result,
    created_by_marker,
    custom_server,
    job_line,
    journal_rows,
    run_in_process,
    start_cli,
    write_plan,
)

from koodrive_async import KooDriveSession
from koodrive_async.bulk import UNREACHABLE_LIMIT, JournalError, State, load_plan
from koodrive_async.bulk import SQLiteJournal as Journal
from koodrive_async.bulk._mask import mask
from koodrive_async.bulk._sqlite import SCHEMA_VERSION
from koodrive_async.emulator import EmulatorConfig, FaultKind, KooDriveEmulator

Cli = Callable[..., Any]

SETTLE = ("--settle-time", "0.3")


@pytest.fixture
def emulator_config(request: pytest.FixtureRequest) -> EmulatorConfig:
    """Parametrize indirectly with the server's clock skew in seconds."""
    return EmulatorConfig(
        task_duration=TASK_DURATION,
        clock_speed=CLOCK_SPEED,
        seed=7,
        clock_skew=getattr(request, "param", 0.0),
    )


def _plan(tmp_path: Path, markers: list[str]) -> Path:
    return write_plan(tmp_path / "plan.jsonl", [job_line(m) for m in markers])


# --------------------------------------------------------------------------- clock behind


@pytest.mark.parametrize("emulator_config", [-20 * 60.0, -60 * 60.0], indirect=True)
@pytest.mark.parametrize("concurrency", ["16", "1"])
async def test_creates_carried_out_on_a_clock_behind_ours_are_found_not_resent(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path, concurrency: str
) -> None:
    # With 16 in flight every line is marked before any answer taught the
    # offset (no bound); with 1 in flight lines 2-4 are marked with it known.
    # A first attempt stamped before the offset is known is refused (X-Date
    # later than the service's now) and retried corrected; the refusal uses
    # up the fault too, hence 8: every create carried out is answered 504.
    markers = ["S1", "S2", "S3", "S4"]
    plan = _plan(tmp_path, markers)
    emu.inject(FaultKind.CREATED_BUT_504, route="create_job", count=8)
    result = await cli("run", str(plan), "--concurrency", concurrency, "--json", *POLL, *SETTLE)
    created = created_by_marker(emu)
    assert {m: len(created.get(m, [])) for m in markers} == dict.fromkeys(markers, 1), result.err
    assert result.code == 0, result.err
    assert "4 found on the service, 0 proven not created" in result.err
    rows = journal_rows(tmp_path / "plan.journal.sqlite")
    assert {r["state"] for r in rows.values()} == {"succeeded"}
    assert all(rows[n]["task_id"] == created[f"S{n}"][0] for n in rows)
    if concurrency == "1":
        # Lines marked after the first answer carry the learnt offset (the
        # service is behind: negative, within a couple of seconds of the skew).
        skew = emu.config.clock_skew
        for n in (2, 3, 4):
            assert abs(rows[n]["clock_offset"] - skew) < 3, rows[n]


@pytest.mark.parametrize("emulator_config", [-20 * 60.0], indirect=True)
async def test_a_line_not_created_on_a_clock_behind_ours_is_still_sent_once(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    # The bound in the service's clock must not hide the other direction
    # either: a create that did not happen (500, nothing created) is sent again.
    markers = ["N1", "N2", "N3"]
    plan = _plan(tmp_path, markers)
    # Line 1: refused (X-Date), then carried out and 504; line 2: carried out
    # and 504; line 3: 500 and nothing created.
    emu.inject(FaultKind.CREATED_BUT_504, route="create_job", count=3)
    emu.inject(FaultKind.SERVER_ERROR, route="create_job", count=1)
    result = await cli("run", str(plan), "--concurrency", "1", "--json", *POLL, *SETTLE)
    assert result.code == 0, result.err
    created = created_by_marker(emu)
    assert {m: len(created.get(m, [])) for m in markers} == dict.fromkeys(markers, 1)


# --------------------------------------------------------------------------- schema migration

# The journal schema of release 0.x (schema version 1), verbatim.
_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lines (
    line          INTEGER PRIMARY KEY,
    line_hash     TEXT NOT NULL,
    kind          TEXT,
    state         TEXT NOT NULL,
    task_id       TEXT,
    result_code   TEXT,
    error_type    TEXT,
    error         TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    submitting_at TEXT,
    submitted_at  TEXT,
    finished_at   TEXT,
    updated_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS lines_by_state ON lines (state);
CREATE TABLE IF NOT EXISTS runs (
    run        INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    ended_at   TEXT,
    outcome    TEXT,
    requests   INTEGER
);
"""

_EARLIER = "2020-01-01T00:00:00.000Z"


def _v1_journal(
    path: Path,
    plan: Path,
    states: dict[int, tuple[str, str | None]],
    *,
    version: str = "1",
    attempts: int = 1,
) -> None:
    """Write a version 1 (2: with ``clock_offset``; 3: and how jobs ended) journal of ``plan``.

    ``states``: ``{line: (state, task id)}``; ``attempts``: of every line not pending.
    """
    loaded = load_plan(plan)
    conn = sqlite3.connect(path)
    try:
        conn.executescript(_SCHEMA_V1)
        if version in ("2", "3"):
            conn.execute("ALTER TABLE lines ADD COLUMN clock_offset REAL")
        if version == "3":
            for column in ("outcome", "failed_files", "download_url"):
                conn.execute(f"ALTER TABLE lines ADD COLUMN {column} TEXT")
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [
                ("schema_version", version),
                ("plan_hash", loaded.plan_hash),
                ("plan_name", plan.name),
                ("created_at", _EARLIER),
            ],
        )
        for ln in loaded.lines:
            state, task_id = states[ln.number]
            conn.execute(
                "INSERT INTO lines (line, line_hash, kind, state, task_id, attempts,"
                " submitting_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    ln.number,
                    ln.line_hash,
                    ln.kind,
                    state,
                    task_id,
                    0 if state == State.PENDING else attempts,
                    None if state == State.PENDING else _EARLIER,
                    _EARLIER,
                ),
            )
        conn.execute(
            "INSERT INTO runs (started_at, ended_at, outcome) VALUES (?, ?, ?)",
            (_EARLIER, _EARLIER, "interrupted"),
        )
        conn.commit()
    finally:
        conn.close()


async def test_a_version_1_journal_is_migrated_and_resumed(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    plan = _plan(tmp_path, ["V1", "V2", "V3"])
    loaded = load_plan(plan)
    async with KooDriveSession(emu.url, user_id=USER_ID, token="t") as session:
        # Line 1 was submitted; line 2's create reached the service but the
        # previous release was killed before recording it; line 3 never ran.
        first = await session.submit(loaded.request(1))
        await session.submit(loaded.request(2))
    journal = tmp_path / "plan.journal.sqlite"
    _v1_journal(
        journal,
        plan,
        {1: (State.SUBMITTED, first), 2: (State.SUBMITTING, None), 3: (State.PENDING, None)},
    )
    result = await cli("run", str(plan), "--json", *POLL, *SETTLE)
    assert result.code == 0, result.err
    created = created_by_marker(emu)
    assert {m: len(ids) for m, ids in created.items()} == {"V1": 1, "V2": 1, "V3": 1}
    rows = journal_rows(journal)
    assert {r["state"] for r in rows.values()} == {"succeeded"}
    assert rows[1]["task_id"] == first and rows[2]["task_id"] == created["V2"][0]
    # A line marked by release 1 has no offset (unknown); one marked now has one.
    assert rows[2]["clock_offset"] is None and rows[3]["clock_offset"] is not None
    with Journal.open(journal) as opened:
        assert opened.get_meta("schema_version") == SCHEMA_VERSION
        # Through the whole chain (1 -> 4): the attempts the journal knew, and the new one.
        history = [(a.line, a.attempt, a.task_id) for a in opened.attempts()]
    assert history == [(1, 1, first), (2, 1, created["V2"][0]), (3, 1, created["V3"][0])]


async def test_a_version_3_journal_is_migrated_and_its_partial_failure_retried(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    files = [{"fileId": f} for f in ("A", "B", "C")]
    line = job_line("A", taskInfo={"srcContainerId": "IAABsrc", "fileInfo": files})
    plan = write_plan(tmp_path / "plan.jsonl", [line, job_line("Z")])
    loaded = load_plan(plan)
    async with KooDriveSession(emu.url, user_id=USER_ID, token="t") as session:
        ids = [await session.submit(loaded.request(n)) for n in (1, 2)]
    journal = tmp_path / "plan.journal.sqlite"
    # Release 3 finished line 1 on its second attempt, B failed; line 2 succeeded.
    _v1_journal(
        journal,
        plan,
        {1: (State.FAILED, ids[0]), 2: (State.SUCCEEDED, ids[1])},
        version="3",
        attempts=2,
    )
    conn = sqlite3.connect(journal)
    conn.execute(
        "UPDATE lines SET outcome = 'partially_failed', failed_files = ?, result_code ="
        " '18000205' WHERE line = 1",
        (json.dumps(["B"]),),
    )
    conn.execute("UPDATE lines SET outcome = 'succeeded' WHERE line = 2")
    conn.commit()
    conn.close()
    emu.clear_requests()
    result = await cli("run", str(plan), "--retry-failed", "--json", *POLL)
    assert result.code == 0, result.err
    (create,) = [e for e in emu.requests if e.route == "create_job"]
    assert create.body["taskInfo"]["fileInfo"] == [{"fileId": "B"}]
    with Journal.open(journal) as opened:
        assert opened.get_meta("schema_version") == SCHEMA_VERSION == "4"
        history = opened.attempts(1)
        assert [(a.attempt, a.state, a.task_id) for a in history] == [
            (2, State.FAILED, ids[0]),
            (3, State.SUCCEEDED, create.task_id),
        ]
        assert history[0].failed_files == ("B",) and history[1].sent_files == ("B",)
        assert [(a.attempt, a.task_id) for a in opened.attempts(2)] == [(2, ids[1])]


async def test_a_version_2_journal_is_migrated_and_its_jobs_waited_for_at_job_detail(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    plan = _plan(tmp_path, ["W1", "W2", "W3"])
    loaded = load_plan(plan)
    async with KooDriveSession(emu.url, user_id=USER_ID, token="t") as session:
        ids = [await session.submit(loaded.request(n)) for n in (1, 2)]
    journal = tmp_path / "plan.journal.sqlite"
    _v1_journal(
        journal,
        plan,
        {1: (State.SUBMITTED, ids[0]), 2: (State.SUBMITTED, ids[1]), 3: (State.PENDING, None)},
        version="2",
    )
    emu.clear_requests()
    result = await cli("run", str(plan), "--json", *POLL)
    assert result.code == 0, result.err
    rows = journal_rows(journal)
    assert [rows[n]["task_id"] for n in (1, 2)] == ids
    assert {(r["state"], r["outcome"]) for r in rows.values()} == {("succeeded", "succeeded")}
    # The submitted job lines were waited for at job detail, never at GET task/{id}.
    waited = {e.path.rsplit("/", 1)[-1] for e in emu.requests if e.route == "get_job"}
    assert set(ids) <= waited
    assert not [e for e in emu.requests if e.route in ("get_task", "list_tasks")]
    assert [json.loads(x)["outcome"] for x in result.out.splitlines()] == ["succeeded"] * 3
    with Journal.open(journal) as opened:
        assert opened.get_meta("schema_version") == SCHEMA_VERSION


def test_a_version_1_journal_without_a_plan_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA_V1)
    conn.close()
    with Journal.open(path) as journal:
        assert journal.is_new
        journal.initialize(plan_hash="h", plan_name="p", lines=[(1, "h1", "job", None)])
        journal.mark_submitting(1, clock_offset=-1200.5)
        journal.mark_interrupted_in_doubt()
        (row,) = journal.reconciliation_rows()
        assert row[0] == 1 and row[6] == -1200.5
        assert journal.get_meta("schema_version") == SCHEMA_VERSION


def test_a_journal_of_a_later_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal.open(path) as journal:
        journal.initialize(plan_hash="h", plan_name="p", lines=[(1, "h1", "job", None)])
    conn = sqlite3.connect(path)
    later = str(int(SCHEMA_VERSION) + 1)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (later,))
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match=f"schema version {later}"):
        Journal.open(path)


@pytest.mark.parametrize("emulator_config", [-20 * 60.0], indirect=True)
async def test_the_session_exposes_the_learnt_clock_offset(emu: KooDriveEmulator) -> None:
    async with KooDriveSession(emu.url, user_id=USER_ID, token="t") as session:
        assert session.clock_offset is None  # nothing learnt yet
        await session.list_tasks()
        offset = session.clock_offset
        assert offset is not None and abs(offset - emu.config.clock_skew) < 3


# --------------------------------------------------------------------------- misbehaving servers


def _env(base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOODRIVE_")}
    env.update(
        KOODRIVE_BASE_URL=base_url,
        KOODRIVE_USER_ID=USER_ID,
        KOODRIVE_TOKEN=TOKEN,
        PYTHONUNBUFFERED="1",
    )
    return env


async def _run_bounded(*args: str, env: dict[str, str], limit: float = 30.0) -> Result:
    """Run the CLI in a child; kill it (and fail) if it has not ended within ``limit`` seconds.

    A child, not the in-process ``cli``: these tests are about runs that must
    end, and a thread that does not cannot be stopped.
    """
    proc = await start_cli(*args, env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"koodrive-async {' '.join(args)} did not end within {limit} s")
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def _json(status: int, payload: Any) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json")


def _transfer_plan(tmp_path: Path) -> Path:
    # A transfer is looked up in the task list (a batch job in the job list).
    line = {"kind": "transfer", "srcUserId": "C1", "dstUserId": "1507947856550550784"}
    return write_plan(tmp_path / "plan.jsonl", [line])


def _listing_server(next_cursor: Callable[[str | None], str], pages: list[str | None]) -> Handler:
    """Creates answer 500 (in doubt); every listing page has one task and a next cursor."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            return _json(500, {"code": "13000201", "msg": "INNER_INVOKE_FAILURE"})
        if request.path.endswith("/task/list"):
            cursor = request.query.get("pageCursor")
            pages.append(cursor)
            task = {"taskId": f"90000{len(pages)}", "status": 2, "initParams": "{}"}
            return _json(
                200,
                {"code": "0", "msg": "ok", "taskList": [task], "nextCursor": next_cursor(cursor)},
            )
        return _json(404, {"code": "13000404", "msg": "not found"})

    return handler


async def test_a_cycling_cursor_ends_the_reconciliation_and_names_the_cursor(
    tmp_path: Path,
) -> None:
    pages: list[str | None] = []
    cycle = {None: "A", "A": "B", "B": "A"}
    plan = _transfer_plan(tmp_path)
    async with custom_server(_listing_server(lambda c: cycle[c], pages)) as url:
        result = await _run_bounded("run", str(plan), "--json", *SETTLE, env=_env(url))
    assert result.code == 3, result.err
    assert "could not list the tasks or jobs (ResponseValidationError" in result.err
    assert "returned the cursor 'A' a second time" in result.err
    assert pages == [None, "A", "B"]  # stopped at the first repeat, every page read once
    rows = journal_rows(tmp_path / "plan.journal.sqlite")
    assert rows[1]["state"] == "in_doubt"


async def test_a_listing_that_never_ends_is_bounded_by_max_list_pages(tmp_path: Path) -> None:
    pages: list[str | None] = []
    plan = _transfer_plan(tmp_path)
    fresh = lambda _c: f"c{len(pages)}"  # noqa: E731 - a new cursor on every page
    async with custom_server(_listing_server(fresh, pages)) as url:
        result = await _run_bounded(
            "run", str(plan), "--json", "--max-list-pages", "25", *SETTLE, env=_env(url)
        )
    assert result.code == 3, result.err
    assert "did not end within 25 page(s)" in result.err
    assert "next cursor 'c25'" in result.err
    # One reconciliation after the round, at most MAX_RECONCILIATIONS in all.
    assert len(pages) % 25 == 0 and 25 <= len(pages) <= 75
    assert journal_rows(tmp_path / "plan.journal.sqlite")[1]["state"] == "in_doubt"


# --------------------------------------------------------------------------- dead endpoint


async def test_a_dead_endpoint_stops_the_run_and_leaves_the_lines_pending(tmp_path: Path) -> None:
    plan = _plan(tmp_path, [f"D{i}" for i in range(1, 301)])
    # A port bound but not listening refuses connections, and stays ours.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        result = await _run_bounded("run", str(plan), "--progress", "plain", env=_env(url))
    assert result.code == 1, result.err
    assert f"stopping: cannot connect to {url}" in result.err
    assert "APIConnectionError" in result.err and "not sent" in result.err
    rows = journal_rows(tmp_path / "plan.journal.sqlite")
    assert {r["state"] for r in rows.values()} == {"pending"}, result.err
    assert re.search(r"not started\s+300\n", result.out), result.out
    # At most the creates in flight when the 8th failed, each with its retries.
    requests = int(re.search(r"requests made\s+(\d+)", result.out).group(1))  # type: ignore[union-attr]
    assert requests <= (16 + UNREACHABLE_LIMIT) * 4, result.out
    assert TOKEN not in result.out + result.err


# --------------------------------------------------------------------------- masking

ARCHIVE_PASSWORD = "arch-PASS-91x"
KDSTOKEN = "KDS-TOKEN-77q"
_ECHOED = {
    "taskType": 5,
    "actionType": 502,
    "password": ARCHIVE_PASSWORD,
    "taskInfo": {"srcContainerId": "IAABsrc", "kdsToken": KDSTOKEN},
}


def _echoing_server() -> Handler:
    """A service that echoes secrets: in ``initParams``, and in its error messages."""
    task = {
        "taskId": "7001",
        "taskType": 1,
        "status": 2,
        "initParams": json.dumps(_ECHOED, separators=(",", ":")),
        "createTime": "2024-08-12T07:00:00.000Z",
    }
    echo = f'refused body {{"password":"{ARCHIVE_PASSWORD}","kdstoken":"{KDSTOKEN}"}}'

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            return _json(400, {"code": "31084000", "msg": echo})
        if request.path.endswith("/task/list"):
            return _json(200, {"code": "0", "msg": "ok", "taskList": [task], "nextCursor": None})
        if request.path.endswith("/task/7001"):
            return _json(200, {"code": "0", "msg": "ok", "task": task, **task})
        return _json(400, {"code": "31084000", "msg": f"bad task; kdstoken={KDSTOKEN}"})

    return handler


async def test_secrets_the_service_echoes_are_masked_in_everything_printed(
    tmp_path: Path,
) -> None:
    plan = write_plan(
        tmp_path / "plan.jsonl",
        [
            {
                "kind": "job",
                "taskType": 5,
                "actionType": 502,
                "dstContainerId": "IAABdst",
                "password": ARCHIVE_PASSWORD,
                "taskInfo": {"srcContainerId": "IAABsrc", "fileInfo": [{"fileId": "Farc"}]},
            }
        ],
    )
    commands = [
        ["task", "get", "7001", "--json"],
        ["task", "get", "7001"],
        ["task", "list", "--json"],
        ["task", "list"],
        ["task", "wait", "7002", "--json"],
        ["task", "wait", "7002"],
        ["task", "get", "7002"],
        ["run", str(plan), "--json", *SETTLE],
        ["run", str(plan), "--progress", "plain", "--retry-rejected", *SETTLE],
    ]
    async with custom_server(_echoing_server()) as url:
        # In process: what is printed is the point, not how the process ends.
        results = [await run_in_process(*c, env=_env(url), timeout=30) for c in commands]
    printed = "".join(r.out + r.err for r in results)
    assert ARCHIVE_PASSWORD not in printed and KDSTOKEN not in printed, printed
    get_json = json.loads(results[0].out)
    assert json.loads(get_json["init_params"]) == {
        **_ECHOED,
        "password": "***",
        "taskInfo": {"srcContainerId": "IAABsrc", "kdsToken": "***"},
    }
    assert '"password":"***"' in results[1].out  # plain: the same masked initParams
    assert json.loads(results[2].out)["init_params"] == get_json["init_params"]
    assert "kdstoken=***" in results[4].out and "kdstoken=***" in results[5].out
    assert "kdstoken=***" in results[6].err
    (line,) = results[7].json_lines()
    assert line["state"] == "failed" and '"password":"***"' in line["error"]
    # Nor in the journal.
    journal = (tmp_path / "plan.journal.sqlite").read_bytes()
    assert ARCHIVE_PASSWORD.encode() not in journal and KDSTOKEN.encode() not in journal


def test_mask_covers_structures_json_strings_and_free_text() -> None:
    assert mask({"Password": "p", "kds_token": "k", "password2": "x", "n": [{"token": 5}]}) == {
        "Password": "***",
        "kds_token": "***",
        "password2": "x",
        "n": [{"token": "***"}],
    }
    assert mask('{"a": 1, "password": "p"}') == '{"a": 1, "password": "***"}'
    assert mask('{"a":1}') == '{"a":1}'  # nothing to mask: unchanged
    assert (
        mask('msg=\'body {"kdstoken":"k"}\'; password=p&x=1; trace_id=7')
        == 'msg=\'body {"kdstoken":"***"}\'; password=***&x=1; trace_id=7'
    )
    assert mask('{"e": "{\\"password\\":\\"p\\"}"}') == '{"e": "{\\"password\\":\\"***\\"}"}'
