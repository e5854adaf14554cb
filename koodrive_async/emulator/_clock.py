"""The virtual clock that drives task timelines (never the X-Date check)."""

from __future__ import annotations

import math
import time

__all__ = ["EmulatorClock"]


class EmulatorClock:
    """Virtual time in epoch seconds, which tests can move forward or speed up.

    It starts at the real wall-clock time, then runs ``speed`` times faster than
    real time, plus whatever :meth:`advance` added. Task timelines (NEW,
    EXECUTING, terminal) and the lifetimes of issued access tokens read it;
    the ``X-Date`` check never does, so moving it cannot make a request's
    ``X-Date`` stale (it can expire a session or carrier token).

    Args:
        speed: Initial speed factor (>= 0; 0 freezes time between advances).
        offset: Seconds added to the real wall-clock time it starts from (the
            server's ``clock_skew``: a task's ``createTime`` is in the
            server's time, as the X-Date check and ``Date`` are).

    Raises:
        ValueError: ``speed`` is negative.
    """

    def __init__(self, speed: float = 1.0, *, offset: float = 0.0) -> None:
        self._check_speed(speed)
        self._offset = float(offset)
        self._initial_speed = float(speed)
        self._speed = float(speed)
        self._base = time.time() + self._offset
        self._anchor = time.monotonic()

    def wall(self) -> float:
        """Return the server's wall clock: real time plus the ``offset`` (its ``clock_skew``).

        Returns:
            Epoch seconds; unlike :meth:`now`, never sped up or advanced.
        """
        return time.time() + self._offset

    @staticmethod
    def _check_speed(speed: float) -> None:
        # NaN compares false with everything, so "not >= 0" also refuses it.
        if (
            isinstance(speed, bool)
            or not isinstance(speed, int | float)
            or not 0 <= speed < math.inf
        ):
            raise ValueError(f"clock speed must be a finite number >= 0, got {speed!r}")

    def now(self) -> float:
        """Return the current virtual time.

        Returns:
            Epoch seconds (float).
        """
        return self._base + (time.monotonic() - self._anchor) * self._speed

    def advance(self, seconds: float) -> float:
        """Move virtual time forward at once, without sleeping.

        Args:
            seconds: How far to move (>= 0).

        Returns:
            The new virtual time.

        Raises:
            ValueError: ``seconds`` is negative (time never runs backwards).
        """
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds < math.inf
        ):
            raise ValueError(f"advance() takes a finite number of seconds >= 0, got {seconds!r}")
        self._base += float(seconds)
        return self.now()

    @property
    def speed(self) -> float:
        """How many virtual seconds pass per real second."""
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        self._check_speed(value)
        # Re-anchor so the time already elapsed keeps the old rate.
        self._base = self.now()
        self._anchor = time.monotonic()
        self._speed = float(value)

    def reset(self) -> None:
        """Go back to the (skewed) wall-clock time at the initial speed."""
        self._speed = self._initial_speed
        self._base = time.time() + self._offset
        self._anchor = time.monotonic()
