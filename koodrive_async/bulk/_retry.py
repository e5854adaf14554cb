"""Retrying what failed (pure): which lines ``--retry-failed`` sends again, and what.

Owns the three decisions of a retry, apart from the journal backends and the
runner so that each can be tested on a hand-made :class:`~._journal.LineRecord`:

* :func:`retryable`: the service itself reported the line's task FAILED (a
  failed task, a job or share task that completed with failed files or
  failed outright). Sending it again is safe: the service said what it did
  not do. Never a line in doubt (it may exist), a refused create (no task:
  that is ``--retry-rejected``'s), a cancelled job (someone stopped it on
  purpose), or a task that vanished (404 at its detail: nothing says it did
  not run).
* :func:`next_files`: after a *partial* failure only the failed files go
  again; after anything else, the same files as the failed attempt (the whole
  line, or the subset an earlier retry sent): a file that succeeded is never
  sent twice.
* :func:`subset_request`: the line's request cut to those files, a new job
  (or share task) of the same kind with every other field unchanged.

Must never import: ``cli/``, ``rich``, ``argparse``, the journal backends.
"""

from __future__ import annotations

import attrs

from .._models import JobRequest, Request, ShareTaskRequest
from ._journal import LineRecord, Outcome, State

__all__ = ["UNKNOWN_FILE", "cut_request", "next_files", "retryable", "subset_request"]

#: The id recorded for a failed file the service named without an id: such a
#: failure cannot be cut to its files.
UNKNOWN_FILE = "?"

_FAILED_OUTCOMES = frozenset({Outcome.PARTIALLY_FAILED, Outcome.ALL_FAILED, Outcome.FAILED})


def retryable(record: LineRecord) -> bool:
    """True when ``--retry-failed`` sends ``record``'s line again (see the module docstring)."""
    if record.state != State.FAILED or record.task_id is None or record.kind is None:
        return False
    if record.outcome is not None:
        if record.outcome == Outcome.PARTIALLY_FAILED and record.retry_files:
            # A retry's partial failure naming none of the files it sent:
            # sending its files again would repeat files that succeeded.
            named = set(record.failed_files)
            if UNKNOWN_FILE not in named and not named & set(record.retry_files):
                return False
        return record.outcome in _FAILED_OUTCOMES
    # A transfer or import (or a job finished by a release that recorded no
    # outcome): FAILED with a resultCode, or FAILED without one ("TaskFailed").
    return record.result_code is not None or record.error_type == "TaskFailed"


def next_files(record: LineRecord) -> tuple[str, ...]:
    """The files a retry of ``record``'s line sends; empty: the whole line.

    A partial failure whose failed files are all named: those files (within
    what the failed attempt sent). Otherwise what the failed attempt sent.
    """
    failed = record.failed_files
    if record.outcome != Outcome.PARTIALLY_FAILED or not failed or UNKNOWN_FILE in failed:
        return record.retry_files
    if record.retry_files:
        sent = set(record.retry_files)
        cut = tuple(f for f in failed if f in sent)
        return cut or record.retry_files  # (not retryable then: see retryable())
    return tuple(dict.fromkeys(failed))


def subset_request(request: Request, files: tuple[str, ...]) -> Request:
    """``request`` cut to ``files``: a job's ``fileInfo``, a share task's ``fileIds``.

    Every other field (type, action, containers, password, share folder,
    paths) is kept. Empty ``files``, a request without files, or files none
    of which the request holds (the service named ids it was not sent): the
    request unchanged.
    """
    if not files:
        return request
    wanted = set(files)
    if isinstance(request, JobRequest):
        kept = tuple(f for f in request.files if f.file_id in wanted)
        return attrs.evolve(request, files=kept) if kept else request
    if isinstance(request, ShareTaskRequest):
        ids = tuple(i for i in request.file_ids if i in wanted)
        return attrs.evolve(request, file_ids=ids) if ids else request
    return request


def cut_request(request: Request, files: tuple[str, ...]) -> Request | None:
    """What a retry sends: ``request`` cut to ``files``, or None when it cannot be cut.

    None when ``files`` are given but the request holds none of them (the
    service named failed files the line never sent): sending the whole line
    would repeat the files that succeeded, so the retry must not be sent.
    """
    if not files:
        return request
    cut = subset_request(request, files)
    if cut is request and isinstance(request, JobRequest | ShareTaskRequest):
        return None
    return cut
