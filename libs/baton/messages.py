"""Messages that travel on the broker: commands (imperative) and events (past tense).

Every message is a frozen pydantic model. The envelope (message_id, correlation_id,
occurred_at, type, version) travels in the AMQP properties; the body is the model's JSON.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from baton.types import Author, ConversationId, Mode, PhoneNumberId, WaId, Wamid


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of every broker message; `TYPE` names it on the wire."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1


# --- from ingest -------------------------------------------------------------------


class WebhookChange(Message):
    """One `entry[].changes[]` item of a Meta webhook, exactly as received."""

    TYPE: ClassVar[str] = "webhook.change"
    entry_id: str
    field: str
    value: dict[str, Any]
    received_at: datetime


# --- router -> bot -------------------------------------------------------------------


class BurstMessage(BaseModel):
    model_config = ConfigDict(frozen=True)
    wamid: Wamid
    type: str
    text: str  # text body, caption or a short "[image]"-style rendering
    timestamp: datetime


class AskBot(Message):
    """Ask the bot to answer a debounced burst, under the conversation's current epoch."""

    TYPE: ClassVar[str] = "bot.ask"
    request_id: str = Field(default_factory=new_id)
    conversation_id: ConversationId
    phone_number_id: PhoneNumberId
    wa_id: WaId
    epoch: int
    messages: tuple[BurstMessage, ...]


# --- bot -> router -------------------------------------------------------------------


class RequestHandoff(Message):
    """The bot gives the conversation to a human (keywords, tool call, failures, LLM down)."""

    TYPE: ClassVar[str] = "router.request_handoff"
    conversation_id: ConversationId
    phone_number_id: PhoneNumberId
    wa_id: WaId
    epoch: int
    reason: str
    summary: str = ""


# --- anyone -> outbox ----------------------------------------------------------------


class Template(BaseModel):
    """An approved WhatsApp message template: the only thing that may leave outside the 24 h
    customer-service window (workflow, issue 12). `parameters` fill the body's {{1}}, {{2}} …"""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1, max_length=512)
    language: str = Field(default="pt_BR", min_length=2, max_length=15)
    parameters: tuple[str, ...] = ()


class OutboundMedia(BaseModel):
    """A file already uploaded to Meta for this number, sent by its media id (issue 18)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: str  # image, audio, video, document
    media_id: str  # Meta's, from POST /{phone_number_id}/media
    ref: int  # Baton's media row: GET /media/{ref} on the console
    mime_type: str
    caption: str | None = None
    filename: str | None = None


class SendText(Message):
    """Send a text to a customer. Bot-authored sends are fenced on (mode=bot, epoch)."""

    TYPE: ClassVar[str] = "outbox.send_text"
    idempotency_key: str
    conversation_id: ConversationId
    phone_number_id: PhoneNumberId
    to: WaId
    body: str
    author: Author
    epoch: int | None = None  # required when author is BOT
    agent_id: str | None = None
    reply_to: Wamid | None = None
    request_id: str | None = None  # the AskBot this answers, for tracing
    template: Template | None = None  # set: send this template (body is its preview text)
    media: OutboundMedia | None = None  # set: send this file (body is its caption, may be "")


# --- events (outbox/router -> whoever listens: console SSE, metrics) ---------------------


class MessageSent(Message):
    TYPE: ClassVar[str] = "event.message_sent"
    idempotency_key: str
    conversation_id: ConversationId
    phone_number_id: PhoneNumberId
    wamid: Wamid
    author: Author


class SendFailed(Message):
    TYPE: ClassVar[str] = "event.send_failed"
    idempotency_key: str
    conversation_id: ConversationId
    phone_number_id: PhoneNumberId
    author: Author
    error_code: int | None
    reason: str


class ReplyFenced(Message):
    TYPE: ClassVar[str] = "event.reply_fenced"
    idempotency_key: str
    conversation_id: ConversationId
    phone_number_id: PhoneNumberId
    reply_epoch: int | None
    reason: str


# --- handoff (issue 3): bot -> router, and conversation events for agents ---------------


class BotTurnFinished(Message):
    """The bot finished answering a request; sent after its reply (if any) was published."""

    TYPE: ClassVar[str] = "router.bot_turn_finished"
    request_id: str
    conversation_id: ConversationId
    phone_number_id: PhoneNumberId
    wa_id: WaId
    epoch: int
    reply_count: int = 0  # messages published for this request; 0 = it chose to stay silent


class ConversationEvent(Message):
    """Base of the `event.conversation.*` events: what changed in one conversation, and when."""

    conversation_id: ConversationId
    phone_number_id: PhoneNumberId
    wa_id: WaId
    at: datetime  # the router's (or console's) clock when it happened


class ModeChanged(ConversationEvent):
    """Who holds the conversation changed (the epoch moved with it)."""

    TYPE: ClassVar[str] = "event.conversation.mode_changed"
    from_mode: Mode
    to_mode: Mode
    epoch: int
    cause: str  # baton.handoff.Cause: agent_takeover, bot_handoff, owner_echo, pause_expired …
    actor: str | None = None  # the agent who caused it, if any
    assignee: str | None = None
    reason: str | None = None  # the bot's handoff reason
    summary: str | None = None  # the bot's handoff summary for the agent
    paused_until: datetime | None = None


class AssigneeChanged(ConversationEvent):
    """Another agent holds the conversation (mode stays human)."""

    TYPE: ClassVar[str] = "event.conversation.assignee_changed"
    assignee: str | None
    previous: str | None = None
    actor: str | None = None
    cause: str | None = None  # takeover, auto, transfer, offline (None: before issue 12)


class CustomerWaiting(ConversationEvent):
    """A customer wrote while a human (agent or owner) holds the conversation."""

    TYPE: ClassVar[str] = "event.conversation.customer_waiting"
    wamid: Wamid
    mode: Mode
    assignee: str | None = None
    waiting_since: datetime | None = None


class MessageReceived(ConversationEvent):
    """A live message was stored: from the customer, or the owner's echo (author `app`)."""

    TYPE: ClassVar[str] = "event.conversation.message_received"
    wamid: Wamid
    author: Author  # customer or app
    type: str  # WhatsApp type; "command" for an owner command echo (#bot, #pause 3h)
    body: str
    sent_at: datetime  # WhatsApp's timestamp
    mode: Mode  # who holds the conversation after this message


class MessageStatusChanged(ConversationEvent):
    """WhatsApp reported a delivery status for a message we sent."""

    TYPE: ClassVar[str] = "event.conversation.message_status"
    wamid: Wamid
    status: str  # sent, delivered, read, played, failed
    error_code: int | None = None


class NoticeSkipped(ConversationEvent):
    """A notice to the customer was due but not sent (disabled, or the 24 h window closed)."""

    TYPE: ClassVar[str] = "event.conversation.notice_skipped"
    kind: str  # takeover, back_to_bot, busy
    reason: str  # disabled, customer_window_closed


# --- workflow (issue 12): the human service's end, notes, presence, summaries ------------


class ConversationResolved(ConversationEvent):
    """An agent resolved the conversation: the human service ended, the bot holds it again."""

    TYPE: ClassVar[str] = "event.conversation.resolved"
    agent: str | None
    outcome: str | None = None
    epoch: int  # the epoch of the service that ended
    started_at: datetime
    first_response_at: datetime | None = None
    first_response_seconds: int | None = None  # from the handoff to the first human answer
    handling_seconds: int  # from the handoff to the resolve


class NoteAdded(ConversationEvent):
    """An agent wrote a private note: shown to agents, never sent to WhatsApp."""

    TYPE: ClassVar[str] = "event.conversation.note_added"
    note_id: int
    agent: str
    body: str


class HandoffSummarized(ConversationEvent):
    """The structured summary of a handoff (every handoff: bot, customer, owner, agent)."""

    TYPE: ClassVar[str] = "event.conversation.handoff_summary"
    epoch: int
    reason: str | None = None
    topics: tuple[str, ...] = ()
    order_ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    text: str = ""


class AgentPresenceChanged(Message):
    """An agent went online, away or offline (by hand, or by missing heartbeats)."""

    TYPE: ClassVar[str] = "event.agent.presence_changed"
    agent: str
    status: str  # online, away, offline
    previous: str | None = None
    cause: str = "manual"  # manual, heartbeat_timeout
    at: datetime


# --- outbox (issue 4): coordination between outbox replicas -------------------------------


class OutboxNumberAnnounced(Message):
    """The outbox declared a business number's send queue: every replica subscribes to it.

    Published on `baton.events` with its TYPE as routing key, outside `event.#`: it is
    plumbing between outbox replicas, not something agents see.
    """

    TYPE: ClassVar[str] = "outbox.number_announced"
    phone_number_id: PhoneNumberId


# --- mcp/audit (issue 14): what principals did through the console ------------------------


class AgentActed(ConversationEvent):
    """An agent or external bot acted on a conversation through the console's API or MCP."""

    TYPE: ClassVar[str] = "event.conversation.agent_acted"
    action: str  # takeover, release, send, note …
    principal: str  # the agent's or bot's id
    principal_kind: str  # agent | bot
    via: str  # api | mcp
    changed: bool  # False: the action found nothing to change
    mode: Mode  # after the action
    epoch: int
    idempotency_key: str | None = None  # sends: the outbox's deduplication key


# --- media (issue 18): customers' files, downloaded apart from the conversation ---------------


class FetchMedia(Message):
    """Download a customer's file from Meta into the blob store (and transcribe a voice note).

    Published by the router for live media and by the history service for recent imported
    media; idempotent by (phone_number_id, wamid).
    """

    TYPE: ClassVar[str] = "media.fetch"
    phone_number_id: PhoneNumberId
    wamid: Wamid
    kind: str  # image, audio, video, document, sticker
    media_id: str  # Meta's
    conversation_id: ConversationId | None = None
    wa_id: WaId | None = None
    mime_type: str | None = None
    sha256: str | None = None  # the webhook's (base64 or hex), checked after the download
    caption: str | None = None
    filename: str | None = None
    voice: bool = False
    animated: bool = False
    imported: bool = False


class MediaUpdated(ConversationEvent):
    """A message's file was downloaded, given up on, or transcribed: agents refetch it."""

    TYPE: ClassVar[str] = "event.conversation.media_updated"
    wamid: Wamid
    media_ref: int  # Baton's media id: GET /media/{media_ref} on the console
    status: str  # available, unavailable
    reason: str | None = None
    transcript: str | None = None
