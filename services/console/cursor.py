"""Opaque page cursors: a keyset position (a time, possibly none, and a row id) in base64url."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

import orjson
from fastapi import HTTPException, status


class BadCursor(HTTPException):
    def __init__(self) -> None:
        super().__init__(status_code=status.HTTP_400_BAD_REQUEST, detail="invalid cursor")


def encode(at: datetime | None, row_id: int) -> str:
    """A cursor naming the position after the row (`at`, `row_id`)."""
    raw = orjson.dumps([at.isoformat() if at is not None else None, row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime | None, int]:
    """The position a cursor names; 400 if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = orjson.loads(raw)
        if not isinstance(row_id, int) or isinstance(row_id, bool):
            raise BadCursor
        when = datetime.fromisoformat(at) if at is not None else None
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise BadCursor from exc
    if when is not None and when.tzinfo is None:
        raise BadCursor
    return when, row_id
