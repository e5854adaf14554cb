"""Plans that grow (pure): is a plan its journal's plan with lines appended at the end?

Owns :func:`compare_plan`, the rule :func:`~._runner.attach_plan` applies to
a journal that already holds a plan. The journal keeps a hash per line
(secrets redacted), so the comparison is line by line: every line the journal
recorded must still be there, unchanged, at the same line number; lines after
the last recorded one are new and are added to the journal as pending. Any
other difference (a line edited, removed, inserted or moved, a blank line
filled in) would make the journal's line numbers point at other requests,
so the plan is refused, naming the first line that differs.

Must never import: ``cli/``, ``rich``, ``argparse``, a journal backend.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from ._journal import PlanEntry
from ._plan import Plan

__all__ = ["PlanComparison", "compare_plan"]


@attrs.frozen
class PlanComparison:
    """How a plan compares with the one a journal recorded.

    Attributes:
        first_difference: The first line number whose request differs from the
            recorded one (or is missing), or None when every recorded line is
            unchanged.
        why: What differs there (``changed``, ``missing``, ``added before the end``).
        appended: The entries of the lines after the last recorded one.
    """

    first_difference: int | None
    why: str | None
    appended: tuple[PlanEntry, ...]

    @property
    def same(self) -> bool:
        """True when the plan is exactly the recorded one."""
        return self.first_difference is None and not self.appended


def compare_plan(recorded: Mapping[int, str], plan: Plan) -> PlanComparison:
    """Compare ``plan`` with the ``{line: line_hash}`` a journal recorded.

    Args:
        recorded: The journal's line hashes.
        plan: The plan about to run.

    Returns:
        The comparison: the first differing line, or the appended lines.
    """
    last = max(recorded, default=0)
    current = {line.number: line for line in plan.lines}
    differences: list[tuple[int, str]] = []
    for number, line_hash in recorded.items():
        line = current.get(number)
        if line is None:
            differences.append((number, "missing (removed, or now blank)"))
        elif line.line_hash != line_hash:
            differences.append((number, "changed"))
    differences += [
        (n, "added before the end of the recorded plan")
        for n in current
        if n <= last and n not in recorded
    ]
    if differences:
        number, why = min(differences)
        return PlanComparison(number, why, ())
    appended = tuple(
        (line.number, line.line_hash, line.kind, line.error)
        for line in plan.lines
        if line.number > last
    )
    return PlanComparison(None, None, appended)
