"""Print pip constraints pinning every runtime dependency to its declared floor.

``.ci/run`` installs the package with these constraints into a separate venv
and runs the suite there, so that ``aiohttp>=X`` in pyproject.toml is a tested
claim, not a hope. Every runtime dependency must declare a ``>=`` floor: one
without would silently be tested at its newest version, so it is an error.

Only the direct dependencies are pinned (pip's "lowest direct" strategy); their
own dependencies resolve to what pip picks for the pinned versions.

Usage: python .ci/lowest_constraints.py [pyproject.toml] > constraints.txt
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$")


def lowest_constraints(pyproject: str) -> list[str]:
    """Return ``name==floor`` for every entry of ``[project] dependencies``.

    Raises:
        ValueError: A dependency has no ``>=`` floor, or has environment markers
            (which this simple generator does not evaluate).
    """
    dependencies = tomllib.loads(pyproject)["project"]["dependencies"]
    pins = []
    for requirement in dependencies:
        match = _REQUIREMENT.match(requirement)
        if match is None or ";" in requirement:
            raise ValueError(f"cannot read the requirement {requirement!r}")
        name, specifiers = match.groups()
        floors = [s.strip()[2:].strip() for s in specifiers.split(",") if s.strip()[:2] == ">="]
        if len(floors) != 1:
            raise ValueError(f"{requirement!r} must declare exactly one '>=' floor")
        pins.append(f"{name}=={floors[0]}")
    return pins


def main() -> int:
    """Print the constraints of the pyproject.toml named on the command line."""
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml")
    try:
        pins = lowest_constraints(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        print(f"lowest_constraints: {path}: {exc}", file=sys.stderr)
        return 2
    print("\n".join(pins))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
