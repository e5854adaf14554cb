"""The emulator's app-signature verifier (``emulator/_signature.py``).

It is a second implementation of the signing rules: these tests check it
from first principles, then against the client's signer over many random
requests and over a real loopback socket (where aiohttp decides the Host
header and the bytes of the path).
"""

from __future__ import annotations

import hashlib
import hmac
import random
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from koodrive_async._signing import Signer
from koodrive_async.emulator._signature import Reason, VerificationResult, is_app_auth, verify

APP_ID = "app-0001"
SECRET = "emulator-AppSecret-never-shown-93b2"
APPS = {APP_ID: SECRET, "other-app": "another-secret"}
X_DATE = "20240909T033325Z"
USER_ID = "1505084218764547200"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _authorization(canonical: str, *, secret: str = SECRET, app_id: str = APP_ID) -> str:
    """Sign a hand-written canonical request with hashlib/hmac only."""
    to_sign = "HMAC-SHA256\n" + _sha(canonical.encode())
    signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    signed = canonical.split("\n")[-2]
    return f"HMAC-SHA256 AppId={app_id},SignedHeaders={signed},Signature={signature}"


BODY = b'{"fileIds":["1"]}'
CANONICAL = (
    "POST\n"
    "/koodrive/ose/v1/task/a%2Fb/\n"
    "limit=10&offset=0&status=1&status=2\n"
    "host:127.0.0.1:8080\n"
    f"x-date:{X_DATE}\n"
    f"x-user-id:{USER_ID}\n"
    "\n"
    "host;x-date;x-user-id\n" + _sha(BODY)
)


def _headers(**extra: str) -> dict[str, str]:
    headers = {
        "Host": "127.0.0.1:8080",
        "X-Date": X_DATE,
        "X-User-Id": USER_ID,
        "Authorization": _authorization(CANONICAL),
    }
    headers.update(extra)
    return headers


def _check(
    path: str = "/koodrive/ose/v1/task/a%2Fb",
    query: str = "offset=0&limit=10&status=2&status=1",
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    body: bytes | None = BODY,
    method: str = "POST",
) -> VerificationResult:
    return verify(APPS, method, path, query, _headers() if headers is None else headers, body)


def test_a_request_signed_by_hand_verifies() -> None:
    result = verify(
        APPS,
        "POST",
        "/koodrive/ose/v1/task/a%2Fb",
        "offset=0&limit=10&status=2&status=1",
        _headers(),
        BODY,
    )
    assert result.ok, result.detail
    assert result.reason is None
    assert result.app_id == APP_ID
    assert result.canonical_request == CANONICAL
    assert result.string_to_sign == "HMAC-SHA256\n" + _sha(CANONICAL.encode())


@pytest.mark.parametrize(
    ("method", "path", "query", "extra"),
    [
        # Equivalent spellings of the same request, as a server may receive them.
        ("post", "/koodrive/ose/v1/task/a%2fb", "offset=0&limit=10&status=2&status=1", {}),
        ("POST", "/koodrive/ose/v1/task/a%2Fb/", "status=1&limit=10&&offset=0&status=2", {}),
        ("POST", "/koodrive/ose/v1/task/a%2Fb", "%6Fffset=0&limit=1%30&status=2&status=1", {}),
        ("POST", "/koodrive/ose/v1/task/a%2Fb?offset=0&limit=10&status=2&status=1", "", {}),
        (
            "POST",
            "/koodrive/ose/v1/task/a%2Fb",
            "offset=0&limit=10&status=2&status=1",
            {
                "x-date": f"  {X_DATE}\t",
                "X-Traceid": "unsigned headers do not matter",
            },
        ),
    ],
)
def test_equivalent_forms_verify(method: str, path: str, query: str, extra: dict[str, str]) -> None:
    headers = _headers()
    if "x-date" in extra:
        del headers["X-Date"]
    headers.update(extra)
    result = verify(APPS, method, path, query, headers, BODY)
    assert result.ok, result.detail
    assert result.canonical_request == CANONICAL


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"path": "/koodrive/ose/v1/task/a/b"}, Reason.SIGNATURE_MISMATCH),
        ({"path": "/koodrive/ose/v1/task/a%252Fb"}, Reason.SIGNATURE_MISMATCH),
        ({"query": "offset=0&limit=100&status=2&status=1"}, Reason.SIGNATURE_MISMATCH),
        ({"query": "offset=0&limit=10&status=2"}, Reason.SIGNATURE_MISMATCH),
        ({"body": b'{"fileIds":["2"]}'}, Reason.SIGNATURE_MISMATCH),
        ({"body": None}, Reason.SIGNATURE_MISMATCH),
        ({"method": "PUT"}, Reason.SIGNATURE_MISMATCH),
        ({"headers": {"X-Date": "20240909T033326Z"}}, Reason.SIGNATURE_MISMATCH),
        ({"headers": {"Host": "127.0.0.1"}}, Reason.SIGNATURE_MISMATCH),
        ({"headers": {"X-User-Id": "1 505084218764547200"}}, Reason.SIGNATURE_MISMATCH),
    ],
)
def test_any_change_to_a_signed_part_is_a_mismatch(
    change: dict[str, object], reason: Reason
) -> None:
    kwargs: dict[str, object] = dict(change)
    if "headers" in change:
        kwargs["headers"] = _headers(**change["headers"])  # type: ignore[arg-type]
    result = _check(**kwargs)  # type: ignore[arg-type]
    assert not result.ok
    assert result.reason is reason
    assert result.canonical_request is not None


def test_a_wrong_secret_is_a_mismatch() -> None:
    headers = _headers(Authorization=_authorization(CANONICAL, secret="not-the-secret"))
    assert _check(headers=headers).reason is Reason.SIGNATURE_MISMATCH


def _signature_of(canonical: str) -> str:
    return _authorization(canonical).rsplit("Signature=", 1)[1]


SIG = _signature_of(CANONICAL)


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, Reason.NO_AUTHORIZATION),
        ("Bearer abc", Reason.BAD_AUTHORIZATION),
        (
            f"HMAC-SHA1 AppId={APP_ID},SignedHeaders=host;x-date;x-user-id,Signature={SIG}",
            Reason.BAD_AUTHORIZATION,
        ),
        (
            f"HMAC-SHA256  AppId={APP_ID},SignedHeaders=host;x-date;x-user-id,Signature={SIG}",
            Reason.BAD_AUTHORIZATION,
        ),
        (
            f"HMAC-SHA256 AppId={APP_ID}, SignedHeaders=host;x-date;x-user-id,Signature={SIG}",
            Reason.BAD_AUTHORIZATION,
        ),
        (
            f"HMAC-SHA256 AppId={APP_ID},SignedHeaders=host;x-date;x-user-id",
            Reason.BAD_AUTHORIZATION,
        ),
        (
            f"HMAC-SHA256 AppId={APP_ID},AppId={APP_ID},SignedHeaders=host;x-date;x-user-id"
            f",Signature={SIG}",
            Reason.BAD_AUTHORIZATION,
        ),
        (
            f"HMAC-SHA256 AppId=,SignedHeaders=host;x-date;x-user-id,Signature={SIG}",
            Reason.BAD_AUTHORIZATION,
        ),
        (
            f"HMAC-SHA256 AppId={APP_ID},SignedHeaders=host;x-date;x-user-id"
            f",Signature={SIG.upper()}",
            Reason.BAD_AUTHORIZATION,
        ),
        (
            f"HMAC-SHA256 AppId={APP_ID},SignedHeaders=host;x-date;x-user-id,Signature={SIG[:-1]}",
            Reason.BAD_AUTHORIZATION,
        ),
        (
            f"HMAC-SHA256 AppId={APP_ID},SignedHeaders=x-date;host;x-user-id,Signature={SIG}",
            Reason.BAD_AUTHORIZATION,
        ),
        (
            f"HMAC-SHA256 AppId={APP_ID},SignedHeaders=Host;x-date;x-user-id,Signature={SIG}",
            Reason.BAD_AUTHORIZATION,
        ),
        (
            f"HMAC-SHA256 AppId={APP_ID},SignedHeaders=host;host;x-date;x-user-id,Signature={SIG}",
            Reason.BAD_AUTHORIZATION,
        ),
        (
            f"HMAC-SHA256 AppId={APP_ID},SignedHeaders=host;;x-date;x-user-id,Signature={SIG}",
            Reason.BAD_AUTHORIZATION,
        ),
        (
            f"HMAC-SHA256 AppId={APP_ID},SignedHeaders=authorization;x-date;x-user-id"
            f",Signature={SIG}",
            Reason.BAD_AUTHORIZATION,
        ),
        (
            f"HMAC-SHA256 AppId=nobody,SignedHeaders=host;x-date;x-user-id,Signature={SIG}",
            Reason.UNKNOWN_APP,
        ),
        (
            f"HMAC-SHA256 AppId={APP_ID},SignedHeaders=host;x-user-id,Signature={SIG}",
            Reason.UNSIGNED_REQUIRED_HEADER,
        ),
        (
            f"HMAC-SHA256 AppId={APP_ID},SignedHeaders=host;x-date,Signature={SIG}",
            Reason.UNSIGNED_REQUIRED_HEADER,
        ),
        (
            f"HMAC-SHA256 AppId={APP_ID},SignedHeaders=host;x-custom;x-date;x-user-id"
            f",Signature={SIG}",
            Reason.MISSING_SIGNED_HEADER,
        ),
        # The fields may come in another order; the signature is then checked.
        (f"HMAC-SHA256 Signature={SIG},SignedHeaders=host;x-date;x-user-id,AppId={APP_ID}", None),
    ],
)
def test_refusals_say_why(authorization: str | None, reason: Reason | None) -> None:
    headers = _headers()
    if authorization is None:
        del headers["Authorization"]
    else:
        headers["Authorization"] = authorization
    result = _check(headers=headers)
    assert result.reason is reason
    assert result.ok is (reason is None)
    assert SECRET not in repr(result)


def test_repeated_headers_are_refused() -> None:
    pairs = list(_headers().items())
    assert _check(headers=[*pairs, ("x-user-id", USER_ID)]).reason is Reason.REPEATED_SIGNED_HEADER
    auth = ("authorization", _headers()["Authorization"])
    assert _check(headers=[*pairs, auth]).reason is Reason.BAD_AUTHORIZATION
    # An unsigned header given twice is no concern of the signature.
    assert _check(headers=[*pairs, ("X-Traceid", "a"), ("X-Traceid", "b")]).ok


def test_the_required_headers_are_configurable() -> None:
    canonical = "GET\n/\n\nhost:h\n\nhost\n" + _sha(b"")
    headers = {"Host": "h", "Authorization": _authorization(canonical)}
    assert verify(APPS, "GET", "/", "", headers, None).reason is Reason.UNSIGNED_REQUIRED_HEADER
    result = verify(APPS, "GET", "", "", headers, None, required_signed_headers=())
    assert result.ok and result.canonical_request == canonical


def test_encoding_edge_cases_of_the_server_side() -> None:
    # A lone "%" is literal, "+" is a plus, unreserved escapes are decoded,
    # unicode is UTF-8, empty values keep "=", names alone get one.
    canonical = (
        "GET\n/100%25/%E2%82%AC/~x//\nF=&a=%2B&b=%20&b=~\nx-date:d\nx-user-id:u\n\n"
        "x-date;x-user-id\n" + _sha(b"")
    )
    headers = {"X-Date": "d", "X-User-Id": "u", "Authorization": _authorization(canonical)}
    result = verify(APPS, "GET", "/100%/€/%7ex//", "b=~&a=+&b=%20&F", headers, b"")
    assert result.ok, result.canonical_request


def test_is_app_auth() -> None:
    assert is_app_auth(_headers())
    assert is_app_auth([("authorization", "HMAC-SHA256 AppId=x")])
    assert not is_app_auth({"Authorization": "Bearer t"})
    assert not is_app_auth({})


def test_no_secret_in_any_result() -> None:
    results = [_check(), _check(body=b"x"), _check(headers={"Authorization": "Bearer x"})]
    for result in results:
        assert SECRET not in repr(result)
        assert "another-secret" not in repr(result)


# --------------------------------------------------------------------------- cross-check

_SEGMENT = st.text(alphabet=st.characters(codec="utf-8"), max_size=8)
_VALUE = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x7f"),
    max_size=12,
)
_HOSTS = st.sampled_from(
    [
        ("http://127.0.0.1", "127.0.0.1"),
        ("http://127.0.0.1:80", "127.0.0.1"),
        ("https://intl.myhuaweicloud-koodrive.com:443", "intl.myhuaweicloud-koodrive.com"),
        ("http://127.0.0.1:8080", "127.0.0.1:8080"),
        ("https://[::1]:8443", "[::1]:8443"),
    ]
)
# How a client may spell an encoded component: fully quoted, lower-case hex,
# or with the sub-delimiters a path may carry unencoded.
_SPELLINGS = st.sampled_from(["quote", "lower", "subdelims"])


def _spell(raw: str, how: str) -> str:
    if how == "subdelims":
        return quote(raw, safe="!$'()*,;:@")
    encoded = quote(raw, safe="")
    if how == "lower":
        encoded = "".join(
            part if i == 0 else part[:2].lower() + part[2:]
            for i, part in enumerate(encoded.split("%"))
        )
    return encoded


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "get"]),
    segments=st.lists(_SEGMENT, max_size=4),
    trailing=st.booleans(),
    query=st.lists(st.tuples(_SEGMENT, _SEGMENT, st.booleans()), max_size=4),
    spelling=_SPELLINGS,
    extra=st.dictionaries(
        st.sampled_from(["Content-Type", "X-Traceid", "language", "X-Custom-Header"]),
        _VALUE,
        max_size=3,
    ),
    sign_extra=st.booleans(),
    sign_host=st.booleans(),
    pad=st.sampled_from(["", " ", "\t ", "  "]),
    body=st.one_of(st.none(), st.binary(max_size=64)),
    host=_HOSTS,
)
def test_client_signatures_verify_on_the_emulator(
    method: str,
    segments: list[str],
    trailing: bool,
    query: list[tuple[str, str, bool]],
    spelling: str,
    extra: dict[str, str],
    sign_extra: bool,
    sign_host: bool,
    pad: str,
    body: bytes | None,
    host: tuple[str, str],
) -> None:
    base, host_header = host
    path = "".join("/" + _spell(segment, spelling) for segment in segments)
    if trailing or not path:
        path += "/"
    items = []
    for name, value, with_eq in query:
        if value or with_eq:
            items.append(f"{_spell(name, spelling)}={_spell(value, spelling)}")
        else:
            items.append(_spell(name, spelling))
    query_string = "&".join(items)
    headers = {"X-Date": pad + X_DATE + pad, "X-User-Id": USER_ID + pad, **extra}
    signed = ["x-date", "x-user-id"]
    if sign_host:
        signed.append("HOST")
    if sign_extra:
        signed += list(extra)

    signer = Signer(APP_ID, SECRET, signed_headers=signed)
    url = base + path + (f"?{query_string}" if query_string else "")
    signature = signer.sign(method, url, headers, body)

    sent = {"Host": host_header, **headers, **signature.headers}
    result = verify(APPS, method, path, query_string, sent, body)
    assert result.ok, (result.reason, signature.canonical_request, result.canonical_request)
    assert result.canonical_request == signature.canonical_request
    assert result.string_to_sign == signature.string_to_sign

    tampered = (body or b"") + b"!"
    assert verify(APPS, method, path, query_string, sent, tampered).reason is (
        Reason.SIGNATURE_MISMATCH
    )


# --------------------------------------------------------------------------- over a socket


async def test_signatures_survive_a_real_aiohttp_round_trip() -> None:
    # aiohttp writes the Host header and the request line; the server reads
    # them back. Each request must verify as the client signed it.
    seen: list[tuple[bool, str | None]] = []

    async def handler(request: web.Request) -> web.Response:
        result = verify(
            APPS,
            request.method,
            request.raw_path,
            request.query_string,
            request.headers,
            await request.read(),
        )
        seen.append((result.ok, result.reason.value if result.reason else None))
        return web.json_response({"ok": result.ok}, status=200 if result.ok else 401)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    signer = Signer(APP_ID, SECRET, signed_headers=("host", "x-date", "x-user-id", "content-type"))
    rng = random.Random(13)
    targets = [
        "/koodrive/ose/v1/task/" + quote("a/b c€", safe=""),
        "/koodrive/ose/v1/task/list?pageSize=100&status=1&status=2&pageCursor=" + quote("x y+z"),
        "/koodrive/ose/v1/jobs?offset=0&limit=10",
        "/koodrive/ose/v1/" + quote("..", safe="").replace(".", "%2E"),
        "/koodrive/ose/v1/share/tasks/",
    ]
    try:
        async with aiohttp.ClientSession() as http:
            for target in targets:
                body = bytes(rng.randrange(256) for _ in range(rng.randrange(40))) or None
                url = f"http://127.0.0.1:{port}{target}"
                headers = {
                    "X-Date": X_DATE,
                    "X-User-Id": USER_ID,
                    "Content-Type": "application/json",
                }
                signed = signer.sign("POST", url, headers, body)
                async with http.post(
                    URL(url, encoded=True), data=body, headers={**headers, **signed.headers}
                ) as response:
                    assert response.status == 200, (target, seen[-1], signed.canonical_request)
    finally:
        await runner.cleanup()
    assert seen == [(True, None)] * len(targets)
