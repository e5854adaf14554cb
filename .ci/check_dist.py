"""Check what the built sdist and wheel carry (run by .ci/run after python -m build).

The wheel must hold the package with its data files (``py.typed`` for type
checkers, the emulator's ``openapi.json``), the console script and the pytest
plugin entry point, with the version of ``koodrive_async/_version.py``; and
nothing else at the top level (no tests, no benchmarks). The sdist must hold
what building the wheel and running the tests needs.

Usage: python .ci/check_dist.py DIST_DIR
"""

from __future__ import annotations

import re
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WHEEL_FILES = ("koodrive_async/py.typed", "koodrive_async/emulator/openapi.json")
SDIST_FILES = (
    "pyproject.toml",
    "README.md",
    "koodrive_async/_version.py",
    "koodrive_async/py.typed",
    "koodrive_async/emulator/openapi.json",
    "tests/client/test_client_public_api.py",
)
ENTRY_POINTS = (
    "koodrive-async = koodrive_async.cli:main",
    "koodrive_emulator = koodrive_async.emulator.pytest_plugin",
)


def _version() -> str:
    text = (ROOT / "koodrive_async" / "_version.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if match is None:
        raise SystemExit("koodrive_async/_version.py: no __version__ line")
    return match.group(1)


def _one(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    if len(found) != 1:
        raise SystemExit(f"expected one {pattern} in {dist}, found {[p.name for p in found]}")
    return found[0]


def check_wheel(path: Path, version: str) -> list[str]:
    """Return the problems of the wheel at ``path`` (empty when it is right)."""
    problems = []
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        info = f"koodrive_async-{version}.dist-info"
        metadata = wheel.read(f"{info}/METADATA").decode()
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    print(f"{path.name}: {len(names)} files")
    for name in names:
        print(f"  {name}")
    problems += [f"wheel lacks {f}" for f in WHEEL_FILES if f not in names]
    tops = {n.split("/", 1)[0] for n in names}
    extra = tops - {"koodrive_async", info}
    problems += [f"wheel has an unexpected top level {t!r}" for t in sorted(extra)]
    if f"\nVersion: {version}\n" not in metadata:
        problems.append(f"wheel METADATA does not say Version: {version}")
    problems += [
        f"wheel lacks the entry point {e!r}" for e in ENTRY_POINTS if e not in entry_points
    ]
    return problems


def check_sdist(path: Path) -> list[str]:
    """Return the problems of the sdist at ``path`` (empty when it is right)."""
    with tarfile.open(path) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    print(f"{path.name}: {len(names)} files")
    return [f"sdist lacks {f}" for f in SDIST_FILES if f not in names]


def main() -> int:
    """Check the one wheel and the one sdist in the directory on the command line."""
    dist = Path(sys.argv[1])
    version = _version()
    problems = check_wheel(_one(dist, "*.whl"), version)
    problems += check_sdist(_one(dist, "*.tar.gz"))
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    if not problems:
        print(f"wheel and sdist of {version}: contents as expected")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
