"""The persisted handoff state of one conversation: plain data, no behaviour.

All `*_at` times are the router's clock (`now` of the decision that set them), except
`answered_through` and the buffered messages, which carry WhatsApp message timestamps.

Invariants that `decide` keeps (and the property tests check):
- `assignee` is set only in `human` mode; `paused_until` is set exactly in `paused` mode.
- The bot lane (`buffer`, `pending_bot_request`, `current_request_id`,
  `answered_request_ids`) is empty outside `bot`.
- `buffer` and `pending_bot_request` are never both non-empty: a new customer message
  supersedes the pending request and takes its messages back into the buffer.
- The per-handoff fields (`waiting_since`, `takeover_notice_sent`, `ghost_fallback_done`,
  `handoff_reason`, `handoff_summary`, `service_started_at`, `first_response_at`) are blank
  in `bot` mode.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict

from baton.messages import BurstMessage
from baton.types import ConversationId, Mode, PhoneNumberId, WaId

# WhatsApp's customer service window: free-form messages only within 24 h of the
# customer's last message. Business messages (API or Business App) never reset it.
CUSTOMER_WINDOW = timedelta(hours=24)
# A customer who came from a click-to-WhatsApp ad may be answered freely for 72 h.
AD_CUSTOMER_WINDOW = timedelta(hours=72)
# Answered requests whose replies may still wait in outbox (pair pacing, a throughput pause)
# when the next burst is flushed; a reply older than this many answered requests is fenced.
ANSWERED_REQUESTS_KEPT = 8


class PendingBotRequest(BaseModel):
    """An AskBot that was emitted and whose turn has not finished yet."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    request_id: str
    epoch: int
    messages: tuple[BurstMessage, ...]


class ConversationState(BaseModel):
    """Who holds one conversation, and what the bot still owes the customer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    conversation_id: ConversationId
    phone_number_id: PhoneNumberId
    wa_id: WaId

    mode: Mode = Mode.BOT
    epoch: int = 0  # fencing token: +1 on every mode change, and only then
    version: int = 0  # optimistic lock: +1 on every decision that changes the state
    mode_changed_at: AwareDatetime | None = None

    # Who holds it, when not the bot.
    assignee: str | None = None  # agent id (human mode; None = waiting for any agent)
    paused_until: AwareDatetime | None = None  # paused mode only

    # Live traffic (history imports never touch these).
    last_customer_at: AwareDatetime | None = None
    last_bot_at: AwareDatetime | None = None
    last_human_at: AwareDatetime | None = None  # an agent or the owner acted or wrote
    last_activity_at: AwareDatetime | None = None
    customer_window_expires_at: AwareDatetime | None = None

    # The current handoff (a stretch away from the bot).
    waiting_since: AwareDatetime | None = None  # oldest customer message no human answered
    takeover_notice_sent: bool = False
    ghost_fallback_done: bool = False  # the one "busy" notice was sent or skipped
    handoff_reason: str | None = None
    handoff_summary: str | None = None
    # The human service (workflow): when it left the bot, and the first human answer in it.
    service_started_at: AwareDatetime | None = None
    first_response_at: AwareDatetime | None = None

    # The bot lane: debounce buffer, the request in flight, and its fence.
    buffer: tuple[BurstMessage, ...] = ()  # in WhatsApp timestamp order
    first_buffered_at: AwareDatetime | None = None
    flush_due_at: AwareDatetime | None = None
    pending_bot_request: PendingBotRequest | None = None
    current_request_id: str | None = None  # the newest request whose replies may be sent
    # Earlier requests of this epoch the bot finished (never superseded ones): their replies
    # still pass the fence. Newest last, at most ANSWERED_REQUESTS_KEPT.
    answered_request_ids: tuple[str, ...] = ()
    request_seq: int = 0  # makes request ids unique and deterministic
    # Newest customer message a human stretch covered: older ones never reach the bot.
    answered_through: AwareDatetime | None = None


def new_conversation(
    conversation_id: ConversationId, phone_number_id: PhoneNumberId, wa_id: WaId
) -> ConversationState:
    """The state of a conversation Baton has never seen: the bot holds it, epoch 0."""
    return ConversationState(
        conversation_id=conversation_id, phone_number_id=phone_number_id, wa_id=wa_id
    )


def evolve(state: ConversationState, **changes: object) -> ConversationState:
    """A copy of `state` with `changes`; refuses unknown field names."""
    unknown = changes.keys() - ConversationState.model_fields.keys()
    if unknown:
        raise TypeError(f"unknown ConversationState fields: {sorted(unknown)}")
    return state.model_copy(update=changes)


def customer_window_open(state: ConversationState, now: datetime) -> bool:
    """Whether free-form messages (notices) may be sent to the customer now."""
    expires = state.customer_window_expires_at
    return expires is not None and now < expires


def latest(*times: datetime | None) -> datetime | None:
    """The latest of the given times, ignoring missing ones."""
    present = [t for t in times if t is not None]
    return max(present) if present else None
