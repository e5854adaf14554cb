"""Client-side instructions per ``get_task``: KooDriveSession against a bare aiohttp loop.

A figure that does not move with the machine's load: the emulator runs in a
process of its own (not measured); the client runs under ``valgrind
--tool=callgrind`` with collection off from the start and toggled only around
the measured loop. That loop is called through ``sys.call_tracing``, a C
function nothing else on the path calls, so ``--toggle-collect=sys_call_tracing``
counts exactly its instructions (and those of everything it calls) and none of
the start-up, imports, warm-up or shutdown. With no trace function set,
``sys.call_tracing`` runs the callable as a plain call.

One child warms both clients up (connection open, caches filled), then runs
``--calls`` sequential calls of each (concurrency 1, so no scheduling noise);
``--dump-after`` writes one profile per side. Python's start-up and imports
under full instrumentation cost several times the loops (some 30 CPU seconds
of a 40-second run), so the child starts with instrumentation off
(``--instr-atstart=no``: valgrind runs the code without simulating it, some
five times faster) and, once warmed up, says so and spins until the parent
has switched instrumentation on (``callgrind_control -i on``, through
valgrind's gdbserver, which a spinning process answers at once). The counts
are the same either way: only the measured loops are collected. Without
``callgrind_control`` the child runs instrumented from the start.

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
#: What the child prints once warmed up, waiting for instrumentation.
READY = "warmed up"
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


def child(url: str, task_ids: list[str], calls: int, warmup: int, go: str | None) -> None:
    """Warm both clients up, then run each one's measured loop inside :data:`MARKER`.

    Args:
        url: The emulator's base URL.
        task_ids: Tasks to read, in turn.
        calls: Calls in each measured loop.
        warmup: Calls before them, per client.
        go: A file to wait for after the warm-up (the parent makes it once
            instrumentation is on), or None to go on at once.
    """
    loop = asyncio.new_event_loop()
    clients = [loop.run_until_complete(make(url, task_ids)) for make in (_bare, _session)]
    for call, _ in clients:
        loop.run_until_complete(_loop(call, warmup))
    if go is not None:
        print(READY, flush=True)
        # A busy wait, not a sleep: valgrind's gdbserver (which callgrind_control
        # talks to) is polled by running code, not by a process blocked in a syscall.
        while not os.path.exists(go):
            pass
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

    One child measures both sides, so Python's start-up is paid once, and
    uninstrumented when ``callgrind_control`` is there (see the module docstring).

    Returns:
        (bare aiohttp instructions, session instructions).
    """
    control = shutil.which("callgrind_control")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        go = Path(tmp) / "go"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--instr-atstart={'no' if control else 'yes'}",
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
        if control:
            cmd += ["--go", str(go)]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        with subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            try:
                if control:
                    _instrument(proc, control, go)
                _, stderr = proc.communicate()
            finally:
                if proc.poll() is None:
                    proc.kill()
        if proc.returncode != 0:
            tail = " | ".join(stderr.strip().splitlines()[-3:])
            raise RuntimeError(f"the callgrind child failed ({proc.returncode}): {tail}")
        dumps = [Path(f"{out}.{n}") for n in (1, 2)]
        if args.keep:
            for side, dump in zip(("bare", "session"), dumps, strict=True):
                shutil.copy(dump, Path(args.keep) / f"callgrind.{side}.out")
        bare, session = (read_total(dump) for dump in dumps)
        return bare, session


def _instrument(proc: subprocess.Popen[str], control: str, go: Path) -> None:
    """Once the child is warmed up, switch its instrumentation on, then let it go."""
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != READY:
        raise RuntimeError(f"the callgrind child did not warm up (said {line!r})")
    done = subprocess.run(
        [control, "--instr=on", str(proc.pid)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or "OK" not in done.stdout:
        raise RuntimeError(f"callgrind_control failed: {done.stdout.strip()} {done.stderr.strip()}")
    go.touch()


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
    parser.add_argument("--go", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.calls < 1 or args.warmup < 1:
        parser.error("--calls and --warmup must be at least 1")
    if args.child:
        child(args.url, args.task_ids.split(","), args.calls, args.warmup, args.go)
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
