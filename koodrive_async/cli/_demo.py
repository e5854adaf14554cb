"""``koodrive-async demo``: a realistic bulk run on the embedded emulator.

The demo starts the emulator on loopback (tasks take a fraction of a second
to ~1.5 s; a few percent fail with an 18xxxxxx resultCode), writes a plan
mixing copies, moves, recycle-bin deletes, a restore, a recycle-bin
clearance, a user data transfer and a share package download, and runs it
through :func:`~koodrive_async.cli._run.run_command`, exactly as
``koodrive-async run`` does (journal, progress bar and summary included).
Failed tasks are part of the show: the demo exits 0 whenever the run itself
completed.

Must never import: ``argparse`` (``_app.py`` passes the options).
"""

from __future__ import annotations

import json
import random
import string
import sys
import tempfile
from pathlib import Path
from typing import IO

from .._build import request_kind
from .._enums import JobAction, JobType, ShareTaskType
from .._models import (
    FileInfo,
    JobRequest,
    Request,
    ShareTaskRequest,
    TransferTaskRequest,
)
from .._policies import PollPolicy
from ..bulk._bodies import plan_body
from ._codes import EXIT_FAILED, EXIT_OK
from ._connect import Connection
from ._run import RunCommand, run_command

__all__ = ["demo_requests", "run_demo", "write_plan"]

_ALPHABET = string.ascii_letters + string.digits + "_-"


def _file_id(rng: random.Random) -> str:
    return "F" + "".join(rng.choice(_ALPHABET) for _ in range(32))


def _container_id(rng: random.Random) -> str:
    return "IAAB" + "".join(rng.choice(_ALPHABET) for _ in range(40))


def demo_requests(count: int, rng: random.Random) -> list[Request]:
    """Build a realistic mix of ``count`` requests.

    About 45% copies, 25% moves, 20% recycle-bin deletes (with the file
    path), the rest restores and recycle-bin clearances; one user data
    transfer and one share package download when ``count`` allows.

    Args:
        count: How many requests (>= 1).
        rng: The random source.

    Returns:
        The requests.
    """
    containers = [_container_id(rng) for _ in range(6)]
    folders = [_file_id(rng) for _ in range(12)]
    requests: list[Request] = []
    if count >= 2:
        requests.append(
            TransferTaskRequest(
                src_user_id=str(rng.randrange(10**18, 10**19)),
                dst_user_id=str(rng.randrange(10**18, 10**19)),
            )
        )
    if count >= 3:
        requests.append(
            ShareTaskRequest(
                ShareTaskType.PACKAGE,
                container_id=rng.choice(containers),
                file_ids=[_file_id(rng) for _ in range(rng.randint(2, 40))],
                share_id=str(rng.randrange(10**18, 10**19)),
                zip_name="handover.zip",
            )
        )
    while len(requests) < count:
        src, dst = rng.choice(containers), rng.choice(containers)
        files = [FileInfo(_file_id(rng)) for _ in range(rng.randint(1, 5))]
        pick = rng.random()
        if pick < 0.45:
            requests.append(
                JobRequest(
                    JobType.COPY,
                    src_container_id=src,
                    dst_container_id=dst,
                    files=files,
                    action_type=JobAction.COPY,
                    new_file_path=rng.choice(folders),
                )
            )
        elif pick < 0.70:
            requests.append(
                JobRequest(
                    JobType.MOVE,
                    src_container_id=src,
                    dst_container_id=src,
                    files=files,
                    action_type=JobAction.MOVE,
                    new_file_path=rng.choice(folders),
                )
            )
        elif pick < 0.90:
            folder = rng.choice(folders)
            requests.append(
                JobRequest(
                    JobType.DELETE,
                    src_container_id=src,
                    dst_container_id=src,
                    files=[FileInfo(f.file_id, file_path=f"/{folder}/{f.file_id}") for f in files],
                    action_type=JobAction.RECYCLE,
                )
            )
        elif pick < 0.97:
            requests.append(
                JobRequest(JobType.RESTORE, src_container_id=src, dst_container_id=src, files=files)
            )
        else:
            requests.append(
                JobRequest(
                    JobType.CLEAR_RECYCLE_BIN,
                    src_container_id=src,
                    dst_container_id=src,
                    action_type=JobAction.CLEAR_RECYCLE_BIN,
                )
            )
    rng.shuffle(requests)
    return requests


def write_plan(path: Path, requests: list[Request]) -> None:
    """Write requests as a JSON Lines plan (``kind`` plus the API's own body).

    Args:
        path: The plan file to write.
        requests: The requests, one per line.
    """
    with path.open("w", encoding="utf-8") as f:
        for request in requests:
            f.write(json.dumps({"kind": request_kind(request), **plan_body(request)}) + "\n")


def _duration(rng: random.Random) -> float:
    # Most tasks are quick, a tail runs up to ~1.5 s, like a real batch.
    return min(1.5, 0.15 + rng.expovariate(1 / 0.45))


async def run_demo(
    *,
    jobs: int = 1000,
    concurrency: int = 64,
    seed: int | None = None,
    failure_rate: float = 0.03,
    keep: Path | None = None,
    progress: str = "auto",
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """Run the demo.

    Args:
        jobs: Plan lines.
        concurrency: Tasks in flight.
        seed: Seed of the plan and of the emulator (None: random).
        failure_rate: Share of the tasks the emulator fails.
        keep: Write the plan and the journal to this directory (kept);
            default: a temporary directory, removed at the end.
        progress: ``auto``, ``plain``, ``rich`` or ``json``.
        out: Standard output (default ``sys.stdout``).
        err: Standard error (default ``sys.stderr``).

    Returns:
        0 when the run completed (failed tasks included); the run's exit code
        otherwise (3 in doubt, 130 interrupted).
    """
    from ..emulator import EmulatorConfig, KooDriveEmulator

    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    seed = seed if seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    config = EmulatorConfig(task_duration=_duration, failure_rate=failure_rate, seed=seed)
    with tempfile.TemporaryDirectory(prefix="koodrive-demo-") as tmp:
        folder = keep if keep is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        plan = folder / "demo-plan.jsonl"
        journal = folder / "demo-plan.journal.sqlite"
        if journal.exists():
            journal.unlink()
        write_plan(plan, demo_requests(jobs, rng))
        async with KooDriveEmulator(config, host="127.0.0.1", port=0) as emu:
            info = err if progress == "json" else out
            info.write(
                f"KooDrive emulator on {emu.url} (seed {seed}; about {failure_rate:.0%} of the "
                f"tasks fail on purpose)\nplan: {jobs} lines in {plan}\n"
            )
            info.flush()
            connection = Connection(
                base_url=emu.url,
                user_id="1397687227244555008",
                token="demo-token",
                agent_name="koodrive-async-demo",
            )
            command = RunCommand(
                plan=plan,
                journal=journal,
                concurrency=concurrency,
                poll=PollPolicy(initial=0.2, max_interval=2.0),
                output=progress,
            )
            code = await run_command(command, connection, out=out, err=err)
            if keep is None:
                # The summary names the journal; say it goes away with the temp dir.
                info.write("(the plan and journal above are removed now; --keep DIR keeps them)\n")
                info.flush()
    return EXIT_OK if code in (EXIT_OK, EXIT_FAILED) else code
