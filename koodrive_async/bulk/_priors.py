"""Durations a previous run of a plan recorded, to plan this run's first wave.

Owns :func:`seed_from_journal`: the journal keeps when each line was
submitted and when its end was seen; the lines of each kind that finished
last (``Journal.finished_times``: a bounded read, whatever the plan's size)
give the durations the session's poll scheduler can start from
(``KooDriveSession.seed_durations``) instead of polling the first wave
blindly. Pure bookkeeping over the journal: never imports ``cli/``, aiohttp,
or the session itself (it takes anything with ``seed_durations``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from datetime import datetime
from typing import Protocol

from .._estimator import duration_key
from .._models import Request
from ._journal import Journal, SyncJournal
from ._sync_adapter import as_async

__all__ = ["MAX_SEEDED_LINES", "seed_from_journal"]


class Seeds(Protocol):
    """What :func:`seed_from_journal` calls (``KooDriveSession`` is one)."""

    def seed_durations(self, like: Request, durations: Iterable[float]) -> int:
        """Take durations of tasks like ``like``; return how many were taken."""
        ...


#: Most recorded lines read back per plan kind: the newest ones of each kind
#: are what the scheduler keeps (64 per kind of request), and rebuilding a
#: line's request costs ~0.1 ms.
MAX_SEEDED_LINES = 512


async def seed_from_journal(
    session: Seeds,
    journal: Journal | SyncJournal,
    request_of: Callable[[int], Request] | Mapping[int, Request],
    *,
    limit: int = MAX_SEEDED_LINES,
) -> int:
    """Seed the session's poll scheduler with the durations the journal recorded.

    Call it before the run's first submission. A line counts when the journal
    has both its submission and the moment its end was seen; the latter is a
    little after the real end (one detection delay), which only places the
    first polls a little later. Only the ``limit`` lines of each kind that
    finished last are read back (one bounded query), never the whole plan.

    Args:
        session: Where the durations go (``KooDriveSession.seed_durations``).
        journal: A journal of a previous run of the same plan.
        request_of: The plan's request of a line number (a function, or a
            mapping: lines left out of it are skipped).
        limit: Most lines read back per plan kind (``job``, ``transfer``...).

    Returns:
        How many durations were taken, over all kinds.
    """
    finished = [
        (done, line, (done - submitted).total_seconds())
        for line, submitted, done in await as_async(journal).finished_times(limit)
    ]
    by_kind: dict[Hashable, tuple[Request, list[tuple[datetime, float]]]] = {}
    for done, line, seconds in finished:
        if seconds < 0:
            continue  # the machine's clock was set back between the two
        if isinstance(request_of, Mapping):
            request = request_of.get(line)
            if request is None:
                continue
        else:
            request = request_of(line)
        key = duration_key(request)
        entry = by_kind.get(key)
        if entry is None:
            entry = by_kind[key] = (request, [])
        entry[1].append((done, seconds))
    taken = 0
    for like, ended in by_kind.values():
        ended.sort()  # oldest first: the newest are kept
        taken += session.seed_durations(like, [seconds for _, seconds in ended])
    return taken
