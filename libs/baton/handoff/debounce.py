"""The bot lane: buffer a burst, flush it as one AskBot, supersede a request in flight.

One burst, one request: messages wait in the buffer until the customer has been quiet for
the debounce window (sliding), or the cap after the first one has passed, whichever is first.
If the customer writes again while a request is in flight, that request is superseded: its
messages go back to the buffer so the next AskBot covers every message not yet answered,
and `current_request_id` is cleared so none of the old replies pass the outbox fence. A request
the bot finished stays sendable after the next flush (`answered_request_ids`).
"""

from __future__ import annotations

import bisect
from datetime import datetime

from baton.handoff.effects import AskBot, CancelBotRequest, CancelReason
from baton.handoff.policy import Policy
from baton.handoff.state import (
    ANSWERED_REQUESTS_KEPT,
    ConversationState,
    PendingBotRequest,
    evolve,
)
from baton.messages import BurstMessage
from baton.types import Wamid


def flush_due_at(
    first_buffered_at: datetime, last_buffered_at: datetime, policy: Policy
) -> datetime:
    """Quiet window after the last message, but never past the cap after the first."""
    return min(last_buffered_at + policy.debounce_quiet, first_buffered_at + policy.debounce_cap)


def holds(state: ConversationState, wamid: Wamid) -> bool:
    """Whether this message is already buffered or in the request in flight."""
    pending = state.pending_bot_request.messages if state.pending_bot_request else ()
    return any(message.wamid == wamid for message in (*state.buffer, *pending))


def buffer_message(
    state: ConversationState, message: BurstMessage, now: datetime, policy: Policy
) -> ConversationState:
    """Add a customer message to the burst and slide its flush deadline."""
    first = state.first_buffered_at or now
    return evolve(
        state,
        buffer=_in_timestamp_order(state.buffer, message),
        first_buffered_at=first,
        flush_due_at=flush_due_at(first, now, policy),
    )


def supersede(state: ConversationState) -> tuple[ConversationState, CancelBotRequest | None]:
    """Take the request in flight back into the buffer; its replies lose the fence."""
    pending = state.pending_bot_request
    if pending is None:
        return state, None
    buffer = state.buffer
    for message in pending.messages:
        buffer = _in_timestamp_order(buffer, message)
    superseded = evolve(state, buffer=buffer, pending_bot_request=None, current_request_id=None)
    return superseded, CancelBotRequest(
        request_id=pending.request_id, reason=CancelReason.SUPERSEDED
    )


def flush(state: ConversationState) -> tuple[ConversationState, AskBot]:
    """Turn the whole buffer into one AskBot under the current epoch."""
    seq = state.request_seq + 1
    # Deterministic, so a retried decision or effect carries the same id.
    request_id = f"{state.conversation_id}-{state.epoch}-{seq}"
    ask = AskBot(request_id=request_id, epoch=state.epoch, messages=state.buffer)
    answered = state.answered_request_ids
    if state.current_request_id is not None:
        # Still current at a flush means the bot finished it (a supersede clears it): its
        # replies may still be on their way and answer what this request no longer holds.
        answered = (*answered, state.current_request_id)[-ANSWERED_REQUESTS_KEPT:]
    flushed = evolve(
        state,
        answered_request_ids=answered,
        buffer=(),
        first_buffered_at=None,
        flush_due_at=None,
        pending_bot_request=PendingBotRequest(
            request_id=request_id, epoch=state.epoch, messages=state.buffer
        ),
        current_request_id=request_id,
        request_seq=seq,
    )
    return flushed, ask


def lane_messages(state: ConversationState) -> tuple[BurstMessage, ...]:
    """Every customer message the bot still owes an answer to."""
    pending = state.pending_bot_request.messages if state.pending_bot_request else ()
    return (*pending, *state.buffer)


def _in_timestamp_order(
    buffer: tuple[BurstMessage, ...], message: BurstMessage
) -> tuple[BurstMessage, ...]:
    # WhatsApp does not order webhooks; equal timestamps keep arrival order.
    ordered = list(buffer)
    bisect.insort_right(ordered, message, key=lambda m: m.timestamp)
    return tuple(ordered)
