"""Whole-second service times read against the loop clock: bounds on a unit's duration.

Owns :class:`SecondClock`. Batch jobs and share tasks carry 14-digit
``yyyyMMddHHmmss`` times, so ``end - create`` of a one-second job is 0, 1 or
2 and says next to nothing on its own. But every answer is also a fact about
the offset between the service's clock and ours: a unit created at whole
second ``C`` was created before its creation answer reached us, a unit that
ended in second ``E`` had not ended when an earlier poll was sent. Kept over
many units, those facts pin the offset down to a few milliseconds, and then
each unit's ``[E, E + 1)`` becomes a one-second window on our own clock that
cuts the client's poll bracket (mostly where it is widest: before a unit's
first poll). Pure arithmetic: never imports asyncio, aiohttp or the session.
"""

from __future__ import annotations

import math

__all__ = ["SecondClock"]


class SecondClock:
    """What whole-second service times say about the loop clock, learnt over many units.

    ``low <= service time - loop time < high`` holds for every fact seen so
    far; one that contradicts them (the service's clock was set) starts
    afresh from that unit alone.
    """

    __slots__ = ("high", "low")

    def __init__(self) -> None:
        #: Proven bounds of ``service clock - loop clock``, in seconds.
        self.low = -math.inf
        self.high = math.inf

    def window(
        self,
        created: float,
        ended: float,
        started: float,
        running: float | None,
        done: float,
    ) -> tuple[float, float]:
        """Learn from one finished unit and bound its duration from ``started``.

        Args:
            created: Its creation time by the service, whole seconds (epoch).
            ended: Its end time by the service, whole seconds (epoch).
            started: Loop time its creation answer arrived.
            running: Loop time the last poll that saw it unfinished was
                sent, or None if none did.
            done: Loop time the answer that saw it finished arrived.

        Returns:
            ``(low, high)``: it ended between ``started + low`` and
            ``started + high`` on the loop clock (either may be infinite).
        """
        # Created at or after `created` and before we heard of it; ended at
        # or after `ended` and before the answer that said so.
        low = max(created - started, ended - done)
        # It ended before `ended + 1`, after the running poll was sent.
        high = math.inf if running is None else ended + 1.0 - running
        low, high = max(self.low, low), min(self.high, high)
        if low >= high:
            # Contradiction: the service's clock moved. Trust this unit only.
            low = max(created - started, ended - done)
            high = math.inf if running is None else ended + 1.0 - running
            if low >= high:
                low, high = -math.inf, math.inf  # not even this unit agrees with itself
        self.low, self.high = low, high
        # It ended in [ended, ended + 1) on the service's clock.
        return ended - high - started, ended + 1.0 - low - started
