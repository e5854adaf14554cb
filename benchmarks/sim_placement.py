"""Offline simulation of the poll placement: no sockets, no event loop, no load.

The fan-out benchmark (``bench_fanout.py``) measures the real client against
the emulator, so on a shared machine its detection delays and makespan move
with the load (a starved event loop launches polls late, whatever their
placement). This script replays the same decisions in simulated time: the
scheduler's own pure parts (``DurationEstimator`` and ``place_next`` from
``koodrive_async._estimator``) and the same glue as ``PollScheduler`` (first
poll at the tracked quantile; before anything is known, the policy's blind
schedule for the first cohort's units, at most ``SCOUTS``, and the others
held unpolled until the cohort's quantile is known; re-planning the cold
waiters; the bracket a finished unit is learnt from; jitter that only
shortens; not the paths no run here takes: deadlines, waits that end
unfinished, a scout's replacement, the held units' fallback poll), against
a model of the emulator's jobs
(duration uniform in 0.5-1.5 s, a pending tenth, ten files ending at random
times, the last at the end, progress in whole tenths). It is a design tool:
its figures are the placement's own cost (GETs per job, detection delay, the
makespan it causes), with GETs answered after ``--rtt`` seconds and creates
after ``--create`` seconds.

``--durations`` replaces the benchmark's uniform durations by another shape
(see :data:`SHAPES`), and ``--files 1`` gives jobs no progress to report, so
that a placement tuned on the benchmark can be checked on kinds unlike it.

Two options are what-ifs for the design, not what the client can do:
``--learn exact`` learns each finished unit's true duration instead of its
bracket's middle (the client knows only the window from when the last poll
that saw the unit running was sent to when the answer that saw it ended came
back, and for jobs the service's times are whole seconds), and
``--set NAME=VALUE`` gives one of the placement's constants
(:data:`TUNABLES`, in ``koodrive_async._estimator``) another value for the
run, restored after it.

Usage::

    python benchmarks/sim_placement.py                  # 1,000 and 10,000 jobs, 3 seeds
    python benchmarks/sim_placement.py --jobs 1000 --json
    python benchmarks/sim_placement.py --jobs 1000 --jobs 5000 --durations bimodal
    python benchmarks/sim_placement.py --learn exact --set FIRST_QUANTILE=0.15
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import json
import math
import random
import statistics
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from koodrive_async import _estimator  # noqa: E402
from koodrive_async._estimator import (  # noqa: E402
    DurationEstimator,
    bracket_duration,
    place_next,
)
from koodrive_async._policies import PollPolicy  # noqa: E402

KIND = "copy"
MIN_STEP = 0.01
#: What a finished unit teaches the estimator: its bracket's middle (what
#: the client learns) or its true duration (a what-if: ``--learn exact``).
LEARN = ("brackets", "exact")
#: The placement's constants ``--set`` may change for a run. Every one is read
#: from the module when it is used (none is a default argument or copied at
#: import), so setting it around a run reaches every decision of that run.
TUNABLES = (
    "DELAY_FRACTION",
    "FAST_QUANTILE",
    "FIRST_GAIN",
    "FIRST_QUANTILE",
    "FIRST_SPREAD",
    "NARROWING_GAIN",
    "POSTERIOR_DELAY",
    "POSTERIOR_QUANTILE",
    "SCOUTS",
)

#: Duration shapes, seconds: the benchmark's, a long right tail, two speeds of
#: one kind, a hundredfold spread, and all alike.
SHAPES: dict[str, Callable[[random.Random], float]] = {
    "uniform": lambda rng: rng.uniform(0.5, 1.5),
    "lognormal": lambda rng: math.exp(rng.gauss(0.0, 0.5)),
    "bimodal": lambda rng: rng.uniform(0.2, 0.4) if rng.random() < 0.5 else rng.uniform(2.0, 3.0),
    "wide": lambda rng: rng.uniform(0.1, 10.0),
    "constant": lambda _rng: 1.0,
}


class _Unit:
    __slots__ = (
        "index",
        "duration",
        "files",
        "created",
        "started",
        "prev_poll",
        "seen",
        "step",
        "interval",
        "gets",
        "polled",
        "version",
        "done",
        "inflight",
        "cohort",
        "held",
    )


def _progress(unit: _Unit, now: float) -> float:
    elapsed = now - unit.created
    if elapsed >= unit.duration:
        return 1.0
    done = bisect.bisect_right(unit.files, elapsed)
    return min(99, 100 * done // len(unit.files)) / 100.0


def simulate(
    jobs: int = 1000,
    slots: int = 200,
    seed: int = 1,
    rtt: float = 0.008,
    create: float = 0.015,
    files: int = 10,
    durations: str = "uniform",
    learn: str = "brackets",
    constants: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Run one simulated fan-out; return its figures.

    ``learn="exact"`` learns each unit's true duration (on the client's
    clock) instead of its bracket's middle; ``constants`` gives some of
    :data:`TUNABLES` other values for this run only. Both are what-ifs for
    the design, not what the client does.

    Raises:
        ValueError: An unknown ``learn``, a name not in :data:`TUNABLES`, or
            a value that is not a finite number of at least 0 (for a
            quantile: above 0 and below 1).
    """
    if learn not in LEARN:
        raise ValueError(f"learn must be one of {LEARN}, not {learn!r}")
    changed = dict(constants or {})
    for name, value in changed.items():
        _check_constant(name, value)
    kept = {name: getattr(_estimator, name) for name in changed}
    for name, value in changed.items():
        setattr(_estimator, name, value)
    try:
        return _simulate(jobs, slots, seed, rtt, create, files, durations, learn)
    finally:
        for name, value in kept.items():
            setattr(_estimator, name, value)


def _check_constant(name: str, value: object) -> None:
    if name not in TUNABLES:
        raise ValueError(f"{name!r} is not one of {TUNABLES}")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    if name == "SCOUTS":
        if value != int(value) or value < 1:
            raise ValueError(f"SCOUTS is a count of units, at least 1, not {value!r}")
    elif name.endswith("QUANTILE"):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} is a quantile: above 0 and below 1, not {value!r}")
    elif value < 0.0:
        # 0 is a what-if too (FIRST_GAIN=0: the first poll is never tracked).
        raise ValueError(f"{name} must be at least 0, not {value!r}")


def _simulate(
    jobs: int,
    slots: int,
    seed: int,
    rtt: float,
    create: float,
    files: int,
    durations: str,
    learn: str,
) -> dict[str, float]:
    world = random.Random(seed)
    shape = SHAPES[durations]
    jitter_rng = random.Random(seed + 1000)
    policy = PollPolicy()
    estimator = DurationEstimator()
    events: list[tuple[float, int, str, _Unit]] = []
    counter = 0
    units: list[_Unit] = []
    cold: list[_Unit] = []
    delays: dict[int, float] = {}

    def push(at: float, what: str, unit: _Unit) -> None:
        nonlocal counter
        counter += 1
        heapq.heappush(events, (at, counter, what, unit))

    def submit(now: float) -> None:
        if len(units) >= jobs:
            return
        unit = _Unit()
        unit.index = len(units)
        units.append(unit)
        unit.duration = shape(world)
        start = 0.1 * unit.duration
        draws = [world.random() for _ in range(files)]
        top = max(draws)
        unit.files = sorted(
            unit.duration if u == top else start + (unit.duration - start) * (u / top)
            for u in draws
        )
        unit.created = now + create / 2
        unit.started = now + create
        unit.prev_poll = -1.0
        unit.seen = None
        unit.step = unit.interval = 0.0
        unit.gets = 0
        unit.polled = False
        unit.version = 0
        unit.done = unit.inflight = unit.cohort = unit.held = False
        push(unit.started, "add", unit)

    def placed(unit: _Unit, now: float) -> float | None:
        seen = unit.seen
        latest = None if seen is None else (seen[0], seen[1])
        table = estimator.progress_table(KIND) if seen is not None else None
        first = estimator.first_poll(KIND, now) if not unit.polled else None
        if not unit.polled and first is None:
            return None
        result = place_next(
            now - unit.started,
            estimator.durations(KIND),
            latest,
            table,
            first,
            min_budget=max(MIN_STEP, 2.0 * rtt),
        )
        if result is None:
            return None
        at, budget = result
        unit.step = unit.interval = min(budget, policy.max_interval)
        due = max(unit.started + at - unit.step * policy.jitter * jitter_rng.random(), now)
        if not unit.polled:
            return due
        return min(max(due, now + MIN_STEP), now + policy.max_interval)

    def jittered(interval: float) -> float:
        return interval * (1.0 + policy.jitter * (2.0 * jitter_rng.random() - 1.0))

    def schedule(unit: _Unit, due: float) -> None:
        unit.version += 1
        push(due, f"poll:{unit.version}", unit)

    for _ in range(slots):
        submit(0.0)
    while events:
        now, _, what, unit = heapq.heappop(events)
        if what == "add":
            due = placed(unit, now)
            if due is None:
                unit.cohort = estimator.join_cohort(KIND, unit.started)
                cold.append(unit)
                if not unit.cohort and estimator.scouting(KIND):
                    # Unpolled until the cohort places it. (The fallback is
                    # not jittered here: it never comes due in these runs,
                    # and a draw would move every later jitter.)
                    unit.held = True
                    unit.interval = policy.max_interval
                    due = now + policy.max_interval
                else:
                    unit.interval = policy.initial
                    due = now + jittered(policy.initial)
            schedule(unit, due)
            continue
        if unit.done or what != f"poll:{unit.version}" or unit.inflight:
            continue
        unit.gets += 1
        unit.held = False
        read, answered = now + rtt / 2, now + rtt
        progress = _progress(unit, read)
        finished = progress >= 1.0
        if not unit.polled and unit.step:
            estimator.observe_first(KIND, finished, read - unit.started, unit.step)
        unit.polled = True
        if progress < 1.0:
            elapsed = read - unit.started
            unit.seen = (
                (elapsed, progress) if unit.seen is None else (elapsed, progress, *unit.seen[:2])
            )
        if finished:
            unit.done = True
            lower = max(0.0, unit.prev_poll - unit.started) if unit.prev_poll >= 0 else 0.0
            unseen_before = answered - unit.started if unit.prev_poll < 0 else None
            if learn == "exact":
                # What no client knows: when the unit ended, on its clock
                # (never before its start: a create slower than the unit).
                duration = max(0.0, unit.created + unit.duration - unit.started)
                unseen_before = None
            else:
                duration = bracket_duration(lower, max(lower, answered - unit.started), None)
            estimator.observe(
                KIND,
                duration,
                cohort=unit.cohort,
                unseen_before=unseen_before,
            )
            if unit.seen is not None and duration > 0:
                for i in range(0, len(unit.seen), 2):
                    estimator.observe_progress(KIND, unit.seen[i + 1], unit.seen[i] / duration)
            delays[unit.index] = answered - (unit.created + unit.duration)
            if (
                cold
                and estimator.durations(KIND)
                and estimator.first_poll(KIND, answered) is not None
            ):
                waiting, cold[:] = list(cold), []
                for other in waiting:
                    if not other.done and not other.polled and not other.step:
                        due = placed(other, answered)
                        if due is None and other.held:
                            due = answered  # held past its kind's first poll
                            other.interval = policy.initial
                        other.held = False
                        if due is not None:
                            schedule(other, due)
            submit(answered)
            continue
        unit.prev_poll = now
        due = placed(unit, answered)
        if due is None:
            unit.step = 0.0
            unit.interval = min(unit.interval * policy.multiplier, policy.max_interval)
            due = answered + jittered(unit.interval)
        schedule(unit, due)
    took = [u.duration for u in units]
    mean = statistics.fmean(took)
    ordered = sorted(delays.values())
    p95 = ordered[round(0.95 * (len(ordered) - 1))]
    free = [0.0] * slots
    ideal = 0.0
    for d in took:
        start = heapq.heappop(free)
        ideal = max(ideal, start + d)
        heapq.heappush(free, start + d)
    makespan = max(u.created + u.duration + delays[u.index] for u in units)
    first_wave = units[:slots]
    return {
        "jobs": jobs,
        "gets_per_job": sum(u.gets for u in units) / jobs,
        "detect_p95_fraction": p95 / mean,
        "detect_mean_s": statistics.fmean(ordered),
        "fanout_ratio": makespan / ideal,
        "first_wave_gets_per_job": sum(u.gets for u in first_wave) / len(first_wave),
    }


def _constant(text: str) -> tuple[str, float]:
    # ``NAME=VALUE`` for --set, checked as simulate() checks it.
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError("expected NAME=VALUE")
        pair = (name.strip(), float(value))
        _check_constant(*pair)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    return pair


def main() -> None:
    """Simulate and print the medians over seeds (a table, or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, action="append", help="default: 1000 and 10000")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rtt", type=float, default=0.008, help="GET round trip, seconds")
    parser.add_argument("--create", type=float, default=0.015, help="create round trip")
    parser.add_argument("--durations", choices=sorted(SHAPES), default="uniform")
    parser.add_argument("--files", type=int, default=10, help="files per job (1: no progress)")
    parser.add_argument(
        "--learn", choices=LEARN, default="brackets", help="what a finished unit teaches"
    )
    parser.add_argument(
        "--set",
        dest="constants",
        metavar="NAME=VALUE",
        type=_constant,
        action="append",
        default=[],
        help=f"one of {', '.join(TUNABLES)} for the run (repeatable)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    for jobs in args.jobs or [1000, 10_000]:
        runs = [
            simulate(
                jobs,
                seed=seed,
                rtt=args.rtt,
                create=args.create,
                files=args.files,
                durations=args.durations,
                learn=args.learn,
                constants=dict(args.constants),
            )
            for seed in range(1, args.seeds + 1)
        ]
        out[str(jobs)] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
        return
    keys = list(next(iter(out.values())))
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for figures in out.values():
        print("| " + " | ".join(f"{figures[k]:.3f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
