"""The command's exit codes and its usage error, and the exit code of a bulk run.

Owns the numbers every subcommand returns (documented in ``--help`` and
docs/command-line.md) and :func:`run_exit_code`, the mapping from a
:class:`~koodrive_async.bulk.RunResult` to one of them. Kept apart so that
``_app.py``, ``_run.py`` and ``_demo.py`` share them without importing each
other.

Must never import: ``rich``, the other ``cli`` modules.
"""

from __future__ import annotations

from ..bulk import RunResult, State

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_IN_DOUBT",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "UsageError",
    "run_exit_code",
]

#: The command's name, in messages.
PROG = "koodrive-async"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_IN_DOUBT = 3
EXIT_INTERRUPTED = 130
#: stdout was closed by its reader (``| head``), as a process killed by SIGPIPE.
EXIT_BROKEN_PIPE = 141


class UsageError(Exception):
    """Bad arguments, configuration or plan: reported, exit code 2, nothing sent."""


def run_exit_code(result: RunResult) -> int:
    """0 every line succeeded; 1 some failed, skipped, unfinished or not started
    (or the run aborted); 3 some in doubt; 130 interrupted."""
    if result.interrupted:
        return EXIT_INTERRUPTED
    counts = result.counts
    if result.has_doubt:
        code = EXIT_IN_DOUBT
    elif any(
        counts.get(s, 0) for s in (State.FAILED, State.INVALID, State.SUBMITTED, State.PENDING)
    ):
        code = EXIT_FAILED
    else:
        code = EXIT_OK
    return max(code, EXIT_FAILED) if result.error is not None else code
