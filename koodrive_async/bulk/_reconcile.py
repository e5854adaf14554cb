"""The reconciliation rule (pure): deciding what became of the in-doubt lines.

Owns the rule below and the keys it compares; it does no I/O (the listing
and the journal writes are ``_listing.py``'s), so that it can be tested on
hand-made listings and offered to library users as it is.

A line is *in doubt* when its create request may have reached the service but
no answer was recorded: the process was killed between "submitting" and the
task id, or the create failed with ``possibly_created`` (a 500 to the POST, a
connection lost after sending, a 200 that is not JSON). Sending it again could
create the task twice; not sending it could lose it. This module looks at
what the service holds (``GET task/list``, every page) and decides, per line
of a transfer or an import (and of every kind for a session whose
``job_tracking`` is ``"task"``, a deployment that lists jobs there). Batch
jobs are listed only by ``GET /jobs``, without their bodies: their rule is in
``_job_match.py``. Share tasks are listed nowhere: their lines stay in doubt.
Per line:

* **matched**: an existing task is this line's; the line becomes "submitted"
  with that task id and is waited on like any other.
* **not created**: it is proven that the create did not happen; the line goes
  back to "pending" and is sent again.
* **still in doubt**: nothing can be proven; the line stays in doubt (exit
  code 3; ``--resubmit-in-doubt`` forces it).

The rule, precisely:

1. *Body.* A task's ``initParams`` is read as JSON. When it is an object, its
   *key* is that object with every ``password`` and ``kdstoken`` field removed
   (at any depth), as canonical JSON. A line's key is the body its create sent
   (the JSON body, not the ``x-hw-share-folder-id`` header), with the same
   fields removed. Secrets never take part, on either side.
2. *Candidates.* A task can be matched only when no journal line holds its id
   already (a task id is claimed once), and when its ``createTime`` is not
   earlier than the line's "submitting" time *in the service's clock* minus
   :data:`CLOCK_MARGIN` (a task without a readable ``createTime`` is always a
   candidate). ``createTime`` is read on the service's clock, so the
   comparison is too: the "submitting" time is this machine's time plus the
   clock offset the session had learnt from the service's ``Date`` headers
   when it marked the line (both are in the journal). The create is sent after
   the mark, so its task's ``createTime`` is later than the mark on the same
   clock; the learnt offset is a lower bound of the true one (``Date`` is
   floored and read late), and the margin absorbs a clock that moved since,
   by up to 15 minutes. A line marked before any offset was known (the first
   creates of a run, or a journal of schema version 1) has *no* time bound:
   every task with its key is a candidate, and it is declared not created
   only as rule 6 allows without a bound.
3. *Matching* is by count, per key: n in-doubt lines with the same key against
   m candidate tasks with that key. When m >= n every line is matched (the
   earliest candidates, earliest line first). When m < n, m lines are matched
   and the n - m others are *unmatched*; but if those n lines are not
   identical plan lines (they differ only in a share folder or a password,
   which the key cannot see) and m > 0, which line a task belongs to cannot
   be told, and all n stay in doubt.
4. *Witnesses.* The journal lines that have a task id and whose task appears
   in the listing are witnesses (the :data:`WITNESSES_PER_KIND` most recently
   sent of each kind, when there are more): it *agrees* when the task's key equals the line's
   key, and *contradicts* otherwise (also when ``initParams`` is absent or not
   a JSON object). A witness whose task's ``createTime`` is earlier than its
   line's "submitting" time (in the service's clock, when known) minus the
   margin shows that ``createTime`` cannot be trusted: the time bound of
   rule 2 is then dropped.
5. *Trust.* The listing is *trusted for a kind* (job, share, transfer, import)
   when no witness contradicts and at least one witness of that kind agrees or
   at least one line of that kind was matched in step 3.
6. An unmatched line is *not created*, and sent again, when either
   (a) the listing is trusted for its kind and no unclaimed, unmatched
   candidate task (rule 2's time bound) has an ``initParams`` that cannot be
   read as a JSON object; or (b) there is no unclaimed, unmatched candidate
   task at all, whatever the listing carries. Otherwise it stays in doubt.

Assumptions (documented in the README): the listing returns every task of the
user, in every state, and a create the service received is in the listing
once it has been handled. A line is declared not created only by a listing
that started at least :data:`SETTLE_SECONDS` after the line's create may last
have been sent (for a line a killed run left "submitting", the killed run's
last journal write, which is after its last send). The service handles a
create in milliseconds, so one still being handled when the process died is
in that listing; a create held somewhere for longer (a stalled proxy that
forwards it seconds later) is not covered. The runner does not sleep for
this at the start of a resume: it applies the matches at once, keeps such
lines in doubt, runs the other lines, and looks again at the end (by then
usually much more than the settle time has passed). Tasks whose bodies equal
a line's and that were created in the margin before the line by something
other than this plan (another tool, another journal of the same plan) can be
taken for the line's own.

Must never import: ``cli/``, ``rich``, ``argparse``, the journal, the session.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from .._codec import request_body
from .._models import Request, Task
from ._bodies import plan_body
from ._plan import SECRET_FIELDS

if TYPE_CHECKING:
    from ._job_match import JobDecision

__all__ = [
    "CLOCK_MARGIN",
    "SETTLE_SECONDS",
    "WITNESSES_PER_KIND",
    "Decision",
    "KnownLine",
    "LineInDoubt",
    "body_key",
    "decide",
    "params_key",
    "request_identity",
    "request_key",
]

#: How much earlier than the line's "submitting" time (in the service's clock)
#: a task's ``createTime`` may be and still be the line's task.
CLOCK_MARGIN = timedelta(minutes=15)

#: How many journal lines of each kind (the most recently sent) are checked
#: as witnesses of what the listing's ``initParams`` holds (rule 4).
WITNESSES_PER_KIND = 200

#: A line is declared not created only by a listing that started at least this
#: many seconds after its create may last have been sent (for a line a killed
#: run left "submitting": that run's last journal write), so that a create the
#: service was still handling shows in the listing.
SETTLE_SECONDS = 3.0


def _strip_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_secrets(v) for k, v in value.items() if k not in SECRET_FIELDS}
    if isinstance(value, list):
        return [_strip_secrets(v) for v in value]
    return value


def body_key(body: Mapping[str, Any]) -> str:
    """The key of a JSON request body: canonical JSON, secret fields removed.

    Args:
        body: A parsed JSON object.

    Returns:
        The key (sorted keys, no spaces).
    """
    return json.dumps(
        _strip_secrets(dict(body)), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def request_key(request: Request) -> str:
    """The key of the body a create request sends (see :func:`body_key`).

    Args:
        request: A request model.

    Returns:
        The key.
    """
    # The JSON round trip gives the body exactly as the service parses it
    # (tuples become lists, enums their numbers).
    sent = json.loads(json.dumps(request_body(request), ensure_ascii=False))
    return body_key(sent)


def request_identity(request: Request) -> str:
    """Everything that tells two plan lines apart, secrets and headers included.

    Held in memory only, never stored or shown: it compares in-doubt lines that
    share a key (rule 3 of the module docstring).

    Args:
        request: A request model.

    Returns:
        A canonical JSON text.
    """
    return json.dumps(plan_body(request), sort_keys=True, separators=(",", ":"), default=str)


def params_key(init_params: str | None) -> str | None:
    """The key of a task's ``initParams``, or None when it is not a JSON object.

    Args:
        init_params: The listed task's ``initParams``.

    Returns:
        The key, or None.
    """
    if not init_params:
        return None
    try:
        parsed = json.loads(init_params)
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    return body_key(parsed)


@attrs.frozen
class LineInDoubt:
    """An in-doubt line, as the reconciliation sees it.

    Attributes:
        line: The plan line number.
        kind: The line's kind.
        key: :func:`request_key` of its request.
        identity: :func:`request_identity` of its request.
        submitting_at: When it was last marked "submitting", in the service's
            clock (None if unknown: then no time bound applies to it).
    """

    line: int
    kind: str
    key: str
    identity: str
    submitting_at: datetime | None


@attrs.frozen
class KnownLine:
    """A journal line that already holds a task id (a potential witness).

    Attributes:
        line: The plan line number.
        kind: The line's kind.
        key: :func:`request_key` of its request.
        submitting_at: When it was last marked "submitting", in the service's
            clock (None if unknown).
    """

    line: int
    kind: str
    key: str
    submitting_at: datetime | None


@attrs.frozen
class Decision:
    """What the reconciliation decided.

    Attributes:
        matched: ``{line: task id}`` of the lines whose task was found.
        not_created: Lines proven not created (to be sent again).
        in_doubt: Lines that stay in doubt.
        listed: Tasks in the listing.
        agreeing: Witnesses whose task carries their own body.
        contradicting: Witnesses whose task does not.
        trusted_kinds: Kinds for which the listing is trusted (rule 5; "job"
            when the job clock was calibrated, see ``_job_match.py``).
        time_bound: False when rule 2's time bound was dropped (rule 4).
        jobs: The job rule's part of the decision (``_job_match.py``), when
            job lines were looked up in the job list.
        tasks_listed: False when the task list was not read (no transfer or
            import line was in doubt).
    """

    matched: dict[int, str]
    not_created: list[int]
    in_doubt: list[int]
    listed: int
    agreeing: int
    contradicting: int
    trusted_kinds: frozenset[str]
    time_bound: bool
    jobs: JobDecision | None = None
    tasks_listed: bool = True

    def describe(self, deferred: int = 0) -> str:
        """One sentence for the user about what was decided and why.

        Args:
            deferred: How many of :attr:`not_created` are not sent yet (the
                listing came too soon after their create may have been sent).

        Returns:
            The sentence.
        """
        parts = [
            f"{len(self.matched)} found on the service",
            f"{len(self.not_created) - deferred} proven not created (sent again)",
        ]
        if deferred:
            parts.append(
                f"{deferred} not created so far but sent moments ago (looked up again after "
                "the other lines)"
            )
        parts.append(f"{len(self.in_doubt)} still in doubt")
        bases = []
        if self.tasks_listed:
            basis = (
                f"{self.listed} task(s) listed; {self.agreeing} known task(s) carry their "
                f"request body, {self.contradicting} do not"
            )
            if not self.time_bound:
                basis += "; createTime ignored (inconsistent with the journal)"
            bases.append(basis)
        jobs = self.jobs
        if jobs is not None:
            basis = f"{jobs.listed} job(s) listed, {jobs.read} read in detail"
            if jobs.offset is None:
                basis += "; no job of this journal listed to calibrate createTime, no time bound"
            if not jobs.filtered:
                basis += "; the job list's fields ignored (inconsistent with the journal)"
            bases.append(basis)
        return ", ".join(parts) + (f" ({'; '.join(bases)})" if bases else "")


@attrs.frozen
class _Listed:
    task_id: str
    key: str | None
    created: datetime | None


def _after(created: datetime | None, bound: datetime | None) -> bool:
    return created is None or bound is None or created >= bound


@attrs.frozen
class _Latest:
    """How late the latest of some tasks was created (for "any task after a bound?")."""

    empty: bool
    undated: bool  # some task has no readable createTime: it is after any bound
    latest: datetime | None

    @classmethod
    def of(cls, tasks: list[_Listed]) -> _Latest:
        dated = [t.created for t in tasks if t.created is not None]
        return cls(not tasks, len(dated) < len(tasks), max(dated) if dated else None)

    def any_after(self, low: datetime | None) -> bool:
        if self.empty:
            return False
        if low is None or self.undated:
            return True
        return self.latest is not None and self.latest >= low


@attrs.define
class _Survey:
    """What the listing says, rules 2 and 4: the witnesses' verdicts and the candidate pool."""

    listed: int = 0
    agreeing: int = 0
    contradicting: int = 0
    agreeing_kinds: set[str] = attrs.Factory(set)
    time_bound: bool = True
    pool: list[_Listed] = attrs.Factory(list)


def _survey(
    tasks: Iterable[Task], known: Mapping[str, KnownLine], taken: set[str], margin: timedelta
) -> _Survey:
    survey = _Survey()
    seen: set[str] = set()
    for task in tasks:
        survey.listed += 1
        if task.task_id in seen:
            continue  # a task repeated across pages counts once
        seen.add(task.task_id)
        key = params_key(task.init_params)
        witness = known.get(task.task_id)
        if witness is not None:
            if key == witness.key:
                survey.agreeing += 1
                survey.agreeing_kinds.add(witness.kind)
            else:
                survey.contradicting += 1
            if (
                task.create_time is not None
                and witness.submitting_at is not None
                and task.create_time < witness.submitting_at - margin
            ):
                survey.time_bound = False
            continue
        if task.task_id in taken:
            continue
        survey.pool.append(_Listed(task.task_id, key, task.create_time))
    return survey


@attrs.define
class _Matching:
    """Rule 3's result: matched lines, unmatched ones, ambiguous ones, tasks used."""

    matched: dict[int, str] = attrs.Factory(dict)
    used: set[str] = attrs.Factory(set)
    unmatched: list[LineInDoubt] = attrs.Factory(list)
    ambiguous: list[int] = attrs.Factory(list)
    kinds: set[str] = attrs.Factory(set)


def _match(
    lines: list[LineInDoubt],
    pool: list[_Listed],
    bound: Callable[[LineInDoubt], datetime | None],
) -> _Matching:
    by_key: dict[str, list[_Listed]] = {}
    for entry in pool:
        if entry.key is not None:
            by_key.setdefault(entry.key, []).append(entry)
    groups: dict[str, list[LineInDoubt]] = {}
    for line in lines:
        groups.setdefault(line.key, []).append(line)
    result = _Matching()
    for key, group in groups.items():
        earliest = bound(group[0]) if all(bound(g) is not None for g in group) else None
        candidates = sorted(
            (t for t in by_key.get(key, ()) if _after(t.created, earliest)),
            key=lambda t: (t.created is None, t.created, t.task_id),
        )
        identical = len({g.identity for g in group}) == 1
        if len(candidates) < len(group) and candidates and not identical:
            result.ambiguous.extend(g.line for g in group)
            # Their candidates may be theirs: nobody else may take them.
            result.used.update(t.task_id for t in candidates)
            continue
        for line, found in zip(group, candidates, strict=False):
            result.matched[line.line] = found.task_id
            result.used.add(found.task_id)
            result.kinds.add(line.kind)
        result.unmatched.extend(group[len(candidates) :])
    return result


def decide(
    in_doubt: Iterable[LineInDoubt],
    known: Mapping[str, KnownLine],
    tasks: Iterable[Task],
    *,
    claimed: Iterable[str] = (),
    margin: timedelta = CLOCK_MARGIN,
) -> Decision:
    """Apply the reconciliation rule (module docstring) to a complete task listing.

    Args:
        in_doubt: The in-doubt lines.
        known: ``{task id: line}`` of the journal lines holding a task id.
        tasks: Every task the listing returned.
        claimed: Further task ids that belong to journal lines (besides ``known``).
        margin: The clock margin of rule 2.

    Returns:
        The decision; every in-doubt line is in exactly one of its three parts.
    """
    lines = sorted(in_doubt, key=lambda d: (d.submitting_at is None, d.submitting_at, d.line))
    survey = _survey(tasks, known, set(known) | set(claimed), margin)

    def bound(line: LineInDoubt) -> datetime | None:
        if not survey.time_bound or line.submitting_at is None:
            return None
        return line.submitting_at - margin

    matching = _match(lines, survey.pool, bound)
    trusted = (
        frozenset(survey.agreeing_kinds | matching.kinds)
        if survey.contradicting == 0
        else frozenset()
    )
    not_created: list[int] = []
    still: list[int] = list(matching.ambiguous)
    # The unclaimed, unmatched tasks, summarised by their latest createTime (a
    # task without one is after any bound): any / those whose body is unreadable.
    left = [t for t in survey.pool if t.task_id not in matching.used]
    any_left = _Latest.of(left)
    unreadable_left = _Latest.of([t for t in left if t.key is None])
    for line in matching.unmatched:
        low = bound(line)
        if not any_left.any_after(low) or (
            line.kind in trusted and not unreadable_left.any_after(low)
        ):
            not_created.append(line.line)
        else:
            still.append(line.line)
    return Decision(
        matched=matching.matched,
        not_created=sorted(not_created),
        in_doubt=sorted(still),
        listed=survey.listed,
        agreeing=survey.agreeing,
        contradicting=survey.contradicting,
        trusted_kinds=trusted,
        time_bound=survey.time_bound,
    )
