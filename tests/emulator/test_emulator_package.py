"""The emulator package: independent of the client layers, a sorted and documented public API."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import koodrive_async.emulator as emulator

PACKAGE_DIR = Path(emulator.__file__).parent


def test_emulator_imports_nothing_from_the_client() -> None:
    # An independent reading of the pages: no client layer, no shared models.
    for source in sorted(PACKAGE_DIR.glob("*.py")):
        tree = ast.parse(source.read_text(), filename=str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.level <= 1, f"{source.name} imports from outside the emulator"
                if node.level == 0 and node.module:
                    assert not node.module.startswith("koodrive_async"), (source.name, node.module)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("koodrive_async"), (source.name, alias.name)


def test_all_is_sorted_and_complete() -> None:
    assert emulator.__all__ == sorted(emulator.__all__)
    for name in emulator.__all__:
        assert hasattr(emulator, name)
    expected = {
        "EmulatorConfig",
        "ResponseVariant",
        "KooDriveEmulator",
        "create_app",
        "Fault",
        "FaultKind",
        "LedgerEntry",
        "EmulatedTask",
        "EmulatorClock",
    }
    assert expected <= set(emulator.__all__)


def test_public_names_and_methods_have_docstrings() -> None:
    for name in emulator.__all__:
        obj = getattr(emulator, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        assert inspect.getdoc(obj), name
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if (
                    attr.startswith("_")
                    or not callable(member)
                    and not isinstance(member, property)
                ):
                    continue
                assert inspect.getdoc(member), f"{name}.{attr}"
