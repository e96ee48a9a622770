"""Records of the console's shared event log (one numbering of agents' events for all replicas)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from baton.types import ConversationId, PhoneNumberId


class NewLoggedEvent(BaseModel):
    """A conversation event to log, named by its broker message id (logged once)."""

    model_config = ConfigDict(frozen=True)
    message_id: str
    type: str
    data: str  # the event's JSON, one line
    phone_number_id: PhoneNumberId | None
    conversation_id: ConversationId | None


class LoggedEvent(BaseModel):
    """A logged event with its global id: ids have no gaps and are visible in order."""

    model_config = ConfigDict(frozen=True)
    id: int
    type: str
    data: str
    phone_number_id: PhoneNumberId | None
    conversation_id: ConversationId | None
    logged_at: datetime


class EventLogBounds(BaseModel):
    """The oldest and newest ids still in the log (None and None when it is empty)."""

    model_config = ConfigDict(frozen=True)
    oldest: int | None
    newest: int | None
