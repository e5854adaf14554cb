"""Pieces the benchmark scripts share.

Starting the emulator in a child process and reading the URL it prints,
running a fixed number of calls on a fixed number of workers, interleaving the
runs of two contenders, medians, markdown tables and the machine description.
Nothing here measures anything by itself.

The scripts run both as ``python benchmarks/<script>.py`` and as
``python -m benchmarks.<script>``: run as a file, a script first puts the
repository root on ``sys.path`` so that ``benchmarks._common`` imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

#: Credentials the benchmarks send (the emulator accepts any non-empty token by default).
TOKEN = "bench-token"
USER = "bench-user"
#: Path prefix of the Open API on the emulator.
PREFIX = "/koodrive/ose/v1"

Call = Callable[[int], Awaitable[None]]


def start_url_child(
    cmd: Sequence[str], *, stdin: int | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start a child process whose first line on stdout is its base URL.

    Args:
        cmd: The command line.
        stdin: ``subprocess.PIPE`` to keep a pipe to the child's stdin (children
            that serve until their stdin closes), else None.

    Returns:
        (the process, the URL it printed).

    Raises:
        RuntimeError: The child did not print a URL (it is killed first).
    """
    proc = subprocess.Popen(
        list(cmd),
        stdin=stdin,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("http://"):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the emulator child did not print its URL (got {line!r})")
    return proc, line


def start_emulator(*extra: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m koodrive_async.emulator --port 0`` and read its URL.

    Args:
        *extra: More command-line options for the emulator.

    Returns:
        (the process, its base URL).

    Raises:
        RuntimeError: It did not print a URL.
    """
    return start_url_child([sys.executable, "-m", "koodrive_async.emulator", "--port", "0", *extra])


def stop_child(proc: subprocess.Popen[str]) -> None:
    """Stop a child started by :func:`start_url_child`: close stdin, SIGTERM, then kill.

    Args:
        proc: The process.
    """
    if proc.stdin is not None:
        # Children that serve until their stdin closes get a moment to exit cleanly.
        with contextlib.suppress(OSError):
            proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def url_child(cmd: Sequence[str]) -> Iterator[str]:
    """Run a child that prints its URL and serves until its stdin closes.

    Args:
        cmd: The command line.

    Yields:
        The URL it printed.
    """
    proc, url = start_url_child(cmd, stdin=subprocess.PIPE)
    try:
        yield url
    finally:
        stop_child(proc)


@contextlib.contextmanager
def emulator_process(*extra: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run the emulator in a child process for the duration of a ``with`` block.

    Args:
        *extra: More command-line options for the emulator.

    Yields:
        (the process, its base URL).
    """
    proc, url = start_emulator(*extra)
    try:
        yield proc, url
    finally:
        stop_child(proc)


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


async def run_workers(concurrency: int, total: int, one: Call) -> tuple[float, float]:
    """Make ``total`` calls of ``one(i)`` on ``concurrency`` workers.

    Args:
        concurrency: Workers (calls in flight).
        total: Calls in all.
        one: The call; it gets the call's index and raises on a wrong answer.

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


async def interleaved(
    contenders: Mapping[str, Call], *, rounds: int, concurrency: int, requests: int
) -> dict[str, list[tuple[float, float]]]:
    """Warm every contender up, then alternate their runs ``rounds`` times.

    The order flips every round (A B, B A, A B, ...) so that neither side
    always runs right after the other, on a machine whose load drifts.

    Args:
        contenders: Name -> call, in the order of the first round.
        rounds: Runs of each contender.
        concurrency: Calls in flight.
        requests: Calls per run.

    Returns:
        Name -> the (calls per second, client CPU µs per call) of each of its runs.
    """
    for one in contenders.values():
        await run_workers(concurrency, concurrency * 8, one)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    order = list(contenders)
    for k in range(rounds):
        for name in order if k % 2 == 0 else reversed(order):
            runs[name].append(await run_workers(concurrency, requests, contenders[name]))
    return runs


def compare(
    runs: Mapping[str, list[tuple[float, float]]], baseline: str, candidate: str
) -> dict[str, Any]:
    """Summarise interleaved runs of a baseline and a candidate.

    Args:
        runs: The result of :func:`interleaved`.
        baseline: The name of A (the bare client).
        candidate: The name of B (the session).

    Returns:
        The per-run rates, the medians, ``ratio`` (median B / median A) and the
        median of the per-round ratios.
    """
    a = [rate for rate, _ in runs[baseline]]
    b = [rate for rate, _ in runs[candidate]]
    return {
        f"{baseline}_rps": [round(r, 1) for r in a],
        f"{candidate}_rps": [round(r, 1) for r in b],
        f"{baseline}_median_rps": round(statistics.median(a), 1),
        f"{candidate}_median_rps": round(statistics.median(b), 1),
        "ratio": round(statistics.median(b) / statistics.median(a), 3),
        "pairwise_ratio_median": round(
            statistics.median(y / x for x, y in zip(a, b, strict=True)), 3
        ),
        f"{baseline}_client_cpu_us_per_call": round(
            statistics.median(cpu for _, cpu in runs[baseline]), 1
        ),
        f"{candidate}_client_cpu_us_per_call": round(
            statistics.median(cpu for _, cpu in runs[candidate]), 1
        ),
    }


def median(values: Sequence[float]) -> float | None:
    """The median, or None for no values.

    Args:
        values: Numbers.

    Returns:
        Their median, or None.
    """
    return statistics.median(values) if values else None


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Format a markdown table.

    Args:
        header: Column titles.
        rows: Cells (``str()`` of each).

    Returns:
        The table, without a trailing newline.
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Describe the machine the figures come from.

    Returns:
        ``cpu_count``, ``python`` (version), ``implementation``, ``platform``
        and the 1-minute ``load_average`` (None where unknown).
    """
    try:
        load: float | None = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    return {
        "cpu_count": os.cpu_count() or 0,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "load_average": load,
    }


def last_json_object(text: str) -> dict[str, Any] | None:
    """Find the last JSON object in a script's stdout.

    The scripts print exactly one object with ``--json`` (on one line or
    indented over many), but a stray line before it must not matter.

    Args:
        text: The whole stdout.

    Returns:
        The object, or None if there is none.
    """
    decoder = json.JSONDecoder()
    found: dict[str, Any] | None = None
    lines = text.splitlines(keepends=True)
    offsets = list(itertools.accumulate((len(line) for line in lines), initial=0))
    for start, line in zip(offsets, lines, strict=False):
        if not line.startswith("{"):
            continue
        try:
            value, _end = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict):
            found = value
    return found
