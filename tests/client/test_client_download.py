"""KooDriveSession.download: a package's downloadUrl streamed to a file, against the emulator.

The emulator serves a real zip at the link of a completed package job; a
small server in the test drops a transfer half way, which the emulator has no
fault for.
"""

from __future__ import annotations

import asyncio
import io
import logging
import zipfile
from pathlib import Path

import pytest
from aiohttp import web

from koodrive_async import (
    APIConnectionError,
    FileInfo,
    InvalidRequestError,
    JobType,
    KooDriveSession,
    PermissionDeniedError,
)
from koodrive_async.emulator import EmulatorConfig, KooDriveEmulator

TOKEN = "t"


async def _package_link(emu: KooDriveEmulator, s: KooDriveSession) -> str:
    job_id = await s.create_job(
        JobType.PACKAGE_DOWNLOAD,
        src_container_id="C1",
        dst_container_id="C2",
        files=[FileInfo(f"F{i}") for i in range(4)],
    )
    emu.clock.advance(10.0)
    job = await s.get_job(job_id)
    assert job.download_url is not None
    return job.download_url


async def test_a_package_is_streamed_to_a_file_with_progress(tmp_path: Path) -> None:
    config = EmulatorConfig(tokens=(TOKEN,), task_duration=1.0, clock_speed=0.0)
    async with KooDriveEmulator(config) as emu:
        async with KooDriveSession(emu.url, user_id="u1", token=TOKEN) as s:
            link = await _package_link(emu, s)
            emu.clear_requests()
            seen: list[tuple[int, int | None]] = []
            target = tmp_path / "package.zip"
            size = await s.download(link, target, on_progress=lambda d, t: seen.append((d, t)))
    assert size == target.stat().st_size > 0
    with zipfile.ZipFile(io.BytesIO(target.read_bytes())) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == [f"F{i}.txt" for i in range(4)]
    assert seen and seen[-1][0] == size
    assert emu.requests == []  # not an API call: nothing in the ledger
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left


async def test_a_bad_token_in_the_link_is_an_api_error_without_the_token(tmp_path: Path) -> None:
    config = EmulatorConfig(tokens=(TOKEN,), task_duration=1.0, clock_speed=0.0)
    async with KooDriveEmulator(config) as emu:
        async with KooDriveSession(emu.url, user_id="u1", token=TOKEN) as s:
            link = await _package_link(emu, s)
            forged = link.rsplit("=", 1)[0] + "=0123456789abcdef"
            with pytest.raises(PermissionDeniedError) as caught:  # the emulator's 403
                await s.download(forged, tmp_path / "x.zip")
    assert "0123456789abcdef" not in str(caught.value)
    assert link.rsplit("=", 1)[1] not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


async def test_a_transfer_cut_short_leaves_no_file_and_names_no_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def half(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100000"})
        await response.prepare(request)
        await response.write(b"x" * 1000)
        assert request.transport is not None
        request.transport.close()  # the connection drops mid-body
        return response

    app = web.Application()
    app.router.add_get("/pkg.zip", half)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    target = tmp_path / "pkg.zip"
    caplog.set_level(logging.DEBUG, logger="koodrive_async")
    try:
        async with KooDriveSession(f"http://127.0.0.1:{port}", user_id="u1", token=TOKEN) as s:
            with pytest.raises(APIConnectionError) as caught:
                await s.download(f"http://127.0.0.1:{port}/pkg.zip?token=SeCrEt", target)
    finally:
        await runner.cleanup()
    assert "SeCrEt" not in str(caught.value) and "SeCrEt" not in caplog.text
    assert "/pkg.zip" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "path", "field"),
    [
        ("", "out.zip", "url"),
        ("ftp://host/x.zip", "out.zip", "url"),
        ("http://example.com/x.zip?token=1", "out.zip", "url"),  # a token in clear text
        ("https://example.com/x.zip", 7, "path"),
        ("https://example.com/x.zip", "missing-folder/out.zip", "path"),
    ],
)
async def test_bad_links_and_paths_are_refused_before_anything_is_fetched(
    tmp_path: Path, url: str, path: object, field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with KooDriveSession("https://example.com", user_id="u1", token=TOKEN) as s:
        with pytest.raises(InvalidRequestError) as caught:
            await asyncio.wait_for(s.download(url, path), 5)  # type: ignore[arg-type]
    assert caught.value.field == field
