"""How many ``GET task/{id}`` a second the emulator serves.

The emulator runs in its own process (``python -m koodrive_async.emulator
--port 0``), as it would for an out-of-process test run; this script creates a
few tasks, then hammers ``GET task/{id}`` at a fixed concurrency with a bare
aiohttp client for a few seconds, ``--rounds`` times in a row, and prints the
medians as a markdown table (or JSON with ``--json``). It is a measurement,
not a test: nothing here asserts speed.

Usage::

    python benchmarks/bench_emulator.py [--seconds 5] [--concurrency 64] [--tasks 50]
        [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

if not __package__:
    # Run as a file: make the ``benchmarks`` package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import PREFIX, cpu_seconds, emulator_process  # noqa: E402


def _headers() -> dict[str, str]:
    return {
        "Authorization": "Bearer+bench-token",
        "X-User-Id": "bench-user",
        "X-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
    }


async def run(
    url: str,
    seconds: float,
    concurrency: int,
    n_tasks: int,
    server_pid: int | None = None,
    rounds: int = 1,
) -> dict[str, Any]:
    """Create tasks, then measure GET task/{id} throughput and latency.

    Args:
        url: Emulator base URL.
        seconds: How long each round measures.
        concurrency: Requests in flight.
        n_tasks: Tasks to create first (the GETs cycle over them).
        server_pid: The emulator's process id, to read its CPU time (optional).
        rounds: Measurements, one after the other; the figures are their medians.

    Returns:
        The measured figures.
    """
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        ids = []
        for i in range(n_tasks):
            body = {"taskType": 0, "srcUserId": f"s{i}", "dstUserId": f"d{i}"}
            async with http.post(f"{url}{PREFIX}/task/create", json=body, headers=_headers()) as r:
                r.raise_for_status()
                ids.append((await r.json())["taskId"])
        latencies: list[float] = []
        errors = 0
        done = 0
        stop_at = 0.0

        async def worker(offset: int) -> None:
            nonlocal errors, done
            i = offset
            headers = _headers()
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                async with http.get(
                    f"{url}{PREFIX}/task/{ids[i % len(ids)]}", headers=headers
                ) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - t0)
                done += 1
                i += 1

        # Warm up connections, then measure.
        stop_at = time.perf_counter() + 0.5
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        total_errors = total_done = 0
        rates: list[float] = []
        p50s: list[float] = []
        p99s: list[float] = []
        elapsed = 0.0
        cpu_before = None if server_pid is None else cpu_seconds(server_pid)
        for _ in range(rounds):
            latencies.clear()
            done = errors = 0
            start = time.perf_counter()
            stop_at = start + seconds
            await asyncio.gather(*(worker(k) for k in range(concurrency)))
            took = time.perf_counter() - start
            elapsed += took
            total_done += done
            total_errors += errors
            rates.append(done / took)
            latencies.sort()
            p50s.append(statistics.median(latencies))
            p99s.append(latencies[max(0, int(len(latencies) * 0.99) - 1)])
        cpu_after = None if server_pid is None else cpu_seconds(server_pid)
    extra: dict[str, Any] = {}
    if rounds > 1:
        extra["requests_per_second_runs"] = [round(r, 1) for r in rates]
    if cpu_before is not None and cpu_after is not None and total_done:
        # The server's own cost per request: what one core could serve if the
        # load generator and other processes did not compete for the CPUs.
        used = cpu_after - cpu_before
        extra["server_cpu_share"] = round(used / elapsed, 2)
        extra["server_cpu_us_per_request"] = round(used / total_done * 1e6, 1)
        if used > 0:
            extra["server_one_core_capacity_rps"] = round(total_done / used, 1)
    return {
        "requests": total_done,
        "errors": total_errors,
        "seconds": round(elapsed, 3),
        "rounds": rounds,
        "requests_per_second": round(statistics.median(rates), 1),
        "p50_ms": round(statistics.median(p50s) * 1000, 2),
        "p99_ms": round(statistics.median(p99s) * 1000, 2),
        "concurrency": concurrency,
        "cpus": os.cpu_count() or 0,
        "load_average_1m": round(os.getloadavg()[0], 2),
        **extra,
    }


def main() -> int:
    """Run the benchmark and print the table.

    Returns:
        The exit status.
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--tasks", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3, help="measurements; figures are medians")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    args = p.parse_args()
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    with emulator_process("--task-duration", "3600") as (proc, url):
        result = asyncio.run(
            run(url, args.seconds, args.concurrency, args.tasks, proc.pid, args.rounds)
        )
    if args.json:
        print(json.dumps(result))
    else:
        print("| metric | value |")
        print("|---|---|")
        for key, value in result.items():
            print(f"| {key} | {value} |")
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
