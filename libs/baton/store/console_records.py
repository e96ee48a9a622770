"""Plain data of the console area crossing the store port: what agents list and page through."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from baton.store.media_records import MessageMedia
from baton.types import Author, ConversationId, Direction, Mode, PhoneNumberId, WaId, Wamid

PREVIEW_CHARS = 200


class ConversationQuery(BaseModel):
    """Which conversations to list; every filter is optional and they combine with AND."""

    model_config = ConfigDict(frozen=True)

    mode: Mode | None = None
    phone_number_ids: tuple[PhoneNumberId, ...] | None = None  # None → every number
    assignee: str | None = None
    unassigned: bool = False  # human mode, waiting for any agent
    waiting: bool = False  # a customer message no human answered yet
    limit: int = Field(default=50, ge=1)
    # Keyset: list after this (last_activity_at, id); newest activity first, no activity last.
    after_activity: datetime | None = None
    after_id: ConversationId | None = None


class LastMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    preview: str  # the body's first PREVIEW_CHARS characters
    author: Author
    direction: Direction
    at: datetime
    imported: bool


class ConversationSummary(BaseModel):
    """One conversation as an agent lists it."""

    model_config = ConfigDict(frozen=True)

    id: ConversationId
    phone_number_id: PhoneNumberId
    wa_id: WaId
    customer_name: str | None  # the Business App's address book first, else the profile name
    mode: Mode
    epoch: int
    assignee: str | None
    waiting_since: datetime | None
    paused_until: datetime | None
    handoff_reason: str | None
    handoff_summary: str | None
    last_activity_at: datetime | None
    last_message: LastMessage | None


class ConversationPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: tuple[ConversationSummary, ...]
    has_more: bool


class HistoryMessage(BaseModel):
    """One message of a conversation, either direction, live or imported."""

    model_config = ConfigDict(frozen=True)

    id: int
    wamid: Wamid | None
    direction: Direction
    author: Author
    type: str
    body: str
    sent_at: datetime
    imported: bool
    status: str | None  # outbound: pending, accepted, sent, delivered, read, failed
    error_code: int | None
    error_reason: str | None
    agent_id: str | None
    media: MessageMedia | None = None  # image, audio, video, document, sticker (issue 18)


class MessagePage(BaseModel):
    """Messages oldest first; `has_more` says older ones exist."""

    model_config = ConfigDict(frozen=True)

    items: tuple[HistoryMessage, ...]
    has_more: bool
