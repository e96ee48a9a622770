"""Splitting a webhook into changes: what cannot be forwarded as it came is refused as malformed."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from services.ingest.changes import MalformedWebhook, split


def _webhook(value: bytes) -> bytes:
    return b'{"entry": [{"id": "1", "changes": [{"field": "messages", "value": ' + value + b"}]}]}"


def test_a_value_nested_deeper_than_orjson_writes_is_malformed_not_a_crash() -> None:
    # orjson reads 400 levels but writes at most 254: found by the webhook fuzz (a 500 before).
    payload = orjson.loads(_webhook(b'{"x": ' + b"[" * 400 + b"]" * 400 + b"}"))
    with pytest.raises(MalformedWebhook, match="re-encoded"):
        split(payload, datetime.now(UTC))


def test_a_value_nested_within_the_limit_is_forwarded_as_it_came() -> None:
    value = b'{"x": ' + b"[" * 100 + b"]" * 100 + b"}"
    (change,) = split(orjson.loads(_webhook(value)), datetime.now(UTC))
    assert orjson.loads(change.body)["value"] == orjson.loads(value)
