"""Durations a previous run of a plan recorded, to plan this run's first wave.

Owns :func:`seed_from_journal`: the journal keeps when each line was
submitted and when its end was seen (``Journal.line_times``); those are the
durations of its kind, which the session's poll scheduler can start from
(``KooDriveSession.seed_durations``) instead of polling the first wave
blindly. Pure bookkeeping over the journal: never imports ``cli/``, aiohttp,
or the session itself (it takes anything with ``seed_durations``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from datetime import datetime
from typing import Protocol

from .._estimator import duration_key
from .._models import Request
from ._journal import Journal

__all__ = ["seed_from_journal"]


class Seeds(Protocol):
    """What :func:`seed_from_journal` calls (``KooDriveSession`` is one)."""

    def seed_durations(self, like: Request, durations: Iterable[float]) -> int:
        """Take durations of tasks like ``like``; return how many were taken."""
        ...


def seed_from_journal(session: Seeds, journal: Journal, requests: Mapping[int, Request]) -> int:
    """Seed the session's poll scheduler with the durations the journal recorded.

    Call it before the run's first submission. A line counts when the journal
    has both its submission and the moment its end was seen; the latter is a
    little after the real end (one detection delay), which only places the
    first polls a little later.

    Args:
        session: Where the durations go (``KooDriveSession.seed_durations``).
        journal: A journal of a previous run of the same plan.
        requests: The plan's requests by line number (lines left out are skipped).

    Returns:
        How many durations were taken, over all kinds.
    """
    by_kind: dict[Hashable, tuple[Request, list[tuple[datetime, float]]]] = {}
    for line, (_submitting, submitted, finished) in journal.line_times().items():
        request = requests.get(line)
        if request is None or submitted is None or finished is None:
            continue
        seconds = (finished - submitted).total_seconds()
        if seconds < 0:
            continue  # the machine's clock was set back between the two
        key = duration_key(request)
        entry = by_kind.get(key)
        if entry is None:
            entry = by_kind[key] = (request, [])
        entry[1].append((finished, seconds))
    taken = 0
    for like, ended in by_kind.values():
        ended.sort()  # oldest first: the newest are kept
        taken += session.seed_durations(like, [seconds for _, seconds in ended])
    return taken
