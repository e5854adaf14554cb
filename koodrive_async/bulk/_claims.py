"""Where a run's lines come from: claims on the journal, a batch at a time.

Owns :class:`Claimer`. The fan-out pulls requests one at a time from the
round's feed; the feed asks the claimer for the next line, and the claimer
asks the journal for a batch (:meth:`~._journal.Journal.claim`) only when its
own is used up. A batch may also hand over lines holding a task id (resumed,
or taken over from a stopped worker: waited on through :meth:`Claimer.waits`)
and lines taken over in "submitting" (in doubt: for the reconciliation).

When the journal has nothing left to claim but another worker still holds a
lease on unfinished work, the claimer waits for that lease to expire and
claims again, so that the survivors of a worker that died finish its lines;
while the other workers are alive and renewing, it keeps waiting as long as
lines of the plan go on finishing (:data:`IDLE_LEASES`), then ends its run.
A one-machine journal has no other worker: the first claim hands out
everything, the second finds nothing and the feed ends.

Must never import: ``cli/``, ``rich``, ``argparse``, a journal backend.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable

from ._journal import Journal, LineRecord, State

__all__ = ["CLAIM_BATCH_MIN", "IDLE_LEASES", "MAX_IDLE_WAIT", "MIN_IDLE_SECONDS", "Claimer"]

#: Smallest batch of lines one claim asks for.
CLAIM_BATCH_MIN = 32

#: Longest the claimer sleeps before looking again for lines whose lease expired.
MAX_IDLE_WAIT = 5.0

#: With nothing left to claim, a worker waits for other workers' leases only
#: while the plan moves on: after this many lease lengths (at least
#: :data:`MIN_IDLE_SECONDS`) without a line finishing anywhere, and with no
#: task of its own still waited on, it ends its run. Two workers each holding
#: a line whose wait ended without a verdict would otherwise renew their
#: leases and wait on each other for ever.
IDLE_LEASES = 3
MIN_IDLE_SECONDS = 5.0

_UNFINISHED = frozenset({State.PENDING, State.SUBMITTING, State.SUBMITTED})


class Claimer:
    """Hands one round its lines, claiming them from the journal as the feed needs them.

    Args:
        journal: The run's journal.
        batch: Lines per claim.
        stop: Set when the run stops: no more claims, the idle wait ends.
        pending: Lines this worker already holds and must send first (given
            back by a reconciliation).
        submitted: Lines holding a task id this worker already holds (matched
            by a reconciliation), to wait on.
        busy: True while this worker still waits on tasks of its own: it then
            never counts as stalled (a plan of long jobs finishes nothing for
            a while, and a worker that stopped claiming then would leave the
            lines of a worker dying later to the next run).
        answered: Set while no create this worker sent is unanswered. Until
            then the claims do not end: a throttled create's line comes back
            (:meth:`again`) to be sent once more.
    """

    def __init__(
        self,
        journal: Journal,
        batch: int,
        stop: asyncio.Event,
        *,
        pending: Iterable[int] = (),
        submitted: Iterable[LineRecord] = (),
        busy: Callable[[], bool] | None = None,
        answered: asyncio.Event | None = None,
    ) -> None:
        self.journal = journal
        self.batch = max(CLAIM_BATCH_MIN, batch)
        self.stop = stop
        self._busy = busy
        self._answered = answered
        # Set when a throttled line comes back (or the answers are all in).
        self._returned = asyncio.Event()
        self._pending: deque[int] = deque(pending)
        self._waits: asyncio.Queue[LineRecord | None] = asyncio.Queue()
        # Lines already handed to waits(): a line given by a reconciliation may
        # come again in a one-machine journal's first claim, and is waited on once.
        self._waited: set[int] = set()
        for record in submitted:
            self._wait(record)
        #: Lines taken over in "submitting" by this round's claims (now in doubt).
        self.in_doubt: list[int] = []
        #: Lines this round's claims handed over, of every kind (for the counters).
        self.claimed = 0
        self._done = False
        # (lines finished in the whole plan, when that count last changed).
        self._progress: tuple[int, float] | None = None

    async def next_line(self) -> int | None:
        """The next line to submit, or None when there is nothing left (or the run stops)."""
        while not self._pending:
            if self._done or self.stop.is_set():
                self.finish()
                return None
            # Cleared before the claim: a line handed back while it is in
            # flight (a throttled create's) is seen after it, not lost.
            self._returned.clear()
            claim = await self.journal.claim(self.batch)
            self._pending.extend(claim.pending)
            for record in claim.submitted:
                self._wait(record)
            self.in_doubt.extend(claim.in_doubt)
            self.claimed += len(claim.pending) + len(claim.submitted) + len(claim.in_doubt)
            if not claim.empty or self._returned.is_set():
                continue
            if self._answered is not None and not self._answered.is_set():
                # A create still unanswered may be throttled and its line come back.
                await self._until(self._answered, self._returned)
                self._returned.clear()
                continue
            expiry = await self.journal.next_expiry()
            if expiry is None or await self._stalled():
                self.finish()
                return None
            await self._idle(min(max(expiry, 0.05), MAX_IDLE_WAIT))
        return self._pending.popleft()

    async def _stalled(self) -> bool:
        """True when no line of the plan has finished for a while (see :data:`IDLE_LEASES`)."""
        counts = await self.journal.counts()
        finished = sum(n for state, n in counts.items() if state not in _UNFINISHED)
        now = asyncio.get_running_loop().time()
        if self._busy is not None and self._busy():
            # Waiting on its own tasks is progress of its own: keep claiming.
            self._progress = (finished, now)
            return False
        if self._progress is None or self._progress[0] != finished:
            self._progress = (finished, now)
            return False
        limit = max(IDLE_LEASES * (self.journal.lease or 0.0), MIN_IDLE_SECONDS)
        return now - self._progress[1] > limit

    def again(self, line: int) -> None:
        """``line``'s create was throttled (nothing created) and it is pending again: resend it.

        A one-machine journal hands out each line once, so it goes straight
        back to this round; a leased journal's line was released, and the
        next claim (this worker's or another's) takes it.
        """
        if self.journal.lease is None:
            self._pending.append(line)
        self._returned.set()

    async def _until(self, *events: asyncio.Event) -> None:
        """Wait for the first of ``events`` (or the run's stop)."""
        waits = [asyncio.ensure_future(e.wait()) for e in (*events, self.stop)]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    def _wait(self, record: LineRecord) -> None:
        if record.line not in self._waited:
            self._waited.add(record.line)
            self._waits.put_nowait(record)

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    def finish(self) -> None:
        """No more lines: end :meth:`waits` once the lines already handed over are waited on."""
        if not self._done:
            self._done = True
            self._waits.put_nowait(None)

    async def waits(self) -> AsyncIterator[LineRecord]:
        """The lines holding a task id handed over, until the claims are done."""
        while True:
            record = await self._waits.get()
            if record is None:
                return
            yield record
