"""Client-side instructions per ``get_task``: KooDriveSession against a bare aiohttp loop.

A figure that does not move with the machine's load: the emulator runs in a
process of its own (not measured); the client runs under ``valgrind
--tool=callgrind`` with collection off from the start and toggled only around
the measured loop. That loop is called through ``sys.call_tracing``, a C
function nothing else on the path calls, so ``--toggle-collect=sys_call_tracing``
counts exactly its instructions (and those of everything it calls) and none of
the start-up, imports, warm-up or shutdown. With no trace function set,
``sys.call_tracing`` runs the callable as a plain call.

One child (Python's start-up under callgrind costs more than the loops)
warms both clients up (connection open, caches filled), then runs
``--calls`` sequential calls of each (concurrency 1, so no scheduling noise);
``--dump-after`` writes one profile per side:

A. bare aiohttp: one ClientSession, the same headers (Authorization,
   X-User-Id, language, X-Date, X-Traceid), ``GET task/{id}``, ``json.loads``;
B. ``KooDriveSession.get_task`` (build, stamp, send, check, decode into a Task).

It prints the instructions per call of each and ``instruction_ratio`` (B ÷ A;
the target is <= 1.10). ``--json`` prints a JSON object instead. Without
valgrind on the machine the figures are null with a note.

Usage::

    python benchmarks/bench_instructions.py [--calls 2000] [--warmup 200] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

if not __package__:
    # Run as a file: make the ``benchmarks`` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import PREFIX, TOKEN, USER, emulator_process  # noqa: E402
from koodrive_async import KooDriveSession, RetryPolicy  # noqa: E402
from koodrive_async._call import new_trace_id  # noqa: E402
from koodrive_async._clock import format_x_date  # noqa: E402

#: The C function the measured loop runs inside (see the module docstring).
MARKER = "sys_call_tracing"
TARGET_RATIO = 1.10


# --------------------------------------------------------------------------- child


async def _bare(url: str, task_ids: list[str]) -> tuple[Callable[[int], Awaitable[None]], Any]:
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1), cookie_jar=aiohttp.DummyCookieJar()
    )
    static = {"Authorization": f"Bearer {TOKEN}", "X-User-Id": USER, "language": "en-US"}

    async def call(i: int) -> None:
        headers = {**static, "X-Date": format_x_date(time.time()), "X-Traceid": new_trace_id()}
        tid = task_ids[i % len(task_ids)]
        async with session.get(f"{url}{PREFIX}/task/{tid}", headers=headers) as r:
            data = json.loads(await r.read())
            if r.status != 200 or data["taskId"] != tid:
                raise RuntimeError(f"bad answer {r.status}")

    return call, session.close


async def _session(url: str, task_ids: list[str]) -> tuple[Callable[[int], Awaitable[None]], Any]:
    session = KooDriveSession(
        url, user_id=USER, token=TOKEN, max_connections=1, retry=RetryPolicy(max_attempts=1)
    )
    await session.__aenter__()

    async def call(i: int) -> None:
        tid = task_ids[i % len(task_ids)]
        task = await session.get_task(tid)
        if task.task_id != tid:
            raise RuntimeError("bad answer")

    async def close() -> None:
        await session.__aexit__(None, None, None)

    return call, close


async def _loop(call: Callable[[int], Awaitable[None]], calls: int) -> None:
    for i in range(calls):
        await call(i)


def child(url: str, task_ids: list[str], calls: int, warmup: int) -> None:
    """Warm both clients up, then run each one's measured loop inside :data:`MARKER`.

    Args:
        url: The emulator's base URL.
        task_ids: Tasks to read, in turn.
        calls: Calls in each measured loop.
        warmup: Calls before them, per client.
    """
    loop = asyncio.new_event_loop()
    clients = [loop.run_until_complete(make(url, task_ids)) for make in (_bare, _session)]
    for call, _ in clients:
        loop.run_until_complete(_loop(call, warmup))
    # Callgrind dumps after each marker call: one file per side, in this order.
    for call, _ in clients:
        sys.call_tracing(loop.run_until_complete, (_loop(call, calls),))
    for _, close in clients:
        loop.run_until_complete(close())
    loop.close()


# --------------------------------------------------------------------------- parent


def read_total(path: Path) -> int:
    """The instruction total (``Ir``) of a callgrind output file.

    Args:
        path: The file.

    Returns:
        The instructions collected.

    Raises:
        RuntimeError: The file has no totals line.
    """
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def measure(url: str, task_ids: list[str], args: argparse.Namespace) -> tuple[int, int]:
    """Run the child under callgrind; return the instructions of its two measured loops.

    One child measures both sides: starting Python and importing aiohttp
    under callgrind costs more than the loops, so it is paid once.

    Returns:
        (bare aiohttp instructions, session instructions).
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=no",
            f"--toggle-collect={MARKER}",
            f"--dump-after={MARKER}",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            "--url",
            url,
            "--calls",
            str(args.calls),
            "--warmup",
            str(args.warmup),
            "--task-ids",
            ",".join(task_ids),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            raise RuntimeError(f"the callgrind child failed ({done.returncode}): {tail}")
        dumps = [Path(f"{out}.{n}") for n in (1, 2)]
        if args.keep:
            for side, dump in zip(("bare", "session"), dumps, strict=True):
                shutil.copy(dump, Path(args.keep) / f"callgrind.{side}.out")
        bare, session = (read_total(dump) for dump in dumps)
        return bare, session


async def _create_tasks(url: str, count: int) -> list[str]:
    async with KooDriveSession(url, user_id=USER, token=TOKEN) as session:
        return [
            await session.create_transfer_task(src_user_id=f"s{i}", dst_user_id=f"d{i}")
            for i in range(count)
        ]


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Start the emulator, run both children; return the figures."""
    result: dict[str, Any] = {
        "calls": args.calls,
        "warmup": args.warmup,
        "concurrency": 1,
        "target_ratio": TARGET_RATIO,
        "bare_aiohttp_instructions_per_call": None,
        "session_instructions_per_call": None,
        "instruction_ratio": None,
    }
    if shutil.which("valgrind") is None:
        result["note"] = "valgrind is not installed: no instruction counts"
        return result
    with emulator_process("--ledger-limit", "1000") as (_proc, url):
        task_ids = asyncio.run(_create_tasks(url, 20))
        bare, session = measure(url, task_ids, args)
    result.update(
        bare_aiohttp_instructions_per_call=round(bare / args.calls),
        session_instructions_per_call=round(session / args.calls),
        instruction_ratio=round(session / bare, 4),
    )
    return result


def main() -> int:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per side")
    parser.add_argument("--warmup", type=int, default=200, help="calls before measuring")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.add_argument("--keep", metavar="DIR", help="copy the callgrind files into DIR")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--task-ids", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.calls < 1 or args.warmup < 1:
        parser.error("--calls and --warmup must be at least 1")
    if args.child:
        child(args.url, args.task_ids.split(","), args.calls, args.warmup)
        return 0
    result = bench(args)
    if args.json:
        print(json.dumps(result))
        return 0
    if result["instruction_ratio"] is None:
        print(result["note"])
        return 0
    print(f"get_task, {result['calls']} sequential calls per side, under callgrind\n")
    print("| client | instructions per call |")
    print("|---|---:|")
    print(f"| A: bare aiohttp | {result['bare_aiohttp_instructions_per_call']:,} |")
    print(f"| B: KooDriveSession.get_task | {result['session_instructions_per_call']:,} |")
    print(f"\ninstruction_ratio B/A = {result['instruction_ratio']} (target <= {TARGET_RATIO})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
