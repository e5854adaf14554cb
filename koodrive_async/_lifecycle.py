"""The life of a KooDriveSession: one state (UNOPENED, OPENED, CLOSED) and one closed error.

Owns the answer to "may this session still send?" for every part that asks
(the session's methods, the sender between attempts, the owned aiohttp
session, and the waiting code), so that a session closed while a call waits
to retry fails the same way as one closed before the call, with the same
message. In the manner of httpx's ``ClientState``.

Pure: imports nothing from the package and no I/O library.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["CLOSED_MESSAGE", "ClientState", "Lifecycle", "closed_error"]

#: The one message of the RuntimeError a closed session raises.
CLOSED_MESSAGE: Final = "the KooDriveSession is closed"


class ClientState(enum.Enum):
    """Where a session is in its life."""

    #: Made, nothing sent yet.
    UNOPENED = 1
    #: Entered (``async with``) or used at least once.
    OPENED = 2
    #: :meth:`~koodrive_async.KooDriveSession.close` was called; nothing may be sent.
    CLOSED = 3


def closed_error() -> RuntimeError:
    """The error every use of a closed session raises.

    Returns:
        A new RuntimeError with :data:`CLOSED_MESSAGE`.
    """
    return RuntimeError(CLOSED_MESSAGE)


class Lifecycle:
    """The state one session and its parts share.

    Attributes:
        state: The current :class:`ClientState`.
    """

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = ClientState.UNOPENED

    def __repr__(self) -> str:
        return f"Lifecycle({self.state.name})"

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self.state is ClientState.CLOSED

    def open(self) -> None:
        """Mark the session in use.

        Raises:
            RuntimeError: It is closed.
        """
        if self.state is not ClientState.OPENED:
            if self.state is ClientState.CLOSED:
                raise closed_error()
            self.state = ClientState.OPENED

    def check_open(self) -> None:
        """Raise if closed.

        Raises:
            RuntimeError: It is closed.
        """
        if self.state is ClientState.CLOSED:
            raise closed_error()

    def close(self) -> bool:
        """Mark it closed.

        Returns:
            True the first time, False when it was closed already.
        """
        if self.state is ClientState.CLOSED:
            return False
        self.state = ClientState.CLOSED
        return True
