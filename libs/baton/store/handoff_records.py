"""Plain data of the handoff area crossing the store port: echoes, timers, queued effects."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from baton.handoff.state import ConversationState
from baton.handoff.timers import TimerKind
from baton.store.records import Conversation
from baton.types import ConversationId, PhoneNumberId, WaId, Wamid


class EchoOutcome(StrEnum):
    """What storing an echo found, by its WhatsApp message id."""

    NEW = "new"  # first time seen: stored as an `app` message
    UNROUTED = "unrouted"  # stored before, but its state change was never saved (crash)
    DUPLICATE = "duplicate"  # stored and already applied to the conversation's state
    OWN_SEND = "own_send"  # the id of a message we sent through the API


class NewEcho(BaseModel):
    """A message the business sent from the WhatsApp Business App (an `smb_message_echoes` item)."""

    model_config = ConfigDict(frozen=True)

    phone_number_id: PhoneNumberId
    wa_id: WaId  # the customer it was sent to
    wamid: Wamid
    type: str  # "command" for an owner command (#bot, #pause 3h): never bot context
    body: str
    sent_at: datetime
    payload: dict[str, Any]


class OutgoingMessage(BaseModel):
    """A broker message queued with a state change (transactional outbox), ready to publish."""

    model_config = ConfigDict(frozen=True)

    exchange: str
    routing_key: str
    type: str
    message_id: str  # deterministic: consumers may dedupe a republished message by it
    body: bytes


class PendingEffect(OutgoingMessage):
    """An `OutgoingMessage` as stored, until its publish is confirmed and it is deleted."""

    id: int
    conversation_id: ConversationId


class DueTimer(BaseModel):
    """A conversation's timer a sweeper claimed (leased) to fire it."""

    model_config = ConfigDict(frozen=True)

    conversation_id: ConversationId
    kind: TimerKind
    due_at: datetime


class StoredInbound(BaseModel):
    """A live customer message stored (or found), with what the router needs to route it."""

    model_config = ConfigDict(frozen=True)

    conversation: Conversation
    stored_now: bool
    routed: bool  # already went through the state machine (a redelivery); False if stored_now
    state: ConversationState  # as of the store (the caller's save is a compare-and-set)
