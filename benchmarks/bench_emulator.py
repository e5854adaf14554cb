"""How many ``GET task/{id}`` a second the emulator serves.

The emulator runs in its own process (``python -m koodrive_async.emulator
--port 0``), as it would for an out-of-process test run; this script creates a
few tasks, then hammers ``GET task/{id}`` at a fixed concurrency with a bare
aiohttp client for a few seconds and prints a markdown table (or JSON with
``--json``). It is a measurement, not a test: nothing here asserts speed.

Usage::

    python benchmarks/bench_emulator.py [--seconds 5] [--concurrency 64] [--tasks 50] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time

import aiohttp

PREFIX = "/koodrive/ose/v1"


def _headers() -> dict[str, str]:
    return {
        "Authorization": "Bearer+bench-token",
        "X-User-Id": "bench-user",
        "X-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
    }


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    """Start the emulator in a subprocess and read the URL it prints.

    Returns:
        (the process, its base URL).

    Raises:
        RuntimeError: It did not print a URL.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "koodrive_async.emulator", "--port", "0", "--task-duration", "3600"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("http://"):
        proc.kill()
        raise RuntimeError(f"emulator did not print its URL (got {line!r})")
    return proc, line


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far, from /proc (Linux only).

    Args:
        pid: The process id.

    Returns:
        Seconds, or None where /proc is not available.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(
    url: str, seconds: float, concurrency: int, n_tasks: int, server_pid: int | None = None
) -> dict[str, float]:
    """Create tasks, then measure GET task/{id} throughput and latency.

    Args:
        url: Emulator base URL.
        seconds: How long to measure.
        concurrency: Requests in flight.
        n_tasks: Tasks to create first (the GETs cycle over them).

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
        latencies.clear()
        done = errors = 0
        cpu_before = None if server_pid is None else cpu_seconds(server_pid)
        start = time.perf_counter()
        stop_at = start + seconds
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - start
        cpu_after = None if server_pid is None else cpu_seconds(server_pid)
    latencies.sort()
    extra: dict[str, float] = {}
    if cpu_before is not None and cpu_after is not None and done:
        # The server's own cost per request: what one core could serve if the
        # load generator and other processes did not compete for the CPUs.
        used = cpu_after - cpu_before
        extra["server_cpu_share"] = round(used / elapsed, 2)
        extra["server_cpu_us_per_request"] = round(used / done * 1e6, 1)
        if used > 0:
            extra["server_one_core_capacity_rps"] = round(done / used, 1)
    return {
        "requests": done,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "requests_per_second": round(done / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
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
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    args = p.parse_args()
    proc, url = start_emulator()
    try:
        result = asyncio.run(run(url, args.seconds, args.concurrency, args.tasks, proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
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
