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
#: Headline keys of the many-worker step (full mode only).
WORKERS_HEADLINE = ("workers_quota_hold_error", "workers_duplicates", "workers_lost")


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
        # The quick plan has no workers step: no figure, no verdict.
        "workers_quota_hold_error": None,
        "workers_duplicates": None,
        "workers_lost": None,
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


def test_the_fan_out_counts_the_first_waves_reads_by_job() -> None:
    from benchmarks.bench_fanout import first_wave_gets

    def create(task_id: str | None) -> dict[str, object]:
        return {"route": "create_job", "path": "/rest/2.0/job", "task_id": task_id}

    def read(task_id: str) -> dict[str, object]:
        return {"route": "get_job", "path": f"/rest/2.0/job/{task_id}", "task_id": None}

    ledger = [create("J1"), create(None), create("J2"), read("J1"), create("J3")]
    ledger += [read("J2"), read("J3"), read("J1"), read("J3"), read("J3")]
    # The first two jobs created (a create that failed has no id): J1 read
    # twice, J2 once; J3 came later.
    assert first_wave_gets(ledger, 2) == pytest.approx(1.5)
    assert first_wave_gets(ledger, 3) == pytest.approx(2.0)
    assert first_wave_gets([read("J1")], 2) == 0.0


def test_the_workers_step_runs_in_the_full_mode_only(
    runner: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    full = {step.name: step for step in runner.plan(False)}
    assert "workers" not in {step.name for step in runner.plan(True)}
    step = full["workers"]
    assert step.script == "bench_workers.py" and step.repeat == 1
    assert (REPO_ROOT / "benchmarks" / step.script).is_file()
    with pytest.raises(SystemExit) as exc:
        runner.main(["--quick", "--only", "workers"])
    assert exc.value.code == 2
    assert "full mode only" in capsys.readouterr().err


def _workers_run(name: str, **figures: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": name, "workers": 4, "lines": 100, "quota": None, "rate": None,
        "makespan_s": 10.0, "creates_per_s": 10.0, "quota_ratio": None, "throttled_429": 0,
        "duplicates": 0, "lost": 0, "emulator_cpu_fraction": 0.2,
    }  # fmt: skip
    base.update(figures)
    return base


def test_the_workers_figures_are_parsed_and_judged(runner: ModuleType) -> None:
    from benchmarks.bench_workers import headline

    runs = [
        _workers_run("w1", workers=1, creates_per_s=80.0),
        _workers_run("w4", creates_per_s=120.0, emulator_cpu_fraction=0.31),
        _workers_run("q4", quota=50.0, creates_per_s=49.0, quota_ratio=0.98, throttled_429=900),
        _workers_run(
            "q4_rate", quota=50.0, rate=50.0, creates_per_s=47.0, quota_ratio=0.94, lost=2
        ),
    ]
    figures = headline(runs, 50.0)
    assert figures["quota_hold_ratio"] == 0.94  # the shared-rate run, not the plain quota run
    assert figures["quota_hold_error"] == 0.06
    assert figures["shared_rate_429s"] == 0
    assert figures["worker_speedup"] == 1.5
    assert figures["emulator_cpu_fraction_max"] == 0.31
    assert (figures["duplicates"], figures["lost"]) == (0, 2)
    results = {"workers": runner.StepResult(runs=[json.loads(json.dumps(figures))])}
    out = runner.assemble(results, runner.plan(False), quick=False, elapsed=1.0)
    assert out["workers_quota_hold_error"] == 0.06
    assert out["met"]["workers_quota_hold_error"] is True
    assert out["met"]["workers_duplicates"] is True
    assert out["met"]["workers_lost"] is False
    assert any(n.startswith("workers_lost = 2.0 misses") for n in out["notes"])
    assert "4 workers, --rate Q: creates/s ÷ Q | 0.940" in runner.render(out, results)
    # Without PostgreSQL the step has no figures, and the note says why.
    empty = headline([], 50.0)
    assert empty["duplicates"] is None and empty["quota_hold_error"] is None
    results = {"workers": runner.StepResult(runs=[{**empty, "note": "no PostgreSQL: x"}])}
    out = runner.assemble(results, runner.plan(False), quick=False, elapsed=1.0)
    assert out["workers_duplicates"] is None
    assert any("workers_quota_hold_error is null: no PostgreSQL" in n for n in out["notes"])


def test_one_workers_run_is_summarised_from_the_emulator_and_the_journal() -> None:
    from benchmarks.bench_workers import Config, configs, summarise

    plans = configs([1, 2, 4], 20_000, 4_000, 1_000, 50.0)
    assert [(c.name, c.workers, c.lines, c.rate) for c in plans] == [
        ("w1", 1, 4_000, None), ("w2", 2, 4_000, None), ("w4", 4, 20_000, None),
        ("q1", 1, 1_000, None), ("q2", 2, 1_000, None), ("q4", 4, 1_000, None),
        ("q4_rate", 4, 1_000, 50.0),
    ]  # fmt: skip
    config = Config("q4", 4, 6, 2.0, None)
    created = {
        "L1": [(100.0, "t1")],
        "L2": [(100.5, "t2"), (101.0, "t2b")],  # created twice: a duplicate
        "L3": [(101.5, "t3")],
        "L4": [(102.0, "t4")],  # the journal holds another id: lost
        # L5: never created, and the journal left it pending: lost
        # L6: never created, failed in the journal: its create was refused
    }
    journal = {
        1: ("succeeded", "t1"),
        2: ("succeeded", "t2"),
        3: ("failed", "t3"),
        4: ("succeeded", "t-other"),
        5: ("pending", None),
        6: ("failed", None),
    }
    run = summarise(
        config,
        makespan=4.0,
        created=created,
        throttled=7,
        journal=journal,
        emulator_cpu=1.0,
        exit_codes=[0, 0, 1, 0],
    )
    assert run["creates"] == 5
    assert run["creates_per_s"] == 2.0  # 4 intervals over 2 s, first to last create
    assert run["quota_ratio"] == 1.0
    assert (run["duplicates"], run["lost"], run["throttled_429"]) == (1, 2, 7)
    assert run["refused"] == 1
    assert run["lost_states"] == {"succeeded": 1, "pending, no task": 1}
    assert run["emulator_cpu_fraction"] == 0.25


def test_the_quota_ratio_is_taken_after_the_quota_burst() -> None:
    from benchmarks.bench_workers import Config, summarise

    config = Config("q1", 1, 5, 2.0, None)
    # Two creates at once (the burst), then one every half second: 2/s.
    times = (100.0, 100.0, 100.5, 101.0, 101.5)
    run = summarise(
        config,
        makespan=3.0,
        created={f"L{n}": [(t, f"t{n}")] for n, t in enumerate(times, 1)},
        throttled=0,
        journal={n: ("succeeded", f"t{n}") for n in range(1, 6)},
        emulator_cpu=0.0,
        exit_codes=[0],
        burst=2.0,
    )
    assert run["creates_per_s"] == 2.7  # first to last create, the burst included
    assert run["steady_creates_per_s"] == 2.0
    assert run["quota_ratio"] == 1.0
    assert (run["lost"], run["refused"], run["duplicates"]) == (0, 0, 0)
