"""The benchmark runner's command line and its assembly of figures (no benchmark runs here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

HEADLINE = (
    "overhead_ratio",
    "instruction_ratio",
    "httpx_ratio",
    "emulator_rps",
    "fanout_ratio",
    "gets_per_job",
    "detect_p95_fraction",
    "bytes_per_waiting_task",
)


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # benchmarks/ is not installed with the package: import it from the checkout.
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    import benchmarks._runner as module

    return module


def test_help_runs_as_a_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--quick" in proc.stdout and "--json" in proc.stdout


def test_unknown_only_name_is_refused(
    runner: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        runner.main(["--only", "emulator,nonsense"])
    assert exc.value.code == 2
    assert "nonsense" in capsys.readouterr().err


def _fake_results(runner: ModuleType, *, httpx: bool) -> dict[str, object]:
    step = runner.StepResult
    httpx_run = (
        {"ratio": 9.0, "pairwise_ratio_median": 9.5, "session_median_rps": 5000.0}
        if httpx
        else {"ratio": None, "note": "httpx is not installed"}
    )
    return {
        "emulator": step(runs=[{"requests_per_second": 4321.04, "errors": 0}]),
        "overhead": step(runs=[{"ratio": 0.87, "pairwise_ratio_median": 0.93}]),
        "instructions": step(
            runs=[
                {
                    "instruction_ratio": 1.0912,
                    "session_instructions_per_call": 470_000,
                    "bare_aiohttp_instructions_per_call": 430_700,
                }
            ]
        ),
        "httpx": step(runs=[httpx_run]),
        "fanout": step(
            runs=[
                {
                    "fanout_ratio": 1.10,
                    "gets_per_job": 2.4,
                    "detect_p95_fraction": 0.3,
                    "errors": 0,
                },
                {
                    "fanout_ratio": 1.30,
                    "gets_per_job": 2.2,
                    "detect_p95_fraction": 0.2,
                    "errors": 0,
                },
                {
                    "fanout_ratio": 1.12,
                    "gets_per_job": 2.3,
                    "detect_p95_fraction": 0.1,
                    "errors": 0,
                },
            ]
        ),
        "memory": step(
            runs=[{"bytes_per_waiting_task": b} for b in (1200.0, 1300.0, 1250.0)],
            problems=["bench_fanout.py: exit status 1"],
        ),
    }


def test_assemble_takes_medians_and_judges_targets(runner: ModuleType) -> None:
    results = _fake_results(runner, httpx=True)
    out = runner.assemble(results, runner.plan(True), quick=True, elapsed=12.3)
    # One JSON object whose headline values are numbers, not strings.
    decoded = json.loads(json.dumps(out))
    for key in HEADLINE:
        assert isinstance(decoded[key], float), key
    assert out["overhead_ratio"] == 0.93  # the paired median, not the ratio of medians
    assert out["httpx_ratio"] == 9.5
    assert out["instruction_ratio"] == 1.091
    assert out["emulator_rps"] == 4321.0
    assert out["fanout_ratio"] == 1.12  # median of 1.10, 1.30, 1.12
    assert out["gets_per_job"] == 2.3
    assert out["detect_p95_fraction"] == 0.2
    assert out["bytes_per_waiting_task"] == 1250.0
    assert out["met"] == {
        "overhead_ratio": True,
        "instruction_ratio": True,
        "httpx_ratio": None,
        "emulator_rps": True,
        "fanout_ratio": True,
        "gets_per_job": True,
        "detect_p95_fraction": True,
        "bytes_per_waiting_task": True,
    }
    assert set(out["machine"]) == {"cpu_count", "python"}
    assert isinstance(out["machine"]["cpu_count"], int)
    assert any("exit status 1" in note for note in out["notes"])
    text = runner.render(out, results)
    assert "| metric | value | target | met? |" in text
    assert "| 1.120 | <= 1.15 | yes |" in text


def test_missing_httpx_gives_null_with_a_note_and_misses_are_named(runner: ModuleType) -> None:
    results = _fake_results(runner, httpx=False)
    results["overhead"] = runner.StepResult(runs=[{"pairwise_ratio_median": 0.8}])
    out = runner.assemble(results, runner.plan(False), quick=False, elapsed=1.0)
    assert out["httpx_ratio"] is None
    assert out["met"]["httpx_ratio"] is None
    assert any("httpx_ratio is null" in n and "not installed" in n for n in out["notes"])
    assert out["met"]["overhead_ratio"] is False
    assert any(n.startswith("overhead_ratio = 0.8 misses") for n in out["notes"])
    assert "**no**" in runner.render(out, results)


def test_a_step_that_did_not_run_gives_nulls(runner: ModuleType) -> None:
    out = runner.assemble({}, [], quick=True, elapsed=0.0)
    assert all(out[key] is None for key in HEADLINE)
    assert all(value is None for value in out["met"].values())


def test_last_json_object_skips_stray_output(runner: ModuleType) -> None:
    last_json_object = runner.last_json_object
    text = 'starting\n{"a": 1}\nnoise {"b": 2}\n{\n  "c": {"d": [1, 2]}\n}\n'
    assert last_json_object(text) == {"c": {"d": [1, 2]}}
    assert last_json_object("no json here\n") is None


def test_the_instruction_bench_reads_a_callgrind_total(tmp_path: Path) -> None:
    from benchmarks.bench_instructions import read_total

    out = tmp_path / "callgrind.out.1"
    out.write_text("version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 123456\n")
    assert read_total(out) == 123456
    out.write_text("events: Ir\n")
    with pytest.raises(RuntimeError, match="no totals"):
        read_total(out)
