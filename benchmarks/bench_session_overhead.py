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
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from koodrive_async import KooDriveSession, RetryPolicy
from koodrive_async._protocol import format_x_date, new_trace_id

TOKEN = "bench-token"
USER = "bench-user"


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    """Start the emulator subprocess; return it and the URL it prints."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "koodrive_async.emulator", "--port", "0", "--ledger-limit", "1000"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit(f"the emulator did not print its URL (got {url!r})")
    return proc, url


async def run_workers(
    concurrency: int, total: int, one: Callable[[int], Awaitable[None]]
) -> tuple[float, float]:
    """Run ``total`` calls on ``concurrency`` workers.

    Returns:
        Calls per second, and this (client) process's CPU microseconds per call.
    """
    counter = itertools.count()

    async def worker() -> None:
        while (i := next(counter)) < total:
            await one(i)

    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return total / elapsed, (time.process_time() - cpu) / total * 1e6


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
                async with bare.get(f"{url}/koodrive/ose/v1/task/{tid}", headers=headers) as r:
                    data = json.loads(await r.read())
                    if r.status != 200 or data["taskId"] != tid:
                        raise RuntimeError(f"bad answer {r.status}")

            async def session_get(i: int) -> None:
                tid = task_ids[i % len(task_ids)]
                task = await session.get_task(tid)
                if task.task_id != tid:
                    raise RuntimeError("bad answer")

            # Warm both paths (connections, caches) before measuring.
            await run_workers(args.concurrency, args.concurrency * 8, bare_get)
            await run_workers(args.concurrency, args.concurrency * 8, session_get)
            bare_runs: list[tuple[float, float]] = []
            session_runs: list[tuple[float, float]] = []
            for _ in range(args.rounds):
                bare_runs.append(await run_workers(args.concurrency, args.requests, bare_get))
                session_runs.append(await run_workers(args.concurrency, args.requests, session_get))
    bare_rates = [rate for rate, _ in bare_runs]
    session_rates = [rate for rate, _ in session_runs]
    bare_median = statistics.median(bare_rates)
    session_median = statistics.median(session_rates)
    bare_cpu = statistics.median(cpu for _, cpu in bare_runs)
    session_cpu = statistics.median(cpu for _, cpu in session_runs)
    return {
        "concurrency": args.concurrency,
        "requests_per_run": args.requests,
        "rounds": args.rounds,
        "bare_aiohttp_rps": [round(r, 1) for r in bare_rates],
        "session_rps": [round(r, 1) for r in session_rates],
        "bare_aiohttp_median_rps": round(bare_median, 1),
        "session_median_rps": round(session_median, 1),
        "ratio": round(session_median / bare_median, 3),
        "pairwise_ratio_median": round(
            statistics.median(b / a for a, b in zip(bare_rates, session_rates, strict=True)), 3
        ),
        "bare_aiohttp_client_cpu_us_per_call": round(bare_cpu, 1),
        "session_client_cpu_us_per_call": round(session_cpu, 1),
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
    proc, url = start_emulator()
    try:
        result = asyncio.run(bench(args, url))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
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
