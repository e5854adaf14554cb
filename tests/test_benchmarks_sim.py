"""The offline placement simulation (benchmarks/sim_placement.py) runs the scheduler's pure parts.

Not a speed claim (those live in benchmarks/): a guard that the simulation
still drives the real ``place_next`` and ``DurationEstimator`` and that the
placement they make stays sane (every job seen, a few GETs each, not a poll
every few milliseconds nor a wait of a whole task).
"""

from __future__ import annotations

from benchmarks.sim_placement import simulate


def test_the_simulated_fan_out_sees_every_job_with_a_few_gets_each() -> None:
    figures = simulate(jobs=400, slots=100, seed=3)
    assert figures["jobs"] == 400
    assert 1.0 <= figures["gets_per_job"] < 4.0
    assert 0.0 < figures["detect_p95_fraction"] < 0.5
    assert 1.0 <= figures["fanout_ratio"] < 1.5


def test_the_simulation_is_deterministic() -> None:
    assert simulate(jobs=200, slots=50, seed=5) == simulate(jobs=200, slots=50, seed=5)
