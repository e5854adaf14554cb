"""Time on the service's clock: the X-Date format (and, next, the offset learnt from Date)."""

from __future__ import annotations

import time

__all__ = ["format_x_date"]


def format_x_date(epoch_seconds: float) -> str:
    """Format an X-Date: UTC, ``yyyyMMdd'T'HHmmss'Z'``, seconds floored.

    Args:
        epoch_seconds: The time, in seconds since the epoch.

    Returns:
        For example ``20251103T070140Z``.
    """
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(int(epoch_seconds // 1)))
