"""Per-call overhead of KooDriveSession.get_task against a bare aiohttp loop.

Starts the emulator in a subprocess (``python -m koodrive_async.emulator
--port 0``), creates some tasks, then alternates two kinds of run against the
same emulator process, each at the same concurrency:

A. bare aiohttp: one ClientSession, the same headers (Authorization,
   X-User-Id, language, X-Date, X-Traceid), ``GET task/{id}``, ``json.loads``;
B. ``KooDriveSession.get_task`` (builds the call, stamps headers, checks the
   status, decodes into a Task).

It prints the median requests/s of each and the ratio B/A (the target is
>= 0.90 at concurrency 64). ``--json`` prints a JSON object instead.

Usage::

    python benchmarks/bench_session_overhead.py [--requests 4000] [--rounds 5]
        [--concurrency 64] [--tasks 200] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

if not __package__:
    # Run as a file: make the ``benchmarks`` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402
    PREFIX,
    TOKEN,
    USER,
    compare,
    emulator_process,
    interleaved,
)
from koodrive_async import KooDriveSession, RetryPolicy  # noqa: E402
from koodrive_async._call import new_trace_id  # noqa: E402
from koodrive_async._clock import format_x_date  # noqa: E402


async def bench(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Run the interleaved rounds; return the results."""
    async with KooDriveSession(
        url, user_id=USER, token=TOKEN, max_connections=args.concurrency,
        retry=RetryPolicy(max_attempts=1),
    ) as session:  # fmt: skip
        task_ids = [
            await session.create_transfer_task(src_user_id=f"s{i}", dst_user_id=f"d{i}")
            for i in range(args.tasks)
        ]

        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar()
        ) as bare:
            static = {"Authorization": f"Bearer {TOKEN}", "X-User-Id": USER, "language": "en-US"}

            async def bare_get(i: int) -> None:
                headers = {
                    **static,
                    "X-Date": format_x_date(time.time()),
                    "X-Traceid": new_trace_id(),
                }
                tid = task_ids[i % len(task_ids)]
                async with bare.get(f"{url}{PREFIX}/task/{tid}", headers=headers) as r:
                    data = json.loads(await r.read())
                    if r.status != 200 or data["taskId"] != tid:
                        raise RuntimeError(f"bad answer {r.status}")

            async def session_get(i: int) -> None:
                tid = task_ids[i % len(task_ids)]
                task = await session.get_task(tid)
                if task.task_id != tid:
                    raise RuntimeError("bad answer")

            # Warm-up, then A and B alternate (the order flips every round).
            runs = await interleaved(
                {"bare_aiohttp": bare_get, "session": session_get},
                rounds=args.rounds,
                concurrency=args.concurrency,
                requests=args.requests,
            )
    return {
        "concurrency": args.concurrency,
        "requests_per_run": args.requests,
        "rounds": args.rounds,
        **compare(runs, "bare_aiohttp", "session"),
        "target_ratio": 0.90,
    }


def main() -> int:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="calls per run")
    parser.add_argument("--rounds", type=int, default=9, help="runs of each kind (>= 3)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tasks", type=int, default=200, help="tasks created to read")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds must be at least 3")
    with emulator_process("--ledger-limit", "1000") as (_proc, url):
        result = asyncio.run(bench(args, url))
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"get_task at concurrency {result['concurrency']}, {result['requests_per_run']} "
        f"calls per run, {result['rounds']} interleaved runs each (median)\n"
    )
    print("| client | median req/s | client CPU µs/call | runs (req/s) |")
    print("|---|---:|---:|---|")
    print(
        f"| A: bare aiohttp | {result['bare_aiohttp_median_rps']} "
        f"| {result['bare_aiohttp_client_cpu_us_per_call']} "
        f"| {', '.join(map(str, result['bare_aiohttp_rps']))} |"
    )
    print(
        f"| B: KooDriveSession.get_task | {result['session_median_rps']} "
        f"| {result['session_client_cpu_us_per_call']} "
        f"| {', '.join(map(str, result['session_rps']))} |"
    )
    print(
        f"\nratio B/A = {result['ratio']} (median of runs; per-pair median "
        f"{result['pairwise_ratio_median']}; target >= {result['target_ratio']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
