"""ARCHITECTURE.md holds: its code map names every module, and the import rules it states are kept.

The map is the newcomer's guide to the house; a map that drifts from the tree
misleads, so the tree is checked against it (in both directions), and so are
the rules that make the layers what they are: only ``_http.py`` does client
I/O, the pure wire and decision modules touch neither aiohttp nor asyncio,
and nothing in the package is built with ``exec``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "koodrive_async"
MAP = ROOT / "ARCHITECTURE.md"

#: Folder of the package each "### `folder/`" section of the code map describes.
_SECTION = re.compile(r"^### `(?P<folder>[a-z_]+)/`", re.MULTILINE)
_MODULE = re.compile(r"`(?P<name>[A-Za-z_][A-Za-z0-9_]*\.py)`")

#: Modules (relative to the package) allowed to import aiohttp: the one attempt,
#: the session (it type-checks a caller's ClientSession), and the CLI's counted session.
AIOHTTP_ALLOWED = {"_http.py", "_session.py", "cli/_connect.py"}
#: Modules that decide without I/O: no aiohttp, no asyncio.
PURE = {
    "_build.py",
    "_call.py",
    "_clock.py",
    "_codec.py",
    "_coarse.py",
    "_decode.py",
    "_enums.py",
    "_estimator.py",
    "_retry.py",
    "_session_api.py",
    "_signing.py",
    "_validate.py",
    "bulk/_job_match.py",
    "bulk/_reconcile.py",
    "bulk/_retry.py",
    "bulk/_verdict.py",
}
#: A database driver belongs to its journal backend's module alone.
DRIVERS = {"sqlite3": {"bulk/_sqlite.py"}, "psycopg": {"bulk/_postgres.py"},
           "psycopg_pool": {"bulk/_postgres.py"}}  # fmt: skip


def _code_map() -> dict[str, set[str]]:
    """``{folder: module names}`` as the code map lists them ("" is the package root)."""
    text = MAP.read_text(encoding="utf-8")
    start = text.index("## Code map")
    end = text.index("\n## ", start + 1)
    body = text[start:end]
    listed: dict[str, set[str]] = {"": set()}
    folder = ""
    for block in re.split(r"(?=^### )", body, flags=re.MULTILINE):
        heading = _SECTION.match(block)
        if block.startswith("### "):
            folder = heading.group("folder") if heading else ""
        listed.setdefault(folder, set()).update(m.group("name") for m in _MODULE.finditer(block))
    return listed


def _modules() -> dict[str, set[str]]:
    """``{folder: module names}`` as the tree has them."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        folder = "" if len(rel.parts) == 1 else rel.parts[0]
        found.setdefault(folder, set()).add(path.name)
    return found


def _imports(path: Path) -> set[str]:
    """Top-level names of every module a file imports (at any depth of its code)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_code_map_names_every_module_and_no_other() -> None:
    listed, found = _code_map(), _modules()
    for folder in sorted(set(listed) | set(found)):
        missing = found.get(folder, set()) - listed.get(folder, set())
        stale = listed.get(folder, set()) - found.get(folder, set())
        where = f"koodrive_async/{folder + '/' if folder else ''}"
        assert not missing, f"ARCHITECTURE.md does not describe {sorted(missing)} in {where}"
        assert not stale, f"ARCHITECTURE.md describes {sorted(stale)}, gone from {where}"


def test_the_map_test_sees_the_sections() -> None:
    # Guards the parser above: every folder of the package has its section.
    assert {"", "bulk", "cli", "emulator"} <= set(_code_map())


@pytest.mark.parametrize(
    "module",
    sorted(
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.relative_to(PACKAGE).parts[0] != "emulator"
    ),
)
def test_only_the_http_attempt_does_client_io(module: str) -> None:
    imports = _imports(PACKAGE / module)
    if module not in AIOHTTP_ALLOWED:
        assert "aiohttp" not in imports, f"{module} imports aiohttp; client I/O lives in _http.py"
    if module in PURE:
        assert not imports & {"aiohttp", "asyncio", "socket"}, f"{module} must stay pure"


@pytest.mark.parametrize("driver", sorted(DRIVERS))
def test_a_database_driver_is_imported_by_its_backend_module_only(driver: str) -> None:
    importers = {
        str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if driver in _imports(p)
    }
    assert importers <= DRIVERS[driver], f"{driver} imported outside its backend: {importers}"


def test_nothing_in_the_package_is_built_with_exec() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in PACKAGE.rglob("*.py")
        if any(
            isinstance(node, ast.Call) and getattr(node.func, "id", None) in {"exec", "eval"}
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    ]
    assert offenders == []
