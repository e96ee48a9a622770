"""Plain data crossing the store port: what services write and read back."""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from baton.types import Author, ConversationId, Direction, Mode, PhoneNumberId, WaId, Wamid


class DeliveryStatus(IntEnum):
    """WhatsApp delivery statuses by rank: a status is applied only if it ranks higher."""

    SENT = 1
    DELIVERED = 2
    READ = 3
    PLAYED = 4
    FAILED = 9  # terminal

    @classmethod
    def parse(cls, name: str) -> DeliveryStatus:
        return cls[name.upper()]


class Conversation(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: ConversationId
    phone_number_id: PhoneNumberId
    wa_id: WaId
    customer_name: str | None
    mode: Mode
    epoch: int
    last_activity_at: datetime | None


class NewInbound(BaseModel):
    """A customer message (live or imported) to store once, keyed by its WhatsApp id."""

    model_config = ConfigDict(frozen=True)

    phone_number_id: PhoneNumberId
    wa_id: WaId
    wamid: Wamid
    type: str
    body: str
    sent_at: datetime
    payload: dict[str, Any]
    customer_name: str | None = None


class NewOutbound(BaseModel):
    """An outbound message the outbox is about to send, keyed by its idempotency key."""

    model_config = ConfigDict(frozen=True)

    idempotency_key: str
    conversation_id: ConversationId
    phone_number_id: PhoneNumberId
    author: Author
    body: str
    epoch: int | None = None
    agent_id: str | None = None
    type: str = "text"  # or the media kind of a file sent by id (issue 18)


class StoredMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    conversation_id: ConversationId
    wamid: Wamid | None
    direction: Direction
    author: Author
    type: str
    body: str
    sent_at: datetime
    imported: bool
    status: str | None
    error_code: int | None
    agent_id: str | None


class StatusUpdate(BaseModel):
    model_config = ConfigDict(frozen=True)

    phone_number_id: PhoneNumberId
    wamid: Wamid
    status: DeliveryStatus
    at: datetime
    error_code: int | None = None
    error_title: str | None = None
