"""Graph API error classification (ref §7) and error parsing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from baton.whatsapp.errors import (
    PAIR_RATE_CODES,
    PERMANENT_CODES,
    THROUGHPUT_CODES,
    TRANSIENT_CODES,
    ErrorClass,
    GraphApiError,
    GraphTransportError,
    classify,
)

T, P, R, X = ErrorClass.THROUGHPUT, ErrorClass.PAIR_RATE, ErrorClass.TRANSIENT, ErrorClass.PERMANENT

# (code, the HTTP status Meta pairs it with, expected class): the table of ref §7 row by row.
TABLE = [
    (0, 401, X),
    (190, 401, X),
    (3, 500, X),  # a permanent code arriving with a 5xx
    (10, 403, X),
    (200, 403, X),
    (250, 403, X),
    (299, 403, X),
    (4, 400, T),
    (80007, 400, T),
    (130429, 400, T),
    (131057, 400, T),
    (131056, 400, P),
    (131048, 400, X),
    (131047, 400, X),
    (131026, 400, X),
    (131051, 400, X),
    (131008, 400, X),
    (131009, 400, X),
    (100, 400, X),
    (131000, 500, R),
    (131016, 500, R),
    (131016, 503, R),
    (1, 400, R),
    (2, 503, R),
    (368, 403, X),
    (131031, 403, X),
    (131049, 400, X),
    (131050, 400, X),
    (132000, 400, X),
    (132001, 400, X),
    (132012, 400, X),
    (132015, 400, X),
    (132016, 400, X),
    (132099, 400, X),
]


@pytest.mark.parametrize(("code", "http_status", "expected"), TABLE)
def test_reference_table(code: int, http_status: int, expected: ErrorClass) -> None:
    assert classify(http_status, code) is expected


@given(
    code=st.sampled_from(
        sorted(THROUGHPUT_CODES | PAIR_RATE_CODES | TRANSIENT_CODES | PERMANENT_CODES)
    ),
    http_status=st.one_of(st.none(), st.integers(100, 599)),
)
def test_a_known_code_wins_over_the_http_status(code: int, http_status: int | None) -> None:
    assert classify(http_status, code) is classify(None, code)


def test_code_sets_are_disjoint() -> None:
    sets = [THROUGHPUT_CODES, PAIR_RATE_CODES, TRANSIENT_CODES, PERMANENT_CODES]
    assert sum(len(s) for s in sets) == len(frozenset().union(*sets))


@pytest.mark.parametrize(
    ("http_status", "expected"),
    [
        (429, T),
        (500, R),
        (502, R),
        (503, R),
        (504, R),
        (408, R),
        (400, X),
        (401, X),
        (403, X),
        (404, X),
        (200, X),
        (302, X),
        (None, X),
    ],
)
def test_unknown_or_missing_code_falls_back_to_http(
    http_status: int | None, expected: ErrorClass
) -> None:
    assert classify(http_status, None) is expected
    assert classify(http_status, 987654) is expected


@given(code=st.integers(132000, 132099), http_status=st.integers(400, 599))
def test_every_template_code_is_permanent(code: int, http_status: int) -> None:
    assert classify(http_status, code) is X


def test_error_from_a_meta_body() -> None:
    body = {
        "error": {
            "message": "(#131056) (Business Account, Consumer Account) pair rate limit hit",
            "type": "OAuthException",
            "code": 131056,
            "error_data": {"messaging_product": "whatsapp", "details": "too many messages"},
            "fbtrace_id": "AbCdEf123456",
        }
    }
    error = GraphApiError.from_response(400, json.dumps(body).encode())
    assert (error.http_status, error.code, error.error_class) == (400, 131056, P)
    assert error.details == "too many messages"
    assert error.fbtrace_id == "AbCdEf123456"
    assert error.message.startswith("(#131056)")
    assert error.retryable
    assert "131056" in str(error) and "too many messages" in str(error)


@pytest.mark.parametrize(
    ("content", "http_status", "expected"),
    [
        (b"<html><h1>502 Bad Gateway</h1></html>", 502, R),
        (b"", 503, R),
        (b'{"unexpected": true}', 400, X),
        (b'{"error": "just a string"}', 500, R),
        (b'{"error": {"code": "131047"}}', 400, X),  # a code that is not an int is ignored
        (b"\xff\xfe", 429, T),
    ],
)
def test_error_from_unusual_bodies(content: bytes, http_status: int, expected: ErrorClass) -> None:
    error = GraphApiError.from_response(http_status, content)
    assert error.code is None
    assert error.error_class is expected
    assert error.message


def test_permanent_errors_are_not_retryable() -> None:
    assert not GraphApiError(400, 131047, "outside window").retryable


def test_transport_errors_are_transient_and_say_whether_meta_may_have_acted() -> None:
    refused = GraphTransportError("refused", maybe_delivered=False)
    timed_out = GraphTransportError("read timeout", maybe_delivered=True)
    assert refused.error_class is timed_out.error_class is R
    assert refused.retryable and not refused.maybe_delivered
    assert timed_out.maybe_delivered
