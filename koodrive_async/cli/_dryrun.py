"""``run --dry-run``: what a run would send, printed; nothing sent, no journal written.

Owns the dry run's text. The facts come from
:func:`koodrive_async.bulk._preview.preview_plan` (pure); this module only
words them. It never opens a session or a journal: the journal file is only
looked at (does it exist?), so that the user knows whether a real run would
resume it.

Must never import: ``argparse``, ``rich``, the session.
"""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING

from ..bulk import RunOptions, default_journal_path
from ..bulk._mask import mask
from ..bulk._preview import preview_plan
from ._codes import EXIT_OK

if TYPE_CHECKING:
    from ..bulk import Plan
    from ._run import RunCommand

__all__ = ["print_dry_run"]


def print_dry_run(plan: Plan, command: RunCommand, options: RunOptions, out: IO[str]) -> int:
    """Print what ``run`` would send for ``plan`` (the plan was checked already).

    Returns:
        The exit code: 0 (an invalid line was refused before, with exit code 2).
    """
    preview = preview_plan(plan)
    journal = command.journal or default_journal_path(command.plan)
    write = out.write
    write("dry run: nothing is read from or sent to the service, and no journal is written\n")
    write(
        f"plan {plan.path}: {preview.lines} line(s), {preview.valid} would be sent"
        + (f", {preview.invalid} invalid (skipped)" if preview.invalid else "")
        + "\n"
    )
    width = max((len(f"{k} {a}") for k, a in preview.by_action), default=0)
    for (kind, action), count in preview.by_action.items():
        write(f"  {f'{kind} {action}'.ljust(width)}  {count:>8}\n")
    rate = f"at most {options.rate:g} submissions/s" if options.rate else "no rate limit (--rate)"
    write(f"concurrency {options.concurrency} task(s) in flight, {rate}\n")
    if isinstance(journal, str):
        # A shared database is not opened by a dry run: no connection is made at all.
        write(f"journal {mask(journal)}: a real run uses (or creates) it; not opened now\n")
    elif journal.exists():
        write(f"journal {journal} exists: a real run resumes it (finished lines are skipped)\n")
    else:
        write(f"journal {journal} would be created\n")
    if command.retry_failed or command.retry_rejected:
        # The journal is not opened (it would be locked and migrated): the
        # report reads it, and names the lines a real run would send again.
        write(
            "a dry run does not read the journal: `koodrive-async report "
            f"{command.plan} --failed` lists the failed lines --retry-failed / "
            "--retry-rejected would send again\n"
        )
    if preview.first_bodies:
        write(f"first {len(preview.first_bodies)} request(s) (secrets masked):\n")
    for number, kind, body in preview.first_bodies:
        write(mask(f"  line {number} ({kind}): {json.dumps(body, ensure_ascii=False)}") + "\n")
    out.flush()
    return EXIT_OK
