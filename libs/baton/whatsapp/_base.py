"""Shared base for webhook payload models and the field types Meta encodes its own way."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict


class WaModel(BaseModel):
    """Frozen, and tolerant of fields Meta adds later."""

    model_config = ConfigDict(frozen=True, extra="ignore")


def _from_unix_seconds(value: object) -> object:
    # Meta sends "1767225600". Pydantic's own str→datetime would also read ISO strings and
    # switch to milliseconds above some magnitude; Unix seconds is the only form we accept.
    if isinstance(value, datetime):
        return value
    if isinstance(value, bool):
        raise ValueError("expected Unix seconds")
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int):
        raise ValueError("expected Unix seconds as a string of digits")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError) as exc:  # pydantic only turns ValueError into a report
        raise ValueError("Unix seconds out of range") from exc


UnixTime = Annotated[datetime, BeforeValidator(_from_unix_seconds)]
"""A timestamp sent as Unix seconds (usually a string), parsed to an aware UTC datetime."""


def _without_plus(value: str) -> str:
    return value.removeprefix("+")


PhoneNumber = Annotated[str, AfterValidator(_without_plus)]
"""A phone number as digits: webhooks send none, but some of Meta's tables show a `+`."""
