"""Networks users have, on loopback: a custom CA (the emulator over TLS with a
certificate from a CA made here) and an HTTP proxy (CONNECT and forwarding)
named explicitly or by the environment (``trust_env=True``)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from client_helpers import make_session

from koodrive_async import (
    APIConnectionError,
    InvalidRequestError,
    KooDriveSession,
    RetryPolicy,
    TransferTaskRequest,
)
from koodrive_async.bulk._mask import mask
from koodrive_async.cli._codes import UsageError
from koodrive_async.cli._connect import ENV_CA_BUNDLE, Connection, open_session
from koodrive_async.emulator import KooDriveEmulator

ONCE = RetryPolicy(max_attempts=1)
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a server certificate for 127.0.0.1 signed by it (openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=30)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=koodrive test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return d


@pytest.fixture
def no_env_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@asynccontextmanager
async def tls_emulator(pki: Path) -> AsyncIterator[KooDriveEmulator]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki / "server.pem", pki / "server.key")
    async with KooDriveEmulator(ssl=server) as emu:
        yield emu


def client_context(pki: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki / "ca.pem"))


class Proxy:
    """A tiny HTTP proxy: CONNECT tunnels and absolute-form forwarding; records request lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.url = ""
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line = head.split(b"\r\n", 1)[0].decode()
        self.lines.append(line)
        method, target, _ = line.split(" ", 2)
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
        else:  # absolute form: http://host:port/path
            host, port = target.split("/")[2].rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            up_writer.write(head)
        for pipe in (self._pipe(reader, up_writer), self._pipe(up_reader, writer)):
            task = asyncio.create_task(pipe)
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


# ------------------------------------------------------------------ custom CA


async def test_a_custom_ca_context_verifies_the_service(pki: Path) -> None:
    async with tls_emulator(pki) as emu:
        assert emu.url.startswith("https://127.0.0.1:")
        async with make_session(emu.url, ssl=client_context(pki)) as s:
            task_id = await s.create_transfer_task(src_user_id="a", dst_user_id="b")
            assert (await s.get_task(task_id)).task_id == task_id


async def test_without_the_ca_the_certificate_is_refused_and_nothing_is_created(
    pki: Path,
) -> None:
    async with tls_emulator(pki) as emu:
        async with make_session(emu.url, retry=ONCE) as s:
            with pytest.raises(APIConnectionError) as info:
                await s.create_transfer_task(src_user_id="a", dst_user_id="b")
        assert not info.value.possibly_created
        assert emu.requests == []


async def test_the_ca_context_applies_to_a_callers_session_too(pki: Path) -> None:
    import aiohttp

    async with tls_emulator(pki) as emu, aiohttp.ClientSession() as http:
        async with make_session(emu.url, ssl=client_context(pki), session=http) as s:
            await s.list_tasks()
        assert len(emu.requests) == 1


def test_ssl_must_be_an_ssl_context() -> None:
    with pytest.raises(InvalidRequestError) as info:
        make_session("https://example.com", ssl=True)
    assert info.value.field == "ssl"


async def test_the_cli_reads_koodrive_ca_bundle(pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with tls_emulator(pki) as emu:
        monkeypatch.setenv(ENV_CA_BUNDLE, str(pki / "ca.pem"))
        session, requests_made, close = await open_session(Connection(emu.url, "u", "t"))
        try:
            await session.list_tasks()
        finally:
            await close()
        assert requests_made() == 1
        monkeypatch.setenv(ENV_CA_BUNDLE, str(pki / "missing.pem"))
        with pytest.raises(UsageError, match=ENV_CA_BUNDLE):
            await open_session(Connection(emu.url, "u", "t"))


# ------------------------------------------------------------------ proxies


@pytest.mark.usefixtures("no_env_proxy")
async def test_an_explicit_proxy_carries_every_request(koodrive_emulator: KooDriveEmulator) -> None:
    async with Proxy() as proxy:
        async with make_session(koodrive_emulator.url, proxy=proxy.url) as s:
            await s.create_transfer_task(src_user_id="a", dst_user_id="b")
    assert proxy.lines == [f"POST {koodrive_emulator.url}/koodrive/ose/v1/task/create HTTP/1.1"]
    assert len(koodrive_emulator.requests) == 1


@pytest.mark.usefixtures("no_env_proxy")
async def test_https_through_a_connect_proxy_with_the_custom_ca(pki: Path) -> None:
    async with tls_emulator(pki) as emu, Proxy() as proxy:
        async with make_session(emu.url, proxy=proxy.url, ssl=client_context(pki)) as s:
            await s.list_tasks()
        assert proxy.lines == [f"CONNECT {emu.url.removeprefix('https://')} HTTP/1.1"]
        assert len(emu.requests) == 1


@pytest.mark.usefixtures("no_env_proxy")
async def test_environment_proxies_only_with_trust_env(
    koodrive_emulator: KooDriveEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        async with make_session(koodrive_emulator.url) as s:
            await s.list_tasks()
        assert proxy.lines == []  # not asked: the environment is ignored
        async with make_session(koodrive_emulator.url, trust_env=True) as s:
            await s.list_tasks()
        assert len(proxy.lines) == 1 and proxy.lines[0].startswith("GET http://127.0.0.1:")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with make_session(koodrive_emulator.url, trust_env=True) as s:
            await s.list_tasks()
        assert len(proxy.lines) == 1  # NO_PROXY names the host: direct
    assert len(koodrive_emulator.requests) == 3


@pytest.mark.usefixtures("no_env_proxy")
async def test_https_proxy_from_the_environment(pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with tls_emulator(pki) as emu, Proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        async with make_session(emu.url, trust_env=True, ssl=client_context(pki)) as s:
            await s.list_tasks()
        assert [line.split()[0] for line in proxy.lines] == ["CONNECT"]


def test_proxy_and_trust_env_are_checked() -> None:
    with pytest.raises(InvalidRequestError) as info:
        make_session("http://127.0.0.1:1", proxy="socks5://127.0.0.1:1080")
    assert info.value.field == "proxy"
    with pytest.raises(InvalidRequestError) as info:
        make_session("http://127.0.0.1:1", proxy="http://user:hunter2@")
    assert "hunter2" not in str(info.value)
    with pytest.raises(InvalidRequestError):
        make_session("http://127.0.0.1:1", trust_env="yes")


def test_a_proxy_password_is_not_in_the_repr() -> None:
    s = make_session("http://127.0.0.1:1", proxy="http://user:hunter2@127.0.0.1:3128")
    assert "hunter2" not in repr(s)


async def test_a_refused_proxy_password_is_in_no_error_or_journaled_text() -> None:
    # A proxy that answers every CONNECT with 407: aiohttp's error quotes the
    # proxy URL, user:password included; neither the error nor the text the
    # bulk journal keeps of it may carry the password.
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy = f"http://user:S3CRET-PW@127.0.0.1:{port}"
    try:
        async with KooDriveSession(
            "https://service.example", user_id="u1", token="t", proxy=proxy
        ) as s:
            with pytest.raises(APIConnectionError) as caught:
                await s.submit(TransferTaskRequest(src_user_id="a", dst_user_id="b"))
    finally:
        server.close()
        await server.wait_closed()
    text = f"{caught.value} {caught.value!r}"
    assert "S3CRET-PW" not in text
    assert not caught.value.possibly_created  # the CONNECT was refused: nothing was sent
    assert "S3CRET-PW" not in mask(str(caught.value))
