"""Plain data of the agent workflow (issue 12) crossing the store port."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from baton.types import ConversationId, PhoneNumberId


class Presence(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class AgentPresence(BaseModel):
    """An agent's stored presence (an agent with no row is offline)."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    status: Presence
    heartbeat_at: datetime
    changed_at: datetime
    last_assigned_at: datetime | None = None


class PresenceChange(BaseModel):
    """A presence that moved: by hand, or to offline by missing heartbeats."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    status: Presence
    previous: Presence | None


class QueuedConversation(BaseModel):
    """A human-mode conversation nobody holds, for auto-assignment (longest wait first)."""

    model_config = ConfigDict(frozen=True)

    conversation_id: ConversationId
    phone_number_id: PhoneNumberId
    waiting_since: datetime | None


class NewNote(BaseModel):
    """A private note an agent writes on a conversation."""

    model_config = ConfigDict(frozen=True)

    conversation_id: ConversationId
    phone_number_id: PhoneNumberId
    agent_id: str
    body: str = Field(min_length=1)
    idempotency_key: str
    at: datetime


class StoredNote(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    conversation_id: ConversationId
    agent_id: str
    body: str
    at: datetime
    created_now: bool  # False: the same idempotency key was stored before


class ServiceResolution(BaseModel):
    """One ended human service, with its times and outcome."""

    model_config = ConfigDict(frozen=True)

    conversation_id: ConversationId
    epoch: int
    phone_number_id: PhoneNumberId
    agent_id: str | None
    outcome: str | None
    started_at: datetime
    first_response_at: datetime | None
    first_response_seconds: int | None
    handling_seconds: int
    resolved_at: datetime


class StoredSummary(BaseModel):
    """The structured handoff summary of one handoff (JSON as the console serves it)."""

    model_config = ConfigDict(frozen=True)

    conversation_id: ConversationId
    epoch: int
    summary: dict[str, object]
    created_at: datetime
