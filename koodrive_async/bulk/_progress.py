"""How a bulk run tells its progress: the live counters and the callback protocol.

Owns :class:`RunStats` (this run's counters) and :class:`Progress`, the
interface the runner reports through. The command line implements it with a
progress bar, plain status lines or JSON Lines; a library caller (an Airflow
or Celery task) can implement it with logging, or pass nothing
(:class:`NoProgress`).

Must never import: ``cli/``, ``rich``, ``argparse``.
"""

from __future__ import annotations

import time
from typing import Protocol

import attrs

from ._journal import LineRecord, PlanCounts
from ._options import Stop

__all__ = ["PLAN_REFRESH", "NoProgress", "Progress", "RunStats", "wants_history"]

#: Seconds between two reads of the whole plan's counts (:attr:`RunStats.plan`)
#: from a journal many workers share, at least: never once per line.
PLAN_REFRESH = 2.0


@attrs.define
class RunStats:
    """Live counters of one run (this run only, not the whole journal).

    Attributes:
        total: Lines this run has to bring to an end (new and resumed).
        submitted: Creates acknowledged with a task id in this run.
        in_flight: Tasks known to run on the server and not yet seen finished.
        succeeded: Lines that ended SUCCESS in this run.
        failed: Lines that ended failed in this run (task FAILED or create refused).
        in_doubt: Lines whose create may or may not have happened.
        unresolved: Waits that ended without a verdict (timeout, polling errors).
        requests: HTTP requests made (retries and polls included), when counted.
        started: ``time.monotonic()`` at the start.
        plan: The whole plan's counts, every worker's lines, and how many
            lines each worker holds: read from a journal many workers share
            at the start, every :data:`PLAN_REFRESH` seconds or more while the
            run lasts, and at its end (None for a one-machine journal: the
            counters above are then the plan's).
        worker: This worker's id in such a journal (None for a one-machine one).
    """

    total: int = 0
    submitted: int = 0
    in_flight: int = 0
    succeeded: int = 0
    failed: int = 0
    in_doubt: int = 0
    unresolved: int = 0
    requests: int = 0
    started: float = attrs.field(factory=time.monotonic)
    plan: PlanCounts | None = None
    worker: str | None = None

    @property
    def finished(self) -> int:
        """Lines brought to an end in this run (any verdict)."""
        return self.succeeded + self.failed + self.in_doubt + self.unresolved

    @property
    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Finished lines per second so far."""
        elapsed = self.elapsed
        return self.finished / elapsed if elapsed > 0 else 0.0


class Progress(Protocol):
    """What the runner tells about its progress (every call is quick and never raises).

    A progress that shows the attempts of each finished line (a manifest, a
    log) says so with a true ``wants_history`` attribute (see
    :func:`wants_history`): the records :meth:`line_done` gets then carry
    ``history``, ``attempts`` and ``retry_files``. Reading them costs one
    journal read per line (a round trip on PostgreSQL), so the others get
    them empty (``history=()``, ``attempts=0``).
    """

    def start(self, stats: RunStats) -> None:
        """The run starts; ``stats.total`` is set (the same object is updated live)."""

    def update(self) -> None:
        """Some counter changed (or :attr:`RunStats.plan` was read again)."""

    def line_done(self, record: LineRecord) -> None:
        """A line reached its verdict in this run (in-doubt lines at the end of the run)."""

    def message(self, text: str) -> None:
        """Something the operator should read (stopping, reconciling, in doubt...).

        The text may quote an error: mask it before showing it anywhere.
        """

    def stopping(self, notice: Stop) -> None:
        """The run stopped submitting by itself (credentials, dead endpoint, long 429)."""

    def stop(self) -> None:
        """The run is over."""


def wants_history(progress: object) -> bool:
    """True when ``progress`` asks for each finished line's attempts (``wants_history``)."""
    return bool(getattr(progress, "wants_history", False))


class NoProgress:
    """A :class:`Progress` that shows nothing (the default for library callers)."""

    def start(self, stats: RunStats) -> None:
        """Nothing to show."""

    def update(self) -> None:
        """Nothing to show."""

    def line_done(self, record: LineRecord) -> None:
        """Nothing to show."""

    def message(self, text: str) -> None:
        """Nothing to show."""

    def stopping(self, notice: Stop) -> None:
        """Nothing to show (the result carries the notice)."""

    def stop(self) -> None:
        """Nothing to release."""
