"""Packaging facts that must not drift: one version number, honest dependency floors."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import koodrive_async
from koodrive_async import _version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
#: Not in the sdist (CI only): the tests of it skip there.
LOWEST_SCRIPT = ROOT / ".ci" / "lowest_constraints.py"


def _pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def test_the_version_number_is_written_once() -> None:
    project = _pyproject()
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["hatch"]["version"]["path"] == "koodrive_async/_version.py"
    assert koodrive_async.__version__ is _version.__version__
    # No second copy of the literal anywhere in the package.
    literal = re.escape(f'"{koodrive_async.__version__}"')
    copies = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "koodrive_async").rglob("*.py")
        if re.search(literal, p.read_text(encoding="utf-8"))
    ]
    assert copies == ["koodrive_async/_version.py"]


def test_the_built_metadata_carries_the_package_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The PEP 517 hook pip and build call: what a wheel's METADATA will say.
    backend = pytest.importorskip("hatchling.build")
    monkeypatch.chdir(ROOT)
    dist_info = backend.prepare_metadata_for_build_wheel(str(tmp_path))
    metadata = (tmp_path / dist_info / "METADATA").read_text(encoding="utf-8")
    assert f"\nVersion: {koodrive_async.__version__}\n" in metadata


def test_the_cli_reports_the_package_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "koodrive_async", "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert out.split() == ["koodrive-async", koodrive_async.__version__]


def _lowest() -> ModuleType:
    if not LOWEST_SCRIPT.exists():
        pytest.skip(".ci/ is not part of the sdist")
    spec = importlib.util.spec_from_file_location("lowest_constraints", LOWEST_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lowest_constraints_pin_every_runtime_dependency_at_its_floor() -> None:
    pins = _lowest().lowest_constraints(PYPROJECT.read_text(encoding="utf-8"))
    dependencies = _pyproject()["project"]["dependencies"]
    assert len(pins) == len(dependencies)
    for pin, requirement in zip(pins, dependencies, strict=True):
        name, floor = pin.split("==")
        assert requirement == f"{name}>={floor}"
    assert "aiohttp==3.10" in pins


def test_lowest_constraints_pin_an_extras_requirements_at_their_floors_too() -> None:
    # .ci/run installs the postgres extra at its floors and runs tests/postgres/ there.
    lowest = _lowest()
    pins = lowest.lowest_constraints(PYPROJECT.read_text(encoding="utf-8"), ["postgres"])
    extra = _pyproject()["project"]["optional-dependencies"]["postgres"]
    runtime = _pyproject()["project"]["dependencies"]
    assert len(pins) == len(runtime) + len(extra)
    for pin, requirement in zip(pins[len(runtime) :], extra, strict=True):
        name, floor = pin.split("==")
        assert re.sub(r"\[[^\]]*\]", "", requirement) == f"{name}>={floor}"
    assert "psycopg-pool==3.2" in pins
    with pytest.raises(ValueError, match="no optional extra"):
        lowest.lowest_constraints(PYPROJECT.read_text(encoding="utf-8"), ["nope"])
    # One package with two floors (the runtime's and an extra's) cannot be pinned at both.
    clash = (
        '[project]\ndependencies = ["attrs>=23"]\n'
        '[project.optional-dependencies]\nx = ["attrs>=24"]\n'
    )
    with pytest.raises(ValueError, match="two floors"):
        lowest.lowest_constraints(clash, ["x"])


def test_lowest_constraints_command_takes_extras() -> None:
    _lowest()  # skips where .ci/ is not shipped
    out = subprocess.run(
        [sys.executable, str(LOWEST_SCRIPT), str(PYPROJECT), "--extra", "postgres"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[-2:] == ["psycopg==3.1.4", "psycopg-pool==3.2"]
    bad = subprocess.run(
        [sys.executable, str(LOWEST_SCRIPT), str(PYPROJECT), "--extra"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "--extra needs a name" in bad.stderr


@pytest.mark.parametrize("requirement", ["aiohttp", "aiohttp<4", "aiohttp>=3,>=3.10"])
def test_a_dependency_without_one_floor_cannot_be_tested_at_its_floor(requirement: str) -> None:
    pyproject = f'[project]\ndependencies = ["{requirement}"]\n'
    with pytest.raises(ValueError, match="floor"):
        _lowest().lowest_constraints(pyproject)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(requirements: list[str]) -> set[str]:
    return {_canonical(re.split(r"[\s\[<>=!~;]", r.strip(), maxsplit=1)[0]) for r in requirements}


def _third_party_imports(path: Path, *, module_level: bool) -> set[str]:
    """The top-level names of the non-stdlib modules ``path`` imports when it runs.

    ``if TYPE_CHECKING:`` blocks are left out (never run); with ``module_level``,
    so are function bodies (run only when called: an extra's lazy import).
    """
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            for child in node.orelse:
                visit(child)
            return
        if module_level and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {name for name in found if name not in sys.stdlib_module_names} - {"koodrive_async"}


@functools.cache
def _providers() -> dict[str, list[str]]:
    # Read once: it walks every installed distribution's file list, which took over
    # a minute per call in CI's 3.13 venv with four suites sharing two cores.
    return dict(importlib.metadata.packages_distributions())


def _distributions(module: str) -> set[str]:
    # The distributions that provide an import name (yarl -> yarl, opentelemetry ->
    # opentelemetry-api...); the name itself where none is installed (an sdist's tests).
    provided = _providers().get(module) or [module]
    return {_canonical(name) for name in provided}


def test_every_third_party_module_the_package_imports_is_declared() -> None:
    # yarl was imported by _sender, _http and _download but declared nowhere: it
    # came only through aiohttp, so the lowest-versions run never chose its floor.
    project = _pyproject()["project"]
    runtime = _declared(project["dependencies"])
    extras = set().union(*map(_declared, project["optional-dependencies"].values()))
    undeclared = {
        f"{path.relative_to(ROOT).as_posix()}: {name}"
        for path in (ROOT / "koodrive_async").rglob("*.py")
        for name in _third_party_imports(path, module_level=False)
        if not _distributions(name) & (runtime | extras)
    }
    assert undeclared == set()
    # What the package and its subpackages load with no extra installed must be a
    # runtime dependency, not an extra's (an extra's module imports it lazily).
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, koodrive_async, koodrive_async.bulk, koodrive_async.cli, "
            "koodrive_async.emulator\n"
            "for n, m in sys.modules.items():\n"
            "    if n.split('.')[0] == 'koodrive_async': print(n, m.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.splitlines()
    assert len(loaded) > 50
    not_runtime = {
        f"{module}: {name}"
        for module, file in (line.split(" ", 1) for line in loaded)
        for name in _third_party_imports(Path(file), module_level=True)
        if not _distributions(name) & runtime
    }
    assert not_runtime == set()
