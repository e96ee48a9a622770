"""Splitting a verified webhook body into one broker message per `entry[].changes[]`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

_FIELD = re.compile(r"^[a-z0-9_]{1,64}$")
UNKNOWN_FIELD = "unknown"


class MalformedWebhook(ValueError):
    """The body is JSON but not shaped like a WhatsApp webhook envelope."""


@dataclass(frozen=True)
class OutgoingChange:
    routing_key: str
    message_id: str  # the same change re-sent by Meta gets the same id
    phone_number_id: str | None
    body: bytes


def split(payload: Any, received_at: datetime) -> list[OutgoingChange]:
    """One OutgoingChange per change; the change's `value` is kept exactly as Meta sent it."""
    if not isinstance(payload, dict):
        raise MalformedWebhook("the webhook body is not a JSON object")
    entries = payload.get("entry", [])
    if not isinstance(entries, list):
        raise MalformedWebhook("`entry` is not a list")
    out: list[OutgoingChange] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("changes", []), list):
            raise MalformedWebhook("an entry is not an object with a `changes` list")
        entry_id = str(entry.get("id", ""))
        for change in entry.get("changes", []):
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                raise MalformedWebhook("a change is not an object with a `value` object")
            field = str(change.get("field", ""))
            value: dict[str, Any] = change["value"]
            try:
                body = orjson.dumps(
                    {
                        "entry_id": entry_id,
                        "field": field,
                        "value": value,
                        "received_at": received_at,
                    }
                )
            except orjson.JSONEncodeError as exc:  # orjson parses deeper than it writes
                raise MalformedWebhook(f"a change cannot be re-encoded: {exc}") from exc
            metadata = value.get("metadata")
            phone_number_id = (
                metadata.get("phone_number_id") if isinstance(metadata, dict) else None
            )
            out.append(
                OutgoingChange(
                    routing_key=field if _FIELD.match(field) else UNKNOWN_FIELD,
                    message_id=_change_id(entry_id, field, value),
                    phone_number_id=str(phone_number_id) if phone_number_id is not None else None,
                    body=body,
                )
            )
    return out


def _change_id(entry_id: str, field: str, value: dict[str, Any]) -> str:
    canonical = orjson.dumps([entry_id, field, value], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:32]
