"""Plain data of the outbox area crossing the store port: claiming a send, its attempts."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from baton.store.records import StoredMessage


class ClaimStatus(StrEnum):
    CLAIMED = "claimed"  # this caller may call the Graph API now (attempt recorded as open)
    SENT = "sent"  # already accepted by Meta: the wamid is recorded, never send again
    FAILED = "failed"  # already failed permanently: never send again
    BUSY = "busy"  # another attempt is open and may still be talking to Meta: wait, then ask again


class OutboundClaim(BaseModel):
    """The answer to "may I send this idempotency key now?"."""

    model_config = ConfigDict(frozen=True)

    status: ClaimStatus
    message: StoredMessage
    attempt: int  # Graph API calls made for this key so far, this one included when CLAIMED
    # CLAIMED after an attempt that never recorded its outcome (a crash, or a lost answer): Meta
    # may have the message already, so this call may duplicate it (the documented window).
    in_doubt: bool = False
    busy_seconds: float = 0.0  # BUSY: when the open attempt counts as abandoned


class AttemptRow(BaseModel):
    """What decides a claim: the stored state of one outbound message."""

    model_config = ConfigDict(frozen=True)

    has_wamid: bool
    status: str | None
    attempt_open: bool
    attempt_age_seconds: float | None  # since the open attempt started, on the database's clock


def decide_claim(row: AttemptRow, *, abandon_after_seconds: float) -> tuple[ClaimStatus, float]:
    """Whether a send may be attempted now; for BUSY, how long until it may."""
    if row.has_wamid:
        return ClaimStatus.SENT, 0.0
    if row.status == "failed":
        return ClaimStatus.FAILED, 0.0
    if row.attempt_open and row.attempt_age_seconds is not None:
        remaining = abandon_after_seconds - row.attempt_age_seconds
        if remaining > 0:
            return ClaimStatus.BUSY, remaining
    return ClaimStatus.CLAIMED, 0.0
