"""Mode changes and notices. Every mode change goes through `_switch`, which bumps the epoch."""

from __future__ import annotations

from datetime import datetime

from baton.handoff import debounce
from baton.handoff.effects import (
    AgentEventKind,
    CancelBotRequest,
    CancelReason,
    Cause,
    Effect,
    EmitEvent,
    SendNotice,
    SkipNotice,
    SkipReason,
)
from baton.handoff.notices import NoticeKind
from baton.handoff.policy import Policy, notice_text
from baton.handoff.state import ConversationState, customer_window_open, evolve, latest
from baton.types import Mode

Step = tuple[ConversationState, list[Effect]]


def enter_bot(
    state: ConversationState,
    now: datetime,
    policy: Policy,
    cause: Cause,
    actor: str | None = None,
    *,
    announce: bool = False,
) -> Step:
    """Give the conversation back to the bot; the handoff's bookkeeping ends.

    `announce`: send the back-to-bot notice even if no takeover was announced (resolve).
    """
    new, effects = _switch(
        state,
        Mode.BOT,
        now,
        cause,
        actor,
        waiting_since=None,
        takeover_notice_sent=False,
        ghost_fallback_done=False,
        handoff_reason=None,
        handoff_summary=None,
        service_started_at=None,
        first_response_at=None,
    )
    # Only a customer who was told a human took over needs to hear the bot is back.
    if state.takeover_notice_sent or announce:
        effects.append(notice(new, NoticeKind.BACK_TO_BOT, now, policy))
    return new, effects


def enter_human(
    state: ConversationState,
    now: datetime,
    policy: Policy,
    cause: Cause,
    *,
    actor: str | None,
    assignee: str | None,
    waiting_since: datetime | None,
    notify: bool,
    reason: str | None = None,
    summary: str | None = None,
) -> Step:
    """Give the conversation to an agent (or to the queue, with no assignee)."""
    handoff = {} if reason is None else {"handoff_reason": reason, "handoff_summary": summary}
    new, effects = _switch(
        state,
        Mode.HUMAN,
        now,
        cause,
        actor,
        assignee=assignee,
        waiting_since=waiting_since,
        service_started_at=state.service_started_at or now,
        **handoff,
    )
    # An agent who just wrote needs no announcement: their message is one.
    if notify and not new.takeover_notice_sent:
        takeover = notice(new, NoticeKind.TAKEOVER, now, policy)
        new = evolve(new, takeover_notice_sent=isinstance(takeover, SendNotice))
        effects.append(takeover)
    return new, effects


def enter_paused(
    state: ConversationState,
    now: datetime,
    policy: Policy,
    cause: Cause,
    *,
    until: datetime,
    waiting_since: datetime | None,
) -> Step:
    """The owner holds the conversation from the Business App until `until`."""
    # No takeover notice: the owner's own message already told the customer.
    return _switch(
        state,
        Mode.PAUSED,
        now,
        cause,
        None,
        paused_until=until,
        waiting_since=waiting_since,
        service_started_at=state.service_started_at or now,
    )


def unanswered_since(state: ConversationState, now: datetime) -> datetime | None:
    """When the customer started waiting, as the holder changes (None: nobody owes an answer)."""
    if state.mode is Mode.BOT:
        return now if debounce.lane_messages(state) else None
    return state.waiting_since


def notice(
    state: ConversationState, kind: NoticeKind, now: datetime, policy: Policy
) -> SendNotice | SkipNotice:
    """Send a notice if enabled and the 24 h window is open; else record why not."""
    text = notice_text(policy, kind)
    if not text:
        return SkipNotice(kind=kind, reason=SkipReason.DISABLED)
    # Each notice kind is sent at most once per epoch, which makes this key unique.
    key = f"notice:{state.conversation_id}:{state.epoch}:{kind}"
    if not customer_window_open(state, now):
        # Past the window only an approved template may reach the customer.
        if kind is NoticeKind.BUSY and policy.busy_template is not None:
            return SendNotice(
                kind=kind, text=text, idempotency_key=key, template=policy.busy_template
            )
        return SkipNotice(kind=kind, reason=SkipReason.CUSTOMER_WINDOW_CLOSED)
    return SendNotice(kind=kind, text=text, idempotency_key=key)


def _switch(
    state: ConversationState,
    to: Mode,
    now: datetime,
    cause: Cause,
    actor: str | None,
    **changes: object,
) -> Step:
    effects: list[Effect] = []
    pending = state.pending_bot_request
    if pending is not None:
        effects.append(
            CancelBotRequest(request_id=pending.request_id, reason=CancelReason.MODE_CHANGED)
        )
    answered_through = state.answered_through
    if state.mode is Mode.BOT:
        # What the bot still owed is now the human's: it must never reach the bot later.
        stamps = (m.timestamp for m in debounce.lane_messages(state))
        answered_through = latest(answered_through, *stamps)
    base: dict[str, object] = {
        "mode": to,
        "epoch": state.epoch + 1,
        "mode_changed_at": now,
        # Mode-specific holders: the target mode sets its own through `changes`.
        "assignee": None,
        "paused_until": None,
        # The bot lane lives only in bot mode (its fence died with the old epoch anyway).
        "buffer": (),
        "first_buffered_at": None,
        "flush_due_at": None,
        "pending_bot_request": None,
        "current_request_id": None,
        "answered_request_ids": (),
        "answered_through": answered_through,
    }
    new = evolve(state, **(base | changes))
    effects.append(
        EmitEvent(
            kind=AgentEventKind.MODE_CHANGED,
            payload={
                "from": state.mode.value,
                "to": to.value,
                "epoch": new.epoch,
                "cause": cause.value,
                "actor": actor,
                "assignee": new.assignee,
                "reason": new.handoff_reason,
                "summary": new.handoff_summary,
                "paused_until": new.paused_until.isoformat() if new.paused_until else None,
            },
        )
    )
    return new, effects
