"""The console's request and response bodies (documented by the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from baton.handoff import ConversationState, Decision
from baton.messages import Template
from baton.store.console_records import ConversationSummary, HistoryMessage
from baton.types import ConversationId, Mode, PhoneNumberId, WaId, Wamid
from services.console.media_schemas import MediaRef

# WhatsApp's limit for a text message body.
MAX_TEXT_CHARS = 4096
MAX_CAPTION_CHARS = 1024  # a media caption (media, issue 18)


class ConversationList(BaseModel):
    items: list[ConversationSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class MessageList(BaseModel):
    items: list[HistoryMessage] = Field(description="Oldest first.")
    next_before: str | None = Field(
        description="Pass as `before` for older messages; null when there are none."
    )


class HandoffState(BaseModel):
    """Who holds a conversation now, after an action."""

    model_config = ConfigDict(frozen=True)

    conversation_id: ConversationId
    phone_number_id: PhoneNumberId
    wa_id: WaId
    mode: Mode
    epoch: int = Field(description="Fencing token: grows on every mode change.")
    assignee: str | None
    paused_until: datetime | None
    waiting_since: datetime | None
    handoff_reason: str | None
    handoff_summary: str | None
    changed: bool = Field(description="False when the action found nothing to change.")
    unchanged_reason: str | None = Field(
        default=None, description="Why nothing changed (e.g. already_assigned, already_bot)."
    )

    @classmethod
    def of(cls, state: ConversationState, decision: Decision | None = None) -> HandoffState:
        return cls(
            conversation_id=state.conversation_id,
            phone_number_id=state.phone_number_id,
            wa_id=state.wa_id,
            mode=state.mode,
            epoch=state.epoch,
            assignee=state.assignee,
            paused_until=state.paused_until,
            waiting_since=state.waiting_since,
            handoff_reason=state.handoff_reason,
            handoff_summary=state.handoff_summary,
            changed=decision.changed if decision is not None else False,
            unchanged_reason=(
                decision.ignored.value
                if decision is not None and decision.ignored is not None
                else None
            ),
        )


class ConflictReason(StrEnum):
    HELD_BY_ANOTHER_AGENT = "held_by_another_agent"
    NOT_HOLDER = "not_holder"  # sending as human without holding the conversation
    NOT_BOT_MODE = "not_bot_mode"  # a bot-authored send while a human or the owner holds it
    STALE_EPOCH = "stale_epoch"  # a bot-authored send under an epoch that has passed
    # workflow (issue 12)
    AT_CAPACITY = "at_capacity"  # the agent already holds max_conversations
    NOT_HUMAN_MODE = "not_human_mode"  # a transfer of a conversation no human holds
    WINDOW_CLOSED = "window_closed"  # free text past the customer-service window: use a template


class Conflict(BaseModel):
    """409: the conversation is not in a state that allows the action."""

    detail: str
    reason: ConflictReason
    state: HandoffState


class SendMessage(BaseModel):
    """A text for the customer.

    Agents send as `human` and only while holding the conversation. External bots send as
    `bot` with `expected_epoch`: accepted only if the conversation is in bot mode at that
    epoch, and the outbox checks the same again right before the message leaves.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str = Field(default="", max_length=MAX_TEXT_CHARS)
    # Past the 24 h customer-service window only an approved template may go (issue 12):
    # {"template": {"name", "language", "parameters": [...]}} instead of text.
    template: Template | None = Field(
        default=None, description="An approved template (configured for the number)."
    )
    # Media (issue 18): {"media": {"id": ...}} sends a file (`text`, if any, is its caption);
    # or post the same endpoint as multipart/form-data with `file`.
    media: MediaRef | None = Field(
        default=None, description="A file to send: `POST /media`'s id, or a message's file."
    )
    author: Literal["human", "bot"] = "human"
    expected_epoch: int | None = Field(
        default=None, ge=0, description="Required when author is bot: the epoch you answer under."
    )
    reply_to: Wamid | None = Field(default=None, description="Quote this WhatsApp message.")

    @model_validator(mode="after")
    def _epoch_for_bots(self) -> SendMessage:
        if self.author == "bot" and self.expected_epoch is None:
            raise ValueError("a bot-authored message needs expected_epoch")
        if self.author == "human" and self.expected_epoch is not None:
            raise ValueError("expected_epoch is for bot-authored messages")
        if self.template is not None:
            if self.text or self.media is not None:
                raise ValueError("send either text or a template")
        elif self.media is not None:
            if len(self.text) > MAX_CAPTION_CHARS:
                raise ValueError(f"a caption has at most {MAX_CAPTION_CHARS} characters")
        elif not self.text.strip():
            raise ValueError("text must not be blank")
        return self


class SendAccepted(BaseModel):
    """202: the message was handed to the outbox; its delivery shows on /events and history."""

    idempotency_key: str = Field(description="The outbox deduplicates sends by this key.")
    conversation_id: ConversationId
    author: Literal["human", "bot"]
    state: HandoffState
