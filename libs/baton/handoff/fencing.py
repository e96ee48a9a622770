"""The fence a bot reply must pass to reach the customer (checked by outbox at send time).

A reply passes only if the bot still holds the conversation, under the same epoch (no mode
change since the request), and its request was not superseded by a newer customer message:
the current request, or one of the last requests of this epoch the bot finished (a reply that
reaches outbox after the router saw `BotReplied`, even after the next burst was flushed, is
still sent). External bots send without a request: they are fenced by mode and epoch alone.
"""

from __future__ import annotations

from enum import StrEnum

from baton.handoff.state import ConversationState
from baton.types import Mode


class FenceReason(StrEnum):
    CURRENT = "current"
    NOT_BOT_MODE = "not_bot_mode"
    MISSING_FENCE = "missing_fence"  # a bot reply without epoch or request id
    STALE_EPOCH = "stale_epoch"
    SUPERSEDED = "superseded"


def may_send_bot_reply(
    state: ConversationState, reply_epoch: int | None, request_id: str | None
) -> tuple[bool, FenceReason]:
    """Whether a bot reply may be sent now, and the reason (a metric label when dropped)."""
    if state.mode is not Mode.BOT:
        return False, FenceReason.NOT_BOT_MODE
    if reply_epoch is None or request_id is None:
        return False, FenceReason.MISSING_FENCE
    if reply_epoch != state.epoch:
        return False, FenceReason.STALE_EPOCH
    if request_id != state.current_request_id and request_id not in state.answered_request_ids:
        return False, FenceReason.SUPERSEDED
    return True, FenceReason.CURRENT


def may_send_external_bot_message(
    state: ConversationState, expected_epoch: int | None
) -> tuple[bool, FenceReason]:
    """The agent API's promise to external bots: sent only in bot mode under their epoch."""
    if state.mode is not Mode.BOT:
        return False, FenceReason.NOT_BOT_MODE
    if expected_epoch is None:
        return False, FenceReason.MISSING_FENCE
    if expected_epoch != state.epoch:
        return False, FenceReason.STALE_EPOCH
    return True, FenceReason.CURRENT


def is_bot_reply_current(state: ConversationState, request_id: str, epoch: int) -> bool:
    """Whether replies to this request may still reach the customer."""
    allowed, _ = may_send_bot_reply(state, epoch, request_id)
    return allowed
