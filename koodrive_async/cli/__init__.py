"""The ``koodrive-async`` command line (``python -m koodrive_async``).

Subcommands: ``demo`` (a bulk run on the embedded emulator), ``run`` (a
resumable, exactly-once bulk run of a JSON Lines plan), ``task get|list|wait``
and ``emulator``. Progress bars and tables use ``rich`` when it is installed
(the ``cli`` extra); the library itself never imports it.
"""

from ._app import main

__all__ = ["main"]
