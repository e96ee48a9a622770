"""`decide`: the conversation handoff rules as one pure function.

    decide(state, event, now, policy) -> Decision(state, effects)

The router loads the state, calls `decide`, saves the new state with a compare-and-set on
`state.version`, and only then performs the effects. Nothing here reads a clock or does I/O.
Every mode change bumps the epoch (the fence outbox checks bot replies against).

| event                          | bot                       | human                | paused            |
|--------------------------------|---------------------------|----------------------|-------------------|
| CustomerWrote                  | buffer (supersedes the    | customer waiting,    | customer waiting, |
|                                | request in flight)        | tell agents          | tell agents       |
| EchoReceived (owner typed)     | -> paused, now + window   | -> paused            | extend, never cut |
| echo `#bot` / `#resume`        | -                         | -> bot               | -> bot            |
| echo `#pause <d>`              | -> paused, now + d        | -> paused, now + d   | now + d           |
| AgentTookOver                  | -> human (notice)         | reassign             | -> human (notice) |
| AgentSent                      | -> human (no notice)      | answers the customer | -> human          |
| AgentReleased                  | -                         | -> bot (notice)      | -> bot (notice)   |
| BotRequestedHandoff (epoch ok) | -> human, queue (notice)  | -                    | -                 |
| BotReplied (current request)   | burst answered            | -                    | -                 |
| timer debounce                 | one AskBot for the burst  | -                    | -                 |
| timer pause expiry             | -                         | -                    | -> bot            |
| timer human inactivity         | -                         | -> bot (notice)      | -                 |
| timer ghost fallback           | -                         | one busy notice per handoff (24 h window) |
| AgentAssigned (auto, has room) | -                         | queued: assign       | -                 |
| AgentTransferred               | -                         | reassign, or queue   | -                 |
| AgentWentOffline               | -                         | holder: back to queue| -                 |
| AgentResolved                  | -                         | -> bot (notice)      | -> bot (notice)   |

Notices: takeover when a human is announced (agent takeover, bot handoff); back-to-bot only
if the customer was told of a takeover, or on resolve; every notice is skipped, with a reason,
when disabled or outside the 24 h customer window (72 h after an ad), except the busy notice
of a number with a `busy_template`, which goes out as that template.
Capacity: an event that gives an agent a conversation (auto-assignment, a transfer, a takeover
when the shell says how many they hold) is refused when the agent is full.
Never a takeover: echoes of our own API sends, history imports, and reactions, revokes,
system and unsupported messages from either side (customer ones keep the window open).
A timer event is only a prompt: the state says what is due, so stale timers do nothing.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import assert_never

from pydantic import BaseModel, ConfigDict

from baton.handoff import debounce
from baton.handoff._transitions import (
    Step,
    enter_bot,
    enter_human,
    enter_paused,
    notice,
    unanswered_since,
)
from baton.handoff.commands import PauseBot, ResumeBot, parse_owner_command
from baton.handoff.effects import (
    AgentEventKind,
    CancelTimer,
    Cause,
    Effect,
    EmitEvent,
    ScheduleTimer,
)
from baton.handoff.events import (
    AgentAssigned,
    AgentReleased,
    AgentResolved,
    AgentSent,
    AgentTookOver,
    AgentTransferred,
    AgentWentOffline,
    BotReplied,
    BotRequestedHandoff,
    CustomerWrote,
    EchoReceived,
    Event,
    HistoryMessageImported,
    TimerFired,
    is_conversational,
)
from baton.handoff.notices import NoticeKind
from baton.handoff.policy import Policy
from baton.handoff.state import (
    AD_CUSTOMER_WINDOW,
    CUSTOMER_WINDOW,
    ConversationState,
    evolve,
    latest,
)
from baton.handoff.timers import TimerKind, next_timers, timer_due
from baton.messages import BurstMessage
from baton.types import Mode


class IgnoreReason(StrEnum):
    """Why an event changed nothing (for logs and metrics)."""

    DUPLICATE_MESSAGE = "duplicate_message"
    API_ECHO = "api_echo"
    HISTORY_IMPORT = "history_import"
    ALREADY_BOT = "already_bot"
    ALREADY_ASSIGNED = "already_assigned"
    NOT_BOT_MODE = "not_bot_mode"
    STALE_EPOCH = "stale_epoch"
    STALE_REPLY = "stale_reply"
    TIMER_NOT_ARMED = "timer_not_armed"
    TIMER_NOT_DUE = "timer_not_due"
    NOT_HUMAN_MODE = "not_human_mode"
    HELD_BY_ANOTHER = "held_by_another"
    NOT_HOLDER = "not_holder"
    AT_CAPACITY = "at_capacity"


class Decision(BaseModel):
    """Save `state` if `changed` (CAS on the old version), then perform `effects` in order."""

    model_config = ConfigDict(frozen=True)
    state: ConversationState
    effects: tuple[Effect, ...] = ()
    changed: bool = False
    ignored: IgnoreReason | None = None


def decide(state: ConversationState, event: Event, now: datetime, policy: Policy) -> Decision:
    """Apply one event to one conversation at time `now` (timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    step = _apply(state, event, now, policy)
    if isinstance(step, IgnoreReason):
        return Decision(state=state, ignored=step)
    new, effects = step
    if new == state:
        return Decision(state=state, effects=tuple(effects))
    new = evolve(new, version=state.version + 1)
    return Decision(
        state=new,
        effects=(*effects, *_timer_changes(state, new, policy)),
        changed=True,
    )


def _apply(
    state: ConversationState, event: Event, now: datetime, policy: Policy
) -> Step | IgnoreReason:
    match event:
        case CustomerWrote():
            return _customer_wrote(state, event, now, policy)
        case EchoReceived():
            return _echo_received(state, event, now, policy)
        case HistoryMessageImported():
            return IgnoreReason.HISTORY_IMPORT
        case AgentTookOver():
            return _agent_took_over(state, event, now, policy)
        case AgentReleased():
            if state.mode is Mode.BOT:
                return IgnoreReason.ALREADY_BOT
            return enter_bot(state, now, policy, Cause.AGENT_RELEASED, actor=event.agent_id)
        case AgentSent():
            return _agent_sent(state, event, now, policy)
        case BotRequestedHandoff():
            return _bot_requested_handoff(state, event, now, policy)
        case BotReplied():
            return _bot_replied(state, event, now)
        case TimerFired():
            return _timer_fired(state, event, now, policy)
        case AgentAssigned():
            return _agent_assigned(state, event, now)
        case AgentTransferred():
            return _agent_transferred(state, event, now)
        case AgentWentOffline():
            if state.mode is not Mode.HUMAN or state.assignee != event.agent_id:
                return IgnoreReason.NOT_HOLDER
            return _requeue(state, now, actor=event.agent_id, cause="offline")
        case AgentResolved():
            return _agent_resolved(state, event, now, policy)
        case _:
            assert_never(event)


# --- customer --------------------------------------------------------------------------


def _customer_wrote(
    state: ConversationState, event: CustomerWrote, now: datetime, policy: Policy
) -> Step | IgnoreReason:
    if debounce.holds(state, event.wamid):
        return IgnoreReason.DUPLICATE_MESSAGE
    # A timestamp from the future (clock skew) must not stretch the window.
    window_start = min(event.timestamp, now)
    window = AD_CUSTOMER_WINDOW if event.from_ad else CUSTOMER_WINDOW
    state = evolve(
        state,
        last_customer_at=now,
        last_activity_at=now,
        customer_window_expires_at=latest(state.customer_window_expires_at, window_start + window),
    )
    if not is_conversational(event.type):
        return state, []
    if state.mode is not Mode.BOT:
        return _customer_waits(state, event, now)
    if state.answered_through is not None and event.timestamp < state.answered_through:
        return state, []  # older than a stretch a human already handled (late delivery)
    effects: list[Effect] = []
    state, cancelled = debounce.supersede(state)
    if cancelled is not None:
        effects.append(cancelled)
    message = BurstMessage(
        wamid=event.wamid, type=event.type, text=event.text, timestamp=event.timestamp
    )
    return debounce.buffer_message(state, message, now, policy), effects


def _customer_waits(state: ConversationState, event: CustomerWrote, now: datetime) -> Step:
    """A human holds the conversation: the message is theirs to answer, never the bot's."""
    waiting_since = state.waiting_since or now
    state = evolve(
        state,
        waiting_since=waiting_since,
        answered_through=latest(state.answered_through, event.timestamp),
    )
    waiting = EmitEvent(
        kind=AgentEventKind.CUSTOMER_WAITING,
        payload={
            "wamid": event.wamid,
            "mode": state.mode.value,
            "assignee": state.assignee,
            "waiting_since": waiting_since.isoformat(),
        },
    )
    return state, [waiting]


# --- owner (WhatsApp Business App) -----------------------------------------------------


def _echo_received(
    state: ConversationState, event: EchoReceived, now: datetime, policy: Policy
) -> Step | IgnoreReason:
    if event.from_api:
        return IgnoreReason.API_ECHO
    state = evolve(state, last_activity_at=now)
    if not is_conversational(event.type):
        return state, []  # the owner reacting or deleting a message is not answering
    command = parse_owner_command(event.text, policy) if event.type == "text" else None
    match command:
        case ResumeBot():
            if state.mode is Mode.BOT:
                return state, []
            return enter_bot(state, now, policy, Cause.OWNER_RESUME)
        case PauseBot(duration=duration):
            # An explicit duration is the owner's intent: it may shorten a running pause.
            until = now + min(duration or policy.pause_window, policy.max_pause)
            if state.mode is Mode.PAUSED:
                return evolve(state, paused_until=until), []
            waiting_since = unanswered_since(state, now)
            return enter_paused(
                state, now, policy, Cause.OWNER_PAUSE, until=until, waiting_since=waiting_since
            )
        case None:
            # The owner answered the customer: nobody is waiting any more.
            state = evolve(
                state,
                last_human_at=now,
                waiting_since=None,
                first_response_at=state.first_response_at or now,
            )
            until = now + policy.pause_window
            if state.mode is Mode.PAUSED:
                return evolve(state, paused_until=max(state.paused_until or until, until)), []
            return enter_paused(
                state, now, policy, Cause.OWNER_ECHO, until=until, waiting_since=None
            )
        case _:
            assert_never(command)


# --- agents ----------------------------------------------------------------------------


def _agent_took_over(
    state: ConversationState, event: AgentTookOver, now: datetime, policy: Policy
) -> Step | IgnoreReason:
    if state.mode is Mode.HUMAN:
        if state.assignee == event.agent_id:
            return IgnoreReason.ALREADY_ASSIGNED
        if _full(event.load, event.capacity):
            return IgnoreReason.AT_CAPACITY
        return _assign(state, event.agent_id, now, cause="takeover", actor=event.agent_id)
    if _full(event.load, event.capacity):
        return IgnoreReason.AT_CAPACITY
    state, effects = enter_human(
        state,
        now,
        policy,
        Cause.AGENT_TAKEOVER,
        actor=event.agent_id,
        assignee=event.agent_id,
        waiting_since=unanswered_since(state, now),
        notify=True,
    )
    return evolve(state, last_human_at=now), effects


def _agent_sent(state: ConversationState, event: AgentSent, now: datetime, policy: Policy) -> Step:
    effects: list[Effect] = []
    if state.mode is Mode.HUMAN:
        if state.assignee is None:  # the first agent to answer the queue claims it
            state, effects = _assign(
                state, event.agent_id, now, cause="takeover", actor=event.agent_id
            )
    else:
        # Whoever writes holds the conversation: an agent writing is a takeover.
        state, effects = enter_human(
            state,
            now,
            policy,
            Cause.AGENT_MESSAGE,
            actor=event.agent_id,
            assignee=event.agent_id,
            waiting_since=None,
            notify=False,
        )
    state = evolve(
        state,
        last_human_at=now,
        last_activity_at=now,
        waiting_since=None,
        first_response_at=state.first_response_at or now,
    )
    return state, effects


def _full(load: int | None, capacity: int | None) -> bool:
    return load is not None and capacity is not None and load >= capacity


def _assign(
    state: ConversationState,
    agent_id: str,
    now: datetime,
    *,
    cause: str,
    actor: str | None,
) -> Step:
    assigned = EmitEvent(
        kind=AgentEventKind.ASSIGNEE_CHANGED,
        payload={
            "assignee": agent_id,
            "previous": state.assignee,
            "actor": actor,
            "cause": cause,
        },
    )
    # Claiming a conversation is human activity: it restarts the inactivity clock.
    return evolve(state, assignee=agent_id, last_human_at=now), [assigned]


def _agent_assigned(
    state: ConversationState, event: AgentAssigned, now: datetime
) -> Step | IgnoreReason:
    if state.mode is not Mode.HUMAN:
        return IgnoreReason.NOT_HUMAN_MODE
    if state.assignee == event.agent_id:
        return IgnoreReason.ALREADY_ASSIGNED
    if state.assignee is not None:
        return IgnoreReason.HELD_BY_ANOTHER
    if _full(event.load, event.capacity):
        return IgnoreReason.AT_CAPACITY
    return _assign(state, event.agent_id, now, cause="auto", actor=None)


def _agent_transferred(
    state: ConversationState, event: AgentTransferred, now: datetime
) -> Step | IgnoreReason:
    # Mode and epoch stay: the bot stays silent and the customer hears nothing.
    if state.mode is not Mode.HUMAN:
        return IgnoreReason.NOT_HUMAN_MODE
    if event.to == state.assignee:
        return IgnoreReason.ALREADY_ASSIGNED
    if event.to is None:
        return _requeue(state, now, actor=event.agent_id, cause="transfer")
    if _full(event.load, event.capacity):
        return IgnoreReason.AT_CAPACITY
    return _assign(state, event.to, now, cause="transfer", actor=event.agent_id)


def _requeue(state: ConversationState, now: datetime, *, actor: str, cause: str) -> Step:
    """Back to the queue: no holder; the customer's wait goes on from when it began."""
    requeued = EmitEvent(
        kind=AgentEventKind.ASSIGNEE_CHANGED,
        payload={"assignee": None, "previous": state.assignee, "actor": actor, "cause": cause},
    )
    return evolve(state, assignee=None, waiting_since=state.waiting_since or now), [requeued]


def _agent_resolved(
    state: ConversationState, event: AgentResolved, now: datetime, policy: Policy
) -> Step | IgnoreReason:
    if state.mode is Mode.BOT:
        return IgnoreReason.ALREADY_BOT
    started = state.service_started_at or state.mode_changed_at or now
    first = state.first_response_at
    resolved = EmitEvent(
        kind=AgentEventKind.RESOLVED,
        payload={
            "agent": event.agent_id,
            "outcome": event.outcome,
            "epoch": state.epoch,
            "started_at": started.isoformat(),
            "first_response_at": first.isoformat() if first is not None else None,
            "first_response_seconds": (
                round((first - started).total_seconds()) if first is not None else None
            ),
            "handling_seconds": round((now - started).total_seconds()),
        },
    )
    new, effects = enter_bot(
        state, now, policy, Cause.RESOLVED, actor=event.agent_id, announce=True
    )
    return new, [*effects, resolved]


# --- bot -------------------------------------------------------------------------------


def _bot_requested_handoff(
    state: ConversationState, event: BotRequestedHandoff, now: datetime, policy: Policy
) -> Step | IgnoreReason:
    if state.mode is not Mode.BOT:
        return IgnoreReason.NOT_BOT_MODE
    if event.epoch != state.epoch:
        return IgnoreReason.STALE_EPOCH
    return enter_human(
        state,
        now,
        policy,
        Cause.BOT_HANDOFF,
        actor=None,
        assignee=None,
        waiting_since=now,
        notify=True,
        reason=event.reason,
        summary=event.summary,
    )


def _bot_replied(state: ConversationState, event: BotReplied, now: datetime) -> Step | IgnoreReason:
    pending = state.pending_bot_request
    if (
        state.mode is not Mode.BOT
        or pending is None
        or pending.request_id != event.request_id
        or event.epoch != state.epoch
    ):
        return IgnoreReason.STALE_REPLY
    # `current_request_id` stays: replies still on their way to outbox must pass the fence.
    if event.reply_count == 0:
        return evolve(state, pending_bot_request=None), []
    return evolve(state, pending_bot_request=None, last_bot_at=now, last_activity_at=now), []


# --- timers ----------------------------------------------------------------------------


def _timer_fired(
    state: ConversationState, event: TimerFired, now: datetime, policy: Policy
) -> Step | IgnoreReason:
    # The state, not the event, says when a timer is due: stale or early timers do nothing.
    due = timer_due(state, policy, event.kind)
    if due is None:
        return IgnoreReason.TIMER_NOT_ARMED
    if now < due:
        return IgnoreReason.TIMER_NOT_DUE
    match event.kind:
        case TimerKind.DEBOUNCE:
            state, ask = debounce.flush(state)
            return state, [ask]
        case TimerKind.PAUSE_EXPIRY:
            return enter_bot(state, now, policy, Cause.PAUSE_EXPIRED)
        case TimerKind.HUMAN_INACTIVITY:
            return enter_bot(state, now, policy, Cause.HUMAN_INACTIVE)
        case TimerKind.GHOST_FALLBACK:
            busy = notice(state, NoticeKind.BUSY, now, policy)
            return evolve(state, ghost_fallback_done=True), [busy]
        case _:
            assert_never(event.kind)


def _timer_changes(
    before: ConversationState, after: ConversationState, policy: Policy
) -> list[Effect]:
    old = {timer.kind: timer.due_at for timer in next_timers(before, policy)}
    new = {timer.kind: timer.due_at for timer in next_timers(after, policy)}
    changes: list[Effect] = [
        ScheduleTimer(kind=kind, due_at=due) for kind, due in new.items() if old.get(kind) != due
    ]
    changes += [CancelTimer(kind=kind) for kind in old if kind not in new]
    return changes
