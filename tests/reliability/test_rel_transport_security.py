"""Transport security: no token over plain http, TLS verified, no redirects followed.

* ``http://`` is refused (InvalidRequestError, at construction, so nothing can
  be sent) unless the host is loopback or ``allow_insecure_http=True``.
* TLS certificates are verified: a server whose certificate the system does not
  trust is an APIConnectionError and never sees a request; a caller who trusts
  it passes their own ``aiohttp.ClientSession`` with their SSL context.
* Redirects are never followed (``allow_redirects=False`` on every call): a 3xx
  becomes an APIError, so the Authorization header never travels to the host a
  ``Location`` names. A tiny server on another loopback port records whether
  anything arrived.

The TLS material at the end of this file is a throwaway test CA and a
``localhost``/127.0.0.1 certificate it signed (valid 2000-2099), made with
``openssl ca`` for these tests only; the private key protects nothing.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from koodrive_async import (
    APIConnectionError,
    APIError,
    FileInfo,
    InvalidRequestError,
    JobType,
    KooDriveSession,
    RetryPolicy,
)
from koodrive_async.emulator import EmulatorConfig, create_app
from koodrive_async.emulator._app import CORE_KEY

TOKEN = "tls-test-token-c0ffee"
FAST_RETRY = RetryPolicy(max_attempts=2, initial_backoff=0.001, max_backoff=0.002)

# --------------------------------------------------------------------------- http://


@pytest.mark.parametrize(
    "url",
    [
        "http://intl.myhuaweicloud-koodrive.com",
        "http://10.0.0.1:8080",
        "http://127.0.0.1.example.com",
        "http://localhost.example.com/",
        "http://[2001:db8::1]",
        "http://0x7f.1",
        "HTTP://example.com",
    ],
)
def test_plain_http_to_a_remote_host_is_refused(url: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        KooDriveSession(url, user_id="u", token=TOKEN)
    assert info.value.field == "base_url"
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.8.9.10",
        "http://localhost:1234/",
        "http://LOCALHOST",
        "http://[::1]:9000",
        "https://intl.myhuaweicloud-koodrive.com",
    ],
)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    session = KooDriveSession(url, user_id="u", token=TOKEN)
    assert session.base_url == url.rstrip("/")


def test_allow_insecure_http_opts_in() -> None:
    session = KooDriveSession(
        "http://gateway.internal:8080", user_id="u", token=TOKEN, allow_insecure_http=True
    )
    assert session.base_url == "http://gateway.internal:8080"


@pytest.mark.parametrize(
    "url", ["ftp://example.com", "https://user:pw@example.com", "example.com", "https://"]
)
def test_other_schemes_and_credentials_in_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidRequestError):
        KooDriveSession(url, user_id="u", token=TOKEN)


# --------------------------------------------------------------------------- TLS


@asynccontextmanager
async def _serve(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """Serve an app on 127.0.0.1 (an ephemeral port); yield the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    server = site._server
    assert server is not None
    port: int = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    try:
        yield port
    finally:
        await runner.cleanup()


def _server_context(tmp_path: Path) -> ssl.SSLContext:
    cert = tmp_path / "cert.pem"
    key = tmp_path / "key.pem"
    cert.write_text(TEST_CERT_PEM)
    key.write_text(TEST_KEY_PEM)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
async def tls_emulator(tmp_path: Path) -> AsyncIterator[tuple[str, web.Application]]:
    app = create_app(EmulatorConfig())
    async with _serve(app, _server_context(tmp_path)) as port:
        yield f"https://localhost:{port}", app


async def test_an_untrusted_certificate_is_refused_and_nothing_is_sent(
    tls_emulator: tuple[str, web.Application],
) -> None:
    url, app = tls_emulator
    async with KooDriveSession(url, user_id="u", token=TOKEN, retry=FAST_RETRY) as s:
        with pytest.raises(APIConnectionError) as info:
            await s.create_job(
                JobType.COPY, src_container_id="a", dst_container_id="b", files=[FileInfo("f")]
            )
        with pytest.raises(APIConnectionError):
            await s.get_task("1")
    # The handshake failed before any byte of the request: not possibly created.
    assert info.value.possibly_created is False
    assert "certificate" in str(info.value).lower()
    assert TOKEN not in str(info.value)
    assert list(app[CORE_KEY].ledger) == []


async def test_a_caller_owned_session_with_its_own_ssl_context_works(
    tls_emulator: tuple[str, web.Application],
) -> None:
    url, app = tls_emulator
    context = ssl.create_default_context(cadata=TEST_CA_PEM)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
        async with KooDriveSession(url, user_id="u", token=TOKEN, session=http) as s:
            task_id = await s.create_job(
                JobType.COPY, src_container_id="a", dst_container_id="b", files=[FileInfo("f")]
            )
            assert (await s.get_task(task_id)).task_id == task_id
        # Closing the KooDriveSession left the caller's session open.
        assert not http.closed
    assert [e.status for e in app[CORE_KEY].ledger] == [200, 200]


async def test_a_wrong_host_name_is_refused_even_with_a_trusted_ca(tmp_path: Path) -> None:
    """The certificate names localhost and 127.0.0.1; 127.0.0.2 is not in it."""
    app = create_app(EmulatorConfig())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.2", 0, ssl_context=_server_context(tmp_path))
    try:
        await site.start()
    except OSError:  # pragma: no cover - a system without 127.0.0.0/8 routing
        await runner.cleanup()
        pytest.fail("cannot bind 127.0.0.2")
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    context = ssl.create_default_context(cadata=TEST_CA_PEM)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
            async with KooDriveSession(
                f"https://127.0.0.2:{port}",
                user_id="u",
                token=TOKEN,
                session=http,
                retry=FAST_RETRY,
            ) as s:
                with pytest.raises(APIConnectionError):
                    await s.get_task("1")
    finally:
        await runner.cleanup()
    assert list(app[CORE_KEY].ledger) == []


# --------------------------------------------------------------------------- redirects


class _Recorder:
    """The other host: records every request and its Authorization header."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, request.path, request.headers.get("Authorization")))
        return web.json_response({"taskId": "666", "data": "666", "code": 0, "msg": "ok"})


@asynccontextmanager
async def _redirecting(status: int, location: str) -> AsyncIterator[tuple[str, list[str]]]:
    """A server on 127.0.0.1 that answers every request with a redirect."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=status, headers={"Location": location + request.path_qs})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with _serve(app) as port:
        yield f"http://127.0.0.1:{port}", hits


@pytest.fixture
async def other_host() -> AsyncIterator[tuple[str, _Recorder]]:
    recorder = _Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    async with _serve(app) as port:
        # Another host name (localhost, not 127.0.0.1) and another port.
        yield f"http://localhost:{port}", recorder


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_not_followed(other_host: tuple[str, _Recorder], status: int) -> None:
    target, recorder = other_host
    async with _redirecting(status, target) as (url, hits):
        async with KooDriveSession(url, user_id="u", token=TOKEN, retry=FAST_RETRY) as s:
            with pytest.raises(APIError) as get_info:
                await s.get_task("1")
            with pytest.raises(APIError) as post_info:
                await s.create_job(
                    JobType.COPY, src_container_id="a", dst_container_id="b", files=[FileInfo("f")]
                )
    assert recorder.seen == [], "a redirect was followed to another host"
    # Each call went out once: a redirect is an answer, not something to retry.
    assert len(hits) == 2
    for info in (get_info, post_info):
        assert info.value.status_code == status
        assert "redirect" in str(info.value)
        assert TOKEN not in str(info.value)
    # The redirect proves nothing about creation either way; it is not a 5xx.
    assert post_info.value.possibly_created is False


async def test_redirects_are_not_followed_with_a_caller_owned_session(
    other_host: tuple[str, _Recorder],
) -> None:
    target, recorder = other_host
    async with _redirecting(302, target) as (url, _hits):
        async with aiohttp.ClientSession() as http:
            async with KooDriveSession(url, user_id="u", token=TOKEN, session=http) as s:
                with pytest.raises(APIError) as info:
                    await s.get_task("1")
    assert info.value.status_code == 302
    assert recorder.seen == []


async def test_the_recorder_does_see_authorization_when_called_directly(
    other_host: tuple[str, _Recorder],
) -> None:
    """The control: the other host records the header when it is the target,
    so an empty record above means nothing arrived, not that nothing was noticed."""
    target, recorder = other_host
    async with KooDriveSession(target, user_id="u", token=TOKEN) as s:
        await s.get_task("666")
    assert recorder.seen == [("GET", "/koodrive/ose/v1/task/666", f"Bearer {TOKEN}")]


# --------------------------------------------------------------------------- test TLS material

TEST_CA_PEM = """\
-----BEGIN CERTIFICATE-----
MIIDATCCAemgAwIBAgIBATANBgkqhkiG9w0BAQsFADAhMR8wHQYDVQQDDBZrb29k
cml2ZS1hc3luYyB0ZXN0IENBMCAXDTAwMDEwMTAwMDAwMFoYDzIwOTkxMjMxMDAw
MDAwWjAhMR8wHQYDVQQDDBZrb29kcml2ZS1hc3luYyB0ZXN0IENBMIIBIjANBgkq
hkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApuOCMKUkVAqPC3VdACy39NBLtmdtsztp
LDvek/egq77LThoDvy4cqB/I2DyTXBCVHE+f7mn52XEFWzcUVWtWZUV/03GrdAp+
3v1TnVQnh1Pu3FhwQT/h5wOpDoFpog+RDgLbxXJLwebWBqORsuMOLaXduhvSfEKv
RuvQozBUMdL43APLh8aFKIMTq1oAg2oBiFcKJwYjsCQz2FvyRSkegPl0o60IJQvA
J13S8j22/SFXcDpFOjzjw3ba+uf+D3i7EWeQWScgfHpiDCFHM5exavhZg378SF/y
mfLQ2Ix8HdAfalmmbGaY9Ma58phwT3FvlrUTUxSpX0NcpDQCtynPcQIDAQABo0Iw
QDAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAdBgNVHQ4EFgQUtLuf
6v3Kk2yd8vD2AB4g7lDC7jgwDQYJKoZIhvcNAQELBQADggEBAH2HjMrzYrJCbJoU
X2f5Cs0Kf6+v7uRWEGa2/uVEfYSCW+i0X/KRizDEdwC2Rc1cmxLFAjN4gYVurj2J
n7BPgoU5jDUdFinH4JkL8RhQFHt1j0Y4ox/PRc8F5iJ7BgqEwXtqeuAVRyGdfQ5z
NTuj4a0YkKa0+qkjZ4dmN6VgO9Z3IHkiW0b0WglwH8kK/QlREZS2knx/qPozWE8c
CghnXinZQxIbgpdPOzXXUL9jwC8nxktwRUrZxumkQZM2xof4TpuyQPsYn0BPnMmA
v5U7VXWJvj9kmb8Q53z114aG4UwKZsjrV0pRk4xBml9s13FPaXjMJ0OojS9Eg2WR
QlhGf0o=
-----END CERTIFICATE-----
"""

TEST_CERT_PEM = """\
-----BEGIN CERTIFICATE-----
MIIDRTCCAi2gAwIBAgIBAjANBgkqhkiG9w0BAQsFADAhMR8wHQYDVQQDDBZrb29k
cml2ZS1hc3luYyB0ZXN0IENBMCAXDTAwMDEwMTAwMDAwMFoYDzIwOTkxMjMxMDAw
MDAwWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwggEiMA0GCSqGSIb3DQEBAQUAA4IB
DwAwggEKAoIBAQCw25cIZWiUy5Q/0vVcZE/7WRSqTlUQs1DViU62DgwO1VLw7+P4
mAg3/kJ/MChPWz2FQde5Pwgs5Q8SXSIMuRMbkVvH8HiJ0sbET6norBu418113h5C
Y81Mk/dh+kpT425BRZhXBUAkUX2jvHM+epyl5N3rsEZ0HT2M3sbm/488bagAlZy6
5vFHluUxAQJuYxrtzTnXgWMNBQ4m4gHpXU4n6mY59zauCElJ5jcfIoWIC3cux0An
bbGJ3QFpyobgrHQjppSsCEZEWaIVJbqeE+5CrB5+fZVouBP69vXglle/6WWFSDtk
BE8w1x5IOeNfBbtDYGqPYnX+rcf35nUcvRh7AgMBAAGjgZIwgY8wDAYDVR0TAQH/
BAIwADAOBgNVHQ8BAf8EBAMCBaAwEwYDVR0lBAwwCgYIKwYBBQUHAwEwGgYDVR0R
BBMwEYIJbG9jYWxob3N0hwR/AAABMB8GA1UdIwQYMBaAFLS7n+r9ypNsnfLw9gAe
IO5Qwu44MB0GA1UdDgQWBBQaPubD4m17V3C2vMX/498ZbfOM0jANBgkqhkiG9w0B
AQsFAAOCAQEAZl8gH3/SJrUwji4h9+KbIcHVDEfewweAi0v+ji9rApllyVVFMCfc
g1o4KedzApqX+z+GYCjywIZE5adp5YAg9SpFMkriahKQqGzCNoZHkDT/mEzqIHDl
Fi+ABy0xspnE2mSBJrrtLzHEfmnv0/8lcdPwl26RSM0YIIerp4XsMJnHIk46Y7kr
AvmzJRYWS87cMQunMEYn99phM+MkYIAbPqi42pshHlFG/KH39LznhWXbFy0yMAMk
TI6/DGVqFFy6/Un3i6FR1xgsBXkS3nEX4se3+1ZC2Oa3majvrK7cNXdszix6ekVm
/F9IKLJIwJQaX9SuzmALuogK9mx6hkE/mw==
-----END CERTIFICATE-----
"""

TEST_KEY_PEM = """\
-----BEGIN PRIVATE KEY-----
MIIEuwIBADANBgkqhkiG9w0BAQEFAASCBKUwggShAgEAAoIBAQCw25cIZWiUy5Q/
0vVcZE/7WRSqTlUQs1DViU62DgwO1VLw7+P4mAg3/kJ/MChPWz2FQde5Pwgs5Q8S
XSIMuRMbkVvH8HiJ0sbET6norBu418113h5CY81Mk/dh+kpT425BRZhXBUAkUX2j
vHM+epyl5N3rsEZ0HT2M3sbm/488bagAlZy65vFHluUxAQJuYxrtzTnXgWMNBQ4m
4gHpXU4n6mY59zauCElJ5jcfIoWIC3cux0AnbbGJ3QFpyobgrHQjppSsCEZEWaIV
JbqeE+5CrB5+fZVouBP69vXglle/6WWFSDtkBE8w1x5IOeNfBbtDYGqPYnX+rcf3
5nUcvRh7AgMBAAECggEAAMQy11p5JYvsTIqBfbEBl7k/Ga3VOIlOZF5/9NICw12x
SlH/zuf5wSRc7WgsBIwErDso0CixxGAJvK6ioyN6LbhniWpFW3OKYPdnaRa12As3
XLdlsiv0i8xoWghXoh1uMOI4Usg3CvE/diIu7apiW2WugIL3CzHFPoMIoZ+h40Uk
hqefZ7IEvAF8MptGdJBeJMajXzRlmc3Az+NkiVCaH7gk495IJ3xdiGq6GEQN+AP3
yWk7PRlW0/pGva1CTG+xWNrpdpDC5xCvxGg10hh7YqdQ/KV0KzSIFKNQZbphLv3M
VFJlZrQrvDqp3VKSFNoJI1MF5gydYIs3w4na3UTlIQKBgQDrtAP+Hzn4zndDV0D7
bDogFfkQSrfi9a8GSSTv19ktDQ6vKODxzIlsCMOsm/XFswXc2KtdRUzffEkUjwvh
PqD1BMp/jak/9ftBJV3vxy+GY2wNLTXRfppZsOD79y2N+XKMyHCR3Hxc0ywibzRV
eBZh19LQZAYiAK6aJXDzmE/hRQKBgQDAFlmtpTWY5uXCN/jCpXl4AmRBINOXWNHe
uX9kXDVPsEAfnnP+x8mqEgcJnhUZ6OjvoOjSXDLqGwE/04iVrqwkfF9mt2iEqOE7
5PveZQq7lLPFogKGBlR0umf4+O8tf0T64gwxjVNE71Yqu8jLt/TEXPxGRfCtFrMu
8XNXCg1OvwKBgBmLvi8JtV/JCNYMm+dkGHynxQHGB14a4KhevxkbnNcsJh5H4PF0
CKTj4klP8fhGaelAtnn6a9WBA+6tfk0gW5OSvFvMv75F68Boy2CUhwsatXhMIRwe
i54S9J96b76GfarSgpjce8IXxR3KTbLBvDNIj/m0DZIb3tCoJDDSnj29An8+RwDM
S8QUzsevMHZ2pS+8uQnIE9yGNUXV8E5dO4gNThd8KONyt1Oq0C138MjmnZzoFENn
8HyRai/9gZfG79rf+XL02oIIgLiFsrf2YswYBR5D9ULcMTEwpz8OeacSGTFEJgXO
CwP0VaSaNkfjxMCW6Y7hOcvOUo3FqoK6tYebAoGBAMfOMNBxmipU083QTb92VjX2
p/LcmqrYG66jXHqI/+8XJBSKpJv5botTMOPnAH1WORwh2U4df8lRc2xznAheMyFl
QtuPE2JfKXqMPub+s5K0+GVNDHu7vVeaYyKCCTfXAiSqlkZJuvWmV0NcbCgFk2aI
O1MyjEekuVrW0cvQq+cq
-----END PRIVATE KEY-----
"""
