"""What the poll bracket and whole-second service times teach the estimator (pure, no I/O)."""

from __future__ import annotations

import math
import random

from koodrive_async._coarse import SecondClock
from koodrive_async._estimator import bracket_duration


def test_exact_service_times_are_clamped_to_the_bracket_as_before() -> None:
    # Tasks give exact times: the same result as min(max(server, lower), upper).
    for server in (-1.0, 0.0, 0.4, 0.7, 1.0, 9.0):
        assert bracket_duration(0.3, 0.9, (server, server)) == min(max(server, 0.3), 0.9)


def test_no_service_times_learn_the_bracket_midpoint() -> None:
    assert bracket_duration(0.5, 0.7, None) == 0.6


def test_a_one_second_window_narrows_the_bracket() -> None:
    # Seen unfinished at 0.2 s, finished at 1.8 s; the service's second says 0.9..1.9.
    assert math.isclose(bracket_duration(0.2, 1.8, (0.9, 1.9)), 1.35)
    # A window that misses the bracket: the bracket wins, at the nearer end.
    assert bracket_duration(0.2, 1.8, (5.0, 6.0)) == 1.8
    assert bracket_duration(0.2, 1.8, (-3.0, -2.0)) == 0.2


def _simulate(clock: SecondClock, rng: random.Random, offset: float, n: int) -> list[float]:
    """Units of 0.5-1.5 s polled every 0.2 s on a service clock ``offset`` ahead; window widths."""
    widths = []
    now = 1000.0
    for _ in range(n):
        now += rng.uniform(0.0, 0.3)
        started = now
        created = math.floor(started - 0.002 + offset)  # created 2 ms before we heard
        duration = rng.uniform(0.5, 1.5)
        ended = math.floor(started + duration + offset)
        polls = [started + 0.2 * k + 0.001 for k in range(1, 20)]
        running = max(p for p in polls if p < started + duration)
        done = min(p for p in polls if p >= started + duration) + 0.003
        low, high = clock.window(created, ended, started, running, done)
        assert low <= duration < high  # never excludes the truth
        widths.append(high - low)
    return widths


def test_the_offset_is_learnt_and_each_unit_gets_a_one_second_window() -> None:
    clock = SecondClock()
    widths = _simulate(clock, random.Random(7), offset=12345.678, n=300)
    assert widths[0] > 2.0  # nothing known of the offset yet: the bracket and a second or two
    assert widths == sorted(widths, reverse=True)  # facts only accumulate
    assert widths[-1] < 1.02
    assert clock.low <= 12345.678 < clock.high
    assert clock.high - clock.low < 0.02


def test_a_service_clock_that_jumps_starts_afresh() -> None:
    clock = SecondClock()
    rng = random.Random(3)
    _simulate(clock, rng, offset=50.25, n=100)
    # The service's clock was set back an hour: the old offset contradicts it.
    widths = _simulate(clock, rng, offset=50.25 - 3600.0, n=100)
    assert clock.low <= 50.25 - 3600.0 < clock.high
    assert widths[0] > 2.0 and widths[-1] < 1.1


def test_a_unit_finished_at_its_first_poll_is_bounded_below_once_the_offset_is_known() -> None:
    clock = SecondClock()
    low, high = clock.window(100.0, 100.0, started=10.0, running=None, done=10.5)
    assert low == -math.inf and high < math.inf
    clock.low, clock.high = 90.3, 90.31  # offset learnt from other units
    low, high = clock.window(100.0, 101.0, started=10.0, running=None, done=10.9)
    # Ended in [101, 102) service time = [10.69, 11.7) loop time: 0.69 s from start.
    assert math.isclose(low, 0.69) and bracket_duration(0.0, 0.9, (low, high)) > 0.75
