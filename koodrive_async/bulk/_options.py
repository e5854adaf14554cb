"""The data a bulk run takes and gives back: options, the stop notice, the result.

Owns :class:`RunOptions` (how to run, validated on construction),
:class:`Stop` (why the run stopped submitting, for the caller to word) and
:class:`RunResult` (what the run left in the journal and what it did), and
the runner's bounds (:data:`DRAIN_SECONDS`, :data:`MAX_RECONCILIATIONS`,
:data:`UNREACHABLE_LIMIT`). Plain values only, so that a caller can build,
log or compare them without a session.

Must never import: ``cli/``, ``rich``, ``argparse``, the runner.
"""

from __future__ import annotations

import enum
import math

import attrs

from .._exceptions import InvalidRequestError
from .._policies import PollPolicy
from ._journal import LineRecord, State
from ._listing import MAX_LIST_PAGES
from ._reconcile import SETTLE_SECONDS

__all__ = [
    "DRAIN_SECONDS",
    "MAX_RECONCILIATIONS",
    "UNREACHABLE_LIMIT",
    "RunOptions",
    "RunResult",
    "Stop",
    "StopReason",
]

#: Longest a stop (:meth:`PlanRun.interrupt`) waits for the answers to creates
#: already sent, in seconds: long enough for a normal answer, short enough that
#: a stop is never held up by a create the transport keeps retrying.
DRAIN_SECONDS = 3.0

#: Most reconciliations one run makes (one at the start, then one after each
#: round that left new lines in doubt).
MAX_RECONCILIATIONS = 3

#: Creates in a row that could not connect, none getting through, after which
#: the endpoint is taken for dead and no new line is submitted.
UNREACHABLE_LIMIT = 8


def _check(ok: bool, field: str, message: str) -> None:
    if not ok:
        raise InvalidRequestError(message, field=field)


@attrs.frozen
class RunOptions:
    """How a bulk run goes.

    Attributes:
        concurrency: Most tasks in flight at once (>= 1).
        rate: Most submissions per second, or None.
        timeout: Longest wait for one task, in seconds, or None (a line not
            finished by then is waited for again on the next run).
        poll: How the tasks are polled.
        resubmit_in_doubt: Send again the in-doubt lines the reconciliation
            could not settle (they may then exist twice).
        retry_rejected: Send again the lines whose create was refused.
        retry_failed: Send again the lines whose task the service reported
            FAILED (after a partial failure, only the failed files, as a new
            job of the same kind); never a line in doubt, refused or
            cancelled (``_retry.py``).
        reconcile: Settle in-doubt lines from the service's task list
            (``_reconcile.py``); False leaves them all in doubt.
        settle: Seconds after a create may have been sent before a listing
            may declare it not created.
        max_list_pages: Most ``task/list`` pages a reconciliation reads (and
            100 times as many tasks); a longer listing leaves the lines in doubt.

    Raises:
        InvalidRequestError: A value out of range.
    """

    concurrency: int = 16
    rate: float | None = None
    timeout: float | None = None
    poll: PollPolicy = PollPolicy()
    resubmit_in_doubt: bool = False
    retry_rejected: bool = False
    retry_failed: bool = False
    reconcile: bool = True
    settle: float = SETTLE_SECONDS
    max_list_pages: int = MAX_LIST_PAGES

    def __attrs_post_init__(self) -> None:
        _check(self.concurrency >= 1, "concurrency", "concurrency must be at least 1")
        _check(
            self.rate is None or 0 < self.rate < math.inf, "rate", "rate must be a positive number"
        )
        _check(
            self.timeout is None or self.timeout > 0,
            "timeout",
            "timeout must be a positive number",
        )
        _check(self.max_list_pages >= 1, "max_list_pages", "max_list_pages must be at least 1")
        _check(0 <= self.settle < math.inf, "settle", "settle must be a number >= 0")


class StopReason(enum.Enum):
    """Why a run stopped submitting before the end of the plan."""

    #: The service refused the credentials (401/403), or the token provider
    #: failed: every other create would fail the same way.
    CREDENTIALS = "credentials"
    #: Creates in a row could not connect (:data:`UNREACHABLE_LIMIT`).
    UNREACHABLE = "unreachable"
    #: A 429 asked to wait longer than ``RetryPolicy.max_retry_after``.
    RATE_LIMITED = "rate_limited"


@attrs.frozen
class Stop:
    """A run stopped submitting (the lines not sent stay pending).

    Attributes:
        reason: Why.
        error_type: The error's grouping key.
        error: The error text (secrets masked).
        base_url: The service root (for :attr:`StopReason.UNREACHABLE`).
        count: Creates in a row that could not connect (UNREACHABLE).
        retry_after: Seconds the service asks to wait (RATE_LIMITED).
    """

    reason: StopReason
    error_type: str
    error: str
    base_url: str | None = None
    count: int = 0
    retry_after: float | None = None


@attrs.frozen
class RunResult:
    """What a run did and what the journal holds after it.

    Attributes:
        counts: Lines per journal state (the whole plan, all runs).
        failures: ``(reason, count)`` of the failed and invalid lines.
        in_doubt: The in-doubt lines.
        in_flight: Lines submitted and not finished, when the run was cut
            short (interrupted or aborted); empty otherwise.
        unacknowledged: Lines sent (or about to be) without a recorded answer.
        finished_now: Lines brought to an end by this run.
        requests: HTTP requests this run made (0 when not counted).
        wall_time: Seconds this run took.
        interrupted: :meth:`PlanRun.interrupt` stopped it.
        error: The exception that aborted the run (a broken journal), if any.
        stop: Why it stopped submitting early, if it did.
        had_work: False when every line had already been dealt with.
        submitted_now: Creates this run had acknowledged with a task id.
        outcomes: Finished lines per job outcome (``Outcome``: partially
            failed, all failed, cancelled, ...; the whole plan, all runs).
    """

    counts: dict[str, int]
    failures: list[tuple[str, int]]
    in_doubt: list[LineRecord]
    in_flight: list[LineRecord]
    unacknowledged: list[int]
    finished_now: int
    requests: int
    wall_time: float
    interrupted: bool
    error: BaseException | None
    stop: Stop | None
    had_work: bool
    submitted_now: int = 0
    outcomes: dict[str, int] = attrs.field(factory=dict)

    @property
    def succeeded(self) -> bool:
        """True when every line of the plan succeeded."""
        return not self.interrupted and all(
            count == 0 for state, count in self.counts.items() if state != State.SUCCEEDED
        )

    @property
    def has_doubt(self) -> bool:
        """True when some line may or may not have been created."""
        return bool(self.counts.get(State.IN_DOUBT, 0) or self.counts.get(State.SUBMITTING, 0))
