"""Shared bits of the PostgreSQL journal tests: plan entries and a plan's loading."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from koodrive_async.bulk._journal import JournalMismatchError, PlanEntry
from koodrive_async.bulk._postgres import PostgresJournal

#: Opens a journal on the test's database: ``await open_journal(worker_id=..., lease=...)``.
JournalOpener = Callable[..., Awaitable[PostgresJournal]]


def entries(count: int, *, start: int = 1, salt: str = "") -> list[PlanEntry]:
    """``count`` valid job lines numbered from ``start`` (their hashes depend on ``salt``)."""
    return [
        (n, hashlib.sha256(f"{salt}{n}".encode()).hexdigest(), "job", None)
        for n in range(start, start + count)
    ]


async def load(journal: PostgresJournal, lines: list[PlanEntry], plan_hash: str) -> str:
    """Load a plan as the runner's attach step does, under the attach lock.

    Returns:
        ``"initialized"``, ``"verified"`` or ``"extended"``.
    """
    async with journal.attach_lock():
        if await journal.is_new():
            await journal.initialize(plan_hash=plan_hash, plan_name="plan.jsonl", lines=lines)
            return "initialized"
        recorded = await journal.line_hashes()
        for number, line_hash, _kind, _error in lines:
            if number in recorded and recorded[number] != line_hash:
                raise JournalMismatchError(f"line {number} changed", line=number)
        appended = [e for e in lines if e[0] not in recorded]
        if not appended:
            await journal.check_plan(plan_hash)
            return "verified"
        await journal.extend_plan(plan_hash=plan_hash, plan_name="plan.jsonl", lines=appended)
        return "extended"
