"""Rows the Chatwoot bridge reads and writes (plain frozen data)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from baton.types import Author, ConversationId


class ChatwootConversation(BaseModel):
    """A Baton conversation's Chatwoot twin, as the bridge last knew it."""

    model_config = ConfigDict(frozen=True)

    conversation_id: ConversationId
    scope: str
    chatwoot_conversation_id: int
    remote_updated_at: float
    remote_status: str | None
    remote_assignee_id: int | None


class MirroredMessage(BaseModel):
    """A stored message as the bridge posts it: who wrote it, what, when."""

    model_config = ConfigDict(frozen=True)

    author: Author
    body: str
    type: str
    sent_at: datetime
    agent_id: str | None = None
