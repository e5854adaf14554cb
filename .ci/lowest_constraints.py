"""Print pip constraints pinning every runtime dependency to its declared floor.

``.ci/run`` installs the package with these constraints into a separate venv
and runs the suite there, so that ``aiohttp>=X`` in pyproject.toml is a tested
claim, not a hope. Every runtime dependency must declare a ``>=`` floor: one
without would silently be tested at its newest version, so it is an error.
``--extra NAME`` (repeatable) pins the requirements of that optional extra
too (``--extra postgres``: psycopg and psycopg-pool at their floors), by the
same rule.

Only the direct dependencies are pinned (pip's "lowest direct" strategy); their
own dependencies resolve to what pip picks for the pinned versions.

Usage: python .ci/lowest_constraints.py [pyproject.toml] [--extra NAME]... > constraints.txt
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pin(requirement: str) -> tuple[str, str]:
    """``(name, floor)`` of one requirement that declares exactly one ``>=`` floor."""
    match = _REQUIREMENT.match(requirement)
    if match is None or ";" in requirement:
        raise ValueError(f"cannot read the requirement {requirement!r}")
    name, specifiers = match.groups()
    floors = [s.strip()[2:].strip() for s in specifiers.split(",") if s.strip()[:2] == ">="]
    if len(floors) != 1:
        raise ValueError(f"{requirement!r} must declare exactly one '>=' floor")
    return name, floors[0]


def lowest_constraints(pyproject: str, extras: Iterable[str] = ()) -> list[str]:
    """Return ``name==floor`` for every entry of ``[project] dependencies`` and of ``extras``.

    Raises:
        ValueError: A requirement has no ``>=`` floor, or has environment
            markers (which this simple generator does not evaluate); an extra
            is not declared; or one package gets two different floors.
    """
    project = tomllib.loads(pyproject)["project"]
    requirements = list(project["dependencies"])
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise ValueError(f"no optional extra named {extra!r}")
        requirements += optional[extra]
    pins: list[str] = []
    floors: dict[str, str] = {}
    for requirement in requirements:
        name, floor = _pin(requirement)
        seen = floors.setdefault(_canonical(name), floor)
        if seen != floor:
            raise ValueError(f"{name} is given two floors: {seen} and {floor}")
        if seen is floor:
            pins.append(f"{name}=={floor}")
    return pins


def main(argv: list[str] | None = None) -> int:
    """Print the constraints of the pyproject.toml named on the command line."""
    args = list(sys.argv[1:] if argv is None else argv)
    extras: list[str] = []
    while "--extra" in args:
        at = args.index("--extra")
        if at + 1 >= len(args):
            print("lowest_constraints: --extra needs a name", file=sys.stderr)
            return 2
        extras.append(args[at + 1])
        del args[at : at + 2]
    path = Path(args[0] if args else "pyproject.toml")
    try:
        pins = lowest_constraints(path.read_text(encoding="utf-8"), extras)
    except ValueError as exc:
        print(f"lowest_constraints: {path}: {exc}", file=sys.stderr)
        return 2
    print("\n".join(pins))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
