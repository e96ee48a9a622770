"""Request and response bodies of the agent workflow API (issue 12), documented by OpenAPI."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from baton.store.workflow_records import Presence
from baton.types import ConversationId, PhoneNumberId

MAX_NOTE_CHARS = 4096
OUTCOME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"


class PresenceUpdate(BaseModel):
    """`PUT /me/presence`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    status: Presence


class PresenceView(BaseModel):
    agent: str
    status: Presence = Field(description="Offline once heartbeats stop for the timeout.")
    previous: Presence | None = None


class AgentView(BaseModel):
    """One agent as `GET /agents` lists it."""

    id: str
    status: Presence
    heartbeat_at: datetime | None
    conversations: list[ConversationId] = Field(description="Held now (human mode).")
    held: int
    capacity: int = Field(description="max_conversations: auto-assignment never goes beyond.")
    admin: bool
    numbers: list[PhoneNumberId] | None = Field(description="null: every business number.")


class AgentList(BaseModel):
    items: list[AgentView]


class TransferRequest(BaseModel):
    """`{"to": "<agent id>"}`, or `{"to": null}` back to the queue."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    to: str | None


class NoteRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_NOTE_CHARS)


class NoteView(BaseModel):
    """201: a private note, stored with author `note`; never sent to WhatsApp."""

    id: int
    conversation_id: ConversationId
    author: str = "note"
    agent: str
    text: str
    at: datetime


class ResolveRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    outcome: str | None = Field(
        default=None,
        pattern=OUTCOME_PATTERN,
        description="e.g. solved, not_solved, spam (lower-case, at most 40 characters).",
    )


class SummaryView(BaseModel):
    """The structured summary of the conversation's latest handoff (reason, topics, entities)."""

    conversation_id: ConversationId
    epoch: int
    created_at: datetime
    reason: str
    cause: str
    bot_summary: str | None
    requests: list[str]
    topics: list[str]
    order_ids: list[str]
    emails: list[str]
    phones: list[str]
    text: str


class QuickReply(BaseModel):
    shortcut: str = Field(description="Typed as `/shortcut` in the composer.")
    text: str


class QuickReplyList(BaseModel):
    phone_number_id: PhoneNumberId
    items: list[QuickReply]


class TemplateList(BaseModel):
    """Template names agents may send on this number (configured), outside the window too."""

    phone_number_id: PhoneNumberId
    names: list[str]
    window_open: bool | None = Field(
        default=None, description="For `?conversation_id=`: may free text be sent now?"
    )
    window_expires_at: datetime | None = None
