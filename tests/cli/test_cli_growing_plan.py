"""Issue 14 item 3: a journal accepts its plan with lines appended at the end, nothing else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import POLL, created_by_marker, creates_sent, job_line, journal_rows, write_plan

from koodrive_async.bulk import JournalMismatchError, SQLiteJournal, attach_plan, load_plan
from koodrive_async.bulk._growth import compare_plan
from koodrive_async.emulator import KooDriveEmulator

Cli = Callable[..., Any]


def _lines(n: int, start: int = 0) -> list[dict[str, Any] | str]:
    return [job_line(f"F{i}") for i in range(start, start + n)]


def test_compare_plan_finds_the_appended_lines_and_the_first_difference(tmp_path: Path) -> None:
    base = load_plan(write_plan(tmp_path / "a.jsonl", _lines(3)))
    recorded = {line.number: line.line_hash for line in base.lines}
    assert compare_plan(recorded, base).same
    grown = load_plan(write_plan(tmp_path / "b.jsonl", _lines(5)))
    comparison = compare_plan(recorded, grown)
    assert comparison.first_difference is None
    assert [entry[0] for entry in comparison.appended] == [4, 5]
    edited = _lines(5)
    edited[1] = job_line("CHANGED")
    edited[2] = job_line("CHANGED TOO")
    changed = compare_plan(recorded, load_plan(write_plan(tmp_path / "c.jsonl", edited)))
    assert (changed.first_difference, changed.why, changed.appended) == (2, "changed", ())
    shorter = compare_plan(recorded, load_plan(write_plan(tmp_path / "d.jsonl", _lines(2))))
    assert shorter.first_difference == 3 and shorter.why is not None and "missing" in shorter.why
    # A blank line of the recorded plan filled in is an insertion, not an append.
    gap = load_plan(write_plan(tmp_path / "e.jsonl", [*_lines(1), "", *_lines(1, 1)]))
    recorded_gap = {line.number: line.line_hash for line in gap.lines}
    filled = compare_plan(recorded_gap, load_plan(write_plan(tmp_path / "f.jsonl", _lines(3))))
    assert filled.first_difference == 2 and filled.why is not None and "added" in filled.why


def test_a_secret_changed_in_a_recorded_line_is_a_change_of_nothing(tmp_path: Path) -> None:
    # Line hashes redact secrets, so a new archive password does not make a new request.
    def decompress(password: str) -> dict[str, Any]:
        return job_line("Z", taskType=5, actionType=502, password=password)

    first = load_plan(write_plan(tmp_path / "a.jsonl", [decompress("one")]))
    again = load_plan(write_plan(tmp_path / "b.jsonl", [decompress("two")]))
    recorded = {line.number: line.line_hash for line in first.lines}
    assert compare_plan(recorded, again).same


async def test_attach_plan_extends_the_journal_atomically(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with SQLiteJournal.open(path) as journal:
        assert (
            await attach_plan(journal, load_plan(write_plan(tmp_path / "p.jsonl", _lines(2)))) == 0
        )
    grown = load_plan(write_plan(tmp_path / "p.jsonl", [*_lines(2), *_lines(2, 2), "{"]))
    with SQLiteJournal.open(path) as journal:
        assert await attach_plan(journal, grown) == 3
        assert journal.counts() == {"pending": 4, "invalid": 1}
        assert journal.get_meta("plan_hash") == grown.plan_hash
        assert await attach_plan(journal, grown) == 0
    edited = [job_line("X"), *_lines(4, 1)]
    with SQLiteJournal.open(path) as journal:
        with pytest.raises(JournalMismatchError, match="line 1 is changed") as raised:
            await attach_plan(journal, load_plan(write_plan(tmp_path / "p.jsonl", edited)))
        assert raised.value.line == 1
        assert journal.counts() == {"pending": 4, "invalid": 1}


async def test_appended_lines_are_the_only_ones_sent(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    plan = write_plan(tmp_path / "plan.jsonl", _lines(4))
    first = await cli("run", str(plan), *POLL)
    assert first.code == 0, first.err
    sent = creates_sent(emu)
    write_plan(plan, _lines(6))
    second = await cli("run", str(plan), "--json", *POLL)
    assert second.code == 0, second.err
    assert creates_sent(emu) == sent + 2
    assert sorted(r["line"] for r in second.json_lines()) == [5, 6]
    assert all(len(ids) == 1 for ids in created_by_marker(emu).values())
    assert {row["state"] for row in journal_rows(tmp_path / "plan.journal.sqlite").values()} == {
        "succeeded"
    }


async def test_a_changed_line_is_refused_by_its_number(
    emu: KooDriveEmulator, cli: Cli, tmp_path: Path
) -> None:
    plan = write_plan(tmp_path / "plan.jsonl", _lines(3))
    assert (await cli("run", str(plan), *POLL)).code == 0
    sent = creates_sent(emu)
    edited = _lines(4)
    edited[2] = job_line("EDITED")
    write_plan(plan, edited)
    refused = await cli("run", str(plan), *POLL)
    assert refused.code == 2
    assert "line 3 is changed" in refused.err and "appended at the end" in refused.err
    assert "EDITED" not in refused.err
    assert creates_sent(emu) == sent
    rows = journal_rows(tmp_path / "plan.journal.sqlite")
    assert sorted(rows) == [1, 2, 3]
    assert [r["state"] for r in rows.values()].count("succeeded") == 3
