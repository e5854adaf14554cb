"""``run --log-format json``: one JSON log object per event on stderr.

Owns :class:`JsonLogReporter`, a :class:`~koodrive_async.bulk.Progress` that
writes each event (the run's start, every finished line, every message, a
stop notice, the end, the summary) as one JSON object per line, with a UTC
``time``, a ``level`` and an ``event`` name, for log shippers (as rclone's
``--use-json-log``). Every object is masked.

Must never import: ``argparse``, ``rich``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import IO, Any

from ..bulk import LineRecord, RunStats, Stop
from ..bulk._mask import mask
from ..bulk._report import row_from_record
from ._progress import line_json, plan_json, stop_text

__all__ = ["JsonLogReporter"]


class JsonLogReporter:
    """Every event of a run as one JSON object per line on ``err``.

    Args:
        err: Where the log goes (stderr).
        lines: Where ``--json`` prints one object per finished line, or None.
    """

    #: A line's event holds its attempts and earlier task ids: the run reads them.
    wants_history = True

    def __init__(self, err: IO[str], lines: IO[str] | None = None) -> None:
        self._err = err
        self._lines = lines
        self._stats: RunStats | None = None
        self._plan_logged: object = None

    def log(self, event: str, level: str = "info", **fields: Any) -> None:
        """Write one log object (masked) and flush."""
        record = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": level,
            "event": event,
            **fields,
        }
        self._err.write(json.dumps(mask(record), ensure_ascii=False, default=str) + "\n")
        self._err.flush()

    def start(self, stats: RunStats) -> None:
        """Log the start and the number of lines to bring to an end (and the plan's, shared)."""
        self._stats = stats
        self._plan_logged = stats.plan
        self.log("start", total=stats.total, **self._plan_fields(stats))

    def _plan_fields(self, stats: RunStats) -> dict[str, Any]:
        if stats.plan is None:
            return {}
        return {"worker": stats.worker, "plan": plan_json(stats.plan)}

    def update(self) -> None:
        """Log a ``progress`` event each time the whole plan's counts were read again.

        Only with a journal many workers share (every few seconds); other
        counters are logged with each line, not on every change.
        """
        stats = self._stats
        if stats is None or stats.plan is None or stats.plan is self._plan_logged:
            return
        self._plan_logged = stats.plan
        self.log(
            "progress",
            finished=stats.finished,
            total=stats.total,
            submitted=stats.submitted,
            in_flight=stats.in_flight,
            **self._plan_fields(stats),
        )

    def line_done(self, record: LineRecord) -> None:
        """Log the finished line (and print it on stdout for ``--json``)."""
        row = row_from_record(record, history=record.history).as_dict()
        for key in ("submitting_at", "submitted_at", "finished_at"):
            row.pop(key)
        level = "info" if row["verdict"] == "succeeded" else "warning"
        self.log("line", level, **row)
        if self._lines is not None:
            self._lines.write(line_json(record) + "\n")
            self._lines.flush()

    def message(self, text: str) -> None:
        """Log a message."""
        self.log("message", message=text)

    def stopping(self, notice: Stop) -> None:
        """Log why the run stopped submitting."""
        self.log("stopping", "error", reason=notice.reason.value, message=stop_text(notice))

    def stop(self) -> None:
        """Log the end of the rounds, with the counters."""
        stats = self._stats
        if stats is None:
            self.log("stop")
            return
        self.log(
            "stop",
            submitted=stats.submitted,
            succeeded=stats.succeeded,
            failed=stats.failed,
            in_doubt=stats.in_doubt,
            elapsed=round(stats.elapsed, 3),
            **self._plan_fields(stats),
        )
