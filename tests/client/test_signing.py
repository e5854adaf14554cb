"""App signing (issue 13 item 4): the pure rules of ``koodrive_async._signing``.

The first tests rebuild the signature of a fixed request from the written
rules with hashlib and hmac only, so a mistake in the module cannot hide in a
test that reuses it. The tables pin each encoding decision.
"""

from __future__ import annotations

import hashlib
import hmac
import traceback
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koodrive_async import InvalidRequestError
from koodrive_async._signing import (
    EMPTY_PAYLOAD_HASH,
    AppSignature,
    Signer,
    authorization_header,
    canonical_headers,
    canonical_query_string,
    canonical_request,
    canonical_uri,
    encode_component,
    hashed_payload,
    host_value,
    normalise_signed_headers,
    sign,
    signed_headers_value,
    string_to_sign,
)

APP_ID = "a378331eca141163119eb602adb67b7802cc79cd33ba44c7d2fe61d1586c96a1"
SECRET = "s3cr3t-AppSecret-do-not-leak-7d41"
X_DATE = "20240909T033325Z"
USER_ID = "1505084218764547200"
HOST = "intl.myhuaweicloud-koodrive.com"


def _hex_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- first principles


def test_get_signature_from_first_principles() -> None:
    # The API-EXTRA.md illustration: GET jobs?offset=0&limit=10, no body.
    signer = Signer(APP_ID, SECRET)
    result = signer.sign(
        "GET",
        f"https://{HOST}/koodrive/ose/v1/jobs?offset=0&limit=10",
        {"X-Date": X_DATE, "X-User-Id": USER_ID, "language": "en-US"},
        None,
    )

    # Written by hand from the rules: the slash appended to the path, the query
    # sorted, the headers lower-cased in sorted order each ending in "\n" (so a
    # blank line follows), SignedHeaders, then the hash of the empty body.
    expected_canonical = (
        "GET\n"
        "/koodrive/ose/v1/jobs/\n"
        "limit=10&offset=0\n"
        f"host:{HOST}\n"
        f"x-date:{X_DATE}\n"
        f"x-user-id:{USER_ID}\n"
        "\n"
        "host;x-date;x-user-id\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert _hex_sha256(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    expected_to_sign = "HMAC-SHA256\n" + _hex_sha256(expected_canonical.encode())
    expected_signature = hmac.new(
        SECRET.encode(), expected_to_sign.encode(), hashlib.sha256
    ).hexdigest()

    assert result.canonical_request == expected_canonical
    assert result.string_to_sign == expected_to_sign
    assert result.signature == expected_signature
    # A fixed anchor, also reproduced with `openssl dgst -sha256 -hmac`.
    assert expected_signature == "6c0c9a53b087ae6cf142304a990a1737e0bb52ecddd9a53072983075f39ecbab"
    assert result.authorization == (
        f"HMAC-SHA256 AppId={APP_ID},SignedHeaders=host;x-date;x-user-id,"
        f"Signature={expected_signature}"
    )
    assert result.headers == {"Authorization": result.authorization}


def test_post_signature_from_first_principles() -> None:
    # A POST with a body, an already encoded task id in the path, a repeated
    # query name, a non-default port and padded header values.
    body = b'{"taskName":"copy","fileIds":["1","2"]}'
    signer = Signer(APP_ID, SECRET, signed_headers=("X-User-Id", "Content-Type", "host", "X-Date"))
    result = signer.sign(
        "post",
        "http://10.32.45.165:8080/koodrive/ose/v1/task/a%2fb%20c?status=2&status=1&pageCursor=",
        {
            "X-Date": f"  {X_DATE} ",
            "Content-Type": "application/json;  charset=utf-8",
            "X-User-Id": USER_ID,
            "X-Traceid": "not signed",
        },
        body,
    )
    expected_canonical = (
        "POST\n"
        "/koodrive/ose/v1/task/a%2Fb%20c/\n"
        "pageCursor=&status=1&status=2\n"
        "content-type:application/json;  charset=utf-8\n"
        "host:10.32.45.165:8080\n"
        f"x-date:{X_DATE}\n"
        f"x-user-id:{USER_ID}\n"
        "\n"
        "content-type;host;x-date;x-user-id\n" + _hex_sha256(body)
    )
    expected_to_sign = "HMAC-SHA256\n" + _hex_sha256(expected_canonical.encode())
    expected_signature = hmac.new(
        SECRET.encode(), expected_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    assert result.canonical_request == expected_canonical
    assert result.string_to_sign == expected_to_sign
    assert result.signature == expected_signature
    assert result.signed_headers == "content-type;host;x-date;x-user-id"
    assert result.authorization == (
        f"HMAC-SHA256 AppId={APP_ID},SignedHeaders=content-type;host;x-date;x-user-id,"
        f"Signature={expected_signature}"
    )


def test_the_building_blocks_compose_as_the_signer_does() -> None:
    headers = {"Host": HOST, "X-Date": X_DATE, "X-User-Id": USER_ID}
    canonical = canonical_request(
        "GET",
        "/koodrive/ose/v1/jobs",
        "offset=0&limit=10",
        headers,
        ("host", "x-date", "x-user-id"),
        None,
    )
    to_sign = string_to_sign(canonical)
    signature = sign(SECRET, to_sign)
    via_signer = Signer(APP_ID, SECRET).sign(
        "GET", "/koodrive/ose/v1/jobs?offset=0&limit=10", headers
    )
    assert (canonical, to_sign, signature) == (
        via_signer.canonical_request,
        via_signer.string_to_sign,
        via_signer.signature,
    )
    assert (
        authorization_header(APP_ID, "host;x-date;x-user-id", signature) == via_signer.authorization
    )


def test_a_different_secret_date_or_body_changes_the_signature() -> None:
    base = {"Host": HOST, "X-Date": X_DATE, "X-User-Id": USER_ID}
    ref = Signer(APP_ID, SECRET).sign("POST", "/p", base, b"{}").signature
    assert Signer(APP_ID, SECRET + "x").sign("POST", "/p", base, b"{}").signature != ref
    later = {**base, "X-Date": "20240909T033326Z"}
    assert Signer(APP_ID, SECRET).sign("POST", "/p", later, b"{}").signature != ref
    assert Signer(APP_ID, SECRET).sign("POST", "/p", base, b"{ }").signature != ref


# --------------------------------------------------------------------------- URI and query


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", "/"),
        ("/", "/"),
        ("/koodrive/ose/v1/jobs", "/koodrive/ose/v1/jobs/"),
        ("/koodrive/ose/v1/jobs/", "/koodrive/ose/v1/jobs/"),
        # Unreserved characters are kept, even when they arrive encoded.
        ("/a-b_c.d~e", "/a-b_c.d~e/"),
        ("/%7Euser/%41%62", "/~user/Ab/"),
        # Spaces and reserved characters are encoded once, hex in upper case.
        ("/a b", "/a%20b/"),
        ("/a%20b", "/a%20b/"),
        ("/a+b", "/a%2Bb/"),
        ("/a:b@c!$&'()*,;=", "/a%3Ab%40c%21%24%26%27%28%29%2A%2C%3B%3D/"),
        # An encoded slash stays inside its segment and is not encoded twice.
        ("/koodrive/ose/v1/task/a%2Fb", "/koodrive/ose/v1/task/a%2Fb/"),
        ("/koodrive/ose/v1/task/a%2fb", "/koodrive/ose/v1/task/a%2Fb/"),
        ("/x/%252F", "/x/%252F/"),
        # Unicode: raw or encoded, UTF-8 bytes as %XY.
        ("/€/ü", "/%E2%82%AC/%C3%BC/"),
        ("/%E2%82%AC", "/%E2%82%AC/"),
        ("/%e2%82%ac", "/%E2%82%AC/"),
        # A "%" that starts no escape is a literal percent sign.
        ("/100%", "/100%25/"),
        ("/%zz/%4", "/%25zz/%254/"),
        # Empty segments and dot segments are signed as sent.
        ("/a//b", "/a//b/"),
        ("/a/./b/../c", "/a/./b/../c/"),
        ("/task/%2E", "/task/./"),
    ],
)
def test_canonical_uri(path: str, expected: str) -> None:
    assert canonical_uri(path) == expected


@pytest.mark.parametrize("path", ["relative/path", "/a?b=1", "/a#frag"])
def test_canonical_uri_refuses_what_is_not_a_path(path: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        canonical_uri(path)
    assert info.value.field == "path"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ""),
        ("offset=0&limit=10", "limit=10&offset=0"),
        # Repeated names: sorted by value too, in code-point order ("10" < "2").
        ("status=2&status=1&status=10", "status=1&status=10&status=2"),
        # Code-point order: upper case before lower case.
        ("b=1&F=2&a=3", "F=2&a=3&b=1"),
        # Empty values keep their "=", a name alone gets one, empty items vanish.
        ("parm2=&parm1=value1", "parm1=value1&parm2="),
        ("flag&&x=1&", "flag=&x=1"),
        ("=v", "=v"),
        # Encoded once, unreserved kept, upper-case hex, "+" is a literal plus.
        ("q=a b&r=a%20b", "q=a%20b&r=a%20b"),
        ("t=%7e~&u=a+b", "t=~~&u=a%2Bb"),
        ("c=%e2%82%ac&d=€", "c=%E2%82%AC&d=%E2%82%AC"),
        ("k=a%2Fb&k2=a/b", "k=a%2Fb&k2=a%2Fb"),
        ("e=a=b", "e=a%3Db"),
        ("pageCursor=1723449753000&pageSize=100", "pageCursor=1723449753000&pageSize=100"),
        # Sorting is on the encoded names: "%41" is "A".
        ("b=1&%41=2", "A=2&b=1"),
    ],
)
def test_canonical_query_string(query: str, expected: str) -> None:
    assert canonical_query_string(query) == expected


@given(st.text())
def test_encoding_is_idempotent(raw: str) -> None:
    try:
        once = encode_component(raw)
    except InvalidRequestError:
        return  # lone surrogates
    assert encode_component(once) == once
    assert once.isascii()


@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1))
def test_a_segment_quoted_by_the_protocol_layer_is_signed_as_sent(raw: str) -> None:
    # What _protocol._path_segment sends for a task id is what gets signed.
    sent = quote(raw, safe="")
    assert canonical_uri("/koodrive/ose/v1/task/" + sent) == f"/koodrive/ose/v1/task/{sent}/"


# --------------------------------------------------------------------------- host


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://intl.myhuaweicloud-koodrive.com/x", "intl.myhuaweicloud-koodrive.com"),
        ("https://intl.myhuaweicloud-koodrive.com:443/x", "intl.myhuaweicloud-koodrive.com"),
        ("https://intl.myhuaweicloud-koodrive.com:8443/x", "intl.myhuaweicloud-koodrive.com:8443"),
        ("http://127.0.0.1/x", "127.0.0.1"),
        ("http://127.0.0.1:80/x", "127.0.0.1"),
        ("http://127.0.0.1:443/x", "127.0.0.1:443"),
        ("https://127.0.0.1:80/x", "127.0.0.1:80"),
        ("http://127.0.0.1:54321", "127.0.0.1:54321"),
        ("HTTP://Example.COM:80/x", "example.com"),
        ("http://[::1]:8080/x", "[::1]:8080"),
        ("https://[::1]/x", "[::1]"),
        ("https://bücher.example/x", "xn--bcher-kva.example"),
    ],
)
def test_host_value(url: str, expected: str) -> None:
    assert host_value(url) == expected
    signed = Signer(APP_ID, SECRET, signed_headers=("host",)).sign("GET", url, {})
    assert f"\nhost:{expected}\n" in signed.canonical_request


@pytest.mark.parametrize("url", ["/no/host", "http://h:99999/x", "http://h:port/x"])
def test_host_value_refuses_urls_without_a_usable_host(url: str) -> None:
    with pytest.raises(InvalidRequestError):
        host_value(url)


def test_a_host_header_given_wins_over_the_url() -> None:
    signed = Signer(APP_ID, SECRET, signed_headers=("host",)).sign(
        "GET", "http://127.0.0.1:8080/x", {"host": "10.32.45.165"}
    )
    assert "\nhost:10.32.45.165\n" in signed.canonical_request


def test_an_origin_form_target_without_a_host_header_names_host() -> None:
    with pytest.raises(InvalidRequestError, match="'host'") as info:
        Signer(APP_ID, SECRET).sign("GET", "/x", {"X-Date": X_DATE, "X-User-Id": USER_ID})
    assert info.value.field == "signed_headers"


# --------------------------------------------------------------------------- headers


def test_header_values_are_stripped_and_names_sorted_and_lower_cased() -> None:
    headers = {
        "X-User-Id": "\t 42 \t",
        "x-custom": "  inner   spaces  kept ",
        "HOST": "h",
        "X-Date": X_DATE,
        "Unsigned": "ignored",
    }
    block = canonical_headers(headers, ["X-User-Id", "x-date", "X-Custom", "Host"])
    assert block == (
        "host:h\nx-custom:inner   spaces  kept\nx-date:20240909T033325Z\nx-user-id:42\n"
    )
    # The order of the given names and of the headers does not matter.
    reordered = dict(reversed(list(headers.items())))
    assert canonical_headers(reordered, ["host", "x-custom", "x-user-id", "x-date"]) == block
    assert canonical_headers({"X-Empty": "   "}, ["x-empty"]) == "x-empty:\n"


def test_signed_headers_are_normalised_and_checked() -> None:
    assert normalise_signed_headers(["X-User-Id", "HOST", "x-date"]) == (
        "host",
        "x-date",
        "x-user-id",
    )
    assert signed_headers_value(("x-date", "Host")) == "host;x-date"
    for bad in (
        [],
        "host",
        ["host", "HOST"],
        ["Authorization"],
        ["bad name"],
        ["a;b"],
        [""],
        [3],
        42,
    ):
        with pytest.raises(InvalidRequestError) as info:
            normalise_signed_headers(bad)  # type: ignore[arg-type]
        assert info.value.field == "signed_headers"


def test_a_missing_signed_header_is_an_error_naming_it() -> None:
    with pytest.raises(InvalidRequestError, match="'x-user-id'") as info:
        canonical_headers({"Host": "h", "X-Date": X_DATE}, ("host", "x-date", "x-user-id"))
    assert info.value.field == "signed_headers"


def test_one_header_in_two_cases_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="'x-date'"):
        canonical_headers({"X-Date": X_DATE, "x-date": X_DATE}, ("x-date",))


@pytest.mark.parametrize("value", ["a\r\nInjected: 1", "a\nb", "nul\x00", "\ud800"])
def test_a_signed_value_that_cannot_be_sent_is_refused_without_quoting_it(value: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        canonical_headers({"X-Session": value}, ("x-session",))
    assert value not in str(info.value)
    assert "'x-session'" in str(info.value)


def test_method_is_upper_cased_and_must_be_a_token() -> None:
    headers = {"Host": "h"}
    assert canonical_request("post", "/", "", headers, ("host",), None).startswith("POST\n/\n")
    with pytest.raises(InvalidRequestError):
        canonical_request("GE T", "/", "", headers, ("host",), None)


def test_payload_hash() -> None:
    assert hashed_payload(None) == EMPTY_PAYLOAD_HASH == hashed_payload(b"")
    assert hashed_payload(b"{}") == _hex_sha256(b"{}")
    assert hashed_payload(bytearray(b"{}")) == hashed_payload(memoryview(b"{}"))
    with pytest.raises(InvalidRequestError):
        hashed_payload("{}")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- secrets


def test_the_secret_is_in_no_repr_or_str() -> None:
    signer = Signer(APP_ID, SECRET)
    signed = signer.sign("GET", f"https://{HOST}/x", {"X-Date": X_DATE, "X-User-Id": USER_ID})
    assert isinstance(signed, AppSignature)
    for text in (repr(signer), str(signer), repr(signed), str(signed)):
        assert SECRET not in text
    assert APP_ID in repr(signer)
    assert not hasattr(signer, "__dict__")
    assert not hasattr(signer, "app_secret")


def test_the_secret_is_in_no_exception() -> None:
    signer = Signer(APP_ID, SECRET)
    failures: list[BaseException] = []
    attempts = [
        lambda: signer.sign("GET", f"https://{HOST}/x", {"X-Date": X_DATE}),
        lambda: signer.sign("GET", "/x?y#", {}),
        lambda: signer.sign("GE T", f"https://{HOST}/x", {"X-Date": X_DATE, "X-User-Id": "1"}),
        lambda: signer.sign("GET", f"https://{HOST}:bad/x", {}),
        lambda: signer.sign("GET", 42, {}),  # type: ignore[arg-type]
        lambda: signer.sign("GET", f"https://{HOST}/x", {"X-Date": X_DATE, "X-User-Id": "1"}, "s"),  # type: ignore[arg-type]
        lambda: Signer(APP_ID, SECRET + "\ud800"),
        lambda: Signer(APP_ID, ""),
        lambda: Signer(APP_ID, SECRET.encode()),  # type: ignore[arg-type]
        lambda: Signer("", SECRET),
        lambda: Signer("id with space", SECRET),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidRequestError) as info:
            attempt()
        failures.append(info.value)
    for failure in failures:
        text = "".join(traceback.format_exception(failure))
        assert SECRET not in text
        assert SECRET not in repr(failure.args)
