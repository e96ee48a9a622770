"""Plain data of message search: a full-text query over one business number's history."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from baton.store.console_records import HistoryMessage
from baton.types import ConversationId, PhoneNumberId, WaId


class MessageSearch(BaseModel):
    """Messages of one number matching `text` (web-search syntax), newest first."""

    model_config = ConfigDict(frozen=True)

    phone_number_id: PhoneNumberId
    text: str = Field(min_length=1)
    language: str = "pt-BR"  # the number's language: picks the text-search configuration
    conversation_id: ConversationId | None = None
    limit: int = Field(default=20, ge=1)
    before: tuple[datetime, int] | None = None  # keyset: older than this (sent_at, id)


class SearchHit(HistoryMessage):
    """A matching message, with its conversation and the matched words in context."""

    conversation_id: ConversationId
    wa_id: WaId
    snippet: str  # matched terms wrapped in «…»


class SearchPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: tuple[SearchHit, ...]
    has_more: bool
