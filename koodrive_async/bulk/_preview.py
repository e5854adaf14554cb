"""What a plan would send, without sending it: the dry run's facts (pure).

Owns :func:`preview_plan`, which re-reads every valid line of a loaded
:class:`~._plan.Plan` and tells how many requests of each kind and action it
holds and what the first bodies look like (secrets masked). It touches
neither a session nor a journal, so ``run --dry-run`` reads nothing from and
sends nothing to the service and writes no journal.

Must never import: ``cli/``, ``rich``, ``argparse``, the journal or the runner.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs

from .._models import ImportTaskRequest, JobRequest, Request, ShareTaskRequest
from ._bodies import plan_body
from ._mask import mask
from ._plan import Plan

__all__ = ["PlanPreview", "action_of", "preview_plan"]


def _name(value: object) -> str:
    return str(getattr(value, "name", value))


def action_of(request: Request) -> str:
    """A request's action as a report groups it: ``COPY/COPY``, ``PACKAGE``, ``transfer``."""
    if isinstance(request, JobRequest):
        task_type = _name(request.task_type)
        action = request.action_type
        return task_type if action is None else f"{task_type}/{action.name}"
    if isinstance(request, ShareTaskRequest):
        return _name(request.task_type)
    return "import" if isinstance(request, ImportTaskRequest) else "transfer"


@attrs.frozen
class PlanPreview:
    """What a plan would send.

    Attributes:
        lines: Non-blank lines in the plan.
        valid: Lines that would be sent.
        invalid: Lines that would not (see :attr:`Plan.errors`).
        by_action: ``{(kind, action): count}`` of the valid lines, in plan order.
        first_bodies: ``(line, kind, body)`` of the first valid lines, secrets masked.
    """

    lines: int
    valid: int
    invalid: int
    by_action: dict[tuple[str, str], int]
    first_bodies: list[tuple[int, str, dict[str, Any]]]


def preview_plan(plan: Plan, *, bodies: int = 3) -> PlanPreview:
    """Count what ``plan`` would send and show its first ``bodies`` request bodies.

    Args:
        plan: The loaded plan.
        bodies: How many bodies to show.

    Returns:
        The preview; nothing is sent, nothing is written.
    """
    counts: Counter[tuple[str, str]] = Counter()
    first: list[tuple[int, str, dict[str, Any]]] = []
    for line in plan.valid_lines:
        assert line.kind is not None
        request = plan.request(line.number)
        counts[(line.kind, action_of(request))] += 1
        if len(first) < bodies:
            masked: dict[str, Any] = mask(plan_body(request))
            first.append((line.number, line.kind, masked))
    return PlanPreview(
        lines=len(plan.lines),
        valid=len(plan.valid_lines),
        invalid=len(plan.errors),
        by_action=dict(counts),
        first_bodies=first,
    )
