"""Emulated tasks: their timelines, and the store that scopes them to users.

Every unit of work (a task of ``task/create``, a batch job of ``jobs``, a
share task of ``share/tasks``) is one :class:`EmulatedTask` with one timeline.
A job or share task also carries its files (:class:`EmulatedFile`): each one
finishes at its own seeded random time inside the task's EXECUTING window, so
``progress`` rises in uneven steps, and may fail on its own
(``EmulatorConfig.file_failure_rate``), so partial failures happen. The task
vocabulary (``status_at``: NEW, EXECUTING, SUCCESS, FAILED) and the job
vocabulary (``job_status_at``: pending, processing, completed, cancelled) are
two readings of that one timeline.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import random
import threading
import time
from typing import Any

import attrs

from ._clock import EmulatorClock
from ._config import EmulatorConfig

__all__ = [
    "CANCELLED",
    "COMPLETED",
    "EXECUTING",
    "FAILED",
    "FILE_FAILED",
    "FILE_PENDING",
    "FILE_SUCCEEDED",
    "NEW",
    "PENDING",
    "PROCESSING",
    "SUCCESS",
    "EmulatedFile",
    "EmulatedTask",
    "EmulatorState",
    "iso_ms",
]

# Task status values of the pages (plain ints: the emulator is an independent reading).
NEW = 0
EXECUTING = 1
SUCCESS = 2
FAILED = 3

# Job status values of the reference pages (job detail ``status``, share ``taskStatus``).
PENDING = 0
PROCESSING = 1
COMPLETED = 2
CANCELLED = 3

# A file's ``status`` in ``taskInfos`` (the share page's enum; the job page's is NOT SEEN).
FILE_PENDING = 0
FILE_SUCCEEDED = 1
FILE_FAILED = 2

# Routes whose tasks act on files, and the task types that make a new file per
# source file (copy, share save-to): those report a ``newFileId``.
_FILE_ROUTES = frozenset({"create_job", "create_share_task"})
_NEW_FILE_TYPES = frozenset({("create_job", 1), ("create_share_task", 2)})

# Share of a task's duration spent in NEW, and the cap on it, in virtual seconds.
_NEW_SHARE = 0.1
_NEW_CAP = 2.0

# resultCode values a failed task may carry (18xxxxxx; the first is the page's example).
_RESULT_CODES = ("18000205", "18000101", "18000301", "18000404", "18000502")

# Twitter's snowflake epoch: ids minted now are 19 digits long, like the pages' examples.
_SNOWFLAKE_EPOCH_MS = 1288834974657

_TASK_NAMES = {
    ("create_task", 0): "transfer",
    ("create_task", 1): "batch-import",
    ("create_share_task", 1): "share-package",
    ("create_share_task", 2): "share-save",
    ("create_job", 1): "batch-copy",
    ("create_job", 2): "batch-delete",
    ("create_job", 3): "batch-move",
    ("create_job", 4): "batch-restore",
    ("create_job", 5): "cloud-decompress",
    ("create_job", 6): "package-download",
    ("create_job", 7): "clear-recycle-bin",
}


def iso_ms(epoch: float) -> str:
    """Format epoch seconds as ISO 8601 UTC with milliseconds, like ``2024-08-12T07:22:33.000Z``.

    Args:
        epoch: Seconds since the epoch.

    Returns:
        The formatted timestamp.
    """
    whole = math.floor(epoch)
    millis = min(999, int(round((epoch - whole) * 1000)))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


@attrs.frozen
class EmulatedFile:
    """One file of a batch job or share task, and when and how it finishes.

    Args:
        file_id: The source file id of the request.
        src_container_id: The source space id.
        done_at: Virtual time it finishes (inside the task's EXECUTING window).
        failed: Whether it finishes failed.
        new_file_id: The id of the file it makes (copy, save-to) when it succeeds.
    """

    file_id: str
    src_container_id: str
    done_at: float
    failed: bool
    new_file_id: str | None = None


def _file_specs(route: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    # (file id, source space id) per requested file, from a checked body.
    if route == "create_share_task":
        container = str(body.get("containerId") or "")
        return [(str(f), container) for f in body.get("fileIds") or ()]
    info = body.get("taskInfo") or {}
    container = str(info.get("srcContainerId") or "")
    return [
        (item["fileId"], container)
        for item in info.get("fileInfo") or ()
        if isinstance(item, dict) and isinstance(item.get("fileId"), str)
    ]


@attrs.define(eq=False)
class EmulatedTask:
    """One task the emulator created, and its timeline on the virtual clock.

    The task is NEW for the first 10% of ``duration`` (at most 2 s), then
    EXECUTING, and at ``created_at + duration`` SUCCESS, or FAILED with
    ``result_code`` when ``will_fail``. :meth:`EmulatorState.finish` can end it
    earlier.

    Args:
        task_id: 19-digit numeric id.
        user_id: The ``X-User-Id`` that created it (only that user sees it).
        route: Route name that created it (``"create_task"``, ...).
        task_type: ``taskType`` of the request.
        body: The request body, with ``password`` and ``kdstoken`` redacted.
        created_at: Virtual creation time (epoch seconds).
        shown_offset: The server's wall clock minus the virtual clock at its
            creation: its times are shown on the wall clock (see :meth:`shown`).
        duration: Virtual seconds from creation to the terminal state.
        will_fail: Whether it ends FAILED.
        result_code: The 18xxxxxx code it reports if it fails.
        seq: Global creation counter (drives list cursors).
        locale: The request's ``language`` header.
        echo_body: Whether ``initParams`` shows ``body`` (see
            ``EmulatorConfig.echo_init_params``).
        files: The files of a job or share task, in request order.
        cancelled: Whether ``POST cancel`` ended it (at ``forced_at``).
        kdstoken_digest: SHA-256 of the share token it was created with (the
            token itself is never kept), or None.
    """

    task_id: str
    user_id: str
    route: str
    task_type: int
    body: dict[str, Any]
    created_at: float
    duration: float
    will_fail: bool
    result_code: str | None
    seq: int = 0
    locale: str = "en-US"
    forced_status: int | None = None
    forced_at: float | None = None
    echo_body: bool = True
    files: tuple[EmulatedFile, ...] = ()
    cancelled: bool = False
    kdstoken_digest: str | None = attrs.field(default=None, repr=False)
    shown_offset: float = 0.0
    _static: dict[str, Any] | None = attrs.field(default=None, repr=False)
    _done_times: tuple[float, ...] = attrs.field(init=False, default=(), repr=False)

    def __attrs_post_init__(self) -> None:
        self._done_times = tuple(sorted(f.done_at for f in self.files))

    def shown(self, moment: float) -> float:
        """A virtual moment of its timeline as the service shows it, on its wall clock.

        ``createTime`` is when the server's wall clock (the one ``Date`` and
        the X-Date check read) received the create; later moments add the
        virtual seconds since. A sped-up virtual clock would otherwise show
        every later task as created ever further in the future, and a client
        calibrating the listing's times against its own clock (bulk
        reconciliation) would miss its own jobs.

        Args:
            moment: Virtual epoch seconds.

        Returns:
            Epoch seconds on the server's wall clock.
        """
        return moment + self.shown_offset

    @property
    def natural_start(self) -> float:
        """Virtual time the task leaves NEW on its own timeline."""
        return self.created_at + min(self.duration * _NEW_SHARE, _NEW_CAP)

    @property
    def started_at(self) -> float:
        """Virtual time the task leaves NEW (unless forced to finish before)."""
        start = self.created_at + min(self.duration * _NEW_SHARE, _NEW_CAP)
        if self.forced_at is not None:
            return min(start, self.forced_at)
        return start

    @property
    def ended_at(self) -> float:
        """Virtual time the task reaches (or reached) its terminal state."""
        if self.forced_at is not None:
            return self.forced_at
        return self.created_at + self.duration

    def status_at(self, now: float) -> int:
        """Return the status at virtual time ``now``.

        Args:
            now: Virtual epoch seconds.

        Returns:
            0 NEW, 1 EXECUTING, 2 SUCCESS or 3 FAILED.
        """
        if self.forced_status is not None:
            return self.forced_status
        elapsed = now - self.created_at
        if elapsed >= self.duration:
            return FAILED if self.will_fail else SUCCESS
        if elapsed >= min(self.duration * _NEW_SHARE, _NEW_CAP):
            return EXECUTING
        return NEW

    def job_status_at(self, now: float) -> int:
        """Return the status in the job vocabulary at virtual time ``now``.

        Args:
            now: Virtual epoch seconds.

        Returns:
            0 pending, 1 processing, 2 completed or 3 cancelled.
        """
        if self.cancelled:
            return CANCELLED
        if self.forced_status is not None:
            return COMPLETED
        elapsed = now - self.created_at
        if elapsed >= self.duration:
            return COMPLETED
        if elapsed >= min(self.duration * _NEW_SHARE, _NEW_CAP):
            return PROCESSING
        return PENDING

    def began_at(self, now: float) -> float | None:
        """Return when the job began processing, or None if it has not (yet).

        Args:
            now: Virtual epoch seconds.

        Returns:
            Virtual epoch seconds, or None.
        """
        if self.cancelled:
            assert self.forced_at is not None
            return self.natural_start if self.natural_start <= self.forced_at else None
        if self.forced_status is not None:
            return self.started_at
        return self.natural_start if now >= self.natural_start else None

    def files_done_at(self, now: float) -> int:
        """Return how many files have finished (succeeded or failed) at ``now``.

        Args:
            now: Virtual epoch seconds.

        Returns:
            A count; a cancelled task keeps the count it had when cancelled.
        """
        if self.cancelled:
            assert self.forced_at is not None
            return bisect.bisect_right(self._done_times, self.forced_at)
        if self.forced_status is not None:
            return len(self.files)
        return bisect.bisect_right(self._done_times, now)

    def file_status_at(self, file: EmulatedFile, now: float) -> int:
        """Return one file's status at ``now``.

        A forced finish decides every file (SUCCESS: all succeeded, FAILED: all
        failed); a cancel leaves the files it caught unfinished pending.

        Args:
            file: One of :attr:`files`.
            now: Virtual epoch seconds.

        Returns:
            0 pending, 1 succeeded or 2 failed.
        """
        if self.forced_status is not None and not self.cancelled:
            return FILE_FAILED if self.forced_status == FAILED else FILE_SUCCEEDED
        limit = self.forced_at if self.cancelled else now
        assert limit is not None
        if file.done_at > limit:
            return FILE_PENDING
        return FILE_FAILED if file.failed else FILE_SUCCEEDED

    def _static_fields(self) -> dict[str, Any]:
        # Fields that never change, built once: GET task/{id} is the hot path.
        if self._static is None:
            self._static = {
                "taskId": self.task_id,
                "taskName": f"{_TASK_NAMES.get((self.route, self.task_type), 'task')}-"
                f"{self.task_id[-6:]}",
                "taskType": self.task_type,
                "tenantId": hashlib.md5(self.user_id.encode(), usedforsecurity=False).hexdigest(),
                "userId": self.user_id,
                "initParams": json.dumps(self.body, separators=(",", ":"), sort_keys=True),
                "locale": self.locale,
                "createTime": iso_ms(self.shown(self.created_at)),
            }
            if not self.echo_body:
                del self._static["initParams"]
        return self._static

    @property
    def name(self) -> str:
        """The ``taskName`` it is shown with."""
        return str(self._static_fields()["taskName"])

    @property
    def tenant_id(self) -> str:
        """The ``tenantId`` it is shown with."""
        return str(self._static_fields()["tenantId"])

    def to_json(self, now: float) -> dict[str, Any]:
        """Return the task as ``GET task/{id}`` and ``task/list`` show it at virtual time ``now``.

        Args:
            now: Virtual epoch seconds.

        Returns:
            A JSON-ready dict (camelCase keys); ``startTime``, ``endTime`` and
            ``resultCode`` appear only once reached / only on FAILED.
        """
        out = dict(self._static_fields())
        status = self.status_at(now)
        out["status"] = status
        if status != NEW:
            out["startTime"] = iso_ms(self.shown(self.started_at))
        if status in (SUCCESS, FAILED):
            out["endTime"] = iso_ms(self.shown(self.ended_at))
        if status == FAILED:
            out["resultCode"] = self.result_code
        return out


class EmulatorState:
    """Every task the emulator holds, in creation order and per user.

    Args:
        config: The emulator configuration (durations, failure rate, seed).
        clock: The virtual clock that drives timelines.
    """

    def __init__(self, config: EmulatorConfig, clock: EmulatorClock) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self.clear()

    def reconfigure(self, config: EmulatorConfig) -> None:
        """Use ``config`` for the tasks created from now on (the tasks held keep their fate)."""
        self._config = config

    def clear(self) -> None:
        """Forget every task and re-seed the outcome RNG."""
        self._rng = random.Random(self._config.seed)
        self._by_id: dict[str, EmulatedTask] = {}
        self._ordered: list[EmulatedTask] = []
        self._by_user: dict[str, list[EmulatedTask]] = {}
        self._jobs_by_user: dict[str, list[EmulatedTask]] = {}
        self._seq = 0
        self._last_id = 0

    def _mint_id(self) -> str:
        with self._lock:
            candidate = (int(time.time() * 1000) - _SNOWFLAKE_EPOCH_MS) << 22
            self._last_id = max(candidate, self._last_id + 1)
            return str(self._last_id)

    def create(
        self,
        *,
        user_id: str,
        route: str,
        task_type: int,
        body: dict[str, Any],
        locale: str = "en-US",
        kdstoken_digest: str | None = None,
    ) -> EmulatedTask:
        """Create a task now (virtual time), deciding its duration and outcome.

        A job or share task also gets its files, each with its own finish time
        and outcome.

        Args:
            user_id: Owner (``X-User-Id``).
            route: Route name that creates it.
            task_type: ``taskType`` of the request.
            body: Redacted request body, kept for inspection.
            locale: The request's language.
            kdstoken_digest: SHA-256 hex of the share token, if one was sent.

        Returns:
            The new task.
        """
        duration_setting = self._config.task_duration
        # Always draw the same number of values per task so outcomes depend on the
        # seed and the creation order only.
        if callable(duration_setting):
            drawn = duration_setting(self._rng)
        else:
            drawn = duration_setting
        duration = float(drawn)
        if not math.isfinite(duration) or duration < 0:
            duration = 0.0
        will_fail = self._rng.random() < self._config.failure_rate
        code = self._rng.choice(_RESULT_CODES)
        self._seq += 1
        now = self._clock.now()
        files: tuple[EmulatedFile, ...] = ()
        if route in _FILE_ROUTES:
            files = self._draw_files(route, task_type, body, now, duration, will_fail)
            will_fail = will_fail or any(f.failed for f in files)
        task = EmulatedTask(
            task_id=self._mint_id(),
            user_id=user_id,
            route=route,
            task_type=task_type,
            body=body,
            created_at=now,
            shown_offset=self._clock.wall() - now,
            duration=duration,
            will_fail=will_fail,
            result_code=code,
            seq=self._seq,
            locale=locale,
            echo_body=self._config.echo_init_params,
            files=files,
            kdstoken_digest=kdstoken_digest,
        )
        self._by_id[task.task_id] = task
        self._ordered.append(task)
        self._by_user.setdefault(user_id, []).append(task)
        if route == "create_job":
            self._jobs_by_user.setdefault(user_id, []).append(task)
        return task

    def _draw_files(
        self,
        route: str,
        task_type: int,
        body: dict[str, Any],
        created_at: float,
        duration: float,
        all_fail: bool,
    ) -> tuple[EmulatedFile, ...]:
        # A generator of its own per task (seed and creation counter), so file
        # draws never shift the outcomes of the tasks created after this one.
        rng = random.Random(f"{self._config.seed}:{self._seq}")
        specs = _file_specs(route, body)
        start = created_at + min(duration * _NEW_SHARE, _NEW_CAP)
        end = created_at + duration
        draws = [rng.random() for _ in specs]
        top = max(draws, default=1.0) or 1.0
        rate = self._config.file_failure_rate
        makes_new = (route, task_type) in _NEW_FILE_TYPES
        files = []
        for (file_id, container), u in zip(specs, draws, strict=True):
            # The last file ends exactly at the task's end: the task completes with it.
            done_at = end if u == top else start + (end - start) * (u / top)
            failed = all_fail or rng.random() < rate
            new_id = f"F{rng.getrandbits(128):032x}" if makes_new and not failed else None
            files.append(EmulatedFile(file_id, container, done_at, failed, new_id))
        return tuple(files)

    def tasks(self) -> list[EmulatedTask]:
        """Return every task of every user, in creation order.

        Returns:
            A new list.
        """
        return list(self._ordered)

    def tasks_for(self, user_id: str) -> list[EmulatedTask]:
        """Return one user's tasks, in creation order.

        Args:
            user_id: The ``X-User-Id``.

        Returns:
            A new list (empty for an unknown user).
        """
        return list(self._by_user.get(user_id, ()))

    def tasks_after(self, user_id: str, after_seq: int) -> list[EmulatedTask]:
        """Return a user's tasks created after creation counter ``after_seq``.

        Args:
            user_id: The ``X-User-Id``.
            after_seq: Creation counter of the last task already listed.

        Returns:
            A new list, in creation order.
        """
        mine = self._by_user.get(user_id)
        if not mine:
            return []
        start = bisect.bisect_right(mine, after_seq, key=lambda t: t.seq)
        return mine[start:]

    def jobs_for(self, user_id: str) -> list[EmulatedTask]:
        """Return one user's batch jobs (``POST jobs``), in creation order.

        Args:
            user_id: The ``X-User-Id``.

        Returns:
            The store's own list (do not change it); empty for an unknown user.
        """
        return self._jobs_by_user.get(user_id, [])

    def cancel(self, task: EmulatedTask) -> bool:
        """Cancel a task now (virtual time) if it is pending or processing.

        Files already finished keep their results; the rest stay pending. The
        task reads FAILED in the task vocabulary from then on.

        Args:
            task: The task.

        Returns:
            True if it was cancelled now, False if it was already over.
        """
        now = self._clock.now()
        if task.job_status_at(now) not in (PENDING, PROCESSING):
            return False
        task.cancelled = True
        task.forced_status = FAILED
        task.forced_at = now
        return True

    def get(self, task_id: str) -> EmulatedTask | None:
        """Return a task by id, whoever owns it.

        Args:
            task_id: The task id.

        Returns:
            The task, or None.
        """
        return self._by_id.get(task_id)

    def finish(
        self, task_id: str, failed: bool = False, result_code: str | None = None
    ) -> EmulatedTask:
        """Force a task into its terminal state now (virtual time).

        Every file of a job or share task then ends the same way; a cancelled
        task is left as it is.

        Args:
            task_id: The task id.
            failed: End FAILED instead of SUCCESS.
            result_code: resultCode for a failed task (default: the one drawn at creation).

        Returns:
            The task.

        Raises:
            KeyError: No task has this id.
        """
        task = self._by_id.get(task_id)
        if task is None:
            raise KeyError(task_id)
        if task.cancelled:
            return task  # already over, and cancelled it stays
        task.forced_status = FAILED if failed else SUCCESS
        # A task already over keeps its real end time.
        task.forced_at = min(self._clock.now(), task.ended_at)
        if failed and result_code is not None:
            task.result_code = str(result_code)
        return task

    def __len__(self) -> int:
        return len(self._ordered)
