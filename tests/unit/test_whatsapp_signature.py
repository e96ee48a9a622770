"""Webhook signature: Meta's HMAC-SHA256 of the raw body under the app secret."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from baton.whatsapp.signature import sign, verify

SECRET = "test_app_secret"
EMPTY_ENVELOPE = b'{"object":"whatsapp_business_account","entry":[]}'
ESCAPED_CAFE = b'{"text":{"body":"caf\\u00e9"}}'  # literal backslash-u, as Meta sends it

# Self-computed vectors from the reference (ref §3).
VECTORS = [
    (EMPTY_ENVELOPE, "sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756"),
    (ESCAPED_CAFE, "sha256=d36eb0f4e8ed7a1458654758c875f8906c154262156b732bbdf52856281cd3fb"),
]


@pytest.mark.parametrize(("body", "header"), VECTORS)
def test_sign_matches_reference_vectors(body: bytes, header: str) -> None:
    assert sign(body, SECRET) == header


@pytest.mark.parametrize(("body", "header"), VECTORS)
def test_verify_accepts_reference_vectors(body: bytes, header: str) -> None:
    assert verify(body, header, SECRET)


def test_uppercase_hex_is_accepted_as_the_same_mac() -> None:
    body, header = VECTORS[0]
    assert verify(body, "sha256=" + header.removeprefix("sha256=").upper(), SECRET)


def test_reserialised_body_fails_where_meta_escaped_non_ascii() -> None:
    # What a receiver that parses then re-dumps the JSON would hash.
    reserialised = json.dumps(json.loads(ESCAPED_CAFE), ensure_ascii=False).encode()
    assert not verify(reserialised, VECTORS[1][1], SECRET)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756",  # no prefix
        "sha1=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756",
        "SHA256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756",
        "sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c63375",  # short
        "sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c6337566",  # long
        "sha256=zec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756",  # not hex
        "sha256=déc6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c63375",  # non-ASCII
        " sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756",
    ],
)
def test_missing_or_malformed_header_is_rejected(header: str | None) -> None:
    assert not verify(EMPTY_ENVELOPE, header, SECRET)


def test_wrong_secret_is_rejected() -> None:
    assert not verify(EMPTY_ENVELOPE, VECTORS[0][1], "another_secret")


def test_tampered_body_is_rejected() -> None:
    tampered = EMPTY_ENVELOPE.replace(b"[]", b"[ ]")
    assert not verify(tampered, VECTORS[0][1], SECRET)


@given(body=st.binary(max_size=512), secret=st.text(min_size=1, max_size=40))
def test_sign_then_verify_round_trips(body: bytes, secret: str) -> None:
    header = sign(body, secret)
    assert verify(body, header, secret)
    assert not verify(body + b" ", header, secret)
