"""The reconciliation rule for batch jobs (pure): what became of in-doubt job lines.

Owns the rule below; it does no I/O (reading ``GET /jobs`` and each
candidate's detail is ``_listing.py``'s), so that it can be tested on
hand-made listings. ``_reconcile.py`` holds the rule for tasks (transfers and
imports, found in ``GET task/list``); the reference pages list batch jobs
only in ``GET /jobs``, and their ``initParams``-less items say nothing of the
request body, so jobs are matched on what the job list and job detail show.

The rule, precisely:

1. *Key.* A job line's key is what the service shows of its request: the job
   type, the action type, the target container (``containerId``) and the
   multiset of its file ids. A listed job shows the first three and its file
   count (``contentNum``); its detail shows the file ids (``taskInfos``).
2. *Calibration.* The 14-digit job times carry no time zone, so they are read
   against the journal, not against the ``Date`` offset: a *witness* is a
   journal line holding a job id that the listing shows. Its ``createTime``
   minus its "submitting" time (this machine's clock) is the service's job
   clock minus ours plus how long its create took; the least over the
   witnesses is the offset (an upper bound of the true one, the 1-second
   flooring aside). With no witness there is no calibration and no time bound.
3. *Window.* With an offset, a job is a candidate for a line only when its
   ``createTime`` is not earlier than submitting + offset - margin
   (:data:`~._reconcile.CLOCK_MARGIN`). There is no upper end: a service clock
   that runs ahead of the calibration (or a calibration from an older run)
   would push the line's own job past it, and the line would be declared not
   created and sent twice. A job without a readable ``createTime`` is always
   in the window.
4. *Filter.* A job is a candidate only when no journal line holds its id, it
   is in the window, and its listed type, action, container and file count do
   not differ from the line's (an absent field does not exclude). A witness
   whose own listed job differs from its own line on one of them shows the
   listing does not mean what the filter assumes: the filter is then dropped
   (every unclaimed job in the window is a candidate).
5. *Detail.* Each candidate's detail is read. It *matches* a key when its
   type, action and container do not differ and its file ids equal the key's
   as a multiset. It is *unreadable* when its detail could not be read, when
   it lists no file although it counts some, or when it matches the keys of
   more than one group of lines: it may be any of its lines' job.
6. *Decision*, per group of lines with one key (n lines, m matching jobs):
   m > n: some of these jobs are not the plan's, every line stays in doubt.
   The lines not identical plan lines (they differ outside the key: a path, a
   password, a share folder) and m > 0: which job is whose cannot be told,
   all stay in doubt. Otherwise m lines are *found* (earliest job to the
   earliest line), and each of the n - m others is *not created* only when
   the listing is complete (every page read, no page cap hit) and no
   unreadable candidate is in its window; else it stays in doubt.

A line is sent again only by a listing that started :data:`SETTLE_SECONDS`
after its create may last have been sent (the driver's check, as for tasks).
Jobs created by another tool with the same files, container and action in the
window can be taken for the line's own; a listing whose offsets shift while
it is read (jobs removed) can miss a job.

Must never import: ``cli/``, ``rich``, ``argparse``, the journal, the session.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import attrs

from .._models import Job, JobRequest
from ._reconcile import CLOCK_MARGIN, SETTLE_SECONDS

__all__ = [
    "SETTLE_SECONDS",
    "JobDecision",
    "JobKey",
    "JobLine",
    "JobWitness",
    "calibrate",
    "decide_jobs",
    "job_key",
    "jobs_to_read",
]


@attrs.frozen
class JobKey:
    """What the job list and job detail show of a job request (rule 1).

    Attributes:
        task_type: The job type's number.
        action_type: The action type's number, or None when the request names none.
        container_id: The target container.
        file_ids: The file ids, sorted (a multiset).
    """

    task_type: int
    action_type: int | None
    container_id: str
    file_ids: tuple[str, ...]


def job_key(request: JobRequest) -> JobKey:
    """The :class:`JobKey` of a job request.

    Args:
        request: A job request.

    Returns:
        Its key.
    """
    action = request.action_type
    return JobKey(
        int(request.task_type),
        None if action is None else int(action),
        request.dst_container_id,
        tuple(sorted(f.file_id for f in request.files if f.file_id is not None)),
    )


@attrs.frozen
class JobLine:
    """An in-doubt job line (or a fan-out outcome), as the rule sees it.

    Attributes:
        line: The plan line number (or the outcome's index).
        key: :func:`job_key` of its request.
        identity: Everything that tells two lines apart (see ``request_identity``).
        submitting_at: When its create was about to be sent (this machine's
            clock), or None when unknown.
    """

    line: int
    key: JobKey
    identity: str
    submitting_at: datetime | None


@attrs.frozen
class JobWitness:
    """A journal line (or outcome) holding a job id: a witness of the job clock and listing.

    Attributes:
        job_id: Its job id.
        key: :func:`job_key` of its request.
        submitting_at: When its create was about to be sent (this machine's clock).
    """

    job_id: str
    key: JobKey
    submitting_at: datetime | None


@attrs.frozen
class JobDecision:
    """What the job rule decided.

    Attributes:
        matched: ``{line: job id}`` of the lines whose job was found.
        not_created: Lines proven not created (to be sent again, once settled).
        in_doubt: Lines that stay in doubt.
        listed: Jobs in the listing.
        read: Candidates whose detail was read.
        offset: The calibrated job clock minus ours, in seconds (None: no
            witness, no time bound).
        filtered: False when a witness contradicted the listing filter (rule 4).
    """

    matched: dict[int, str]
    not_created: list[int]
    in_doubt: list[int]
    listed: int
    read: int
    offset: float | None
    filtered: bool


def _differs(listed: int | None, wanted: int | None) -> bool:
    """True only when both are known and unequal (an absent field never excludes)."""
    # Enum members are ints: JobType.COPY == 1.
    return listed is not None and wanted is not None and listed != wanted


def _fields_differ(job: Job, key: JobKey, *, count: bool) -> bool:
    return (
        _differs(job.task_type, key.task_type)
        or _differs(job.action_type, key.action_type)
        or (job.container_id is not None and job.container_id != key.container_id)
        or (count and _differs(job.file_count, len(key.file_ids)))
    )


def _unique(jobs: Iterable[Job]) -> dict[str, Job]:
    # A job repeated across pages (offsets shifted) counts once.
    out: dict[str, Job] = {}
    for job in jobs:
        out.setdefault(job.job_id, job)
    return out


def calibrate(witnesses: Iterable[JobWitness], jobs: Mapping[str, Job]) -> float | None:
    """Rule 2: the job clock minus ours, in seconds, from the witnesses; None without one.

    Args:
        witnesses: Lines holding a job id.
        jobs: ``{job id: listed job}``.

    Returns:
        The least ``createTime - submitting`` over the listed witnesses, or None.
    """
    gaps = [
        (job.create_time - w.submitting_at).total_seconds()
        for w in witnesses
        if w.submitting_at is not None
        and (job := jobs.get(w.job_id)) is not None
        and job.create_time is not None
    ]
    return min(gaps) if gaps else None


def _filter_holds(witnesses: Iterable[JobWitness], jobs: Mapping[str, Job]) -> bool:
    return not any(
        (job := jobs.get(w.job_id)) is not None and _fields_differ(job, w.key, count=True)
        for w in witnesses
    )


@attrs.frozen
class _Window:
    # Only a lower end (rule 3): the line's own job must never fall out of the window.
    low: datetime | None

    def holds(self, moment: datetime | None) -> bool:
        return moment is None or self.low is None or moment >= self.low


def _window(line: JobLine, offset: float | None, margin: timedelta) -> _Window:
    if offset is None or line.submitting_at is None:
        return _Window(None)
    return _Window(line.submitting_at + timedelta(seconds=offset) - margin)


@attrs.frozen
class _Survey:
    jobs: dict[str, Job]
    offset: float | None
    filtered: bool
    # {line: candidate job ids}, in the order of the listing.
    candidates: dict[int, list[str]]


def _survey(
    lines: list[JobLine],
    witnesses: list[JobWitness],
    jobs: Iterable[Job],
    claimed: set[str],
    margin: timedelta,
) -> _Survey:
    listed = _unique(jobs)
    offset = calibrate(witnesses, listed)
    filtered = _filter_holds(witnesses, listed)
    pool = [j for j in listed.values() if j.job_id not in claimed]
    candidates: dict[int, list[str]] = {}
    for line in lines:
        window = _window(line, offset, margin)
        candidates[line.line] = [
            j.job_id
            for j in pool
            if window.holds(j.create_time)
            and not (filtered and _fields_differ(j, line.key, count=True))
        ]
    return _Survey(listed, offset, filtered, candidates)


def jobs_to_read(
    lines: Iterable[JobLine],
    witnesses: Iterable[JobWitness],
    jobs: Iterable[Job],
    *,
    claimed: Iterable[str] = (),
    margin: timedelta = CLOCK_MARGIN,
) -> list[str]:
    """The candidate jobs whose detail :func:`decide_jobs` needs (rules 2 to 4).

    Args:
        lines: The in-doubt job lines.
        witnesses: The lines holding a job id.
        jobs: Every job the listing returned.
        claimed: Job ids that belong to lines (the witnesses' are added).
        margin: The clock margin of rule 3.

    Returns:
        Job ids, each once, in the order of the listing.
    """
    wit = list(witnesses)
    survey = _survey(list(lines), wit, jobs, set(claimed) | {w.job_id for w in wit}, margin)
    wanted = {j for ids in survey.candidates.values() for j in ids}
    return [j for j in survey.jobs if j in wanted]


def _matches(detail: Job, key: JobKey) -> bool:
    if _fields_differ(detail, key, count=False):
        return False
    return tuple(sorted(f.file_id or "" for f in detail.files)) == key.file_ids


def _unreadable(detail: Job | None, listed: Job) -> bool:
    if detail is None:
        return True
    counted = detail.file_count if detail.file_count is not None else listed.file_count
    return not detail.files and bool(counted)


def decide_jobs(
    in_doubt: Iterable[JobLine],
    witnesses: Iterable[JobWitness],
    jobs: Iterable[Job],
    details: Mapping[str, Job | None],
    *,
    complete: bool,
    claimed: Iterable[str] = (),
    margin: timedelta = CLOCK_MARGIN,
) -> JobDecision:
    """Apply the job rule (module docstring) to a job listing and the candidates' details.

    Args:
        in_doubt: The in-doubt job lines.
        witnesses: The lines holding a job id (journal lines, or outcomes).
        jobs: Every job the listing returned.
        details: ``{job id: detail}`` of the candidates read (None: its detail
            could not be read); a candidate missing here is unreadable.
        complete: True when every page of the listing was read.
        claimed: Further job ids that belong to lines (besides the witnesses').
        margin: The clock margin of rule 3.

    Returns:
        The decision; every in-doubt line is in exactly one of its three parts.
    """
    lines = sorted(in_doubt, key=lambda d: (d.submitting_at is None, d.submitting_at, d.line))
    wit = list(witnesses)
    taken = set(claimed) | {w.job_id for w in wit}
    survey = _survey(lines, wit, jobs, taken, margin)
    groups: dict[JobKey, list[JobLine]] = {}
    for line in lines:
        groups.setdefault(line.key, []).append(line)
    # Which groups each candidate matches; one matching several is unreadable (rule 5).
    matching: dict[str, set[JobKey]] = {}
    unreadable: set[str] = set()
    for key, group in groups.items():
        for job_id in {j for g in group for j in survey.candidates[g.line]}:
            detail = details.get(job_id)
            if _unreadable(detail, survey.jobs[job_id]):
                unreadable.add(job_id)
            elif detail is not None and _matches(detail, key):
                matching.setdefault(job_id, set()).add(key)
    unreadable |= {j for j, keys in matching.items() if len(keys) > 1}
    matched: dict[int, str] = {}
    not_created: list[int] = []
    still: list[int] = []
    for key, group in groups.items():
        ids = {j for g in group for j in survey.candidates[g.line]}
        found = sorted(
            (survey.jobs[j] for j in ids if j not in unreadable and key in matching.get(j, ())),
            key=lambda j: (j.create_time is None, j.create_time, j.job_id),
        )
        identical = len({g.identity for g in group}) == 1
        if len(found) > len(group) or (found and not identical):
            still.extend(g.line for g in group)
            continue
        for line, job in zip(group, found, strict=False):
            matched[line.line] = job.job_id
        for line in group[len(found) :]:
            blocked = any(j in unreadable for j in survey.candidates[line.line])
            (not_created if complete and not blocked else still).append(line.line)
    return JobDecision(
        matched=matched,
        not_created=sorted(not_created),
        in_doubt=sorted(still),
        listed=len(survey.jobs),
        read=sum(1 for j in details if j in survey.jobs),
        offset=survey.offset,
        filtered=survey.filtered,
    )
