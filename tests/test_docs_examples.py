"""Every Python example in README.md and docs/*.md runs as written, so none can rot.

- An unmarked block is a complete script: it runs in a subprocess, in a fresh
  directory, with KOODRIVE_BASE_URL / KOODRIVE_USER_ID / KOODRIVE_TOKEN /
  KOODRIVE_AGENT_NAME pointing at an emulator, and must exit 0.
- ``<!-- example: pytest -->`` marks a test file: it runs under pytest in a
  fresh directory, in pytest-asyncio's strict and auto modes.
- ``<!-- example: fragment -->`` and ``<!-- example: needs-account -->`` mark
  blocks that cannot run alone: they must still compile, and the sentence above
  the marker must tell the reader so.

docs/development.md describes these conventions for authors.
"""

from __future__ import annotations

import ast
import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from docs_helpers import MARKERS, PAGES, ROOT, CodeBlock, python_blocks, read_page

from koodrive_async.emulator import EmulatorConfig, KooDriveEmulator

BLOCKS = python_blocks()
SCRIPTS = [b for b in BLOCKS if b.marker is None]
PYTEST_FILES = [b for b in BLOCKS if b.marker == "pytest"]
COMPILE_ONLY = [b for b in BLOCKS if b.marker in ("fragment", "needs-account")]

# Generous against a loaded 2-core machine; each example takes well under a second alone.
SCRIPT_TIMEOUT = 30.0


def _ids(blocks: list[CodeBlock]) -> list[str]:
    return [b.name for b in blocks]


def _env() -> dict[str, str]:
    """The environment of an example: this checkout first on the path, nothing inherited
    from KOODRIVE_* of the caller's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOODRIVE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _compile(block: CodeBlock) -> None:
    compile(block.code, block.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


@pytest.fixture
def koodrive_emulator_config() -> EmulatorConfig:
    # Tasks of the default 1 s finish in 20 ms, so examples that wait do not sit idle.
    return EmulatorConfig(clock_speed=50.0)


def test_the_pages_have_examples_of_each_kind() -> None:
    assert ROOT / "README.md" in PAGES
    assert SCRIPTS and PYTEST_FILES and COMPILE_ONLY


@pytest.mark.parametrize("block", BLOCKS, ids=_ids(BLOCKS))
def test_every_marker_is_known_and_explained_to_the_reader(block: CodeBlock) -> None:
    if block.marker is None:
        return
    assert block.marker in MARKERS, f"{block.name}: unknown example marker {block.marker!r}"
    phrase = MARKERS[block.marker]
    if phrase is not None:
        assert phrase in block.note.lower(), (
            f"{block.name}: a {block.marker!r} block needs a sentence above its marker "
            f"saying so (containing {phrase!r}); found {block.note!r}"
        )


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_no_marker_is_left_without_a_python_block(page: Path) -> None:
    assert read_page(page).orphan_markers == ()


@pytest.mark.parametrize("block", COMPILE_ONLY, ids=_ids(COMPILE_ONLY))
def test_a_marked_example_is_still_valid_python(block: CodeBlock) -> None:
    _compile(block)


@pytest.mark.parametrize("block", SCRIPTS, ids=_ids(SCRIPTS))
def test_an_unmarked_example_is_not_a_test_file(block: CodeBlock) -> None:
    # Run as a script, a test file would only define its tests and pass without running them.
    tree = ast.parse(block.code, filename=block.name)
    tests = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    ]
    assert not tests, f"{block.name} defines {tests}: mark it <!-- example: pytest -->"


@pytest.mark.parametrize("block", SCRIPTS, ids=_ids(SCRIPTS))
async def test_an_unmarked_example_runs_against_the_emulator(
    block: CodeBlock, koodrive_emulator: KooDriveEmulator, tmp_path: Path
) -> None:
    _compile(block)  # a syntax error is reported with the page's name, not a traceback
    script = tmp_path / "example.py"
    script.write_text(block.code, encoding="utf-8")
    env = _env() | {
        "KOODRIVE_BASE_URL": koodrive_emulator.url,
        "KOODRIVE_USER_ID": "1395497048157130881",
        "KOODRIVE_TOKEN": "docs-example-token",
        "KOODRIVE_AGENT_NAME": "docs-example",
    }
    # The emulator serves from this event loop, so the script is awaited, not run blocking.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), SCRIPT_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{block.name}: the example did not finish within {SCRIPT_TIMEOUT} s")
    assert proc.returncode == 0, f"{block.name} failed:\n{output.decode(errors='replace')}"


@pytest.mark.parametrize("mode", ["strict", "auto"])
@pytest.mark.parametrize("block", PYTEST_FILES, ids=_ids(PYTEST_FILES))
def test_a_pytest_example_passes_as_a_fresh_project(
    block: CodeBlock, mode: str, tmp_path: Path
) -> None:
    _compile(block)
    (tmp_path / "test_example.py").write_text(block.code, encoding="utf-8")
    # An empty configuration of its own, so nothing of this repository's pytest setup leaks
    # in, and only the two plugins a user's project needs: as in a fresh project, and
    # without the seconds that loading every installed plugin (schemathesis, ...) takes.
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    env = _env() | {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "pytest_asyncio.plugin",
            "-p",
            "koodrive_async.emulator.pytest_plugin",
            "-o",
            f"asyncio_mode={mode}",
            "test_example.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT * 2,
        check=False,
    )
    assert result.returncode == 0, f"{block.name} ({mode}):\n{result.stdout}\n{result.stderr}"
    assert "passed" in result.stdout
