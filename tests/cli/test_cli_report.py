"""Issue 14 item 1: ``report``, ``run --report``, ``--log-format json`` and ``report --html``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import POLL, TOKEN, creates_sent, job_line, journal_rows, write_plan

from koodrive_async.bulk._meanings import code_of, meaning
from koodrive_async.emulator import EmulatorConfig, KooDriveEmulator

Cli = Callable[..., Any]


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Tasks of 1 virtual s on a 200x clock; about 4 % of them fail."""
    return EmulatorConfig(task_duration=1.0, clock_speed=200.0, seed=11, failure_rate=0.04)


def _plan(path: Path, n: int, start: int = 0) -> Path:
    return write_plan(path, [job_line(f"F{i}") for i in range(start, start + n)])


def test_documented_codes_have_a_meaning_and_task_codes_none() -> None:
    assert meaning("13000301") == "space not found or abnormal status"
    assert meaning("18000205") is None and meaning(None) is None
    assert code_of(None, "BadRequestError (HTTP 400, code 13000311)") == "13000311"
    assert code_of("18000404", "x (HTTP 400, code 13000311)") == "18000404"


# Four runs of a 3,000-line plan: the whole-suite run on 3.11 has it (slow), with
# room for a loaded machine (the per-test default is 60 s).
@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_done_when_report_failed_lists_the_failed_lines_and_a_grown_plan_sends_only_the_new(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    plan = _plan(tmp_path / "plan.jsonl", 3000)
    first = await cli("run", str(plan), "--concurrency", "200", "--progress", "plain", *POLL)
    assert first.code == 1, first.err  # a few percent failed
    rows = journal_rows(tmp_path / "plan.journal.sqlite")
    failed = sorted(n for n, row in rows.items() if row["state"] == "failed")
    assert 30 < len(failed) < 300
    report = await cli("report", str(plan), "--failed", "--format", "jsonl")
    assert report.code == 0, report.err
    listed = report.json_lines()
    assert [r["line"] for r in listed] == failed
    assert all(r["verdict"] == "failed" and r["task_id"] and r["code"] for r in listed)
    # Appending 100 lines: the next run sends those 100 only.
    sent = creates_sent(emu)
    _plan(plan, 3100)
    second = await cli("run", str(plan), "--concurrency", "100", "--json", *POLL)
    assert second.code == 1, second.err
    assert creates_sent(emu) == sent + 100
    assert sorted(r["line"] for r in second.json_lines()) == list(range(3001, 3101))


async def test_report_formats_and_the_run_manifest(cli: Cli, tmp_path: Path) -> None:
    plan = _plan(tmp_path / "plan.jsonl", 60)
    manifest = tmp_path / "manifest.csv"
    run = await cli("run", str(plan), "--report", str(manifest), *POLL)
    assert run.code in (0, 1), run.err
    table = await cli("report", str(plan))
    assert table.code == 0 and table.out.startswith("  LINE  KIND")
    assert len(table.out.splitlines()) == 61
    as_csv = list(csv.DictReader(io.StringIO((await cli("report", str(plan), "--format",
                                                          "csv")).out)))  # fmt: skip
    assert [int(r["line"]) for r in as_csv] == list(range(1, 61))
    assert all(r["attempts"] == "1" and r["submitting_at"] for r in as_csv)
    # The manifest holds the same lines, one row each, as they finished.
    written = list(csv.DictReader(io.StringIO(manifest.read_text(encoding="utf-8"))))
    assert sorted(int(r["line"]) for r in written) == list(range(1, 61))
    by_line = {r["line"]: r for r in as_csv}
    assert all(by_line[r["line"]]["verdict"] == r["verdict"] for r in written)
    jsonl = tmp_path / "m.jsonl"
    again = await cli("run", str(plan), "--report", str(jsonl), *POLL)
    assert "nothing to do" in again.out + again.err and jsonl.read_text() == ""


async def test_report_needs_a_journal(cli: Cli, tmp_path: Path) -> None:
    plan = _plan(tmp_path / "plan.jsonl", 1)
    result = await cli("report", str(plan))
    assert result.code == 2 and "no journal" in result.err
    assert not (tmp_path / "plan.journal.sqlite").exists()


async def test_log_format_json_is_one_object_per_event(cli: Cli, tmp_path: Path) -> None:
    plan = _plan(tmp_path / "plan.jsonl", 20)
    result = await cli("run", str(plan), "--log-format", "json", *POLL)
    assert result.code in (0, 1), result.err
    events = [json.loads(line) for line in result.err.splitlines()]
    names = [e["event"] for e in events]
    assert names[0] == "start" and names[-1] == "summary" and names.count("line") == 20
    assert all({"time", "level", "event"} <= e.keys() for e in events)
    assert result.out == "" and TOKEN not in result.err


class _Page(HTMLParser):
    """Collects tags and checks that they nest (void elements aside)."""

    VOID = frozenset({"meta", "br", "img", "link", "input", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.seen: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(tag)
        self.attrs += attrs
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(tag)
        self.attrs += attrs

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")


async def test_report_html_is_one_self_contained_page(cli: Cli, tmp_path: Path) -> None:
    plan = _plan(tmp_path / "plan.jsonl", 150)
    await cli("run", str(plan), "--concurrency", "50", *POLL)
    page_path = tmp_path / "report.html"
    result = await cli("report", str(plan), "--failed", "--html", str(page_path))
    assert result.code == 0, result.err
    text = page_path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    page.close()
    assert page.errors == [] and page.stack == []
    assert text.startswith("<!DOCTYPE html>")
    assert {"html", "head", "style", "body", "svg", "rect", "polyline", "table"} <= set(page.seen)
    assert "script" not in page.seen and "link" not in page.seen and "img" not in page.seen
    # No external asset: the only URL is the SVG namespace.
    urls = [v for k, v in page.attrs if v and ("http" in v or "//" in v)]
    assert set(urls) <= {"http://www.w3.org/2000/svg"}
    assert "Failures" in text and "The run over time" in text and "Task durations" in text
    assert text.count('class="sent"') >= 1 and text.count('class="duration"') >= 1
