"""Time on the service's clock: the offset learnt from ``Date``, and the X-Date stamp.

The service refuses an X-Date later than its current second or about 15
minutes old, and answers with a ``Date`` header; :class:`ServerClock` learns
the offset between the two clocks from those headers (carefully: see
:meth:`ServerClock.learn`), stamps each attempt with a corrected X-Date
(formatted once per second), and says what time it is on the server, for
Retry-After dates and reconciliation.

Pure: no I/O, no logging, no aiohttp, nothing from the package.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Final

__all__ = ["MIN_CLOCK_OFFSET", "ServerClock", "format_x_date"]

# The offset learnt from a Date header only ever goes down by small steps (each
# reading is a lower bound of the true offset); it goes up only by a jump this
# big (the clock of one side was reset), so it does not flap with the rounding.
MIN_CLOCK_OFFSET: Final = 1.0


def format_x_date(epoch_seconds: float) -> str:
    """Format an X-Date: UTC, ``yyyyMMdd'T'HHmmss'Z'``, seconds floored.

    Args:
        epoch_seconds: The time, in seconds since the epoch.

    Returns:
        For example ``20251103T070140Z``.
    """
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(int(epoch_seconds // 1)))


class ServerClock:
    """This machine's clock corrected by the offset learnt from the service's ``Date``.

    Attributes:
        offset: Seconds the service's clock is ahead of ours (0 until learnt).
        wall_clock: The local clock (replaceable in tests).
        stamped_second: The epoch second of the last :meth:`x_date`.
    """

    __slots__ = (
        "_date_value",
        "_last_date",
        "_last_time",
        "_learnt",
        "_minute",
        "_minute_time",
        "offset",
        "stamped_second",
        "wall_clock",
    )

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self.offset = 0.0
        self.wall_clock = wall_clock
        self.stamped_second = -1
        self._date_value = ""
        self._learnt = False
        self._last_date: str | None = None
        self._last_time: float | None = None
        # The last Date parsed in full, less its ``SS GMT``, and its time at :00.
        # None until a whole date was parsed: no header can match it.
        self._minute: str | None = None
        self._minute_time = 0.0

    def __repr__(self) -> str:
        return f"ServerClock(offset={self.learnt_offset!r})"

    @property
    def learnt_offset(self) -> float | None:
        """:attr:`offset` once a ``Date`` was read, else None (unknown)."""
        return self.offset if self._learnt else None

    def now(self) -> float:
        """The service's time now, as far as known (epoch seconds)."""
        return self.wall_clock() + self.offset

    def x_date(self) -> str:
        """The X-Date for an attempt now (offset applied); sets :attr:`stamped_second`."""
        second = int(self.wall_clock() + self.offset)
        if second != self.stamped_second:
            # The same string for a whole second: formatted once per second.
            self._date_value = format_x_date(second)
            self.stamped_second = second
        return self._date_value

    def learn(self, server_date: str | None) -> float | None:
        """Update the offset from a ``Date`` header.

        Args:
            server_date: The header value, or None.

        Returns:
            The server's time the header gives (epoch seconds), or None.
        """
        if server_date is None:
            return None
        if server_date == self._last_date:
            return self._last_time
        self._last_date = server_date
        # The next second of the same minute (``..., 16:06:35 GMT`` after
        # ``..., 16:06:34 GMT``) is told from the minute read last, without
        # parsing the whole date again once a second.
        seconds = server_date[-6:-4]
        if (
            server_date[:-6] == self._minute
            and server_date[-4:] == " GMT"
            and seconds.isascii()
            and seconds.isdigit()
            and seconds < "60"
        ):
            server_time = self._minute_time + int(seconds)
        else:
            try:
                server_time = parsedate_to_datetime(server_date).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                self._last_time = None
                return None
            if server_date[-4:] == " GMT" and seconds.isascii() and seconds.isdigit():
                self._minute = server_date[:-6]
                self._minute_time = server_time - int(seconds)
        self._last_time = server_time
        # Date is floored to the second and read after it was sent, so this is a
        # lower bound of the true offset: a stamp made with it is never later
        # than the server's now. Small readings are kept too: a clock only a
        # fraction of a second fast would otherwise stamp the server's next
        # second during part of every second, and "later than now" is refused.
        offset = server_time - self.wall_clock()
        self._learnt = True
        if offset < self.offset or offset - self.offset >= MIN_CLOCK_OFFSET:
            self.offset = offset
        return server_time
