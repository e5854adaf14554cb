"""Helpers shared by the waiting and fan-out tests (constants, ledger queries)."""

from __future__ import annotations

import asyncio

from koodrive_async import FileInfo, JobRequest, JobType, PollPolicy, RetryPolicy
from koodrive_async.emulator import KooDriveEmulator, LedgerEntry

USER = "waiting-user"

#: Poll fast so that no test waits long on real time.
FAST = PollPolicy(initial=0.01, multiplier=1.5, max_interval=0.05, jitter=0.1)

#: The transport gives up at once, so that faults reach the poll scheduler.
NO_RETRY = RetryPolicy(max_attempts=1)


def job(i: int = 0) -> JobRequest:
    """A valid copy job naming file ``f<i>``."""
    return JobRequest(JobType.COPY, "src", "dst", [FileInfo(f"f{i}")])


#: The routes that read one unit of work by a GET on its id.
READ_ROUTES = ("get_task", "get_job")


def gets_for(emu: KooDriveEmulator, task_id: str) -> list[LedgerEntry]:
    """GET task/{id} and GET /{job_id} requests the emulator received for one task or job."""
    return [r for r in emu.requests if r.route in READ_ROUTES and r.path.endswith("/" + task_id)]


def library_tasks() -> list[str]:
    """Names of pending fan-out and poll tasks (the scheduler's idle driver excepted)."""
    names = []
    for task in asyncio.all_tasks():
        name = getattr(task.get_coro(), "__qualname__", "")
        if task.done() or name == "PollScheduler._drive":
            continue
        if name.startswith(("FanOut.", "PollScheduler.", "WaitingMixin.")):
            names.append(name)
    return names
