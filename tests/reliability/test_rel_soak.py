"""The fault-matrix soak (benchmarks/soak.py), small: nothing unhandled, lost, silently duplicated.

400 jobs (twice, two seeds) through ``stream_jobs`` against the emulator with every fault of the
matrix (503 + Retry-After, 500 on GET, created-but-500 on POST, dropped
connections, answers slower than the timeout, HTML 502 pages, malformed JSON),
the virtual task clock sped up and the delays scaled down so that it takes a
few seconds.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from koodrive_async.emulator import FaultKind

_SOAK_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def _load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("koodrive_soak", _SOAK_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # attrs resolves annotations through sys.modules
    spec.loader.exec_module(module)
    return module


soak = _load_soak()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 11])
async def test_soak_loses_nothing_and_never_duplicates_silently(seed: int) -> None:
    options = soak.SoakOptions(
        jobs=400,
        seed=seed,
        concurrency=60,
        timeout=0.25,
        latency=0.4,
        retry_after=0.05,
        clock_speed=20.0,
        task_duration=1.0,
        failure_rate=0.05,
        max_seconds=40.0,
    )
    result = await soak.run_soak(options)
    table = soak.format_table(result, options)
    assert result.unhandled == 0, table
    assert result.lost == 0, table
    assert result.silent_duplicates == 0, table
    assert result.wrong_ids == 0, table
    assert not result.timed_out, table
    assert result.ok
    # Creates are never repeated once they may have arrived: no duplicates at all.
    assert result.duplicate_creations == 0, table
    # Every outcome is exactly one of the three.
    assert result.succeeded + result.failed + result.in_doubt == 400, table
    # The matrix was really applied (most kinds at least once: a 1% fault may
    # miss ~800 requests now and then), and it did put some creates in doubt.
    applied = result.faults_applied
    assert sum(applied.values()) >= 25, table
    assert len(applied) >= len(soak.FAULT_MATRIX) - 2, table
    assert result.in_doubt > 0, table
    # A task that is in doubt and does exist: the client did not claim to know its id.
    assert (
        result.tasks_created == result.succeeded + result.tasks_failed + result.in_doubt_created
    ), table
    # Every failure here is a task that ran and failed: no create was refused.
    assert result.failed == result.tasks_failed, table
    # A client hanging up mid-request is not an emulator bug.
    assert result.emulator_internal_errors == 0, table


def test_the_fault_matrix_covers_every_required_fault() -> None:
    kinds = {kind for kind, _rate, _extra in soak.FAULT_MATRIX}
    assert kinds == {
        FaultKind.UNAVAILABLE,
        FaultKind.SERVER_ERROR,
        FaultKind.CREATED_BUT_500,
        FaultKind.DROP,
        FaultKind.LATENCY,
        FaultKind.BAD_GATEWAY_HTML,
        FaultKind.MALFORMED_JSON,
    }
    # Slower than the timeout, in both the full and the quick mode.
    for options in (soak.SoakOptions(), soak.QUICK):
        assert options.latency > options.timeout
    assert soak.QUICK.jobs <= 500


def test_the_cli_prints_json_and_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    code = soak.main(["--quick", "--jobs", "40", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == (0 if data["ok"] else 1)
    assert data["jobs_submitted"] == 40
    assert data["lost"] == 0 and data["unhandled"] == 0
    code = soak.main(["--quick", "--jobs", "20"])
    out = capsys.readouterr().out
    assert "silent duplicates" in out and "jobs submitted" in out
    with pytest.raises(SystemExit):
        soak.main(["--jobs", "0"])
