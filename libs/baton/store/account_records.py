"""Plain data of the desk area crossing the store port: accounts, sessions, the inbox."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from baton.store.console_records import ConversationSummary
from baton.types import ConversationId, PhoneNumberId


class AgentAccount(BaseModel):
    """An agent who signs in to the desk with a password."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    display_name: str | None = None
    password_hash: str  # argon2id, encoded with its parameters
    numbers: frozenset[PhoneNumberId] | None = None  # None → every business number
    disabled: bool = False
    created_at: datetime | None = None


class NewSession(BaseModel):
    model_config = ConfigDict(frozen=True)

    token_hash: bytes
    agent_id: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime
    address: str | None = None


class DeskSession(BaseModel):
    """A signed-in browser session and the (enabled) account behind it."""

    model_config = ConfigDict(frozen=True)

    token_hash: bytes
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    account: AgentAccount


class InboxView(StrEnum):
    WAITING = "waiting"  # a customer waits for a human: the longest wait first
    MINE = "mine"
    BOT = "bot"
    PAUSED = "paused"  # the owner answers from the Business App
    ALL = "all"


class InboxQuery(BaseModel):
    """One desk inbox listing for one agent."""

    model_config = ConfigDict(frozen=True)

    view: InboxView
    agent_id: str
    phone_number_ids: tuple[PhoneNumberId, ...] | None = None  # None → every number
    search: str | None = None  # part of the customer's name or phone number
    limit: int = Field(default=100, ge=1, le=500)


class InboxItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    summary: ConversationSummary
    unread: int  # customer messages newer than what this agent has seen


class InboxCounts(BaseModel):
    """Conversations per view for one agent (the tabs' numbers)."""

    model_config = ConfigDict(frozen=True)

    waiting: int
    mine: int
    unread_mine: int


class ConversationExtras(BaseModel):
    """What the desk shows beside a conversation that the agent API's summary lacks."""

    model_config = ConfigDict(frozen=True)

    conversation_id: ConversationId
    last_customer_at: datetime | None  # the newest live customer message (24-hour window)
    newest_message_id: int | None
