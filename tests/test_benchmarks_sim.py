"""The offline placement simulation (benchmarks/sim_placement.py) runs the scheduler's pure parts.

Not a speed claim (those live in benchmarks/): a guard that the simulation
still drives the real ``place_next`` and ``DurationEstimator`` and that the
placement they make stays sane (every job seen, a few GETs each, not a poll
every few milliseconds nor a wait of a whole task).
"""

from __future__ import annotations

import math

import pytest

from benchmarks.sim_placement import SHAPES, TUNABLES, simulate


def test_the_simulated_fan_out_sees_every_job_with_a_few_gets_each() -> None:
    figures = simulate(jobs=400, slots=100, seed=3)
    assert figures["jobs"] == 400
    assert 1.0 <= figures["gets_per_job"] < 4.0
    assert 0.0 < figures["detect_p95_fraction"] < 0.5
    assert 1.0 <= figures["fanout_ratio"] < 1.5


def test_the_simulation_is_deterministic() -> None:
    assert simulate(jobs=200, slots=50, seed=5) == simulate(jobs=200, slots=50, seed=5)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_placement_stays_sane_for_kinds_unlike_the_benchmark(shape: str) -> None:
    # A long tail, two speeds of one kind, a hundredfold spread, all alike:
    # the rule was tuned on the benchmark's uniform durations and must not
    # fall apart on these (the figures per shape are in docs/performance.md).
    figures = simulate(jobs=800, slots=100, seed=2, durations=shape)
    assert 1.0 <= figures["gets_per_job"] < 4.5
    assert 0.0 < figures["detect_p95_fraction"] < 0.45
    assert 1.0 <= figures["fanout_ratio"] < 1.3


def test_the_fast_units_of_a_two_speed_kind_are_not_seen_late() -> None:
    # Half the units take 0.2-0.4 s, half 2-3 s. Learning a unit found
    # finished at its first poll anywhere but its bracket's middle froze the
    # fast end and put every first poll after the fast units' end: their
    # mean delay passed 0.23 s.
    figures = simulate(jobs=1000, seed=1, durations="bimodal")
    assert figures["detect_mean_s"] < 0.2


def test_learning_exact_durations_is_a_what_if_that_changes_the_placement() -> None:
    # The bracket's middle is what the client learns; the true duration is
    # what it cannot know. Same seed, same units: only what is learnt differs.
    brackets = simulate(jobs=600, slots=100, seed=4)
    exact = simulate(jobs=600, slots=100, seed=4, learn="exact")
    assert exact != brackets
    assert exact["gets_per_job"] < brackets["gets_per_job"]


def test_a_constant_of_its_own_is_used_for_the_run_and_restored() -> None:
    from koodrive_async import _estimator

    kept = _estimator.FIRST_QUANTILE
    earlier = simulate(jobs=600, slots=100, seed=4, constants={"FIRST_QUANTILE": 0.1})
    assert _estimator.FIRST_QUANTILE == kept
    # A lower quantile puts every first poll earlier: more units are still
    # running at it, so more GETs each.
    assert earlier["gets_per_job"] > simulate(jobs=600, slots=100, seed=4)["gets_per_job"]


def test_a_constant_is_restored_when_the_run_fails() -> None:
    from koodrive_async import _estimator

    kept = _estimator.POSTERIOR_DELAY
    with pytest.raises(KeyError):
        simulate(jobs=10, slots=5, durations="no-such-shape", constants={"POSTERIOR_DELAY": 0.5})
    assert _estimator.POSTERIOR_DELAY == kept


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"learn": "midpoints"}, "learn"),
        ({"constants": {"WINDOW": 10.0}}, "not one of"),
        ({"constants": {"FIRST_QUANTILE": 0.0}}, "FIRST_QUANTILE"),
        ({"constants": {"FIRST_QUANTILE": 1.0}}, "FIRST_QUANTILE"),
        ({"constants": {"POSTERIOR_DELAY": -0.1}}, "POSTERIOR_DELAY"),
        ({"constants": {"POSTERIOR_DELAY": "0.1"}}, "finite number"),
        ({"constants": {"DELAY_FRACTION": math.nan}}, "finite number"),
    ],
)
def test_an_unknown_what_if_is_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate(jobs=10, slots=5, seed=1, **options)  # type: ignore[arg-type]


def test_the_command_line_refuses_a_malformed_constant(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks import sim_placement

    monkeypatch.setattr("sys.argv", ["sim_placement.py", "--set", "FIRST_QUANTILE"])
    with pytest.raises(SystemExit) as exited:
        sim_placement.main()
    assert exited.value.code == 2
    # Our own message, not argparse's usage line (which names NAME=VALUE too).
    assert "expected NAME=VALUE" in capsys.readouterr().err


#: A value for each of TUNABLES far enough from the shipped one to move a run.
_MOVED = {
    "DELAY_FRACTION": 0.4,
    "FAST_QUANTILE": 0.4,
    "FIRST_GAIN": 0.2,
    "FIRST_QUANTILE": 0.1,
    "FIRST_SPREAD": 0.05,
    "NARROWING_GAIN": 0.5,
    "POSTERIOR_DELAY": 0.4,
    "POSTERIOR_QUANTILE": 0.5,
    "SCOUTS": 4,
}


def test_every_tunable_is_covered_here() -> None:
    assert sorted(_MOVED) == sorted(TUNABLES)


@pytest.mark.parametrize("name", sorted(_MOVED))
def test_each_tunable_reaches_the_run(name: str) -> None:
    # A constant the estimator copied at import (or took as a default
    # argument) would leave the run as it was.
    shipped = simulate(jobs=600, slots=100, seed=4)
    assert simulate(jobs=600, slots=100, seed=4, constants={name: _MOVED[name]}) != shipped
