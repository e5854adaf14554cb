"""KooDriveSession.get_task against a bare httpx.AsyncClient loop.

The same setup as ``bench_session_overhead.py``, with httpx as the baseline:
the emulator runs in a child process (``python -m koodrive_async.emulator
--port 0``), some tasks are created, then two kinds of run alternate against
that one emulator process, at the same concurrency (64 by default):

A. bare httpx: one ``httpx.AsyncClient`` (connection pool as large as the
   concurrency), the same headers the session sends (Authorization,
   X-User-Id, language, X-Date, X-Traceid), ``GET task/{id}``, ``json.loads``;
B. ``KooDriveSession.get_task`` (aiohttp underneath; builds the call, stamps
   headers, checks the status, decodes into a Task).

It prints the median requests/s of each and the ratio B/A (above 1: the
session is faster than the bare httpx loop). ``--json`` prints one JSON object.
httpx is only in the ``bench`` extra (``pip install -e '.[bench]'``, which also
installs sniffio: without it httpcore retries a failing import on every call);
without httpx the ratio is null, with a note, and the exit status is still 0.

At concurrency 64 a bare httpx loop spends most of its CPU in httpcore's
connection-pool bookkeeping (``_assign_requests_to_connections``, linear in
the pool size on every request: encode/httpx issue #3215), so expect a ratio
well above 1; that is httpx as shipped, not a misconfiguration.

Usage::

    python benchmarks/bench_httpx.py [--requests 3000] [--rounds 9]
        [--concurrency 64] [--tasks 200] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

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

httpx: ModuleType | None
try:
    import httpx
except ImportError:  # the optional ``bench`` extra is not installed
    httpx = None

try:
    import sniffio  # noqa: F401
except ImportError:
    SNIFFIO_NOTE: str | None = (
        "sniffio is not installed: httpcore then retries a failing import on every call "
        "(encode/httpcore discussion #1102), so the httpx baseline is slower than it should be"
    )
else:
    SNIFFIO_NOTE = None

NOT_INSTALLED = "httpx is not installed (pip install -e '.[bench]'); httpx_ratio not measured"


async def bench(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Run the interleaved rounds against the emulator at ``url``.

    Args:
        args: The parsed command line.
        url: The emulator's base URL.

    Returns:
        The figures (see :func:`benchmarks._common.compare`).

    Raises:
        RuntimeError: A call got a wrong answer.
    """
    assert httpx is not None
    async with KooDriveSession(
        url, user_id=USER, token=TOKEN, max_connections=args.concurrency,
        retry=RetryPolicy(max_attempts=1),
    ) as session:  # fmt: skip
        task_ids = [
            await session.create_transfer_task(src_user_id=f"s{i}", dst_user_id=f"d{i}")
            for i in range(args.tasks)
        ]
        limits = httpx.Limits(
            max_connections=args.concurrency, max_keepalive_connections=args.concurrency
        )
        async with httpx.AsyncClient(limits=limits, timeout=30.0) as bare:
            static = {"Authorization": f"Bearer {TOKEN}", "X-User-Id": USER, "language": "en-US"}

            async def bare_get(i: int) -> None:
                headers = {
                    **static,
                    "X-Date": format_x_date(time.time()),
                    "X-Traceid": new_trace_id(),
                }
                tid = task_ids[i % len(task_ids)]
                r = await bare.get(f"{url}{PREFIX}/task/{tid}", headers=headers)
                data = json.loads(r.content)
                if r.status_code != 200 or data["taskId"] != tid:
                    raise RuntimeError(f"bad answer {r.status_code}")

            async def session_get(i: int) -> None:
                tid = task_ids[i % len(task_ids)]
                task = await session.get_task(tid)
                if task.task_id != tid:
                    raise RuntimeError("bad answer")

            runs = await interleaved(
                {"bare_httpx": bare_get, "session": session_get},
                rounds=args.rounds,
                concurrency=args.concurrency,
                requests=args.requests,
            )
    return {
        "concurrency": args.concurrency,
        "requests_per_run": args.requests,
        "rounds": args.rounds,
        "httpx_version": httpx.__version__,
        **compare(runs, "bare_httpx", "session"),
        **({"note": SNIFFIO_NOTE} if SNIFFIO_NOTE else {}),
    }


def main() -> int:
    """Parse arguments, run, print.

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="calls per run")
    parser.add_argument("--rounds", type=int, default=9, help="runs of each kind (>= 3)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tasks", type=int, default=200, help="tasks created to read")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds must be at least 3")
    if httpx is None:
        result: dict[str, Any] = {"ratio": None, "note": NOT_INSTALLED}
    else:
        with emulator_process("--ledger-limit", "1000") as (_proc, url):
            result = asyncio.run(bench(args, url))
    if args.json:
        print(json.dumps(result))
        return 0
    if result["ratio"] is None:
        print(result["note"])
        return 0
    print(
        f"get_task at concurrency {result['concurrency']}, {result['requests_per_run']} "
        f"calls per run, {result['rounds']} interleaved runs each (median), "
        f"httpx {result['httpx_version']}\n"
    )
    print("| client | median req/s | client CPU µs/call | runs (req/s) |")
    print("|---|---:|---:|---|")
    print(
        f"| A: bare httpx.AsyncClient | {result['bare_httpx_median_rps']} "
        f"| {result['bare_httpx_client_cpu_us_per_call']} "
        f"| {', '.join(map(str, result['bare_httpx_rps']))} |"
    )
    print(
        f"| B: KooDriveSession.get_task | {result['session_median_rps']} "
        f"| {result['session_client_cpu_us_per_call']} "
        f"| {', '.join(map(str, result['session_rps']))} |"
    )
    print(
        f"\nratio B/A = {result['ratio']} (median of runs; per-pair median "
        f"{result['pairwise_ratio_median']})"
    )
    if "note" in result:
        print(f"\nnote: {result['note']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
