"""One rate limit for every worker of a plan: a token bucket row in PostgreSQL.

Owns :class:`SharedPacer`. Each :meth:`SharedPacer.acquire` is ONE statement
that refills the bucket from the time elapsed on the database's clock and
takes a token, atomically on the row (so N workers together hold ``rate``
grants per second, whatever their machines' clocks). A grant may leave the
bucket in debt (at most about a second's worth): the caller then sleeps its
share of the debt, which spaces the grants ``1 / rate`` apart without a second
round trip. Beyond that debt, or during a hold, nothing is taken and the
caller sleeps and asks again (each sleep bounded).

:meth:`SharedPacer.hold` records a 429's ``Retry-After`` once for everybody
(``hold_until = greatest(hold_until, now() + seconds)``): every worker's
``acquire`` waits it out. The caller caps the seconds (``max_hold``, the
session's ``max_retry_after``), as a single process does.

Without a shared rate (``rate=None``) the pacer only records holds:
:meth:`SharedPacer.acquire` costs nothing, and a worker learns of a hold from
the "submitting" write it makes anyway (:data:`HOLD_LEFT`, in the same
statement: no extra round trip per create), and at once from its own
:meth:`SharedPacer.hold`.

Must never import: ``cli/``, ``rich``, ``argparse``, a database driver (the
statements run through the journal's pool, passed in as ``fetch``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping

__all__ = ["HOLD_LEFT", "SharedPacer"]

#: ``fetch(sql, params)``: run one statement in its own short transaction, return its row.
Fetch = Callable[[str, Mapping[str, object]], Awaitable[tuple[object, ...] | None]]

#: Longest single sleep before the bucket is asked again (seconds).
MAX_NAP = 1.0

# Every expression reads the locked, current row version (never a snapshot taken
# before the lock: two workers must not both spend the same token). The time is
# statement_timestamp(), one value for the whole statement; the stamp never goes
# back, so a statement that waited for the row lock credits nothing twice.
_LEVEL = (
    "least(%(burst)s::float8, tokens + %(rate)s::float8 * greatest(0.0,"
    " extract(epoch FROM statement_timestamp() - stamp)::float8))"
)
_TAKE = f"(hold_until <= statement_timestamp() AND {_LEVEL} - 1 >= -%(debt)s::float8)"
_ACQUIRE = (
    f"UPDATE koodrive_rate SET tokens = {_LEVEL} - CASE WHEN {_TAKE} THEN 1 ELSE 0 END,"
    f" granted = {_TAKE}, stamp = greatest(stamp, statement_timestamp())"
    " WHERE name = %(name)s"
    " RETURNING granted, tokens,"
    " extract(epoch FROM greatest(hold_until, statement_timestamp()) - statement_timestamp())"
    "::float8"
)
_CREATE = (
    "INSERT INTO koodrive_rate (name, tokens, stamp)"
    " VALUES (%(name)s, %(burst)s, clock_timestamp())"
    " ON CONFLICT (name) DO NOTHING RETURNING name"
)
_HOLD = (
    "UPDATE koodrive_rate SET hold_until = greatest(hold_until,"
    " clock_timestamp() + %(seconds)s::float8 * interval '1 second') WHERE name = %(name)s"
    " RETURNING extract(epoch FROM hold_until - clock_timestamp())::float8"
)
#: A scalar subquery: the seconds the plan's shared hold still has (0; NULL
#: before any hold or shared rate), for statements a worker makes anyway to
#: return with their rows. The column starts at -infinity, hence greatest().
HOLD_LEFT = (
    "(SELECT extract(epoch FROM greatest(hold_until, clock_timestamp()) - clock_timestamp())"
    "::float8"
    " FROM koodrive_rate WHERE name = 'creates')"
)


class SharedPacer:
    """A token bucket shared by every worker of a plan (made by ``PostgresJournal.shared_pacer``).

    Args:
        fetch: Runs one statement in its own transaction and returns its row.
        rate: Grants per second, for all workers together, or None: no shared
            rate, only the shared hold of a 429.
        burst: Most tokens the bucket saves up (default 1: no bursts, grants
            spaced ``1 / rate`` apart, like ``SubmissionPacer``).
        name: The bucket's row (one per plan: the default).

    Raises:
        ValueError: ``rate`` or ``burst`` is not a positive finite number.
    """

    def __init__(
        self,
        fetch: Fetch,
        rate: float | None,
        burst: float | None = None,
        *,
        name: str = "creates",
    ) -> None:
        burst = 1.0 if burst is None else burst
        for label, value in (("rate", 1.0 if rate is None else rate), ("burst", burst)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{label} must be a positive number, not {value!r}")
        self._fetch = fetch
        #: Grants per second for all workers, or None (holds only).
        self.rate: float | None = None if rate is None else float(rate)
        self.burst = float(burst)
        self.name = name
        # The debt one grant may leave: about a second of grants (at least one).
        self._debt = max(1.0, self.rate or 1.0)
        self._created = False

    def __repr__(self) -> str:
        return f"SharedPacer(rate={self.rate}, burst={self.burst}, name={self.name!r})"

    def _params(self) -> dict[str, object]:
        return {"name": self.name, "rate": self.rate, "burst": self.burst, "debt": self._debt}

    async def _ensure_row(self) -> None:
        if not self._created:
            await self._fetch(_CREATE, self._params())
            self._created = True

    async def acquire(self) -> None:
        """Wait for this worker's turn under the shared rate (and any shared hold).

        Without a shared rate, returns at once: the hold comes with the
        "submitting" write (:data:`HOLD_LEFT`).
        """
        rate = self.rate
        if rate is None:
            return
        await self._ensure_row()
        while True:
            row = await self._fetch(_ACQUIRE, self._params())
            if row is None:  # the row was removed under us: make it again
                self._created = False
                await self._ensure_row()
                continue
            granted, tokens, hold = bool(row[0]), float(row[1]), float(row[2])  # type: ignore[arg-type]
            if granted:
                if tokens < 0:
                    # Our token was lent by the grants to come: wait for it to exist.
                    await asyncio.sleep(-tokens / rate)
                return
            if hold > 0:
                await asyncio.sleep(min(hold, MAX_NAP))
            else:
                # The debt is full: ask again once it has room for one more.
                missing = (1 - self._debt) - tokens
                await asyncio.sleep(min(MAX_NAP, max(missing / rate, 0.001)))

    async def hold(self, seconds: float) -> float:
        """Hold back every worker's submissions for ``seconds`` (a 429's Retry-After).

        Holds only lengthen: a shorter one seen later does not cut a longer one.

        Returns:
            The seconds the shared hold now has left (it may be a longer one
            another worker recorded), 0 when none.
        """
        if not (isinstance(seconds, int | float) and math.isfinite(seconds)) or seconds <= 0:
            return 0.0
        await self._ensure_row()
        row = await self._fetch(_HOLD, {"name": self.name, "seconds": float(seconds)})
        if row is None:  # the row was removed under us
            self._created = False
            return float(seconds)
        return max(0.0, float(row[0]))  # type: ignore[arg-type]
