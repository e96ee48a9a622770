"""Plain data of the console's audit log: who changed a conversation, through which door."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from baton.types import ConversationId, Mode, PhoneNumberId


class Via(StrEnum):
    """How a principal reached the console."""

    API = "api"  # the JSON agent API (and the desk on top of it)
    MCP = "mcp"  # an MCP client (Streamable HTTP at /mcp, or the stdio server)


class AuditEntry(BaseModel):
    """One accepted action on a conversation (`changed` False: it found nothing to change)."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    principal: str
    principal_kind: str  # agent | bot
    via: Via
    action: str  # takeover, release, send, note …
    conversation_id: ConversationId
    phone_number_id: PhoneNumberId
    changed: bool
    mode: Mode  # the conversation's mode after the action
    epoch: int
    detail: dict[str, str] = Field(default_factory=dict)  # e.g. the send's idempotency key
