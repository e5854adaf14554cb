"""Submission pacing for fan-outs: a rate cap, AIMD back-off on 429, Retry-After holds.

Owns :class:`SubmissionPacer`, a pure decision over an injected monotonic
clock (its only I/O is ``asyncio.sleep``, and a FIFO ``asyncio.Lock`` as the
gate, in :meth:`SubmissionPacer.acquire`), so its arithmetic is tested with a
fake clock. A pacer belongs to the event loop that first contends for its
gate (each fan-out and each bulk round makes its own). Used by ``_fanout.py``
and the bulk runner. Must never import the transport, the session or aiohttp: it
decides when to send, never sends.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from ._exceptions import RateLimitError

__all__ = ["MIN_RATE", "SubmissionPacer"]

#: Lowest submission rate the back-off goes down to (per second).
MIN_RATE = 0.2
#: How late a timer may fire without slowing a paced stream, at least
#: (seconds): the event loop's timeouts are rounded up to whole
#: milliseconds, so at 1,000/s half a slot is below what a timer can hit.
TIMER_SLACK = 0.002


def _slack(gap: float) -> float:
    # How late after its turn a submission may go and still count as on
    # time: half a slot, but never below what the loop's timers can hit.
    # Larger slack lets a longer burst through (w * rate + 1 + slack * rate
    # in a window of w), smaller slows a steady stream by timer lateness.
    return max(gap / 2.0, TIMER_SLACK)


class SubmissionPacer:
    """Paces submissions: at most ``max_per_second``, halved on 429, recovering slowly (AIMD).

    Submissions are booked ``1 / rate`` apart (no bursts), so in any window
    of ``w`` seconds at most ``w * rate + 1`` slots fall. When they are let
    go matters too: after the event loop was busy elsewhere, the submissions
    whose slots passed meanwhile wake together, and they pass a gate one at
    a time, in the order they woke (their slots' order; one booking just
    then may pass first), the first two half a slot apart and then each
    ``1 / rate`` after the one before; only the one at the gate's head
    sleeps. Time lost to a busy loop is not made up later. One that
    wakes less than half a slot late (at least :data:`TIMER_SLACK`) goes at
    once, so timer lateness does not slow a steady stream, and at most
    ``w * rate + 1.5`` are let go in any window of ``w`` seconds (up to 250
    per second; above, ``w * rate + 1 + rate * TIMER_SLACK`` in all), with
    ``rate`` the current one: a 429's cut also spaces the submissions that
    booked before it. With no cap the pacer does
    nothing until the first 429; then it starts from half the rate measured
    over the last second, and once recovered to twice that it lifts itself.
    Recovery is additive: a tenth of the cap (or of the rate at the first
    back-off) per second without a 429.

    A 429 with a ``Retry-After`` also *holds* every submission until it has
    passed. :meth:`acquire` waits for a hold only up to ``max_hold`` (and the
    caller's own limit); a longer one fails that submission with
    :class:`RateLimitError` at once, before anything is sent, so that a
    server asking for an hour ends the waiting requests rather than stalling
    them for an hour.

    Args:
        max_per_second: The cap, or None for none.
        clock: Monotonic time source (seconds).
        max_hold: Longest a submission waits for a Retry-After hold, in
            seconds (the session's ``RetryPolicy.max_retry_after``).
    """

    def __init__(
        self,
        max_per_second: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_hold: float = math.inf,
    ) -> None:
        self._ceiling = max_per_second
        self._rate: float | None = max_per_second
        self._clock = clock
        self._max_hold = max_hold
        self._next = -math.inf
        # The nominal time of the last submission let go (acquire returned),
        # within half a slot before when it actually went: the next may go a
        # slot after it. The slots booked are a schedule; this is what went.
        self._last_grant = -math.inf
        # When it actually went: the nominal time never lags it by more than
        # the current rate's slack (see granted).
        self._last_sent = -math.inf
        # One submission at a time past its slot (FIFO; see acquire).
        self._gate = asyncio.Lock()
        # The server's Retry-After hold: no submission before _hold_until.
        self._hold_until = -math.inf
        self._hold_cause: RateLimitError | None = None
        self._last_cut = -math.inf
        self._last_recover = -math.inf
        self._increase = (max_per_second / 10.0) if max_per_second else 0.0
        self._lift_at = math.inf
        # Submissions counted in the current and previous one-second buckets,
        # to know the actual rate when there is no cap.
        self._bucket = 0
        self._count = 0
        self._previous = 0
        #: How many times the rate was cut (tests and benchmarks read it).
        self.backoffs = 0

    @property
    def rate(self) -> float | None:
        """The current submission rate per second (None: unpaced)."""
        return self._rate

    def _count_submission(self, now: float) -> None:
        bucket = int(now)
        if bucket != self._bucket:
            self._previous = self._count if bucket == self._bucket + 1 else 0
            self._bucket = bucket
            self._count = 0
        self._count += 1

    def _measured_rate(self, now: float) -> float:
        fraction = now - int(now)
        return self._count + self._previous * (1.0 - fraction)

    def _recover(self, now: float) -> None:
        if self._rate is None or self._last_cut == -math.inf:
            return
        elapsed = now - self._last_recover
        if elapsed <= 0:
            return
        rate = self._rate + self._increase * elapsed
        self._last_recover = now
        if self._ceiling is not None:
            self._rate = min(rate, self._ceiling)
        elif rate >= self._lift_at:
            self._rate = None

    def reserve(self) -> float:
        """Book the next submission slot.

        Returns:
            Seconds to wait before submitting (0 when it may go now).
        """
        now = self._clock()
        self._recover(now)
        at = max(now, self._next, self._hold_until)
        if self._rate is not None:
            self._next = at + 1.0 / self._rate
        self._count_submission(at)
        return at - now

    def spacing_wait(self, now: float) -> float:
        """Seconds until a submission may be let go after the last one (0: now).

        Args:
            now: The clock's time.

        Returns:
            What is left of ``1 / rate`` (the current rate) after the last
            :meth:`granted` submission's nominal time; 0 when unpaced.
        """
        if self._rate is None:
            return 0.0
        gap = 1.0 / self._rate
        # And never sooner than a slot less the slack after the last one
        # actually sent: after the rate rose, its nominal time (an old,
        # longer slack back) would let the next go at the same moment.
        return max(0.0, self._last_grant + gap - now, self._last_sent + gap - _slack(gap) - now)

    def granted(self, now: float) -> None:
        """Record that a submission was let go at ``now`` (:meth:`acquire` does it).

        Its nominal time is a slot after the previous one's, or the slack
        (half a slot, at least :data:`TIMER_SLACK`) before ``now`` if that is
        later: a submission that woke a little late does not push the next
        one later (the rate holds), and one that woke after a busy spell lets
        the next go a slot less that slack on.

        Args:
            now: The clock's time.
        """
        gap = 0.0 if self._rate is None else 1.0 / self._rate
        slack = _slack(gap)
        # Never earlier than the slack before the last one actually sent, at
        # the current rate's slack: after the rate rose, the old nominal time
        # (an old, longer slack back) would let the next two go together.
        previous = max(self._last_grant, self._last_sent - slack)
        self._last_grant = max(previous + gap, now - slack)
        self._last_sent = max(self._last_sent, now)

    async def acquire(self, *, max_wait: float | None = None) -> float:
        """Wait for the next submission slot.

        Args:
            max_wait: Longest this submission may wait for a Retry-After
                hold (on top of ``max_hold``), in seconds, or None.

        Returns:
            The clock time the slot was granted (pass it to :meth:`rate_limited`).

        Raises:
            RateLimitError: A hold longer than allowed is in force; nothing
                may be sent (``possibly_created`` is False, ``retry_after``
                is what is left of the hold).
        """
        limit = self._max_hold if max_wait is None else min(self._max_hold, max_wait)
        while True:
            now = self._clock()
            held = self._hold_until - now
            if held > limit:
                raise self._held(held, limit)
            hold = self._hold_until
            delay = self.reserve()  # a slot after that hold
            if delay > 0:
                await asyncio.sleep(delay)
            # A 429 that came back while this one slept (or waited at the
            # gate) holds it back too: book again, after that hold.
            if self._hold_until != hold:
                continue
            # Its slot came. Those whose slots passed while the loop was busy
            # wake together: the gate (a FIFO lock) lets them through one at
            # a time, and only the one at its head sleeps out the spacing, so
            # a backlog costs one timer, not one wake-up per waiter per turn.
            async with self._gate:
                wait = self.spacing_wait(self._clock())
                if wait > 0.0:
                    await asyncio.sleep(wait)
                if self._hold_until == hold:
                    now = self._clock()
                    self.granted(now)
                    return now

    def _held(self, held: float, limit: float) -> RateLimitError:
        cause = self._hold_cause
        return RateLimitError(
            f"not sent: the service answered an earlier create with 429 and asked to hold "
            f"submissions for {held:.3g}s more, longer than this request may wait "
            f"({limit:.3g}s; see RetryPolicy.max_retry_after and timeout)",
            retry_after=held,
            status_code=429,
            code=cause.code if cause is not None else None,
            msg=cause.msg if cause is not None else None,
            trace_id=cause.trace_id if cause is not None else None,
            method=cause.method if cause is not None else None,
            path=cause.path if cause is not None else None,
            possibly_created=False,
        )

    def rate_limited(
        self, sent_at: float, retry_after: float | None, cause: RateLimitError | None = None
    ) -> None:
        """Record a 429 answer to a submission sent at ``sent_at``.

        Halves the rate, unless this submission went out before the previous
        cut (a burst of 429s for requests already in flight counts once), and
        holds every submission back for ``retry_after`` seconds if given
        (the whole of it, however long: :meth:`acquire` decides who may wait).

        Args:
            sent_at: What :meth:`acquire` returned for that submission.
            retry_after: The server's Retry-After, in seconds, or None.
            cause: The error, quoted by the submissions a long hold refuses.
        """
        now = self._clock()
        if sent_at >= self._last_cut:
            current = self._rate
            if current is None:
                current = max(self._measured_rate(now), 2.0 * MIN_RATE)
                self._lift_at = 2.0 * current
                self._increase = max(current / 10.0, MIN_RATE)
            self._rate = max(MIN_RATE, current / 2.0)
            self._last_cut = self._last_recover = now
            self.backoffs += 1
        if retry_after is None:
            self._next = max(self._next, now + 1.0 / (self._rate or 1.0))
        else:
            self.hold(retry_after, cause)

    def hold_left(self) -> float:
        """Seconds left of the Retry-After hold in force (0 when there is none)."""
        return max(0.0, self._hold_until - self._clock())

    def hold(self, retry_after: float, cause: RateLimitError | None = None) -> None:
        """Hold every submission back for ``retry_after`` seconds, without cutting the rate.

        Holds only lengthen. For a caller that decides itself when a 429 cuts
        the rate (:meth:`rate_limited` does both).
        """
        now = self._clock()
        if now + retry_after > self._hold_until:
            self._hold_until = now + retry_after
            self._hold_cause = cause
