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
while the other workers are alive and renewing, it keeps waiting until they
finish. A one-machine journal has no other worker: the first claim hands out
everything, the second finds nothing and the feed ends.

Must never import: ``cli/``, ``rich``, ``argparse``, a journal backend.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Iterable

from ._journal import Journal, LineRecord

__all__ = ["CLAIM_BATCH_MIN", "MAX_IDLE_WAIT", "Claimer"]

#: Smallest batch of lines one claim asks for.
CLAIM_BATCH_MIN = 32

#: Longest the claimer sleeps before looking again for lines whose lease expired.
MAX_IDLE_WAIT = 5.0


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
    """

    def __init__(
        self,
        journal: Journal,
        batch: int,
        stop: asyncio.Event,
        *,
        pending: Iterable[int] = (),
        submitted: Iterable[LineRecord] = (),
    ) -> None:
        self.journal = journal
        self.batch = max(CLAIM_BATCH_MIN, batch)
        self.stop = stop
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

    async def next_line(self) -> int | None:
        """The next line to submit, or None when there is nothing left (or the run stops)."""
        while not self._pending:
            if self._done or self.stop.is_set():
                self.finish()
                return None
            claim = await self.journal.claim(self.batch)
            self._pending.extend(claim.pending)
            for record in claim.submitted:
                self._wait(record)
            self.in_doubt.extend(claim.in_doubt)
            self.claimed += len(claim.pending) + len(claim.submitted) + len(claim.in_doubt)
            if not claim.empty:
                continue
            expiry = await self.journal.next_expiry()
            if expiry is None:
                self.finish()
                return None
            await self._idle(min(max(expiry, 0.05), MAX_IDLE_WAIT))
        return self._pending.popleft()

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
