"""The pytest11 plugin: fixtures in auto and strict mode, config override, no pytest-asyncio.

Each case runs pytest in a fresh interpreter on a tiny project in tmp_path, the way a
user's project picks the plugin up through its entry point.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from emu_helpers import Api

from koodrive_async.emulator import EmulatorConfig, KooDriveEmulator

TEST_FILE = textwrap.dedent(
    """
    import time

    import aiohttp
    import pytest

    from koodrive_async.emulator import EmulatorConfig, KooDriveEmulator


    @pytest.fixture
    def koodrive_emulator_config():
        return EmulatorConfig(task_duration=5.0, tokens={{"secret"}})


    {mark}
    async def test_uses_the_fixture(koodrive_emulator):
        assert isinstance(koodrive_emulator, KooDriveEmulator)
        assert koodrive_emulator.config.task_duration == 5.0
        headers = {{
            "Authorization": "Bearer+secret",
            "X-User-Id": "u",
            "X-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
        }}
        async with aiohttp.ClientSession() as http:
            async with http.post(
                koodrive_emulator.url + "/koodrive/ose/v1/task/create",
                json={{"srcUserId": "a", "dstUserId": "b"}},
                headers=headers,
            ) as resp:
                assert resp.status == 200
        assert len(koodrive_emulator.state.tasks()) == 1


    {mark}
    async def test_each_test_gets_a_fresh_emulator(koodrive_emulator):
        assert koodrive_emulator.state.tasks() == []


    def test_default_config_fixture_can_be_overridden(koodrive_emulator_config):
        assert koodrive_emulator_config.tokens == {{"secret"}}
    """
)


def run_pytest(path: Path, ini: str, *, hide_pytest_asyncio: bool = False) -> str:
    """Run pytest on ``path`` in a fresh interpreter, as a user's project would; return output."""
    (path / "pytest.ini").write_text("[pytest]\n" + textwrap.dedent(ini))
    # --assert=plain: rewriting every plugin's modules would triple the start-up
    # time, and pytest's rewriting import hook would sit before ours below.
    args = ["-p", "no:cacheprovider", "--assert=plain", "-c", str(path / "pytest.ini")]
    args += ["--rootdir", str(path)]
    prelude = ""
    if hide_pytest_asyncio:
        # As if pytest-asyncio were not installed.
        prelude = textwrap.dedent(
            """
            class HidePytestAsyncio:
                def find_spec(self, name, path=None, target=None):
                    if name == "pytest_asyncio" or name.startswith("pytest_asyncio."):
                        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                    return None

            sys.meta_path.insert(0, HidePytestAsyncio())
            """
        )
        args += ["-p", "no:asyncio"]
    code = f"import sys\n{prelude}\nimport pytest\nsys.exit(pytest.main({args!r}))\n"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=path, capture_output=True, text=True, timeout=60
    )
    return result.stdout + result.stderr


# This repository runs in asyncio_mode=auto, so auto mode is exercised in-process:
# this module overrides the config fixture the way a user's module would.


@pytest.fixture
def koodrive_emulator_config() -> EmulatorConfig:
    return EmulatorConfig(task_duration=5.0, tokens={"module-token"})


async def test_plugin_in_auto_mode_with_an_overridden_config(koodrive_emulator, http) -> None:
    assert isinstance(koodrive_emulator, KooDriveEmulator)
    assert koodrive_emulator.config.task_duration == 5.0
    api = Api(http, koodrive_emulator.url, token="module-token")
    await api.create()
    assert len(koodrive_emulator.state.tasks()) == 1
    assert (await Api(http, koodrive_emulator.url, token="other").list(None)).status == 401


async def test_each_test_gets_a_fresh_emulator(koodrive_emulator) -> None:
    assert koodrive_emulator.state.tasks() == [] and koodrive_emulator.requests == []


def test_plugin_in_strict_mode(tmp_path) -> None:
    (tmp_path / "test_strict.py").write_text(TEST_FILE.format(mark="@pytest.mark.asyncio"))
    output = run_pytest(
        tmp_path,
        """
        asyncio_mode = strict
        asyncio_default_fixture_loop_scope = function
        filterwarnings = error
        """,
    )
    assert "3 passed" in output, output


def test_plugin_loads_without_pytest_asyncio(tmp_path) -> None:
    (tmp_path / "test_plain.py").write_text(
        textwrap.dedent(
            """
            from koodrive_async.emulator import EmulatorConfig

            def test_config_fixture_still_works(koodrive_emulator_config):
                assert koodrive_emulator_config == EmulatorConfig()

            def test_async_fixture_explains_what_is_missing(koodrive_emulator):
                pass
            """
        )
    )
    output = run_pytest(tmp_path, "filterwarnings = error\n", hide_pytest_asyncio=True)
    assert "1 passed, 1 error" in output, output
    assert "needs pytest-asyncio" in output, output
    assert "INTERNALERROR" not in output, output
